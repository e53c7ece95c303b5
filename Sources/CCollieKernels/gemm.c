// The GEMM driver: cache blocking, packing, edges, threads and the choice of microkernel (collie_gemm.h).
//
// Loops, Goto/BLIS order, for the rows [m0, m1) and columns [n0, n1) of C one task owns:
//
//     for jc in columns, step NC:              B block (kc × nc) packed once per (jc, pc), read from L3
//       for pc in 0 ..< K, step KC:            partial products over KC k's add into C (beta for the first only)
//         for ic in rows, step MC:             A block (mc × kc) packed, read from L2
//           for jr, step NR: for ir, step MR:  microkernel: B micro-panel (kc × NR) stays in L1 across ir
//
// Tiles on C's bottom edge run the level's microkernel for their own rows (micro_rows; the full one where a level has
// none), in place; tiles on its right edge run into a scratch tile and copy their valid columns. Threads
// split C into `threads` slabs of whole micro-tiles along its longer side, each slab one pool task that packs its own
// blocks of the operand it owns a slab of (no synchronization inside a product). For the bf16 pair kernel, the operand
// every task reads whole (B when C is split by rows, A when by columns) is packed once beforehand, its panels split
// over the threads, into a shared buffer — not once per task, nor again for every NC columns (the vocabulary-wide
// output projection) — when it fits SHARED_LIMIT and no other product holds the buffer: on a Zen 5 that made the small
// preset's bf16 step 1.5% faster and its float32 step (products at half the rate, operands twice the size) 1% slower,
// so float32 keeps packing per task. Packing buffers are allocated on first use and kept: first touches of fresh
// memory are slow on these machines.
#include "collie_gemm.h"
#include "collie_kernels.h"
#include "collie_pool.h"
#include "gemm_pack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// MARK: - Portable microkernel (level 0)

#define PORTABLE_MR 4
#define PORTABLE_NR 16

static void micro_portable(size_t kc, const void *ap, const void *bp, float *c, size_t ldc, float alpha, float beta) {
    const float *a = ap, *b = bp;
    float acc[PORTABLE_MR][PORTABLE_NR] = {{0}};
    for (size_t k = 0; k < kc; k++, a += PORTABLE_MR, b += PORTABLE_NR)
        for (int i = 0; i < PORTABLE_MR; i++)
            for (int j = 0; j < PORTABLE_NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < PORTABLE_MR; i++)
        for (int j = 0; j < PORTABLE_NR; j++)
            c[i * ldc + j] = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

GEMM_PACKERS_F32(pack_portable, , gemm_pack_f32_body)

collie_gemm_kernel collie_gemm_kernel_portable(int rounded) {
    const collie_gemm_pack pack = rounded ? pack_portable_f32_rounded : pack_portable_f32;
    return (collie_gemm_kernel){PORTABLE_MR, PORTABLE_NR, 0, 1, 128, 256, 2048, micro_portable, pack, pack,
                                pack_portable_f32_from_bf16, NULL};
}

// MARK: - Choice

static int amx_emulated;   // collie_gemm_emulate_amx

static atomic_int pairs_mode = -1;   // collie_gemm_set_bf16_pairs: -1 automatic, 0 off, 1 on
static int pairs_measured;           // the automatic choice, made once
static pthread_once_t pairs_once = PTHREAD_ONCE_INIT;

/// COLLIE_BF16_GEMM=pairs|float32 where set, else whether the pair dot product outpaces three quarters of the float32
/// FMA here (measured: about 2× on Zen 4/5, 0.5× on an Emerald Rapids without AMX — far from the threshold both ways,
/// so the choice, and with it a run's rounding, is the same in every process on one machine).
static void choose_pairs(void) {
    const char *value = getenv("COLLIE_BF16_GEMM");
    if (value && strcmp(value, "pairs") == 0) pairs_measured = 1;
    else if (value && strcmp(value, "float32") == 0) pairs_measured = 0;
    else pairs_measured = collie_peak_bf16_per_fp32() >= 0.75;
}

/// Whether bf16 products at level 4 run the AVX512_BF16 pair kernel (else the float32 one on rounded operands).
static int pairs_chosen(void) {
    const int mode = atomic_load_explicit(&pairs_mode, memory_order_relaxed);
    if (mode >= 0) return mode;
    pthread_once(&pairs_once, choose_pairs);
    return pairs_measured;
}

int collie_gemm_set_bf16_pairs(int mode) {
    atomic_store_explicit(&pairs_mode, mode < 0 ? -1 : mode > 0, memory_order_relaxed);
    return collie_bf16_pairs_in_use();
}

int collie_bf16_pairs_in_use(void) { return collie_kernel_level() >= 4 && pairs_chosen(); }

static collie_gemm_kernel kernel_for(int bf16, int *level_out) {
    int level = collie_kernel_level();
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (bf16 && (level >= 5 || (level == 4 && amx_emulated))) {
        *level_out = 5;
        return collie_gemm_kernel_amx(level < 5);
    }
    if (bf16 && level >= 4 && pairs_chosen()) { *level_out = 4; return collie_gemm_kernel_bf16(); }
    if (level >= 2) { *level_out = 2; return collie_gemm_kernel_avx512(bf16); }
    if (level >= 1) { *level_out = 1; return collie_gemm_kernel_avx2(bf16); }
#endif
    *level_out = 0;
    return collie_gemm_kernel_portable(bf16);
}

int collie_gemm_emulate_amx(int on) {
    amx_emulated = on != 0;
    int level;
    (void)kernel_for(1, &level);
    return level == 5;
}

int collie_gemm_kernel_level(int bf16) {
    int level;
    (void)kernel_for(bf16, &level);
    return level;
}

int collie_gemm_prefers_own_f32(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__)) && defined(__OPTIMIZE__)
    static int lowest = -1;   // the lowest level it measured faster at on this vendor's CPUs; above every level elsewhere
    if (lowest < 0) {
        __builtin_cpu_init();
        lowest = __builtin_cpu_is("amd") ? 1 : __builtin_cpu_is("intel") ? 2 : COLLIE_KERNEL_LEVEL_MAX + 1;
    }
    return collie_kernel_level() >= lowest;
