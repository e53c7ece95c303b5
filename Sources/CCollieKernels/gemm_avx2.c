// The float32 GEMM microkernel for AVX2 + FMA (level 1): a 6 × 16 tile of C in 12 ymm accumulators, two B vectors
// and one broadcast of A per step (15 of the 16 registers), with copies for 1 ... 5 rows for C's bottom edge; and its
// packing in AVX2.
#include "gemm_pack.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MR 6
#define NR 16

/// The microkernel over the first `rows` rows of a 6-row micro-panel (a constant once inlined: GEMM_MICRO_ROWS_6).
GEMM_INLINE TARGET_AVX2 void micro_avx2_body(const int rows, size_t kc, const void *ap, const void *bp, float *c,
                                             size_t ldc, float alpha, float beta) {
    const float *a = ap, *b = bp;
    __m256 acc[MR][2];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) {   // C's tile is needed at the end: fetch it while the products run
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    _Pragma("clang loop unroll_count(4)")
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < rows; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        if (beta == 0) {
            _mm256_storeu_ps(ci, _mm256_mul_ps(va, acc[i][0]));
            _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, acc[i][1]));
        } else {
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), _mm256_mul_ps(va, acc[i][0])));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), _mm256_mul_ps(va, acc[i][1])));
        }
    }
}

GEMM_MICRO_ROWS_6(micro_avx2, TARGET_AVX2, micro_avx2_body)

/// 8 floats rounded to bfloat16 and widened back (gemm_round_bf16: nearest even, NaN quiet).
TARGET_AVX2 static inline __m256 round_bf16_8(__m256 x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i nearest = _mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), odd));
    const __m256i quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i rounded = _mm256_blendv_epi8(nearest, quiet, nan);
    return _mm256_castsi256_ps(_mm256_and_si256(rounded, _mm256_set1_epi32((int)0xFFFF0000u)));
}

