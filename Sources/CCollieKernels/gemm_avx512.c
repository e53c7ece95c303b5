// The float32 GEMM microkernel for AVX-512F (level 2 and up): a 14 × 32 tile of C in 28 zmm accumulators. Each k
// loads two 16-float vectors of the B micro-panel and broadcasts 14 values of the A micro-panel (folded into the
// FMAs as {1to16} memory operands): 28 FMAs per 2 loads + 14 broadcasts.
#include "gemm_pack.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define MR 14
#define NR 32

TARGET_AVX512 static void micro_avx512(size_t kc, const void *ap, const void *bp, float *c, size_t ldc, float alpha,
                                       float beta) {
    const float *a = ap, *b = bp;
    __m512 acc[MR][2];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {   // C's tile is needed at the end: fetch it while the products run
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    _Pragma("clang loop unroll_count(4)")
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
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

GEMM_PACKERS_F32(pack_avx512, TARGET_AVX512)

collie_gemm_kernel collie_gemm_kernel_avx512(int rounded) {
    return (collie_gemm_kernel){MR, NR, 0, 14 * 12, 768, 2048, micro_avx512,
                                rounded ? pack_avx512_f32_rounded : pack_avx512_f32, pack_avx512_f32_from_bf16};
}

#endif
