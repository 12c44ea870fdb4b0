/* The coordinator's JSON API (coordinator/HTTP.md, "API"): api_reply on a real
 * in-process coordinator. Every endpoint answers valid JSON (checked by a small strict
 * parser below) with the fields HTTP.md lists; /api/v1/status is byte for byte what
 * `aulac status --json` prints for the same state; unknown paths are 404 and bad queries
 * 400, both JSON; strings from outside are escaped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>

#include "trust_fixture.h"
#include "cli/cli.h"
#include "common/jsonw.h"
#include "coordinator/http.h"

/* --- a strict JSON checker (RFC 8259 grammar; no duplicate-key check) -------- */

static const char *jv(const char *p, int depth);

static const char *jws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *jstr(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *jnum(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

static const char *jv(const char *p, int depth)
{
    if (depth > 64)
        return NULL;
    p = jws(p);
    if (*p == '{' || *p == '[') {
        const char close = *p == '{' ? '}' : ']';
        const int obj = *p == '{';
        p = jws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = jstr(jws(p));
                if (!p)
                    return NULL;
                p = jws(p);
                if (*p++ != ':')
                    return NULL;
            }
            p = jv(p, depth + 1);
            if (!p)
                return NULL;
            p = jws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            return *p == close ? p + 1 : NULL;
        }
    }
    if (*p == '"')
        return jstr(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return jnum(p);
}

static int json_valid(const char *s, size_t len)
{
    if (strlen(s) != len)
        return 0;
    const char *e = jv(s, 0);
    return e && *jws(e) == 0;
}

static void checker_accepts_json_and_refuses_the_rest(void **state)
{
    (void)state;
    static const char *good[] = { "{}", "[]", "{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\"]}",
                                  " {\"a\" : {\"b\":\"\\\"\"}} \n" };
    static const char *bad[] = { "", "{", "{\"a\":}", "{\"a\":1,}", "[1 2]", "{\"a\":nan}",
                                 "{\"a\":\"\x01\"}", "{a:1}", "[01]", "{} {}", "[\"\\x\"]" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!json_valid(good[i], strlen(good[i])))
            fail_msg("refused valid %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (json_valid(bad[i], strlen(bad[i])))
            fail_msg("accepted invalid %s", bad[i]);
}

/* --- helpers ------------------------------------------------------------------ */

/* GET path?query: the reply, its status checked and its JSON validated. */
static char *get(struct fx *f, const char *path, const char *query, int want_status)
{
    struct http_reply r;
    assert_int_equal(api_reply(f->c, path, query, &r), 0);
    if (r.status != want_status)
        fail_msg("%s?%s: status %d (want %d): %.*s", path, query ? query : "", r.status,
                 want_status, (int)r.len, r.body);
    assert_string_equal(r.content_type, "application/json");
    if (!json_valid(r.body, r.len))
        fail_msg("%s: not JSON: %.*s", path, (int)r.len, r.body);
    return r.body;
}

/* What `aulac status --coordinator ADDR --json [--experiment ID]` prints (malloc'd). */
static char *status_cli_json(struct fx *f, const char *experiment)
{
    char path[] = "/tmp/aulac-api-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 1), 1);
    char *argv[10];
    int argc = 0;
    argv[argc++] = "status";
    argv[argc++] = "--coordinator";
    argv[argc++] = f->addr;
    argv[argc++] = "--insecure";
    argv[argc++] = "--json";
    if (experiment) {
        argv[argc++] = "--experiment";
        argv[argc++] = (char *)experiment;
    }
    argv[argc] = NULL;
    int rc = cmd_status(argc, argv);
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(saved);
    close(fd);
    assert_int_equal(rc, 0);
    uint8_t *text;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &text, &len), 0);
    unlink(path);
    char *s = malloc(len + 1);
    memcpy(s, text, len);
    s[len] = 0;
    free(text);
    return s;
}

static void has(const char *body, const char *needle)
{
    if (!strstr(body, needle))
        fail_msg("missing %s in:\n%s", needle, body);
}

/* --- the endpoints ------------------------------------------------------------ */

static void status_is_what_aulac_status_json_prints(void **state)
{
    struct fx *f = *state;
    char *api = get(f, "/api/v1/status", NULL, 200);
    char *cli = status_cli_json(f, NULL);
    assert_string_equal(api, cli);
    free(api);
    free(cli);

    for (int m = FPT; m <= HUST; m++)   /* the roster's members: the round closes */
        fx_submit_accepted(f, m, 1);
    assert_true(fx_wait_round(f, 2) >= 2);
    api = get(f, "/api/v1/status", NULL, 200);
    cli = status_cli_json(f, NULL);
    assert_string_equal(api, cli);
    has(api, "\"rounds\":[{\"round\":1,");
    has(api, "\"state\":\"running\"");
    free(cli);
    free(api);

    /* ?experiment= the loaded one's id: the same; another unknown one: 404 JSON */
    char q[120];
    snprintf(q, sizeof q, "experiment=%s", f->c->experiment);
    api = get(f, "/api/v1/status", q, 200);
    cli = status_cli_json(f, f->c->experiment);
    assert_string_equal(api, cli);
    free(cli);
    free(api);
    free(get(f, "/api/v1/status", "experiment=no-such", 404));
}

static void unknown_paths_are_404_and_bad_queries_400(void **state)
{
    struct fx *f = *state;
    static const char *paths[] = { "/api/v1/", "/api/v1/statusx", "/api/v2/status",
                                   "/api/v1/status/", "/api/v1/../status", "/" };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char *b = get(f, paths[i], NULL, 404);
        has(b, "\"error\":{\"status\":404,");
        free(b);
    }
    static const char *queries[] = { "foo=1", "experiment=", "experiment",
                                     "experiment=%zz", "experiment=%0a",
                                     "experiment=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                     "x\"\\=\x01" };
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        char *b = get(f, "/api/v1/status", queries[i], 400);
        has(b, "\"error\":{\"status\":400,");
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checker_accepts_json_and_refuses_the_rest),
        cmocka_unit_test_setup_teardown(status_is_what_aulac_status_json_prints,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(unknown_paths_are_404_and_bad_queries_400,
                                        fx_setup_started, fx_teardown),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
