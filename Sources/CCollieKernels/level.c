#include "collie_kernels.h"

// The instruction set every dispatching kernel of this target uses, detected once. The limit lets tests run the
// AVX2 and portable copies on an AVX-512 machine.

static int level_limit = 2;

int collie_kernel_level(void) {
    static int detected = -1;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (detected < 0) {
        if (__builtin_cpu_supports("avx512f")) detected = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
            detected = 1;
        else detected = 0;
    }
#else
    detected = 0;
#endif
    return detected < level_limit ? detected : level_limit;
}

void collie_kernel_limit_level(int level) { level_limit = level < 0 ? 0 : level; }
