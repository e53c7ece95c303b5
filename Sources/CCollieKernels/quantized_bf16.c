// Matrix-vector products of decoding on quantized weight blocks with bfloat16 activations: each input row is rounded
// to bfloat16 once (collie_activations_to_bf16), and each 32-value group of a weight block is dotted with it as small
// integers (exact in bfloat16: at most 8 significant bits) by AVX512_BF16's vdpbf16ps, which sums pairs of products
// into float32 lanes. The group's float32 scale multiplies that dot product and the min terms come from the sums of
// the activations, the float kernel's algebra with x rounded to bfloat16:
//
//     Σ w·x = Σ_groups scale · Σ q·x  (+ min · Σ x)
//         Q4_0 q − 8, Q5_0 q − 16, Q8_0 q: scale d             Q4_1, Q5_1: scale d, min m
//         Q4_K, Q5_K: scale d·sc (per 32), min −dmin·m         Q6_K: q − 32, scale d·sc (per 16)
//
// Below level 4 a portable copy computes the same sums in plain C (compiled per instruction set by DISPATCHED_KERNEL),
// so every level is testable; the copies differ only in the order float32 products are added. Single-thread speed
// against the float and int8 kernels: scripts/bench/bench_qgemv_bf16.c (docs/PERFORMANCE.md). Like quantized.c,
// each weight block is read once for all input rows, and parallelism is the caller's (rows [begin, end)).
#include "block_layout.h"
#include "bf16.h"
#include "variants.h"

#include <stdlib.h>
#include <string.h>

// MARK: - Activations

static ALWAYS_INLINE void to_bf16_body(const float *x, uint16_t *xb, size_t n) {
    for (size_t i = 0; i < n; i++) xb[i] = collie_bf16_bits(x[i]);
}
DISPATCHED_KERNEL(collie_activations_to_bf16, to_bf16_body, (const float *x, uint16_t *xb, size_t n), (x, xb, n))

/// sums[r·groups + k] = Σ of the 32 bfloat16 activations of group k of row r, in float32 (the min terms' factor).
static void group_sums(const uint16_t *xb, float *sums, size_t in, size_t rows) {
    const size_t groups = in / 32;
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < groups; k++) {
            const uint16_t *g = xb + r * in + 32 * k;
            float s = 0;
            for (int l = 0; l < 32; l++) s += collie_bf16_value(g[l]);
            sums[r * groups + k] = s;
        }
}

/// Whether `format` has a min term (y needs Σx per group).
static int has_min(int format) {
    return format == COLLIE_Q4_1 || format == COLLIE_Q5_1 || format == COLLIE_Q4_K || format == COLLIE_Q5_K;
}

// MARK: - Block groups

/// Group g (values 32g ..< 32g + 32) of the `format` block at p: its integers q (after the offset), the scales of its
/// halves (values 0–15 and 16–31; equal except in Q6_K) and its min coefficient (0 without one). The scales are
/// dequantization's float32 products (d·sc), so scale·q + min is the dequantized weight up to its last rounding.
static ALWAYS_INLINE void decode_group(int format, const uint8_t *p, int g, int q[32], float scale[2], float *min) {
    *min = 0;
    switch (format) {
    case COLLIE_Q8_0: case COLLIE_Q4_0: case COLLIE_Q4_1: case COLLIE_Q5_0: case COLLIE_Q5_1: {
        int8_t v[32];
        block32_integers(format, p, v);
        for (int j = 0; j < 32; j++) q[j] = v[j];
        scale[0] = scale[1] = half_at(p);
        if (format == COLLIE_Q4_1 || format == COLLIE_Q5_1) *min = half_at(p + 2);
        return;
    }
    case COLLIE_Q4_K: case COLLIE_Q5_K: {
        const int five = format == COLLIE_Q5_K;
        int sc, m;
        scale_min(p + 4, g, &sc, &m);
        scale[0] = scale[1] = half_at(p) * (float)sc;
        *min = -(half_at(p + 2) * (float)m);
        const uint8_t *qs = p + (five ? 48 : 16) + 32 * (g / 2), *qh = p + 16;
        const int shift = 4 * (g % 2);
        for (int l = 0; l < 32; l++) q[l] = ((qs[l] >> shift) & 0x0F) | (five ? ((qh[l] >> g) & 1) << 4 : 0);
        return;
    }
    case COLLIE_Q6_K: {
        const int h = g / 4, s = g % 4;
        const float d = half_at(p + 208);
        const int8_t *scales = (const int8_t *)(p + 192);
        scale[0] = d * (float)scales[2 * g];
        scale[1] = d * (float)scales[2 * g + 1];
        const uint8_t *low = p + 64 * h + 32 * (s % 2), *high = p + 128 + 32 * h;
        for (int l = 0; l < 32; l++)
            q[l] = (((low[l] >> (4 * (s / 2))) & 0x0F) | ((high[l] >> (2 * s)) & 0x03) << 4) - 32;
        return;
    }
    default:
        scale[0] = scale[1] = 0;
        memset(q, 0, 32 * sizeof q[0]);
        return;
    }
}

