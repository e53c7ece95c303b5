// The GEMM's internal contract between its driver (gemm.c) and the per-level files (gemm_avx2.c, gemm_avx512.c,
// gemm_bf16.c, gemm_amx.c): the microkernel descriptor and the packing routines, written once here as always-inlined
// bodies that each level file instantiates for its own instruction set.
//
// Packed layout (Goto/BLIS). A block of op(A) is cut into micro-panels of MR rows, a block of op(B) into micro-panels of
// NR columns; inside a micro-panel the values of one k (or of one pair of k's) sit side by side:
//
//     float32:      panel[k][r]             (MR or NR values per k)
//     bf16 pairs:   panel[k/2][r][k%2]      (vdpbf16ps multiplies and adds the two k's of a 32-bit lane; AMX's B tiles)
//     AMX A rows:   panel[k/32][r][k%32]    (a tile row holds 32 consecutive k's of one row of A)
//
// Rows past the matrix's edge and the k's past K up to the kernel's granule (a pair, or AMX's 32) are zeros, so a
// microkernel runs whole granules of K, and all MR rows of a panel wherever its level has no kernel for fewer rows.
#ifndef COLLIE_GEMM_PACK_H
#define COLLIE_GEMM_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"

#define GEMM_INLINE __attribute__((always_inline)) static inline

/// c[i·ldc + j] = alpha · Σ_k a[k][i]·b[k][j] + beta · c[i·ldc + j] over one full MR × NR tile (beta = 0: c is only
/// written). `kc` counts k's, a multiple of the kernel's granule.
typedef void (*collie_gemm_micro)(size_t kc, const void *a, const void *b, float *c, size_t ldc, float alpha,
                                  float beta);

/// Microkernels over the first m rows of an MR-row A micro-panel (the panel keeps its MR stride), m = 1 ... MR: NAME_m
/// calls BODY(m, kc, a, b, c, ldc, alpha, beta) — an always-inlined body whose row loops the constant m unrolls — and
/// NAME_rows[m] lists them (NAME_rows[0] is NULL). A tile on C's bottom edge then computes its own rows, not MR.
#define GEMM_MICRO_ROW(NAME, TARGET, BODY, M)                                                                         \
    TARGET static void NAME##_##M(size_t kc, const void *a, const void *b, float *c, size_t ldc, float alpha,        \
                                  float beta) {                                                                       \
        BODY(M, kc, a, b, c, ldc, alpha, beta);                                                                       \
    }
#define GEMM_MICRO_ROWS_6(NAME, TARGET, BODY)                                                                         \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 1) GEMM_MICRO_ROW(NAME, TARGET, BODY, 2) GEMM_MICRO_ROW(NAME, TARGET, BODY, 3) \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 4) GEMM_MICRO_ROW(NAME, TARGET, BODY, 5) GEMM_MICRO_ROW(NAME, TARGET, BODY, 6) \
    static const collie_gemm_micro NAME##_rows[7] = {NULL, NAME##_1, NAME##_2, NAME##_3, NAME##_4, NAME##_5, NAME##_6};
#define GEMM_MICRO_ROWS_14(NAME, TARGET, BODY)                                                                        \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 1) GEMM_MICRO_ROW(NAME, TARGET, BODY, 2) GEMM_MICRO_ROW(NAME, TARGET, BODY, 3) \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 4) GEMM_MICRO_ROW(NAME, TARGET, BODY, 5) GEMM_MICRO_ROW(NAME, TARGET, BODY, 6) \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 7) GEMM_MICRO_ROW(NAME, TARGET, BODY, 8) GEMM_MICRO_ROW(NAME, TARGET, BODY, 9) \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 10) GEMM_MICRO_ROW(NAME, TARGET, BODY, 11)                                     \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 12) GEMM_MICRO_ROW(NAME, TARGET, BODY, 13)                                     \
    GEMM_MICRO_ROW(NAME, TARGET, BODY, 14)                                                                            \
    static const collie_gemm_micro NAME##_rows[15] = {NULL,       NAME##_1,  NAME##_2,  NAME##_3,  NAME##_4,         \
                                                      NAME##_5,   NAME##_6,  NAME##_7,  NAME##_8,  NAME##_9,         \
                                                      NAME##_10,  NAME##_11, NAME##_12, NAME##_13, NAME##_14};

