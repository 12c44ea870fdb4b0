/* Contribution measures of one round (credit/score.h; formulas, the seed and the GTG
 * parameters in credit/README.md). Everything runs on the calling thread, in member-id
 * order, with randomness only from the round's seed: the same inputs give the same
 * bytes. */
#include "credit/score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "aggregate/robust.h"
#include "codec/codec.h"
#include "common/bytes.h"
#include "common/why.h"
#include "crypto/digest.h"

void credit_round_seed(const char *experiment, uint64_t round, const uint8_t base_hash[32],
                       const struct agg_update *u, size_t n, uint8_t seed[32])
{
    struct crypto_digest_state s;
    (void)crypto_digest_init(&s, "aulac/credit/seed/v1");   /* a valid constant domain */
    crypto_digest_update(&s, experiment, strlen(experiment) + 1);   /* with its NUL */
    uint8_t r[8];
    be64_put(r, round);
    crypto_digest_update(&s, r, 8);
    crypto_digest_update(&s, base_hash, 32);
    for (size_t i = 0; i < n; i++)
        crypto_digest_update(&s, u[i].payload_hash, 32);
    crypto_digest_final(&s, seed);
}

/* ---- the random stream ---------------------------------------------------------
 * The bytes randombytes_buf_deterministic(buf, size, seed) writes, produced a chunk at
 * a time: ChaCha20-IETF keystream, key = seed, nonce "LibsodiumDRG", block counter
 * from 0. */

#define RNG_CHUNK 1024   /* bytes, a multiple of the 64-byte ChaCha20 block */

struct rng {
    uint8_t key[32];
    uint32_t block;          /* the next chunk's first block */
    size_t pos;              /* next unread byte of buf; RNG_CHUNK when empty */
    uint8_t buf[RNG_CHUNK];
};

static void rng_init(struct rng *r, const uint8_t seed[32])
{
    memcpy(r->key, seed, 32);
    r->block = 0;
    r->pos = RNG_CHUNK;
}

static uint32_t rng_u32(struct rng *r)
{
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {
        'L', 'i', 'b', 's', 'o', 'd', 'i', 'u', 'm', 'D', 'R', 'G'
    };
    if (r->pos + 4 > RNG_CHUNK) {
        memset(r->buf, 0, RNG_CHUNK);
        crypto_stream_chacha20_ietf_xor_ic(r->buf, r->buf, RNG_CHUNK, nonce, r->block, r->key);
        r->block += RNG_CHUNK / 64;
        r->pos = 0;
    }
    const uint8_t *p = r->buf + r->pos;
    r->pos += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Uniform in [0, m), 1 <= m <= 2^32 - 1: little-endian u32 draws, rejecting those at or
 * above the largest multiple of m that fits. */
static uint32_t rng_below(struct rng *r, uint32_t m)
{
    const uint64_t limit = (UINT64_C(1) << 32) / m * m;
    uint32_t x;
    do
        x = rng_u32(r);
    while ((uint64_t)x >= limit);
    return x % m;
}

/* ---- coalitions and their values --------------------------------------------- */

struct game {
    size_t n, words;
    int (*value)(void *arg, const uint64_t *set, double *v);   /* 0 < |set| < n */
    void *arg;
    double v_full;            /* v(N), known before */
    /* The subset cache: open addressing over cap slots (a power of two). */
    size_t cap, used;
    uint64_t *keys;           /* cap * words */
    double *vals;
    uint8_t *flags;           /* SLOT_FULL, SLOT_SHAPLEY */
};

enum { SLOT_FULL = 1, SLOT_SHAPLEY = 2 };

static uint64_t set_hash(const uint64_t *set, size_t words)
{
    uint64_t h = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < words; i++) {
        uint64_t z = h ^ set[i];
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        h = z ^ (z >> 31);
    }
    return h;
}

/* The slot that holds set or the empty one where it would go. */
static size_t slot_of(const struct game *g, const uint64_t *set)
{
    size_t i = (size_t)set_hash(set, g->words) & (g->cap - 1);
    while ((g->flags[i] & SLOT_FULL) &&
           memcmp(g->keys + i * g->words, set, g->words * sizeof(uint64_t)) != 0)
        i = (i + 1) & (g->cap - 1);
    return i;
}

