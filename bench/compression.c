/* bench/compression: model quality against uplink bytes of the update codec (issue 5).
 * An experiment, not a test: prints figures, asserts nothing.
 *
 *   bench/compression [--policy FILE] [--corpus DIR] [--rounds R] [--steps H]
 *                     [--variants LIST|all|list] [--add NAME:key=value,...]
 *                     [--jobs N] [--downlink] [--curve N]
 *   bench/compression --diloco [--total-steps T] [--H LIST] [--outer LIST]
 *                     [--uplink LIST] [--no-sync] [--warm-start W [--warm-start-file F]]
 *                     [--policy FILE] [--corpus DIR] [--jobs N]
 *
 * A federated run simulated in one process, round for round what the coordinator
 * and the workers do (coordinator/experiment.c, worker/worker.c), on the policy's
 * model, data split, inner and outer optimizers (default policies/examples/sparse.yaml,
 * corpora DIR/<member> for each member of participation.members, default
 * build/demo-corpus, made by scripts/demo-corpus.sh; scripts/bench-compression.sh
 * does both):
 *
 *   each member has its own trainer (AdamW state kept across rounds), corpus, split
 *   and error-feedback residual; per round it loads the global model, trains H local
 *   steps, decays its residual (error_feedback_decay) and encodes Δ = θ_base − θ_local
 *   with codec_encode(); the "coordinator" adds every payload into one accumulator with
 *   codec_decode_accumulate_support() weighted by tokens, averages it with
 *   outer_average() (over all members, or coordinate by coordinate over the senders,
 *   and times sparse_scale in sparse rounds) and takes the outer step
 *   (aggregate/outer.h).
 *
 * The downlink is exact unless --downlink, which applies the policy's downlink
 * compression (server-side error feedback, replicas take prev + decoded change) as
 * the coordinator does. Only the uplink varies between variants; everything else --
 * initial model, batches, order -- is the same, so differences are the codec's.
 *
 * Final loss: the mean over the members of trainer_evaluate() of the final global
 * model on each member's whole held-out text. Bytes: payload bytes per round per
 * member, averaged over all rounds (dense warm-up rounds included) and over the
 * sparse rounds alone; ratio: 4n (the fp32 vector) over that.
 *
 * Variants (--variants list): by default the five runs on the policy (dense;
 * top-k 1% and 0.3% in blocks of 4096, int8 + zstd 3, with and without error
 * feedback), then 1%+ef and 0.3%+ef without the policy's sparse-uplink knobs, one knob
 * at a time, and in blocks of 65536 (bench/README.md); 'all' adds earlier
 * investigations on the demo's Nesterov outer step. --add defines more without
 * recompiling.
 *
 * Variants run in parallel (--jobs, default: online CPUs), one trainer thread each;
 * everything is seeded from the policy, so the results do not depend on --jobs or the
 * machine's load. --curve N prints every variant's loss after every N-th round (one
 * evaluation each: slower).
 *
 * --diloco (issue 17, bench/README.md "DiLoCo"): instead of variants, a grid of cells at
 * equal total inner steps T per member (default 500): the synchronous baseline "sync"
 * (H = 1, dense fp32 uplink, fedavg lr 1: every round each member takes one AdamW step
 * from the global model, with its own moments, and the new global model is the
 * token-weighted mean of the members' models -- data-parallel AdamW that averages
 * updates, not gradients), then every H (--H, default 5,20,100,500; each must divide T)
 * x uplink (--uplink, builtin variant names, default dense and the policy's 1%+ef) x
 * outer step (--outer, each item KIND or KIND:LR for another outer lr, e.g. nesterov:0.4,
 * the table's label then: fedavg lr 1, nesterov lr 0.7 momentum 0.9, fedadam with the
 * policies' defaults lr 0.01, beta1 0.9, beta2 0.99, eps 1e-3), each T / H rounds of H
 * steps. One row per cell: outer, H, uplink, rounds, final validation loss, loss vs sync,
 * uplink bytes per member over the run, and the byte ratio to sync (H x the codec's
 * ratio). Round 1 of each H is trained once and shared by its cells (struct
 * first_round): exactly what each cell would compute, at a sixth of the cost for H = T.
 * --no-sync leaves the baseline out (to split the grid over runs).
 *
 * --warm-start W (DiLoCo's regime: it starts from a pre-trained model): before the grid,
 * W rounds of the sync baseline's training (H = 1, dense fp32, fedavg lr 1, three fresh
 * AdamW trainers, exact downlink) from the round-0 model; its final model, and nothing
 * else, carries over: every cell, sync included, starts from it with fresh trainers
 * (AdamW moments and step count reset, as DiLoCo's workers start; fresh error-feedback
 * residuals and outer state) and trains T more steps per member, the inner lr constant
 * (the policy's lr, as without a warm start; its warm-up steps are not simulated), and
 * round r of a cell draws the batches of round W + r, never the warm-up's. The warm
 * start is computed once per run; --warm-start-file F saves it (written whole, then
 * renamed) or, when F exists, reads it instead, refusing a file made for another W, model
 * size, round-0 model or training settings (the file's layout is above warm_settings()). Bytes
 * and the ratio count the T steps after the warm start only (the warm-up is the same for
 * every cell). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "aggregate/outer.h"
#include "crypto/digest.h"
#include "model/gpt2.h"
#include "model/trainer.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "worker/data.h"
#include "bench/lib/fedsim.h"

#define MAX_MEMBERS 8
#define MAX_ROUNDS 1000

/* --diloco: round 1 is the same in every cell of one H (the same initial model, data,
 * seeds and fresh trainers), so it is trained once per H and shared: the members'
 * pseudo-gradients, tokens and AdamW state after it. A cell that uses it computes
 * exactly what it would have computed itself (the trainer is deterministic, one thread,
 * and the sampler is reseeded every round). */
struct first_round {
    float *delta[MAX_MEMBERS];   /* θ_0 − θ_local of round 1, n floats */
    uint64_t tokens[MAX_MEMBERS];
    char state[MAX_MEMBERS][4200];   /* trainer_save_state file ("" when not needed) */
    int ready;
};

/* One uplink configuration. Everything not named here comes from the policy. */
struct variant {
    char name[32];
    char what[200];
    uint32_t block, k;       /* k >= block: dense */
    enum codec_quant quant;
    int zstd, ef;
    uint32_t dense_warmup;   /* first rounds sent dense (same quant and zstd) */
    int outer;               /* -1: the policy's outer optimizer, else enum outer_kind */
    float outer_lr, outer_momentum;
    int set;                 /* 1: the five runs, 2: what the knobs do, 0: other */
    /* The policy's sparse-uplink knobs (policies/README.md) unless PLAIN: */
    int plain;               /* 1: decay 1, average members, sparse_scale 1 */
    float decay;             /* > 0: error_feedback_decay instead of the policy's */
    int average;             /* >= 0: enum policy_average instead of the policy's */
    float scale;             /* > 0: sparse_scale instead of the policy's */
    /* Set by --diloco's cells (0: as without them): */
    float beta1, beta2, tau; /* fedadam with outer >= 0: > 0 instead of outer_init's */
    uint32_t rounds, steps;  /* > 0: instead of --rounds and --steps */
    struct first_round *first;   /* non-NULL: round 1 shared with the cells of the same H */
    int capture;             /* 1: train round 1 into first, then stop (no result) */
    float *final;            /* non-NULL: the final global model is copied here (n floats) */
    char outer_label[24];    /* --diloco's table: the outer step, with :LR when not its default */
};

#define POLICY_OUTER -1, 0, 0
#define FEDAVG(lr) OUTER_FEDAVG, lr, 0
#define NESTEROV(lr, mu) OUTER_NESTEROV, lr, mu
#define GRID 0, 0, 0, 0, 0, 0, 0, 0, ""   /* no --diloco cell settings */
#define KNOBS 0, 0, -1, 0, GRID /* the policy's decay, average and sparse_scale */
#define PLAIN 1, 0, -1, 0, GRID /* none of them: plain error feedback and averaging */

/* set 1: the five runs on the policy (default policies/examples/sparse.yaml:
 * blocks of 4096, outer fedavg, error_feedback_decay 0.9, average senders, sparse_scale
 * 2); set 2: the same without those knobs, and in blocks of 65536; set 0: earlier
 * investigations, on the demo's Nesterov outer step (bench/README.md). */
