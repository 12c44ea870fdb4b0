/* credit/score.h: the round seed, alignment, exact Shapley of a game worked by hand,
 * GTG-Shapley against exact Shapley, its truncations, budget and random stream, and the
 * measures of a real (tiny) GPT-2 round: a member that sends the negation of a good
 * update gets a negative leave-one-out value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec/codec.h"
#include "common/hex.h"
#include "credit/score.h"

/* ---- games given as tables or formulas --------------------------------------- */

struct table_game {
    const double *v;          /* v[mask] */
    uint64_t calls;
    uint64_t order[64];       /* the masks asked for, in order (the first 64) */
};

static int table_value(void *arg, uint64_t mask, double *v)
{
    struct table_game *t = arg;
    if (t->calls < 64)
        t->order[t->calls] = mask;
    t->calls++;
    *v = t->v[mask];
    return 0;
}

static struct policy_contribution contribution(uint32_t budget, double truncation,
                                               double round_truncation)
{
    struct policy_contribution c;
    memset(&c, 0, sizeof c);
    c.shapley_budget = budget;
    c.shapley_truncation = truncation;
    c.round_truncation = round_truncation;
    return c;
}

static const uint8_t seed0[32] = { 1, 2, 3 };

/* The 3-player game of credit/README.md ("A worked example"), players A, B, C = bits
 * 0, 1, 2:
 *   v()=0 v(A)=4 v(B)=2 v(C)=0 v(AB)=8 v(AC)=5 v(BC)=3 v(ABC)=9
 * Weights |S|!(n-|S|-1)!/n! for n = 3: 1/3 (|S| = 0), 1/6 (1), 1/3 (2).
 *   phi_A = 4/3 + (8-2)/6 + (5-0)/6 + (9-3)/3 = 31/6
 *   phi_B = 2/3 + (8-4)/6 + (3-0)/6 + (9-5)/3 = 19/6
 *   phi_C = 0/3 + (5-4)/6 + (3-2)/6 + (9-8)/3 = 4/6
 * and 31/6 + 19/6 + 4/6 = 9 = v(ABC). */
static const double three[8] = { 0, 4, 2, 8, 0, 5, 3, 9 };

static void exact_shapley_of_the_worked_example(void **state)
{
    struct table_game t = { .v = three };
    struct policy_contribution c = contribution(6, 0.01, 1e-4);
    double phi[3];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(3, table_value, &t, &c, seed0, phi, &evals, &exact), 0);
    assert_int_equal(exact, 1);
    assert_int_equal(evals, 7);   /* v(N) and the six others; v() is never asked */
    assert_float_equal(phi[0], 31.0 / 6, 1e-12);
    assert_float_equal(phi[1], 19.0 / 6, 1e-12);
    assert_float_equal(phi[2], 4.0 / 6, 1e-12);
}

/* Budget 5 < 2^3 - 2: GTG, with every subset reached by the first permutations. */
static void budget_below_all_subsets_is_gtg(void **state)
{
    struct table_game t = { .v = three };
    struct policy_contribution c = contribution(5, 0, 0);
    double phi[3];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(3, table_value, &t, &c, seed0, phi, &evals, &exact), 0);
    assert_int_equal(exact, 0);
    assert_true(evals - 1 <= 5);
    assert_float_equal(phi[0] + phi[1] + phi[2], 9, 1e-12);   /* no truncation: efficient */
}

/* An additive game: every permutation's marginals are the players' own values, so
 * GTG gives them exactly (a budget well below the 254 subsets of 8 players). */
struct formula_game {
    size_t n;
    double w[10];
    int kind;                 /* 0 additive, 1 concave: 10 sqrt(sum w) */
    uint64_t calls;
};

static int formula_value(void *arg, uint64_t mask, double *v)
{
    struct formula_game *f = arg;
    f->calls++;
    double s = 0;
    for (size_t i = 0; i < f->n; i++)
        if (mask >> i & 1)
            s += f->w[i];
    *v = f->kind == 0 ? s : 10 * sqrt(s);
    return 0;
}

static void gtg_is_exact_on_an_additive_game(void **state)
{
    struct formula_game f = { .n = 8, .w = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8 } };
    struct policy_contribution c = contribution(60, 0, 0);
    double phi[8];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(8, formula_value, &f, &c, seed0, phi, &evals, &exact), 0);
    assert_int_equal(exact, 0);
    assert_true(evals >= 8 && evals - 1 <= 60);
    for (int i = 0; i < 8; i++)
        assert_float_equal(phi[i], f.w[i], 1e-12);
}

