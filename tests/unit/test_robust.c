/* aggregate/robust.h: every rule against a straightforward dense reference computed
 * here from the decoded updates (each payload decoded whole into its own vector), on
 * small vectors: several n, dense and sparse payloads, average members and senders,
 * weights; Krum against a scaled attacker; clipping; DP clipping and noise; NaN and too
 * few updates refused; the contribution measures' coalition fallback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate/robust.h"
#include "codec/codec.h"
#include "common/hex.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double uniform(void) { return (double)(next_u64() >> 11) * 0x1p-53; }
static float gauss(void)
{
    double u1 = uniform() + 1e-300, u2 = uniform();
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

#define MAXN 12

/* A round: k updates of np params, their payloads and each one decoded densely. */
struct round {
    size_t k, np;
    struct policy_round_plan plan;
    struct agg_update u[MAXN];
    float *dec[MAXN];           /* decoded update i */
    uint8_t *has[MAXN];         /* 1 where payload i carries the coordinate */
};

static void round_free(struct round *r)
{
    for (size_t i = 0; i < r->k; i++) {
        free((void *)r->u[i].payload);
        free(r->dec[i]);
        free(r->has[i]);
    }
    memset(r, 0, sizeof *r);
}

static void set_update(struct round *r, size_t i, const float *delta, double weight)
{
    uint8_t *p;
    size_t len;
    assert_int_equal(codec_encode(delta, r->np, &r->plan.uplink, NULL, &p, &len), 0);
    struct agg_update *x = &r->u[i];
    memset(x, 0, sizeof *x);
    snprintf(x->member, sizeof x->member, "m%02zu", i);
    x->payload = p;
    x->len = len;
    x->weight = weight;
    x->tokens = (uint64_t)weight;
    free(r->dec[i]);
    free(r->has[i]);
    r->dec[i] = calloc(r->np, sizeof(float));
    r->has[i] = calloc(r->np, 1);
    float *sup = calloc(r->np, sizeof(float));
    assert_int_equal(codec_decode_accumulate_support(p, len, r->np, 1.0f, r->dec[i], sup, NULL, 0),
                     0);
    for (size_t j = 0; j < r->np; j++)
        r->has[i][j] = sup[j] != 0;
    free(sup);
}

/* k random updates; sparse: blocks of 64 keeping 8; int8 or fp32; zstd or not. */
static void round_make(struct round *r, size_t k, size_t np, int sparse,
                       enum policy_average average, enum codec_quant q, int zstd)
{
    memset(r, 0, sizeof *r);
    r->k = k;
    r->np = np;
    r->plan.round = 1;
    codec_params_default(&r->plan.uplink);
    r->plan.uplink.block_size = 64;
    r->plan.uplink.k_per_block = sparse ? 8 : 64;
    r->plan.uplink.quant = q;
    r->plan.uplink.zstd_level = zstd ? 3 : 0;
    r->plan.uplink.error_feedback = 0;
    r->plan.average = average;
    r->plan.sparse_scale = sparse ? 1.5f : 1.0f;
    float *d = malloc(np * sizeof *d);
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < np; j++)
            d[j] = gauss() * (float)(1 + i % 3);
        set_update(r, i, d, 1.0 + (double)(next_u64() % 5));
    }
    free(d);
}

static void policy_of(struct policy *p, enum policy_agg_rule rule)
{
    memset(p, 0, sizeof *p);
    p->aggregation.rule = rule;
    p->aggregation.weighting = POLICY_WEIGHT_TOKENS;
}

static int senders(const struct round *r)
{
    return r->plan.average == POLICY_AVERAGE_SENDERS &&
           r->plan.uplink.k_per_block < r->plan.uplink.block_size;
}

