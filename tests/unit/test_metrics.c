/* The coordinator's Prometheus metrics (coordinator/metrics.h, HTTP.md "Metrics"): a
 * real in-process coordinator (trust_fixture.h) takes known uploads (accepted,
 * rejected for known reasons, refused before authentication), closes a round, and the
 * rendered exposition must show exactly those counts, the open round's gauges, the
 * members' counters, the ledger size and process_* from /proc/self; `promtool check
 * metrics` (Debian's prometheus) must find nothing wrong with it. Label values are
 * escaped; member labels stay bounded. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "trust_fixture.h"
#include "coordinator/http.h"
#include "coordinator/metrics.h"
#include "coordinator/status.h"
#include "privacy/rdp.h"

/* The value of the sample named exactly `series` (name and labels as rendered), or a
 * test failure naming it when the exposition lacks it. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            const char *v = p + n + 1;
            if (strncmp(v, "+Inf", 4) == 0)
                return INFINITY;
            return strtod(v, NULL);
        }
    }
    fail_msg("the exposition has no sample %s", series);
    return 0;
}

static int has_line_prefix(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            return 1;
    return 0;
}

static char *render(struct fx *f)
{
    struct http_reply r;
    assert_int_equal(metrics_reply(f->c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(r.body);
    assert_int_equal(strlen(r.body), r.len);
    return r.body;
}

/* Keeps the exposition for people to look at ($AULAC_TEST_OUTPUT, scripts/test.sh). */
static void keep(const char *name, const char *text)
{
    const char *dir = getenv("AULAC_TEST_OUTPUT");
    if (!dir || !*dir)
        return;
    char cmd[600], path[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0)
        return;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
}

/* `promtool check metrics` on text: 1 when promtool is not installed (the caller skips),
 * else asserts it exits 0 and prints nothing (no lint problem). */
static int promtool_check(const char *text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        return 1;
    char in[] = "/tmp/aulac-metrics-XXXXXX";
    int fd = mkstemp(in);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[200], out[8192] = "";
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", in);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = 0;
    int st = pclose(p);
    unlink(in);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || got > 0)
        fail_msg("promtool check metrics refused the exposition (exit %d):\n%s",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    return 0;
}

static void skip_without_promtool(void)
{
    print_message("SKIPPED: promtool is not installed (Debian package prometheus; "
                  "scripts/deps.sh installs it): `promtool check metrics` not run\n");
    skip();
}

/* The promtool check as part of a test about something else: a note, not a skip, when
 * promtool is absent (promtool_accepts_the_exposition skips then). */
static void also_promtool(const char *text)
{
    if (promtool_check(text) != 0)
        print_message("note: promtool is not installed: `promtool check metrics` not run\n");
}

static Aulac__V1__Receipt *submit(struct fx *f, struct signer *s, struct upd *u)
{
    struct fed_client *cl = fx_client(f, s);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    (void)fed_submit_update(cl, &u->h, u->payload, u->len, 0, &r, &st);
    fed_client_close(cl);
    return r;
}

