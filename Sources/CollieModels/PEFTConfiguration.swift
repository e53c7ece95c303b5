import Foundation

/// A parameter-efficient fine-tuning method and its settings, with PEFT's field names: what
/// `adapter_config.json` holds and what a config's `peft_config:` section says.
///
/// ```yaml
/// peft_config: {peft_type: LORA, r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: [q_proj, v_proj]}
/// peft_config: {peft_type: PROMPT_TUNING, num_virtual_tokens: 20}
/// ```
///
/// Fields PEFT writes that do not change what Collie computes (`peft_version`, `inference_mode`, …) are ignored
/// when reading `adapter_config.json`; settings Collie does not implement (DoRA, LoRA biases, rank patterns, …)
/// are errors naming the field.
public enum PEFTConfiguration: Codable, Equatable, Sendable {
    case lora(LoRAConfiguration)
    case promptTuning(PromptTuningConfiguration)

    /// PEFT's `peft_type`.
    public enum Method: String, Codable, CaseIterable, Sendable {
        case lora = "LORA"
        case promptTuning = "PROMPT_TUNING"
    }

    /// The method's `peft_type`.
    public var method: Method {
        switch self {
        case .lora: .lora
        case .promptTuning: .promptTuning
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case method = "peft_type" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(Method.self, forKey: .method) {
        case .lora: self = .lora(try LoRAConfiguration(from: decoder))
        case .promptTuning: self = .promptTuning(try PromptTuningConfiguration(from: decoder))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method, forKey: .method)
        switch self {
        case .lora(let lora): try lora.encode(to: encoder)
        case .promptTuning(let prompt): try prompt.encode(to: encoder)
        }
    }
}

/// Which modules get an adapter (PEFT's `target_modules` / `exclude_modules`): a list of names, each matching a
/// module whose path is that name or ends in `.name`, or one regular expression the whole path must match.
/// Paths are the base model's (`model.layers.0.self_attn.q_proj`); `all-linear` means every linear layer but
/// the output projection.
public enum ModuleSelection: Codable, Equatable, Sendable {
    case names([String])
    case pattern(String)

    /// LLaMA's attention and MLP projections: q, k, v, o, gate, up, down.
    public static let allProjections = ModuleSelection.names(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                              "up_proj", "down_proj"])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let names = try? c.decode([String].self) {
            self = .names(names)
        } else {
            self = .pattern(try c.decode(String.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .names(let names): try c.encode(names)
        case .pattern(let pattern): try c.encode(pattern)
        }
    }

    /// True when the module at `path` is selected.
    /// - Throws: `PEFTError` when the pattern is not a valid regular expression.
    public func matches(_ path: String, isOutputProjection: Bool = false) throws -> Bool {
        switch self {
        case .names(let names):
            return names.contains { path == $0 || path.hasSuffix("." + $0) }
        case .pattern("all-linear"):
            return !isOutputProjection
        case .pattern(let pattern):
            let regex: NSRegularExpression
            do { regex = try NSRegularExpression(pattern: pattern) } catch {
                throw PEFTError("target_modules: \"\(pattern)\" is not a valid regular expression")
            }
            let range = NSRange(path.startIndex..., in: path)
            guard let match = regex.firstMatch(in: path, options: [.anchored], range: range) else { return false }
            return match.range == range   // re.fullmatch
        }
    }
}

/// LoRA's settings (PEFT's `LoraConfig`): each selected linear layer W gets y = W·x + b + (α/r)·B·A·dropout(x)
/// with A [r, in] and B [out, r]; rsLoRA scales by α/√r instead.
public struct LoRAConfiguration: Codable, Equatable, Sendable {
    /// How A and B start (`init_lora_weights`): PEFT's default draws A ~ U(±1/√in) (Kaiming-uniform with
    /// a = √5) and zeroes B, so training starts from the base model; `gaussian` draws A ~ N(0, 1/r²).
    public enum Initialization: Equatable, Sendable {
        case kaimingUniform, gaussian
    }

