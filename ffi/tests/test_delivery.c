/* 100,000 records from 4 threads to Kinesis, each reported exactly once on
 * the polling thread; 1,000 to Firehose; what a callback may and may not do. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common.h"

#define THREADS 4
#define PER_THREAD 25000
#define TOTAL (THREADS * PER_THREAD)

static const char *STREAM = "ffi-test";
static const char *DELIVERY_STREAM = "ffi-test-firehose";

typedef struct {
    pthread_t poller;               /* the only thread allowed to run callbacks */
    unsigned char seen[TOTAL];      /* reports per record id */
    atomic_long ok, failed, wrong_thread, bad_fields;
    int firehose;
} tally;

static void on_delivery(const shardline_delivery_report *r, void *opaque) {
    tally *t = opaque;
    uintptr_t id = (uintptr_t)r->msg_opaque;
    if (!pthread_equal(pthread_self(), t->poller)) atomic_fetch_add(&t->wrong_thread, 1);
    if (id < TOTAL) t->seen[id]++;
    if (r->result == SHARDLINE_OK) {
        atomic_fetch_add(&t->ok, 1);
        int shard_ok = t->firehose ? r->shard_id == NULL
                                   : r->shard_id != NULL && strncmp(r->shard_id, "shardId-", 8) == 0;
        if (!shard_ok || !r->sequence_number || !r->sequence_number[0] || r->attempts < 1 ||
            r->error_message || strcmp(r->stream, t->firehose ? DELIVERY_STREAM : STREAM) != 0)
            atomic_fetch_add(&t->bad_fields, 1);
    } else {
        atomic_fetch_add(&t->failed, 1);
        fprintf(stderr, "record %lu failed: %s: %s\n", (unsigned long)id,
                shardline_result_str(r->result), r->error_message ? r->error_message : "");
    }
}

typedef struct {
    shardline_producer *p;
    int thread;
    long queue_full;
    int errors;
} sender_args;

static void *sender(void *arg) {
    sender_args *a = arg;
    char pk[32], data[96];
    for (int i = 0; i < PER_THREAD; i++) {
        uintptr_t id = (uintptr_t)a->thread * PER_THREAD + (uintptr_t)i;
        int pk_len = snprintf(pk, sizeof pk, "user-%lu", (unsigned long)(id % 977));
        int len = snprintf(data, sizeof data, "{\"id\":%lu,\"thread\":%d}", (unsigned long)id, a->thread);
        for (;;) {
            shardline_result rc = shardline_producer_send(a->p, STREAM, pk, (size_t)pk_len, data,
                                                          (size_t)len, NULL, (void *)id);
            if (rc == SHARDLINE_OK) break;
            if (rc != SHARDLINE_QUEUE_FULL) {
                fprintf(stderr, "send: %s\n", shardline_result_str(rc));
                a->errors++;
                break;
            }
            a->queue_full++;
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    return NULL;
}

static void test_kinesis_many_threads(const char *endpoint) {
    static tally t;
    memset(&t, 0, sizeof t);
    t.poller = pthread_self();
    shardline_config *conf = config_for(endpoint);
    /* A bound below the total, so that senders meet QUEUE_FULL while the
     * poller serves reports. */
    set_or_die(conf, "max_buffered_records", "20000");
    CHECK_RC(shardline_config_set_delivery_cb(conf, on_delivery, &t), SHARDLINE_OK);
    shardline_producer *p = producer_or_die(conf);
    shardline_config_free(conf);

    pthread_t threads[THREADS];
    sender_args args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (sender_args){.p = p, .thread = i};
        CHECK(pthread_create(&threads[i], NULL, sender, &args[i]) == 0);
    }
    /* Serve reports while the senders run (at most ~2 minutes). */
    long served = 0;
    for (int idle = 0; served < TOTAL && idle < 1200;) {
        int n = shardline_producer_poll(p, 100);
        CHECK(n >= 0);
        if (n < 0) break;
        served += n;
        idle = n ? 0 : idle + 1;
    }
    long queue_full = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].errors == 0);
        queue_full += args[i].queue_full;
    }
    CHECK_RC(shardline_producer_flush(p, 60000), SHARDLINE_OK);
    CHECK(shardline_producer_outstanding(p) == 0);

    long missing = 0, duplicated = 0;
    for (long i = 0; i < TOTAL; i++) {
        if (t.seen[i] == 0) missing++;
        if (t.seen[i] > 1) duplicated++;
    }
    printf("kinesis: %ld ok, %ld failed, %ld missing, %ld duplicated, %ld QUEUE_FULL retries\n",
           (long)t.ok, (long)t.failed, missing, duplicated, queue_full);
    CHECK(t.ok == TOTAL);
    CHECK(missing == 0 && duplicated == 0);
    CHECK(t.wrong_thread == 0);
    CHECK(t.bad_fields == 0);

    char *json = NULL;
    CHECK_RC(shardline_producer_metrics_json(p, &json), SHARDLINE_OK);
    CHECK(json && strstr(json, "UserRecordsPut") != NULL);
    shardline_string_free(json);
    shardline_producer_free(p);
}

