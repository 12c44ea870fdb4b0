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
#include "common/hex.h"
#include "coordinator/http.h"
#include "coordinator/ledger_check.h"
#include <inttypes.h>

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

/* An update of fpt for round 2 while round 1 is open: refused after authentication,
 * with a reason (update_reject). */
static void submit_refused(struct fx *f)
{
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 12);
    u.e.round = 2;
    upd_sign(&u, f->keys[FPT]);
    Aulac__V1__Receipt *r = fx_send(f, FPT, &u, 0);
    assert_false(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);
}

static void members_show_last_seen_rejections_and_val_loss(void **state)
{
    struct fx *f = *state;
    char *b = get(f, "/api/v1/members", NULL, 200);
    has(b, "{\"member\":\"fpt\",\"organization\":\"");
    has(b, "\"last_seen_ms\":null,\"rounds_joined\":0,\"tokens\":0,\"bytes_sent\":0,"
           "\"rejected\":0,\"recent_rejections\":[],\"last_val_loss\":null}");
    free(b);

    int64_t before = time_now_unix_ms();
    submit_refused(f);
    for (int m = FPT; m <= HUST; m++)
        fx_submit_accepted(f, m, 1);
    assert_true(fx_wait_round(f, 2) >= 2);
    b = get(f, "/api/v1/members", NULL, 200);
    has(b, "\"members\":[{\"member\":\"fpt\",");
    has(b, "{\"member\":\"vnpt\",");
    has(b, "{\"member\":\"hust\",");
    const char *fpt = strstr(b, "{\"member\":\"fpt\"");
    const char *seen = strstr(fpt, "\"last_seen_ms\":");
    assert_non_null(seen);
    long long t = strtoll(seen + strlen("\"last_seen_ms\":"), NULL, 10);
    assert_true(t >= before && t <= time_now_unix_ms());
    has(fpt, "\"rounds_joined\":1,\"tokens\":64,");
    has(fpt, "\"rejected\":1,\"recent_rejections\":[{\"round\":2,\"at_ms\":");
    has(fpt, "not open yet");
    has(fpt, "\"last_val_loss\":{\"round\":1,\"val_loss\":3.5}");
    free(b);

    /* a reason with quotes, backslashes and control bytes stays one JSON string */
    pthread_mutex_lock(&f->c->mu);
    struct member_stats *ms = coord_member_stats(f->c, "vnpt");
    for (int i = 0; i < COORD_RECENT_REJECTIONS + 2; i++) {
        struct member_rejection *j = &ms->recent[ms->n_recent++ % COORD_RECENT_REJECTIONS];
        j->round = (uint64_t)(10 + i);
        snprintf(j->reason, sizeof j->reason, "bad \"%d\" \\ \n\x01\t end", i);
    }
    pthread_mutex_unlock(&f->c->mu);
    b = get(f, "/api/v1/members", NULL, 200);   /* get() checks the JSON */
    /* newest first, the last COORD_RECENT_REJECTIONS kept */
    char want[400];
    snprintf(want, sizeof want, "\"recent_rejections\":[{\"round\":%d,", 10 + COORD_RECENT_REJECTIONS + 1);
    has(b, want);
    has(b, "\"reason\":\"bad \\\"5\\\" \\\\ \\n\\u0001\\t end\"");
    assert_null(strstr(b, "\"round\":11,"));
    free(b);
}

static void rounds_list_each_closed_round(void **state)
{
    struct fx *f = *state;
    char *b = get(f, "/api/v1/rounds", NULL, 200);
    has(b, "\"rounds\":[]}");
    free(b);
    for (int round = 1; round <= 2; round++) {
        for (int m = FPT; m <= HUST; m++)
            fx_submit_accepted(f, m, round);
        assert_true(fx_wait_round(f, (uint64_t)round + 1) >= (uint64_t)round + 1);
    }
    b = get(f, "/api/v1/rounds", NULL, 200);
    char want[400];
    snprintf(want, sizeof want, "{\"experiment\":\"%s\",\"state\":\"running\",\"privacy\":false,"
             "\"rounds\":[{\"round\":1,\"closed_ms\":", f->c->experiment);
    has(b, want);
    has(b, ",\"duration_s\":null,\"participants\":3,\"tokens\":192,\"upload_bytes\":");
    has(b, "{\"round\":2,\"closed_ms\":");
    const char *r2 = strstr(b, "{\"round\":2,");
    assert_null(strstr(r2, "\"duration_s\":null"));   /* closed after round 1: known */
    has(r2, ",\"participants\":3,");
    has(b, "\"members\":[{\"member\":\"");
    has(b, "\"val_loss\":3.5,\"train_loss\":3,\"tokens\":64,\"upload_bytes\":");
    assert_null(strstr(b, "epsilon"));
    free(b);
    /* ?experiment= an unknown one: 404; the loaded one: the same */
    free(get(f, "/api/v1/rounds", "experiment=nope", 404));
    char q[120];
    snprintf(q, sizeof q, "experiment=%s", f->c->experiment);
    b = get(f, "/api/v1/rounds", q, 200);
    has(b, "{\"round\":2,");
    free(b);
}

static char *policy_named(const char *name)
{
    const char *at = strstr(fx_policy, "name: trust-test");
    assert_non_null(at);
    size_t head = (size_t)(at - fx_policy);
    char *text = malloc(sizeof fx_policy + 64);
    snprintf(text, sizeof fx_policy + 64, "%.*sname: %s%s", (int)head, fx_policy, name,
             at + strlen("name: trust-test"));
    return text;
}

