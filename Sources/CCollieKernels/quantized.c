#include "block_layout.h"
#include "variants.h"

#include <string.h>

// The float-activation half of collie_quantized.h: block sizes, dequantization and the decoding matrix-vector product
// with float32 activations. Each block decoder is one plain C loop per block, written in gguf's float32 operation order
// (variants.h turns off contraction, so a·b + c stays two roundings like numpy), and compiled once per instruction set
// by DISPATCHED_KERNEL: every level gives gguf's bits.

// MARK: - Formats

int collie_block_format_supported(int format) {
    switch (format) {
    case COLLIE_Q4_0: case COLLIE_Q4_1: case COLLIE_Q5_0: case COLLIE_Q5_1: case COLLIE_Q8_0:
    case COLLIE_Q4_K: case COLLIE_Q5_K: case COLLIE_Q6_K: return 1;
    default: return 0;
    }
}

size_t collie_block_elements(int format) { return block_elements_of(format); }

size_t collie_block_bytes(int format) { return block_bytes_of(format); }

size_t collie_block_row_bytes(int format, size_t columns) {
    size_t elements = collie_block_elements(format);
    return elements ? columns / elements * collie_block_bytes(format) : 0;
}

// MARK: - Block decoders (one block to float32, gguf's arithmetic)

static ALWAYS_INLINE uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/// Q8_0 (34 bytes): d, 32 int8. x = q·d.
static ALWAYS_INLINE void block_q8_0(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p);
    const int8_t *q = (const int8_t *)(p + 2);
    for (int j = 0; j < 32; j++) out[j] = (float)q[j] * d;
}

/// Q4_0 (18 bytes): d, 16 bytes of nibbles (low: values 0–15, high: 16–31). x = d·(q − 8).
static ALWAYS_INLINE void block_q4_0(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p);
    const uint8_t *q = p + 2;
    for (int j = 0; j < 16; j++) {
        out[j] = d * (float)((int)(q[j] & 0x0F) - 8);
        out[j + 16] = d * (float)((int)(q[j] >> 4) - 8);
    }
}

/// Q4_1 (20 bytes): d, m, 16 bytes of nibbles. x = d·q + m.
static ALWAYS_INLINE void block_q4_1(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p), m = half_at(p + 2);
    const uint8_t *q = p + 4;
    for (int j = 0; j < 16; j++) {
        out[j] = d * (float)(q[j] & 0x0F) + m;
        out[j + 16] = d * (float)(q[j] >> 4) + m;
    }
}

