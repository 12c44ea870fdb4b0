#include "tests/support/rpc_attack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#define ZERO_BYTES (1u << 20)

struct attack_channel {
    grpc_channel *ch;
    uint8_t *zeros;
};

struct attack_call {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer **bbs;
    size_t n_bbs;
    int sends_pending, send_in_flight, done;
    grpc_status_code code;
    grpc_slice details;
    grpc_metadata_array initial, trailing;
};

struct attack_channel *attack_connect(const char *source_ip, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
    inet_pton(AF_INET, source_ip, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((uint16_t)port);
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct attack_channel *a = calloc(1, sizeof *a);
    a->zeros = calloc(1, ZERO_BYTES);
    grpc_init();
    grpc_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.type = GRPC_ARG_INTEGER;
    arg.key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    arg.value.integer = -1;
    grpc_channel_args args = { .num_args = 1, .args = &arg };
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    a->ch = grpc_channel_create_from_fd("attacker", fd, creds, &args);
    grpc_channel_credentials_release(creds);
    return a;
}

void attack_close(struct attack_channel *a)
{
    if (!a)
        return;
    grpc_channel_destroy(a->ch);
    free(a->zeros);
    free(a);
    grpc_shutdown();
}

/* A message of len bytes whose slices all point into the shared zero buffer. */
static grpc_byte_buffer *zero_message(struct attack_channel *a, size_t len)
{
    size_t n = len / ZERO_BYTES + 1;
    grpc_slice *s = calloc(n, sizeof *s);
    size_t k = 0, left = len;
    do {
        size_t take = left < ZERO_BYTES ? left : ZERO_BYTES;
        s[k++] = grpc_slice_from_static_buffer(a->zeros, take);
        left -= take;
    } while (left > 0);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, k);
    for (size_t i = 0; i < k; i++)
        grpc_slice_unref(s[i]);
    free(s);
    return bb;
}

enum { TAG_START = 1, TAG_STATUS, TAG_SEND };

struct attack_call *attack_call_start(struct attack_channel *a, const char *method,
                                      const size_t *sizes, size_t n, int64_t timeout_ms)
{
    struct attack_call *c = calloc(1, sizeof *c);
    c->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice m = grpc_slice_from_copied_string(method);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    c->call = grpc_channel_create_call(a->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m, NULL,
                                       deadline, NULL);
    grpc_slice_unref(m);
    grpc_metadata_array_init(&c->initial);
    grpc_metadata_array_init(&c->trailing);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->initial;
    grpc_call_start_batch(c->call, ops, 2, (void *)TAG_START, NULL);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.status = &c->code;
    ops[0].data.recv_status_on_client.status_details = &c->details;
    ops[0].data.recv_status_on_client.trailing_metadata = &c->trailing;
    grpc_call_start_batch(c->call, ops, 1, (void *)TAG_STATUS, NULL);
    /* One send at a time: each waits for the previous in attack_call_wait. */
    c->bbs = calloc(n + 1, sizeof *c->bbs);
    for (size_t i = 0; i < n; i++)
        c->bbs[c->n_bbs++] = zero_message(a, sizes[i]);
    c->sends_pending = (int)n;
    return c;
}

/* Starts the next send if there is one and none is in flight. */
static void next_send(struct attack_call *c)
{
    if (c->send_in_flight || c->sends_pending == 0)
        return;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->bbs[c->n_bbs - (size_t)c->sends_pending];
    if (grpc_call_start_batch(c->call, &op, 1, (void *)TAG_SEND, NULL) == GRPC_CALL_OK)
        c->send_in_flight = 1;
    c->sends_pending--;
}

int attack_call_wait(struct attack_call *c, int64_t wait_ms, grpc_status_code *code,
                     char *details, size_t cap)
{
    gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
    while (!c->done) {
        next_send(c);
        grpc_event ev = grpc_completion_queue_next(c->cq, until, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            return 0;
        if (ev.tag == (void *)TAG_STATUS)
            c->done = 1;
        if (ev.tag == (void *)TAG_SEND)
            c->send_in_flight = 0;
    }
    if (code)
        *code = c->code;
    if (details && cap) {
        size_t n = GRPC_SLICE_LENGTH(c->details);
        if (n >= cap)
            n = cap - 1;
        memcpy(details, GRPC_SLICE_START_PTR(c->details), n);
        details[n] = 0;
    }
    return 1;
}

int attack_calls_wait_ended(struct attack_call **calls, int n, int want, int64_t limit_ms,
                            grpc_status_code code, const char *pattern, char *unexpected,
                            size_t cap)
{
    gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(limit_ms, GPR_TIMESPAN));
    int ended = 0;
    uint8_t *seen = calloc((size_t)n, 1);
    while (ended < want && gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), until) < 0)
        for (int i = 0; i < n && ended >= 0; i++) {
            grpc_status_code got;
            char details[300];
            if (seen[i] || !attack_call_wait(calls[i], 5, &got, details, sizeof details))
                continue;
            seen[i] = 1;
            ended++;
            if (got != code || !strstr(details, pattern)) {
                snprintf(unexpected, cap, "call %d: status %d \"%s\"", i, (int)got, details);
                ended = -1;
            }
        }
    free(seen);
    return ended;
}

void attack_call_free(struct attack_call *c)
{
    if (!c)
        return;
    if (!c->done)
        grpc_call_cancel(c->call, NULL);
    grpc_completion_queue_shutdown(c->cq);
    while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_call_unref(c->call);
    grpc_completion_queue_destroy(c->cq);
    if (c->done)
        grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial);
    grpc_metadata_array_destroy(&c->trailing);
    for (size_t i = 0; i < c->n_bbs; i++)
        grpc_byte_buffer_destroy(c->bbs[i]);
    free(c->bbs);
    free(c);
}

/* ------------------------------------------------------------------ RSS */

long rss_now_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

struct rss_sampler {
    pthread_t thread;
    atomic_int stop;
    long start_kib;
    atomic_long peak_kib;
};

static void *sampler_main(void *arg)
{
    struct rss_sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        long r = rss_now_kib();
        if (r > atomic_load(&s->peak_kib))
            atomic_store(&s->peak_kib, r);
        usleep(5000);
    }
    return NULL;
}

struct rss_sampler *rss_sampler_start(void)
{
    struct rss_sampler *s = calloc(1, sizeof *s);
    s->start_kib = rss_now_kib();
    atomic_init(&s->peak_kib, s->start_kib);
    atomic_init(&s->stop, 0);
    pthread_create(&s->thread, NULL, sampler_main, s);
    return s;
}

long rss_sampler_stop(struct rss_sampler *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    long growth = (atomic_load(&s->peak_kib) - s->start_kib) / 1024;
    free(s);
    return growth;
}
