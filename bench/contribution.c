/* bench/contribution: do the contribution measures find a free rider, what does
 * GTG-Shapley cost against exact Shapley, what does scoring cost the coordinator, and
 * what is joining worth to a member (issue 12). An experiment, not a test: prints
 * figures, asserts nothing.
 *
 *   bench/contribution [--policy FILE] [--corpus DIR] [--evalset FILE] [--members LIST]
 *                      [--rounds R] [--steps H] [--windows W] [--budget B]
 *                      [--truncation T] [--round-truncation T] [--exact-max N]
 *                      [--compare-budgets LIST] [--jobs J] [--no-solo] [--work DIR]
 *
 * For each n of --members (default 3,8,16), a federation of n members simulated in one
 * process as bench/compression.c does, on the policy's model, trainer and uplink
 * (default policies/examples/sparse.yaml):
 *
 *   n - 2 honest members, each with a shard of the demo corpora (DIR/fpt, DIR/vnpt,
 *   DIR/hust of scripts/demo-corpus.sh, each cut into about (n-2)/3 pieces at line
 *   ends: "fpt-1", "fpt-2", ...; one piece keeps the corpus's name);
 *   one duplicate ("dup-<m>") that trains on a copy of the first honest member's shard
 *   (its own id, so its own batches, as a real worker draws them);
 *   one free rider ("rider") that trains nothing: it uploads Gaussian noise, encoded
 *   with the round's uplink codec and scaled so that its decoded norm equals the mean
 *   decoded norm of the honest payloads of the same round, and claims the most tokens
 *   and samples the round plan allows (local_steps x batch_size x seq_len).
 *
 * Members do what worker/worker.c does in a round: load the global model, reseed their
 * sampler with plan.seed ^ member seed ^ round * 0x9e3779b97f4a7c15, train H steps with
 * their own AdamW state, decay their residual and codec_encode() the pseudo-gradient.
 * The coordinator's side is what its round close does (aggregate/round.h,
 * credit/score.h): agg_update[] with BLAKE2b-256 payload hashes and agg_weight(), in
 * member-id order (agg_sort); agg_average(); credit_round_seed() and
 * credit_score_round() with every measure (tokens, rounds, bytes, alignment, loo,
 * shapley) on the outer state before the step; agg_next_model().
 *
 * Figures:
 *   - ranks: each member's total over the rounds of its alignment, loo and shapley
 *     values (rank 1 = most); the free rider's rank (goal: n, last), in how many rounds
 *     it was last, and its and the duplicate's credit share (credit/shares.h: negative
 *     values count 0);
 *   - GTG vs exact (n <= --exact-max, when the budget does not already give exact
 *     values): the same game v(S) = L(base) - L(agg_outer_trial(agg_average(S))) on a
 *     second evaluator, solved by credit_shapley() with a budget of 2^n (exact) and, on
 *     the cached values, with the policy's budget (GTG; it must equal
 *     credit_score_round's shapley, printed as a check) and each of --compare-budgets;
 *     Spearman's rank correlation with exact per round (mean, min) and of the totals,
 *     and the distinct subsets GTG evaluated as a share of exact's 2^n - 1; and, as a
 *     cheaper estimator for comparison (not in credit/), "first-and-last":
 *     (v({i}) + v(N) - v(N \ {i})) / 2 shifted equally so that the values sum to v(N)
 *     (2n subsets, the n of loo among them);
 *   - cost: the round's time = the slowest member's training and encoding (members
 *     train in parallel in a real federation; here --jobs at a time, each timed on its
 *     own) + aggregation (agg_average + agg_next_model); scoring = credit_score_round;
 *     its share of the round's time; memory: the resident growth of evaluator_create
 *     and its first evaluation (what the coordinator holds for the experiment) and the peak resident growth during credit_score_round
 *     (Linux VmHWM after resetting it through /proc/self/clear_refs; malloc's mmap
 *     threshold is fixed at 128 KiB so freed buffers leave the resident set);
 *   - value of joining: each member with data (honest and duplicate) also trains alone
 *     from the same initial model with the same compute (H steps a round, R rounds, the
 *     same batches, AdamW state kept); loss (nats/byte) of the alone model and of the
 *     federated one on the member's held-out text (all of it).
 *
 * Everything is seeded from the policy and the member ids: results do not depend on
 * --jobs or load, only times do. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aggregate/outer.h"
#include "aggregate/round.h"
#include "codec/codec.h"
#include "credit/evalset.h"
#include "credit/score.h"
#include "crypto/digest.h"
#include "model/gpt2.h"
#include "model/trainer.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "worker/data.h"
#include "bench/lib/fedsim.h"

#define MAX_MEMBERS 64
#define MAX_CONFIGS 8
#define MAX_ROUNDS 1000
#define EXACT_LIMIT 16           /* --exact-max at most: 2^16 subsets */
#define N_SCORED 3               /* alignment, loo, shapley */
#define MAX_BUDGETS 8            /* --compare-budgets */

static const enum policy_measure scored[N_SCORED] = {
    POLICY_MEASURE_ALIGNMENT, POLICY_MEASURE_LOO, POLICY_MEASURE_SHAPLEY};
static const char *const scored_name[N_SCORED] = {"alignment", "loo", "shapley"};

enum kind { HONEST, DUPLICATE, RIDER };
static const char *const kind_name[] = {"honest", "duplicate", "free rider"};

struct member {
    struct fedsim_member f;      /* id, corpus, trainer, data, residual, this round's upload */
    enum kind kind;
    /* over the rounds */
    double total[N_SCORED];      /* sum of the values */
    double clipped[N_SCORED];    /* sum of max(0, value): credit/shares.h */
    int last[N_SCORED];          /* rounds in which it had the lowest value (strictly) */
    double fed_loss, solo_loss;
    uint64_t val_bytes;
};

struct settings {
    struct policy policy;        /* with the bench's contribution section */
    const char *policy_path, *corpus, *evalset_path;
    struct evalset es;
    uint32_t rounds, steps;
    int exact_max, jobs, solo;
    uint32_t budgets[MAX_BUDGETS];   /* GTG budgets compared with exact, ascending */
    int n_budgets;
    const char *work;            /* shards go under it */
    const char *dump;            /* --dump-games DIR, or NULL */
};

