/* Every bad input gets its own result code, never a crash; out-pointers are
 * untouched on failure; freed and forged handles are detected. */
#include "common.h"

static void test_results(void) {
    CHECK(strcmp(shardline_result_str(SHARDLINE_OK), "ok") == 0);
    CHECK(strcmp(shardline_result_str(12345), "unknown result code") == 0);
    CHECK(strcmp(shardline_result_str(-1), "unknown result code") == 0);
    for (int rc = 0; rc <= SHARDLINE_INTERNAL; rc++) {
        CHECK(shardline_result_str(rc) != NULL);
        CHECK(strcmp(shardline_result_str(rc), "unknown result code") != 0);
    }
    CHECK(shardline_result_is_retryable(SHARDLINE_QUEUE_FULL));
    CHECK(shardline_result_is_retryable(SHARDLINE_TIMEOUT));
    CHECK(!shardline_result_is_retryable(SHARDLINE_OK));
    CHECK(!shardline_result_is_retryable(SHARDLINE_NULL_PARAMETER));
    CHECK(!shardline_result_is_retryable(SHARDLINE_INVALID_STREAM_NAME));
    CHECK(!shardline_result_is_retryable(999));
    CHECK(shardline_version() != NULL && shardline_version()[0] != '\0');
}

static void test_config(void) {
    char err[128];
    shardline_config *conf = shardline_config_new();
    CHECK(conf != NULL);

    CHECK_RC(shardline_config_set(NULL, "region", "x", err, sizeof err), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_config_set(conf, NULL, "x", err, sizeof err), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_config_set(conf, "region", NULL, err, sizeof err), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_config_set(conf, "region", "us-east-1", NULL, 0), SHARDLINE_OK);
    CHECK_RC(shardline_config_set(conf, "RecordMaxBufferedTime", "250", NULL, 0), SHARDLINE_OK);

    err[0] = 'X';
    CHECK_RC(shardline_config_set(conf, "no_such_key", "1", err, sizeof err), SHARDLINE_UNKNOWN_CONFIG_KEY);
    CHECK(strstr(err, "no_such_key") != NULL);
    CHECK_RC(shardline_config_set(conf, "rate_limit", "lots", err, sizeof err), SHARDLINE_INVALID_CONFIG);
    CHECK(strstr(err, "rate_limit") != NULL);
    CHECK_RC(shardline_config_set(conf, "service", "sqs", err, sizeof err), SHARDLINE_INVALID_CONFIG);
    CHECK_RC(shardline_config_set(conf, "service", "firehose", err, sizeof err), SHARDLINE_OK);
    CHECK_RC(shardline_config_set(conf, "service", "Kinesis", err, sizeof err), SHARDLINE_OK);
    /* Invalid UTF-8 in a key and in a value. */
    CHECK_RC(shardline_config_set(conf, "regi\xff" "on", "x", err, sizeof err), SHARDLINE_INVALID_UTF8);
    CHECK_RC(shardline_config_set(conf, "region", "\xc3\x28", err, sizeof err), SHARDLINE_INVALID_UTF8);

    /* The error buffer is truncated and NUL-terminated, never overrun. */
    char tiny[8];
    memset(tiny, 'Z', sizeof tiny);
    CHECK_RC(shardline_config_set(conf, "no_such_key_with_a_long_name", "1", tiny, 5), SHARDLINE_UNKNOWN_CONFIG_KEY);
    CHECK(strlen(tiny) == 4);
    CHECK(tiny[5] == 'Z');
    char one[1] = {'Z'};
    CHECK_RC(shardline_config_set(conf, "nope", "1", one, 1), SHARDLINE_UNKNOWN_CONFIG_KEY);
    CHECK(one[0] == '\0');

    CHECK_RC(shardline_config_set_delivery_cb(NULL, NULL, NULL), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_config_set_delivery_cb(conf, NULL, NULL), SHARDLINE_OK);

    /* Contradictory options fail at producer creation with a message. */
    shardline_producer *p = (shardline_producer *)0x1;
    CHECK_RC(shardline_config_set(conf, "min_backoff", "5000", err, sizeof err), SHARDLINE_OK);
    CHECK_RC(shardline_config_set(conf, "max_backoff", "100", err, sizeof err), SHARDLINE_OK);
    CHECK_RC(shardline_producer_new(conf, &p, err, sizeof err), SHARDLINE_INVALID_CONFIG);
    CHECK(p == (shardline_producer *)0x1); /* out-pointer untouched */
    CHECK(strstr(err, "min_backoff") != NULL);
    CHECK_RC(shardline_producer_new(NULL, &p, err, sizeof err), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_new(conf, NULL, err, sizeof err), SHARDLINE_NULL_PARAMETER);

    shardline_config_free(conf);
    /* Use after free is detected, and a second free is harmless. */
    CHECK_RC(shardline_config_set(conf, "region", "x", NULL, 0), SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_new(conf, &p, NULL, 0), SHARDLINE_INVALID_HANDLE);
    CHECK(p == (shardline_producer *)0x1);
    shardline_config_free(conf);
    shardline_config_free(NULL);
}

