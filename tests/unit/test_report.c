/* aulac credits and aulac report over a ledger built here (entry_encode + ledger_append,
 * signed checkpoints): the credit of a running experiment is the totals of its scores so
 * far, a finished one's is its credits entry; the report has a row per member, a chart
 * point per member and round, the ledger root of its checkpoint, and a member-controlled
 * reason escaped. Also the HTML escaping and the SVG helpers on known values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/html.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "crypto/keys.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"

/* --- HTML and SVG helpers ----------------------------------------------------------------- */

/* What fn writes, as a malloc'd string (file scope: open_memstream keeps its address). */
static char *mem_buf;
static size_t mem_len;

static char *capture(void (*fn)(FILE *, void *), void *arg, size_t *len)
{
    FILE *f = open_memstream(&mem_buf, &mem_len);
    assert_non_null(f);
    fn(f, arg);
    assert_int_equal(fclose(f), 0);
    if (len)
        *len = mem_len;
    char *out = mem_buf;
    mem_buf = NULL;
    return out;
}

static void write_text(FILE *f, void *arg)
{
    html_text(f, arg);
}

static void html_text_escapes_markup_quotes_and_controls(void **state)
{
    char *s = capture(write_text, "<script>alert(\"x\")</script> & 'y'\x01\tok\x7f\xc3\xa9", NULL);
    assert_string_equal(s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
                           "&#xfffd;\tok&#xfffd;\xc3\xa9");
    free(s);
    s = capture(write_text, NULL, NULL);
    assert_string_equal(s, "");
    free(s);
    s = capture(write_text, "\" onmouseover=\"x", NULL);   /* cannot leave an attribute */
    assert_null(strchr(s, '"'));
    free(s);
}

static void svg_axes_map_values_and_skip_nan(void **state)
{
    double x[] = { 1, 2, 3, 4 }, y[] = { 2, NAN, 6, INFINITY };
    struct svg_series s = { .name = "a", .n = 4, .x = x, .y = y };
    struct svg_axes a = { .left = 10, .top = 20, .width = 300, .height = 100 };
    svg_axes_fit(&a, &s, 1);
    /* x over the finite points only (1 and 3); y from 2 to 6 with 5 % room: [1.8, 6.2] */
    assert_true(a.x0 == 1 && a.x1 == 3);
    assert_true(fabs(a.y0 - 1.8) < 1e-12 && fabs(a.y1 - 6.2) < 1e-12);
    assert_true(svg_x(&a, 1) == 10 && svg_x(&a, 3) == 310 && svg_x(&a, 2) == 160);
    assert_true(fabs(svg_y(&a, 1.8) - 120) < 1e-9);   /* bottom */
    assert_true(fabs(svg_y(&a, 6.2) - 20) < 1e-9);    /* top */
    assert_true(fabs(svg_y(&a, 4) - 70) < 1e-9);      /* middle */

    /* one point: a flat range is widened, never divided by zero */
    double x1[] = { 5 }, y1[] = { 0 };
    struct svg_series one = { .name = "b", .n = 1, .x = x1, .y = y1 };
    svg_axes_fit(&a, &one, 1);
    assert_true(a.x0 < 5 && a.x1 > 5 && a.y0 < 0 && a.y1 > 0);
    assert_true(isfinite(svg_x(&a, 5)) && isfinite(svg_y(&a, 0)));

    /* nothing finite: [0, 1] both ways */
    double yn[] = { NAN };
    struct svg_series none = { .name = "c", .n = 1, .x = x1, .y = yn };
    svg_axes_fit(&a, &none, 1);
    assert_true(a.x0 == 0 && a.x1 == 1 && a.y0 == 0 && a.y1 == 1);
}

