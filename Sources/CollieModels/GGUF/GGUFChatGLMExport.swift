import CollieEngine
import CollieIO
import Foundation

/// ChatGLM2/ChatGLM3 as llama.cpp's `chatglm` architecture, with the metadata and tensors convert_hf_to_gguf.py's
/// ChatGLMModel writes: `transformer.` dropped and the rest renamed (`embedding.word_embeddings` → `token_embd`,
/// `self_attention.query_key_value` → `attn_qkv` with its bias, `mlp.dense_h_to_4h` → `ffn_up` with gate and up still
/// packed, `encoder.final_layernorm` → `output_norm`, `output_layer` → `output`), nothing permuted (llama.cpp rotates
/// the first half of each head in interleaved pairs, as ChatGLM does); `chatglm.*` hyperparameters with
/// `rope.dimension_count` half the head and `rope.freq_base` 10000 · rope_ratio, and no BOS.
///
/// llama.cpp's graph has RMSNorm, a final norm, a bias on q/k/v only and q, k, v packed one after another (multi-query
/// groups); ChatGLM-6B (2D positions) and configurations outside that are refused.
extension ChatGLMForConditionalGeneration {
    static let ggufBlockParts: [(huggingFace: String, gguf: String)] = [
        ("input_layernorm", "attn_norm"), ("self_attention.query_key_value", "attn_qkv"),
        ("self_attention.dense", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
        ("mlp.dense_h_to_4h", "ffn_up"), ("mlp.dense_4h_to_h", "ffn_down"),
    ]

    /// The GGUF name of one of the model's weights (`transformer.encoder.layers.3.mlp.dense_4h_to_h.weight` →
    /// `blk.3.ffn_down.weight`).
    static func ggufName(forHuggingFaceName key: String) -> String? {
        let globals = ["transformer.embedding.word_embeddings.weight": "token_embd.weight",
                       "transformer.encoder.final_layernorm.weight": "output_norm.weight",
                       "transformer.output_layer.weight": "output.weight"]
        if let name = globals[key] { return name }
        let prefix = "transformer.encoder.layers."
        guard key.hasPrefix(prefix), let dot = key.dropFirst(prefix.count).firstIndex(of: "."),
              let block = Int(key[key.index(key.startIndex, offsetBy: prefix.count)..<dot]) else { return nil }
        let rest = key[key.index(after: dot)...]
        for (huggingFace, gguf) in ggufBlockParts {
            for suffix in ["weight", "bias"] where rest == "\(huggingFace).\(suffix)" { return "blk.\(block).\(gguf).\(suffix)" }
        }
        return nil
    }

    /// Why llama.cpp's chatglm architecture cannot run this configuration, or nil.
    var ggufRefusal: String? {
        let c = configuration
        guard let glm = c.chatGLM else { return "not a ChatGLM2/3 configuration" }
        if !glm.multiQueryAttention { return "multi_query_attention false (q, k and v packed per head)" }
        if !glm.rmsNorm { return "rmsnorm false (LayerNorm)" }
        if glm.residualFromNormalized { return "apply_residual_connection_post_layernorm true" }
        if !glm.finalNorm { return "post_layer_norm false" }
        if !glm.originalRope { return "original_rope false" }
        if c.mlpBias { return "add_bias_linear true (biases on dense and the MLP)" }
        return nil
    }

    func writeGGUFModel(into writer: inout GGUFWriter, file: URL, outputType: GGUFOutputType,
                        weights: [(key: String, shape: [Int], values: () -> Tensor)]) throws {
        let c = configuration
        if let reason = ggufRefusal {
            throw CheckpointError(file: file.path, "GGUF export: llama.cpp's chatglm architecture does not support \(reason)")
        }
        func count(_ key: String, _ value: Int) throws { try writer.setCount("chatglm.\(key)", value, file: file) }
        try count("context_length", c.maxPositionEmbeddings)
        try count("embedding_length", c.hiddenSize)
        try count("feed_forward_length", c.intermediateSize)
        try count("block_count", c.hiddenLayers)
        try count("attention.head_count", c.attentionHeads)
        try count("attention.head_count_kv", c.keyValueHeads)
        writer.set("chatglm.attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEpsilon)))
        writer.set("general.file_type", .uint32(outputType.fileType))
        try count("rope.dimension_count", c.resolvedHeadDimension / 2)
        writer.set("tokenizer.ggml.add_bos_token", .bool(false))
        writer.set("chatglm.rope.freq_base", .float32(Float(c.ropeTheta)))
        for (key, shape, values) in weights {
            guard let name = Self.ggufName(forHuggingFaceName: key) else {
                throw CheckpointError(file: file.path, "tensor \(key) has no GGUF name")
            }
            let type = outputType.type(of: name, shape: shape)
            writer.addTensor(name: name, shape: shape, type: type) { values().floats() }
        }
    }
}
