#include "collie_rows.h"
#include "variants.h"

#define LANES 16

/// 16 partial sums combined pairwise.
static ALWAYS_INLINE float combined16(const float p[LANES]) {
    float q[8], r[4];
    for (int l = 0; l < 8; l++) q[l] = p[l] + p[l + 8];
    for (int l = 0; l < 4; l++) r[l] = q[l] + q[l + 4];
    return (r[0] + r[2]) + (r[1] + r[3]);
}

/// Σ (x_j − shift)² when `squares`, else Σ x_j, in collie_rows.h's order.
static ALWAYS_INLINE float row_sum(const float *restrict x, size_t n, float shift, int squares) {
    float partial[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t l = 0; l < LANES; l++) {
            const float d = x[j + l] - shift;
            partial[l] += squares ? d * d : x[j + l];
        }
    for (size_t l = 0; j < n; j++, l++) {
        const float d = x[j] - shift;
        partial[l] += squares ? d * d : x[j];
    }
    return combined16(partial);
}

static ALWAYS_INLINE void norm_rows_body(const float *restrict x, const float *restrict w, const float *restrict b,
                                         float *restrict y, float *restrict inverse_std, float *restrict means,
                                         size_t rows, size_t c, float epsilon, int centered) {
    for (size_t row = 0; row < rows; row++) {
        const float *restrict xr = x + row * c;
        float *restrict yr = y + row * c;
        const float mean = centered ? row_sum(xr, c, 0, 0) / (float)c : 0;
        const float r = 1.0f / SQRT(row_sum(xr, c, mean, 1) / (float)c + epsilon);
        inverse_std[row] = r;
        if (centered) means[row] = mean;
        if (b)
            for (size_t j = 0; j < c; j++) yr[j] = (xr[j] - mean) * r * w[j] + b[j];
        else
            for (size_t j = 0; j < c; j++) yr[j] = w[j] * ((xr[j] - mean) * r);
    }
}
DISPATCHED_KERNEL(collie_norm_rows_f32, norm_rows_body,
                  (const float *x, const float *weight, const float *bias, float *y, float *inverse_std, float *means,
                   size_t rows, size_t columns, float epsilon, int centered),
                  (x, weight, bias, y, inverse_std, means, rows, columns, epsilon, centered))

static ALWAYS_INLINE void norm_backward_rows_body(const float *restrict x, const float *restrict w,
                                                  const float *restrict g, const float *restrict inverse_std,
                                                  const float *restrict means, size_t rows, size_t c,
                                                  float *restrict dx, float *restrict dw, float *restrict db) {
    for (size_t row = 0; row < rows; row++) {
        const float *restrict xr = x + row * c, *restrict gr = g + row * c;
        const float r = inverse_std[row], mean = means ? means[row] : 0;
        float sum_g[LANES] = {0}, sum_gx[LANES] = {0};
        size_t j = 0;
        for (; j + LANES <= c; j += LANES)
            for (size_t l = 0; l < LANES; l++) {
                const float xhat = (xr[j + l] - mean) * r, gx = gr[j + l] * w[j + l];
                dw[j + l] += gr[j + l] * xhat;
                sum_g[l] += gx;
                sum_gx[l] += gx * xhat;
            }
        for (size_t l = 0; j < c; j++, l++) {
            const float xhat = (xr[j] - mean) * r, gx = gr[j] * w[j];
            dw[j] += gr[j] * xhat;
            sum_g[l] += gx;
            sum_gx[l] += gx * xhat;
        }
        if (db)
            for (size_t k = 0; k < c; k++) db[k] += gr[k];
        if (!dx) continue;
        const float mean_g = means ? combined16(sum_g) / (float)c : 0, mean_gx = combined16(sum_gx) / (float)c;
        float *restrict dxr = dx + row * c;
        for (size_t k = 0; k < c; k++) {
            const float xhat = (xr[k] - mean) * r;
            dxr[k] = r * (gr[k] * w[k] - mean_g - xhat * mean_gx);
        }
    }
}
DISPATCHED_KERNEL(collie_norm_backward_rows_f32, norm_backward_rows_body,
                  (const float *x, const float *weight, const float *gradient, const float *inverse_std,
                   const float *means, size_t rows, size_t columns, float *dx, float *weight_gradient,
                   float *bias_gradient),
                  (x, weight, gradient, inverse_std, means, rows, columns, dx, weight_gradient, bias_gradient))

static ALWAYS_INLINE void rotary_body(const float *restrict src, float *restrict dst, const float *restrict cos,
                                      const float *restrict sin, size_t heads, size_t dim, size_t half, float sign,
                                      int interleaved) {
    for (size_t head = 0; head < heads; head++) {
        const float *restrict xs = src + head * dim;
        float *restrict ys = dst + head * dim;
        if (interleaved) {
            for (size_t i = 0; i < half; i++) {
                const float a = xs[2 * i], b = xs[2 * i + 1], co = cos[i], si = sign * sin[i];
                ys[2 * i] = a * co - b * si;
                ys[2 * i + 1] = b * co + a * si;
            }
        } else {
            for (size_t i = 0; i < half; i++) {
                const float a = xs[i], b = xs[i + half], co = cos[i], si = sign * sin[i];
                ys[i] = a * co - b * si;
                ys[i + half] = b * co + a * si;
            }
        }
        for (size_t i = 2 * half; i < dim; i++) ys[i] = xs[i];
    }
}
DISPATCHED_KERNEL(collie_rotary_f32, rotary_body,
                  (const float *src, float *dst, const float *cos, const float *sin, size_t heads, size_t dim,
                   size_t half, float sign, int interleaved),
                  (src, dst, cos, sin, heads, dim, half, sign, interleaved))
