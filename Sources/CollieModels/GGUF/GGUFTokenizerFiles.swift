import Foundation
import CollieIO
import CollieTokenizers

/// The tokenizer files a GGUF file's metadata describes: the tokenizer.json and tokenizer_config.json that
/// `transformers` builds when it loads the file (`AutoTokenizer.from_pretrained(dir, gguf_file: …)`), so the ids
/// are the ones transformers gives.
///
/// Two tokenizer models are read (`tokenizer.ggml.model`):
/// - `gpt2`: byte-level BPE from `tokens` and `merges`; the pre-tokenizer split follows `tokenizer.ggml.pre` where
///   transformers knows the name (`llama-bpe`, `qwen2`, …) and is GPT-2's otherwise (`default`, `gpt-2`, `smollm`:
///   transformers ignores those, and parity with it is the point);
/// - `llama`: SentencePiece-style BPE from `tokens` and `scores` (merges recovered from the scores as transformers
///   does), byte fallback (`<0x..>` tokens), Metaspace, BOS added unless `add_bos_token` says otherwise.
///
/// Control tokens (type 3) become special added tokens and user-defined ones (type 4) plain added tokens.
/// Metadata comes from strangers: every array, count and id is checked, and errors name the key.
public struct GGUFTokenizerFiles: Sendable {
    /// The tokenizer models `tokenizer.ggml.model` may name.
    public enum Model: String, Sendable, CaseIterable {
        case gpt2, llama
    }

    /// `tokenizer.ggml.model`.
    public let model: Model
    /// `tokenizer.ggml.pre`, when the file has it.
    public let preTokenizer: String?
    /// A Hugging Face tokenizer.json.
    public let tokenizerJSON: [UInt8]
    /// A tokenizer_config.json: special tokens, add_bos_token/add_eos_token, chat_template, model_max_length.
    public let tokenizerConfigJSON: [UInt8]
    /// `tokenizer.chat_template`.
    public let chatTemplate: String?
    /// What tokenizer_config.json says, as Collie's tokenizer reads it.
    public let configuration: TokenizerConfiguration
    /// The GGUF file's name, for errors.
    public let file: String

    /// Reads the tokenizer from a GGUF file's metadata.
    public init(file: String = "", value: (String) -> GGUFValue?) throws {
        var metadata: [String: GGUFValue] = [:]
        var keys = GGUFTokenizerFiles.keys
        if let architecture = value("general.architecture")?.string { keys.append("\(architecture).context_length") }
        for key in keys { metadata[key] = value(key) }
        try self.init(metadata: metadata, file: file)
    }

