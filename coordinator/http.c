/* The coordinator's read-only HTTP view (coordinator/http.h, coordinator/HTTP.md): a
 * libmicrohttpd daemon on its own threads that routes GET/HEAD requests to the handlers
 * (api_reply, metrics_reply, assets_reply) and answers /healthz and /readyz itself.
 *
 * Guarantees:
 * - a non-loopback listen address is refused unless TLS and authentication (a bearer
 *   token or client certificates from the alliance CA) are both configured;
 * - every connection is bounded: HTTP_MAX_CONNECTIONS in all, HTTP_MAX_PER_IP from one
 *   address, HTTP_TIMEOUT_S of inactivity, and HTTP_TIMEOUT_S in all to send a request's
 *   headers (the header reaper below: libmicrohttpd's own timeout is an inactivity one,
 *   which a client sending a byte every few seconds never reaches);
 * - request headers over HTTP_MAX_HEADER_BYTES get 431 (or the connection is closed by
 *   libmicrohttpd's memory limit), a request body 413, any method but GET/HEAD 405;
 * - the bearer token is compared in constant time (BLAKE2b of both, sodium_memcmp).
 * No handler here takes c->mu but /readyz, for a pointer read. */
#define _GNU_SOURCE             /* vasprintf */
#include "coordinator/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/why.h"
#include "coordinator/coord.h"

#define HTTP_THREADS        4
#define HTTP_PEM_MAX        (1 << 20)
#define HTTP_TOKEN_MIN      32
#define HTTP_TOKEN_MAX      4096

/* A connection as the header reaper sees it. */
struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int in_request;                 /* headers received; a handler runs or a reply is sent */
    int64_t waiting_since_ms;       /* monotonic: since the connection opened or its last
                                       request completed */
};

struct http_server {
    struct coord *c;
    struct MHD_Daemon *d;
    int port;
    int tls;
    int client_certs;               /* client certificates verified against client_ca */
    int auth_required;              /* a token is set, or (not loopback) client certificates
                                       are the authentication */
    uint8_t token_hash[crypto_generichash_BYTES];
    int has_token;
    char *cert, *key, *trust;       /* PEM, NUL-terminated (libmicrohttpd keeps pointers) */
    char *chartjs_path;             /* --http-chartjs (NULL: Debian's libjs-chart.js) */

    pthread_mutex_t mu;             /* conns, reaper_stop */
    pthread_cond_t wake;
    struct http_conn *conns;
    int reaper_stop;
    pthread_t reaper;
    int reaper_running;
};

/* --- options ------------------------------------------------------------------------ */

/* "ADDR:PORT" ("[v6]:PORT" too) resolved to a numeric address; 0 or -1 with why. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl,
                        char *why, size_t cap)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return why_fail(why, cap, -1, "--http '%s': expected ADDR:PORT (e.g. 127.0.0.1:8080)",
                        listen);
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return why_fail(why, cap, -1, "--http '%s': address too long", listen);
    memcpy(host, listen, hl);
    host[hl] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || port < 0 || port > 65535)
        return why_fail(why, cap, -1, "--http: port '%s' is not 0..65535", colon + 1);
    struct addrinfo hints = { 0 }, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai)
        return why_fail(why, cap, -1, "--http: cannot resolve '%s': %s", host,
                        gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        return why_fail(why, cap, -1, "--http: '%s' is not an IPv4 or IPv6 address", host);
    return 0;
}

/* 1 for 127.0.0.0/8 and ::1 (and ::ffff:127.x): only this host can connect. */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

static int read_text(const char *what, const char *path, size_t max, char **out, size_t *len,
                     char *why, size_t cap)
{
    uint8_t *buf;
    size_t n;
    char err[160];
    if (file_read_all_why(path, max, &buf, &n, err, sizeof err) != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "cannot read the %s %s: %s", what, path,
                        err);
    char *s = malloc(n + 1);
    if (!s) {
        free(buf);
        return COORD_ERR_NOMEM;
    }
    memcpy(s, buf, n);
    s[n] = 0;
    free(buf);
    *out = s;
    if (len)
        *len = n;
    return 0;
}

/* The token file: mode 0600 or stricter, one line of HTTP_TOKEN_MIN.. printable chars.
 * Only its hash is kept. */
