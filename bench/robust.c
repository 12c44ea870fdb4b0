/* bench/robust: what Byzantine members do to each aggregation rule, and what
 * DP-FedAvg's clipping and noise cost (issue 13). An experiment, not a test: prints
 * figures, asserts nothing.
 *
 *   bench/robust [--policy FILE] [--corpus DIR] [--rounds R] [--steps H] [--members LIST]
 *                [--attacks LIST] [--rules LIST] [--semantics LIST] [--dp-members N]
 *                [--dp-z LIST] [--no-byzantine] [--no-dp] [--jobs J] [--work DIR]
 *
 * Federations simulated in one process as bench/contribution does (bench/lib/fedsim.h:
 * the members' trainers, shards of the demo corpora, rounds as worker/worker.c runs
 * them), on the policy's model, trainer and uplink (default
 * policies/examples/sparse.yaml: 1 % top-k int8 with error feedback, average senders,
 * sparse_scale 2). The coordinator's side is its round close with the real rule code:
 * agg_update[] with agg_weight() in member-id order, agg_combine() (aggregate/robust.h)
 * under the run's aggregation.rule, agg_dp_noise() when privacy is on,
 * agg_next_model().
 *
 * Byzantine table: for each n of --members (default 5 and 9) the demo corpora are cut
 * into n shards (fedsim_make_shards); f = 1 member of 5, 2 of 9 (f = (n - 1) / 4) are
 * attackers: the last shard of each of the first f corpora (fpt-2 of 5; fpt-3 and
 * vnpt-3 of 9), so that every corpus keeps honest members. Per round each attacker
 * sends, encoded with the round's uplink codec (its own error-feedback residual, as a
 * worker), and claiming the tokens the plan allows (what honest members report):
 *   none      its honest update (the clean run)
 *   scale     -10 x its honest update
 *   sign      -1 x its honest update
 *   gauss     Gaussian noise with the L2 norm of its honest update
 *   alie      "a little is enough" (Baruch et al., NeurIPS 2019): coordinate-wise
 *             mean - z * std of the honest members' updates of the round (before
 *             compression; population std), z = Phi^-1((n - s) / n) with
 *             s = floor(n / 2 + 1) - f (their z_max; 0.253 at n = 5, f = 1; 0.431 at
 *             n = 9, f = 2); every attacker sends the same vector
 *   zeros     a zero update while claiming full tokens
 * Rules (aggregation.rule of the policy, other keys as follows): fedavg; clip with
 * norm_bound = the median decoded L2 norm of the honest updates in the clean fedavg run
 * of the same n; trimmed_mean with trim = (f + 0.5) / n (floor(trim * n) = f values
 * dropped at each end when all n send a coordinate); median; multi_krum with
 * byzantine = f and select = n - f. Each cell: the honest members' final validation
 * loss (mean over them of the final model's loss on each one's whole held-out text) and
 * its change against the clean fedavg run of the same n (the attackers' slots honest).
 * --semantics LIST: for those attacks (default none, scale), median and trimmed_mean
 * again with the uplink's average switched (members <-> senders: a coordinate a member
 * did not send is a zero, or absent). --attacks LIST picks the attack columns (the clean
 * runs always run; --attacks none: those alone).
 *
 * DP table (--dp-members, default 16 shards, nobody attacking): fedavg with weighting
 * uniform and average members (what privacy requires), first without privacy (the
 * reference), then privacy.clip C = the median decoded L2 norm of the members' updates
 * in that run, noise multiplier z for each of --dp-z (default 0.5, 1, 2; z = 0 gives
 * clipping alone), delta 1e-5: loss gap against the reference and epsilon after the
 * rounds run, rdp_epsilon(1, z, R, 1e-5) (privacy/rdp.h: every member in every round,
 * q = 1). The noise is agg_dp_noise's under a seed from libsodium's CSPRNG: those rows change run
 * to run; everything else is seeded from the policy and member ids and does not depend
 * on --jobs or load.
 *
 * Runs go --jobs at a time (default: online CPUs), one trainer thread each; a run that
 * needs a reference's norms (clip, DP) waits for it (references are queued first). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aggregate/outer.h"
#include "aggregate/robust.h"
#include "aggregate/round.h"
#include "bench/lib/fedsim.h"
#include "codec/codec.h"
#include "model/gpt2.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "privacy/rdp.h"

#define MAX_N 32
#define MAX_SIZES 4
#define MAX_Z 8
#define MAX_RUNS 256
#define DP_DELTA 1e-5

enum attack { A_NONE, A_SCALE, A_SIGN, A_GAUSS, A_ALIE, A_ZEROS, N_ATTACKS };
static const char *const attack_name[N_ATTACKS] = {"none", "scale", "sign", "gauss", "alie",
                                                   "zeros"};
static const char *const attack_title[N_ATTACKS] = {"clean", "x-10", "sign flip",
                                                    "gauss", "ALIE", "zeros"};
#define N_RULES 5
static const enum policy_agg_rule rule_of[N_RULES] = {
    POLICY_AGG_FEDAVG, POLICY_AGG_CLIP, POLICY_AGG_TRIMMED_MEAN, POLICY_AGG_MEDIAN,
    POLICY_AGG_MULTI_KRUM};
static const char *const rule_name[N_RULES] = {"fedavg", "clip", "trimmed_mean", "median",
                                               "multi_krum"};

/* One federation of n members: its shards, shared read-only by its runs. */
struct size {
    int n, f;
    struct fedsim_member shard[MAX_N];   /* id, dir, seed */
    int attacker[MAX_N];
    double z_alie;
};

