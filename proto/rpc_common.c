#include "proto/rpc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>
#include <sodium.h>

#include "common/fileio.h"
#include "common/log.h"
#include "proto/client.h"
#include "proto/pb.h"

const char *rpc_strerror(int rc)
{
    switch (rc) {
    case 0:                      return "success";
    case RPC_EOS:                return "end of stream";
    case RPC_ERR_INVALID_ARG:    return "invalid argument";
    case RPC_ERR_NOMEM:          return "out of memory";
    case RPC_ERR_LISTEN:         return "cannot listen on the address (in use, not local, or malformed)";
    case RPC_ERR_TLS_FILE:       return "cannot read a TLS certificate or key file";
    case RPC_ERR_TLS:            return "cannot build TLS credentials";
    case RPC_ERR_THREAD:         return "cannot start a thread";
    case RPC_ERR_CALL_START:     return "gRPC refused to start the call";
    case RPC_ERR_STATUS:         return "the call ended with a non-OK status";
    case RPC_ERR_CANCELLED:      return "the call was cancelled, failed or passed its deadline";
    case RPC_ERR_FINISHED:       return "the call is already finished";
    case RPC_ERR_NOT_FOUND:      return "metadata key not present";
    case RPC_ERR_NO_REPLY:       return "the server answered OK without a reply message";
    case RPC_ERR_INTERRUPTED:    return "the call was interrupted: this process is stopping";
    case PB_ERR_MALFORMED:       return "malformed protobuf message";
    case PB_ERR_TOO_LARGE:       return "protobuf message larger than the limit";
    case FED_ERR_ABORTED:        return "stopped by the caller's callback";
    case FED_ERR_BAD_REPLY:      return "the server's reply is malformed or incomplete";
    case FED_ERR_SIGN:           return "the request could not be signed (member key)";
    default:                     return "unknown rpc error";
    }
}

const char *rpc_status_name(grpc_status_code code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    };
    if ((unsigned)code < sizeof names / sizeof names[0])
        return names[code];
    return "UNKNOWN_STATUS";
}

void rpc_status_set(struct rpc_status *st, grpc_status_code code, const char *details,
                    size_t details_len)
{
    if (!st)
        return;
    st->code = code;
    if (details_len >= sizeof st->details)
        details_len = sizeof st->details - 1;
    if (details_len)
        memcpy(st->details, details, details_len);
    st->details[details_len] = 0;
}

int rpc_fail_named(struct rpc_status *st, const char *method, int rc, const char *reason)
{
    char line[sizeof st->details];
    if (rc == RPC_ERR_STATUS)
        snprintf(line, sizeof line, "%s: %s: %.400s", method, rpc_status_name(st->code),
                 st->details[0] ? st->details : "(no details)");
    else
        snprintf(line, sizeof line, "%s: %.400s", method, reason ? reason : rpc_strerror(rc));
    memcpy(st->details, line, sizeof line);
    return rc;
}

int rpc_buffer_copy_out(grpc_byte_buffer *bb, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return RPC_ERR_NOMEM;
    /* Exact for uncompressed messages; a decompressed one grows below. */
    size_t cap = grpc_byte_buffer_length(bb);
    uint8_t *buf = malloc(cap ? cap : 1);
    size_t used = 0;
    grpc_slice slice;
    while (buf && grpc_byte_buffer_reader_next(&reader, &slice)) {
        size_t n = GRPC_SLICE_LENGTH(slice);
        if (n > cap - used) {
            size_t want = used + n > 2 * cap ? used + n : 2 * cap;
            uint8_t *bigger = realloc(buf, want);
            if (!bigger) {
                free(buf);
                buf = NULL;
            } else {
                buf = bigger;
                cap = want;
            }
        }
        if (buf) {
            memcpy(buf + used, GRPC_SLICE_START_PTR(slice), n);
            used += n;
        }
        grpc_slice_unref(slice);
    }
    grpc_byte_buffer_reader_destroy(&reader);
    if (!buf)
        return RPC_ERR_NOMEM;
    *out = buf;
    *len = used;
    return 0;
}

void rpc_parts_release(const struct rpc_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i].release)
            parts[i].release(parts[i].arg);
}

/* The copied parts of parts[i, j) as one slice. */
static grpc_slice copied_slice(const struct rpc_part *parts, size_t i, size_t j)
{
    size_t total = 0;
    for (size_t k = i; k < j; k++)
        total += parts[k].len;
    grpc_slice slice = grpc_slice_malloc(total);
    uint8_t *dst = GRPC_SLICE_START_PTR(slice);
    for (size_t k = i; k < j; k++) {
        if (parts[k].len)
            memcpy(dst, parts[k].buf, parts[k].len);
        dst += parts[k].len;
    }
    return slice;
}

grpc_byte_buffer *rpc_buffer_copy_parts(const struct rpc_part *parts, size_t n)
{
    /* One slice per run of copied parts, one per lent part: at most n. */
    grpc_slice stack[4], *slices = n <= 4 ? stack : malloc(n * sizeof *slices);
    if (!slices) {
        rpc_parts_release(parts, n);
        return NULL;
    }
    size_t m = 0, run = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !parts[i].release)
            continue;
        if (i > run)
            slices[m++] = copied_slice(parts, run, i);
        if (i < n) {
            /* gRPC calls release(arg) when its last reference to the slice goes. */
            slices[m++] = grpc_slice_new_with_user_data((void *)parts[i].buf, parts[i].len,
                                                        parts[i].release, parts[i].arg);
        }
        run = i + 1;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, m);
    for (size_t k = 0; k < m; k++)
        grpc_slice_unref(slices[k]);
    if (slices != stack)
        free(slices);
    return bb;
}