static int load_token(struct http_server *s, const char *path, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http-token-file %s: %s", path,
                        strerror(errno));
    if (st.st_mode & 077)
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http-token-file %s is readable by "
                        "others (mode %03o): chmod 600 it", path, (unsigned)st.st_mode & 0777);
    char *t;
    size_t n;
    int rc = read_text("token file", path, HTTP_TOKEN_MAX, &t, &n, why, cap);
    if (rc != 0)
        return rc;
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
        t[--n] = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~') {
            sodium_memzero(t, n);
            free(t);
            return why_fail(why, cap, COORD_ERR_CONFIG, "--http-token-file %s: the token "
                            "must be one line of printable characters without spaces", path);
        }
    if (n < HTTP_TOKEN_MIN) {
        sodium_memzero(t, n);
        free(t);
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http-token-file %s: the token has %zu "
                        "characters, fewer than %d (make one: openssl rand -hex 32)", path, n,
                        HTTP_TOKEN_MIN);
    }
    crypto_generichash(s->token_hash, sizeof s->token_hash, (const uint8_t *)t, n, NULL, 0);
    sodium_memzero(t, n);
    free(t);
    s->has_token = 1;
    return 0;
}

/* --- the header reaper -------------------------------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *hc = calloc(1, sizeof *hc);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!hc || !ci) {
            free(hc);
            *socket_context = NULL;   /* untracked: only the inactivity timeout applies */
            return;
        }
        hc->fd = ci->connect_fd;
        hc->waiting_since_ms = time_mono_ms();
        pthread_mutex_lock(&s->mu);
        hc->next = s->conns;
        if (s->conns)
            s->conns->prev = hc;
        s->conns = hc;
        pthread_mutex_unlock(&s->mu);
        *socket_context = hc;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        /* Called before libmicrohttpd closes the socket: once removed here, the reaper
         * can no longer shut down a descriptor that a new connection reuses. */
        struct http_conn *hc = *socket_context;
        if (!hc)
            return;
        pthread_mutex_lock(&s->mu);
        if (hc->prev)
            hc->prev->next = hc->next;
        else
            s->conns = hc->next;
        if (hc->next)
            hc->next->prev = hc->prev;
        pthread_mutex_unlock(&s->mu);
        free(hc);
        *socket_context = NULL;
    }
}

static struct http_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_mark(struct http_server *s, struct MHD_Connection *conn, int in_request)
{
    struct http_conn *hc = conn_of(conn);
    if (!hc)
        return;
    pthread_mutex_lock(&s->mu);
    hc->in_request = in_request;
    hc->waiting_since_ms = time_mono_ms();
    pthread_mutex_unlock(&s->mu);
}

/* The raw request URI, kept as the request's *con_cls until on_completed. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    return strdup(uri);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
    conn_mark(cls, conn, 0);
}

/* Shuts down (never closes: libmicrohttpd owns the descriptor) every connection that has
 * spent HTTP_TIMEOUT_S waiting for or receiving a request's headers. */
static void *reaper_main(void *arg)
{
    struct http_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->reaper_stop) {
        int64_t now = time_mono_ms();
        for (struct http_conn *hc = s->conns; hc; hc = hc->next)
            if (!hc->in_request && hc->fd >= 0 &&
                now - hc->waiting_since_ms > (int64_t)HTTP_TIMEOUT_S * 1000) {
                log_debug("http: a connection sent no complete request in %d s: closed",
                          HTTP_TIMEOUT_S);
                shutdown(hc->fd, SHUT_RDWR);
                hc->fd = -1;
            }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 250L * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->wake, &s->mu, &until);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* --- requests ----------------------------------------------------------------------- */

struct header_sum {
    size_t bytes;
    int body;                       /* Content-Length > 0 or Transfer-Encoding given */
};

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct header_sum *h = cls;
    h->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (!strcasecmp(key, "Transfer-Encoding") ||
        (!strcasecmp(key, "Content-Length") && value && strcmp(value, "0") != 0))
        h->body = 1;
    return MHD_YES;
}

static int reply_text(struct http_reply *r, int status, const char *content_type,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int reply_text(struct http_reply *r, int status, const char *content_type,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *body = NULL;
    int n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0)
        return COORD_ERR_NOMEM;
    r->status = status;
    r->content_type = content_type;
    r->body = body;
    r->len = (size_t)n;
    return 0;
}

static int reply_error(struct http_reply *r, int status, const char *msg)
{
    return reply_text(r, status, "application/json", "{\"error\":\"%s\"}\n", msg);
}

/* /readyz: the gRPC service listens and the ledger opens (a read transaction). */
static int readyz(struct coord *c, struct http_reply *r)
{
    pthread_mutex_lock(&c->mu);
    int serving = c->srv != NULL && !c->stopping;
    pthread_mutex_unlock(&c->mu);
    if (!serving)
        return reply_text(r, 503, "application/json",
                          "{\"ready\":false,\"reason\":\"the gRPC service is not listening\"}\n");
    uint64_t size;
    if (ledger_size(c->ledger, &size) != 0)
        return reply_text(r, 503, "application/json",
                          "{\"ready\":false,\"reason\":\"the ledger cannot be read\"}\n");
    return reply_text(r, 200, "application/json", "{\"ready\":true}\n");
}