/* A concave game (diminishing returns): GTG with 120 of the 254 subsets (about 20
 * permutations) is within 10% of the largest exact value; exact Shapley when the budget
 * holds every subset. */
static void gtg_is_close_to_exact_on_a_concave_game(void **state)
{
    struct formula_game f = { .n = 8, .w = { 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 0.3, 0.02 },
                              .kind = 1 };
    struct policy_contribution all = contribution(254, 0, 0), part = contribution(120, 0, 0);
    double exact_phi[8], gtg[8];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(8, formula_value, &f, &all, seed0, exact_phi, &evals,
                                    &exact), 0);
    assert_int_equal(exact, 1);
    assert_int_equal(evals, 255);
    assert_int_equal(credit_shapley(8, formula_value, &f, &part, seed0, gtg, &evals, &exact),
                     0);
    assert_int_equal(exact, 0);
    assert_true(evals - 1 <= 120);
    double top = 0, err = 0, sum = 0;
    for (int i = 0; i < 8; i++) {
        top = fmax(top, fabs(exact_phi[i]));
        err = fmax(err, fabs(gtg[i] - exact_phi[i]));
        sum += gtg[i];
    }
    print_message("GTG vs exact, 8 players, 120 of 254 subsets: max |diff| %.4f of max %.4f\n",
                  err, top);
    assert_true(err < 0.10 * top);
    assert_float_equal(sum, 10 * sqrt(3.47), 1e-9);   /* efficiency without truncation */
    /* Ranks agree on the clearly separated players. */
    assert_true(gtg[5] > gtg[4] && gtg[4] > gtg[3] && gtg[3] > gtg[7]);
}

/* With 1021 of the 1022 subsets of 10 players, GTG samples (cached subsets cost nothing)
 * until the next permutation would need the last subset left: thousands of
 * permutations, whose mean is the exact value within Monte Carlo error (1%). */
static void gtg_converges_to_exact(void **state)
{
    struct formula_game f = { .n = 10, .w = { 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 0.3, 0.02, 0.7,
                                              0.9 }, .kind = 1 };
    struct policy_contribution all = contribution(1022, 0, 0), most = contribution(1021, 0, 0);
    double exact_phi[10], gtg[10];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(10, formula_value, &f, &all, seed0, exact_phi, &evals,
                                    &exact), 0);
    assert_int_equal(exact, 1);
    assert_int_equal(credit_shapley(10, formula_value, &f, &most, seed0, gtg, &evals, &exact),
                     0);
    assert_int_equal(exact, 0);
    assert_true(evals - 1 <= 1021);
    double top = 0, err = 0;
    for (int i = 0; i < 10; i++) {
        top = fmax(top, fabs(exact_phi[i]));
        err = fmax(err, fabs(gtg[i] - exact_phi[i]));
    }
    print_message("GTG vs exact, 10 players, all but one subset: max |diff| %.5f of max %.4f\n",
                  err, top);
    assert_true(err < 0.01 * top);
}

/* Player 0 alone makes the whole value: once it is in a prefix the rest of the
 * permutation is truncated (no evaluation), and it gets all of v(N). */
static double dictator(uint64_t mask) { return (mask & 1) ? 1.0 : 0.0; }

static int dictator_value(void *arg, uint64_t mask, double *v)
{
    (*(uint64_t *)arg)++;
    *v = dictator(mask);
    return 0;
}

static void within_round_truncation_skips_evaluations(void **state)
{
    struct policy_contribution trunc = contribution(40, 0.01, 0), full = contribution(40, 0, 0);
    double phi[8], phi_full[8];
    uint64_t calls = 0, calls_full = 0, evals;
    int exact;
    assert_int_equal(credit_shapley(8, dictator_value, &calls, &trunc, seed0, phi, &evals,
                                    &exact), 0);
    assert_int_equal(credit_shapley(8, dictator_value, &calls_full, &full, seed0, phi_full,
                                    &evals, &exact), 0);
    assert_true(calls < calls_full);
    assert_float_equal(phi[0], 1, 1e-12);
    for (int i = 1; i < 8; i++)
        assert_true(phi[i] == 0);
    assert_float_equal(phi_full[0], 1, 1e-12);
}

