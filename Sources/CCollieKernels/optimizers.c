#include "collie_optimizers.h"
#include "variants.h"

#include <stdint.h>

// Each body mirrors its optimizer's Swift loop in CollieTraining/Optimizers line for line (see variants.h).

static ALWAYS_INLINE void adamw_body(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
                                     size_t n, collie_adamw_step s) {
    for (size_t i = 0; i < n; i++) {
        if (s.apply_decay) w[i] *= s.decay;
        float difference = g[i] - m[i];
        m[i] = s.weight1 < 0.5f ? FMA(s.weight1, difference, m[i]) : FMA(s.weight1_complement, difference, g[i]);
        v[i] = FMA(s.weight2 * g[i], g[i], v[i] * s.beta2);
        float denominator = SQRT(v[i]) / s.correction2_root + s.epsilon;
        w[i] += s.negative_step_size * m[i] / denominator;
    }
}
DISPATCHED_KERNEL(collie_adamw_update_f32, adamw_body,
                  (float *w, const float *g, float *m, float *v, size_t n, collie_adamw_step step),
                  (w, g, m, v, n, step))

static ALWAYS_INLINE void descend_body(float *restrict w, const float *restrict g, size_t n, int apply_decay,
                                       float decay, float negative_lr, float divisor) {
    if (divisor == 1) {   // g / 1 is g: skip the division
        for (size_t i = 0; i < n; i++) {
            if (apply_decay) w[i] *= decay;
            w[i] = FMA(negative_lr, g[i], w[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (apply_decay) w[i] *= decay;
            w[i] = FMA(negative_lr, g[i] / divisor, w[i]);
        }
    }
}
DISPATCHED_KERNEL(collie_descend_f32, descend_body,
                  (float *w, const float *g, size_t n, int apply_decay, float decay, float negative_lr, float divisor),
                  (w, g, n, apply_decay, decay, negative_lr, divisor))

static ALWAYS_INLINE void adalomo_moment_body(float *restrict v, const float *restrict g, float *restrict u, size_t n,
                                              float beta, float one_minus_beta, float epsilon1) {
    for (size_t i = 0; i < n; i++) {
        v[i] = FMA(one_minus_beta, g[i] * g[i] + epsilon1, v[i] * beta);
        u[i] = 1 / SQRT(v[i]) * g[i];
    }
}
DISPATCHED_KERNEL(collie_adalomo_moment_f32, adalomo_moment_body,
                  (float *v, const float *g, float *u, size_t n, float beta, float one_minus_beta, float epsilon1),
                  (v, g, u, n, beta, one_minus_beta, epsilon1))

// The sums below add float32 terms in double as 8 interleaved partial sums (term j into partial j mod 8), combined
// pairwise at the end: an order every level keeps, so they vectorize without changing their bits.
static ALWAYS_INLINE double combined(const double partial[8]) {
    return ((partial[0] + partial[4]) + (partial[1] + partial[5])) + ((partial[2] + partial[6]) + (partial[3] + partial[7]));
}

static ALWAYS_INLINE void adalomo_row_sums_body(const float *restrict g, size_t rows, size_t columns, float epsilon1,
                                                double *restrict row_sums) {
    for (size_t i = 0; i < rows; i++) {
        const float *restrict gi = g + i * columns;
        double partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t j = 0;
        for (; j + 8 <= columns; j += 8)
            for (size_t l = 0; l < 8; l++) partial[l] += (double)(gi[j + l] * gi[j + l] + epsilon1);
        for (size_t l = 0; j < columns; j++, l++) partial[l] += (double)(gi[j] * gi[j] + epsilon1);
        row_sums[i] = combined(partial);
    }
}
DISPATCHED_KERNEL(collie_adalomo_row_sums_f32, adalomo_row_sums_body,
                  (const float *g, size_t rows, size_t columns, float epsilon1, double *row_sums),
                  (g, rows, columns, epsilon1, row_sums))

static ALWAYS_INLINE void adalomo_column_sums_body(const float *restrict g, size_t rows, size_t ld, size_t columns,
                                                   float epsilon1, double *restrict column_sums) {
    for (size_t j = 0; j < columns; j++) column_sums[j] = 0;
    for (size_t i = 0; i < rows; i++) {
        const float *restrict gi = g + i * ld;
        for (size_t j = 0; j < columns; j++) column_sums[j] += (double)(gi[j] * gi[j] + epsilon1);
    }
}
DISPATCHED_KERNEL(collie_adalomo_column_sums_f32, adalomo_column_sums_body,
                  (const float *g, size_t rows, size_t ld, size_t columns, float epsilon1, double *column_sums),
                  (g, rows, ld, columns, epsilon1, column_sums))

static ALWAYS_INLINE void adalomo_update_squares_body(const float *restrict g, size_t rows, size_t columns,
                                                      const float *restrict row_factors,
                                                      const float *restrict column_factors, double *restrict sums) {
    for (size_t i = 0; i < rows; i++) {
        const float *restrict gi = g + i * columns;
        const float row_factor = row_factors[i];
        double partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t j = 0;
        for (; j + 8 <= columns; j += 8)
            for (size_t l = 0; l < 8; l++) {
                const double u = row_factor * column_factors[j + l] * gi[j + l];
                partial[l] += u * u;
            }
        for (size_t l = 0; j < columns; j++, l++) {
            const double u = row_factor * column_factors[j] * gi[j];
            partial[l] += u * u;
        }
        sums[i] = combined(partial);
    }
}
DISPATCHED_KERNEL(collie_adalomo_update_squares_f32, adalomo_update_squares_body,
                  (const float *g, size_t rows, size_t columns, const float *row_factors, const float *column_factors,
                   double *sums),
                  (g, rows, columns, row_factors, column_factors, sums))

static ALWAYS_INLINE void adalomo_descend_row_body(float *restrict w, const float *restrict g, size_t n,
                                                   float row_factor, const float *restrict column_factors,
                                                   int apply_decay, float decay, float negative_lr, float divisor) {
    for (size_t j = 0; j < n; j++) {
        const float u = row_factor * column_factors[j] * g[j];
        if (apply_decay) w[j] *= decay;
        w[j] = FMA(negative_lr, divisor == 1 ? u : u / divisor, w[j]);
    }
}
DISPATCHED_KERNEL(collie_adalomo_descend_row_f32, adalomo_descend_row_body,
                  (float *w, const float *g, size_t n, float row_factor, const float *column_factors, int apply_decay,
                   float decay, float negative_lr, float divisor),
                  (w, g, n, row_factor, column_factors, apply_decay, decay, negative_lr, divisor))

static ALWAYS_INLINE void square_sum_body(const float *restrict x, size_t n, double *restrict sum) {
    double partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (size_t l = 0; l < 8; l++) partial[l] += (double)x[j + l] * (double)x[j + l];
    for (size_t l = 0; j < n; j++, l++) partial[l] += (double)x[j] * (double)x[j];
    *sum = combined(partial);
}
DISPATCHED_KERNEL(collie_square_sum_f32, square_sum_body, (const float *x, size_t n, double *sum), (x, n, sum))

static ALWAYS_INLINE void all_finite_body(const float *restrict x, size_t n, int *restrict finite) {
    *finite = 1;
    for (size_t start = 0; start < n; start += 4096) {   // blocks of branch-free checks; stops at the first bad block
        const size_t end = n - start < 4096 ? n : start + 4096;
        const uint32_t *restrict bits = (const uint32_t *)x;
        uint32_t bad = 0;
        for (size_t i = start; i < end; i++) bad |= (bits[i] & 0x7F800000u) == 0x7F800000u;
        if (bad) { *finite = 0; return; }
    }
}
DISPATCHED_KERNEL(collie_all_finite_f32, all_finite_body, (const float *x, size_t n, int *finite), (x, n, finite))

static ALWAYS_INLINE float sign_of(float x) { return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f); }

static ALWAYS_INLINE void lion_body(float *restrict w, const float *restrict g, float *restrict m, size_t n,
                                    float decay, float b1, float c1, float b2, float c2, float negative_lr) {
    for (size_t i = 0; i < n; i++) {
        w[i] *= decay;
        float interpolated = FMA(g[i], c1, m[i] * b1);
        w[i] = FMA(sign_of(interpolated), negative_lr, w[i]);
        m[i] = FMA(g[i], c2, m[i] * b2);
    }
}
DISPATCHED_KERNEL(collie_lion_update_f32, lion_body,
                  (float *w, const float *g, float *m, size_t n, float decay, float b1, float c1, float b2, float c2,
                   float negative_lr),
                  (w, g, m, n, decay, b1, c1, b2, c2, negative_lr))

static ALWAYS_INLINE void sgd_body(float *restrict w, const float *restrict g, float *restrict b, size_t n,
                                   collie_sgd_step s) {
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (s.apply_decay) d = FMA(s.decay, w[i], d);
        if (s.momentum) {
            b[i] = s.first ? d : FMA(s.gradient_weight, d, b[i] * s.mu);
            d = s.nesterov ? FMA(s.mu, b[i], d) : b[i];
        }
        w[i] = FMA(s.negative_lr, d, w[i]);
    }
}
DISPATCHED_KERNEL(collie_sgd_update_f32, sgd_body,
                  (float *w, const float *g, float *buffer, size_t n, collie_sgd_step step),
                  (w, g, buffer, n, step))

