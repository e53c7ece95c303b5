import CollieEngine
import CollieIO
import Foundation

/// The tensor types a GGUF export can use (`collie convert --outtype`), with llama.cpp's `general.file_type`.
public enum GGUFOutputType: String, Sendable, CaseIterable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1

    /// The type of 2-D weights.
    public var weightType: GGMLType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        }
    }

    /// llama.cpp's `llama_ftype` (ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, …, MOSTLY_BF16 32).
    public var fileType: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 7
        case .q5_0: 8
        case .q5_1: 9
        case .bf16: 32
        }
    }

    /// The type of a tensor of `shape` named `name`, as convert_hf_to_gguf.py chooses it: 1-D tensors and norms in
    /// F32; the token embedding and output in Q8_0 below 8 bits (llama-quantize keeps them wider; the
    /// SmolLM2 Q4_1 file has a Q8_0 embedding); rows that are not whole blocks fall back to F16.
    func type(of name: String, shape: [Int]) -> GGMLType {
        if shape.count <= 1 || name.hasSuffix("_norm.weight") { return .f32 }
        var type = weightType
        if [.q4_0, .q4_1, .q5_0, .q5_1].contains(type), name == "token_embd.weight" || name == "output.weight" {
            type = .q8_0
        }
        guard let row = shape.last, row % type.blockSize == 0 else { return .f16 }
        return type
    }
}

