import CollieEngine
import CollieIO
import Foundation

/// The decoder families Collie reads, each config.json's `model_type`.
public enum ModelType: String, Codable, Sendable, CaseIterable {
    /// LLaMA 1/2/3 (and InternLM-style checkpoints that use the llama layout).
    case llama
    /// Mistral: LLaMA with sliding-window attention.
    case mistral
    /// Qwen2: LLaMA with q/k/v projection biases.
    case qwen2
    /// InternLM (v1, `InternLMForCausalLM`): LLaMA with q/k/v/o biases (`bias`) and a `rotary` object.
    case internlm
    /// InternLM2 (`InternLM2ForCausalLM`): packed grouped `wqkv`, its own key names (`InternLM2.swift`).
    case internlm2
    /// ChatGLM2/ChatGLM3 (`ChatGLMForConditionalGeneration`): packed `query_key_value`, multi-query groups, rotary
    /// on half of each head in interleaved pairs (`ChatGLM.swift`).
    case chatglm
    /// MOSS (moss-moon-003, `MossForCausalLM`): CodeGen's parallel block, packed `qkv_proj` (`Moss.swift`).
    case moss
}

/// How RoPE frequencies are rescaled for longer contexts (`rope_scaling` / `rope_parameters`).
public enum RopeScaling: Equatable, Sendable {
    /// Plain RoPE.
    case none
    /// Position interpolation: every frequency divided by `factor`.
    case linear(factor: Double)
    /// Dynamic NTK: the base grows once the sequence exceeds max_position_embeddings.
    case dynamic(factor: Double)
    /// Llama 3.1's frequency-dependent scaling.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)
}