/// Packs rows r0 ..< r0 + rows, k's k0 ..< k0 + kc of a logical matrix X into micro-panels of `width` rows.
/// X(r, k) = src[r·ld + k] when `k_contiguous`, else src[k·ld + r] (op(A) has r = i; op(B) has r = j).
typedef void (*collie_gemm_pack)(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows, size_t k0,
                                 size_t kc, size_t width, void *dst);

/// The same packing from a bfloat16 source (its bits): bf16-stored weights go into the product without a float32 copy.
typedef void (*collie_gemm_pack_bf16)(const uint16_t *src, size_t ld, int k_contiguous, size_t r0, size_t rows,
                                      size_t k0, size_t kc, size_t width, void *dst);

/// Software prefetch distances of the SIMD packing loops, which read their source from memory once (the lm_head's
/// output gradient, 131 MB on the tiny preset, is packed for two products): k-rows ahead when a source row holds one
/// k-row across the panels (rows a leading dimension apart, which the hardware prefetcher does not follow), and
/// elements ahead along each of the 8 or 16 rows read together when a row holds k's. One row / none before: on a
/// Zen 5, single thread, those products ran 3–5% slower in AVX-512 (float32 and bf16 pairs) and 1–2% in AVX2.
#define GEMM_PREFETCH_ROWS 8
#define GEMM_PREFETCH_ELEMENTS 64

/// Fetches `bytes` (at least one line) of a packing source from element `i` on into L1; `element`: 4 (float32) or 2
/// (bfloat16 bits).
GEMM_INLINE void gemm_prefetch(const void *src, size_t element, size_t i, size_t bytes) {
    const char *from = (const char *)src + i * element;
    for (size_t byte = 0; byte < bytes; byte += 64) __builtin_prefetch(from + byte, 0, 3);
}

/// One level's GEMM: its microkernel, its packing and its cache blocks.
typedef struct {
    int mr, nr;            // microkernel tile
    int pairs;             // 1: operands packed as bfloat16 (element size 2), else float32
    int granule;           // packed K is padded with zeros to a multiple of this: 1, 2 (bf16 pairs) or 32 (AMX tiles)
    size_t mc, kc, nc;     // cache blocks: A block mc × kc (L2), B block kc × nc (L3); mc % mr == nc % nr == 0 ==
                           // kc % granule
    collie_gemm_micro micro;
    collie_gemm_pack pack_a;             // op(A)'s micro-panels (MR wide)
    collie_gemm_pack pack_b;             // op(B)'s (NR wide)
    collie_gemm_pack_bf16 pack_b_bf16;   // op(B)'s from bfloat16 bits
    const collie_gemm_micro *micro_rows;   // micro_rows[m]: over the first m rows, [MR] = micro (GEMM_MICRO_ROWS_*); or NULL
} collie_gemm_kernel;

/// `value` rounded to the nearest bfloat16 (ties to even), as a float32.
GEMM_INLINE float gemm_round_bf16(float value) { return collie_bf16_value(collie_bf16_bits(value)); }

/// Element `i` of a packing source as float32: `src` holds float32 values, or bfloat16 bits when `src_bf16` (a
/// bf16-stored weight; widened exactly). Packing bodies are always inlined with a constant `src_bf16`, so each
/// instantiation reads one kind.
GEMM_INLINE float gemm_source_value(const void *src, int src_bf16, size_t i) {
    return src_bf16 ? collie_bf16_value(((const uint16_t *)src)[i]) : ((const float *)src)[i];
}

