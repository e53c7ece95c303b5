#include "collie_gemv.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GEMV_X86 1
#include <immintrin.h>
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

// Input rows per pass: each weight row is widened once per pass and used for up to this many inputs.
#define GEMV_ROWS 8

static inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

// MARK: - Portable

static void gemv_bf16_scalar(const uint16_t *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                             size_t begin, size_t end) {
    for (size_t o = begin; o < end; o++) {
        const uint16_t *wo = w + o * in;
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * in;
            float s = 0;
            for (size_t i = 0; i < in; i++) s += bf16_to_f32(wo[i]) * xr[i];
            y[r * out + o] = s;
        }
    }
}

static void gemv_f32_scalar(const float *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                            size_t begin, size_t end) {
    for (size_t o = begin; o < end; o++) {
        const float *wo = w + o * in;
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * in;
            float s = 0;
            for (size_t i = 0; i < in; i++) s += wo[i] * xr[i];
            y[r * out + o] = s;
        }
    }
}

#ifdef GEMV_X86

// MARK: - AVX-512F (16 lanes)

TARGET_AVX512 static inline __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

// One weight-row loader for both dtypes, so the loop below is written once per instruction set.
#define GEMV_BODY_512(LOAD, SCALAR_W)                                                                     \
    for (size_t o = begin; o < end; o++) {                                                                \
        for (size_t r0 = 0; r0 < rows; r0 += GEMV_ROWS) {                                                 \
            size_t nr = rows - r0 < GEMV_ROWS ? rows - r0 : GEMV_ROWS;                                    \
            __m512 acc[GEMV_ROWS];                                                                        \
            for (size_t r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();                                 \
            size_t i = 0;                                                                                 \
            for (; i + 16 <= in; i += 16) {                                                               \
                __m512 wv = LOAD(o * in + i);                                                             \
                for (size_t r = 0; r < nr; r++)                                                           \
                    acc[r] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (r0 + r) * in + i), acc[r]);         \
            }                                                                                             \
            for (size_t r = 0; r < nr; r++) {                                                             \
                float s = _mm512_reduce_add_ps(acc[r]);                                                   \
                for (size_t j = i; j < in; j++) s += SCALAR_W(o * in + j) * x[(r0 + r) * in + j];         \
                y[(r0 + r) * out + o] = s;                                                                \
            }                                                                                             \
        }                                                                                                 \
    }

// A single input row: four weight rows at a time (four streams in flight, x loaded once for them),
// then the remaining rows with two accumulators each.
#define GEMV_ONE_512(LOAD, SCALAR_W)                                                                      \
    size_t o = begin;                                                                                     \
    for (; o + 4 <= end; o += 4) {                                                                        \
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();                                        \
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();                                        \
        size_t i = 0;                                                                                     \
        for (; i + 16 <= in; i += 16) {                                                                   \
            __m512 xv = _mm512_loadu_ps(x + i);                                                           \
            a0 = _mm512_fmadd_ps(LOAD(o * in + i), xv, a0);                                               \
            a1 = _mm512_fmadd_ps(LOAD((o + 1) * in + i), xv, a1);                                         \
            a2 = _mm512_fmadd_ps(LOAD((o + 2) * in + i), xv, a2);                                         \
            a3 = _mm512_fmadd_ps(LOAD((o + 3) * in + i), xv, a3);                                         \
        }                                                                                                 \
        float s0 = _mm512_reduce_add_ps(a0), s1 = _mm512_reduce_add_ps(a1);                               \
        float s2 = _mm512_reduce_add_ps(a2), s3 = _mm512_reduce_add_ps(a3);                               \
        for (; i < in; i++) {                                                                             \
            s0 += SCALAR_W(o * in + i) * x[i];                                                            \
            s1 += SCALAR_W((o + 1) * in + i) * x[i];                                                      \
            s2 += SCALAR_W((o + 2) * in + i) * x[i];                                                      \
            s3 += SCALAR_W((o + 3) * in + i) * x[i];                                                      \
        }                                                                                                 \
        y[o] = s0; y[o + 1] = s1; y[o + 2] = s2; y[o + 3] = s3;                                           \
    }                                                                                                     \
    for (; o < end; o++) {                                                                                \
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();                                        \
        size_t i = 0;                                                                                     \
        for (; i + 32 <= in; i += 32) {                                                                   \
            a0 = _mm512_fmadd_ps(LOAD(o * in + i), _mm512_loadu_ps(x + i), a0);                           \
            a1 = _mm512_fmadd_ps(LOAD(o * in + i + 16), _mm512_loadu_ps(x + i + 16), a1);                 \
        }                                                                                                 \
        for (; i + 16 <= in; i += 16) a0 = _mm512_fmadd_ps(LOAD(o * in + i), _mm512_loadu_ps(x + i), a0); \
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                            \
        for (; i < in; i++) s += SCALAR_W(o * in + i) * x[i];                                             \
        y[o] = s;                                                                                         \
    }

