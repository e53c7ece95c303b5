/// Float32 values → the bytes of a GGUF tensor of a given type, byte for byte what the `gguf` Python package's
/// `gguf.quants.quantize` writes (and, for the block types, ggml's reference `quantize_row_*_ref`).
///
/// Block types cut each row into blocks of 32 values. Per block, with `amax` the value of largest magnitude (the
/// first one on ties), `max`/`min` the extremes, and scales stored as float16 (round to nearest even):
///
///     Q8_0  d = |amax| / 127   q = roundAwayFromZero(x · (1/d))         int8          [d, q×32]
///     Q4_0  d = amax / -8      q = min(15, trunc(x · (1/d) + 8.5))      4 bits        [d, q×16 bytes]
///     Q5_0  d = amax / -16     q = min(31, trunc(x · (1/d) + 16.5))     4+1 bits      [d, high bits, low nibbles]
///     Q4_1  d = (max-min)/15   q = min(15, trunc((x-min) · (1/d) + 0.5))              [d, min, nibbles]
///     Q5_1  d = (max-min)/31   q = min(31, trunc((x-min) · (1/d) + 0.5))              [d, min, high bits, nibbles]
///
/// `1/d` is 0 when `d` is 0 (an all-zero or constant block). Float32 arithmetic in that order, a division for `d`
/// and a multiplication by the reciprocal for `q`, no fused multiply-add (Swift does not contract). Nibbles pack
/// value `i` low and value `i + 16` high; high bits pack value `i` into bit `i` of a little-endian UInt32.
/// F16 and BF16 round to nearest even; F16 keeps a NaN's payload as numpy does, BF16 makes NaNs quiet (ggml's
/// `ggml_compute_fp32_to_bf16`).
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
                output.initialize(repeating: 0)
                for b in 0..<blocks {
                    if let error = quantizeBlock(input + b * 32, type: type, into: out + b * type.bytesPerBlock) {
                        failure = GGMLQuantizationError("value \(b * 32 + error) is not finite")
                        break
                    }
                }
            }
            initialized = byteCount
        }
        if let failure { throw failure }
        return bytes
    }

    /// Quantizes one block of 32 values; returns the index of a non-finite value instead when there is one.
    private static func quantizeBlock(_ x: UnsafePointer<Float>, type: GGMLType, into o: UnsafeMutablePointer<UInt8>)
        -> Int?
    {
        var amax: Float = -1, signedMax: Float = 0, lowest = x[0], highest = x[0]  // -1: ties keep the first
        for i in 0..<32 {
            let v = x[i]
            guard v.isFinite else { return i }
            if abs(v) > amax { amax = abs(v); signedMax = v }
            lowest = Swift.min(lowest, v)
            highest = Swift.max(highest, v)
        }
        var q = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // 32 codes, one byte each
        withUnsafeMutableBytes(of: &q) { codesBuffer in
            let codes = codesBuffer.bindMemory(to: UInt8.self).baseAddress.unsafelyUnwrapped
            switch type {
            case .q8_0:
                let d = amax / 127
                let id: Float = d == 0 ? 0 : 1 / d
                store(Float16(d).bitPattern, at: o)
                for i in 0..<32 {
                    let v = (x[i] * id).rounded(.toNearestOrAwayFromZero)
                    o[2 + i] = UInt8(bitPattern: Int8(Swift.min(127, Swift.max(-127, v.isNaN ? 0 : v))))
                }
            case .q4_0, .q5_0:
                let levels: Float = type == .q4_0 ? 8 : 16
                let d = signedMax / -levels
                let id: Float = d == 0 ? 0 : 1 / d
                for i in 0..<32 { codes[i] = code(x[i] * id + (levels + 0.5), top: 2 * levels - 1) }
                store(Float16(d).bitPattern, at: o)
                if type == .q4_0 { packNibbles(codes, into: o + 2) } else {
                    packHighBits(codes, into: o + 2)
                    packNibbles(codes, into: o + 6)
                }
            case .q4_1, .q5_1:
                let levels: Float = type == .q4_1 ? 15 : 31
                let d = (highest - lowest) / levels
                let id: Float = d == 0 ? 0 : 1 / d
                for i in 0..<32 { codes[i] = code((x[i] - lowest) * id + 0.5, top: levels) }
                store(Float16(d).bitPattern, at: o)
                store(Float16(lowest).bitPattern, at: o + 2)
                if type == .q4_1 { packNibbles(codes, into: o + 4) } else {
                    packHighBits(codes, into: o + 4)
                    packNibbles(codes, into: o + 8)
                }
            default:
                preconditionFailure("not a 32-value block type: \(type)")
            }
        }
        return nil
    }

    /// `clip(trunc(v).astype(uint8), 0, top)` for the values the block formulas produce (NaN → 0).
    @inline(__always)
    private static func code(_ v: Float, top: Float) -> UInt8 {
        let t = v.rounded(.towardZero)
        return t >= 0 ? UInt8(Swift.min(t, top)) : 0
    }

    /// Value `i` in the low nibble and value `i + 16` in the high nibble of byte `i`.
    @inline(__always)
    private static func packNibbles(_ codes: UnsafePointer<UInt8>, into o: UnsafeMutablePointer<UInt8>) {
        for i in 0..<16 { o[i] = (codes[i] & 0x0F) | (codes[i + 16] << 4) }
    }

    /// Bit 4 of value `i` at bit `i` of a little-endian UInt32.
    @inline(__always)
    private static func packHighBits(_ codes: UnsafePointer<UInt8>, into o: UnsafeMutablePointer<UInt8>) {
        var bits: UInt32 = 0
        for i in 0..<32 where codes[i] >> 4 != 0 { bits |= 1 << UInt32(i) }
        for k in 0..<4 { o[k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) }
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
