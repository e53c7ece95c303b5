// The layout of GGML's quantized blocks that the block kernels share (quantized.c, quantized_q8.c, quantized_bf16.c):
// values and bytes per block, float16 scales, the 32-value formats' integers and the K-quants' packed 6-bit scales.
// Inline, so that each format's copy of a kernel folds them to constants. Integer and bit operations only (and one
// float16 widening): including this header changes no file's floating-point contraction.
#ifndef COLLIE_BLOCK_LAYOUT_H
#define COLLIE_BLOCK_LAYOUT_H

#include "collie_quantized.h"

#include <stdint.h>
#include <string.h>

#define BLOCK_INLINE __attribute__((always_inline)) static inline

/// Values per block: 32 (Q4_0 … Q8_0) or 256 (K-quants); 0 for an unsupported format.
BLOCK_INLINE size_t block_elements_of(int format) {
    switch (format) {
    case COLLIE_Q4_0: case COLLIE_Q4_1: case COLLIE_Q5_0: case COLLIE_Q5_1: case COLLIE_Q8_0: return 32;
    case COLLIE_Q4_K: case COLLIE_Q5_K: case COLLIE_Q6_K: return 256;
    default: return 0;
    }
}

/// Bytes per block; 0 for an unsupported format.
BLOCK_INLINE size_t block_bytes_of(int format) {
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
BLOCK_INLINE float half_at(const uint8_t *p) {
    _Float16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/// The 32 integers v of a 32-value block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) after the format's offset (−8 for Q4_0, −16
/// for Q5_0), so that the block's values are d·v (+ m for Q4_1 and Q5_1), as ggml's generic vec_dot forms them.
BLOCK_INLINE void block32_integers(int format, const uint8_t *b, int8_t v[32]) {
    switch (format) {
    case COLLIE_Q4_0:
        for (int j = 0; j < 16; j++) { v[j] = (int8_t)((b[2 + j] & 0x0F) - 8); v[j + 16] = (int8_t)((b[2 + j] >> 4) - 8); }
        break;
    case COLLIE_Q4_1:
        for (int j = 0; j < 16; j++) { v[j] = (int8_t)(b[4 + j] & 0x0F); v[j + 16] = (int8_t)(b[4 + j] >> 4); }
        break;
    case COLLIE_Q5_0: case COLLIE_Q5_1: {
        const int at = format == COLLIE_Q5_0 ? 2 : 4, offset = format == COLLIE_Q5_0 ? 16 : 0;
        uint32_t qh;
        memcpy(&qh, b + at, 4);
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)(((b[at + 4 + j] & 0x0F) | (((qh >> j) & 1) << 4)) - offset);
            v[j + 16] = (int8_t)(((b[at + 4 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - offset);
        }
        break;
    }
    default: memcpy(v, b + 2, 32); break;  // Q8_0
    }
}

/// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block's 12 packed bytes (gguf's get_scale_min).
BLOCK_INLINE void scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 0x3F;
        *m = s[j + 4] & 0x3F;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30);
        *m = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
    }
}

#endif
