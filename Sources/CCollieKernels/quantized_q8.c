// Matrix-vector products of decoding on quantized weight blocks with 8-bit activations: llama.cpp's arithmetic.
// Each input row is quantized per block (ggml's quantize_row_q8_0 / q8_1 / q8_K as its x86 CPU backend runs them),
// each weight block is dotted with the activation block in integers (exact), and the block's float scales multiply
// the integer sum: y = Σ_blocks d_w · d_x · Σ q_w·q_x (+ the min terms of Q4_1, Q5_1, Q4_K, Q5_K).
//
// Activation formats (ggml's vec_dot_type):
//     Q8_0  34 bytes per 32  [float16 d][int8 q × 32]                 for Q4_0, Q5_0, Q8_0
//     Q8_1  36 bytes per 32  [float16 d][float16 s = d·Σq][int8 q × 32]  for Q4_1, Q5_1
//     Q8_K  292 bytes per 256 [float d][int8 q × 256][int16 Σq per 16 × 16]  for Q4_K, Q5_K, Q6_K
// Q8_0 and Q8_1 equal ggml-cpu's x86 quantize_row_q8_0 / q8_1 (the AVX2 code llama.cpp runs here: d = amax/127,
// q = round-to-nearest-even(x · 127/amax)); Q8_K equals quantize_row_q8_K_ref (what ggml-cpu runs on x86).
//
// The portable dot products below follow ggml's *_generic vec_dot line by line; the vector copies
// (quantized_q8_simd.h: AVX2, AVX-512 F+BW+VL, AVX-512 VNNI) sum the same integers, exactly, and differ only in the
// order the per-block float products are added. Like gemv.c, each weight block is read once for all input rows, and
// parallelism is the caller's (rows [begin, end)).
#include "collie_kernels.h"
#include "collie_quantized.h"
#include "block_layout.h"
#include "ggml_half.h"

#include <stdlib.h>

// MARK: - Activation formats

enum { ACT_Q8_0 = 8, ACT_Q8_1 = 9, ACT_Q8_K = 15 };

/// ggml's vec_dot_type of a weight format; 0 for an unsupported one.
static int activation_format(int format) {
    switch (format) {
    case COLLIE_Q4_0: case COLLIE_Q5_0: case COLLIE_Q8_0: return ACT_Q8_0;
    case COLLIE_Q4_1: case COLLIE_Q5_1: return ACT_Q8_1;
    case COLLIE_Q4_K: case COLLIE_Q5_K: case COLLIE_Q6_K: return ACT_Q8_K;
    default: return 0;
    }
}

size_t collie_activation_row_bytes(int format, size_t in) {
    switch (activation_format(format)) {
    case ACT_Q8_0: return in / 32 * 34;
    case ACT_Q8_1: return in / 32 * 36;
    case ACT_Q8_K: return in / 256 * 292;
    default: return 0;
    }
}

/// 32 values → [d][s][q × 32] (with_sum) or [d][q × 32], as ggml-cpu's x86 quantize_row_q8_1 / q8_0.
static void quantize_block_q8(const float *x, uint8_t *y, int with_sum) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
    ggml_store_half(y, d);
    int8_t *q = (int8_t *)(y + (with_sum ? 4 : 2));
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int v = ggml_nearest_int(x[j] * id);  // _mm256_round_ps(_MM_ROUND_NEAREST): to nearest even
        v = v < -128 ? -128 : v > 127 ? 127 : v;  // _mm256_packs_epi16 saturates
        q[j] = (int8_t)v;
        sum += v;
    }
    if (with_sum) ggml_store_half(y + 2, d * (float)sum);
}

