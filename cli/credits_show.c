/* aulac credits SOURCE: each member's credit share per experiment, from the ledger's
 * credits entries or, for an experiment still running, from its contribution_scores
 * entries so far. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/experiment_view.h"
#include "cli/ledger_source.h"

#define CMD "credits"

static const char usage[] =
    "usage: aulac credits SOURCE [--experiment ID] [--format table|csv|json]\n"
    "       aulac credits verify ...   (aulac credits verify --help)\n"
    "\n"
    "Each member's credit per experiment: its share under the policy's credit_weights and\n"
    "its share of each contribution measure, from the experiment's credits entry (written\n"
    "when it finished). For an experiment still running, the totals of its\n"
    "contribution_scores entries so far under the same rules, marked \"running, N rounds\n"
    "so far\". The normalization is written down in credit/README.md.\n"
    "\n"
    LEDGER_SOURCE_USAGE
    "\n"
    "  --experiment ID   only this experiment (default: every experiment with scores)\n"
    "  --format F        table (default, for people), csv (one row per experiment and\n"
    "                    member, with a header) or json (one object)\n"
    "\n"
    "Reaching the coordinator (with --coordinator ADDR):\n"
    CLIENT_TLS_USAGE
    "\n"
    "Exit status: 0 ok, 1 the ledger could not be read or has no such experiment, 2 usage.\n";

enum format { FMT_TABLE, FMT_CSV, FMT_JSON };

/* The columns of the CSV and the keys of the JSON, in this order: every measure. */
static const char *measure_column(int m)
{
    const char *n = policy_measure_name((enum policy_measure)m);
    return n ? n : "?";
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* A JSON number, or null for NaN and infinities (never valid JSON). */
static void json_number(double v)
{
    if (isfinite(v))
        printf("%.17g", v);
    else
        fputs("null", stdout);
}

/* Where measure m of the policy's enum sits in the credits entry; -1 when not scored. */
static int column_of(const struct entry_credits *c, int m)
{
    const char *name = policy_measure_name((enum policy_measure)m);
    for (uint32_t k = 0; name && k < c->n_measures && k < ENTRY_MEASURES_MAX; k++)
        if (strcmp(c->measures[k], name) == 0)
            return (int)k;
    return -1;
}

static void status_words(const struct ev_experiment *x, const struct entry_credits *c,
                         int final, char *out, size_t cap)
{
    if (final)
        snprintf(out, cap, "%s, %" PRIu64 " round%s scored", ev_state_name(x->state),
                 c->rounds, c->rounds == 1 ? "" : "s");
    else if (x->state == EV_RUNNING)
        snprintf(out, cap, "running, %" PRIu64 " round%s so far", c->rounds,
                 c->rounds == 1 ? "" : "s");
    else
        snprintf(out, cap, "%s, %" PRIu64 " round%s scored; no credits entry: totals of its "
                 "scores", ev_state_name(x->state), c->rounds, c->rounds == 1 ? "" : "s");
}

static void print_table(const struct ev_experiment *x, const struct entry_credits *c, int final)
{
    char st[160];
    status_words(x, c, final, st, sizeof st);
    printf("experiment %s (%s)\n", x->id, st);
    printf("  credit weights:");
    uint32_t nm = c->n_measures < ENTRY_MEASURES_MAX ? c->n_measures : ENTRY_MEASURES_MAX;
    for (uint32_t k = 0; k < nm; k++)
        printf("%s %s %g", k ? "," : "", c->measures[k], c->weights[k]);
    printf("\n  %-16s %8s", "member", "credit");
    for (uint32_t k = 0; k < nm; k++)
        printf(" %10s", c->measures[k]);
    printf(" %7s\n", "rounds");
    for (uint32_t i = 0; i < c->n; i++) {
        const struct entry_credit_share *m = &c->members[i];
        printf("  %-16s %7.2f%%", m->member, 100 * m->share);
        for (uint32_t k = 0; k < nm; k++)
            printf(" %9.2f%%", 100 * m->measure_share[k]);
        printf(" %7" PRIu64 "\n", m->rounds);
    }
    printf("\n");
}

static void print_csv_header(void)
{
    printf("experiment,state,final,rounds_scored,member,member_rounds,credit");
    for (int m = 0; m < POLICY_MEASURES; m++)
        printf(",share_%s", measure_column(m));
    printf("\n");
}

/* Ids are [a-z0-9._-] (checked at decode), so no field needs quoting. */
static void print_csv(const struct ev_experiment *x, const struct entry_credits *c, int final)
{
    for (uint32_t i = 0; i < c->n; i++) {
        const struct entry_credit_share *m = &c->members[i];
        printf("%s,%s,%d,%" PRIu64 ",%s,%" PRIu64 ",%.17g", x->id, ev_state_name(x->state),
               final, c->rounds, m->member, m->rounds, m->share);
        for (int k = 0; k < POLICY_MEASURES; k++) {
            int col = column_of(c, k);
            if (col >= 0)
                printf(",%.17g", m->measure_share[col]);
            else
                printf(",");
        }
        printf("\n");
    }
}

static void print_json(const struct ev_experiment *x, const struct entry_credits *c, int final,
                       int first)
{
    char st[160];
    status_words(x, c, final, st, sizeof st);
    uint32_t nm = c->n_measures < ENTRY_MEASURES_MAX ? c->n_measures : ENTRY_MEASURES_MAX;
    printf("%s{\"experiment\":", first ? "" : ",");
    json_string(x->id);
    printf(",\"state\":\"%s\",\"final\":%s,\"status\":", ev_state_name(x->state),
           final ? "true" : "false");
    json_string(st);
    printf(",\"rounds\":%" PRIu64 ",\"measures\":[", c->rounds);
    for (uint32_t k = 0; k < nm; k++) {
        printf("%s", k ? "," : "");
        json_string(c->measures[k]);
    }
    printf("],\"weights\":{");
    for (uint32_t k = 0; k < nm; k++) {
        printf("%s", k ? "," : "");
        json_string(c->measures[k]);
        putchar(':');
        json_number(c->weights[k]);
    }
    printf("},\"members\":[");
    for (uint32_t i = 0; i < c->n; i++) {
        const struct entry_credit_share *m = &c->members[i];
        printf("%s{\"member\":", i ? "," : "");
        json_string(m->member);
        printf(",\"share\":");
        json_number(m->share);
        printf(",\"measures\":{");
        for (uint32_t k = 0; k < nm; k++) {
            printf("%s", k ? "," : "");
            json_string(c->measures[k]);
            putchar(':');
            json_number(m->measure_share[k]);
        }
        printf("},\"rounds\":%" PRIu64 "}", m->rounds);
    }
    printf("]}");
}

static int add_entry(uint64_t index, const uint8_t *data, size_t len, void *arg)
{
    if (experiment_views_add(arg, index, data, len) != 0)
        return cli_fail(CMD, "out of memory reading entry %" PRIu64, index);
    return 0;
}

int cmd_credits_show(int argc, char **argv)
{
    const char *dir = NULL, *coordinator = NULL, *experiment = NULL, *format = "table";
    struct client_tls tls = { 0 };
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'd' }, { "coordinator", required_argument, 0, 'c' },
        CLIENT_TLS_OPTIONS, { "experiment", required_argument, 0, 'e' },
        { "format", required_argument, 0, 'f' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (client_tls_option(&tls, ch, optarg))
            continue;
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'c': coordinator = optarg; break;
        case 'e': experiment = optarg; break;
        case 'f': format = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case ':': return cli_usage_error(CMD, usage, "%s needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, usage, "unexpected argument '%s'", argv[optind]);
    enum format fmt;
    if (strcmp(format, "table") == 0)
        fmt = FMT_TABLE;
    else if (strcmp(format, "csv") == 0)
        fmt = FMT_CSV;
    else if (strcmp(format, "json") == 0)
        fmt = FMT_JSON;
    else
        return cli_usage_error(CMD, usage, "--format is table, csv or json, not '%s'", format);
    int rc = ledger_source_check(CMD, usage, CMD, dir, coordinator, &tls);
    if (rc != 0)
        return rc;
    if (sodium_init() < 0)
        return cli_fail(CMD, "libsodium failed to initialize");

    struct ledger_source s;
    struct experiment_views v;
    experiment_views_init(&v, experiment);
    uint64_t size = 0;
    int result = 1;
    if (ledger_source_open(&s, CMD, dir, coordinator, &tls) != 0 ||
        ledger_source_size(&s, &size) != 0 ||
        ledger_source_entries(&s, 0, size, add_entry, &v) != 0)
        goto out;
    if (v.undecodable)
        fprintf(stderr, "aulac credits: warning: %" PRIu64 " entr%s of %s do not decode and were "
                "skipped (aulac ledger verify)\n", v.undecodable,
                v.undecodable == 1 ? "y" : "ies", s.name);
    if (experiment && !experiment_views_find(&v, experiment)) {
        cli_fail(CMD, "%s has no experiment '%s' (aulac experiment list names them)", s.name,
                 experiment);
        goto out;
    }
    if (fmt == FMT_CSV)
        print_csv_header();
    if (fmt == FMT_JSON)
        printf("{\"ledger_size\":%" PRIu64 ",\"experiments\":[", size);
    size_t shown = 0, unscored = 0;
    result = 0;
    for (size_t i = 0; i < v.n; i++) {
        const struct ev_experiment *x = v.items[i];
        struct entry_credits c;
        int final;
        char why[300];
        rc = ev_credits(x, &c, &final, why, sizeof why);
        if (rc < 0) {
            cli_fail(CMD, "%s", why);
            result = 1;
            continue;
        }
        if (rc == 1) {
            unscored++;
            if (experiment) {
                if (x->n_rounds == 0)
                    cli_fail(CMD, "experiment %s (%s) has no contribution scores yet: no round "
                             "of it has closed", x->id, ev_state_name(x->state));
                else
                    cli_fail(CMD, "experiment %s (%s) has no contribution scores: its %zu "
                             "closed round%s have no contribution_scores entry (a ledger "
                             "written before contribution scores)", x->id,
                             ev_state_name(x->state), x->n_rounds, x->n_rounds == 1 ? "" : "s");
                result = 1;
            }
            continue;
        }
        if (fmt == FMT_TABLE)
            print_table(x, &c, final);
        else if (fmt == FMT_CSV)
            print_csv(x, &c, final);
        else
            print_json(x, &c, final, shown == 0);
        shown++;
        ev_credits_free(&c);
    }
    if (fmt == FMT_JSON)
        printf("]}\n");
    if (fmt == FMT_TABLE && !experiment) {
        if (shown == 0)
            printf("no experiment in %s has contribution scores yet\n", s.name);
        if (unscored)
            printf("(%zu other experiment%s without contribution scores)\n", unscored,
                   unscored == 1 ? "" : "s");
    }
out:
    experiment_views_free(&v);
    ledger_source_close(&s);
    return result;
}
