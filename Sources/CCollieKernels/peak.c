#include "collie_peak.h"
#include "collie_kernels.h"
#include "amx_tiles.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define HAS_X86 1
#endif

// Each kernel runs `n` iterations of CHAINS independent multiply-adds (AVX2: AVX2_CHAINS, all 16 ymm registers but the
// two constants): more chains than latency × pipes on any CPU of this kind, so the loop is bound by throughput.
#define CHAINS 16
#define AVX2_CHAINS 14

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#ifdef HAS_X86
// The loops are written in assembly so that they are the same at every optimization level (SwiftPM compiles C without
// optimization in debug builds). Each iteration is CHAINS multiply-adds into registers that depend only on
// themselves: a = a·0.999 + 0.001 (converging to 1, never denormal) and, for bf16, a += x·x + x·x with x = 2⁻¹⁰.

#define FMA_ZMM(r) "vfmadd213ps %%zmm17, %%zmm16, %%zmm" #r "\n\t"
#define FMA_YMM(r) "vfmadd213ps %%ymm15, %%ymm14, %%ymm" #r "\n\t"
#define DPBF16(r) "vdpbf16ps %%zmm16, %%zmm16, %%zmm" #r "\n\t"
#define INIT_ZMM(r) "vmovaps %%zmm17, %%zmm" #r "\n\t"
#define INIT_YMM(r) "vmovaps %%ymm15, %%ymm" #r "\n\t"
#define ALL16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define ALL14(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13)
#define ZMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
    "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17"

static const float multiplier = 0.999f, increment = 0.001f;
static const uint32_t bf16_pair = 0x3A803A80u;  // two bfloat16 2⁻¹⁰

