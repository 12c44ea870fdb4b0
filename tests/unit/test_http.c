/* The coordinator's HTTP server core (coordinator/http.c, HTTP.md): a real in-process
 * coordinator with --http, spoken to over raw sockets (and curl for TLS). Routing and
 * health, the bearer token, the non-loopback refusal, TLS on 0.0.0.0 with a self-signed
 * certificate, path traversal, oversized headers, a slowloris client cut at the header
 * deadline while others are served, a flood past the connection limits refused while a
 * round still closes, and the server answering afterwards. Source addresses 127.0.0.x
 * stand for distinct clients (the per-address limit). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include "trust_fixture.h"
#include "coordinator/http.h"

/* --- a raw HTTP client ------------------------------------------------------------ */

/* A TCP connection to 127.0.0.1:port from source address 127.0.0.<src> (0: any). */
static int connect_from(int port, int src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (src) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 when the server closed fd (EOF or reset) within ms; 0 when it is still open. */
static int closed_within(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, ms) <= 0)
        return 0;
    char b[256];
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Sends req on a new connection from 127.0.0.<src>, reads the reply until the server
 * closes (5 s at most); the status code (-1: no reply), the reply in buf. */
static int request_from(int port, int src, const char *req, char *buf, size_t cap)
{
    int fd = connect_from(port, src);
    if (fd < 0)
        return -1;
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t len = strlen(req), off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    buf[got] = 0;
    close(fd);
    int status;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    return status;
}

static char reply[1 << 16];

/* GET path with extra header lines (each ending in \r\n) from 127.0.0.1. */
static int get(int port, const char *path, const char *headers)
{
    char req[32768];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n",
             path, headers ? headers : "");
    return request_from(port, 1, req, reply, sizeof reply);
}

static int http_port_of(struct fx *f)
{
    int port = http_port(f->c->http);
    assert_true(port > 0);
    return port;
}

/* A prepared fixture whose coordinator serves --http on 127.0.0.1 (any port). */
static void start_http(struct fx *f, int idle)
{
    fx_prepare(f);
    f->idle = idle;
    f->opt.http_listen = "127.0.0.1:0";
}

static void write_token(struct fx *f, char *path, size_t cap, const char *token, unsigned mode)
{
    snprintf(path, cap, "%s/http.token", f->dir);
    unlink(path);
    fx_write(path, token, mode);
    chmod(path, mode);
}

static const char token[] = "0123456789abcdef0123456789abcdef-secret";

/* --- tests ------------------------------------------------------------------------- */

