/* aulac report SOURCE --experiment ID --out FILE: the secretariat's credit report of one
 * experiment, as one self-contained HTML file (inline CSS and SVG; no script, no font, no
 * image, no URL), built from the entries of the ledger's latest signed checkpoint. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/experiment_view.h"
#include "cli/html.h"
#include "cli/ledger_source.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "crypto/keys.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"

#define CMD "report"

static const char usage[] =
    "usage: aulac report SOURCE --experiment ID --out FILE [--key FILE]\n"
    "\n"
    "Writes the credit report of one experiment as a single HTML file that needs nothing\n"
    "else to be read (inline CSS and SVG charts; no script, font, image or URL): each\n"
    "member's credit share and share per contribution measure with its tokens, bytes,\n"
    "rounds and rejected updates; every round's scores per measure (table and chart);\n"
    "each member's validation and training loss per round; the evaluation loss of each\n"
    "round's base model and model; the rejected updates with their reasons; and the ledger\n"
    "it was built from: the entries of the latest signed checkpoint (size, root, signature,\n"
    "key ID), whose root is recomputed from those entries and must match.\n"
    "For an experiment still running, the credit columns are the totals so far.\n"
    "\n"
    LEDGER_SOURCE_USAGE
    "\n"
    "  --experiment ID   the experiment (aulac experiment list names them)\n"
    "  --out FILE        where to write the report (atomically: a temporary file beside\n"
    "                    it, synced, then renamed over FILE)\n"
    "  --key FILE        the coordinator's public key file to check the checkpoint with\n"
    "                    (default: the key the genesis entry names)\n"
    "\n"
    "Reaching the coordinator (with --coordinator ADDR):\n"
    CLIENT_TLS_USAGE
    "\n"
    "Exit status: 0 written, 1 the ledger could not be read or failed a check, or no such\n"
    "experiment, 2 usage.\n";

/* What the report is built from, besides the experiment. */
struct basis {
    const char *source;
    struct checkpoint ckpt;          /* verified */
    char *note;
    struct checkpoint_key key;
    char key_from[300];
};

struct member_row {
    char     id[ENTRY_ID_MAX + 1];
    int      color;
    uint64_t tokens, bytes, rounds, rejected;
    const struct entry_credit_share *credit;   /* NULL: none */
};

struct report {
    const struct ev_experiment *x;
    const struct basis *b;
    struct entry_credits credits;
    int have_credits, final;
    size_t n_members;
    struct member_row *members;      /* sorted by id */
};

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const struct member_row *)a)->id, ((const struct member_row *)b)->id);
}

static struct member_row *row_of(struct report *r, const char *id)
{
    for (size_t i = 0; i < r->n_members; i++)
        if (strcmp(r->members[i].id, id) == 0)
            return &r->members[i];
    return NULL;
}

/* Every member the experiment names (credits, scores, updates), sorted, with its sums. */
static int collect_members(struct report *r)
{
    const struct ev_experiment *x = r->x;
    size_t cap = x->n_updates + (r->have_credits ? r->credits.n : 0);
    for (size_t i = 0; i < x->n_scores; i++)
        cap += x->scores[i].u.scores.n;
    r->members = calloc(cap ? cap : 1, sizeof *r->members);
    if (!r->members)
        return -1;
#define ADD(name)                                                                    \
    do {                                                                             \
        if (!row_of(r, name))                                                        \
            snprintf(r->members[r->n_members++].id, ENTRY_ID_MAX + 1, "%s", name);   \
    } while (0)
    if (r->have_credits)
        for (uint32_t i = 0; i < r->credits.n; i++)
            ADD(r->credits.members[i].member);
    for (size_t i = 0; i < x->n_scores; i++)
        for (uint32_t k = 0; k < x->scores[i].u.scores.n; k++)
            ADD(x->scores[i].u.scores.members[k].member);
    for (size_t i = 0; i < x->n_updates; i++)
        ADD(x->updates[i].member);
#undef ADD
    qsort(r->members, r->n_members, sizeof *r->members, cmp_row);
    for (size_t i = 0; i < r->n_members; i++)
        r->members[i].color = (int)i;
    for (size_t i = 0; i < x->n_updates; i++) {
        const struct ev_update *u = &x->updates[i];
        struct member_row *m = row_of(r, u->member);
        if (!u->accepted) {
            m->rejected++;
            continue;
        }
        m->tokens += u->tokens;
        m->bytes += u->bytes;
        m->rounds++;   /* one accepted update per (round, member): ledger/history.c */
    }
    if (r->have_credits)
        for (uint32_t i = 0; i < r->credits.n; i++)
            row_of(r, r->credits.members[i].member)->credit = &r->credits.members[i];
    return 0;
}

