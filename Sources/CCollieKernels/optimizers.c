#include "collie_optimizers.h"
#include "variants.h"

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
