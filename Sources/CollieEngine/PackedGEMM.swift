import CCollieKernels

/// The arithmetic of a float32 matrix product.
public enum GEMMPrecision: Sendable, Equatable {
    /// Float32 operands, float32 accumulation.
    case float32
    /// Both operands rounded to bfloat16 (to nearest even), products accumulated in float32: PyTorch's autocast
    /// semantics for `bf16` mixed precision. AVX512_BF16's `vdpbf16ps` runs it at twice the float32 rate.
    case bfloat16
}

extension Float {
    /// Row-major C = alpha·op(A)·op(B) + beta·C on Collie's own packed GEMM (`CCollieKernels/gemm.c`), with the
    /// arguments of `gemm` (cblas_sgemm's row-major contract) and the given arithmetic.
    ///
    /// The microkernel is chosen by the kernel level: AVX512_BF16 for `.bfloat16` at level 4, else AVX-512F, AVX2+FMA or
    /// portable C (the bfloat16 product then runs the float32 microkernel on the rounded operands). It runs on up to
    /// `threads` threads of the spinning pool.
    public static func packedGEMM(
        precision: GEMMPrecision = .float32,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = Parallel.threadCount
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size \(m)×\(n)×\(k)")
        precondition(lda >= Swift.max(1, transA ? m : k) && ldb >= Swift.max(1, transB ? k : n) && ldc >= Swift.max(1, n),
                     "gemm: leading dimension smaller than a row")
        let run = precision == .bfloat16 ? collie_gemm_bf16 : collie_sgemm
        run(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Swift.max(1, threads))
    }

    /// `packedGEMM` with B given as bfloat16 bits (a bf16-stored weight): its values go into the GEMM's packed
    /// panels as they are — for `.bfloat16` straight into the AVX512_BF16 kernel's pairs — so a product with a bf16
    /// weight never makes a float32 copy of it. Equals `packedGEMM` on B widened to float32.
    public static func packedGEMM(
        precision: GEMMPrecision = .float32,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, bBFloat16 b: UnsafePointer<UInt16>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = Parallel.threadCount
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size \(m)×\(n)×\(k)")
        precondition(lda >= Swift.max(1, transA ? m : k) && ldb >= Swift.max(1, transB ? k : n) && ldc >= Swift.max(1, n),
                     "gemm: leading dimension smaller than a row")
        collie_gemm_bf16_b(precision == .bfloat16 ? 1 : 0, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc, Swift.max(1, threads))
    }
}
