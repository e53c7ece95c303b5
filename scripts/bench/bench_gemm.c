// Single-thread speed of Collie's own GEMM (collie_gemm.h) against OpenBLAS's cblas_sgemm (not a test;
// docs/PERFORMANCE.md quotes it): GFLOP/s on the linear layers of the `small` preset (2048 tokens, hidden 768, MLP
// 2048, vocabulary 32000; with the argument `tiny`, the tiny preset's: 1024 tokens, hidden 256, MLP 688), forward
// (NT), dX (NN) and dW (TN), for OpenBLAS, the float32 kernel at levels 2 (AVX-512F) and 1 (AVX2+FMA) and the bfloat16
// GEMM at the CPU's level. Time is the calling thread's CPU time (best of REPS calls, the variants taking turns), so
// other processes on this shared machine cost less accuracy than in wall time; `collie bench ops --only gemm` gives
// the two-thread wall-clock figures. Run OpenBLAS with one thread.
//
// Build and run from the repository root:
//
//     K=Sources/CCollieKernels; clang -O2 -I$K/include -I$K scripts/bench/bench_gemm.c $K/gemm*.c $K/pool.c \
//         $K/level.c -lopenblas -lpthread -o /tmp/bench_gemm
//     OPENBLAS_NUM_THREADS=1 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/bench_gemm [REPS] [tiny]
#include "collie_gemm.h"
#include "collie_kernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 3;
    // (name, transA, transB, M, N, K) for the layers (tokens, in, out): Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X.
    const int tiny = argc > 2 && strcmp(argv[2], "tiny") == 0;
    const size_t T = tiny ? 1024 : 2048, hidden = tiny ? 256 : 768, mlp = tiny ? 688 : 2048;
    const size_t layers[4][2] = {{hidden, hidden}, {hidden, mlp}, {mlp, hidden}, {hidden, 32000}};
    float *A = malloc(T * 32000 * sizeof(float)), *B = malloc(32000 * 2048 * sizeof(float));
    float *C = malloc(T * 32000 * sizeof(float));
    for (size_t i = 0; i < T * 32000; i++) A[i] = (float)(rand() & 0xFFFF) / 65536 - 0.5f;
    for (size_t i = 0; i < 32000 * 2048; i++) B[i] = (float)(rand() & 0xFFFF) / 65536 - 0.5f;
    printf("%-7s %-16s %9s %9s %9s %9s\n", "op", "M×K×N", "OpenBLAS", "L2 f32", "L1 f32", "bf16");
    for (int l = 0; l < 4; l++) {
        const size_t in = layers[l][0], out = layers[l][1];
        const struct { const char *name; int ta, tb; size_t M, N, K; } products[3] = {
            {"fwd NT", 0, 1, T, out, in}, {"dX NN", 0, 0, T, in, out}, {"dW TN", 1, 0, out, in, T}};
        for (int p = 0; p < 3; p++) {
            const int ta = products[p].ta, tb = products[p].tb;
            const size_t M = products[p].M, N = products[p].N, K = products[p].K;
            const size_t lda = ta ? M : K, ldb = tb ? K : N;
            double best[4] = {1e30, 1e30, 1e30, 1e30};
            for (int r = 0; r <= reps; r++)
                for (int v = 0; v < 4; v++) {
                    const double start = cpu_now();
                    if (v == 0)
                        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                                    (int)M, (int)N, (int)K, 1, A, (int)lda, B, (int)ldb, 0, C, (int)N);
                    else {
                        collie_kernel_limit_level(v == 2 ? 1 : COLLIE_KERNEL_LEVEL_MAX);
                        if (v == 3) collie_gemm_bf16(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, C, N, 1);
                        else collie_sgemm(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, C, N, 1);
                    }
                    const double t = cpu_now() - start;
                    if (r > 0 && t < best[v]) best[v] = t;   // round 0 warms up
                }
            const double flop = 2.0 * M * N * K;
            char shape[32];
            snprintf(shape, sizeof shape, "%zu×%zu×%zu", M, K, N);
            printf("%-7s %-16s %9.1f %9.1f %9.1f %9.1f\n", products[p].name, shape, flop / best[0] * 1e-9,
                   flop / best[1] * 1e-9, flop / best[2] * 1e-9, flop / best[3] * 1e-9);
            fflush(stdout);
        }
    }
    return 0;
}
