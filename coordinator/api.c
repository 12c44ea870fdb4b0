/* GET /api/v1/<what>: the coordinator's JSON API (coordinator/HTTP.md, "API"). Each
 * endpoint copies what it shows under c->mu (or reads LMDB/the ledger without it) and
 * renders after letting go. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "coordinator/coord.h"
#include "coordinator/http.h"
#include "coordinator/status.h"
#include "proto/status_json.h"

#define API_PREFIX "/api/v1/"
#define API_QUERY_MAX 512

/* The query string's parameters, percent-decoded. */
struct api_query {
    char experiment[COORD_EXPERIMENT_MAX + 1];
    int has_experiment;
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated); '+' is a space. -1 when
 * malformed, too long, or holds a NUL or control byte. */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (ch < 0x20 || ch == 0x7f || o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

/* Parses query (NULL or "": none) against the keys the endpoint takes (allow_experiment);
 * why says what is wrong for a 400. */
static int parse_query(const char *query, int allow_experiment, struct api_query *q,
                       char *why, size_t cap)
{
    memset(q, 0, sizeof *q);
    if (!query || !query[0])
        return 0;
    if (strlen(query) > API_QUERY_MAX) {
        snprintf(why, cap, "the query is longer than %d bytes", API_QUERY_MAX);
        return -1;
    }
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (n == 0) {
            p += 1;
            continue;
        }
        size_t klen = eq ? (size_t)(eq - p) : n;
        if (allow_experiment && klen == 10 && memcmp(p, "experiment", 10) == 0) {
            if (!eq || url_decode(eq + 1, n - klen - 1, q->experiment,
                                  sizeof q->experiment) != 0 || !q->experiment[0]) {
                snprintf(why, cap, "experiment= takes an experiment id of 1 to %d bytes",
                         COORD_EXPERIMENT_MAX);
                return -1;
            }
            q->has_experiment = 1;
        } else {
            char key[40];
            snprintf(key, sizeof key, "%.*s", (int)(klen < 32 ? klen : 32), p);
            for (char *k = key; *k; k++)
                if ((unsigned char)*k < 0x20 || (unsigned char)*k >= 0x7f)
                    *k = '?';
            snprintf(why, cap, "unknown query parameter '%s'%s", key,
                     allow_experiment ? " (this endpoint takes experiment=ID)" :
                                        " (this endpoint takes none)");
            return -1;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

static int reply_json(struct http_reply *out, int status, struct jsonw *w)
{
    size_t len;
    char *body = jw_finish(w, &len);
    if (!body)
        return COORD_ERR_NOMEM;
    out->status = status;
    out->content_type = "application/json";
    out->body = body;
    out->len = len;
    return 0;
}

/* {"error":{"status":N,"message":"..."}} */
static int reply_error(struct http_reply *out, int status, const char *message)
{
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"error\":{\"status\":");
    jw_i64(&w, status);
    jw_raw(&w, ",\"message\":");
    jw_str(&w, message);
    jw_raw(&w, "}}\n");
    return reply_json(out, status, &w);
}

/* --- /api/v1/status --------------------------------------------------------- */

static int api_status(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    Aulac__V1__StatusReply *r;
    int rc = coord_status_reply(c, q->has_experiment ? q->experiment : NULL, &r);
    if (rc == COORD_ERR_NOT_FOUND) {
        char msg[200];
        snprintf(msg, sizeof msg, "no experiment '%s' was approved here (/api/v1/experiments "
                 "lists them)", q->experiment);
        return reply_error(out, 404, msg);
    }
    if (rc != 0)
        return rc;
    struct jsonw w;
    jw_init(&w);
    status_json_write(&w, r);
    jw_raw(&w, "\n");
    aulac__v1__status_reply__free_unpacked(r, NULL);
    return reply_json(out, 200, &w);
}

/* --- routing ---------------------------------------------------------------- */

struct api_endpoint {
    const char *name;
    int takes_experiment;
    int (*fn)(struct coord *c, const struct api_query *q, struct http_reply *out);
};

static const struct api_endpoint endpoints[] = {
    { "status", 1, api_status },
};

int api_reply(struct coord *c, const char *path, const char *query, struct http_reply *out)
{
    memset(out, 0, sizeof *out);
    const size_t plen = strlen(API_PREFIX);
    const struct api_endpoint *e = NULL;
    if (path && strncmp(path, API_PREFIX, plen) == 0)
        for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
            if (strcmp(path + plen, endpoints[i].name) == 0)
                e = &endpoints[i];
    if (!e)
        return reply_error(out, 404, "no such API endpoint (coordinator/HTTP.md lists them: "
                           "/api/v1/status, members, rounds, experiments, proposals, ledger, "
                           "credits)");
    struct api_query q;
    char why[160];
    if (parse_query(query, e->takes_experiment, &q, why, sizeof why) != 0)
        return reply_error(out, 400, why);
    return e->fn(c, &q, out);
}
