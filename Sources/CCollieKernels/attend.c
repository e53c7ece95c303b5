#include "collie_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define ATTEND_X86 1
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f")))
#endif
#define ALWAYS_INLINE __attribute__((always_inline)) inline

// MARK: - Dot products and scaled additions, per instruction set

static ALWAYS_INLINE float dot_scalar(const float *a, const float *b, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static ALWAYS_INLINE void axpy_scalar(float alpha, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

#ifdef ATTEND_X86
// dot_<isa> and axpy_<isa>, written once for a vector type.
#define VECTOR_OPS(ISA, TARGET, VEC, LANES, ZERO, LOAD, STORE, ADD, FMA, SET1, REDUCE)                                \
    TARGET static ALWAYS_INLINE float dot_##ISA(const float *a, const float *b, size_t n) {                           \
        VEC s0 = ZERO(), s1 = ZERO();                                                                                 \
        size_t i = 0;                                                                                                 \
        for (; i + 2 * LANES <= n; i += 2 * LANES) {                                                                  \
            s0 = FMA(LOAD(a + i), LOAD(b + i), s0);                                                                   \
            s1 = FMA(LOAD(a + i + LANES), LOAD(b + i + LANES), s1);                                                   \
        }                                                                                                             \
        for (; i + LANES <= n; i += LANES) s0 = FMA(LOAD(a + i), LOAD(b + i), s0);                                    \
        float s = REDUCE(ADD(s0, s1));                                                                                \
        for (; i < n; i++) s += a[i] * b[i];                                                                          \
        return s;                                                                                                     \
    }                                                                                                                 \
    TARGET static ALWAYS_INLINE void axpy_##ISA(float alpha, const float *x, float *y, size_t n) {                    \
        VEC a = SET1(alpha);                                                                                          \
        size_t i = 0;                                                                                                 \
        for (; i + LANES <= n; i += LANES) STORE(y + i, FMA(a, LOAD(x + i), LOAD(y + i)));                            \
        for (; i < n; i++) y[i] += alpha * x[i];                                                                      \
    }

AVX2 static ALWAYS_INLINE float reduce8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
VECTOR_OPS(avx2, AVX2, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_fmadd_ps,
           _mm256_set1_ps, reduce8)
VECTOR_OPS(avx512, AVX512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps,
           _mm512_fmadd_ps, _mm512_set1_ps, _mm512_reduce_add_ps)
#endif

// MARK: - Attention of one query position

// The kernel, written once; each instruction set's copy inlines its own DOT and AXPY.
#define ATTEND_HEADS(DOT, AXPY)                                                                                  \
    size_t stride = kv_heads * dim, h0 = g0 * group, h1 = g1 * group;                                           \
    /* Scores, walking the keys in memory order: row j holds every kv head's key. */                            \
    for (size_t j = 0; j < n; j++) {                                                                             \
        float shift = bias ? bias[j] : 0;                                                                        \
        for (size_t h = h0; h < h1; h++)                                                                         \
            scores[(h - h0) * n + j] = DOT(q + h * dim, k + j * stride + (h / group) * dim, dim) * scale + shift; \
    }                                                                                                            \
    /* Softmax per head; a head whose keys are all masked gets logsumexp +inf and output 0. */                  \
    for (size_t h = h0; h < h1; h++) {                                                                           \
        float *row = scores + (h - h0) * n;                                                                      \
        memset(out + h * dim, 0, dim * sizeof(float));                                                           \
        float m = collie_max_f32(row, n);                                                                        \
        if (m == -INFINITY) {                                                                                    \
            memset(row, 0, n * sizeof(float));                                                                   \
            lse[h] = INFINITY;                                                                                   \
            continue;                                                                                            \
        }                                                                                                        \
        float l = collie_exponentiate_f32(row, row, n, m, 1);                                                    \
        lse[h] = m + logf(l);                                                                                    \
        for (size_t j = 0; j < n; j++) row[j] /= l;                                                              \
    }                                                                                                            \
    /* Weighted values, again in memory order. */                                                                \
    for (size_t j = 0; j < n; j++)                                                                               \
        for (size_t h = h0; h < h1; h++) {                                                                       \
            float p = scores[(h - h0) * n + j];                                                                  \
            if (p != 0) AXPY(p, v + j * stride + (h / group) * dim, out + h * dim, dim);                         \
        }

#define ATTEND_PARAMETERS                                                                                        \
    const float *q, const float *k, const float *v, size_t n, size_t kv_heads, size_t group, size_t dim, size_t g0, \
        size_t g1, float scale, const float *bias, float *scores, float *out, float *lse

static void attend_scalar(ATTEND_PARAMETERS) { ATTEND_HEADS(dot_scalar, axpy_scalar) }
#ifdef ATTEND_X86
AVX2 static void attend_avx2(ATTEND_PARAMETERS) { ATTEND_HEADS(dot_avx2, axpy_avx2) }
AVX512 static void attend_avx512(ATTEND_PARAMETERS) { ATTEND_HEADS(dot_avx512, axpy_avx512) }
#endif

void collie_attend_heads_f32(const float *q, const float *k, const float *v, size_t n, size_t kv_heads, size_t group,
                             size_t dim, size_t g0, size_t g1, float scale, const float *bias, float *scores, float *out,
                             float *lse) {
#ifdef ATTEND_X86
    int level = collie_kernel_level();
    if (level >= 2) { attend_avx512(q, k, v, n, kv_heads, group, dim, g0, g1, scale, bias, scores, out, lse); return; }
    if (level >= 1) { attend_avx2(q, k, v, n, kv_heads, group, dim, g0, g1, scale, bias, scores, out, lse); return; }
#endif
    attend_scalar(q, k, v, n, kv_heads, group, dim, g0, g1, scale, bias, scores, out, lse);
}