static float factor(const struct round *r)
{
    return r->plan.uplink.k_per_block < r->plan.uplink.block_size ? r->plan.sparse_scale : 1.0f;
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The coordinate-wise reference: sort the values (qsort), then the formula. */
static void reference_coordinatewise(const struct round *r, const uint8_t *inc, int median,
                                     double trim, float *out)
{
    float v[MAXN];
    for (size_t j = 0; j < r->np; j++) {
        size_t m = 0;
        for (size_t i = 0; i < r->k; i++)
            if ((!inc || inc[i]) && (!senders(r) || r->has[i][j]))
                v[m++] = r->dec[i][j];
        double x = 0;
        if (m) {
            qsort(v, m, sizeof v[0], cmpf);
            if (median) {
                x = m % 2 ? v[m / 2] : 0.5 * ((double)v[m / 2 - 1] + (double)v[m / 2]);
            } else {
                size_t t = (size_t)floor(trim * (double)m);
                for (size_t i = t; i < m - t; i++)
                    x += v[i];
                x /= (double)(m - 2 * t);
            }
        }
        out[j] = (float)x * factor(r);
    }
}

static void assert_close(const float *a, const float *b, size_t n, double tol)
{
    for (size_t j = 0; j < n; j++)
        if (!(fabs((double)a[j] - (double)b[j]) <= tol * (1 + fabs((double)b[j]))))
            fail_msg("coordinate %zu: %.9g, reference %.9g", j, (double)a[j], (double)b[j]);
}

/* The rounds every rule is checked on. */
struct shape {
    size_t k, np;
    int sparse;
    enum policy_average avg;
    enum codec_quant q;
    int zstd;
};
static const struct shape shapes[] = {
    { 1, 100, 0, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_FP32, 0 },
    { 2, 129, 1, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_INT8, 1 },
    { 4, 1000, 0, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_INT8, 1 },
    { 5, 1000, 1, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_INT8, 0 },
    { 5, 1000, 1, POLICY_AVERAGE_SENDERS, CODEC_QUANT_INT8, 1 },
    { 7, 777, 1, POLICY_AVERAGE_SENDERS, CODEC_QUANT_FP32, 0 },
    { 8, 2000, 0, POLICY_AVERAGE_SENDERS, CODEC_QUANT_FP16, 1 },
    { 9, 513, 1, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_INT4, 1 },
    { 12, 300, 1, POLICY_AVERAGE_SENDERS, CODEC_QUANT_FP8_E4M3, 0 },
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static void make_shape(struct round *r, const struct shape *s)
{
    round_make(r, s->k, s->np, s->sparse, s->avg, s->q, s->zstd);
}

static void fedavg_is_agg_average_bit_for_bit(void **state)
{
    for (size_t t = 0; t < NSHAPES; t++) {
        struct round r;
        make_shape(&r, &shapes[t]);
        struct policy p;
        policy_of(&p, POLICY_AGG_FEDAVG);
        float *a = malloc(r.np * 4), *b = malloc(r.np * 4), *s = malloc(r.np * 4);
        uint8_t inc[MAXN];
        for (size_t i = 0; i < r.k; i++)
            inc[i] = (uint8_t)(i % 3 != 1 || r.k == 1);
        for (int with_inc = 0; with_inc < 2; with_inc++) {
            const uint8_t *in = with_inc ? inc : NULL;
            struct agg_member_stat st[MAXN];
            char why[256];
            assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, in, a, s, st, why,
                                         sizeof why), 0);
            assert_int_equal(agg_average(&r.plan, r.np, r.u, r.k, in, b, s, why, sizeof why), 0);
            assert_memory_equal(a, b, r.np * 4);
            for (size_t i = 0; i < r.k; i++) {
                assert_int_equal(st[i].used, !in || in[i]);
                assert_true(st[i].scale == (in && !in[i] ? 0.0f : 1.0f));
            }
            assert_int_equal(agg_combine_coalition(&p, &r.plan, r.np, r.u, r.k, in, a, s, why,
                                                   sizeof why), 0);
            assert_memory_equal(a, b, r.np * 4);
        }
        free(a);
        free(b);
        free(s);
        round_free(&r);
    }
}

static void median_and_trimmed_mean_match_the_reference(void **state)
{
    for (size_t t = 0; t < NSHAPES; t++) {
        struct round r;
        make_shape(&r, &shapes[t]);
        float *a = malloc(r.np * 4), *ref = malloc(r.np * 4), *s = malloc(r.np * 4);
        char why[256];
        struct policy p;
        policy_of(&p, POLICY_AGG_MEDIAN);
        assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why,
                                     sizeof why), 0);
        reference_coordinatewise(&r, NULL, 1, 0, ref);
        assert_close(a, ref, r.np, 1e-7);
        /* Deterministic: the same input gives the same bytes. */
        memcpy(ref, a, r.np * 4);
        assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why,
                                     sizeof why), 0);
        assert_memory_equal(a, ref, r.np * 4);
        static const double trims[] = { 0.1, 0.2, 0.34, 0.49 };
        for (size_t e = 0; e < 4; e++) {
            policy_of(&p, POLICY_AGG_TRIMMED_MEAN);
            p.aggregation.trim = trims[e];
            assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why,
                                         sizeof why), 0);
            reference_coordinatewise(&r, NULL, 0, trims[e], ref);
            assert_close(a, ref, r.np, 1e-6);
        }
        /* A subset through include. */
        if (r.k >= 3) {
            uint8_t inc[MAXN];
            for (size_t i = 0; i < r.k; i++)
                inc[i] = i != 1;
            policy_of(&p, POLICY_AGG_MEDIAN);
            assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, inc, a, s, NULL, why,
                                         sizeof why), 0);
            reference_coordinatewise(&r, inc, 1, 0, ref);
            assert_close(a, ref, r.np, 1e-7);
        }
        free(a);
        free(ref);
        free(s);
        round_free(&r);
    }
}

