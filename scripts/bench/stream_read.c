// Memory read bandwidth, the bound of batch-1 decoding: T threads each sum their share of a large buffer, reading
// it in S interleaved streams (a core streams fastest with several open, as the decoding kernels do), best of 7.
//
//   cc -O3 -march=native -pthread scripts/bench/stream_read.c -o /tmp/stream_read && /tmp/stream_read [MB] [threads]
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { STREAMS = 8 };

typedef struct { const float *data; size_t count; float sum; } Share;

static void *read_share(void *argument) {
    Share *share = argument;
    size_t chunk = share->count / STREAMS / 16 * 16;
    float acc[STREAMS][16] = {{0}};
    for (size_t i = 0; i < chunk; i += 16)
        for (int s = 0; s < STREAMS; s++)
            for (int l = 0; l < 16; l++) acc[s][l] += share->data[s * chunk + i + l];
    float sum = 0;
    for (int s = 0; s < STREAMS; s++) for (int l = 0; l < 16; l++) sum += acc[s][l];
    share->sum = sum;
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t megabytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (megabytes < 1 || threads < 1 || threads > 64) { fprintf(stderr, "usage: stream_read [MB >= 1] [threads 1…64]\n"); return 2; }
    size_t count = megabytes * 1000000 / sizeof(float);
    float *data = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
    if (!data) { fprintf(stderr, "stream_read: cannot allocate %zu MB\n", megabytes); return 1; }
    for (size_t i = 0; i < count; i++) data[i] = (float)(i & 1023);
    Share shares[64];
    pthread_t ids[64];
    double best = 0, checksum = 0;
    for (int run = 0; run < 7; run++) {
        double start = now();
        for (int t = 0; t < threads; t++) {
            shares[t] = (Share){data + count / threads * t, count / threads, 0};
            pthread_create(&ids[t], NULL, read_share, &shares[t]);
        }
        for (int t = 0; t < threads; t++) { pthread_join(ids[t], NULL); checksum += shares[t].sum; }
        double seconds = now() - start;
        size_t bytes = (size_t)threads * (count / threads / STREAMS / 16 * 16) * STREAMS * sizeof(float);
        double rate = bytes / seconds / 1e9;
        if (rate > best) best = rate;
    }
    printf("read bandwidth: %.1f GB/s (best of 7 passes over %zu MB, %d threads, %d streams each; checksum %g)\n",
           best, megabytes, threads, STREAMS, checksum);
    free(data);
    return 0;
}
