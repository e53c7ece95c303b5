#include "collie_conversions.h"
#include "variants.h"
#include "bf16.h"

#include <string.h>

// The compiler vectorizes these loops with vcvtps2ph / vcvtph2ps where F16C is available; the portable copy calls the
// compiler's runtime conversion per element, as Swift's Float16 does on baseline x86-64.

static ALWAYS_INLINE void f32_to_f16_body(const float *restrict src, uint16_t *restrict dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        _Float16 h = (_Float16)src[i];
        memcpy(dst + i, &h, sizeof h);
    }
}
DISPATCHED_KERNEL(collie_f32_to_f16, f32_to_f16_body, (const float *src, uint16_t *dst, size_t n), (src, dst, n))

static ALWAYS_INLINE void f16_to_f32_body(const uint16_t *restrict src, float *restrict dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        _Float16 h;
        memcpy(&h, src + i, sizeof h);
        dst[i] = (float)h;
    }
}
DISPATCHED_KERNEL(collie_f16_to_f32, f16_to_f32_body, (const uint16_t *src, float *dst, size_t n), (src, dst, n))

static ALWAYS_INLINE void f32_to_bf16_body(const float *restrict src, uint16_t *restrict dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = collie_bf16_bits(src[i]);
}
DISPATCHED_KERNEL(collie_f32_to_bf16, f32_to_bf16_body, (const float *src, uint16_t *dst, size_t n), (src, dst, n))

static ALWAYS_INLINE void bf16_to_f32_body(const uint16_t *restrict src, float *restrict dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = collie_bf16_value(src[i]);
}
DISPATCHED_KERNEL(collie_bf16_to_f32, bf16_to_f32_body, (const uint16_t *src, float *dst, size_t n), (src, dst, n))
