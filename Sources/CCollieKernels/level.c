#include "collie_kernels.h"

// The instruction set every dispatching kernel of this target uses, detected once. The limit lets tests run the
// lower levels' copies on a machine with a higher one.

static int level_limit = COLLIE_KERNEL_LEVEL_MAX;

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
    return detected < level_limit ? detected : level_limit;
}

void collie_kernel_limit_level(int level) { level_limit = level < 0 ? 0 : level; }