static const struct variant builtin[] = {
    {"dense", "compression off: dense fp32, no zstd",
     65536, 65536, CODEC_QUANT_FP32, 0, 0, 0, POLICY_OUTER, 1, KNOBS},
    {"1%", "top-k 1% (B 4096, k 41), int8 + zstd 3, no error feedback",
     4096, 41, CODEC_QUANT_INT8, 3, 0, 0, POLICY_OUTER, 1, KNOBS},
    {"1%+ef", "top-k 1% (B 4096, k 41), int8 + zstd 3, error feedback",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 1, KNOBS},
    {"0.3%", "top-k 0.3% (B 4096, k 12), int8 + zstd 3, no error feedback",
     4096, 12, CODEC_QUANT_INT8, 3, 0, 0, POLICY_OUTER, 1, KNOBS},
    {"0.3%+ef", "top-k 0.3% (B 4096, k 12), int8 + zstd 3, error feedback",
     4096, 12, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 1, KNOBS},

    {"1%+ef/plain", "1%+ef with plain error feedback and averaging (decay 1, average "
     "members, scale 1)", 4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, PLAIN},
    {"1%+ef/decay", "1%+ef with the residual's decay only (average members, scale 1)",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, 0, 0, POLICY_AVERAGE_MEMBERS, 1, GRID},
    {"1%+ef/senders", "1%+ef with average senders only (decay 1, scale 1)",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, 0, 1, POLICY_AVERAGE_SENDERS, 1, GRID},
    {"1%+ef/64k", "1%+ef in blocks of 65536 (k 656)",
     65536, 656, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, KNOBS},
    {"0.3%+ef/plain", "0.3%+ef with plain error feedback and averaging",
     4096, 12, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, PLAIN},

    {"n/dense", "dense fp32 on the demo's outer step (Nesterov lr 0.7, momentum 0.9)",
     65536, 65536, CODEC_QUANT_FP32, 0, 0, 0, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"n/1%+ef", "top-k 1% (B 4096, k 41), int8 + zstd 3, error feedback, Nesterov",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"n/1%+ef+w1", "n/1%+ef after one dense int8 warm-up round",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 1, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"n/0.3%+ef", "top-k 0.3% (B 4096, k 12), int8 + zstd 3, error feedback, Nesterov",
     4096, 12, CODEC_QUANT_INT8, 3, 1, 0, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"dense-int8", "dense int8 + zstd 3 (no top-k), no error feedback",
     65536, 65536, CODEC_QUANT_INT8, 3, 0, 0, POLICY_OUTER, 0, KNOBS},
    {"1.5%i4+ef", "top-k 1.5% (B 4096, k 62), int4 + zstd 3 (about the bytes of 1% int8), "
     "error feedback", 4096, 62, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, KNOBS},
    {"0.6%i4+ef", "top-k 0.6% (B 4096, k 25), int4 + zstd 3 (about the bytes of 0.3% int8), "
     "error feedback", 4096, 25, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, KNOBS},
    {"6%+ef", "top-k 6.25% (B 4096, k 256), int8 + zstd 3, error feedback",
     4096, 256, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 0, KNOBS},
    {"2%i4+ef/decay", "top-k 2% (B 4096, k 82), int4 + zstd 3, error feedback with the "
     "residual's decay only (average members, scale 1): --diloco's Nesterov uplink",
     4096, 82, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, 0, 0, POLICY_AVERAGE_MEMBERS, 1, GRID},
    {"2.4%i4+ef/decay", "top-k 2.4% (B 4096, k 100), int4 + zstd 3, error feedback with the "
     "residual's decay only (average members, scale 1): the densest near 10,000x at H = 100",
     4096, 100, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, 0, 0, POLICY_AVERAGE_MEMBERS, 1, GRID},
    {"4.9%i4+ef/decay", "top-k 4.9% (B 4096, k 200), int4 + zstd 3, error feedback with the "
     "residual's decay only (average members, scale 1): about 10,000x at H = 200",
     4096, 200, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, 0, 0, POLICY_AVERAGE_MEMBERS, 1, GRID},
    {"demo-uplink", "the demo policy's own uplink: B 1024, k 64 (6.25%), int8 + zstd 3, error "
     "feedback, one dense warm-up round, Nesterov", 1024, 64, CODEC_QUANT_INT8, 3, 1, 1,
     NESTEROV(0.7f, 0.9f), 0, PLAIN},
};
#define N_BUILTIN (sizeof builtin / sizeof builtin[0])
#define MAX_VARIANTS 64

/* --add NAME:key=value,...: a variant of one's own, starting from 1%+ef. Keys: block,
 * k, density, quant (fp32|int8|fp16|fp8|int4), zstd, ef, warmup, decay, average
 * (members|senders), scale, outer (policy|fedavg|nesterov|fedadam), lr, momentum. */
static int parse_variant(const char *spec, struct variant *v)
{
    *v = builtin[2];
    v->set = 0;
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nl == 0 || nl >= sizeof v->name)
        return -1;
    memcpy(v->name, spec, nl);
    v->name[nl] = 0;
    snprintf(v->what, sizeof v->what, "1%%+ef with %s", colon ? colon + 1 : "nothing changed");
    if (!colon)
        return 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", colon + 1);
    double density = 0;
    for (char *save, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return -1;
        *eq = 0;
        const char *key = kv, *val = eq + 1;
        char *end;
        double x = strtod(val, &end);
        int num = end != val && *end == 0;
        if (!strcmp(key, "block") && num) v->block = (uint32_t)x;
        else if (!strcmp(key, "k") && num) v->k = (uint32_t)x;
        else if (!strcmp(key, "density") && num) density = x;
        else if (!strcmp(key, "zstd") && num) v->zstd = (int)x;
        else if (!strcmp(key, "ef") && num) v->ef = x != 0;
        else if (!strcmp(key, "warmup") && num) v->dense_warmup = (uint32_t)x;
        else if (!strcmp(key, "decay") && num && x > 0 && x <= 1) v->decay = (float)x;
        else if (!strcmp(key, "scale") && num && x > 0) v->scale = (float)x;
        else if (!strcmp(key, "average") && !strcmp(val, "members"))
            v->average = POLICY_AVERAGE_MEMBERS;
        else if (!strcmp(key, "average") && !strcmp(val, "senders"))
            v->average = POLICY_AVERAGE_SENDERS;
        else if (!strcmp(key, "lr") && num) v->outer_lr = (float)x;
        else if (!strcmp(key, "momentum") && num) v->outer_momentum = (float)x;
        else if (!strcmp(key, "quant")) {
            int q;
            for (q = 0; q < CODEC_QUANT_COUNT; q++)
                if (!strcmp(val, codec_quant_name((enum codec_quant)q)))
                    break;
            if (q == CODEC_QUANT_COUNT)
                return -1;
            v->quant = (enum codec_quant)q;
        } else if (!strcmp(key, "outer")) {
            if (!strcmp(val, "policy")) v->outer = -1;
            else if (!strcmp(val, "fedavg")) v->outer = OUTER_FEDAVG;
            else if (!strcmp(val, "nesterov")) v->outer = OUTER_NESTEROV;
            else if (!strcmp(val, "fedadam")) v->outer = OUTER_FEDADAM;
            else return -1;
        } else
            return -1;
    }
    if (density > 0)
        v->k = (uint32_t)ceil(density * v->block);
    if (v->outer >= 0 && v->outer_lr == 0)
        v->outer_lr = 1.0f;
    struct codec_params cp = {CODEC_FORMAT_VERSION, v->block, v->k < v->block ? v->k : v->block,
                              v->quant, v->zstd, v->ef};
    return codec_params_validate(&cp, NULL, 0) == 0 ? 0 : -1;
}

struct sim {
    struct policy policy;
    struct policy_round_plan first;   /* round 1's plan: the model and the trainer options */
    size_t n;
    int n_members;
    char corpus[MAX_MEMBERS][4096];
    uint32_t rounds, steps;
    int downlink, curve;        /* curve: evaluate after every curve-th round (0: never) */
    /* --warm-start: every run starts from this model (n floats) instead of the policy's
     * round-0 model, with fresh trainers (AdamW moments and step count zero), and its
     * round r draws the batches of round round_base + r, so that it never reuses the
     * warm-up's (round_base = W: the runs continue the warm-up's round numbering). */
    const float *start;
    uint32_t round_base;
};

struct result {
    int rc;
    char why[600];
    double loss;                   /* final: mean over members */
    double member_loss[MAX_MEMBERS];
    double bytes_all, bytes_sparse; /* mean payload bytes per round per member */
    double bytes_run;              /* payload bytes per member over the whole run */
    double curve[MAX_ROUNDS];
    double down_bytes;             /* --downlink: mean bytes per round */
    double kept;                   /* mean over sparse payloads of |decoded|^2 / |delta + e|^2 */
    double seconds;
};

static int fail(struct result *r, int rc, const char *fmt, const char *what)
{
    r->rc = rc ? rc : -1;
    snprintf(r->why, sizeof r->why, fmt, what);
    return r->rc;
}

