// The float32 GEMM microkernel for AVX-512F (level 2 and up): a 14 × 32 tile of C in 28 zmm accumulators. Each k
// loads two 16-float vectors of the B micro-panel and broadcasts 14 values of the A micro-panel (folded into the
// FMAs as {1to16} memory operands): 28 FMAs per 2 loads + 14 broadcasts. Copies for 1 ... 13 rows serve C's bottom
// edge.
#include "gemm_pack.h"
#include "gemm_avx512.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define MR 14
#define NR 32

/// The microkernel over the first `rows` rows of a 14-row micro-panel (a constant once inlined: GEMM_MICRO_ROWS_14).
GEMM_INLINE TARGET_AVX512 void micro_avx512_body(const int rows, size_t kc, const void *ap, const void *bp, float *c,
                                                 size_t ldc, float alpha, float beta) {
    const float *a = ap, *b = bp;
    __m512 acc[MR][2];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    gemm_prefetch_tile32(rows, c, ldc);   // C's tile is needed at the end
    _Pragma("clang loop unroll_count(4)")
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < rows; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    gemm_store_tile32(rows, acc, c, ldc, alpha, beta);
}

GEMM_MICRO_ROWS_14(micro_avx512, TARGET_AVX512, micro_avx512_body)

/// 16 floats rounded to bfloat16 and widened back (gemm_round_bf16: nearest even, NaN quiet).
TARGET_AVX512 static inline __m512 round_bf16_16(__m512 x) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(gemm_round_bf16_bits16(x), 16));
}

/// Source elements i ..< i + 16 where `mask` is set (zeros elsewhere) as 16 floats: float32, or bfloat16 widened.
GEMM_INLINE TARGET_AVX512 __m512 load_source16(const void *src, int src_bf16, size_t i, __mmask16 mask) {
    if (!src_bf16) return _mm512_maskz_loadu_ps(mask, (const float *)src + i);
    const __m256i bits = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)src + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

/// gemm_pack_f32_body vectorized: a panel's k-row is one or two masked 16-value copies when rows are contiguous in the
/// source; when k is (a row-major A, a transposed B, attention's probability tiles), 16 rows × 16 k's are loaded,
/// transposed in registers and stored as 16 k's of the panel. Rows past `rows` are zeros. A bfloat16 source (a bf16
/// weight) is widened as it is loaded.
GEMM_INLINE TARGET_AVX512 void pack_avx512_body(const void *src, int src_bf16, size_t ld, int k_contiguous, size_t r0,
                                                size_t rows, size_t k0, size_t kc, size_t width, void *dst, int round) {
    if (!k_contiguous) {   // a k-row at a time across every panel, later ones fetched meanwhile (gemm_bf16.c)
        const size_t element = src_bf16 ? 2 : 4;
        for (size_t k = 0; k < kc; k++) {
            const size_t s = (k0 + k) * ld + r0;
            if (k + GEMM_PREFETCH_ROWS < kc)
                gemm_prefetch(src, element, s + GEMM_PREFETCH_ROWS * ld, rows * element);
            for (size_t p = 0; p < rows; p += width) {
                const size_t valid = rows - p < width ? rows - p : width;
                float *row = (float *)dst + p * kc + k * width;
                for (size_t g = 0; g < width; g += 16) {
                    const size_t lanes = width - g < 16 ? width - g : 16, filled = valid > g ? valid - g : 0;
                    const __mmask16 store = (__mmask16)((1u << lanes) - 1);
                    const __mmask16 load = (__mmask16)((1u << (filled < lanes ? filled : lanes)) - 1);
                    const __m512 v = load_source16(src, src_bf16, s + p + g, load);
                    _mm512_mask_storeu_ps(row + g, store, round ? round_bf16_16(v) : v);
                }
            }
        }
        return;
    }
    for (size_t p = 0; p < rows; p += width) {
        const size_t valid = rows - p < width ? rows - p : width;
        float *panel = (float *)dst + p * kc;
        for (size_t g = 0; g < width; g += 16) {
            const size_t lanes = width - g < 16 ? width - g : 16;
            const __mmask16 store = (__mmask16)((1u << lanes) - 1);
            for (size_t k = 0; k < kc; k += 16) {
                const size_t ks = kc - k < 16 ? kc - k : 16;
                const __mmask16 load = (__mmask16)((1u << ks) - 1);
                __m512 r[16];
                _Pragma("clang loop unroll(full)")
                for (int i = 0; i < 16; i++)
                    r[i] = (size_t)i < lanes && g + i < valid
                               ? load_source16(src, src_bf16, (r0 + p + g + i) * ld + k0 + k, load)
                               : _mm512_setzero_ps();
                if (k + GEMM_PREFETCH_ELEMENTS < kc)
                    for (size_t i = 0; i < lanes && g + i < valid; i++)
                        gemm_prefetch(src, src_bf16 ? 2 : 4,
                                      (r0 + p + g + i) * ld + k0 + k + GEMM_PREFETCH_ELEMENTS, 1);
                gemm_transpose16(r);
                for (size_t t = 0; t < ks; t++)
                    _mm512_mask_storeu_ps(panel + (k + t) * width + g, store, round ? round_bf16_16(r[t]) : r[t]);
            }
        }
    }
}

GEMM_PACKERS_F32(pack_avx512, TARGET_AVX512, pack_avx512_body)

collie_gemm_kernel collie_gemm_kernel_avx512(int rounded) {
    const collie_gemm_pack pack = rounded ? pack_avx512_f32_rounded : pack_avx512_f32;
    return (collie_gemm_kernel){MR, NR, 0, 1, 14 * 12, 768, 2048, micro_avx512_14, pack, pack,
                                pack_avx512_f32_from_bf16, micro_avx512_rows};
}

#endif