/* |v(N)| below round_truncation: every value 0, only v(N) evaluated. */
static void between_round_truncation_gives_zero(void **state)
{
    double v[1 << 5];
    for (int m = 0; m < 32; m++)
        v[m] = 1e-5 * __builtin_popcount((unsigned)m) / 5;
    struct table_game t = { .v = v };
    struct policy_contribution c = contribution(10, 0.01, 1e-4);
    double phi[5];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(5, table_value, &t, &c, seed0, phi, &evals, &exact), 0);
    assert_int_equal(exact, 0);
    assert_int_equal(evals, 1);
    for (int i = 0; i < 5; i++)
        assert_true(phi[i] == 0);
}

/* The documented stream: block 0's order is the members ascending shuffled by
 * Fisher-Yates from the end, position i swapped with u mod (i + 1), u a little-endian
 * u32 of randombytes_buf_deterministic(seed) below the largest multiple of i + 1
 * (rejection). Permutation 0 is that order, permutation 1 its reverse, permutation 2
 * the order read cyclically from its position 2. The game sees their prefixes first. */
static uint32_t stream_below(const uint8_t *bytes, size_t *pos, uint32_t m)
{
    const uint64_t limit = (UINT64_C(1) << 32) / m * m;
    for (;;) {
        const uint8_t *p = bytes + *pos;
        *pos += 4;
        uint32_t x = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        if (x < limit)
            return x % m;
    }
}

