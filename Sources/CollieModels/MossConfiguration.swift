import Foundation

/// config.json in MOSS's field names (`model_type: moss`, `configuration_moss.py`, CodeGen's fields), read into and
/// written from `LlamaConfiguration`: `n_embd`, `n_layer`, `n_head`, `n_inner` (default 4·n_embd), `rotary_dim` (the
/// leading dimensions of each head RoPE rotates, in interleaved pairs), `n_positions`,
/// `layer_norm_epsilon`, `activation_function` (`gelu_new`, the tanh approximation), `vocab_size`. MOSS's blocks
/// have LayerNorms with biases, biases on fc_in/fc_out and lm_head, none on qkv_proj/out_proj.
enum MossKeys: String, CodingKey {
    case modelType = "model_type", architectures
    case vocabSize = "vocab_size", nPositions = "n_positions", nCtx = "n_ctx", nEmbd = "n_embd", nLayer = "n_layer"
    case nHead = "n_head", rotaryDim = "rotary_dim", nInner = "n_inner", activationFunction = "activation_function"
    case layerNormEpsilon = "layer_norm_epsilon", initializerRange = "initializer_range"
    case tieWordEmbeddings = "tie_word_embeddings", wbits
    case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", padTokenID = "pad_token_id"
    case torchDType = "torch_dtype"
}

extension LlamaConfiguration {
    /// Decodes MOSS's config.json; a bad or missing field is an error naming it.
    init(mossFrom decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: MossKeys.self)
        func required(_ key: MossKeys) throws -> Int {
            guard let value = try c.decodeIfPresent(Int.self, forKey: key) else {
                throw ModelConfigurationError("missing key '\(key.rawValue)' (MOSS config)")
            }
            return try checked(value, key)
        }
        func checked(_ value: Int, _ key: MossKeys) throws -> Int {
            guard value >= 1, value <= Self.dimensionLimit else {
                throw ModelConfigurationError("\(key.rawValue) must be in 1...\(Self.dimensionLimit), got \(value)")
            }
            return value
        }
        let activation = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? "gelu_new"
        guard activation == "gelu_new" else {
            throw ModelConfigurationError("activation_function '\(activation)' is not supported for moss; MOSS uses 'gelu_new'")
        }
        if let bits = try c.decodeIfPresent(Int.self, forKey: .wbits), bits < 32 {
            throw ModelConfigurationError("wbits \(bits): GPTQ-quantized MOSS checkpoints (int4/int8) are not supported; "
                                          + "use the float16 model")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) == true {
            throw ModelConfigurationError("tie_word_embeddings = true is not supported for moss (lm_head has its own weight and bias)")
        }
        let epsilon = try c.decodeIfPresent(Double.self, forKey: .layerNormEpsilon) ?? 1e-5
        guard epsilon.isFinite, epsilon >= 0 else {
            throw ModelConfigurationError("layer_norm_epsilon must be a finite number >= 0, got \(epsilon)")
        }
        let hidden = try required(.nEmbd), heads = try required(.nHead)
        guard hidden % heads == 0, heads % 4 == 0 else {
            throw ModelConfigurationError("n_head (\(heads)) must divide n_embd (\(hidden)) and be a multiple of 4 "
                                          + "(MOSS packs qkv_proj in 4 model-parallel chunks)")
        }
        let inner = try c.decodeIfPresent(Int.self, forKey: .nInner).map { try checked($0, .nInner) } ?? 4 * hidden
        self.init(modelType: .moss, hiddenSize: hidden, intermediateSize: inner, hiddenLayers: try required(.nLayer),
                  attentionHeads: heads, keyValueHeads: heads, headDimension: nil,
                  rmsNormEpsilon: epsilon,
                  vocabularySize: try required(.vocabSize),
                  maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .nPositions).map { try checked($0, .nPositions) } ?? 2048,
                  tieWordEmbeddings: false,
                  initializerRange: try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? 0.02,
                  attentionBias: false, mlpBias: true,
                  bosTokenID: try c.decodeIfPresent(Int.self, forKey: .bosTokenID),
                  eosTokenIDs: try c.decodeTokenIDs(forKey: .eosTokenID),
                  padTokenID: try c.decodeIfPresent(Int.self, forKey: .padTokenID))
        // rotary_dim null makes the published code build n_embd-wide rotary tables, which fit one head only.
        guard let rotary = try c.decodeIfPresent(Int.self, forKey: .rotaryDim) else {
            throw ModelConfigurationError("rotary_dim must be given for moss (moss-moon-003 has 64)")
        }
        let d = hidden / heads
        guard rotary >= 2, rotary <= d, rotary % 2 == 0 else {
            throw ModelConfigurationError("rotary_dim must be even and in 2...\(d) (n_embd / n_head), got \(rotary)")
        }
        rotaryDimension = rotary
        torchDType = try c.decodeIfPresent(String.self, forKey: .torchDType)
        try validate()
    }

    /// Writes config.json in MOSS's field names (`RemoteCode` adds the source's `auto_map`).
    func encodeMoss(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: MossKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode([modelType.architecture], forKey: .architectures)
        try c.encode(vocabularySize, forKey: .vocabSize)
        try c.encode(maxPositionEmbeddings, forKey: .nPositions)
        try c.encode(maxPositionEmbeddings, forKey: .nCtx)
        try c.encode(hiddenSize, forKey: .nEmbd)
        try c.encode(hiddenLayers, forKey: .nLayer)
        try c.encode(attentionHeads, forKey: .nHead)
        try c.encode(rotaryDimension ?? resolvedHeadDimension, forKey: .rotaryDim)
        try c.encode(intermediateSize, forKey: .nInner)
        try c.encode("gelu_new", forKey: .activationFunction)
        try c.encode(rmsNormEpsilon, forKey: .layerNormEpsilon)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encode(false, forKey: .tieWordEmbeddings)
        try c.encode(32, forKey: .wbits)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeTokenIDs(eosTokenIDs, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
        try c.encodeIfPresent(torchDType, forKey: .torchDType)
    }
}
