/* One C producer, one thread: sends N records through the C ABI with
 * `shardline_producer_send`, serving delivery reports on the same thread
 * (`poll` when the buffer is full and every 1,024 sends), then `flush`.
 * Prints one JSON line. Run by `benches/run.py c`, which builds it against
 * libshardline.a and alternates it with `shardline-load`.
 *
 *   bench_c ENDPOINT RECORDS RECORD_SIZE [STREAM]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shardline.h"

#define KEYS 4096

typedef struct {
    long ok, failed, bad_opaque, records;
} tally;

static void on_delivery(const shardline_delivery_report *r, void *opaque) {
    tally *t = opaque;
    /* msg_opaque carries the record's index + 1: check it came back. */
    uintptr_t index = (uintptr_t)r->msg_opaque;
    if (index == 0 || (long)index > t->records) t->bad_opaque++;
    if (r->result == SHARDLINE_OK) t->ok++;
    else t->failed++;
}

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set(shardline_config *c, const char *key, const char *value) {
    char err[256];
    if (shardline_config_set(c, key, value, err, sizeof err) != SHARDLINE_OK) {
        fprintf(stderr, "config %s: %s\n", key, err);
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_c ENDPOINT RECORDS RECORD_SIZE [STREAM]\n");
        return 2;
    }
    const char *stream = argc > 4 ? argv[4] : "s";
    long n = atol(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    static tally t;
    t.records = n;

    shardline_config *c = shardline_config_new();
    set(c, "endpoint_url", argv[1]);
    set(c, "region", "us-east-1");
    set(c, "aws_access_key_id", "bench");
    set(c, "aws_secret_access_key", "bench");
    /* The emulator runs without limits: lift the producer's limiter too,
     * as shardline-load --no-rate-limit does. */
    set(c, "shard_bytes_per_second", "1099511627776");
    set(c, "shard_records_per_second", "1099511627776");
    shardline_config_set_delivery_cb(c, on_delivery, &t);
    shardline_producer *p = NULL;
    char err[256];
    if (shardline_producer_new(c, &p, err, sizeof err) != SHARDLINE_OK) {
        fprintf(stderr, "shardline_producer_new: %s\n", err);
        return 2;
    }

    char *data = malloc(size);
    for (size_t i = 0; i < size; i++) data[i] = (char)('a' + i % 26);
    static char keys[KEYS][40];
    for (int i = 0; i < KEYS; i++)
        snprintf(keys[i], sizeof keys[i], "%08x-0000-4000-8000-%012x", (unsigned)i * 2654435761u, i);

    /* Warm up (shard map, connections) outside the clock. */
    shardline_producer_send(p, stream, "warm-up", 7, data, size, NULL, (void *)1);
    shardline_producer_flush(p, -1);
    t.ok = t.failed = t.bad_opaque = 0;

    double wall0 = seconds(CLOCK_MONOTONIC), cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        const char *key = keys[i % KEYS];
        shardline_result rc;
        while ((rc = shardline_producer_send(p, stream, key, strlen(key), data, size, NULL,
                                             (void *)(uintptr_t)(i + 1))) == SHARDLINE_QUEUE_FULL)
            shardline_producer_poll(p, 1);
        if (rc != SHARDLINE_OK) {
            fprintf(stderr, "send: %s\n", shardline_result_str(rc));
            return 1;
        }
        if ((i & 1023) == 0) shardline_producer_poll(p, 0);
    }
    shardline_result flushed = shardline_producer_flush(p, 120000);
    double wall = seconds(CLOCK_MONOTONIC) - wall0, cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    shardline_producer_free(p);
    shardline_config_free(c);
    free(data);

    printf("{\"harness\": \"c\", \"label\": \"c\", \"record_size\": %zu, \"sent\": %ld, "
           "\"delivered\": %ld, \"failed\": %ld, \"bad_opaque\": %ld, \"flushed\": %s, "
           "\"wall_s\": %.3f, \"records_per_s\": %.1f, \"mb_per_s\": %.2f, "
           "\"cpu_s\": %.3f, \"cpu_s_per_million\": %.3f}\n",
           size, n, t.ok, t.failed, t.bad_opaque, flushed == SHARDLINE_OK ? "true" : "false",
           wall, n / wall, n * (double)size / wall / 1e6, cpu, t.ok ? cpu / t.ok * 1e6 : 0.0);
    return (t.ok == n && t.bad_opaque == 0 && flushed == SHARDLINE_OK) ? 0 : 1;
}