static void svg_ticks_are_round_numbers_within_the_range(void **state)
{
    double t[12];
    size_t n = svg_ticks(0.13, 0.87, 6, 0, t);
    assert_int_equal(n, 4);   /* step 0.2: 0.2 0.4 0.6 0.8 */
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(t[i] - 0.2 * (double)(i + 1)) < 1e-12);
    n = svg_ticks(1, 4, 10, 1, t);
    assert_int_equal(n, 4);   /* 1 2 3 4: rounds, never 1.5 */
    assert_true(t[0] == 1 && t[1] == 2 && t[3] == 4);
    n = svg_ticks(1, 100, 10, 1, t);
    assert_true(n >= 4 && n <= 10 && t[0] == 20 && t[1] == 40);
    n = svg_ticks(-1, 1, 6, 0, t);
    for (size_t i = 0; i < n; i++)
        assert_false(signbit(t[i]) && t[i] == 0);   /* no -0 */
    assert_int_equal(svg_ticks(2, 1, 6, 0, t), 0);
    assert_int_equal(svg_ticks(NAN, 1, 6, 0, t), 0);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void write_chart(FILE *f, void *arg)
{
    static const double x[] = { 1, 2, 3, 4, 5 }, ya[] = { 3, 2.5, NAN, 1.5, 1 },
                        yb[] = { 2, 2, 2, 2, 2 };
    struct svg_series s[2] = {
        { .name = "fpt", .member = "fpt", .color = 0, .n = 5, .x = x, .y = ya },
        { .name = "base <model>", .color = 1, .n = 5, .x = x, .y = yb },
    };
    struct svg_chart c = { .id = "t", .title = "a & b", .x_label = "round", .y_label = "loss",
                           .width = 600, .height = 240, .integer_x = 1 };
    svg_line_chart(f, &c, s, 2);
}

static void svg_chart_has_a_circle_per_finite_point_and_breaks_at_nan(void **state)
{
    char *s = capture(write_chart, NULL, NULL);
    assert_int_equal(count(s, "<circle data-member=\"fpt\""), 4);   /* NaN skipped */
    assert_int_equal(count(s, "<circle data-series=\"base &lt;model&gt;\""), 5);
    assert_non_null(strstr(s, "data-member=\"fpt\" data-round=\"4\" data-value=\"1.5\""));
    assert_null(strstr(s, "data-round=\"3\" data-value=\"nan\""));
    /* fpt's path: M at round 1, L to 2, M again at 4 (the line breaks at the gap) */
    const char *path = strstr(s, "<g class=\"series\" data-member=\"fpt\"><path");
    assert_non_null(path);
    const char *d = strstr(path, " d=\"") + 4, *end = strchr(d, '"');
    size_t moves = 0, lines = 0;
    for (const char *p = d; p < end; p++) {
        moves += *p == 'M';
        lines += *p == 'L';
    }
    assert_int_equal(moves, 2);
    assert_int_equal(lines, 2);
    assert_non_null(strstr(s, "<title>a &amp; b</title>"));
    assert_null(strstr(s, "http"));   /* no namespace URL or anything like it */
    assert_null(strstr(s, "<script"));
    free(s);
}

/* --- a ledger with one experiment ------------------------------------------------------------ */

#define EXP "exp-1"
static const char *const members[3] = { "alpha", "beta", "gamma" };
static const char reason[] = "<script>alert('x')</script> & \"bad\" update";

struct fixture {
    char dir[64], out[96];
    struct crypto_key *coord;
    struct ledger *l;
    MDB_txn *txn;
    uint64_t size;                   /* the ledger as built */
    uint8_t root[32];
};

static void append(struct fixture *f, struct entry *e)
{
    uint8_t *b;
    size_t len;
    static int64_t t = 1767225600000;
    e->timestamp_ms = t++;
    assert_int_equal(entry_encode(e, &b, &len), 0);
    assert_int_equal(ledger_append(f->l, f->txn, b, len, NULL), 0);
    free(b);
}

static void commit(struct fixture *f)
{
    assert_int_equal(ledger_txn_commit(f->l, f->txn), 0);
    f->txn = NULL;
}