static void test_firehose(const char *endpoint) {
    static tally t;
    memset(&t, 0, sizeof t);
    t.poller = pthread_self();
    t.firehose = 1;
    shardline_config *conf = config_for(endpoint);
    set_or_die(conf, "service", "firehose");
    set_or_die(conf, "firehose_newline_delimiter", "true");
    CHECK_RC(shardline_config_set_delivery_cb(conf, on_delivery, &t), SHARDLINE_OK);
    shardline_producer *p = producer_or_die(conf);
    shardline_config_free(conf);
    for (uintptr_t i = 0; i < 1000; i++) {
        char data[64];
        int len = snprintf(data, sizeof data, "{\"event\":%lu}", (unsigned long)i);
        CHECK_RC(shardline_producer_send(p, DELIVERY_STREAM, "k", 1, data, (size_t)len, NULL, (void *)i),
                 SHARDLINE_OK);
    }
    CHECK_RC(shardline_producer_flush(p, 60000), SHARDLINE_OK);
    printf("firehose: %ld ok, %ld failed\n", (long)t.ok, (long)t.failed);
    CHECK(t.ok == 1000 && t.failed == 0 && t.bad_fields == 0);
    shardline_producer_free(p);
}

/* Inside a callback: poll, flush and blocking send are refused, a plain
 * send is allowed (e.g. to retry), and free is ignored. */
typedef struct {
    shardline_producer *p;
    int calls, resent;
    int poll_rc, flush_rc, blocking_rc, send_rc;
} reentry;

static void on_delivery_reenter(const shardline_delivery_report *r, void *opaque) {
    reentry *s = opaque;
    s->calls++;
    s->poll_rc = shardline_producer_poll(s->p, 0);
    s->flush_rc = shardline_producer_flush(s->p, 0);
    s->blocking_rc = shardline_producer_send_blocking(s->p, STREAM, "k", 1, "x", 1, NULL, NULL, 0);
    shardline_producer_free(s->p);
    if (r->msg_opaque == NULL) {
        s->send_rc = shardline_producer_send(s->p, STREAM, "k", 1, "again", 5, NULL, (void *)1);
        s->resent++;
    }
}

static void test_callback_reentry(const char *endpoint) {
    static reentry s;
    memset(&s, 0, sizeof s);
    shardline_config *conf = config_for(endpoint);
    CHECK_RC(shardline_config_set_delivery_cb(conf, on_delivery_reenter, &s), SHARDLINE_OK);
    s.p = producer_or_die(conf);
    shardline_config_free(conf);
    CHECK_RC(shardline_producer_send(s.p, STREAM, "k", 1, "first", 5, NULL, NULL), SHARDLINE_OK);
    CHECK_RC(shardline_producer_flush(s.p, 30000), SHARDLINE_OK);
    CHECK(s.calls == 2 && s.resent == 1);
    CHECK(s.poll_rc == -SHARDLINE_CALLBACK_REENTRY);
    CHECK_RC(s.flush_rc, SHARDLINE_CALLBACK_REENTRY);
    CHECK_RC(s.blocking_rc, SHARDLINE_CALLBACK_REENTRY);
    CHECK_RC(s.send_rc, SHARDLINE_OK);
    CHECK(shardline_producer_outstanding(s.p) == 0);
    shardline_producer_free(s.p);
}

int main(int argc, char **argv) {
    const char *endpoint = test_endpoint();
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (!quick) test_kinesis_many_threads(endpoint);
    test_firehose(endpoint);
    test_callback_reentry(endpoint);
    return finish(quick ? "test_delivery --quick" : "test_delivery");
}
