/// The row order llama.cpp's `convert_hf_to_gguf.py` gives the q_proj and k_proj weights (and biases) of `llama`
/// (and `mistral`) models, and its inverse (transformers' `_reverse_permute_weights`).
///
/// Hugging Face stores each head's rows as two halves (the rotate-half RoPE layout); GGUF interleaves them
/// (pairs of adjacent rows). With `D` rows per head and `h` the head:
///
///     gguf[h*D + 2*i + j] = huggingFace[h*D + j*(D/2) + i]     (i < D/2, j ∈ {0, 1})
///
/// Use the model's attention head count for q_proj and its key/value head count for k_proj. `qwen2` is not
/// permuted. Only whole rows move, so any element type works.
public enum GGUFRotaryPermutation {
    /// Hugging Face order → GGUF order (`LlamaModel.permute` in convert_hf_to_gguf.py).
    public static func permuted<Element>(_ values: [Element], rows: Int, heads: Int) throws -> [Element] {
        try reorder(values, rows: rows, heads: heads, toGGUF: true)
    }

    /// GGUF order → Hugging Face order (transformers' `_reverse_permute_weights`).
    public static func unpermuted<Element>(_ values: [Element], rows: Int, heads: Int) throws -> [Element] {
        try reorder(values, rows: rows, heads: heads, toGGUF: false)
    }

    private static func reorder<Element>(_ values: [Element], rows: Int, heads: Int, toGGUF: Bool) throws
        -> [Element]
    {
        guard rows > 0, heads > 0, rows % (2 * heads) == 0, values.count % rows == 0 else {
            throw ModelConfigurationError(
                "cannot reorder q/k rows for rotary embeddings: \(values.count) values in \(rows) rows "
                    + "do not split into \(heads) heads of an even number of rows")
        }
        let columns = values.count / rows
        let rowsPerHead = rows / heads
        let half = rowsPerHead / 2
        var result = values
        for head in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let interleaved = head * rowsPerHead + 2 * i + j
                    let split = head * rowsPerHead + j * half + i
                    let (destination, source) = toGGUF ? (interleaved, split) : (split, interleaved)
                    for c in 0..<columns { result[destination * columns + c] = values[source * columns + c] }
                }
            }
        }
        return result
    }
}