/// Float32 micro-panels of `src` (float32, or bfloat16 bits when `src_bf16`); `round` rounds every value to bfloat16
/// first (the bf16 GEMM on a float32 microkernel; a bf16 source needs none).
GEMM_INLINE void gemm_pack_f32_body(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0, size_t rows,
                                    size_t k0, size_t kc, size_t width, float *dst, int round) {
    if (!k_contiguous) {   // a k-row at a time across every panel: each source row is read once, front to back
        for (size_t k = 0; k < kc; k++) {
            const size_t s = (k0 + k) * ld + r0;
            for (size_t p = 0; p < rows; p += width) {
                const size_t valid = rows - p < width ? rows - p : width;
                float *row = dst + p * kc + k * width;
                for (size_t r = 0; r < valid; r++) {
                    const float v = gemm_source_value(src, src_bf16, s + p + r);
                    row[r] = round ? gemm_round_bf16(v) : v;
                }
                for (size_t r = valid; r < width; r++) row[r] = 0;
            }
        }
        return;
    }
    for (size_t p = 0; p < rows; p += width) {
        const size_t valid = rows - p < width ? rows - p : width;
        float *panel = dst + p * kc;
        for (size_t r = 0; r < valid; r++) {
            const size_t s = (r0 + p + r) * ld + k0;
            for (size_t k = 0; k < kc; k++) {
                const float v = gemm_source_value(src, src_bf16, s + k);
                panel[k * width + r] = round ? gemm_round_bf16(v) : v;
            }
        }
        if (valid < width)
            for (size_t k = 0; k < kc; k++)
                for (size_t r = valid; r < width; r++) panel[k * width + r] = 0;
    }
}

/// Defines `static void NAME##_f32`, `NAME##_f32_rounded` and `NAME##_f32_from_bf16`: the float32 packing routines
/// compiled for TARGET, over BODY (gemm_pack_f32_body, or a level's vectorized body with its parameters).
#define GEMM_PACKERS_F32(NAME, TARGET, BODY)                                                                          \
    TARGET static void NAME##_f32(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows, size_t k0,  \
                                  size_t kc, size_t width, void *dst) {                                              \
        BODY(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, (float *)dst, 0);                                    \
    }                                                                                                                \
    TARGET static void NAME##_f32_rounded(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows,     \
                                          size_t k0, size_t kc, size_t width, void *dst) {                           \
        BODY(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, (float *)dst, 1);                                    \
    }                                                                                                                \
    TARGET static void NAME##_f32_from_bf16(const uint16_t *src, size_t ld, int k_contiguous, size_t r0, size_t rows, \
                                            size_t k0, size_t kc, size_t width, void *dst) {                         \
        BODY(src, 1, ld, k_contiguous, r0, rows, k0, kc, width, (float *)dst, 0);                                    \
    }

/// Level files: the float32 kernel of each level (bf16 rounding while packing when `rounded`) and the pair kernel.
collie_gemm_kernel collie_gemm_kernel_portable(int rounded);
collie_gemm_kernel collie_gemm_kernel_avx2(int rounded);
collie_gemm_kernel collie_gemm_kernel_avx512(int rounded);
collie_gemm_kernel collie_gemm_kernel_bf16(void);
/// The AMX kernel (level 5); `emulated`: its tile instructions carried out in C (collie_gemm_emulate_amx).
collie_gemm_kernel collie_gemm_kernel_amx(int emulated);

/// Bytes per packed value: bfloat16 for the pair and AMX kernels, else float32.
GEMM_INLINE size_t gemm_element_size(const collie_gemm_kernel *kn) { return kn->pairs ? 2 : 4; }

/// `kc` k's as packed by `kn`: rounded up to its granule.
GEMM_INLINE size_t gemm_padded_depth(const collie_gemm_kernel *kn, size_t kc) {
    const size_t g = (size_t)kn->granule;
    return (kc + g - 1) / g * g;
}

/// bfloat16 pair micro-panels (AVX-512 + AVX512_BF16 code, gemm_bf16.c) whose panels hold `depth` k's (even, ≥ kc; the
/// pairs past kc zeros): the pair kernel's packing with AMX's 32-deep granule.
void collie_gemm_pack_pairs_deep(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0, size_t rows,
                                 size_t k0, size_t kc, size_t width, size_t depth, void *dst);
/// AMX's A rows (AVX-512 code, gemm_bf16.c): panel[k/32][r][k%32] of `width` rows holding `depth` k's (a multiple of
/// 32, ≥ kc; the k's past kc zeros).
void collie_gemm_pack_amx_rows(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0, size_t rows,
                               size_t k0, size_t kc, size_t width, size_t depth, void *dst);

#endif