/* Hand-worked: 4 dense updates of 3 values; median of (1, 2, 3, 10) = 2.5; trimmed mean
 * with trim 0.25 of (1, 2, 3, 10) = 2.5, of (-8, 0, 1, 1) = 0.5. */
static void hand_worked_order_statistics(void **state)
{
    struct round r;
    memset(&r, 0, sizeof r);
    r.k = 4;
    r.np = 3;
    codec_params_default(&r.plan.uplink);
    r.plan.uplink.block_size = 4;
    r.plan.uplink.k_per_block = 4;
    r.plan.uplink.quant = CODEC_QUANT_FP32;
    r.plan.uplink.zstd_level = 0;
    r.plan.uplink.error_feedback = 0;
    r.plan.sparse_scale = 1;
    const float x[4][3] = { { 10, 1, 0 }, { 2, -8, 0 }, { 1, 1, 5 }, { 3, 0, 0 } };
    for (size_t i = 0; i < 4; i++)
        set_update(&r, i, x[i], 1);
    float a[3], s[3];
    char why[256];
    struct policy p;
    policy_of(&p, POLICY_AGG_MEDIAN);
    assert_int_equal(agg_combine(&p, &r.plan, 3, r.u, 4, NULL, a, s, NULL, why, sizeof why), 0);
    assert_true(a[0] == 2.5f && a[1] == 0.5f && a[2] == 0.0f);
    policy_of(&p, POLICY_AGG_TRIMMED_MEAN);
    p.aggregation.trim = 0.25;
    assert_int_equal(agg_combine(&p, &r.plan, 3, r.u, 4, NULL, a, s, NULL, why, sizeof why), 0);
    assert_true(a[0] == 2.5f && a[1] == 0.5f && a[2] == 0.0f);
    /* Three of them: the median is the middle one, trim 0.25 drops none (floor 0.75). */
    uint8_t inc[4] = { 1, 1, 1, 0 };
    assert_int_equal(agg_combine(&p, &r.plan, 3, r.u, 4, inc, a, s, NULL, why, sizeof why), 0);
    assert_true(fabsf(a[0] - 13.0f / 3) < 1e-6f && fabsf(a[1] + 2.0f) < 1e-6f &&
                fabsf(a[2] - 5.0f / 3) < 1e-6f);
    policy_of(&p, POLICY_AGG_MEDIAN);
    assert_int_equal(agg_combine(&p, &r.plan, 3, r.u, 4, inc, a, s, NULL, why, sizeof why), 0);
    assert_true(a[0] == 2.0f && a[1] == 1.0f && a[2] == 0.0f);
    round_free(&r);
}

static double norm_of(const float *x, size_t n)
{
    double s = 0;
    for (size_t j = 0; j < n; j++)
        s += (double)x[j] * x[j];
    return sqrt(s);
}

/* The clip reference: each update scaled by min(1, bound / ||d||), weighted mean. */
static void reference_clip(const struct round *r, double bound, int uniform_w, float *out)
{
    for (size_t j = 0; j < r->np; j++) {
        double acc = 0, w = 0, sup = 0;
        for (size_t i = 0; i < r->k; i++) {
            double wi = uniform_w ? 1.0 : r->u[i].weight;
            double nrm = norm_of(r->dec[i], r->np);
            double c = nrm > bound ? bound / nrm : 1.0;
            acc += wi * c * r->dec[i][j];
            w += wi;
            sup += r->has[i][j] ? wi : 0;
        }
        double x = senders(r) ? (sup > 0 ? acc * factor(r) / sup : 0) : acc * factor(r) / w;
        out[j] = (float)x;
    }
}