/// Q5_0 (22 bytes): d, 32 fifth bits (value j's is bit j), 16 bytes of nibbles. x = d·(q − 16).
static ALWAYS_INLINE void block_q5_0(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p);
    uint32_t qh = u32_at(p + 2);
    const uint8_t *q = p + 6;
    for (int j = 0; j < 16; j++) {
        int low = (int)(q[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        int high = (int)(q[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        out[j] = d * (float)(low - 16);
        out[j + 16] = d * (float)(high - 16);
    }
}

/// Q5_1 (24 bytes): d, m, 32 fifth bits, 16 bytes of nibbles. x = d·q + m.
static ALWAYS_INLINE void block_q5_1(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p), m = half_at(p + 2);
    uint32_t qh = u32_at(p + 4);
    const uint8_t *q = p + 8;
    for (int j = 0; j < 16; j++) {
        int low = (int)(q[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        int high = (int)(q[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        out[j] = d * (float)low + m;
        out[j + 16] = d * (float)high + m;
    }
}

/// Q4_K (144 bytes): d, dmin, 12 bytes of scales and mins, 128 bytes of nibbles; sub-block g (32 values) reads the
/// low (g even) or high nibbles of qs[32(g/2)...]. x = (d·sc)·q − dmin·m.
static ALWAYS_INLINE void block_q4_K(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p), dmin = half_at(p + 2);
    const uint8_t *packed = p + 4, *qs = p + 16;
    for (int g = 0; g < 8; g++) {
        int sc, m;
        scale_min(packed, g, &sc, &m);
        float dl = d * (float)sc, ml = dmin * (float)m;
        const uint8_t *q = qs + 32 * (g / 2);
        int shift = 4 * (g % 2);
        float *o = out + 32 * g;
        for (int l = 0; l < 32; l++) o[l] = dl * (float)((q[l] >> shift) & 0x0F) - ml;
    }
}

/// Q5_K (176 bytes): d, dmin, 12 bytes of scales and mins, 32 bytes of fifth bits (bit g of qh[l] for sub-block g),
/// 128 bytes of nibbles as Q4_K. x = (d·sc)·q − dmin·m.
static ALWAYS_INLINE void block_q5_K(const uint8_t *restrict p, float *restrict out) {
    float d = half_at(p), dmin = half_at(p + 2);
    const uint8_t *packed = p + 4, *qh = p + 16, *qs = p + 48;
    for (int g = 0; g < 8; g++) {
        int sc, m;
        scale_min(packed, g, &sc, &m);
        float dl = d * (float)sc, ml = dmin * (float)m;
        const uint8_t *q = qs + 32 * (g / 2);
        int shift = 4 * (g % 2);
        float *o = out + 32 * g;
        for (int l = 0; l < 32; l++) {
            int value = ((q[l] >> shift) & 0x0F) | ((qh[l] >> g) & 1) << 4;
            o[l] = dl * (float)value - ml;
        }
    }
}

/// Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales, d. Value 128h + 32s + l
/// has low = ql[64h + 32(s%2) + l] >> 4(s/2), high = qh[32h + l] >> 2s; x = (d·scale[k/16])·(low | high << 4 − 32).
static ALWAYS_INLINE void block_q6_K(const uint8_t *restrict p, float *restrict out) {
    const uint8_t *ql = p, *qh = p + 128;
    const int8_t *scales = (const int8_t *)(p + 192);
    float d = half_at(p + 208);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++) {
            int k0 = 128 * h + 32 * s;
            const uint8_t *low = ql + 64 * h + 32 * (s % 2), *high = qh + 32 * h;
            int low_shift = 4 * (s / 2), high_shift = 2 * s;
            float d0 = d * (float)scales[k0 / 16], d1 = d * (float)scales[k0 / 16 + 1];
            for (int l = 0; l < 16; l++) {
                int q = (((low[l] >> low_shift) & 0x0F) | ((high[l] >> high_shift) & 0x03) << 4) - 32;
                out[k0 + l] = d0 * (float)q;
            }
            for (int l = 16; l < 32; l++) {
                int q = (((low[l] >> low_shift) & 0x0F) | ((high[l] >> high_shift) & 0x03) << 4) - 32;
                out[k0 + l] = d1 * (float)q;
            }
        }
}

/// Decodes one block of `format` (a supported one) into out[0..<block elements].
static ALWAYS_INLINE void decode_block(int format, const uint8_t *restrict p, float *restrict out) {
    switch (format) {
    case COLLIE_Q8_0: block_q8_0(p, out); return;
    case COLLIE_Q4_0: block_q4_0(p, out); return;
    case COLLIE_Q4_1: block_q4_1(p, out); return;
    case COLLIE_Q5_0: block_q5_0(p, out); return;
    case COLLIE_Q5_1: block_q5_1(p, out); return;
    case COLLIE_Q4_K: block_q4_K(p, out); return;
    case COLLIE_Q5_K: block_q5_K(p, out); return;
    case COLLIE_Q6_K: block_q6_K(p, out); return;
    default: return;
    }
}

/// Runs BODY(F) with F the format as a constant, so each case inlines its own decoder.
#define FOR_EACH_FORMAT(format, BODY)                                                                                 \
    switch (format) {                                                                                                 \
    case COLLIE_Q8_0: BODY(COLLIE_Q8_0); break;                                                                       \
    case COLLIE_Q4_0: BODY(COLLIE_Q4_0); break;                                                                       \
    case COLLIE_Q4_1: BODY(COLLIE_Q4_1); break;                                                                       \
    case COLLIE_Q5_0: BODY(COLLIE_Q5_0); break;                                                                       \
    case COLLIE_Q5_1: BODY(COLLIE_Q5_1); break;                                                                       \
    case COLLIE_Q4_K: BODY(COLLIE_Q4_K); break;                                                                       \
    case COLLIE_Q5_K: BODY(COLLIE_Q5_K); break;                                                                       \
    case COLLIE_Q6_K: BODY(COLLIE_Q6_K); break;                                                                       \
    default: break;                                                                                                   \
    }

// MARK: - Dequantization

static ALWAYS_INLINE void dequantize_body(int format, const void *blocks, float *dst, size_t rows, size_t columns) {
    size_t elements = collie_block_elements(format), bytes = collie_block_bytes(format);
    if (!elements) return;
    size_t count = rows * (columns / elements);
    const uint8_t *p = blocks;
#define DEQUANTIZE(F) for (size_t b = 0; b < count; b++) decode_block(F, p + b * bytes, dst + b * elements)
    FOR_EACH_FORMAT(format, DEQUANTIZE)
#undef DEQUANTIZE
}
DISPATCHED_KERNEL(collie_dequantize_rows, dequantize_body,
                  (int format, const void *blocks, float *dst, size_t rows, size_t columns),
                  (format, blocks, dst, rows, columns))

// MARK: - Matrix-vector product with float activations

/// Most input rows per pass over a weight row: each block is decoded once for all of them.
#define QGEMV_ROWS 16
/// Lanes of the partial sums (one zmm, two ymm).
#define QGEMV_LANES 16

static ALWAYS_INLINE void qgemv_body(int format, const void *w, const float *x, float *y, size_t in, size_t out,
                                     size_t rows, size_t begin, size_t end) {
    size_t elements = collie_block_elements(format), bytes = collie_block_bytes(format);
    if (!elements) return;
    size_t nb = in / elements, row_bytes = nb * bytes;
    float block[256] __attribute__((aligned(64)));
    for (size_t r0 = 0; r0 < rows; r0 += QGEMV_ROWS) {
        size_t nr = rows - r0 < QGEMV_ROWS ? rows - r0 : QGEMV_ROWS;
        const float *xs = x + r0 * in;
        for (size_t o = begin; o < end; o++) {
            const uint8_t *wo = (const uint8_t *)w + o * row_bytes;
            float acc[QGEMV_ROWS][QGEMV_LANES] __attribute__((aligned(64)));
            memset(acc, 0, sizeof acc);
#define QGEMV(F)                                                                                                      \
    for (size_t b = 0; b < nb; b++) {                                                                                 \
        decode_block(F, wo + b * bytes, block);                                                                       \
        for (size_t r = 0; r < nr; r++) {                                                                             \
            const float *xb = xs + r * in + b * elements;                                                             \
            for (size_t j = 0; j < elements; j += QGEMV_LANES)                                                        \
                for (int l = 0; l < QGEMV_LANES; l++) acc[r][l] = FMA(block[j + l], xb[j + l], acc[r][l]);            \
        }                                                                                                             \
    }
            FOR_EACH_FORMAT(format, QGEMV)
#undef QGEMV
            for (size_t r = 0; r < nr; r++) {
                float s = 0;
                for (int l = 0; l < QGEMV_LANES; l++) s += acc[r][l];
                y[(r0 + r) * out + o] = s;
            }
        }
    }
}
DISPATCHED_KERNEL(qgemv_compiled, qgemv_body,
                  (int format, const void *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                   size_t begin, size_t end),
                  (format, w, x, y, in, out, rows, begin, end))

// MARK: - AVX-512 matrix-vector product
//
// The portable body above decodes a block to memory and reads it back per input row; here a block's values are
// decoded straight into registers (the same float32 operations as dequantization, so the weights are the dequantized
// ones exactly) and multiplied into accumulators that stay in registers for a tile of up to 8 input rows: decoding is
// paid once per weight row for all of them. Every format decodes 32 values at a time into two zmm vectors.

#ifdef COLLIE_VARIANTS_X86
#include <immintrin.h>

#define TARGET_QAVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

TARGET_QAVX512 static ALWAYS_INLINE __m512 cvt16(__m512i v) { return _mm512_cvtepi32_ps(v); }
/// The floats a + 0, a + 1, …, a + 15 (exact small integers).
TARGET_QAVX512 static ALWAYS_INLINE __m512 iota(float a) {
    return _mm512_add_ps(_mm512_set1_ps(a), _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
TARGET_QAVX512 static ALWAYS_INLINE __m512i bytes16(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/// Values 32g ..< 32g + 32 of the `format` block at `p`, dequantized exactly, into w[0] and w[1]. The 4-bit formats
/// compute their 16 possible values once (a table, with dequantization's operations) and look each value up by its
/// code (vpermps) instead of converting and scaling every element (1.2-1.3x at one input row on Zen 4; the 32-entry
/// vpermt2ps of the 5-bit formats was no faster there).
TARGET_QAVX512 static ALWAYS_INLINE void decode32_avx512(int format, const uint8_t *p, int g, __m512 w[2]) {
    const __m512i low4 = _mm512_set1_epi32(0x0F);
    switch (format) {
    case COLLIE_Q8_0: {
        __m512 d = _mm512_set1_ps(half_at(p));
        w[0] = _mm512_mul_ps(cvt16(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)))), d);
        w[1] = _mm512_mul_ps(cvt16(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18)))), d);
        return;
    }
    case COLLIE_Q4_0: {
        __m512 d = _mm512_set1_ps(half_at(p));
        __m512i b = bytes16(p + 2);
        __m512 table = _mm512_mul_ps(d, iota(-8));   // d·(q − 8)
        w[0] = _mm512_permutexvar_ps(_mm512_and_si512(b, low4), table);
        w[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
        return;
    }
    case COLLIE_Q4_1: {
        __m512 d = _mm512_set1_ps(half_at(p)), m = _mm512_set1_ps(half_at(p + 2));
        __m512i b = bytes16(p + 4);
        __m512 table = _mm512_add_ps(_mm512_mul_ps(d, iota(0)), m);   // d·q + m
        w[0] = _mm512_permutexvar_ps(_mm512_and_si512(b, low4), table);
        w[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
        return;
    }
    case COLLIE_Q5_0: {
        __m512 d = _mm512_set1_ps(half_at(p));
        uint32_t qh = u32_at(p + 2);
        __m512i b = bytes16(p + 6), sixteen = _mm512_set1_epi32(16);
        __m512i lo = _mm512_mask_or_epi32(_mm512_and_si512(b, low4), (__mmask16)qh, _mm512_and_si512(b, low4), sixteen);
        __m512i hi = _mm512_mask_or_epi32(_mm512_srli_epi32(b, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(b, 4), sixteen);
        w[0] = _mm512_mul_ps(d, cvt16(_mm512_sub_epi32(lo, sixteen)));
        w[1] = _mm512_mul_ps(d, cvt16(_mm512_sub_epi32(hi, sixteen)));
        return;
    }
    case COLLIE_Q5_1: {
        __m512 d = _mm512_set1_ps(half_at(p)), m = _mm512_set1_ps(half_at(p + 2));
        uint32_t qh = u32_at(p + 4);
        __m512i b = bytes16(p + 8), sixteen = _mm512_set1_epi32(16);
        __m512i lo = _mm512_mask_or_epi32(_mm512_and_si512(b, low4), (__mmask16)qh, _mm512_and_si512(b, low4), sixteen);
        __m512i hi = _mm512_mask_or_epi32(_mm512_srli_epi32(b, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(b, 4), sixteen);
        w[0] = _mm512_add_ps(_mm512_mul_ps(d, cvt16(lo)), m);
        w[1] = _mm512_add_ps(_mm512_mul_ps(d, cvt16(hi)), m);
        return;
    }
    case COLLIE_Q4_K:
    case COLLIE_Q5_K: {
        const int five = format == COLLIE_Q5_K;
        int sc, mn;
        scale_min(p + 4, g, &sc, &mn);
        float d = half_at(p), dmin = half_at(p + 2);
        __m512 dl = _mm512_set1_ps(d * (float)sc), ml = _mm512_set1_ps(dmin * (float)mn);
        const uint8_t *q = p + (five ? 48 : 16) + 32 * (g / 2);
        __m128i shift = _mm_cvtsi32_si128(4 * (g % 2));
        __m512i q0 = _mm512_and_si512(_mm512_srl_epi32(bytes16(q), shift), low4);
        __m512i q1 = _mm512_and_si512(_mm512_srl_epi32(bytes16(q + 16), shift), low4);
        if (five) {
            __m512i bit = _mm512_set1_epi32(1 << g), sixteen = _mm512_set1_epi32(16);
            q0 = _mm512_mask_or_epi32(q0, _mm512_test_epi32_mask(bytes16(p + 16), bit), q0, sixteen);
            q1 = _mm512_mask_or_epi32(q1, _mm512_test_epi32_mask(bytes16(p + 32), bit), q1, sixteen);
        }
        if (five) {
            w[0] = _mm512_sub_ps(_mm512_mul_ps(dl, cvt16(q0)), ml);
            w[1] = _mm512_sub_ps(_mm512_mul_ps(dl, cvt16(q1)), ml);
        } else {   // (d·sc)·q − dmin·m
            __m512 table = _mm512_sub_ps(_mm512_mul_ps(dl, iota(0)), ml);
            w[0] = _mm512_permutexvar_ps(q0, table);
            w[1] = _mm512_permutexvar_ps(q1, table);
        }
        return;
    }
    case COLLIE_Q6_K: {
        int h = g / 4, s = g % 4;
        float d = half_at(p + 208);
        const int8_t *scales = (const int8_t *)(p + 192);
        const uint8_t *low = p + 64 * h + 32 * (s % 2), *high = p + 128 + 32 * h;
        __m128i ls = _mm_cvtsi32_si128(4 * (s / 2)), hs = _mm_cvtsi32_si128(2 * s);
        __m512i three = _mm512_set1_epi32(3), thirtytwo = _mm512_set1_epi32(32);
        for (int half = 0; half < 2; half++) {
            __m512i lo = _mm512_and_si512(_mm512_srl_epi32(bytes16(low + 16 * half), ls), low4);
            __m512i hi = _mm512_and_si512(_mm512_srl_epi32(bytes16(high + 16 * half), hs), three);
            __m512i q = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), thirtytwo);
            float dh = d * (float)scales[(128 * h + 32 * s) / 16 + half];
            w[half] = _mm512_mul_ps(_mm512_set1_ps(dh), cvt16(q));
        }
        return;
    }
    default: w[0] = w[1] = _mm512_setzero_ps(); return;
    }
}

/// y[r·out + j] = weight row j · x[r] for the NW consecutive weight rows from `row` (`row_bytes` apart) and the NR
/// input rows x[0 ..< NR] (NW and NR constants at each call site: the NW·NR accumulators stay in registers, each
/// input vector is loaded once per tile, and the NW·NR independent chains hide the FMA latency).
TARGET_QAVX512 static ALWAYS_INLINE void qtile_avx512(int format, const uint8_t *row, size_t row_bytes, int NW,
                                                     const float *x, int NR, size_t in, float *y, size_t out) {
    __m512 acc[4][8];
    for (int j = 0; j < NW; j++)
        for (int r = 0; r < NR; r++) acc[j][r] = _mm512_setzero_ps();
    const size_t E = collie_block_elements(format), B = collie_block_bytes(format);
    for (size_t b = 0; b < in / E; b++)
#pragma clang loop unroll(full)
    for (int g = 0; g < (int)(E / 32); g++) {   // unrolled for the K-quants: each g's shifts and scale bytes are constants
        const size_t k = b * (E / 32) + (size_t)g;
        __m512 w[4][2];
        for (int j = 0; j < NW; j++) decode32_avx512(format, row + j * row_bytes + b * B, g, w[j]);
        for (int r = 0; r < NR; r++) {
            __m512 x0 = _mm512_loadu_ps(x + r * in + 32 * k), x1 = _mm512_loadu_ps(x + r * in + 32 * k + 16);
            for (int j = 0; j < NW; j++) {
                acc[j][r] = _mm512_fmadd_ps(w[j][0], x0, acc[j][r]);
                acc[j][r] = _mm512_fmadd_ps(w[j][1], x1, acc[j][r]);
            }
        }
    }
    for (int j = 0; j < NW; j++)
        for (int r = 0; r < NR; r++) y[r * out + j] = _mm512_reduce_add_ps(acc[j][r]);
}

/// Every input row against weight rows o ..< o + NW: tiles of NR input rows, then 4, 2, 1.
TARGET_QAVX512 static ALWAYS_INLINE void qrows_avx512(int format, const uint8_t *row, size_t row_bytes, int NW,
                                                     const float *x, size_t rows, int NR, size_t in, float *y,
                                                     size_t out) {
    size_t r = 0;
    for (; r + NR <= rows; r += NR) qtile_avx512(format, row, row_bytes, NW, x + r * in, NR, in, y + r * out, out);
    if (NR > 4 && r + 4 <= rows) { qtile_avx512(format, row, row_bytes, NW, x + r * in, 4, in, y + r * out, out); r += 4; }
    if (NR > 2 && r + 2 <= rows) { qtile_avx512(format, row, row_bytes, NW, x + r * in, 2, in, y + r * out, out); r += 2; }
    if (r < rows) qtile_avx512(format, row, row_bytes, NW, x + r * in, 1, in, y + r * out, out);
}

TARGET_QAVX512 static ALWAYS_INLINE void qgemv_format_avx512(int format, const uint8_t *w, const float *x, float *y,
                                                            size_t in, size_t out, size_t rows, size_t begin,
                                                            size_t end) {
    size_t row_bytes = collie_block_row_bytes(format, in), o = begin;
    // Tiles of weight rows × input rows: 4 × up to 2 for a few input rows, 2 × 8 (16 accumulators) for more.
    if (rows < 4)
        for (; o + 4 <= end; o += 4) qrows_avx512(format, w + o * row_bytes, row_bytes, 4, x, rows, 2, in, y + o, out);
    else
        for (; o + 2 <= end; o += 2) qrows_avx512(format, w + o * row_bytes, row_bytes, 2, x, rows, 8, in, y + o, out);
    for (; o < end; o++) qrows_avx512(format, w + o * row_bytes, row_bytes, 1, x, rows, 8, in, y + o, out);
}

TARGET_QAVX512 static void qgemv_avx512(int format, const void *w, const float *x, float *y, size_t in, size_t out,
                                        size_t rows, size_t begin, size_t end) {
#define QGEMV_AVX512(F) qgemv_format_avx512(F, w, x, y, in, out, rows, begin, end)
    FOR_EACH_FORMAT(format, QGEMV_AVX512)
#undef QGEMV_AVX512
}

// MARK: - AVX2 matrix-vector product (level 1): the same scheme in 8 lanes, 32 values as four ymm vectors.

#define TARGET_QAVX2 __attribute__((target("avx2,fma,f16c")))

TARGET_QAVX2 static ALWAYS_INLINE __m256i bytes8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}
/// Bits j0 … j0 + 7 of `bits`, each as 16 or 0 in its lane (the fifth bit of the 5-bit formats).
TARGET_QAVX2 static ALWAYS_INLINE __m256i fifth8(uint32_t bits, int j0) {
    __m256i shifts = _mm256_add_epi32(_mm256_set1_epi32(j0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)bits), shifts), _mm256_set1_epi32(1));
    return _mm256_slli_epi32(bit, 4);
}

