import CCollieKernels

/// Runs `body` once per instruction set this CPU has for the decoding kernels (AVX-512F, AVX2, portable C), the
/// kernels limited to it, so one machine tests the code every other machine would run.
func forEachDecodingKernelLevel(_ body: (Int32) -> Void) {
    defer { collie_gemv_limit_level(2) }
    for level in stride(from: collie_gemv_level(), through: 0, by: -1) {
        collie_gemv_limit_level(level)
        body(level)
    }
}