static void genesis_and_start(struct fixture *f)
{
    struct crypto_public_key pk;
    crypto_key_public(f->coord, &pk);
    struct entry_member m[4] = { { .id = "coordinator", .roles = ENTRY_ROLE_COORDINATOR } };
    memcpy(m[0].public_key, pk.key, 32);
    for (int i = 0; i < 3; i++) {
        snprintf(m[i + 1].id, sizeof m[i + 1].id, "%s", members[i]);
        m[i + 1].roles = ENTRY_ROLE_MEMBER;
        memset(m[i + 1].public_key, i + 1, 32);
    }
    struct entry g = { .type = ENTRY_GENESIS };
    g.u.genesis.alliance = "test-alliance";
    g.u.genesis.n_members = 4;
    g.u.genesis.members = m;
    append(f, &g);
    struct entry s = { .type = ENTRY_EXPERIMENT_STARTED };
    snprintf(s.u.experiment.experiment, sizeof s.u.experiment.experiment, EXP);
    memset(s.u.experiment.policy_hash, 0xab, 32);
    s.u.experiment.rounds = 2;
    append(f, &s);
}

/* Round r: alpha and beta accepted; gamma accepted in round 1, rejected in round 2 (with a
 * reason full of markup); then round_closed and contribution_scores (tokens, alignment):
 * alpha 100 / 0.5, beta 200 / 0.25, gamma 300 / -0.1 (round 1 only). */
static void round_entries(struct fixture *f, uint64_t r)
{
    uint64_t tokens[3] = { 100, 200, 300 };
    double align[3] = { 0.5, 0.25, -0.1 };
    int n = r == 1 ? 3 : 2;
    for (int i = 0; i < 3; i++) {
        struct entry u = { .type = i < n ? ENTRY_UPDATE_ACCEPTED : ENTRY_UPDATE_REJECTED };
        snprintf(u.u.update.experiment, sizeof u.u.update.experiment, EXP);
        snprintf(u.u.update.member, sizeof u.u.update.member, "%s", members[i]);
        u.u.update.round = r;
        u.u.update.tokens = tokens[i];
        u.u.update.bytes = 1000 * (uint64_t)(i + 1);
        memset(u.u.update.payload_hash, (int)(16 * r + (uint64_t)i), 32);
        if (i < n) {
            u.u.update.train_loss = 5.0 - 0.5 * (double)r - 0.1 * i;
            u.u.update.val_loss = 5.2 - 0.5 * (double)r - 0.1 * i;
            u.u.update.codec = (struct entry_codec){ 1, 256, 32, 1, 3, 1 };
        } else {
            u.u.update.reason = (char *)reason;
        }
        append(f, &u);
    }
    struct entry c = { .type = ENTRY_ROUND_CLOSED };
    snprintf(c.u.round_closed.experiment, sizeof c.u.round_closed.experiment, EXP);
    c.u.round_closed.round = r;
    char parts[3][ENTRY_ID_MAX + 1];
    for (int i = 0; i < n; i++)
        snprintf(parts[i], sizeof parts[i], "%s", members[i]);
    c.u.round_closed.n_participants = (uint32_t)n;
    c.u.round_closed.participants = parts;
    c.u.round_closed.mean_loss = 4.0;
    c.u.round_closed.has_epsilon = 1;   /* an experiment with differential privacy */
    c.u.round_closed.epsilon = 1.25 * (double)r;
    append(f, &c);
    struct entry_member_score ms[3];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < n; i++) {
        snprintf(ms[i].member, sizeof ms[i].member, "%s", members[i]);
        memset(ms[i].payload_hash, (int)(16 * r + (uint64_t)i), 32);
        ms[i].values[0] = (double)tokens[i];
        ms[i].values[1] = align[i];
    }
    struct entry s = { .type = ENTRY_CONTRIBUTION_SCORES };
    struct entry_contribution_scores *sc = &s.u.scores;
    snprintf(sc->experiment, sizeof sc->experiment, EXP);
    sc->round = r;
    sc->n_measures = 2;
    snprintf(sc->measures[0], sizeof sc->measures[0], "tokens");
    snprintf(sc->measures[1], sizeof sc->measures[1], "alignment");
    sc->base_loss = NAN;
    sc->model_loss = NAN;
    sc->n = (uint32_t)n;
    sc->members = ms;
    append(f, &s);
}

/* A credits entry that is not the totals (0.5 / 0.3 / 0.2), so a test can tell that the
 * entry is what is shown; then experiment_finished. */
