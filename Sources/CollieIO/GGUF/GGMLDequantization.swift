import CCollieKernels
import CollieEngine

/// Dequantization of ggml's tensor types to `Float`, bit for bit as the `gguf` Python package's
/// `gguf.quants.dequantize` computes it.
///
/// Each block holds `blockSize` values: one or two float16 scales (`d`, and `m` or `dmin` for the types with an
/// offset) and small integers `q`. The value is `d × q` (Q4_0, Q5_0, Q8_0), `d × q + m` (Q4_1, Q5_1), or, for the
/// 256-value K types, a sub-block scale `dl = d × sc` (and `ml = dmin × m`) times `q` (minus `ml`): Q2_K, Q3_K, Q4_K,
/// Q5_K, Q6_K. Every product and sum is one float32 operation in numpy's order (Swift never fuses `a × b + c`), so
/// the results are the reference's bits. The loops are fixed-length per block, which the compiler vectorizes, and
/// large tensors are split across threads.
public enum GGMLDequantization {
    /// The types `dequantize` handles.
    public static let supportedTypes: [GGMLType] = [.f32, .f16, .bf16, .f64, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1,
                                                    .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    /// Whether `dequantize` handles `type`.
    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .f32, .f16, .bf16, .f64, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: true
        default: false
        }
    }

    /// Why `dequantize` refused its input.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        /// Collie cannot dequantize this type (the IQ, TQ and MXFP4 types, Q8_K, Q8_1, the integer types).
        case unsupportedType(GGMLType)
        /// The byte count is not whole blocks, or the output does not hold exactly their values.
        case sizeMismatch(type: GGMLType, byteCount: Int, valueCount: Int)

        public var description: String {
            switch self {
            case .unsupportedType(let type): "Collie cannot dequantize \(type) tensors"
            case .sizeMismatch(let type, let byteCount, let valueCount):
                "\(byteCount) bytes of \(type) (\(type.bytesPerBlock) bytes per \(type.blockSize) values) "
                    + "do not hold \(valueCount) values"
            }
        }
    }

    /// Writes the values that `bytes` (whole blocks of `type`) hold into `output`, which has room for exactly them.
    /// - Throws: `Failure` for an unsupported type or mismatched sizes.
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType,
                                  into output: UnsafeMutableBufferPointer<Float>) throws {
        guard supports(type) else { throw Failure.unsupportedType(type) }
        let blockCount = bytes.count / type.bytesPerBlock
        guard bytes.count % type.bytesPerBlock == 0,
              case (let valueCount, false) = blockCount.multipliedReportingOverflow(by: type.blockSize),
              valueCount == output.count else {
            throw Failure.sizeMismatch(type: type, byteCount: bytes.count, valueCount: output.count)
        }
        guard blockCount > 0, let source = bytes.baseAddress, let destination = output.baseAddress else { return }
        let kernel: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void
        switch type {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: bytes.count)
            return
        case .f16 where Int(bitPattern: source) % 2 == 0:
            // F16C where the CPU has it (exact, like numpy's astype).
            Parallel.forEach(blockCount, minimumChunk: 1 << 16) { r in
                collie_f16_to_f32(source.assumingMemoryBound(to: UInt16.self) + r.lowerBound,
                                  destination + r.lowerBound, r.count)
            }
            return
        case .f16:
            Parallel.forEach(blockCount, minimumChunk: 1 << 16) { r in for i in r { destination[i] = half(source, 2 * i) } }
            return
        case .bf16:
            Parallel.forEach(blockCount, minimumChunk: 1 << 16) { r in
                for i in r {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    destination[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            }
            return
        case .f64:
            Parallel.forEach(blockCount, minimumChunk: 1 << 16) { r in
                for i in r {
                    destination[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                }
            }
            return
        case .q8_0: kernel = q8_0
        case .q4_0: kernel = q4_0
        case .q4_1: kernel = q4_1
        case .q5_0: kernel = q5_0
        case .q5_1: kernel = q5_1
        case .q2_K: kernel = q2_K
        case .q3_K: kernel = q3_K
        case .q4_K: kernel = q4_K
        case .q5_K: kernel = q5_K
        case .q6_K: kernel = q6_K
        default: throw Failure.unsupportedType(type)
        }
        let inBytes = type.bytesPerBlock, outValues = type.blockSize
        Parallel.forEach(blockCount, minimumChunk: max(1, (1 << 16) / outValues)) { r in
            for b in r { kernel(source + b * inBytes, destination + b * outValues) }
        }
    }

    /// The float16 at byte `offset` of `p`, widened exactly.
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        HalfPrecision.float(float16: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    // MARK: - 32-value blocks

    /// Q8_0 (34 bytes): d, then 32 int8. x = q × d.
    static func q8_0(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let q = (p + 2).assumingMemoryBound(to: Int8.self)
        for j in 0..<32 { out[j] = Float(q[j]) * d }
    }

    /// Q4_0 (18 bytes): d, then 16 bytes of nibbles (low nibbles are values 0–15, high 16–31). x = d × (q − 8).
    static func q4_0(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let q = (p + 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            out[j] = d * Float(Int32(q[j] & 0x0F) - 8)
            out[j + 16] = d * Float(Int32(q[j] >> 4) - 8)
        }
    }

    /// Q4_1 (20 bytes): d, m, then 16 bytes of nibbles. x = d × q + m.
    static func q4_1(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), m = half(p, 2)
        let q = (p + 4).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            out[j] = d * Float(q[j] & 0x0F) + m
            out[j + 16] = d * Float(q[j] >> 4) + m
        }
    }

    /// Q5_0 (22 bytes): d, 32 high bits (value j's fifth bit is bit j), 16 bytes of nibbles. x = d × (q − 16).
    static func q5_0(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        let q = (p + 6).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            let low = Int32(q[j] & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4
            let high = Int32(q[j] >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4
            out[j] = d * Float(low - 16)
            out[j + 16] = d * Float(high - 16)
        }
    }

    /// Q5_1 (24 bytes): d, m, 32 high bits, 16 bytes of nibbles. x = d × q + m.
    static func q5_1(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), m = half(p, 2)
        let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let q = (p + 8).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            let low = UInt32(q[j] & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let high = UInt32(q[j] >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            out[j] = d * Float(low) + m
            out[j + 16] = d * Float(high) + m
        }
    }

    // MARK: - 256-value K blocks

    /// Q2_K (84 bytes): 16 scale bytes (low nibble sc, high nibble m, one per 16 values), 64 bytes of 2-bit q,
    /// d, dmin. Value k = 128h + 32s + l has q = (qs[32h + l] >> 2s) & 3; x = (d × sc) × q − dmin × m.
    static func q2_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let scales = p.assumingMemoryBound(to: UInt8.self)
        let qs = (p + 16).assumingMemoryBound(to: UInt8.self)
        let d = half(p, 80), dmin = half(p, 82)
        for h in 0..<2 {
            for s in 0..<4 {
                for half16 in 0..<2 {
                    let k0 = 128 * h + 32 * s + 16 * half16
                    let sc = scales[k0 / 16]
                    let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        let q = (qs[32 * h + 16 * half16 + l] >> UInt8(2 * s)) & 3
                        out[k0 + l] = dl * Float(q) - ml
                    }
                }
            }
        }
    }

    /// Q3_K (110 bytes): 32 bytes of high-bit mask, 64 bytes of 2-bit low q, 12 bytes of 6-bit scales, d.
    /// Value k = 128h + 32s + l has q = ((qs[32h + l] >> 2s) & 3) − 4 when bit k/32 of hmask[l] is clear;
    /// x = (d × (sc − 32)) × q.
    static func q3_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let hmask = p.assumingMemoryBound(to: UInt8.self)
        let qs = (p + 32).assumingMemoryBound(to: UInt8.self)
        let packed = (p + 96).assumingMemoryBound(to: UInt8.self)
        let d = half(p, 108)
        for i in 0..<16 {
            let low = (packed[i % 8] >> UInt8(4 * (i / 8))) & 0x0F
            let high = (packed[8 + i % 4] >> UInt8(2 * (i / 4))) & 0x03
            let dl = d * Float(Int32(low | high << 4) - 32)
            let k0 = 16 * i, h = k0 / 128, shift = UInt8(2 * ((k0 % 128) / 32)), bit = UInt8(k0 / 32), l0 = k0 % 32
            for l in 0..<16 {
                let q = Int32((qs[32 * h + l0 + l] >> shift) & 3)
                let set = (hmask[l0 + l] >> bit) & 1
                out[k0 + l] = dl * Float(q - (set == 0 ? 4 : 0))
            }
        }
    }

    /// The 8 six-bit scales and mins of a Q4_K/Q5_K block's 12 packed bytes (`get_scale_min` in `gguf`).
    @inline(__always)
    static func scaleAndMin(_ s: UnsafePointer<UInt8>, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (s[j] & 0x3F, s[j + 4] & 0x3F) }
        return ((s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30), (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30))
    }

    /// Q4_K (144 bytes): d, dmin, 12 bytes of scales and mins, 128 bytes of nibbles. Sub-block g (32 values) reads
    /// the low (g even) or high nibbles of qs[32(g/2) ..< 32(g/2) + 32]; x = (d × sc) × q − dmin × m.
    static func q4_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), dmin = half(p, 2)
        let packed = (p + 4).assumingMemoryBound(to: UInt8.self)
        let qs = (p + 16).assumingMemoryBound(to: UInt8.self)
        for g in 0..<8 {
            let (sc, m) = scaleAndMin(packed, g)
            let dl = d * Float(sc), ml = dmin * Float(m)
            let shift = UInt8(4 * (g % 2)), q = qs + 32 * (g / 2), o = out + 32 * g
            for l in 0..<32 { o[l] = dl * Float((q[l] >> shift) & 0x0F) - ml }
        }
    }

    /// Q5_K (176 bytes): d, dmin, 12 bytes of scales and mins, 32 bytes of fifth bits (bit g of qh[l] for
    /// sub-block g), 128 bytes of nibbles as in Q4_K. x = (d × sc) × q − dmin × m.
    static func q5_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), dmin = half(p, 2)
        let packed = (p + 4).assumingMemoryBound(to: UInt8.self)
        let qh = (p + 16).assumingMemoryBound(to: UInt8.self)
        let qs = (p + 48).assumingMemoryBound(to: UInt8.self)
        for g in 0..<8 {
            let (sc, m) = scaleAndMin(packed, g)
            let dl = d * Float(sc), ml = dmin * Float(m)
            let shift = UInt8(4 * (g % 2)), q = qs + 32 * (g / 2), o = out + 32 * g
            for l in 0..<32 {
                let value = ((q[l] >> shift) & 0x0F) | ((qh[l] >> UInt8(g)) & 1) << 4
                o[l] = dl * Float(value) - ml
            }
        }
    }

    /// Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales, d.
    /// Value k = 128h + r has low = ql[64h + r % 64] >> 4(r / 64), high = qh[32h + r % 32] >> 2(r / 32);
    /// x = (d × scale[k / 16]) × (low | high << 4 − 32).
    static func q6_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let ql = p.assumingMemoryBound(to: UInt8.self)
        let qh = (p + 128).assumingMemoryBound(to: UInt8.self)
        let scales = (p + 192).assumingMemoryBound(to: Int8.self)
        let d = half(p, 208)
        for h in 0..<2 {
            for s in 0..<4 {
                let k0 = 128 * h + 32 * s
                let lowShift = UInt8(4 * (s / 2)), highShift = UInt8(2 * s)
                let low = ql + 64 * h + 32 * (s % 2), high = qh + 32 * h
                let d0 = d * Float(scales[k0 / 16]), d1 = d * Float(scales[k0 / 16 + 1])
                for l in 0..<32 {
                    let q = Int32(((low[l] >> lowShift) & 0x0F) | ((high[l] >> highShift) & 0x03) << 4) - 32
                    out[k0 + l] = (l < 16 ? d0 : d1) * Float(q)
                }
            }
        }
    }
}
