// Matrix-vector products for decoding: a few input rows against a weight matrix read once, with the weights
// in bfloat16 or float32. Run-time dispatch (collie_kernel_level): AVX-512F, else AVX2+FMA, else portable C.
#ifndef COLLIE_GEMV_H
#define COLLIE_GEMV_H

#include <stddef.h>
#include <stdint.h>

/// y[r·out + o] = Σᵢ bf16(w[o·in + i]) · x[r·in + i] for r < rows and o in [begin, end).
/// Each weight row is widened to float32 once and used for every input row.
void collie_gemv_bf16(const uint16_t *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                      size_t begin, size_t end);
/// The same with float32 weights.
void collie_gemv_f32(const float *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                     size_t begin, size_t end);

#endif