/* Mean validation loss of params over the members' held-out text. */
static int evaluate(const struct sim *s, struct trainer **tr, struct data **dt,
                    const float *params, double *mean, double *per_member)
{
    double sum = 0;
    for (int m = 0; m < s->n_members; m++) {
        const uint8_t *val;
        size_t len;
        float loss;
        int rc = trainer_set_params(tr[m], params, s->n);
        if (rc == 0)
            rc = data_validation(dt[m], 0, &val, &len);
        if (rc == 0)
            rc = trainer_evaluate(tr[m], val, len, 0, &loss);
        if (rc != 0)
            return rc;
        if (per_member)
            per_member[m] = loss;
        sum += loss;
    }
    *mean = sum / s->n_members;
    return 0;
}

static int simulate(const struct sim *s, const struct variant *v, struct result *res)
{
    const struct policy *p = &s->policy;
    const size_t n = s->n;
    const uint32_t rounds = v->rounds ? v->rounds : s->rounds;
    const uint32_t steps = v->steps ? v->steps : s->steps;
    const double t0 = fedsim_now();
    struct trainer *tr[MAX_MEMBERS] = {0};
    struct data *dt[MAX_MEMBERS] = {0};
    float *residual[MAX_MEMBERS] = {0};
    float *theta = malloc(n * sizeof(float)), *acc = malloc(n * sizeof(float));
    float *local = malloc(n * sizeof(float)), *prev = malloc(n * sizeof(float));
    float *down_residual = calloc(n, sizeof(float)), *scratch = malloc(n * sizeof(float));
    const struct policy_link *up = &p->compression.uplink;
    const float decay = v->plain ? 1.0f : v->decay > 0 ? v->decay : (float)up->error_feedback_decay;
    const int senders = v->plain ? 0 : v->average >= 0 ? v->average == POLICY_AVERAGE_SENDERS
                                                       : up->average == POLICY_AVERAGE_SENDERS;
    const float scale = v->plain ? 1.0f : v->scale > 0 ? v->scale : (float)up->sparse_scale;
    float *support = senders ? malloc(n * sizeof(float)) : NULL;
    struct outer_opt outer = {0};
    int rc = 0;
    uint64_t bytes_all = 0, bytes_sparse = 0, down_bytes = 0, sparse_rounds = 0;
    memset(res, 0, sizeof *res);
    double kept_sum = 0;
    if (!theta || !acc || !local || !prev || !down_residual || !scratch || (senders && !support)) {
        fail(res, -1, "%s", "out of memory");
        goto out;
    }
    if (s->start)
        memcpy(theta, s->start, n * sizeof(float));
    else if ((rc = gpt2_init_params(&s->first.model, s->first.seed, theta)) != 0) {
        fail(res, rc, "gpt2_init_params: %s", model_strerror(rc));
        goto out;
    }

    const struct policy_training *t = &p->training;
    const struct policy_round_plan *f = &s->first;
    struct trainer_opts to;
    fedsim_trainer_options(f, &to);
    for (int m = 0; m < s->n_members; m++) {
        if ((rc = trainer_create(&s->first.model, &to, &tr[m])) != 0) {
            fail(res, rc, "trainer_create: %s", model_strerror(rc));
            goto out;
        }
        uint8_t h[32];
        const char *id = p->participation.members[m];
        crypto_blake2b256(id, strlen(id), h);
        struct data_opts dopt = {.val_fraction = p->data.validation_fraction,
                                 .seq_len = to.seq_len};
        memcpy(&dopt.seed, h, sizeof dopt.seed);
        char why[512];
        if ((rc = data_open(s->corpus[m], &dopt, &dt[m], why, sizeof why)) != 0) {
            fail(res, rc, "%s", why);
            goto out;
        }
        if (v->ef && !(residual[m] = calloc(n, sizeof(float)))) {
            fail(res, -1, "%s", "out of memory");
            goto out;
        }
    }

    enum outer_kind ok = v->outer >= 0 ? (enum outer_kind)v->outer
                       : t->outer.kind == POLICY_OUTER_NESTEROV ? OUTER_NESTEROV
                       : t->outer.kind == POLICY_OUTER_FEDADAM ? OUTER_FEDADAM : OUTER_FEDAVG;
    float olr = v->outer >= 0 ? v->outer_lr : (float)t->outer.lr;
    float omu = v->outer >= 0 ? v->outer_momentum : (float)t->outer.momentum;
    if ((rc = outer_init(&outer, ok, n, olr, omu)) != 0) {
        fail(res, rc, "%s", "outer_init failed");
        goto out;
    }
    if (ok == OUTER_FEDADAM && v->outer < 0) {
        outer.beta1 = (float)t->outer.beta1;
        outer.beta2 = (float)t->outer.beta2;
        outer.tau = (float)t->outer.eps;
    } else if (ok == OUTER_FEDADAM && v->beta1 > 0) {
        outer.beta1 = v->beta1;
        outer.beta2 = v->beta2;
        outer.tau = v->tau;
    }
    for (uint32_t r = 1; r <= rounds; r++) {
        struct codec_params cp = {CODEC_FORMAT_VERSION, v->block, v->k, v->quant, v->zstd, v->ef};
        if (cp.k_per_block > cp.block_size || r <= v->dense_warmup)
            cp.k_per_block = cp.block_size;
        const int sparse = cp.k_per_block < cp.block_size;
        memset(acc, 0, n * sizeof(float));
        if (support)
            memset(support, 0, n * sizeof(float));
        double wsum = 0;
        for (int m = 0; m < s->n_members; m++) {
            struct trainer_stats st = {0};
            struct first_round *fr = r == 1 ? v->first : NULL;
            if (fr && fr->ready) {   /* round 1 as the capture trained it */
                memcpy(local, fr->delta[m], n * sizeof(float));
                st.tokens = fr->tokens[m];
                if (fr->state[m][0] && (rc = trainer_load_state(tr[m], fr->state[m])) != 0) {
                    fail(res, rc, "trainer_load_state: %s", model_strerror(rc));
                    goto out;
                }
            } else {
                if ((rc = trainer_set_params(tr[m], theta, n)) != 0) {
                    fail(res, rc, "trainer_set_params: %s", model_strerror(rc));
                    goto out;
                }
                /* The worker's reseed (worker/worker.c): the model seed, round and size. */
                const uint64_t dr = (uint64_t)s->round_base + r;   /* --warm-start: after it */
                data_reseed(dt[m], p->model.seed ^ (dr * 0x9e3779b97f4a7c15ULL) ^ n);
                rc = trainer_train_steps(tr[m], (int)steps, data_next_batch, dt[m], NULL, NULL,
                                         &st);
                if (rc == 0)
                    rc = trainer_get_params(tr[m], local, n);
                if (rc != 0) {
                    fail(res, rc, "training: %s", model_strerror(rc));
                    goto out;
                }
                for (size_t i = 0; i < n; i++)
                    local[i] = theta[i] - local[i];   /* pseudo-gradient */
            }
            if (fr && v->capture) {
                memcpy(fr->delta[m], local, n * sizeof(float));
                fr->tokens[m] = st.tokens;
                if (fr->state[m][0] && (rc = trainer_save_state(tr[m], fr->state[m])) != 0) {
                    fail(res, rc, "trainer_save_state: %s", model_strerror(rc));
                    goto out;
                }
                continue;
            }
            if (v->ef && decay != 1.0f)   /* as worker/worker.c does */
                for (size_t i = 0; i < n; i++)
                    residual[m][i] *= decay;
            double sent_norm2 = 0, norm2 = 0;   /* what the codec was asked to carry */
            for (size_t i = 0; i < n; i++) {
                double x = (double)local[i] + (v->ef ? residual[m][i] : 0.0);
                norm2 += x * x;
            }
            uint8_t *payload;
            size_t len;
            if ((rc = codec_encode(local, n, &cp, residual[m], &payload, &len)) != 0) {
                fail(res, rc, "codec_encode: %s", codec_strerror(rc));
                goto out;
            }
            bytes_all += len;
            char why[200];
            if (sparse) {
                bytes_sparse += len;
                memset(scratch, 0, n * sizeof(float));
                rc = codec_decode_accumulate(payload, len, n, 1.0f, scratch, why, sizeof why);
                for (size_t i = 0; rc == 0 && i < n; i++)
                    sent_norm2 += (double)scratch[i] * scratch[i];
                kept_sum += norm2 > 0 ? sent_norm2 / norm2 : 0;
            }
            if (rc == 0)
                rc = codec_decode_accumulate_support(payload, len, n, (float)st.tokens, acc,
                                                     support, why, sizeof why);
            free(payload);
            if (rc != 0) {
                fail(res, rc, "codec_decode_accumulate: %s", why);
                goto out;
            }
            wsum += (double)st.tokens;
        }
        if (v->capture)
            goto out;   /* round 1 is in v->first */
        sparse_rounds += sparse;
        /* As coordinator/experiment.c closes a round. */
        outer_average(acc, sparse ? support : NULL, n, wsum, sparse ? scale : 1.0f);
        memcpy(prev, theta, n * sizeof(float));
        outer_step(&outer, theta, acc);
        struct policy_round_plan plan = { 0 };   /* the coordinator's downlink of round r */
        char why[300];
        if (s->downlink && policy_round_plan(p, r, &plan, why, sizeof why) != 0) {
            fail(res, -1, "%s", why);
            goto out;
        }
        if (s->downlink && plan.downlink_on) {
            const struct codec_params *dl = &plan.downlink;
            for (size_t i = 0; i < n; i++)
                acc[i] = theta[i] - prev[i];
            uint8_t *payload;
            size_t len;
            rc = codec_encode(acc, n, dl, dl->error_feedback ? down_residual : NULL, &payload,
                              &len);
            if (rc == 0) {
                memcpy(theta, prev, n * sizeof(float));
                rc = codec_decode_accumulate(payload, len, n, 1.0f, theta, why, sizeof why);
                free(payload);
                down_bytes += len;
            }
            if (rc != 0) {
                fail(res, rc, "downlink: %s", codec_strerror(rc));
                goto out;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (!isfinite(theta[i])) {
                fail(res, -1, "%s", "the global model became non-finite");
                goto out;
            }
        if (rounds >= 20 && r % (rounds / 10) == 0 && r < rounds)   /* long cells: progress */
            fprintf(stderr, "  %-15s round %u of %u, %.0f s\n", v->name, r, rounds,
                    fedsim_now() - t0);
        if (s->curve && r < MAX_ROUNDS && (r % (uint32_t)s->curve == 0 || r == rounds) &&
            (rc = evaluate(s, tr, dt, theta, &res->curve[r], NULL)) != 0) {
            fail(res, rc, "evaluate: %s", model_strerror(rc));
            goto out;
        }
    }
    if ((rc = evaluate(s, tr, dt, theta, &res->loss, res->member_loss)) != 0) {
        fail(res, rc, "evaluate: %s", model_strerror(rc));
        goto out;
    }
    res->bytes_all = (double)bytes_all / ((double)rounds * s->n_members);
    res->bytes_run = (double)bytes_all / s->n_members;
    res->bytes_sparse = sparse_rounds
        ? (double)bytes_sparse / ((double)sparse_rounds * s->n_members) : res->bytes_all;
    res->down_bytes = (double)down_bytes / rounds;
    res->kept = sparse_rounds ? kept_sum / ((double)sparse_rounds * s->n_members) : 1.0;
    if (v->final)
        memcpy(v->final, theta, n * sizeof(float));
out:
    res->seconds = fedsim_now() - t0;
    for (int m = 0; m < s->n_members; m++) {
        trainer_destroy(tr[m]);
        data_close(dt[m]);
        free(residual[m]);
    }
    outer_free(&outer);
    free(theta);
    free(acc);
    free(local);
    free(prev);
    free(down_residual);
    free(scratch);
    free(support);
    return res->rc;
}

/* ---- jobs --------------------------------------------------------------------- */

struct pool {
    const struct sim *sim;
    const struct variant **queued;
    struct result *results;
    pthread_mutex_t lock;
};

static void run_variant(void *arg, int at)
{
    struct pool *pl = arg;
    const size_t i = (size_t)at;
    simulate(pl->sim, pl->queued[i], &pl->results[i]);
    pthread_mutex_lock(&pl->lock);
    const struct result *r = &pl->results[i];
    if (r->rc)
        fprintf(stderr, "  %-15s failed: %s\n", pl->queued[i]->name, r->why);
    else if (pl->queued[i]->capture)
        fprintf(stderr, "  %-15s trained, %.1f s\n", pl->queued[i]->name, r->seconds);
    else
        fprintf(stderr, "  %-15s loss %.4f, %.0f bytes/round/member, %.1f s\n",
                pl->queued[i]->name, r->loss, r->bytes_all, r->seconds);
    pthread_mutex_unlock(&pl->lock);
}

/* ---- --diloco: outer optimizer x H x uplink at equal total inner steps --------- */

#define DILOCO_MAX_LIST 16
#define DILOCO_MAX_OUTER 6
#define DILOCO_MAX_CELLS (1 + DILOCO_MAX_LIST * DILOCO_MAX_LIST * DILOCO_MAX_OUTER)
#define DILOCO_MAX_STEPS 1000000L

/* The grid. Each cell trains T inner steps per member: T / H rounds of H steps. */
struct diloco {
    long total;                                  /* T */
    int n_h, n_outer, n_up;
    uint32_t h[DILOCO_MAX_LIST];
    enum outer_kind outer[DILOCO_MAX_OUTER];
    float outer_lr[DILOCO_MAX_OUTER];            /* > 0: KIND:LR, that lr; 0: the kind's */
    const struct variant *up[DILOCO_MAX_LIST];   /* builtin variants: their uplink */
    int no_sync;                                 /* 1: no baseline cell (--no-sync) */
    long warm;                                   /* --warm-start W (0: none) */
    const char *warm_file;                       /* --warm-start-file F (NULL: none) */
};

/* The outer steps of the table (issue 17): fedavg lr 1; DiLoCo's Nesterov, lr 0.7 and
 * momentum 0.9; fedadam with the policies' defaults (policies/README.md, policy.c):
 * lr 0.01, beta1 0.9, beta2 0.99, eps (tau) 1e-3. */
static void diloco_label(const struct variant *v, int with_lr, char *out, size_t size)
{
    if (with_lr)
        snprintf(out, size, "%s:%g", outer_kind_name((enum outer_kind)v->outer), v->outer_lr);
    else
        snprintf(out, size, "%s", outer_kind_name((enum outer_kind)v->outer));
}

static void diloco_outer(struct variant *v, enum outer_kind k)
{
    v->outer = (int)k;
    v->outer_lr = k == OUTER_NESTEROV ? 0.7f : k == OUTER_FEDADAM ? 0.01f : 1.0f;
    v->outer_momentum = k == OUTER_NESTEROV ? 0.9f : 0.0f;
    v->beta1 = k == OUTER_FEDADAM ? 0.9f : 0.0f;
    v->beta2 = k == OUTER_FEDADAM ? 0.99f : 0.0f;
    v->tau = k == OUTER_FEDADAM ? 1e-3f : 0.0f;
}

/* A whole decimal number in [1, max]; -1 otherwise. */
static long parse_count(const char *arg, long max)
{
    char *end;
    errno = 0;
    long x = strtol(arg, &end, 10);
    return end == arg || *end || errno || x < 1 || x > max ? -1 : x;
}

/* One of --H, --outer, --uplink: a comma-separated list, each item at most once.
 * 0, or 2 after telling stderr what is wrong. */
static int diloco_list(struct diloco *d, char opt, const char *arg)
{
    const char *name = opt == 'H' ? "--H" : opt == 'o' ? "--outer" : "--uplink";
    char buf[1024];
    if (strlen(arg) >= sizeof buf || !*arg) {
        fprintf(stderr, "compression: %s: a comma-separated list, 1..%zu characters\n", name,
                sizeof buf - 1);
        return 2;
    }
    snprintf(buf, sizeof buf, "%s", arg);
    int *count = opt == 'H' ? &d->n_h : opt == 'o' ? &d->n_outer : &d->n_up;
    *count = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*count == (opt == 'o' ? DILOCO_MAX_OUTER : DILOCO_MAX_LIST)) {
            fprintf(stderr, "compression: %s: at most %d items\n", name,
                    opt == 'o' ? DILOCO_MAX_OUTER : DILOCO_MAX_LIST);
            return 2;
        }
        int dup = 0;
        if (opt == 'H') {
            long h = parse_count(tok, DILOCO_MAX_STEPS);
            if (h < 0) {
                fprintf(stderr, "compression: --H '%s': local steps per round, a whole number "
                        "1..%ld\n", tok, DILOCO_MAX_STEPS);
                return 2;
            }
            for (int i = 0; i < *count; i++)
                dup |= d->h[i] == (uint32_t)h;
            d->h[*count] = (uint32_t)h;
        } else if (opt == 'o') {
            enum outer_kind k;
            float lr = 0;   /* KIND:LR: that outer lr, in (0, 10] as a policy's */
            char *colon = strchr(tok, ':');
            if (colon) {
                char *end;
                double x = strtod(colon + 1, &end);
                if (end == colon + 1 || *end || !(x > 0 && x <= 10)) {
                    fprintf(stderr, "compression: --outer '%s': the lr after ':' is a number in "
                            "(0, 10]\n", tok);
                    return 2;
                }
                lr = (float)x;
                *colon = 0;
            }
            if (!strcmp(tok, "fedavg")) k = OUTER_FEDAVG;
            else if (!strcmp(tok, "nesterov")) k = OUTER_NESTEROV;
            else if (!strcmp(tok, "fedadam")) k = OUTER_FEDADAM;
            else {
                fprintf(stderr, "compression: --outer '%s': fedavg, nesterov or fedadam, each "
                        "optionally :LR\n", tok);
                return 2;
            }
            for (int i = 0; i < *count; i++)
                dup |= d->outer[i] == k && d->outer_lr[i] == lr;
            if (colon)
                *colon = ':';
            d->outer[*count] = k;
            d->outer_lr[*count] = lr;
        } else {
            size_t i;
            for (i = 0; i < N_BUILTIN && strcmp(builtin[i].name, tok); i++)
                ;
            if (i == N_BUILTIN) {
                fprintf(stderr, "compression: --uplink '%s': no variant of that name "
                        "(--variants list names them)\n", tok);
                return 2;
            }
            for (int j = 0; j < *count; j++)
                dup |= d->up[j] == &builtin[i];
            d->up[*count] = &builtin[i];
        }
        if (dup) {
            fprintf(stderr, "compression: %s: '%s' given twice\n", name, tok);
            return 2;
        }
        (*count)++;
    }
    if (*count == 0) {
        fprintf(stderr, "compression: %s: empty list\n", name);
        return 2;
    }
    return 0;
}

