// Single-thread speed of the bfloat16-activation kernel on quantized blocks against the float32 and int8 ones (not a
// test; docs/PERFORMANCE.md quotes it): GB/s of weight bytes for SmolLM2-135M's 576×1536 and 1536×576 matrices (the
// K-quants only where 256 divides the input) at 1, 2, 4, 8 and 16 input rows, all at kernel level 4:
//     bf16  collie_activations_to_bf16 + collie_qgemv_bf16 (vdpbf16ps)
//     f32   collie_qgemv_f32 (float32 activations, blocks widened in registers)
//     q8    collie_quantize_activations + collie_qgemv_q8 (llama.cpp's int8 arithmetic, VNNI)
// Each call converts its activations, as decoding does per matrix. The weights are streamed from ~128 MB of copies of
// one matrix (the next copy each call) so they come from DRAM as in decoding; `cache` instead reuses one matrix, which
// measures the arithmetic alone. Calls alternate between the three kernels; the best of REPS calls is printed (the
// machine is shared). Each format is first checked: bf16 and f32 against float64 sums over the dequantized weights.
//
// Build and run from the repository root:
//
//     K=Sources/CCollieKernels; clang -O2 -I$K/include scripts/bench/bench_qgemv_bf16.c $K/quantized_bf16.c \
//         $K/quantized_q8.c $K/quantized.c $K/quantize.c $K/level.c -lm -o /tmp/bench_qgemv_bf16
//     /tmp/bench_qgemv_bf16 [stream|cache] [REPS] [q4_0,q8_0,...]
#include "collie_quantized.h"
#include "collie_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static float bf16_round(float v) {
    uint16_t h;
    collie_activations_to_bf16(&v, &h, 1);
    uint32_t bits = (uint32_t)h << 16;
    memcpy(&v, &bits, 4);
    return v;
}

int main(int argc, char **argv) {
    const int stream = !(argc > 1 && !strcmp(argv[1], "cache"));
    const int reps = argc > 2 ? atoi(argv[2]) : 200;
    const char *only = argc > 3 ? argv[3] : NULL;
    const int formats[] = {2, 3, 6, 7, 8, 12, 13, 14};
    const char *names[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"};
    const size_t shapes[2][2] = {{576, 1536}, {1536, 576}};  // out, in
    const int rowsv[] = {1, 2, 4, 8, 16};
    collie_kernel_limit_level(4);
    printf("level %d, %s, best of %d calls; GB/s of weight bytes (bf16 / f32 / q8, * = bf16 fastest)\n",
           collie_kernel_level(), stream ? "weights from DRAM" : "weights in cache", reps);
    static float x[16 * 1536], xr[16 * 1536], y[3][16 * 1536], deq[1536 * 1536];
    static uint16_t xb[16 * 1536];
    static uint8_t xq[16 * 1536 * 2];
    for (int s = 0; s < 2; s++) {
        const size_t out = shapes[s][0], in = shapes[s][1];
        printf("== %zux%zu (out x in)  rows:", out, in);
        for (int k = 0; k < 5; k++) printf("  %20d", rowsv[k]);
        printf("\n");
        for (int fi = 0; fi < 8; fi++) {
            const int f = formats[fi];
            if (in % collie_block_elements(f) || (only && !strstr(only, names[fi]))) continue;
            const size_t mb = collie_block_row_bytes(f, in) * out, copies = stream ? (128u << 20) / mb + 1 : 1;
            uint8_t *w = malloc(copies * mb);
            float *src = malloc(in * out * sizeof(float));
            for (size_t i = 0; i < in * out; i++) src[i] = (float)((i * 2654435761u) % 1000) / 500.f - 1;
            if (!collie_quantize_rows(f, src, w, out, in)) {  // Q5_K, Q6_K: random codes, a small scale
                for (size_t i = 0; i < mb; i++) w[i] = (uint8_t)(i * 2654435761u >> 13);
                for (size_t b = 0; b < mb / collie_block_bytes(f); b++) {
                    uint16_t h = 0x2000;
                    memcpy(w + b * collie_block_bytes(f) + (f == 14 ? 208 : 0), &h, 2);
                }
            }
            for (size_t c = 1; c < copies; c++) memcpy(w + c * mb, w, mb);
            for (size_t i = 0; i < 16 * in; i++) x[i] = (float)((i * 40503u) % 2000) / 1000.f - 1;
            // Check: each kernel against float64 over the dequantized weights (bf16 against the rounded activations).
            collie_dequantize_rows(f, w, deq, out, in);
            for (size_t i = 0; i < 16 * in; i++) xr[i] = bf16_round(x[i]);
            collie_activations_to_bf16(x, xb, 16 * in);
            collie_qgemv_bf16(f, w, xb, y[0], in, out, 16, 0, out);
            collie_qgemv_f32(f, w, x, y[1], in, out, 16, 0, out);
            double worst[2] = {0};
            for (size_t r = 0; r < 16; r++)
                for (size_t o = 0; o < out; o++) {
                    double e[2] = {0}, mag[2] = {0};
                    for (size_t i = 0; i < in; i++) {
                        e[0] += (double)deq[o * in + i] * xr[r * in + i], mag[0] += fabs((double)deq[o * in + i] * xr[r * in + i]);
                        e[1] += (double)deq[o * in + i] * x[r * in + i], mag[1] += fabs((double)deq[o * in + i] * x[r * in + i]);
                    }
                    for (int k = 0; k < 2; k++) {
                        double rel = fabs(y[k][r * out + o] - e[k]) / (mag[k] > 0 ? mag[k] : 1);
                        if (rel > worst[k]) worst[k] = rel;
                    }
                }
            printf("%-5s (err bf16 %.1e f32 %.1e)", names[fi], worst[0], worst[1]);
            for (int k = 0; k < 5; k++) {
                const size_t rows = rowsv[k];
                double best[3] = {1e9, 1e9, 1e9};
                for (int rep = 0; rep < reps; rep++) {
                    for (int cand = 0; cand < 3; cand++) {
                        const uint8_t *wc = w + (size_t)((3 * rep + cand) % copies) * mb;  // a copy none read lately
                        double t = now();
                        if (cand == 0) {
                            collie_activations_to_bf16(x, xb, rows * in);
                            collie_qgemv_bf16(f, wc, xb, y[0], in, out, rows, 0, out);
                        } else if (cand == 1) {
                            collie_qgemv_f32(f, wc, x, y[1], in, out, rows, 0, out);
                        } else {
                            collie_quantize_activations(f, x, xq, in, rows);
                            collie_qgemv_q8(f, wc, xq, y[2], in, out, rows, 0, out);
                        }
                        t = now() - t;
                        if (t < best[cand]) best[cand] = t;
                    }
                }
                const int win = best[0] < best[1] && best[0] < best[2];
                printf("  %5.1f/%5.1f/%5.1f%s", mb / best[0] / 1e9, mb / best[1] / 1e9, mb / best[2] / 1e9, win ? "*" : " ");
            }
            printf("\n");
            fflush(stdout);
            free(w);
            free(src);
        }
    }
    return 0;
}
