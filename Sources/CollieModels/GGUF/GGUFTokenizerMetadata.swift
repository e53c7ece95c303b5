import Foundation
import CollieIO
import CollieTokenizers

/// The tokenizer metadata of a GGUF export, as llama.cpp's convert_hf_to_gguf.py writes it for a model folder, so
/// llama.cpp tokenizes like the folder's tokenizer.
///
/// The vocabulary follows convert_hf_to_gguf's choice for LLaMA-family models: a tokenizer.model is written as
/// `_set_vocab_sentencepiece` does (model `llama`, pieces, scores, types); a tokenizer.json with a byte-fallback BPE
/// model as `_set_vocab_llama_hf` does (model `llama`); any other tokenizer.json as `_set_vocab_gpt2` does (model
/// `gpt2`, tokens, types, merges). Special-token ids, add_bos/add_eos and the chat template follow gguf's
/// `SpecialVocab` (tokenizer.json, tokenizer_config.json, config.json, chat_template.jinja).
///
/// `tokenizer.ggml.pre` is not found from a hash of a test text's ids as convert_hf_to_gguf does (that hash also
/// depends on the vocabulary): it is matched from the tokenizer.json pre-tokenizer: GPT-2's byte-level regex →
/// `gpt-2`, Llama 3's split → `llama-bpe`, Qwen2's split → `qwen2`, single digits then byte-level → `smollm`.
public enum GGUFTokenizerMetadata {
    /// GGUF token types (`gguf.TokenType`).
    enum TokenType: Int32 {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// How convert_hf_to_gguf writes a family's tokenizer: as for LLaMA-family folders, as InternLM2Model does, or as
    /// ChatGLMModel does for ChatGLM3 (also written for ChatGLM2, whose tokenizer differs only by the role tokens).
    public enum Family: Sendable {
        case llama, internLM2, chatGLM

        /// The family whose converter writes the tokenizer of a model of `modelType`.
        public init(_ modelType: ModelType) {
            self = modelType == .internlm2 ? .internLM2 : modelType == .chatglm ? .chatGLM : .llama
        }
    }

    /// The `tokenizer.*` keys and values for a model folder's tokenizer, in convert_hf_to_gguf's order, as the
    /// converter of `family` writes them.
    public static func metadata(for folder: URL, family: Family = .llama) throws -> [(key: String, value: GGUFValue)] {
        let files = try FolderFiles(folder: folder)
        var entries: [(key: String, value: GGUFValue)] = []
        var special = SpecialVocabulary(files: files)
        if family == .chatGLM {
            try chatGLM(files: files, into: &entries, special: &special)
            special.loadConfig()
            entries.append(contentsOf: special.entries)
            return entries
        }
        if family == .internLM2 {
            guard let model = files.sentencePieceModel else {
                throw GGUFTokenizerError(file: folder.path, key: "tokenizer.model", "an InternLM2 folder needs its tokenizer.model")
            }
            let chatEOS = try internLM2Vocabulary(model, files: files, into: &entries, special: &special)
            special.loadConfig()
            if let chatEOS { special.replaceID("eos", with: chatEOS) }
            entries.append(contentsOf: special.entries)
            return entries
        }
        if let model = files.sentencePieceModel {
            try sentencePiece(model, files: files, into: &entries, special: &special)
        } else if let json = files.tokenizerJSON, files.isLlamaHF(json) {
            try llamaHF(files: files, into: &entries, special: &special)
        } else {
            try gpt2(files: files, into: &entries, special: &special)
        }
        special.loadConfig()
        entries.append(contentsOf: special.entries)
        return entries
    }

    // MARK: - The vocabularies