static void expect_refused(Aulac__V1__Receipt *r)
{
    assert_non_null(r);
    assert_false(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
}

/* Known events, then every value they should show. */
static void values_after_known_events(void **state)
{
    struct fx *f = *state;
    const int64_t t0 = time_now_unix_ms();
    char *text = render(f);
    /* Nothing happened yet: the counters are there at zero, no member series. */
    assert_true(value(text, "aulac_rounds_closed_total") == 0);
    assert_true(value(text, "aulac_upload_bytes_count") == 0);
    assert_true(value(text, "aulac_round_duration_seconds_bucket{le=\"+Inf\"}") == 0);
    assert_false(has_line_prefix(text, "aulac_uploads_total{"));
    assert_true(value(text, "aulac_round") == 1);
    free(text);

    /* fpt: accepted, then a second update of the same round (duplicate), then one with
     * a broken envelope signature (signature). */
    struct signer s_fpt = { .key = f->keys[FPT] };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 1);
    const size_t fpt_len = u.len;
    Aulac__V1__Receipt *r = submit(f, &s_fpt, &u);
    assert_non_null(r);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);
    upd_make(f, &u, f->keys[FPT], 2);
    expect_refused(submit(f, &s_fpt, &u));
    upd_free(&u);
    upd_make(f, &u, f->keys[FPT], 3);
    u.sig[5] ^= 1;
    expect_refused(submit(f, &s_fpt, &u));
    upd_free(&u);
    /* An unsigned request naming vnpt, and uet (not in the roster) signing its own:
     * refused before authentication, counted under (unknown), never against vnpt. */
    upd_make(f, &u, f->keys[VNPT], 4);
    struct fed_client *cl = fx_client(f, NULL);
    Aulac__V1__Receipt *rr = NULL;
    struct rpc_status st;
    assert_true(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &rr, &st) != 0);
    fed_client_close(cl);
    upd_free(&u);
    struct signer s_uet = { .key = f->keys[UET] };
    upd_make(f, &u, f->keys[UET], 5);
    cl = fx_client(f, &s_uet);
    rr = NULL;
    assert_true(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &rr, &st) != 0);
    fed_client_close(cl);
    upd_free(&u);

    text = render(f);
    assert_true(value(text, "aulac_uploads_total{member=\"fpt\",result=\"accepted\"}") == 1);
    assert_true(value(text, "aulac_uploads_total{member=\"fpt\",result=\"rejected\"}") == 2);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"fpt\",reason=\"duplicate\"}")
                == 1);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"fpt\",reason=\"signature\"}")
                == 1);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"(unknown)\",reason=\"auth\"}")
                == 2);
    assert_false(has_line_prefix(text, "aulac_uploads_total{member=\"vnpt\""));
    assert_false(has_line_prefix(text, "aulac_uploads_total{member=\"uet\""));
    assert_true(value(text, "aulac_upload_bytes_count") == 1);
    assert_true(value(text, "aulac_upload_bytes_sum") == (double)fpt_len);
    assert_true(value(text, "aulac_round_updates") == 1);
    assert_true(value(text, "aulac_round_eligible_members") == 3);
    double seen = value(text, "aulac_member_last_seen_timestamp_seconds{member=\"fpt\"}");
    assert_true(seen * 1000 >= (double)t0 - 1 && seen * 1000 <= (double)time_now_unix_ms() + 1);
    free(text);

    /* vnpt and hust complete round 1; the timer closes it. */
    fx_submit_accepted(f, VNPT, 6);
    fx_submit_accepted(f, HUST, 7);
    fx_wait_closed(f);
    assert_int_equal(fx_wait_round(f, 2), 2);
    const int64_t t1 = time_now_unix_ms();

    text = render(f);
    keep("metrics.txt", text);
    assert_true(value(text, "aulac_rounds_closed_total") == 1);
    assert_true(value(text, "aulac_round_closed_updates_total") == 3);
    assert_true(value(text, "aulac_round_duration_seconds_count") == 1);
    double dur = value(text, "aulac_round_duration_seconds_sum");
    assert_true(dur >= 0 && dur * 1000 <= (double)(t1 - t0) + 1000);
    /* A round of under a second falls in every bucket from le="1" up. */
    if (dur <= 1)
        assert_true(value(text, "aulac_round_duration_seconds_bucket{le=\"1\"}") == 1);
    assert_true(value(text, "aulac_round_duration_seconds_bucket{le=\"86400\"}") == 1);
    assert_true(value(text, "aulac_round_duration_seconds_bucket{le=\"+Inf\"}") == 1);
    assert_true(value(text, "aulac_upload_bytes_count") == 3);
    assert_true(value(text, "aulac_upload_bytes_bucket{le=\"+Inf\"}") == 3);
    assert_true(value(text, "aulac_round") == 2);
    assert_true(value(text, "aulac_rounds_completed") == 1);
    assert_true(value(text, "aulac_round_updates") == 0);
    assert_true(value(text, "aulac_experiment_rounds") == 3);
    assert_true(value(text, "aulac_experiment_state{state=\"running\"}") == 1);
    assert_true(value(text, "aulac_experiment_state{state=\"idle\"}") == 0);
    pthread_mutex_lock(&f->c->mu);
    char info[200];
    snprintf(info, sizeof info, "aulac_experiment_info{experiment=\"%s\",policy=\"trust-test\"}",
             f->c->experiment);
    pthread_mutex_unlock(&f->c->mu);
    assert_true(value(text, info) == 1);
    assert_true(value(text, "aulac_ledger_entries") == (double)fx_ledger_size(f));
    assert_true(value(text, "aulac_member_tokens_total{member=\"fpt\"}") == 64);
    assert_true(value(text, "aulac_member_bytes_total{member=\"fpt\"}") == (double)fpt_len);
    assert_true(value(text, "aulac_member_rounds_total{member=\"hust\"}") == 1);
    assert_true(value(text, "aulac_member_rejected_updates_total{member=\"fpt\"}") == 2);
    assert_false(has_line_prefix(text, "aulac_privacy_epsilon"));   /* no privacy */
    assert_true(value(text, "aulac_round_close_failing") == 0);
    assert_true(value(text, "aulac_round_close_failures_total") == 0);
    free(text);
    /* Disk use, as the timer measures it (at start; then again now) */
    coord_measure_disk(f->c);
    text = render(f);
    assert_true(value(text, "aulac_data_dir_bytes{kind=\"ledger\"}") > 0);
    assert_true(value(text, "aulac_data_dir_bytes{kind=\"checkpoints\"}") > 0);   /* 2 models */
    assert_true(value(text, "aulac_data_dir_bytes{kind=\"experiment_files\"}") > 0);
    assert_true(value(text, "aulac_data_dir_free_bytes") > 0);
    assert_true(has_line_prefix(text, "aulac_data_dir_low_space "));
    Aulac__V1__StatusReply *sr = NULL;
    assert_int_equal(coord_status_reply(f->c, NULL, &sr), 0);
    assert_non_null(sr->disk);
    assert_true(sr->disk->ledger_bytes > 0 && sr->disk->checkpoint_bytes > 0);
    assert_true(sr->disk->total_bytes >= sr->disk->ledger_bytes + sr->disk->checkpoint_bytes);
    assert_true(sr->disk->free_bytes > 0 && sr->disk->filesystem_bytes >= sr->disk->free_bytes);
    assert_string_equal(sr->storage_error, "");
    aulac__v1__status_reply__free_unpacked(sr, NULL);
    /* process_* from /proc/self */
    assert_true(value(text, "process_resident_memory_bytes") > 1e6);
    assert_true(value(text, "process_virtual_memory_bytes") >=
                value(text, "process_resident_memory_bytes"));
    assert_true(value(text, "process_cpu_seconds_total") > 0);
    double start = value(text, "process_start_time_seconds");
    assert_true(start <= (double)t1 / 1000 + 1 && start > (double)t0 / 1000 - 600);
    assert_true(value(text, "process_open_fds") >= 3);
    assert_true(value(text, "process_max_fds") >= value(text, "process_open_fds"));
    /* Every metric has its HELP and TYPE */
    assert_true(strstr(text, "# HELP aulac_round_duration_seconds ") != NULL);
    assert_true(strstr(text, "# TYPE aulac_round_duration_seconds histogram\n") != NULL);
    assert_true(strstr(text, "# TYPE aulac_uploads_total counter\n") != NULL);
    assert_true(strstr(text, "# TYPE process_resident_memory_bytes gauge\n") != NULL);
    free(text);
}

