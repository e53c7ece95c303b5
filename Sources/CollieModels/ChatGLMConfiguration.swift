import Foundation

/// ChatGLM2/ChatGLM3's block settings that no other family has (`configuration_chatglm.py`).
public struct ChatGLMSettings: Codable, Sendable, Equatable {
    /// `multi_query_attention`: q, k and v packed as [all q; all k; all v] with `multi_query_group_num` key/value
    /// heads; false packs [q_h, k_h, v_h] per head, every head its own keys.
    public var multiQueryAttention: Bool
    /// `apply_residual_connection_post_layernorm`: the residual branches start from the normalized input.
    public var residualFromNormalized: Bool
    /// `post_layer_norm`: a final norm (`transformer.encoder.final_layernorm`) before the output layer.
    public var finalNorm: Bool
    /// `rmsnorm`: RMSNorm; false is LayerNorm (weight and bias).
    public var rmsNorm: Bool
    /// `original_rope`, kept to be written back (the remote code's rotary ignores it).
    public var originalRope: Bool

    public init(multiQueryAttention: Bool = true, residualFromNormalized: Bool = false, finalNorm: Bool = true,
                rmsNorm: Bool = true, originalRope: Bool = true) {
        self.multiQueryAttention = multiQueryAttention
        self.residualFromNormalized = residualFromNormalized
        self.finalNorm = finalNorm
        self.rmsNorm = rmsNorm
        self.originalRope = originalRope
    }
}

/// config.json in ChatGLM2/ChatGLM3's field names (`model_type: chatglm`), read into and written from
/// `LlamaConfiguration`: `num_layers`, `padded_vocab_size`, `ffn_hidden_size`, `kv_channels` (the head width),
/// `multi_query_attention` + `multi_query_group_num` (key/value heads), `add_qkv_bias`, `add_bias_linear`,
/// `layernorm_epsilon`, `rmsnorm`, `apply_residual_connection_post_layernorm`, `post_layer_norm`, `rope_ratio`
/// (ChatGLM3-32k: RoPE base 10000·rope_ratio), `seq_length`; `quantization_bit` (the remote code's quantize-at-load
/// on CUDA) is ignored, the weights are read as stored. RoPE rotates the first kv_channels/2 dimensions of each
/// head in interleaved pairs. ChatGLM v1 (GLM-6B) has the same `model_type` and its own fields: a config with
/// `position_encoding_2d` or without `padded_vocab_size` is read as one (`ChatGLM6BConfiguration.swift`).
enum ChatGLMKeys: String, CodingKey {
    case modelType = "model_type", architectures
    case numLayers = "num_layers", paddedVocabSize = "padded_vocab_size", vocabSize = "vocab_size"
    case hiddenSize = "hidden_size", ffnHiddenSize = "ffn_hidden_size", kvChannels = "kv_channels"
    case numAttentionHeads = "num_attention_heads", seqLength = "seq_length"
    case layernormEpsilon = "layernorm_epsilon", ropeRatio = "rope_ratio", rmsnorm
    case applyResidualConnectionPostLayernorm = "apply_residual_connection_post_layernorm"
    case postLayerNorm = "post_layer_norm", addBiasLinear = "add_bias_linear", addQKVBias = "add_qkv_bias"
    case multiQueryAttention = "multi_query_attention", multiQueryGroupNum = "multi_query_group_num"
    case originalRope = "original_rope", tieWordEmbeddings = "tie_word_embeddings"
    case initializerRange = "initializer_range"
    case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", padTokenID = "pad_token_id"
    case torchDType = "torch_dtype", preSeqLen = "pre_seq_len", positionEncoding2D = "position_encoding_2d"
    case quantizationBit = "quantization_bit"
}

