import CCollieKernels
import CollieTestSupport

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
