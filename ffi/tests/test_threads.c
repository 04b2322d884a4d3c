/* A dedicated poller thread, as the README suggests with send_blocking:
 * free wakes a poll waiting forever, and when free returns no callback is
 * running on the poller any more; a blocking send waits for its timeout in
 * all, not once in the C layer and again in the core.
 *
 *   test_threads [--valgrind]   (--valgrind: upper time bounds only catch hangs) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const char *STREAM = "ffi-test";
static const char *DELIVERY_STREAM = "ffi-test-firehose";
static int under_valgrind = 0;

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

/* Waits up to `limit_ms` for `*flag` to become `want`. */
static int wait_for(atomic_int *flag, int want, long limit_ms) {
    for (long waited = 0; atomic_load(flag) != want; waited += 10) {
        if (waited >= limit_ms) return 0;
        sleep_ms(10);
    }
    return 1;
}

/* The poller thread and what its callbacks saw. */
typedef struct {
    shardline_producer *p;
    pthread_t main_thread, thread;
    int poll_ms;           /* the poller's timeout: -1 waits forever */
    atomic_int stop;       /* ends a poller with a timeout */
    atomic_int done;       /* set when the poller returns */
    int last_rc;           /* the negative poll result that ended it */
    long served;           /* the sum of its positive poll results */
    atomic_long reports, ok, expired, on_poller, on_main;
    long slow_ms;          /* how long the report of record 0 takes */
    atomic_int in_slow_callback, slow_callback_done;
} poller;

static void on_delivery(const shardline_delivery_report *r, void *opaque) {
    poller *s = opaque;
    if (pthread_equal(pthread_self(), s->thread)) atomic_fetch_add(&s->on_poller, 1);
    else if (pthread_equal(pthread_self(), s->main_thread)) atomic_fetch_add(&s->on_main, 1);
    if (r->result == SHARDLINE_OK) atomic_fetch_add(&s->ok, 1);
    if (r->result == SHARDLINE_DELIVERY_EXPIRED) atomic_fetch_add(&s->expired, 1);
    if (s->slow_ms && r->msg_opaque == NULL) {
        atomic_store(&s->in_slow_callback, 1);
        sleep_ms(s->slow_ms);
        atomic_store(&s->slow_callback_done, 1);
        atomic_store(&s->in_slow_callback, 0);
    }
    atomic_fetch_add(&s->reports, 1);
}

static void *poll_loop(void *arg) {
    poller *s = arg;
    int n = 0;
    while (!atomic_load(&s->stop) && (n = shardline_producer_poll(s->p, s->poll_ms)) >= 0)
        s->served += n;
    s->last_rc = n;
    atomic_store(&s->done, 1);
    return NULL;
}

static shardline_producer *start(poller *s, shardline_config *conf, int poll_ms) {
    s->main_thread = pthread_self();
    s->poll_ms = poll_ms;
    CHECK_RC(shardline_config_set_delivery_cb(conf, on_delivery, s), SHARDLINE_OK);
    s->p = producer_or_die(conf);
    shardline_config_free(conf);
    if (pthread_create(&s->thread, NULL, poll_loop, s) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(2);
    }
    return s->p;
}

/* Joins the poller if it has returned within `limit_ms`; otherwise it is
 * stuck in shardline_producer_poll: leave it (detached) and fail. */
static int join_poller(poller *s, long limit_ms, const char *what) {
    if (!wait_for(&s->done, 1, limit_ms)) {
        fprintf(stderr, "%s: the poller is still inside shardline_producer_poll %ld ms later\n", what,
                limit_ms);
        failures++;
        pthread_detach(s->thread);
        return 0;
    }
    pthread_join(s->thread, NULL);
    return 1;
}

/* poll(p, -1) on another thread returns once free has run, with the result
 * for a freed handle; before, it waited forever (its own reference kept the
 * report queue open). */
static void test_poll_forever_returns_on_free(const char *endpoint) {
    static poller s;
    memset(&s, 0, sizeof s);
    shardline_config *conf = config_for(endpoint);
    set_or_die(conf, "close_timeout", "1000");
    shardline_producer *p = start(&s, conf, -1);

    for (uintptr_t i = 1; i <= 10; i++)
        CHECK_RC(shardline_producer_send(p, STREAM, "k", 1, "{}", 2, NULL, (void *)i), SHARDLINE_OK);
    /* The poller serves them, then waits in poll(p, -1) for more. */
    for (int i = 0; i < 3000 && atomic_load(&s.reports) < 10; i++) sleep_ms(10);
    CHECK(atomic_load(&s.reports) == 10 && atomic_load(&s.on_poller) == 10);
    sleep_ms(300);

    shardline_producer_free(p);
    if (!join_poller(&s, 30000, "poll(p, -1) after free")) return;
    CHECK(s.last_rc == -SHARDLINE_INVALID_HANDLE);
    CHECK(s.served == 10);
    CHECK(atomic_load(&s.ok) == 10);
}