static void clip_scales_each_update(void **state)
{
    for (size_t t = 0; t < NSHAPES; t++) {
        struct round r;
        make_shape(&r, &shapes[t]);
        float *a = malloc(r.np * 4), *ref = malloc(r.np * 4), *s = malloc(r.np * 4);
        char why[256];
        struct policy p;
        policy_of(&p, POLICY_AGG_CLIP);
        /* A bound between the smallest and the largest norm: some clipped, some not. */
        double lo = INFINITY, hi = 0;
        for (size_t i = 0; i < r.k; i++) {
            double x = norm_of(r.dec[i], r.np);
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        p.aggregation.norm_bound = r.k > 1 ? (lo + hi) / 2 : lo / 2;
        struct agg_member_stat st[MAXN];
        assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, st, why,
                                     sizeof why), 0);
        reference_clip(&r, p.aggregation.norm_bound, 0, ref);
        assert_close(a, ref, r.np, 2e-6);
        int clipped = 0;
        for (size_t i = 0; i < r.k; i++) {
            double x = norm_of(r.dec[i], r.np);
            assert_true(fabs(st[i].norm - x) <= 1e-6 * x);   /* codec_payload_norm: code^2 s^2 in double */
            if (x > p.aggregation.norm_bound) {
                clipped++;
                assert_true(st[i].scale < 1.0f);
                assert_true(st[i].norm * st[i].scale <= p.aggregation.norm_bound * (1 + 1e-6));
            } else {
                assert_true(st[i].scale == 1.0f);
            }
        }
        assert_true(clipped >= 1);
        /* A bound above every norm: fedavg bit for bit. */
        p.aggregation.norm_bound = hi * 2;
        assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why,
                                     sizeof why), 0);
        assert_int_equal(agg_average(&r.plan, r.np, r.u, r.k, NULL, ref, s, why, sizeof why), 0);
        assert_memory_equal(a, ref, r.np * 4);
        free(a);
        free(ref);
        free(s);
        round_free(&r);
    }
}

/* DP-FedAvg's clipping: privacy.clip, uniform weights whatever the updates say; with
 * the clip rule, the smaller bound. */
static void privacy_clips_with_uniform_weights(void **state)
{
    struct round r;
    round_make(&r, 6, 1000, 1, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_INT8, 1);
    float *a = malloc(r.np * 4), *ref = malloc(r.np * 4), *s = malloc(r.np * 4);
    char why[256];
    struct policy p;
    policy_of(&p, POLICY_AGG_FEDAVG);
    p.privacy.enabled = 1;
    p.privacy.clip = 20;
    p.privacy.noise_multiplier = 1;
    p.privacy.delta = 1e-5;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why, sizeof why),
                     0);
    reference_clip(&r, 20, 1, ref);
    assert_close(a, ref, r.np, 2e-6);
    policy_of(&p, POLICY_AGG_CLIP);
    p.aggregation.norm_bound = 40;
    p.privacy.enabled = 1;
    p.privacy.clip = 20;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why, sizeof why),
                     0);
    assert_close(a, ref, r.np, 2e-6);
    p.aggregation.norm_bound = 15;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why, sizeof why),
                     0);
    reference_clip(&r, 15, 1, ref);
    assert_close(a, ref, r.np, 2e-6);
    /* Privacy with a rule it cannot cover, or with average senders: refused. */
    policy_of(&p, POLICY_AGG_MEDIAN);
    p.privacy.enabled = 1;
    p.privacy.clip = 20;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why, sizeof why),
                     AGG_ERR_RULE);
    policy_of(&p, POLICY_AGG_FEDAVG);
    p.privacy.enabled = 1;
    p.privacy.clip = 20;
    r.plan.average = POLICY_AVERAGE_SENDERS;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, NULL, why, sizeof why),
                     AGG_ERR_RULE);
    free(a);
    free(ref);
    free(s);
    round_free(&r);
}

/* The Krum reference: distances of the decoded (zero-filled) vectors, scores, the m of
 * lowest score (ties to the lower index). */
static void reference_krum(const struct round *r, size_t f, size_t m, uint8_t *sel,
                           double *score)
{
    size_t k = r->k;
    double d[MAXN][MAXN];
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++) {
            double s = 0;
            for (size_t j = 0; j < r->np; j++) {
                double t = (double)r->dec[a][j] - (double)r->dec[b][j];
                s += t * t;
            }
            d[a][b] = s;
        }
    for (size_t a = 0; a < k; a++) {
        double row[MAXN];
        size_t c = 0;
        for (size_t b = 0; b < k; b++)
            if (b != a)
                row[c++] = d[a][b];
        for (size_t x = 1; x < c; x++)
            for (size_t y = x; y > 0 && row[y - 1] > row[y]; y--) {
                double t = row[y];
                row[y] = row[y - 1];
                row[y - 1] = t;
            }
        score[a] = 0;
        for (size_t x = 0; x < k - f - 2; x++)
            score[a] += row[x];
    }
    memset(sel, 0, k);
    for (size_t e = 0; e < m; e++) {
        size_t best = SIZE_MAX;
        for (size_t a = 0; a < k; a++)
            if (!sel[a] && (best == SIZE_MAX || score[a] < score[best]))
                best = a;
        sel[best] = 1;
    }
}