/// AVX2_CHAINS (14) chains of 256-bit FMA per iteration, written out by ALL14.
__attribute__((target("avx2,fma"))) static void chains_avx2(uint64_t n) {
    __asm__ volatile("vbroadcastss %1, %%ymm14\n\t"
                     "vbroadcastss %2, %%ymm15\n\t" ALL14(INIT_YMM)
                     "1:\n\t" ALL14(FMA_YMM) "dec %0\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : "+r"(n) : "m"(multiplier), "m"(increment)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
}

/// 16 chains of 512-bit FMA per iteration.
__attribute__((target("avx512f"))) static void chains_avx512(uint64_t n) {
    __asm__ volatile("vbroadcastss %1, %%zmm16\n\t"
                     "vbroadcastss %2, %%zmm17\n\t" ALL16(INIT_ZMM)
                     "1:\n\t" ALL16(FMA_ZMM) "dec %0\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : "+r"(n) : "m"(multiplier), "m"(increment) : ZMM_CLOBBERS, "cc");
}

/// 16 chains of 512-bit `vdpbf16ps` per iteration.
__attribute__((target("avx512f,avx512bf16"))) static void chains_bf16(uint64_t n) {
    __asm__ volatile("vpbroadcastd %1, %%zmm16\n\t"
                     "vbroadcastss %2, %%zmm17\n\t" ALL16(INIT_ZMM)
                     "1:\n\t" ALL16(DPBF16) "dec %0\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : "+r"(n) : "m"(bf16_pair), "m"(increment) : ZMM_CLOBBERS, "cc");
}

/// 4 chains of `tdpbf16ps` per iteration (AMX-BF16): C tiles 0–3 each add the products of one of A's tiles 4–5 with one
/// of B's tiles 6–7 (the GEMM's tile configuration: 16 × 16 × 32 pairs per instruction), sources all bfloat16 2⁻¹⁰.
/// Four chains are the most eight tile registers allow beside four sources — the GEMM's own arrangement.
__attribute__((target("amx-tile,amx-bf16"))) static void chains_amx(uint64_t n) {
    const collie_tile_config config = collie_amx_tile_config();   // the GEMM's: a thread keeps it (amx_tiles.h)
    uint32_t source[16 * 16] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 16; i++) source[i] = bf16_pair;
    _tile_loadconfig(&config);
    _tile_loadd(4, source, 64);
    _tile_loadd(5, source, 64);
    _tile_loadd(6, source, 64);
    _tile_loadd(7, source, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (uint64_t i = 0; i < n; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
}
#endif

/// FLOPs of one iteration (CHAINS instructions) of `kind`'s loop.
static double flops_per_iteration(collie_peak_kind kind) {
    switch (kind) {
    case COLLIE_PEAK_FP32_AVX2: return AVX2_CHAINS * 8 * 2;
    case COLLIE_PEAK_FP32_AVX512: return CHAINS * 16 * 2;
    case COLLIE_PEAK_BF16_AVX512: return CHAINS * 32 * 2;
    case COLLIE_PEAK_BF16_AMX: return 4 * 16 * 16 * 32 * 2;
    }
    return 0;
}

static void run_chains(collie_peak_kind kind, uint64_t n) {
    if (n == 0) return;
#ifdef HAS_X86
    switch (kind) {
    case COLLIE_PEAK_FP32_AVX2: chains_avx2(n); return;
    case COLLIE_PEAK_FP32_AVX512: chains_avx512(n); return;
    case COLLIE_PEAK_BF16_AVX512: chains_bf16(n); return;
    case COLLIE_PEAK_BF16_AMX: chains_amx(n); return;
    }
#else
    (void)kind;
#endif
}

double collie_peak_bf16_per_fp32(void) {
    if (collie_kernel_level() < 4) return 0;
    const uint64_t n = 1 << 13;   // 2¹⁷ instructions per run
    double bf16 = 1e300, fp32 = 1e300;
    for (int round = 0; round < 5; round++) {
        double begin = now_seconds();
        run_chains(COLLIE_PEAK_BF16_AVX512, n);
        double took = now_seconds() - begin;
        if (took < bf16) bf16 = took;
        begin = now_seconds();
        run_chains(COLLIE_PEAK_FP32_AVX512, n);
        took = now_seconds() - begin;
        if (took < fp32) fp32 = took;
    }
    if (!(bf16 > 0) || !(fp32 > 0)) return 0;
    return flops_per_iteration(COLLIE_PEAK_BF16_AVX512) / bf16 / (flops_per_iteration(COLLIE_PEAK_FP32_AVX512) / fp32);
}

typedef struct {
    collie_peak_kind kind;
    uint64_t iterations;
    atomic_int *start;
    double seconds;
} peak_thread;

static void *peak_worker(void *argument) {
    peak_thread *t = argument;
    while (!atomic_load_explicit(t->start, memory_order_acquire)) {}
    const double begin = now_seconds();
    run_chains(t->kind, t->iterations);
    t->seconds = now_seconds() - begin;
    return NULL;
}

double collie_peak_gflops(collie_peak_kind kind, int threads, double seconds) {
    const int level = collie_kernel_level();
    const int required = kind == COLLIE_PEAK_FP32_AVX2 ? 1 : kind == COLLIE_PEAK_FP32_AVX512 ? 2
                       : kind == COLLIE_PEAK_BF16_AVX512 ? 4 : kind == COLLIE_PEAK_BF16_AMX ? 5 : 99;
    if (level < required || threads < 1 || threads > 256 || !(seconds > 0)) return 0;

    // Calibrate on this thread: grow the run until it takes 20 ms, then size each thread's run to `seconds`.
    uint64_t n = 1 << 14;
    double took = 0;
    for (;;) {
        const double begin = now_seconds();
        run_chains(kind, n);
        took = now_seconds() - begin;
        if (took > 0.02 || n > ((uint64_t)1 << 40)) break;
        n *= 4;
    }
    const double rate = (double)n / took;
    const uint64_t iterations = (uint64_t)(rate * seconds) + 1;

    // The threads start together when `start` turns 1 (so they overlap: SMT siblings share one core's units).
    atomic_int start = 0;
    peak_thread jobs[256];
    pthread_t ids[256];
    int started = 0;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (peak_thread){.kind = kind, .iterations = iterations, .start = &start};
        if (i > 0 && pthread_create(&ids[i], NULL, peak_worker, &jobs[i]) != 0) break;
        started = i + 1;
    }
    if (started < threads) {
        // A thread could not start: release and collect the others without a measurement.
        for (int i = 1; i < started; i++) jobs[i].iterations = 0;
        atomic_store_explicit(&start, 1, memory_order_release);
        for (int i = 1; i < started; i++) pthread_join(ids[i], NULL);
        return 0;
    }
    atomic_store_explicit(&start, 1, memory_order_release);
    peak_worker(&jobs[0]);
    double longest = jobs[0].seconds;
    for (int i = 1; i < threads; i++) {
        pthread_join(ids[i], NULL);
        if (jobs[i].seconds > longest) longest = jobs[i].seconds;
    }
    if (!(longest > 0)) return 0;
    return (double)threads * (double)iterations * flops_per_iteration(kind) / longest / 1e9;
}