#define W_BF16_512(k) load16_bf16(w + (k))
#define W_BF16_SCALAR(k) bf16_to_f32(w[(k)])
#define W_F32_512(k) _mm512_loadu_ps(w + (k))
#define W_F32_SCALAR(k) w[(k)]

TARGET_AVX512 static void gemv_bf16_avx512(const uint16_t *w, const float *x, float *y, size_t in, size_t out,
                                           size_t rows, size_t begin, size_t end) {
    if (rows == 1) { GEMV_ONE_512(W_BF16_512, W_BF16_SCALAR) } else { GEMV_BODY_512(W_BF16_512, W_BF16_SCALAR) }
}

TARGET_AVX512 static void gemv_f32_avx512(const float *w, const float *x, float *y, size_t in, size_t out,
                                          size_t rows, size_t begin, size_t end) {
    if (rows == 1) { GEMV_ONE_512(W_F32_512, W_F32_SCALAR) } else { GEMV_BODY_512(W_F32_512, W_F32_SCALAR) }
}

// MARK: - AVX2 + FMA (8 lanes)

TARGET_AVX2 static inline __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

TARGET_AVX2 static inline float reduce8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#define GEMV_BODY_256(LOAD, SCALAR_W)                                                                     \
    for (size_t o = begin; o < end; o++) {                                                                \
        for (size_t r0 = 0; r0 < rows; r0 += GEMV_ROWS) {                                                 \
            size_t nr = rows - r0 < GEMV_ROWS ? rows - r0 : GEMV_ROWS;                                    \
            __m256 acc[GEMV_ROWS];                                                                        \
            for (size_t r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();                                 \
            size_t i = 0;                                                                                 \
            for (; i + 8 <= in; i += 8) {                                                                 \
                __m256 wv = LOAD(o * in + i);                                                             \
                for (size_t r = 0; r < nr; r++)                                                           \
                    acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (r0 + r) * in + i), acc[r]);         \
            }                                                                                             \
            for (size_t r = 0; r < nr; r++) {                                                             \
                float s = reduce8(acc[r]);                                                                \
                for (size_t j = i; j < in; j++) s += SCALAR_W(o * in + j) * x[(r0 + r) * in + j];         \
                y[(r0 + r) * out + o] = s;                                                                \
            }                                                                                             \
        }                                                                                                 \
    }

#define W_BF16_256(k) load8_bf16(w + (k))
#define W_F32_256(k) _mm256_loadu_ps(w + (k))

TARGET_AVX2 static void gemv_bf16_avx2(const uint16_t *w, const float *x, float *y, size_t in, size_t out,
                                       size_t rows, size_t begin, size_t end) {
    GEMV_BODY_256(W_BF16_256, W_BF16_SCALAR)
}

TARGET_AVX2 static void gemv_f32_avx2(const float *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                                      size_t begin, size_t end) {
    GEMV_BODY_256(W_F32_256, W_F32_SCALAR)
}

#endif

// MARK: - Dispatch

int collie_gemv_level(void) {
    static int cached = -1;
#ifdef GEMV_X86
    if (cached < 0) {
        if (__builtin_cpu_supports("avx512f")) cached = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) cached = 1;
        else cached = 0;
    }
#else
    cached = 0;
#endif
    return cached;
}

void collie_gemv_bf16(const uint16_t *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                      size_t begin, size_t end) {
#ifdef GEMV_X86
    switch (collie_gemv_level()) {
    case 2: gemv_bf16_avx512(w, x, y, in, out, rows, begin, end); return;
    case 1: gemv_bf16_avx2(w, x, y, in, out, rows, begin, end); return;
    default: break;
    }
#endif
    gemv_bf16_scalar(w, x, y, in, out, rows, begin, end);
}

void collie_gemv_f32(const float *w, const float *x, float *y, size_t in, size_t out, size_t rows, size_t begin,
                     size_t end) {
#ifdef GEMV_X86
    switch (collie_gemv_level()) {
    case 2: gemv_f32_avx512(w, x, y, in, out, rows, begin, end); return;
    case 1: gemv_f32_avx2(w, x, y, in, out, rows, begin, end); return;
    default: break;
    }
#endif
    gemv_f32_scalar(w, x, y, in, out, rows, begin, end);
}
