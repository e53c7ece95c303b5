import CCollieKernels
import CollieEngine

/// Dequantization of ggml's tensor types to `Float`, bit for bit as the `gguf` Python package's
/// `gguf.quants.dequantize` computes it.
///
/// Each block holds `blockSize` values: one or two float16 scales (`d`, and `m` or `dmin` for the types with an
/// offset) and small integers `q`. The value is `d × q` (Q4_0, Q5_0, Q8_0), `d × q + m` (Q4_1, Q5_1), or, for the
/// 256-value K types, a sub-block scale `dl = d × sc` (and `ml = dmin × m`) times `q` (minus `ml`): Q2_K, Q3_K, Q4_K,
/// Q5_K, Q6_K. Every product and sum is one float32 operation in numpy's order (neither Swift nor the C kernels fuse
/// `a × b + c`), so the results are the reference's bits. The 8 block formats of the quantized kernels (Q4_0 … Q8_0,
/// Q4_K, Q5_K, Q6_K) go to `collie_dequantize_rows` (CCollieKernels/quantized.c); Q2_K and Q3_K, which nothing else
/// reads, keep their Swift loops below. Large tensors are split across threads.
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
        case .q2_K: kernel = q2_K
        case .q3_K: kernel = q3_K
        default:
            // The 8 block formats of the quantized kernels: collie_dequantize_rows, vectorized per kernel level.
            guard let format = BlockFormat(ggmlType: Int32(type.rawValue)) else { throw Failure.unsupportedType(type) }
            let (inBytes, outValues) = (type.bytesPerBlock, type.blockSize)
            Parallel.forEach(blockCount, minimumChunk: max(1, (1 << 16) / outValues)) { r in
                collie_dequantize_rows(format.ggmlType, source + r.lowerBound * inBytes,
                                       destination + r.lowerBound * outValues, 1, r.count * outValues)
            }
            return
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
}