/* Every H must divide T, so that every cell trains the same T inner steps. */
static int diloco_check(const struct diloco *d)
{
    for (int i = 0; i < d->n_h; i++)
        if (d->total % d->h[i] != 0) {
            fprintf(stderr, "compression: --H %u does not divide --total-steps %ld (each cell "
                    "runs T / H rounds of H steps: equal total inner steps)\n", d->h[i],
                    d->total);
            return 2;
        }
    return 0;
}

/* ---- --warm-start: W synchronous steps before the grid --------------------------- */

/* --warm-start-file layout (this machine's byte order: a cache for runs on one machine,
 * not an interchange format):
 *   0   8  magic "AULACWS1"
 *   8   8  W, uint64: the synchronous steps it took
 *   16  8  n, uint64: parameters
 *   24  32 BLAKE2b-256 of the policy's round-0 model (n fp32): the model and its seed
 *   56  32 BLAKE2b-256 of the settings line warm_settings() writes (members, batch,
 *          sequence length, inner optimizer, validation fraction)
 *   88  8  the warm model's mean validation loss, double
 *   96  4n the warm model, fp32
 *   96+4n 32 BLAKE2b-256 of bytes [0, 96 + 4n)
 * The corpora's contents are not recorded: a file is reused only with the corpora it was
 * made from (the caller's responsibility, said in --help). */