/* One n's figures, for the summary tables. */
struct outcome {
    int n, rc;
    int rank[N_SCORED], tied[N_SCORED], last_rounds[N_SCORED];
    double rider_share[N_SCORED], dup_share[N_SCORED];
    int dup_rank[N_SCORED];
    int exact_in_score;          /* credit_score_round itself was exact */
    struct {                     /* GTG at budgets[b] vs exact */
        int compared;            /* rounds with a ranking on both sides */
        double rho_sum, rho_min, rho_total, evals;
        double tot[MAX_MEMBERS];
    } cmp[MAX_BUDGETS];
    struct {                     /* first-and-last estimate vs exact */
        int compared;
        double rho_sum, rho_min, rho_total;
        double tot[MAX_MEMBERS];
    } fl;
    double exact_evals, tot_exact[MAX_MEMBERS], check_diff;
    int checked;                 /* GTG at the policy's budget was compared with
                                    credit_score_round's shapley */
    double train_max, agg, score, share_sum, share_max, score_evals;
    double ev_mib, peak_mib, peak_max_mib;
    double base_loss, final_loss;   /* evaluation set: initial and final model */
    int joined, gained;             /* honest members alone vs federated; how many gained */
    double gain_sum, gain_min, gain_max;   /* relative: (alone - federated) / alone */
    double seconds;
};

/* ---- resident memory ---------------------------------------------------------- */

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS; 0 when the kernel allows it. */
static int reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---- shards ------------------------------------------------------------------- */

/* Members of an n-member federation: ids, kinds and shard directories under
 * work/n<N>/ (written here): fedsim_make_shards' n - 2 pieces, then the duplicate and the
 * rider. */
static int make_members(const struct settings *s, int n, struct member *m, char *why, size_t cap)
{
    const int honest = n - 2;
    char base[4096];
    snprintf(base, sizeof base, "%.3000s/n%d", s->work, n);
    struct fedsim_member *sh = calloc((size_t)n, sizeof *sh);
    if (!sh) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    int rc = fedsim_make_shards(s->corpus, base, honest, sh, why, cap);
    for (int i = 0; rc == 0 && i < honest; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].f = sh[i];
        m[i].kind = HONEST;
    }
    free(sh);
    uint8_t *first = NULL;
    size_t first_len = 0;
    if (rc != 0 || fedsim_read_corpus(m[0].f.dir, &first, &first_len, why, cap) != 0)
        return -1;
    struct member *d = &m[honest];
    memset(d, 0, sizeof *d);
    char orig[AGG_MEMBER_MAX + 1];
    memcpy(orig, m[0].f.id, sizeof orig);
    snprintf(d->f.id, sizeof d->f.id, "dup-%.50s", orig);
    d->kind = DUPLICATE;
    snprintf(d->f.dir, sizeof d->f.dir, "%.3100s/%s", base, d->f.id);
    rc = fedsim_write_text(d->f.dir, first, first_len, why, cap);   /* a copy of m[0]'s text */
    free(first);
    if (rc != 0)
        return -1;
    fedsim_seed(&d->f);
    struct member *r = &m[honest + 1];
    memset(r, 0, sizeof *r);
    snprintf(r->f.id, sizeof r->f.id, "rider");
    r->kind = RIDER;
    fedsim_seed(&r->f);
    return 0;
}

static void remove_shards(const struct settings *s, int n, const struct member *m)
{
    for (int i = 0; i < n; i++)
        fedsim_remove_shard(&m[i].f);
    char path[4200];
    snprintf(path, sizeof path, "%s/n%d", s->work, n);
    rmdir(path);
}

/* ---- members ------------------------------------------------------------------ */

struct phase {
    const struct settings *s;
    struct member *m;
    int n;
    const float *theta;           /* the round's global model (federated phase) */
    size_t n_params;
    uint32_t round;
    int solo;                     /* 1: train alone for all rounds from theta */
};

/* The same compute alone: R rounds of H steps from theta, the same batches. */
static int member_solo(const struct settings *s, struct member *x, const float *theta0,
                       size_t n)
{
    trainer_reset_optimizer(x->f.tr);
    int rc = trainer_set_params(x->f.tr, theta0, n);
    for (uint32_t r = 1; rc == 0 && r <= s->rounds; r++) {
        struct policy_round_plan plan;
        if ((rc = policy_round_plan(&s->policy, r, &plan, x->f.why, sizeof x->f.why)) != 0)
            return rc;
        data_reseed(x->f.dt, fedsim_round_seed(&plan, &x->f, r));
        rc = trainer_train_steps(x->f.tr, (int)s->steps, data_next_batch, x->f.dt, NULL, NULL,
                                 NULL);
    }
    const uint8_t *val;
    size_t len;
    float loss;
    if (rc == 0 && (rc = data_validation(x->f.dt, 0, &val, &len)) == 0 &&
        (rc = trainer_evaluate(x->f.tr, val, len, 0, &loss)) == 0)
        x->solo_loss = loss;
    if (rc != 0)
        snprintf(x->f.why, sizeof x->f.why, "%s alone: %s", x->f.id, model_strerror(rc));
    return rc;
}

static void phase_one(void *arg, int i)
{
    struct phase *ph = arg;
    struct member *x = &ph->m[i];
    if (x->kind == RIDER)
        return;
    x->f.rc = ph->solo ? member_solo(ph->s, x, ph->theta, ph->n_params)
                       : fedsim_round(&ph->s->policy, ph->s->steps, &x->f, ph->theta,
                                      ph->n_params, ph->round);
}

static int run_phase(struct phase *ph)
{
    fedsim_parallel(ph->n, ph->s->jobs, phase_one, ph);
    for (int i = 0; i < ph->n; i++)
        if (ph->m[i].kind != RIDER && ph->m[i].f.rc != 0) {
            fprintf(stderr, "contribution: %s: %s\n", ph->m[i].f.id, ph->m[i].f.why);
            return ph->m[i].f.rc;
        }
    return 0;
}

/* The free rider's payload: noise through the round's codec, its decoded norm that of
 * an honest payload (target), claiming the plan's most samples and tokens. */
static int rider_round(const struct settings *s, struct member *x, size_t n, uint32_t r,
                       double target)
{
    struct policy_round_plan plan;
    char why[200];
    int rc = policy_round_plan(&s->policy, r, &plan, why, sizeof why);
    if (rc != 0) {
        snprintf(x->f.why, sizeof x->f.why, "%s", why);
        return rc;
    }
    uint64_t st = x->f.seed ^ ((uint64_t)r << 32);
    for (size_t i = 0; i < n; i++)
        x->f.local[i] = (float)fedsim_normal(&st);
    const struct codec_params *cp = &plan.uplink;
    for (int pass = 0; pass < 2; pass++) {   /* encode, measure, rescale, encode again */
        memset(x->f.residual, 0, n * sizeof(float));
        free(x->f.payload);
        x->f.payload = NULL;
        if ((rc = codec_encode(x->f.local, n, cp, x->f.residual, &x->f.payload, &x->f.len)) != 0) {
            snprintf(x->f.why, sizeof x->f.why, "rider codec_encode: %s", codec_strerror(rc));
            return rc;
        }
        if ((rc = codec_payload_norm(x->f.payload, x->f.len, n, &x->f.norm, why, sizeof why)) != 0) {
            snprintf(x->f.why, sizeof x->f.why, "rider codec_payload_norm: %s", why);
            return rc;
        }
        if (pass == 0 && x->f.norm > 0) {
            float f = (float)(target / x->f.norm);
            for (size_t i = 0; i < n; i++)
                x->f.local[i] *= f;
        }
    }
    x->f.samples = (uint64_t)plan.local_steps * plan.batch_size;
    x->f.tokens = x->f.samples * plan.seq_len;
    x->f.seconds = 0;
    return 0;
}

