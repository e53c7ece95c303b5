/// The names llama.cpp gives a LLaMA-family model's tensors in GGUF files (`llama`, `mistral` and `qwen2`
/// architectures), and the Hugging Face names Collie's modules carry.
///
/// `token_embd.weight` ↔ `model.embed_tokens.weight`, `output_norm.weight` ↔ `model.norm.weight`,
/// `output.weight` ↔ `lm_head.weight`, and per block `blk.N.<part>.(weight|bias)` ↔
/// `model.layers.N.<module>.(weight|bias)`. Names outside this table map to nil.
public enum GGUFTensorNames {
    /// Block parts: the GGUF name and the Hugging Face module path inside `model.layers.N`.
    static let blockParts: [(gguf: String, huggingFace: String)] = [
        ("attn_norm", "input_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_norm", "post_attention_layernorm"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ]

    /// Tensors outside the blocks.
    static let globalTensors: [(gguf: String, huggingFace: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ]

    /// The Hugging Face name of a GGUF tensor (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`).
    public static func huggingFaceName(forGGUFName name: String) -> String? {
        if let global = globalTensors.first(where: { $0.gguf == name }) { return global.huggingFace }
        guard let (block, part, suffix) = split(name, prefix: "blk.", parts: blockParts.map(\.gguf)),
              let entry = blockParts.first(where: { $0.gguf == part }) else { return nil }
        return "model.layers.\(block).\(entry.huggingFace).\(suffix)"
    }

    /// The GGUF name of a Hugging Face tensor (`model.layers.3.mlp.down_proj.weight` → `blk.3.ffn_down.weight`).
    public static func ggufName(forHuggingFaceName name: String) -> String? {
        if let global = globalTensors.first(where: { $0.huggingFace == name }) { return global.gguf }
        guard let (block, part, suffix) = split(name, prefix: "model.layers.", parts: blockParts.map(\.huggingFace)),
              let entry = blockParts.first(where: { $0.huggingFace == part }) else { return nil }
        return "blk.\(block).\(entry.gguf).\(suffix)"
    }

    /// Splits `<prefix><block>.<part>.<weight|bias>` with a decimal block number and a known part.
    private static func split(_ name: String, prefix: String, parts: [String]) -> (Int, String, String)? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        let digits = rest[..<dot]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              digits == "0" || !digits.hasPrefix("0"), let block = Int(digits) else { return nil }
        let tail = rest[rest.index(after: dot)...]
        for suffix in ["weight", "bias"] where tail.hasSuffix("." + suffix) {
            let part = String(tail.dropLast(suffix.count + 1))
            if parts.contains(part) { return (block, part, suffix) }
        }
        return nil
    }
}