/* Each refusal is counted under the reason its check gives (HTTP.md's vocabulary). */
static void reasons_from_the_checks(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[HUST] };
    struct upd u;
    upd_make(f, &u, f->keys[HUST], 1);
    u.e.round = 2;                               /* not open yet */
    upd_sign(&u, f->keys[HUST]);
    expect_refused(submit(f, &s, &u));
    upd_free(&u);
    upd_make(f, &u, f->keys[HUST], 2);
    u.e.base_model_hash[0] ^= 1;                 /* another base model */
    upd_sign(&u, f->keys[HUST]);
    expect_refused(submit(f, &s, &u));
    upd_free(&u);
    upd_make(f, &u, f->keys[HUST], 3);
    u.payload[u.len / 2] ^= 0x10;                /* altered after signing */
    expect_refused(submit(f, &s, &u));
    upd_free(&u);
    upd_make(f, &u, f->keys[HUST], 4);
    u.e.samples = 1000000;                       /* more than the policy trains */
    upd_sign(&u, f->keys[HUST]);
    expect_refused(submit(f, &s, &u));
    upd_free(&u);
    char *text = render(f);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"hust\",reason=\"round\"}")
                == 1);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"hust\",reason=\"base_model\"}")
                == 1);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"hust\",reason=\"payload\"}")
                == 1);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"hust\",reason=\"policy\"}")
                == 1);
    assert_true(value(text, "aulac_uploads_total{member=\"hust\",result=\"rejected\"}") == 4);
    assert_true(value(text, "aulac_uploads_total{member=\"hust\",result=\"accepted\"}") == 0);
    assert_true(value(text, "aulac_upload_bytes_count") == 0);
    free(text);
}

