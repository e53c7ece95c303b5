// Row kernels of the float32 normalization and rotary ops (Tensor.rmsNorm / layerNorm, Tensor.applyRotary): each
// runs a range of rows on the calling thread (the Swift op spreads ranges over threads). Row sums add their terms as
// 16 interleaved float partial sums (term j into partial j mod 16) combined pairwise, an order every level keeps, so
// every level (collie_kernel_level) gives the same bits. Run-time dispatch: AVX-512F, else AVX2+FMA, else portable C.
#ifndef COLLIE_ROWS_H
#define COLLIE_ROWS_H

#include <stddef.h>

/// RMS norm (centered = 0) or layer norm (centered = 1) of `rows` rows of `columns` values: mean μ (0 for RMS norm),
/// r = 1 / √(Σ(x − μ)² / columns + ε), y = (x − μ)·r·w + b with a bias, else w·((x − μ)·r). Writes r to
/// inverse_std[row] and, when centered, μ to means[row].
void collie_norm_rows_f32(const float *x, const float *weight, const float *bias, float *y, float *inverse_std,
                          float *means, size_t rows, size_t columns, float epsilon, int centered);

/// The backward pass of collie_norm_rows_f32 over `rows` rows given their output gradient g: adds g·x̂ to
/// weight_gradient and g to bias_gradient (when not NULL), and writes dx = r·(g·w − mean(g·w) − x̂·mean(g·w·x̂)) (the
/// first mean 0 for RMS norm) when dx is not NULL. x̂ = (x − μ)·r; means is NULL for RMS norm.
void collie_norm_backward_rows_f32(const float *x, const float *weight, const float *gradient,
                                   const float *inverse_std, const float *means, size_t rows, size_t columns,
                                   float *dx, float *weight_gradient, float *bias_gradient);

/// Rotary position embedding of `heads` heads of `dim` values at one position: pairs (a, b) — (i, i + half) when
/// not interleaved, (2i, 2i + 1) when interleaved — become (a·cos_i − b·s_i, b·cos_i + a·s_i) with s_i = sign·sin_i
/// (sign −1: the inverse rotation, the backward pass); values past 2·half are copied.
void collie_rotary_f32(const float *src, float *dst, const float *cos, const float *sin, size_t heads, size_t dim,
                       size_t half, float sign, int interleaved);

#endif
