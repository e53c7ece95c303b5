// Scalar helpers shared by the quantizers and the 8-bit activation kernels: float16 conversions and ggml's
// nearest_int, written as ggml's portable code does them so every instruction set gives the same bits.
#ifndef COLLIE_GGML_HALF_H
#define COLLIE_GGML_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

static inline uint32_t ggml_bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float ggml_float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// float32 → float16 bits, to nearest even (ggml's portable GGML_FP32_TO_FP16, equal to F16C's conversion).
static inline uint16_t ggml_half_bits(float f) {
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = ggml_bits_of(f), shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = ggml_float_of((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = ggml_bits_of(base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

/// float16 bits → float32, exactly.
static inline float ggml_half_value(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0) {
        const float v = (float)m * 0x1.0p-24f;
        return sign ? -v : v;
    }
    return ggml_float_of(sign | (e == 31 ? 0x7F800000u | (m << 13) : ((e + 112) << 23) | (m << 13)));
}

/// The float16 at p (little-endian, any alignment) as float32.
static inline float ggml_load_half(const uint8_t *p) { return ggml_half_value((uint16_t)(p[0] | p[1] << 8)); }

static inline void ggml_store_half(uint8_t *p, float f) {
    const uint16_t h = ggml_half_bits(f);
    memcpy(p, &h, 2);
}

/// ggml's nearest_int: round to nearest even through the float 1.5·2²³ (exact for |v| ≤ 2²²).
static inline int ggml_nearest_int(float v) {
    return (int)(ggml_bits_of(v + 12582912.f) & 0x007FFFFFu) - 0x00400000;
}

#endif