static void first_permutation_follows_the_seeded_stream(void **state)
{
    enum { N = 6 };
    double v[1 << N];
    for (int m = 0; m < (1 << N); m++)
        v[m] = (double)(m * 7 % 23) + 1;   /* any game without truncation */
    struct table_game t = { .v = v };
    struct policy_contribution c = contribution(20, 0, 0);
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(i * 37 + 5);
    double phi[N];
    assert_int_equal(credit_shapley(N, table_value, &t, &c, seed, phi, NULL, NULL), 0);

    uint8_t bytes[4096];
    randombytes_buf_deterministic(bytes, sizeof bytes, seed);
    size_t pos = 0, order[N] = { 0, 1, 2, 3, 4, 5 };
    for (size_t i = N - 1; i >= 1; i--) {
        size_t j = stream_below(bytes, &pos, (uint32_t)i + 1);
        size_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    /* order[0] is v(N); then the prefixes of sizes 1..N-1 of permutation 0 (the order) */
    assert_int_equal(t.order[0], (1u << N) - 1);
    uint64_t prefix = 0;
    for (size_t j = 0; j + 1 < N; j++) {
        prefix |= UINT64_C(1) << order[j];
        assert_int_equal(t.order[1 + j], prefix);
    }
    /* permutation 1, its reverse: the suffixes of the order, every one new */
    prefix = 0;
    for (size_t j = 0; j + 1 < N; j++) {
        prefix |= UINT64_C(1) << order[N - 1 - j];
        assert_int_equal(t.order[N + j], prefix);
    }
    /* permutation 2 starts at order[2]: {order[2]} is new */
    assert_int_equal(t.order[2 * N - 1], UINT64_C(1) << order[2]);
    assert_int_equal(t.order[2 * N], UINT64_C(1) << order[2] | UINT64_C(1) << order[3]);
}

/* Stratified by position: on a symmetric game v(S) = sqrt(|S|) a member's marginal
 * depends only on its position, so GTG is exact (v(N)/n each) exactly when every member
 * took every position equally often. With n = 8 and a budget of 48 the first n
 * permutations of the block (order forwards and reversed from its positions 0, 2, 4, 6)
 * are walked: each member at each position once, 44 distinct coalitions; the next
 * stratum (12 more) does not fit, and no permutation of it is walked alone (one more
 * would fit: 3 new prefixes). */
static void gtg_first_n_permutations_are_position_stratified(void **state)
{
    enum { N = 8 };
    double v[1 << N];
    for (int m = 0; m < (1 << N); m++)
        v[m] = sqrt((double)__builtin_popcount((unsigned)m));
    struct table_game t = { .v = v };
    struct policy_contribution c = contribution(48, 0, 0);
    double phi[N];
    uint64_t evals;
    int exact;
    assert_int_equal(credit_shapley(N, table_value, &t, &c, seed0, phi, &evals, &exact), 0);
    assert_int_equal(exact, 0);
    assert_int_equal(t.calls, 1 + 44);   /* v(N) and the block's 44 prefixes */
    for (int i = 0; i < N; i++)
        assert_true(fabs(phi[i] - sqrt((double)N) / N) < 1e-12);
}

static void gtg_is_deterministic(void **state)
{
    struct formula_game f = { .n = 8, .w = { 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 0.3, 0.02 },
                              .kind = 1 };
    struct policy_contribution c = contribution(50, 0.01, 0);
    double a[8], b[8];
    uint64_t ea, eb;
    assert_int_equal(credit_shapley(8, formula_value, &f, &c, seed0, a, &ea, NULL), 0);
    assert_int_equal(credit_shapley(8, formula_value, &f, &c, seed0, b, &eb, NULL), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ea, eb);
    uint8_t other[32] = { 9 };
    assert_int_equal(credit_shapley(8, formula_value, &f, &c, other, b, &eb, NULL), 0);
    assert_true(memcmp(a, b, sizeof a) != 0);   /* another seed, other permutations */
}

/* ---- the round seed --------------------------------------------------------------- */

/* BLAKE2b-256("aulac/credit/seed/v1" 00 "demo" 00 || 3 (u64 BE) || 11*32 || 22*32 || 33*32),
 * computed with Python's hashlib (credit/README.md). */
static void round_seed_vector(void **state)
{
    struct agg_update u[2];
    memset(u, 0, sizeof u);
    memset(u[0].payload_hash, 0x22, 32);
    memset(u[1].payload_hash, 0x33, 32);
    uint8_t base[32], seed[32];
    memset(base, 0x11, 32);
    credit_round_seed("demo", 3, base, u, 2, seed);
    char hex[65];
    hex_encode(seed, 32, hex);
    assert_string_equal(hex, "9586937ec2bc65aaf9bf5c3f77ef67750bf8b915cc50a8edfdd22108e0a1b821");
}

/* ---- measures of a round ---------------------------------------------------------- */

static struct codec_params dense_fp32(size_t n)
{
    struct codec_params p = { .format_version = CODEC_FORMAT_VERSION,
                              .block_size = n < 4096 ? (uint32_t)n : 4096,
                              .k_per_block = 4096, .quant = CODEC_QUANT_FP32 };
    return p;
}

static void set_update(struct agg_update *u, const char *member, const float *delta, size_t n,
                       uint64_t tokens)
{
    memset(u, 0, sizeof *u);
    snprintf(u->member, sizeof u->member, "%s", member);
    struct codec_params cp = dense_fp32(n);
    uint8_t *payload;
    size_t len;
    assert_int_equal(codec_encode(delta, n, &cp, NULL, &payload, &len), 0);
    u->payload = payload;
    u->len = len;
    u->tokens = tokens;
    u->weight = 1;
    crypto_generichash(u->payload_hash, 32, payload, len, NULL, 0);
}

static void free_updates(struct agg_update *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)u[i].payload);
}

struct round_fixture {
    struct policy policy;
    struct policy_round_plan plan;
    struct outer_opt outer;
    struct credit_round_input in;
};

static void fixture_init(struct round_fixture *f, uint32_t measures, size_t n_params,
                         const float *base, const struct agg_update *u, size_t n,
                         struct evaluator *ev)
{
    memset(f, 0, sizeof *f);
    f->policy.contribution = contribution(64, 0.01, 1e-4);
    f->policy.contribution.measures = measures;
    f->plan.uplink = dense_fp32(n_params);
    f->plan.average = POLICY_AVERAGE_MEMBERS;
    f->plan.sparse_scale = 1;
    f->plan.n_params = n_params;
    assert_int_equal(outer_init(&f->outer, OUTER_FEDAVG, n_params, 1.0f, 0), 0);
    f->in.policy = &f->policy;
    f->in.plan = &f->plan;
    f->in.outer = &f->outer;
    f->in.base = base;
    f->in.n_params = n_params;
    f->in.updates = u;
    f->in.n = n;
    f->in.ev = ev;
    memset(f->in.seed, 7, 32);
}

#define M(x) (1u << POLICY_MEASURE_##x)