/* With privacy on, the epsilon the closed rounds spent (the Status RPC's value). */
static void privacy_epsilon_when_privacy(void **state)
{
    struct fx *f = *state;
    fx_submit_accepted(f, FPT, 1);
    fx_submit_accepted(f, VNPT, 2);
    fx_submit_accepted(f, HUST, 3);
    assert_int_equal(fx_wait_round(f, 2), 2);
    const struct policy_privacy dp = { .enabled = 1, .clip = 1.0, .noise_multiplier = 1.1,
                                       .delta = 1e-5, .target_epsilon = 30 };
    pthread_mutex_lock(&f->c->mu);
    f->c->policy.privacy = dp;
    pthread_mutex_unlock(&f->c->mu);
    char *text = render(f);
    double want;
    assert_int_equal(rdp_epsilon(1.0, 1.1, 1, 1e-5, &want), 0);
    assert_true(fabs(value(text, "aulac_privacy_epsilon") - want) <= 1e-12 * want);
    assert_true(value(text, "aulac_privacy_delta") == 1e-5);
    assert_true(value(text, "aulac_privacy_epsilon_target") == 30);
    also_promtool(text);
    free(text);
}

/* promtool finds nothing wrong with a full exposition (every metric family present). */
static void promtool_accepts_the_exposition(void **state)
{
    struct fx *f = *state;
    fx_submit_accepted(f, FPT, 1);
    struct signer s = { .key = f->keys[VNPT] };
    struct upd u;
    upd_make(f, &u, f->keys[VNPT], 2);
    u.sig[0] ^= 1;
    expect_refused(submit(f, &s, &u));
    upd_free(&u);
    fx_submit_accepted(f, VNPT, 3);
    fx_submit_accepted(f, HUST, 4);
    char *text = render(f);
    int absent = promtool_check(text);
    free(text);
    if (absent)
        skip_without_promtool();
}

/* Label values escaped per the exposition format; member labels bounded; reasons from
 * the vocabulary. Rendered from a metrics object of its own over the fixture's coord. */
