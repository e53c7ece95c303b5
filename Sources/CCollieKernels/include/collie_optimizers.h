// The element-wise update loops of Collie's optimizers (CollieTraining/Optimizers), each over elements [0, n) of one
// parameter w, its gradient g and its state. Each file there states the equations; these loops compute them with the
// same operations in the same order, fused multiply-adds where the Swift code had addingProduct, so every level
// (collie_kernel_level) gives the same bits. Run-time dispatch: AVX-512F, else AVX2+FMA, else portable C.
#ifndef COLLIE_OPTIMIZERS_H
#define COLLIE_OPTIMIZERS_H

#include <stddef.h>

/// AdamW's scalars for one step.
typedef struct {
    int apply_decay;           ///< whether to multiply w by `decay` first
    float decay;               ///< 1 − lr·λ
    float weight1;             ///< 1 − β1
    float weight1_complement;  ///< weight1 − 1
    float beta2;               ///< β2
    float weight2;             ///< 1 − β2
    float correction2_root;    ///< √(1 − β2ᵗ)
    float epsilon;             ///< ε
    float negative_step_size;  ///< −lr / (1 − β1ᵗ)
} collie_adamw_step;

/// w ← w·decay; m ← lerp(m, g, weight1); v ← fma(weight2·g, g, v·β2); w ← w + step·m / (√v / correction + ε).
void collie_adamw_update_f32(float *w, const float *g, float *m, float *v, size_t n, collie_adamw_step step);

/// LOMO and AdaLomo's last step: w ← w·decay (when apply_decay); w ← fma(negative_lr, g / divisor, w).
void collie_descend_f32(float *w, const float *g, size_t n, int apply_decay, float decay, float negative_lr,
                        float divisor);

/// AdaLomo's moment of a vector parameter: v ← fma(1 − β, g² + ε₁, v·β); u ← (1 / √v)·g.
void collie_adalomo_moment_f32(float *v, const float *g, float *u, size_t n, float beta, float one_minus_beta,
                               float epsilon1);

/// AdaLomo's row statistics of a rows × columns gradient: row_sums[i] = Σ_j (g_ij² + ε₁), the float32 terms added
/// in double as 8 interleaved partial sums (j mod 8) combined pairwise — one order at every level.
void collie_adalomo_row_sums_f32(const float *g, size_t rows, size_t columns, float epsilon1, double *row_sums);

/// AdaLomo's column statistics of `columns` columns of a gradient with row stride `ld`:
/// column_sums[j] = Σ_i (g_ij² + ε₁) in double, rows in order.
void collie_adalomo_column_sums_f32(const float *g, size_t rows, size_t ld, size_t columns, float epsilon1,
                                    double *column_sums);

/// Per row of AdaLomo's update u_ij = row_factors[i]·column_factors[j]·g_ij (float32): sums[i] = Σ_j u_ij² in
/// double, in collie_adalomo_row_sums_f32's order.
void collie_adalomo_update_squares_f32(const float *g, size_t rows, size_t columns, const float *row_factors,
                                       const float *column_factors, double *sums);

/// collie_descend_f32 on one row of AdaLomo's update, made as it is used: u_j = row_factor·column_factors[j]·g_j.
void collie_adalomo_descend_row_f32(float *w, const float *g, size_t n, float row_factor, const float *column_factors,
                                    int apply_decay, float decay, float negative_lr, float divisor);

/// *sum = Σ x_j² in double (each square of the widened value), in collie_adalomo_row_sums_f32's order.
void collie_square_sum_f32(const float *x, size_t n, double *sum);

/// *finite = 1 when no x_i is infinite or NaN, else 0.
void collie_all_finite_f32(const float *x, size_t n, int *finite);

/// Lion: w ← w·decay; w ← fma(sign(fma(g, c1, m·b1)), negative_lr, w); m ← fma(g, c2, m·b2).
void collie_lion_update_f32(float *w, const float *g, float *m, size_t n, float decay, float b1, float c1, float b2,
                            float c2, float negative_lr);

/// SGD's scalars for one step.
typedef struct {
    int apply_decay;         ///< weight decay λ ≠ 0
    float decay;             ///< λ
    int momentum;            ///< keeps a momentum buffer
    int first;               ///< the buffer's first step: it takes d as it is
    int nesterov;            ///< Nesterov momentum
    float mu;                ///< momentum μ
    float gradient_weight;   ///< 1 − dampening
    float negative_lr;       ///< −lr
} collie_sgd_step;

/// SGD: d ← fma(λ, w, g); b ← first ? d : fma(1 − dampening, d, b·μ); d ← nesterov ? fma(μ, b, d) : b;
/// w ← fma(−lr, d, w). `buffer` is NULL without momentum.
void collie_sgd_update_f32(float *w, const float *g, float *buffer, size_t n, collie_sgd_step step);

/// SophiaG: w ← w·decay; m ← fma(g, c1, m·b1); w ← fma(sign(m)·min(|m| / (scale·h + 1e-15), 1), negative_lr, w).
void collie_sophia_update_f32(float *w, const float *g, float *m, const float *h, size_t n, float decay, float b1,
                              float c1, float scale, float negative_lr);

/// SophiaG's Hessian estimate: h ← fma(c2·g, g, h·b2).
void collie_sophia_hessian_f32(float *h, const float *g, size_t n, float b2, float c2);

/// Adan's scalars for one step.
typedef struct {
    int first;                 ///< the first step: the previous gradient is g itself
    int no_prox;               ///< decay w before the update instead of dividing after it
    float b1, c1, b2, c2, b3, c3;
    float bias3_root;          ///< √(1 − β3ᵗ)
    float epsilon;
    float step_size;           ///< −lr / (1 − β1ᵗ)
    float difference_step_size;  ///< −lr·β2 / (1 − β2ᵗ)
    float decay;               ///< 1 − lr·λ
    float proximal;            ///< 1 + lr·λ
} collie_adan_step;

/// Adan over w, g and its state m (exp_avg), n2 (exp_avg_sq), v (exp_avg_diff) and previous (−g of the last step).
void collie_adan_update_f32(float *w, const float *g, float *m, float *n2, float *v, float *previous, size_t n,
                            collie_adan_step step);

#endif
