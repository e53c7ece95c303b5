// Conversions between float32 and the 16-bit storage types. Baseline x86-64 has no instruction for IEEE half precision:
// Swift's Float16 calls a runtime function per element there, while F16C converts 8 (AVX-512F: 16) at a time.
// bfloat16 is the top half of a float32; Swift compiles its loops for SSE2 (4 values at a time), these copies for
// AVX2 and AVX-512 (8 and 16) — the conversions of bf16 weights that optimizers update a row at a time. Same rounding
// everywhere (to nearest even), so every level gives the same bits. Run-time dispatch (collie_kernel_level).
#ifndef COLLIE_CONVERSIONS_H
#define COLLIE_CONVERSIONS_H

#include <stddef.h>
#include <stdint.h>

/// dst[i] = src[i] rounded to half-precision bits, to nearest even (HalfPrecision.float16Bits).
void collie_f32_to_f16(const float *src, uint16_t *dst, size_t n);
/// dst[i] = the float32 that half-precision bits src[i] denote, exactly (HalfPrecision.float(float16:)).
void collie_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/// dst[i] = src[i] rounded to bfloat16 bits, to nearest even, NaN kept a quiet NaN (HalfPrecision.bfloat16Bits).
void collie_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/// dst[i] = the float32 that bfloat16 bits src[i] denote, exactly (HalfPrecision.float(bfloat16:)).
void collie_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

#endif