/// 256 values → [d][q × 256][Σq per 16 × 16], as ggml's quantize_row_q8_K_ref.
static void quantize_block_q8_k(const float *x, uint8_t *y) {
    float max = 0, amax = 0;
    for (int j = 0; j < 256; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    int8_t *q = (int8_t *)(y + 4);
    int16_t sums[16];
    float d = 0;
    if (amax == 0) {
        memset(q, 0, 256);
        memset(sums, 0, sizeof sums);
    } else {
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; j++) {
            const int v = ggml_nearest_int(iscale * x[j]);
            q[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q[16 * j + i];
            sums[j] = (int16_t)sum;
        }
        d = 1 / iscale;
    }
    memcpy(y, &d, 4);
    memcpy(y + 260, sums, sizeof sums);
}

void collie_quantize_activations(int format, const float *x, void *xq, size_t in, size_t rows) {
    const int act = activation_format(format);
    const size_t per = act == ACT_Q8_K ? 256 : 32, bytes = act == ACT_Q8_K ? 292 : act == ACT_Q8_1 ? 36 : 34;
    if (!act || in % per != 0) return;
    uint8_t *y = xq;
    for (size_t b = 0; b < rows * (in / per); b++, x += per, y += bytes) {
        if (act == ACT_Q8_K) quantize_block_q8_k(x, y);
        else quantize_block_q8(x, y, act == ACT_Q8_1);
    }
}

// MARK: - Portable dot products (ggml's *_generic, each weight block decoded once for every input row)

/// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 against Q8_0 / Q8_1 activations.
static void qgemv_block32_portable(int format, const uint8_t *w, const uint8_t *xq, float *y, size_t in, size_t out,
                                   size_t rows, size_t begin, size_t end) {
    const size_t nb = in / 32, wbytes = collie_block_bytes(format), xbytes = format == COLLIE_Q4_1 || format == COLLIE_Q5_1 ? 36 : 34;
    const int affine = xbytes == 36;
    const size_t xrow = nb * xbytes;
    for (size_t o = begin; o < end; o++) {
        float sumf[16] = {0};
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *wb = w + (o * nb + b) * wbytes;
            int8_t v[32];
            block32_integers(format, wb, v);
            const float dw = ggml_load_half(wb), m = affine ? ggml_load_half(wb + 2) : 0;
            for (size_t r = 0; r < rows; r++) {
                const uint8_t *xb = xq + r * xrow + b * xbytes;
                const int8_t *q = (const int8_t *)(xb + (affine ? 4 : 2));
                int sumi0 = 0, sumi1 = 0;
                for (int j = 0; j < 16; j++) {
                    sumi0 += v[j] * q[j];
                    sumi1 += v[j + 16] * q[j + 16];
                }
                const int sumi = sumi0 + sumi1;
                const float dx = ggml_load_half(xb);
                if (affine) sumf[r] += (dw * dx) * (float)sumi + m * ggml_load_half(xb + 2);
                else if (format == COLLIE_Q4_0) sumf[r] += (float)sumi * dw * dx;
                else if (format == COLLIE_Q5_0) sumf[r] += (dw * dx) * (float)sumi;
                else sumf[r] += (float)sumi * (dw * dx);
            }
        }
        for (size_t r = 0; r < rows; r++) y[r * out + o] = sumf[r];
    }
}

/// The 8 six-bit scales and mins of a Q4_K / Q5_K super-block (its 12 packed bytes, as ggml's kmask unpacking).
static void k_scales(const uint8_t *packed, uint8_t scales[8], uint8_t mins[8]) {
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min(packed, j, &sc, &m);
        scales[j] = (uint8_t)sc;
        mins[j] = (uint8_t)m;
    }
}

/// The 256 integer values of a K-quant super-block (Q4_K, Q5_K: 0…31 before the min; Q6_K: −32…31), its 16 scales
/// (per 16 values; Q4_K and Q5_K repeat each 32-value scale twice) and 8 mins (Q4_K, Q5_K).
static void decode_k(int format, const uint8_t *b, int8_t a[256], int scale16[16], uint8_t mins[8]) {
    if (format == COLLIE_Q6_K) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; ++l) {
                a[j + l + 0] = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                a[j + l + 32] = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                a[j + l + 64] = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                a[j + l + 96] = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            }
        for (int j = 0; j < 16; j++) scale16[j] = sc[j];
        return;
    }
    uint8_t scales[8];
    k_scales(b + 4, scales, mins);
    for (int j = 0; j < 16; j++) scale16[j] = scales[j / 2];
    const uint8_t *q4 = b + (format == COLLIE_Q5_K ? 48 : 16), *hm = b + 16;
    uint8_t m = 1;
    for (int j = 0; j < 4; ++j, q4 += 32) {
        for (int l = 0; l < 32; ++l)
            a[64 * j + l] = (int8_t)((q4[l] & 0xF) + (format == COLLIE_Q5_K && (hm[l] & m) ? 16 : 0));
        m <<= 1;
        for (int l = 0; l < 32; ++l)
            a[64 * j + 32 + l] = (int8_t)((q4[l] >> 4) + (format == COLLIE_Q5_K && (hm[l] & m) ? 16 : 0));
        m <<= 1;
    }
}