static int cache_grow(struct game *g)
{
    size_t cap = g->cap ? g->cap * 2 : 64;
    struct game ng = *g;
    ng.cap = cap;
    ng.keys = malloc(cap * g->words * sizeof(uint64_t));
    ng.vals = malloc(cap * sizeof(double));
    ng.flags = calloc(cap, 1);
    if (!ng.keys || !ng.vals || !ng.flags) {
        free(ng.keys);
        free(ng.vals);
        free(ng.flags);
        return CREDIT_ERR_NOMEM;
    }
    for (size_t i = 0; i < g->cap; i++) {
        if (!(g->flags[i] & SLOT_FULL))
            continue;
        size_t j = slot_of(&ng, g->keys + i * g->words);
        memcpy(ng.keys + j * g->words, g->keys + i * g->words, g->words * sizeof(uint64_t));
        ng.vals[j] = g->vals[i];
        ng.flags[j] = g->flags[i];
    }
    free(g->keys);
    free(g->vals);
    free(g->flags);
    *g = ng;
    return 0;
}

static void game_free(struct game *g)
{
    free(g->keys);
    free(g->vals);
    free(g->flags);
    g->keys = NULL;
    g->vals = NULL;
    g->flags = NULL;
    g->cap = g->used = 0;
}

static size_t set_size(const uint64_t *set, size_t words)
{
    size_t k = 0;
    for (size_t i = 0; i < words; i++)
        k += (size_t)__builtin_popcountll(set[i]);
    return k;
}

/* v(set): 0 for the empty set, v(N) for N, else from the cache or evaluated once. With
 * shapley set, the set is marked as used by the Shapley computation and *fresh (may be
 * NULL) says whether it was the first such use. */
static int game_value(struct game *g, const uint64_t *set, int shapley, double *v, int *fresh)
{
    if (fresh)
        *fresh = 0;
    const size_t k = set_size(set, g->words);
    if (k == 0 || k == g->n) {
        *v = k ? g->v_full : 0.0;
        return 0;
    }
    if ((g->used + 1) * 2 > g->cap) {
        int rc = cache_grow(g);
        if (rc != 0)
            return rc;
    }
    size_t i = slot_of(g, set);
    if (!(g->flags[i] & SLOT_FULL)) {
        double val;
        int rc = g->value(g->arg, set, &val);
        if (rc != 0)
            return rc;
        memcpy(g->keys + i * g->words, set, g->words * sizeof(uint64_t));
        g->vals[i] = val;
        g->flags[i] = SLOT_FULL;
        g->used++;
    }
    if (shapley && !(g->flags[i] & SLOT_SHAPLEY)) {
        g->flags[i] |= SLOT_SHAPLEY;
        if (fresh)
            *fresh = 1;
    }
    *v = g->vals[i];
    return 0;
}

/* Whether the Shapley computation has used set (0 < |set| < n) already. */
static int shapley_used(const struct game *g, const uint64_t *set)
{
    if (!g->cap)
        return 0;
    size_t i = slot_of(g, set);
    return (g->flags[i] & SLOT_SHAPLEY) != 0;
}

static void set_add(uint64_t *set, size_t i) { set[i / 64] |= UINT64_C(1) << (i % 64); }

/* ---- Shapley values ------------------------------------------------------------ */

#define EXACT_MAX_N 20

static int exact_possible(size_t n, uint32_t budget)
{
    return n <= EXACT_MAX_N && ((UINT64_C(1) << n) - 2) <= budget;
}

/* phi_i = sum over S not holding i of |S|! (n-|S|-1)! / n! (v(S + i) - v(S)), S in
 * ascending mask order; every coalition evaluated once, in ascending mask order. */
