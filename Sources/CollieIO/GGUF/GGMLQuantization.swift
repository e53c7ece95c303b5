import CCollieKernels

/// Float32 values → the bytes of a GGUF tensor of a given type, byte for byte what the `gguf` Python package's
/// `gguf.quants.quantize` writes (and, for the block types, ggml's reference `quantize_row_*_ref`).
///
/// The block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: 32 values per block, float16 scales) are quantized by
/// `collie_quantize_rows` (CCollieKernels' quantize.c, which states their formulas); this file checks the sizes and
/// values first, since ggml's arithmetic assumes finite values. F16 and BF16 round to nearest even; F16 keeps a NaN's
/// payload as numpy does, BF16 makes NaNs quiet (ggml's `ggml_compute_fp32_to_bf16`).
public enum GGMLQuantization {
    /// The types `quantize` writes.
    public static let supportedTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    /// The bytes of `values` (row-major rows of `rowLength` values; one row when nil) stored as `type`.
    ///
    /// Throws when the type is not supported, when the row length is not a multiple of the type's block size
    /// (convert_hf_to_gguf then falls back to another type), or when a block type meets a NaN or infinity.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, as type: GGMLType, rowLength: Int? = nil)
        throws -> [UInt8]
    {
        let rowLength = rowLength ?? values.count
        guard supportedTypes.contains(type) else {
            throw GGMLQuantizationError("quantizing to \(type) is not supported (supported: "
                + supportedTypes.map(\.description).joined(separator: ", ") + ")")
        }
        guard rowLength > 0 ? values.count % rowLength == 0 : values.isEmpty else {
            throw GGMLQuantizationError("\(values.count) values do not split into rows of \(rowLength)")
        }
        guard rowLength % type.blockSize == 0 else {
            throw GGMLQuantizationError(
                "a row of \(rowLength) values is not a multiple of \(type)'s block size \(type.blockSize)")
        }
        let blocks = values.count / type.blockSize
        let (byteCount, overflow) = blocks.multipliedReportingOverflow(by: type.bytesPerBlock)
        guard !overflow else { throw GGMLQuantizationError("\(values.count) values are too many to quantize") }
        guard let input = values.baseAddress, blocks > 0 else { return [] }
        var failure: GGMLQuantizationError?
        let bytes = [UInt8](unsafeUninitializedCapacity: byteCount) { output, initialized in
            guard let out = output.baseAddress else { return }
            switch type {
            case .f32:
                UnsafeMutableRawPointer(out).copyMemory(from: input, byteCount: byteCount)
            case .f16:
                for i in 0..<blocks { store(float16(input[i]), at: out + 2 * i) }
            case .bf16:
                for i in 0..<blocks { store(bfloat16(input[i]), at: out + 2 * i) }
            default:
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    failure = GGMLQuantizationError("value \(bad) is not finite")
                    output.initialize(repeating: 0)
                } else {
                    let rows = values.count / rowLength
                    let done = collie_quantize_rows(Int32(type.rawValue), input, out, rows, rowLength)
                    precondition(done == 1, "collie_quantize_rows refused \(type), a supported type")
                }
            }
            initialized = byteCount
        }
        if let failure { throw failure }
        return bytes
    }

    /// numpy's float32 → float16: round to nearest even; a NaN keeps its sign and top payload bits (and stays NaN).
    @inline(__always)
    static func float16(_ value: Float) -> UInt16 {
        guard value.isNaN else { return Float16(value).bitPattern }
        let bits = value.bitPattern
        let payload = UInt16(truncatingIfNeeded: (bits & 0x007f_ffff) >> 13)
        return UInt16(truncatingIfNeeded: bits >> 16) & 0x8000 | 0x7c00 + (payload == 0 ? 1 : payload)
    }

    /// ggml's float32 → bfloat16: NaNs made quiet, then rounded to nearest even.
    @inline(__always)
    static func bfloat16(_ value: Float) -> UInt16 {
        var n = value.bitPattern
        if n & 0x7fff_ffff > 0x7f80_0000 { n = (n & 0xffff_0000) | (64 << 16) }
        return UInt16(truncatingIfNeeded: (UInt64(n) + UInt64(0x7fff + ((n >> 16) & 1))) >> 16)
    }

    @inline(__always)
    private static func store(_ value: UInt16, at o: UnsafeMutablePointer<UInt8>) {
        o[0] = UInt8(truncatingIfNeeded: value)
        o[1] = UInt8(truncatingIfNeeded: value >> 8)
    }
}

/// Values GGUF quantization cannot store as asked.
public struct GGMLQuantizationError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
