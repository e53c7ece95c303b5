#include "collie_kernels.h"

#include <stdlib.h>

// The instruction set every dispatching kernel of this target uses, detected once. The limit lets tests run the
// lower levels' copies on a machine with a higher one; COLLIE_KERNEL_LEVEL sets it for a whole process (to run, and
// measure, what a CPU without the higher instruction sets would).

static int level_limit = -1;   // -1: COLLIE_KERNEL_LEVEL not read yet

/// COLLIE_KERNEL_LEVEL's value when it is one digit 0 ... 4, else the highest level.
static int environment_limit(void) {
    const char *value = getenv("COLLIE_KERNEL_LEVEL");
    if (value && value[0] >= '0' && value[0] <= '0' + COLLIE_KERNEL_LEVEL_MAX && value[1] == 0) return value[0] - '0';
    return COLLIE_KERNEL_LEVEL_MAX;
}

int collie_kernel_level(void) {
    static int detected = -1;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (detected < 0) {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
            detected = 2;
            if (__builtin_cpu_supports("avx512vnni")) {
                detected = 3;
                if (__builtin_cpu_supports("avx512bf16")) detected = 4;
            }
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
            detected = 1;
        else detected = 0;
    }
#else
    detected = 0;
#endif
    if (level_limit < 0) level_limit = environment_limit();
    return detected < level_limit ? detected : level_limit;
}

void collie_kernel_limit_level(int level) { level_limit = level < 0 ? 0 : level; }