static int shapley_exact(struct game *g, double *phi)
{
    const size_t n = g->n;
    const uint64_t full = (UINT64_C(1) << n) - 1;
    double *val = malloc((size_t)(full + 1) * sizeof(double));
    if (!val)
        return CREDIT_ERR_NOMEM;
    for (uint64_t mask = 0; mask <= full; mask++) {
        int rc = game_value(g, &mask, 1, &val[mask], NULL);
        if (rc != 0) {
            free(val);
            return rc;
        }
    }
    /* weight[s] = s! (n-1-s)! / n! = 1 / (n * C(n-1, s)); the binomials are exact. */
    double weight[EXACT_MAX_N];
    double binom = 1;
    for (size_t s = 0; s < n; s++) {
        weight[s] = 1.0 / ((double)n * binom);
        binom = binom * (double)(n - 1 - s) / (double)(s + 1);
    }
    for (size_t i = 0; i < n; i++) {
        const uint64_t bit = UINT64_C(1) << i;
        double sum = 0;
        for (uint64_t mask = 0; mask <= full; mask++)
            if (!(mask & bit))
                sum += weight[__builtin_popcountll(mask)] * (val[mask | bit] - val[mask]);
        phi[i] = sum;
    }
    free(val);
    return 0;
}

/* Permutation q (0 <= q < 2n) of the block drawn from order: pair q / 2 starts at
 * m = 0, 2, 4, ... then 1, 3, 5, ...; the even one reads order cyclically from order[m],
 * the odd one is the same sequence reversed. Its prefix of length L is the arc of the
 * cycle that starts at position *start_of(L) = m (forwards) or m - L (reversed). */
static size_t block_perm(const size_t *order, size_t n, uint64_t q, size_t *perm)
{
    const size_t h = (size_t)(q / 2), half = (n + 1) / 2;
    const size_t m = h < half ? 2 * h : 2 * (h - half) + 1;
    for (size_t j = 0; j < n; j++)
        perm[j] = (q & 1) ? order[(m + 2 * n - 1 - j) % n] : order[(m + j) % n];
    return m;
}

/* The worst case of the stratum of permutations [q0, q0 + len) of order's block: its
 * distinct proper prefixes (arcs of the cycle, told apart by start and length in seen,
 * n * n bytes) not used yet. */
static uint64_t stratum_worst(const struct game *g, const size_t *order, uint64_t q0,
                              size_t len, size_t *perm, uint64_t *set, uint8_t *seen)
{
    const size_t n = g->n;
    uint64_t worst = 0;
    memset(seen, 0, n * n);
    for (uint64_t q = q0; q < q0 + len; q++) {
        const size_t m = block_perm(order, n, q, perm);
        memset(set, 0, g->words * sizeof *set);
        for (size_t j = 0; j + 1 < n; j++) {
            set_add(set, perm[j]);
            const size_t len_j = j + 1;
            const size_t start = (q & 1) ? (m + n - len_j) % n : m;
            uint8_t *arc = &seen[start * n + len_j];
            if (!*arc) {
                *arc = 1;
                worst += !shapley_used(g, set);
            }
        }
    }
    return worst;
}