extension LlamaConfiguration {
    /// Decodes ChatGLM2/3's config.json; a bad or missing field is an error naming it.
    init(chatGLMFrom decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ChatGLMKeys.self)
        func required(_ key: ChatGLMKeys) throws -> Int {
            guard let value = try c.decodeIfPresent(Int.self, forKey: key) else {
                throw ModelConfigurationError("missing key '\(key.rawValue)' (ChatGLM2/3 config)")
            }
            guard value >= 1, value <= Self.dimensionLimit else {
                throw ModelConfigurationError("\(key.rawValue) must be in 1...\(Self.dimensionLimit), got \(value)")
            }
            return value
        }
        if c.contains(.positionEncoding2D) || !c.contains(.paddedVocabSize) {
            self = try Self(chatGLM6BFrom: decoder)
            return
        }
        if let prefix = try c.decodeIfPresent(Int.self, forKey: .preSeqLen) {
            throw ModelConfigurationError("pre_seq_len (\(prefix)): P-tuning v2 prefixes are not supported; set it to null")
        }
        let hidden = try required(.hiddenSize), heads = try required(.numAttentionHeads)
        let multiQuery = try c.decodeIfPresent(Bool.self, forKey: .multiQueryAttention) ?? false
        let groups = multiQuery ? try required(.multiQueryGroupNum) : heads
        guard heads % groups == 0 else {
            throw ModelConfigurationError("num_attention_heads (\(heads)) must be a multiple of multi_query_group_num (\(groups))")
        }
        let headDimension = try c.decodeIfPresent(Int.self, forKey: .kvChannels) ?? hidden / heads
        guard headDimension >= 4, headDimension % 4 == 0, headDimension <= Self.dimensionLimit else {
            throw ModelConfigurationError("kv_channels must be a positive multiple of 4 (ChatGLM rotates half of each head "
                                          + "in pairs), got \(headDimension)")
        }
        let ropeRatio = try c.decodeIfPresent(Double.self, forKey: .ropeRatio) ?? 1
        guard ropeRatio.isFinite, ropeRatio > 0 else {
            throw ModelConfigurationError("rope_ratio must be a finite number > 0, got \(ropeRatio)")
        }
        let epsilon = try c.decodeIfPresent(Double.self, forKey: .layernormEpsilon) ?? 1e-5
        guard epsilon.isFinite, epsilon >= 0 else {
            throw ModelConfigurationError("layernorm_epsilon must be a finite number >= 0, got \(epsilon)")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) == true {
            throw ModelConfigurationError("tie_word_embeddings = true is not supported for chatglm (output_layer is its own weight)")
        }
        self.init(modelType: .chatglm, hiddenSize: hidden, intermediateSize: try required(.ffnHiddenSize),
                  hiddenLayers: try required(.numLayers), attentionHeads: heads, keyValueHeads: groups,
                  headDimension: headDimension,
                  rmsNormEpsilon: epsilon,
                  ropeTheta: 10_000 * ropeRatio, vocabularySize: try required(.paddedVocabSize),
                  maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .seqLength) ?? 2048,
                  tieWordEmbeddings: false,
                  initializerRange: try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? 0.02,
                  attentionBias: try c.decodeIfPresent(Bool.self, forKey: .addQKVBias) ?? false,
                  mlpBias: try c.decodeIfPresent(Bool.self, forKey: .addBiasLinear) ?? false,
                  bosTokenID: try c.decodeIfPresent(Int.self, forKey: .bosTokenID),
                  eosTokenIDs: try c.decodeTokenIDs(forKey: .eosTokenID),
                  padTokenID: try c.decodeIfPresent(Int.self, forKey: .padTokenID))
        rotaryDimension = headDimension / 2
        chatGLM = ChatGLMSettings(
            multiQueryAttention: multiQuery,
            residualFromNormalized: try c.decodeIfPresent(Bool.self, forKey: .applyResidualConnectionPostLayernorm) ?? false,
            finalNorm: try c.decodeIfPresent(Bool.self, forKey: .postLayerNorm) ?? true,
            rmsNorm: try c.decodeIfPresent(Bool.self, forKey: .rmsnorm) ?? true,
            originalRope: try c.decodeIfPresent(Bool.self, forKey: .originalRope) ?? true)
        torchDType = try c.decodeIfPresent(String.self, forKey: .torchDType)
        if maxPositionEmbeddings < 1 || maxPositionEmbeddings > Self.dimensionLimit {
            throw ModelConfigurationError("seq_length must be in 1...\(Self.dimensionLimit), got \(maxPositionEmbeddings)")
        }
        try validate()
    }

    /// Writes config.json in ChatGLM2/3's field names (`RemoteCode` adds the source's `auto_map`).
    func encodeChatGLM(to encoder: Encoder) throws {
        if chatGLM6B != nil { return try encodeChatGLM6B(to: encoder) }
        var c = encoder.container(keyedBy: ChatGLMKeys.self)
        let settings = chatGLM ?? ChatGLMSettings()
        try c.encode(modelType, forKey: .modelType)
        try c.encode([modelType.architecture], forKey: .architectures)
        try c.encode(hiddenLayers, forKey: .numLayers)
        try c.encode(vocabularySize, forKey: .paddedVocabSize)
        try c.encode(vocabularySize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .ffnHiddenSize)
        try c.encode(resolvedHeadDimension, forKey: .kvChannels)
        try c.encode(attentionHeads, forKey: .numAttentionHeads)
        try c.encode(maxPositionEmbeddings, forKey: .seqLength)
        try c.encode(rmsNormEpsilon, forKey: .layernormEpsilon)
        try c.encode(ropeTheta / 10_000, forKey: .ropeRatio)
        try c.encode(settings.rmsNorm, forKey: .rmsnorm)
        try c.encode(settings.residualFromNormalized, forKey: .applyResidualConnectionPostLayernorm)
        try c.encode(settings.finalNorm, forKey: .postLayerNorm)
        try c.encode(mlpBias, forKey: .addBiasLinear)
        try c.encode(attentionBias, forKey: .addQKVBias)
        try c.encode(settings.multiQueryAttention, forKey: .multiQueryAttention)
        try c.encode(keyValueHeads, forKey: .multiQueryGroupNum)
        try c.encode(settings.originalRope, forKey: .originalRope)
        try c.encode(false, forKey: .tieWordEmbeddings)
        // The weights are written dense; some copies of the remote code's config class default quantization_bit to 4
        // (quantize at load, CUDA only), so it is written out as 0.
        try c.encode(0, forKey: .quantizationBit)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeTokenIDs(eosTokenIDs, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
        try c.encodeIfPresent(torchDType, forKey: .torchDType)
    }
}