static void labels_escaped_and_bounded(void **state)
{
    struct fx *f = *state;
    struct coord_metrics *m = metrics_new();
    assert_non_null(m);
    metrics_upload(m, "a\"b\\c\nd", 10, "no such reason");
    metrics_member_seen(m, "a\"b\\c\nd", 1234500);
    for (int i = 0; i < METRICS_MAX_MEMBERS + 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "m%d", i);
        metrics_upload(m, id, 100, NULL);
    }
    char *text;
    size_t len;
    assert_int_equal(metrics_render(f->c, m, &text, &len), 0);
    assert_true(value(text, "aulac_upload_rejections_total{member=\"a\\\"b\\\\c\\nd\","
                            "reason=\"other\"}") == 1);
    assert_true(value(text, "aulac_member_last_seen_timestamp_seconds{member=\"a\\\"b\\\\c\\nd\"}")
                == 1234.5);
    /* 1024 rows: the escaped one and m0..m1022; the rest in (other) */
    assert_true(value(text, "aulac_uploads_total{member=\"m1022\",result=\"accepted\"}") == 1);
    assert_false(has_line_prefix(text, "aulac_uploads_total{member=\"m1023\""));
    assert_true(value(text, "aulac_uploads_total{member=\"(other)\",result=\"accepted\"}") == 6);
    assert_true(value(text, "aulac_upload_bytes_count") == METRICS_MAX_MEMBERS + 5);
    assert_true(value(text, "aulac_upload_bytes_bucket{le=\"1024\"}") ==
                METRICS_MAX_MEMBERS + 5);
    assert_string_equal(metrics_reason_label("norm-ish"), "other");
    assert_string_equal(metrics_reason_label("signature"), "signature");
    also_promtool(text);
    free(text);
    metrics_free(m);
}

/* A coordinator with no experiment: idle, round 0, no info sample, promtool-clean. */
static void idle_coordinator(void **state)
{
    struct fx *f = *state;
    f->idle = 1;
    fx_start(f);
    char *text = render(f);
    assert_true(value(text, "aulac_experiment_state{state=\"idle\"}") == 1);
    assert_true(value(text, "aulac_experiment_state{state=\"running\"}") == 0);
    assert_true(value(text, "aulac_round") == 0);
    assert_true(value(text, "aulac_round_eligible_members") == 0);
    assert_true(value(text, "aulac_round_deadline_timestamp_seconds") == 0);
    assert_true(strstr(text, "# TYPE aulac_experiment_info gauge\n") != NULL);
    assert_false(has_line_prefix(text, "aulac_experiment_info{"));
    assert_true(value(text, "aulac_member_tokens_total{member=\"hust\"}") == 0);
    also_promtool(text);
    free(text);
}

/* GET path from the coordinator's HTTP server on 127.0.0.1:port; the whole response
 * (headers and body, malloc'd). */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[200];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        assert_true(got >= 0);
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    return buf;
}

/* A real GET /metrics through the coordinator's HTTP server (--http): the exposition
 * with its content type, the same values, promtool-clean. */
static void served_at_get_metrics(void **state)
{
    struct fx *f = *state;
    f->opt.http_listen = "127.0.0.1:0";
    fx_start(f);
    assert_non_null(f->c->http);
    fx_submit_accepted(f, FPT, 1);
    char *resp = http_get(http_port(f->c->http), "/metrics");
    if (strncmp(resp, "HTTP/1.1 200", 12) != 0)
        fail_msg("GET /metrics: %.200s", resp);
    assert_non_null(strcasestr(resp, "\r\nContent-Type: text/plain; version=0.0.4"));
    char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    assert_true(value(body, "aulac_uploads_total{member=\"fpt\",result=\"accepted\"}") == 1);
    assert_true(value(body, "aulac_upload_bytes_count") == 1);
    assert_true(value(body, "aulac_round_updates") == 1);
    assert_true(value(body, "process_resident_memory_bytes") > 0);
    also_promtool(body);
    free(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(values_after_known_events, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(reasons_from_the_checks, fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(privacy_epsilon_when_privacy, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(promtool_accepts_the_exposition, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(labels_escaped_and_bounded, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(idle_coordinator, fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(served_at_get_metrics, fx_setup_prepared, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