static void health_routes_and_refusals(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 1);
    fx_start(f);
    int port = http_port_of(f);
    assert_int_equal(get(port, "/healthz", NULL), 200);
    assert_non_null(strstr(reply, "{\"ok\":true}"));
    assert_int_equal(get(port, "/readyz", NULL), 200);
    assert_non_null(strstr(reply, "\"ready\":true"));
    /* security headers on every reply; the API and health are never cached */
    assert_non_null(strstr(reply, "Content-Security-Policy: default-src 'self'"));
    assert_non_null(strstr(reply, "X-Content-Type-Options: nosniff"));
    assert_non_null(strstr(reply, "Cache-Control: no-store"));
    assert_int_equal(get(port, "/no/such/page", NULL), 404);
    /* each route reaches its handler */
    assert_int_equal(get(port, "/", NULL), 200);
    assert_non_null(strstr(reply, "Content-Type: text/html"));
    assert_int_equal(get(port, "/index.html", NULL), 200);
    assert_int_equal(get(port, "/api/v1/status", NULL), 200);
    assert_non_null(strstr(reply, "Content-Type: application/json"));
    assert_non_null(strstr(reply, "Cache-Control: no-store"));
    assert_int_equal(get(port, "/api/v1/no-such-endpoint", NULL), 404);
    assert_int_equal(get(port, "/metrics", NULL), 200);
    assert_non_null(strstr(reply, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(reply, "aulac_"));
    /* an asset's entity tag: revalidated with 304 and no body */
    assert_int_equal(get(port, "/", NULL), 200);
    const char *et = strstr(reply, "ETag: ");
    assert_non_null(et);
    char etag[128], inm[200];
    assert_int_equal(sscanf(et, "ETag: %127[^\r]", etag), 1);
    snprintf(inm, sizeof inm, "If-None-Match: %s\r\n", etag);
    assert_int_equal(get(port, "/", inm), 304);
    assert_null(strstr(reply, "<html"));
    /* path traversal, plain and percent-encoded: 404, never a file */
    const char *const traversal[] = {
        "/assets/../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd", "/../etc/passwd",
        "/assets/..%2f..%2fetc%2fpasswd", "/api/v1/../../etc/passwd",
    };
    for (size_t i = 0; i < sizeof traversal / sizeof traversal[0]; i++) {
        assert_int_equal(get(port, traversal[i], NULL), 404);
        assert_null(strstr(reply, "root:"));
    }
    /* read only */
    assert_int_equal(request_from(port, 1, "POST /api/v1/status HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n", reply,
                                  sizeof reply), 405);
    assert_non_null(strstr(reply, "Allow: GET, HEAD"));
    assert_int_equal(request_from(port, 1, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n"
                                  "Connection: close\r\n\r\n", reply, sizeof reply), 200);
    assert_int_equal(request_from(port, 1, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 5\r\nConnection: close\r\n\r\nhello", reply,
                                  sizeof reply), 413);

    /* /readyz: 503 with a reason while the gRPC service does not listen */
    pthread_mutex_lock(&f->c->mu);
    struct rpc_server *srv = f->c->srv;
    f->c->srv = NULL;
    pthread_mutex_unlock(&f->c->mu);
    assert_int_equal(get(port, "/readyz", NULL), 503);
    assert_non_null(strstr(reply, "\"reason\":\"the gRPC service is not listening\""));
    assert_int_equal(get(port, "/healthz", NULL), 200);
    pthread_mutex_lock(&f->c->mu);
    f->c->srv = srv;
    pthread_mutex_unlock(&f->c->mu);
    assert_int_equal(get(port, "/readyz", NULL), 200);
    fx_free(f);
}

static void oversized_headers_are_refused(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 1);
    fx_start(f);
    int port = http_port_of(f);
    static char h[32768];
    /* just over HTTP_MAX_HEADER_BYTES: 431 from the server's own check */
    memset(h, 0, sizeof h);
    memcpy(h, "X-Big: ", 7);
    memset(h + 7, 'a', HTTP_MAX_HEADER_BYTES + 16);
    strcat(h, "\r\n");
    assert_int_equal(get(port, "/healthz", h), 431);
    /* far over: 431 from libmicrohttpd's memory limit, or the connection closed */
    memset(h + 7, 'a', 24000);
    h[7 + 24000] = 0;
    strcat(h, "\r\n");
    int st = get(port, "/healthz", h);
    assert_true(st == 431 || st == -1);
    /* many small headers adding up */
    h[0] = 0;
    for (int i = 0; i < 400; i++) {
        char line[64];
        snprintf(line, sizeof line, "X-H%03d: %030d\r\n", i, i);
        strcat(h, line);
    }
    st = get(port, "/healthz", h);
    assert_true(st == 431 || st == -1);
    assert_int_equal(get(port, "/healthz", NULL), 200);
    fx_free(f);
}

