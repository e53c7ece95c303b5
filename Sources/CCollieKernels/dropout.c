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

/// The seed's two keys, and the low word's offset for the indices whose high word is `high`.
typedef struct { uint32_t offset, key; } dropout_keys;

static ALWAYS_INLINE dropout_keys keys_for(uint64_t seed, uint32_t high) {
    const uint32_t k1 = fmix32((uint32_t)seed ^ 0x9E3779B9u), k2 = fmix32((uint32_t)(seed >> 32) + k1);
    return (dropout_keys){k1 + fmix32(high ^ k2), k2};
}

static ALWAYS_INLINE uint32_t mixed(dropout_keys k, uint32_t low) { return fmix32(fmix32(low + k.offset) ^ k.key); }

uint32_t collie_dropout_bits(uint64_t seed, uint64_t index) {
    return mixed(keys_for(seed, (uint32_t)(index >> 32)), (uint32_t)index);
}

/// Elements first ..< first + count whose indices share one high word.
static ALWAYS_INLINE void dropout_body(const float *x, float *y, size_t count, uint64_t first, uint64_t seed,
                                       uint32_t threshold, float scale) {
    const dropout_keys k = keys_for(seed, (uint32_t)(first >> 32));
    const uint32_t low = (uint32_t)first;
    for (uint32_t i = 0; i < (uint32_t)count; i++) y[i] = mixed(k, low + i) >= threshold ? x[i] * scale : 0.0f;
}
DISPATCHED_KERNEL(dropout_run_f32, dropout_body,
                  (const float *x, float *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                   float scale),
                  (x, y, count, first, seed, threshold, scale))

/// The number of elements from `first` on before the index's high word changes (at most `count`).
static size_t same_high_word(uint64_t first, size_t count) {
    const uint64_t left = ((uint64_t)1 << 32) - (uint32_t)first;
    return count < left ? count : (size_t)left;
}

void collie_dropout_f32(const float *x, float *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                        float scale) {
    while (count > 0) {
        const size_t n = same_high_word(first, count);
        dropout_run_f32(x, y, n, first, seed, threshold, scale);
        x += n, y += n, first += n, count -= n;
    }
}

void collie_dropout_f64(const double *x, double *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                        double scale) {
    for (size_t i = 0; i < count; i++) y[i] = collie_dropout_bits(seed, first + i) >= threshold ? x[i] * scale : 0.0;
}