// MARK: - Portable matrix-vector product (levels 0–3)

/// Most input rows per pass over a weight row.
#define BF16_ROWS 16

static ALWAYS_INLINE void qgemv_bf16_body(int format, const uint8_t *w, const uint16_t *xb, const float *sums,
                                          float *y, size_t in, size_t out, size_t rows, size_t begin, size_t end) {
    const size_t E = block_elements_of(format), B = block_bytes_of(format), groups = in / 32;
    const size_t row_bytes = in / E * B;
    for (size_t r0 = 0; r0 < rows; r0 += BF16_ROWS) {
        const size_t nr = rows - r0 < BF16_ROWS ? rows - r0 : BF16_ROWS;
        for (size_t o = begin; o < end; o++) {
            float acc[BF16_ROWS] = {0};
            for (size_t k = 0; k < groups; k++) {
                int q[32];
                float scale[2], min;
                decode_group(format, w + o * row_bytes + k / (E / 32) * B, (int)(k % (E / 32)), q, scale, &min);
                for (size_t r = 0; r < nr; r++) {
                    const uint16_t *x = xb + (r0 + r) * in + 32 * k;
                    float low = 0, high = 0;
                    for (int l = 0; l < 16; l++) {
                        low = FMA((float)q[l], collie_bf16_value(x[l]), low);
                        high = FMA((float)q[l + 16], collie_bf16_value(x[l + 16]), high);
                    }
                    acc[r] = FMA(scale[0], low, acc[r]);
                    acc[r] = FMA(scale[1], high, acc[r]);
                    if (sums) acc[r] = FMA(min, sums[(r0 + r) * groups + k], acc[r]);
                }
            }
            for (size_t r = 0; r < nr; r++) y[(r0 + r) * out + o] = acc[r];
        }
    }
}
DISPATCHED_KERNEL(qgemv_bf16_compiled, qgemv_bf16_body,
                  (int format, const uint8_t *w, const uint16_t *xb, const float *sums, float *y, size_t in,
                   size_t out, size_t rows, size_t begin, size_t end),
                  (format, w, xb, sums, y, in, out, rows, begin, end))

// MARK: - AVX512_BF16 matrix-vector product (level 4)
//
// A group's 32 integers become 32 bfloat16 values in one zmm by a table lookup (vpermw on their codes: the table holds
// the bfloat16 of code − offset, 32 entries, so it covers the 4- and 5-bit formats; vpermt2w's 64 covers Q6_K; Q8_0
// converts through float32). vdpbf16ps with the activations' 32 bfloat16 values gives 16 float32 lanes, lane i the
// sum of values 2i and 2i + 1, so lanes 0–7 are the group's first 16 values (Q6_K's two scales are a lane blend), and
// one FMA by the scale vector adds them to the tile's accumulator. The min terms: each group's min is kept per weight
// row and dotted with the groups' Σx after the row. (vdpbf16ps treats subnormal inputs and results as zero: it
// changes nothing above 1e-38.)

#ifdef COLLIE_VARIANTS_X86
#include <immintrin.h>

/// The tile for 4 and more input rows: 2 weight rows × 8 input rows (16 accumulators; on Zen 4 faster than 4 × 4 or
/// 3 × 8). Fewer input rows take 4 weight rows × up to 2.
#define BF16_TILE_WEIGHTS 2
#define BF16_TILE_ROWS 8
#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

/// The bfloat16 values a, a + 1, …, a + 31 (exact small integers) as 32 words.
TARGET_BF16 static ALWAYS_INLINE __m512i bf16_iota(float a) {
    const __m512 step = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 low = _mm512_add_ps(_mm512_set1_ps(a), step), high = _mm512_add_ps(_mm512_set1_ps(a + 16), step);
    return (__m512i)_mm512_cvtne2ps_pbh(high, low);  // the second operand fills words 0–15
}

/// The lookup tables of a call: code → bfloat16(code − offset).
typedef struct {
    __m512i low, high;  // codes 0–31, and 32–63 (Q6_K)
} tables;

