#define _GNU_SOURCE
#include "bench/lib/loopback_copy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/why.h"

#define IO_CHUNK (1u << 20)   /* bytes per send call, and the receive buffer */
#define PROBE_TIMEOUT_S 10

/* The start line: every thread waits at it, with its connection made (and its handshake
 * done or failed), until the main thread starts the clock and opens it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, open;
};

/* One end of one connection. */
struct end {
    int fd;
    SSL *ssl;                 /* NULL in plain TCP */
    const uint8_t *buf;       /* the sender's bytes; the receiver's buffer (IO_CHUNK) */
    size_t len;
    uint64_t got;             /* what the receiver received */
    int failed;
    char why[200];
    struct gate *gate;
};

/* One loopback_copy call. */
struct copy {
    int count;
    SSL_CTX *sctx, *cctx;       /* NULL in plain TCP */
    struct end *ends;           /* [2i] sender, [2i+1] receiver of connection i */
    uint8_t *rbufs;             /* the receivers' buffers, IO_CHUNK each */
    pthread_t *th;
    int started;                /* threads running (ends[0, started)) */
    struct gate gate;
};

/* OpenSSL's first queued error in words, else strerror(err_no), else "". */
static const char *reason(int err_no, char *buf, size_t cap)
{
    unsigned long code = ERR_get_error();
    buf[0] = 0;
    if (code)
        ERR_error_string_n(code, buf, cap);
    else if (err_no)
        snprintf(buf, cap, "%s", strerror(err_no));
    return buf;
}

/* e failed at what: says why (OpenSSL's queue or err_no) and, before the gate, ends its
 * connection, so that the other end's handshake or transfer fails too, not waits. */
static void end_fail(struct end *e, const char *what, int err_no)
{
    char r[160];
    reason(err_no, r, sizeof r);
    snprintf(e->why, sizeof e->why, "%s failed%s%s", what, r[0] ? ": " : "", r);
    e->failed = 1;
    shutdown(e->fd, SHUT_RDWR);
}

