/// One tensor of a GGUF file, as its header describes it (validated when the file opened).
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name in the file (llama.cpp's names: `blk.0.attn_q.weight`, `token_embd.weight`, …).
    public let name: String
    /// How its elements are stored.
    public let type: GGMLType
    /// ggml's `ne`: the row length first (`ne[0]`), the slowest dimension last.
    public let dimensions: [Int]
    /// Number of values (the product of `dimensions`).
    public let elementCount: Int
    /// Bytes its data takes in the file.
    public let byteCount: Int
    /// Where its data starts, in bytes from the beginning of the file.
    public let offset: Int

    /// The shape as PyTorch and safetensors write it (row-major): `dimensions` reversed.
    public var shape: [Int] { dimensions.reversed() }
}