TARGET_BF16 static ALWAYS_INLINE tables make_tables(int format) {
    const float offset = format == COLLIE_Q4_0 ? 8 : format == COLLIE_Q5_0 ? 16 : format == COLLIE_Q6_K ? 32 : 0;
    return (tables){bf16_iota(-offset), bf16_iota(32 - offset)};
}

/// 16 bytes of nibbles as 32 words in value order: the low nibbles (values 0–15), then the high ones (16–31).
TARGET_BF16 static ALWAYS_INLINE __m512i nibbles32(const uint8_t *p) {
    __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(b, _mm256_set1_epi16(0x0F))),
                              _mm256_srli_epi16(b, 4), 1);
}

/// The scales of a K-quant block's groups, once per block instead of per group: Q4_K / Q5_K's 8 (d·sc, with their
/// mins −dmin·m written to mins[0 ..< 8]) or Q6_K's 16 (d·scale, per 16 values), into ks. Nothing for the other formats.
/// The 12 packed bytes unpack as llama.cpp's kmask code does (bytes 0–7 of the result the scales, 8–15 the mins).
TARGET_BF16 static ALWAYS_INLINE void block_scales_bf16(int format, const uint8_t *p, float ks[16], float *mins) {
    if (format == COLLIE_Q4_K || format == COLLIE_Q5_K) {
        uint32_t u[4];
        memcpy(u, p + 4, 12);
        u[3] = ((u[2] >> 4) & 0x0F0F0F0F) | (((u[1] >> 6) & 0x03030303) << 4);
        const uint32_t m = u[1] & 0x3F3F3F3F;
        u[1] = (u[2] & 0x0F0F0F0F) | (((u[0] >> 6) & 0x03030303) << 4);
        u[2] = m;
        u[0] &= 0x3F3F3F3F;
        __m128i bytes = _mm_loadu_si128((const __m128i *)u);
        __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
        __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8)));
        _mm256_storeu_ps(ks, _mm256_mul_ps(_mm256_set1_ps(half_at(p)), sc));
        _mm256_storeu_ps(mins, _mm256_mul_ps(_mm256_set1_ps(-half_at(p + 2)), mn));   // −(dmin·m), exactly
    } else if (format == COLLIE_Q6_K) {
        __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192))));
        _mm512_storeu_ps(ks, _mm512_mul_ps(_mm512_set1_ps(half_at(p + 208)), sc));
    }
}

/// Group g of the `format` block at p as 32 bfloat16 values (*q), the scale of each of the 16 dot-product lanes and
/// the min coefficient (decode_group's, in registers; a K-quant's scales come from ks and its mins were written by
/// block_scales_bf16, so *min is left alone).
TARGET_BF16 static ALWAYS_INLINE void decode_group_bf16(int format, const uint8_t *p, int g, const tables *t,
                                                       const float *ks, __m512bh *q, __m512 *scale, float *min) {
    switch (format) {
    case COLLIE_Q8_0: {
        __m512 low = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2))));
        __m512 high = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18))));
        *q = _mm512_cvtne2ps_pbh(high, low);
        *scale = _mm512_set1_ps(half_at(p));
        *min = 0;
        return;
    }
    case COLLIE_Q4_0: case COLLIE_Q4_1: {
        const int one = format == COLLIE_Q4_1;
        *q = (__m512bh)_mm512_permutexvar_epi16(nibbles32(p + (one ? 4 : 2)), t->low);
        *scale = _mm512_set1_ps(half_at(p));
        *min = one ? half_at(p + 2) : 0;
        return;
    }
    case COLLIE_Q5_0: case COLLIE_Q5_1: {
        const int one = format == COLLIE_Q5_1;
        uint32_t qh;
        memcpy(&qh, p + (one ? 4 : 2), 4);
        __m512i codes = nibbles32(p + (one ? 8 : 6));
        codes = _mm512_mask_add_epi16(codes, (__mmask32)qh, codes, _mm512_set1_epi16(16));  // bit j: value j's fifth
        *q = (__m512bh)_mm512_permutexvar_epi16(codes, t->low);
        *scale = _mm512_set1_ps(half_at(p));
        *min = one ? half_at(p + 2) : 0;
        return;
    }
    case COLLIE_Q4_K: case COLLIE_Q5_K: {   // scale and min: block_scales_bf16's
        const int five = format == COLLIE_Q5_K;
        *scale = _mm512_set1_ps(ks[g]);
        __m512i codes = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(p + (five ? 48 : 16) + 32 * (g / 2))));
        codes = _mm512_and_si512(_mm512_srli_epi16(codes, 4 * (g % 2)), _mm512_set1_epi16(0x0F));
        if (five) {
            __mmask32 bits = _mm256_test_epi8_mask(_mm256_loadu_si256((const __m256i *)(p + 16)), _mm256_set1_epi8((char)(1 << g)));
            codes = _mm512_mask_add_epi16(codes, bits, codes, _mm512_set1_epi16(16));
        }
        *q = (__m512bh)_mm512_permutexvar_epi16(codes, t->low);
        return;
    }
    case COLLIE_Q6_K: {   // scales: block_scales_bf16's, lanes 0–7 the first 16 values'
        const int h = g / 4, s = g % 4;
        const uint8_t *low = p + 64 * h + 32 * (s % 2), *high = p + 128 + 32 * h;
        __m512i lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)low));
        __m512i hi = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)high));
        lo = _mm512_and_si512(_mm512_srli_epi16(lo, 4 * (s / 2)), _mm512_set1_epi16(0x0F));
        hi = _mm512_and_si512(_mm512_srli_epi16(hi, 2 * s), _mm512_set1_epi16(0x03));
        __m512i codes = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
        *q = (__m512bh)_mm512_permutex2var_epi16(t->low, codes, t->high);
        *scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(ks[2 * g]), _mm512_set1_ps(ks[2 * g + 1]));
        return;
    }
    default:
        *q = (__m512bh)_mm512_setzero_si512();
        *scale = _mm512_setzero_ps();
        return;
    }
}