/* 1 when the request carries "Authorization: Bearer <token>" with our token. */
static int bearer_ok(const struct http_server *s, struct MHD_Connection *conn)
{
    const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return 0;
    a += 7;
    while (*a == ' ')
        a++;
    uint8_t h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, (const uint8_t *)a, strlen(a), NULL, 0);
    return sodium_memcmp(h, s->token_hash, sizeof h) == 0;
}

/* 1 when the TLS peer presented a certificate that verifies against the client CA. */
static int client_cert_ok(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return 0;
    gnutls_session_t ses = (gnutls_session_t)ci->tls_session;
    unsigned int n = 0;
    if (!gnutls_certificate_get_peers(ses, &n) || n == 0)
        return 0;
    unsigned int status = 0;
    if (gnutls_certificate_verify_peers2(ses, &status) != GNUTLS_E_SUCCESS)
        return 0;
    return status == 0;
}

/* Routes an authenticated GET/HEAD: 0 or COORD_ERR_NOMEM. */
/* The dashboard's own files (compiled in, and Chart.js): they carry no coordinator data,
 * and a browser cannot send a bearer token for a page it loads, so they are served
 * without authentication; the page then sends the token with each data request. */
static int static_page(const char *url)
{
    return !strcmp(url, "/") || !strcmp(url, "/index.html") || !strncmp(url, "/assets/", 8);
}

