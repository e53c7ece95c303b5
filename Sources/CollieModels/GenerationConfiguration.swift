import CollieIO
import Foundation

/// A Hugging Face `generation_config.json`: the special token ids generation uses.
///
/// Collie writes it beside config.json when it saves a model (what transformers' `GenerationConfig
/// .from_model_config` derives) and reads its end-of-sequence ids when it loads a folder to generate.
/// Keys Collie does not use (sampling defaults, `transformers_version`, …) are ignored when reading.
public struct GenerationConfiguration: Codable, Equatable, Sendable {
    /// The file's name in a model folder.
    public static let fileName = "generation_config.json"

    public var bosTokenID: Int?
    /// `eos_token_id`, one id or a list: generation stops at any of them. Empty when the file has none.
    public var eosTokenIDs: [Int]
    public var padTokenID: Int?
    /// `_from_model_config`: transformers' mark for a file derived from the model's config.json.
    public var fromModelConfig: Bool?

    enum CodingKeys: String, CodingKey {
        case bosTokenID = "bos_token_id"
        case eosTokenID = "eos_token_id"
        case padTokenID = "pad_token_id"
        case fromModelConfig = "_from_model_config"
    }

    public init(bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], padTokenID: Int? = nil, fromModelConfig: Bool? = nil) {
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.padTokenID = padTokenID
        self.fromModelConfig = fromModelConfig
    }

    /// The generation settings of a model's config.json: its special token ids, marked as derived from it.
    public init(model configuration: LlamaConfiguration) {
        self.init(bosTokenID: configuration.bosTokenID, eosTokenIDs: configuration.eosTokenIDs,
                  padTokenID: configuration.padTokenID, fromModelConfig: true)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bosTokenID = try c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        padTokenID = try c.decodeIfPresent(Int.self, forKey: .padTokenID)
        fromModelConfig = try c.decodeIfPresent(Bool.self, forKey: .fromModelConfig)
        eosTokenIDs = try c.decodeTokenIDs(forKey: .eosTokenID)
    }

    /// Writes `eos_token_id` as transformers does: one id as a number, several as a list, none left out.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(fromModelConfig, forKey: .fromModelConfig)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeTokenIDs(eosTokenIDs, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
    }

    /// Reads `generation_config.json` in `folder`, or nil when the folder has none.
    /// - Throws: `CheckpointError` naming the file when it is not a JSON object or a key Collie reads has the
    ///   wrong type.
    public static func load(fromFolder folder: URL) throws -> GenerationConfiguration? {
        let url = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data = try InputFile.contents(of: url)
        do {
            return try JSONDecoder().decode(GenerationConfiguration.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw CheckpointError(file: url.path, key.isEmpty ? "expected a JSON object"
                                  : "key '\(key)' has the wrong type (\(context.debugDescription))")
        } catch {
            throw CheckpointError(file: url.path, "not a valid generation config (\(error))")
        }
    }
}

extension KeyedDecodingContainer {
    /// A token-id key as Hugging Face writes it (`eos_token_id`): one id, a list, null or absent (empty).
    func decodeTokenIDs(forKey key: Key) throws -> [Int] {
        if try !contains(key) || decodeNil(forKey: key) { return [] }
        if let id = try? decode(Int.self, forKey: key) { return [id] }
        return try decode([Int].self, forKey: key)
    }
}

extension KeyedEncodingContainer {
    /// Writes token ids as transformers does: one id as a number, several as a list, none left out.
    mutating func encodeTokenIDs(_ ids: [Int], forKey key: Key) throws {
        if ids.count == 1 { try encode(ids[0], forKey: key) } else if !ids.isEmpty { try encode(ids, forKey: key) }
    }
}
