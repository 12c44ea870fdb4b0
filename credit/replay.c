#include "credit/replay.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "aggregate/robust.h"
#include "aggregate/round.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/why.h"
#include "credit/evalset.h"
#include "credit/score.h"
#include "credit/shares.h"
#include "crypto/digest.h"
#include "ledger/entry.h"
#include "model/gpt2.h"
#include "model/layout.h"
#include "model/model_hash.h"
#include "policies/model_source.h"
#include "policies/plan.h"
#include "policies/policy.h"

#define FINDINGS_SHOWN 6     /* findings written out in a round's line; the rest counted */

int credit_replay_close(double recorded, double recomputed)
{
    if (recorded == recomputed)
        return 1;
    if (isnan(recorded) || isnan(recomputed))
        return isnan(recorded) && isnan(recomputed);
    return fabs(recorded - recomputed) <=
           CREDIT_REPLAY_ABS_TOL + CREDIT_REPLAY_REL_TOL * fabs(recorded);
}

/* Exact equality of recorded numbers (NaN equals NaN: "no evaluation"). */
static int same_double(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static int eval_measure(int m)
{
    return m == POLICY_MEASURE_LOO || m == POLICY_MEASURE_SHAPLEY;
}

/* --- text ------------------------------------------------------------------------------- */

struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
};

