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
        let reader = GGUFMetadataReader(file: file, metadata: metadata)
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

        let vocabulary: GGUFVocabulary
        switch model {
        case .gpt2: vocabulary = try GGUFVocabulary.byteLevel(tokens: tokens, reader: reader)
        case .llama: vocabulary = try GGUFVocabulary.sentencePiece(tokens: tokens, reader: reader)
        }

        // Added tokens: the builder class's own special tokens, the control tokens, the named special tokens (all
        // special), and the user-defined ones (not special), each once, in id order.
        var added: [Int: Bool] = [:]
        let defaults = model == .gpt2 ? ["<|endoftext|>"] : ["<unk>", "<s>", "</s>"]
        for token in defaults + [bos, eos, unknown, pad].compactMap({ $0 }) {
            if let id = vocabulary.id(token) { added[id] = true }
        }
        let alphabet = ByteLevelAlphabet.characters
        for (index, type) in types.enumerated() where type == 3 {
            let token = tokens[index]
            // In a byte-level vocabulary a control token spelled outside the byte alphabet is a mislabel.
            if model == .gpt2, !token.unicodeScalars.allSatisfy(alphabet.contains) { continue }
            if let id = vocabulary.id(token) { added[id] = true }
        }
        for (index, type) in types.enumerated() where type == 4 {
            if let id = vocabulary.id(tokens[index]), added[id] == nil { added[id] = false }
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
        GGUFTokenizerFiles.writeTemplate(&json, first: addBOS ? bos.flatMap { b in vocabulary.id(b).map { (b, $0) } } : nil,
                                         last: addEOS ? eos.flatMap { e in vocabulary.id(e).map { (e, $0) } } : nil)
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

    /// The files a saved model carries: tokenizer.json, tokenizer_config.json and, when there is a chat template,
    /// chat_template.jinja (as transformers 5 saves it).
    public var files: TokenizerFiles {
        var contents = ["tokenizer.json": Data(tokenizerJSON), "tokenizer_config.json": Data(tokenizerConfigJSON)]
        if let chatTemplate { contents["chat_template.jinja"] = Data(chatTemplate.utf8) }
        return .contents(contents)
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
