// Matrix products of our own: packed, cache-blocked GEMM (Goto/BLIS) with a microkernel per kernel level, run on the
// spinning pool. Float32 at every level (AVX-512F, AVX2+FMA, portable C) and a bfloat16 GEMM — PyTorch autocast's
// semantics: both operands rounded to bfloat16 (to nearest even) while packing, products accumulated in float32 —
// with AVX512_BF16's vdpbf16ps at level 4 and the float32 microkernel on the rounded operands below it.
#ifndef COLLIE_GEMM_H
#define COLLIE_GEMM_H

#include <stddef.h>
#include <stdint.h>

/// Row-major C = alpha·op(A)·op(B) + beta·C, cblas_sgemm's row-major contract: op(A) is M×K (A stored M×K with
/// leading dimension lda, or K×M when trans_a), op(B) is K×N (B stored K×N, or N×K when trans_b), C is M×N with leading
/// dimension ldc. beta = 0 writes C without reading it. Runs on up to `threads` threads of the pool (or on the caller
/// alone when the pool is busy). Accumulates in float32 over blocks of K.
void collie_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc, size_t threads);

/// The same product with A and B rounded to bfloat16 (to nearest even) as they are packed and every product of
/// two bfloat16 values accumulated in float32 (exact products; sums in float32).
void collie_gemm_bf16(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                      const float *B, size_t ldb, float beta, float *C, size_t ldc, size_t threads);

/// collie_sgemm (bf16 = 0) or collie_gemm_bf16 (bf16 = 1) with B given as bfloat16 bits (bf16-stored weights): its
/// values go into the packed panels as they are (widened for float32 microkernels), never through a float32 copy of
/// B. The result equals the product with B widened to float32 first.
void collie_gemm_bf16_b(int bf16, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A,
                        size_t lda, const uint16_t *B, size_t ldb, float beta, float *C, size_t ldc, size_t threads);

/// Operands packed once for many small products that share them (attention's tiles): side 0 packs op(A) of a product
/// (`rows` = its M rows), side 1 packs op(B) (`rows` = its N columns), each over all `K` of the product, in the layout
/// the microkernel of `bf16` (as collie_sgemm / collie_gemm_bf16) reads at the current kernel level. X(r, k) =
/// src[r·ld + k] when `k_contiguous`, else src[k·ld + r]. Pack and multiply at the same kernel level.
size_t collie_gemm_packed_bytes(int bf16, int side, size_t rows, size_t K);
void collie_gemm_pack_operand(int bf16, int side, const float *src, size_t ld, int k_contiguous, size_t rows, size_t K,
                              void *dst);

/// Bands of a causal product, for attention's diagonal tiles (row i may use column or k j only where j ≤ i + diagonal,
/// the rest being masked): the work outside the band is skipped, in whole micro-tiles (and k pairs).
enum {
    COLLIE_BAND_FULL = 0,
    /// C's entries with j > i + diagonal are not computed: micro-tiles wholly beyond are set to `fill` (beta = 0) or
    /// left as they are, tiles the diagonal crosses computed whole.
    COLLIE_BAND_COLUMNS = 1,
    /// Row i sums only k ≤ i + diagonal (A's entries beyond are zeros): each micro-tile of rows stops its K there.
    COLLIE_BAND_DEPTH_END = 2,
    /// Row i sums only k ≥ i − diagonal (A's entries before are zeros): each micro-tile of rows starts its K there.
    COLLIE_BAND_DEPTH_START = 3,
};

/// C = alpha·A·B + beta·C on the calling thread from operands packed by collie_gemm_pack_operand: A with M rows and B
/// with N columns, both over the same K; within `band` (COLLIE_BAND_FULL: the whole product, which equals collie_sgemm /
/// collie_gemm_bf16 on the unpacked operands; products of more than one K block are always computed whole).
void collie_gemm_multiply_packed(int bf16, size_t M, size_t N, size_t K, float alpha, const void *A, const void *B,
                                 float beta, float *C, size_t ldc, int band, ptrdiff_t diagonal, float fill);

/// Whether float32 products should run on collie_sgemm rather than OpenBLAS on this CPU at the current kernel level: on
/// AMD CPUs with AVX2 or AVX-512 (level ≥ 1) and Intel CPUs with AVX-512 (level ≥ 2), where it measured faster
/// (Float32GEMM.swift; an Intel CPU capped at AVX2 measured at parity, so it keeps OpenBLAS) — in an optimized build of
/// these kernels only (an unoptimized one, SwiftPM's debug configuration, runs them many times slower than OpenBLAS).
int collie_gemm_prefers_own_f32(void);

/// Which microkernel collie_sgemm (bf16 = 0) or collie_gemm_bf16 (bf16 = 1) runs at the current kernel level:
/// 0 portable C, 1 AVX2+FMA, 2 AVX-512F, 4 AVX512_BF16, 5 AMX-BF16 (the last two for the bf16 GEMM only). At level 4
/// the bf16 GEMM runs the float32 kernel on operands rounded to bfloat16 (reported as 2) where the pair dot product is
/// slower than the float32 FMA (collie_gemm_set_bf16_pairs).
int collie_gemm_kernel_level(int bf16);

/// How bf16 products run at kernel level 4 (AVX512_BF16 without AMX): mode 1, the pair kernel (`vdpbf16ps`); 0, the
/// float32 FMA kernel on operands rounded to bfloat16 as they are packed (the rounding of levels 0–2); −1 (the
/// default), `COLLIE_BF16_GEMM=pairs|float32` where set, else pairs only where collie_peak_bf16_per_fp32() ≥ 0.75 —
/// pairs carry 64 FLOPs per instruction against the FMA's 32, but some CPUs issue them at a quarter of its rate.
/// Returns whether level-4 bf16 products now run the pair kernel (0 below level 4). Set it while no product runs.
int collie_gemm_set_bf16_pairs(int mode);

/// Whether AVX512_BF16 pair dot products are in use here: kernel level ≥ 4 and chosen as collie_gemm_set_bf16_pairs
/// says. Decoding's automatic activations take bfloat16 only then.
int collie_bf16_pairs_in_use(void);

/// For tests on CPUs without AMX: with `on`, the bf16 GEMM runs the AMX kernel (level 5) wherever the kernel level is
/// 4, its tile instructions carried out by C loops over every product, from their definitions, so a machine without
/// AMX runs the level-5 packing, blocking and tile program. Returns whether the bf16 GEMM now runs that kernel. Not
/// thread-safe; set it while no product runs.
int collie_gemm_emulate_amx(int on);

/// Multiplies a 32 × 70 by a 70 × 32 matrix with the AMX microkernel (on the hardware, or emulated) through each of its
/// ways to C (written as it is; added to in place; through a scratch tile with alpha and beta) and returns 1 when all
/// equal a float64 reference over the bfloat16-rounded operands within 1e-5 of Σ|a·b| + |c|. Kernel level detection
/// runs it before it reports level 5.
int collie_gemm_amx_check(int emulated);

#endif