/* alignment = cos(decode(u_i), avg_N), uniform weights:
 *   a = x, b = -3x          avg = -x:        a -1, b 1
 *   c = x, d = -x + y (y on other coordinates than x)   avg = y/2:  c 0
 *   a zero update           0 */
static void alignment_orthogonal_opposite_identical(void **state)
{
    enum { N = 64 };
    float x[N] = { 0 }, y[N] = { 0 }, neg3x[N], d[N], zero[N] = { 0 };
    for (int i = 0; i < N / 2; i++)
        x[i] = (float)(i % 5) - 2.0f;
    for (int i = N / 2; i < N; i++)
        y[i] = (float)(i % 3) + 0.5f;
    for (int i = 0; i < N; i++) {
        neg3x[i] = -3 * x[i];
        d[i] = -x[i] + y[i];
    }
    struct agg_update u[3];
    set_update(&u[0], "a", x, N, 10);
    set_update(&u[1], "b", neg3x, N, 20);
    struct round_fixture f;
    fixture_init(&f, M(TOKENS) | M(ROUNDS) | M(BYTES) | M(ALIGNMENT), N, zero, u, 2, NULL);
    struct credit_round_scores s;
    char why[256];
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_int_equal(s.n, 2);
    assert_float_equal(s.value[0][POLICY_MEASURE_ALIGNMENT], -1, 1e-12);
    assert_float_equal(s.value[1][POLICY_MEASURE_ALIGNMENT], 1, 1e-12);
    assert_true(s.value[0][POLICY_MEASURE_TOKENS] == 10 && s.value[1][POLICY_MEASURE_TOKENS] == 20);
    assert_true(s.value[0][POLICY_MEASURE_ROUNDS] == 1);
    assert_true(s.value[1][POLICY_MEASURE_BYTES] == (double)u[1].len);
    assert_true(s.value[0][POLICY_MEASURE_LOO] == 0);   /* not measured */
    assert_int_equal(s.evaluations, 0);
    assert_true(isnan(s.base_loss) && isnan(s.model_loss));
    credit_round_scores_free(&s);
    free_updates(u, 2);

    set_update(&u[0], "c", x, N, 1);
    set_update(&u[1], "d", d, N, 1);
    set_update(&u[2], "e", zero, N, 1);
    fixture_init(&f, M(ALIGNMENT), N, zero, u, 3, NULL);
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_true(s.value[0][POLICY_MEASURE_ALIGNMENT] == 0);   /* exactly orthogonal */
    assert_true(s.value[1][POLICY_MEASURE_ALIGNMENT] > 0.5);
    assert_true(s.value[2][POLICY_MEASURE_ALIGNMENT] == 0);   /* a zero update */
    assert_true(s.value[0][POLICY_MEASURE_TOKENS] == 0);      /* not measured */
    credit_round_scores_free(&s);
    outer_free(&f.outer);
    free_updates(u, 3);
}

/* Under a robust rule the measures use the rule's average (agg_combine_coalition):
 * a = b = x and an attacker c = -10x: fedavg's average is -8x/3 (a, b -1; c 1), the
 * median's and multi-Krum's (f = 1 of 5, select 3) is x (a, b 1; c -1). */
static void alignment_follows_the_rule(void **state)
{
    enum { N = 64 };
    float x[N], bad[N], x2[N], zero[N] = { 0 };
    for (int i = 0; i < N; i++) {
        x[i] = (float)(i % 7) - 3.0f;
        x2[i] = x[i] * 1.0625f;
        bad[i] = -10 * x[i];
    }
    struct agg_update u[5];
    set_update(&u[0], "a", x, N, 1);
    set_update(&u[1], "b", x, N, 1);
    set_update(&u[2], "c", bad, N, 1);
    struct round_fixture f;
    struct credit_round_scores s;
    char why[256];
    fixture_init(&f, M(ALIGNMENT), N, zero, u, 3, NULL);
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_float_equal(s.value[0][POLICY_MEASURE_ALIGNMENT], -1, 1e-9);
    assert_float_equal(s.value[2][POLICY_MEASURE_ALIGNMENT], 1, 1e-9);
    credit_round_scores_free(&s);
    f.policy.aggregation.rule = POLICY_AGG_MEDIAN;
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_float_equal(s.value[0][POLICY_MEASURE_ALIGNMENT], 1, 1e-9);
    assert_float_equal(s.value[1][POLICY_MEASURE_ALIGNMENT], 1, 1e-9);
    assert_float_equal(s.value[2][POLICY_MEASURE_ALIGNMENT], -1, 1e-9);
    credit_round_scores_free(&s);
    outer_free(&f.outer);
    set_update(&u[3], "d", x2, N, 1);
    set_update(&u[4], "e", x, N, 1);
    fixture_init(&f, M(ALIGNMENT), N, zero, u, 5, NULL);
    f.policy.aggregation.rule = POLICY_AGG_MULTI_KRUM;
    f.policy.aggregation.byzantine = 1;
    f.policy.aggregation.select = 3;
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_float_equal(s.value[0][POLICY_MEASURE_ALIGNMENT], 1, 1e-6);
    assert_float_equal(s.value[2][POLICY_MEASURE_ALIGNMENT], -1, 1e-6);
    credit_round_scores_free(&s);
    outer_free(&f.outer);
    free_updates(u, 5);
}

