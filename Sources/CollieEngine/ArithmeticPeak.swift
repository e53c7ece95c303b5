import CCollieKernels

/// The multiply-add instructions whose peak rate `collie bench train` measures and divides a step's FLOP/s by (MFU).
public enum ArithmeticPeak: String, CaseIterable, Sendable, Codable {
    /// float32 FMA on 256-bit registers (AVX2+FMA).
    case float32AVX2 = "fp32-avx2"
    /// float32 FMA on 512-bit registers (AVX-512F).
    case float32AVX512 = "fp32-avx512"
    /// bfloat16 pair dot products on 512-bit registers (AVX512_BF16 `vdpbf16ps`), float32 accumulation.
    case bfloat16AVX512 = "bf16-avx512"
    /// bfloat16 tile dot products (AMX-BF16 `tdpbf16ps`, 16 × 16 × 32 pairs), float32 accumulation.
    case bfloat16AMX = "bf16-amx"

    private var kind: collie_peak_kind {
        switch self {
        case .float32AVX2: COLLIE_PEAK_FP32_AVX2
        case .float32AVX512: COLLIE_PEAK_FP32_AVX512
        case .bfloat16AVX512: COLLIE_PEAK_BF16_AVX512
        case .bfloat16AMX: COLLIE_PEAK_BF16_AMX
        }
    }

    /// Whether this CPU (at the current kernel level) has the instruction.
    public var isAvailable: Bool {
        let level = Int(collie_kernel_level())
        switch self {
        case .float32AVX2: return level >= 1
        case .float32AVX512: return level >= 2
        case .bfloat16AVX512: return level >= 4
        case .bfloat16AMX: return level >= 5
        }
    }

    /// The widest float32 instruction available: what float32 GEMM kernels can reach at best (nil off x86).
    public static var float32: ArithmeticPeak? {
        [.float32AVX512, .float32AVX2].first { $0.isAvailable }
    }

    /// The bfloat16 instruction the bf16 GEMM runs (AMX tiles, else AVX512_BF16 pairs), where it runs one: nil where
    /// bf16 products go through the float32 FMA (`MixedPrecision.bfloat16Products`).
    public static var bfloat16: ArithmeticPeak? {
        switch MixedPrecision.bfloat16Products {
        case .amx: .bfloat16AMX
        case .pairs: .bfloat16AVX512
        case .float32: nil
        }
    }

    /// GFLOP/s of this instruction summed over `threads` threads running together for about `seconds` (a
    /// multiply-add is 2 FLOPs); nil where the CPU lacks it. Other work on the machine lowers the result.
    public func measure(threads: Int, seconds: Double = 0.25) -> Double? {
        guard isAvailable, threads >= 1, threads <= 256, seconds > 0 else { return nil }
        let gflops = collie_peak_gflops(kind, Int32(threads), seconds)
        return gflops > 0 ? gflops : nil
    }
}