/// The first `n` (≤ 8) lanes set.
TARGET_AVX2 static inline __m256i lanes8(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Source elements i ..< i + n (n ≤ 8; zeros after them) as 8 floats: float32, or bfloat16 widened.
GEMM_INLINE TARGET_AVX2 __m256 load_source8(const void *src, int src_bf16, size_t i, size_t n) {
    if (!src_bf16) return n == 8 ? _mm256_loadu_ps((const float *)src + i)
                                 : _mm256_maskload_ps((const float *)src + i, lanes8(n));
    if (n == 8) {
        const __m128i bits = _mm_loadu_si128((const __m128i *)((const uint16_t *)src + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
    }
    float values[8] = {0};
    for (size_t j = 0; j < n; j++) values[j] = gemm_source_value(src, 1, i + j);
    return _mm256_loadu_ps(values);
}

/// Stores the first `n` (≤ 8) lanes of `v` at `dst` where the 8 − n floats after them may be overwritten — a later
/// store of the packing rewrites them — unless `last`. Masked stores (vmaskmovps) are slow on AMD's Zen 2: when
/// every k-row of A's 6-wide panels took one, packing was 28% of attention's time there, half of it on those stores
/// (perf); with a masked store only for a panel's last row, 18%, and attention ran 20% faster.
GEMM_INLINE TARGET_AVX2 void store8_spilling(float *dst, __m256 v, size_t n, int last) {
    if (n == 8 || !last) _mm256_storeu_ps(dst, v);
    else _mm256_maskstore_ps(dst, lanes8(n), v);
}

/// Rows of an 8 × 8 block become its columns.
GEMM_INLINE TARGET_AVX2 void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/// Four k-rows of a 6-wide panel, the first 6 lanes of `a0` ... `a3`, as the panel's next 24 floats: three 8-float
/// stores. A's panels are narrower than a vector, and storing each k-row's 8 lanes (2 spilling into the next k-row)
/// wrote 4 overlapping, often line-crossing stores per 24 floats and each line twice: on a Zen 2, with the source in
/// cache, A's packing took 0.44 ns per value where k-rows are contiguous in the source (dW's A) and 0.29 where k's are
/// (the forward's and dX's A); with this, 0.24 and 0.15 (from memory, the tiny preset's dY: 0.62 → 0.49–0.52 and
/// 0.33 → 0.22).
GEMM_INLINE TARGET_AVX2 void store_krows4_of6(__m256 a0, __m256 a1, __m256 a2, __m256 a3, float *row, int round) {
    // a1's first 2 lanes to lanes 6, 7 (after a0's 6) and its last 4 to lanes 0–3; a3's 6 to lanes 2–7.
    const __m256 p1 = _mm256_permutevar8x32_ps(a1, _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 0, 1));
    const __m256 p3 = _mm256_permutevar8x32_ps(a3, _mm256_setr_epi32(6, 7, 0, 1, 2, 3, 4, 5));
    __m256 v0 = _mm256_blend_ps(a0, p1, 0xC0);                                     // a0[0..5] a1[0..1]
    __m256 v1 = _mm256_insertf128_ps(p1, _mm256_castps256_ps128(a2), 1);           // a1[2..5] a2[0..3]
    __m256 v2 = _mm256_blend_ps(p3, _mm256_permute2f128_ps(a2, a2, 0x11), 0x03);   // a2[4..5] a3[0..5]
    if (round) v0 = round_bf16_8(v0), v1 = round_bf16_8(v1), v2 = round_bf16_8(v2);
    _mm256_storeu_ps(row, v0);
    _mm256_storeu_ps(row + 8, v1);
    _mm256_storeu_ps(row + 16, v2);
}

/// `ks` (≤ 8) k's of `n` (≤ 8) source rows `ld` apart, the first at element `first`, transposed: r[t] holds the n
/// values of k-row t, zeros after them (and after ks). With `prefetch`, each row is fetched GEMM_PREFETCH_ELEMENTS on.
/// Inlined with constant n and ks, the loads take no lane counting.
GEMM_INLINE TARGET_AVX2 void load_transposed8(const void *src, int src_bf16, size_t ld, size_t first, size_t n,
                                              size_t ks, int prefetch, __m256 r[8]) {
    _Pragma("clang loop unroll(full)")
    for (size_t i = 0; i < 8; i++) r[i] = i < n ? load_source8(src, src_bf16, first + i * ld, ks) : _mm256_setzero_ps();
    if (prefetch)
        for (size_t i = 0; i < n; i++) gemm_prefetch(src, src_bf16 ? 2 : 4, first + i * ld + GEMM_PREFETCH_ELEMENTS, 1);
    transpose8(r);
}

/// gemm_pack_f32_body in AVX2, as pack_avx512_body (gemm_avx512.c) with 8-lane vectors: a panel's k-row is a few
/// (masked) 8-value copies when rows are contiguous in the source; when k is, 8 rows × 8 k's are loaded, transposed
/// in registers and stored as 8 k's of the panel. With the portable body's per-value loops, packing took 14% (dX)
/// and 22% (dW) of the tiny preset's lm_head products at level 1 (256 columns: little work per packed value); with
/// these, 7% and 11% (perf, a Zen 5). Whole panels (all the 6 or 16 rows there, 4 or 8 k's) take paths whose loads
/// and stores are known when compiled: the general loops' per-vector lane counts and masks cost more than the copies
/// — B's panels took 0.38 ns per value (k-rows contiguous in the source) and 0.31 (k's contiguous) with source and
/// panels in cache on a Zen 2, these paths 0.11 and 0.19.
GEMM_INLINE TARGET_AVX2 void pack_avx2_body(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0,
                                            size_t rows, size_t k0, size_t kc, size_t width, void *dst, int round) {
    if (!k_contiguous) {
        // k-rows across a group of panels, source rows read front to back, later ones fetched meanwhile. Panels
        // narrower than a cache line (A's 6 rows) take 4 k-rows at a time, each panel's 4 rows written together (96
        // bytes): k by k, the 24 panels of an A block — 6 · kc floats apart, a multiple of 4 KB when kc is one of 512 —
        // took turns in one L1 set and evicted one another (products with K = 512 ran 10% slower; 8 rows at a time
        // cost the lm_head's dW 1%). B's 16-row panels write whole lines k by k, 4 panels at a time (all their
        // k-rows before the next 4): across all of a block's panels — kc · 16 floats apart, one L1 set when kc is a
        // multiple of 64 — the dW and dX products of 768 rows ran 172–182 GFLOP/s on a Zen 2, 4 at a time 179–186
        // (8 at a time 173–187; A's panels 4 or 8 at a time were no faster).
        const size_t element = src_bf16 ? 2 : 4, block = width < 16 ? 4 : 1;
        const size_t group = width < 16 ? rows : 4 * width;
        for (size_t q = 0; q < rows; q += group) {
            const size_t q1 = rows - q < group ? rows : q + group;
            if (width == 16 && q1 - q == 64) {   // four whole panels: 64 values of each source row, as 8 stores
                const char *from = (const char *)src + (k0 * ld + r0 + q) * element;
                float *to = (float *)dst + q * kc;
                for (size_t k = 0; k < kc; k++, from += ld * element, to += 16) {
                    if (k + GEMM_PREFETCH_ROWS < kc) gemm_prefetch(from, element, GEMM_PREFETCH_ROWS * ld, 64 * element);
                    _Pragma("clang loop unroll(full)")
                    for (int j = 0; j < 4; j++) {
                        __m256 v0 = load_source8(from, src_bf16, 16 * j, 8), v1 = load_source8(from, src_bf16, 16 * j + 8, 8);
                        if (round) v0 = round_bf16_8(v0), v1 = round_bf16_8(v1);
                        _mm256_storeu_ps(to + j * 16 * kc, v0);
                        _mm256_storeu_ps(to + j * 16 * kc + 8, v1);
                    }
                }
                continue;
            }
            for (size_t k = 0; k < kc; k += block) {
                const size_t ks = kc - k < block ? kc - k : block;
                for (size_t t = 0; t < ks && k + t + GEMM_PREFETCH_ROWS < kc; t++)
                    gemm_prefetch(src, element, (k0 + k + t + GEMM_PREFETCH_ROWS) * ld + r0 + q, (q1 - q) * element);
                for (size_t p = q; p < q1; p += width) {
                    const size_t valid = rows - p < width ? rows - p : width;
                    if (width == 6 && ks == 4 && p + 8 <= rows) {   // a whole panel, 8 values to read in each row
                        const size_t s = (k0 + k) * ld + r0 + p;
                        store_krows4_of6(load_source8(src, src_bf16, s, 8), load_source8(src, src_bf16, s + ld, 8),
                                         load_source8(src, src_bf16, s + 2 * ld, 8),
                                         load_source8(src, src_bf16, s + 3 * ld, 8), (float *)dst + p * kc + k * 6, round);
                        continue;
                    }
                    for (size_t t = 0; t < ks; t++) {
                        const size_t s = (k0 + k + t) * ld + r0;
                        float *row = (float *)dst + p * kc + (k + t) * width;
                        for (size_t g = 0; g < width; g += 8) {
                            const size_t lanes = width - g < 8 ? width - g : 8, filled = valid > g ? valid - g : 0;
                            // Where the source row goes on for 8 values, all 8 are loaded unmasked — those past
                            // the panel's width spill with the store. With masked loads the dW products of 768 rows
                            // ran 4–10% slower on a Zen 2 (164–176 GFLOP/s against 180–183).
                            const size_t n = p + g + 8 <= rows ? 8 : filled < lanes ? filled : lanes;
                            const __m256 v = load_source8(src, src_bf16, s + p + g, n);
                            // Spills past the row land in the next k-row of this panel, written later.
                            store8_spilling(row + g, round ? round_bf16_8(v) : v, lanes, k + t + 1 == kc);
                        }
                    }
                }
            }
        }
        return;
    }
    for (size_t p = 0; p < rows; p += width) {
        const size_t valid = rows - p < width ? rows - p : width;
        float *panel = (float *)dst + p * kc;
        for (size_t g = 0; g < width; g += 8) {
            const size_t lanes = width - g < 8 ? width - g : 8;
            for (size_t k = 0; k < kc; k += 8) {
                const size_t ks = kc - k < 8 ? kc - k : 8;
                const size_t first = (r0 + p + g) * ld + k0 + k;
                const int prefetch = k + GEMM_PREFETCH_ELEMENTS < kc;
                __m256 r[8];
                // Whole panels with 8 k's take constant counts (the loads and stores then cost less than the counting).
                if (width == 6 && ks == 8 && valid == 6) {
                    load_transposed8(src, src_bf16, ld, first, 6, 8, prefetch, r);
                    store_krows4_of6(r[0], r[1], r[2], r[3], panel + k * 6, round);
                    store_krows4_of6(r[4], r[5], r[6], r[7], panel + k * 6 + 24, round);
                    continue;
                }
                if (width == 16 && ks == 8 && valid == 16) {
                    load_transposed8(src, src_bf16, ld, first, 8, 8, prefetch, r);
                    _Pragma("clang loop unroll(full)")
                    for (int t = 0; t < 8; t++)
                        _mm256_storeu_ps(panel + (k + t) * 16 + g, round ? round_bf16_8(r[t]) : r[t]);
                    continue;
                }
                load_transposed8(src, src_bf16, ld, first, valid > g ? (valid - g < lanes ? valid - g : lanes) : 0, ks,
                                 prefetch, r);
                // With one 8-lane group per k-row (width ≤ 8), spills land in the next k-row, written later.
                for (size_t t = 0; t < ks; t++)
                    store8_spilling(panel + (k + t) * width + g, round ? round_bf16_8(r[t]) : r[t], lanes,
                                    width > 8 || k + t + 1 == kc);
            }
        }
    }
}

GEMM_PACKERS_F32(pack_avx2, TARGET_AVX2, pack_avx2_body)

collie_gemm_kernel collie_gemm_kernel_avx2(int rounded) {
    const collie_gemm_pack pack = rounded ? pack_avx2_f32_rounded : pack_avx2_f32;
    return (collie_gemm_kernel){MR, NR, 0, 1, 6 * 24, 768, 2048, micro_avx2_6, pack, pack,
                                pack_avx2_f32_from_bf16, micro_avx2_rows};
}

#endif
