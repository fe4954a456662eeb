/*
 * Every documented misuse gets its documented code, writes no output, panics nothing and leaks
 * nothing (run under valgrind by ffi/tests/c_suite.rs).
 *
 *   usage: bad_args redis://HOST:PORT...   (reachable instances, for the blocking-client cases)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redlock.h"

static int passed, failed;

#define EXPECT_CODE(call, want)                                                              \
    do {                                                                                     \
        redlock_result got_ = (call);                                                        \
        if (got_ == (want)) {                                                                \
            passed++;                                                                        \
        } else {                                                                             \
            failed++;                                                                        \
            fprintf(stderr, "FAILED %s:%d: %s\n  want %u (%s), got %u (%s)\n", __FILE__,     \
                    __LINE__, #call, (unsigned)(want), redlock_result_message(want),         \
                    (unsigned)got_, redlock_result_message(got_));                           \
        }                                                                                    \
    } while (0)

#define EXPECT(cond)                                                                         \
    do {                                                                                     \
        if (cond) {                                                                          \
            passed++;                                                                        \
        } else {                                                                             \
            failed++;                                                                        \
            fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
        }                                                                                    \
    } while (0)

/* Out-parameters keep this value when a call fails. */
#define SENTINEL ((void *)0x5e5e5e5e)

static redlock_config *config_or_die(uint32_t n, uint64_t ttl) {
    redlock_config *c = NULL;
    if (redlock_config_new(n, ttl, &c) != REDLOCK_RESULT_OK) {
        fprintf(stderr, "redlock_config_new failed\n");
        exit(2);
    }
    return c;
}

static void results_and_version(void) {
    char want[64];
    EXPECT(strcmp(redlock_result_message(REDLOCK_RESULT_OK), "ok") == 0);
    EXPECT(strcmp(redlock_result_message(6999), "unknown result code") == 0);
    EXPECT(strcmp(redlock_result_message(UINT32_MAX), "unknown result code") == 0);
    EXPECT(strcmp(redlock_result_message(REDLOCK_RESULT_KEY_TOO_LONG), "unknown result code") != 0);
    snprintf(want, sizeof want, "redlock-ffi/%d.%d.%d", REDLOCK_VERSION_MAJOR, REDLOCK_VERSION_MINOR,
             REDLOCK_VERSION_PATCH);
    EXPECT(strcmp(redlock_version(), want) == 0);
}

static void config_cases(void) {
    redlock_config *c = SENTINEL;
    EXPECT_CODE(redlock_config_new(3, 1000, NULL), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_config_new(0, 1000, &c), REDLOCK_RESULT_NO_INSTANCES);
    EXPECT_CODE(redlock_config_new(REDLOCK_MAX_INSTANCES + 1, 1000, &c),
                REDLOCK_RESULT_TOO_MANY_INSTANCES);
    EXPECT_CODE(redlock_config_new(3, 0, &c), REDLOCK_RESULT_TTL_TOO_SHORT);
    EXPECT(c == SENTINEL);
    c = config_or_die(3, 1000);
    EXPECT_CODE(redlock_config_set_ttl(c, 0), REDLOCK_RESULT_TTL_TOO_SHORT);
    EXPECT_CODE(redlock_config_set_ttl(NULL, 1000), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_config_set_instance_timeout(c, 0), REDLOCK_RESULT_TIMEOUT_NOT_BELOW_TTL);
    EXPECT_CODE(redlock_config_set_drift(c, 1.5, 2), REDLOCK_RESULT_INVALID_DRIFT_FACTOR);
    EXPECT_CODE(redlock_config_set_retry(c, 3, 10, 11), REDLOCK_RESULT_JITTER_ABOVE_DELAY);
    EXPECT(redlock_config_ttl_ms(c) == 1000);
    EXPECT(redlock_config_quorum(NULL) == 0);
    redlock_config_free(c);
    redlock_config_free(NULL);
}