static void sb_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int need = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (need < 0 || b->oom)
        return;
    if (b->n + (size_t)need + 1 > b->cap) {
        size_t cap = (b->n + (size_t)need + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    b->n += (size_t)need;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

static void sb_reset(struct sbuf *b)
{
    b->n = 0;
    if (b->s)
        b->s[0] = 0;
}

static void sb_free(struct sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* "3f2a9c01d4e5f607…": the first 8 bytes of a hash. */
struct short_hex {
    char s[24];
};

static struct short_hex shorthex(const uint8_t h[32])
{
    struct short_hex x;
    char full[65];
    hex_encode(h, 32, full);
    snprintf(x.s, sizeof x.s, "%.16s\xe2\x80\xa6", full);
    return x;
}

static int is_zero(const uint8_t *b, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= b[i];
    return acc == 0;
}

/* --- pass 1: the experiments and their policies ---------------------------------------- */

struct exp_info {
    char id[ENTRY_ID_MAX + 1];
    uint64_t started, ended;        /* entry indexes; ended UINT64_MAX while running */
    enum entry_type end_type;
    uint8_t policy_hash[32], model_hash[32], proposal_hash[32];
    uint64_t planned_rounds;
    uint64_t n_scores;
    uint64_t n_closed;              /* round_closed entries */
    int has_credits;
    uint8_t dp_commit[32];          /* experiment_started's dp_seed_commitment (zero: none) */
    uint32_t dp_scheme;             /* its dp_noise_scheme (0: none recorded) */
};

struct motion_ref {
    uint8_t hash[32];
    uint64_t index;
};

struct ledger_map {
    struct exp_info *exp;
    size_t n_exp, cap_exp;
    struct motion_ref *motions;
    size_t n_motions, cap_motions;
};

static struct exp_info *find_exp(struct ledger_map *m, const char *id)
{
    for (size_t i = m->n_exp; i-- > 0;)   /* the latest start of that id */
        if (strcmp(m->exp[i].id, id) == 0)
            return &m->exp[i];
    return NULL;
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* The whole run's state: options, output, counters. */
struct run {
    const struct replay_entries *src;
    const struct replay_options *o;
    struct replay_summary *sum;
    struct sbuf line;
    int oom;
};

static void emit(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_reset(&r->line);
    sb_vprintf(&r->line, fmt, ap);
    va_end(ap);
    if (r->line.oom) {
        r->oom = 1;
        return;
    }
    if (r->o->line)
        r->o->line(r->o->arg, r->line.s);
}

static void progress(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(struct run *r, const char *fmt, ...)
{
    if (!r->o->progress)
        return;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->o->progress(r->o->arg, text);
}

/* Entry index, decoded (the caller entry_free()s it). 0, 1 when it does not decode
 * (reported as a problem), or CREDIT_ERR_IO / CREDIT_ERR_NOMEM with why. */
static int read_entry(struct run *r, uint64_t index, struct entry *e, char *why, size_t cap)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    char w[400] = "";
    if (r->src->get(r->src->arg, index, &bytes, &len, w, sizeof w) != 0)
        return why_fail(why, cap, CREDIT_ERR_IO, "entry %" PRIu64 ": %s", index,
                        w[0] ? w : "cannot be read");
    int rc = entry_decode(bytes, len, e);
    free(bytes);
    if (rc == LEDGER_ERR_NOMEM)
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    if (rc != 0) {
        emit(r, "entry %" PRIu64 ": does not decode (%s): run aulac ledger verify", index,
             ledger_strerror(rc));
        r->sum->problems++;
        return 1;
    }
    return 0;
}

static int map_ledger(struct run *r, struct ledger_map *m, char *why, size_t cap)
{
    for (uint64_t i = 0; i < r->src->size; i++) {
        if ((i & 1023) == 1023)
            progress(r, "reading the ledger: entry %" PRIu64 " of %" PRIu64, i + 1, r->src->size);
        struct entry e;
        int rc = read_entry(r, i, &e, why, cap);
        if (rc < 0)
            return rc;
        if (rc > 0)
            continue;
        struct exp_info *x;
        switch (e.type) {
        case ENTRY_POLICY_PROPOSED:
            if (grow((void **)&m->motions, &m->cap_motions, m->n_motions, sizeof *m->motions)) {
                entry_free(&e);
                return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
            }
            memcpy(m->motions[m->n_motions].hash, e.u.motion.proposal_hash, 32);
            m->motions[m->n_motions++].index = i;
            break;
        case ENTRY_EXPERIMENT_STARTED:
            if (grow((void **)&m->exp, &m->cap_exp, m->n_exp, sizeof *m->exp)) {
                entry_free(&e);
                return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
            }
            x = &m->exp[m->n_exp++];
            memset(x, 0, sizeof *x);
            snprintf(x->id, sizeof x->id, "%s", e.u.experiment.experiment);
            x->started = i;
            x->ended = UINT64_MAX;
            memcpy(x->policy_hash, e.u.experiment.policy_hash, 32);
            memcpy(x->model_hash, e.u.experiment.model_hash, 32);
            memcpy(x->proposal_hash, e.u.experiment.proposal_hash, 32);
            x->planned_rounds = e.u.experiment.rounds;
            memcpy(x->dp_commit, e.u.experiment.dp_seed_commitment, 32);
            x->dp_scheme = e.u.experiment.dp_noise_scheme;
            break;
        case ENTRY_EXPERIMENT_FINISHED:
        case ENTRY_EXPERIMENT_CANCELLED:
        case ENTRY_EXPERIMENT_FAILED:
            if ((x = find_exp(m, e.u.experiment.experiment)) && x->ended == UINT64_MAX) {
                x->ended = i;
                x->end_type = e.type;
            }
            break;
        case ENTRY_ROUND_CLOSED:
            if ((x = find_exp(m, e.u.round_closed.experiment)))
                x->n_closed++;
            break;
        case ENTRY_CONTRIBUTION_SCORES:
            if ((x = find_exp(m, e.u.scores.experiment)))
                x->n_scores++;
            break;
        case ENTRY_CREDITS:
            if ((x = find_exp(m, e.u.credits.experiment)))
                x->has_credits = 1;
            break;
        default:
            break;
        }
        entry_free(&e);
    }
    return 0;
}

/* --- pass 2: one experiment --------------------------------------------------------------- */

/* A payload's bytes, mapped from its file (or empty). */
struct mapped {
    void *addr;
    size_t len;
};

/* The round being checked: from its round_closed until its contribution_scores entry
 * (or the next round) is seen, when its line is written. */
struct round_state {
    int open;
    uint64_t round;
    int replayed;                   /* the model was rebuilt */
    int noised;                     /* privacy: the average and the model carry DP noise
                                       whose seed is not at hand (running, or no
                                       commitment): both taken as recorded */
    int scored;                     /* s holds the recomputed scores */
    int scores_seen;
    struct credit_round_scores s;
    struct agg_update *u;           /* sorted by member id; payload pointers unset after */
    size_t n;
    uint8_t seed[32];
    uint8_t model_hash[32];
    uint8_t aggregate_hash[32];
    struct sbuf finds;
    unsigned n_finds;
    double max_diff;                /* over the values compared within the tolerance */
    const char *not_replayed;       /* why the round was not rebuilt, or NULL */
    int unscorable;                 /* credit_score_round: CREDIT_ERR_MODEL (an evaluation
                                       is not finite): the coordinator then closes the round
                                       without a contribution_scores entry */
    char unscorable_why[600];
    const char *partial;            /* the model was rebuilt but the scores not checked */
    const char *dp_unchecked;       /* models_only: why its DP noise cannot be recomputed
                                       (seed not revealed or not committed): not rebuilt,
                                       not a problem */
    int dp_rebuilt;                 /* the DP noise was recomputed from the revealed seed */
};

struct exp_state {
    struct run *r;
    const struct exp_info *info;
    struct policy policy;
    int have_policy;
    uint32_t measures;              /* bit set */
    size_t n;
    struct model_layout layout;     /* the model's (policy_model_layout); names its models */
    float *base, *next, *avg, *support, *down_residual;
    struct outer_opt outer;
    int have_outer;
    uint8_t base_hash[32];
    struct evalset es;
    int have_es;
    struct evaluator *ev;
    const char *no_eval;            /* why the evaluation-based measures cannot be scored */
    char no_eval_buf[1400];
    uint64_t broken_round;          /* the first round whose model could not be rebuilt */
    int broken;
    uint64_t last_round;
    struct entry_update *pend;      /* update_accepted since the last round_closed */
    size_t n_pend, cap_pend;
    struct round_state cur;
    struct credit_totals rec_totals, new_totals;
    int new_complete;               /* every round recomputed and added to new_totals */
    int totals_failed;
    uint64_t rounds, matched, unchecked;
    int credits_seen, credits_ok;
    /* privacy with noise: dp_ok when the revealed seed matches the commitment (the noise
     * is recomputed); else dp_why says why not, dp_bad when that is a mismatch */
    int dp_noise, dp_ok, dp_bad;
    const char *dp_why;
    char dp_why_buf[4600];
    uint8_t dp_seed[32];            /* the revealed seed (dp_ok) */
    unsigned dp_scheme;             /* how the noise is drawn from it (AGG_DP_SCHEME_*):
                                       experiment_started's, scheme 1 when it records none */
};

static void finding(struct round_state *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void finding(struct round_state *rs, const char *fmt, ...)
{
    if (rs->n_finds++ >= FINDINGS_SHOWN)
        return;
    if (rs->n_finds > 1)
        sb_printf(&rs->finds, "; ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&rs->finds, fmt, ap);
    va_end(ap);
}

static void round_reset(struct round_state *rs)
{
    credit_round_scores_free(&rs->s);
    free(rs->u);
    struct sbuf keep = rs->finds;
    memset(rs, 0, sizeof *rs);
    rs->finds = keep;
    sb_reset(&rs->finds);
}

/* The names of the policy's measures of one kind ("tokens rounds bytes alignment"). */
static void measure_list(uint32_t measures, int eval, char *out, size_t cap)
{
    out[0] = 0;
    size_t n = 0;
    for (int m = 0; m < POLICY_MEASURES; m++) {
        if (!(measures & (1u << m)) || eval_measure(m) != eval)
            continue;
        const char *name = policy_measure_name((enum policy_measure)m);
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? " " : "",
                              name ? name : "?");
    }
}

/* Writes the open round's line and counts it. */
static void round_finish(struct exp_state *x)
{
    struct round_state *rs = &x->cur;
    if (!rs->open)
        return;
    struct run *r = x->r;
    const int models_only = r->o->models_only;
    if (!models_only && !rs->scores_seen && x->have_policy && !rs->unscorable)
        finding(rs, "no contribution_scores entry follows its round_closed");
    x->rounds++;
    r->sum->rounds++;
    const uint64_t problems_before = r->sum->problems;
    if (rs->dp_unchecked && !rs->n_finds) {
        emit(r, "round %" PRIu64 ": NOT CHECKED: %s", rs->round, rs->dp_unchecked);
        x->unchecked++;
        r->sum->rounds_unchecked++;
    } else if (models_only && !rs->not_replayed && !rs->n_finds) {
        emit(r, "round %" PRIu64 ": match (aggregate %s and model %s rebuilt bit for bit%s)",
             rs->round, shorthex(rs->aggregate_hash).s, shorthex(rs->model_hash).s,
             rs->dp_rebuilt ? "; DP noise recomputed from the revealed seed" : "");
        x->matched++;
        r->sum->rounds_matched++;
    } else if (rs->not_replayed) {
        emit(r, "round %" PRIu64 ": NOT CHECKED: %s%s%s", rs->round, rs->not_replayed,
             rs->n_finds ? "; " : "", rs->n_finds ? rs->finds.s : "");
        r->sum->problems++;
    } else if (rs->partial && !rs->n_finds) {
        emit(r, "round %" PRIu64 ": NOT CHECKED: %s; model %s rebuilt bit for bit", rs->round,
             rs->partial, shorthex(rs->model_hash).s);
        r->sum->problems++;
    } else if (rs->n_finds) {
        if (rs->n_finds > FINDINGS_SHOWN)
            emit(r, "round %" PRIu64 ": MISMATCH: %s; and %u more", rs->round, rs->finds.s,
                 rs->n_finds - FINDINGS_SHOWN);
        else
            emit(r, "round %" PRIu64 ": MISMATCH: %s", rs->round, rs->finds.s);
        r->sum->problems++;
    } else {
        char exact[120], tol[60], evals[80] = "";
        measure_list(x->measures, 0, exact, sizeof exact);
        measure_list(x->measures, 1, tol, sizeof tol);
        char tolpart[160] = "";
        if (tol[0]) {
            snprintf(tolpart, sizeof tolpart, "; %s within tolerance, max |diff| %.3g", tol,
                     rs->max_diff);
            snprintf(evals, sizeof evals, "; %" PRIu64 " evaluation(s)%s", rs->s.evaluations,
                     (x->measures & (1u << POLICY_MEASURE_SHAPLEY))
                         ? (rs->s.exact ? ", exact Shapley" : ", GTG-Shapley") : "");
        }
        if (rs->noised)
            r->sum->rounds_unchecked++;   /* its model is not rebuilt: exit status 3 */
        if (rs->noised)
            emit(r, "round %" PRIu64 ": match (average and model %s carry DP noise whose seed "
                 "is not at hand (above), so they are not rebuilt; %s exact)",
                 rs->round, shorthex(rs->model_hash).s, exact[0] ? exact : "no count measure");
        else if (rs->unscorable)
            emit(r, "round %" PRIu64 ": match (model %s rebuilt bit for bit; not scored, as "
                 "recorded: %s)", rs->round, shorthex(rs->model_hash).s, rs->unscorable_why);
        else
            emit(r, "round %" PRIu64 ": match (model %s rebuilt bit for bit; %s exact%s%s)",
                 rs->round, shorthex(rs->model_hash).s, exact[0] ? exact : "no count measure",
                 tolpart, evals);
        x->matched++;
        r->sum->rounds_matched++;
    }
    if (r->sum->problems > problems_before && !r->sum->have_first_bad) {
        r->sum->have_first_bad = 1;
        r->sum->first_bad_round = rs->round;
        snprintf(r->sum->first_bad_experiment, sizeof r->sum->first_bad_experiment, "%s",
                 x->info->id);
    }
    round_reset(rs);
}

/* The policy of the experiment: its policy_proposed document, hash-checked. 0, or 1
 * with the problem written out. */
static int load_policy(struct exp_state *x, const struct ledger_map *m, char *why, size_t cap)
{
    struct run *r = x->r;
    const struct exp_info *info = x->info;
    if (is_zero(info->proposal_hash, 32)) {
        emit(r, "experiment %s: NOT CHECKED: it was started without a policy_proposed entry, "
             "so its policy text is not in the ledger", info->id);
        return 1;
    }
    const struct motion_ref *ref = NULL;
    for (size_t i = 0; i < m->n_motions; i++)
        if (crypto_equal(m->motions[i].hash, info->proposal_hash, 32))
            ref = &m->motions[i];
    if (!ref) {
        emit(r, "experiment %s: NOT CHECKED: no policy_proposed entry has its proposal hash %s",
             info->id, shorthex(info->proposal_hash).s);
        return 1;
    }
    struct entry e;
    int rc = read_entry(r, ref->index, &e, why, cap);
    if (rc != 0)
        return rc < 0 ? rc : 1;
    int result = 1;
    const struct entry_motion *mo = &e.u.motion;
    struct policy_error err;
    uint8_t h[32];
    if (!mo->document || strcmp(mo->experiment, info->id) != 0) {
        emit(r, "experiment %s: NOT CHECKED: its policy_proposed entry (#%" PRIu64 ") %s",
             info->id, ref->index, !mo->document ? "holds no document"
                                                  : "names another experiment");
    } else if ((rc = policy_load_buffer(info->id, mo->document, mo->document_len, &x->policy,
                                        &err)) != 0) {
        if (rc == POLICY_ERR_NOMEM) {
            entry_free(&e);
            return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
        }
        emit(r, "experiment %s: NOT CHECKED: its policy (policy_proposed #%" PRIu64 ") does not "
             "load: %s", info->id, ref->index, err.message);
    } else if (policy_hash(&x->policy, h) != 0) {
        policy_free(&x->policy);
        entry_free(&e);
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    } else if (!crypto_equal(h, info->policy_hash, 32) || !crypto_equal(h, mo->content_hash, 32)) {
        emit(r, "experiment %s: MISMATCH: its policy (policy_proposed #%" PRIu64 ") hashes to %s, "
             "experiment_started says %s, the motion %s", info->id, ref->index, shorthex(h).s,
             shorthex(info->policy_hash).s, shorthex(mo->content_hash).s);
        policy_free(&x->policy);
    } else {
        x->have_policy = 1;
        result = 0;
        emit(r, "experiment %s: policy %s from policy_proposed #%" PRIu64 " (hash = "
             "experiment_started's)", info->id, shorthex(h).s, ref->index);
    }
    entry_free(&e);
    return result;
}

/* The evaluation set and evaluator, when loo or shapley is measured. Sets x->no_eval
 * (and writes a line) when they cannot be had. */
static int load_evaluator(struct exp_state *x, const struct gpt2_config *cfg, uint32_t seq_len)
{
    const struct policy_contribution *c = &x->policy.contribution;
    const struct replay_options *o = x->r->o;
    if (!(x->measures & ((1u << POLICY_MEASURE_LOO) | (1u << POLICY_MEASURE_SHAPLEY))))
        return 0;
    char path[4096], w[500];
    if (!c->has_evalset) {
        x->no_eval = "the policy measures loo or shapley without an evaluation set";
        emit(x->r, "experiment %s: %s", x->info->id, x->no_eval);
        return 0;
    }
    if (o->evalset_file)
        snprintf(path, sizeof path, "%s", o->evalset_file);
    else if (o->evalset_dir)
        snprintf(path, sizeof path, "%s/%s", o->evalset_dir, c->evalset_name);
    else
        path[0] = 0;
    int rc = path[0] ? evalset_load(path, c->evalset_hash, &x->es, w, sizeof w) : CREDIT_ERR_IO;
    if (rc == CREDIT_ERR_NOMEM)
        return rc;
    if (rc != 0) {
        char hex[65];
        hex_encode(c->evalset_hash, 32, hex);
        snprintf(x->no_eval_buf, sizeof x->no_eval_buf, "the evaluation set %s (blake2b %s) is "
                 "needed for loo/shapley%s%s; give it with --eval-set FILE", c->evalset_name, hex,
                 path[0] ? ": " : "", path[0] ? w : "");
        x->no_eval = x->no_eval_buf;
        emit(x->r, "experiment %s: %s", x->info->id, x->no_eval);
        return 0;
    }
    x->have_es = 1;
    rc = evaluator_create(cfg, &x->es, c->eval_windows, seq_len, &x->ev, w, sizeof w);
    if (rc == CREDIT_ERR_NOMEM)
        return rc;
    if (rc != 0) {
        snprintf(x->no_eval_buf, sizeof x->no_eval_buf, "no evaluator on %s: %s", path, w);
        x->no_eval = x->no_eval_buf;
        emit(x->r, "experiment %s: %s", x->info->id, x->no_eval);
    }
    return 0;
}

/* policy_file_resolver over the artifact store the options name (ctx: struct run). */
static int artifact_resolver(void *ctx, const char *key, const struct policy_file *f,
                             char *path, size_t cap, char *why, size_t why_cap)
{
    const struct replay_options *o = ((struct run *)ctx)->o;
    char hex[65];
    hex_encode(f->blake2b, 32, hex);
    int n = o->artifacts_dir ? snprintf(path, cap, "%s/%s", o->artifacts_dir, hex)
          : o->data_dir      ? snprintf(path, cap, "%s/artifacts/%s", o->data_dir, hex)
                             : snprintf(path, cap, "%s", "");
    struct stat sb;
    if (n > 0 && (size_t)n < cap && stat(path, &sb) == 0)
        return 0;
    return why_fail(why, why_cap, CREDIT_ERR_IO, "%s: %s (%s) is not in %s%s; fetch it with "
                    "aulac artifact get %s -o DIR/%s and give --artifacts DIR", key, f->file,
                    hex, o->artifacts_dir ? o->artifacts_dir : o->data_dir ? o->data_dir
                                                                           : "(no store)",
                    !o->artifacts_dir && o->data_dir ? "/artifacts" : "", hex, hex);
}

/* Privacy with noise: can the noise be recomputed? (the revealed seed against the
 * commitment). Writes the experiment's line about it. */
static void dp_setup(struct exp_state *x)
{
    const struct exp_info *info = x->info;
    if (!x->policy.privacy.enabled || x->policy.privacy.noise_multiplier == 0)
        return;
    x->dp_noise = 1;
    const struct replay_options *o = x->r->o;
    char path[4300];
    if (o->data_dir)
        snprintf(path, sizeof path, "%s/experiments/%s/dp-noise-seed", o->data_dir, info->id);
    else
        snprintf(path, sizeof path, "%s/%s.seed", o->seed_dir ? o->seed_dir : ".", info->id);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = info->ended == UINT64_MAX ? 1 : file_read_all(path, 64, &buf, &len);
    x->dp_scheme = info->dp_scheme ? info->dp_scheme : AGG_DP_SCHEME_BOX_MULLER_LIBM;
    if (is_zero(info->dp_commit, 32)) {
        x->dp_why = "its DP noise cannot be checked: experiment_started commits to no noise "
                    "seed (the experiment was started by a version that drew the noise from "
                    "the CSPRNG)";
    } else if (x->dp_scheme != AGG_DP_SCHEME_POLAR &&
               x->dp_scheme != AGG_DP_SCHEME_BOX_MULLER_LIBM) {
        snprintf(x->dp_why_buf, sizeof x->dp_why_buf, "its DP noise cannot be checked: "
                 "experiment_started records DP noise scheme %u, which this version does not "
                 "know (it knows 1 and 2): replay it with a later version", x->dp_scheme);
        x->dp_why = x->dp_why_buf;
    } else if (info->ended == UINT64_MAX) {
        x->dp_why = "its DP noise seed is revealed (with the payloads) when the experiment "
                    "ends, and it is running: replay it again then";
    } else if (rc != 0 || len != AGG_DP_SEED_BYTES) {
        snprintf(x->dp_why_buf, sizeof x->dp_why_buf, "its DP noise cannot be checked: no "
                 "noise seed at %s (%s; `aulac ledger export --payloads` writes it beside the "
                 "payloads once the experiment has ended)", path,
                 rc == -ENOENT ? "no such file" : rc != 0 ? strerror(-rc) : "not 32 bytes");
        x->dp_why = x->dp_why_buf;
    } else {
        memcpy(x->dp_seed, buf, AGG_DP_SEED_BYTES);
        uint8_t h[32];
        agg_dp_seed_commitment(x->dp_seed, h);
        if (!crypto_equal(h, info->dp_commit, 32)) {
            emit(x->r, "experiment %s: MISMATCH: its DP noise seed %s hashes to %s, "
                 "experiment_started committed to %s", info->id, path, shorthex(h).s,
                 shorthex(info->dp_commit).s);
            x->r->sum->problems++;
            x->dp_bad = 1;
            x->dp_why = "its DP noise seed is not the committed one";
        } else {
            x->dp_ok = 1;
            emit(x->r, "experiment %s: DP noise seed %s = the commitment of experiment_started "
                 "(%s): the noise of every round is recomputed (scheme %u%s)", info->id, path,
                 shorthex(info->dp_commit).s, x->dp_scheme,
                 x->dp_scheme == AGG_DP_SCHEME_BOX_MULLER_LIBM
                     ? ", recorded by an earlier version: Box-Muller with this platform's libm, "
                       "which reproduces the coordinator's noise only if its log, cos and sin "
                       "round as the coordinator's did; a MISMATCH of a noised round may be "
                       "that last bit"
                     : ": libm-free, the same bits on every platform");
        }
    }
    if (buf) {
        sodium_memzero(buf, len);
        free(buf);
    }
    if (!x->dp_ok && !x->dp_bad)
        emit(x->r, "experiment %s: %s", info->id, x->dp_why);
}

/* Buffers, outer state, model 0 (hash-checked). 0, 1 (reported: no model to start
 * from), CREDIT_ERR_NOMEM. */
static int exp_setup(struct exp_state *x)
{
    struct policy_round_plan plan;
    char w[700];
    if (policy_round_plan(&x->policy, 1, &plan, w, sizeof w) != 0) {
        emit(x->r, "experiment %s: NOT CHECKED: its policy gives no round plan: %s", x->info->id,
             w);
        return 1;
    }
    int lrc = policy_model_layout(&x->policy, artifact_resolver, x->r, &x->layout, w, sizeof w);
    if (lrc == POLICY_ERR_NOMEM)
        return CREDIT_ERR_NOMEM;
    if (lrc != 0) {
        emit(x->r, "experiment %s: NOT CHECKED: model 0 cannot be made: %s", x->info->id, w);
        return 1;
    }
    x->n = (size_t)x->layout.n_params;
    const int down_ef = plan.downlink_on && plan.downlink.error_feedback;
    x->base = malloc(x->n * sizeof(float));
    x->next = malloc(x->n * sizeof(float));
    x->avg = malloc(x->n * sizeof(float));
    /* agg_combine's scratch (the support of average: senders), whatever the rule. */
    x->support = malloc(x->n * sizeof(float));
    x->down_residual = down_ef ? calloc(x->n, sizeof(float)) : NULL;
    if (!x->base || !x->next || !x->avg || !x->support || (down_ef && !x->down_residual))
        return CREDIT_ERR_NOMEM;
    if (agg_outer_init(&x->policy, x->n, &x->outer) != 0)
        return CREDIT_ERR_NOMEM;
    x->have_outer = 1;
    int rc = policy_model_init(&x->policy, &x->layout, artifact_resolver, x->r, x->base, w,
                               sizeof w);
    if (rc == POLICY_ERR_NOMEM)
        return CREDIT_ERR_NOMEM;
    if (rc != 0) {
        emit(x->r, "experiment %s: NOT CHECKED: model 0 cannot be made: %s", x->info->id, w);
        return 1;
    }
    model_layout_hash(&x->layout, x->base, x->base_hash);
    if (!crypto_equal(x->base_hash, x->info->model_hash, 32)) {
        char from[120];
        if (x->policy.model.init.present)
            snprintf(from, sizeof from, "the pinned model.init %.60s", x->policy.model.init.file);
        else
            snprintf(from, sizeof from, "gpt2_init_params, seed %" PRIu64, x->policy.model.seed);
        emit(x->r, "experiment %s: MISMATCH: model 0 (%s) hashes to %s, experiment_started "
             "says %s", x->info->id, from, shorthex(x->base_hash).s,
             shorthex(x->info->model_hash).s);
        x->r->sum->problems++;
        x->broken = 1;
        x->broken_round = 0;
    } else {
        emit(x->r, "experiment %s: model 0 %s = experiment_started's", x->info->id,
             shorthex(x->base_hash).s);
    }
    dp_setup(x);
    return x->r->o->models_only ? 0 : load_evaluator(x, &plan.model, plan.seq_len);
}

static void payload_path(const struct exp_state *x, const uint8_t hash[32], char *out, size_t cap)
{
    char hex[65];
    hex_encode(hash, 32, hex);
    const struct replay_options *o = x->r->o;
    if (o->data_dir)
        snprintf(out, cap, "%s/experiments/%s/payloads/%s.bin", o->data_dir, x->info->id, hex);
    else
        snprintf(out, cap, "%s/%s.bin", o->payload_dir ? o->payload_dir : ".", hex);
}

/* Maps the payload named hash: 0, 1 missing (ENOENT), -errno. */
static int map_payload(const char *path, struct mapped *mp)
{
    static const uint8_t empty[1];
    mp->addr = NULL;
    mp->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? 1 : -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISREG(st.st_mode) ? errno : EINVAL;
        close(fd);
        return -e;
    }
    if (st.st_size == 0) {
        close(fd);
        mp->addr = (void *)empty;
        return 0;
    }
    void *a = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (a == MAP_FAILED)
        return -e;
    mp->addr = a;
    mp->len = (size_t)st.st_size;
    return 0;
}

static void unmap_payload(struct mapped *mp)
{
    if (mp->addr && mp->len)
        munmap(mp->addr, mp->len);
    mp->addr = NULL;
    mp->len = 0;
}

static int cmp_update(const void *a, const void *b)
{
    return strcmp(((const struct entry_update *)a)->member,
                  ((const struct entry_update *)b)->member);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* A round_closed of the experiment: rebuild the round. */
static int on_round_closed(struct exp_state *x, const struct entry_round_closed *rc_e,
                           char *why, size_t cap)
{
    struct run *r = x->r;
    round_finish(x);
    struct round_state *rs = &x->cur;
    rs->open = 1;
    rs->round = rc_e->round;
    memcpy(rs->model_hash, rc_e->model_hash, 32);
    memcpy(rs->aggregate_hash, rc_e->aggregate_hash, 32);
    if (rc_e->round != x->last_round + 1)
        finding(rs, "round %" PRIu64 " closes after round %" PRIu64, rc_e->round, x->last_round);
    x->last_round = rc_e->round;
    progress(r, "experiment %s: round %" PRIu64 " of %" PRIu64 ": %u update(s)", x->info->id,
             rc_e->round, x->info->planned_rounds, rc_e->n_participants);

    /* the round's updates, in member-id order */
    size_t n = 0;
    for (size_t i = 0; i < x->n_pend; i++) {
        if (x->pend[i].round == rc_e->round)
            x->pend[n++] = x->pend[i];
        else
            finding(rs, "an update of %s for round %" PRIu64 " is accepted before round %" PRIu64
                    " closed", x->pend[i].member, x->pend[i].round, rc_e->round);
    }
    x->n_pend = 0;
    qsort(x->pend, n, sizeof *x->pend, cmp_update);
    /* round_closed lists them in the order they were accepted */
    int same = n == rc_e->n_participants;
    char (*parts)[ENTRY_ID_MAX + 1] = NULL;
    if (same && n) {
        parts = malloc(n * sizeof *parts);
        if (!parts)
            return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
        memcpy(parts, rc_e->participants, n * sizeof *parts);
        qsort(parts, n, sizeof *parts, cmp_id);
    }
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(x->pend[i].member, parts[i]) == 0;
    free(parts);
    if (!same)
        finding(rs, "round_closed lists %u participant(s), the round's update_accepted entries "
                "%zu member(s)%s", rc_e->n_participants, n,
                n == rc_e->n_participants ? " (other ones)" : "");
    rs->u = calloc(n ? n : 1, sizeof *rs->u);
    struct mapped *mp = calloc(n ? n : 1, sizeof *mp);
    if (!rs->u || !mp) {
        free(mp);
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    }
    rs->n = n;
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct entry_update *up = &x->pend[i];
        struct agg_update *u = &rs->u[i];
        snprintf(u->member, sizeof u->member, "%s", up->member);
        u->tokens = up->tokens;
        u->samples = up->samples;
        u->weight = agg_weight(x->policy.aggregation.weighting, up->tokens, up->samples);
        memcpy(u->payload_hash, up->payload_hash, 32);
        char path[4300];
        payload_path(x, up->payload_hash, path, sizeof path);
        int got = map_payload(path, &mp[i]);
        if (got != 0) {
            emit(r, got == 1 ? "round %" PRIu64 ": the payload of %s (%s) is missing"
                             : "round %" PRIu64 ": the payload of %s (%s) cannot be read: %s",
                 rc_e->round, up->member, shorthex(up->payload_hash).s, strerror(-got));
            r->sum->payloads_missing++;
            bad++;
            continue;
        }
        uint8_t h[32];
        crypto_blake2b256(mp[i].addr, mp[i].len, h);
        if (!crypto_equal(h, up->payload_hash, 32)) {
            emit(r, "round %" PRIu64 ": the payload of %s is altered: it hashes to %s, "
                 "update_accepted says %s", rc_e->round, up->member, shorthex(h).s,
                 shorthex(up->payload_hash).s);
            r->sum->payloads_altered++;
            bad++;
            continue;
        }
        u->payload = mp[i].addr;
        u->len = mp[i].len;
    }
    int result = 0;
    char w[600];
    if (x->broken) {
        rs->not_replayed = x->broken_round == 0
            ? "model 0 does not match, so no round can be rebuilt"
            : "it starts from the model of an earlier round that could not be rebuilt";
    } else if (bad) {
        rs->not_replayed = "its payloads are incomplete, so its model (and every later one) "
                           "cannot be rebuilt";
        x->broken = 1;
        x->broken_round = rc_e->round;
    } else {
        agg_sort(rs->u, n);   /* already in member-id order; the verifier's own guarantee */
        struct policy_round_plan plan;
        if (policy_round_plan(&x->policy, rc_e->round, &plan, w, sizeof w) != 0) {
            rs->not_replayed = "the policy gives no plan for this round";
            x->broken = 1;
            x->broken_round = rc_e->round;
            goto out;
        }
        credit_round_seed(x->info->id, rc_e->round, x->base_hash, rs->u, n, rs->seed);
        if (!x->no_eval && !r->o->models_only) {
            struct credit_round_input in = {
                .policy = &x->policy, .plan = &plan, .outer = &x->outer, .base = x->base,
                .n_params = x->n, .updates = rs->u, .n = n, .ev = x->ev,
            };
            memcpy(in.seed, rs->seed, 32);
            int src = credit_score_round(&in, &rs->s, w, sizeof w);
            if (src == CREDIT_ERR_NOMEM) {
                result = why_fail(why, cap, src, "out of memory scoring round %" PRIu64,
                                  rc_e->round);
                goto out;
            }
            if (src == CREDIT_ERR_MODEL) {
                rs->unscorable = 1;
                snprintf(rs->unscorable_why, sizeof rs->unscorable_why, "%s", w);
            } else if (src != 0) {
                finding(rs, "its scores cannot be recomputed: %s", w);
            } else {
                rs->scored = 1;
            }
        }
        if (x->dp_noise && !x->dp_ok) {
            /* The round's average and model carry Gaussian noise from a seed that is not
             * revealed (or not committed: PRIVACY.md), and round_closed hashes the noised
             * average: neither can be rebuilt yet. The measures a DP policy allows
             * (tokens, rounds, bytes) need neither: credits verify takes the model as
             * recorded, and the next round's seed starts from the recorded model. */
            memcpy(x->base_hash, rc_e->model_hash, 32);
            if (x->dp_bad) {
                rs->not_replayed = x->dp_why;
            } else if (r->o->models_only) {
                rs->dp_unchecked = x->dp_why;
            } else {
                rs->noised = 1;
                rs->replayed = 1;
            }
            goto out;   /* and so every round of the experiment */
        }
        /* The round's average under the policy's rule, as the coordinator's close makes it
         * (aggregate/robust.h), and under privacy the noise of the revealed seed over the
         * updates the rule used (coordinator/round.c round_combine). */
        struct agg_member_stat *stats = x->dp_noise ? calloc(n ? n : 1, sizeof *stats) : NULL;
        if (x->dp_noise && !stats) {
            result = why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
            goto out;
        }
        int arc = agg_combine(&x->policy, &plan, x->n, rs->u, n, NULL, x->avg, x->support, stats,
                              w, sizeof w);
        if (arc == 0 && x->dp_noise) {
            size_t used = 0;
            for (size_t i = 0; i < n; i++)
                used += stats[i].used != 0;
            arc = agg_dp_noise_scheme(&x->policy, &plan, used, x->dp_seed, rc_e->round,
                                      x->avg, x->n, x->dp_scheme);
            if (arc != 0)
                snprintf(w, sizeof w, "the DP noise cannot be recomputed (%d)", arc);
            rs->dp_rebuilt = arc == 0;
        }
        free(stats);
        if (arc == AGG_ERR_NOMEM) {
            result = why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (arc != 0) {
            rs->not_replayed = "its updates do not average";
            finding(rs, "%s", w);
            x->broken = 1;
            x->broken_round = rc_e->round;
            goto out;
        }
        uint8_t h[32];
        model_hash(x->avg, x->n, h);
        if (!crypto_equal(h, rc_e->aggregate_hash, 32))
            finding(rs, "the average update hashes to %s, round_closed says %s", shorthex(h).s,
                    shorthex(rc_e->aggregate_hash).s);
        uint8_t *down = NULL;
        size_t down_len = 0;
        arc = agg_next_model(&plan, &x->outer, x->down_residual, x->base, x->avg, x->n, x->next,
                             plan.downlink_on ? &down : NULL, &down_len, w, sizeof w);
        free(down);
        if (arc == AGG_ERR_NOMEM) {
            result = why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (arc != 0) {
            rs->not_replayed = "its model cannot be made";
            finding(rs, "%s", w);
            x->broken = 1;
            x->broken_round = rc_e->round;
            goto out;
        }
        model_layout_hash(&x->layout, x->next, h);
        if (!crypto_equal(h, rc_e->model_hash, 32)) {
            finding(rs, "the rebuilt model hashes to %s, round_closed says %s (later rounds "
                    "cannot be rebuilt)", shorthex(h).s, shorthex(rc_e->model_hash).s);
            x->broken = 1;
            x->broken_round = rc_e->round;
        }
        float *t = x->base;
        x->base = x->next;
        x->next = t;
        memcpy(x->base_hash, h, 32);
        rs->replayed = 1;
    }
out:
    for (size_t i = 0; i < n; i++) {
        rs->u[i].payload = NULL;
        rs->u[i].len = 0;
        unmap_payload(&mp[i]);
    }
    free(mp);
    if (!rs->scored && !rs->unscorable)
        x->new_complete = 0;
    return result;
}

/* The recomputed scores as a contribution_scores entry, measures in the policy's order
 * (enum order), for the recomputed totals. members: rs->n records (caller's). */
static void scores_entry(const struct exp_state *x, const struct round_state *rs,
                         struct entry_contribution_scores *e, struct entry_member_score *members)
{
    memset(e, 0, sizeof *e);
    snprintf(e->experiment, sizeof e->experiment, "%s", x->info->id);
    e->round = rs->round;
    int idx[POLICY_MEASURES];
    for (int m = 0; m < POLICY_MEASURES; m++) {
        if (!(x->measures & (1u << m)) || e->n_measures >= ENTRY_MEASURES_MAX)
            continue;
        idx[e->n_measures] = m;
        snprintf(e->measures[e->n_measures++], ENTRY_MEASURE_NAME_MAX + 1, "%s",
                 policy_measure_name((enum policy_measure)m));
    }
    memcpy(e->seed, rs->seed, 32);
    e->evaluations = rs->s.evaluations;
    e->exact = (uint8_t)rs->s.exact;
    e->base_loss = rs->s.base_loss;
    e->model_loss = rs->s.model_loss;
    e->n = (uint32_t)rs->n;
    e->members = members;
    for (size_t i = 0; i < rs->n; i++) {
        memset(&members[i], 0, sizeof members[i]);
        snprintf(members[i].member, sizeof members[i].member, "%s", rs->u[i].member);
        memcpy(members[i].payload_hash, rs->u[i].payload_hash, 32);
        for (uint32_t k = 0; k < e->n_measures; k++)
            members[i].values[k] = rs->s.value[i][idx[k]];
    }
}

static void compare_value(struct round_state *rs, const char *what, const char *member,
                          double rec, double got, int tolerant)
{
    if (tolerant) {
        if (!isnan(rec) && !isnan(got) && fabs(rec - got) > rs->max_diff)
            rs->max_diff = fabs(rec - got);
        if (!credit_replay_close(rec, got))
            finding(rs, "%s%s%s is %.17g in the ledger, recomputed %.17g (|diff| %.3g > "
                    "tolerance %.3g)", what, member ? " of " : "", member ? member : "", rec, got,
                    fabs(rec - got), CREDIT_REPLAY_ABS_TOL + CREDIT_REPLAY_REL_TOL * fabs(rec));
    } else if (!same_double(rec, got)) {
        finding(rs, "%s%s%s is %.17g in the ledger, recomputed %.17g (must match exactly)", what,
                member ? " of " : "", member ? member : "", rec, got);
    }
}

/* A contribution_scores entry of the experiment. */
static int on_scores(struct exp_state *x, const struct entry_contribution_scores *e, char *why,
                     size_t cap)
{
    struct run *r = x->r;
    struct round_state *rs = &x->cur;
    /* the recorded totals, whatever the comparison says */
    if (!x->totals_failed) {
        int trc = credit_totals_add(&x->rec_totals, e);
        if (trc == CREDIT_ERR_NOMEM)
            return why_fail(why, cap, trc, "out of memory");
        if (trc != 0) {
            emit(r, "round %" PRIu64 ": MISMATCH: its contribution_scores entry cannot be added "
                 "to the totals (measures differ from the earlier rounds')", e->round);
            r->sum->problems++;
            x->totals_failed = 1;
        }
    }
    if (!rs->open || rs->round != e->round || rs->scores_seen) {
        emit(r, "round %" PRIu64 ": MISMATCH: a contribution_scores entry %s", e->round,
             rs->open && rs->scores_seen && rs->round == e->round
                 ? "for a round already scored"
                 : "that does not follow the round's round_closed");
        r->sum->problems++;
        x->new_complete = 0;
        return 0;
    }
    rs->scores_seen = 1;
    if (rs->unscorable) {
        finding(rs, "recorded scores, but an evaluation is not finite: %s", rs->unscorable_why);
        rs->unscorable = 0;
    }
    /* members and payloads */
    int members_ok = e->n == rs->n;
    for (size_t i = 0; members_ok && i < rs->n; i++)
        members_ok = strcmp(e->members[i].member, rs->u[i].member) == 0 &&
                     crypto_equal(e->members[i].payload_hash, rs->u[i].payload_hash, 32);
    if (!members_ok)
        finding(rs, "contribution_scores scores %u member(s) that are not the round's %zu "
                "accepted updates (ids and payload hashes, in id order)", e->n, rs->n);
    /* measures: the policy's, each once */
    int mi[ENTRY_MEASURES_MAX];
    uint32_t seen = 0;
    int measures_ok = 1;
    for (uint32_t k = 0; k < e->n_measures && k < ENTRY_MEASURES_MAX; k++) {
        mi[k] = policy_measure_parse(e->measures[k]);
        if (mi[k] < 0 || !(x->measures & (1u << mi[k])) || (seen & (1u << mi[k])))
            measures_ok = 0;
        else
            seen |= 1u << mi[k];
    }
    if (!measures_ok || seen != x->measures) {
        char want[160], tol[80];
        measure_list(x->measures, 0, want, sizeof want);
        measure_list(x->measures, 1, tol, sizeof tol);
        finding(rs, "contribution_scores lists other measures than the policy's (%s%s%s)", want,
                tol[0] ? " " : "", tol);
        measures_ok = 0;
    }
    const int evaluated = (x->measures & ((1u << POLICY_MEASURE_LOO) |
                                          (1u << POLICY_MEASURE_SHAPLEY))) != 0;
    const uint8_t *want_es = evaluated ? x->policy.contribution.evalset_hash : NULL;
    if (evaluated ? !crypto_equal(e->evalset_hash, want_es, 32) : !is_zero(e->evalset_hash, 32))
        finding(rs, "its evaluation-set hash %s is not the policy's", shorthex(e->evalset_hash).s);
    if (rs->replayed && !crypto_equal(e->seed, rs->seed, 32))
        finding(rs, "its seed %s is not credit_round_seed's %s", shorthex(e->seed).s,
                shorthex(rs->seed).s);
    if (rs->scored) {
        if (e->evaluations != rs->s.evaluations)
            finding(rs, "%" PRIu64 " evaluations in the ledger, %" PRIu64 " recomputed",
                    e->evaluations, rs->s.evaluations);
        if ((x->measures & (1u << POLICY_MEASURE_SHAPLEY)) && (e->exact != 0) != (rs->s.exact != 0))
            finding(rs, "the ledger says Shapley was %s, the replay computed it %s",
                    e->exact ? "exact" : "GTG", rs->s.exact ? "exactly" : "by GTG");
        compare_value(rs, "base_loss", NULL, e->base_loss, rs->s.base_loss, 1);
        compare_value(rs, "model_loss", NULL, e->model_loss, rs->s.model_loss, 1);
        for (size_t i = 0; members_ok && measures_ok && i < rs->n; i++)
            for (uint32_t k = 0; k < e->n_measures; k++)
                compare_value(rs, e->measures[k], rs->u[i].member, e->members[i].values[k],
                              rs->s.value[i][mi[k]], eval_measure(mi[k]));
        if (x->new_complete) {
            struct entry_contribution_scores mine;
            struct entry_member_score *ms = calloc(rs->n ? rs->n : 1, sizeof *ms);
            if (!ms)
                return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
            scores_entry(x, rs, &mine, ms);
            int trc = credit_totals_add(&x->new_totals, &mine);
            free(ms);
            if (trc == CREDIT_ERR_NOMEM)
                return why_fail(why, cap, trc, "out of memory");
            if (trc != 0)
                x->new_complete = 0;
        }
    } else if (x->no_eval && !rs->not_replayed) {
        rs->partial = "its scores are not recomputed without the evaluation set (above)";
    }
    round_finish(x);
    return 0;
}

/* Exact comparison of two credits entries; the first difference into diff. */
static int credits_same(const struct entry_credits *a, const struct entry_credits *b, char *diff,
                        size_t cap)
{
    if (strcmp(a->experiment, b->experiment) != 0)
        return snprintf(diff, cap, "it names experiment %s", a->experiment), 0;
    if (a->rounds != b->rounds)
        return snprintf(diff, cap, "it counts %" PRIu64 " scored round(s), the scores %" PRIu64,
                        a->rounds, b->rounds), 0;
    if (a->n_measures != b->n_measures)
        return snprintf(diff, cap, "it has %u measure(s), the policy %u", a->n_measures,
                        b->n_measures), 0;
    for (uint32_t k = 0; k < a->n_measures; k++) {
        if (strcmp(a->measures[k], b->measures[k]) != 0)
            return snprintf(diff, cap, "measure %u is %s, expected %s", k + 1, a->measures[k],
                            b->measures[k]), 0;
        if (!same_double(a->weights[k], b->weights[k]))
            return snprintf(diff, cap, "the weight of %s is %.17g, the policy's %.17g",
                            a->measures[k], a->weights[k], b->weights[k]), 0;
    }
    if (a->n != b->n)
        return snprintf(diff, cap, "it credits %u member(s), the scores %u", a->n, b->n), 0;
    for (uint32_t i = 0; i < a->n; i++) {
        const struct entry_credit_share *p = &a->members[i], *q = &b->members[i];
        if (strcmp(p->member, q->member) != 0)
            return snprintf(diff, cap, "member %u is %s, expected %s", i + 1, p->member,
                            q->member), 0;
        if (!same_double(p->share, q->share))
            return snprintf(diff, cap, "the share of %s is %.17g, the scores give %.17g",
                            p->member, p->share, q->share), 0;
        if (p->rounds != q->rounds)
            return snprintf(diff, cap, "%s has %" PRIu64 " round(s), the scores %" PRIu64,
                            p->member, p->rounds, q->rounds), 0;
        for (uint32_t k = 0; k < a->n_measures; k++)
            if (!same_double(p->measure_share[k], q->measure_share[k]))
                return snprintf(diff, cap, "the %s share of %s is %.17g, the scores give %.17g",
                                a->measures[k], p->member, p->measure_share[k],
                                q->measure_share[k]), 0;
    }
    return 1;
}

/* The recomputed shares against the recorded ones: the largest difference of the
 * shares of evaluation-based measures and of the credit, and 0 when a count measure's
 * share differs (those follow exactly from exact values). */
static int credits_close(const struct entry_credits *rec, const struct entry_credits *got,
                         double *max_diff, char *diff, size_t cap)
{
    *max_diff = 0;
    if (rec->n != got->n || rec->n_measures != got->n_measures)
        return snprintf(diff, cap, "the recomputed scores credit %u member(s) under %u "
                        "measure(s)", got->n, got->n_measures), 0;
    for (uint32_t i = 0; i < rec->n; i++) {
        const struct entry_credit_share *p = &rec->members[i], *q = &got->members[i];
        if (strcmp(p->member, q->member) != 0)
            return snprintf(diff, cap, "the recomputed scores credit %s where the ledger has %s",
                            q->member, p->member), 0;
        double d = fabs(p->share - q->share);
        if (d > *max_diff)
            *max_diff = d;
        for (uint32_t k = 0; k < rec->n_measures; k++) {
            int m = policy_measure_parse(rec->measures[k]);
            int g = -1;
            for (uint32_t j = 0; j < got->n_measures; j++)
                if (strcmp(got->measures[j], rec->measures[k]) == 0)
                    g = (int)j;
            if (g < 0)
                return snprintf(diff, cap, "measure %s is not the policy's", rec->measures[k]), 0;
            double a = p->measure_share[k], b = q->measure_share[g];
            if (m >= 0 && eval_measure(m)) {
                if (fabs(a - b) > *max_diff)
                    *max_diff = fabs(a - b);
            } else if (!same_double(a, b)) {
                return snprintf(diff, cap, "the %s share of %s is %.17g, recomputed %.17g",
                                rec->measures[k], p->member, a, b), 0;
            }
        }
    }
    return 1;
}

/* A credits entry of the experiment. */
static int on_credits(struct exp_state *x, const struct entry_credits *e, char *why, size_t cap)
{
    struct run *r = x->r;
    round_finish(x);
    r->sum->credits_checked++;
    if (x->credits_seen) {
        emit(r, "credits: MISMATCH: a second credits entry for the experiment");
        r->sum->problems++;
        return 0;
    }
    x->credits_seen = 1;
    if (x->totals_failed) {
        emit(r, "credits: NOT CHECKED: the recorded scores do not add up to totals (above)");
        r->sum->problems++;
        return 0;
    }
    struct entry_credits want = { 0 }, again = { 0 };
    int rc = credit_shares(&x->rec_totals, &x->policy.contribution, &want);
    if (rc != 0) {
        free(want.members);
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    }
    char diff[400];
    if (!credits_same(e, &want, diff, sizeof diff)) {
        emit(r, "credits: MISMATCH: the credits entry is not what its recorded scores give: %s",
             diff);
        r->sum->problems++;
        free(want.members);
        return 0;
    }
    double max_diff = 0;
    int close = 1;
    if (x->new_complete) {
        rc = credit_shares(&x->new_totals, &x->policy.contribution, &again);
        if (rc != 0) {
            free(want.members);
            free(again.members);
            return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
        }
        close = credits_close(e, &again, &max_diff, diff, sizeof diff);
    }
    if (!close) {
        emit(r, "credits: MISMATCH: %s", diff);
        r->sum->problems++;
    } else {
        char shares[160] = "";
        if (x->new_complete)
            snprintf(shares, sizeof shares, "; from the recomputed scores, max |diff| %.3g",
                     max_diff);
        else
            snprintf(shares, sizeof shares, "; not every round was recomputed");
        emit(r, "credits: match (%u member(s), %" PRIu64 " round(s); shares = credit_shares of "
             "the recorded scores bit for bit%s)", e->n, e->rounds, shares);
        x->credits_ok = 1;
        r->sum->credits_matched++;
    }
    free(want.members);
    free(again.members);
    return 0;
}

static void exp_free(struct exp_state *x)
{
    sodium_memzero(x->dp_seed, sizeof x->dp_seed);
    if (x->have_policy)
        policy_free(&x->policy);
    model_layout_free(&x->layout);
    free(x->base);
    free(x->next);
    free(x->avg);
    free(x->support);
    free(x->down_residual);
    if (x->have_outer)
        outer_free(&x->outer);
    evaluator_destroy(x->ev);
    if (x->have_es)
        evalset_free(&x->es);
    free(x->pend);
    credit_round_scores_free(&x->cur.s);
    free(x->cur.u);
    sb_free(&x->cur.finds);
    credit_totals_free(&x->rec_totals);
    credit_totals_free(&x->new_totals);
}

static const char *end_words(enum entry_type t)
{
    return t == ENTRY_EXPERIMENT_CANCELLED ? "cancelled" : t == ENTRY_EXPERIMENT_FAILED
                                                               ? "failed" : "finished";
}

static int replay_experiment(struct run *r, const struct ledger_map *m,
                             const struct exp_info *info, char *why, size_t cap)
{
    struct exp_state x = { .r = r, .info = info, .new_complete = 1 };
    credit_totals_init(&x.rec_totals);
    credit_totals_init(&x.new_totals);
    r->sum->experiments++;
    int rc = load_policy(&x, m, why, cap);
    if (rc != 0) {
        if (rc > 0)
            r->sum->problems++;
        exp_free(&x);
        return rc < 0 ? rc : 0;
    }
    x.measures = x.policy.contribution.measures;
    rc = exp_setup(&x);
    if (rc != 0) {
        if (rc > 0)
            r->sum->problems++;
        exp_free(&x);
        return rc < 0 ? why_fail(why, cap, rc, "out of memory for a model of %zu parameters",
                                 x.n) : 0;
    }
    const uint64_t end = info->ended == UINT64_MAX ? r->src->size : info->ended;
    for (uint64_t i = info->started + 1; i < end && rc == 0; i++) {
        struct entry e;
        rc = read_entry(r, i, &e, why, cap);
        if (rc > 0) {
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        switch (e.type) {
        case ENTRY_UPDATE_ACCEPTED:
            if (strcmp(e.u.update.experiment, info->id) != 0)
                break;
            if (grow((void **)&x.pend, &x.cap_pend, x.n_pend, sizeof *x.pend)) {
                rc = why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
                break;
            }
            x.pend[x.n_pend] = e.u.update;
            x.pend[x.n_pend++].reason = NULL;   /* owned by e */
            break;
        case ENTRY_ROUND_CLOSED:
            if (strcmp(e.u.round_closed.experiment, info->id) == 0)
                rc = on_round_closed(&x, &e.u.round_closed, why, cap);
            break;
        case ENTRY_CONTRIBUTION_SCORES:
            if (!r->o->models_only && strcmp(e.u.scores.experiment, info->id) == 0)
                rc = on_scores(&x, &e.u.scores, why, cap);
            break;
        case ENTRY_CREDITS:
            if (!r->o->models_only && strcmp(e.u.credits.experiment, info->id) == 0)
                rc = on_credits(&x, &e.u.credits, why, cap);
            break;
        default:
            break;
        }
        entry_free(&e);
    }
    if (rc == 0 && r->o->models_only) {
        round_finish(&x);
        emit(r, "experiment %s: %" PRIu64 " round(s): %" PRIu64 " match, %" PRIu64 " do not",
             info->id, x.rounds, x.matched, x.rounds - x.matched - x.unchecked);
        if (x.unchecked)
            emit(r, "experiment %s: %" PRIu64 " round(s) not checked: %s", info->id,
                 x.unchecked, x.dp_why ? x.dp_why : "(see above)");
    } else if (rc == 0) {
        round_finish(&x);
        if (x.credits_seen) {
            /* said above */
        } else if (info->ended == UINT64_MAX) {
            emit(r, "credits: none yet (the experiment is running; %" PRIu64 " round(s) closed)",
                 x.rounds);
        } else if (info->end_type == ENTRY_EXPERIMENT_FINISHED && x.rec_totals.rounds == 0 &&
                   !x.totals_failed) {
            emit(r, "credits: none (no round was scored, as recorded)");
        } else if (info->end_type == ENTRY_EXPERIMENT_FINISHED) {
            emit(r, "credits: MISSING: the experiment finished without a credits entry");
            r->sum->problems++;
        } else {
            emit(r, "credits: none (the experiment %s)", end_words(info->end_type));
        }
        emit(r, "experiment %s: %" PRIu64 " round(s): %" PRIu64 " match, %" PRIu64 " do not%s",
             info->id, x.rounds, x.matched, x.rounds - x.matched,
             x.credits_seen ? (x.credits_ok ? "; credits match" : "; credits do not match") : "");
    }
    exp_free(&x);
    return rc;
}

int credit_replay(const struct replay_entries *src, const struct replay_options *o,
                  struct replay_summary *out, char *why, size_t cap)
{
    if (!src || !src->get || !o || !out || (!o->data_dir == !o->payload_dir))
        return why_fail(why, cap, CREDIT_ERR_ARG, "credit_replay: bad arguments");
    memset(out, 0, sizeof *out);
    struct run r = { .src = src, .o = o, .sum = out };
    struct ledger_map m = { 0 };
    int rc = map_ledger(&r, &m, why, cap);
    size_t selected = 0;
    for (size_t i = 0; rc == 0 && i < m.n_exp; i++) {
        const struct exp_info *info = &m.exp[i];
        if (o->experiment ? strcmp(info->id, o->experiment) != 0
            : o->models_only ? info->n_closed == 0
                             : info->n_scores == 0 && !info->has_credits)
            continue;
        selected++;
        rc = replay_experiment(&r, &m, info, why, cap);
        if (rc == 0 && r.oom)
            rc = why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    }
    if (rc == 0 && selected == 0) {
        if (o->experiment) {
            rc = why_fail(why, cap, CREDIT_ERR_ARG, "no experiment %s was started in this ledger",
                          o->experiment);
        } else {
            emit(&r, o->models_only ? "no experiment in the ledger has a closed round: nothing "
                                      "to replay"
                                    : "no experiment in the ledger has contribution_scores "
                                      "entries: nothing to verify");
            out->problems++;
        }
    }
    free(m.exp);
    free(m.motions);
    sb_free(&r.line);
    return rc;
}