static void multi_krum_matches_the_reference(void **state)
{
    for (size_t t = 0; t < NSHAPES; t++) {
        if (shapes[t].k < 5)
            continue;
        struct round r;
        make_shape(&r, &shapes[t]);
        float *a = malloc(r.np * 4), *ref = malloc(r.np * 4), *s = malloc(r.np * 4);
        char why[256];
        for (size_t f = 1; 2 * f + 3 <= r.k; f++) {
            for (size_t m = 0; m <= 2; m++) {
                struct policy p;
                policy_of(&p, POLICY_AGG_MULTI_KRUM);
                p.aggregation.byzantine = (uint32_t)f;
                p.aggregation.select = (uint32_t)m;    /* 0: k - f */
                struct agg_member_stat st[MAXN];
                assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, r.k, NULL, a, s, st, why,
                                             sizeof why), 0);
                uint8_t sel[MAXN];
                double score[MAXN];
                reference_krum(&r, f, m ? m : r.k - f, sel, score);
                for (size_t i = 0; i < r.k; i++) {
                    assert_int_equal(st[i].used, sel[i]);
                    assert_true(fabs(st[i].krum_score - score[i]) <= 1e-9 * score[i]);
                }
                assert_int_equal(agg_average(&r.plan, r.np, r.u, r.k, sel, ref, s, why,
                                             sizeof why), 0);
                assert_memory_equal(a, ref, r.np * 4);
            }
        }
        free(a);
        free(ref);
        free(s);
        round_free(&r);
    }
}

/* 7 honest updates around a common direction, one attacker sending -10 times it: Krum
 * leaves the attacker out, fedavg is dragged the wrong way, the median stays close. */
static void krum_drops_a_scaled_attacker(void **state)
{
    const size_t np = 2000, k = 8;
    struct round r;
    memset(&r, 0, sizeof r);
    r.k = k;
    r.np = np;
    codec_params_default(&r.plan.uplink);
    r.plan.uplink.block_size = 64;
    r.plan.uplink.k_per_block = 64;
    r.plan.uplink.error_feedback = 0;
    r.plan.sparse_scale = 1;
    float *g = malloc(np * 4), *d = malloc(np * 4);
    for (size_t j = 0; j < np; j++)
        g[j] = gauss();
    const size_t attacker = 5;
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < np; j++)
            d[j] = i == attacker ? -10.0f * g[j] : g[j] + 0.3f * gauss();
        set_update(&r, i, d, 1);
    }
    float *a = malloc(np * 4), *s = malloc(np * 4);
    char why[256];
    struct policy p;
    policy_of(&p, POLICY_AGG_MULTI_KRUM);
    p.aggregation.byzantine = 1;
    struct agg_member_stat st[MAXN];
    assert_int_equal(agg_combine(&p, &r.plan, np, r.u, k, NULL, a, s, st, why, sizeof why), 0);
    assert_int_equal(st[attacker].used, 0);
    size_t used = 0;
    for (size_t i = 0; i < k; i++)
        used += (size_t)st[i].used;
    assert_int_equal(used, k - 1);
    double cos_krum = 0, na = 0, ng = 0;
    for (size_t j = 0; j < np; j++) {
        cos_krum += (double)a[j] * g[j];
        na += (double)a[j] * a[j];
        ng += (double)g[j] * g[j];
    }
    assert_true(cos_krum / sqrt(na * ng) > 0.95);
    policy_of(&p, POLICY_AGG_FEDAVG);
    assert_int_equal(agg_combine(&p, &r.plan, np, r.u, k, NULL, a, s, NULL, why, sizeof why), 0);
    double dot = 0;
    for (size_t j = 0; j < np; j++)
        dot += (double)a[j] * g[j];
    assert_true(dot < 0);       /* the attacker wins fedavg */
    policy_of(&p, POLICY_AGG_MEDIAN);
    assert_int_equal(agg_combine(&p, &r.plan, np, r.u, k, NULL, a, s, NULL, why, sizeof why), 0);
    dot = 0;
    na = 0;
    for (size_t j = 0; j < np; j++) {
        dot += (double)a[j] * g[j];
        na += (double)a[j] * a[j];
    }
    assert_true(dot / sqrt(na * ng) > 0.9);
    free(g);
    free(d);
    free(a);
    free(s);
    round_free(&r);
}