/* A tiny GPT-2 evaluated on a short text. */
static const char eval_text[] =
    "Nguoi ta noi rang hoc that nhieu thi biet that nhieu. The quick brown fox jumps over "
    "the lazy dog; pack my box with five dozen liquor jugs. Mot con ngua dau ca tau bo co. "
    "Sphinx of black quartz, judge my vow. How vexingly quick daft zebras jump! "
    "Bay gio la may gio roi? Toi khong biet, nhung troi da toi.";

static const struct gpt2_config tiny = { .vocab_size = 256, .max_seq_len = 16, .n_layer = 1,
                                         .n_head = 2, .n_embd = 16 };

struct gpt2_round {
    struct evalset es;
    struct evaluator *ev;
    size_t n;
    float *base, *grad;
};

/* base = init(seed 7); grad = d L / d params on the evaluation windows. */
static void gpt2_round_init(struct gpt2_round *g)
{
    memset(g, 0, sizeof *g);
    g->es.text = (uint8_t *)eval_text;
    g->es.len = strlen(eval_text);
    char why[256];
    assert_int_equal(evaluator_create(&tiny, &g->es, 4, 16, &g->ev, why, sizeof why), 0);
    g->n = gpt2_num_params(&tiny);
    g->base = malloc(g->n * sizeof(float));
    g->grad = malloc(g->n * sizeof(float));
    assert_int_equal(gpt2_init_params(&tiny, 7, g->base), 0);
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&tiny, 4, 16, &m), 0);
    memcpy(gpt2_params(m), g->base, g->n * sizeof(float));
    int32_t in[64], tg[64];
    for (int w = 0; w < 4; w++)
        for (int t = 0; t < 16; t++) {
            size_t s = (size_t)w * (g->es.len - 17) / 3;
            in[w * 16 + t] = (uint8_t)eval_text[s + t];
            tg[w * 16 + t] = (uint8_t)eval_text[s + t + 1];
        }
    float loss;
    assert_int_equal(gpt2_forward(m, in, tg, 4, 16, &loss), 0);
    assert_int_equal(gpt2_backward(m), 0);
    memcpy(g->grad, gpt2_grads(m), g->n * sizeof(float));
    gpt2_destroy(m);
}

static void gpt2_round_free(struct gpt2_round *g)
{
    evaluator_destroy(g->ev);
    free(g->base);
    free(g->grad);
}

/* Members: a sends a good update u = 0.5 grad (the outer step is base - avg), b sends
 * -u, c sends 0.5 u. b's update undoes a's: leaving it out helps (loo < 0), and its
 * Shapley value is negative. */