/// The settings of a LLaMA-family decoder, decoded from a Hugging Face `config.json`.
///
/// Keys Collie does not use are ignored (configs carry many); the keys it uses are checked, and a
/// bad or missing one is an error naming it.
public struct LlamaConfiguration: Codable, Sendable, Equatable {
    public var modelType: ModelType
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var hiddenLayers: Int
    public var attentionHeads: Int
    public var keyValueHeads: Int
    public var headDimension: Int?
    public var rmsNormEpsilon: Double
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling
    public var vocabularySize: Int
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var initializerRange: Double
    /// Biases on q/k/v/o (`attention_bias`, LLaMA).
    public var attentionBias: Bool
    /// Biases on gate/up/down (`mlp_bias`).
    public var mlpBias: Bool
    /// Sliding-window size (Mistral; Qwen2 when `use_sliding_window`).
    public var slidingWindow: Int?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    public var padTokenID: Int?
    /// The dtype the checkpoint was saved in (`torch_dtype` / `dtype`), informational.
    public var torchDType: String?
    /// The leading dimensions of each head that RoPE rotates (MOSS's `rotary_dim`; half the head in ChatGLM2),
    /// or nil for the whole head.
    public var rotaryDimension: Int?
    /// ChatGLM2/3's block settings; nil for every other family.
    public var chatGLM: ChatGLMSettings?
    /// ChatGLM-6B's (GLM-6B, ChatGLM v1) special tokens; nil for every other family, ChatGLM2/3 included.
    public var chatGLM6B: ChatGLM6BSettings?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case hiddenLayers = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads"
        case headDimension = "head_dim"
        case rmsNormEpsilon = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case vocabularySize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings"
        case initializerRange = "initializer_range"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window"
        case hiddenAct = "hidden_act"
        case bosTokenID = "bos_token_id"
        case eosTokenID = "eos_token_id"
        case padTokenID = "pad_token_id"
        case torchDType = "torch_dtype"
        case dtype
        case architectures
        case bias
        case rotary
    }

    /// A configuration for a randomly initialized model.
    public init(modelType: ModelType = .llama, hiddenSize: Int, intermediateSize: Int, hiddenLayers: Int,
                attentionHeads: Int, keyValueHeads: Int, headDimension: Int? = nil, rmsNormEpsilon: Double = 1e-6,
                ropeTheta: Double = 10_000, ropeScaling: RopeScaling = .none, vocabularySize: Int,
                maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false, initializerRange: Double = 0.02,
                attentionBias: Bool = false, mlpBias: Bool = false, slidingWindow: Int? = nil,
                bosTokenID: Int? = 1, eosTokenIDs: [Int] = [2], padTokenID: Int? = nil) {
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.hiddenLayers = hiddenLayers
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.vocabularySize = vocabularySize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.initializerRange = initializerRange
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.slidingWindow = slidingWindow
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.padTokenID = padTokenID
        torchDType = nil
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let typeName = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "llama"
        guard let type = ModelType(rawValue: typeName) else {
            throw ModelConfigurationError("model_type '\(typeName)' is not supported; supported: "
                                     + ModelType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        switch type {
        case .chatglm: self = try Self(chatGLMFrom: decoder); return
        case .moss: self = try Self(mossFrom: decoder); return
        default: break
        }
        modelType = type
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        hiddenLayers = try c.decode(Int.self, forKey: .hiddenLayers)
        attentionHeads = try c.decode(Int.self, forKey: .attentionHeads)
        // InternLM's remote code has no GQA and no head_dim: it reads neither key.
        keyValueHeads = type == .internlm ? attentionHeads
            : try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? attentionHeads
        headDimension = type.isInternLM ? nil : try c.decodeIfPresent(Int.self, forKey: .headDimension)
        rmsNormEpsilon = try c.decodeIfPresent(Double.self, forKey: .rmsNormEpsilon) ?? 1e-6
        vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        initializerRange = try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? 0.02
        if type.isInternLM {
            // `bias` (default true) puts biases on q/k/v/o (wqkv/wo); the MLP never has one.
            attentionBias = try c.decodeIfPresent(Bool.self, forKey: .bias) ?? true
            mlpBias = false
        } else {
            attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
            mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        }
        let window = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        switch type {
        case .mistral: slidingWindow = window
        case .qwen2: slidingWindow = (try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) ?? false) ? window : nil
        case .llama, .internlm, .internlm2, .chatglm, .moss: slidingWindow = nil
        }
        if type == .qwen2, slidingWindow != nil {
            throw ModelConfigurationError("qwen2 with use_sliding_window = true (per-layer windows) is not supported yet")
        }
        let activation = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        guard activation == "silu" else {
            throw ModelConfigurationError("hidden_act '\(activation)' is not supported; LLaMA-family models use 'silu'")
        }
        bosTokenID = try c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        eosTokenIDs = try c.decodeTokenIDs(forKey: .eosTokenID)
        padTokenID = try c.decodeIfPresent(Int.self, forKey: .padTokenID)
        torchDType = try c.decodeIfPresent(String.self, forKey: .torchDType) ?? c.decodeIfPresent(String.self, forKey: .dtype)

        // RoPE: transformers 5 writes rope_parameters (with rope_theta inside); hub checkpoints
        // use rope_theta + rope_scaling.
        switch type {
        case .internlm:
            // InternLM's `rotary` object; absent, its configuration class's default (dynamic NTK, base 10000).
            let rotary = try c.decodeIfPresent(InternLMRotary.self, forKey: .rotary) ?? InternLMRotary()
            ropeTheta = rotary.base
            ropeScaling = try rotary.scaling()
        case .internlm2:
            ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10_000
            let scaling = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling)
            guard scaling == nil || ["linear", "dynamic"].contains(scaling?.type ?? "") else {
                throw ModelConfigurationError("rope_scaling.type '\(scaling?.type ?? "")' is not supported by internlm2; "
                                              + "its remote code takes 'linear' or 'dynamic'")
            }
            ropeScaling = try scaling?.scaling(maxPositions: maxPositionEmbeddings) ?? .none
        case .llama, .mistral, .qwen2, .chatglm, .moss:
            let parameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
            let scaling = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling)
            ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? parameters?.ropeTheta ?? 10_000
            ropeScaling = try (scaling ?? parameters)?.scaling(maxPositions: maxPositionEmbeddings) ?? .none
        }

        try validate()
    }

    /// The largest size, count or id config.json may give: products of two stay far inside `Int` (so shapes are
    /// computed without overflow), and real models are thousands of times smaller.
    public static let dimensionLimit = Int(Int32.max)

    /// Checks every number against its range (sizes and counts positive and at most `dimensionLimit`, head
    /// counts dividing, RoPE settings finite and positive), so that nothing computed from them traps.
    /// - Throws: `ModelConfigurationError` naming the config.json key.
    public func validate() throws {
        func check(_ value: Int, _ key: CodingKeys, minimum: Int = 1) throws {
            guard value >= minimum, value <= Self.dimensionLimit else {
                throw ModelConfigurationError("\(key.rawValue) must be in \(minimum)...\(Self.dimensionLimit), got \(value)")
            }
        }
        func check(_ value: Double, _ key: String, minimum: Double = 0, inclusive: Bool = false) throws {
            guard value.isFinite, inclusive ? value >= minimum : value > minimum else {
                throw ModelConfigurationError("\(key) must be a finite number \(inclusive ? ">=" : ">") \(minimum), got \(value)")
            }
        }
        try check(hiddenSize, .hiddenSize)
        try check(intermediateSize, .intermediateSize)
        try check(hiddenLayers, .hiddenLayers)
        try check(attentionHeads, .attentionHeads)
        try check(keyValueHeads, .keyValueHeads)
        try check(vocabularySize, .vocabularySize)
        try check(maxPositionEmbeddings, .maxPositionEmbeddings)
        if let headDimension { try check(headDimension, .headDimension) }
        if let slidingWindow { try check(slidingWindow, .slidingWindow) }
        guard attentionHeads % keyValueHeads == 0 else {
            throw ModelConfigurationError("num_attention_heads (\(attentionHeads)) must be a positive multiple of num_key_value_heads (\(keyValueHeads))")
        }
        guard headDimension != nil || hiddenSize % attentionHeads == 0 else {
            throw ModelConfigurationError("hidden_size (\(hiddenSize)) is not divisible by num_attention_heads (\(attentionHeads)) and no head_dim is given")
        }
        if let rotaryDimension {
            guard rotaryDimension >= 2, rotaryDimension <= resolvedHeadDimension, rotaryDimension % 2 == 0 else {
                throw ModelConfigurationError(modelType == .chatglm
                    ? "the head width (\(resolvedHeadDimension)) must be a multiple of 4: ChatGLM rotates halves of each head in pairs"
                    : "rotary_dim must be even and in 2...\(resolvedHeadDimension) (the head dimension), got \(rotaryDimension)")
            }
        } else if resolvedHeadDimension % 2 != 0 {
            throw ModelConfigurationError("the head dimension (\(resolvedHeadDimension), head_dim or hidden_size / num_attention_heads) must be even for rotary embeddings")
        }
        if modelType == .moss, attentionHeads % 4 != 0 || hiddenSize % attentionHeads != 0 {
            throw ModelConfigurationError("n_head (\(attentionHeads)) must divide n_embd (\(hiddenSize)) and be a multiple of 4 "
                                          + "(MOSS packs qkv_proj in 4 model-parallel chunks)")
        }
        if let problem = supportedRopeScalings { throw ModelConfigurationError(problem) }
        try check(rmsNormEpsilon, "rms_norm_eps", inclusive: true)
        try check(ropeTheta, "rope_theta")
        try check(initializerRange, "initializer_range", inclusive: true)
        switch ropeScaling {
        case .none: break
        case .linear(let factor), .dynamic(let factor): try check(factor, "rope_scaling.factor")
        case .llama3(let factor, let low, let high, let original):
            try check(factor, "rope_scaling.factor")
            try check(low, "rope_scaling.low_freq_factor")
            try check(high, "rope_scaling.high_freq_factor", minimum: low)
            guard original >= 1, original <= Self.dimensionLimit else {
                throw ModelConfigurationError("rope_scaling.original_max_position_embeddings must be in 1...\(Self.dimensionLimit), got \(original)")
            }
        }
    }

    public func encode(to encoder: Encoder) throws {
        if modelType.isInternLM { return try encodeInternLM(to: encoder) }
        if modelType == .chatglm { return try encodeChatGLM(to: encoder) }
        if modelType == .moss { return try encodeMoss(to: encoder) }
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode([modelType.architecture], forKey: .architectures)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(hiddenLayers, forKey: .hiddenLayers)
        try c.encode(attentionHeads, forKey: .attentionHeads)
        try c.encode(keyValueHeads, forKey: .keyValueHeads)
        try c.encode(resolvedHeadDimension, forKey: .headDimension)
        try c.encode(rmsNormEpsilon, forKey: .rmsNormEpsilon)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        switch ropeScaling {
        case .none: break
        case .linear(let f): try c.encode(RopeParameters(type: "linear", factor: f), forKey: .ropeScaling)
        case .dynamic(let f): try c.encode(RopeParameters(type: "dynamic", factor: f), forKey: .ropeScaling)
        case .llama3(let f, let lo, let hi, let original):
            try c.encode(RopeParameters(type: "llama3", factor: f, lowFreqFactor: lo, highFreqFactor: hi,
                                        originalMaxPositionEmbeddings: original), forKey: .ropeScaling)
        }
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encode("silu", forKey: .hiddenAct)
        if modelType == .qwen2 {
            try c.encode(false, forKey: .useSlidingWindow)
        } else {
            try c.encode(attentionBias, forKey: .attentionBias)
            try c.encode(mlpBias, forKey: .mlpBias)
        }
        if modelType == .mistral { try c.encode(slidingWindow, forKey: .slidingWindow) }
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeTokenIDs(eosTokenIDs, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
        try c.encodeIfPresent(torchDType, forKey: .torchDType)
    }

    /// Per-head width: `head_dim` when given, else hidden_size / num_attention_heads.
    public var resolvedHeadDimension: Int { headDimension ?? hiddenSize / attentionHeads }

    /// Whether q/k/v projections carry biases (Qwen2 always; LLaMA with attention_bias; InternLM with bias).
    public var hasQKVBias: Bool { modelType == .qwen2 || attentionBias || (modelType == .chatglm && mlpBias) }
    /// Whether o_proj carries a bias.
    public var hasOutputBias: Bool { modelType != .qwen2 && attentionBias }

    /// RoPE inverse frequencies for a sequence of `sequenceLength` positions, computed in float32
    /// as `transformers` does, including the configured scaling.
    public func inverseFrequencies(sequenceLength: Int = 0) -> [Float] {
        let d = rotaryDimension ?? resolvedHeadDimension
        var theta = ropeTheta
        if case .dynamic(let factor) = ropeScaling, sequenceLength > maxPositionEmbeddings {
            let ratio = factor * Double(sequenceLength) / Double(maxPositionEmbeddings) - (factor - 1)
            theta *= Foundation.pow(ratio, Double(d) / Double(d - 2))
        }
        let base = Float(theta)
        var frequencies = stride(from: 0, to: d, by: 2).map { i in 1 / Float.pow(base, Float(i) / Float(d)) }
        switch ropeScaling {
        case .none, .dynamic: break
        case .linear(let factor): frequencies = frequencies.map { $0 / Float(factor) }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = Float(Double(original) / low), highWavelength = Float(Double(original) / high)
            let f = Float(factor)
            frequencies = frequencies.map { inv in
                let wavelength = 2 * Float.pi / inv
                if wavelength < highWavelength { return inv }
                if wavelength > lowWavelength { return inv / f }
                let smooth = (Float(original) / wavelength - Float(low)) / (Float(high) - Float(low))
                return (1 - smooth) * inv / f + smooth * inv
            }
        }
        return frequencies
    }

    /// Decodes `config.json` in `folder`.
    public static func load(from folder: URL) throws -> LlamaConfiguration {
        try InputFile.checkFolder(folder)
        let url = folder.appendingPathComponent("config.json")
        let data = try InputFile.contents(of: url)
        do {
            return try JSONDecoder().decode(LlamaConfiguration.self, from: data)
        } catch let error as ModelConfigurationError {
            throw CheckpointError(file: url.path, error.message)
        } catch let DecodingError.keyNotFound(key, _) {
            throw CheckpointError(file: url.path, "missing key '\(key.stringValue)'")
        } catch let DecodingError.dataCorrupted(context) {
            if !context.codingPath.isEmpty {
                let key = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw CheckpointError(file: url.path, "key '\(key)' has an unusable value (\(context.debugDescription))")
            }
            let integerKeys: [CodingKeys] = [.hiddenSize, .intermediateSize, .hiddenLayers, .attentionHeads, .keyValueHeads,
                                             .headDimension, .vocabularySize, .maxPositionEmbeddings, .slidingWindow,
                                             .bosTokenID, .padTokenID]
            if let key = integerKeyOutOfRange(in: data, keys: integerKeys.map(\.rawValue)) {
                throw CheckpointError(file: url.path, "key '\(key)' must be an integer (within ±\(Int.max))")
            }
            throw CheckpointError(file: url.path, "not a valid config (\(context.debugDescription))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw CheckpointError(file: url.path, "key '\(key)' has the wrong type (\(context.debugDescription))")
        } catch {
            throw CheckpointError(file: url.path, "not a valid config (\(error))")
        }
    }
}

/// The first of `keys` whose number in the JSON object `data` is not an integer `Int` holds: Foundation's
/// JSONDecoder reports such a number (1e30, 1.5) as "not valid JSON" without naming the key.
func integerKeyOutOfRange(in data: Data, keys: [String]) -> String? {
    guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
    return keys.first { key in
        guard let number = object[key] as? NSNumber else { return false }
        return Int(exactly: number.doubleValue) == nil
    }
}

/// A value of a model's config.json that is present but unusable (an unsupported `model_type`, head counts
/// that do not divide). `LlamaConfiguration.load(from:)` reports it as a `CheckpointError` naming the file.
/// Errors of Collie's own training config (YAML) are `ConfigError`.
public struct ModelConfigurationError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The `rope_scaling` / `rope_parameters` object.
struct RopeParameters: Codable {
    var type: String?
    var ropeTheta: Double?
    var factor: Double?
    var lowFreqFactor: Double?
    var highFreqFactor: Double?
    var originalMaxPositionEmbeddings: Int?

    enum CodingKeys: String, CodingKey {
        case type = "rope_type", legacyType = "type", ropeTheta = "rope_theta", factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }

    init(type: String, factor: Double, lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil,
         originalMaxPositionEmbeddings: Int? = nil) {
        self.type = type
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? c.decodeIfPresent(String.self, forKey: .legacyType)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        factor = try c.decodeIfPresent(Double.self, forKey: .factor)
        lowFreqFactor = try c.decodeIfPresent(Double.self, forKey: .lowFreqFactor)
        highFreqFactor = try c.decodeIfPresent(Double.self, forKey: .highFreqFactor)
        originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(type, forKey: .type)
        try c.encodeIfPresent(factor, forKey: .factor)
        try c.encodeIfPresent(lowFreqFactor, forKey: .lowFreqFactor)
        try c.encodeIfPresent(highFreqFactor, forKey: .highFreqFactor)
        try c.encodeIfPresent(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
    }

    func scaling(maxPositions: Int) throws -> RopeScaling {
        func required(_ value: Double?, _ key: String) throws -> Double {
            guard let value else { throw ModelConfigurationError("rope scaling '\(type ?? "?")' needs '\(key)'") }
            return value
        }
        switch type ?? "default" {
        case "default": return .none
        case "linear": return .linear(factor: try required(factor, "factor"))
        case "dynamic": return .dynamic(factor: try required(factor, "factor"))
        case "llama3":
            return .llama3(factor: try required(factor, "factor"),
                           lowFrequencyFactor: try required(lowFreqFactor, "low_freq_factor"),
                           highFrequencyFactor: try required(highFreqFactor, "high_freq_factor"),
                           originalMaxPositions: originalMaxPositionEmbeddings ?? maxPositions)
        case let other:
            throw ModelConfigurationError("rope type '\(other)' is not supported; supported: default, linear, dynamic, llama3")
        }
    }
}