static void too_few_updates_and_coalitions(void **state)
{
    struct round r;
    round_make(&r, 7, 500, 1, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_INT8, 1);
    float *a = malloc(r.np * 4), *b = malloc(r.np * 4), *s = malloc(r.np * 4);
    char why[256];
    struct policy p;
    policy_of(&p, POLICY_AGG_MULTI_KRUM);
    p.aggregation.byzantine = 2;
    assert_int_equal(agg_rule_min_updates(&p), 7);
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, 7, NULL, a, s, NULL, why, sizeof why), 0);
    uint8_t inc[7] = { 1, 1, 1, 1, 1, 1, 0 };
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, 7, inc, a, s, NULL, why, sizeof why),
                     AGG_ERR_RULE);
    assert_non_null(strstr(why, "multi_krum"));
    /* The coalition of 6 falls back to f' = 1. */
    assert_int_equal(agg_combine_coalition(&p, &r.plan, r.np, r.u, 7, inc, a, s, why, sizeof why),
                     0);
    struct policy q = p;
    q.aggregation.byzantine = 1;
    assert_int_equal(agg_combine(&q, &r.plan, r.np, r.u, 7, inc, b, s, NULL, why, sizeof why), 0);
    assert_memory_equal(a, b, r.np * 4);
    /* Of 3 or 4: f' = 0, every update (default select k - 0). */
    uint8_t three[7] = { 1, 0, 1, 0, 1, 0, 0 };
    assert_int_equal(agg_combine_coalition(&p, &r.plan, r.np, r.u, 7, three, a, s, why,
                                           sizeof why), 0);
    assert_int_equal(agg_average(&r.plan, r.np, r.u, 7, three, b, s, why, sizeof why), 0);
    assert_memory_equal(a, b, r.np * 4);
    /* Of 2: fedavg. */
    uint8_t two[7] = { 0, 1, 0, 0, 0, 1, 0 };
    assert_int_equal(agg_combine_coalition(&p, &r.plan, r.np, r.u, 7, two, a, s, why, sizeof why),
                     0);
    assert_int_equal(agg_average(&r.plan, r.np, r.u, 7, two, b, s, why, sizeof why), 0);
    assert_memory_equal(a, b, r.np * 4);
    /* None: zero. */
    uint8_t none[7] = { 0 };
    a[0] = 1;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, 7, none, a, s, NULL, why, sizeof why), 0);
    for (size_t j = 0; j < r.np; j++)
        assert_true(a[j] == 0.0f);
    /* The other rules need one. */
    policy_of(&p, POLICY_AGG_TRIMMED_MEAN);
    p.aggregation.trim = 0.4;
    assert_int_equal(agg_rule_min_updates(&p), 1);
    policy_of(&p, POLICY_AGG_MEDIAN);
    assert_int_equal(agg_rule_min_updates(&p), 1);
    assert_int_equal(agg_combine(&p, &r.plan, r.np, NULL, 0, NULL, a, s, NULL, why, sizeof why),
                     0);
    /* The scratch is the senders' support: required for senders averaging only. */
    const enum policy_average was = r.plan.average;
    r.plan.average = POLICY_AVERAGE_SENDERS;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, 7, NULL, a, NULL, NULL, why, sizeof why),
                     AGG_ERR_ARG);
    r.plan.average = POLICY_AVERAGE_MEMBERS;
    assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, 7, NULL, a, NULL, NULL, why, sizeof why),
                     0);
    r.plan.average = was;
    free(a);
    free(b);
    free(s);
    round_free(&r);
}

/* An fp32 payload with a NaN (which codec_encode never writes) is refused by every rule
 * before anything is averaged; so is a damaged one, naming the member. */
