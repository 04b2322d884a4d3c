/*
 * A small Shardline producer in C: send JSON events to a Kinesis data
 * stream, serve delivery reports, flush, print a summary, free.
 *
 * Build:  examples/c/build.sh            (see ffi/README.md)
 * Run:    ./target/examples-c/producer STREAM [ENDPOINT_URL]
 *   e.g.  ./target/examples-c/producer my-stream
 *         ./target/examples-c/producer ffi-test http://127.0.0.1:4567
 * Without ENDPOINT_URL it uses the default AWS region and credential chain
 * (environment variables, ~/.aws files, instance metadata).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shardline.h"

/* What the delivery callback tallies. */
struct summary {
    long delivered;
    long failed;
    long retried; /* records that needed more than one attempt */
};

/* Runs inside shardline_producer_poll/flush/free, on the thread that calls
 * them: no locking needed here. `report` and its strings are valid only
 * during this call; copy anything you keep. */
static void on_delivery(const shardline_delivery_report *report, void *opaque) {
    struct summary *s = opaque;
    uintptr_t event_id = (uintptr_t)report->msg_opaque; /* what we gave to send */
    if (report->result == SHARDLINE_OK) {
        s->delivered++;
        if (report->attempts > 1) s->retried++;
        if (event_id == 0) /* print one example */
            printf("event 0 stored in %s as %s\n",
                   report->shard_id ? report->shard_id : "(firehose)", report->sequence_number);
    } else {
        s->failed++;
        fprintf(stderr, "event %lu failed: %s (%s)\n", (unsigned long)event_id,
                shardline_result_str(report->result),
                report->error_message ? report->error_message : "");
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s STREAM [ENDPOINT_URL]\n", argv[0]);
        return 2;
    }
    const char *stream = argv[1];
    char err[512];
    struct summary summary = {0, 0, 0};

    /* 1. Configuration: the same string keys as the Rust and Python APIs.
     *    Add {"service", "firehose"} to write to a Firehose delivery stream. */
    shardline_config *conf = shardline_config_new();
    const char *settings[][2] = {
        {"record_max_buffered_time", "100"}, /* ms a record may wait for batching */
        {"close_timeout", "10000"},          /* how long free() keeps delivering */
        /* With ENDPOINT_URL, a local server such as the project's emulator. */
        {"endpoint_url", argc > 2 ? argv[2] : NULL},
        {"region", argc > 2 ? "us-east-1" : NULL},
        {"aws_access_key_id", argc > 2 ? "test" : NULL},
        {"aws_secret_access_key", argc > 2 ? "test" : NULL},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (settings[i][1] == NULL) continue;
        if (shardline_config_set(conf, settings[i][0], settings[i][1], err, sizeof err)) {
            fprintf(stderr, "config %s: %s\n", settings[i][0], err);
            shardline_config_free(conf);
            return 1;
        }
    }
    shardline_config_set_delivery_cb(conf, on_delivery, &summary);

    /* 2. The producer. The config is copied: free it now. */
    shardline_producer *producer = NULL;
    shardline_result rc = shardline_producer_new(conf, &producer, err, sizeof err);
    shardline_config_free(conf);
    if (rc) {
        fprintf(stderr, "cannot create the producer: %s\n", err);
        return 1;
    }

    /* 3. Send. send() copies its arguments and never blocks; QUEUE_FULL
     *    means "serve some delivery reports, then try again". */
    const int events = 10000;
    for (int i = 0; i < events; i++) {
        char key[32], json[128];
        int key_len = snprintf(key, sizeof key, "user-%d", i % 100);
        int json_len = snprintf(json, sizeof json,
                                "{\"event\":\"click\",\"user\":%d,\"seq\":%d}", i % 100, i);
        for (;;) {
            rc = shardline_producer_send(producer, stream, key, (size_t)key_len, json,
                                         (size_t)json_len, NULL /* explicit hash key */,
                                         (void *)(uintptr_t)i /* comes back in the report */);
            if (rc != SHARDLINE_QUEUE_FULL) break;
            shardline_producer_poll(producer, 100);
        }
        if (rc) {
            fprintf(stderr, "event %d not sent: %s\n", i, shardline_result_str(rc));
            break;
        }
        /* Serve reports as they come, without waiting. */
        shardline_producer_poll(producer, 0);
    }

    /* 4. Flush: send what is buffered and serve every report (30 s max). */
    rc = shardline_producer_flush(producer, 30000);
    if (rc) fprintf(stderr, "flush: %s, %zu records still outstanding\n",
                    shardline_result_str(rc), shardline_producer_outstanding(producer));

    /* 5. Metrics, as JSON (KPL metric names). */
    char *metrics = NULL;
    if (shardline_producer_metrics_json(producer, &metrics) == SHARDLINE_OK) {
        printf("metrics: %.200s...\n", metrics);
        shardline_string_free(metrics);
    }

    /* 6. Free: delivers what is left (up to close_timeout), reports the rest
     *    as failed through on_delivery, then releases everything. */
    shardline_producer_free(producer);

    printf("%ld delivered, %ld failed, %ld needed retries\n", summary.delivered,
           summary.failed, summary.retried);
    return summary.failed ? 1 : 0;
}
