#include "collie_kernels.h"
#include <stdlib.h>  // defines __GLIBC__ (features.h)

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int collie_fix_mmap_threshold(size_t bytes) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, (int)bytes);
#else
    (void)bytes;
    return 0;
#endif
}
