/*
 * Redlock's state machine driven by a C program that does its own I/O: one non-blocking hiredis
 * connection per Redis instance, all of them in one poll() loop, and the program's own
 * monotonic clock. The library never touches a socket or a clock; it says what to send
 * (redlock_op_poll), and the loop feeds back what happened.
 *
 *   usage: hiredis_poll [options] redis://HOST:PORT...
 *     -k KEY      resource key (default "redlock:example")
 *     -t MS       lease TTL (default 10000)
 *     -n COUNT    lock / work / unlock cycles (default 1)
 *     -r RETRIES  retries per acquire (default 3), -d MS retry delay (default 200, jitter d/2)
 *     -i MS       per-instance timeout (default: 5 % of the TTL, at least 10 ms)
 *     -f FILE     the work: add 1 to the number in FILE (read, pause 2 ms, write back)
 *     -e OUTCOME  what every acquire must end with: acquired (the default; a contended acquire
 *                 is tried again, for up to 120 s), no_quorum or contended; exit 1 otherwise
 *     -u          do the work without taking the lock (to show what the lock prevents)
 *     -q          quiet
 *
 * Build: cc -std=c99 hiredis_poll.c $(pkg-config --cflags --libs redlock hiredis)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "redlock.h"

#define MAX_PENDING 256

/* A command in flight on one connection: which operation sent it, and its request id. Replies
 * come back in order, so a FIFO per connection matches each reply to its command. */
struct pending {
    uint64_t op_seq;
    uint32_t request;
};

struct instance {
    char host[256];
    int port;
    redisContext *ctx; /* NULL while disconnected; reconnected on the next send */
    int want_write;    /* commands appended but not yet written */
    struct pending fifo[MAX_PENDING];
    size_t head, count;
};

static struct instance instances[REDLOCK_MAX_INSTANCES];
static size_t n_instances;
static int quiet;