    /// `_set_vocab_sentencepiece`: every piece with its score and type; `[PAD n]` up to config.json's vocab_size.
    private static func sentencePiece(_ data: Data, files: FolderFiles, into entries: inout [(key: String, value: GGUFValue)],
                                      special: inout SpecialVocabulary) throws {
        let pieces = try SentencePiecePiece.pieces(ofModel: data, file: files.path("tokenizer.model"))
        let size = files.configInteger("vocab_size") ?? pieces.count
        var tokens = (0..<size).map { "[PAD\($0)]" }
        var scores = [Float](repeating: -10000, count: size)
        var types = [Int32](repeating: TokenType.unused.rawValue, count: size)
        for (id, piece) in pieces.enumerated() where id < size {
            tokens[id] = piece.text
            scores[id] = piece.score
            types[id] = Self.type(of: piece)
        }
        for (id, token) in files.addedTokensJSON where id >= 0 && id < size {
            tokens[id] = token
            scores[id] = -1000
            types[id] = TokenType.userDefined.rawValue
        }
        for added in files.addedTokensDecoder where added.id >= 0 && added.id < size {
            var token = added.content
            if added.special || looksSpecial(token) {
                types[added.id] = TokenType.control.rawValue
            } else {
                token = token.replacingOccurrences(of: "\u{2581}", with: " ")
                types[added.id] = TokenType.userDefined.rawValue
            }
            scores[added.id] = -1000
            tokens[added.id] = token
        }
        special.vocabularySize = tokens.count
        appendSentencePieceVocabulary(to: &entries, pre: "default", tokens: tokens, scores: scores, types: types)
    }

    /// InternLM2Model.set_vocab: the pieces of tokenizer.model up to config.json's vocab_size (a `\0` piece written
    /// as 🐉, `[UNUSED…` pieces unused), added_tokens.json's appended, tokenizer_config.json's and tokenizer.json's
    /// added tokens in place (control when special), and `add_space_prefix` from the normalizer. Returns the id of
    /// `<|im_end|>` when one is added: a chat model's EOS.
    private static func internLM2Vocabulary(_ data: Data, files: FolderFiles, into entries: inout [(key: String, value: GGUFValue)],
                                  special: inout SpecialVocabulary) throws -> Int? {
        let file = files.path("tokenizer.model")
        let pieces = try SentencePiecePiece.pieces(ofModel: data, file: file)
        let size = files.configInteger("vocab_size") ?? pieces.count
        guard size <= pieces.count else {
            throw GGUFTokenizerError(file: files.path("config.json"), key: "vocab_size",
                                     "\(size) is more than tokenizer.model's \(pieces.count) pieces")
        }
        var tokens = pieces.prefix(size).map { $0.text == "\u{0}" ? "🐉" : $0.text }
        var scores = pieces.prefix(size).map(\.score)
        var types: [Int32] = pieces.prefix(size).map { $0.text.hasPrefix("[UNUSED") ? TokenType.unused.rawValue : Self.type(of: $0) }
        for (_, token) in files.addedTokensJSON {
            tokens.append(token)
            scores.append(-1000)
            types.append(TokenType.userDefined.rawValue)
        }
        var chatEOS: Int?
        let added = files.addedTokensDecoder
            + ((files.tokenizerJSON?["added_tokens"] as? [[String: Any]]) ?? []).compactMap { entry in
                guard let id = entry["id"] as? Int, let content = entry["content"] as? String else { return nil }
                return (id, content, entry["special"] as? Bool ?? false)
            }
        for token in added where token.id >= 0 && token.id < tokens.count {
            if token.content == "<|im_end|>" { chatEOS = token.id }
            tokens[token.id] = token.content
            scores[token.id] = -1000
            types[token.id] = token.special ? TokenType.control.rawValue : TokenType.userDefined.rawValue
        }
        special.vocabularySize = tokens.count
        appendSentencePieceVocabulary(to: &entries, pre: "default", tokens: tokens, scores: scores, types: types)
        entries.append(("tokenizer.ggml.add_space_prefix", .bool(try SentencePiecePiece.addsDummyPrefix(model: data, file: file))))
        return chatEOS
    }

