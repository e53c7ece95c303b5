import CollieIO
import Foundation

/// The GGUF architectures Collie loads (`general.architecture`), with the model each becomes.
///
/// llama.cpp writes Mistral checkpoints as `llama` (it has no `mistral` architecture), so they load as LLaMA, as
/// llama.cpp runs them. `internlm2` (InternLM2's arithmetic is LLaMA's, its packed wqkv written as permuted q, k and
/// v) loads as LLaMA too.
public enum GGUFArchitecture: String, CaseIterable, Sendable {
    case llama, qwen2, internlm2

    /// The Hugging Face `model_type` a model of this architecture becomes.
    public var modelType: ModelType {
        switch self {
        case .llama, .internlm2: .llama
        case .qwen2: .qwen2
        }
    }

    /// Whether llama.cpp's converter permuted the rows of q_proj and k_proj (`LlamaModel.permute`), which loading
    /// reverses; Qwen2 keeps Hugging Face's order.
    public var permutesQueryKey: Bool { self != .qwen2 }
}

extension LlamaConfiguration {
    /// The configuration a GGUF file's metadata describes, as transformers derives config.json from it
    /// (`from_pretrained(gguf_file:)`): the `<arch>.*` hyperparameters, the vocabulary size (`<arch>.vocab_size`,
    /// else the token list's length), tied embeddings when `output.weight` is absent, the tokenizer's special ids,
    /// and RoPE scaling (`<arch>.rope.scaling.*`, or Llama 3's factors in `rope_freqs.weight`).
    /// - Throws: `CheckpointError` naming the file and the metadata key or tensor.
    public init(gguf file: GGUFFile) throws {
        let reader = GGUFModelMetadataReader(file: file)
        let name = try reader.string("general.architecture")
        guard let architecture = GGUFArchitecture(rawValue: name) else {
            throw CheckpointError(file: file.url.path, "general.architecture '\(name)' is not supported; supported: "
                                  + GGUFArchitecture.allCases.map(\.rawValue).joined(separator: ", ")
                                  + " (Mistral is written as llama)")
        }
        let a = architecture.rawValue
        let heads = try reader.integer("\(a).attention.head_count")
        let tokens = file["tokenizer.ggml.tokens"]?.array?.count
        let vocabulary = try reader.optionalInteger("\(a).vocab_size") ?? tokens
            ?? file.tensorInfo("token_embd.weight")?.shape.first
        guard let vocabulary else {
            throw CheckpointError(file: file.url.path, "no \(a).vocab_size, tokenizer.ggml.tokens or token_embd.weight gives the vocabulary size")
        }
        self.init(modelType: architecture.modelType,
                  hiddenSize: try reader.integer("\(a).embedding_length"),
                  intermediateSize: try reader.integer("\(a).feed_forward_length"),
                  hiddenLayers: try reader.integer("\(a).block_count"),
                  attentionHeads: heads,
                  keyValueHeads: try reader.optionalInteger("\(a).attention.head_count_kv") ?? heads,
                  // transformers reads llama's head_dim from the rotary dimension; Qwen2's is hidden / heads.
                  headDimension: architecture == .llama ? try reader.optionalInteger("\(a).rope.dimension_count") : nil,
                  rmsNormEpsilon: try reader.number("\(a).attention.layer_norm_rms_epsilon"),
                  ropeTheta: try reader.optionalNumber("\(a).rope.freq_base") ?? 10_000,
                  vocabularySize: vocabulary,
                  maxPositionEmbeddings: try reader.integer("\(a).context_length"),
                  tieWordEmbeddings: file.tensorInfo("output.weight") == nil,
                  bosTokenID: try reader.optionalInteger("tokenizer.ggml.bos_token_id"),
                  eosTokenIDs: try reader.optionalInteger("tokenizer.ggml.eos_token_id").map { [$0] } ?? [],
                  padTokenID: try reader.optionalInteger("tokenizer.ggml.padding_token_id"))
        // LLaMA checkpoints with biases (config.json's attention_bias / mlp_bias) store them as blk.N.*.bias, as
        // convert_hf_to_gguf.py writes them; Qwen2's q/k/v biases are implied by its model type.
        if architecture != .qwen2 {
            attentionBias = file.tensorInfo("blk.0.attn_q.bias") != nil
            mlpBias = file.tensorInfo("blk.0.ffn_up.bias") != nil
        }
        do {
            try validate()
            ropeScaling = try reader.ropeScaling(architecture: a, configuration: self)
            try validate()
        } catch let error as ModelConfigurationError {
            throw CheckpointError(file: file.url.path, "the metadata gives an unusable configuration: \(error.message)")
        }
    }
}

/// Typed reads of GGUF metadata whose errors name the file and the key.
struct GGUFModelMetadataReader {
    let file: GGUFFile

    private func failure(_ key: String, _ problem: String) -> CheckpointError {
        CheckpointError(file: file.url.path, "metadata key '\(key)' \(problem)")
    }

    func string(_ key: String) throws -> String {
        guard let value = file[key] else { throw failure(key, "is missing") }
        guard let string = value.string else { throw failure(key, "must be a string, got \(value.type)") }
        return string
    }