struct run {
    struct size *sz;
    enum attack attack;
    int rule;                 /* index into rule_of */
    int flip_average;         /* 1: the uplink's average switched */
    int dp;                   /* 0: Byzantine table; 1: DP reference; 2: private */
    double z;
    struct run *ref;          /* the run whose honest norms set clip / privacy.clip */
    /* results */
    int done, rc;
    char why[700];
    double loss;              /* honest members' mean final validation loss */
    double bound;             /* the clip bound or privacy.clip used */
    double median_norm;       /* median decoded L2 norm of honest updates (references) */
    double attackers_used;    /* share of attacker updates that entered (krum) */
    double epsilon;
    double seconds;
};

struct settings {
    struct policy policy;
    const char *policy_path, *corpus, *work;
    uint32_t rounds, steps;
    int jobs;
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Phi^-1(p) by bisection on Phi(x) = erfc(-x / sqrt 2) / 2. */
static double normal_quantile(double p)
{
    double lo = -10, hi = 10;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static double l2(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* The policy a run aggregates under. */
static void run_policy(const struct settings *s, const struct run *rn, struct policy *pc)
{
    *pc = s->policy;   /* shallow: read only, never freed */
    struct policy_aggregation *a = &pc->aggregation;
    a->rule = rule_of[rn->rule];
    a->norm_bound = rn->rule == 1 ? rn->ref->median_norm : 0;
    a->norm_cap = 0;
    a->trim = rn->rule == 2 ? (rn->sz->f + 0.5) / rn->sz->n : 0;
    a->byzantine = rn->rule == 4 ? (uint32_t)rn->sz->f : 0;
    a->select = 0;
    struct policy_link *up = &pc->compression.uplink;
    if (rn->flip_average)
        up->average = up->average == POLICY_AVERAGE_SENDERS ? POLICY_AVERAGE_MEMBERS
                                                            : POLICY_AVERAGE_SENDERS;
    memset(&pc->privacy, 0, sizeof pc->privacy);
    if (rn->dp) {
        a->weighting = POLICY_WEIGHT_UNIFORM;
        up->average = POLICY_AVERAGE_MEMBERS;
    }
    if (rn->dp == 2) {
        pc->privacy.enabled = 1;
        pc->privacy.clip = rn->ref->median_norm;
        pc->privacy.noise_multiplier = rn->z;
        pc->privacy.delta = DP_DELTA;
    }
}

/* The attacker's crafted update of the round into x->local (its honest update there when
 * it trained). honest: the honest members, their Δ in ->local. */
static void craft(const struct run *rn, struct fedsim_member *x, struct fedsim_member **honest,
                  int nh, size_t n, uint32_t r, float *alie)
{
    switch (rn->attack) {
    case A_SCALE:
        for (size_t i = 0; i < n; i++)
            x->local[i] *= -10.0f;
        break;
    case A_SIGN:
        for (size_t i = 0; i < n; i++)
            x->local[i] = -x->local[i];
        break;
    case A_GAUSS: {
        double norm = l2(x->local, n);
        uint64_t st = x->seed ^ ((uint64_t)r << 32) ^ 0x5eedULL;
        for (size_t i = 0; i < n; i++)
            x->local[i] = (float)fedsim_normal(&st);
        double g = l2(x->local, n);
        float k = g > 0 ? (float)(norm / g) : 0.0f;
        for (size_t i = 0; i < n; i++)
            x->local[i] *= k;
        break;
    }
    case A_ALIE:
        if (alie[0] != alie[0]) {   /* NaN: not yet computed this round */
            for (size_t i = 0; i < n; i++) {
                double m = 0, v = 0;
                for (int h = 0; h < nh; h++)
                    m += honest[h]->local[i];
                m /= nh;
                for (int h = 0; h < nh; h++) {
                    double d = honest[h]->local[i] - m;
                    v += d * d;
                }
                alie[i] = (float)(m - rn->sz->z_alie * sqrt(v / nh));
            }
        }
        memcpy(x->local, alie, n * sizeof(float));
        break;
    case A_ZEROS:
        memset(x->local, 0, n * sizeof(float));
        break;
    default:
        break;
    }
}

static int trains(enum attack a) { return a != A_ALIE && a != A_ZEROS; }

/* One federated run. */
static int simulate(const struct settings *s, struct run *rn)
{
    const double t0 = fedsim_now();
    struct size *sz = rn->sz;
    const int nm = sz->n;
    struct policy pc;
    run_policy(s, rn, &pc);
    rn->bound = rn->dp == 2 ? pc.privacy.clip : pc.aggregation.norm_bound;
    struct policy_round_plan first;
    char why[600];
    int rc = policy_round_plan(&pc, 1, &first, why, sizeof why);
    if (rc != 0) {
        snprintf(rn->why, sizeof rn->why, "%s", why);
        return rn->rc = rc;
    }
    const size_t np = first.n_params;
    struct fedsim_member *m = calloc((size_t)nm, sizeof *m);
    struct fedsim_member *honest[MAX_N];
    int nh = 0;
    float *theta = malloc(np * sizeof(float)), *next = malloc(np * sizeof(float));
    float *avg = malloc(np * sizeof(float)), *scratch = malloc(np * sizeof(float));
    float *alie = rn->attack == A_ALIE ? malloc(np * sizeof(float)) : NULL;
    float *down_residual = first.downlink_on ? calloc(np, sizeof(float)) : NULL;
    struct agg_update u[MAX_N];
    struct agg_member_stat stat[MAX_N];
    struct outer_opt outer = {0};
    double *norms = NULL;
    size_t n_norms = 0;
    uint64_t att_sent = 0, att_used = 0;
    if (!m || !theta || !next || !avg || !scratch || (rn->attack == A_ALIE && !alie) ||
        (first.downlink_on && !down_residual) ||
        !(norms = malloc(sizeof(double) * (size_t)nm * s->rounds))) {
        snprintf(rn->why, sizeof rn->why, "out of memory");
        rc = -1;
        goto out;
    }
    for (int i = 0; i < nm; i++) {
        memcpy(m[i].id, sz->shard[i].id, sizeof m[i].id);
        memcpy(m[i].dir, sz->shard[i].dir, sizeof m[i].dir);
        m[i].seed = sz->shard[i].seed;
        const int attacker = rn->attack != A_NONE && sz->attacker[i];
        if (!attacker)
            honest[nh++] = &m[i];
        if ((rc = fedsim_open(&pc, &first, &m[i], !attacker || trains(rn->attack), why,
                              sizeof why)) != 0) {
            snprintf(rn->why, sizeof rn->why, "%s", why);
            goto out;
        }
    }
    if ((rc = gpt2_init_params(&first.model, first.seed, theta)) != 0 ||
        (rc = agg_outer_init(&pc, np, &outer)) != 0) {
        snprintf(rn->why, sizeof rn->why, "model or outer optimizer init failed (%d)", rc);
        goto out;
    }
    for (uint32_t r = 1; r <= s->rounds; r++) {
        struct policy_round_plan plan;
        if ((rc = policy_round_plan(&pc, r, &plan, why, sizeof why)) != 0) {
            snprintf(rn->why, sizeof rn->why, "%s", why);
            goto out;
        }
        for (int i = 0; i < nm; i++)
            if (m[i].tr && (rc = fedsim_train(&pc, s->steps, &m[i], theta, np, r)) != 0) {
                snprintf(rn->why, sizeof rn->why, "%s", m[i].why);
                goto out;
            }
        if (alie)
            alie[0] = NAN;
        for (int i = 0; i < nm; i++) {
            struct fedsim_member *x = &m[i];
            const int attacker = rn->attack != A_NONE && sz->attacker[i];
            if (attacker) {
                craft(rn, x, honest, nh, np, r, alie);
                x->samples = (uint64_t)plan.local_steps * plan.batch_size;
                x->tokens = x->samples * plan.seq_len;   /* the most the plan allows */
            }
            if ((rc = fedsim_encode(&pc, x, np, r)) != 0) {
                snprintf(rn->why, sizeof rn->why, "%s: %s", x->id, x->why);
                goto out;
            }
            if (!attacker)
                norms[n_norms++] = x->norm;
        }
        for (int i = 0; i < nm; i++) {
            struct agg_update *x = &u[i];
            memset(x, 0, sizeof *x);
            snprintf(x->member, sizeof x->member, "%s", m[i].id);
            x->tokens = m[i].tokens;
            x->samples = m[i].samples;
            x->weight = agg_weight(pc.aggregation.weighting, x->tokens, x->samples);
            x->payload = m[i].payload;
            x->len = m[i].len;
        }
        agg_sort(u, (size_t)nm);
        if ((rc = agg_combine(&pc, &plan, np, u, (size_t)nm, NULL, avg, scratch, stat, why,
                              sizeof why)) != 0) {
            snprintf(rn->why, sizeof rn->why, "agg_combine: %s", why);
            goto out;
        }
        for (int k = 0; k < nm; k++)
            for (int i = 0; i < nm; i++)
                if (rn->attack != A_NONE && sz->attacker[i] && !strcmp(u[k].member, m[i].id)) {
                    att_sent++;
                    att_used += stat[k].used != 0;
                }
        uint8_t dp_seed[AGG_DP_SEED_BYTES];
        randombytes_buf(dp_seed, sizeof dp_seed);   /* a fresh seed per run, as before */
        if (rn->dp == 2 &&
            (rc = agg_dp_noise(&pc, &plan, (size_t)nm, dp_seed, r, avg, np)) != 0) {
            snprintf(rn->why, sizeof rn->why, "agg_dp_noise failed (%d)", rc);
            goto out;
        }
        uint8_t *down = NULL;
        size_t down_len = 0;
        rc = agg_next_model(&plan, &outer, down_residual, theta, avg, np, next,
                            plan.downlink_on ? &down : NULL, &down_len, why, sizeof why);
        free(down);
        if (rc == AGG_ERR_MODEL) {   /* the model blew up: its loss is infinite */
            rn->loss = INFINITY;
            rc = 0;
            goto finish;
        }
        if (rc != 0) {
            snprintf(rn->why, sizeof rn->why, "agg_next_model: %s", why);
            goto out;
        }
        float *tmp = theta;
        theta = next;
        next = tmp;
    }
    double sum = 0;
    for (int h = 0; h < nh; h++) {
        double loss;
        if ((rc = fedsim_val_loss(honest[h], theta, np, &loss)) != 0) {
            snprintf(rn->why, sizeof rn->why, "%s", honest[h]->why);
            goto out;
        }
        sum += loss;
    }
    rn->loss = sum / nh;
finish:
    qsort(norms, n_norms, sizeof *norms, cmp_double);
    rn->median_norm = n_norms ? (n_norms % 2 ? norms[n_norms / 2]
                                             : (norms[n_norms / 2 - 1] + norms[n_norms / 2]) / 2)
                              : 0;
    rn->attackers_used = att_sent ? (double)att_used / (double)att_sent : NAN;
    if (rn->dp == 2 && (rc = rdp_epsilon(1.0, rn->z, s->rounds, DP_DELTA, &rn->epsilon)) != 0) {
        snprintf(rn->why, sizeof rn->why, "rdp_epsilon: %s", rdp_strerror(rc));
        goto out;
    }
out:
    rn->rc = rc ? rc : 0;
    for (int i = 0; m && i < nm; i++)
        fedsim_close(&m[i]);
    free(m);
    outer_free(&outer);
    free(theta);
    free(next);
    free(avg);
    free(scratch);
    free(alie);
    free(down_residual);
    free(norms);
    rn->seconds = fedsim_now() - t0;
    return rn->rc;
}

/* ---- the queue ---------------------------------------------------------------- */

struct queue {
    const struct settings *s;
    struct run **runs;
    int n;
};

static void run_one(void *arg, int i)
{
    struct queue *q = arg;
    struct run *rn = q->runs[i];
    if (rn->ref) {   /* wait for the reference's norms */
        pthread_mutex_lock(&done_lock);
        while (!rn->ref->done)
            pthread_cond_wait(&done_cond, &done_lock);
        pthread_mutex_unlock(&done_lock);
    }
    if (rn->ref && rn->ref->rc != 0) {
        rn->rc = -1;
        snprintf(rn->why, sizeof rn->why, "its reference run failed");
    } else {
        simulate(q->s, rn);
    }
    pthread_mutex_lock(&done_lock);
    rn->done = 1;
    pthread_cond_broadcast(&done_cond);
    if (rn->rc)
        fprintf(stderr, "  n=%d %s/%s%s%s failed: %s\n", rn->sz->n, rule_name[rn->rule],
                attack_name[rn->attack], rn->flip_average ? "/flipped" : "",
                rn->dp ? "/dp" : "", rn->why);
    else
        fprintf(stderr, "  n=%-2d %-12s %-5s%s%s z %.1f: loss %.4f (%.0f s)\n", rn->sz->n,
                rule_name[rn->rule], attack_name[rn->attack],
                rn->flip_average ? " avg-flipped" : "", rn->dp ? " dp" : "", rn->z, rn->loss,
                rn->seconds);
    pthread_mutex_unlock(&done_lock);
}

/* ---- output ------------------------------------------------------------------- */

static void cell(const struct run *rn, const struct run *clean)
{
    if (!rn) {
        printf(" %17s", "");
    } else if (rn->rc) {
        printf(" %17s", "failed");
    } else if (!isfinite(rn->loss)) {
        printf(" %17s", "diverged");
    } else {
        char b[40];
        snprintf(b, sizeof b, "%.3f %+.1f%%", rn->loss,
                 100.0 * (rn->loss - clean->loss) / clean->loss);
        printf(" %17s", b);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: robust [--policy FILE] [--corpus DIR] [--rounds R] [--steps H]\n"
            "              [--members LIST] [--attacks LIST] [--rules LIST] [--semantics LIST]\n"
            "              [--dp-members N] [--dp-z LIST] [--no-byzantine] [--no-dp]\n"
            "              [--jobs J] [--work DIR]\n"
            "  --policy FILE     model, data, training, uplink (policies/examples/sparse.yaml)\n"
            "  --corpus DIR      the demo corpora DIR/{fpt,vnpt,hust} (build/demo-corpus)\n"
            "  --rounds R        rounds (the policy's training.rounds)\n"
            "  --steps H         local steps per round (the policy's)\n"
            "  --members LIST    federation sizes of the Byzantine table (5,9); f = (n-1)/4\n"
            "  --attacks LIST    of scale,sign,gauss,alie,zeros (all); the clean runs always\n"
            "                    (--attacks none: those alone)\n"
            "  --rules LIST      of fedavg,clip,trimmed_mean,median,multi_krum (all)\n"
            "  --semantics LIST  attacks (none = clean) for which median and trimmed_mean also\n"
            "                    run with the uplink's average switched (none,scale)\n"
            "  --dp-members N    members of the DP table (16)\n"
            "  --dp-z LIST       noise multipliers (0.5,1,2; 0: clipping alone)\n"
            "  --no-byzantine, --no-dp   skip a table\n"
            "  --jobs J          runs at once (online CPUs)\n"
            "  --work DIR        where the shards are written ($TMPDIR or /tmp)\n");
}

static int parse_list(const char *arg, const char *const *names, int count, int *on)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", arg);
    for (int i = 0; i < count; i++)
        on[i] = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i;
        for (i = 0; i < count && strcmp(names[i], t); i++)
            ;
        if (i == count)
            return -1;
        on[i] = 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct settings s = {.policy_path = "policies/examples/sparse.yaml",
                                .corpus = "build/demo-corpus"};
    const char *tmp = getenv("TMPDIR");
    s.work = tmp && *tmp ? tmp : "/tmp";
    int sizes[MAX_SIZES] = {5, 9}, n_sizes = 2, dp_members = 16, byz = 1, dp = 1;
    double zs[MAX_Z] = {0.5, 1, 2};
    int n_z = 3;
    int attack_on[N_ATTACKS] = {1, 1, 1, 1, 1, 1}, rule_on[N_RULES] = {1, 1, 1, 1, 1};
    int sem_on[N_ATTACKS] = {1, 1, 0, 0, 0, 0};
    long rounds = 0, steps = 0;
    s.jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
    static const struct option opts[] = {
        {"policy", required_argument, 0, 'p'}, {"corpus", required_argument, 0, 'c'},
        {"rounds", required_argument, 0, 'r'}, {"steps", required_argument, 0, 's'},
        {"members", required_argument, 0, 'm'}, {"attacks", required_argument, 0, 'a'},
        {"rules", required_argument, 0, 'R'}, {"semantics", required_argument, 0, 'S'},
        {"dp-members", required_argument, 0, 'd'}, {"dp-z", required_argument, 0, 'z'},
        {"no-byzantine", no_argument, 0, 'B'}, {"no-dp", no_argument, 0, 'D'},
        {"jobs", required_argument, 0, 'j'}, {"work", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char buf[256], *save, *t;
        switch (c) {
        case 'p': s.policy_path = optarg; break;
        case 'c': s.corpus = optarg; break;
        case 'r': rounds = strtol(optarg, NULL, 10); break;
        case 's': steps = strtol(optarg, NULL, 10); break;
        case 'm':
            snprintf(buf, sizeof buf, "%s", optarg);
            n_sizes = 0;
            for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                long v = strtol(t, NULL, 10);
                if (n_sizes == MAX_SIZES || v < 3 || v > MAX_N) {
                    fprintf(stderr, "robust: --members: 1 to %d sizes of 3..%d\n", MAX_SIZES,
                            MAX_N);
                    return 2;
                }
                sizes[n_sizes++] = (int)v;
            }
            break;
        case 'a':
            if (parse_list(optarg, attack_name, N_ATTACKS, attack_on) != 0) {
                fprintf(stderr, "robust: --attacks: of none,scale,sign,gauss,alie,zeros\n");
                return 2;
            }
            attack_on[A_NONE] = 1;   /* the clean runs: every cell's reference */
            break;
        case 'R':
            if (parse_list(optarg, rule_name, N_RULES, rule_on) != 0 || !rule_on[0]) {
                fprintf(stderr, "robust: --rules: of fedavg (required: the reference),clip,"
                        "trimmed_mean,median,multi_krum\n");
                return 2;
            }
            break;
        case 'S':
            if (strcmp(optarg, "") && parse_list(optarg, attack_name, N_ATTACKS, sem_on) != 0) {
                fprintf(stderr, "robust: --semantics: of none,scale,sign,gauss,alie,zeros\n");
                return 2;
            }
            if (!strcmp(optarg, ""))
                memset(sem_on, 0, sizeof sem_on);
            break;
        case 'd': dp_members = (int)strtol(optarg, NULL, 10); break;
        case 'z':
            snprintf(buf, sizeof buf, "%s", optarg);
            n_z = 0;
            for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char *end;
                double v = strtod(t, &end);
                if (n_z == MAX_Z || *end || !(v >= 0)) {
                    fprintf(stderr, "robust: --dp-z: up to %d values >= 0\n", MAX_Z);
                    return 2;
                }
                zs[n_z++] = v;
            }
            break;
        case 'B': byz = 0; break;
        case 'D': dp = 0; break;
        case 'j': s.jobs = (int)strtol(optarg, NULL, 10); break;
        case 'w': s.work = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (rounds < 0 || steps < 0 || s.jobs < 1 || dp_members < 2 || dp_members > MAX_N) {
        usage(stderr);
        return 2;
    }
    struct policy_error perr;
    if (policy_load_file(s.policy_path, &s.policy, &perr) != 0) {
        fprintf(stderr, "robust: %s\n", perr.message);
        return 1;
    }
    const struct policy *p = &s.policy;
    const uint32_t policy_rounds = p->training.rounds;
    s.rounds = rounds ? (uint32_t)rounds : policy_rounds;
    s.policy.training.rounds = s.rounds;   /* so that every round run has its plan */
    s.steps = steps ? (uint32_t)steps : p->training.local_steps;
    if (fedsim_check_corpora(s.corpus, "robust") != 0)
        return 1;

    /* Shards, one set per federation size, under work/robust-<pid>/n<N>. */
    char base[4096];
    snprintf(base, sizeof base, "%.3000s/robust-%d", s.work, (int)getpid());
    if (mkdir(base, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "robust: mkdir %s: %s\n", base, strerror(errno));
        return 1;
    }
    static struct size size[MAX_SIZES + 1];
    int n_size = 0;
    const int n_sz_byz = byz ? n_sizes : 0;
    for (int k = 0; k < n_sz_byz + dp; k++) {
        struct size *sz = &size[n_size++];
        sz->n = k < n_sz_byz ? sizes[k] : dp_members;
        sz->f = k < n_sz_byz ? (sz->n - 1) / 4 : 0;
        char dir[4200], why[600];
        snprintf(dir, sizeof dir, "%s/n%d%s", base, sz->n, k < n_sz_byz ? "" : "-dp");
        if (fedsim_make_shards(s.corpus, dir, sz->n, sz->shard, why, sizeof why) != 0) {
            fprintf(stderr, "robust: %s\n", why);
            return 1;
        }
        /* Attackers: the last piece of each of the first f corpora. */
        for (int a = 0, at = 0; a < sz->f; a++) {
            int own = sz->n / 3 + (a < sz->n % 3);
            at += own;
            sz->attacker[at - 1] = 1;
        }
        const int s_b = sz->n / 2 + 1 - sz->f;
        sz->z_alie = sz->f ? normal_quantile((double)(sz->n - s_b) / sz->n) : 0;
    }

    /* The runs: references first, then the Byzantine runs, then those needing a
     * reference's norms; the largest federations first within each. */
    static struct run runs[MAX_RUNS];
    struct run *queue[MAX_RUNS];
    int n_runs = 0;
    struct run *clean[MAX_SIZES + 1] = {0};
    for (int k = n_size - 1; k >= 0; k--) {
        struct run *rn = &runs[n_runs++];
        rn->sz = &size[k];
        rn->dp = k >= n_sz_byz;
        clean[k] = rn;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int k = n_sz_byz - 1; k >= 0; k--)
            for (int a = 0; a < N_ATTACKS; a++)
                for (int q = 0; q < N_RULES; q++)
                    for (int flip = 0; flip < 2; flip++) {
                        if (!attack_on[a] || !rule_on[q] || (a == A_NONE && q == 0 && !flip))
                            continue;
                        if (flip && (!sem_on[a] || (q != 2 && q != 3)))
                            continue;
                        if ((q == 1) != pass)
                            continue;
                        if (n_runs == MAX_RUNS)
                            break;
                        struct run *rn = &runs[n_runs++];
                        rn->sz = &size[k];
                        rn->attack = (enum attack)a;
                        rn->rule = q;
                        rn->flip_average = flip;
                        rn->ref = q == 1 ? clean[k] : NULL;
                    }
    for (int zi = 0; dp && zi < n_z && n_runs < MAX_RUNS; zi++) {
        struct run *rn = &runs[n_runs++];
        rn->sz = &size[n_size - 1];
        rn->dp = 2;
        rn->z = zs[zi];
        rn->ref = clean[n_size - 1];
    }
    for (int i = 0; i < n_runs; i++)
        queue[i] = &runs[i];

    printf("bench/robust: policy %s (%s), %u rounds x %u local steps of %u x %u tokens "
           "(the policy: %u rounds)\n", s.policy_path, p->metadata.name, s.rounds, s.steps,
           p->training.batch_size, p->training.seq_len, policy_rounds);
    const struct policy_link *up = &p->compression.uplink;
    printf("  uplink top-k %u of %u, %s, error feedback %s (decay %g), average %s, "
           "sparse_scale %g; weighting %s\n", up->k_per_block, up->block_size,
           codec_quant_name(up->quant), up->error_feedback ? "on" : "off",
           up->error_feedback_decay,
           up->average == POLICY_AVERAGE_SENDERS ? "senders" : "members", up->sparse_scale,
           p->aggregation.weighting == POLICY_WEIGHT_TOKENS ? "tokens" : "other");
    for (int k = 0; k < n_size; k++) {
        printf("  n = %2d:", size[k].n);
        for (int i = 0; i < size[k].n; i++)
            printf(" %s%s", size[k].shard[i].id, size[k].attacker[i] ? "*" : "");
        if (size[k].f)
            printf("  (* attacker: f = %d; ALIE z = %.3f)", size[k].f, size[k].z_alie);
        else
            printf("  (DP table)");
        printf("\n");
    }
    printf("  %d runs, %d at a time\n", n_runs, s.jobs);
    fflush(stdout);

    struct queue q = {.s = &s, .runs = queue, .n = n_runs};
    const double t0 = fedsim_now();
    fedsim_parallel(n_runs, s.jobs, run_one, &q);
    const double wall = fedsim_now() - t0;

    /* Byzantine tables. */
    for (int k = 0; k < n_sz_byz; k++) {
        const struct run *ref = clean[k];
        printf("\n== n = %d, f = %d: honest members' final validation loss (nats/byte) and its "
               "change vs clean fedavg", size[k].n, size[k].f);
        if (ref->rc) {
            printf(": the clean fedavg run failed: %s\n", ref->why);
            continue;
        }
        printf(" (%.4f)\n%-13s", ref->loss, "rule");
        for (int a = 0; a < N_ATTACKS; a++)
            if (attack_on[a])
                printf(" %17s", attack_title[a]);
        printf("\n");
        for (int qi = 0; qi < N_RULES; qi++) {
            if (!rule_on[qi])
                continue;
            printf("%-13s", rule_name[qi]);
            for (int a = 0; a < N_ATTACKS; a++) {
                if (!attack_on[a])
                    continue;
                const struct run *found = a == A_NONE && qi == 0 ? ref : NULL;
                for (int i = 0; i < n_runs && !found; i++)
                    if (runs[i].sz == &size[k] && !runs[i].dp && (int)runs[i].attack == a &&
                        runs[i].rule == qi && !runs[i].flip_average)
                        found = &runs[i];
                cell(found, ref);
            }
            printf("\n");
        }
        const struct run *cl = NULL;
        for (int i = 0; i < n_runs; i++)
            if (runs[i].sz == &size[k] && runs[i].rule == 1 && runs[i].attack == A_NONE)
                cl = &runs[i];
        if (cl)
            printf("(clip norm_bound %.4g = the median decoded L2 norm of the honest updates in "
                   "the clean fedavg run; trimmed_mean trim %.3f; multi_krum byzantine %d, "
                   "select %d)\n", cl->bound, (size[k].f + 0.5) / size[k].n, size[k].f,
                   size[k].n - size[k].f);
        printf("multi_krum: share of the attackers' updates selected:");
        for (int a = 1; a < N_ATTACKS; a++)
            for (int i = 0; i < n_runs; i++)
                if (runs[i].sz == &size[k] && runs[i].rule == 4 && (int)runs[i].attack == a &&
                    !runs[i].rc && !runs[i].dp)
                    printf(" %s %.0f%%", attack_name[a], 100 * runs[i].attackers_used);
        printf("\n");
        /* Sparse semantics. */
        int any = 0;
        for (int i = 0; i < n_runs; i++)
            any |= runs[i].sz == &size[k] && runs[i].flip_average;
        if (!any)
            continue;
        const int senders = up->average == POLICY_AVERAGE_SENDERS;
        printf("\nsparse semantics, n = %d (a coordinate a member did not send: absent = average "
               "senders, zero = average members; the policy: %s)\n%-22s", size[k].n,
               senders ? "senders" : "members", "rule");
        for (int a = 0; a < N_ATTACKS; a++)
            if (sem_on[a] && attack_on[a])
                printf(" %17s", attack_title[a]);
        printf("\n");
        for (int qi = 2; qi <= 3; qi++)
            for (int flip = 0; flip < 2; flip++) {
                if (!rule_on[qi])
                    continue;
                int zero = senders ? flip : !flip;
                char label[40];
                snprintf(label, sizeof label, "%s, %s", rule_name[qi], zero ? "zero" : "absent");
                printf("%-22s", label);
                for (int a = 0; a < N_ATTACKS; a++) {
                    if (!sem_on[a] || !attack_on[a])
                        continue;
                    const struct run *found = NULL;
                    for (int i = 0; i < n_runs && !found; i++)
                        if (runs[i].sz == &size[k] && !runs[i].dp && (int)runs[i].attack == a &&
                            runs[i].rule == qi && runs[i].flip_average == flip)
                            found = &runs[i];
                    cell(found, ref);
                }
                printf("\n");
            }
    }

    /* DP table. */
    if (dp) {
        const struct run *ref = clean[n_size - 1];
        printf("\n== DP-FedAvg, %d members (fedavg, weighting uniform, average members), %u "
               "rounds, delta %g\n", dp_members, s.rounds, DP_DELTA);
        if (ref->rc) {
            printf("the non-private run failed: %s\n", ref->why);
        } else {
            printf("%-14s %10s %10s %10s %9s\n", "z", "clip C", "epsilon", "val loss", "gap");
            printf("%-14s %10s %10s %10.4f %9s\n", "non-private", "-", "-", ref->loss, "");
            for (int i = 0; i < n_runs; i++) {
                const struct run *rn = &runs[i];
                if (rn->dp != 2)
                    continue;
                char zb[32];
                snprintf(zb, sizeof zb, "%g%s", rn->z, rn->z == 0 ? " (clip only)" : "");
                if (rn->rc) {
                    printf("%-14s failed: %s\n", zb, rn->why);
                    continue;
                }
                printf("%-14s %10.4g %10.4g", zb, rn->bound, rn->epsilon);
                if (isfinite(rn->loss))
                    printf(" %10.4f %+8.1f%%\n", rn->loss,
                           100.0 * (rn->loss - ref->loss) / ref->loss);
                else
                    printf(" %10s\n", "diverged");
            }
            printf("(clip C = the median decoded L2 norm of the members' updates in the "
                   "non-private run; epsilon = rdp_epsilon(q = 1, z, %u rounds, delta))\n",
                   s.rounds);
        }
    }
    printf("\nwall time %.1f s on %d job(s)\n", wall, s.jobs);

    for (int k = 0; k < n_size; k++)
        for (int i = 0; i < size[k].n; i++)
            fedsim_remove_shard(&size[k].shard[i]);
    for (int k = 0; k < n_size; k++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/n%d%s", base, size[k].n, k < n_sz_byz ? "" : "-dp");
        rmdir(dir);
    }
    rmdir(base);
    policy_free(&s.policy);
    return 0;
}