/* ---- the game, for GTG against exact ------------------------------------------ */

struct game {
    const struct policy_round_plan *plan;
    const struct outer_opt *outer;
    const float *base;
    size_t n_params;
    const struct agg_update *u;
    size_t n;
    float *avg, *support, *trial, *scratch;
    struct evaluator *ev;
    double base_loss;
    double *cache;                /* 2^n values, NaN: not yet */
    uint8_t *asked;               /* 2^n: asked by the current solve */
    uint64_t distinct;            /* subsets asked by the current solve */
    char why[300];
};

static int game_value(void *arg, uint64_t mask, double *value)
{
    struct game *g = arg;
    if (mask == 0) {
        *value = 0;
        return 0;
    }
    if (!g->asked[mask]) {
        g->asked[mask] = 1;
        g->distinct++;
    }
    if (!isnan(g->cache[mask])) {
        *value = g->cache[mask];
        return 0;
    }
    uint8_t include[MAX_MEMBERS];
    for (size_t i = 0; i < g->n; i++)
        include[i] = (uint8_t)((mask >> i) & 1);
    int rc = agg_average(g->plan, g->n_params, g->u, g->n, include, g->avg, g->support,
                         g->why, sizeof g->why);
    if (rc != 0)
        return rc;
    agg_outer_trial(g->outer, g->base, g->avg, g->n_params, g->trial, g->scratch);
    double loss;
    if ((rc = evaluator_loss(g->ev, g->trial, &loss)) != 0)
        return rc;
    *value = g->cache[mask] = g->base_loss - loss;
    return 0;
}

/* Average ranks (1 = largest), ties sharing the mean of their places. */
static void ranks_of(const double *v, size_t n, double *rank)
{
    for (size_t i = 0; i < n; i++) {
        size_t above = 0, same = 0;
        for (size_t j = 0; j < n; j++) {
            above += v[j] > v[i];
            same += v[j] == v[i];
        }
        rank[i] = (double)above + (double)(same + 1) / 2.0;
    }
}

