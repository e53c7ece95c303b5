// Single-thread speed of collie_qgemv_q8 on Q8_0 at SmolLM2-135M's shapes (out × in: 576 × 576, 192 × 576,
// 1536 × 576, 576 × 1536, the 49152 × 576 head) and 1, 2, 4, 8, 16 input rows: this tree's kernel ("new q8": the wide
// kernel of quantized_q8_wide.h from 2 rows at level 3+), the one before it ("old q8": quantized_q8.c of 7068866,
// linked under other names) and collie_qgemv_bf16 ("bf16"), each with its activation conversion, alternated within
// each round; GB/s of weight bytes streamed from ~256 MB of copies (CACHE=1: one copy, cache-resident), median and
// best of the rounds. `check` first compares collie_qgemv_q8 at levels 1–4 with the portable copy (level 0) for
// inputs of 1…48 blocks, 1–16 rows and an output range (the tests do this against exact integer sums).
//
//     K=Sources/CCollieKernels; mkdir -p /tmp/q8old && git show 7068866:$K/quantized_q8.c > /tmp/q8old/quantized_q8.c
//     clang -O2 -c -I$K/include -I$K /tmp/q8old/quantized_q8.c -Dcollie_qgemv_q8=old_qgemv_q8 \
//         -Dcollie_quantize_activations=old_quantize_activations -Dcollie_activation_row_bytes=old_activation_row_bytes \
//         -o /tmp/q8old/old.o
//     clang -O2 -I$K/include scripts/bench/bench_qgemv_q8_wide.c /tmp/q8old/old.o $K/quantized_bf16.c $K/quantized_q8.c \
//         $K/quantized.c $K/quantize.c $K/level.c -lm -o /tmp/bench_qgemv_q8_wide
//     /tmp/bench_qgemv_q8_wide [check|time|both] [ggml type, default 8 = Q8_0] [rounds, default 5]
#include "collie_quantized.h"
#include "collie_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
void old_qgemv_q8(int, const void *, const void *, float *, size_t, size_t, size_t, size_t, size_t);
void old_quantize_activations(int, const float *, void *, size_t, size_t);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static unsigned long long rng = 88172645463325252ull;
static float frand(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }
int main(int argc, char **argv) {
    int fmt = argc > 2 ? atoi(argv[2]) : 8;
    const char *mode = argc > 1 ? argv[1] : "both";
    if (strcmp(mode, "time")) {  // correctness
        int bad = 0;
        size_t ins[] = {32, 64, 96, 256, 288, 512, 544, 576, 608, 1536};
        for (int ii = 0; ii < 10; ii++) {
            size_t in = ins[ii], out = 13;
            float *src = malloc(in * out * 4), *x = malloc(16 * in * 4);
            for (size_t i = 0; i < in * out; i++) src[i] = frand();
            for (size_t i = 0; i < 16 * in; i++) x[i] = frand() * (i % 7 == 0 ? 10 : 1);
            uint8_t *w = malloc(collie_block_row_bytes(fmt, in) * out), *xq = malloc(16 * collie_activation_row_bytes(fmt, in));
            collie_quantize_rows(fmt, src, w, out, in);
            collie_quantize_activations(fmt, x, xq, in, 16);
            for (size_t rows = 1; rows <= 16; rows++) {
                float ref[16 * 13], got[16 * 13];
                collie_kernel_limit_level(0);
                collie_qgemv_q8(fmt, w, xq, ref, in, out, rows, 0, out);
                for (int lv = 1; lv <= 4; lv++) {
                    collie_kernel_limit_level(lv);
                    for (int rg = 0; rg < 2; rg++) {
                        size_t b = rg ? 3 : 0, e = rg ? 8 : out;
                        for (size_t i = 0; i < rows * out; i++) got[i] = NAN;
                        collie_qgemv_q8(fmt, w, xq, got, in, out, rows, b, e);
                        for (size_t r = 0; r < rows; r++) {
                            float m = 0; for (size_t o = 0; o < out; o++) m = fmaxf(m, fabsf(ref[r * out + o]));
                            for (size_t o = 0; o < out; o++) {
                                float g = got[r * out + o];
                                int inr = o >= b && o < e;
                                if (inr ? !(fabsf(g - ref[r * out + o]) <= 1e-6f * m) : !isnan(g)) {
                                    if (bad++ < 10) printf("BAD in %zu rows %zu lv %d r %zu o %zu: %g vs %g\n", in, rows, lv, r, o, g, ref[r * out + o]);
                                }
                            }
                        }
                    }
                }
            }
            free(src); free(x); free(w); free(xq);
        }
        printf("check: %d bad\n", bad);
        collie_kernel_limit_level(9);
        if (!strcmp(mode, "check")) return bad != 0;
    }
    size_t shapes[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}, {576, 49152}};  // in, out
    int rowsv[] = {1, 2, 4, 8, 16};
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    printf("GB/s of weight bytes, single thread, median of %d alternated rounds (best in brackets)\n", rounds);
    for (int s = 0; s < 5; s++) {
        size_t in = shapes[s][0], out = shapes[s][1];
        size_t mb = collie_block_row_bytes(fmt, in) * out, copies = getenv("CACHE") ? 1 : (256u << 20) / mb + 1;
        uint8_t *w = malloc(copies * mb);
        float *src = malloc(in * out * 4);
        for (size_t i = 0; i < in * out; i++) src[i] = frand();
        collie_quantize_rows(fmt, src, w, out, in);
        for (size_t c = 1; c < copies; c++) memcpy(w + c * mb, w, mb);
        float *x = malloc(16 * in * 4), *y = malloc(16 * out * 4);
        for (size_t i = 0; i < 16 * in; i++) x[i] = frand();
        uint8_t *xq = malloc(16 * collie_activation_row_bytes(fmt, in));
        uint16_t *xb = malloc(16 * in * 2);
        for (int ri = 0; ri < 5; ri++) {
            size_t rows = rowsv[ri];
            double t[3][32];
            size_t calls = (512u << 20) / mb; if (calls < 8) calls = 8; if (calls > 4000) calls = 4000;
            for (int rep = 0; rep < rounds; rep++)
                for (int c = 0; c < 3; c++) {
                    double t0 = now();
                    for (size_t k = 0; k < calls; k++) {
                        const uint8_t *wc = w + (k % copies) * mb;
                        if (c == 0) { old_quantize_activations(fmt, x, xq, in, rows); old_qgemv_q8(fmt, wc, xq, y, in, out, rows, 0, out); }
                        else if (c == 1) { collie_quantize_activations(fmt, x, xq, in, rows); collie_qgemv_q8(fmt, wc, xq, y, in, out, rows, 0, out); }
                        else { collie_activations_to_bf16(x, xb, rows * in); collie_qgemv_bf16(fmt, wc, xb, y, in, out, rows, 0, out); }
                    }
                    t[c][rep] = mb * calls / (now() - t0) / 1e9;
                }
            printf("%5zux%-5zu rows %2zu:", out, in, rows);
            const char *lab[3] = {"old q8", "new q8", "bf16"};
            for (int c = 0; c < 3; c++) {
                double v[32]; memcpy(v, t[c], sizeof v);
                for (int i = 0; i < rounds; i++) for (int j = i + 1; j < rounds; j++) if (v[j] < v[i]) { double z = v[i]; v[i] = v[j]; v[j] = z; }
                printf("  %s %6.2f [%6.2f]", lab[c], v[rounds / 2], v[rounds - 1]);
            }
            printf("\n");
            fflush(stdout);
        }
        free(w); free(src); free(x); free(y); free(xq); free(xb);
    }
}