#define WARM_MAGIC "AULACWS1"
#define WARM_HEAD 96

static void warm_settings(const struct sim *s, uint8_t out[32])
{
    const struct policy *p = &s->policy;
    const struct policy_training *t = &p->training;
    char line[2048];
    int len = snprintf(line, sizeof line, "batch %u seq %u lr %.9g wd %.9g b1 %.9g b2 %.9g "
                       "val %.9g members", t->batch_size, t->seq_len, t->inner.lr,
                       t->inner.weight_decay, t->inner.beta1, t->inner.beta2,
                       p->data.validation_fraction);
    for (int m = 0; m < s->n_members && len > 0 && (size_t)len < sizeof line; m++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %s",
                        p->participation.members[m]);
    crypto_blake2b256(line, len > 0 && (size_t)len < sizeof line ? (size_t)len : sizeof line,
                      out);
}

/* The header's identity fields for this run: W, n and the two digests. */
static int warm_head(const struct sim *s, long w, uint8_t head[WARM_HEAD])
{
    float *init = malloc(s->n * sizeof(float));
    if (!init)
        return -1;
    int rc = gpt2_init_params(&s->first.model, s->first.seed, init);
    memset(head, 0, WARM_HEAD);
    memcpy(head, WARM_MAGIC, 8);
    uint64_t u = (uint64_t)w;
    memcpy(head + 8, &u, 8);
    u = s->n;
    memcpy(head + 16, &u, 8);
    if (rc == 0)
        crypto_blake2b256(init, s->n * sizeof(float), head + 24);
    warm_settings(s, head + 56);
    free(init);
    return rc == 0 ? 0 : -1;
}

/* Reads F into theta and *loss. 0; 1: F does not exist; -1 after telling stderr why F
 * cannot be used (unreadable, corrupt, or made for another W, model or settings). */