static void negated_update_gets_negative_loo_and_shapley(void **state)
{
    struct gpt2_round g;
    gpt2_round_init(&g);
    float *good = malloc(g.n * sizeof(float)), *bad = malloc(g.n * sizeof(float)),
          *half = malloc(g.n * sizeof(float));
    for (size_t i = 0; i < g.n; i++) {
        good[i] = 0.5f * g.grad[i];
        bad[i] = -good[i];
        half[i] = 0.5f * good[i];
    }
    struct agg_update u[3];
    set_update(&u[0], "a", good, g.n, 100);
    set_update(&u[1], "b", bad, g.n, 100);
    set_update(&u[2], "c", half, g.n, 100);
    struct round_fixture f;
    const uint32_t all = M(TOKENS) | M(ROUNDS) | M(BYTES) | M(ALIGNMENT) | M(LOO) | M(SHAPLEY);
    fixture_init(&f, all, g.n, g.base, u, 3, g.ev);
    struct credit_round_scores s, again;
    char why[256];
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    const double vN = s.base_loss - s.model_loss;
    print_message("base %.6f model %.6f; loo a %.6f b %.6f c %.6f; shapley a %.6f b %.6f "
                  "c %.6f\n", s.base_loss, s.model_loss, s.value[0][POLICY_MEASURE_LOO],
                  s.value[1][POLICY_MEASURE_LOO], s.value[2][POLICY_MEASURE_LOO],
                  s.value[0][POLICY_MEASURE_SHAPLEY], s.value[1][POLICY_MEASURE_SHAPLEY],
                  s.value[2][POLICY_MEASURE_SHAPLEY]);
    assert_true(vN > 0);
    assert_true(s.value[0][POLICY_MEASURE_LOO] > 0);
    assert_true(s.value[1][POLICY_MEASURE_LOO] < 0);
    assert_true(s.value[1][POLICY_MEASURE_SHAPLEY] < 0);
    assert_true(s.value[0][POLICY_MEASURE_SHAPLEY] > s.value[2][POLICY_MEASURE_SHAPLEY]);
    assert_true(s.value[2][POLICY_MEASURE_SHAPLEY] > 0);
    assert_float_equal(s.value[0][POLICY_MEASURE_SHAPLEY] + s.value[1][POLICY_MEASURE_SHAPLEY] +
                       s.value[2][POLICY_MEASURE_SHAPLEY], vN, 1e-12);
    assert_float_equal(s.value[1][POLICY_MEASURE_ALIGNMENT], -1, 1e-6);
    assert_float_equal(s.value[0][POLICY_MEASURE_ALIGNMENT], 1, 1e-6);
    assert_int_equal(s.exact, 1);
    assert_int_equal(s.evaluations, 8);   /* base, N, and the 6 other coalitions */

    /* Same inputs, same bytes. */
    assert_int_equal(credit_score_round(&f.in, &again, why, sizeof why), 0);
    assert_memory_equal(s.value, again.value, 3 * sizeof *s.value);
    assert_memory_equal(&s.base_loss, &again.base_loss, sizeof(double));
    assert_memory_equal(&s.model_loss, &again.model_loss, sizeof(double));
    assert_int_equal(s.evaluations, again.evaluations);
    credit_round_scores_free(&s);
    credit_round_scores_free(&again);

    /* One member: loo = shapley = v(N). */
    fixture_init(&f, all, g.n, g.base, u, 1, g.ev);
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_true(s.value[0][POLICY_MEASURE_LOO] == s.base_loss - s.model_loss);
    assert_true(s.value[0][POLICY_MEASURE_SHAPLEY] == s.base_loss - s.model_loss);
    assert_int_equal(s.evaluations, 2);
    credit_round_scores_free(&s);

    /* No evaluator: refused. */
    fixture_init(&f, all, g.n, g.base, u, 3, NULL);
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), CREDIT_ERR_ARG);
    outer_free(&f.outer);
    free_updates(u, 3);
    free(good);
    free(bad);
    free(half);
    gpt2_round_free(&g);
}

/* b's update blows the model up (its losses are not finite): those coalitions count at
 * CREDIT_LOSS_CAP, so the round is scored and b gets the negative values. */