static void finish(struct fixture *f)
{
    struct entry_credit_share cs[3];
    memset(cs, 0, sizeof cs);
    double share[3] = { 0.5, 0.3, 0.2 };
    for (int i = 0; i < 3; i++) {
        snprintf(cs[i].member, sizeof cs[i].member, "%s", members[i]);
        cs[i].share = share[i];
        cs[i].measure_share[0] = share[i];
        cs[i].measure_share[1] = share[i];
        cs[i].rounds = i < 2 ? 2 : 1;
    }
    struct entry c = { .type = ENTRY_CREDITS };
    struct entry_credits *cr = &c.u.credits;
    snprintf(cr->experiment, sizeof cr->experiment, EXP);
    cr->rounds = 2;
    cr->n_measures = 2;
    snprintf(cr->measures[0], sizeof cr->measures[0], "tokens");
    snprintf(cr->measures[1], sizeof cr->measures[1], "alignment");
    cr->weights[0] = cr->weights[1] = 1;
    cr->n = 3;
    cr->members = cs;
    append(f, &c);
    struct entry e = { .type = ENTRY_EXPERIMENT_FINISHED };
    snprintf(e.u.experiment.experiment, sizeof e.u.experiment.experiment, EXP);
    e.u.experiment.rounds = 2;
    e.u.experiment.reason = "privacy budget: round 3 would spend epsilon 3.75 > 3";
    append(f, &e);
}

/* A signed ledger of one experiment: 2 rounds closed and scored, finished or not. */
static void build(struct fixture *f, int finished)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/aulac-test-report.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->out, sizeof f->out, "%s/report.html", f->dir);
    uint8_t seed[32];
    memset(seed, 0x42, sizeof seed);
    assert_int_equal(crypto_key_from_seed("coordinator", seed, &f->coord), 0);
    assert_int_equal(ledger_open(f->dir, NULL, &f->l), 0);
    assert_int_equal(ledger_set_signer(f->l, "aulac/test-alliance", f->coord), 0);
    assert_int_equal(ledger_txn_begin(f->l, &f->txn), 0);
    genesis_and_start(f);
    commit(f);
    for (uint64_t r = 1; r <= 2; r++) {
        assert_int_equal(ledger_txn_begin(f->l, &f->txn), 0);
        round_entries(f, r);
        if (r == 2 && finished)
            finish(f);
        commit(f);
    }
    /* one process must not hold an LMDB environment open twice: the commands open it */
    assert_int_equal(ledger_size(f->l, &f->size), 0);
    assert_int_equal(ledger_root(f->l, f->size, f->root), 0);
    ledger_close(f->l);
    f->l = NULL;
}

static int teardown_fixture(void **state)
{
    struct fixture *f = *state;
    if (!f)
        return 0;
    ledger_close(f->l);
    crypto_key_free(f->coord);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (f->dir[0] && system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int setup_running(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    *state = f;
    build(f, 0);
    return 0;
}

static int setup_finished(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    *state = f;
    build(f, 1);
    return 0;
}

/* Runs an aulac command with stdout into a malloc'd string; *rc its exit status. */
static char *run(int (*cmd)(int, char **), int *rc, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    char path[] = "/tmp/aulac-test-report-out.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    assert_true(dup2(fd, 1) >= 0);
    *rc = cmd(argc, argv);
    fflush(stdout);
    assert_true(dup2(saved, 1) >= 0);
    close(saved);
    close(fd);
    uint8_t *out;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 24, &out, &len), 0);
    unlink(path);
    return (char *)out;
}

/* The CSV field col (0-based) of the line starting with prefix. */
static double csv_field(const char *csv, const char *prefix, int col)
{
    const char *p = strstr(csv, prefix);
    assert_non_null(p);
    for (int i = 0; i < col; i++) {
        p = strchr(p, ',');
        assert_non_null(p);
        p++;
    }
    return strtod(p, NULL);
}