static void wait_at_gate(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->ready++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* A write to a connection the other end reset fails with EPIPE instead of raising
 * SIGPIPE (OpenSSL's socket BIO writes with write()): the signal stays pending on this
 * thread and goes with it. */
static void block_sigpipe(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void *send_end(void *arg)
{
    struct end *e = arg;
    block_sigpipe();
    ERR_clear_error();
    if (e->ssl && SSL_accept(e->ssl) != 1)
        end_fail(e, "the sender's TLS handshake", 0);
    wait_at_gate(e->gate);
    size_t off = 0;
    while (!e->failed && off < e->len) {
        size_t n = e->len - off < IO_CHUNK ? e->len - off : IO_CHUNK, w = 0;
        if (e->ssl) {
            if (SSL_write_ex(e->ssl, e->buf + off, n, &w) != 1)
                end_fail(e, "SSL_write", errno);
        } else {
            ssize_t r = send(e->fd, e->buf + off, n, MSG_NOSIGNAL);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                end_fail(e, "send", r < 0 ? errno : EPIPE);
            else
                w = (size_t)r;
        }
        off += w;
    }
    /* close_notify: the receiver's clean end of the stream */
    if (e->ssl && !e->failed && SSL_shutdown(e->ssl) < 0)
        end_fail(e, "SSL_shutdown (close_notify)", errno);
    shutdown(e->fd, SHUT_WR);   /* the descriptor itself is closed after both ends joined */
    return NULL;
}

static void *recv_end(void *arg)
{
    struct end *e = arg;
    uint8_t *buf = (uint8_t *)e->buf;
    block_sigpipe();
    ERR_clear_error();
    if (e->ssl && SSL_connect(e->ssl) != 1)
        end_fail(e, "the receiver's TLS handshake", 0);
    wait_at_gate(e->gate);
    while (!e->failed) {
        if (e->ssl) {
            size_t r = 0;
            if (SSL_read_ex(e->ssl, buf, IO_CHUNK, &r) != 1) {
                if (SSL_get_error(e->ssl, 0) != SSL_ERROR_ZERO_RETURN)
                    end_fail(e, "SSL_read", errno);
                break;
            }
            e->got += r;
        } else {
            ssize_t r = recv(e->fd, buf, IO_CHUNK, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                end_fail(e, "recv", errno);
            if (r <= 0)
                break;
            e->got += (uint64_t)r;
        }
    }
    if (e->failed) {   /* unread bytes: closing resets the connection, which ends the
                        * sender's write (a shut-down receiving side would not) */
        close(e->fd);
        e->fd = -1;
    }
    return NULL;
}

/* Seconds on a clock: CLOCK_MONOTONIC (wall) or CLOCK_PROCESS_CPUTIME_ID (all threads). */
static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* TLS 1.3 only, the one suite, and user-space crypto as gRPC's (no kernel TLS). NULL
 * with why in err. */
static SSL_CTX *tls_context(int server, const struct loopback_tls *tls, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    const char *what = "SSL_CTX_new";
    if (!c)
        goto fail;
    what = "TLS 1.3 only";
    if (SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1)
        goto fail;
#ifdef SSL_OP_ENABLE_KTLS
    SSL_CTX_clear_options(c, SSL_OP_ENABLE_KTLS);
#endif
    what = "the cipher suite";
    if (SSL_CTX_set_ciphersuites(c, tls->suite) != 1)
        goto fail;
    if (server) {
        what = tls->cert_file;
        if (SSL_CTX_use_certificate_chain_file(c, tls->cert_file) != 1)
            goto fail;
        what = tls->key_file;
        if (SSL_CTX_use_PrivateKey_file(c, tls->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c) != 1)
            goto fail;
        SSL_CTX_set_num_tickets(c, 0);   /* nothing but the copy in the stream */
    } else {
        what = tls->ca_file;
        if (SSL_CTX_load_verify_locations(c, tls->ca_file, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    }
    return c;
fail:;
    char r[160];
    reason(0, r, sizeof r);
    why_fail(err, errlen, -1, "TLS %s context for %s: %s%s%s", server ? "server" : "client",
             tls->suite, what, r[0] ? ": " : "", r);
    SSL_CTX_free(c);
    return NULL;
}

/* A listening socket on 127.0.0.1, any port: its fd and address, or -1. */
static int listen_loopback(int backlog, struct sockaddr_in *a)
{
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof *a;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0)
        return -1;
    if (bind(ls, (struct sockaddr *)a, sizeof *a) != 0 || listen(ls, backlog) != 0 ||
        getsockname(ls, (struct sockaddr *)a, &al) != 0) {
        int e = errno;
        close(ls);
        errno = e;
        return -1;
    }
    return ls;
}

/* Makes every connection: the receiver's end connected to the sender's, each given its
 * SSL in TLS. 0, or -1 with why in err. */
static int connect_all(struct copy *x, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    struct sockaddr_in a;
    int ls = listen_loopback(x->count, &a);
    if (ls < 0)
        return why_fail(err, errlen, -1, "cannot listen on loopback: %s", strerror(errno));
    int rc = 0;
    for (int i = 0; rc == 0 && i < x->count; i++) {
        struct end *s = &x->ends[2 * i], *r = &x->ends[2 * i + 1];
        s->buf = buf;
        s->len = len;
        r->buf = x->rbufs + (size_t)i * IO_CHUNK;
        r->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            (s->fd = accept(ls, NULL, NULL)) < 0)
            rc = why_fail(err, errlen, -1, "connection %d of %d: %s", i + 1, x->count,
                          strerror(errno));
        else if (x->sctx && (!(s->ssl = SSL_new(x->sctx)) || !(r->ssl = SSL_new(x->cctx)) ||
                             SSL_set_fd(s->ssl, s->fd) != 1 || SSL_set_fd(r->ssl, r->fd) != 1))
            rc = why_fail(err, errlen, -1, "connection %d of %d: SSL_new / SSL_set_fd failed",
                          i + 1, x->count);
    }
    close(ls);
    return rc;
}

/* Starts a thread for every end; when one cannot start, ends every connection so that
 * no handshake waits for a missing end. 0, or -1 with why in err (x->started says how
 * many run). */
static int start_all(struct copy *x, char *err, size_t errlen)
{
    for (; x->started < x->count * 2; x->started++) {
        struct end *e = &x->ends[x->started];
        if (pthread_create(&x->th[x->started], NULL, x->started % 2 ? recv_end : send_end, e)
            != 0) {
            for (int i = 0; i < x->count * 2; i++)
                shutdown(x->ends[i].fd, SHUT_RDWR);
            return why_fail(err, errlen, -1, "cannot start thread %d of %d", x->started + 1,
                            x->count * 2);
        }
    }
    return 0;
}

/* Waits for every started thread at the gate, opens it and joins them: the wall and
 * CPU seconds from the opening to the last join, and the bytes received. When not every
 * thread started, the ones that did are told to stop first. */
static uint64_t run_all(struct copy *x, double *wall_s, double *cpu_s)
{
    pthread_mutex_lock(&x->gate.mu);
    while (x->gate.ready < x->started)
        pthread_cond_wait(&x->gate.cv, &x->gate.mu);
    if (x->started < x->count * 2)
        for (int i = 0; i < x->started; i++)
            x->ends[i].failed = 1;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    x->gate.open = 1;
    pthread_cond_broadcast(&x->gate.cv);
    pthread_mutex_unlock(&x->gate.mu);
    uint64_t total = 0;
    for (int i = 0; i < x->started; i++) {
        pthread_join(x->th[i], NULL);
        if (i % 2)
            total += x->ends[i].got;
    }
    *wall_s = clock_s(CLOCK_MONOTONIC) - t0;
    *cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    return total;
}

static void release(struct copy *x)
{
    for (int i = 0; x->ends && i < x->count * 2; i++) {
        SSL_free(x->ends[i].ssl);   /* SSL_set_fd's BIO does not close the fd */
        if (x->ends[i].fd >= 0)
            close(x->ends[i].fd);
    }
    SSL_CTX_free(x->sctx);
    SSL_CTX_free(x->cctx);
    free(x->ends);
    free(x->rbufs);
    free(x->th);
}

int loopback_copy(const uint8_t *buf, size_t len, int count, const struct loopback_tls *tls,
                  struct loopback_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (count < 1)
        return why_fail(err, errlen, -1, "at least one receiver (got %d)", count);
    struct copy x = { .count = count, .gate = { .mu = PTHREAD_MUTEX_INITIALIZER,
                                                .cv = PTHREAD_COND_INITIALIZER } };
    x.ends = calloc((size_t)count * 2, sizeof *x.ends);
    x.th = calloc((size_t)count * 2, sizeof *x.th);
    x.rbufs = malloc((size_t)count * IO_CHUNK);
    int rc = -1;
    if (!x.ends || !x.th || !x.rbufs) {
        why_fail(err, errlen, -1, "out of memory for %d connections", count);
        goto out;
    }
    for (int i = 0; i < count * 2; i++)
        x.ends[i] = (struct end){ .fd = -1, .gate = &x.gate };
    if (tls && (!(x.sctx = tls_context(1, tls, err, errlen)) ||
                !(x.cctx = tls_context(0, tls, err, errlen))))
        goto out;
    if (connect_all(&x, buf, len, err, errlen) != 0)
        goto out;
    int started = start_all(&x, err, errlen);
    double wall_s, cpu_s;
    uint64_t total = run_all(&x, &wall_s, &cpu_s);
    if (started != 0)
        goto out;
    for (int i = 0; i < count * 2; i++)
        if (x.ends[i].failed) {
            why_fail(err, errlen, -1, "connection %d: %s", i / 2 + 1, x.ends[i].why);
            goto out;
        }
    if (total != (uint64_t)count * len || wall_s <= 0) {
        why_fail(err, errlen, -1, "received %llu bytes of %llu", (unsigned long long)total,
                 (unsigned long long)count * len);
        goto out;
    }
    out->bytes_per_s = (double)total / wall_s;
    out->cpu_s = cpu_s;
    if (tls)
        snprintf(out->suite, sizeof out->suite, "%s",
                 SSL_CIPHER_get_name(SSL_get_current_cipher(x.ends[1].ssl)));
    rc = 0;
out:
    release(&x);
    return rc;
}

int loopback_tls_probe(int port, const char *ca_file, char *version, size_t vlen, char *suite,
                       size_t slen, char *err, size_t errlen)
{
    static const unsigned char alpn[] = { 2, 'h', '2' };
    int rc = -1, fd = -1;
    SSL *ssl = NULL;
    char r[160];
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval limit = { .tv_sec = PROBE_TIMEOUT_S };
    if (!c || SSL_CTX_load_verify_locations(c, ca_file, NULL) != 1 ||
        SSL_CTX_set_alpn_protos(c, alpn, sizeof alpn) != 0) {
        why_fail(err, errlen, -1, "TLS client context with the CA %s: %s", ca_file,
                 reason(0, r, sizeof r));
        goto out;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        why_fail(err, errlen, -1, "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
        goto out;
    }
    ssl = SSL_new(c);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
        why_fail(err, errlen, -1, "TLS handshake with 127.0.0.1:%d failed (within %d s): %s",
                 port, PROBE_TIMEOUT_S, reason(errno, r, sizeof r));
        goto out;
    }
    snprintf(version, vlen, "%s", SSL_get_version(ssl));
    snprintf(suite, slen, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
    SSL_shutdown(ssl);   /* a courtesy: the server drops the connection either way */
    rc = 0;
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(c);
    return rc;
}
