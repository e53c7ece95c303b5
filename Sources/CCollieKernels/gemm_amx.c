// The bfloat16 GEMM microkernel for AMX (level 5: AMX-TILE + AMX-BF16, Intel Sapphire Rapids and later): a 32 × 32
// tile of C in four 16 × 16 float32 tile registers. Each step of 32 k's loads A's two 16-row halves (a tile row: one
// row's 32 consecutive k's, the "AMX A rows" layout of gemm_pack.h) and B's two 16-column halves (a tile row: one k
// pair of 16 columns, the pair layout every bf16 kernel packs B in, read with a 128-byte stride), and tdpbf16ps adds
// the 16 × 16 × 32 products of each A half with each B half to a C quarter: as vdpbf16ps, bfloat16 pairs multiplied
// exactly and summed in float32.
//
// The same microkernel source runs on the hardware or — for machines without AMX, where the tests exercise the tile
// program through collie_gemm_emulate_amx — on tile registers emulated in C, with the instructions' definitions from
// Intel's reference (inputs' denormals read as zeros, sums' denormals flushed, each product added in k order). The
// packing is the AVX-512 code of gemm_bf16.c in both. Level detection (level.c) allows level 5 only after the
// process got the tile state from the kernel (arch_prctl) and collie_gemm_amx_check passed on the hardware.
#include "collie_gemm.h"
#include "amx_tiles.h"
#include "gemm_pack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define TARGET_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define MR 32
#define NR 32
#define GRANULE 32   // k's per tile step: packed K is padded to a multiple of it

// MARK: - Emulated tiles

/// The eight tile registers and their configuration, per thread (as the hardware's).
static _Thread_local struct {
    collie_tile_config config;
    int configured;
    uint8_t data[8][16][64];
} emulated;

static void emulated_load_config(const collie_tile_config *config) {
    if (config->palette != 1) abort();
    emulated.config = *config;
    emulated.configured = 1;
    memset(emulated.data, 0, sizeof emulated.data);
}

/// The rows and bytes per row of tile t; using a tile the configuration leaves empty is #UD on the hardware.
static void emulated_shape(int t, size_t *rows, size_t *bytes) {
    *rows = emulated.config.rows[t];
    *bytes = emulated.config.colsb[t];
    if (!emulated.configured || *rows == 0 || *rows > 16 || *bytes == 0 || *bytes > 64) abort();
}

static void emulated_zero(int t) { memset(emulated.data[t], 0, sizeof emulated.data[t]); }

/// tileloadd: row r from base + r·stride; bytes past the configured ones are zeroed.
static void emulated_load(int t, const void *base, size_t stride) {
    size_t rows, bytes;
    emulated_shape(t, &rows, &bytes);
    emulated_zero(t);
    for (size_t r = 0; r < rows; r++) memcpy(emulated.data[t][r], (const char *)base + r * stride, bytes);
}

static void emulated_store(int t, void *base, size_t stride) {
    size_t rows, bytes;
    emulated_shape(t, &rows, &bytes);
    for (size_t r = 0; r < rows; r++) memcpy((char *)base + r * stride, emulated.data[t][r], bytes);
}

/// A bfloat16 input as tdpbf16ps reads it: denormals as zeros.
static float emulated_input(const uint8_t *row, size_t index) {
    uint16_t bits;
    memcpy(&bits, row + 2 * index, sizeof bits);
    if ((bits & 0x7F80) == 0) bits &= 0x8000;
    return collie_bf16_value(bits);
}

/// A float32 sum as tdpbf16ps writes it: denormals flushed to (signed) zero.
static float flushed(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0, x) : x; }

/// tdpbf16ps c, a, b: c[m][n] += a[m][2k]·b[k][2n], then += a[m][2k+1]·b[k][2n+1], for k in order. The shapes must
/// agree (a's k pairs = b's rows, b's and c's row bytes, a's and c's rows), else #UD.
static void emulated_dot(int c, int a, int b) {
    size_t c_rows, c_bytes, a_rows, a_bytes, b_rows, b_bytes;
    emulated_shape(c, &c_rows, &c_bytes);
    emulated_shape(a, &a_rows, &a_bytes);
    emulated_shape(b, &b_rows, &b_bytes);
    if (a_rows != c_rows || a_bytes / 4 != b_rows || b_bytes != c_bytes || c_bytes % 4 || a_bytes % 4) abort();
    for (size_t m = 0; m < c_rows; m++)
        for (size_t k = 0; k < a_bytes / 4; k++)
            for (size_t n = 0; n < c_bytes / 4; n++) {
                float sum;
                memcpy(&sum, emulated.data[c][m] + 4 * n, sizeof sum);
                const uint8_t *row_a = emulated.data[a][m], *row_b = emulated.data[b][k];
                sum = flushed(sum + emulated_input(row_a, 2 * k) * emulated_input(row_b, 2 * n));
                sum = flushed(sum + emulated_input(row_a, 2 * k + 1) * emulated_input(row_b, 2 * n + 1));
                memcpy(emulated.data[c][m] + 4 * n, &sum, sizeof sum);
            }
}