/* --- pieces of the page ---------------------------------------------------------------- */

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1b;"
    "margin:24px auto;max-width:1120px;padding:0 16px}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px "
    "solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}\n"
    "code,.mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px;"
    "word-break:break-all}\n"
    ".meta{color:#555;margin:2px 0}\n"
    "table{border-collapse:collapse;margin:6px 0 10px}th,td{padding:4px 10px;text-align:right;"
    "border-bottom:1px solid #e6e6e6;vertical-align:top}th{background:#f5f5f5;font-weight:600}"
    "td:first-child,th:first-child{text-align:left}\n"
    "table.kv td{text-align:left}table.kv td:first-child{color:#555;white-space:nowrap}\n"
    "td.reason,th.reason{text-align:left}td.reason{max-width:620px;white-space:pre-wrap;"
    "word-break:break-word}\n"
    ".bar{display:inline-block;height:10px;background:#0072b2;vertical-align:middle;"
    "margin-right:6px}\n"
    ".swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}\n"
    ".running{color:#9a5b00;font-weight:600}.none{color:#888}\n"
    "svg.chart{display:block;margin:8px 0 16px;background:#fff;border:1px solid #eee}\n"
    "svg .grid{stroke:#eee}svg .axis{stroke:#888}svg text{font-size:11px;fill:#333}"
    "svg .ct{font-size:13px;font-weight:600}svg .label{font-size:12px;fill:#555}\n"
    "pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}\n";

static void hex_out(FILE *f, const uint8_t *b, size_t n)
{
    char hex[2 * 64 + 1];
    hex_encode(b, n, hex);
    fputs(hex, f);
}

/* "1.2 MB" style for bytes; exact count in the title attribute. */
static void bytes_out(FILE *f, uint64_t n)
{
    static const char *unit[] = { "B", "kB", "MB", "GB", "TB" };
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    fprintf(f, "<span title=\"%" PRIu64 " bytes\">", n);
    if (u == 0)
        fprintf(f, "%" PRIu64 " B", n);
    else
        fprintf(f, "%.1f %s", v, unit[u]);
    fputs("</span>", f);
}

static void value_cell(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "<td>%.6g</td>", v);
    else
        fputs("<td class=\"none\">&mdash;</td>", f);
}

/* The base64 signature of the line signed by key in a signed note (the bytes after
 * "— NAME "), into out; "" when absent. */
static void note_signature(const char *note, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    const char *p = strstr(note, "\n\n");
    if (!p)
        return;
    p += 2;
    size_t nl = strlen(name);
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* "\xe2\x80\x94 " is the em dash and a space */
        if (len > 4 + nl + 1 && memcmp(p, "\xe2\x80\x94 ", 4) == 0 &&
            memcmp(p + 4, name, nl) == 0 && p[4 + nl] == ' ') {
            size_t n = len - (4 + nl + 1);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, p + 4 + nl + 1, n);
            out[n] = 0;
            return;
        }
        if (!end)
            break;
        p = end + 1;
    }
}

