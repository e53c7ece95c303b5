#include "collie_gemv.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GEMV_X86 1
#include <immintrin.h>
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

// Input rows per pass of the AVX2 kernel: each weight row is widened once per pass and used for up to this many.
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
//
// Decoding reads every weight once per token, so the kernel's speed is how fast one core streams memory. Walking
// consecutive rows keeps a single stream open and a core then reads ~10 GB/s here; cutting the row range into
// GEMV_STREAMS chunks and taking one row from each in turn keeps that many streams in flight (~13 GB/s per core,
// 26 GB/s for two, measured on the whole small preset's weights). With more than one input row the kernel is bound by
// arithmetic instead, and a tile of GEMV_TILE_W weight rows × 8 input rows keeps 24 accumulators in registers and
// loads each input vector once for three weight rows.

#define GEMV_STREAMS 8
#define GEMV_TILE_W 3
#define ALWAYS_INLINE __attribute__((always_inline)) inline

TARGET_AVX512 static ALWAYS_INLINE __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

TARGET_AVX512 static ALWAYS_INLINE __m512 load16_w(const void *w, int bf16, size_t k) {
    return bf16 ? load16_bf16((const uint16_t *)w + k) : _mm512_loadu_ps((const float *)w + k);
}

static ALWAYS_INLINE float scalar_w(const void *w, int bf16, size_t k) {
    return bf16 ? bf16_to_f32(((const uint16_t *)w)[k]) : ((const float *)w)[k];
}

// y[q·out + o[r]] = w[o[r]] · x[q] for r < nw weight rows and q < nx input rows. Called with constant nw, nx and bf16,
// so each call site becomes a fully unrolled tile whose accumulators live in registers.
TARGET_AVX512 static ALWAYS_INLINE void tile_512(const void *w, int bf16, const size_t *o, int nw, const float *x, int nx,
                                                 size_t in, float *y, size_t out) {
    __m512 acc[GEMV_STREAMS][8];
    for (int r = 0; r < nw; r++)
        for (int q = 0; q < nx; q++) acc[r][q] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= in; i += 16) {
        __m512 wv[GEMV_STREAMS];
        for (int r = 0; r < nw; r++) wv[r] = load16_w(w, bf16, o[r] * in + i);
        for (int q = 0; q < nx; q++) {
            __m512 xv = _mm512_loadu_ps(x + q * in + i);
            for (int r = 0; r < nw; r++) acc[r][q] = _mm512_fmadd_ps(wv[r], xv, acc[r][q]);
        }
    }
    for (int r = 0; r < nw; r++)
        for (int q = 0; q < nx; q++) {
            float s = _mm512_reduce_add_ps(acc[r][q]);
            for (size_t j = i; j < in; j++) s += scalar_w(w, bf16, o[r] * in + j) * x[q * in + j];
            y[q * out + o[r]] = s;
        }
}

// Every input row against the nw weight rows o[0..<nw]: blocks of 8 input rows, then 4, 2, 1.
TARGET_AVX512 static ALWAYS_INLINE void rows_512(const void *w, int bf16, const size_t *o, int nw, const float *x,
                                                 size_t rows, size_t in, float *y, size_t out) {
    size_t q = 0;
    for (; q + 8 <= rows; q += 8) tile_512(w, bf16, o, nw, x + q * in, 8, in, y + q * out, out);
    if (q + 4 <= rows) { tile_512(w, bf16, o, nw, x + q * in, 4, in, y + q * out, out); q += 4; }
    if (q + 2 <= rows) { tile_512(w, bf16, o, nw, x + q * in, 2, in, y + q * out, out); q += 2; }
    if (q < rows) tile_512(w, bf16, o, nw, x + q * in, 1, in, y + q * out, out);
}

// Rows begin..<begin + nw·⌊(end − begin)/nw⌋ as tiles of nw weight rows, one from each of nw equal chunks (nw
// streams in flight); returns the first row left over.
TARGET_AVX512 static ALWAYS_INLINE size_t spread_512(const void *w, int bf16, const float *x, float *y, size_t in,
                                                     size_t out, size_t rows, size_t begin, size_t end, int nw) {
    size_t o[GEMV_STREAMS], chunk = (end - begin) / nw;
    for (size_t j = 0; j < chunk; j++) {
        for (int r = 0; r < nw; r++) o[r] = begin + r * chunk + j;
        rows_512(w, bf16, o, nw, x, rows, in, y, out);
    }
    return begin + nw * chunk;
}

TARGET_AVX512 static ALWAYS_INLINE void gemv_512(const void *w, int bf16, const float *x, float *y, size_t in,
                                                 size_t out, size_t rows, size_t begin, size_t end) {
    // As many weight rows per tile as the accumulators (weight rows × input block of ≤ 8) leave room for.
    if (rows < 4) begin = spread_512(w, bf16, x, y, in, out, rows, begin, end, GEMV_STREAMS);
    else if (rows < 8) begin = spread_512(w, bf16, x, y, in, out, rows, begin, end, 6);
    else begin = spread_512(w, bf16, x, y, in, out, rows, begin, end, GEMV_TILE_W);
    for (size_t o = begin; o < end; o++) rows_512(w, bf16, &o, 1, x, rows, in, y, out);   // rows left over
}

TARGET_AVX512 static void gemv_bf16_avx512(const uint16_t *w, const float *x, float *y, size_t in, size_t out,
                                           size_t rows, size_t begin, size_t end) {
    gemv_512(w, 1, x, y, in, out, rows, begin, end);
}

TARGET_AVX512 static void gemv_f32_avx512(const float *w, const float *x, float *y, size_t in, size_t out,
                                          size_t rows, size_t begin, size_t end) {
    gemv_512(w, 0, x, y, in, out, rows, begin, end);
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

#define W_BF16_SCALAR(k) bf16_to_f32(w[(k)])
#define W_F32_SCALAR(k) w[(k)]
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

static int level_limit = 2;

int collie_gemv_level(void) {
    static int detected = -1;
#ifdef GEMV_X86
    if (detected < 0) {
        if (__builtin_cpu_supports("avx512f")) detected = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) detected = 1;
        else detected = 0;
    }
#else
    detected = 0;
#endif
    return detected < level_limit ? detected : level_limit;
}

void collie_gemv_limit_level(int level) { level_limit = level < 0 ? 0 : level; }

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
