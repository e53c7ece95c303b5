// A pool of worker threads that wait for work by spinning, for long sequences of short parallel loops (a decoding
// step of the small preset runs 60–85 of them, of 20–200 µs each). Waking a sleeping thread for each loop costs
// ~20 µs here; a spinning worker starts in well under a microsecond.
#ifndef COLLIE_POOL_H
#define COLLIE_POOL_H

#include <stddef.h>

/// One task of a parallel loop: `task(context, index)`.
typedef void (*collie_pool_task)(void *context, size_t index);

/// Runs task(context, i) for every i < count on the calling thread and up to `threads` − 1 workers (started on first
/// use) and returns 1 when all have finished. Returns 0 without running anything when the pool is already running a
/// loop (another thread's, or the caller's own from inside a task) or count exceeds 65535: run the loop some other
/// way then.
int collie_pool_run(size_t threads, size_t count, collie_pool_task task, void *context);

/// How long, in microseconds, an idle worker spins for the next loop before it sleeps (0: sleep at once).
void collie_pool_set_spin(unsigned microseconds);

#endif
