// The float32 GEMM microkernel for AVX2 + FMA (level 1): a 6 × 16 tile of C in 12 ymm accumulators, two B vectors
// and one broadcast of A per step (15 of the 16 registers).
#include "gemm_pack.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MR 6
#define NR 16

TARGET_AVX2 static void micro_avx2(size_t kc, const void *ap, const void *bp, float *c, size_t ldc, float alpha,
                                   float beta) {
    const float *a = ap, *b = bp;
    __m256 acc[MR][2];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {   // C's tile is needed at the end: fetch it while the products run
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    _Pragma("clang loop unroll_count(4)")
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
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

GEMM_PACKERS_F32(pack_avx2, TARGET_AVX2)

collie_gemm_kernel collie_gemm_kernel_avx2(int rounded) {
    const collie_gemm_pack pack = rounded ? pack_avx2_f32_rounded : pack_avx2_f32;
    return (collie_gemm_kernel){MR, NR, 0, 1, 6 * 24, 768, 2048, micro_avx2, pack, pack,
                                pack_avx2_f32_from_bf16};
}

#endif