#else
    return 0;
#endif
}

// MARK: - Buffers

/// This thread's packing buffer of at least `bytes`, 64-byte aligned; kept for the thread's life.
static void *thread_buffer(size_t bytes, int which) {
    static _Thread_local void *buffers[2];
    static _Thread_local size_t sizes[2];
    if (sizes[which] < bytes) {
        free(buffers[which]);
        size_t rounded = (bytes + 4095) & ~(size_t)4095;
        buffers[which] = aligned_alloc(64, rounded);
        sizes[which] = buffers[which] ? rounded : 0;
    }
    return buffers[which];
}

// MARK: - Driver

/// C = beta·C over an m × n block (BLAS: beta = 0 writes zeros without reading C).
static void scale_block(float *c, size_t ldc, size_t m, size_t n, float beta) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
}

/// One micro-tile of C (m ≤ MR rows, n ≤ NR columns) from packed panels over `kp` k's, by the microkernel of its m rows
/// where the level has them (else the full one): in place when it computes exactly the tile's rows and its columns are
/// whole, else into `scratch` and its valid part written with alpha and beta.
static void micro_tile(const collie_gemm_kernel *kn, size_t kp, const void *a, const void *b, float *c, size_t ldc,
                       size_t m, size_t n, float alpha, float beta, float *scratch) {
    const size_t nr = (size_t)kn->nr;
    const collie_gemm_micro micro = kn->micro_rows ? kn->micro_rows[m] : kn->micro;
    if (n == nr && (kn->micro_rows || m == (size_t)kn->mr)) {
        micro(kp, a, b, c, ldc, alpha, beta);
        return;
    }
    micro(kp, a, b, scratch, nr, 1, 0);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float *cij = c + i * ldc + j;
            const float v = alpha * scratch[i * nr + j];
            *cij = beta == 0 ? v : v + beta * *cij;
        }
}

typedef struct {
    collie_gemm_kernel kernel;
    int trans_a, trans_b;
    size_t M, N, K;
    float alpha, beta;
    const float *A;
    const void *B;        // float32, or bfloat16 bits when b_bf16
    int b_bf16;
    size_t lda, ldb;
    float *C;
    size_t ldc;
    size_t slab;      // rows (split_m) or columns per task, a multiple of MR or NR
    int split_m;
    const char *shared;   // the operand every task reads (B when split_m, else A), packed whole, or NULL
    size_t shared_rows;   // its rows rounded up to whole micro-panels
} gemm_job;

