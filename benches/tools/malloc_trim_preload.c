/* Measurement aid for BENCHMARKS.md §6, not part of Shardline: preloaded
 * into a benchmark process, it calls glibc's malloc_trim(0) every TRIM_MS
 * milliseconds (default 1000) from its own thread, to show how much of the
 * process's RSS is free memory glibc keeps in its arenas.
 *
 *   gcc -O2 -shared -fPIC -o /tmp/libtrim.so benches/tools/malloc_trim_preload.c -lpthread
 *   LD_PRELOAD=/tmp/libtrim.so TRIM_MS=250 target/release/shardline-load ...
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *trim_forever(void *arg) {
    long ms = (long)arg;
    for (;;) {
        usleep(ms * 1000);
        malloc_trim(0);
    }
    return NULL;
}

__attribute__((constructor)) static void start_trimming(void) {
    const char *env = getenv("TRIM_MS");
    long ms = env ? atol(env) : 1000;
    pthread_t thread;
    if (ms > 0 && pthread_create(&thread, NULL, trim_forever, (void *)ms) == 0)
        pthread_detach(thread);
}