    /// `r`: the rank.
    public var rank: Int
    /// `lora_alpha`.
    public var alpha: Double
    /// `lora_dropout`: dropout on the adapter's input while training.
    public var dropout: Double
    /// `target_modules`; default: every attention and MLP projection.
    public var targetModules: ModuleSelection
    /// `exclude_modules`: modules never adapted even when `target_modules` selects them.
    public var excludeModules: ModuleSelection?
    /// `use_rslora`: scale by α/√r (rank-stabilized LoRA) instead of α/r.
    public var useRSLoRA: Bool
    /// `init_lora_weights`.
    public var initialization: Initialization
    /// `base_model_name_or_path`: the model the adapter was trained on (informational).
    public var baseModelNameOrPath: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case rank = "r", alpha = "lora_alpha", dropout = "lora_dropout", targetModules = "target_modules"
        case excludeModules = "exclude_modules", useRSLoRA = "use_rslora", initialization = "init_lora_weights"
        case baseModelNameOrPath = "base_model_name_or_path", taskType = "task_type"
        // Written by PEFT; accepted only with the value that means "off".
        case bias, fanInFanOut = "fan_in_fan_out", useDoRA = "use_dora", loraBias = "lora_bias"
        case rankPattern = "rank_pattern", alphaPattern = "alpha_pattern", modulesToSave = "modules_to_save"
        case layersToTransform = "layers_to_transform", targetParameters = "target_parameters"
        case layerReplication = "layer_replication", trainableTokenIndices = "trainable_token_indices"
    }

    public init(rank: Int = 8, alpha: Double = 8, dropout: Double = 0, targetModules: ModuleSelection = .allProjections,
                excludeModules: ModuleSelection? = nil, useRSLoRA: Bool = false,
                initialization: Initialization = .kaimingUniform, baseModelNameOrPath: String? = nil) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targetModules = targetModules
        self.excludeModules = excludeModules
        self.useRSLoRA = useRSLoRA
        self.initialization = initialization
        self.baseModelNameOrPath = baseModelNameOrPath
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func flag(_ key: CodingKeys) throws -> Bool { try c.decodeIfPresent(Bool.self, forKey: key) ?? false }
        var initialization = Initialization.kaimingUniform
        if let flag = try? c.decodeIfPresent(Bool.self, forKey: .initialization) {
            guard flag else { throw PEFTError("init_lora_weights: false (random B) is not supported; use true or gaussian") }
        } else if let name = try c.decodeIfPresent(String.self, forKey: .initialization) {
            guard name == "gaussian" else {
                throw PEFTError("init_lora_weights: \"\(name)\" is not supported; use true or gaussian")
            }
            initialization = .gaussian
        }
        self.init(rank: try c.decodeIfPresent(Int.self, forKey: .rank) ?? 8,
                  alpha: try c.decodeIfPresent(Double.self, forKey: .alpha) ?? 8,
                  dropout: try c.decodeIfPresent(Double.self, forKey: .dropout) ?? 0,
                  targetModules: try c.decodeIfPresent(ModuleSelection.self, forKey: .targetModules) ?? .allProjections,
                  excludeModules: try c.decodeIfPresent(ModuleSelection.self, forKey: .excludeModules),
                  useRSLoRA: try flag(.useRSLoRA), initialization: initialization,
                  baseModelNameOrPath: try c.decodeIfPresent(String.self, forKey: .baseModelNameOrPath))
        try checkTaskType(c, .taskType)
        if let bias = try c.decodeIfPresent(String.self, forKey: .bias), bias != "none" {
            throw PEFTError("bias: \"\(bias)\" is not supported; use none")
        }
        for (key, name) in [(CodingKeys.fanInFanOut, "fan_in_fan_out (Conv1D weights)"), (.useDoRA, "use_dora (DoRA)"),
                            (.loraBias, "lora_bias")] where try flag(key) {
            throw PEFTError("\(key.rawValue): \(name) is not supported; set it to false")
        }
        for key in [CodingKeys.rankPattern, .alphaPattern, .modulesToSave, .layersToTransform, .targetParameters,
                    .layerReplication, .trainableTokenIndices] {
            if try c.decodeIfPresent(JSONPresence.self, forKey: key)?.isSet == true {
                throw PEFTError("\(key.rawValue): not supported; leave it empty")
            }
        }
        if rank < 1 { throw PEFTError("r: must be at least 1, got \(rank)") }
        if !(alpha > 0) || !alpha.isFinite { throw PEFTError("lora_alpha: must be positive, got \(alpha)") }
        if !(0..<1).contains(dropout) { throw PEFTError("lora_dropout: must be in [0, 1), got \(dropout)") }
        if case .names(let names) = targetModules, names.isEmpty { throw PEFTError("target_modules: names no module") }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rank, forKey: .rank)
        try c.encode(alpha, forKey: .alpha)
        try c.encode(dropout, forKey: .dropout)
        try c.encode(targetModules, forKey: .targetModules)
        try c.encode(excludeModules, forKey: .excludeModules)
        try c.encode(useRSLoRA, forKey: .useRSLoRA)
        switch initialization {
        case .kaimingUniform: try c.encode(true, forKey: .initialization)
        case .gaussian: try c.encode("gaussian", forKey: .initialization)
        }
        try c.encode(baseModelNameOrPath, forKey: .baseModelNameOrPath)
        try c.encode("CAUSAL_LM", forKey: .taskType)
        try c.encode("none", forKey: .bias)
        for key in [CodingKeys.fanInFanOut, .useDoRA, .loraBias] { try c.encode(false, forKey: key) }
        try c.encode([String: Int](), forKey: .rankPattern)
        try c.encode([String: Int](), forKey: .alphaPattern)
        try c.encodeNil(forKey: .modulesToSave)
        try c.encodeNil(forKey: .layersToTransform)
    }

    /// The factor B·A is multiplied by: α/r, or α/√r with rsLoRA.
    public var scaling: Double { useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank) }
}