static void acquire_cases(void) {
    redlock_config *c = config_or_die(3, 10000);
    redlock_op *op = SENTINEL;
    char huge[REDLOCK_MAX_KEY_LEN + 1];
    const uint8_t *keys[REDLOCK_MAX_RESOURCES + 1];
    size_t lens[REDLOCK_MAX_RESOURCES + 1];
    uint8_t seed[REDLOCK_SEED_LEN] = {0};
    size_t i;

    memset(huge, 'k', sizeof huge);
    for (i = 0; i < REDLOCK_MAX_RESOURCES + 1; i++) {
        keys[i] = (const uint8_t *)"k";
        lens[i] = 1;
    }
    EXPECT_CODE(redlock_acquire_new(NULL, (const uint8_t *)"k", 1, 0, &op),
                REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_acquire_new(c, (const uint8_t *)"k", 1, 0, NULL),
                REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_acquire_new(c, NULL, 3, 0, &op), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_acquire_new(c, NULL, 0, 0, &op), REDLOCK_RESULT_EMPTY_KEY);
    EXPECT_CODE(redlock_acquire_new(c, (const uint8_t *)huge, sizeof huge, 0, &op),
                REDLOCK_RESULT_KEY_TOO_LONG);
    /* A length far beyond the buffer is refused before a byte is read. */
    EXPECT_CODE(redlock_acquire_new(c, (const uint8_t *)"k", SIZE_MAX, 0, &op),
                REDLOCK_RESULT_KEY_TOO_LONG);
    EXPECT_CODE(redlock_acquire_all_new(c, keys, lens, 0, 0, &op), REDLOCK_RESULT_NO_RESOURCES);
    EXPECT_CODE(redlock_acquire_all_new(c, keys, lens, 2, 0, &op),
                REDLOCK_RESULT_DUPLICATE_RESOURCE);
    EXPECT_CODE(redlock_acquire_all_new(c, keys, lens, REDLOCK_MAX_RESOURCES + 1, 0, &op),
                REDLOCK_RESULT_TOO_MANY_RESOURCES);
    EXPECT_CODE(redlock_acquire_all_new(c, NULL, lens, 1, 0, &op), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_acquire_seeded_new(c, keys, lens, 1, seed, sizeof seed - 1, 0, &op),
                REDLOCK_RESULT_INVALID_PARAMETER);
    EXPECT_CODE(redlock_acquire_seeded_new(c, keys, lens, 1, NULL, sizeof seed, 0, &op),
                REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT(op == SENTINEL);
    EXPECT_CODE(redlock_extend_new(c, NULL, 0, &op), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_release_new(c, NULL, 0, &op), REDLOCK_RESULT_NULL_PARAMETER);
    redlock_op_free(NULL);
    redlock_lease_free(NULL);
    redlock_config_free(c);
}

/* Feeds misuse to a running operation: wrong instance, unknown reply kind, time backwards. */
static void op_cases(void) {
    redlock_config *c = config_or_die(3, 10000);
    redlock_op *op = NULL;
    redlock_lease *lease = SENTINEL;
    redlock_instance_report report;
    redlock_output out;
    redlock_reply ok, zeroed;
    uint32_t request;

    memset(&ok, 0, sizeof ok);
    ok.kind = REDLOCK_REPLY_KIND_OK;
    memset(&zeroed, 0, sizeof zeroed);

    EXPECT_CODE(redlock_acquire_new(c, (const uint8_t *)"bad-args", 8, 1000, &op), REDLOCK_RESULT_OK);
    EXPECT_CODE(redlock_op_poll(op, NULL), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_op_poll(NULL, &out), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_op_poll(op, &out), REDLOCK_RESULT_OK);
    EXPECT(out.kind == REDLOCK_OUTPUT_KIND_SEND && out.command == REDLOCK_COMMAND_KIND_ACQUIRE);
    EXPECT(out.argc == 6 && out.argv_len[0] == 3 && memcmp(out.argv[0], "SET", 3) == 0);
    EXPECT(out.resp_len > 0 && memcmp(out.resp, "*6\r\n$3\r\nSET\r\n", 13) == 0);
    request = out.request;

    EXPECT_CODE(redlock_op_lease(op, &lease), REDLOCK_RESULT_NOT_DONE);
    EXPECT_CODE(redlock_op_report(op, 0, &report), REDLOCK_RESULT_NOT_DONE);
    EXPECT(lease == SENTINEL);
    EXPECT_CODE(redlock_op_handle_reply(op, 3, request, &ok, 1001), REDLOCK_RESULT_UNKNOWN_INSTANCE);
    EXPECT_CODE(redlock_op_handle_reply(op, UINT32_MAX, request, &ok, 1001),
                REDLOCK_RESULT_UNKNOWN_INSTANCE);
    EXPECT_CODE(redlock_op_handle_transport_error(op, 7, request, 1001),
                REDLOCK_RESULT_UNKNOWN_INSTANCE);
    EXPECT_CODE(redlock_op_handle_reply(op, 0, request, &zeroed, 1001),
                REDLOCK_RESULT_INVALID_PARAMETER);
    zeroed.kind = 99;
    EXPECT_CODE(redlock_op_handle_reply(op, 0, request, &zeroed, 1001),
                REDLOCK_RESULT_INVALID_PARAMETER);
    EXPECT_CODE(redlock_op_handle_reply(op, 0, request, NULL, 1001), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_op_handle_reply(op, 0, request, &ok, 1001), REDLOCK_RESULT_OK);

    /* Time going backwards fails closed: the acquire ends without a lease. */
    EXPECT_CODE(redlock_op_handle_timeout(op, 999), REDLOCK_RESULT_TIME_WENT_BACKWARDS);
    for (;;) {
        EXPECT_CODE(redlock_op_poll(op, &out), REDLOCK_RESULT_OK);
        if (out.kind == REDLOCK_OUTPUT_KIND_SEND) {
            redlock_reply one;
            memset(&one, 0, sizeof one);
            one.kind = REDLOCK_REPLY_KIND_INTEGER;
            one.integer = 1;
            /* Only cleanup releases are sent after the clock failure. */
            EXPECT(out.command == REDLOCK_COMMAND_KIND_RELEASE);
            EXPECT_CODE(redlock_op_handle_reply(op, out.instance, out.request, &one, 1002),
                        REDLOCK_RESULT_OK);
            continue;
        }
        if (out.kind == REDLOCK_OUTPUT_KIND_WAIT) {
            EXPECT_CODE(redlock_op_handle_timeout(op, out.until_ms), REDLOCK_RESULT_OK);
            continue;
        }
        break;
    }
    EXPECT(out.outcome == REDLOCK_OUTCOME_CLOCK_WENT_BACKWARDS);
    EXPECT(redlock_op_outcome(op) == REDLOCK_OUTCOME_CLOCK_WENT_BACKWARDS);
    EXPECT_CODE(redlock_op_lease(op, &lease), REDLOCK_RESULT_NO_LEASE);
    EXPECT_CODE(redlock_op_report(op, 3, &report), REDLOCK_RESULT_UNKNOWN_INSTANCE);
    EXPECT_CODE(redlock_op_report(op, 0, NULL), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT(lease == SENTINEL);
    redlock_op_free(op);
    redlock_config_free(c);
}

static void resp_cases(void) {
    redlock_reply reply;
    size_t used = 12345;
    EXPECT_CODE(redlock_resp_parse((const uint8_t *)"+O", 2, &reply, &used), REDLOCK_RESULT_INCOMPLETE);
    EXPECT_CODE(redlock_resp_parse((const uint8_t *)"?x\r\n", 4, &reply, &used),
                REDLOCK_RESULT_PROTOCOL_ERROR);
    EXPECT_CODE(redlock_resp_parse(NULL, 4, &reply, &used), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT(used == 12345);
    EXPECT_CODE(redlock_resp_parse((const uint8_t *)"-ERR no\r\n:1\r\n", 13, &reply, &used),
                REDLOCK_RESULT_OK);
    EXPECT(used == 9 && reply.kind == REDLOCK_REPLY_KIND_ERROR && reply.text_len == 6);
}

static void client_cases(int n_urls, char **urls) {
    const char *bad_utf8[] = {"redis://127.0.0.1:6379", "redis://\xff\xfe"};
    const char *http[] = {"http://127.0.0.1:6379"};
    const char *many[REDLOCK_MAX_INSTANCES + 1];
    redlock_client_options options;
    redlock_client *client = SENTINEL;
    redlock_lock *lock = SENTINEL, *other = NULL;
    const uint8_t *dup[] = {(const uint8_t *)"a", (const uint8_t *)"a"};
    size_t dup_lens[] = {1, 1};
    char huge[REDLOCK_MAX_KEY_LEN + 1];
    uint64_t remaining = 0;
    int i;

    for (i = 0; i < REDLOCK_MAX_INSTANCES + 1; i++)
        many[i] = "redis://127.0.0.1:6379";
    memset(huge, 'k', sizeof huge);

    EXPECT_CODE(redlock_client_new(bad_utf8, 2, NULL, &client), REDLOCK_RESULT_INVALID_UTF8);
    EXPECT_CODE(redlock_client_new(http, 1, NULL, &client), REDLOCK_RESULT_INVALID_URL);
    EXPECT_CODE(redlock_client_new(NULL, 1, NULL, &client), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_client_new(http, 0, NULL, &client), REDLOCK_RESULT_NO_INSTANCES);
    EXPECT_CODE(redlock_client_new(many, REDLOCK_MAX_INSTANCES + 1, NULL, &client),
                REDLOCK_RESULT_TOO_MANY_INSTANCES);
    EXPECT_CODE(redlock_client_options_default(&options), REDLOCK_RESULT_OK);
    options.retry_jitter_ms = options.retry_delay_ms + 1;
    EXPECT_CODE(redlock_client_new((const char *const *)urls, (size_t)n_urls, &options, &client),
                REDLOCK_RESULT_JITTER_ABOVE_DELAY);
    EXPECT_CODE(redlock_client_options_default(NULL), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT(client == SENTINEL);
    redlock_client_free(NULL);
    redlock_lock_free(NULL);

    EXPECT_CODE(redlock_client_options_default(&options), REDLOCK_RESULT_OK);
    options.retries = 0;
    options.instance_timeout_ms = 2000; /* valgrind on a busy machine is slow */
    options.connect_timeout_ms = 5000;
    client = NULL;
    EXPECT_CODE(redlock_client_new((const char *const *)urls, (size_t)n_urls, &options, &client),
                REDLOCK_RESULT_OK);
    if (client == NULL)
        return;
    EXPECT(redlock_client_instances(client) == (size_t)n_urls);
    EXPECT_CODE(redlock_client_lock(client, (const uint8_t *)"bad-args", 8, 0, &lock),
                REDLOCK_RESULT_TTL_TOO_SHORT);
    EXPECT_CODE(redlock_client_lock(client, (const uint8_t *)huge, sizeof huge, 1000, &lock),
                REDLOCK_RESULT_KEY_TOO_LONG);
    EXPECT_CODE(redlock_client_lock(client, (const uint8_t *)"k", SIZE_MAX, 1000, &lock),
                REDLOCK_RESULT_KEY_TOO_LONG);
    EXPECT_CODE(redlock_client_lock(client, NULL, 0, 1000, &lock), REDLOCK_RESULT_EMPTY_KEY);
    EXPECT_CODE(redlock_client_lock(NULL, (const uint8_t *)"k", 1, 1000, &lock),
                REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_client_lock(client, (const uint8_t *)"k", 1, 1000, NULL),
                REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_client_lock_all(client, dup, dup_lens, 2, 1000, &lock),
                REDLOCK_RESULT_DUPLICATE_RESOURCE);
    EXPECT_CODE(redlock_client_lock_all(client, dup, dup_lens, 0, 1000, &lock),
                REDLOCK_RESULT_NO_RESOURCES);
    EXPECT(lock == SENTINEL);

    lock = NULL;
    EXPECT_CODE(redlock_client_lock(client, (const uint8_t *)"bad-args", 8, 10000, &lock),
                REDLOCK_RESULT_OK);
    EXPECT_CODE(redlock_client_try_lock(client, (const uint8_t *)"bad-args", 8, 10000, &other),
                REDLOCK_RESULT_CONTENDED);
    EXPECT(other == NULL);
    EXPECT_CODE(redlock_lock_extend(NULL, 1000, &remaining), REDLOCK_RESULT_NULL_PARAMETER);
    EXPECT_CODE(redlock_lock_extend(lock, 0, &remaining), REDLOCK_RESULT_TTL_TOO_SHORT);
    EXPECT_CODE(redlock_lock_release(lock, NULL), REDLOCK_RESULT_OK);
    EXPECT_CODE(redlock_lock_release(lock, NULL), REDLOCK_RESULT_ALREADY_RELEASED);
    EXPECT_CODE(redlock_lock_extend(lock, 1000, &remaining), REDLOCK_RESULT_ALREADY_RELEASED);
    EXPECT(!redlock_lock_is_valid(lock) && redlock_lock_remaining_ms(lock) == 0);
    EXPECT(redlock_lock_value(NULL) == NULL && !redlock_lock_is_valid(NULL));
    redlock_lock_free(lock);

    /* A lock freed while held is released by the free; the client may go first. */
    lock = NULL;
    EXPECT_CODE(redlock_client_lock(client, (const uint8_t *)"bad-args", 8, 10000, &lock),
                REDLOCK_RESULT_OK);
    redlock_client_free(client);
    EXPECT(redlock_lock_is_valid(lock));
    redlock_lock_free(lock);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s redis://host:port...\n", argv[0]);
        return 2;
    }
    results_and_version();
    config_cases();
    acquire_cases();
    op_cases();
    resp_cases();
    client_cases(argc - 1, argv + 1);
    printf("bad_args: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