// MARK: - Microkernel

static _Thread_local int hardware_configured;

// Each tile operation on the hardware (tile numbers are immediates) or on the emulated tiles; E is a constant.
#define TILE_ZERO(E, t) ((E) ? emulated_zero(t) : _tile_zero(t))
#define TILE_LOAD(E, t, base, stride) ((E) ? emulated_load(t, base, stride) : _tile_loadd(t, base, stride))
#define TILE_STORE(E, t, base, stride) ((E) ? emulated_store(t, base, stride) : _tile_stored(t, base, stride))
#define TILE_DOT(E, c, a, b) ((E) ? emulated_dot(c, a, b) : _tile_dpbf16ps(c, a, b))

GEMM_INLINE TARGET_AMX void configure(int E) {
    if (E ? emulated.configured : hardware_configured) return;
    const collie_tile_config config = collie_amx_tile_config();
    if (E) emulated_load_config(&config);
    else {
        _tile_loadconfig(&config);
        hardware_configured = 1;
    }
}

GEMM_INLINE TARGET_AMX void micro_amx_body(int E, size_t kc, const void *ap, const void *bp, float *c, size_t ldc,
                                           float alpha, float beta) {
    configure(E);
    const uint16_t *a = ap, *b = bp;
    const size_t stride = ldc * sizeof(float);
    const int in_place = alpha == 1 && (beta == 0 || beta == 1);   // C's tiles go to and from C as they are
    if (in_place && beta == 1) {   // adding to C (every K block after the first): the sums start from C's values
        TILE_LOAD(E, 0, c, stride);
        TILE_LOAD(E, 1, c + 16, stride);
        TILE_LOAD(E, 2, c + 16 * ldc, stride);
        TILE_LOAD(E, 3, c + 16 * ldc + 16, stride);
    } else {
        TILE_ZERO(E, 0);
        TILE_ZERO(E, 1);
        TILE_ZERO(E, 2);
        TILE_ZERO(E, 3);
    }
    for (size_t k = 0; k < kc; k += GRANULE, a += GRANULE * MR, b += GRANULE * NR) {
        TILE_LOAD(E, 4, a, 64);              // rows 0 ..< 16: 32 k's each
        TILE_LOAD(E, 5, a + 16 * 32, 64);    // rows 16 ..< 32
        TILE_LOAD(E, 6, b, 4 * NR);          // columns 0 ..< 16: 16 k pairs
        TILE_LOAD(E, 7, b + 32, 4 * NR);     // columns 16 ..< 32
        TILE_DOT(E, 0, 4, 6);
        TILE_DOT(E, 1, 4, 7);
        TILE_DOT(E, 2, 5, 6);
        TILE_DOT(E, 3, 5, 7);
    }
    if (in_place) {
        TILE_STORE(E, 0, c, stride);
        TILE_STORE(E, 1, c + 16, stride);
        TILE_STORE(E, 2, c + 16 * ldc, stride);
        TILE_STORE(E, 3, c + 16 * ldc + 16, stride);
        return;
    }
    float tile[MR * NR] __attribute__((aligned(64)));
    TILE_STORE(E, 0, tile, NR * sizeof(float));
    TILE_STORE(E, 1, tile + 16, NR * sizeof(float));
    TILE_STORE(E, 2, tile + 16 * NR, NR * sizeof(float));
    TILE_STORE(E, 3, tile + 16 * NR + 16, NR * sizeof(float));
    for (size_t i = 0; i < MR; i++)
        for (size_t j = 0; j < NR; j++) {
            float *cij = c + i * ldc + j;
            const float product = alpha * tile[i * NR + j];
            *cij = beta == 0 ? product : __builtin_fmaf(beta, *cij, product);
        }
}

TARGET_AMX static void micro_amx(size_t kc, const void *a, const void *b, float *c, size_t ldc, float alpha,
                                 float beta) {
    micro_amx_body(0, kc, a, b, c, ldc, alpha, beta);
}