/* GTG-Shapley (credit/score.h; credit/README.md). */
static int shapley_gtg(struct game *g, const struct policy_contribution *c,
                       const uint8_t seed[32], double *phi)
{
    const size_t n = g->n;
    memset(phi, 0, n * sizeof *phi);
    if (fabs(g->v_full) < c->round_truncation)
        return 0;                               /* between-round truncation */
    const double within = c->shapley_truncation * fabs(g->v_full);
    /* A stratum: the permutations that put every member at every position equally
     * often, half a block for even n, the whole block for odd n. */
    const size_t stratum = n % 2 == 0 ? n : 2 * n;
    double *sum = calloc(n, sizeof *sum);
    size_t *perm = malloc(n * sizeof *perm);
    size_t *order = malloc(n * sizeof *order);
    uint8_t *seen = malloc(n * n);
    uint64_t *set = malloc(g->words * sizeof *set);
    struct rng *r = malloc(sizeof *r);
    int rc = sum && perm && order && seen && set && r ? 0 : CREDIT_ERR_NOMEM;
    if (rc == 0)
        rng_init(r, seed);
    uint64_t used = 0, drawn = 0;
    for (uint64_t k = 0; rc == 0 && k < CREDIT_MAX_PERMUTATIONS; k++) {
        /* Position-stratified blocks of 2n permutations from one random cyclic order. */
        const uint64_t q = k % (2 * (uint64_t)n);
        if (q == 0) {
            /* A new order: members ascending, Fisher-Yates from the end. */
            for (size_t i = 0; i < n; i++)
                order[i] = i;
            for (size_t i = n - 1; i >= 1; i--) {
                size_t j = rng_below(r, (uint32_t)i + 1);   /* in [0, i] */
                size_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        /* After the first stratum, a stratum is walked whole or not at all, so the
         * estimate stays balanced over the positions. */
        if (k >= stratum && k % stratum == 0 &&
            used + stratum_worst(g, order, q, stratum, perm, set, seen) > c->shapley_budget)
            break;
        (void)block_perm(order, n, q, perm);
        /* Its worst case: every proper prefix not used yet. */
        uint64_t worst = 0;
        memset(set, 0, g->words * sizeof *set);
        for (size_t j = 0; j + 1 < n; j++) {
            set_add(set, perm[j]);
            worst += !shapley_used(g, set);
        }
        if (used + worst > c->shapley_budget)
            break;
        memset(set, 0, g->words * sizeof *set);
        double prev = 0;
        for (size_t j = 0; j < n; j++) {
            if (fabs(g->v_full - prev) < within)
                break;                          /* within-round truncation: the rest 0 */
            set_add(set, perm[j]);
            double cur;
            int fresh;
            rc = game_value(g, set, 1, &cur, &fresh);
            if (rc != 0)
                break;
            used += (uint64_t)fresh;
            sum[perm[j]] += cur - prev;
            prev = cur;
        }
        drawn++;
    }
    if (rc == 0 && drawn)
        for (size_t i = 0; i < n; i++)
            phi[i] = sum[i] / (double)drawn;
    free(sum);
    free(perm);
    free(order);
    free(seen);
    free(set);
    free(r);
    return rc;
}

/* Shapley values of g under c's budget; *exact says which way. */
static int shapley(struct game *g, const struct policy_contribution *c, const uint8_t seed[32],
                   double *phi, int *exact)
{
    *exact = exact_possible(g->n, c->shapley_budget);
    if (*exact)
        return shapley_exact(g, phi);
    return shapley_gtg(g, c, seed, phi);
}

struct mask_game {
    credit_game_fn fn;
    void *arg;
    uint64_t calls;
};

static int mask_value(void *arg, const uint64_t *set, double *v)
{
    struct mask_game *m = arg;
    m->calls++;
    return m->fn(m->arg, set[0], v);
}

int credit_shapley(size_t n, credit_game_fn v, void *arg, const struct policy_contribution *c,
                   const uint8_t seed[32], double *phi, uint64_t *evaluations, int *exact)
{
    if (!v || !c || !seed || (n && !phi) || n > 64)
        return CREDIT_ERR_ARG;
    if (evaluations)
        *evaluations = 0;
    int ex = 0;
    if (exact)
        *exact = 0;
    if (n == 0)
        return 0;
    if (crypto_init() != 0)
        return CREDIT_ERR_ARG;   /* libsodium cannot start */
    struct mask_game m = { .fn = v, .arg = arg };
    struct game g = { .n = n, .words = 1, .value = mask_value, .arg = &m };
    const uint64_t full = n == 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;
    int rc = v(arg, full, &g.v_full);
    m.calls++;
    if (rc == 0)
        rc = shapley(&g, c, seed, phi, &ex);
    game_free(&g);
    if (evaluations)
        *evaluations = m.calls;
    if (exact)
        *exact = ex;
    return rc;
}

/* ---- one round ------------------------------------------------------------------ */

struct round_game {
    const struct credit_round_input *in;
    float *avg, *support, *model, *scratch;
    uint8_t *include;
    double base_loss;
    char *why;
    size_t cap;
};

static int agg_to_credit(int rc)
{
    return rc == AGG_ERR_PAYLOAD ? CREDIT_ERR_PAYLOAD
         : rc == AGG_ERR_NOMEM   ? CREDIT_ERR_NOMEM
                                 : CREDIT_ERR_ARG;
}

/* L(params) as the measures use it: the evaluation loss, capped at CREDIT_LOSS_CAP; a
 * model whose loss is not finite (an update that blew the model up) counts as the cap, so
 * every coalition has a value and one wild update cannot void the round's scores. Other
 * evaluator failures are returned. */
static int capped_loss(struct evaluator *ev, const float *params, double *loss)
{
    *loss = 0;
    int rc = evaluator_loss(ev, params, loss);
    if (rc == CREDIT_ERR_MODEL && !isfinite(*loss)) {
        *loss = CREDIT_LOSS_CAP;
        return 0;
    }
    if (rc == 0 && *loss > CREDIT_LOSS_CAP)
        *loss = CREDIT_LOSS_CAP;
    return rc;
}

/* L(model_S) for the updates include[] selects. */
static int coalition_loss(struct round_game *rg, double *loss)
{
    const struct credit_round_input *in = rg->in;
    /* model_S's average under the policy's rule (a coalition too small for multi_krum's
     * f falls back as agg_combine_coalition documents); rg->model is free until the trial
     * step, so it is the scratch when there is no support buffer. */
    int rc = agg_combine_coalition(in->policy, in->plan, in->n_params, in->updates, in->n,
                                   rg->include, rg->avg, rg->support ? rg->support : rg->model,
                                   rg->why, rg->cap);
    if (rc != 0)
        return agg_to_credit(rc);
    agg_outer_trial(in->outer, in->base, rg->avg, in->n_params, rg->model, rg->scratch);
    rc = capped_loss(in->ev, rg->model, loss);
    if (rc != 0) {
        size_t k = 0;
        for (size_t i = 0; i < in->n; i++)
            k += rg->include[i] != 0;
        return why_fail(rg->why, rg->cap, rc, "the model of a coalition of %zu of the round's "
                        "%zu updates has a non-finite evaluation loss", k, in->n);
    }
    return 0;
}

static int round_value(void *arg, const uint64_t *set, double *v)
{
    struct round_game *rg = arg;
    for (size_t i = 0; i < rg->in->n; i++)
        rg->include[i] = (uint8_t)(set[i / 64] >> (i % 64) & 1);
    double loss;
    int rc = coalition_loss(rg, &loss);
    if (rc == 0)
        *v = rg->base_loss - loss;
    return rc;
}

/* cos(a, b) in double; 0 when either is zero. */
static double cosine(const float *a, const float *b, size_t n)
{
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = a[i], y = b[i];
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if (na == 0 || nb == 0)
        return 0;
    double c = dot / sqrt(na * nb);
    return c > 1 ? 1 : c < -1 ? -1 : c;
}

static int measured(const struct credit_round_input *in, enum policy_measure m)
{
    return (in->policy->contribution.measures >> m) & 1;
}

void credit_round_scores_free(struct credit_round_scores *s)
{
    if (!s)
        return;
    free(s->value);
    memset(s, 0, sizeof *s);
}

int credit_score_round(const struct credit_round_input *in, struct credit_round_scores *out,
                       char *why, size_t cap)
{
    if (!in || !out || !in->policy || !in->plan || !in->outer || !in->base ||
        (in->n && !in->updates) || in->outer->n != in->n_params)
        return why_fail(why, cap, CREDIT_ERR_ARG, "credit_score_round: missing argument");
    memset(out, 0, sizeof *out);
    out->base_loss = out->model_loss = NAN;
    const size_t n = in->n, np = in->n_params;
    const int align = measured(in, POLICY_MEASURE_ALIGNMENT);
    const int loo = measured(in, POLICY_MEASURE_LOO);
    const int shap = measured(in, POLICY_MEASURE_SHAPLEY);
    const int eval = loo || shap;
    if (eval && !in->ev)
        return why_fail(why, cap, CREDIT_ERR_ARG, "loo and shapley need an evaluator (the "
                        "evaluation set is not loaded)");
    if (shap && crypto_init() != 0)
        return why_fail(why, cap, CREDIT_ERR_ARG, "libsodium cannot start");
    out->n = n;
    out->value = calloc(n ? n : 1, sizeof *out->value);
    if (!out->value)
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct agg_update *u = &in->updates[i];
        if (measured(in, POLICY_MEASURE_TOKENS))
            out->value[i][POLICY_MEASURE_TOKENS] = (double)u->tokens;
        if (measured(in, POLICY_MEASURE_ROUNDS))
            out->value[i][POLICY_MEASURE_ROUNDS] = 1;
        if (measured(in, POLICY_MEASURE_BYTES))
            out->value[i][POLICY_MEASURE_BYTES] = (double)u->len;
    }
    if (n == 0 || (!align && !eval))
        return 0;

    /* Buffers: avg, model (also the decode scratch), the outer state's copy and the
     * support when the plan averages over senders: O(model), never one per member. */
    const int senders = in->plan->average == POLICY_AVERAGE_SENDERS;
    const size_t state = in->outer->kind == OUTER_FEDADAM  ? 2 * np
                       : in->outer->kind == OUTER_NESTEROV ? np : 0;
    struct round_game rg = { .in = in, .why = why, .cap = cap };
    struct game g = { .n = n, .words = (n + 63) / 64, .value = round_value, .arg = &rg };
    double *phi = NULL;
    uint64_t *set = NULL;
    /* The full average: the caller's (read only) when no coalition overwrites rg.avg. */
    const int lent_avg = in->avg_full && !eval;
    rg.avg = lent_avg ? (float *)in->avg_full : malloc(np * sizeof(float));
    rg.model = in->model_scratch ? in->model_scratch : malloc(np * sizeof(float));
    rg.support = senders && !lent_avg ? malloc(np * sizeof(float)) : NULL;
    rg.scratch = state ? malloc(state * sizeof(float)) : NULL;
    rg.include = malloc(n);
    int rc = rg.avg && rg.model && (!senders || lent_avg || rg.support) && (!state || rg.scratch) &&
                     rg.include
                 ? 0 : why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    if (rc == 0 && !lent_avg) {
        rc = agg_combine_coalition(in->policy, in->plan, np, in->updates, n, NULL, rg.avg,
                                   rg.support ? rg.support : rg.model, why, cap);
        if (rc != 0)
            rc = agg_to_credit(rc);
    }
    /* alignment: a second pass over the payloads, one decoded update at a time. */
    for (size_t i = 0; rc == 0 && align && i < n; i++) {
        const struct agg_update *u = &in->updates[i];
        char what[200];
        memset(rg.model, 0, np * sizeof(float));
        int d = codec_decode_accumulate(u->payload, u->len, np, 1.0f, rg.model, what,
                                        sizeof what);
        agg_payload_consumed(u, 0, u->len);
        if (d != 0)
            rc = why_fail(why, cap, d == CODEC_ERR_NOMEM ? CREDIT_ERR_NOMEM : CREDIT_ERR_PAYLOAD,
                          "the update of %s does not decode: %s", u->member, what);
        else
            out->value[i][POLICY_MEASURE_ALIGNMENT] = cosine(rg.model, rg.avg, np);
    }
    if (rc == 0 && eval) {
        const uint64_t before = evaluator_count(in->ev);
        rc = capped_loss(in->ev, in->base, &rg.base_loss);
        if (rc != 0)
            rc = why_fail(why, cap, rc, "the round's base model has a non-finite evaluation loss");
        double full_loss = NAN;
        if (rc == 0) {
            agg_outer_trial(in->outer, in->base, rg.avg, np, rg.model, rg.scratch);
            rc = capped_loss(in->ev, rg.model, &full_loss);
            if (rc != 0)
                rc = why_fail(why, cap, rc, "the round's model has a non-finite evaluation loss");
        }
        if (rc == 0) {
            out->base_loss = rg.base_loss;
            out->model_loss = full_loss;
            g.v_full = rg.base_loss - full_loss;
            set = malloc(g.words * sizeof *set);
            phi = malloc(n * sizeof *phi);
            if (!set || !phi)
                rc = why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
        }
        /* loo_i = v(N) - v(N \ {i}) */
        for (size_t i = 0; rc == 0 && loo && i < n; i++) {
            memset(set, 0, g.words * sizeof *set);
            for (size_t j = 0; j < n; j++)
                if (j != i)
                    set_add(set, j);
            double v;
            rc = game_value(&g, set, 0, &v, NULL);
            if (rc == 0)
                out->value[i][POLICY_MEASURE_LOO] = g.v_full - v;
        }
        if (rc == 0 && shap) {
            rc = shapley(&g, &in->policy->contribution, in->seed, phi, &out->exact);
            for (size_t i = 0; rc == 0 && i < n; i++)
                out->value[i][POLICY_MEASURE_SHAPLEY] = phi[i];
        }
        out->evaluations = evaluator_count(in->ev) - before;
    }
    game_free(&g);
    free(set);
    free(phi);
    if (!lent_avg)
        free(rg.avg);
    if (rg.model != in->model_scratch)
        free(rg.model);
    free(rg.support);
    free(rg.scratch);
    free(rg.include);
    if (rc != 0)
        credit_round_scores_free(out);
    return rc;
}