/* Spearman's rho (Pearson over average ranks); NaN when either side is constant. */
static double spearman(const double *a, const double *b, size_t n)
{
    double ra[MAX_MEMBERS], rb[MAX_MEMBERS], ma = 0, mb = 0;
    ranks_of(a, n, ra);
    ranks_of(b, n, rb);
    for (size_t i = 0; i < n; i++) {
        ma += ra[i];
        mb += rb[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

/* ---- one federation ----------------------------------------------------------- */

static int federation(const struct settings *s, int n, struct outcome *o)
{
    const struct policy *p = &s->policy;
    const double t_start = fedsim_now();
    memset(o, 0, sizeof *o);
    o->n = n;
    for (int b = 0; b < MAX_BUDGETS; b++)
        o->cmp[b].rho_min = 2;
    o->fl.rho_min = 2;
    struct member *m = calloc((size_t)n, sizeof *m);
    struct policy_round_plan first;
    char why[600];
    int rc = policy_round_plan(p, 1, &first, why, sizeof why);
    if (rc != 0 || !m) {
        fprintf(stderr, "contribution: %s\n", m ? why : "out of memory");
        free(m);
        return -1;
    }
    const size_t np = first.n_params;
    const size_t nmask = n <= s->exact_max ? (size_t)1 << n : 0;
    const int compare = nmask && (((uint64_t)1 << n) - 2 > p->contribution.shapley_budget);
    o->exact_in_score = ((uint64_t)1 << (n < 63 ? n : 63)) - 2 <= p->contribution.shapley_budget;
    float *theta = malloc(np * sizeof(float)), *theta0 = malloc(np * sizeof(float));
    float *next = malloc(np * sizeof(float)), *avg = malloc(np * sizeof(float));
    float *support = malloc(np * sizeof(float));
    struct game g = {0};
    struct outer_opt outer = {0};
    struct evaluator *ev = NULL;
    float *down_residual = NULL;
    struct agg_update *u = calloc((size_t)n, sizeof *u);
    int order[MAX_MEMBERS];       /* u[k] is member order[k] */
    double *phi_g = calloc((size_t)n, sizeof(double)), *phi_e = calloc((size_t)n, sizeof(double));
    int n_share = 0;
    if (!theta || !theta0 || !next || !avg || !support || !u || !phi_g || !phi_e) {
        fprintf(stderr, "contribution: out of memory\n");
        rc = -1;
        goto out;
    }
    if (compare) {
        g.avg = malloc(np * sizeof(float));
        g.support = malloc(np * sizeof(float));
        g.trial = malloc(np * sizeof(float));
        g.scratch = malloc(2 * np * sizeof(float));
        g.cache = malloc(nmask * sizeof(double));
        g.asked = malloc(nmask);
        if (!g.avg || !g.support || !g.trial || !g.scratch || !g.cache || !g.asked) {
            fprintf(stderr, "contribution: out of memory\n");
            rc = -1;
            goto out;
        }
    }
    if ((rc = make_members(s, n, m, why, sizeof why)) != 0) {
        fprintf(stderr, "contribution: %s\n", why);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct member *x = &m[i];
        if ((rc = fedsim_open(p, &first, &x->f, x->kind != RIDER, why, sizeof why)) != 0) {
            fprintf(stderr, "contribution: %s\n", why);
            goto out;
        }
        if (x->kind != RIDER)
            x->val_bytes = data_val_bytes(x->f.dt);
    }
    if ((rc = gpt2_init_params(&first.model, first.seed, theta)) != 0) {
        fprintf(stderr, "contribution: gpt2_init_params: %s\n", model_strerror(rc));
        goto out;
    }
    memcpy(theta0, theta, np * sizeof(float));
    if ((rc = agg_outer_init(p, np, &outer)) != 0) {
        fprintf(stderr, "contribution: agg_outer_init failed (%d)\n", rc);
        goto out;
    }
    if (first.downlink_on && !(down_residual = calloc(np, sizeof(float)))) {
        rc = -1;
        goto out;
    }
    long rss0 = status_kib("VmRSS");
    if ((rc = evaluator_create(&first.model, &s->es, p->contribution.eval_windows,
                               first.seq_len, &ev, why, sizeof why)) != 0) {
        fprintf(stderr, "contribution: evaluator_create: %s\n", why);
        goto out;
    }
    double warm;   /* the first evaluation allocates what the evaluator keeps */
    if ((rc = evaluator_loss(ev, theta, &warm)) != 0) {
        fprintf(stderr, "contribution: evaluator_loss: %d\n", rc);
        goto out;
    }
    o->ev_mib = (double)(status_kib("VmRSS") - rss0) / 1024.0;
    if (compare && (rc = evaluator_create(&first.model, &s->es, p->contribution.eval_windows,
                                          first.seq_len, &g.ev, why, sizeof why)) != 0) {
        fprintf(stderr, "contribution: evaluator_create: %s\n", why);
        goto out;
    }

    printf("\n== n = %d: ", n);
    for (int i = 0; i < n; i++)
        printf("%s%s%s", i ? ", " : "", m[i].f.id,
               m[i].kind == DUPLICATE ? " (duplicate)" : m[i].kind == RIDER ? " (free rider)" : "");
    printf("\n");
    for (int i = 0; i < n; i++)
        if (m[i].kind != RIDER)
            printf("   %-10s %7" PRIu64 " training + %5" PRIu64 " held-out bytes%s\n", m[i].f.id,
                   data_train_bytes(m[i].f.dt), m[i].val_bytes,
                   m[i].kind == DUPLICATE ? " (a copy of the first member's)" : "");
    printf("   round  slowest  aggr.  scoring  share  evals  peak MiB   L(base)  L(model)  "
           "rider a/l/s rank");
    if (compare)
        printf("  GTG/exact evals  rho");
    printf("\n");
    fflush(stdout);

    struct phase ph = {.s = s, .m = m, .n = n, .n_params = np};
    for (uint32_t r = 1; r <= s->rounds; r++) {
        struct policy_round_plan plan;
        if ((rc = policy_round_plan(p, r, &plan, why, sizeof why)) != 0) {
            fprintf(stderr, "contribution: %s\n", why);
            goto out;
        }
        ph.theta = theta;
        ph.round = r;
        ph.solo = 0;
        if ((rc = run_phase(&ph)) != 0)
            goto out;
        double target = 0, slowest = 0;
        int honest = 0;
        for (int i = 0; i < n; i++)
            if (m[i].kind == HONEST) {
                target += m[i].f.norm;
                honest++;
            }
        for (int i = 0; i < n; i++)
            if (m[i].kind == RIDER &&
                (rc = rider_round(s, &m[i], np, r, target / honest)) != 0) {
                fprintf(stderr, "contribution: %s\n", m[i].f.why);
                goto out;
            }
        for (int i = 0; i < n; i++)
            if (m[i].f.seconds > slowest)
                slowest = m[i].f.seconds;

        /* The coordinator's round close. */
        for (int i = 0; i < n; i++) {
            struct agg_update *x = &u[i];
            memset(x, 0, sizeof *x);
            snprintf(x->member, sizeof x->member, "%s", m[i].f.id);
            x->tokens = m[i].f.tokens;
            x->samples = m[i].f.samples;
            x->weight = agg_weight(p->aggregation.weighting, x->tokens, x->samples);
            x->payload = m[i].f.payload;
            x->len = m[i].f.len;
            crypto_blake2b256(x->payload, x->len, x->payload_hash);
        }
        agg_sort(u, (size_t)n);
        for (int k = 0; k < n; k++)
            for (int i = 0; i < n; i++)
                if (!strcmp(u[k].member, m[i].f.id))
                    order[k] = i;
        double t0 = fedsim_now();
        if ((rc = agg_average(&plan, np, u, (size_t)n, NULL, avg, support, why, sizeof why)) != 0) {
            fprintf(stderr, "contribution: agg_average: %s\n", why);
            goto out;
        }
        double t_agg = fedsim_now() - t0;
        uint8_t base_hash[32], seed[32];
        crypto_blake2b256(theta, np * sizeof(float), base_hash);
        char experiment[32];
        snprintf(experiment, sizeof experiment, "bench-n%d", n);
        credit_round_seed(experiment, r, base_hash, u, (size_t)n, seed);
        struct credit_round_input in = {.policy = p, .plan = &plan, .outer = &outer,
                                        .base = theta, .n_params = np, .updates = u,
                                        .n = (size_t)n, .ev = ev};
        memcpy(in.seed, seed, sizeof seed);
        struct credit_round_scores sc = {0};
        int peak_ok = reset_peak() == 0;
        long before = status_kib("VmRSS");
        t0 = fedsim_now();
        rc = credit_score_round(&in, &sc, why, sizeof why);
        double t_score = fedsim_now() - t0;
        long hwm = status_kib("VmHWM");
        if (rc != 0) {
            fprintf(stderr, "contribution: credit_score_round: %s\n", why);
            goto out;
        }
        double peak = peak_ok && before >= 0 && hwm >= before ? (double)(hwm - before) / 1024.0
                                                              : NAN;

        /* GTG against exact on the same game, before the step: exact first (it asks for
         * every subset, and the values stay cached), then GTG at each budget. */
        double rho = NAN;
        uint64_t dg = 0, de = 0;
        if (compare) {
            g.plan = &plan;
            g.outer = &outer;
            g.base = theta;
            g.n_params = np;
            g.u = u;
            g.n = (size_t)n;
            for (size_t k = 0; k < nmask; k++)
                g.cache[k] = NAN;
            if ((rc = evaluator_loss(g.ev, theta, &g.base_loss)) != 0) {
                fprintf(stderr, "contribution: evaluator_loss: %d\n", rc);
                goto out;
            }
            struct policy_contribution cb = p->contribution;
            cb.shapley_budget = (uint32_t)nmask;
            uint64_t evals;
            int exact;
            memset(g.asked, 0, nmask);
            g.distinct = 0;
            if ((rc = credit_shapley((size_t)n, game_value, &g, &cb, seed, phi_e, &evals,
                                     &exact)) != 0 || !exact) {
                fprintf(stderr, "contribution: credit_shapley (exact): %d %s\n", rc, g.why);
                rc = rc ? rc : -1;
                goto out;
            }
            de = g.distinct;
            o->exact_evals += (double)de;
            if (s->dump) {   /* the round's game: every coalition's value, for analysis */
                char path[2200];
                snprintf(path, sizeof path, "%.2000s/n%d-r%u.txt", s->dump, n, r);
                FILE *f = fopen(path, "w");
                if (f) {
                    fprintf(f, "# v(S) = L(base) - L(model_S); players (bit i):");
                    for (int k = 0; k < n; k++)
                        fprintf(f, " %s", u[k].member);
                    fprintf(f, "\n");
                    for (size_t k = 1; k < nmask; k++)
                        fprintf(f, "%zu %.17g\n", k, g.cache[k]);
                    fclose(f);
                }
            }
            for (int k = 0; k < n; k++)
                o->tot_exact[k] += phi_e[k];
            /* First and last: each member's marginal as the first and as the last to
             * join, made efficient (the values sum to v(N)); 2n subsets and v(N). */
            const uint64_t full = nmask - 1;
            double sum_fl = 0;
            for (int k = 0; k < n; k++) {
                const uint64_t bit = (uint64_t)1 << k;
                phi_g[k] = 0.5 * (g.cache[bit] + g.cache[full] - g.cache[full & ~bit]);
                sum_fl += phi_g[k];
            }
            for (int k = 0; k < n; k++) {
                phi_g[k] += (g.cache[full] - sum_fl) / n;
                o->fl.tot[k] += phi_g[k];
            }
            double r_fl = spearman(phi_g, phi_e, (size_t)n);
            if (!isnan(r_fl)) {
                o->fl.compared++;
                o->fl.rho_sum += r_fl;
                if (r_fl < o->fl.rho_min)
                    o->fl.rho_min = r_fl;
            }
            for (int b = 0; b < s->n_budgets; b++) {
                cb.shapley_budget = s->budgets[b];
                memset(g.asked, 0, nmask);
                g.distinct = 0;
                if ((rc = credit_shapley((size_t)n, game_value, &g, &cb, seed, phi_g, &evals,
                                         &exact)) != 0) {
                    fprintf(stderr, "contribution: credit_shapley (budget %u): %d %s\n",
                            cb.shapley_budget, rc, g.why);
                    goto out;
                }
                double r_b = spearman(phi_g, phi_e, (size_t)n);
                o->cmp[b].evals += (double)g.distinct;
                for (int k = 0; k < n; k++)
                    o->cmp[b].tot[k] += phi_g[k];
                if (!isnan(r_b)) {
                    o->cmp[b].compared++;
                    o->cmp[b].rho_sum += r_b;
                    if (r_b < o->cmp[b].rho_min)
                        o->cmp[b].rho_min = r_b;
                }
                if (cb.shapley_budget != p->contribution.shapley_budget)
                    continue;
                dg = g.distinct;
                rho = r_b;
                o->checked = 1;
                for (int k = 0; k < n; k++) {
                    double d = fabs(phi_g[k] - sc.value[k][POLICY_MEASURE_SHAPLEY]);
                    if (d > o->check_diff)
                        o->check_diff = d;
                }
            }
        }

        t0 = fedsim_now();
        uint8_t *down = NULL;
        size_t down_len = 0;
        rc = agg_next_model(&plan, &outer, down_residual, theta, avg, np, next,
                            plan.downlink_on ? &down : NULL, &down_len, why, sizeof why);
        t_agg += fedsim_now() - t0;
        free(down);
        if (rc != 0) {
            fprintf(stderr, "contribution: agg_next_model: %s\n", why);
            credit_round_scores_free(&sc);
            goto out;
        }
        float *tmp = theta;
        theta = next;
        next = tmp;

        /* Totals and this round's last. */
        int rider_rank[N_SCORED] = {0};
        for (int q = 0; q < N_SCORED; q++) {
            double v[MAX_MEMBERS];
            for (int k = 0; k < n; k++) {
                v[k] = sc.value[k][scored[q]];
                struct member *x = &m[order[k]];
                x->total[q] += v[k];
                x->clipped[q] += v[k] > 0 ? v[k] : 0;
            }
            for (int k = 0; k < n; k++) {
                int lowest = 1, above = 0;
                for (int j = 0; j < n; j++) {
                    if (j != k && v[j] <= v[k])
                        lowest = 0;
                    above += v[j] > v[k];
                }
                m[order[k]].last[q] += lowest;
                if (m[order[k]].kind == RIDER)
                    rider_rank[q] = above + 1;
            }
        }
        double round_s = slowest + t_agg;
        double share = t_score / round_s;
        o->train_max += slowest;
        o->agg += t_agg;
        o->score += t_score;
        o->share_sum += share;
        if (share > o->share_max)
            o->share_max = share;
        o->score_evals += (double)sc.evaluations;
        if (!isnan(peak)) {
            o->peak_mib += peak;
            n_share++;
            if (peak > o->peak_max_mib)
                o->peak_max_mib = peak;
        }
        if (r == 1)
            o->base_loss = sc.base_loss;
        o->final_loss = sc.model_loss;
        printf("   %5u  %6.2fs %5.3fs  %6.2fs %5.0f%%  %5" PRIu64 "  %8.1f  %8.4f  %8.4f  "
               "%4d/%d/%d", r, slowest, t_agg, t_score, 100 * share, sc.evaluations, peak,
               sc.base_loss, sc.model_loss, rider_rank[0], rider_rank[1], rider_rank[2]);
        if (compare)
            printf("  %6" PRIu64 "/%-6" PRIu64 "  %+.3f", dg, de, rho);
        printf("\n");
        fflush(stdout);
        credit_round_scores_free(&sc);
    }
    if (n_share)
        o->peak_mib /= n_share;

    /* The final federated model on each member's held-out text. */
    for (int i = 0; i < n; i++) {
        struct member *x = &m[i];
        if (x->kind == RIDER)
            continue;
        if ((rc = fedsim_val_loss(&x->f, theta, np, &x->fed_loss)) != 0) {
            fprintf(stderr, "contribution: %s\n", x->f.why);
            goto out;
        }
    }
    if (s->solo) {
        ph.theta = theta0;
        ph.solo = 1;
        if ((rc = run_phase(&ph)) != 0)
            goto out;
    }

    /* Ranks over the totals. */
    double sum_clip[N_SCORED] = {0};
    for (int q = 0; q < N_SCORED; q++)
        for (int i = 0; i < n; i++)
            sum_clip[q] += m[i].clipped[q];
    printf("\n   %-10s %-10s %8s", "member", "kind", "tokens");
    for (int q = 0; q < N_SCORED; q++)
        printf(" %10s %4s %6s", scored_name[q], "rank", "share");
    if (s->solo)
        printf(" %9s %9s %7s", "alone", "federated", "gain");
    printf("\n");
    for (int i = 0; i < n; i++) {
        struct member *x = &m[i];
        printf("   %-10s %-10s %8" PRIu64, x->f.id, kind_name[x->kind], x->f.tokens);
        for (int q = 0; q < N_SCORED; q++) {
            int above = 0, same = 0;
            for (int j = 0; j < n; j++) {
                above += m[j].total[q] > x->total[q];
                same += j != i && m[j].total[q] == x->total[q];
            }
            double sh = sum_clip[q] > 0 ? x->clipped[q] / sum_clip[q] : 0;
            printf(" %+10.5f %3d%s %5.1f%%", x->total[q], above + 1, same ? "=" : " ", 100 * sh);
            if (x->kind == RIDER) {
                o->rank[q] = above + 1;
                o->tied[q] = same;
                o->last_rounds[q] = x->last[q];
                o->rider_share[q] = sh;
            } else if (x->kind == DUPLICATE) {
                o->dup_rank[q] = above + 1;
                o->dup_share[q] = sh;
            }
        }
        if (s->solo && x->kind != RIDER) {
            double gain = (x->solo_loss - x->fed_loss) / x->solo_loss;
            printf(" %9.4f %9.4f %+6.2f%%", x->solo_loss, x->fed_loss, 100 * gain);
            if (x->kind == HONEST) {
                if (o->joined == 0 || gain < o->gain_min)
                    o->gain_min = gain;
                if (o->joined == 0 || gain > o->gain_max)
                    o->gain_max = gain;
                o->joined++;
                o->gained += gain > 0;
                o->gain_sum += gain;
            }
        }
        printf("\n");
    }
    printf("   (totals over %u rounds; rank 1 = most, '=' tied; share: credit share, negative "
           "values counted 0; gain: how much lower the federated model's held-out loss is "
           "than the alone model's)\n", s->rounds);
    if (compare) {
        for (int b = 0; b < s->n_budgets; b++)
            o->cmp[b].rho_total = spearman(o->cmp[b].tot, o->tot_exact, (size_t)n);
        o->fl.rho_total = spearman(o->fl.tot, o->tot_exact, (size_t)n);
        printf("   check: credit_shapley on the bench's own game at budget %u = "
               "credit_score_round's shapley within %.3g (max |diff|)\n",
               p->contribution.shapley_budget, o->check_diff);
    }
    o->seconds = fedsim_now() - t_start;
    printf("   %.1f s\n", o->seconds);
    fflush(stdout);
    rc = 0;
out:
    o->rc = rc;
    for (int i = 0; m && i < n; i++)
        fedsim_close(&m[i].f);
    if (m)
        remove_shards(s, n, m);
    evaluator_destroy(ev);
    evaluator_destroy(g.ev);
    outer_free(&outer);
    free(g.avg);
    free(g.support);
    free(g.trial);
    free(g.scratch);
    free(g.cache);
    free(g.asked);
    free(down_residual);
    free(theta);
    free(theta0);
    free(next);
    free(avg);
    free(support);
    free(u);
    free(phi_g);
    free(phi_e);
    free(m);
    return rc;
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: contribution [--policy FILE] [--corpus DIR] [--evalset FILE] [--members LIST]\n"
            "                    [--rounds R] [--steps H] [--windows W] [--budget B]\n"
            "                    [--truncation T] [--round-truncation T] [--exact-max N]\n"
            "                    [--compare-budgets LIST] [--jobs J] [--no-solo] [--work DIR]\n"
            "  --policy FILE    model, data, training, aggregation and uplink "
            "(policies/examples/sparse.yaml)\n"
            "  --corpus DIR     DIR/fpt, DIR/vnpt, DIR/hust (build/demo-corpus; "
            "scripts/demo-corpus.sh makes it)\n"
            "  --evalset FILE   the evaluation set (build/evalset/vi-firefox-ui.txt; "
            "scripts/evalset.sh makes it)\n"
            "  --members LIST   federation sizes, each >= 3 and <= %d (3,8,16)\n"
            "  --rounds R       rounds per federation (4)\n"
            "  --steps H        local steps per round (the policy's training.local_steps)\n"
            "  --windows W      evaluation windows (the policy's contribution, else 16)\n"
            "  --budget B       Shapley evaluations per round (the policy's, else 64)\n"
            "  --truncation T   GTG within-round truncation (the policy's, else 0.01)\n"
            "  --round-truncation T  between-round truncation (the policy's, else 1e-4)\n"
            "  --exact-max N    exact Shapley for comparison up to n = N, <= %d (8)\n"
            "  --compare-budgets LIST  GTG budgets compared with exact, besides the "
            "policy's (16,32,48,64,128)\n"
            "  --jobs J         members training at once (online CPUs)\n"
            "  --no-solo        skip the value of joining (members alone)\n"
            "  --work DIR       where the members' shards are written (a new directory "
            "under $TMPDIR)\n",
            MAX_MEMBERS, EXACT_LIMIT);
}

int main(int argc, char **argv)
{
    static struct settings s;
    s.policy_path = "policies/examples/sparse.yaml";
    s.corpus = "build/demo-corpus";
    s.evalset_path = "build/evalset/vi-firefox-ui.txt";
    s.exact_max = 8;
    s.solo = 1;
    const char *members = "3,8,16", *work = NULL, *cmp_budgets = "16,32,48,64,128";
    long rounds = 4, steps = 0, windows = 0, budget = 0;
    double trunc = -1, rtrunc = -1;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    static const struct option opts[] = {
        {"policy", required_argument, 0, 'p'}, {"corpus", required_argument, 0, 'c'},
        {"evalset", required_argument, 0, 'e'}, {"members", required_argument, 0, 'm'},
        {"rounds", required_argument, 0, 'r'}, {"steps", required_argument, 0, 's'},
        {"windows", required_argument, 0, 'w'}, {"budget", required_argument, 0, 'b'},
        {"truncation", required_argument, 0, 't'},
        {"round-truncation", required_argument, 0, 'T'},
        {"exact-max", required_argument, 0, 'x'}, {"jobs", required_argument, 0, 'j'},
        {"no-solo", no_argument, 0, 'S'}, {"work", required_argument, 0, 'W'},
        {"compare-budgets", required_argument, 0, 'B'}, {"dump-games", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': s.policy_path = optarg; break;
        case 'c': s.corpus = optarg; break;
        case 'e': s.evalset_path = optarg; break;
        case 'm': members = optarg; break;
        case 'r': rounds = strtol(optarg, NULL, 10); break;
        case 's': steps = strtol(optarg, NULL, 10); break;
        case 'w': windows = strtol(optarg, NULL, 10); break;
        case 'b': budget = strtol(optarg, NULL, 10); break;
        case 't': trunc = strtod(optarg, NULL); break;
        case 'T': rtrunc = strtod(optarg, NULL); break;
        case 'x': s.exact_max = (int)strtol(optarg, NULL, 10); break;
        case 'j': jobs = strtol(optarg, NULL, 10); break;
        case 'S': s.solo = 0; break;
        case 'W': work = optarg; break;
        case 'B': cmp_budgets = optarg; break;
        case 'D': s.dump = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int sizes[MAX_CONFIGS], n_sizes = 0;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", members);
        for (char *sv, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
            long v = strtol(tok, NULL, 10);
            if (v < 3 || v > MAX_MEMBERS || n_sizes == MAX_CONFIGS) {
                fprintf(stderr, "contribution: --members: each n in 3..%d, at most %d of them\n",
                        MAX_MEMBERS, MAX_CONFIGS);
                return 2;
            }
            sizes[n_sizes++] = (int)v;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || steps < 0 || jobs < 1 || windows < 0 ||
        budget < 0 || s.exact_max < 0 || s.exact_max > EXACT_LIMIT || trunc >= 1 ||
        n_sizes == 0) {
        usage(stderr);
        return 2;
    }
    s.jobs = (int)jobs;
    /* Large buffers from mmap and back to the system when freed: the resident set then
     * shows what scoring holds (no dynamic threshold). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);

    struct policy_error perr;
    if (policy_load_file(s.policy_path, &s.policy, &perr) != 0) {
        fprintf(stderr, "contribution: %s\n", perr.message);
        return 1;
    }
    struct policy *p = &s.policy;
    s.rounds = (uint32_t)rounds;
    p->training.rounds = s.rounds;   /* every round run has its plan */
    s.steps = steps ? (uint32_t)steps : p->training.local_steps;
    p->training.local_steps = s.steps;   /* the plan's tokens bound follows */
    struct policy_contribution *pc = &p->contribution;
    const int from_policy = (pc->measures & (1u << POLICY_MEASURE_SHAPLEY)) && pc->has_evalset;
    if (!from_policy || !pc->eval_windows)
        pc->eval_windows = 16;
    if (!from_policy || !pc->shapley_budget)
        pc->shapley_budget = 64;
    if (!from_policy) {
        pc->shapley_truncation = 0.01;
        pc->round_truncation = 1e-4;
    }
    if (windows)
        pc->eval_windows = (uint32_t)windows;
    if (budget)
        pc->shapley_budget = (uint32_t)budget;
    if (trunc >= 0)
        pc->shapley_truncation = trunc;
    if (rtrunc >= 0)
        pc->round_truncation = rtrunc;
    pc->measures = 0;
    for (int q = 0; q < POLICY_MEASURES; q++) {
        pc->measures |= 1u << q;
        pc->credit_weights[q] = 1;
    }
    {   /* the budgets GTG runs at against exact: the list and the policy's, ascending */
        char buf[256];
        snprintf(buf, sizeof buf, "%s", cmp_budgets);
        s.budgets[s.n_budgets++] = pc->shapley_budget;
        for (char *sv, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
            long v = strtol(tok, NULL, 10);
            if (v < 1 || v > 1000000 || s.n_budgets == MAX_BUDGETS) {
                fprintf(stderr, "contribution: --compare-budgets: at most %d budgets in "
                        "1..1000000\n", MAX_BUDGETS - 1);
                return 2;
            }
            int dup = 0;
            for (int i = 0; i < s.n_budgets; i++)
                dup |= s.budgets[i] == (uint32_t)v;
            if (!dup)
                s.budgets[s.n_budgets++] = (uint32_t)v;
        }
        for (int i = 1; i < s.n_budgets; i++)
            for (int j = i; j > 0 && s.budgets[j - 1] > s.budgets[j]; j--) {
                uint32_t t = s.budgets[j];
                s.budgets[j] = s.budgets[j - 1];
                s.budgets[j - 1] = t;
            }
    }
    char why[600];
    if (evalset_load(s.evalset_path, NULL, &s.es, why, sizeof why) != 0) {
        fprintf(stderr, "contribution: %s; make it with scripts/evalset.sh %s\n", why,
                s.evalset_path);
        return 1;
    }
    pc->has_evalset = 1;
    const char *slash = strrchr(s.evalset_path, '/');
    snprintf(pc->evalset_name, sizeof pc->evalset_name, "%s", slash ? slash + 1 : s.evalset_path);
    memcpy(pc->evalset_hash, s.es.hash, 32);

    if (fedsim_check_corpora(s.corpus, "contribution") != 0)
        return 1;
    static char tmpl[4096];
    if (work && strlen(work) > 2000) {
        fprintf(stderr, "contribution: --work: a path of at most 2000 bytes\n");
        return 2;
    }
    if (work) {
        snprintf(tmpl, sizeof tmpl, "%s", work);
        if (mkdir(tmpl, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "contribution: mkdir %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/aulac-contribution-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "contribution: mkdtemp %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
    }
    s.work = tmpl;

    struct policy_round_plan first;
    if (policy_round_plan(p, 1, &first, why, sizeof why) != 0) {
        fprintf(stderr, "contribution: %s: %s\n", s.policy_path, why);
        return 1;
    }
    printf("bench/contribution:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n  policy %s (%s): %zu parameters (%d layers, n_embd %d), %u rounds x %u local "
           "steps of %u x %u tokens,\n  inner AdamW lr %g (warm-up %u steps not simulated), "
           "outer %s lr %g, weighting %s,\n  uplink block %u k %u %s zstd %d ef %d "
           "(decay %g, average %s, sparse_scale %g), downlink %s\n",
           s.policy_path, p->metadata.name, first.n_params, first.model.n_layer,
           first.model.n_embd, s.rounds, s.steps, first.batch_size, first.seq_len, first.lr,
           first.warmup_steps, policy_outer_kind_name(p->training.outer.kind),
           p->training.outer.lr,
           p->aggregation.weighting == POLICY_WEIGHT_TOKENS ? "tokens"
           : p->aggregation.weighting == POLICY_WEIGHT_SAMPLES ? "samples" : "uniform",
           first.uplink.block_size, first.uplink.k_per_block,
           codec_quant_name(first.uplink.quant), first.uplink.zstd_level,
           first.uplink.error_feedback, first.error_feedback_decay,
           first.average == POLICY_AVERAGE_SENDERS ? "senders" : "members", first.sparse_scale,
           first.downlink_on ? "compressed" : "exact");
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", s.es.hash[i]);
    printf("  evaluation set %s: %zu bytes, blake2b-256 %s; %u windows of %u bytes\n",
           s.evalset_path, s.es.len, hex, pc->eval_windows, first.seq_len + 1);
    printf("  measures tokens rounds bytes alignment loo shapley; shapley budget %u, "
           "truncation %g, round_truncation %g; GTG compared at budgets", pc->shapley_budget,
           pc->shapley_truncation, pc->round_truncation);
    for (int i = 0; i < s.n_budgets; i++)
        printf("%s%u", i ? "," : " ", s.budgets[i]);
    printf("\n");
    printf("  members: n =");
    for (int i = 0; i < n_sizes; i++)
        printf(" %d", sizes[i]);
    printf(" (n-2 honest shards of %s/{fpt,vnpt,hust}, a duplicate of the first, a free "
           "rider);\n  exact Shapley compared up to n = %d; %d member(s) training at a time, "
           "one thread each; value of joining: %s; shards under %s\n",
           s.corpus, s.exact_max, s.jobs, s.solo ? "yes" : "no", s.work);
    fflush(stdout);

    struct outcome res[MAX_CONFIGS];
    const double t0 = fedsim_now();
    int failed = 0;
    for (int i = 0; i < n_sizes; i++)
        if (federation(&s, sizes[i], &res[i]) != 0)
            failed++;
    const double wall = fedsim_now() - t0;
    if (!work)
        rmdir(s.work);

    printf("\n== Free rider's rank over the totals (1 = most credit, goal: last = n)\n");
    printf("   %3s  %-15s %-15s %-15s  %-22s  %s\n", "n", "alignment", "loo", "shapley",
           "rider's credit share", "duplicate: rank, share (a/l/s)");
    for (int i = 0; i < n_sizes; i++) {
        const struct outcome *o = &res[i];
        if (o->rc) {
            printf("   %3d  failed\n", o->n);
            continue;
        }
        printf("   %3d ", o->n);
        for (int q = 0; q < N_SCORED; q++) {
            char cell[32];
            snprintf(cell, sizeof cell, "%d/%d%s %s", o->rank[q], o->n, o->tied[q] ? "=" : "",
                     o->rank[q] == o->n && !o->tied[q] ? "last" : "");
            printf(" %-15s", cell);
        }
        printf("  %5.1f%% %5.1f%% %5.1f%%  ", 100 * o->rider_share[0], 100 * o->rider_share[1],
               100 * o->rider_share[2]);
        printf("%d/%d/%d, %.1f%% %.1f%% %.1f%% (fair 1/n %.1f%%)\n", o->dup_rank[0],
               o->dup_rank[1], o->dup_rank[2], 100 * o->dup_share[0], 100 * o->dup_share[1],
               100 * o->dup_share[2], 100.0 / o->n);
    }
    printf("   rounds in which the rider had the lowest value (a/l/s):");
    for (int i = 0; i < n_sizes; i++)
        if (!res[i].rc)
            printf("  n=%d %d/%d/%d of %u", res[i].n, res[i].last_rounds[0],
                   res[i].last_rounds[1], res[i].last_rounds[2], s.rounds);
    printf("\n");

    printf("\n== GTG-Shapley vs exact Shapley (goal: Spearman >= 0.9 with <= 20 %% of exact's "
           "evaluations)\n");
    printf("   (* the policy's budget, the one credit_score_round used; subsets: distinct "
           "coalitions evaluated per round, v(N) included; exact evaluates all 2^n - 1;\n"
           "   first-and-last, not in credit/: (v({i}) + v(N) - v(N\\{i}))/2 shifted so the "
           "values sum to v(N): the marginal as the first and as the last to join)\n");
    printf("   %3s  %-20s %6s  %-26s %s\n", "n", "how", "rounds", "subsets GTG / exact",
           "Spearman per round: mean (min); of the totals");
    for (int i = 0; i < n_sizes; i++) {
        const struct outcome *o = &res[i];
        if (o->rc)
            continue;
        if (o->exact_in_score) {
            printf("   %3d  exact in credit_score_round (2^%d - 2 <= budget %u)\n", o->n, o->n,
                   p->contribution.shapley_budget);
        } else if (o->n > s.exact_max) {
            printf("   %3d  GTG only (exact needs 2^%d - 1 evaluations; --exact-max %d)\n",
                   o->n, o->n, s.exact_max);
        } else {
            const double per_e = o->exact_evals / s.rounds;
            for (int b = 0; b < s.n_budgets; b++) {
                const double per_g = o->cmp[b].evals / s.rounds;
                const int c = o->cmp[b].compared;
                char how[40];
                snprintf(how, sizeof how, "GTG, budget %u%s", s.budgets[b],
                         s.budgets[b] == p->contribution.shapley_budget ? "*" : "");
                printf("   %3d  %-20s %6u  %6.1f / %-6.0f = %5.1f%%  %.3f (%.3f); %.3f%s\n",
                       o->n, how, s.rounds, per_g, per_e, 100 * per_g / per_e,
                       c ? o->cmp[b].rho_sum / c : NAN, c ? o->cmp[b].rho_min : NAN,
                       o->cmp[b].rho_total, c < (int)s.rounds ? "  (rounds without a "
                       "ranking left out)" : "");
            }
            const double per_fl = 2.0 * o->n + 1;
            const int c = o->fl.compared;
            printf("   %3d  %-20s %6u  %6.1f / %-6.0f = %5.1f%%  %.3f (%.3f); %.3f\n", o->n,
                   "first-and-last", s.rounds, per_fl, per_e, 100 * per_fl / per_e,
                   c ? o->fl.rho_sum / c : NAN, c ? o->fl.rho_min : NAN, o->fl.rho_total);
        }
    }

    printf("\n== Scoring cost at the coordinator (goal at n = 8: <= 10 %% of the round's time)\n");
    printf("   %3s  %9s %9s %9s %14s %7s %11s %12s %16s\n", "n", "slowest", "aggregate",
           "scoring", "share (max)", "evals", "s/eval", "evaluator", "scoring peak");
    for (int i = 0; i < n_sizes; i++) {
        const struct outcome *o = &res[i];
        if (o->rc)
            continue;
        double R = s.rounds;
        double mib_model = 4.0 * (double)first.n_params / 1048576.0;
        printf("   %3d  %8.2fs %8.3fs %8.2fs %7.0f%% (%3.0f%%) %7.1f %10.4fs %9.1f MiB "
               "%6.1f MiB (%.1fx)\n", o->n, o->train_max / R, o->agg / R, o->score / R,
               100 * o->share_sum / R, 100 * o->share_max, o->score_evals / R,
               o->score / o->score_evals, o->ev_mib, o->peak_max_mib,
               o->peak_max_mib / mib_model);
    }
    printf("   per round, means over the rounds; slowest: the slowest member's training and "
           "encoding (one thread); share: scoring / (slowest + aggregate); scoring peak: the "
           "largest resident growth during credit_score_round, and in fp32 models (%.1f MiB)\n",
           4.0 * (double)first.n_params / 1048576.0);
    for (int i = 0; i < n_sizes; i++) {
        const struct outcome *o = &res[i];
        if (o->rc || o->n != 8)
            continue;
        double per_step = o->train_max / s.rounds / s.steps;
        double need = o->score / s.rounds / (0.1 * per_step);
        printf("   at n = 8 scoring takes as long as %.0f local steps of one member: <= 10 %% "
               "needs local_steps >= %.0f with this model, batch and evaluation set\n",
               o->score / s.rounds / per_step, ceil(need));
    }

    if (s.solo) {
        printf("\n== Value of joining: each honest member's held-out loss, alone (the same "
               "compute) vs federated\n");
        printf("   %3s  %7s  %-16s  %-26s\n", "n", "members", "gained by joining",
               "gain mean (min .. max)");
        for (int i = 0; i < n_sizes; i++) {
            const struct outcome *o = &res[i];
            if (o->rc || !o->joined)
                continue;
            printf("   %3d  %7d  %7d of %-7d  %+6.2f%% (%+.2f%% .. %+.2f%%)\n", o->n, o->joined,
                   o->gained, o->joined, 100 * o->gain_sum / o->joined, 100 * o->gain_min,
                   100 * o->gain_max);
        }
        printf("   gain: (alone - federated) / alone, held-out loss in nats/byte; per member in "
               "the tables above\n");
    }

    printf("\n== Evaluation-set loss: initial model -> final federated model\n  ");
    for (int i = 0; i < n_sizes; i++)
        if (!res[i].rc)
            printf(" n=%d %.4f -> %.4f;", res[i].n, res[i].base_loss, res[i].final_loss);
    printf("\n\nwall time %.1f s, %d member(s) training at a time\n", wall, s.jobs);
    evalset_free(&s.es);
    policy_free(&s.policy);
    return failed ? 1 : 0;
}
