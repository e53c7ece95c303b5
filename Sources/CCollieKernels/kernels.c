#include "collie_kernels.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define COLLIE_X86 1
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))
#endif

// MARK: - Portable scalar versions

static float max_scalar(const float *p, size_t n) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) if (p[i] > m) m = p[i];
    return m;
}

static float sum_exp_scalar(const float *p, size_t n, float shift) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s += expf(p[i] - shift);
    return s;
}

static float exponentiate_scalar(const float *src, float *dst, size_t n, float shift, float scale) {
    float s = 0;
    for (size_t i = 0; i < n; i++) { float e = expf(src[i] - shift); s += e; dst[i] = e * scale; }
    return s;
}

static void add_exponentiated_scalar(const float *src, float *dst, size_t n, float shift, float scale) {
    for (size_t i = 0; i < n; i++) dst[i] += expf(src[i] - shift) * scale;
}

static void swiglu_scalar(const float *gate, const float *up, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) { float x = gate[i]; out[i] = x / (1 + expf(-x)) * up[i]; }
}

static void swiglu_backward_scalar(const float *gate, const float *up, const float *g, float *dg, float *du, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = gate[i], s = 1 / (1 + expf(-x));
        if (dg) dg[i] = g[i] * up[i] * s * (1 + x * (1 - s));
        if (du) du[i] = g[i] * x * s;
    }
}

#ifdef COLLIE_X86
// MARK: - AVX2 + FMA versions

/// exp of 8 lanes (Cephes' expf): range reduction by ln 2, degree-6 polynomial, ≤ 2 ulp (measured: 1.24).
/// Lanes below −87.34 give 0, above 88.38 give +inf, NaN stays NaN. Written for a short dependency chain — n
/// rounded by adding 1.5 · 2^23 (its bits then hold n), the polynomial by Estrin's scheme, one blend for the special
/// lanes — which on a Zen 2 took a row of exps from 0.68 to 0.57 ns per value.
AVX2 static inline __m256 exp8(__m256 v) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f), round = _mm256_set1_ps(12582912.0f);
    const __m256 x = _mm256_min_ps(_mm256_max_ps(v, lo), hi);   // NaN lanes become lo/hi here…
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), round);   // 1.5 · 2^23 + n
    const __m256 n = _mm256_sub_ps(t, round);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    const __m256 r2 = _mm256_mul_ps(r, r);
    const __m256 p01 = _mm256_fmadd_ps(_mm256_set1_ps(1.6666665459e-1f), r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 p23 = _mm256_fmadd_ps(_mm256_set1_ps(8.3334519073e-3f), r, _mm256_set1_ps(4.1665795894e-2f));
    const __m256 p45 = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    const __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(p45, r2, p23), r2, p01);
    const __m256 y = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23);
    const __m256 result = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    // …and the lanes x ≠ v (outside [lo, hi], or NaN) take 0 below lo, else v + inf: +inf, or v's NaN.
    const __m256 special = _mm256_and_ps(_mm256_cmp_ps(v, lo, _CMP_NLT_UQ), _mm256_add_ps(v, _mm256_set1_ps(INFINITY)));
    return _mm256_blendv_ps(result, special, _mm256_cmp_ps(v, x, _CMP_NEQ_UQ));
}

/// Loads the first `count` (< 8) floats, the other lanes set to `fill`.
AVX2 static inline __m256 load_partial(const float *p, size_t count, float fill) {
    float buffer[8];
    for (int i = 0; i < 8; i++) buffer[i] = (size_t)i < count ? p[i] : fill;
    return _mm256_loadu_ps(buffer);
}

AVX2 static inline void store_partial(float *p, __m256 v, size_t count) {
    float buffer[8];
    _mm256_storeu_ps(buffer, v);
    for (size_t i = 0; i < count; i++) p[i] = buffer[i];
}

AVX2 static inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float horizontal_max(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

AVX2 static float max_avx2(const float *p, size_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(p + i));
    if (i < n) m = _mm256_max_ps(m, load_partial(p + i, n - i, -INFINITY));
    return horizontal_max(m);
}