    /// The metadata keys the tokenizer is read from (and `<architecture>.context_length`).
    public static let keys = ["general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                              "tokenizer.ggml.token_type", "tokenizer.ggml.scores", "tokenizer.ggml.merges",
                              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                              "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                              "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.chat_template"]

    /// Reads the tokenizer from a GGUF file's metadata.
    public init(metadata: [String: GGUFValue], file: String = "") throws {
        self.file = file
        let reader = MetadataReader(file: file, metadata: metadata)
        guard let modelName = try reader.string("tokenizer.ggml.model") else {
            throw reader.error("tokenizer.ggml.model", "missing: the file carries no tokenizer")
        }
        guard let model = Model(rawValue: modelName) else {
            throw reader.error("tokenizer.ggml.model", "unsupported tokenizer model \"\(modelName)\" (supported: "
                               + Model.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        let architecture = try reader.string("general.architecture")
        if model == .llama, let architecture, ["gemma", "gemma2", "gemma3", "phi3"].contains(architecture) {
            throw reader.error("general.architecture", "the SentencePiece tokenizer of \(architecture) files is not supported")
        }
        self.model = model
        preTokenizer = try reader.string("tokenizer.ggml.pre")
        chatTemplate = try reader.string("tokenizer.chat_template")

        let tokens = try reader.strings("tokenizer.ggml.tokens")
        guard !tokens.isEmpty else { throw reader.error("tokenizer.ggml.tokens", "missing or empty") }
        let types = try reader.integers("tokenizer.ggml.token_type", count: tokens.count)
        func specialToken(_ key: String) throws -> String? {
            guard let id = try reader.tokenID(key, count: tokens.count) else { return nil }
            return tokens[id]
        }
        let bos = try specialToken("tokenizer.ggml.bos_token_id")
        let eos = try specialToken("tokenizer.ggml.eos_token_id")
        let unknown = try specialToken("tokenizer.ggml.unknown_token_id")
        let pad = try specialToken("tokenizer.ggml.padding_token_id")
        // Older llama files have no flag, and llama.cpp adds BOS to a SentencePiece vocabulary unless told not to.
        let addBOS = try reader.bool("tokenizer.ggml.add_bos_token") ?? (model == .llama)
        let addEOS = try reader.bool("tokenizer.ggml.add_eos_token") ?? false
        let contextLength = try architecture.flatMap { try reader.integer("\($0).context_length") }

        let vocabulary: Vocabulary
        switch model {
        case .gpt2: vocabulary = try Vocabulary.byteLevel(tokens: tokens, reader: reader)
        case .llama: vocabulary = try Vocabulary.sentencePiece(tokens: tokens, reader: reader)
        }

        // Added tokens: the builder class's own special tokens, the control tokens, the named special tokens (all
        // special), and the user-defined ones (not special), each once, in id order.
        var added: [Int: Bool] = [:]
        let defaults = model == .gpt2 ? ["<|endoftext|>"] : ["<unk>", "<s>", "</s>"]
        for token in defaults + [bos, eos, unknown, pad].compactMap({ $0 }) {
            if let id = vocabulary.ids[token] { added[id] = true }
        }
        let alphabet = ByteLevelAlphabet.characters
        for (index, type) in types.enumerated() where type == 3 {
            let token = tokens[index]
            // In a byte-level vocabulary a control token spelled outside the byte alphabet is a mislabel.
            if model == .gpt2, !token.unicodeScalars.allSatisfy(alphabet.contains) { continue }
            if let id = vocabulary.ids[token] { added[id] = true }
        }
        for (index, type) in types.enumerated() where type == 4 {
            if let id = vocabulary.ids[tokens[index]], added[id] == nil { added[id] = false }
        }
        let addedTokens = added.keys.sorted().compactMap { id in vocabulary.token(id).map { (id, $0, added[id] ?? false) } }

        var json = JSONText(capacity: tokens.count * 40)
        json.raw("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[")
        for (index, (id, content, special)) in addedTokens.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"id\":\(id),\"content\":")
            json.string(content)
            json.raw(",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":\(special)}")
        }
        json.raw("],\"normalizer\":null,\"pre_tokenizer\":")
        switch model {
        case .gpt2:
            if let split = preTokenizer.flatMap({ GGUFTokenizerFiles.splitPatterns[$0] }) {
                json.raw("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":")
                json.string(split)
                json.raw("},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                         + "\"trim_offsets\":true,\"use_regex\":false}]}")
            } else {
                json.raw("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}")
            }
        case .llama:
            json.raw("{\"type\":\"Metaspace\",\"replacement\":\"\u{2581}\",\"prepend_scheme\":\"first\",\"split\":false}")
        }
        json.raw(",\"post_processor\":")
        GGUFTokenizerFiles.writeTemplate(&json, first: addBOS ? bos.flatMap { b in vocabulary.ids[b].map { (b, $0) } } : nil,
                                         last: addEOS ? eos.flatMap { e in vocabulary.ids[e].map { (e, $0) } } : nil)
        json.raw(",\"decoder\":")
        switch model {
        case .gpt2:
            json.raw("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}")
            json.raw(",\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
                     + "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,")
        case .llama:
            json.raw("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\u{2581}\"},"
                     + "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                     + "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}")
            json.raw(",\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
                     + "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,\"ignore_merges\":false,")
        }
        json.raw("\"vocab\":{")
        var first = true
        for id in 0..<vocabulary.tokens.count {
            guard let token = vocabulary.token(id) else { continue }
            if !first { json.raw(",") }
            first = false
            json.key(token)
            json.raw(String(id))
        }
        json.raw("},\"merges\":[")
        for (index, merge) in vocabulary.merges.enumerated() {
            json.raw(index == 0 ? "[" : ",[")
            json.string(merge.0)
            json.raw(",")
            json.string(merge.1)
            json.raw("]")
        }
        json.raw("]}}")
        tokenizerJSON = json.bytes

        configuration = TokenizerConfiguration(addBOSToken: addBOS, addEOSToken: addEOS, bosToken: bos, eosToken: eos,
                                               unknownToken: unknown, padToken: pad, cleanUpTokenizationSpaces: false,
                                               tokenizerClass: "TokenizersBackend")
        var config = JSONText()
        config.raw("{\n  \"add_bos_token\": \(addBOS),\n  \"add_eos_token\": \(addEOS),\n  \"backend\": \"tokenizers\",\n  \"bos_token\": ")
        config.optionalString(bos)
        if let chatTemplate {
            config.raw(",\n  \"chat_template\": ")
            config.string(chatTemplate)
        }
        config.raw(",\n  \"clean_up_tokenization_spaces\": false,\n  \"eos_token\": ")
        config.optionalString(eos)
        if let contextLength { config.raw(",\n  \"model_max_length\": \(contextLength)") }
        config.raw(",\n  \"pad_token\": ")
        config.optionalString(pad)
        config.raw(",\n  \"tokenizer_class\": \"TokenizersBackend\",\n  \"unk_token\": ")
        config.optionalString(unknown)
        config.raw("\n}\n")
        tokenizerConfigJSON = config.bytes
    }

    /// Collie's tokenizer for these files.
    public func tokenizer() throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: tokenizerJSON, file: file.isEmpty ? "tokenizer.json" : "\(file) (tokenizer.json)",
                      configuration: configuration)
    }

