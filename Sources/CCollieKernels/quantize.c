// Float32 rows → GGML blocks, byte for byte what ggml's quantize_row_<format>_ref writes (ggml-quants.c, the
// reference `llama-quantize` and gguf's Python quantizers agree with). Portable C on purpose: quantization runs once,
// at load, and the reference's float arithmetic (no fused multiply-add, its order of operations) is the contract.
//
// Per block of 32 values (amax: the value of largest magnitude, the first on ties; scales stored as float16, rounded
// to nearest even):
//
//     Q8_0  d = |amax| / 127      q = roundf(x · (1/d))                      [d, q×32]
//     Q4_0  d = amax / -8         q = min(15, trunc(x · (1/d) + 8.5))        [d, nibbles×16]
//     Q5_0  d = amax / -16        q = min(31, trunc(x · (1/d) + 16.5))       [d, high bits, nibbles]
//     Q4_1  d = (max − min) / 15  q = min(15, trunc((x − min) · (1/d) + 0.5))   [d, min, nibbles]
//     Q5_1  d = (max − min) / 31  q = trunc((x − min) · (1/d) + 0.5)            [d, min, high bits, nibbles]
//
// Q4_K (super-blocks of 256 = 8 × 32): per 32 values, make_qkx2_quants fits scale and min by weighted least squares
// (weights √(mean x²) + |x|, 21 trial scales (nmax − 1 + 0.1·k)/(max − min)), then the 8 scales and 8 mins are
// quantized to 6 bits against their maxima and the values requantized with the 6-bit scales.
#include "collie_quantized.h"

#include "ggml_half.h"

#pragma STDC FP_CONTRACT OFF

// MARK: - 32-value blocks

/// Q8_0: [float16 d][int8 q × 32].
static void quantize_q8_0(const float *x, uint8_t *y) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    ggml_store_half(y, d);
    for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/// The value of largest magnitude (the first on ties).
static inline float signed_amax(const float *x) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

static inline void min_max(const float *x, float *lowest, float *highest) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *lowest = lo;
    *highest = hi;
}

/// Value j low and value j + 16 high in byte j.
static inline void pack_nibbles(const uint8_t *q, uint8_t *o) {
    for (int j = 0; j < 16; j++) o[j] = (uint8_t)((q[j] & 0x0F) | (q[j + 16] << 4));
}

/// Bit 4 of value j at bit j of a little-endian uint32.
static inline void pack_high_bits(const uint8_t *q, uint8_t *o) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    memcpy(o, &qh, 4);
}

/// Q4_0 [d, nibbles] and Q5_0 [d, high bits, nibbles]: levels 8 or 16.
static void quantize_symmetric(const float *x, uint8_t *y, int levels) {
    const float d = signed_amax(x) / (float)-levels, id = d != 0 ? 1.0f / d : 0.0f;
    const float offset = (float)levels + 0.5f;
    const int top = 2 * levels - 1;
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        const int v = (int8_t)(x[j] * id + offset);
        q[j] = (uint8_t)(v < top ? v : top);
    }
    ggml_store_half(y, d);
    if (levels == 8) pack_nibbles(q, y + 2);
    else { pack_high_bits(q, y + 2); pack_nibbles(q, y + 6); }
}

/// Q4_1 [d, min, nibbles] (levels 15, codes clamped) and Q5_1 [d, min, high bits, nibbles] (levels 31, not clamped).
static void quantize_affine(const float *x, uint8_t *y, int levels) {
    float lo, hi;
    min_max(x, &lo, &hi);
    const float d = (hi - lo) / (float)levels, id = d != 0 ? 1.0f / d : 0.0f;
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        const float v = (x[j] - lo) * id + 0.5f;
        if (levels == 15) {
            const int c = (int8_t)v;
            q[j] = (uint8_t)(c < 15 ? c : 15);
        } else {
            q[j] = (uint8_t)(int)v;
        }
    }
    ggml_store_half(y, d);
    ggml_store_half(y + 2, lo);
    if (levels == 15) pack_nibbles(q, y + 4);
    else { pack_high_bits(q, y + 4); pack_nibbles(q, y + 8); }
}

// MARK: - Q4_K

/// ggml's make_qkx2_quants(32, 15, x, weights, L, &min, Laux, -1, 0.1, 20, false): the scale; *the_min = −min.
static float fit_scale_min(const float *x, const float *w, uint8_t *L, float *the_min) {
    enum { n = 32, nmax = 15, nstep = 20 };
    const float rmin = -1.f, rdelta = 0.1f;
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = ggml_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    uint8_t Laux[n];
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = ggml_nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/// The 6-bit scale and min of sub-block j from Q4_K's 12 packed bytes (ggml's get_scale_min_k4).
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/// Q4_K: [float16 d][float16 dmin][scales 12][nibbles 128] for 256 values.
static void quantize_q4_k(const float *x, uint8_t *y) {
    uint8_t L[256];
    float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = fit_scale_min(x + 32 * j, weights, L + 32 * j, &mins[j]);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *packed = y + 4, *q = y + 16;
    memset(packed, 0, 12);
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        uint8_t ls = (uint8_t)ggml_nearest_int(inv_scale * scales[j]), lm = (uint8_t)ggml_nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    ggml_store_half(y, max_scale / 63.f);
    ggml_store_half(y + 2, max_min / 63.f);
    const float d_all = ggml_load_half(y), dmin_all = ggml_load_half(y + 2);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        scale_min_k4(j, packed, &sc, &m);
        const float d = d_all * sc;
        if (!d) continue;
        const float dm = dmin_all * m;
        for (int ii = 0; ii < 32; ++ii) {
            const int l = ggml_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
        }
    }
    for (int j = 0; j < 256; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

// MARK: - Entry point

int collie_quantize_rows(int format, const float *src, void *blocks, size_t rows, size_t columns) {
    size_t values, bytes;
    switch (format) {
    case COLLIE_Q8_0: values = 32; bytes = 34; break;
    case COLLIE_Q4_0: values = 32; bytes = 18; break;
    case COLLIE_Q4_1: values = 32; bytes = 20; break;
    case COLLIE_Q5_0: values = 32; bytes = 22; break;
    case COLLIE_Q5_1: values = 32; bytes = 24; break;
    case COLLIE_Q4_K: values = 256; bytes = 144; break;
    default: return 0;
    }
    if (columns % values != 0) return 0;
    const size_t count = rows * (columns / values);
    uint8_t *y = blocks;
    for (size_t b = 0; b < count; b++, src += values, y += bytes) {
        switch (format) {
        case COLLIE_Q8_0: quantize_q8_0(src, y); break;
        case COLLIE_Q4_0: quantize_symmetric(src, y, 8); break;
        case COLLIE_Q5_0: quantize_symmetric(src, y, 16); break;
        case COLLIE_Q4_1: quantize_affine(src, y, 15); break;
        case COLLIE_Q5_1: quantize_affine(src, y, 31); break;
        default: quantize_q4_k(src, y); break;
        }
    }
    return 1;
}
