// Single-thread speed of the float-activation kernels on quantized blocks (not a test; docs/PERFORMANCE.md quotes it):
// collie_dequantize_rows (MB/s of float32 written and of blocks read) and collie_qgemv_f32 (GB/s of weight bytes) at
// 1 and 8 input rows, against the dense decoding gemv on bf16 and float32 weights, for SmolLM2-135M's 576×1536 and
// 1536×576 matrices (the K-quants only where 256 divides the input). One matrix, so it stays in cache: this measures
// the kernels' arithmetic, the bound at these sizes; best of 400 calls.
//
// Build and run from the repository root (LEVEL: 4 AVX-512 BF16 … 1 AVX2, 0 portable):
//
//     K=Sources/CCollieKernels; clang -O2 -I$K/include scripts/bench/bench_qgemv_f32.c $K/quantized.c $K/level.c \
//         $K/gemv.c -lm -o /tmp/bench_qgemv_f32 && /tmp/bench_qgemv_f32 LEVEL
#include "collie_quantized.h"
#include "collie_gemv.h"
#include "collie_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define BEST(expr, reps) ({ double best = 1e9; for (int _r = 0; _r < (reps); _r++) { double _t = now(); expr; _t = now() - _t; if (_t < best) best = _t; } best; })
static const int formats[] = {2, 3, 6, 7, 8, 12, 13, 14};
static const char *names[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"};

static void fill(uint8_t *p, size_t n, int format) {
    for (size_t i = 0; i < n; i++) p[i] = rand();
    size_t bb = collie_block_bytes(format), nb = n / bb;
    _Float16 s = 0.01f;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *q = p + b * bb;
        if (format == 14) memcpy(q + 208, &s, 2);
        else { memcpy(q, &s, 2); if (format == 3 || format == 7 || format >= 12) memcpy(q + 2, &s, 2); }
    }
}

int main(int argc, char **argv) {
    int level = argc > 1 ? atoi(argv[1]) : 4;
    collie_kernel_limit_level(level);
    printf("level %d\n", collie_kernel_level());
    size_t shapes[2][2] = {{576, 1536}, {1536, 576}};  // out, in
    float *x = malloc(16 * 4096 * 4), *y = malloc(16 * 4096 * 4), *deq = malloc(4096 * 4096 * 4);
    for (int i = 0; i < 16 * 4096; i++) x[i] = (float)(rand() % 1000) / 1000 - 0.5f;
    for (int s = 0; s < 2; s++) {
        size_t out = shapes[s][0], in = shapes[s][1];
        printf("== %zux%zu (out x in)\n", out, in);
        for (int f = 0; f < 8; f++) {
            int format = formats[f];
            if (in % collie_block_elements(format)) continue;
            size_t bytes = out * collie_block_row_bytes(format, in);
            uint8_t *w = malloc(bytes);
            fill(w, bytes, format);
            int reps = 400;
            double td = BEST(collie_dequantize_rows(format, w, deq, out, in), reps);
            double tq[2];
            size_t rowsv[2] = {1, 8};
            for (int k = 0; k < 2; k++) {
                collie_qgemv_f32(format, w, x, y, in, out, rowsv[k], 0, out);
                tq[k] = BEST(collie_qgemv_f32(format, w, x, y, in, out, rowsv[k], 0, out), reps);
            }
            printf("%-5s dequant %7.0f MB/s out (%6.0f MB/s in) | qgemv_f32 rows1 %6.2f GB/s %7.1f us | rows8 %6.2f GB/s %7.1f us\n",
                   names[f], out * in * 4 / td / 1e6, bytes / td / 1e6, bytes / tq[0] / 1e9, tq[0] * 1e6,
                   bytes / tq[1] / 1e9, tq[1] * 1e6);
            free(w);
        }
        // dense
        uint16_t *wb = malloc(out * in * 2);
        float *wf = malloc(out * in * 4);
        for (size_t i = 0; i < out * in; i++) { wf[i] = (float)(rand() % 1000) / 1000; memcpy(wb + i, (char *)(wf + i) + 2, 2); }
        size_t rowsv[2] = {1, 8};
        for (int k = 0; k < 2; k++) {
            int reps = 400;
            collie_gemv_bf16(wb, x, y, in, out, rowsv[k], 0, out);
            double tb = BEST(collie_gemv_bf16(wb, x, y, in, out, rowsv[k], 0, out), reps);
            double tf = BEST(collie_gemv_f32(wf, x, y, in, out, rowsv[k], 0, out), reps);
            printf("dense rows%zu: bf16 %6.2f GB/s %7.1f us | f32 %6.2f GB/s %7.1f us\n", rowsv[k],
                   out * in * 2 / tb / 1e9, tb * 1e6, out * in * 4 / tf / 1e9, tf * 1e6);
        }
        free(wb); free(wf);
    }
    return 0;
}
