import CCollieKernels

/// The arithmetic of float32 matrix products inside a scope: `mixed_precision: bf16` runs training's forward and
/// backward with `.bfloat16` (PyTorch autocast's semantics on CPU: GEMM operands rounded to bfloat16, accumulation in
/// float32; norms, softmax, the loss and the optimizer stay float32).
///
/// A task-local value like `GradMode`: it covers the GEMMs the scope's own thread issues (every linear layer's forward,
/// dX and dW and `matmul`), never another model's work on another thread. Inside `Parallel.forEach` chunks GEMMs are
/// float32 on every thread, the scope's own included, so results are deterministic; attention reads the precision on
/// the caller's thread and hands it to its tile products on every thread (as autocast runs attention in bf16).
public enum MixedPrecision {
    @TaskLocal static var gemm: GEMMPrecision = .float32

    /// The precision float32 GEMMs use here.
    @usableFromInline
    static var current: GEMMPrecision { gemm }

    /// Runs `body` with float32 GEMMs in `precision`.
    public static func with<R>(_ precision: GEMMPrecision, _ body: () throws -> R) rethrows -> R {
        try $gemm.withValue(precision, operation: body)
    }

    /// Runs a parallel loop's chunks with float32 GEMMs: whichever thread takes a chunk (the scope's own thread takes
    /// some), its products are the same, so a result never depends on the scheduling.
    @usableFromInline
    static func withFloat32Chunks(_ body: () -> Void) {
        $gemm.withValue(.float32, operation: body)
    }

    /// Whether this CPU has bfloat16 instructions at the current kernel level (AVX512_BF16, AMX-BF16).
    public static var hasBFloat16Hardware: Bool { collie_kernel_level() >= 4 }

    /// The instructions `.bfloat16` products multiply with here.
    public static var bfloat16Products: BFloat16Products {
        switch collie_gemm_kernel_level(1) {
        case 5: .amx
        case 4: .pairs
        default: .float32
        }
    }

    /// How a `.bfloat16` product multiplies its rounded operands.
    public enum BFloat16Products: String, Sendable {
        /// AMX-BF16 tiles (`tdpbf16ps`).
        case amx = "AMX-BF16"
        /// AVX512_BF16 pair dot products (`vdpbf16ps`).
        case pairs = "AVX512_BF16"
        /// The float32 FMA kernel: on CPUs without bfloat16 instructions (slower than plain float32: the rounding costs
        /// and nothing is gained), and on those whose pair dot product is slower than their FMA
        /// (`collie_gemm_set_bf16_pairs`).
        case float32 = "float32 FMA"
    }
}
