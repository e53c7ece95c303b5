// Collie's C kernels. Every hot loop that profits from an instruction set newer than baseline x86-64 lives here,
// compiled per function for AVX-512F and AVX2+FMA (target attributes) beside a portable copy and chosen at run time, so
// the package needs no compiler flag and its binary runs on any x86-64 (and non-x86) machine.
//
// This file: the kernel level, the float32 row kernels of the softmax-shaped ops (attention, cross-entropy, softmax,
// SwiGLU; AVX2+FMA or portable) and the attention of one query position.
#ifndef COLLIE_KERNELS_H
#define COLLIE_KERNELS_H

#include <stddef.h>

/// The highest kernel level.
#define COLLIE_KERNEL_LEVEL_MAX 5

/// The instruction set the kernels run: 5 with level 4's and AMX-TILE + AMX-BF16 (tile state enabled by the OS, a tile
/// palette described by CPUID, granted by Linux and checked on the hardware under a guard at the first call; the bf16
/// GEMM's microkernel only); 4 with AVX-512 F+BW+VL, VNNI and BF16; 3 with AVX-512 F+BW+VL and VNNI; 2 with AVX-512
/// F+BW+VL; 1 with AVX2+FMA+F16C; 0 for the portable C (the only level off x86). Each level includes the ones below,
/// so kernels compare with ≥ and a kernel without a level-3 copy runs its level-2 one there. The row kernels below use
/// their AVX2 code at levels 1 and up (max, the exp sums and the exponentiations: AVX-512 at levels 2 and up, the same
/// exp lane for lane; SwiGLU stays on AVX2, measured faster on a Zen 5). The environment variable COLLIE_KERNEL_LEVEL
/// (one digit, 0 ... 5) caps it for the process, read at the first call.
int collie_kernel_level(void);
/// Uses at most `level` from now on (COLLIE_KERNEL_LEVEL_MAX lifts the limit): lets tests run the lower levels' code on an
/// AVX-512 machine. Not thread-safe; set it while no kernel runs.
void collie_kernel_limit_level(int level);

/// Whether CPUID leaf 7 advertises AMX-TILE and AMX-BF16 (0 off x86). Level 5 needs more: see collie_kernel_level.
int collie_cpu_advertises_amx(void);
/// Whether CPUID's tile description admits the AMX kernel's configuration (eight tiles of 16 rows × 64 bytes): leaf
/// 0x1D subleaf 0's EAX (the highest palette, ≥ 1), subleaf 1's EAX/EBX/ECX (palette 1: bytes per tile, per row, tile
/// names, rows) and, where the CPU has leaf 0x1E, its EBX (TMUL's largest K ≥ 16 and N ≥ 64 bytes). Sapphire Rapids
/// reports 1; 1024 bytes per tile, 64 per row, 8 names, 16 rows; K 16, N 64. A hypervisor that advertises AMX with
/// zero palettes gets 0: every tile instruction faults there.
int collie_amx_tiles_described(unsigned max_palette, unsigned palette_eax, unsigned palette_ebx, unsigned palette_ecx,
                               int has_tmul_leaf, unsigned tmul_ebx);
/// collie_gemm_amx_check on the hardware under a SIGILL guard: 1 passed, 0 failed, -1 an instruction faulted (a CPU
/// without AMX, or without the tile state granted). Level detection runs it once; the guard swaps the process's SIGILL
/// handler while it runs, so do not call it while another thread may fault.
int collie_amx_probe(void);

/// The largest of p[0..<n] (-inf when n is 0).
float collie_max_f32(const float *p, size_t n);
/// Σ exp(p[i] − shift).
float collie_sum_exp_f32(const float *p, size_t n, float shift);
/// dst[i] = exp(src[i] − shift) · scale (src may be dst: in place); returns Σ exp(src[i] − shift).
float collie_exponentiate_f32(const float *src, float *dst, size_t n, float shift, float scale);
/// dst[i] += exp(src[i] − shift) · scale.
void collie_add_exponentiated_f32(const float *src, float *dst, size_t n, float shift, float scale);
/// out[i] = silu(gate[i]) · up[i].
void collie_swiglu_f32(const float *gate, const float *up, float *out, size_t n);
/// SwiGLU's backward; either output may be NULL.
void collie_swiglu_backward_f32(const float *gate, const float *up, const float *gradient,
                                float *gate_gradient, float *up_gradient, size_t n);
/// Attention of one query position (decoding) for the query heads of kv heads g0..<g1 of one sequence: q is [H, D];
/// k and v are [n, KVH, D]; head h reads kv head h / group. scores[h][j] = scale·q_h·k_j + (bias ? bias[j] : 0),
/// out_h = Σⱼ softmax(scores_h)ⱼ · v_j into out [H, D], the scores' logsumexp into lse[h] (+inf, with out_h = 0, when
/// every key is masked). Keys and values are read in memory order. `scores` is scratch for (g1 − g0)·group·n floats.
void collie_attend_heads_f32(const float *q, const float *k, const float *v, size_t n, size_t kv_heads, size_t group,
                             size_t dim, size_t g0, size_t g1, float scale, const float *bias, float *scores, float *out,
                             float *lse);
/// Whether the row kernels' AVX2+FMA code is in use (collie_kernel_level() ≥ 1).
int collie_kernels_vectorized(void);

/// Fixes the C allocator's mmap threshold at `bytes` (glibc's `mallopt(M_MMAP_THRESHOLD)`), so large
/// blocks are always mmapped and go back to the system when freed. Returns 1 on success, 0 where the
/// allocator has no such setting.
int collie_fix_mmap_threshold(size_t bytes);

// float16 conversions (collie_conversions.h), the packed GEMM (collie_gemm.h), matrix-vector kernels for decoding
// (collie_gemv.h), the optimizers' update loops (collie_optimizers.h), the spinning worker pool (collie_pool.h) and the
// kernels on quantized blocks (collie_quantized.h), listed here so incremental builds see them.
#include "collie_conversions.h"
#include "collie_gemm.h"
#include "collie_gemv.h"
#include "collie_optimizers.h"
#include "collie_pool.h"
#include "collie_quantized.h"
#include "collie_peak.h"

#endif
