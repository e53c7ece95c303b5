// AVX-512 helpers shared by the AVX-512 levels (gemm_avx512.c, gemm_bf16.c): for packing, bfloat16 rounding of 16
// floats and a 16 × 16 transpose of 32-bit lanes; for the microkernels, their C tile's prefetch and store.
#ifndef COLLIE_GEMM_AVX512_H
#define COLLIE_GEMM_AVX512_H

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

/// 16 floats rounded to bfloat16 (collie_bf16_bits: to nearest even, NaN quiet), each in the low half of its lane.
__attribute__((target("avx512f"))) static inline __m512i gemm_round_bf16_bits16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x), high = _mm512_srli_epi32(bits, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(high, _mm512_set1_epi32(1)));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
    return _mm512_mask_or_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), high, _mm512_set1_epi32(0x40));
}

/// Transposes the 16 × 16 floats of r (r[i] lane j → r[j] lane i): unpack pairs, pairs of pairs, then 128-bit lanes.
__attribute__((target("avx512f"))) static inline void gemm_transpose16(__m512 r[16]) {
    __m512 a[16], b[16];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 4; i++) {   // b[4i + c], lane l: rows 4i ..< 4i + 4 of column 4l + c
        const __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
        const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
        b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    _Pragma("clang loop unroll(full)")
    for (int c = 0; c < 4; c++) {
        const __m512 e0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), e1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
        const __m512 f0 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88);
        const __m512 f1 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(e0, f0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(e1, f1, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(e0, f0, 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(e1, f1, 0xDD);
    }
}

/// Fetches the `rows` × 32 tile of C a microkernel writes at its end (two lines per row), while its products run.
__attribute__((always_inline, target("avx512f"))) static inline void gemm_prefetch_tile32(const int rows, const float *c,
                                                                                         size_t ldc) {
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 31), _MM_HINT_T0);
    }
}

/// Writes a microkernel's `rows` × 32 tile of C from its accumulators (two 16-float halves per row): alpha·acc, plus
/// beta·C unless beta = 0 (C then only written).
__attribute__((always_inline, target("avx512f"))) static inline void gemm_store_tile32(const int rows, __m512 acc[][2],
                                                                                      float *c, size_t ldc, float alpha,
                                                                                      float beta) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < rows; i++) {
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

#endif
#endif
