import CCollieKernels

/// Runs `body` once per instruction set this CPU has for the C kernels (AVX-512 BF16, VNNI, F+BW+VL, AVX2, portable C),
/// the kernels limited to it, so one machine tests the code every other machine would run; lifts the limit after.
func forEachKernelLevel(_ body: (Int32) -> Void) {
    defer { collie_kernel_limit_level(COLLIE_KERNEL_LEVEL_MAX) }
    for level in stride(from: collie_kernel_level(), through: 0, by: -1) {
        collie_kernel_limit_level(level)
        body(level)
    }
}