    /// ChatGLMModel.set_vocab_chatglm3: for each id up to config.json's padded_vocab_size the wrapper's token (its
    /// special tokens' text, "" for `<s>`, `</s>`, `<unk>` and ids past them, then ids 0, 1, 2 named `<unk>`, `<bos>`,
    /// `<eos>`), the piece's score, its type (the special tokens control, empty ones `[PAD n]` unused); model `llama`,
    /// pre-tokenizer `chatglm-spm`.
    private static func chatGLM(files: FolderFiles, into entries: inout [(key: String, value: GGUFValue)],
                                special: inout SpecialVocabulary) throws {
        let tokenizer = try files.tokenizer()
        guard [.chatGLM2, .chatGLM3].contains(tokenizer.format), let model = files.sentencePieceModel else {
            throw GGUFTokenizerError(file: files.folder.path, key: "tokenizer.model",
                                     "a ChatGLM2/3 GGUF export needs the folder's ChatGLM tokenizer.model")
        }
        let pieces = try SentencePiecePiece.pieces(ofModel: model, file: files.path("tokenizer.model"))
        let size = files.configInteger("padded_vocab_size") ?? tokenizer.vocabularySize
        guard tokenizer.vocabularySize <= size else {
            throw GGUFTokenizerError(file: files.path("config.json"), key: "padded_vocab_size",
                                     "\(size) is less than the tokenizer's \(tokenizer.vocabularySize) ids")
        }
        let empty = Set([tokenizer.bosTokenID, tokenizer.eosTokenID, tokenizer.unknownTokenID].compactMap { $0 })
        var tokens: [String] = [], scores: [Float] = [], types: [Int32] = []
        for id in 0..<size {
            var piece = id < pieces.count ? (empty.contains(id) ? "" : pieces[id].text) : (tokenizer.token(forID: id) ?? "")
            if id < 3 { piece = ["<unk>", "<bos>", "<eos>"][id] }
            if id >= pieces.count {
                tokens.append(piece.isEmpty ? "[PAD\(id)]" : piece)
                scores.append(0)
                types.append(piece.isEmpty ? TokenType.unused.rawValue : TokenType.control.rawValue)
                continue
            }
            tokens.append(piece)
            scores.append(piece.isEmpty ? 0 : pieces[id].score)
            types.append(Self.type(of: pieces[id]))
        }
        special.vocabularySize = tokens.count
        appendSentencePieceVocabulary(to: &entries, pre: "chatglm-spm", tokens: tokens, scores: scores, types: types)
    }

