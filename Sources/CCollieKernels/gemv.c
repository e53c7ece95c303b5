#include "collie_gemv.h"
#include "collie_kernels.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GEMV_X86 1
#include <immintrin.h>
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

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

// MARK: - Vector kernels
//
// Decoding reads every weight once per token, so the kernel's speed is how fast one core streams memory. Walking
// consecutive rows keeps a single stream open and a core then reads ~10 GB/s here; cutting the row range into
// GEMV_STREAMS chunks and taking one row from each in turn keeps that many streams in flight (~13 GB/s per core,
// 26 GB/s for two, measured on the whole small preset's weights). With more than one input row the kernel is bound by
// arithmetic instead, and a tile of a few weight rows × up to 8 input rows keeps its accumulators in registers and
// loads each input vector once for all the tile's weight rows.
//
// GEMV_KERNELS writes the kernels once for a vector type: every function is inlined into gemv_bf16_<isa> and
// gemv_f32_<isa> with constant tile sizes, so each call site becomes an unrolled tile. BLOCK is the most input rows per
// tile; FEW, SOME and MANY are the weight rows per tile for 2–3, 4–7 and 8 or more input rows (the accumulators,
// weight rows × input rows, fit in the register file: 32 zmm, 16 ymm).

#define GEMV_STREAMS 8
#define ALWAYS_INLINE __attribute__((always_inline)) inline

static ALWAYS_INLINE float scalar_w(const void *w, int bf16, size_t k) {
    return bf16 ? bf16_to_f32(((const uint16_t *)w)[k]) : ((const float *)w)[k];
}

#define GEMV_KERNELS(ISA, TARGET, VEC, LANES, ZERO, LOADX, LOADW_BF16, LOADW_F32, FMA, REDUCE, BLOCK, FEW, SOME, MANY) \
    /* y[q·out + o[r]] = w[o[r]] · x[q] for r < nw weight rows and q < nx input rows. */                               \
    TARGET static ALWAYS_INLINE void tile_##ISA(const void *w, int bf16, const size_t *o, int nw, const float *x,      \
                                                int nx, size_t in, float *y, size_t out) {                             \
        VEC acc[GEMV_STREAMS][BLOCK];                                                                                  \
        for (int r = 0; r < nw; r++)                                                                                   \
            for (int q = 0; q < nx; q++) acc[r][q] = ZERO();                                                           \
        size_t i = 0;                                                                                                  \
        for (; i + LANES <= in; i += LANES) {                                                                          \
            VEC wv[GEMV_STREAMS];                                                                                      \
            for (int r = 0; r < nw; r++)                                                                               \
                wv[r] = bf16 ? LOADW_BF16((const uint16_t *)w + o[r] * in + i) : LOADW_F32((const float *)w + o[r] * in + i); \
            for (int q = 0; q < nx; q++) {                                                                             \
                VEC xv = LOADX(x + q * in + i);                                                                        \
                for (int r = 0; r < nw; r++) acc[r][q] = FMA(wv[r], xv, acc[r][q]);                                    \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < nw; r++)                                                                                   \
            for (int q = 0; q < nx; q++) {                                                                             \
                float s = REDUCE(acc[r][q]);                                                                           \
                for (size_t j = i; j < in; j++) s += scalar_w(w, bf16, o[r] * in + j) * x[q * in + j];                 \
                y[q * out + o[r]] = s;                                                                                 \
            }                                                                                                          \
    }                                                                                                                  \
    /* Every input row against the nw weight rows o[0..<nw]: blocks of BLOCK input rows, then 4, 2, 1. */             \
    TARGET static ALWAYS_INLINE void rows_##ISA(const void *w, int bf16, const size_t *o, int nw, const float *x,      \
                                                size_t rows, size_t in, float *y, size_t out) {                        \
        size_t q = 0;                                                                                                  \
        for (; q + BLOCK <= rows; q += BLOCK) tile_##ISA(w, bf16, o, nw, x + q * in, BLOCK, in, y + q * out, out);     \
        if (BLOCK > 4 && q + 4 <= rows) { tile_##ISA(w, bf16, o, nw, x + q * in, 4, in, y + q * out, out); q += 4; }   \
        if (q + 2 <= rows) { tile_##ISA(w, bf16, o, nw, x + q * in, 2, in, y + q * out, out); q += 2; }                \
        if (q < rows) tile_##ISA(w, bf16, o, nw, x + q * in, 1, in, y + q * out, out);                                 \
    }                                                                                                                  \
    /* Rows begin..<begin + nw·⌊(end − begin)/nw⌋ as tiles of nw weight rows, one from each of nw equal chunks (nw     \
       streams in flight); returns the first row left over. */                                                        \
    TARGET static ALWAYS_INLINE size_t spread_##ISA(const void *w, int bf16, const float *x, float *y, size_t in,     \
                                                    size_t out, size_t rows, size_t begin, size_t end, int nw) {       \
        size_t o[GEMV_STREAMS], chunk = (end - begin) / nw;                                                            \
        for (size_t j = 0; j < chunk; j++) {                                                                           \
            for (int r = 0; r < nw; r++) o[r] = begin + r * chunk + j;                                                 \
            rows_##ISA(w, bf16, o, nw, x, rows, in, y, out);                                                           \
        }                                                                                                              \
        return begin + nw * chunk;                                                                                     \
    }                                                                                                                  \
    TARGET static ALWAYS_INLINE void gemv_##ISA(const void *w, int bf16, const float *x, float *y, size_t in,          \
                                                size_t out, size_t rows, size_t begin, size_t end) {                   \
        if (rows == 1) begin = spread_##ISA(w, bf16, x, y, in, out, rows, begin, end, GEMV_STREAMS);                  \
        else if (rows < 4) begin = spread_##ISA(w, bf16, x, y, in, out, rows, begin, end, FEW);                       \
        else if (rows < 8) begin = spread_##ISA(w, bf16, x, y, in, out, rows, begin, end, SOME);                      \
        else begin = spread_##ISA(w, bf16, x, y, in, out, rows, begin, end, MANY);                                    \
        for (size_t o = begin; o < end; o++) rows_##ISA(w, bf16, &o, 1, x, rows, in, y, out); /* rows left over */     \
    }                                                                                                                  \
    TARGET static void gemv_bf16_##ISA(const uint16_t *w, const float *x, float *y, size_t in, size_t out,            \
                                       size_t rows, size_t begin, size_t end) {                                        \
        gemv_##ISA(w, 1, x, y, in, out, rows, begin, end);                                                             \
    }                                                                                                                  \
    TARGET static void gemv_f32_##ISA(const float *w, const float *x, float *y, size_t in, size_t out, size_t rows,   \
                                      size_t begin, size_t end) {                                                      \
        gemv_##ISA(w, 0, x, y, in, out, rows, begin, end);                                                             \
    }

