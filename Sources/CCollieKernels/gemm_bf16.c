// The bfloat16 GEMM microkernel for AVX512_BF16 (level 4): a 14 × 32 tile of C in 28 zmm float32 accumulators.
// Operands are packed as bfloat16 pairs along K (gemm_pack.h): one 32-bit lane of a B vector holds B[k][j] and
// B[k+1][j], a broadcast 32-bit word of A holds A[i][k] and A[i][k+1], and vdpbf16ps adds both exact products to
// the float32 accumulator — two k's per instruction, twice the float32 FMA's rate.
#include "gemm_pack.h"
#include "gemm_avx512.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define MR 14
#define NR 32

/// The microkernel over the first `rows` rows of a 14-row micro-panel (a constant once inlined: GEMM_MICRO_ROWS_14).
GEMM_INLINE TARGET_BF16 void micro_bf16_body(const int rows, size_t kc, const void *ap, const void *bp, float *c,
                                             size_t ldc, float alpha, float beta) {
    const uint32_t *a = ap;
    const uint16_t *b = bp;
    __m512 acc[MR][2];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    gemm_prefetch_tile32(rows, c, ldc);   // C's tile is needed at the end
    _Pragma("clang loop unroll_count(4)")
    for (size_t k = 0; k < kc; k += 2, a += MR, b += 2 * NR) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < rows; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    gemm_store_tile32(rows, acc, c, ldc, alpha, beta);
}

GEMM_MICRO_ROWS_14(micro_bf16, TARGET_BF16, micro_bf16_body)

/// The 16 pair words of k's k ..< k + 32 of a row whose k's are contiguous, from source element i: the first
/// `count` k's (1 ... 32), zeros after them. A float32 source is rounded, a bfloat16 one taken as it is.
GEMM_INLINE TARGET_BF16 __m512 row_pairs16(const void *src, int src_bf16, size_t i, size_t count) {
    if (src_bf16) {
        const __mmask32 mask = count >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << count) - 1);
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, (const uint16_t *)src + i));
    }
    const float *s = (const float *)src + i;
    const size_t low = count < 16 ? count : 16, high = count > 16 ? count - 16 : 0;
    const __m512 first = _mm512_maskz_loadu_ps((__mmask16)((1u << low) - 1), s);
    const __m512 second = _mm512_maskz_loadu_ps((__mmask16)((1u << high) - 1), s + 16);
    const __m256i lo = _mm512_cvtepi32_epi16(gemm_round_bf16_bits16(first));
    const __m256i hi = _mm512_cvtepi32_epi16(gemm_round_bf16_bits16(second));
    return _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

/// 16 values of one k-row from source element i where `mask` is set, as bfloat16 bits in the low half of each lane.
GEMM_INLINE TARGET_BF16 __m512i column_bits16(const void *src, int src_bf16, size_t i, __mmask16 mask) {
    if (src_bf16) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)src + i));
    return gemm_round_bf16_bits16(_mm512_maskz_loadu_ps(mask, (const float *)src + i));
}

