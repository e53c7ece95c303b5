// Vectorized float32 row kernels for Collie's softmax-shaped ops (attention, cross-entropy,
// softmax, SwiGLU). Each picks an AVX2+FMA implementation at run time when the CPU has it and a
// portable scalar one otherwise, so the binary runs on any x86-64 (and non-x86) machine.
#ifndef COLLIE_KERNELS_H
#define COLLIE_KERNELS_H

#include <stddef.h>

/// The largest of p[0..<n] (-inf when n is 0).
float collie_max_f32(const float *p, size_t n);
/// Σ exp(p[i] − shift).
float collie_sum_exp_f32(const float *p, size_t n, float shift);
/// p[i] = exp(p[i] − shift) · scale in place; returns Σ exp(p[i] − shift).
float collie_exponentiate_f32(float *p, size_t n, float shift, float scale);
/// dst[i] += exp(src[i] − shift) · scale.
void collie_add_exponentiated_f32(const float *src, float *dst, size_t n, float shift, float scale);
/// out[i] = silu(gate[i]) · up[i].
void collie_swiglu_f32(const float *gate, const float *up, float *out, size_t n);
/// SwiGLU's backward; either output may be NULL.
void collie_swiglu_backward_f32(const float *gate, const float *up, const float *gradient,
                                float *gate_gradient, float *up_gradient, size_t n);
/// Whether the AVX2+FMA paths are in use.
int collie_kernels_vectorized(void);

/// Fixes the C allocator's mmap threshold at `bytes` (glibc's `mallopt(M_MMAP_THRESHOLD)`), so large
/// blocks are always mmapped and go back to the system when freed. Returns 1 on success, 0 where the
/// allocator has no such setting.
int collie_fix_mmap_threshold(size_t bytes);

#endif