    /// Writes tokenizer.json, tokenizer_config.json and, when there is a chat template, chat_template.jinja (as
    /// transformers 5 saves it) into `folder`, each atomically.
    public func write(to folder: URL) throws {
        try AtomicFile.write(Data(tokenizerJSON), to: folder.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(Data(tokenizerConfigJSON), to: folder.appendingPathComponent("tokenizer_config.json"))
        if let chatTemplate {
            try AtomicFile.write(Data(chatTemplate.utf8), to: folder.appendingPathComponent("chat_template.jinja"))
        }
    }

    /// A TemplateProcessing post-processor with the BOS and EOS tokens it adds (transformers' update_post_processor).
    private static func writeTemplate(_ json: inout JSONText, first: (String, Int)?, last: (String, Int)?) {
        func special(_ token: String, _ typeID: Int) -> String {
            var text = JSONText()
            text.raw("{\"SpecialToken\":{\"id\":")
            text.string(token)
            text.raw(",\"type_id\":\(typeID)}}")
            return String(decoding: text.bytes, as: UTF8.self)
        }
        var single: [String] = [], pair: [String] = []
        if let first { single.append(special(first.0, 0)); pair.append(special(first.0, 0)) }
        single.append("{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}")
        pair.append("{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}")
        if let last { single.append(special(last.0, 0)); pair.append(special(last.0, 0)) }
        if let first { pair.append(special(first.0, 1)) }
        pair.append("{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}")
        if let last { pair.append(special(last.0, 1)) }
        json.raw("{\"type\":\"TemplateProcessing\",\"single\":[" + single.joined(separator: ",") + "],\"pair\":["
                 + pair.joined(separator: ",") + "],\"special_tokens\":{")
        var entries: [(String, Int)] = []
        if let first { entries.append(first) }
        if let last, last.0 != first?.0 { entries.append(last) }
        for (index, (token, id)) in entries.enumerated() {
            if index > 0 { json.raw(",") }
            json.key(token)
            json.raw("{\"id\":")
            json.string(token)
            json.raw(",\"ids\":[\(id)],\"tokens\":[")
            json.string(token)
            json.raw("]}")
        }
        json.raw("}}")
    }

    /// transformers' split patterns per `tokenizer.ggml.pre` (integrations/gguf/gguf_tokenizer_mapping.py); a name not
    /// here keeps GPT-2's byte-level split.
    static let splitPatterns: [String: String] = {
        let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"#
            + #"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen35 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let tekken = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"#
            + #"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"#
            + #"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let gpt4o = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#
            + #"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#
            + #"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        var patterns: [String: String] = [:]
        for name in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "jina-v5-nano", "dbrx", "smaug-bpe"] { patterns[name] = llama3 }
        for name in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"] { patterns[name] = qwen2 }
        for name in ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"] { patterns[name] = gpt4o }
        patterns["tekken"] = tekken
        patterns["qwen35"] = qwen35
        return patterns
    }()
}

