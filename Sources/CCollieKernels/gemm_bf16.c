// The bfloat16 GEMM microkernel for AVX512_BF16 (level 4): a 14 × 32 tile of C in 28 zmm float32 accumulators.
// Operands are packed as bfloat16 pairs along K (gemm_pack.h): one 32-bit lane of a B vector holds B[k][j] and
// B[k+1][j], a broadcast 32-bit word of A holds A[i][k] and A[i][k+1], and vdpbf16ps adds both exact products to
// the float32 accumulator — two k's per instruction, twice the float32 FMA's rate.
#include "gemm_pack.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define MR 14
#define NR 32

TARGET_BF16 static void micro_bf16(size_t kc, const void *ap, const void *bp, float *c, size_t ldc, float alpha,
                                   float beta) {
    const uint32_t *a = ap;
    const uint16_t *b = bp;
    __m512 acc[MR][2];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {   // C's tile is needed at the end: fetch it while the products run
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    _Pragma("clang loop unroll_count(4)")
    for (size_t k = 0; k < kc; k += 2, a += MR, b += 2 * NR) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        if (beta == 0) {
            _mm512_storeu_ps(ci, _mm512_mul_ps(va, acc[i][0]));
            _mm512_storeu_ps(ci + 16, _mm512_mul_ps(va, acc[i][1]));
        } else {
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, acc[i][0])));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), _mm512_mul_ps(va, acc[i][1])));
        }
    }
}

/// 16 floats rounded to bfloat16 (collie_bf16_bits: to nearest even, NaN quiet), each in the low half of its lane.
TARGET_BF16 static inline __m512i round16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x), high = _mm512_srli_epi32(bits, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(high, _mm512_set1_epi32(1)));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
    return _mm512_mask_or_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), high, _mm512_set1_epi32(0x40));
}

/// gemm_pack_pairs_body with its inner loops vectorized: 32 k's of a row at a time when k is contiguous (16 pair
/// words, stored with the panel's stride), 16 rows of a k pair at a time otherwise; the tails go through the body.
TARGET_BF16 static void pack_bf16_pairs(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows,
                                        size_t k0, size_t kc, size_t width, void *dst) {
    const size_t kp = (kc + 1) & ~(size_t)1, k_vector = k_contiguous ? kc / 32 * 32 : kc / 2 * 2;
    if (k_vector < kc)   // the last k's of every panel, zero padding included
        for (size_t p = 0; p < rows; p += width) {
            const size_t valid = rows - p < width ? rows - p : width;
            uint16_t *panel = (uint16_t *)dst + p * kp;
            uint16_t tail[32 * 32] __attribute__((aligned(64)));
            gemm_pack_pairs_body(src, 0, ld, k_contiguous, r0 + p, valid, k0 + k_vector, kc - k_vector, width, tail);
            memcpy(panel + k_vector * width, tail, (kp - k_vector) * width * sizeof(uint16_t));
        }
    for (size_t p = 0; p < rows; p += width) {
        const size_t valid = rows - p < width ? rows - p : width;
        uint32_t *panel = (uint32_t *)((uint16_t *)dst + p * kp);   // panel[k/2 · width + r]: one pair
        if (k_contiguous) {
            for (size_t r = 0; r < valid; r++) {
                const float *s = src + (r0 + p + r) * ld + k0;
                for (size_t k = 0; k < k_vector; k += 32) {
                    const __m256i lo = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(s + k)));
                    const __m256i hi = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(s + k + 16)));
                    uint32_t words[16] __attribute__((aligned(64)));
                    _mm512_store_si512(words, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
                    uint32_t *d = panel + k / 2 * width + r;
                    for (int q = 0; q < 16; q++) d[q * width] = words[q];
                }
            }
            for (size_t r = valid; r < width; r++)
                for (size_t k = 0; k < k_vector; k += 2) panel[k / 2 * width + r] = 0;
        } else {
            for (size_t k = 0; k < k_vector; k += 2) {
                const float *s0 = src + (k0 + k) * ld + r0 + p, *s1 = s0 + ld;
                uint32_t *d = panel + k / 2 * width;
                for (size_t r = 0; r < width; r += 16) {
                    const __mmask16 in = r >= valid ? 0 : valid - r >= 16 ? 0xFFFF : (__mmask16)((1u << (valid - r)) - 1);
                    const __mmask16 out = width - r >= 16 ? 0xFFFF : (__mmask16)((1u << (width - r)) - 1);
                    const __m512i words = _mm512_or_si512(round16(_mm512_maskz_loadu_ps(in, s0 + r)),
                                                          _mm512_slli_epi32(round16(_mm512_maskz_loadu_ps(in, s1 + r)), 16));
                    _mm512_mask_storeu_epi32(d + r, out, words);
                }
            }
        }
    }
}

/// Pair panels from bfloat16 bits (bf16-stored weights): gemm_pack_pairs_body on a bf16 source, compiled for this level.
TARGET_BF16 static void pack_bf16_pairs_from_bf16(const uint16_t *src, size_t ld, int k_contiguous, size_t r0,
                                                  size_t rows, size_t k0, size_t kc, size_t width, void *dst) {
    gemm_pack_pairs_body(src, 1, ld, k_contiguous, r0, rows, k0, kc, width, dst);
}

collie_gemm_kernel collie_gemm_kernel_bf16(void) {
    return (collie_gemm_kernel){MR, NR, 1, 14 * 12, 768, 2048, micro_bf16, pack_bf16_pairs, pack_bf16_pairs_from_bf16};
}

#endif