static void bearer_token_guards_all_but_health(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 1);
    char path[400];
    write_token(f, path, sizeof path, token, 0600);
    f->opt.http_token_file = path;
    fx_start(f);
    int port = http_port_of(f);
    const char *const guarded[] = { "/api/v1/status", "/api/v1/members", "/metrics" };
    char h[256];
    for (size_t i = 0; i < sizeof guarded / sizeof guarded[0]; i++) {
        assert_int_equal(get(port, guarded[i], NULL), 401);
        assert_non_null(strstr(reply, "WWW-Authenticate: Bearer"));
        assert_int_equal(get(port, guarded[i], "Authorization: Bearer wrong-token-of-the-"
                             "same-kind-0123456789ab\r\n"), 401);
        snprintf(h, sizeof h, "Authorization: Bearer %.*s\r\n", (int)sizeof token - 2, token);
        assert_int_equal(get(port, guarded[i], h), 401);        /* a prefix of it */
        snprintf(h, sizeof h, "Authorization: Basic %s\r\n", token);
        assert_int_equal(get(port, guarded[i], h), 401);
        snprintf(h, sizeof h, "Authorization: Bearer %s\r\n", token);
        assert_int_not_equal(get(port, guarded[i], h), 401);
    }
    /* the dashboard's own files carry no data and a browser cannot send a token for the
     * page it opens: they are served without one (the page sends it with its requests) */
    assert_int_equal(get(port, "/", NULL), 200);
    assert_int_equal(get(port, "/assets/app.js", NULL), 200);
    assert_int_equal(get(port, "/assets/../api/v1/status", NULL), 404);
    /* orchestrators' probes need no token */
    assert_int_equal(get(port, "/healthz", NULL), 200);
    assert_int_equal(get(port, "/readyz", NULL), 200);
    fx_stop(f);

    /* token files that would leak or guess easily are refused at start */
    write_token(f, path, sizeof path, token, 0644);
    f->c = calloc(1, sizeof *f->c);
    assert_int_equal(coord_open(f->c, &f->opt), 0);
    assert_int_equal(coord_serve(f->c), COORD_ERR_CONFIG);
    fx_stop(f);
    write_token(f, path, sizeof path, "short-token\n", 0600);
    f->c = calloc(1, sizeof *f->c);
    assert_int_equal(coord_open(f->c, &f->opt), 0);
    assert_int_equal(coord_serve(f->c), COORD_ERR_CONFIG);
    fx_free(f);
}

/* A self-signed certificate for 127.0.0.1 in dir (cert.pem, key.pem). */
static void make_cert(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days 2 -subj /CN=aulac-test -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s/key.pem' -out '%s/cert.pem' >/dev/null 2>&1", dir, dir);
    assert_int_equal(system(cmd), 0);
}

/* curl's HTTP status for url over TLS with cert as the CA (0: no reply). */
static int curl_status(const char *ca, const char *url, const char *bearer)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 "
             "--cacert '%s' %s%s%s '%s'", ca, bearer ? "-H 'Authorization: Bearer " : "",
             bearer ? bearer : "", bearer ? "'" : "", url);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int st = 0;
    if (fscanf(p, "%d", &st) != 1)
        st = 0;
    pclose(p);
    return st;
}

static void non_loopback_needs_tls_and_auth(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 1);
    char token_path[400], cert[4096], key[4096];
    write_token(f, token_path, sizeof token_path, token, 0600);
    make_cert(f->dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", f->dir);
    snprintf(key, sizeof key, "%s/key.pem", f->dir);
    /* 0.0.0.0 listens on every interface: plain, TLS without auth, auth without TLS are
     * all refused before a byte is served */
    f->opt.http_listen = "0.0.0.0:0";
    for (int attempt = 0; attempt < 3; attempt++) {
        f->opt.tls_cert = attempt == 1 ? cert : NULL;
        f->opt.tls_key = attempt == 1 ? key : NULL;
        f->opt.http_token_file = attempt == 2 ? token_path : NULL;
        f->c = calloc(1, sizeof *f->c);
        assert_int_equal(coord_open(f->c, &f->opt), 0);
        assert_int_equal(coord_serve(f->c), COORD_ERR_CONFIG);
        assert_null(f->c->http);
        fx_stop(f);
    }
    /* and the helper directly, with its reason */
    char why[400];
    struct http_server *s = NULL;
    struct http_options o = { .listen = "0.0.0.0:0" };
    assert_int_equal(http_start(NULL, &o, &s, why, sizeof why), COORD_ERR_CONFIG);
    assert_non_null(strstr(why, "not a loopback address"));
    o.listen = "[::]:0";
    assert_int_equal(http_start(NULL, &o, &s, why, sizeof why), COORD_ERR_CONFIG);
    o.listen = "no-port";
    assert_int_equal(http_start(NULL, &o, &s, why, sizeof why), COORD_ERR_CONFIG);
    assert_null(s);

    /* TLS and the token: served over HTTPS, the token still required */
    f->opt.tls_cert = cert;
    f->opt.tls_key = key;
    f->opt.http_token_file = token_path;
    f->tls_ca = cert;
    fx_start(f);
    int port = http_port_of(f);
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/api/v1/status", port);
    assert_int_equal(curl_status(cert, url, NULL), 401);
    assert_int_equal(curl_status(cert, url, "not-the-token-0123456789abcdef0123"), 401);
    int st = curl_status(cert, url, token);
    assert_true(st != 401 && st != 0);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", port);
    assert_int_equal(curl_status(cert, url, NULL), 200);
    /* plain HTTP on the TLS port gets no HTTP reply */
    assert_int_not_equal(get(port, "/healthz", NULL), 200);
    fx_free(f);
}