AVX2 static float sum_exp_avx2(const float *p, size_t n, float shift) {
    const __m256 k = _mm256_set1_ps(shift);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_ps(s0, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), k)));
        s1 = _mm256_add_ps(s1, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i + 8), k)));
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), k)));
    if (i < n) s1 = _mm256_add_ps(s1, exp8(_mm256_sub_ps(load_partial(p + i, n - i, -INFINITY), k)));
    return horizontal_sum(_mm256_add_ps(s0, s1));
}

AVX2 static float exponentiate_avx2(const float *src, float *dst, size_t n, float shift, float scale) {
    const __m256 k = _mm256_set1_ps(shift), c = _mm256_set1_ps(scale);
    __m256 s = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(src + i), k));
        s = _mm256_add_ps(s, e);
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(e, c));
    }
    if (i < n) {
        __m256 e = exp8(_mm256_sub_ps(load_partial(src + i, n - i, -INFINITY), k));
        s = _mm256_add_ps(s, e);
        store_partial(dst + i, _mm256_mul_ps(e, c), n - i);
    }
    return horizontal_sum(s);
}

AVX2 static void add_exponentiated_avx2(const float *src, float *dst, size_t n, float shift, float scale) {
    const __m256 k = _mm256_set1_ps(shift), c = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(src + i), k));
        _mm256_storeu_ps(dst + i, _mm256_fmadd_ps(e, c, _mm256_loadu_ps(dst + i)));
    }
    for (; i < n; i++) dst[i] += expf(src[i] - shift) * scale;
}

AVX2 static inline __m256 sigmoid8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

AVX2 static void swiglu_avx2(const float *gate, const float *up, float *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(x, sigmoid8(x)), _mm256_loadu_ps(up + i)));
    }
    swiglu_scalar(gate + i, up + i, out + i, n - i);
}

AVX2 static void swiglu_backward_avx2(const float *gate, const float *up, const float *g, float *dg, float *du, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i), s = sigmoid8(x), d = _mm256_loadu_ps(g + i);
        if (dg) {
            __m256 ds = _mm256_mul_ps(s, _mm256_fmadd_ps(x, _mm256_sub_ps(one, s), one));
            _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), ds));
        }
        if (du) _mm256_storeu_ps(du + i, _mm256_mul_ps(d, _mm256_mul_ps(x, s)));
    }
    swiglu_backward_scalar(gate + i, up + i, g + i, dg ? dg + i : 0, du ? du + i : 0, n - i);
}

// MARK: - AVX-512 versions (level 2 and up) of the hottest row kernels

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

/// exp8's arithmetic on 16 lanes: each lane's result is bit-identical to exp8's.
AVX512 static inline __m512 exp16(__m512 v) {
    const __m512 lo = _mm512_set1_ps(-87.33654f), hi = _mm512_set1_ps(88.37626f), round = _mm512_set1_ps(12582912.0f);
    const __m512 x = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), round);
    const __m512 n = _mm512_sub_ps(t, round);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    const __m512 r2 = _mm512_mul_ps(r, r);
    const __m512 p01 = _mm512_fmadd_ps(_mm512_set1_ps(1.6666665459e-1f), r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 p23 = _mm512_fmadd_ps(_mm512_set1_ps(8.3334519073e-3f), r, _mm512_set1_ps(4.1665795894e-2f));
    const __m512 p45 = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    const __m512 p = _mm512_fmadd_ps(_mm512_fmadd_ps(p45, r2, p23), r2, p01);
    const __m512 y = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)), 23);
    __m512 result = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
    result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), _mm512_setzero_ps());
    result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
    return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_add_ps(v, v));
}

/// Mask of the first `count` (≤ 16) lanes.
AVX512 static inline __mmask16 first_lanes(size_t count) { return (__mmask16)((1u << count) - 1); }

AVX512 static float max_avx512(const float *p, size_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(p + i));
    if (i < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), first_lanes(n - i), p + i));
    return _mm512_reduce_max_ps(m);
}