/// bfloat16 pair micro-panels (gemm_pack.h) of `kp` k's each (even, ≥ kc), from float32 (rounded to nearest even) or
/// bfloat16 sources: when k is contiguous in the source, 16 rows × 32 k's are loaded as 16 × 16 pair words, transposed
/// in registers and stored as 16 pair rows of the panel; otherwise two k-rows of 16 values are interleaved into 16 pair
/// words. Tails are masked: rows past `rows`, the odd K's missing partner and the pairs past kc are zeros.
GEMM_INLINE TARGET_BF16 void pack_pairs_avx512_body(const void *src, int src_bf16, size_t ld, int k_contiguous,
                                                    size_t r0, size_t rows, size_t k0, size_t kc, size_t width,
                                                    size_t kp, void *dst) {
    const size_t filled_pairs = (kc + 1) / 2;
    if (kp / 2 > filled_pairs)   // the granule's zero pairs after K (AMX), below the panels' values
        for (size_t p = 0; p < rows; p += width)
            memset((uint32_t *)((uint16_t *)dst + p * kp) + filled_pairs * width, 0,
                   (kp / 2 - filled_pairs) * width * sizeof(uint32_t));
    if (!k_contiguous) {
        // A pair of k-rows at a time across every panel, so each source row is read once, front to back, while the
        // pair GEMM_PREFETCH_ROWS ahead is fetched (panel by panel, rows a k-stride apart ran at half the speed from
        // L3).
        const size_t element = src_bf16 ? 2 : 4;
        for (size_t k = 0; k < kc; k += 2) {
            const size_t s = (k0 + k) * ld + r0;
            if (k + GEMM_PREFETCH_ROWS + 1 < kc) {
                gemm_prefetch(src, element, s + GEMM_PREFETCH_ROWS * ld, rows * element);
                gemm_prefetch(src, element, s + (GEMM_PREFETCH_ROWS + 1) * ld, rows * element);
            }
            for (size_t p = 0; p < rows; p += width) {
                const size_t valid = rows - p < width ? rows - p : width;
                uint32_t *pairs = (uint32_t *)((uint16_t *)dst + p * kp) + k / 2 * width;   // [r]: one pair
                for (size_t g = 0; g < width; g += 16) {
                    const size_t lanes = width - g < 16 ? width - g : 16, filled = valid > g ? valid - g : 0;
                    const __mmask16 store = (__mmask16)((1u << lanes) - 1);
                    const __mmask16 load = (__mmask16)((1u << (filled < lanes ? filled : lanes)) - 1);
                    const __m512i low = column_bits16(src, src_bf16, s + p + g, load);
                    const __m512i high =
                        k + 1 < kc ? column_bits16(src, src_bf16, s + ld + p + g, load) : _mm512_setzero_si512();
                    _mm512_mask_storeu_epi32(pairs + g, store, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
                }
            }
        }
        return;
    }
    for (size_t p = 0; p < rows; p += width) {
        const size_t valid = rows - p < width ? rows - p : width;
        uint32_t *panel = (uint32_t *)((uint16_t *)dst + p * kp);   // panel[k/2 · width + r]: one pair
        for (size_t g = 0; g < width; g += 16) {
            const size_t lanes = width - g < 16 ? width - g : 16, filled = valid > g ? valid - g : 0;
            const size_t loaded = filled < lanes ? filled : lanes;
            const __mmask16 store = (__mmask16)((1u << lanes) - 1);
            for (size_t k = 0; k < kc; k += 32) {
                const size_t ks = kc - k < 32 ? kc - k : 32;
                __m512 r[16];
                _Pragma("clang loop unroll(full)")
                for (int i = 0; i < 16; i++)
                    r[i] = (size_t)i < loaded ? row_pairs16(src, src_bf16, (r0 + p + g + i) * ld + k0 + k, ks)
                                              : _mm512_setzero_ps();
                if (k + GEMM_PREFETCH_ELEMENTS < kc)
                    for (size_t i = 0; i < loaded; i++)
                        gemm_prefetch(src, src_bf16 ? 2 : 4,
                                      (r0 + p + g + i) * ld + k0 + k + GEMM_PREFETCH_ELEMENTS, 1);
                gemm_transpose16(r);
                for (size_t t = 0; t < (ks + 1) / 2; t++)
                    _mm512_mask_storeu_ps((float *)(panel + (k / 2 + t) * width + g), store, r[t]);
            }
        }
    }
}

TARGET_BF16 static void pack_bf16_pairs(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows,
                                        size_t k0, size_t kc, size_t width, void *dst) {
    pack_pairs_avx512_body(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, (kc + 1) & ~(size_t)1, dst);
}

/// Pair panels from bfloat16 bits (bf16-stored weights).
TARGET_BF16 static void pack_bf16_pairs_from_bf16(const uint16_t *src, size_t ld, int k_contiguous, size_t r0,
                                                  size_t rows, size_t k0, size_t kc, size_t width, void *dst) {
    pack_pairs_avx512_body(src, 1, ld, k_contiguous, r0, rows, k0, kc, width, (kc + 1) & ~(size_t)1, dst);
}

TARGET_BF16 void collie_gemm_pack_pairs_deep(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0,
                                             size_t rows, size_t k0, size_t kc, size_t width, size_t depth, void *dst) {
    if (src_bf16) pack_pairs_avx512_body(src, 1, ld, k_contiguous, r0, rows, k0, kc, width, depth, dst);
    else pack_pairs_avx512_body(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, depth, dst);
}

/// AMX's A rows from a float32 or bfloat16 source: a row's 32 k's of a tile row are row_pairs16's 16 pair words when k
/// is contiguous in the source; otherwise each k-row is spread over the panel's rows value by value.
GEMM_INLINE TARGET_BF16 void pack_amx_rows_body(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0,
                                                size_t rows, size_t k0, size_t kc, size_t width, size_t kp,
                                                void *dst) {
    uint16_t *out = dst;
    for (size_t p = 0; p < rows; p += width) {
        const size_t valid = rows - p < width ? rows - p : width;
        uint16_t *panel = out + p * kp;   // panel[k/32 · width · 32 + r · 32 + k%32]
        if (k_contiguous) {
            for (size_t r = 0; r < width; r++)
                for (size_t k = 0; k < kp; k += 32) {
                    const __m512 words = r < valid && k < kc
                        ? row_pairs16(src, src_bf16, (r0 + p + r) * ld + k0 + k, kc - k < 32 ? kc - k : 32)
                        : _mm512_setzero_ps();
                    _mm512_storeu_ps((float *)(panel + k * width + r * 32), words);
                }
            continue;
        }
        memset(panel, 0, kp * width * sizeof(uint16_t));
        for (size_t k = 0; k < kc; k++) {
            const size_t s = (k0 + k) * ld + r0 + p;
            uint16_t *column = panel + (k & ~(size_t)31) * width + (k & 31);
            for (size_t r = 0; r < valid; r++)
                column[r * 32] = src_bf16 ? ((const uint16_t *)src)[s + r]
                                          : collie_bf16_bits(((const float *)src)[s + r]);
        }
    }
}

TARGET_BF16 void collie_gemm_pack_amx_rows(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0,
                                           size_t rows, size_t k0, size_t kc, size_t width, size_t depth, void *dst) {
    if (src_bf16) pack_amx_rows_body(src, 1, ld, k_contiguous, r0, rows, k0, kc, width, depth, dst);
    else pack_amx_rows_body(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, depth, dst);
}

collie_gemm_kernel collie_gemm_kernel_bf16(void) {
    return (collie_gemm_kernel){MR, NR, 1, 2, 14 * 12, 2048, 2048, micro_bf16_14, pack_bf16_pairs, pack_bf16_pairs,
                                pack_bf16_pairs_from_bf16, micro_bf16_rows};
}

#endif
