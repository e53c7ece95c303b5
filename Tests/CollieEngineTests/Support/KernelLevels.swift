import CCollieKernels

/// Runs `body` once per instruction set this CPU has for the C kernels (AVX-512 BF16, VNNI, F+BW+VL, AVX2, portable C),
/// the kernels limited to it, so one machine tests the code every other machine would run; lifts the limit after.
/// Level 4's bf16 products run the AVX512_BF16 pair kernel here even where this CPU would choose the float32 one
/// (collie_gemm_set_bf16_pairs), so the pair kernel is tested wherever the CPU has it.
func forEachKernelLevel(_ body: (Int32) -> Void) {
    defer {
        collie_kernel_limit_level(COLLIE_KERNEL_LEVEL_MAX)
        _ = collie_gemm_set_bf16_pairs(-1)
    }
    _ = collie_gemm_set_bf16_pairs(1)
    for level in stride(from: collie_kernel_level(), through: 0, by: -1) {
        collie_kernel_limit_level(level)
        body(level)
    }
}

/// forEachKernelLevel, then — on a CPU with AVX512_BF16 but no AMX — level 4 once more with the bf16 GEMM on the AMX
/// kernel, its tile instructions emulated (`collie_gemm_emulate_amx`), passed to `body` as level 5: the level-5 packing,
/// blocking and tile program are tested on machines without AMX too (on an AMX CPU level 5 runs above, on the hardware).
func forEachGEMMKernel(_ body: (Int32) -> Void) {
    forEachKernelLevel(body)
    guard collie_kernel_level() == 4 else { return }
    defer { _ = collie_gemm_emulate_amx(0) }
    guard collie_gemm_emulate_amx(1) == 1 else { return }
    body(5)
}