static void gemm_block(const gemm_job *job, size_t m0, size_t m1, size_t n0, size_t n1) {
    const collie_gemm_kernel *kn = &job->kernel;
    const size_t mr = (size_t)kn->mr, nr = (size_t)kn->nr, element = gemm_element_size(kn);
    const size_t KC = kn->kc, MC = kn->mc, NC = kn->nc, granule = (size_t)kn->granule;
    const size_t nc_max = n1 - n0 < NC ? (n1 - n0 + nr - 1) / nr * nr : NC;
    const size_t mc_max = m1 - m0 < MC ? (m1 - m0 + mr - 1) / mr * mr : MC;
    const size_t kc_max = (job->K < KC ? job->K : KC) + granule - 1;
    char *bpack = thread_buffer(kc_max * nc_max * element, 0);
    char *apack = thread_buffer(kc_max * mc_max * element, 1);
    if (!bpack || !apack) abort();
    float scratch[32 * 32] __attribute__((aligned(64)));

    for (size_t jc = n0; jc < n1; jc += NC) {
        const size_t nc = n1 - jc < NC ? n1 - jc : NC;
        for (size_t pc = 0; pc < job->K; pc += KC) {
            const size_t kc = job->K - pc < KC ? job->K - pc : KC;
            const size_t kp = gemm_padded_depth(kn, kc);
            const float beta = pc == 0 ? job->beta : 1;
            // A block of an operand packed whole: chunk pc's panels, from the block's first row on.
            const char *b_block = bpack, *a_block = apack;
            if (job->shared && job->split_m)
                b_block = job->shared + (job->shared_rows * pc + jc * kp) * element;
            else if (job->b_bf16)
                kn->pack_b_bf16(job->B, job->ldb, job->trans_b, jc, nc, pc, kc, nr, bpack);
            else
                kn->pack_b(job->B, job->ldb, job->trans_b, jc, nc, pc, kc, nr, bpack);
            for (size_t ic = m0; ic < m1; ic += MC) {
                const size_t mc = m1 - ic < MC ? m1 - ic : MC;
                if (job->shared && !job->split_m)
                    a_block = job->shared + (job->shared_rows * pc + ic * kp) * element;
                else
                    kn->pack_a(job->A, job->lda, !job->trans_a, ic, mc, pc, kc, mr, apack);
                for (size_t jr = 0; jr < nc; jr += nr) {
                    const size_t n = nc - jr < nr ? nc - jr : nr;
                    const char *b = b_block + jr * kp * element;
                    for (size_t ir = 0; ir < mc; ir += mr) {
                        const size_t m = mc - ir < mr ? mc - ir : mr;
                        const char *a = a_block + ir * kp * element;
                        micro_tile(kn, kp, a, b, job->C + (ic + ir) * job->ldc + jc + jr, job->ldc, m, n, job->alpha,
                                   beta, scratch);
                    }
                }
            }
        }
    }
}

static void gemm_task(void *context, size_t index) {
    const gemm_job *job = context;
    const size_t begin = index * job->slab;
    if (job->split_m) {
        if (begin < job->M) gemm_block(job, begin, begin + job->slab < job->M ? begin + job->slab : job->M, 0, job->N);
    } else if (begin < job->N) {
        gemm_block(job, 0, job->M, begin, begin + job->slab < job->N ? begin + job->slab : job->N);
    }
}

// MARK: - Operands packed whole

/// A packed operand covers all of K: chunks of KC k's, chunk p's micro-panels at offset padded_rows · p·KC elements
/// (KC is a multiple of the granule, so only the last chunk is padded: gemm_padded_depth of all of K).
static size_t packed_padded_rows(const collie_gemm_kernel *kn, int side, size_t rows) {
    const size_t width = (size_t)(side ? kn->nr : kn->mr);
    return (rows + width - 1) / width * width;
}

/// Packs rows r0 ..< r0 + rows of an operand (side 0: A, its panels MR wide; 1: B, NR wide) over all of K into the
/// layout above of an operand with `padded` rows: float32 `src`, or bfloat16 bits when `src_bf16`.
static void pack_whole(const collie_gemm_kernel *kn, int side, const void *src, int src_bf16, size_t ld,
                       int k_contiguous, size_t r0, size_t rows, size_t padded, size_t K, void *dst) {
    const size_t width = (size_t)(side ? kn->nr : kn->mr), element = gemm_element_size(kn);
    for (size_t pc = 0; pc < K; pc += kn->kc) {
        const size_t kc = K - pc < kn->kc ? K - pc : kn->kc, kp = gemm_padded_depth(kn, kc);
        char *chunk = (char *)dst + (padded * pc + r0 * kp) * element;
        if (src_bf16)
            kn->pack_b_bf16(src, ld, k_contiguous, r0, rows, pc, kc, width, chunk);
        else
            (side ? kn->pack_b : kn->pack_a)(src, ld, k_contiguous, r0, rows, pc, kc, width, chunk);
    }
}

// MARK: - The operand every task reads, packed once