/// y[r·out + o[j]] = weight row o[j] · x[r] for NW weight rows and the NR input rows from xb (NW and NR constants at
/// each call site, so the NW·NR accumulators stay in registers). The min terms are added at the end: the groups' mins
/// of each weight row are kept in `mins` (NW × groups) and dotted with each input row's Σx in 16 lanes.
TARGET_BF16 static ALWAYS_INLINE void tile_bf16(int format, const uint8_t *w, size_t row_bytes, const size_t *o, int NW,
                                               const uint16_t *xb, const float *sums, int NR, size_t in, float *y,
                                               size_t out, const tables *t, float *mins) {
    __m512 acc[4][8];
    float ks[4][16];   // the K-quants' block scales (block_scales_bf16)
    const uint8_t *row[4];
    for (int j = 0; j < NW; j++) {
        row[j] = w + o[j] * row_bytes;
        for (int r = 0; r < NR; r++) acc[j][r] = _mm512_setzero_ps();
    }
    const size_t E = block_elements_of(format), B = block_bytes_of(format), groups = in / 32;
    for (size_t b = 0; b < in / E; b++)
#pragma clang loop unroll(full)
    for (int g = 0; g < (int)(E / 32); g++) {   // unrolled for the K-quants: each g's shifts and scale bytes are constants
        const size_t k = b * (E / 32) + (size_t)g;
        __m512bh q[4];
        __m512 scale[4];
        if (g == 0 && E == 256)
            for (int j = 0; j < NW; j++) block_scales_bf16(format, row[j] + b * B, ks[j], &mins[j * groups + k]);
        for (int j = 0; j < NW; j++)
            decode_group_bf16(format, row[j] + b * B, g, t, ks[j], &q[j], &scale[j], &mins[j * groups + k]);
        for (int r = 0; r < NR; r++) {
            __m512bh x = (__m512bh)_mm512_loadu_si512((const void *)(xb + r * in + 32 * k));
            for (int j = 0; j < NW; j++)
                acc[j][r] = _mm512_fmadd_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), q[j], x), scale[j], acc[j][r]);
        }
    }
    if (sums)
        for (int j = 0; j < NW; j++)
            for (int r = 0; r < NR; r++) {
                size_t k = 0;
                for (; k + 16 <= groups; k += 16)
                    acc[j][r] = _mm512_fmadd_ps(_mm512_loadu_ps(mins + j * groups + k), _mm512_loadu_ps(sums + r * groups + k), acc[j][r]);
                if (k < groups) {
                    const __mmask16 m = (__mmask16)((1u << (groups - k)) - 1);
                    acc[j][r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, mins + j * groups + k),
                                                _mm512_maskz_loadu_ps(m, sums + r * groups + k), acc[j][r]);
                }
            }
    for (int j = 0; j < NW; j++)
        for (int r = 0; r < NR; r++) y[r * out + o[j]] = _mm512_reduce_add_ps(acc[j][r]);
}