static int warm_read(const char *path, const struct sim *s, long w, float *theta, double *loss)
{
    uint8_t want[WARM_HEAD], head[WARM_HEAD], sum[32], got[32];
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT)
        return 1;
    if (!f) {
        fprintf(stderr, "compression: --warm-start-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    const char *bad = NULL;
    uint64_t fw = 0, fn = 0;
    if (warm_head(s, w, want) != 0)
        bad = "cannot compute the round-0 model";
    else if (fread(head, 1, WARM_HEAD, f) != WARM_HEAD || memcmp(head, WARM_MAGIC, 8))
        bad = "not a warm-start file (no AULACWS1 header)";
    if (!bad) {
        memcpy(&fw, head + 8, 8);
        memcpy(&fn, head + 16, 8);
        if (fn != s->n)
            bad = "made for a model of another size";
        else if (memcmp(head + 24, want + 24, 32))
            bad = "made from another round-0 model (the policy's model or seed differ)";
        else if (memcmp(head + 56, want + 56, 32))
            bad = "made with other members, batch, sequence length, inner optimizer or "
                  "validation fraction";
        else if (fw != (uint64_t)w)
            bad = "";   /* said below, with both numbers */
    }
    if (!bad && (fread(theta, sizeof(float), s->n, f) != s->n || fread(sum, 1, 32, f) != 32 ||
                 fgetc(f) != EOF))
        bad = "truncated or too long";
    if (!bad) {
        uint8_t *all = malloc(WARM_HEAD + s->n * sizeof(float));
        if (!all)
            bad = "out of memory";
        else {
            memcpy(all, head, WARM_HEAD);
            memcpy(all + WARM_HEAD, theta, s->n * sizeof(float));
            crypto_blake2b256(all, WARM_HEAD + s->n * sizeof(float), got);
            free(all);
            if (memcmp(got, sum, 32))
                bad = "corrupt (its checksum does not match)";
        }
    }
    fclose(f);
    if (bad && !*bad) {
        fprintf(stderr, "compression: --warm-start-file %s holds a warm start of %" PRIu64
                " steps, not --warm-start %ld (use another file)\n", path, fw, w);
        return -1;
    }
    if (bad) {
        fprintf(stderr, "compression: --warm-start-file %s: %s\n", path, bad);
        return -1;
    }
    memcpy(loss, head + 88, 8);
    return 0;
}

/* Writes F (via F.tmp and rename: a reader never sees half a file). 0 or -1 (said). */
static int warm_write(const char *path, const struct sim *s, long w, const float *theta,
                      double loss)
{
    uint8_t head[WARM_HEAD], sum[32];
    char tmp[4200];
    uint8_t *all = malloc(WARM_HEAD + s->n * sizeof(float));
    if (!all || warm_head(s, w, head) != 0 ||
        snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(all);
        fprintf(stderr, "compression: --warm-start-file %s: cannot build it\n", path);
        return -1;
    }
    memcpy(head + 88, &loss, 8);
    memcpy(all, head, WARM_HEAD);
    memcpy(all + WARM_HEAD, theta, s->n * sizeof(float));
    crypto_blake2b256(all, WARM_HEAD + s->n * sizeof(float), sum);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(all, 1, WARM_HEAD + s->n * sizeof(float), f) ==
                      WARM_HEAD + s->n * sizeof(float) && fwrite(sum, 1, 32, f) == 32;
    ok = f && fclose(f) == 0 && ok;
    free(all);
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "compression: --warm-start-file %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The warm start: W rounds of the sync baseline (H = 1, dense fp32, fedavg lr 1, three
 * members with fresh AdamW trainers, no downlink compression) from the round-0 model,
 * or F's model when F holds it. theta: n floats. 0 or -1 (said). */
static int warm_start(const struct sim *s, const struct diloco *d, float *theta, double *loss)
{
    if (d->warm_file) {
        int rc = warm_read(d->warm_file, s, d->warm, theta, loss);
        if (rc <= 0) {
            if (rc == 0)
                fprintf(stderr, "warm start: %ld synchronous steps, read from %s: loss %.4f\n",
                        d->warm, d->warm_file, *loss);
            return rc;
        }
    }
    static struct sim ws;   /* the warm-up: the run's simulation without its options */
    ws = *s;
    ws.downlink = 0;
    ws.curve = 0;
    ws.start = NULL;
    ws.round_base = 0;
    struct variant v = builtin[0];
    diloco_outer(&v, OUTER_FEDAVG);
    snprintf(v.name, sizeof v.name, "warm/H1/dense");
    v.rounds = (uint32_t)d->warm;
    v.steps = 1;
    v.final = theta;
    struct result r;
    fprintf(stderr, "warm start: %ld synchronous steps from the round-0 model...\n", d->warm);
    if (simulate(&ws, &v, &r) != 0) {
        fprintf(stderr, "compression: warm start: %s\n", r.why);
        return -1;
    }
    *loss = r.loss;
    fprintf(stderr, "warm start: %ld synchronous steps, loss %.4f, %.1f s\n", d->warm, r.loss,
            r.seconds);
    if (d->warm_file && warm_write(d->warm_file, s, d->warm, theta, r.loss) != 0)
        return -1;
    if (d->warm_file)
        fprintf(stderr, "warm start: saved to %s\n", d->warm_file);
    return 0;
}

static int diloco_run(struct sim *s, const struct diloco *d, long jobs, const char *policy_path,
                      const char *corpus)
{
    static struct variant cells[DILOCO_MAX_CELLS];
    static const struct variant *queued[DILOCO_MAX_CELLS];
    static struct first_round first[DILOCO_MAX_LIST];
    size_t n_cells = 0;
    int rc = 1;
    double warm_loss = 0;
    float *warm = NULL;
    char tmp[] = "/tmp/aulac-diloco.XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "compression: mkdtemp %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    /* --warm-start: once, before every cell (the sync baseline's included). */
    if (d->warm) {
        if (!(warm = malloc(s->n * sizeof(float)))) {
            fprintf(stderr, "compression: out of memory\n");
            goto out;
        }
        if (warm_start(s, d, warm, &warm_loss) != 0)
            goto out;
        s->start = warm;
        s->round_base = (uint32_t)d->warm;
    }
    /* The synchronous baseline: H = 1, dense fp32, fedavg lr 1. */
    if (!d->no_sync) {
        cells[n_cells] = builtin[0];
        diloco_outer(&cells[n_cells], OUTER_FEDAVG);
        snprintf(cells[n_cells].name, sizeof cells[0].name, "sync/H1/dense");
        cells[n_cells].rounds = (uint32_t)d->total;
        cells[n_cells++].steps = 1;
    }
    /* Round 1 of each H, once (struct first_round). */
    struct variant capture[DILOCO_MAX_LIST];
    const struct variant *cq[DILOCO_MAX_LIST];
    struct result cres[DILOCO_MAX_LIST];
    for (int i = 0; i < d->n_h; i++) {
        struct first_round *fr = &first[i];
        for (int m = 0; m < s->n_members; m++) {
            if (!(fr->delta[m] = malloc(s->n * sizeof(float)))) {
                fprintf(stderr, "compression: out of memory\n");
                goto out;
            }
            if (d->total / d->h[i] > 1)   /* later rounds need the AdamW state */
                snprintf(fr->state[m], sizeof fr->state[m], "%s/H%u-%d.safetensors", tmp,
                         d->h[i], m);
        }
        capture[i] = builtin[0];
        snprintf(capture[i].name, sizeof capture[i].name, "round1/H%u", d->h[i]);
        capture[i].rounds = 1;
        capture[i].steps = d->h[i];
        capture[i].first = fr;
        capture[i].capture = 1;
        cq[i] = &capture[i];
    }
    fprintf(stderr, "round 1 of each H, shared by its cells:\n");
    struct pool cp = {.sim = s, .queued = cq, .results = cres};
    pthread_mutex_init(&cp.lock, NULL);
    fedsim_parallel(d->n_h, jobs > 64 ? 64 : (int)jobs, run_variant, &cp);
    for (int i = 0; i < d->n_h; i++)
        first[i].ready = cres[i].rc == 0;   /* else its cells train round 1 themselves */
    for (int i = 0; i < d->n_h; i++)
        for (int u = 0; u < d->n_up; u++)
            for (int o = 0; o < d->n_outer; o++) {
                struct variant *v = &cells[n_cells++];
                *v = *d->up[u];
                diloco_outer(v, d->outer[o]);
                if (d->outer_lr[o] > 0)
                    v->outer_lr = d->outer_lr[o];
                diloco_label(v, d->outer_lr[o] > 0, v->outer_label, sizeof v->outer_label);
                snprintf(v->name, sizeof v->name, "%.12s/H%u/%.12s", v->outer_label, d->h[i],
                         d->up[u]->name);
                snprintf(v->what, sizeof v->what, "%s", d->up[u]->name);   /* the uplink */
                v->rounds = (uint32_t)(d->total / d->h[i]);
                v->steps = d->h[i];
                v->first = first[i].ready ? &first[i] : NULL;
            }
    for (size_t i = 0; i < n_cells; i++)
        queued[i] = &cells[i];

    const struct policy *p = &s->policy;
    printf("bench/compression --diloco: policy %s (%s), %zu parameters (%zu bytes fp32)\n",
           policy_path, p->metadata.name, s->n, 4 * s->n);
    printf("  %d members, corpora %s/{", s->n_members, corpus);
    for (int m = 0; m < s->n_members; m++)
        printf("%s%s", m ? "," : "", p->participation.members[m]);
    printf("}\n  every cell: %ld inner steps per member (T), T / H rounds of H local steps of "
           "%u x %u tokens; inner AdamW lr %g (constant), weight decay %g, its moments kept "
           "across rounds per member (as worker/worker.c keeps its trainer)\n",
           d->total, p->training.batch_size, p->training.seq_len, p->training.inner.lr,
           p->training.inner.weight_decay);
    if (d->warm)
        printf("  warm start: every cell (sync too) starts from the model of %ld synchronous "
               "steps (sync's H = 1 dense training from the round-0 model), validation loss "
               "%.4f, with fresh AdamW moments (reset, as DiLoCo's workers start); the inner "
               "lr stays constant; its batches come after the warm-up's (round numbers go on "
               "from %ld)%s%s\n", d->warm, warm_loss, d->warm, d->warm_file ? "; file " : "",
               d->warm_file ? d->warm_file : "");
    printf("  sync (the baseline): H = 1, dense fp32 uplink, fedavg lr 1: each round every "
           "member takes one AdamW step from the global model and the global model becomes "
           "the token-weighted mean of the members' models (data-parallel AdamW that averages "
           "the members' updates, each member keeping its own moments)\n");
    printf("  outer (KIND:LR: that lr instead): fedavg lr 1; nesterov lr 0.7 momentum 0.9; "
           "fedadam lr 0.01 beta1 0.9 "
           "beta2 0.99 eps 0.001\n  uplinks:");
    for (int u = 0; u < d->n_up; u++)
        printf(" %s (%s)%s", d->up[u]->name, d->up[u]->what, u + 1 < d->n_up ? ";" : "\n");
    const struct policy_link *up = &p->compression.uplink;
    printf("  sparse uplinks: error_feedback_decay %g, average %s, sparse_scale %g (the "
           "policy's, unless the uplink's variant says otherwise)\n", up->error_feedback_decay,
           up->average == POLICY_AVERAGE_SENDERS ? "senders" : "members", up->sparse_scale);
    printf("  downlink: %s; %zu cells, %ld at a time\n",
           s->downlink ? "the policy's compression" : "exact", n_cells, jobs);
    fflush(stdout);

    struct result *results = calloc(n_cells, sizeof *results);
    if (!results)
        goto out;
    fprintf(stderr, "cells:\n");
    struct pool pl = {.sim = s, .queued = queued, .results = results};
    pthread_mutex_init(&pl.lock, NULL);
    const double t0 = fedsim_now();
    fedsim_parallel((int)n_cells, jobs > 64 ? 64 : (int)jobs, run_variant, &pl);
    const double wall = fedsim_now() - t0;

    /* The baseline's bytes: T dense fp32 payloads per member (computed with --no-sync). */
    double sync_bytes = 0;
    {
        struct codec_params cp = {CODEC_FORMAT_VERSION, builtin[0].block, builtin[0].k,
                                  builtin[0].quant, builtin[0].zstd, 0};
        float *zero = calloc(s->n, sizeof(float));
        uint8_t *payload = NULL;
        size_t len = 0;
        if (zero && codec_encode(zero, s->n, &cp, NULL, &payload, &len) == 0)
            sync_bytes = (double)len * (double)d->total;
        free(payload);
        free(zero);
    }
    const struct result *ref = !d->no_sync && results[0].rc == 0 ? &results[0] : NULL;
    if (ref)
        sync_bytes = ref->bytes_run;
    printf("\n%-12s %6s %-12s %7s %9s %8s %16s %9s %s\n", "outer", "H", "uplink", "rounds",
           "val loss", "vs sync", "up bytes/member", "ratio", "goals (H >= 100)");
    int met = 0;
    for (size_t i = 0; i < n_cells; i++) {
        const struct variant *v = queued[i];
        const struct result *r = &results[i];
        const int sync = !d->no_sync && i == 0;
        printf("%-12s %6u %-12s %7u ", sync ? "sync" : v->outer_label,
               v->steps, sync ? "dense" : v->what, v->rounds);
        if (r->rc) {
            printf("failed: %s\n", r->why);
            continue;
        }
        const double gap = ref ? 100.0 * (r->loss - ref->loss) / ref->loss : NAN;
        const double ratio = sync_bytes / r->bytes_run;
        printf("%9.4f", r->loss);
        if (ref)
            printf(" %+7.2f%%", gap);
        else
            printf(" %8s", "-");
        printf(" %16.0f %8.0fx", r->bytes_run, ratio);
        if (!sync && v->steps >= 100) {
            const int loss_ok = ref && gap <= 3.0, bytes_ok = ratio >= 10000.0;
            met += loss_ok && bytes_ok;
            printf(" %s", !ref ? (bytes_ok ? "bytes (loss: no sync run)" : "not bytes")
                          : loss_ok && bytes_ok ? "both" : loss_ok ? "loss only"
                          : bytes_ok ? "bytes only" : "neither");
        }
        printf("\n");
    }
    printf("\nval loss: the final global model's loss (nats/byte) on each member's held-out "
           "text, mean over members; vs sync: against the baseline's; up bytes/member: "
           "payload bytes each member sent over the run; ratio: the baseline's over that "
           "(H x the codec's ratio); goals: within 3 %% of sync (loss), at least 10,000x "
           "fewer uplink bytes (bytes). %d cell(s) at H >= 100 meet both.\n", met);
    printf("wall time %.1f s on %ld job(s) (cells; round 1 of each H before them)\n", wall,
           jobs);
    free(results);
    rc = 0;
out:
    for (int i = 0; i < d->n_h; i++)
        for (int m = 0; m < s->n_members; m++) {
            free(first[i].delta[m]);
            if (first[i].state[m][0])
                unlink(first[i].state[m]);
        }
    rmdir(tmp);
    s->start = NULL;
    free(warm);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: compression [--policy FILE] [--corpus DIR] [--rounds R] [--steps H]\n"
            "                   [--variants LIST|all|list] [--add NAME:key=value,...]\n"
            "                   [--jobs N] [--downlink] [--curve N]\n"
            "       compression --diloco [--total-steps T] [--H LIST] [--outer LIST] [--uplink LIST]\n"
            "                   [--no-sync] [--warm-start W [--warm-start-file F]]\n"
            "                   [--policy FILE] [--corpus DIR] [--jobs N] [--downlink]\n"
            "  --policy FILE   model, data, training and outer settings "
            "(policies/examples/sparse.yaml)\n"
            "  --corpus DIR    DIR/<member> per policy member (build/demo-corpus; "
            "scripts/demo-corpus.sh makes it)\n"
            "  --rounds R      rounds (policy's training.rounds)\n"
            "  --steps H       local steps per round (policy's training.local_steps)\n"
            "  --variants L    comma-separated names; 'all'; 'list' prints them "
            "(default: issue 5's five, then the\n"
            "                  same budgets improved)\n"
            "  --add SPEC      one more variant, from 1%%+ef: NAME:key=value,... with keys block, k,\n"
            "                  density, quant (fp32|int8|fp16|fp8|int4), zstd, ef (0|1), warmup\n"
            "                  (dense rounds), decay (error_feedback_decay), average\n"
            "                  (members|senders), scale (sparse_scale), outer\n"
            "                  (policy|fedavg|nesterov|fedadam), lr, momentum; repeatable\n"
            "  --jobs N        variants run at once (online CPUs)\n"
            "  --downlink      apply the policy's downlink compression (default: exact)\n"
            "  --curve N       print the validation loss after every N-th round\n"
            "                  (a run of 20 rounds or more also says on stderr when each tenth\n"
            "                  of its rounds is done, and how long it has taken)\n"
            "  --diloco        the DiLoCo grid instead of variants: the synchronous baseline\n"
            "                  (H = 1, dense, fedavg lr 1), then every H x uplink x outer,\n"
            "                  each with T inner steps per member (T / H rounds of H steps)\n"
            "  --total-steps T inner steps per member in every cell (500); every H divides it\n"
            "  --H LIST        local steps per round (5,20,100,500)\n"
            "  --outer LIST    fedavg (lr 1), nesterov (lr 0.7, momentum 0.9), fedadam (lr\n"
            "                  0.01, beta1 0.9, beta2 0.99, eps 1e-3) (all three); KIND:LR\n"
            "                  for another outer lr (nesterov:0.4), up to 6 items\n"
            "  --uplink LIST   variant names whose uplink the cells use (dense,1%%+ef)\n"
            "  --no-sync       no baseline cell (to split the grid over runs): vs sync is '-',\n"
            "                  the byte ratio is against T dense fp32 payloads\n"
            "  --warm-start W  first W synchronous steps (sync's H = 1 dense training) from the\n"
            "                  round-0 model; every cell, sync too, then starts from that model\n"
            "                  with fresh AdamW moments, constant inner lr, and T more steps\n"
            "  --warm-start-file F  read the warm start from F if it exists (refused unless\n"
            "                  made with the same W, round-0 model and training settings; the\n"
            "                  corpora are not checked), else compute it and write F\n");
}

