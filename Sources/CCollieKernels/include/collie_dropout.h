// Inverted dropout whose mask is a function of (seed, element index) alone — no mask is stored: a backward pass, or
// a forward that activation checkpointing recomputes, draws the same mask again from the seed. Element i is kept when
// collie_dropout_bits(seed, i) ≥ threshold (threshold = round(p · 2¹⁶), p the dropping probability) and then scaled;
// the bits are integer arithmetic, the same at every kernel level and on every machine.
#ifndef COLLIE_DROPOUT_H
#define COLLIE_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

/// 16 well-mixed bits for element `index` under `seed`: half of a 32-bit hash (two rounds of MurmurHash3's finalizer
/// over the index and the seed's two halves) that two elements share.
uint32_t collie_dropout_bits(uint64_t seed, uint64_t index);

/// y[i] = x[i] · scale where element first + i is kept, else 0, for i in 0 ..< count (y may be x).
void collie_dropout_f32(const float *x, float *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                        float scale);

/// collie_dropout_f32 in float64 (gradient checks).
void collie_dropout_f64(const double *x, double *y, size_t count, uint64_t first, uint64_t seed, uint32_t threshold,
                        double scale);

#endif
