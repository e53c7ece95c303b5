import Foundation

/// The settings `transformers` keeps beside a tokenizer: tokenizer_config.json and special_tokens_map.json.
///
/// Only what changes ids or text is read: whether to add BOS/EOS, the special tokens' names, and the decode
/// clean-up. Every field is optional; absent means "as the tokenizer file says".
public struct TokenizerConfiguration: Equatable, Sendable {
    /// Put the BOS token first when encoding with special tokens (`add_bos_token`).
    public var addBOSToken: Bool?
    /// Put the EOS token last when encoding with special tokens (`add_eos_token`).
    public var addEOSToken: Bool?
    public var bosToken: String?
    public var eosToken: String?
    public var unknownToken: String?
    public var padToken: String?
    /// The mask token (`mask_token`; ChatGLM-6B's `[MASK]`).
    public var maskToken: String?
    /// ChatGLM-6B's id offset (`num_image_tokens`): its text ids start there.
    public var numberOfImageTokens: Int?
    /// Remove spaces before punctuation when decoding, as `transformers` does (`clean_up_tokenization_spaces`).
    public var cleanUpTokenizationSpaces: Bool?
    /// `tokenizer_class`, for information.
    public var tokenizerClass: String?
    /// Whether a byte-level tokenizer read from vocab.json + merges.txt puts a space before the text
    /// (`add_prefix_space`; a tokenizer.json says it in its pre-tokenizer instead).
    public var addPrefixSpace: Bool?
    /// `name_or_path`, where the tokenizer was saved from (it tells a ChatGLM3 folder from a ChatGLM2 one).
    public var nameOrPath: String?
    /// ChatGLM3's `encode_special_tokens`: role-token text in the input becomes the role's id.
    public var encodeSpecialTokens: Bool?

    public init(addBOSToken: Bool? = nil, addEOSToken: Bool? = nil, bosToken: String? = nil, eosToken: String? = nil,
                unknownToken: String? = nil, padToken: String? = nil, maskToken: String? = nil,
                numberOfImageTokens: Int? = nil, cleanUpTokenizationSpaces: Bool? = nil, tokenizerClass: String? = nil) {
        self.addBOSToken = addBOSToken
        self.addEOSToken = addEOSToken
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.unknownToken = unknownToken
        self.padToken = padToken
        self.maskToken = maskToken
        self.numberOfImageTokens = numberOfImageTokens
        self.cleanUpTokenizationSpaces = cleanUpTokenizationSpaces
        self.tokenizerClass = tokenizerClass
    }

    /// Reads tokenizer_config.json and special_tokens_map.json from `folder`, where present. The config's
    /// values win over the map's.
    public init(folder: URL) throws {
        self.init()
        let map = folder.appendingPathComponent("special_tokens_map.json")
        if FileManager.default.fileExists(atPath: map.path) { try read(map) }
        let config = folder.appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: config.path) { try read(config) }
    }

    private mutating func read(_ url: URL) throws {
        let bytes = try Tokenizer.readFile(url)
        try JSONReader.readTokenizerFile(bytes, file: url.path) { json in
            guard json.peekKind() == .object else { throw json.error("expected a JSON object") }
            try json.forEachMember { json, key in
                switch key {
                case "add_bos_token": addBOSToken = json.readNull() ? nil : try json.readBool()
                case "add_eos_token": addEOSToken = json.readNull() ? nil : try json.readBool()
                case "bos_token": bosToken = try TokenizerConfiguration.readToken(&json) ?? bosToken
                case "eos_token": eosToken = try TokenizerConfiguration.readToken(&json) ?? eosToken
                case "unk_token": unknownToken = try TokenizerConfiguration.readToken(&json) ?? unknownToken
                case "pad_token": padToken = try TokenizerConfiguration.readToken(&json) ?? padToken
                case "mask_token": maskToken = try TokenizerConfiguration.readToken(&json) ?? maskToken
                case "num_image_tokens":
                    let value = try json.readInt()
                    guard (0...(1 << 30)).contains(value) else { throw json.error("num_image_tokens must be 0…2^30") }
                    numberOfImageTokens = value
                case "clean_up_tokenization_spaces":
                    cleanUpTokenizationSpaces = json.readNull() ? nil : try json.readBool()
                case "tokenizer_class": tokenizerClass = json.readNull() ? nil : try json.readString()
                case "add_prefix_space": addPrefixSpace = json.readNull() ? nil : try json.readBool()
                case "name_or_path": nameOrPath = json.readNull() ? nil : try json.readString()
                case "encode_special_tokens": encodeSpecialTokens = json.readNull() ? nil : try json.readBool()
                default: try json.skipValue()
                }
            }
        }
    }

    /// A special token is `"<s>"`, `null`, or an object with `"content"`.
    private static func readToken(_ json: inout JSONReader) throws -> String? {
        switch json.peekKind() {
        case .null: _ = json.readNull(); return nil
        case .string: return try json.readString()
        case .object:
            var content: String?
            try json.forEachMember { json, key in
                if key == "content" { content = try json.readString() } else { try json.skipValue() }
            }
            return content
        default:
            throw json.error("expected a token string or an object with \"content\"")
        }
    }
}

extension String {
    /// `transformers`' `clean_up_tokenization`: no space before `. ? ! ,` and English contractions.
    func cleanedUpTokenizationSpaces() -> String {
        var text = self
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            text = text.replacingLiteral(from, with: to)
        }
        return text
    }
}