static void experiments_and_proposals(void **state)
{
    struct fx *f = *state;
    char *b = get(f, "/api/v1/experiments", NULL, 200);
    char want[400];
    snprintf(want, sizeof want, "{\"loaded\":{\"experiment\":\"%s\",\"state\":\"running\","
             "\"round\":1,\"closed_rounds\":0},\"queue\":[],\"experiments\":[{\"experiment\":"
             "\"%s\",\"phase\":\"running\",", f->c->experiment, f->c->experiment);
    has(b, want);
    has(b, "\"policy\":\"trust-test\",\"total_rounds\":3,\"rounds_done\":0,\"policy_hash\":\"");
    has(b, "\"final_model_hash\":null,\"ended_ms\":null}");
    free(b);
    b = get(f, "/api/v1/proposals", NULL, 200);
    has(b, "\"proposals\":[]}");
    free(b);

    /* an approved second experiment waits in the queue */
    char *second = policy_named("second-one");
    fx_approve_policy(f, second);
    free(second);
    b = get(f, "/api/v1/experiments", NULL, 200);
    has(b, "\"queue\":[\"second-one-");
    has(b, "\"phase\":\"queued\",");
    has(b, "\"policy\":\"second-one\"");
    free(b);

    /* an open motion: its tally and the proposer's implicit vote */
    char *third = policy_named("third-one");
    struct signer s = { .key = f->keys[HUST] };
    struct fed_client *cl = fx_client(f, &s);
    uint8_t hash[32];
    Aulac__V1__GovernanceReply *r = fx_motion(cl, f->keys[HUST], MOTION_EXPERIMENT, NULL,
                                              third, strlen(third), "policy.yaml", 0, hash, NULL);
    assert_non_null(r);
    assert_true(r->accepted);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    fed_client_close(cl);
    free(third);
    b = get(f, "/api/v1/proposals", NULL, 200);
    char hex[65];
    hex_encode(hash, 32, hex);
    snprintf(want, sizeof want, "\"proposals\":[{\"proposal_hash\":\"%s\",\"family\":\"motion\","
             "\"kind\":\"experiment\",\"subject\":\"third-one-", hex);
    has(b, want);
    has(b, "\"proposer\":\"hust\",");
    has(b, "\"state\":\"open\",\"ledger_index\":");
    has(b, "\"yes\":1,\"no\":0,\"needed\":2,\"voters\":3,\"votes\":[{\"member\":\"hust\","
           "\"approve\":true,\"implicit\":true}]}]}");
    free(b);
}

static void ledger_head_and_its_self_check(void **state)
{
    struct fx *f = *state;
    ledger_check_kick(f->c->ledger_check);
    struct ledger_check_result v;
    for (int i = 0; i < 500; i++) {   /* the audit of a small ledger: milliseconds */
        ledger_check_get(f->c->ledger_check, &v);
        if (v.runs >= 1 && !v.running)
            break;
        usleep(10000);
    }
    assert_int_equal(v.state, LEDGER_CHECK_OK);
    char *b = get(f, "/api/v1/ledger", NULL, 200);
    uint64_t size = fx_ledger_size(f);
    uint8_t root[32];
    assert_int_equal(ledger_root(f->c->ledger, size, root), 0);
    char hex[65];
    hex_encode(root, 32, hex);
    char want[400];
    snprintf(want, sizeof want, "{\"size\":%" PRIu64 ",\"root\":\"%s\",\"checkpoint\":{\"size\":"
             "%" PRIu64 ",\"note\":\"", size, hex, size);
    has(b, want);
    has(b, "\"verify\":{\"status\":\"ok\",");
    has(b, ",\"why\":null}}");
    assert_null(strstr(b, "\"checked_ms\":null"));
    free(b);
}

static void credits_once_rounds_are_scored(void **state)
{
    struct fx *f = *state;
    char *b = get(f, "/api/v1/credits", NULL, 200);
    char want[400];
    snprintf(want, sizeof want, "{\"experiment\":\"%s\",\"state\":\"running\",\"final\":false,"
             "\"credits\":null}", f->c->experiment);
    has(b, want);
    free(b);
    for (int m = FPT; m <= HUST; m++)
        fx_submit_accepted(f, m, 1);
    assert_true(fx_wait_round(f, 2) >= 2);
    b = get(f, "/api/v1/credits", NULL, 200);
    has(b, "\"final\":false,\"credits\":{\"rounds\":1,\"measures\":[{\"name\":\"tokens\","
           "\"weight\":1}");
    has(b, "\"members\":[{\"member\":\"fpt\",\"share\":");
    has(b, "\"measure_shares\":{\"tokens\":");
    free(b);
    free(get(f, "/api/v1/credits", "experiment=nope", 404));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checker_accepts_json_and_refuses_the_rest),
        cmocka_unit_test_setup_teardown(status_is_what_aulac_status_json_prints,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(unknown_paths_are_404_and_bad_queries_400,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(members_show_last_seen_rejections_and_val_loss,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(rounds_list_each_closed_round,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(experiments_and_proposals,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(ledger_head_and_its_self_check,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(credits_once_rounds_are_scored,
                                        fx_setup_started, fx_teardown),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