/// Prompt tuning's settings (PEFT's `PromptTuningConfig`): `num_virtual_tokens` learned embeddings are
/// prepended to every input; the base model is frozen.
public struct PromptTuningConfiguration: Codable, Equatable, Sendable {
    /// How the virtual tokens start (`prompt_tuning_init`).
    public enum Initialization: String, Codable, CaseIterable, Sendable {
        /// N(0, 1), as `torch.nn.Embedding`.
        case random = "RANDOM"
        /// The embeddings of `prompt_tuning_init_text`'s tokens, repeated or cut to the number of virtual tokens.
        case text = "TEXT"
        /// The embeddings of tokens drawn uniformly from the vocabulary.
        case sampleVocabulary = "SAMPLE_VOCAB"
    }

    /// `num_virtual_tokens`.
    public var virtualTokenCount: Int
    /// `token_dim`: the model's hidden size (filled in from the model when absent).
    public var tokenDimension: Int?
    /// `prompt_tuning_init`.
    public var initialization: Initialization
    /// `prompt_tuning_init_text`, for `TEXT`.
    public var initializationText: String?
    /// `tokenizer_name_or_path`: the tokenizer `TEXT` initialization used (informational).
    public var tokenizerNameOrPath: String?
    /// `base_model_name_or_path` (informational).
    public var baseModelNameOrPath: String?
    /// `num_attention_heads` and `num_layers` of the base model, which PEFT records (filled in when saving).
    public var attentionHeads: Int?, layers: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case virtualTokenCount = "num_virtual_tokens", tokenDimension = "token_dim", initialization = "prompt_tuning_init"
        case initializationText = "prompt_tuning_init_text", tokenizerNameOrPath = "tokenizer_name_or_path"
        case baseModelNameOrPath = "base_model_name_or_path", taskType = "task_type"
        case attentionHeads = "num_attention_heads", layers = "num_layers"
        case transformerSubmodules = "num_transformer_submodules", modulesToSave = "modules_to_save"
    }

    public init(virtualTokenCount: Int = 20, tokenDimension: Int? = nil, initialization: Initialization = .random,
                initializationText: String? = nil, tokenizerNameOrPath: String? = nil, baseModelNameOrPath: String? = nil) {
        self.virtualTokenCount = virtualTokenCount
        self.tokenDimension = tokenDimension
        self.initialization = initialization
        self.initializationText = initializationText
        self.tokenizerNameOrPath = tokenizerNameOrPath
        self.baseModelNameOrPath = baseModelNameOrPath
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(virtualTokenCount: try c.decodeIfPresent(Int.self, forKey: .virtualTokenCount) ?? 20,
                  tokenDimension: try c.decodeIfPresent(Int.self, forKey: .tokenDimension),
                  initialization: try c.decodeIfPresent(Initialization.self, forKey: .initialization) ?? .random,
                  initializationText: try c.decodeIfPresent(String.self, forKey: .initializationText),
                  tokenizerNameOrPath: try c.decodeIfPresent(String.self, forKey: .tokenizerNameOrPath),
                  baseModelNameOrPath: try c.decodeIfPresent(String.self, forKey: .baseModelNameOrPath))
        attentionHeads = try c.decodeIfPresent(Int.self, forKey: .attentionHeads)
        layers = try c.decodeIfPresent(Int.self, forKey: .layers)
        try checkTaskType(c, .taskType)
        if let submodules = try c.decodeIfPresent(Int.self, forKey: .transformerSubmodules), submodules != 1 {
            throw PEFTError("num_transformer_submodules: \(submodules) (encoder-decoder models) is not supported; a causal LM has 1")
        }
        if try c.decodeIfPresent(JSONPresence.self, forKey: .modulesToSave)?.isSet == true {
            throw PEFTError("modules_to_save: not supported; leave it empty")
        }
        if virtualTokenCount < 1 { throw PEFTError("num_virtual_tokens: must be at least 1, got \(virtualTokenCount)") }
        if initialization == .text, (initializationText ?? "").isEmpty {
            throw PEFTError("prompt_tuning_init_text: TEXT initialization needs the text")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(virtualTokenCount, forKey: .virtualTokenCount)
        try c.encode(tokenDimension, forKey: .tokenDimension)
        try c.encode(initialization, forKey: .initialization)
        try c.encode(initializationText, forKey: .initializationText)
        try c.encode(tokenizerNameOrPath, forKey: .tokenizerNameOrPath)
        try c.encode(baseModelNameOrPath, forKey: .baseModelNameOrPath)
        try c.encode("CAUSAL_LM", forKey: .taskType)
        try c.encode(attentionHeads, forKey: .attentionHeads)
        try c.encode(layers, forKey: .layers)
        try c.encode(1, forKey: .transformerSubmodules)
        try c.encodeNil(forKey: .modulesToSave)
    }
}

/// A PEFT setting or adapter Collie cannot use, with the field or file it concerns.
public struct PEFTError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

private func checkTaskType<Key: CodingKey>(_ c: KeyedDecodingContainer<Key>, _ key: Key) throws {
    if let task = try c.decodeIfPresent(String.self, forKey: key), task != "CAUSAL_LM" {
        throw PEFTError("task_type: \"\(task)\" is not supported; Collie's models are CAUSAL_LM")
    }
}

/// Whether a JSON or YAML value is set: anything but null, false, an empty list or an empty mapping.
private struct JSONPresence: Decodable {
    let isSet: Bool

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: AnyKey.self) {
            isSet = !keyed.allKeys.isEmpty
        } else if let list = try? decoder.unkeyedContainer() {
            isSet = (list.count ?? 1) > 0
        } else {
            let single = try decoder.singleValueContainer()
            isSet = single.decodeNil() ? false : (try? single.decode(Bool.self)) != false
        }
    }
}