/// Values 32g ..< 32g + 32 of the `format` block at `p`, dequantized exactly, into w[0 ..< 4].
TARGET_QAVX2 static ALWAYS_INLINE void decode32_avx2(int format, const uint8_t *p, int g, __m256 w[4]) {
    const __m256i low4 = _mm256_set1_epi32(0x0F);
    switch (format) {
    case COLLIE_Q8_0: {
        __m256 d = _mm256_set1_ps(half_at(p));
        for (int i = 0; i < 4; i++)
            w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * i)))), d);
        return;
    }
    case COLLIE_Q4_0: case COLLIE_Q4_1: case COLLIE_Q5_0: case COLLIE_Q5_1: {
        const int one = format == COLLIE_Q4_1 || format == COLLIE_Q5_1, five = format == COLLIE_Q5_0 || format == COLLIE_Q5_1;
        __m256 d = _mm256_set1_ps(half_at(p)), m = _mm256_set1_ps(one ? half_at(p + 2) : 0);
        uint32_t qh = five ? u32_at(p + (one ? 4 : 2)) : 0;
        const uint8_t *qs = p + 2 + 2 * one + 4 * five;
        __m256i offset = _mm256_set1_epi32(one ? 0 : five ? 16 : 8);
        for (int i = 0; i < 4; i++) {
            __m256i b = bytes8(qs + 8 * (i % 2));
            __m256i q = i < 2 ? _mm256_and_si256(b, low4) : _mm256_srli_epi32(b, 4);
            if (five) q = _mm256_or_si256(q, fifth8(qh, 8 * i));
            __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, offset)));
            w[i] = one ? _mm256_add_ps(v, m) : v;
        }
        return;
    }
    case COLLIE_Q4_K: case COLLIE_Q5_K: {
        const int five = format == COLLIE_Q5_K;
        int sc, mn;
        scale_min(p + 4, g, &sc, &mn);
        float d = half_at(p), dmin = half_at(p + 2);
        __m256 dl = _mm256_set1_ps(d * (float)sc), ml = _mm256_set1_ps(dmin * (float)mn);
        const uint8_t *q = p + (five ? 48 : 16) + 32 * (g / 2);
        __m128i shift = _mm_cvtsi32_si128(4 * (g % 2)), hshift = _mm_cvtsi32_si128(g);
        for (int i = 0; i < 4; i++) {
            __m256i v = _mm256_and_si256(_mm256_srl_epi32(bytes8(q + 8 * i), shift), low4);
            if (five) {
                __m256i bit = _mm256_and_si256(_mm256_srl_epi32(bytes8(p + 16 + 8 * i), hshift), _mm256_set1_epi32(1));
                v = _mm256_or_si256(v, _mm256_slli_epi32(bit, 4));
            }
            w[i] = _mm256_sub_ps(_mm256_mul_ps(dl, _mm256_cvtepi32_ps(v)), ml);
        }
        return;
    }
    case COLLIE_Q6_K: {
        int h = g / 4, s = g % 4;
        float d = half_at(p + 208);
        const int8_t *scales = (const int8_t *)(p + 192);
        const uint8_t *low = p + 64 * h + 32 * (s % 2), *high = p + 128 + 32 * h;
        __m128i ls = _mm_cvtsi32_si128(4 * (s / 2)), hs = _mm_cvtsi32_si128(2 * s);
        for (int i = 0; i < 4; i++) {
            __m256i lo = _mm256_and_si256(_mm256_srl_epi32(bytes8(low + 8 * i), ls), low4);
            __m256i hi = _mm256_and_si256(_mm256_srl_epi32(bytes8(high + 8 * i), hs), _mm256_set1_epi32(3));
            __m256i q = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
            float dh = d * (float)scales[(128 * h + 32 * s) / 16 + i / 2];
            w[i] = _mm256_mul_ps(_mm256_set1_ps(dh), _mm256_cvtepi32_ps(q));
        }
        return;
    }
    default: for (int i = 0; i < 4; i++) w[i] = _mm256_setzero_ps(); return;
    }
}