static void wild_update_counts_at_the_loss_cap(void **state)
{
    struct gpt2_round g;
    gpt2_round_init(&g);
    float *good = malloc(g.n * sizeof(float)), *wild = malloc(g.n * sizeof(float)),
          *half = malloc(g.n * sizeof(float));
    for (size_t i = 0; i < g.n; i++) {
        good[i] = 0.5f * g.grad[i];
        wild[i] = (i % 2 ? 1e30f : -1e30f);
        half[i] = 0.5f * good[i];
    }
    struct agg_update u[3];
    set_update(&u[0], "a", good, g.n, 100);
    set_update(&u[1], "b", wild, g.n, 100);
    set_update(&u[2], "c", half, g.n, 100);
    struct round_fixture f;
    fixture_init(&f, M(LOO) | M(SHAPLEY), g.n, g.base, u, 3, g.ev);
    struct credit_round_scores s;
    char why[256];
    assert_int_equal(credit_score_round(&f.in, &s, why, sizeof why), 0);
    assert_true(s.model_loss == CREDIT_LOSS_CAP);
    assert_true(s.base_loss < CREDIT_LOSS_CAP);
    assert_true(s.value[1][POLICY_MEASURE_LOO] < -50);
    assert_true(s.value[1][POLICY_MEASURE_SHAPLEY] < -50);
    assert_true(s.value[0][POLICY_MEASURE_SHAPLEY] > s.value[1][POLICY_MEASURE_SHAPLEY]);
    assert_float_equal(s.value[0][POLICY_MEASURE_SHAPLEY] + s.value[1][POLICY_MEASURE_SHAPLEY] +
                       s.value[2][POLICY_MEASURE_SHAPLEY], s.base_loss - s.model_loss, 1e-9);
    credit_round_scores_free(&s);
    outer_free(&f.outer);
    free_updates(u, 3);
    free(good);
    free(wild);
    free(half);
    gpt2_round_free(&g);
}

/* Five members and a budget of 12 (< 30 subsets): GTG on the real game, deterministic,
 * within the budget; a damaged payload names its member. */
static void gtg_round_is_deterministic_and_within_budget(void **state)
{
    struct gpt2_round g;
    gpt2_round_init(&g);
    enum { K = 5 };
    float *d = malloc(g.n * sizeof(float));
    struct agg_update u[K];
    for (int k = 0; k < K; k++) {
        for (size_t i = 0; i < g.n; i++)
            d[i] = g.grad[i] * (float)(k - 1) * 0.3f;   /* -0.3, 0, 0.3, 0.6, 0.9 of grad */
        char id[8];
        snprintf(id, sizeof id, "m%d", k);
        set_update(&u[k], id, d, g.n, 10);
    }
    struct round_fixture f;
    fixture_init(&f, M(LOO) | M(SHAPLEY), g.n, g.base, u, K, g.ev);
    f.policy.contribution.shapley_budget = 12;
    struct credit_round_scores a, b;
    char why[256];
    assert_int_equal(credit_score_round(&f.in, &a, why, sizeof why), 0);
    assert_int_equal(a.exact, 0);
    assert_true(a.evaluations <= 2 + K + 12);
    assert_true(a.value[0][POLICY_MEASURE_SHAPLEY] < 0);
    assert_true(a.value[4][POLICY_MEASURE_SHAPLEY] > a.value[2][POLICY_MEASURE_SHAPLEY]);
    assert_int_equal(credit_score_round(&f.in, &b, why, sizeof why), 0);
    assert_memory_equal(a.value, b.value, K * sizeof *a.value);
    assert_int_equal(a.evaluations, b.evaluations);
    credit_round_scores_free(&a);
    credit_round_scores_free(&b);

    u[3].len -= 3;
    assert_int_equal(credit_score_round(&f.in, &a, why, sizeof why), CREDIT_ERR_PAYLOAD);
    assert_non_null(strstr(why, "m3"));
    u[3].len += 3;
    outer_free(&f.outer);
    free_updates(u, K);
    free(d);
    gpt2_round_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_shapley_of_the_worked_example),
        cmocka_unit_test(budget_below_all_subsets_is_gtg),
        cmocka_unit_test(gtg_is_exact_on_an_additive_game),
        cmocka_unit_test(gtg_is_close_to_exact_on_a_concave_game),
        cmocka_unit_test(gtg_converges_to_exact),
        cmocka_unit_test(within_round_truncation_skips_evaluations),
        cmocka_unit_test(between_round_truncation_gives_zero),
        cmocka_unit_test(first_permutation_follows_the_seeded_stream),
        cmocka_unit_test(gtg_first_n_permutations_are_position_stratified),
        cmocka_unit_test(gtg_is_deterministic),
        cmocka_unit_test(round_seed_vector),
        cmocka_unit_test(alignment_orthogonal_opposite_identical),
        cmocka_unit_test(alignment_follows_the_rule),
        cmocka_unit_test(negated_update_gets_negative_loo_and_shapley),
        cmocka_unit_test(wild_update_counts_at_the_loss_cap),
        cmocka_unit_test(gtg_round_is_deterministic_and_within_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