static ALWAYS_INLINE void sophia_body(float *restrict w, const float *restrict g, float *restrict m,
                                      const float *restrict h, size_t n, float decay, float b1, float c1, float scale,
                                      float negative_lr) {
    for (size_t i = 0; i < n; i++) {
        w[i] *= decay;
        m[i] = FMA(g[i], c1, m[i] * b1);
        float x = __builtin_fabsf(m[i]) / (scale * h[i] + 1e-15f);
        float ratio = 1 < x ? 1.0f : x;   // Swift's min(x, 1): NaN stays NaN
        w[i] = FMA(sign_of(m[i]) * ratio, negative_lr, w[i]);
    }
}
DISPATCHED_KERNEL(collie_sophia_update_f32, sophia_body,
                  (float *w, const float *g, float *m, const float *h, size_t n, float decay, float b1, float c1,
                   float scale, float negative_lr),
                  (w, g, m, h, n, decay, b1, c1, scale, negative_lr))

static ALWAYS_INLINE void sophia_hessian_body(float *restrict h, const float *restrict g, size_t n, float b2, float c2) {
    for (size_t i = 0; i < n; i++) h[i] = FMA(c2 * g[i], g[i], h[i] * b2);
}
DISPATCHED_KERNEL(collie_sophia_hessian_f32, sophia_hessian_body, (float *h, const float *g, size_t n, float b2, float c2),
                  (h, g, n, b2, c2))

