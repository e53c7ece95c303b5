import CCollieKernels

/// Runs `body` once per instruction set this CPU has for the C kernels (AMX-BF16, AVX-512 BF16, VNNI, F+BW+VL, AVX2,
/// portable C), the kernels limited to it, so one machine tests the code every other machine would run; lifts the
/// limit after. Level 4's bf16 products run the AVX512_BF16 pair kernel here even where this CPU would choose the
/// float32 one (`collie_gemm_set_bf16_pairs`; that path is level 2's), so the pair kernel is tested wherever the CPU
/// has it.
public func forEachKernelLevel(_ body: (Int32) throws -> Void) rethrows {
    _ = collie_gemm_set_bf16_pairs(1)
    defer {
        collie_kernel_limit_level(COLLIE_KERNEL_LEVEL_MAX)
        _ = collie_gemm_set_bf16_pairs(-1)
    }
    for level in stride(from: collie_kernel_level(), through: 0, by: -1) {
        collie_kernel_limit_level(level)
        try body(level)
    }
}
