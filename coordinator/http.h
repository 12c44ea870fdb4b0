#ifndef AULAC_COORDINATOR_HTTP_H
#define AULAC_COORDINATOR_HTTP_H
/* The coordinator's read-only HTTP view (coordinator/HTTP.md): the dashboard, the JSON
 * API, Prometheus metrics and health checks, served by libmicrohttpd from its own
 * threads. Off unless `--http ADDR:PORT` is given. On a loopback address it may be plain
 * HTTP; on any other address the coordinator refuses to start unless it has TLS (the
 * coordinator's certificate, --tls-cert/--tls-key) and authentication (--http-token-file,
 * or client certificates from --tls-client-ca). Keys, payloads and members' data are
 * never served.
 *
 * Handlers never hold c->mu for longer than a copy of what they show. Connections are
 * bounded (HTTP_MAX_CONNECTIONS, per client address too) and each has a timeout; request
 * headers over HTTP_MAX_HEADER_BYTES and any method but GET/HEAD are refused. */
#include <stddef.h>

struct coord;

#define HTTP_MAX_CONNECTIONS   64
#define HTTP_MAX_PER_IP        16
#define HTTP_TIMEOUT_S         10
#define HTTP_MAX_HEADER_BYTES  8192

struct http_options {
    const char *listen;             /* "ADDR:PORT" (port 0: any; http_port tells) */
    const char *tls_cert, *tls_key; /* PEM; both or neither */
    const char *client_ca;          /* PEM: client certificates from the alliance CA */
    const char *token_file;         /* a bearer token (one line, >= 32 chars; file mode
                                       0600); requests need "Authorization: Bearer <it>" */
    const char *chartjs_path;       /* Chart.js to serve as /assets/chart.js; NULL: Debian's
                                       libjs-chart.js (/usr/share/javascript/chart.js/
                                       chart.umd.min.js or chart.min.js); absent: the
                                       dashboard shows its tables and says charts are off */
};

/* A response a handler builds: body malloc'd (http frees it), content_type static. */
struct http_reply {
    int status;                     /* 200, 404, 503, ... */
    const char *content_type;       /* "application/json", "text/plain; version=0.0.4", ... */
    char *body;
    size_t len;
    const char *etag;               /* static quoted entity tag, or NULL (assets_reply sets
                                       it: the server may answer If-None-Match with 304) */
    const char *cache_control;      /* static, or NULL: the server's default for the route */
};

struct http_server;

/* Starts the server on its own threads; *out to http_stop. COORD_ERR_CONFIG with why
 * (cap bytes) when the options cannot work (a non-loopback address without TLS and
 * authentication, an unreadable token file, ...), COORD_ERR_SERVE when it cannot listen. */
int  http_start(struct coord *c, const struct http_options *o, struct http_server **out,
                char *why, size_t cap);
int  http_port(const struct http_server *s);
void http_stop(struct http_server *s);

/* --- the handlers the server routes to (each in its own file) ------------------------ */

/* coordinator/api.c: GET /api/v1/<what>: status, members, rounds, experiments, proposals,
 * ledger, credits (HTTP.md lists the fields: status has the same fields as `aulac status
 * --json`, built by the same code). query: the URL's query string or NULL. 404 for an
 * unknown path. 0, or COORD_ERR_NOMEM. */
int api_reply(struct coord *c, const char *path, const char *query, struct http_reply *out);

/* coordinator/metrics.c: GET /metrics, the Prometheus text exposition. */
int metrics_reply(struct coord *c, struct http_reply *out);

/* coordinator/assets.c: the dashboard's static files (/, /index.html, /assets/<name>),
 * compiled into the binary from coordinator/assets/ (a fixed table: no filesystem lookup)
 * with their ETag and Cache-Control; /assets/chart.js is assets_reply_chartjs(NULL, out).
 * 404 for another path. 0, or COORD_ERR_NOMEM. */
int assets_reply(const char *path, struct http_reply *out);

/* GET /assets/chart.js: the file at chartjs_path (http_options.chartjs_path; NULL: the
 * first of Debian's libjs-chart.js paths that exists), read at each request (<= 4 MiB);
 * 404 saying so when it is missing or unreadable (the dashboard then shows its tables and
 * says charts are off). 0, or COORD_ERR_NOMEM. */
int assets_reply_chartjs(const char *chartjs_path, struct http_reply *out);

#endif