/// The BPE vocabulary (token → id, the last id winning where a token repeats, as a Python dict does) and merges.
private struct Vocabulary {
    var tokens: [String]
    var ids: [String: Int]
    var merges: [(String, String)]

    /// The token an id has in the vocabulary (nil where a later duplicate took its spelling).
    func token(_ id: Int) -> String? {
        guard id >= 0, id < tokens.count, ids[tokens[id]] == id else { return nil }
        return tokens[id]
    }

    /// transformers' byte_level_tokenizer: tokens spelled outside the byte alphabet are respelled byte by byte.
    static func byteLevel(tokens: [String], reader: MetadataReader) throws -> Vocabulary {
        let alphabet = ByteLevelAlphabet.characters
        let spelled = tokens.map { token in
            token.unicodeScalars.allSatisfy(alphabet.contains) ? token : ByteLevelAlphabet.spell(token)
        }
        var ids: [String: Int] = [:]
        ids.reserveCapacity(spelled.count)
        for (id, token) in spelled.enumerated() { ids[token] = id }
        guard reader.value("tokenizer.ggml.merges") != nil else {
            throw reader.error("tokenizer.ggml.merges", "missing: a gpt2 tokenizer needs its merges")
        }
        return Vocabulary(tokens: spelled, ids: ids, merges: try splitMerges(reader))
    }

    /// transformers' sentencepiece_tokenizer: merges from the file, or recovered from the scores.
    static func sentencePiece(tokens: [String], reader: MetadataReader) throws -> Vocabulary {
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() { ids[token] = id }
        if reader.value("tokenizer.ggml.merges") != nil {
            return Vocabulary(tokens: tokens, ids: ids, merges: try splitMerges(reader))
        }
        guard let scores = try reader.floats("tokenizer.ggml.scores", count: tokens.count) else {
            throw reader.error("tokenizer.ggml.scores", "missing: a llama tokenizer without merges needs its scores")
        }
        return Vocabulary(tokens: tokens, ids: ids, merges: generatedMerges(tokens: tokens, ids: ids, scores: scores))
    }

    private static func splitMerges(_ reader: MetadataReader) throws -> [(String, String)] {
        let merges = try reader.strings("tokenizer.ggml.merges")
        return try merges.enumerated().map { index, merge in
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw reader.error("tokenizer.ggml.merges", "merge \(index) is not two tokens separated by one space")
            }
            return (String(parts[0]), String(parts[1]))
        }
    }

    /// transformers' generate_merges(vocab, scores): every split of a token into two vocabulary tokens, ordered by the
    /// token's score (highest first), then by the pieces' lengths (longest first), ties kept in vocabulary order.
    private static func generatedMerges(tokens: [String], ids: [String: Int], scores: [Double]) -> [(String, String)] {
        // vocab_scores = dict(zip(tokens, scores)): first position, last score.
        var scoreOf: [String: Double] = [:]
        var order: [String] = []
        for (token, score) in zip(tokens, scores) {
            if scoreOf.updateValue(score, forKey: token) == nil { order.append(token) }
        }
        var merges: [(left: String, right: String, score: Double, leftLength: Int, rightLength: Int)] = []
        for token in order {
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1, let score = scoreOf[token] else { continue }
            var local: [(left: String, right: String, leftID: Int, rightID: Int, split: Int)] = []
            for split in 1..<scalars.count {
                var left = String.UnicodeScalarView(), right = String.UnicodeScalarView()
                left.append(contentsOf: scalars[..<split])
                right.append(contentsOf: scalars[split...])
                let l = String(left), r = String(right)
                if let leftID = ids[l], let rightID = ids[r] { local.append((l, r, leftID, rightID, split)) }
            }
            local.sort { ($0.leftID, $0.rightID, $0.split) < ($1.leftID, $1.rightID, $1.split) }
            for entry in local {
                merges.append((entry.left, entry.right, score, entry.split, scalars.count - entry.split))
            }
        }
        let order2 = merges.indices.sorted { a, b in
            let x = merges[a], y = merges[b]
            if x.score != y.score { return x.score > y.score }
            if x.leftLength != y.leftLength { return x.leftLength > y.leftLength }
            if x.rightLength != y.rightLength { return x.rightLength > y.rightLength }
            return a < b
        }
        return order2.map { (merges[$0].left, merges[$0].right) }
    }
}