/// Writing a model as a GGUF file llama.cpp runs, with the metadata and tensors llama.cpp's convert_hf_to_gguf.py
/// writes for `LlamaForCausalLM`, `MistralForCausalLM` (both architecture `llama`, q/k rows permuted) and
/// `Qwen2ForCausalLM` (`qwen2`, not permuted). Tied embeddings write no `output.weight`.
extension CausalLanguageModel {
    /// Writes the model to `url` (atomically) in `outputType`, named `name` (`general.name`), with the tokenizer's
    /// `tokenizer.*` keys appended after the model's. Each weight is made when it is written (`savedWeights`: a
    /// quantized layer dequantized, with `mergingLoRA` its LoRA adapter merged), so at most one layer is widened.
    public func saveGGUF(to url: URL, outputType: GGUFOutputType, name: String,
                         tokenizerMetadata: [(key: String, value: GGUFValue)] = [], mergingLoRA: Bool = false) throws {
        let c = configuration
        guard c.modelType != .internlm, c.modelType != .moss, c.modelType != .chatglm || self is ChatGLMForConditionalGeneration else {
            let family = c.modelType == .chatglm ? "ChatGLM-6B" : c.modelType.rawValue
            throw CheckpointError(file: url.path, "GGUF export of \(family) models is not supported: llama.cpp has no such architecture")
        }
        if let glm = self as? ChatGLMForConditionalGeneration {
            var writer = GGUFWriter()
            let weights = savedWeights(mergingLoRA: mergingLoRA)
            writer.setGeneral(architecture: "chatglm", name: name, parameterCount: weights.reduce(0) { $0 + $1.shape.reduce(1, *) })
            try glm.writeGGUFModel(into: &writer, file: url, outputType: outputType, weights: weights)
            writer.set("general.quantization_version", .uint32(2))
            for (key, value) in tokenizerMetadata { writer.set(key, value) }
            try writer.write(to: url)
            return
        }
        if c.modelType == .internlm2, c.attentionBias {
            // convert_hf_to_gguf.py reshapes every `attention.wqkv` tensor as a weight, and llama.cpp's internlm2 has
            // no attention biases.
            throw CheckpointError(file: url.path, "GGUF export of InternLM2 with attention biases (config.json bias: true) "
                                  + "is not supported: llama.cpp's internlm2 architecture has none")
        }
        var weights = savedWeights(mergingLoRA: mergingLoRA)
        if c.modelType == .internlm2 { weights = Self.internLM2WeightsInLlamaLayout(weights, configuration: c) }
        let architecture = c.modelType == .qwen2 ? "qwen2" : c.modelType == .internlm2 ? "internlm2" : "llama"
        var writer = GGUFWriter()
        func set(_ key: String, _ value: GGUFValue) { writer.set(key, value) }
        func count(_ key: String, _ value: Int) throws { try writer.setCount("\(architecture).\(key)", value, file: url) }
        writer.setGeneral(architecture: architecture, name: name, parameterCount: weights.reduce(0) { $0 + $1.shape.reduce(1, *) })
        try count("block_count", c.hiddenLayers)
        try count("context_length", c.maxPositionEmbeddings)
        try count("embedding_length", c.hiddenSize)
        try count("feed_forward_length", c.intermediateSize)
        try count("attention.head_count", c.attentionHeads)
        try count("attention.head_count_kv", c.keyValueHeads)
        if case .linear(let factor) = c.ropeScaling {
            set("\(architecture).rope.scaling.type", .string("linear"))
            set("\(architecture).rope.scaling.factor", .float32(Float(factor)))
        }
        if case .llama3(_, _, _, let original) = c.ropeScaling {
            // Not written by convert_hf_to_gguf (llama.cpp reads the factors in rope_freqs.weight), but a loader needs
            // it to recover rope_scaling from them when the original context is not Llama 3's 8192.
            try count("rope.scaling.original_context_length", original)
        }
        set("\(architecture).rope.freq_base", .float32(Float(c.ropeTheta)))
        set("\(architecture).attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEpsilon)))
        if let headDimension = c.headDimension {
            try count("attention.key_length", headDimension)
            try count("attention.value_length", headDimension)
        }
        set("general.file_type", .uint32(outputType.fileType))
        if architecture == "llama" {
            try count("vocab_size", c.vocabularySize)
            try count("rope.dimension_count", c.resolvedHeadDimension)
        }
        set("general.quantization_version", .uint32(2))
        for (key, value) in tokenizerMetadata { set(key, value) }
        // LlamaModel.set_vocab's rule for "granite small models", which SmolLM2 (49,152 tokens, no BOS) relies on.
        if architecture == "llama", c.vocabularySize == 49152 { set("tokenizer.ggml.add_bos_token", .bool(false)) }

        if case .llama3(let factor, let low, let high, let original) = c.ropeScaling {
            let factors = Self.llama3RopeFactors(base: c.ropeTheta, dimension: c.resolvedHeadDimension, factor: factor,
                                                 lowFrequencyFactor: low, highFrequencyFactor: high,
                                                 originalMaxPositions: original)
            writer.addTensor(name: "rope_freqs.weight", shape: [factors.count], type: .f32) {
                try factors.withUnsafeBufferPointer { try GGMLQuantization.quantize($0, as: .f32) }
            }
        }
        for (key, shape, values) in weights {
            guard let ggufName = GGUFTensorNames.ggufName(forHuggingFaceName: key) else {
                throw CheckpointError(file: url.path, "tensor \(key) has no GGUF name")
            }
            let type = outputType.type(of: ggufName, shape: shape)
            let heads: Int? = architecture == "qwen2" ? nil
                : key.hasSuffix("self_attn.q_proj.weight") || key.hasSuffix("self_attn.q_proj.bias") ? c.attentionHeads
                : key.hasSuffix("self_attn.k_proj.weight") || key.hasSuffix("self_attn.k_proj.bias") ? c.keyValueHeads
                : nil
            writer.addTensor(name: ggufName, shape: shape, type: type) {
                let floats = values().floats()
                return try heads.map { try GGUFRotaryPermutation.permuted(floats, rows: shape[0], heads: $0) } ?? floats
            }
        }
        try writer.write(to: url)
    }

    /// InternLM2's weights under the LLaMA names GGUF's tensor table uses: `wqkv` [KVH·(G+2)·D, C] split into q (each
    /// group's G query heads, in head order), k and v, as convert_hf_to_gguf.py's InternLM2Model does; `wo`, `w1`,
    /// `w3`, `w2`, the norms, `tok_embeddings` and `output` renamed.
    static func internLM2WeightsInLlamaLayout(_ weights: [(key: String, shape: [Int], values: () -> Tensor)],
                                              configuration c: LlamaConfiguration) -> [(key: String, shape: [Int], values: () -> Tensor)] {
        let renames = [("attention.wo", "self_attn.o_proj"), ("feed_forward.w1", "mlp.gate_proj"),
                       ("feed_forward.w3", "mlp.up_proj"), ("feed_forward.w2", "mlp.down_proj"),
                       ("attention_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm")]
        let (d, kvHeads, groups) = (c.resolvedHeadDimension, c.keyValueHeads, c.attentionHeads / c.keyValueHeads)
        var result: [(key: String, shape: [Int], values: () -> Tensor)] = []
        for (key, shape, values) in weights {
            if key == "model.tok_embeddings.weight" { result.append(("model.embed_tokens.weight", shape, values)); continue }
            if key == "output.weight" { result.append(("lm_head.weight", shape, values)); continue }
            if key.hasSuffix(".attention.wqkv.weight") {
                let prefix = String(key.dropLast("attention.wqkv.weight".count)), columns = shape[1]
                // Rows [g·(G+2)·D + j·D, … + D) are group g's j-th head: j < G query, G key, G + 1 value.
                func rows(_ heads: Range<Int>) -> () -> Tensor {
                    {
                        let packed = values().reshaped([kvHeads, groups + 2, d, columns])
                        return packed.slice(axis: 1, heads).contiguousCopy(dtype: .float32).reshaped([kvHeads * heads.count * d, columns])
                    }
                }
                result.append((prefix + "self_attn.q_proj.weight", [c.attentionHeads * d, columns], rows(0..<groups)))
                result.append((prefix + "self_attn.k_proj.weight", [kvHeads * d, columns], rows(groups..<(groups + 1))))
                result.append((prefix + "self_attn.v_proj.weight", [kvHeads * d, columns], rows((groups + 1)..<(groups + 2))))
                continue
            }
            var renamed = key
            for (from, to) in renames where key.contains(".\(from).") { renamed = key.replacingOccurrences(of: ".\(from).", with: ".\(to).") }
            result.append((renamed, shape, values))
        }
        return result
    }

    /// Llama 3.1's per-frequency RoPE factors (`rope_freqs.weight`), as convert_hf_to_gguf.py computes them.
    static func llama3RopeFactors(base: Double, dimension: Int, factor: Double, lowFrequencyFactor: Double,
                                  highFrequencyFactor: Double, originalMaxPositions: Int) -> [Float] {
        let lowWavelength = Double(originalMaxPositions) / lowFrequencyFactor
        let highWavelength = Double(originalMaxPositions) / highFrequencyFactor
        return stride(from: 0, to: dimension, by: 2).map { i in
            let frequency = Double(1 / powf(Float(base), Float(i) / Float(dimension)))
            let wavelength = 2 * Double.pi / frequency
            if wavelength < highWavelength { return 1 }
            if wavelength > lowWavelength { return Float(factor) }
            let smooth = (Double(originalMaxPositions) / wavelength - lowFrequencyFactor)
                / (highFrequencyFactor - lowFrequencyFactor)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }
}

extension GGUFWriter {
    /// `key` as GGUF's uint32; a count that does not fit is an error naming `file`.
    mutating func setCount(_ key: String, _ value: Int, file: URL) throws {
        guard let value = UInt32(exactly: value) else {
            throw CheckpointError(file: file.path, "\(key) \(value) does not fit GGUF's UInt32")
        }
        set(key, .uint32(value))
    }

    /// The `general.*` keys convert_hf_to_gguf writes first: architecture, type, name (when given) and size label.
    mutating func setGeneral(architecture: String, name: String, parameterCount: Int) {
        set("general.architecture", .string(architecture))
        set("general.type", .string("model"))
        if !name.isEmpty { set("general.name", .string(name)) }
        set("general.size_label", .string(Self.sizeLabel(parameterCount: parameterCount)))
    }

    /// Adds tensor `name` from its float32 values (made when it is written), quantized to `type` row by row.
    mutating func addTensor(name: String, shape: [Int], type: GGMLType, floats: @escaping () throws -> [Float]) {
        addTensor(name: name, shape: shape, type: type) {
            let values = try floats()
            return try values.withUnsafeBufferPointer { try GGMLQuantization.quantize($0, as: type, rowLength: shape.last ?? values.count) }
        }
    }

    /// `gguf.size_label` of a dense model: the parameter count with a K/M/B/T suffix and at least two digits.
    static func sizeLabel(parameterCount: Int) -> String {
        let n = Double(parameterCount)
        let (scaled, suffix) = n > 1e12 ? (n * 1e-12, "T") : n > 1e9 ? (n * 1e-9, "B") : n > 1e6 ? (n * 1e-6, "M")
            : (n * 1e-3, "K")
        let digits = String(Int(scaled.rounded(.toNearestOrEven))).drop(while: { $0 == "0" }).count
        return String(format: "%.\(max(2 - digits, 0))f", scaled) + suffix
    }
}