TARGET_AMX static void micro_amx_emulated(size_t kc, const void *a, const void *b, float *c, size_t ldc, float alpha,
                                          float beta) {
    micro_amx_body(1, kc, a, b, c, ldc, alpha, beta);
}

// MARK: - Packing

/// kc k's padded to whole tile steps.
static size_t padded_depth(size_t kc) { return (kc + GRANULE - 1) / GRANULE * GRANULE; }

static void pack_a(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows, size_t k0, size_t kc,
                   size_t width, void *dst) {
    collie_gemm_pack_amx_rows(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, padded_depth(kc), dst);
}

static void pack_b(const float *src, size_t ld, int k_contiguous, size_t r0, size_t rows, size_t k0, size_t kc,
                   size_t width, void *dst) {
    collie_gemm_pack_pairs_deep(src, 0, ld, k_contiguous, r0, rows, k0, kc, width, padded_depth(kc), dst);
}

static void pack_b_bf16(const uint16_t *src, size_t ld, int k_contiguous, size_t r0, size_t rows, size_t k0,
                        size_t kc, size_t width, void *dst) {
    collie_gemm_pack_pairs_deep(src, 1, ld, k_contiguous, r0, rows, k0, kc, width, padded_depth(kc), dst);
}

collie_gemm_kernel collie_gemm_kernel_amx(int emulated) {
    // Blocks chosen, not measured (no AMX CPU has run them): K block 2048 as the pair kernel's, A block 192 × 2048
    // bfloat16 = 768 KB within Sapphire Rapids' 2 MB L2.
    return (collie_gemm_kernel){MR, NR, 1, GRANULE, 32 * 6, 2048, 2048, emulated ? micro_amx_emulated : micro_amx,
                                pack_a, pack_b, pack_b_bf16, NULL};
}

// MARK: - Check

/// n values in [-1, 1) from a linear congruential sequence.
static float *check_values(size_t n, uint32_t *state) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; x && i < n; i++) x[i] = (float)((*state = *state * 1664525u + 1013904223u) >> 9) * 0x1p-23f - 1;
    return x;
}

int collie_gemm_amx_check(int emulated) {
    enum { M = MR, N = NR, K = 70, KP = 96 };   // K ends inside the third tile step: the zero padding is used
    uint32_t state = 12345;
    float *a = check_values(M * K, &state), *b = check_values(K * N, &state);
    const collie_gemm_kernel kn = collie_gemm_kernel_amx(emulated);
    uint16_t *pa = aligned_alloc(64, M * KP * 2), *pb = aligned_alloc(64, N * KP * 2);
    float *c = aligned_alloc(64, M * N * sizeof(float) * 3);
    int passed = a && b && pa && pb && c;
    if (passed) {
        kn.pack_a(a, K, 1, 0, M, 0, K, MR, pa);    // A row-major M × K
        kn.pack_b(b, N, 0, 0, N, 0, K, NR, pb);    // B row-major K × N: k-strided
        for (size_t i = 0; i < M * N; i++) c[i] = c[M * N + i] = c[2 * M * N + i] = 0.25f * (float)(i % 7);
        kn.micro(KP, pa, pb, c, N, 1, 0);                      // tiles stored straight into C
        kn.micro(KP, pa, pb, c + M * N, N, -0.5f, 2);          // through the scratch tile, with alpha and beta
        kn.micro(KP, pa, pb, c + 2 * M * N, N, 1, 1);          // tiles loaded from C, added to, stored back
        for (size_t i = 0; i < M && passed; i++)
            for (size_t j = 0; j < N; j++) {
                double sum = 0, magnitude = 0;
                for (size_t k = 0; k < K; k++) {
                    const double product = (double)collie_bf16_value(collie_bf16_bits(a[i * K + k])) *
                                           (double)collie_bf16_value(collie_bf16_bits(b[k * N + j]));
                    sum += product;
                    magnitude += fabs(product);
                }
                const double old = 0.25 * (double)((i * N + j) % 7), bound = 1e-5 * (magnitude + 2 * old) + 1e-30;
                if (fabs((double)c[i * N + j] - sum) > bound ||
                    fabs((double)c[M * N + i * N + j] - (-0.5 * sum + 2 * old)) > bound ||
                    fabs((double)c[2 * M * N + i * N + j] - (sum + old)) > bound) {
                    passed = 0;
                    break;
                }
            }
    }
    free(a);
    free(b);
    free(pa);
    free(pb);
    free(c);
    return passed;
}

#else

int collie_gemm_amx_check(int emulated) {
    (void)emulated;
    return 0;
}

#endif
