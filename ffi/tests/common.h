/* Helpers shared by the C tests: assertions and a config for the emulator.
 * The emulator's URL comes from SHARDLINE_TEST_ENDPOINT (run-c-tests.sh). */
#ifndef SHARDLINE_TEST_COMMON_H
#define SHARDLINE_TEST_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "shardline.h"

static int failures = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* Checks that an expression returns the expected result code. */
#define CHECK_RC(expr, want)                                               \
    do {                                                                   \
        int got_ = (int)(expr);                                            \
        if (got_ != (int)(want)) {                                         \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n",  \
                    __FILE__, __LINE__, #expr, got_,                       \
                    shardline_result_str(got_), (int)(want),               \
                    shardline_result_str((int)(want)));                    \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static const char *test_endpoint(void) {
    const char *endpoint = getenv("SHARDLINE_TEST_ENDPOINT");
    if (!endpoint) {
        fprintf(stderr, "SHARDLINE_TEST_ENDPOINT is not set (use ffi/run-c-tests.sh)\n");
        exit(2);
    }
    return endpoint;
}

static void set_or_die(shardline_config *conf, const char *key, const char *value) {
    char err[256];
    shardline_result rc = shardline_config_set(conf, key, value, err, sizeof err);
    if (rc) {
        fprintf(stderr, "config %s=%s: %s\n", key, value, err);
        exit(2);
    }
}

/* A config pointing at `endpoint` with fake credentials. */
static shardline_config *config_for(const char *endpoint) {
    shardline_config *conf = shardline_config_new();
    if (!conf) {
        fprintf(stderr, "shardline_config_new failed\n");
        exit(2);
    }
    set_or_die(conf, "endpoint_url", endpoint);
    set_or_die(conf, "region", "us-east-1");
    set_or_die(conf, "aws_access_key_id", "test");
    set_or_die(conf, "aws_secret_access_key", "test");
    return conf;
}

static shardline_producer *producer_or_die(const shardline_config *conf) {
    shardline_producer *p = NULL;
    char err[256];
    shardline_result rc = shardline_producer_new(conf, &p, err, sizeof err);
    if (rc) {
        fprintf(stderr, "shardline_producer_new: %s\n", err);
        exit(2);
    }
    return p;
}

static int finish(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

/* Milliseconds since `since` (CLOCK_MONOTONIC). */
static inline long elapsed_ms(struct timespec since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since.tv_sec) * 1000 + (now.tv_nsec - since.tv_nsec) / 1000000;
}

/* A TCP listener on 127.0.0.1 that accepts connections but never answers;
 * writes its http:// URL to `url`, returns the socket to close. */
static inline int black_hole(char *url, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 64) ||
        getsockname(fd, (struct sockaddr *)&addr, &alen)) {
        perror("black hole");
        exit(2);
    }
    snprintf(url, len, "http://127.0.0.1:%d", ntohs(addr.sin_port));
    return fd;
}

#endif