/// GPT-2's byte-to-character table (`bytes_to_unicode`): printable Latin-1 bytes are themselves, the rest 256 + n.
enum ByteLevelAlphabet {
    static let table: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next) ?? " "
                next += 1
            }
        }
        return table
    }()

    static let characters: Set<Unicode.Scalar> = Set(table)

    static func spell(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for byte in text.utf8 { scalars.append(table[Int(byte)]) }
        return String(scalars)
    }
}

/// Typed, checked reads of GGUF metadata: a value of the wrong type or an array of the wrong length is an error
/// naming the key.
struct MetadataReader {
    let file: String
    let metadata: [String: GGUFValue]

    func value(_ key: String) -> GGUFValue? { metadata[key] }

    func error(_ key: String, _ message: String) -> GGUFTokenizerError {
        GGUFTokenizerError(file: file, key: key, message)
    }

    func string(_ key: String) throws -> String? {
        guard let item = value(key) else { return nil }
        guard let text = item.string else { throw error(key, "expected a string, found a \(item.type)") }
        return text
    }

    func bool(_ key: String) throws -> Bool? {
        guard let item = value(key) else { return nil }
        guard let flag = item.bool else { throw error(key, "expected a boolean, found a \(item.type)") }
        return flag
    }

    func integer(_ key: String) throws -> Int? {
        guard let item = value(key) else { return nil }
        guard let number = item.int else { throw error(key, "expected an integer that fits, found \(item)") }
        return number
    }

    /// A token id: an integer in 0..<count.
    func tokenID(_ key: String, count: Int) throws -> Int? {
        guard let id = try integer(key) else { return nil }
        guard id >= 0, id < count else {
            throw error(key, "token id \(id) is out of range (tokenizer.ggml.tokens has \(count))")
        }
        return id
    }

    private func array(_ key: String, count: Int?) throws -> [GGUFValue]? {
        guard let item = value(key) else { return nil }
        guard let items = item.array else { throw error(key, "expected an array, found a \(item.type)") }
        if let count, items.count != count {
            throw error(key, "has \(items.count) entries but tokenizer.ggml.tokens has \(count)")
        }
        return items
    }

    func strings(_ key: String) throws -> [String] {
        try (array(key, count: nil) ?? []).enumerated().map { index, item in
            guard let text = item.string else { throw error(key, "entry \(index) is a \(item.type), not a string") }
            return text
        }
    }

    func integers(_ key: String, count: Int) throws -> [Int] {
        try (array(key, count: count) ?? []).enumerated().map { index, item in
            guard let number = item.int else { throw error(key, "entry \(index) is not an integer that fits") }
            return number
        }
    }

    func floats(_ key: String, count: Int) throws -> [Double]? {
        try array(key, count: count)?.enumerated().map { index, item in
            guard let number = item.double, number.isFinite || number.isInfinite else {
                throw error(key, "entry \(index) is not a number")
            }
            return number
        }
    }
}