/* An alliance CA, a client certificate it signed (client.pem/.key) and one from another
 * CA (rogue.pem/.key), in dir, with openssl. */
static void make_client_certs(const char *dir)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && for ca in ca rogueca; do openssl req -x509 -newkey ec "
             "-pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=$ca -keyout $ca.key "
             "-out $ca.pem -addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign >/dev/null 2>&1 || exit 1; done && "
             "for c in client:ca rogue:rogueca; do n=${c%%:*}; ca=${c#*:}; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$n "
             "-keyout $n.key -out $n.csr >/dev/null 2>&1 && "
             "printf 'extendedKeyUsage=clientAuth\n' >$n.ext && "
             "openssl x509 -req -in $n.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 2 "
             "-extfile $n.ext -out $n.pem >/dev/null 2>&1 || exit 1; done", dir);
    assert_int_equal(system(cmd), 0);
}

/* curl's HTTP status for url over TLS with a client certificate (name.pem/.key in dir;
 * NULL: none). */
static int curl_client_status(const char *dir, const char *url, const char *name)
{
    char cmd[16384];
    if (name)
        snprintf(cmd, sizeof cmd, "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 "
                 "--cacert '%s/cert.pem' --cert '%s/%s.pem' --key '%s/%s.key' '%s'", dir, dir,
                 name, dir, name, url);
    else
        snprintf(cmd, sizeof cmd, "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 "
                 "--cacert '%s/cert.pem' '%s'", dir, url);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int st = 0;
    if (fscanf(p, "%d", &st) != 1)
        st = 0;
    pclose(p);
    return st;
}

/* Off loopback, client certificates from the alliance CA are the authentication when no
 * token is given: one from the CA is served, none or another CA's is 401. On loopback
 * the same CA is accepted but not demanded. */
static void client_certificates_authenticate(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 1);
    make_cert(f->dir);
    make_client_certs(f->dir);
    char cert[4096], key[4096], ca[4096], url[128];
    snprintf(cert, sizeof cert, "%s/cert.pem", f->dir);
    snprintf(key, sizeof key, "%s/key.pem", f->dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", f->dir);
    f->opt.tls_cert = cert;
    f->opt.tls_key = key;
    f->opt.tls_client_ca = ca;
    f->tls_ca = cert;
    f->opt.http_listen = "0.0.0.0:0";
    fx_start(f);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/api/v1/status", http_port_of(f));
    assert_int_equal(curl_client_status(f->dir, url, "client"), 200);
    assert_int_equal(curl_client_status(f->dir, url, NULL), 401);
    assert_int_equal(curl_client_status(f->dir, url, "rogue"), 401);
    fx_stop(f);

    f->opt.http_listen = "127.0.0.1:0";
    fx_start(f);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/api/v1/status", http_port_of(f));
    assert_int_equal(curl_client_status(f->dir, url, NULL), 200);
    assert_int_equal(curl_client_status(f->dir, url, "client"), 200);
    fx_free(f);
}

/* A client that sends its headers one byte a second: cut at HTTP_TIMEOUT_S (the
 * connection's whole header time, although it is never idle), while another client is
 * served meanwhile. */
