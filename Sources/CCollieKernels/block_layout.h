// The layout of GGML's quantized blocks that the block kernels share (quantized.c, quantized_bf16.c): values and bytes
// per block, float16 scales and the K-quants' packed 6-bit scales. Inline, so that each format's copy of a kernel
// folds them to constants.
#ifndef COLLIE_BLOCK_LAYOUT_H
#define COLLIE_BLOCK_LAYOUT_H

#include "collie_quantized.h"
#include "variants.h"

#include <string.h>

/// Values per block: 32 (Q4_0 … Q8_0) or 256 (K-quants); 0 for an unsupported format.
static ALWAYS_INLINE size_t block_elements_of(int format) {
    switch (format) {
    case COLLIE_Q4_0: case COLLIE_Q4_1: case COLLIE_Q5_0: case COLLIE_Q5_1: case COLLIE_Q8_0: return 32;
    case COLLIE_Q4_K: case COLLIE_Q5_K: case COLLIE_Q6_K: return 256;
    default: return 0;
    }
}

/// Bytes per block; 0 for an unsupported format.
static ALWAYS_INLINE size_t block_bytes_of(int format) {
    switch (format) {
    case COLLIE_Q4_0: return 18;
    case COLLIE_Q4_1: return 20;
    case COLLIE_Q5_0: return 22;
    case COLLIE_Q5_1: return 24;
    case COLLIE_Q8_0: return 34;
    case COLLIE_Q4_K: return 144;
    case COLLIE_Q5_K: return 176;
    case COLLIE_Q6_K: return 210;
    default: return 0;
    }
}

/// The float16 at p (a block's scale), widened.
static ALWAYS_INLINE float half_at(const uint8_t *p) {
    _Float16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block's 12 packed bytes (gguf's get_scale_min).
static ALWAYS_INLINE void scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 0x3F;
        *m = s[j + 4] & 0x3F;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30);
        *m = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
    }
}

#endif
