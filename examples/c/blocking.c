/*
 * Redlock's blocking client from C: one client shared by several threads, each taking the lock,
 * doing a piece of protected work, extending once, and releasing.
 *
 *   usage: blocking [options] redis://HOST:PORT...
 *     -k KEY      resource key (default "redlock:example")
 *     -t MS       lease TTL (default 10000)
 *     -n COUNT    lock / work / unlock cycles per thread (default 1)
 *     -j THREADS  threads sharing the client (default 1)
 *     -d MS       retry delay (default 200, jitter d/2)
 *     -i MS       per-instance timeout (default: 5 % of the TTL, at least 10 ms)
 *     -c MS       connect timeout (default 1000)
 *     -f FILE     the work: add 1 to the number in FILE (read, pause 2 ms, write back)
 *     -e RESULT   what every lock must end with: acquired (the default; a contended lock is
 *                 tried again, for up to 120 s), no_quorum or contended; exit 1 otherwise
 *     -q          quiet
 *
 * Build: cc -std=c99 -pthread blocking.c $(pkg-config --cflags --libs redlock)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redlock.h"

#define MAX_THREADS 16

static const char *key = "redlock:example", *file, *expect = "acquired";
static uint64_t ttl = 10000;
static unsigned long cycles = 1;
static int quiet;
static redlock_client *client;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static const char *result_name(redlock_result r) {
    switch (r) {
    case REDLOCK_RESULT_OK: return "acquired";
    case REDLOCK_RESULT_CONTENDED: return "contended";
    case REDLOCK_RESULT_NO_QUORUM: return "no_quorum";
    default: return redlock_result_message(r);
    }
}

/* The protected work: a read-modify-write that two holders at once would corrupt. */
static int add_one(const char *path, const redlock_lock *lock) {
    long value = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &value) != 1)
            value = 0;
        fclose(f);
    }
    sleep_ms(2);
    if (!redlock_lock_is_valid(lock)) {
        fprintf(stderr, "blocking: lock expired before the write; not committing\n");
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

static void *worker(void *arg) {
    long id = (long)arg;
    unsigned long done = 0;
    uint64_t give_up_at = now_ms() + 120000;
    int status = 0;

    while (done < cycles) {
        redlock_lock *lock = NULL;
        redlock_release_report report;
        uint64_t remaining = 0;
        redlock_result r = redlock_client_lock(client, (const uint8_t *)key, strlen(key), ttl, &lock);
        if (r != REDLOCK_RESULT_OK) {
            if (strcmp(expect, result_name(r)) == 0) {
                done++;
                continue;
            }
            if (strcmp(expect, "acquired") == 0 && r == REDLOCK_RESULT_CONTENDED &&
                now_ms() < give_up_at)
                continue;
            fprintf(stderr, "blocking[%ld]: expected %s, got %s (%u)\n", id, expect,
                    result_name(r), (unsigned)r);
            status = 1;
            break;
        }
        if (strcmp(expect, "acquired") != 0) {
            fprintf(stderr, "blocking[%ld]: expected %s, got the lock\n", id, expect);
            status = 1;
        }
        if (!quiet)
            printf("[%ld] holding %s = %s for %" PRIu64 " ms\n", id, key, redlock_lock_value(lock),
                   redlock_lock_remaining_ms(lock));
        if (file != NULL && add_one(file, lock) != 0)
            status = 1;
        if (done == 0) {
            r = redlock_lock_extend(lock, ttl, &remaining);
            if (r != REDLOCK_RESULT_OK) {
                fprintf(stderr, "blocking[%ld]: extend: %s\n", id, redlock_result_message(r));
                status = 1;
            } else if (!quiet) {
                printf("[%ld] extended: %" PRIu64 " ms left\n", id, remaining);
            }
        }
        r = redlock_lock_release(lock, &report);
        if (r != REDLOCK_RESULT_OK) {
            fprintf(stderr, "blocking[%ld]: release: %s\n", id, redlock_result_message(r));
            status = 1;
        } else if (!quiet) {
            printf("[%ld] released (%s, %zu deleted)\n", id,
                   report.confirmed ? "confirmed" : "unconfirmed", report.deleted);
        }
        redlock_lock_free(lock);
        done++;
    }
    return status ? (void *)1 : NULL;
}

int main(int argc, char **argv) {
    redlock_client_options options;
    pthread_t threads[MAX_THREADS];
    long n_threads = 1, t;
    int opt, status = 0;
    redlock_result r;

    if (redlock_client_options_default(&options) != REDLOCK_RESULT_OK)
        return 2;
    while ((opt = getopt(argc, argv, "k:t:n:j:d:i:c:f:e:q")) != -1) {
        switch (opt) {
        case 'k': key = optarg; break;
        case 't': ttl = strtoull(optarg, NULL, 10); break;
        case 'n': cycles = strtoul(optarg, NULL, 10); break;
        case 'j': n_threads = strtol(optarg, NULL, 10); break;
        case 'd':
            options.retry_delay_ms = strtoull(optarg, NULL, 10);
            options.retry_jitter_ms = options.retry_delay_ms / 2;
            break;
        case 'i': options.instance_timeout_ms = strtoull(optarg, NULL, 10); break;
        case 'c': options.connect_timeout_ms = strtoull(optarg, NULL, 10); break;
        case 'f': file = optarg; break;
        case 'e': expect = optarg; break;
        case 'q': quiet = 1; break;
        default:
            fprintf(stderr, "usage: %s [-k key] [-t ttl_ms] [-n cycles] [-j threads] [-d delay_ms] "
                            "[-i timeout_ms] [-c connect_ms] [-f file] [-e result] [-q] redis://host:port...\n",
                    argv[0]);
            return 2;
        }
    }
    if (n_threads < 1 || n_threads > MAX_THREADS || optind >= argc) {
        fprintf(stderr, "blocking: give 1 to %d threads and at least one URL\n", MAX_THREADS);
        return 2;
    }

    r = redlock_client_new((const char *const *)&argv[optind], (size_t)(argc - optind), &options,
                           &client);
    if (r != REDLOCK_RESULT_OK) {
        fprintf(stderr, "blocking: redlock_client_new: %s\n", redlock_result_message(r));
        return 2;
    }
    for (t = 0; t < n_threads; t++) {
        if (pthread_create(&threads[t], NULL, worker, (void *)t) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    for (t = 0; t < n_threads; t++) {
        void *ret = NULL;
        pthread_join(threads[t], &ret);
        if (ret != NULL)
            status = 1;
    }
    redlock_client_free(client);
    if (!quiet)
        printf("%ld thread(s) x %lu cycle(s), status %d\n", n_threads, cycles, status);
    return status;
}