TARGET_QAVX2 static ALWAYS_INLINE float reduce8_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/// The AVX2 tile: NW (≤ 2) weight rows × NR (≤ 4) input rows, accumulators in registers.
TARGET_QAVX2 static ALWAYS_INLINE void qtile_avx2(int format, const uint8_t *row, size_t row_bytes, int NW,
                                                 const float *x, int NR, size_t in, float *y, size_t out) {
    __m256 acc[2][4];
    for (int j = 0; j < NW; j++)
        for (int r = 0; r < NR; r++) acc[j][r] = _mm256_setzero_ps();
    const size_t E = collie_block_elements(format), B = collie_block_bytes(format);
    for (size_t b = 0; b < in / E; b++)
#pragma clang loop unroll(full)
    for (int g = 0; g < (int)(E / 32); g++) {
        const size_t k = b * (E / 32) + (size_t)g;
        __m256 w[2][4];
        for (int j = 0; j < NW; j++) decode32_avx2(format, row + j * row_bytes + b * B, g, w[j]);
        for (int r = 0; r < NR; r++)
            for (int i = 0; i < 4; i++) {
                __m256 xv = _mm256_loadu_ps(x + r * in + 32 * k + 8 * i);
                for (int j = 0; j < NW; j++) acc[j][r] = _mm256_fmadd_ps(w[j][i], xv, acc[j][r]);
            }
    }
    for (int j = 0; j < NW; j++)
        for (int r = 0; r < NR; r++) y[r * out + j] = reduce8_ps(acc[j][r]);
}

