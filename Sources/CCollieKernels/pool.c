#include "collie_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define POOL_MAX_WORKERS 63

// A loop is published by storing its task and context, then `claim` = epoch << 32 | count << 16 | 0 (the next index
// to take), then `epoch`. Participants take indices by compare-and-swap on `claim`; its epoch bits make a straggler
// from an earlier loop fail instead of taking an index of a new one, and a successful claim keeps the caller (which
// waits until `finished` reaches the count) from publishing another loop, so the task and context read after it
// are this loop's.
static _Atomic(collie_pool_task) pool_task;
static _Atomic(void *) pool_context;
static _Atomic uint64_t pool_claim;
static _Atomic uint32_t pool_epoch;
static _Atomic size_t pool_finished;
static atomic_flag pool_busy = ATOMIC_FLAG_INIT;
static _Atomic unsigned pool_spin_us = 0;

static pthread_mutex_t pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static _Atomic int pool_sleepers;
static size_t pool_workers;   // started so far; changed only by the caller holding pool_busy

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// Runs the tasks of loop `epoch` that nobody has taken yet.
static void pool_work(uint32_t epoch) {
    uint64_t claim = atomic_load_explicit(&pool_claim, memory_order_acquire);
    while ((uint32_t)(claim >> 32) == epoch && (claim & 0xffff) < ((claim >> 16) & 0xffff)) {
        if (atomic_compare_exchange_weak_explicit(&pool_claim, &claim, claim + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            collie_pool_task task = atomic_load_explicit(&pool_task, memory_order_relaxed);
            task(atomic_load_explicit(&pool_context, memory_order_relaxed), (size_t)(claim & 0xffff));
            atomic_fetch_add_explicit(&pool_finished, 1, memory_order_release);
            claim = atomic_load_explicit(&pool_claim, memory_order_acquire);
        }
    }
}

static void *pool_worker(void *unused) {
    (void)unused;
    uint32_t seen = atomic_load_explicit(&pool_epoch, memory_order_acquire);
    for (;;) {
        uint32_t epoch = atomic_load_explicit(&pool_epoch, memory_order_acquire);
        if (epoch == seen) {
            unsigned spin = atomic_load_explicit(&pool_spin_us, memory_order_relaxed);
            uint64_t deadline = spin ? now_ns() + (uint64_t)spin * 1000u : 0;
            for (unsigned i = 1; epoch == seen && spin; i++) {
                CPU_RELAX();
                epoch = atomic_load_explicit(&pool_epoch, memory_order_acquire);
                if ((i & 255) == 0 && now_ns() > deadline) break;
            }
            if (epoch == seen) {
                pthread_mutex_lock(&pool_mutex);
                atomic_fetch_add(&pool_sleepers, 1);
                while ((epoch = atomic_load(&pool_epoch)) == seen)
                    pthread_cond_wait(&pool_wake, &pool_mutex);
                atomic_fetch_sub(&pool_sleepers, 1);
                pthread_mutex_unlock(&pool_mutex);
            }
        }
        seen = epoch;
        pool_work(epoch);
    }
    return NULL;
}

int collie_pool_run(size_t threads, size_t count, collie_pool_task task, void *context) {
    if (count == 0) return 1;
    if (count > 0xffff || atomic_flag_test_and_set_explicit(&pool_busy, memory_order_acquire)) return 0;
    size_t wanted = threads > 1 ? threads - 1 : 0;
    if (wanted > POOL_MAX_WORKERS) wanted = POOL_MAX_WORKERS;
    while (pool_workers < wanted) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, pool_worker, NULL) != 0) break;
        pthread_detach(thread);
        pool_workers++;
    }
    uint32_t epoch = atomic_load_explicit(&pool_epoch, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool_task, task, memory_order_relaxed);
    atomic_store_explicit(&pool_context, context, memory_order_relaxed);
    atomic_store_explicit(&pool_finished, 0, memory_order_relaxed);
    atomic_store_explicit(&pool_claim, (uint64_t)epoch << 32 | (uint64_t)count << 16, memory_order_release);
    atomic_store(&pool_epoch, epoch);   // sequentially consistent with the sleepers count read next
    if (atomic_load(&pool_sleepers) > 0) {
        pthread_mutex_lock(&pool_mutex);
        pthread_cond_broadcast(&pool_wake);
        pthread_mutex_unlock(&pool_mutex);
    }
    pool_work(epoch);
    // Tasks a worker took are still running. Spin briefly, then yield: on an oversubscribed machine the worker may
    // be waiting for this very core.
    for (unsigned spins = 0; atomic_load_explicit(&pool_finished, memory_order_acquire) < count; spins++) {
        if (spins < 1024) CPU_RELAX();
        else sched_yield();
    }
    atomic_flag_clear_explicit(&pool_busy, memory_order_release);
    return 1;
}

void collie_pool_set_spin(unsigned microseconds) {
    atomic_store_explicit(&pool_spin_us, microseconds, memory_order_relaxed);
}