    /// The keys of a `llama` (SentencePiece-style) vocabulary: model, pre-tokenizer, tokens, scores and types.
    private static func appendSentencePieceVocabulary(to entries: inout [(key: String, value: GGUFValue)], pre: String,
                                                      tokens: [String], scores: [Float], types: [Int32]) {
        entries.append(("tokenizer.ggml.model", .string("llama")))
        entries.append(("tokenizer.ggml.pre", .string(pre)))
        entries.append(("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })))
        entries.append(("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) })))
        entries.append(("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })))
    }

    /// A piece's type as `_create_vocab_sentencepiece` asks SentencePiece for it: unknown, control, unused or byte, and
    /// normal otherwise (a user-defined piece too).
    private static func type(of piece: SentencePiecePiece) -> Int32 {
        piece.kind == .userDefined ? TokenType.normal.rawValue : Int32(piece.kind.rawValue)
    }

    /// `_set_vocab_llama_hf` (LlamaHfVocab): the tokenizer.json vocabulary, scores -1000, byte and control types.
    private static func llamaHF(files: FolderFiles, into entries: inout [(key: String, value: GGUFValue)],
                                special: inout SpecialVocabulary) throws {
        let tokenizer = try files.tokenizer()
        let specialIDs = Set(tokenizer.addedTokens.filter(\.special).map(\.id)
                             + [tokenizer.bosTokenID, tokenizer.eosTokenID, tokenizer.unknownTokenID, tokenizer.padTokenID]
                                .compactMap { $0 })
        var tokens: [String] = [], types: [Int32] = []
        for id in 0..<tokenizer.vocabularySize {
            guard let token = tokenizer.token(forID: id) else {
                throw GGUFTokenizerError(file: files.folder.path, key: "tokenizer.json", "token id \(id) has no token")
            }
            tokens.append(token)
            if isByteToken(token) {
                types.append(TokenType.byte.rawValue)
            } else if specialIDs.contains(id) {
                types.append(TokenType.control.rawValue)
            } else if tokenizer.addedTokens.contains(where: { $0.id == id }) {
                types.append(TokenType.userDefined.rawValue)
            } else {
                types.append(TokenType.normal.rawValue)
            }
        }
        special.vocabularySize = tokens.count
        appendSentencePieceVocabulary(to: &entries, pre: "default", tokens: tokens, scores: tokens.map { _ in -1000 }, types: types)
    }

    /// `_set_vocab_gpt2` (get_vocab_base): tokens by id (`[PAD n]` for holes), added tokens as control or
    /// user-defined, the merges of tokenizer.json.
    private static func gpt2(files: FolderFiles, into entries: inout [(key: String, value: GGUFValue)],
                             special: inout SpecialVocabulary) throws {
        guard let json = files.tokenizerJSON else {
            throw GGUFTokenizerError(file: files.folder.path, key: "tokenizer.json",
                                     "the folder has neither tokenizer.json nor tokenizer.model")
        }
        let tokenizer = try files.tokenizer()
        let size = files.configInteger("vocab_size") ?? tokenizer.vocabularySize
        let added = Dictionary(tokenizer.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var tokens: [String] = [], types: [Int32] = []
        for id in 0..<size {
            guard var token = tokenizer.token(forID: id) else {
                tokens.append("[PAD\(id)]")
                types.append(TokenType.unused.rawValue)
                continue
            }
            if let addedToken = added[id] {
                if addedToken.special || looksSpecial(token) {
                    types.append(TokenType.control.rawValue)
                } else {
                    token = token.replacingOccurrences(of: "\u{2581}", with: " ")
                    types.append(TokenType.userDefined.rawValue)
                }
            } else {
                types.append(TokenType.normal.rawValue)
            }
            tokens.append(token)
        }
        entries.append(("tokenizer.ggml.model", .string("gpt2")))
        entries.append(("tokenizer.ggml.pre", .string(try preTokenizerName(json, file: files.path("tokenizer.json")))))
        entries.append(("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })))
        entries.append(("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })))
        let merges = try files.merges(json)
        if !merges.isEmpty { entries.append(("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))) }
    }

    // MARK: - Helpers

    /// convert_hf_to_gguf's does_token_look_special.
    static func looksSpecial(_ token: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(token)
            || (token.hasPrefix("<|") && token.hasSuffix("|>"))
            || (token.hasPrefix("<\u{FF5C}") && token.hasSuffix("\u{FF5C}>"))
            || (token.hasPrefix("<unused") && token.hasSuffix(">"))
    }

    /// `<0xAB>`: a byte-fallback token.
    static func isByteToken(_ token: String) -> Bool {
        let bytes = Array(token.utf8)
        guard bytes.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return false }
        return bytes[3...4].allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }
    }

    /// llama.cpp's name for a tokenizer.json pre-tokenizer (see the type's documentation).
    static func preTokenizerName(_ json: [String: Any], file: String) throws -> String {
        let pre = json["pre_tokenizer"] as? [String: Any]
        let steps = (pre?["type"] as? String) == "Sequence" ? (pre?["pretokenizers"] as? [[String: Any]] ?? []) : pre.map { [$0] } ?? []
        let kinds = steps.map { $0["type"] as? String ?? "" }
        func usesRegex(_ step: [String: Any]) -> Bool { step["use_regex"] as? Bool ?? true }
        if kinds == ["ByteLevel"], usesRegex(steps[0]) { return "gpt-2" }
        if kinds == ["Digits", "ByteLevel"], steps[0]["individual_digits"] as? Bool == true, usesRegex(steps[1]) {
            return "smollm"
        }
        if kinds.count == 2, kinds[0] == "Split", kinds[1] == "ByteLevel", !usesRegex(steps[1]),
           let pattern = (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String {
            let known: [(String, String)] = [
                ("llama-bpe", GGUFTokenizerFiles.splitPatterns["llama-bpe"] ?? ""),
                ("qwen2", GGUFTokenizerFiles.splitPatterns["qwen2"] ?? ""),
            ]
            if let name = known.first(where: { $0.1 == pattern })?.0 { return name }
        }
        throw GGUFTokenizerError(file: file, key: "pre_tokenizer",
                                 "llama.cpp has no pre-tokenizer known to match this one (known: GPT-2's byte-level regex, "
                                 + "Llama 3's and Qwen2's splits, SmolLM's digits)")
    }
}