static void credits_of_a_running_experiment_are_the_totals_so_far(void **state)
{
    struct fixture *f = *state;
    int rc;
    char *csv = run(cmd_credits_show, &rc, 5, "credits", "--data-dir", f->dir, "--format", "csv");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(csv, "experiment,state,final,rounds_scored,member,member_rounds,credit,"
                                "share_tokens,share_rounds,share_bytes,share_alignment,share_loo,"
                                "share_shapley\n"));
    /* tokens 200 / 400 / 300 of 900; alignment 1 / 0.5 / 0 (gamma's -0.1 counts 0) of 1.5;
     * credit = their mean under weight 1 each */
    const double tok[3] = { 2.0 / 9, 4.0 / 9, 3.0 / 9 }, al[3] = { 2.0 / 3, 1.0 / 3, 0 };
    const int rounds[3] = { 2, 2, 1 };
    for (int i = 0; i < 3; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, EXP ",running,0,2,%s,%d,", members[i], rounds[i]);
        assert_true(fabs(csv_field(csv, prefix, 6) - (tok[i] + al[i]) / 2) < 1e-15);
        assert_true(fabs(csv_field(csv, prefix, 7) - tok[i]) < 1e-15);
        assert_true(fabs(csv_field(csv, prefix, 10) - al[i]) < 1e-15);
        const char *line = strstr(csv, prefix);
        /* rounds, bytes, loo, shapley are not measured: empty fields */
        assert_non_null(strstr(line, ",,,"));
    }
    free(csv);

    char *table = run(cmd_credits_show, &rc, 3, "credits", "--data-dir", f->dir);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(table, "experiment " EXP " (running, 2 rounds so far)"));
    assert_non_null(strstr(table, "44.44%"));   /* alpha: (2/9 + 2/3) / 2 */
    free(table);

    char *json = run(cmd_credits_show, &rc, 5, "credits", "--data-dir", f->dir, "--format",
                     "json");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(json, "\"experiment\":\"" EXP "\",\"state\":\"running\","
                                 "\"final\":false,\"status\":\"running, 2 rounds so far\""));
    assert_non_null(strstr(json, "\"measures\":[\"tokens\",\"alignment\"]"));
    assert_non_null(strstr(json, "{\"member\":\"gamma\",\"share\":0.16666666666666666,"));
    free(json);

    char *none = run(cmd_credits_show, &rc, 5, "credits", "--data-dir", f->dir, "--experiment",
                     "nope");
    assert_int_equal(rc, 1);
    free(none);
    none = run(cmd_credits_show, &rc, 5, "credits", "--data-dir", f->dir, "--format", "xml");
    assert_int_equal(rc, 2);
    free(none);
}

static void credits_of_a_finished_experiment_are_its_credits_entry(void **state)
{
    struct fixture *f = *state;
    int rc;
    char *csv = run(cmd_credits_show, &rc, 7, "credits", "--data-dir", f->dir, "--experiment",
                    EXP, "--format", "csv");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(csv, EXP ",finished,1,2,alpha,2,0.5,0.5,,,0.5,,\n"));
    assert_non_null(strstr(csv, EXP ",finished,1,2,gamma,1,0.20000000000000001,"));
    free(csv);
    char *table = run(cmd_credits_show, &rc, 3, "credits", "--data-dir", f->dir);
    assert_non_null(strstr(table, "experiment " EXP " (finished, 2 rounds scored)"));
    assert_null(strstr(table, "running"));
    free(table);
}

/* The text of the element with this id attribute. */
static char *element_text(const char *html, const char *id)
{
    char key[80];
    snprintf(key, sizeof key, "id=\"%s\">", id);
    const char *p = strstr(html, key);
    assert_non_null(p);
    p += strlen(key);
    const char *end = strchr(p, '<');
    return strndup(p, (size_t)(end - p));
}