TARGET_QAVX2 static ALWAYS_INLINE void qgemv_format_avx2(int format, const uint8_t *w, const float *x, float *y,
                                                        size_t in, size_t out, size_t rows, size_t begin, size_t end) {
    size_t row_bytes = collie_block_row_bytes(format, in);
    for (size_t o = begin; o < end; o++) {   // one weight row × tiles of 4, 2, 1 input rows (decoded once per 4)
        const uint8_t *row = w + o * row_bytes;
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) qtile_avx2(format, row, row_bytes, 1, x + r * in, 4, in, y + r * out + o, out);
        if (r + 2 <= rows) { qtile_avx2(format, row, row_bytes, 1, x + r * in, 2, in, y + r * out + o, out); r += 2; }
        if (r < rows) qtile_avx2(format, row, row_bytes, 1, x + r * in, 1, in, y + r * out + o, out);
    }
}

TARGET_QAVX2 static void qgemv_avx2(int format, const void *w, const float *x, float *y, size_t in, size_t out,
                                    size_t rows, size_t begin, size_t end) {
#define QGEMV_AVX2(F) qgemv_format_avx2(F, w, x, y, in, out, rows, begin, end)
    FOR_EACH_FORMAT(format, QGEMV_AVX2)
#undef QGEMV_AVX2
}
#endif

void collie_qgemv_f32(int format, const void *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                      size_t begin, size_t end) {
#ifdef COLLIE_VARIANTS_X86
    int level = collie_kernel_level();
    if (level >= 2) { qgemv_avx512(format, w, x, y, in, out, rows, begin, end); return; }
    if (level >= 1) { qgemv_avx2(format, w, x, y, in, out, rows, begin, end); return; }
#endif
    qgemv_compiled(format, w, x, y, in, out, rows, begin, end);
}
