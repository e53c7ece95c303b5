// Conversions between float32 and IEEE half precision (float16 storage). Baseline x86-64 has no instruction for them:
// Swift's Float16 calls a runtime function per element there, while F16C converts 8 (AVX-512F: 16) at a time. Same
// rounding everywhere (to nearest even), so every level gives the same bits. Run-time dispatch (collie_kernel_level).
// bfloat16 needs no kernel: it is the top half of a float32, and its Swift loops vectorize on any x86-64.
#ifndef COLLIE_CONVERSIONS_H
#define COLLIE_CONVERSIONS_H

#include <stddef.h>
#include <stdint.h>

/// dst[i] = src[i] rounded to half-precision bits, to nearest even (HalfPrecision.float16Bits).
void collie_f32_to_f16(const float *src, uint16_t *dst, size_t n);
/// dst[i] = the float32 that half-precision bits src[i] denote, exactly (HalfPrecision.float(float16:)).
void collie_f16_to_f32(const uint16_t *src, float *dst, size_t n);

#endif
