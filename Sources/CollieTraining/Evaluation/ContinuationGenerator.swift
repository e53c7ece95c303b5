import CollieEngine
import CollieModels

/// How generation-based evaluators generate (`generation:` in an evaluator's config).
public struct GenerationSettings: Codable, Equatable, Sendable {
    /// At most this many new tokens per prompt.
    public var maxNewTokens: Int
    /// Token ids that end generation; nil uses the model's EOS ids.
    public var stopTokenIDs: [Int]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxNewTokens = "max_new_tokens", stopTokenIDs = "eos_token_id"
    }

    public init(maxNewTokens: Int = 32, stopTokenIDs: [Int]? = nil) {
        self.maxNewTokens = maxNewTokens
        self.stopTokenIDs = stopTokenIDs
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(maxNewTokens: try c.value(.maxNewTokens, default: 32),
                  stopTokenIDs: try c.decodeIfPresent([Int].self, forKey: .stopTokenIDs))
    }
}

/// Produces the continuation of a prompt (token ids in, new token ids out, a stop token included when reached).
/// Evaluators take one so that any decoding strategy can be plugged in; `greedy` is the default.
public typealias ContinuationGenerator = (_ model: LlamaForCausalLM, _ prompt: [Int], _ settings: GenerationSettings) throws -> [Int]

/// Greedy decoding with the KV cache (`LlamaForCausalLM.greedyContinuation`).
public let greedyGenerator: ContinuationGenerator = { model, prompt, settings in
    model.greedyContinuation(of: prompt, maxNewTokens: settings.maxNewTokens,
                             stopTokens: settings.stopTokenIDs.map(Set.init))
}