static void section_basis(FILE *f, const struct report *r)
{
    const struct basis *b = r->b;
    char sig[200];
    note_signature(b->note, b->key.name, sig, sizeof sig);
    fputs("<h2 id=\"basis\">Built from</h2>\n<table class=\"kv\">\n", f);
    fputs("<tr><td>ledger</td><td class=\"mono\">", f);
    html_text(f, b->source);
    fprintf(f, "</td></tr>\n<tr><td>ledger size</td><td><span id=\"ledger-size\">%" PRIu64
            "</span> entries (those of the latest signed checkpoint)</td></tr>\n",
            b->ckpt.size);
    fputs("<tr><td>root</td><td class=\"mono\" id=\"ledger-root\">", f);
    hex_out(f, b->ckpt.root, 32);
    fputs("</td></tr>\n<tr><td>checkpoint</td><td>size <span id=\"checkpoint-size\">", f);
    fprintf(f, "%" PRIu64 "</span>, signed by <code>", b->ckpt.size);
    html_text(f, b->key.name);
    fprintf(f, "</code>, note key ID <code id=\"checkpoint-key-id\">%08x</code>; the "
            "coordinator's public key: ", (unsigned)b->key.id);
    html_text(f, b->key_from);
    fputs(". Signature verified, and the root recomputed from the entries matches it</td>"
          "</tr>\n<tr><td>signature</td><td class=\"mono\" id=\"checkpoint-signature\">", f);
    html_text(f, sig);
    fputs("</td></tr>\n</table>\n<pre id=\"checkpoint-note\">", f);
    html_text(f, b->note);
    fputs("</pre>\n", f);
}

static void section_credit(FILE *f, const struct report *r)
{
    const struct entry_credits *c = &r->credits;
    uint32_t nm = r->have_credits ? (c->n_measures < ENTRY_MEASURES_MAX ? c->n_measures
                                                                         : ENTRY_MEASURES_MAX)
                                  : 0;
    fputs("<h2 id=\"credit\">Credit</h2>\n<p class=\"meta\">", f);
    if (!r->have_credits && r->x->n_rounds == 0)
        fputs("No contribution scores yet: no round of this experiment has closed.", f);
    else if (!r->have_credits)
        fputs("No contribution scores: its closed rounds have no contribution_scores entry "
              "(a ledger written before contribution scores).", f);
    else if (r->final)
        fprintf(f, "From the experiment's credits entry: %" PRIu64 " round%s scored.",
                c->rounds, c->rounds == 1 ? "" : "s");
    else
        fprintf(f, "<span class=\"running\">%s, %" PRIu64 " round%s so far</span>: totals of "
                "its contribution_scores entries (no credits entry yet).",
                r->x->state == EV_RUNNING ? "Running" : ev_state_name(r->x->state), c->rounds,
                c->rounds == 1 ? "" : "s");
    if (nm) {
        fputs(" Credit = weighted mean of the shares per measure; weights:", f);
        for (uint32_t k = 0; k < nm; k++) {
            fprintf(f, "%s ", k ? "," : "");
            html_text(f, c->measures[k]);
            fprintf(f, " %g", c->weights[k]);
        }
        fputs(". Negative values count 0; a member absent from a round gets 0 for it.", f);
    }
    fputs("</p>\n<table id=\"credit-table\">\n<thead><tr><th>member</th><th>credit</th>", f);
    for (uint32_t k = 0; k < nm; k++) {
        fputs("<th>", f);
        html_text(f, c->measures[k]);
        fputs(" share</th>", f);
    }
    fputs("<th>tokens</th><th>bytes</th><th>rounds</th><th>rejected</th></tr></thead>\n"
          "<tbody>\n", f);
    for (size_t i = 0; i < r->n_members; i++) {
        const struct member_row *m = &r->members[i];
        fputs("<tr data-member=\"", f);
        html_text(f, m->id);
        fprintf(f, "\"><td><span class=\"swatch\" style=\"background:%s\"></span>",
                svg_color(m->color));
        html_text(f, m->id);
        fputs("</td>", f);
        if (!r->have_credits) {
            fputs("<td class=\"none\">&mdash;</td>", f);
        } else {
            double s = m->credit ? m->credit->share : 0;
            double w = isfinite(s) && s > 0 ? (s > 1 ? 1 : s) : 0;
            fprintf(f, "<td class=\"credit\" data-value=\"%.9g\"><span class=\"bar\" "
                    "style=\"width:%.0fpx\"></span>%.2f%%</td>", s, 120 * w, 100 * s);
        }
        for (uint32_t k = 0; k < nm; k++) {
            double s = m->credit ? m->credit->measure_share[k] : 0;
            fprintf(f, "<td>%.2f%%</td>", 100 * s);
        }
        fprintf(f, "<td>%" PRIu64 "</td><td>", m->tokens);
        bytes_out(f, m->bytes);
        fprintf(f, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>\n", m->rounds,
                m->rejected);
    }
    fputs("</tbody>\n</table>\n", f);
}