static void slowloris_is_cut_at_the_header_deadline(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 1);
    fx_start(f);
    int port = http_port_of(f);
    int slow = connect_from(port, 3);
    assert_true(slow >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
    int64_t t0 = time_mono_ms();
    int cut = 0;
    for (size_t i = 0; req[i] && !cut; i++) {
        if (send(slow, req + i, 1, MSG_NOSIGNAL) != 1) {
            cut = 1;
            break;
        }
        if (i % 3 == 0)
            assert_int_equal(get(port, "/healthz", NULL), 200);
        cut = closed_within(slow, 1000);
    }
    int64_t took = time_mono_ms() - t0;
    assert_true(cut);
    assert_true(took >= (HTTP_TIMEOUT_S - 1) * 1000 && took <= (HTTP_TIMEOUT_S + 3) * 1000);
    close(slow);
    assert_int_equal(get(port, "/healthz", NULL), 200);
    fx_free(f);
}

/* More connections than HTTP_MAX_PER_IP from one address, then more than
 * HTTP_MAX_CONNECTIONS from several, held open and silent: the excess is refused, a round
 * closes meanwhile, and once they go the server answers again. */
static void a_flood_is_bounded_and_rounds_carry_on(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_http(f, 0);               /* the fixture's experiment runs */
    fx_start(f);
    int port = http_port_of(f);

    /* one address: all accepted (under the total), those past HTTP_MAX_PER_IP closed */
    enum { ONE = HTTP_MAX_PER_IP + 6 };
    int one[ONE], refused = 0;
    for (int i = 0; i < ONE; i++)
        one[i] = connect_from(port, 9);
    usleep(300 * 1000);
    for (int i = 0; i < ONE; i++)
        refused += one[i] < 0 || closed_within(one[i], 0);
    print_message("flood: one address: %d of %d connections refused\n", refused, ONE);
    assert_int_equal(refused, ONE - HTTP_MAX_PER_IP);
    assert_int_equal(get(port, "/healthz", NULL), 200);     /* another address is served */
    for (int i = 0; i < ONE; i++)
        if (one[i] >= 0)
            close(one[i]);

    /* several addresses, each under its limit, together past the total: at most
     * HTTP_MAX_CONNECTIONS are accepted (the rest closed at once or left in the kernel's
     * backlog), and the accepted ones are cut at the header deadline */
    enum { SOURCES = 6, PER_SOURCE = HTTP_MAX_PER_IP };
    int fds[SOURCES * PER_SOURCE], at_once[SOURCES * PER_SOURCE];
    int n = 0;
    int64_t t0 = time_mono_ms();
    for (int s = 0; s < SOURCES; s++)
        for (int i = 0; i < PER_SOURCE; i++)
            fds[n++] = connect_from(port, 10 + s);
    usleep(300 * 1000);
    int closed_at_once = 0;
    for (int i = 0; i < n; i++)
        closed_at_once += at_once[i] = fds[i] < 0 || closed_within(fds[i], 0);
    /* while they hold the server, the round still closes */
    for (int m = FPT; m <= HUST; m++)
        fx_submit_accepted(f, m, 1);
    assert_true(fx_wait_round(f, 2) >= 2);
    int64_t left = t0 + HTTP_TIMEOUT_S * 1000 + 1500 - time_mono_ms();
    if (left > 0)
        usleep((useconds_t)left * 1000);
    int held = 0;
    for (int i = 0; i < n; i++)
        held += !at_once[i] && closed_within(fds[i], 0);
    print_message("flood: %d connections from %d addresses: %d refused at once, %d held "
                  "until the header deadline\n", n, SOURCES, closed_at_once, held);
    assert_true(held <= HTTP_MAX_CONNECTIONS);
    assert_true(held >= HTTP_MAX_CONNECTIONS / 2);
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* the server answers again (the closed connections are reaped asynchronously) */
    int st = -1;
    for (int tries = 0; tries < 50 && st != 200; tries++) {
        st = get(port, "/healthz", NULL);
        if (st != 200)
            usleep(100 * 1000);
    }
    assert_int_equal(st, 200);
    fx_free(f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_routes_and_refusals),
        cmocka_unit_test(oversized_headers_are_refused),
        cmocka_unit_test(bearer_token_guards_all_but_health),
        cmocka_unit_test(non_loopback_needs_tls_and_auth),
        cmocka_unit_test(client_certificates_authenticate),
        cmocka_unit_test(slowloris_is_cut_at_the_header_deadline),
        cmocka_unit_test(a_flood_is_bounded_and_rounds_carry_on),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