// AVX-512F: 16 lanes, 32 registers.
TARGET_AVX512 static ALWAYS_INLINE __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
GEMV_KERNELS(avx512, TARGET_AVX512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, load16_bf16, _mm512_loadu_ps,
             _mm512_fmadd_ps, _mm512_reduce_add_ps, 8, 8, 6, 3)

// AVX2 + FMA: 8 lanes, 16 registers.
TARGET_AVX2 static ALWAYS_INLINE __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
TARGET_AVX2 static ALWAYS_INLINE float reduce8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
GEMV_KERNELS(avx2, TARGET_AVX2, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, load8_bf16, _mm256_loadu_ps,
             _mm256_fmadd_ps, reduce8, 4, 4, 3, 3)

#endif

// MARK: - Dispatch

void collie_gemv_bf16(const uint16_t *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                      size_t begin, size_t end) {
#ifdef GEMV_X86
    int level = collie_kernel_level();
    if (level >= 2) { gemv_bf16_avx512(w, x, y, in, out, rows, begin, end); return; }
    if (level >= 1) { gemv_bf16_avx2(w, x, y, in, out, rows, begin, end); return; }
#endif
    gemv_bf16_scalar(w, x, y, in, out, rows, begin, end);
}

void collie_gemv_f32(const float *w, const float *x, float *y, size_t in, size_t out, size_t rows, size_t begin,
                     size_t end) {
#ifdef GEMV_X86
    int level = collie_kernel_level();
    if (level >= 2) { gemv_f32_avx512(w, x, y, in, out, rows, begin, end); return; }
    if (level >= 1) { gemv_f32_avx2(w, x, y, in, out, rows, begin, end); return; }
#endif
    gemv_f32_scalar(w, x, y, in, out, rows, begin, end);
}
