// Matrix-vector products for decoding: a few input rows against a weight matrix read once, with the weights
// in bfloat16 or float32. Run-time dispatch: AVX-512F, else AVX2+FMA, else portable C.
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
/// 2 with AVX-512F, 1 with AVX2+FMA, 0 for the portable code (also the level of collie_attend_heads_f32).
int collie_gemv_level(void);
/// Uses at most `level` from now on (2 again lifts the limit): lets tests run the AVX2 and portable code on an
/// AVX-512 machine. Not thread-safe; set it while no kernel runs.
void collie_gemv_limit_level(int level);

#endif