/* A callback running on the poller when free begins: free waits for it,
 * then serves every other report itself, so none runs after free returns.
 * Before, free gave up after close_timeout + 5 s and returned while the
 * callback still ran. */
static void test_free_waits_for_poller_callback(const char *endpoint) {
    static poller s;
    memset(&s, 0, sizeof s);
    s.slow_ms = 6500; /* longer than close_timeout + 5 s */
    shardline_config *conf = config_for(endpoint);
    set_or_die(conf, "close_timeout", "300");
    shardline_producer *p = start(&s, conf, -1);

    CHECK_RC(shardline_producer_send(p, STREAM, "k", 1, "slow", 4, NULL, NULL), SHARDLINE_OK);
    CHECK(wait_for(&s.in_slow_callback, 1, 30000));
    /* The poller is busy: these reports are left to free. */
    for (uintptr_t i = 1; i <= 9; i++)
        CHECK_RC(shardline_producer_send(p, STREAM, "k", 1, "{}", 2, NULL, (void *)i), SHARDLINE_OK);

    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    shardline_producer_free(p);
    long waited = elapsed_ms(started);
    int still_running = atomic_load(&s.in_slow_callback);
    printf("free with a callback running on the poller: %ld ms, callback %s\n", waited,
           still_running ? "STILL RUNNING" : "done");
    CHECK(!still_running && atomic_load(&s.slow_callback_done));
    CHECK(atomic_load(&s.reports) == 10);
    CHECK(atomic_load(&s.on_poller) == 1 && atomic_load(&s.on_main) == 9);
    if (!join_poller(&s, 30000, "poll(p, -1) after free")) return;
    CHECK(s.last_rc == -SHARDLINE_INVALID_HANDLE);
    CHECK(s.served == 1);
}

/* send_blocking with a timeout waits that long in all. Here the C layer's
 * bound is full until a report is served after ~1 s, and then the core's
 * buffer is full (a request body in flight counts against it): before, the
 * send waited its whole timeout again in the core. */
static void test_send_blocking_one_deadline(void) {
    char url[64];
    int fd = black_hole(url, sizeof url);
    static poller s;
    memset(&s, 0, sizeof s);
    shardline_config *conf = config_for(url);
    set_or_die(conf, "service", "firehose");
    set_or_die(conf, "max_buffered_records", "2");
    set_or_die(conf, "max_buffered_bytes", "1000000");
    set_or_die(conf, "record_ttl", "1000");
    set_or_die(conf, "request_timeout", "8000");
    set_or_die(conf, "close_timeout", "300");
    shardline_producer *p = start(&s, conf, 50);

    size_t big = 400000;
    char *data = calloc(1, big);
    CHECK(data != NULL);
    if (!data) return;
    memset(data, 'a', big);
    /* A goes out alone (flush sends it now) and hangs: its ~530 KB body is
     * in flight. B stays queued (bodies may take at most half the buffer)
     * and expires after record_ttl; A never completes before free. */
    CHECK_RC(shardline_producer_send(p, DELIVERY_STREAM, "k", 1, data, big, NULL, (void *)1), SHARDLINE_OK);
    CHECK_RC(shardline_producer_flush(p, 300), SHARDLINE_TIMEOUT);
    CHECK_RC(shardline_producer_send(p, DELIVERY_STREAM, "k", 1, "b", 1, NULL, (void *)2), SHARDLINE_OK);
    CHECK_RC(shardline_producer_send(p, DELIVERY_STREAM, "k", 1, "c", 1, NULL, (void *)3), SHARDLINE_QUEUE_FULL);

    /* 200 KB more: room in the C layer once B's report is served; none in
     * the core, which holds A and A's body. */
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    CHECK_RC(shardline_producer_send_blocking(p, DELIVERY_STREAM, "k", 1, data, big / 2, NULL, (void *)4, 2000),
             SHARDLINE_TIMEOUT);
    long waited = elapsed_ms(started);
    long limit = under_valgrind ? 30000 : 2700;
    printf("send_blocking with a 2000 ms timeout: %ld ms (B expired: %ld)\n", waited,
           (long)atomic_load(&s.expired));
    if (!(waited >= 1990 && waited < limit))
        fprintf(stderr, "send_blocking with a 2000 ms timeout returned after %ld ms\n", waited);
    CHECK(waited >= 1990 && waited < limit);
    CHECK(atomic_load(&s.expired) == 1);
    free(data);

    atomic_store(&s.stop, 1);
    join_poller(&s, 30000, "poll(p, 50) with stop set");
    shardline_producer_free(p);
    CHECK(atomic_load(&s.reports) == 2);
    close(fd);
}

int main(int argc, char **argv) {
    const char *endpoint = test_endpoint();
    under_valgrind = argc > 1 && strcmp(argv[1], "--valgrind") == 0;
    test_poll_forever_returns_on_free(endpoint);
    test_free_waits_for_poller_callback(endpoint);
    test_send_blocking_one_deadline();
    return finish("test_threads");
}
