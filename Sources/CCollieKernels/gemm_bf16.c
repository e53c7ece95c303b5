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

TARGET_BF16 static void pack_bf16_pairs(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows,
                                        size_t k0, size_t kc, size_t width, void *dst) {
    gemm_pack_pairs_body(src, ld, k_contiguous, r0, rows, k0, kc, width, (uint16_t *)dst);
}

collie_gemm_kernel collie_gemm_kernel_bf16(void) {
    return (collie_gemm_kernel){MR, NR, 1, 14 * 12, 768, 2048, micro_bf16, pack_bf16_pairs};
}

#endif
