#include "collie_kernels.h"

#include <stdio.h>
#include <stdlib.h>
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

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
/// Whether this process may run the AMX kernel: the CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22),
/// Linux granted the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA; a process has to ask),
/// and the microkernel's check on the hardware passed.
static int amx_usable(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 24)) || !(edx & (1u << 22))) return 0;
#ifdef __linux__
    enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    unsigned long permitted = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0 ||
        syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &permitted) != 0 || !(permitted & (1ul << XFEATURE_XTILEDATA)))
        return 0;
    if (collie_gemm_amx_check(0)) return 1;
    fprintf(stderr, "collie: the AMX-BF16 microkernel's check failed on this CPU; bf16 products use AVX512_BF16\n");
#endif
    return 0;
}
#endif

int collie_kernel_level(void) {
    static int detected = -1;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (detected < 0) {
        int found = 0;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
            found = 2;
            if (__builtin_cpu_supports("avx512vnni")) {
                found = 3;
                if (__builtin_cpu_supports("avx512bf16")) found = amx_usable() ? 5 : 4;
            }
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
            found = 1;
        detected = found;
    }
#else
    detected = 0;
#endif
    if (level_limit < 0) level_limit = environment_limit();
    return detected < level_limit ? detected : level_limit;
}

void collie_kernel_limit_level(int level) { level_limit = level < 0 ? 0 : level; }