static ALWAYS_INLINE void adan_body(float *restrict w, const float *restrict g, float *restrict m, float *restrict n2,
                                    float *restrict v, float *restrict previous, size_t n, collie_adan_step s) {
    for (size_t i = 0; i < n; i++) {
        if (s.first) previous[i] = -g[i];
        float d = previous[i] + g[i];   // g − g_prev
        m[i] = FMA(g[i], s.c1, m[i] * s.b1);
        v[i] = FMA(d, s.c2, v[i] * s.b2);
        float nesterov = (d * s.b2) + g[i];
        n2[i] = FMA(s.c3 * nesterov, nesterov, n2[i] * s.b3);
        float denominator = SQRT(n2[i]) / s.bias3_root + s.epsilon;
        if (s.no_prox) w[i] *= s.decay;
        w[i] = FMA(s.step_size, m[i] / denominator, w[i]);
        w[i] = FMA(s.difference_step_size, v[i] / denominator, w[i]);
        if (!s.no_prox) w[i] /= s.proximal;
        previous[i] = -g[i];
    }
}
DISPATCHED_KERNEL(collie_adan_update_f32, adan_body,
                  (float *w, const float *g, float *m, float *n2, float *v, float *previous, size_t n,
                   collie_adan_step step),
                  (w, g, m, n2, v, previous, n, step))