    func optionalInteger(_ key: String) throws -> Int? {
        guard let value = file[key] else { return nil }
        guard let integer = value.int else { throw failure(key, "must be one integer, got \(value.type)") }
        return integer
    }

    func integer(_ key: String) throws -> Int {
        guard let integer = try optionalInteger(key) else { throw failure(key, "is missing") }
        return integer
    }

    func optionalNumber(_ key: String) throws -> Double? {
        guard let value = file[key] else { return nil }
        guard let number = value.double, number.isFinite else { throw failure(key, "must be a finite number, got \(value)") }
        return number
    }

    func number(_ key: String) throws -> Double {
        guard let number = try optionalNumber(key) else { throw failure(key, "is missing") }
        return number
    }

    /// RoPE scaling: `<arch>.rope.scaling.type` linear (or the older `<arch>.rope.scale_linear`), or Llama 3's
    /// frequency factors, which llama.cpp's converter stores as the tensor `rope_freqs.weight` (one factor per
    /// frequency) instead of the four numbers of config.json. Those are recovered from the factors (the original
    /// context from `<arch>.rope.scaling.original_context_length`, else Llama 3's 8192) and checked to reproduce
    /// every factor.
    func ropeScaling(architecture a: String, configuration: LlamaConfiguration) throws -> RopeScaling {
        if let info = file.tensorInfo("rope_freqs.weight") {
            let count = configuration.resolvedHeadDimension / 2
            guard info.shape == [count] else {
                throw CheckpointError(file: file.url.path, "tensor 'rope_freqs.weight' has shape \(info.shape), expected [\(count)] (half the head dimension)")
            }
            let factors = try file.floats(of: info).map(Double.init)
            let original = try optionalInteger("\(a).rope.scaling.original_context_length") ?? 8192
            guard let scaling = LlamaThreeRopeFit.scaling(factors: factors, configuration: configuration, originalContext: original) else {
                throw CheckpointError(file: file.url.path, "tensor 'rope_freqs.weight' holds RoPE factors that Llama 3's scaling (rope_type llama3) does not produce; other per-frequency factors are not supported")
            }
            return scaling
        }
        let type = file["\(a).rope.scaling.type"] == nil ? nil : try string("\(a).rope.scaling.type")
        switch type {
        case nil:
            if let factor = try optionalNumber("\(a).rope.scale_linear"), factor != 1 { return .linear(factor: factor) }
            return .none
        case "none": return .none
        case "linear": return .linear(factor: try number("\(a).rope.scaling.factor"))
        case let other?:
            throw failure("\(a).rope.scaling.type", "is '\(other)'; supported: none, linear (and Llama 3's rope_freqs.weight)")
        }
    }
}

/// Recovers Llama 3's RoPE scaling (factor, low and high frequency factors) from the per-frequency factors
/// llama.cpp's converter computes (`LlamaModel.generate_extra_tensors`): 1 for short wavelengths, `factor` for long
/// ones, `1 / ((1 - s) / factor + s)` between, where `s = (original / wavelength - low) / (high - low)`.
enum LlamaThreeRopeFit {
    static func scaling(factors: [Double], configuration: LlamaConfiguration, originalContext: Int) -> RopeScaling? {
        var plain = configuration
        plain.ropeScaling = .none
        let wavelengths = plain.inverseFrequencies().map { 2 * Double.pi / Double($0) }
        guard let factor = factors.last, factor.isFinite, factor >= 1, wavelengths.count == factors.count else { return nil }
        if factor == 1 { return factors.allSatisfy { $0 == 1 } ? RopeScaling.none : nil }
        // Between the bands, s is linear in original / wavelength: two such points give low and high.
        let smooth = zip(factors, wavelengths).compactMap { r, wavelength -> (x: Double, s: Double)? in
            guard r > 1 + 1e-6, r < factor * (1 - 1e-6) else { return nil }
            return (Double(originalContext) / wavelength, (1 / r - 1 / factor) / (1 - 1 / factor))
        }
        var candidates: [(low: Double, high: Double)] = [(1, 4)]
        if let first = smooth.first, let last = smooth.last, last.x != first.x {
            let slope = (last.s - first.s) / (last.x - first.x)   // 1 / (high - low)
            if slope > 0 {
                // Rounded: the factors are float32, and configs give these to a few digits.
                func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
                let low = first.x - first.s / slope
                candidates.insert((rounded(low), rounded(low + 1 / slope)), at: 0)
            }
        }
        for (low, high) in candidates where low > 0 && high > low {
            let scaling = RopeScaling.llama3(factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high,
                                             originalMaxPositions: originalContext)
            if reproduces(factors, wavelengths: wavelengths, factor: factor, low: low, high: high,
                          original: Double(originalContext)) {
                return scaling
            }
        }
        return nil
    }

    private static func reproduces(_ factors: [Double], wavelengths: [Double], factor: Double, low: Double, high: Double,
                                   original: Double) -> Bool {
        zip(factors, wavelengths).allSatisfy { stored, wavelength in
            let expected: Double
            if wavelength < original / high {
                expected = 1
            } else if wavelength > original / low {
                expected = factor
            } else {
                let s = (original / wavelength - low) / (high - low)
                expected = 1 / ((1 - s) / factor + s)
            }
            return abs(stored - expected) <= 1e-4 * expected
        }
    }
}
