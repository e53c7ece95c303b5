import Foundation

/// config.json in the InternLM families' own field names (their remote code's `configuration_internlm.py` and
/// `configuration_internlm2.py`), read into and written from `LlamaConfiguration`.
///
/// - InternLM (v1): `bias` (q/k/v/o biases, default true), `rotary: {base, type: origin | dynamic, scaling_factor}`
///   (default dynamic NTK with base 10000 and factor 1), no `num_key_value_heads` or `head_dim`.
/// - InternLM2: `bias` (wqkv/wo biases, default true), `num_key_value_heads`, `rope_theta`,
///   `rope_scaling: {type: linear | dynamic, factor}` (exactly those two fields, as its validation demands).
extension ModelType {
    /// Whether config.json is in an InternLM family's field names.
    var isInternLM: Bool { self == .internlm || self == .internlm2 }

    /// config.json's `architectures` entry.
    var architecture: String {
        switch self {
        case .llama: "LlamaForCausalLM"
        case .mistral: "MistralForCausalLM"
        case .qwen2: "Qwen2ForCausalLM"
        case .internlm: "InternLMForCausalLM"
        case .internlm2: "InternLM2ForCausalLM"
        case .chatglm: "ChatGLMModel"
        case .moss: "MossForCausalLM"
        }
    }
}

/// InternLM v1's `rotary` object.
struct InternLMRotary: Codable {
    var base: Double = 10_000
    var type: String = "dynamic"
    var scalingFactor: Double?

    enum CodingKeys: String, CodingKey {
        case base, type, scalingFactor = "scaling_factor"
    }

    init() {}

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        base = try c.decodeIfPresent(Double.self, forKey: .base) ?? 10_000
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? "dynamic"
        scalingFactor = try c.decodeIfPresent(Double.self, forKey: .scalingFactor)
    }

    /// `origin` is plain RoPE; `dynamic` is dynamic NTK with `scaling_factor` (default 1).
    func scaling() throws -> RopeScaling {
        switch type {
        case "origin": return .none
        case "dynamic": return .dynamic(factor: scalingFactor ?? 1)
        default:
            throw ModelConfigurationError("rotary.type '\(type)' is not supported; InternLM's remote code takes 'origin' or 'dynamic'")
        }
    }
}

/// InternLM2's `rope_scaling` object, written with the legacy `type` key its remote code reads.
private struct InternLM2RopeScaling: Encodable {
    let type: String
    let factor: Double
}

extension LlamaConfiguration {
    /// The token embedding's key (`model.tok_embeddings.weight` in InternLM2).
    var embeddingKey: String {
        switch modelType {
        case .internlm2: "model.tok_embeddings.weight"
        case .chatglm: chatGLM6B == nil ? "transformer.embedding.word_embeddings.weight" : "transformer.word_embeddings.weight"
        case .moss: "transformer.wte.weight"
        default: "model.embed_tokens.weight"
        }
    }

    /// The output projection's module path (`output` in InternLM2, `transformer.output_layer` in ChatGLM2).
    var outputProjectionPath: String {
        switch modelType {
        case .internlm2: "output"
        case .chatglm: chatGLM6B == nil ? "transformer.output_layer" : "lm_head"
        default: "lm_head"
        }
    }

    /// The RoPE scalings the family's remote code can express, or nil when every one is (non-InternLM types).
    var supportedRopeScalings: String? {
        switch (modelType, ropeScaling) {
        case (.internlm, .none), (.internlm, .dynamic): nil
        case (.internlm, _): "rotary.type must be 'origin' or 'dynamic' for internlm"
        case (.internlm2, .llama3): "rope_scaling.type must be 'linear' or 'dynamic' for internlm2"
        default: nil
        }
    }

    /// Writes config.json in the InternLM family's field names (`RemoteCode` adds the source's
    /// `auto_map`).
    func encodeInternLM(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let problem = supportedRopeScalings {
            throw EncodingError.invalidValue(ropeScaling, .init(codingPath: [CodingKeys.ropeScaling], debugDescription: problem))
        }
        try c.encode(modelType, forKey: .modelType)
        try c.encode([modelType.architecture], forKey: .architectures)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(hiddenLayers, forKey: .hiddenLayers)
        try c.encode(attentionHeads, forKey: .attentionHeads)
        try c.encode(rmsNormEpsilon, forKey: .rmsNormEpsilon)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encode("silu", forKey: .hiddenAct)
        try c.encode(attentionBias, forKey: .bias)
        if modelType == .internlm {
            var rotary = InternLMRotary()
            rotary.base = ropeTheta
            if case .dynamic(let factor) = ropeScaling { rotary.scalingFactor = factor } else { rotary.type = "origin" }
            try c.encode(rotary, forKey: .rotary)
        } else {
            try c.encode(keyValueHeads, forKey: .keyValueHeads)
            try c.encode(ropeTheta, forKey: .ropeTheta)
            switch ropeScaling {
            case .linear(let f): try c.encode(InternLM2RopeScaling(type: "linear", factor: f), forKey: .ropeScaling)
            case .dynamic(let f): try c.encode(InternLM2RopeScaling(type: "dynamic", factor: f), forKey: .ropeScaling)
            case .none, .llama3: try c.encodeNil(forKey: .ropeScaling)
            }
        }
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeTokenIDs(eosTokenIDs, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
        try c.encodeIfPresent(torchDType, forKey: .torchDType)
    }
}
