// bfloat16 ⇄ float32 in C, one copy for the kernels that round to bfloat16 (quantized_bf16.c's activations, the bf16
// GEMM's packing): to nearest even with NaN kept a quiet NaN, as the engine's HalfPrecision.bfloat16Bits.
#ifndef COLLIE_BF16_H
#define COLLIE_BF16_H

#include <stdint.h>
#include <string.h>

/// Float32 → bfloat16 bits, to nearest even; NaN stays a quiet NaN.
__attribute__((always_inline)) static inline uint16_t collie_bf16_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
}

/// bfloat16 bits → float32 (exact).
__attribute__((always_inline)) static inline float collie_bf16_value(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#endif