/// The shared operand's buffer is at most this large (the output projection's weight of a 32000-word vocabulary at
/// hidden 768 in bf16 pairs: 49 MB); larger operands are packed per task.
#define SHARED_LIMIT ((size_t)64 << 20)

static atomic_flag shared_busy = ATOMIC_FLAG_INIT;
static char *shared_buffer;
static size_t shared_capacity;

typedef struct {
    const gemm_job *job;
    size_t rows, per_task;   // the operand's rows, rows per task (whole panels)
} shared_pack;

/// Task `index` packs its rows of the shared operand: B's when C is split by rows, else A's.
static void shared_pack_task(void *context, size_t index) {
    const shared_pack *p = context;
    const gemm_job *job = p->job;
    const size_t r0 = index * p->per_task;
    if (r0 >= p->rows) return;
    const size_t rows = p->rows - r0 < p->per_task ? p->rows - r0 : p->per_task;
    if (job->split_m)
        pack_whole(&job->kernel, 1, job->B, job->b_bf16, job->ldb, job->trans_b, r0, rows, job->shared_rows, job->K,
                   (char *)job->shared);
    else
        pack_whole(&job->kernel, 0, job->A, 0, job->lda, !job->trans_a, r0, rows, job->shared_rows, job->K,
                   (char *)job->shared);
}

/// Packs the operand every task of `job` reads into the shared buffer with `threads` threads and points the job at it;
/// returns 0 (the job unchanged) when it is larger than SHARED_LIMIT, the buffer is in use or cannot grow. On 1 the
/// caller releases the buffer (release_shared) after the product.
static int pack_shared(gemm_job *job, size_t threads) {
    const collie_gemm_kernel *kn = &job->kernel;
    const int side = job->split_m;
    const size_t rows = side ? job->N : job->M, padded = packed_padded_rows(kn, side, rows);
    const size_t bytes = padded * gemm_padded_depth(kn, job->K) * gemm_element_size(kn);
    if (bytes > SHARED_LIMIT || atomic_flag_test_and_set_explicit(&shared_busy, memory_order_acquire)) return 0;
    if (shared_capacity < bytes) {
        free(shared_buffer);
        shared_buffer = aligned_alloc(64, (bytes + 4095) & ~(size_t)4095);
        shared_capacity = shared_buffer ? bytes : 0;
        if (!shared_buffer) {
            atomic_flag_clear_explicit(&shared_busy, memory_order_release);
            return 0;
        }
    }
    job->shared = shared_buffer;
    job->shared_rows = padded;
    const size_t width = (size_t)(side ? kn->nr : kn->mr), panels = padded / width;
    shared_pack p = {job, rows, (panels + threads - 1) / threads * width};
    if (!collie_pool_run(threads, threads, shared_pack_task, &p))
        for (size_t t = 0; t < threads; t++) shared_pack_task(&p, t);
    return 1;
}

static void release_shared(void) { atomic_flag_clear_explicit(&shared_busy, memory_order_release); }

/// Products below this many multiply-adds run on one thread (a pool loop costs a few µs).
#define GEMM_PARALLEL_MIN (1u << 18)

static void gemm_run(int bf16, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A,
                     size_t lda, const void *B, int b_bf16, size_t ldb, float beta, float *C, size_t ldc,
                     size_t threads) {
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0) {
        scale_block(C, ldc, M, N, beta);
        return;
    }
    int level;
    gemm_job job = {kernel_for(bf16, &level), trans_a, trans_b, M, N, K, alpha, beta, A, B, b_bf16, lda, ldb, C, ldc,
                    0, 0, NULL, 0};
    if (threads < 1 || (double)M * (double)N * (double)K < GEMM_PARALLEL_MIN) threads = 1;
    const size_t mr = (size_t)job.kernel.mr, nr = (size_t)job.kernel.nr;
    job.split_m = M / mr >= N / nr;
    const size_t unit = job.split_m ? mr : nr, extent = job.split_m ? M : N;
    const size_t units = (extent + unit - 1) / unit;
    if (threads > units) threads = units;
    job.slab = (units + threads - 1) / threads * unit;
    const size_t tasks = (extent + job.slab - 1) / job.slab;
    const int shared = tasks > 1 && job.kernel.pairs && pack_shared(&job, threads);
    if (tasks == 1 || !collie_pool_run(threads, tasks, gemm_task, &job))
        for (size_t t = 0; t < tasks; t++) gemm_task(&job, t);
    if (shared) release_shared();
}

void collie_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc, size_t threads) {
    gemm_run(0, trans_a, trans_b, M, N, K, alpha, A, lda, B, 0, ldb, beta, C, ldc, threads);
}

