#define _GNU_SOURCE
#include "bench/lib/loopback_copy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define IO_CHUNK (1u << 20)   /* bytes per send / receive call */

/* The start line: every thread waits at it, with its connection made (and its handshake
 * done), until the main thread starts the clock and opens it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, open;
};

/* One end of one connection. */
struct end {
    int fd;
    SSL *ssl;                 /* NULL in plain TCP */
    const uint8_t *buf;       /* the sender's bytes */
    size_t len;
    uint64_t got;             /* what the receiver received */
    int failed;
    char why[200];
    struct gate *gate;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "what: OpenSSL's first queued error" into e->why, and e marked failed. */
static void end_fail(struct end *e, const char *what)
{
    unsigned long code = ERR_get_error();
    char s[160] = "";
    if (code)
        ERR_error_string_n(code, s, sizeof s);
    else if (errno)
        snprintf(s, sizeof s, "%s", strerror(errno));
    snprintf(e->why, sizeof e->why, "%s failed%s%s", what, s[0] ? ": " : "", s);
    e->failed = 1;
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

static void *send_end(void *arg)
{
    struct end *e = arg;
    if (e->ssl && SSL_accept(e->ssl) != 1)
        end_fail(e, "the sender's TLS handshake");
    wait_at_gate(e->gate);
    size_t off = 0;
    while (!e->failed && off < e->len) {
        size_t n = e->len - off < IO_CHUNK ? e->len - off : IO_CHUNK, w = 0;
        if (e->ssl) {
            if (SSL_write_ex(e->ssl, e->buf + off, n, &w) != 1)
                end_fail(e, "SSL_write");
        } else {
            ssize_t r = send(e->fd, e->buf + off, n, MSG_NOSIGNAL);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                end_fail(e, "send");
            else
                w = (size_t)r;
        }
        off += w;
    }
    if (e->ssl && !e->failed)
        SSL_shutdown(e->ssl);   /* close_notify: the receiver's clean end of the stream */
    shutdown(e->fd, SHUT_WR);   /* the descriptor itself is closed after both ends joined */
    return NULL;
}

static void *recv_end(void *arg)
{
    struct end *e = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf) {
        errno = ENOMEM;
        end_fail(e, "the receive buffer");
    }
    if (!e->failed && e->ssl && SSL_connect(e->ssl) != 1)
        end_fail(e, "the receiver's TLS handshake");
    wait_at_gate(e->gate);
    while (!e->failed) {
        if (e->ssl) {
            size_t r = 0;
            if (SSL_read_ex(e->ssl, buf, IO_CHUNK, &r) != 1) {
                if (SSL_get_error(e->ssl, 0) != SSL_ERROR_ZERO_RETURN)
                    end_fail(e, "SSL_read");
                break;
            }
            e->got += r;
        } else {
            ssize_t r = recv(e->fd, buf, IO_CHUNK, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                end_fail(e, "recv");
            if (r <= 0)
                break;
            e->got += (uint64_t)r;
        }
    }
    if (e->failed && e->fd >= 0) {   /* unread bytes: a reset ends the sender's write */
        close(e->fd);
        e->fd = -1;
    }
    free(buf);
    return NULL;
}

/* Seconds on a clock: CLOCK_MONOTONIC (wall) or CLOCK_PROCESS_CPUTIME_ID (all threads). */
static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* TLS 1.3 only, the one suite, and user-space crypto as gRPC's (no kernel TLS). */
static SSL_CTX *tls_context(int server, const struct loopback_tls *tls, char *err, size_t errlen)
{
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
    char s[160] = "";
    ERR_error_string_n(ERR_get_error(), s, sizeof s);
    set_err(err, errlen, "TLS %s context: %s (%s): %s", server ? "server" : "client", what,
            tls->suite, s);
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
        close(ls);
        return -1;
    }
    return ls;
}

/* Connection i: the receiver's end connected to the sender's, each given its SSL when
 * the contexts are there. 0 or -1. */
static int connect_pair(int ls, const struct sockaddr_in *a, SSL_CTX *sctx, SSL_CTX *cctx,
                        struct end *s, struct end *r)
{
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (r->fd < 0 || connect(r->fd, (const struct sockaddr *)a, sizeof *a) != 0)
        return -1;
    s->fd = accept(ls, NULL, NULL);
    if (s->fd < 0)
        return -1;
    if (!sctx)
        return 0;
    s->ssl = SSL_new(sctx);
    r->ssl = SSL_new(cctx);
    if (!s->ssl || !r->ssl || SSL_set_fd(s->ssl, s->fd) != 1 || SSL_set_fd(r->ssl, r->fd) != 1)
        return -1;
    return 0;
}

int loopback_copy(const uint8_t *buf, size_t len, int count, const struct loopback_tls *tls,
                  struct loopback_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (count < 1) {
        set_err(err, errlen, "at least one receiver (got %d)", count);
        return -1;
    }
    int rc = -1, ls = -1, made = 0, started = 0;
    SSL_CTX *sctx = NULL, *cctx = NULL;
    struct end *ends = calloc((size_t)count * 2, sizeof *ends);   /* [2i] sender, [2i+1] receiver */
    pthread_t *th = calloc((size_t)count * 2, sizeof *th);
    struct gate gate = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct sockaddr_in a;
    if (!ends || !th) {
        set_err(err, errlen, "out of memory for %d connections", count);
        goto out;
    }
    for (int i = 0; i < count * 2; i++)
        ends[i] = (struct end){ .fd = -1, .gate = &gate };
    if (tls && (!(sctx = tls_context(1, tls, err, errlen)) ||
                !(cctx = tls_context(0, tls, err, errlen))))
        goto out;
    if ((ls = listen_loopback(count, &a)) < 0) {
        set_err(err, errlen, "cannot listen on loopback: %s", strerror(errno));
        goto out;
    }
    for (; made < count; made++) {
        struct end *s = &ends[2 * made], *r = &ends[2 * made + 1];
        if (connect_pair(ls, &a, sctx, cctx, s, r) != 0) {
            set_err(err, errlen, "connection %d of %d: %s", made + 1, count, strerror(errno));
            goto release;
        }
        s->buf = buf;
        s->len = len;
    }
    for (; started < count * 2; started++)
        if (pthread_create(&th[started], NULL, started % 2 ? recv_end : send_end,
                           &ends[started]) != 0) {
            set_err(err, errlen, "cannot start thread %d of %d", started + 1, count * 2);
            for (int i = 0; i < count * 2; i++)   /* no handshake waits for a missing end */
                shutdown(ends[i].fd, SHUT_RDWR);
            break;
        }
    pthread_mutex_lock(&gate.mu);
    while (gate.ready < started)
        pthread_cond_wait(&gate.cv, &gate.mu);
    if (started < count * 2)   /* the threads that run end at once */
        for (int i = 0; i < started; i++)
            ends[i].failed = 1;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    uint64_t total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (i % 2)
            total += ends[i].got;
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0;
    out->cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (started < count * 2)
        goto release;
    for (int i = 0; i < count * 2; i++)
        if (ends[i].failed) {
            set_err(err, errlen, "connection %d: %s", i / 2 + 1, ends[i].why);
            goto release;
        }
    if (total != (uint64_t)count * len || dt <= 0) {
        set_err(err, errlen, "received %llu bytes of %llu", (unsigned long long)total,
                (unsigned long long)count * len);
        goto release;
    }
    out->bytes_per_s = (double)total / dt;
    if (tls)
        snprintf(out->suite, sizeof out->suite, "%s",
                 SSL_CIPHER_get_name(SSL_get_current_cipher(ends[1].ssl)));
    rc = 0;
release:
    for (int i = 0; i < count * 2; i++) {
        SSL_free(ends[i].ssl);
        if (ends[i].fd >= 0)
            close(ends[i].fd);
    }
out:
    if (ls >= 0)
        close(ls);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    free(ends);
    free(th);
    return rc;
}

int loopback_tls_probe(int port, const char *ca_file, char *version, size_t vlen, char *suite,
                       size_t slen, char *err, size_t errlen)
{
    static const unsigned char alpn[] = { 2, 'h', '2' };
    int rc = -1, fd = -1;
    SSL *ssl = NULL;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (!c || SSL_CTX_load_verify_locations(c, ca_file, NULL) != 1 ||
        SSL_CTX_set_alpn_protos(c, alpn, sizeof alpn) != 0) {
        set_err(err, errlen, "TLS client context (CA %s) failed", ca_file);
        goto out;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        set_err(err, errlen, "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
        goto out;
    }
    ssl = SSL_new(c);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
        char s[160] = "";
        ERR_error_string_n(ERR_get_error(), s, sizeof s);
        set_err(err, errlen, "TLS handshake with 127.0.0.1:%d failed: %s", port, s);
        goto out;
    }
    snprintf(version, vlen, "%s", SSL_get_version(ssl));
    snprintf(suite, slen, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
    SSL_shutdown(ssl);
    rc = 0;
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(c);
    return rc;
}
