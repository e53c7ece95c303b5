// The arithmetic peak of this CPU, measured: independent chains of one multiply-add instruction per kind, long
// enough that nothing else in the loop counts, run on several threads at once. `collie bench train` divides the
// achieved GFLOP/s of a step by it (MFU).
#ifndef COLLIE_PEAK_H
#define COLLIE_PEAK_H

/// The instruction a peak measurement runs.
typedef enum {
    /// float32 `vfmadd` on 256-bit registers (AVX2+FMA, kernel level ≥ 1): 16 FLOPs per instruction.
    COLLIE_PEAK_FP32_AVX2 = 1,
    /// float32 `vfmadd` on 512-bit registers (AVX-512F, level ≥ 2): 32 FLOPs per instruction.
    COLLIE_PEAK_FP32_AVX512 = 2,
    /// `vdpbf16ps` on 512-bit registers (AVX512_BF16, level 4): 32 bf16 pairs, 64 FLOPs per instruction.
    COLLIE_PEAK_BF16_AVX512 = 4,
    /// AMX `tdpbf16ps` on 16 × 16 float32 tiles (AMX-BF16, level 5): 16 × 16 × 32 pairs, 16384 FLOPs per instruction.
    COLLIE_PEAK_BF16_AMX = 5,
} collie_peak_kind;

/// GFLOP/s of `kind` summed over `threads` threads that run together for about `seconds` each (a multiply-add counts
/// 2 FLOPs). Returns 0 when the current kernel level lacks the instruction, or threads is 0 or above 256.
double collie_peak_gflops(collie_peak_kind kind, int threads, double seconds);

/// FLOPs per second of `vdpbf16ps` divided by those of the 512-bit float32 FMA, both measured on the calling thread
/// (the best of five alternated runs of about 10⁵ cycles each, under a millisecond in all): about 2 on AMD's Zen 4 and
/// Zen 5, about 0.5 on an Intel Xeon of family 6 model 207 (Emerald Rapids) whose AMX the hypervisor hides. Returns 0
/// when the current kernel level lacks AVX512_BF16 (level < 4).
double collie_peak_bf16_per_fp32(void);

#endif
