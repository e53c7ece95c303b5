#include "collie_dropout.h"
#include "variants.h"

/// MurmurHash3's 32-bit finalizer: a bijection in which every input bit flips each output bit with probability ½.
static ALWAYS_INLINE uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

/// The seed's keys for hash indices whose high word is `high`.
typedef struct { uint32_t offset, key; } dropout_keys;

static ALWAYS_INLINE dropout_keys keys_for(uint64_t seed, uint32_t high) {
    const uint32_t k1 = fmix32((uint32_t)seed ^ 0x9E3779B9u), k2 = fmix32((uint32_t)(seed >> 32) + k1);
    return (dropout_keys){k1 + fmix32(high ^ k2), k2};
}

static ALWAYS_INLINE uint32_t mixed(dropout_keys k, uint32_t low) { return fmix32(fmix32(low + k.offset) ^ k.key); }

/// Elements come in blocks of 32; element 32b + l (l < 16) takes the low 16 bits of hash 16b + l, element 32b + 16 + l
/// its high 16 bits — one hash per two elements, 16 lanes at a time.
static ALWAYS_INLINE uint64_t hash_index(uint64_t i) { return (i >> 5) << 4 | (i & 15); }

uint32_t collie_dropout_bits(uint64_t seed, uint64_t index) {
    const uint64_t g = hash_index(index);
    const uint32_t h = mixed(keys_for(seed, (uint32_t)(g >> 32)), (uint32_t)g);
    return index & 16 ? h >> 16 : h & 0xFFFFu;
}

/// `blocks` whole blocks of 32 elements from hash index `first_hash` (all with one high word).
static ALWAYS_INLINE void dropout_blocks(const float *x, float *y, size_t blocks, uint64_t first_hash, uint64_t seed,
                                         uint32_t threshold, float scale) {
    const dropout_keys k = keys_for(seed, (uint32_t)(first_hash >> 32));
    uint32_t low = (uint32_t)first_hash;
    for (size_t b = 0; b < blocks; b++, x += 32, y += 32, low += 16) {
        for (uint32_t l = 0; l < 16; l++) {
            const uint32_t h = mixed(k, low + l);
            const float a = x[l], c = x[16 + l];
            y[l] = (h & 0xFFFFu) >= threshold ? a * scale : 0.0f;
            y[16 + l] = (h >> 16) >= threshold ? c * scale : 0.0f;
        }
    }
}
DISPATCHED_KERNEL(dropout_blocks_f32, dropout_blocks,
                  (const float *x, float *y, size_t blocks, uint64_t first_hash, uint64_t seed, uint32_t threshold,
                   float scale),
                  (x, y, blocks, first_hash, seed, threshold, scale))

void collie_dropout_f32(const float *x, float *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                        float scale) {
    size_t i = 0;
    for (; i < count && ((first + i) & 31); i++)   // up to the first whole block
        y[i] = collie_dropout_bits(seed, first + i) >= threshold ? x[i] * scale : 0.0f;
    while (count - i >= 32) {
        // Whole blocks whose hash indices share a high word (2²⁸ blocks each).
        const uint64_t g = hash_index(first + i);
        const uint64_t left = (((uint64_t)1 << 32) - (uint32_t)g) / 16;
        size_t blocks = (count - i) / 32;
        if (blocks > left) blocks = (size_t)left;
        dropout_blocks_f32(x + i, y + i, blocks, g, seed, threshold, scale);
        i += blocks * 32;
    }
    for (; i < count; i++) y[i] = collie_dropout_bits(seed, first + i) >= threshold ? x[i] * scale : 0.0f;
}

void collie_dropout_f64(const double *x, double *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                        double scale) {
    for (size_t i = 0; i < count; i++) y[i] = collie_dropout_bits(seed, first + i) >= threshold ? x[i] * scale : 0.0;
}