AVX512 static float exponentiate_avx512(const float *src, float *dst, size_t n, float shift, float scale) {
    const __m512 k = _mm512_set1_ps(shift), c = _mm512_set1_ps(scale);
    __m512 s = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(src + i), k));
        s = _mm512_add_ps(s, e);
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(e, c));
    }
    if (i < n) {
        const __mmask16 tail = first_lanes(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail, src + i), k));
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(tail, e));
        _mm512_mask_storeu_ps(dst + i, tail, _mm512_mul_ps(e, c));
    }
    return _mm512_reduce_add_ps(s);
}

AVX512 static float sum_exp_avx512(const float *p, size_t n, float shift) {
    const __m512 k = _mm512_set1_ps(shift);
    __m512 s = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_add_ps(s, exp16(_mm512_sub_ps(_mm512_loadu_ps(p + i), k)));
    if (i < n) {
        const __mmask16 tail = first_lanes(n - i);
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(tail, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, p + i), k))));
    }
    return _mm512_reduce_add_ps(s);
}

AVX512 static void add_exponentiated_avx512(const float *src, float *dst, size_t n, float shift, float scale) {
    const __m512 k = _mm512_set1_ps(shift), c = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 lanes = n - i >= 16 ? (__mmask16)0xFFFF : first_lanes(n - i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, src + i), k));
        _mm512_mask_storeu_ps(dst + i, lanes, _mm512_fmadd_ps(e, c, _mm512_maskz_loadu_ps(lanes, dst + i)));
    }
}

static int has_avx512(void) { return collie_kernel_level() >= 2; }

static int has_avx2(void) { return collie_kernel_level() >= 1; }
#define DISPATCH(vector_call, scalar_call) do { if (has_avx2()) { vector_call; } else { scalar_call; } } while (0)
#else
static int has_avx2(void) { return 0; }
#define DISPATCH(vector_call, scalar_call) do { scalar_call; } while (0)
#endif

// MARK: - Entry points

float collie_max_f32(const float *p, size_t n) {
#ifdef COLLIE_X86
    if (has_avx512()) return max_avx512(p, n);
#endif
    DISPATCH(return max_avx2(p, n), return max_scalar(p, n));
}

float collie_sum_exp_f32(const float *p, size_t n, float shift) {
#ifdef COLLIE_X86
    if (has_avx512()) return sum_exp_avx512(p, n, shift);
#endif
    DISPATCH(return sum_exp_avx2(p, n, shift), return sum_exp_scalar(p, n, shift));
}

float collie_exponentiate_f32(const float *src, float *dst, size_t n, float shift, float scale) {
#ifdef COLLIE_X86
    if (has_avx512()) return exponentiate_avx512(src, dst, n, shift, scale);
#endif
    DISPATCH(return exponentiate_avx2(src, dst, n, shift, scale), return exponentiate_scalar(src, dst, n, shift, scale));
}

void collie_add_exponentiated_f32(const float *src, float *dst, size_t n, float shift, float scale) {
#ifdef COLLIE_X86
    if (has_avx512()) {
        add_exponentiated_avx512(src, dst, n, shift, scale);
        return;
    }
#endif
    DISPATCH(add_exponentiated_avx2(src, dst, n, shift, scale), add_exponentiated_scalar(src, dst, n, shift, scale));
}

void collie_swiglu_f32(const float *gate, const float *up, float *out, size_t n) {
    DISPATCH(swiglu_avx2(gate, up, out, n), swiglu_scalar(gate, up, out, n));
}

void collie_swiglu_backward_f32(const float *gate, const float *up, const float *gradient,
                                float *gate_gradient, float *up_gradient, size_t n) {
    DISPATCH(swiglu_backward_avx2(gate, up, gradient, gate_gradient, up_gradient, n),
             swiglu_backward_scalar(gate, up, gradient, gate_gradient, up_gradient, n));
}

int collie_kernels_vectorized(void) { return has_avx2(); }
