import Foundation

/// ChatGLM-6B's special tokens (`configuration_chatglm.py` of THUDM/chatglm-6b), which its model reads from the
/// token ids themselves: a row's context ends before `bos_token_id` (sop), and its generated span takes the position
/// of `gmask_token_id` ([gMASK]), or of `mask_token_id` ([MASK]) when the row has no [gMASK].
public struct ChatGLM6BSettings: Codable, Sendable, Equatable {
    /// `mask_token_id` ([MASK], 130000 in chatglm-6b).
    public var maskTokenID: Int
    /// `gmask_token_id` ([gMASK], 130001 in chatglm-6b).
    public var gmaskTokenID: Int

    public init(maskTokenID: Int, gmaskTokenID: Int) {
        self.maskTokenID = maskTokenID
        self.gmaskTokenID = gmaskTokenID
    }
}

/// config.json in ChatGLM-6B's field names (`model_type: chatglm` with `position_encoding_2d`), read into and written
/// from `LlamaConfiguration`: `vocab_size`, `hidden_size`, `num_layers`, `num_attention_heads`, `inner_hidden_size`
/// (default 4·hidden), `layernorm_epsilon`, `max_sequence_length`, `position_encoding_2d` (must be true, as in every
/// published GLM-6B), and the token ids `bos_token_id` (sop), `eos_token_id`, `mask_token_id`, `gmask_token_id`,
/// `pad_token_id` (defaults: the configuration class's, 150004, 150005, 150000, 150001, 0). Every linear layer has a
/// bias; norms are LayerNorms. `quantization_bit` (the remote code's quantize-at-load on CUDA) is ignored, the weights
/// are read as stored; `pre_seq_len` (P-tuning v2) is refused.
enum ChatGLM6BKeys: String, CodingKey {
    case modelType = "model_type", architectures
    case vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_layers"
    case numAttentionHeads = "num_attention_heads", innerHiddenSize = "inner_hidden_size"
    case layernormEpsilon = "layernorm_epsilon", maxSequenceLength = "max_sequence_length"
    case positionEncoding2D = "position_encoding_2d"
    case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", maskTokenID = "mask_token_id"
    case gmaskTokenID = "gmask_token_id", padTokenID = "pad_token_id"
    case quantizationBit = "quantization_bit", preSeqLen = "pre_seq_len", tieWordEmbeddings = "tie_word_embeddings"
    case initializerRange = "initializer_range", torchDType = "torch_dtype"
}

extension LlamaConfiguration {
    /// Decodes ChatGLM-6B's config.json; a bad or missing field is an error naming it.
    init(chatGLM6BFrom decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ChatGLM6BKeys.self)
        func checked(_ value: Int, _ key: ChatGLM6BKeys) throws -> Int {
            guard value >= 1, value <= Self.dimensionLimit else {
                throw ModelConfigurationError("\(key.rawValue) must be in 1...\(Self.dimensionLimit), got \(value)")
            }
            return value
        }
        func required(_ key: ChatGLM6BKeys) throws -> Int {
            guard let value = try c.decodeIfPresent(Int.self, forKey: key) else {
                throw ModelConfigurationError("missing key '\(key.rawValue)' (ChatGLM-6B config)")
            }
            return try checked(value, key)
        }
        func tokenID(_ key: ChatGLM6BKeys, default value: Int) throws -> Int {
            let id = try c.decodeIfPresent(Int.self, forKey: key) ?? value
            guard id >= 0 else { throw ModelConfigurationError("\(key.rawValue) must be >= 0, got \(id)") }
            return id
        }
        guard try c.decodeIfPresent(Bool.self, forKey: .positionEncoding2D) ?? true else {
            throw ModelConfigurationError("position_encoding_2d = false (GLM with 1D positions) is not supported; "
                                          + "ChatGLM-6B has true")
        }
        if let prefix = try c.decodeIfPresent(Int.self, forKey: .preSeqLen) {
            throw ModelConfigurationError("pre_seq_len (\(prefix)): P-tuning v2 prefixes are not supported; set it to null")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) == true {
            throw ModelConfigurationError("tie_word_embeddings = true is not supported for ChatGLM-6B (lm_head is its own weight)")
        }
        let hidden = try required(.hiddenSize), heads = try required(.numAttentionHeads)
        guard hidden % heads == 0, (hidden / heads) % 4 == 0 else {
            throw ModelConfigurationError("hidden_size / num_attention_heads (\(hidden) / \(heads)) must be a whole multiple "
                                          + "of 4: ChatGLM-6B rotates each half of a head in pairs")
        }
        let epsilon = try c.decodeIfPresent(Double.self, forKey: .layernormEpsilon) ?? 1e-5
        guard epsilon.isFinite, epsilon >= 0 else {
            throw ModelConfigurationError("layernorm_epsilon must be a finite number >= 0, got \(epsilon)")
        }
        let inner = try c.decodeIfPresent(Int.self, forKey: .innerHiddenSize).map { try checked($0, .innerHiddenSize) }
        let length = try c.decodeIfPresent(Int.self, forKey: .maxSequenceLength).map { try checked($0, .maxSequenceLength) }
        self.init(modelType: .chatglm, hiddenSize: hidden, intermediateSize: inner ?? 4 * hidden,
                  hiddenLayers: try required(.numLayers), attentionHeads: heads, keyValueHeads: heads,
                  rmsNormEpsilon: epsilon, vocabularySize: try required(.vocabSize),
                  maxPositionEmbeddings: length ?? 2048, tieWordEmbeddings: false,
                  initializerRange: try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? 0.02,
                  attentionBias: true, mlpBias: true,
                  bosTokenID: try tokenID(.bosTokenID, default: 150_004),
                  eosTokenIDs: c.contains(.eosTokenID) ? try c.decodeTokenIDs(forKey: .eosTokenID) : [150_005],
                  padTokenID: try tokenID(.padTokenID, default: 0))
        // Each half of a head is rotated as a RoPE of its own width (RotaryEmbedding(hidden / (heads · 2))).
        rotaryDimension = hidden / heads / 2
        chatGLM6B = ChatGLM6BSettings(maskTokenID: try tokenID(.maskTokenID, default: 150_000),
                                      gmaskTokenID: try tokenID(.gmaskTokenID, default: 150_001))
        torchDType = try c.decodeIfPresent(String.self, forKey: .torchDType)
        try validate()
    }

    /// Writes config.json in ChatGLM-6B's field names (`RemoteCode` adds the source's `auto_map`).
    func encodeChatGLM6B(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ChatGLM6BKeys.self)
        let settings = chatGLM6B ?? ChatGLM6BSettings(maskTokenID: 150_000, gmaskTokenID: 150_001)
        try c.encode(modelType, forKey: .modelType)
        try c.encode([modelType.architecture], forKey: .architectures)
        try c.encode(vocabularySize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(hiddenLayers, forKey: .numLayers)
        try c.encode(attentionHeads, forKey: .numAttentionHeads)
        try c.encode(intermediateSize, forKey: .innerHiddenSize)
        try c.encode(rmsNormEpsilon, forKey: .layernormEpsilon)
        try c.encode(maxPositionEmbeddings, forKey: .maxSequenceLength)
        try c.encode(true, forKey: .positionEncoding2D)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeTokenIDs(eosTokenIDs, forKey: .eosTokenID)
        try c.encode(settings.maskTokenID, forKey: .maskTokenID)
        try c.encode(settings.gmaskTokenID, forKey: .gmaskTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
        // The weights are written dense (see encodeChatGLM).
        try c.encode(0, forKey: .quantizationBit)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encodeIfPresent(torchDType, forKey: .torchDType)
    }
}