int main(int argc, char **argv)
{
    const char *policy_path = "policies/examples/sparse.yaml", *corpus = "build/demo-corpus";
    const char *list = NULL;
    long rounds = 0, steps = 0, jobs = sysconf(_SC_NPROCESSORS_ONLN);
    static struct sim s;
    static struct variant added[MAX_VARIANTS];
    size_t n_added = 0;
    static struct diloco dl = {.total = 500, .n_h = 4, .h = {5, 20, 100, 500}, .n_outer = 3,
                               .outer = {OUTER_FEDAVG, OUTER_NESTEROV, OUTER_FEDADAM},
                               .n_up = 2, .up = {&builtin[0], &builtin[2]}};
    int diloco = 0, grid_opts = 0, variant_opts = 0;
    static const struct option opts[] = {
        {"policy", required_argument, 0, 'p'}, {"corpus", required_argument, 0, 'c'},
        {"rounds", required_argument, 0, 'r'}, {"steps", required_argument, 0, 's'},
        {"variants", required_argument, 0, 'v'}, {"add", required_argument, 0, 'a'},
        {"jobs", required_argument, 0, 'j'}, {"downlink", no_argument, 0, 'd'},
        {"curve", required_argument, 0, 'C'}, {"help", no_argument, 0, 'h'},
        {"diloco", no_argument, 0, 'D'}, {"total-steps", required_argument, 0, 'T'},
        {"H", required_argument, 0, 'H'}, {"outer", required_argument, 0, 'o'},
        {"uplink", required_argument, 0, 'u'}, {"no-sync", no_argument, 0, 'N'},
        {"warm-start", required_argument, 0, 'W'}, {"warm-start-file", required_argument, 0, 'F'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        variant_opts += c == 'r' || c == 's' || c == 'v' || c == 'a' || c == 'C';
        grid_opts += c == 'T' || c == 'H' || c == 'o' || c == 'u' || c == 'N' || c == 'W' ||
                     c == 'F';
        switch (c) {
        case 'D': diloco = 1; break;
        case 'N': dl.no_sync = 1; break;
        case 'T':
            if ((dl.total = parse_count(optarg, DILOCO_MAX_STEPS)) < 0) {
                fprintf(stderr, "compression: --total-steps '%s': inner steps per member, a "
                        "whole number 1..%ld\n", optarg, DILOCO_MAX_STEPS);
                return 2;
            }
            break;
        case 'W':
            if ((dl.warm = parse_count(optarg, DILOCO_MAX_STEPS)) < 0) {
                fprintf(stderr, "compression: --warm-start '%s': synchronous steps before the "
                        "grid, a whole number 1..%ld\n", optarg, DILOCO_MAX_STEPS);
                return 2;
            }
            break;
        case 'F':
            if (!*optarg) {
                fprintf(stderr, "compression: --warm-start-file: an empty path\n");
                return 2;
            }
            dl.warm_file = optarg;
            break;
        case 'H': case 'o': case 'u':
            if (diloco_list(&dl, (char)c, optarg) != 0)
                return 2;
            break;
        case 'p': policy_path = optarg; break;
        case 'c': corpus = optarg; break;
        case 'r': rounds = strtol(optarg, NULL, 10); break;
        case 's': steps = strtol(optarg, NULL, 10); break;
        case 'v': list = optarg; break;
        case 'a':
            if (n_added == MAX_VARIANTS || parse_variant(optarg, &added[n_added]) != 0) {
                fprintf(stderr, "compression: bad variant '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            n_added++;
            break;
        case 'j': jobs = strtol(optarg, NULL, 10); break;
        case 'd': s.downlink = 1; break;
        case 'C': s.curve = (int)strtol(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (list && !strcmp(list, "list")) {
        for (size_t i = 0; i < N_BUILTIN; i++)
            printf("%-15s %s%s\n", builtin[i].name, builtin[i].what,
                   builtin[i].set ? "  [default]" : "");
        return 0;
    }
    if (rounds < 0 || rounds >= MAX_ROUNDS || steps < 0 || jobs < 1 || s.curve < 0) {
        usage(stderr);
        return 2;
    }
    if (grid_opts && !diloco) {
        fprintf(stderr, "compression: --total-steps, --H, --outer, --uplink, --no-sync, "
                "--warm-start and --warm-start-file need --diloco\n");
        return 2;
    }
    if (dl.warm_file && !dl.warm) {
        fprintf(stderr, "compression: --warm-start-file needs --warm-start W (the steps the "
                "file holds or will hold)\n");
        return 2;
    }
    if (diloco && variant_opts) {
        fprintf(stderr, "compression: --diloco takes its rounds and local steps from "
                "--total-steps and --H and its cells from --outer and --uplink: no --rounds, "
                "--steps, --variants, --add or --curve\n");
        return 2;
    }
    if (diloco && diloco_check(&dl) != 0)
        return 2;

    struct policy_error perr;
    if (policy_load_file(policy_path, &s.policy, &perr) != 0) {
        fprintf(stderr, "compression: %s\n", perr.message);
        return 1;
    }
    const struct policy *p = &s.policy;
    s.rounds = diloco ? (uint32_t)dl.total : rounds ? (uint32_t)rounds : p->training.rounds;
    s.policy.training.rounds = s.rounds;   /* so that every round run has its plan */
    char why[300];
    if (policy_round_plan(p, 1, &s.first, why, sizeof why) != 0) {
        fprintf(stderr, "compression: %s: %s\n", policy_path, why);
        return 1;
    }
    s.n = s.first.n_params;
    s.steps = steps ? (uint32_t)steps : p->training.local_steps;
    if (p->participation.n_members > MAX_MEMBERS) {
        fprintf(stderr, "compression: at most %d members\n", MAX_MEMBERS);
        return 1;
    }
    s.n_members = (int)p->participation.n_members;
    for (int m = 0; m < s.n_members; m++) {
        snprintf(s.corpus[m], sizeof s.corpus[m], "%s/%s", corpus, p->participation.members[m]);
        if (access(s.corpus[m], R_OK) != 0) {
            fprintf(stderr, "compression: no corpus %s; make the demo corpora with "
                    "scripts/demo-corpus.sh %s\n", s.corpus[m], corpus);
            return 1;
        }
    }

    if (diloco) {
        int rc = diloco_run(&s, &dl, jobs, policy_path, corpus);
        policy_free(&s.policy);
        return rc;
    }

    /* The uncompressed run comes first: every gap is against it. */
    const struct variant *queued[MAX_VARIANTS + N_BUILTIN];
    size_t n_queued = 0;
    queued[n_queued++] = &builtin[0];
    if (!list) {
        for (size_t i = 1; i < N_BUILTIN; i++)
            if (builtin[i].set && n_added == 0)
                queued[n_queued++] = &builtin[i];
    } else if (!strcmp(list, "all")) {
        for (size_t i = 1; i < N_BUILTIN; i++)
            queued[n_queued++] = &builtin[i];
    } else {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            size_t i;
            for (i = 0; i < N_BUILTIN && strcmp(builtin[i].name, tok); i++)
                ;
            if (i == N_BUILTIN) {
                fprintf(stderr, "compression: no variant '%s' (--variants list)\n", tok);
                return 2;
            }
            if (i > 0 && n_queued < N_BUILTIN)
                queued[n_queued++] = &builtin[i];
        }
    }
    for (size_t i = 0; i < n_added; i++)
        queued[n_queued++] = &added[i];

    printf("bench/compression: policy %s (%s), %zu parameters (%zu bytes fp32)\n",
           policy_path, p->metadata.name, s.n, 4 * s.n);
    printf("  %d members, corpora %s/{", s.n_members, corpus);
    for (int m = 0; m < s.n_members; m++)
        printf("%s%s", m ? "," : "", p->participation.members[m]);
    printf("}\n  %u rounds x %u local steps of %u x %u tokens, inner AdamW lr %g (constant: the "
           "policy's warm-up of %u steps is not simulated), outer %s lr %g momentum %g\n",
           s.rounds, s.steps, p->training.batch_size, p->training.seq_len,
           p->training.inner.lr, p->training.inner.warmup_steps,
           policy_outer_kind_name(p->training.outer.kind), p->training.outer.lr,
           p->training.outer.momentum);
    const struct policy_link *up = &p->compression.uplink;
    printf("  sparse uplinks: error_feedback_decay %g, average %s, sparse_scale %g (unless a "
           "variant says otherwise)\n", up->error_feedback_decay,
           up->average == POLICY_AVERAGE_SENDERS ? "senders" : "members", up->sparse_scale);
    printf("  downlink: %s; %zu variant(s), %ld at a time\n",
           s.downlink ? "the policy's compression" : "exact (the uplink alone varies)", n_queued,
           jobs);
    fflush(stdout);

    struct result *results = calloc(n_queued, sizeof *results);
    if (!results)
        return 1;
    struct pool pl = {.sim = &s, .queued = queued, .results = results};
    pthread_mutex_init(&pl.lock, NULL);
    const double t0 = fedsim_now();
    fedsim_parallel((int)n_queued, jobs > 64 ? 64 : (int)jobs, run_variant, &pl);
    const double wall = fedsim_now() - t0;

    const double dense_bytes = 4.0 * (double)s.n;
    const struct result *ref = results[0].rc == 0 ? &results[0] : NULL;
    const struct result *best = NULL;   /* the best uncompressed run, whatever its outer */
    for (size_t i = 0; i < n_queued; i++)
        if (!results[i].rc && queued[i]->k >= queued[i]->block && queued[i]->quant == CODEC_QUANT_FP32 &&
            (!best || results[i].loss < best->loss))
            best = &results[i];
    printf("\n%-15s %11s %7s %11s %7s %6s %9s %8s %8s", "variant", "bytes/round", "ratio",
           "sparse rnds", "ratio", "kept", "val loss", "gap", "vs best");
    for (int m = 0; m < s.n_members; m++)
        printf(" %7.7s", p->participation.members[m]);
    printf("\n");
    for (size_t i = 0; i < n_queued; i++) {
        const struct result *r = &results[i];
        if (r->rc) {
            printf("%-15s failed: %s\n", queued[i]->name, r->why);
            continue;
        }
        printf("%-15s %11.0f %6.1fx %11.0f %6.1fx %5.1f%% %9.4f", queued[i]->name, r->bytes_all,
               dense_bytes / r->bytes_all, r->bytes_sparse, dense_bytes / r->bytes_sparse,
               100.0 * r->kept, r->loss);
        if (ref)
            printf(" %+7.2f%%", 100.0 * (r->loss - ref->loss) / ref->loss);
        else
            printf(" %8s", "-");
        if (best)
            printf(" %+7.2f%%", 100.0 * (r->loss - best->loss) / best->loss);
        else
            printf(" %8s", "-");
        for (int m = 0; m < s.n_members; m++)
            printf(" %7.4f", r->member_loss[m]);
        printf("\n");
    }
    printf("\nbytes/round: payload bytes per round per member, mean over all rounds; sparse "
           "rnds: over the rounds after the dense warm-up; ratio: the %.0f bytes of the fp32 "
           "vector over that; kept: |decoded|^2 / |delta + residual|^2, mean over sparse "
           "payloads; val loss: the final model's loss (nats/byte) on each member's held-out "
           "text, mean over members; gap: vs dense (the policy's outer optimizer); vs best: vs "
           "the best uncompressed run in this table.\n", dense_bytes);
    if (s.downlink)
        printf("downlink (%s): %.0f bytes per round (%.1fx)\n", queued[0]->name,
               results[0].down_bytes, dense_bytes / results[0].down_bytes);
    if (s.curve) {
        printf("\nvalidation loss after round\n%-15s", "round");
        for (uint32_t r = 1; r <= s.rounds && r < MAX_ROUNDS; r++)
            if (r % (uint32_t)s.curve == 0 || r == s.rounds)
                printf(" %6u", r);
        printf("\n");
        for (size_t i = 0; i < n_queued; i++) {
            if (results[i].rc)
                continue;
            printf("%-15s", queued[i]->name);
            for (uint32_t r = 1; r <= s.rounds && r < MAX_ROUNDS; r++)
                if (r % (uint32_t)s.curve == 0 || r == s.rounds)
                    printf(" %6.3f", results[i].curve[r]);
            printf("\n");
        }
    }
    printf("\nvariants:\n");
    for (size_t i = 0; i < n_queued; i++)
        printf("  %-15s %s\n", queued[i]->name, queued[i]->what);
    printf("wall time %.1f s on %ld job(s)\n", wall, jobs);
    free(results);
    policy_free(&s.policy);
    return 0;
}