static int route(struct http_server *s, const char *url, const char *query,
                 struct http_reply *r)
{
    /* No handler reads files by path, and none ever sees a ".." segment. */
    for (const char *p = strstr(url, ".."); p; p = strstr(p + 1, ".."))
        if ((p == url || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
            return reply_error(r, 404, "not found");
    if (strchr(url, '\\'))
        return reply_error(r, 404, "not found");
    if (!strcmp(url, "/metrics"))
        return metrics_reply(s->c, r);
    if (!strncmp(url, "/api/v1/", 8) || !strcmp(url, "/api/v1"))
        return api_reply(s->c, url, query, r);
    if (!strcmp(url, "/assets/chart.js"))
        return assets_reply_chartjs(s->chartjs_path, r);
    if (!strcmp(url, "/") || !strcmp(url, "/index.html") || !strncmp(url, "/assets/", 8))
        return assets_reply(url, r);
    return reply_error(r, 404, "not found");
}

static void add_security_headers(struct MHD_Response *resp, const struct http_reply *r)
{
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                            "form-action 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    /* the handler's choice (assets: revalidated by ETag); else never cached */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            r->cache_control ? r->cache_control : "no-store");
    if (r->etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    struct http_server *s = cls;
    conn_mark(s, conn, 1);
    struct http_reply r = { 0 };
    int rc = 0;
    int head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
    struct header_sum hs = { 0 };
    MHD_get_connection_values(conn, MHD_HEADER_KIND, sum_header, &hs);
    /* *con_cls: the raw request URI (on_uri); libmicrohttpd hands url decoded and
     * without its query. */
    const char *raw = *con_cls;
    const char *query = raw ? strchr(raw, '?') : NULL;
    if (query)
        query = query[1] ? query + 1 : NULL;
    size_t url_len = raw ? strlen(raw) : strlen(url);
    if (hs.bytes + url_len > HTTP_MAX_HEADER_BYTES)
        rc = reply_error(&r, 431, "request headers too large");
    else if (strcmp(method, MHD_HTTP_METHOD_GET) && !head)
        rc = reply_error(&r, 405, "read only: GET or HEAD");
    else if (hs.body || *upload_data_size != 0)
        rc = reply_error(&r, 413, "a request body is not accepted");
    else if (!strcmp(url, "/healthz"))
        rc = reply_text(&r, 200, "application/json", "{\"ok\":true}\n");
    else if (!strcmp(url, "/readyz"))
        rc = readyz(s->c, &r);
    else if (s->auth_required && !static_page(url) &&
             !((s->has_token && bearer_ok(s, conn)) || (s->client_certs && client_cert_ok(conn))))
        rc = reply_error(&r, 401, "authentication required");
    else
        rc = route(s, url, query, &r);
    if (rc != 0) {
        free(r.body);
        memset(&r, 0, sizeof r);
        if (reply_error(&r, 500, "out of memory") != 0)
            return MHD_NO;
    }
    /* If-None-Match naming the reply's entity tag: 304, no body */
    const char *inm = r.etag && r.status == 200
                    ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH) : NULL;
    if (inm && (strstr(inm, r.etag) || !strcmp(inm, "*"))) {
        free(r.body);
        r.body = NULL;
        r.len = 0;
        r.status = 304;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    add_security_headers(resp, &r);
    if (r.content_type && r.status != 304)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
    if (r.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"aulac\"");
    if (r.status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (r.status == 431 || r.status == 413 || r.status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* --- life cycle --------------------------------------------------------------------- */

/* libmicrohttpd's own messages (refused connections, TLS handshake failures: what any
 * client can cause) go to the debug log, not to stderr. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = 0;
    log_debug("http: %s", msg);
}

static void server_free(struct http_server *s)
{
    if (!s)
        return;
    free(s->cert);
    if (s->key) {
        sodium_memzero(s->key, strlen(s->key));
        free(s->key);
    }
    free(s->trust);
    free(s->chartjs_path);
    sodium_memzero(s->token_hash, sizeof s->token_hash);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int http_start(struct coord *c, const struct http_options *o, struct http_server **out,
               char *why, size_t cap)
{
    *out = NULL;
    if (!o->listen)
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http: no address given");
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(o->listen, &ss, &sl, why, cap) != 0)
        return COORD_ERR_CONFIG;
    (void)sl;
    if (!o->tls_cert != !o->tls_key)
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http: TLS needs both the certificate "
                        "and the key (--tls-cert, --tls-key)");
    int tls = o->tls_cert != NULL;
    int loopback = is_loopback(&ss);
    if (!loopback && (!tls || (!o->token_file && !o->client_ca)))
        return why_fail(why, cap, COORD_ERR_CONFIG, "refusing to serve HTTP on %s, which is "
                        "not a loopback address, without %s%s%s: give --tls-cert/--tls-key "
                        "and --http-token-file (or --tls-client-ca), or listen on "
                        "127.0.0.1", o->listen, tls ? "" : "TLS",
                        !tls && !o->token_file && !o->client_ca ? " and " : "",
                        o->token_file || o->client_ca ? "" : "authentication");
    if (o->client_ca && !tls)
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http: client certificates need TLS "
                        "(--tls-cert, --tls-key)");
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return why_fail(why, cap, COORD_ERR_CONFIG, "--http with TLS: this libmicrohttpd was "
                        "built without TLS (GnuTLS); install one with it (Debian's "
                        "libmicrohttpd12 has it) or serve on 127.0.0.1 without TLS");

    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return COORD_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    s->c = c;
    s->tls = tls;
    int rc = 0;
    if (o->token_file && (rc = load_token(s, o->token_file, why, cap)) != 0)
        goto fail;
    if (tls && ((rc = read_text("TLS certificate", o->tls_cert, HTTP_PEM_MAX, &s->cert, NULL,
                                why, cap)) != 0 ||
                (rc = read_text("TLS key", o->tls_key, HTTP_PEM_MAX, &s->key, NULL, why,
                                cap)) != 0))
        goto fail;
    if (o->client_ca) {
        if ((rc = read_text("client CA", o->client_ca, HTTP_PEM_MAX, &s->trust, NULL, why,
                            cap)) != 0)
            goto fail;
        s->client_certs = 1;
    }
    /* On loopback the alliance CA (given for the gRPC service's mutual TLS) is accepted
     * but not demanded: only a token makes authentication required there. */
    s->auth_required = s->has_token || (!loopback && s->client_certs);
    if (o->chartjs_path && !(s->chartjs_path = strdup(o->chartjs_path))) {
        rc = COORD_ERR_NOMEM;
        goto fail;
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem opts[20];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, HTTP_THREADS, NULL };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, HTTP_MAX_CONNECTIONS,
                                         NULL };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT, HTTP_MAX_PER_IP,
                                         NULL };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, HTTP_TIMEOUT_S, NULL };
    /* The read buffer holds the request line and headers: twice the header limit leaves
     * room for the reply's headers; past it libmicrohttpd answers 431 itself. */
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                         2 * HTTP_MAX_HEADER_BYTES, NULL };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
                                         (intptr_t)on_connection, s };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log,
                                         NULL };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s };
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed,
                                         s };
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert };
        opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, s->key };
        if (s->trust)
            opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, s->trust };
    }
    opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    if (!s->d) {
        rc = why_fail(why, cap, COORD_ERR_SERVE, "cannot serve HTTP on %s (in use, or the TLS "
                      "certificate and key do not load: see the log above)", o->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        MHD_stop_daemon(s->d);
        rc = COORD_ERR_NOMEM;
        goto fail;
    }
    s->reaper_running = 1;
    log_info("serving the HTTP view on %s (port %d)%s%s%s", o->listen, s->port,
             tls ? " with TLS" : " without TLS (loopback only)",
             s->has_token ? ", bearer token required" : "",
             s->client_certs ? (s->auth_required ? ", or a client certificate from the "
                                "alliance CA" : ", client certificates not required on "
                                "loopback") : "");
    *out = s;
    return 0;
fail:
    server_free(s);
    return rc;
}

int http_port(const struct http_server *s)
{
    return s ? s->port : 0;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    if (s->reaper_running) {
        pthread_mutex_lock(&s->mu);
        s->reaper_stop = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->reaper, NULL);
    }
    MHD_stop_daemon(s->d);
    server_free(s);
}
