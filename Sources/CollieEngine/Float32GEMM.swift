import CCollieKernels
import Foundation

/// Which GEMM runs float32 matrix products (`Float.gemm`): OpenBLAS's sgemm, or Collie's own packed GEMM
/// (`Float.packedGEMM`, `CCollieKernels/gemm*.c`) where it measured faster.
///
/// The choice is fixed per CPU and kernel level, so a run computes the same bits every time: Collie's GEMM on AMD CPUs
/// with AVX-512 or AVX2 (kernel level ≥ 1). On a Zen 5 its 14×32 AVX-512 microkernel and vectorized packing ran the
/// small preset's linear layers at 1.04–1.23× OpenBLAS 0.3.21's Cooperlake kernel and its training step 1.14× faster;
/// capped at AVX2 (`COLLIE_KERNEL_LEVEL=1`, against OpenBLAS's Haswell kernel) the step ran 1.02–1.06× faster, and on
/// a Zen 4 the AVX2 kernel matched OpenBLAS single-threaded (docs/PERFORMANCE.md, "Own GEMM"). Also on Intel CPUs with
/// AVX-512 (level ≥ 2): on an Ice Lake Xeon the small preset's linear layers ran at 1.02–1.19× OpenBLAS's SkylakeX
/// kernel and its training step 1.12–1.15× faster; capped at AVX2 there it measured at parity with OpenBLAS's
/// Haswell kernel, so an Intel CPU without AVX-512 keeps OpenBLAS. OpenBLAS everywhere else, and in debug builds, whose
/// unoptimized C kernels are many times slower. The environment variable `COLLIE_FLOAT32_GEMM=openblas|collie`
/// overrides the choice (for comparing the two).
public enum Float32GEMM: String, Sendable {
    case openBLAS = "openblas"
    case collie

    /// The override from `COLLIE_FLOAT32_GEMM` (read at start; an unknown value is ignored), or set by tests.
    nonisolated(unsafe) static var override: Float32GEMM? = ProcessInfo.processInfo.environment["COLLIE_FLOAT32_GEMM"]
        .flatMap { Float32GEMM(rawValue: $0.lowercased()) }

    /// The GEMM float32 products take now (the kernel level can be limited at run time, as tests do).
    public static var current: Float32GEMM {
        if let override { return override }
        return collie_gemm_prefers_own_f32() != 0 ? .collie : .openBLAS
    }
}