grpc_byte_buffer *rpc_buffer_copy_in(const uint8_t *buf, size_t len)
{
    const struct rpc_part part = { buf, len, NULL, NULL };
    return rpc_buffer_copy_parts(&part, 1);
}

/* A received message: references to the slices gRPC read it into, and where each
 * ends in the message. */
struct rpc_msg {
    size_t      n, cap;
    grpc_slice *slices;
    size_t     *ends;        /* ends[i]: the message offset just past slice i */
};

void rpc_msg_free(struct rpc_msg *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        grpc_slice_unref(m->slices[i]);
    free(m->slices);
    free(m->ends);
    free(m);
}

/* Appends a slice (taken) to m; -1 when out of memory (the slice is unref'd). */
static int msg_append(struct rpc_msg *m, grpc_slice slice)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        grpc_slice *s = realloc(m->slices, cap * sizeof *s);
        if (s)
            m->slices = s;
        size_t *e = s ? realloc(m->ends, cap * sizeof *e) : NULL;
        if (!e) {
            grpc_slice_unref(slice);
            return -1;
        }
        m->ends = e;
        m->cap = cap;
    }
    size_t start = m->n ? m->ends[m->n - 1] : 0;
    m->slices[m->n] = slice;
    m->ends[m->n] = start + GRPC_SLICE_LENGTH(slice);
    m->n++;
    return 0;
}

struct rpc_msg *rpc_msg_take(grpc_byte_buffer *bb)
{
    struct rpc_msg *m = calloc(1, sizeof *m);
    grpc_byte_buffer_reader reader;
    int ok = m && grpc_byte_buffer_reader_init(&reader, bb);
    if (ok) {
        /* The reader hands out references (and decompresses a compressed message). */
        grpc_slice slice;
        while (grpc_byte_buffer_reader_next(&reader, &slice)) {
            if (ok && GRPC_SLICE_LENGTH(slice) > 0) {
                ok = msg_append(m, slice) == 0;   /* taken (unref'd on failure) */
            } else {
                grpc_slice_unref(slice);          /* empty, or after a failure */
            }
        }
        grpc_byte_buffer_reader_destroy(&reader);
    }
    grpc_byte_buffer_destroy(bb);
    if (!ok) {
        rpc_msg_free(m);
        return NULL;
    }
    return m;
}

size_t rpc_msg_len(const struct rpc_msg *m)
{
    return m->n ? m->ends[m->n - 1] : 0;
}

int rpc_msg_each(const struct rpc_msg *m, size_t off, size_t len,
                 int (*fn)(void *ctx, const uint8_t *p, size_t n), void *ctx)
{
    size_t total = rpc_msg_len(m);
    if (off > total || len > total - off)
        return RPC_ERR_INVALID_ARG;
    /* The first slice that ends past off. */
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ends[mid] <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; len > 0; i++) {
        size_t start = m->ends[i] - GRPC_SLICE_LENGTH(m->slices[i]);
        size_t at = off - start, n = m->ends[i] - off;
        if (n > len)
            n = len;
        int rc = fn(ctx, GRPC_SLICE_START_PTR(m->slices[i]) + at, n);
        if (rc != 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

static int copy_piece(void *ctx, const uint8_t *p, size_t n)
{
    uint8_t **out = ctx;
    memcpy(*out, p, n);
    *out += n;
    return 0;
}

int rpc_msg_copy(const struct rpc_msg *m, size_t off, size_t len, void *dst)
{
    uint8_t *out = dst;
    return rpc_msg_each(m, off, len, copy_piece, &out);
}

gpr_timespec rpc_deadline_after_ms(int64_t timeout_ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

int64_t rpc_ms_until(gpr_timespec t)
{
    gpr_timespec mono = gpr_convert_clock_type(t, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(mono, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
        return INT64_MAX;
    gpr_timespec left = gpr_time_sub(mono, gpr_now(GPR_CLOCK_MONOTONIC));
    if (left.tv_sec < 0)
        return 0;
    return left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

int rpc_read_pem(const char *path, char **out)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = file_read_all(path, 1u << 20, &data, &len);
    if (rc != 0) {
        log_error("rpc: cannot read TLS file %s: %s", path, strerror(-rc));
        return RPC_ERR_TLS_FILE;
    }
    if (len == 0 || memchr(data, 0, len)) {
        log_error("rpc: TLS file %s is empty or not PEM text", path);
        rpc_free_pem((char *)data);
        return RPC_ERR_TLS_FILE;
    }
    *out = (char *)data;
    return 0;
}

void rpc_free_pem(char *pem)
{
    if (!pem)
        return;
    sodium_memzero(pem, strlen(pem));
    free(pem);
}

void rpc_cq_destroy(grpc_completion_queue *cq)
{
    if (!cq)
        return;
    grpc_completion_queue_shutdown(cq);
    grpc_event ev;
    do {
        ev = grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } while (ev.type != GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(cq);
}
