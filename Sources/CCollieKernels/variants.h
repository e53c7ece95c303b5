// Kernels written once as plain C loops and compiled three times: for AVX-512F, for AVX2 + FMA + F16C, and for the
// baseline instruction set, the copy chosen at run time by collie_kernel_level(). The compiler vectorizes each copy
// for its instruction set (at -O2, as a release build compiles C), so no compiler flag is needed.
//
// Arithmetic is exactly the Swift loop's that each kernel replaces: a file that includes this header does not
// contract a·b + c into a fused multiply-add (Swift never does), and a fused multiply-add is written as FMA(a, b, c)
// where the Swift code called addingProduct. Loops keep their order, so reductions add in the same sequence.
#ifndef COLLIE_VARIANTS_H
#define COLLIE_VARIANTS_H

#include "collie_kernels.h"

#pragma STDC FP_CONTRACT OFF

#define ALWAYS_INLINE __attribute__((always_inline)) inline
#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_fma) && __has_builtin(__builtin_elementwise_sqrt)
#define COLLIE_ELEMENTWISE_BUILTINS 1
#endif
#endif
#ifdef COLLIE_ELEMENTWISE_BUILTINS
/// a·b + c rounded once (Swift's c.addingProduct(a, b)): a vector instruction where the target has FMA, else fmaf.
#define FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
/// The correctly rounded square root, without the errno check that keeps sqrtf from vectorizing.
#define SQRT(x) __builtin_elementwise_sqrt(x)
#else
#include <math.h>
#define FMA(a, b, c) fmaf((a), (b), (c))
#define SQRT(x) sqrtf(x)
#endif

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define COLLIE_VARIANTS_X86 1
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

/// Defines `void NAME PARAMETERS` calling `BODY ARGUMENTS` compiled for the best instruction set allowed.
#ifdef COLLIE_VARIANTS_X86
#define DISPATCHED_KERNEL(NAME, BODY, PARAMETERS, ARGUMENTS)                                                         \
    static void NAME##_portable PARAMETERS { BODY ARGUMENTS; }                                                        \
    TARGET_AVX2 static void NAME##_avx2 PARAMETERS { BODY ARGUMENTS; }                                                \
    TARGET_AVX512 static void NAME##_avx512 PARAMETERS { BODY ARGUMENTS; }                                            \
    void NAME PARAMETERS {                                                                                            \
        int level = collie_kernel_level();                                                                            \
        if (level >= 2) NAME##_avx512 ARGUMENTS;                                                                      \
        else if (level >= 1) NAME##_avx2 ARGUMENTS;                                                                   \
        else NAME##_portable ARGUMENTS;                                                                               \
    }
#else
#define DISPATCHED_KERNEL(NAME, BODY, PARAMETERS, ARGUMENTS) \
    void NAME PARAMETERS { BODY ARGUMENTS; }
#endif

#endif