static void nan_and_damage_refused(void **state)
{
    struct round r;
    round_make(&r, 5, 300, 0, POLICY_AVERAGE_MEMBERS, CODEC_QUANT_FP32, 0);
    uint8_t *bad = malloc(r.u[3].len);
    memcpy(bad, r.u[3].payload, r.u[3].len);
    float nan = NAN;
    memcpy(bad + 40 + 4 * 17, &nan, 4);
    free((void *)r.u[3].payload);
    r.u[3].payload = bad;
    float *a = malloc(r.np * 4), *s = malloc(r.np * 4);
    char why[256];
    static const enum policy_agg_rule rules[] = { POLICY_AGG_FEDAVG, POLICY_AGG_CLIP,
                                                  POLICY_AGG_TRIMMED_MEAN, POLICY_AGG_MEDIAN,
                                                  POLICY_AGG_MULTI_KRUM };
    for (size_t e = 0; e < 5; e++) {
        struct policy p;
        policy_of(&p, rules[e]);
        p.aggregation.norm_bound = 1;
        p.aggregation.trim = 0.2;
        p.aggregation.byzantine = 1;
        assert_int_equal(agg_combine(&p, &r.plan, r.np, r.u, 5, NULL, a, s, NULL, why,
                                     sizeof why), AGG_ERR_PAYLOAD);
        assert_non_null(strstr(why, "m03"));
    }
    free(a);
    free(s);
    round_free(&r);
}

static void dp_noise_is_gaussian_and_random(void **state)
{
    const size_t n = 400000;
    uint8_t seed[AGG_DP_SEED_BYTES], seed2[AGG_DP_SEED_BYTES];
    for (int i = 0; i < AGG_DP_SEED_BYTES; i++) {
        seed[i] = (uint8_t)i;
        seed2[i] = (uint8_t)(i + 1);
    }
    float *a = calloc(n, 4), *b = calloc(n, 4);
    struct policy p;
    policy_of(&p, POLICY_AGG_FEDAVG);
    struct policy_round_plan plan;
    memset(&plan, 0, sizeof plan);
    codec_params_default(&plan.uplink);
    plan.uplink.k_per_block = plan.uplink.block_size;     /* dense: factor 1 */
    plan.sparse_scale = 3;
    /* Off, or z = 0: nothing. */
    assert_int_equal(agg_dp_noise(&p, &plan, 4, seed, 1, a, n), 0);
    p.privacy.enabled = 1;
    p.privacy.clip = 2;
    p.privacy.noise_multiplier = 0;
    assert_int_equal(agg_dp_noise(&p, &plan, 4, seed, 1, a, n), 0);
    for (size_t j = 0; j < n; j++)
        assert_true(a[j] == 0.0f);
    p.privacy.noise_multiplier = 1.5;
    assert_int_equal(agg_dp_noise(&p, &plan, 0, seed, 1, a, n), AGG_ERR_ARG);
    const size_t k = 4;
    for (int sparse = 0; sparse < 2; sparse++) {
        plan.uplink.k_per_block = sparse ? 41 : plan.uplink.block_size;
        memset(a, 0, n * 4);
        memset(b, 0, n * 4);
        assert_int_equal(agg_dp_noise(&p, &plan, k, seed, 7, a, n), 0);
        assert_int_equal(agg_dp_noise(&p, &plan, k, seed, 8, b, n), 0);   /* another round */
        double want = 1.5 * 2 * (sparse ? 3.0 : 1.0) / (double)k;
        double sum = 0, sq = 0, within = 0;
        size_t same = 0;
        for (size_t j = 0; j < n; j++) {
            sum += a[j];
            sq += (double)a[j] * a[j];
            within += fabs(a[j]) <= want;
            same += a[j] == b[j];
        }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        assert_true(fabs(mean) < 5 * want / sqrt((double)n));
        assert_true(fabs(sd / want - 1) < 0.02);
        assert_true(fabs(within / n - 0.6827) < 0.01);       /* one sigma */
        assert_true(same < n / 1000);           /* another round: other noise */
        /* the same (seed, round): the same noise, bit for bit; another seed: other noise */
        memset(b, 0, n * 4);
        assert_int_equal(agg_dp_noise(&p, &plan, k, seed, 7, b, n), 0);
        assert_memory_equal(a, b, n * 4);
        memset(b, 0, n * 4);
        assert_int_equal(agg_dp_noise(&p, &plan, k, seed2, 7, b, n), 0);
        same = 0;
        for (size_t j = 0; j < n; j++)
            same += a[j] == b[j];
        assert_true(same < n / 1000);
    }
    free(a);
    free(b);
}

/* Issue 17: the round's aggregate is a function of the stored updates alone, whatever
 * order they arrive in. The close sorts them (agg_sort, member-id order) and sums on one
 * thread in that order: every rule, with and without DP noise (seeded), gives the same
 * bytes for every arrival order. Without the sort the float sums would differ. */