/// Q4_K, Q5_K, Q6_K against Q8_K activations: ggml's generic 8-lane integer sums, one float sum per lane.
static void qgemv_k_portable(int format, const uint8_t *w, const uint8_t *xq, float *y, size_t in, size_t out,
                             size_t rows, size_t begin, size_t end) {
    const size_t nb = in / 256, wbytes = collie_block_bytes(format), xrow = nb * 292;
    for (size_t o = begin; o < end; o++) {
        float sums[16][8] = {{0}}, sumf[16] = {0};
        for (size_t i = 0; i < nb; i++) {
            const uint8_t *wb = w + (o * nb + i) * wbytes;
            int8_t a[256];
            int scale16[16];
            uint8_t mins[8] = {0};
            decode_k(format, wb, a, scale16, mins);
            const float dw = ggml_load_half(format == COLLIE_Q6_K ? wb + 208 : wb);
            const float dminw = format == COLLIE_Q6_K ? 0 : ggml_load_half(wb + 2);
            for (size_t r = 0; r < rows; r++) {
                const uint8_t *xb = xq + r * xrow + i * 292;
                const int8_t *q8 = (const int8_t *)(xb + 4);
                int16_t bsums[16];
                memcpy(bsums, xb + 260, sizeof bsums);
                float dx;
                memcpy(&dx, xb, 4);
                int32_t aux32[8] = {0};
                for (int j = 0; j < 32; j++) {  // 8 values per step, 16 per scale
                    const int scale = scale16[j / 2];
                    for (int l = 0; l < 8; ++l) aux32[l] += scale * (int16_t)(q8[8 * j + l] * a[8 * j + l]);
                }
                const float d = dw * dx;
                for (int l = 0; l < 8; ++l) sums[r][l] += d * (float)aux32[l];
                if (format != COLLIE_Q6_K) {
                    int sumi = 0;
                    for (int j = 0; j < 16; ++j) sumi += bsums[j] * mins[j / 2];
                    const float dmin = dminw * dx;
                    sumf[r] -= dmin * (float)sumi;
                }
            }
        }
        for (size_t r = 0; r < rows; r++) {
            float s = sumf[r];
            for (int l = 0; l < 8; ++l) s += sums[r][l];
            y[r * out + o] = s;
        }
    }
}

static void qgemv_q8_portable(int format, const void *w, const void *xq, float *y, size_t in, size_t out,
                              size_t rows, size_t begin, size_t end) {
    if (activation_format(format) == ACT_Q8_K) qgemv_k_portable(format, w, xq, y, in, out, rows, begin, end);
    else qgemv_block32_portable(format, w, xq, y, in, out, rows, begin, end);
}

// MARK: - Vector copies

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define QGEMV_X86 1
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/// The activations of one call laid out for the vector copies: the 32-value groups' scales (and Q8_1's sums) as
/// float32, and for Q4_0 / Q5_0 each group's 8 lane biases −offset · (q[4l] + … + q[4l+3]), which the integer dot
/// product starts from so that unsigned codes give the signed weights' sum.
typedef struct {
    const uint8_t *xq;
    size_t xrow, rows, n32, xbytes, qat;  // activation row bytes, input rows, 32-groups per row, block bytes, q offset
    float *d, *s;                          // [rows][n32]; s (Q8_1's s / 8) only for Q4_1, Q5_1
    int32_t *bias;                         // [rows][n32][8] or NULL
} prepared;

/// The 32 int8 activations of group b of input row r (Q8_0, Q8_1 blocks; prepared_q is not used for Q8_K).
static inline const int8_t *prepared_q(const prepared *p, size_t r, size_t b) {
    return (const int8_t *)(p->xq + r * p->xrow + b * p->xbytes + p->qat);
}