/* The value of member in a scores entry for measure column k; NaN when absent. */
static double score_of(const struct entry_contribution_scores *s, const char *member, uint32_t k)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (strcmp(s->members[i].member, member) == 0)
            return s->members[i].values[k];
    return NAN;
}

/* Tall enough for a legend line per series. */
static int chart_height(size_t n_series)
{
    size_t h = 90 + 18 * n_series;
    return h < 300 ? 300 : h > 4000 ? 4000 : (int)h;
}

/* Points of each series, in one allocation per coordinate. */
struct series_set {
    size_t n, np;                    /* series, points room per series */
    struct svg_series *s;
    double *xs, *ys;                 /* series i's points at [i * np, (i + 1) * np) */
};
#define PX(q, i, j) (q).xs[(i) * (q).np + (j)]
#define PY(q, i, j) (q).ys[(i) * (q).np + (j)]

static void series_free(struct series_set *q)
{
    free(q->s);
    free(q->xs);
    free(q->ys);
    memset(q, 0, sizeof *q);
}

static int series_alloc(struct series_set *q, size_t n_series, size_t n_points)
{
    memset(q, 0, sizeof *q);
    q->s = calloc(n_series ? n_series : 1, sizeof *q->s);
    q->xs = calloc(n_series * n_points + 1, sizeof *q->xs);
    q->ys = calloc(n_series * n_points + 1, sizeof *q->ys);
    if (!q->s || !q->xs || !q->ys) {
        series_free(q);
        return -1;
    }
    q->n = n_series;
    q->np = n_points;
    for (size_t i = 0; i < n_series; i++) {
        q->s[i].x = q->xs + i * n_points;
        q->s[i].y = q->ys + i * n_points;
    }
    return 0;
}