void collie_gemm_bf16(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                      const float *B, size_t ldb, float beta, float *C, size_t ldc, size_t threads) {
    gemm_run(1, trans_a, trans_b, M, N, K, alpha, A, lda, B, 0, ldb, beta, C, ldc, threads);
}

void collie_gemm_bf16_b(int bf16, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A,
                        size_t lda, const uint16_t *B, size_t ldb, float beta, float *C, size_t ldc, size_t threads) {
    gemm_run(bf16, trans_a, trans_b, M, N, K, alpha, A, lda, B, 1, ldb, beta, C, ldc, threads);
}

// MARK: - Operands packed once, for many small products

size_t collie_gemm_packed_bytes(int bf16, int side, size_t rows, size_t K) {
    int level;
    const collie_gemm_kernel kn = kernel_for(bf16, &level);
    return packed_padded_rows(&kn, side, rows) * gemm_padded_depth(&kn, K) * gemm_element_size(&kn);
}

void collie_gemm_pack_operand(int bf16, int side, const float *src, size_t ld, int k_contiguous, size_t rows, size_t K,
                              void *dst) {
    int level;
    const collie_gemm_kernel kn = kernel_for(bf16, &level);
    pack_whole(&kn, side, src, 0, ld, k_contiguous, 0, rows, packed_padded_rows(&kn, side, rows), K, dst);
}

void collie_gemm_multiply_packed(int bf16, size_t M, size_t N, size_t K, float alpha, const void *A, const void *B,
                                 float beta, float *C, size_t ldc, int band, ptrdiff_t diagonal, float fill) {
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0) {
        scale_block(C, ldc, M, N, beta);
        return;
    }
    int level;
    const collie_gemm_kernel kn = kernel_for(bf16, &level);
    const size_t mr = (size_t)kn.mr, nr = (size_t)kn.nr, element = gemm_element_size(&kn);
    const ptrdiff_t granule = kn.granule;
    const size_t m_padded = packed_padded_rows(&kn, 0, M), n_padded = packed_padded_rows(&kn, 1, N);
    if (K > kn.kc) band = COLLIE_BAND_FULL;   // bands only for one K block (attention's tiles)
    float scratch[32 * 32] __attribute__((aligned(64)));
    for (size_t pc = 0; pc < K; pc += kn.kc) {
        const size_t kc = K - pc < kn.kc ? K - pc : kn.kc, kp = gemm_padded_depth(&kn, kc);
        const char *a_chunk = (const char *)A + m_padded * pc * element;
        const char *b_chunk = (const char *)B + n_padded * pc * element;
        const float chunk_beta = pc == 0 ? beta : 1;
        for (size_t jr = 0; jr < N; jr += nr) {
            const size_t n = N - jr < nr ? N - jr : nr;
            for (size_t ir = 0; ir < M; ir += mr) {
                const size_t m = M - ir < mr ? M - ir : mr;
                float *c = C + ir * ldc + jr;
                // The k's this tile needs: all, or those the band leaves (rounded out to whole granules).
                ptrdiff_t k0 = 0, k1 = (ptrdiff_t)kp;
                if (band == COLLIE_BAND_COLUMNS && (ptrdiff_t)jr > (ptrdiff_t)(ir + m - 1) + diagonal) {
                    if (chunk_beta == 0)
                        for (size_t i = 0; i < m; i++)
                            for (size_t j = 0; j < n; j++) c[i * ldc + j] = fill;
                    continue;
                }
                if (band == COLLIE_BAND_DEPTH_END) {
                    const ptrdiff_t end = (ptrdiff_t)(ir + m) + diagonal;
                    k1 = end < 0 ? 0 : end < k1 ? (end + granule - 1) / granule * granule : k1;
                }
                if (band == COLLIE_BAND_DEPTH_START) {
                    const ptrdiff_t start = (ptrdiff_t)ir - diagonal;
                    k0 = start < 0 ? 0 : start > k1 ? k1 : start / granule * granule;
                }
                if (k1 > (ptrdiff_t)kp) k1 = (ptrdiff_t)kp;
                if (k1 <= k0) {   // nothing in the band
                    if (chunk_beta != 1) scale_block(c, ldc, m, n, chunk_beta);
                    continue;
                }
                micro_tile(&kn, (size_t)(k1 - k0), a_chunk + (ir * kp + (size_t)k0 * mr) * element,
                           b_chunk + (jr * kp + (size_t)k0 * nr) * element, c, ldc, m, n, alpha, chunk_beta, scratch);
            }
        }
    }
}
