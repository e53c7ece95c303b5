import CCollieKernels

/// A GGML block format a weight matrix can be kept in: runs of 32 (or 256, the K-quants) values stored as small
/// integers with one or two float16 scales per block, as GGUF files store them.
///
/// The raw values are the names `quantize:` takes in a config (`q4_k`, not `q4_K`).
public enum BlockFormat: String, Codable, CaseIterable, Sendable {
    case q8_0, q4_0, q4_1, q5_0, q5_1
    case q4_K = "q4_k", q5_K = "q5_k", q6_K = "q6_k"

    /// GGML's type code (GGMLType's raw value), the format's id in the C kernels.
    public var ggmlType: Int32 {
        switch self {
        case .q4_0: 2
        case .q4_1: 3
        case .q5_0: 6
        case .q5_1: 7
        case .q8_0: 8
        case .q4_K: 12
        case .q5_K: 13
        case .q6_K: 14
        }
    }

    /// The format with GGML type code `ggmlType`, or nil for a type the kernels do not take.
    public init?(ggmlType: Int32) {
        guard let format = BlockFormat.allCases.first(where: { $0.ggmlType == ggmlType }) else { return nil }
        self = format
    }

    /// Values per block: 32, or 256 for the K-quants.
    public var blockElements: Int { collie_block_elements(ggmlType) }

    /// Bytes per block.
    public var blockBytes: Int { collie_block_bytes(ggmlType) }

    /// Whether Collie can quantize float weights to this format (`QuantizedMatrix(quantizing:as:)`); the others
    /// (Q5_K, Q6_K) are only read from GGUF files.
    public var isQuantizable: Bool {
        switch self {
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K: true
        case .q5_K, .q6_K: false
        }
    }
}