/// Every input row against weight rows o[0 ..< NW]: tiles of NR input rows, then 4, 2, 1.
TARGET_BF16 static ALWAYS_INLINE void rows_bf16(int format, const uint8_t *w, size_t row_bytes, const size_t *o, int NW,
                                               const uint16_t *xb, const float *sums, size_t rows, int NR, size_t in,
                                               float *y, size_t out, const tables *t, float *mins) {
    const size_t groups = in / 32;
#define TILE(n) tile_bf16(format, w, row_bytes, o, NW, xb + r * in, sums ? sums + r * groups : NULL, n, in, y + r * out, out, t, mins)
    size_t r = 0;
    for (; r + NR <= rows; r += NR) TILE(NR);
    if (NR > 4 && r + 4 <= rows) { TILE(4); r += 4; }
    if (NR > 2 && r + 2 <= rows) { TILE(2); r += 2; }
    if (r < rows) TILE(1);
#undef TILE
}

/// Rows [begin, end) as tiles of NW weight rows, one from each of NW equal chunks: NW sequential memory streams, which
/// the hardware prefetchers follow better than NW adjacent rows (quantized_q8_simd.h's spread).
TARGET_BF16 static ALWAYS_INLINE void spread_bf16(int format, const uint8_t *w, size_t row_bytes, int NW,
                                                 const uint16_t *xb, const float *sums, size_t rows, int NR, size_t in,
                                                 float *y, size_t out, size_t begin, size_t end, const tables *t,
                                                 float *mins) {
    size_t o[4], chunk = (end - begin) / NW;
    for (size_t j = 0; j < chunk; j++) {
        for (int k = 0; k < NW; k++) o[k] = begin + k * chunk + j;
        rows_bf16(format, w, row_bytes, o, NW, xb, sums, rows, NR, in, y, out, t, mins);
    }
    for (size_t rest = begin + NW * chunk; rest < end; rest++)
        rows_bf16(format, w, row_bytes, &rest, 1, xb, sums, rows, NR, in, y, out, t, mins);
}

TARGET_BF16 static ALWAYS_INLINE void qgemv_format_bf16(int format, const uint8_t *w, const uint16_t *xb,
                                                       const float *sums, float *y, size_t in, size_t out, size_t rows,
                                                       size_t begin, size_t end) {
    const tables t = make_tables(format);
    const size_t row_bytes = in / block_elements_of(format) * block_bytes_of(format);
    // The min coefficients of a tile's weight rows: on the stack for inputs of up to 8192 values, else from the heap.
    float stack[4 * 256], *mins = 4 * (in / 32) <= 4 * 256 ? stack : malloc(4 * (in / 32) * sizeof(float));
    if (!mins) return;
    // Tiles of weight rows × input rows, as quantized.c's float kernel: 4 × up to 2 for a few input rows, 2 × 8 for more.
    if (rows < 4) spread_bf16(format, w, row_bytes, 4, xb, sums, rows, 2, in, y, out, begin, end, &t, mins);
    else spread_bf16(format, w, row_bytes, BF16_TILE_WEIGHTS, xb, sums, rows, BF16_TILE_ROWS, in, y, out, begin, end, &t, mins);
    if (mins != stack) free(mins);
}

TARGET_BF16 static void qgemv_bf16_avx512(int format, const uint8_t *w, const uint16_t *xb, const float *sums, float *y,
                                          size_t in, size_t out, size_t rows, size_t begin, size_t end) {
    switch (format) {
#define CASE(F) case F: qgemv_format_bf16(F, w, xb, sums, y, in, out, rows, begin, end); break;
    CASE(COLLIE_Q8_0) CASE(COLLIE_Q4_0) CASE(COLLIE_Q4_1) CASE(COLLIE_Q5_0) CASE(COLLIE_Q5_1)
    CASE(COLLIE_Q4_K) CASE(COLLIE_Q5_K) CASE(COLLIE_Q6_K)
#undef CASE
    default: break;
    }
}
#endif

// MARK: - Dispatch

void collie_qgemv_bf16(int format, const void *w, const uint16_t *xb, float *y, size_t in, size_t out, size_t rows,
                       size_t begin, size_t end) {
    if (!collie_block_format_supported(format) || begin >= end || rows == 0) return;
    // Σx per group for the min terms: on the stack for up to 16 rows of 8192 values, else from the heap.
    float stack[BF16_ROWS * 256], *sums = NULL;
    const size_t count = rows * (in / 32);
    if (has_min(format)) {
        sums = count <= sizeof stack / sizeof stack[0] ? stack : malloc(count * sizeof(float));
        if (!sums) return;
        group_sums(xb, sums, in, rows);
    }
#ifdef COLLIE_VARIANTS_X86
    if (collie_kernel_level() >= 4) qgemv_bf16_avx512(format, w, xb, sums, y, in, out, rows, begin, end);
    else
#endif
        qgemv_bf16_compiled(format, w, xb, sums, y, in, out, rows, begin, end);
    if (sums && sums != stack) free(sums);
}