static void aggregate_ignores_arrival_order(void **state)
{
    (void)state;
    uint8_t seed[AGG_DP_SEED_BYTES];
    for (int i = 0; i < AGG_DP_SEED_BYTES; i++)
        seed[i] = (uint8_t)(7 * i + 1);
    static const enum policy_agg_rule rules[] = { POLICY_AGG_FEDAVG, POLICY_AGG_CLIP,
                                                  POLICY_AGG_MEDIAN, POLICY_AGG_TRIMMED_MEAN,
                                                  POLICY_AGG_MULTI_KRUM };
    size_t differs_unsorted = 0;
    for (size_t sh = 0; sh < NSHAPES; sh++) {
        const struct shape *z = &shapes[sh];
        if (z->k < 3)
            continue;
        struct round r;
        round_make(&r, z->k, z->np, z->sparse, z->avg, z->q, z->zstd);
        float *want = malloc(r.np * sizeof(float)), *got = malloc(r.np * sizeof(float));
        float *scratch = malloc(r.np * sizeof(float));
        struct agg_update u[MAXN];
        struct agg_member_stat st[MAXN];
        char why[300];
        for (size_t ru = 0; ru < sizeof rules / sizeof rules[0]; ru++) {
            for (int dp = 0; dp < 2; dp++) {
                struct policy p;
                policy_of(&p, rules[ru]);
                p.aggregation.trim = 0.2;
                p.aggregation.norm_bound = 3.0 * sqrt((double)r.np);
                p.aggregation.byzantine = 1;
                if (rules[ru] == POLICY_AGG_MULTI_KRUM && z->k < 5)
                    continue;
                if (dp && ((rules[ru] != POLICY_AGG_FEDAVG && rules[ru] != POLICY_AGG_CLIP) ||
                           z->avg != POLICY_AVERAGE_MEMBERS))
                    continue;   /* privacy takes fedavg or clip over members (PRIVACY.md) */
                if (dp) {
                    p.aggregation.weighting = POLICY_WEIGHT_UNIFORM;
                    p.privacy.enabled = 1;
                    p.privacy.clip = 2.0 * sqrt((double)r.np);
                    p.privacy.noise_multiplier = 0.5;
                }
                for (int t = 0; t < 12; t++) {
                    memcpy(u, r.u, r.k * sizeof u[0]);
                    for (size_t i = r.k - 1; t > 0 && i > 0; i--) {   /* t = 0: id order */
                        size_t j = (size_t)(next_u64() % (i + 1));
                        struct agg_update x = u[i];
                        u[i] = u[j];
                        u[j] = x;
                    }
                    if (t > 0 && dp == 0 && rules[ru] == POLICY_AGG_FEDAVG) {
                        /* the same updates summed in arrival order: other bits (mostly) */
                        assert_int_equal(agg_combine(&p, &r.plan, r.np, u, r.k, NULL, got,
                                                     scratch, st, why, sizeof why), 0);
                        differs_unsorted += memcmp(got, want, r.np * sizeof(float)) != 0;
                    }
                    agg_sort(u, r.k);
                    float *out = t == 0 ? want : got;
                    int rc = agg_combine(&p, &r.plan, r.np, u, r.k, NULL, out, scratch, st, why,
                                         sizeof why);
                    if (rc != 0)
                        fail_msg("shape %zu, rule %d, dp %d: %s", sh, (int)rules[ru], dp, why);
                    if (dp) {
                        size_t used = 0;
                        for (size_t i = 0; i < r.k; i++)
                            used += st[i].used != 0;
                        assert_int_equal(agg_dp_noise(&p, &r.plan, used, seed, 5, out, r.np), 0);
                    }
                    if (t > 0 && memcmp(got, want, r.np * sizeof(float)) != 0)
                        fail_msg("shape %zu, rule %d, dp %d: arrival order %d gives another "
                                 "aggregate", sh, (int)rules[ru], dp, t);
                }
            }
        }
        free(want);
        free(got);
        free(scratch);
        round_free(&r);
    }
    /* the test can fail: unsorted sums do depend on the order */
    assert_true(differs_unsorted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fedavg_is_agg_average_bit_for_bit),
        cmocka_unit_test(median_and_trimmed_mean_match_the_reference),
        cmocka_unit_test(hand_worked_order_statistics),
        cmocka_unit_test(clip_scales_each_update),
        cmocka_unit_test(privacy_clips_with_uniform_weights),
        cmocka_unit_test(multi_krum_matches_the_reference),
        cmocka_unit_test(krum_drops_a_scaled_attacker),
        cmocka_unit_test(too_few_updates_and_coalitions),
        cmocka_unit_test(nan_and_damage_refused),
        cmocka_unit_test(dp_noise_is_gaussian_and_random),
        cmocka_unit_test(aggregate_ignores_arrival_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