static void test_producer(const char *endpoint) {
    shardline_config *conf = config_for(endpoint);
    set_or_die(conf, "close_timeout", "1000");
    shardline_producer *p = producer_or_die(conf);
    const char *pk = "key";
    const char *data = "{}";
    size_t n = 2;

    CHECK_RC(shardline_producer_send(NULL, "s", pk, 3, data, n, NULL, NULL), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_send(p, NULL, pk, 3, data, n, NULL, NULL), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_send(p, "s", NULL, 3, data, n, NULL, NULL), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, NULL, n, NULL, NULL), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_send(p, "s", pk, 0, data, n, NULL, NULL), SHARDLINE_EMPTY_PARTITION_KEY);
    CHECK_RC(shardline_producer_send(p, "s", "\xff\xfe", 2, data, n, NULL, NULL), SHARDLINE_INVALID_UTF8);
    CHECK_RC(shardline_producer_send(p, "str\xff", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_UTF8);
    CHECK_RC(shardline_producer_send(p, "", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_STREAM_NAME);
    CHECK_RC(shardline_producer_send(p, "bad/name", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_STREAM_NAME);
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_RC(shardline_producer_send(p, long_name, pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_STREAM_NAME);

    /* 257 one-byte characters, then a length over the byte bound. */
    char long_key[1100];
    memset(long_key, 'k', sizeof long_key);
    CHECK_RC(shardline_producer_send(p, "s", long_key, 257, data, n, NULL, NULL), SHARDLINE_PARTITION_KEY_TOO_LONG);
    CHECK_RC(shardline_producer_send(p, "s", long_key, sizeof long_key, data, n, NULL, NULL), SHARDLINE_PARTITION_KEY_TOO_LONG);
    CHECK_RC(shardline_producer_send(p, "s", long_key, 256, data, n, NULL, NULL), SHARDLINE_OK);

    /* Over the configured 1 MiB, and over the hard 10 MiB (not even read). */
    size_t big = 1024 * 1024 + 1;
    char *big_data = calloc(1, big);
    CHECK(big_data != NULL);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, big_data, big, NULL, NULL), SHARDLINE_RECORD_TOO_LARGE);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, big_data, (size_t)-1, NULL, NULL), SHARDLINE_RECORD_TOO_LARGE);
    free(big_data);

    CHECK_RC(shardline_producer_send(p, "s", pk, 3, data, n, "-1", NULL), SHARDLINE_INVALID_EXPLICIT_HASH_KEY);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, data, n, "abc", NULL), SHARDLINE_INVALID_EXPLICIT_HASH_KEY);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, data, n,
                                     "340282366920938463463374607431768211456", NULL),
             SHARDLINE_INVALID_EXPLICIT_HASH_KEY);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, data, n,
                                     "340282366920938463463374607431768211455", NULL),
             SHARDLINE_OK);
    /* Empty data is allowed, with or without a pointer. */
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, NULL, 0, NULL, NULL), SHARDLINE_OK);

    CHECK_RC(shardline_producer_send_blocking(NULL, "s", pk, 3, data, n, NULL, NULL, 10), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_send_blocking(p, "s", NULL, 3, data, n, NULL, NULL, 10), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_poll(NULL, 0), -SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_flush(NULL, 0), SHARDLINE_NULL_PARAMETER);
    CHECK(shardline_producer_outstanding(NULL) == 0);
    char *json = (char *)0x1;
    CHECK_RC(shardline_producer_metrics_json(NULL, &json), SHARDLINE_NULL_PARAMETER);
    CHECK_RC(shardline_producer_metrics_json(p, NULL), SHARDLINE_NULL_PARAMETER);
    CHECK(json == (char *)0x1);
    CHECK_RC(shardline_producer_metrics_json(p, &json), SHARDLINE_OK);
    CHECK(json != NULL && json[0] == '{');
    shardline_string_free(json);
    shardline_string_free(NULL);

    /* A forged handle and a config handle used as a producer. */
    shardline_producer *forged = (shardline_producer *)(uintptr_t)0xdead0;
    CHECK_RC(shardline_producer_send(forged, "s", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_send((shardline_producer *)conf, "s", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_send((shardline_producer *)(uintptr_t)7, "s", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_HANDLE);

    /* The accepted records go to a stream that does not exist: they fail,
     * and the free below serves (and counts) their reports. */
    shardline_producer_free(p);
    CHECK_RC(shardline_producer_send(p, "s", pk, 3, data, n, NULL, NULL), SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_send_blocking(p, "s", pk, 3, data, n, NULL, NULL, 0), SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_poll(p, 0), -SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_flush(p, 0), SHARDLINE_INVALID_HANDLE);
    CHECK_RC(shardline_producer_metrics_json(p, &json), SHARDLINE_INVALID_HANDLE);
    CHECK(shardline_producer_outstanding(p) == 0);
    shardline_producer_free(p);
    shardline_producer_free(NULL);
    shardline_config_free(conf);
}

int main(void) {
    test_results();
    test_config();
    test_producer(test_endpoint());
    return finish("test_errors");
}
