#include "collie_kernels.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#endif
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

// The instruction set every dispatching kernel of this target uses, detected once. The limit lets tests run the
// lower levels' copies on a machine with a higher one; COLLIE_KERNEL_LEVEL sets it for a whole process (to run, and
// measure, what a CPU without the higher instruction sets would).

static int level_limit = -1;   // -1: COLLIE_KERNEL_LEVEL not read yet

/// COLLIE_KERNEL_LEVEL's value when it is one digit 0 ... 5, else the highest level.
static int environment_limit(void) {
    const char *value = getenv("COLLIE_KERNEL_LEVEL");
    if (value && value[0] >= '0' && value[0] <= '0' + COLLIE_KERNEL_LEVEL_MAX && value[1] == 0) return value[0] - '0';
    return COLLIE_KERNEL_LEVEL_MAX;
}

int collie_amx_tiles_described(unsigned max_palette, unsigned palette_eax, unsigned palette_ebx, unsigned palette_ecx,
                               int has_tmul_leaf, unsigned tmul_ebx) {
    const unsigned bytes_per_tile = palette_eax >> 16, bytes_per_row = palette_ebx & 0xFFFF,
                   max_names = palette_ebx >> 16, max_rows = palette_ecx & 0xFFFF;
    if (max_palette < 1 || bytes_per_row < 64 || max_names < 8 || max_rows < 16 || bytes_per_tile < 16 * 64) return 0;
    if (has_tmul_leaf && ((tmul_ebx & 0xFF) < 16 || ((tmul_ebx >> 8) & 0xFFFF) < 64)) return 0;
    return 1;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
int collie_cpu_advertises_amx(void) {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (edx & (1u << 24)) && (edx & (1u << 22));
}

/// Whether the operating system enabled the tile state: XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA), read with xgetbv
/// where CPUID.1:ECX.OSXSAVE says it may be.
static int tile_state_enabled(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return 0;
    unsigned low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return (low & (3u << 17)) == (3u << 17);
}

/// Whether CPUID describes tiles this target's configuration fits (leaf 0x1D palette 1; leaf 0x1E where present).
static int tiles_described(void) {
    unsigned max_leaf, eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &max_leaf, &ebx, &ecx, &edx) || max_leaf < 0x1D) return 0;
    unsigned max_palette, palette_eax, palette_ebx, palette_ecx, tmul_ebx = 0;
    __cpuid_count(0x1D, 0, max_palette, ebx, ecx, edx);
    __cpuid_count(0x1D, 1, palette_eax, palette_ebx, palette_ecx, edx);
    if (max_leaf >= 0x1E) __cpuid_count(0x1E, 0, eax, tmul_ebx, ecx, edx);
    return collie_amx_tiles_described(max_palette, palette_eax, palette_ebx, palette_ecx, max_leaf >= 0x1E, tmul_ebx);
}

// The probe's guard: while armed, an illegal-instruction signal on the probing thread returns to the probe.
static _Thread_local sigjmp_buf *probe_exit;
static struct sigaction previous_illegal;

static void on_illegal_instruction(int signal) {
    if (probe_exit) siglongjmp(*probe_exit, 1);
    // Not the probe's: the previous disposition takes the instruction when it runs again.
    (void)signal;
    sigaction(SIGILL, &previous_illegal, NULL);
}

int collie_amx_probe(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_illegal_instruction;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGILL, &action, &previous_illegal) != 0) return -1;
    sigjmp_buf faulted;
    volatile int result = -1;
    if (sigsetjmp(faulted, 1) == 0) {
        probe_exit = &faulted;
        result = collie_gemm_amx_check(0);   // a fault leaves its three small buffers allocated: once per process
    }
    probe_exit = NULL;
    sigaction(SIGILL, &previous_illegal, NULL);
    return result;
}

/// Whether this process may run the AMX kernel: the CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22),
/// the OS enabled the tile state (XCR0), CPUID describes tiles the kernel's configuration fits (misconfigured
/// hypervisors advertise AMX with no tile palette, and every tile instruction then faults), Linux granted the tile data
/// state (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA; a process has to ask), and the microkernel's check
/// ran on the hardware — guarded, so a CPU that faults anyway leaves level 4 — and passed.
static int amx_usable(void) {
    if (!collie_cpu_advertises_amx()) return 0;
    const int enabled = tile_state_enabled();
    if (!enabled || !tiles_described()) {
        fprintf(stderr, "collie: this CPU advertises AMX but %s; bf16 products use AVX512_BF16\n",
                enabled ? "describes no tile palette that fits 16 rows of 64 bytes"
                        : "the operating system did not enable its tile state");
        return 0;
    }
#ifdef __linux__
    enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    unsigned long permitted = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0 ||
        syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &permitted) != 0 || !(permitted & (1ul << XFEATURE_XTILEDATA))) {
        // A kernel before 5.16, or a thread's sigaltstack too small for the tile state's signal frame (ENOSPC).
        fprintf(stderr, "collie: Linux did not grant the AMX tile state (arch_prctl: %s); "
                        "bf16 products use AVX512_BF16\n", strerror(errno));
        return 0;
    }
    const int checked = collie_amx_probe();
    if (checked == 1) return 1;
    fprintf(stderr, "collie: the AMX-BF16 microkernel's check %s on this CPU; bf16 products use AVX512_BF16\n",
            checked < 0 ? "faulted (illegal instruction)" : "failed");
#endif
    return 0;
}

static int detected = -1;

/// The level of this CPU. Runs once (pthread_once), so nothing it calls — the AMX check included — may ask for the
/// kernel level: that would wait on itself.
static void detect(void) {
    int found = 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        found = 2;
        if (__builtin_cpu_supports("avx512vnni")) {
            found = 3;
            if (__builtin_cpu_supports("avx512bf16")) found = amx_usable() ? 5 : 4;
        }
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        found = 1;
    __atomic_store_n(&detected, found, __ATOMIC_RELEASE);
}
#else
int collie_cpu_advertises_amx(void) { return 0; }
int collie_amx_probe(void) { return -1; }
static int detected = -1;
static void detect(void) { __atomic_store_n(&detected, 0, __ATOMIC_RELEASE); }
#endif

int collie_kernel_level(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    // Once (the probe swaps the process's SIGILL handler); detect() publishes the level last.
    if (__atomic_load_n(&detected, __ATOMIC_ACQUIRE) < 0) pthread_once(&once, detect);
    if (level_limit < 0) level_limit = environment_limit();
    return detected < level_limit ? detected : level_limit;
}

void collie_kernel_limit_level(int level) { level_limit = level < 0 ? 0 : level; }