static void report_has_member_rows_chart_points_root_and_escaped_reasons(void **state)
{
    struct fixture *f = *state;
    int rc;
    char *msg = run(cmd_report, &rc, 7, "report", "--data-dir", f->dir, "--experiment", EXP,
                    "--out", f->out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(msg, "wrote "));
    free(msg);
    uint8_t *buf;
    size_t len;
    assert_int_equal(file_read_all(f->out, 1 << 24, &buf, &len), 0);
    const char *h = (const char *)buf;
    assert_int_equal(strncmp(h, "<!DOCTYPE html>", 15), 0);
    for (int i = 0; i < 3; i++) {
        char k[80];
        snprintf(k, sizeof k, "<tr data-member=\"%s\">", members[i]);
        assert_int_equal(count(h, k), 1);
        /* tokens and alignment charts: alpha and beta in both rounds, gamma in round 1;
         * validation and training loss: the same accepted updates */
        snprintf(k, sizeof k, "<circle data-member=\"%s\"", members[i]);
        assert_int_equal(count(h, k), i < 2 ? 2 * 4 : 1 * 4);
    }
    assert_non_null(strstr(h, "data-chart=\"measure-tokens\""));
    assert_non_null(strstr(h, "data-chart=\"measure-alignment\""));
    assert_non_null(strstr(h, "data-chart=\"val-loss\""));
    assert_non_null(strstr(h, "data-chart=\"train-loss\""));
    assert_non_null(strstr(h, "<circle data-member=\"beta\" data-round=\"2\" data-value=\"4.1\""));
    assert_non_null(strstr(h, "Running, 2 rounds so far"));
    assert_non_null(strstr(h, "<td class=\"credit\" data-value=\"0.444444444\">"));
    /* the reason: escaped, never markup */
    assert_null(strstr(h, "<script"));
    assert_non_null(strstr(h, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                              "&quot;bad&quot; update"));
    /* nothing external */
    assert_null(strstr(h, "http:"));
    assert_null(strstr(h, "https:"));
    assert_null(strstr(h, "src="));
    assert_null(strstr(h, "href="));
    /* the root and size of the latest checkpoint, which covers the whole ledger */
    char hex[65];
    hex_encode(f->root, 32, hex);
    char *shown = element_text(h, "ledger-root");
    assert_string_equal(shown, hex);
    free(shown);
    shown = element_text(h, "ledger-size");
    assert_int_equal(strtoull(shown, NULL, 10), f->size);
    free(shown);
    shown = element_text(h, "checkpoint-signature");
    assert_true(strlen(shown) > 80);   /* base64 of key ID and Ed25519 signature */
    free(shown);
    free(buf);

    /* no such experiment: nothing written */
    unlink(f->out);
    msg = run(cmd_report, &rc, 7, "report", "--data-dir", f->dir, "--experiment", "nope",
              "--out", f->out);
    assert_int_equal(rc, 1);
    assert_false(file_exists(f->out));
    free(msg);
    msg = run(cmd_report, &rc, 5, "report", "--data-dir", f->dir, "--out", f->out);
    assert_int_equal(rc, 2);
    free(msg);
}

static void report_of_a_finished_experiment_shows_its_credits_entry(void **state)
{
    struct fixture *f = *state;
    int rc;
    char *msg = run(cmd_report, &rc, 7, "report", "--data-dir", f->dir, "--experiment", EXP,
                    "--out", f->out);
    assert_int_equal(rc, 0);
    free(msg);
    uint8_t *buf;
    size_t len;
    assert_int_equal(file_read_all(f->out, 1 << 24, &buf, &len), 0);
    const char *h = (const char *)buf;
    assert_non_null(strstr(h, "From the experiment's credits entry"));
    assert_non_null(strstr(h, "<td class=\"credit\" data-value=\"0.5\">"));
    assert_non_null(strstr(h, "<b id=\"state\">finished</b>; 2 of 2 rounds closed; privacy "
                              "budget: round 3 would spend epsilon 3.75 &gt; 3; differential "
                              "privacy: &epsilon; <b id=\"epsilon\">2.5</b> spent after round 2"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(html_text_escapes_markup_quotes_and_controls),
        cmocka_unit_test(svg_axes_map_values_and_skip_nan),
        cmocka_unit_test(svg_ticks_are_round_numbers_within_the_range),
        cmocka_unit_test(svg_chart_has_a_circle_per_finite_point_and_breaks_at_nan),
        cmocka_unit_test_setup_teardown(credits_of_a_running_experiment_are_the_totals_so_far,
                                        setup_running, teardown_fixture),
        cmocka_unit_test_setup_teardown(credits_of_a_finished_experiment_are_its_credits_entry,
                                        setup_finished, teardown_fixture),
        cmocka_unit_test_setup_teardown(
            report_has_member_rows_chart_points_root_and_escaped_reasons, setup_running,
            teardown_fixture),
        cmocka_unit_test_setup_teardown(report_of_a_finished_experiment_shows_its_credits_entry,
                                        setup_finished, teardown_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