static int section_scores(FILE *f, const struct report *r)
{
    const struct ev_experiment *x = r->x;
    fputs("<h2 id=\"scores\">Scores per round</h2>\n", f);
    if (x->n_scores == 0) {
        fputs("<p class=\"none\">No contribution_scores entry for this experiment.</p>\n", f);
        return 0;
    }
    const struct entry_contribution_scores *s0 = &x->scores[0].u.scores;
    uint32_t nm = s0->n_measures < ENTRY_MEASURES_MAX ? s0->n_measures : ENTRY_MEASURES_MAX;
    for (uint32_t k = 0; k < nm; k++) {
        const char *name = s0->measures[k];
        fputs("<h3>", f);
        html_text(f, name);
        fprintf(f, "</h3>\n<table class=\"scores\" data-measure=\"");
        html_text(f, name);
        fputs("\"><thead><tr><th>round</th>", f);
        for (size_t i = 0; i < r->n_members; i++) {
            fputs("<th>", f);
            html_text(f, r->members[i].id);
            fputs("</th>", f);
        }
        fputs("</tr></thead><tbody>\n", f);
        struct series_set q;
        if (series_alloc(&q, r->n_members, x->n_scores) != 0)
            return -1;
        for (size_t j = 0; j < x->n_scores; j++) {
            const struct entry_contribution_scores *s = &x->scores[j].u.scores;
            /* an entry listing other measures (refused by credits) is shown by name */
            int col = -1;
            for (uint32_t c = 0; c < s->n_measures && c < ENTRY_MEASURES_MAX; c++)
                if (strcmp(s->measures[c], name) == 0)
                    col = (int)c;
            fprintf(f, "<tr><td>%" PRIu64 "</td>", s->round);
            for (size_t i = 0; i < r->n_members; i++) {
                double v = col < 0 ? NAN : score_of(s, r->members[i].id, (uint32_t)col);
                value_cell(f, v);
                PX(q, i, j) = (double)s->round;
                PY(q, i, j) = v;
            }
            fputs("</tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
        for (size_t i = 0; i < r->n_members; i++) {
            q.s[i].name = r->members[i].id;
            q.s[i].member = r->members[i].id;
            q.s[i].color = r->members[i].color;
            q.s[i].n = x->n_scores;
        }
        char id[64], title[128];
        snprintf(id, sizeof id, "measure-%s", name);
        snprintf(title, sizeof title, "%s per round", name);
        struct svg_chart ch = { .id = id, .title = title, .x_label = "round", .y_label = name,
                                .width = 900, .height = chart_height(r->n_members),
                                .integer_x = 1 };
        svg_line_chart(f, &ch, q.s, q.n);
        series_free(&q);
    }

    /* the evaluation behind loo / shapley */
    static const uint8_t zero[32];
    int evaluated = 0;   /* an evaluation-based measure (loo, shapley) was scored */
    for (size_t j = 0; j < x->n_scores; j++) {
        const struct entry_contribution_scores *s = &x->scores[j].u.scores;
        evaluated |= memcmp(s->evalset_hash, zero, 32) != 0 || isfinite(s->base_loss) ||
                     isfinite(s->model_loss);
    }
    fputs("<h3>Evaluation</h3>\n", f);
    if (!evaluated) {
        fputs("<p class=\"none\">No evaluation-based measure (loo, shapley) in this "
              "experiment.</p>\n", f);
        return 0;
    }
    fputs("<table id=\"evaluation\"><thead><tr><th>round</th>"
          "<th>base model loss</th><th>round model loss</th><th>evaluations</th>"
          "<th>shapley</th><th>evaluation set</th></tr></thead><tbody>\n", f);
    int any_eval = 0;
    struct series_set q;
    if (series_alloc(&q, 2, x->n_scores) != 0)
        return -1;
    for (size_t j = 0; j < x->n_scores; j++) {
        const struct entry_contribution_scores *s = &x->scores[j].u.scores;
        int shapley = 0;
        for (uint32_t c = 0; c < s->n_measures && c < ENTRY_MEASURES_MAX; c++)
            shapley |= strcmp(s->measures[c], "shapley") == 0;
        any_eval |= isfinite(s->base_loss) || isfinite(s->model_loss);
        fprintf(f, "<tr><td>%" PRIu64 "</td>", s->round);
        value_cell(f, s->base_loss);
        value_cell(f, s->model_loss);
        fprintf(f, "<td>%" PRIu64 "</td><td>%s</td><td class=\"mono\">", s->evaluations,
                !shapley ? "&mdash;" : s->exact ? "exact" : "GTG estimate");
        if (memcmp(s->evalset_hash, zero, 32) == 0)
            fputs("none", f);
        else
            hex_out(f, s->evalset_hash, 8);
        fputs("</td></tr>\n", f);
        PX(q, 0, j) = PX(q, 1, j) = (double)s->round;
        PY(q, 0, j) = s->base_loss;
        PY(q, 1, j) = s->model_loss;
    }
    fputs("</tbody></table>\n", f);
    if (any_eval) {
        q.s[0] = (struct svg_series){ .name = "base model", .color = 7, .n = x->n_scores,
                                      .x = q.s[0].x, .y = q.s[0].y };
        q.s[1] = (struct svg_series){ .name = "round model", .color = 4, .n = x->n_scores,
                                      .x = q.s[1].x, .y = q.s[1].y };
        struct svg_chart ch = { .id = "eval-loss", .title = "evaluation-set loss of each "
                                "round's base model and of the model it produced",
                                .x_label = "round", .y_label = "loss (nats)", .width = 900,
                                .height = 300, .integer_x = 1 };
        svg_line_chart(f, &ch, q.s, 2);
    }
    series_free(&q);
    return 0;
}

/* Per-member curves from the accepted updates: validation loss and training loss. */
static int section_losses(FILE *f, const struct report *r)
{
    const struct ev_experiment *x = r->x;
    fputs("<h2 id=\"losses\">Losses per member</h2>\n<p class=\"meta\">As each member "
          "reported them with its update: validation loss of the round's base model on its "
          "held-out text, and its mean training loss (informational; not scored).</p>\n", f);
    size_t most = 0;   /* points of the member with the most accepted updates */
    for (size_t i = 0; i < r->n_members; i++)
        most = r->members[i].rounds > most ? r->members[i].rounds : most;
    for (int which = 0; which < 2; which++) {
        struct series_set q;
        if (series_alloc(&q, r->n_members, most) != 0)
            return -1;
        size_t any = 0;
        for (size_t i = 0; i < r->n_members; i++) {
            struct svg_series *s = &q.s[i];
            s->name = s->member = r->members[i].id;
            s->color = r->members[i].color;
            for (size_t j = 0; j < x->n_updates; j++) {
                const struct ev_update *u = &x->updates[j];
                if (!u->accepted || strcmp(u->member, s->member) != 0 || s->n == most)
                    continue;
                double v = which == 0 ? u->val_loss : u->train_loss;
                PX(q, i, s->n) = (double)u->round;
                PY(q, i, s->n) = v;
                s->n++;
                any += isfinite(v) != 0;
            }
        }
        if (any) {
            struct svg_chart ch = {
                .id = which == 0 ? "val-loss" : "train-loss",
                .title = which == 0 ? "validation loss per member (its held-out text)"
                                    : "training loss per member",
                .x_label = "round", .y_label = "loss (nats)", .width = 900,
                .height = chart_height(r->n_members), .integer_x = 1 };
            svg_line_chart(f, &ch, q.s, q.n);
        } else {
            fprintf(f, "<p class=\"none\">No %s loss is recorded in the accepted updates.</p>\n",
                    which == 0 ? "validation" : "training");
        }
        series_free(&q);
    }
    return 0;
}

static void section_rejected(FILE *f, const struct report *r)
{
    const struct ev_experiment *x = r->x;
    size_t n = 0;
    for (size_t i = 0; i < x->n_updates; i++)
        n += !x->updates[i].accepted;
    fprintf(f, "<h2 id=\"rejected\">Rejected updates (%zu)</h2>\n", n);
    if (n == 0) {
        fputs("<p class=\"none\">None.</p>\n", f);
        return;
    }
    fputs("<table id=\"rejected-table\"><thead><tr><th>round</th><th>member</th>"
          "<th>tokens claimed</th><th>bytes</th><th>ledger entry</th>"
          "<th class=\"reason\">reason</th></tr></thead><tbody>\n", f);
    for (size_t i = 0; i < x->n_updates; i++) {
        const struct ev_update *u = &x->updates[i];
        if (u->accepted)
            continue;
        fprintf(f, "<tr><td>%" PRIu64 "</td><td>", u->round);
        html_text(f, u->member);
        fprintf(f, "</td><td>%" PRIu64 "</td><td>", u->tokens);
        bytes_out(f, u->bytes);
        fprintf(f, "</td><td>#%" PRIu64 "</td><td class=\"reason\">", u->index);
        html_text(f, u->reason ? u->reason : "(no reason recorded)");
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static int write_page(FILE *f, const struct report *r)
{
    const struct ev_experiment *x = r->x;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
          "Credit report: ", f);
    html_text(f, x->id);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>Credit report: "
            "experiment <code id=\"experiment\">", css);
    html_text(f, x->id);
    fputs("</code></h1>\n<p class=\"meta\">policy ", f);
    if (x->have_policy) {
        html_text(f, x->policy_name);
        fputs(", ", f);
    }
    fputs("hash <code id=\"policy-hash\">", f);
    hex_out(f, x->policy_hash, 32);
    fprintf(f, "</code></p>\n<p class=\"meta\">state: <b id=\"state\">%s</b>; %zu of %" PRIu64
            " rounds closed", ev_state_name(x->state), x->n_rounds, x->rounds_planned);
    if (x->end_reason) {
        fputs("; ", f);
        html_text(f, x->end_reason);
    }
    /* differential privacy: the epsilon its last round_closed carries (PRIVACY.md) */
    for (size_t i = x->n_rounds; i-- > 0;) {
        if (!x->rounds[i].has_epsilon)
            continue;
        fprintf(f, "; differential privacy: &epsilon; <b id=\"epsilon\">%.4g</b> spent after "
                "round %" PRIu64, x->rounds[i].epsilon, x->rounds[i].round);
        break;
    }
    fputs("</p>\n", f);
    section_credit(f, r);
    if (section_scores(f, r) != 0 || section_losses(f, r) != 0)
        return -1;
    section_rejected(f, r);
    section_basis(f, r);
    fputs("<p class=\"meta\">Written by aulac report from the ledger alone; anyone holding "
          "the ledger can rebuild it, and aulac credits verify recomputes every score.</p>\n"
          "</body>\n</html>\n", f);
    return 0;
}

/* --- reading ---------------------------------------------------------------------------- */

struct read_ctx {
    struct experiment_views *v;
    uint8_t (*leaves)[32];
};

static int add_entry(uint64_t index, const uint8_t *data, size_t len, void *arg)
{
    struct read_ctx *x = arg;
    merkle_leaf_hash(data, len, x->leaves[index]);
    if (experiment_views_add(x->v, index, data, len) != 0)
        return cli_fail(CMD, "out of memory reading entry %" PRIu64, index);
    return 0;
}

/* The latest signed checkpoint, verified, and its entries read into v; their root must be
 * the signed one. 0 or 1 (reported). */
static int read_basis(struct ledger_source *s, const char *key_file, struct basis *b,
                      struct experiment_views *v)
{
    if (ledger_source_key(s, key_file, &b->key, b->key_from, sizeof b->key_from) != 0)
        return 1;
    uint64_t found;
    int rc = ledger_source_checkpoint(s, LEDGER_LATEST, &b->note, &found);
    if (rc < 0)
        return 1;
    if (rc == 1)
        return cli_fail(CMD, "%s has no signed checkpoint: a report is built from the entries "
                        "of one", s->name);
    char why[400];
    if (checkpoint_verify(b->note, strlen(b->note), &b->key, &b->ckpt, why, sizeof why) != 0)
        return cli_fail(CMD, "the latest checkpoint of %s (size %" PRIu64 ") does not verify "
                        "against %s: %s", s->name, found, b->key_from, why);
    uint64_t n = b->ckpt.size;
    struct read_ctx x = { .v = v, .leaves = malloc((n ? n : 1) * 32) };
    if (!x.leaves)
        return cli_fail(CMD, "out of memory for %" PRIu64 " leaf hashes", n);
    rc = ledger_source_entries(s, 0, n, add_entry, &x);
    uint8_t root[32];
    if (rc == 0 && merkle_root((const uint8_t (*)[32])x.leaves, n, root) == 0 &&
        !crypto_equal(root, b->ckpt.root, 32))
        rc = cli_fail(CMD, "the first %" PRIu64 " entries of %s do not hash to the root of its "
                      "signed checkpoint: the ledger was altered (aulac ledger verify names the "
                      "entry)", n, s->name);
    free(x.leaves);
    return rc;
}

int cmd_report(int argc, char **argv)
{
    const char *dir = NULL, *coordinator = NULL, *experiment = NULL, *out = NULL, *key = NULL;
    struct client_tls tls = { 0 };
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'd' }, { "coordinator", required_argument, 0, 'c' },
        CLIENT_TLS_OPTIONS, { "experiment", required_argument, 0, 'e' },
        { "out", required_argument, 0, 'o' }, { "key", required_argument, 0, 'k' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
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
        case 'o': out = optarg; break;
        case 'k': key = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case ':': return cli_usage_error(CMD, usage, "%s needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, usage, "unexpected argument '%s'", argv[optind]);
    if (!experiment)
        return cli_usage_error(CMD, usage, "--experiment ID is required (aulac experiment list "
                               "names them)");
    if (!out)
        return cli_usage_error(CMD, usage, "--out FILE is required");
    int rc = ledger_source_check(CMD, usage, CMD, dir, coordinator, &tls);
    if (rc != 0)
        return rc;
    if (sodium_init() < 0)
        return cli_fail(CMD, "libsodium failed to initialize");

    struct ledger_source s;
    struct experiment_views v;
    struct basis b = { 0 };
    struct report r = { .b = &b };
    char *page = NULL;
    size_t page_len = 0;
    int result = 1;
    experiment_views_init(&v, experiment);
    if (ledger_source_open(&s, CMD, dir, coordinator, &tls) != 0)
        goto out;
    b.source = s.name;
    if (read_basis(&s, key, &b, &v) != 0)
        goto out;
    if (v.undecodable)
        fprintf(stderr, "aulac report: warning: %" PRIu64 " entr%s of %s do not decode and were "
                "skipped (aulac ledger verify)\n", v.undecodable,
                v.undecodable == 1 ? "y" : "ies", s.name);
    r.x = experiment_views_find(&v, experiment);
    if (!r.x) {
        cli_fail(CMD, "the %" PRIu64 " entries of %s's latest checkpoint name no experiment "
                 "'%s' (aulac experiment list names them)", b.ckpt.size, s.name, experiment);
        goto out;
    }
    char why[300];
    rc = ev_credits(r.x, &r.credits, &r.final, why, sizeof why);
    if (rc < 0) {
        cli_fail(CMD, "%s", why);
        goto out;
    }
    r.have_credits = rc == 0;
    if (collect_members(&r) != 0) {
        cli_fail(CMD, "out of memory");
        goto out;
    }
    FILE *f = open_memstream(&page, &page_len);
    if (!f) {
        cli_fail(CMD, "out of memory");
        goto out;
    }
    rc = write_page(f, &r);
    if (fclose(f) != 0 || rc != 0) {
        cli_fail(CMD, "out of memory writing the page");
        goto out;
    }
    rc = file_write_atomic(out, page, page_len, 0644);
    if (rc != 0) {
        cli_fail(CMD, "cannot write %s: %s", out, strerror(-rc));
        goto out;
    }
    printf("wrote %s (%zu bytes): experiment %s, %zu member%s, %zu scored round%s; built from "
           "the %" PRIu64 " entries of the latest signed checkpoint\n", out, page_len, r.x->id,
           r.n_members, r.n_members == 1 ? "" : "s", r.x->n_scores,
           r.x->n_scores == 1 ? "" : "s", b.ckpt.size);
    result = 0;
out:
    free(page);
    free(r.members);
    if (r.have_credits)
        ev_credits_free(&r.credits);
    free(b.note);
    experiment_views_free(&v);
    ledger_source_close(&s);
    return result;
}