/* The clock fed to the state machine: monotonic, counting suspended time where possible. */
static uint64_t now_ms(void) {
    struct timespec ts;
#ifdef CLOCK_BOOTTIME
    if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
#endif
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void die(const char *what, redlock_result r) {
    fprintf(stderr, "hiredis_poll: %s: %s (%u)\n", what, redlock_result_message(r), (unsigned)r);
    exit(2);
}

#define CHECK(call)                                                                        \
    do {                                                                                   \
        redlock_result r_ = (call);                                                        \
        if (r_ != REDLOCK_RESULT_OK)                                                       \
            die(#call, r_);                                                                \
    } while (0)

static int parse_url(const char *url, struct instance *inst) {
    const char *prefix = "redis://";
    const char *rest, *colon;
    size_t host_len;
    if (strncmp(url, prefix, strlen(prefix)) != 0)
        return -1;
    rest = url + strlen(prefix);
    colon = strrchr(rest, ':');
    if (colon == NULL || colon == rest)
        return -1;
    host_len = (size_t)(colon - rest);
    if (host_len >= sizeof inst->host)
        return -1;
    memcpy(inst->host, rest, host_len);
    inst->host[host_len] = '\0';
    inst->port = atoi(colon + 1);
    return inst->port > 0 ? 0 : -1;
}

/* The connection failed: every command in flight on it, for the running operation, failed. */
static void fail_instance(size_t i, redlock_op *op, uint64_t op_seq) {
    struct instance *inst = &instances[i];
    uint64_t now = now_ms();
    while (inst->count > 0) {
        struct pending p = inst->fifo[inst->head];
        inst->head = (inst->head + 1) % MAX_PENDING;
        inst->count--;
        if (p.op_seq == op_seq)
            CHECK(redlock_op_handle_transport_error(op, (uint32_t)i, p.request, now));
    }
    if (inst->ctx != NULL) {
        if (!quiet)
            fprintf(stderr, "hiredis_poll: %s:%d: %s\n", inst->host, inst->port,
                    inst->ctx->errstr[0] ? inst->ctx->errstr : "connection failed");
        redisFree(inst->ctx);
        inst->ctx = NULL;
    }
    inst->want_write = 0;
}

/* On a new connection, queues SCRIPT LOAD for every script first (as the blocking client does):
 * a fresh or restarted instance answers EVALSHA with NOSCRIPT, and while an operation resends its
 * own commands as EVAL, a cleanup release that gets NOSCRIPT would not be resent. The replies
 * belong to no operation (op_seq 0) and are dropped. */
static int load_scripts(struct instance *inst) {
    size_t k;
    for (k = 0; k < redlock_script_count(); k++) {
        const uint8_t *source;
        size_t len;
        const char *argv[3];
        size_t argv_len[3];
        struct pending p;
        if (redlock_script_source(k, &source, &len) != REDLOCK_RESULT_OK ||
            inst->count == MAX_PENDING)
            return -1;
        argv[0] = "SCRIPT";
        argv_len[0] = 6;
        argv[1] = "LOAD";
        argv_len[1] = 4;
        argv[2] = (const char *)source;
        argv_len[2] = len;
        if (redisAppendCommandArgv(inst->ctx, 3, argv, argv_len) != REDIS_OK)
            return -1;
        p.op_seq = 0;
        p.request = 0;
        inst->fifo[(inst->head + inst->count) % MAX_PENDING] = p;
        inst->count++;
    }
    inst->want_write = 1;
    return 0;
}

/* Hands one SEND output to its instance's connection (written when the socket is ready). */
static void send_command(const redlock_output *out, redlock_op *op, uint64_t op_seq) {
    struct instance *inst = &instances[out->instance];
    struct pending p;
    if (inst->ctx == NULL) {
        inst->ctx = redisConnectNonBlock(inst->host, inst->port);
        if (inst->ctx == NULL || inst->ctx->err || load_scripts(inst) != 0) {
            CHECK(redlock_op_handle_transport_error(op, out->instance, out->request, now_ms()));
            fail_instance(out->instance, op, op_seq);
            return;
        }
    }
    if (inst->count == MAX_PENDING) {
        CHECK(redlock_op_handle_transport_error(op, out->instance, out->request, now_ms()));
        return;
    }
    p.op_seq = op_seq;
    p.request = out->request;
    inst->fifo[(inst->head + inst->count) % MAX_PENDING] = p;
    inst->count++;
    /* argv/argv_len point into the operation until the next call on it: hiredis copies them
     * into its output buffer right here. */
    if (redisAppendCommandArgv(inst->ctx, (int)out->argc, (const char **)out->argv,
                               out->argv_len) != REDIS_OK) {
        fail_instance(out->instance, op, op_seq);
        return;
    }
    inst->want_write = 1;
}

/* A hiredis reply as the state machine reads it. */
static redlock_reply to_reply(const redisReply *r) {
    redlock_reply reply;
    memset(&reply, 0, sizeof reply);
    switch (r->type) {
    case REDIS_REPLY_STATUS:
        reply.kind = (r->len == 2 && memcmp(r->str, "OK", 2) == 0) ? REDLOCK_REPLY_KIND_OK
                                                                    : REDLOCK_REPLY_KIND_OTHER;
        break;
    case REDIS_REPLY_NIL:
        reply.kind = REDLOCK_REPLY_KIND_NIL;
        break;
    case REDIS_REPLY_INTEGER:
        reply.kind = REDLOCK_REPLY_KIND_INTEGER;
        reply.integer = (int64_t)r->integer;
        break;
    case REDIS_REPLY_ERROR:
        reply.kind = REDLOCK_REPLY_KIND_ERROR;
        reply.text = (const uint8_t *)r->str;
        reply.text_len = (size_t)r->len;
        break;
    default:
        reply.kind = REDLOCK_REPLY_KIND_OTHER;
    }
    return reply;
}

/* Reads what instance i sent and feeds every complete reply to the operation. */
static void read_replies(size_t i, redlock_op *op, uint64_t op_seq) {
    struct instance *inst = &instances[i];
    void *raw = NULL;
    if (redisBufferRead(inst->ctx) != REDIS_OK) {
        fail_instance(i, op, op_seq);
        return;
    }
    for (;;) {
        redisReply *r;
        struct pending p;
        uint64_t at;
        if (redisGetReply(inst->ctx, &raw) != REDIS_OK) {
            fail_instance(i, op, op_seq);
            return;
        }
        if (raw == NULL)
            return;
        r = raw;
        at = now_ms();
        if (inst->count > 0) {
            p = inst->fifo[inst->head];
            inst->head = (inst->head + 1) % MAX_PENDING;
            inst->count--;
            /* A reply to an earlier operation (a late answer) is dropped: request ids are only
             * unique within one operation. */
            if (p.op_seq == op_seq) {
                redlock_reply reply = to_reply(r);
                CHECK(redlock_op_handle_reply(op, (uint32_t)i, p.request, &reply, at));
            }
        }
        freeReplyObject(r);
    }
}

/* Writes what is buffered for one instance, waiting up to a second for the socket. */
static void flush(struct instance *inst) {
    uint64_t give_up = now_ms() + 1000;
    int done = !inst->want_write;
    while (!done && now_ms() < give_up) {
        struct pollfd fd;
        fd.fd = inst->ctx->fd;
        fd.events = POLLOUT;
        fd.revents = 0;
        if (poll(&fd, 1, 100) > 0 && redisBufferWrite(inst->ctx, &done) != REDIS_OK)
            break;
    }
    redisFree(inst->ctx);
    inst->ctx = NULL;
}

/* Drives one operation to DONE and returns its outcome. */
static redlock_outcome drive(redlock_op *op) {
    static uint64_t op_counter;
    uint64_t op_seq = ++op_counter;
    for (;;) {
        redlock_output out;
        struct pollfd fds[REDLOCK_MAX_INSTANCES];
        size_t idx[REDLOCK_MAX_INSTANCES];
        nfds_t nfds = 0;
        uint64_t now;
        int timeout, ready;
        size_t k;

        /* Drain the outputs: send everything, then wait. */
        CHECK(redlock_op_poll(op, &out));
        if (out.kind == REDLOCK_OUTPUT_KIND_SEND) {
            send_command(&out, op, op_seq);
            continue;
        }
        if (out.kind == REDLOCK_OUTPUT_KIND_DONE)
            return out.outcome;

        for (k = 0; k < n_instances; k++) {
            if (instances[k].ctx == NULL)
                continue;
            fds[nfds].fd = instances[k].ctx->fd;
            fds[nfds].events = POLLIN | (instances[k].want_write ? POLLOUT : 0);
            fds[nfds].revents = 0;
            idx[nfds++] = k;
        }
        now = now_ms();
        timeout = out.until_ms > now ? (int)(out.until_ms - now) : 0;
        ready = poll(fds, nfds, timeout);
        if (ready < 0 && errno != EINTR) {
            perror("poll");
            exit(2);
        }
        for (k = 0; ready > 0 && k < nfds; k++) {
            size_t i = idx[k];
            if (fds[k].revents & POLLOUT) {
                int done = 0;
                if (redisBufferWrite(instances[i].ctx, &done) != REDIS_OK) {
                    fail_instance(i, op, op_seq);
                    continue;
                }
                if (done)
                    instances[i].want_write = 0;
            }
            if (fds[k].revents & (POLLIN | POLLHUP | POLLERR))
                read_replies(i, op, op_seq);
        }
        now = now_ms();
        if (now >= out.until_ms)
            CHECK(redlock_op_handle_timeout(op, now));
    }
}

static const char *outcome_name(redlock_outcome o) {
    switch (o) {
    case REDLOCK_OUTCOME_ACQUIRED: return "acquired";
    case REDLOCK_OUTCOME_EXTENDED: return "extended";
    case REDLOCK_OUTCOME_RELEASED: return "released";
    case REDLOCK_OUTCOME_RELEASE_UNCONFIRMED: return "release_unconfirmed";
    case REDLOCK_OUTCOME_CONTENDED: return "contended";
    case REDLOCK_OUTCOME_NO_QUORUM: return "no_quorum";
    case REDLOCK_OUTCOME_VALIDITY_EXHAUSTED: return "validity_exhausted";
    case REDLOCK_OUTCOME_CANCELLED: return "cancelled";
    case REDLOCK_OUTCOME_CLOCK_WENT_BACKWARDS: return "clock_went_backwards";
    case REDLOCK_OUTCOME_LOST: return "lost";
    case REDLOCK_OUTCOME_EXPIRED: return "expired";
    default: return "other";
    }
}

static const char *status_name(redlock_instance_status s) {
    switch (s) {
    case REDLOCK_INSTANCE_STATUS_NOT_SENT: return "not sent";
    case REDLOCK_INSTANCE_STATUS_PENDING: return "pending";
    case REDLOCK_INSTANCE_STATUS_YES: return "yes";
    case REDLOCK_INSTANCE_STATUS_HELD: return "held";
    case REDLOCK_INSTANCE_STATUS_SERVER_ERROR: return "server error";
    case REDLOCK_INSTANCE_STATUS_TRANSPORT_ERROR: return "transport error";
    case REDLOCK_INSTANCE_STATUS_TIMED_OUT: return "timed out";
    case REDLOCK_INSTANCE_STATUS_UNEXPECTED_REPLY: return "unexpected reply";
    default: return "unknown";
    }
}

static void print_report(const redlock_op *op, const char *what) {
    size_t i;
    if (quiet)
        return;
    printf("%s: %s after %u attempt(s):", what, outcome_name(redlock_op_outcome(op)),
           (unsigned)redlock_op_attempts(op));
    for (i = 0; i < n_instances; i++) {
        redlock_instance_report report;
        CHECK(redlock_op_report(op, (uint32_t)i, &report));
        printf(" [%zu] %s", i, status_name(report.status));
    }
    printf("\n");
}

/* The protected work: a read-modify-write another holder would corrupt. */
static int add_one(const char *path, const redlock_lease *lease) {
    long value = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &value) != 1)
            value = 0;
        fclose(f);
    }
    sleep_ms(2);
    /* Commit only while the lease is still valid: past it, another holder may be writing. */
    if (lease != NULL && !redlock_lease_is_valid(lease, now_ms())) {
        fprintf(stderr, "hiredis_poll: lease expired before the write; not committing\n");
        return -1;
    }
    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fprintf(f, "%ld\n", value + 1);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    const char *key = "redlock:example", *file = NULL, *expect = "acquired";
    uint64_t ttl = 10000, delay = 200, instance_timeout = 0;
    unsigned long cycles = 1, retries = 3, done_cycles = 0;
    int unlocked = 0, opt, status = 0;
    uint64_t give_up_at;
    redlock_config *config = NULL;
    size_t i;

    while ((opt = getopt(argc, argv, "k:t:n:r:d:i:f:e:uq")) != -1) {
        switch (opt) {
        case 'k': key = optarg; break;
        case 't': ttl = strtoull(optarg, NULL, 10); break;
        case 'n': cycles = strtoul(optarg, NULL, 10); break;
        case 'r': retries = strtoul(optarg, NULL, 10); break;
        case 'd': delay = strtoull(optarg, NULL, 10); break;
        case 'i': instance_timeout = strtoull(optarg, NULL, 10); break;
        case 'f': file = optarg; break;
        case 'e': expect = optarg; break;
        case 'u': unlocked = 1; break;
        case 'q': quiet = 1; break;
        default:
            fprintf(stderr, "usage: %s [-k key] [-t ttl_ms] [-n cycles] [-r retries] "
                            "[-d delay_ms] [-i timeout_ms] [-f file] [-e outcome] [-u] [-q] "
                            "redis://host:port...\n",
                    argv[0]);
            return 2;
        }
    }
    n_instances = (size_t)(argc - optind);
    if (n_instances == 0 || n_instances > REDLOCK_MAX_INSTANCES) {
        fprintf(stderr, "hiredis_poll: give 1 to %d redis:// URLs\n", REDLOCK_MAX_INSTANCES);
        return 2;
    }
    for (i = 0; i < n_instances; i++) {
        if (parse_url(argv[optind + (int)i], &instances[i]) != 0) {
            fprintf(stderr, "hiredis_poll: not a redis://HOST:PORT URL: %s\n",
                    argv[optind + (int)i]);
            return 2;
        }
    }

    CHECK(redlock_config_new((uint32_t)n_instances, ttl, &config));
    CHECK(redlock_config_set_retry(config, (uint32_t)retries, delay, delay / 2));
    if (instance_timeout > 0)
        CHECK(redlock_config_set_instance_timeout(config, instance_timeout));

    give_up_at = now_ms() + 120000;
    while (done_cycles < cycles) {
        redlock_op *acquire = NULL, *release = NULL;
        redlock_lease *lease = NULL;
        redlock_outcome outcome;

        if (unlocked) {
            if (file != NULL && add_one(file, NULL) != 0)
                status = 1;
            done_cycles++;
            continue;
        }

        CHECK(redlock_acquire_new(config, (const uint8_t *)key, strlen(key), now_ms(), &acquire));
        outcome = drive(acquire);
        print_report(acquire, "acquire");
        if (outcome != REDLOCK_OUTCOME_ACQUIRED) {
            redlock_op_free(acquire);
            if (strcmp(expect, outcome_name(outcome)) == 0) {
                done_cycles++;
                continue;
            }
            if (strcmp(expect, "acquired") == 0 && outcome == REDLOCK_OUTCOME_CONTENDED &&
                now_ms() < give_up_at)
                continue; /* someone else holds it: try again */
            fprintf(stderr, "hiredis_poll: expected %s, got %s\n", expect, outcome_name(outcome));
            status = 1;
            break;
        }
        if (strcmp(expect, "acquired") != 0) {
            fprintf(stderr, "hiredis_poll: expected %s, got acquired\n", expect);
            status = 1;
        }
        CHECK(redlock_op_lease(acquire, &lease));
        redlock_op_free(acquire);
        if (!quiet)
            printf("holding %s = %s for %" PRIu64 " ms\n", key, redlock_lease_value(lease),
                   redlock_lease_remaining_ms(lease, now_ms()));

        if (file != NULL && add_one(file, lease) != 0)
            status = 1;

        CHECK(redlock_release_new(config, lease, now_ms(), &release));
        outcome = drive(release);
        print_report(release, "release");
        if (outcome != REDLOCK_OUTCOME_RELEASED) /* keys left behind expire with their TTL */
            fprintf(stderr, "hiredis_poll: release %s\n", outcome_name(outcome));
        redlock_op_free(release);
        redlock_lease_free(lease);
        done_cycles++;
    }

    /* A failed acquire hands out its cleanup releases just before DONE: write them out before
     * closing, or the keys of the failed attempt would stay until their TTL. */
    for (i = 0; i < n_instances; i++)
        if (instances[i].ctx != NULL)
            flush(&instances[i]);
    redlock_config_free(config);
    if (!quiet)
        printf("%lu cycle(s), status %d\n", done_cycles, status);
    return status;
}