/// Fills `p` for the 32-value formats; 0 when memory ran out.
static int prepare(int format, const uint8_t *xq, size_t in, size_t rows, prepared *p) {
    const int act = activation_format(format);
    *p = (prepared){.xq = xq, .xrow = collie_activation_row_bytes(format, in), .rows = rows, .n32 = in / 32};
    if (act == ACT_Q8_K) return 1;
    p->xbytes = act == ACT_Q8_1 ? 36 : 34;
    p->qat = act == ACT_Q8_1 ? 4 : 2;
    const int offset = format == COLLIE_Q4_0 ? 8 : format == COLLIE_Q5_0 ? 16 : 0;
    const size_t groups = rows * p->n32;
    p->d = malloc(groups * (act == ACT_Q8_1 ? 2 : 1) * sizeof(float) + (offset ? groups * 8 * sizeof(int32_t) : 0));
    if (!p->d) return 0;
    p->s = act == ACT_Q8_1 ? p->d + groups : NULL;
    p->bias = offset ? (int32_t *)(p->d + groups) : NULL;
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < p->n32; b++) {
            const size_t g = r * p->n32 + b;
            const uint8_t *xb = xq + r * p->xrow + b * p->xbytes;
            p->d[g] = ggml_load_half(xb);
            if (p->s) p->s[g] = ggml_load_half(xb + 2) * 0.125f;  // s/8: added once per lane, 8 lanes
            if (p->bias) {
                const int8_t *q = prepared_q(p, r, b);
                for (int l = 0; l < 8; l++) p->bias[8 * g + l] = -offset * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
            }
        }
    return 1;
}

#define ISA avx2
#define TARGET __attribute__((target("avx2,fma,f16c")))
#define VNNI 0
#define WIDE_NW 1
#include "quantized_q8_simd.h"
#undef ISA
#undef TARGET
#undef VNNI
#undef WIDE_NW

#define ISA avx512
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define VNNI 0
#define WIDE_NW 2
#include "quantized_q8_simd.h"
#undef ISA
#undef TARGET
#undef VNNI
#undef WIDE_NW

#define ISA vnni
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define VNNI 1
#define WIDE_NW 2
#include "quantized_q8_simd.h"
#undef ISA
#undef TARGET
#undef VNNI
#undef WIDE_NW

#include "quantized_q8_wide.h"
#endif

// MARK: - Dispatch

/// The fewest input rows that Q8_0 takes the wide kernel for (quantized_q8_wide.h) at level 3 and above.
#ifndef COLLIE_Q8_WIDE_MIN_ROWS
#define COLLIE_Q8_WIDE_MIN_ROWS 2
#endif

void collie_qgemv_q8(int format, const void *w, const void *xq, float *y, size_t in, size_t out, size_t rows,
                     size_t begin, size_t end) {
    if (!activation_format(format) || begin >= end) return;
    const size_t row_bytes = collie_activation_row_bytes(format, in);
    for (size_t r = 0; r < rows; r += 16) {  // the interface promises up to 16 rows; more go 16 at a time
        const size_t n = rows - r < 16 ? rows - r : 16;
        const uint8_t *x = (const uint8_t *)xq + r * row_bytes;
        float *yr = y + r * out;
#ifdef QGEMV_X86
        const int level = collie_kernel_level();
        wide_prepared wp;
        if (level >= 3 && format == COLLIE_Q8_0 && n >= COLLIE_Q8_WIDE_MIN_ROWS && wide_prepare(x, in, n, &wp)) {
            qgemv_q8_0_wide(w, &wp, yr, out, begin, end);
            free(wp.data);
            continue;
        }
        prepared p;
        if (level >= 1 && prepare(format, x, in, n, &p)) {
            if (level >= 3) qgemv_vnni(format, w, &p, yr, out, begin, end);
            else if (level == 2) qgemv_avx512(format, w, &p, yr, out, begin, end);
            else qgemv_avx2(format, w, &p, yr, out, begin, end);
            free(p.d);
            continue;
        }
#endif
        qgemv_q8_portable(format, w, x, yr, in, out, n, begin, end);
    }
}
