// Single-thread speed of the decoding kernels on quantized blocks, against llama.cpp's own dot products (not a test;
// docs/PERFORMANCE.md quotes it). GB/s of weight bytes, the weights streamed from ~256 MB of copies of one matrix so
// they come from DRAM as in decoding; per matrix, rounds alternate between collie_qgemv_q8 at levels 3 (VNNI), 2, 1,
// collie_qgemv_f32 at the top level, ggml_vec_dot_<w>_<q8> from libggml-cpu.so (one call per weight row and input
// row: what ggml's mul_mat runs per row at batch 1), and the portable copy once; the best of 5 rounds is printed.
//
// Build and run from the repository root (LLAMA: a llama.cpp build folder with libggml-base.so and libggml-cpu.so):
//
//     K=Sources/CCollieKernels; clang -O2 -I$K/include scripts/bench/bench_qgemv_q8.c $K/quantized_q8.c \
//         $K/quantized.c $K/level.c $K/quantize.c -lm -ldl -o /tmp/bench_qgemv_q8
//     LLAMA=/work/cache/llama/build/bin /tmp/bench_qgemv_q8 [q4_0,q8_0,...]
#include "collie_quantized.h"
#include "collie_kernels.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef void (*vec_dot_t)(int, float *, size_t, const void *, size_t, const void *, size_t, int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    const char *llama = getenv("LLAMA") ? getenv("LLAMA") : "/work/cache/llama/build/bin";
    char path[4096];
    snprintf(path, sizeof path, "%s/libggml-base.so", llama);
    void *base = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    snprintf(path, sizeof path, "%s/libggml-cpu.so", llama);
    void *cpu = dlopen(path, RTLD_NOW);
    if (!base || !cpu) { printf("dlopen: %s\n", dlerror()); return 1; }
    ((void (*)(void))dlsym(cpu, "ggml_cpu_init"))();
    int formats[] = {2, 3, 6, 7, 8, 12, 13, 14};
    const char *names[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k"};
    const char *dots[] = {"ggml_vec_dot_q4_0_q8_0", "ggml_vec_dot_q4_1_q8_1", "ggml_vec_dot_q5_0_q8_0", "ggml_vec_dot_q5_1_q8_1",
                          "ggml_vec_dot_q8_0_q8_0", "ggml_vec_dot_q4_K_q8_K", "ggml_vec_dot_q5_K_q8_K", "ggml_vec_dot_q6_K_q8_K"};
    size_t shapes[2][2] = {{576, 1536}, {1536, 576}};  // in, out
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int s = 0; s < 2; s++) for (int fi = 0; fi < 8; fi++) {
        int f = formats[fi]; size_t in = shapes[s][0], out = shapes[s][1];
        if (only && !strstr(only, names[fi])) continue;
        if (in % collie_block_elements(f)) continue;
        vec_dot_t dot = (vec_dot_t)dlsym(cpu, dots[fi]);
        size_t rowb = collie_block_row_bytes(f, in), mb = rowb * out, copies = (256u << 20) / mb + 1;
        uint8_t *w = malloc(copies * mb);
        float *src = malloc(in * out * sizeof(float));
        for (size_t i = 0; i < in * out; i++) src[i] = (float)((i * 2654435761u) % 1000) / 500.f - 1;
        if (f == 13 || f == 14) { for (size_t i = 0; i < mb; i++) w[i] = (uint8_t)(i * 2654435761u >> 13);
            for (size_t b = 0; b < mb / collie_block_bytes(f); b++) { uint16_t h = 0x2000; memcpy(w + b * collie_block_bytes(f) + (f == 14 ? 208 : 0), &h, 2); } }
        else collie_quantize_rows(f, src, w, out, in);
        for (size_t c = 1; c < copies; c++) memcpy(w + c * mb, w, mb);
        static float x[16 * 1536], y[16 * 1536]; static uint8_t xq[16 * 1536 * 2];
        for (size_t i = 0; i < 16 * in; i++) x[i] = src[i];
        size_t xrow = collie_activation_row_bytes(f, in);
        for (int rows = 1; rows <= 8; rows += 7) {
            collie_quantize_activations(f, x, xq, in, rows);
            double best[6] = {0};
            const char *label[6] = {"q8 L3", "q8 L2", "q8 L1", "f32 top", "ggml", "q8 L0"};
            for (int rep = 0; rep < 5; rep++)
                for (int cand = 0; cand < 6; cand++) {
                    if (cand == 5 && rep > 0) continue;
                    collie_kernel_limit_level(cand < 3 ? 3 - cand : cand == 5 ? 0 : 9);
                    double t0 = now();
                    for (size_t c = 0; c < copies; c++) {
                        const uint8_t *wc = w + c * mb;
                        if (cand < 3 || cand == 5) collie_qgemv_q8(f, wc, xq, y, in, out, rows, 0, out);
                        else if (cand == 3) collie_qgemv_f32(f, wc, x, y, in, out, rows, 0, out);
                        else for (size_t o = 0; o < out; o++) for (int r = 0; r < rows; r++)
                            dot((int)in, y + r * out + o, 0, wc + o * rowb, 0, xq + r * xrow, 0, 1);
                    }
                    double gbs = copies * mb / (now() - t0) / 1e9;
                    if (gbs > best[cand]) best[cand] = gbs;
                }
            collie_kernel_limit_level(9);
            printf("%-5s out %4zu in %4zu rows %d:", names[fi], out, in, rows);
            for (int cand = 0; cand < 6; cand++) printf("  %s %5.2f", label[cand], best[cand]);
            printf("  GB/s\n");
            fflush(stdout);
        }
        free(w); free(src);
    }
}
