/* aggregate/round.h: the round's weighted average in member-id order, the trial outer
 * step that leaves the optimizer alone, and the next model with its downlink, each
 * against values worked by hand (exact binary fractions, so equality is exact). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate/round.h"
#include "codec/codec.h"

static struct codec_params fp32_codec(uint32_t block, uint32_t k)
{
    struct codec_params p = { .format_version = CODEC_FORMAT_VERSION, .block_size = block,
                              .k_per_block = k, .quant = CODEC_QUANT_FP32 };
    return p;
}

/* A plan whose uplink is fp32 blocks of 4 keeping k, averaged as asked. */
static struct policy_round_plan plan_of(uint32_t k, enum policy_average avg, float scale)
{
    struct policy_round_plan p;
    memset(&p, 0, sizeof p);
    p.round = 1;
    p.uplink = fp32_codec(4, k);
    p.average = avg;
    p.sparse_scale = scale;
    return p;
}

static void make_update(struct agg_update *u, const char *member, const float *delta, size_t n,
                        const struct codec_params *cp, double weight)
{
    memset(u, 0, sizeof *u);
    snprintf(u->member, sizeof u->member, "%s", member);
    uint8_t *payload;
    size_t len;
    assert_int_equal(codec_encode(delta, n, cp, NULL, &payload, &len), 0);
    u->payload = payload;
    u->len = len;
    u->weight = weight;
    u->tokens = (uint64_t)weight;
}

static void free_update(struct agg_update *u)
{
    free((void *)u->payload);
}

static void weight_follows_the_policy(void **state)
{
    assert_true(agg_weight(POLICY_WEIGHT_TOKENS, 10, 3) == 10.0);
    assert_true(agg_weight(POLICY_WEIGHT_SAMPLES, 10, 3) == 3.0);
    assert_true(agg_weight(POLICY_WEIGHT_UNIFORM, 10, 3) == 1.0);
}

static void sort_is_by_member_id(void **state)
{
    struct agg_update u[4];
    memset(u, 0, sizeof u);
    const char *ids[4] = { "vnpt", "fpt", "hust", "fpt-2" };
    for (int i = 0; i < 4; i++)
        snprintf(u[i].member, sizeof u[i].member, "%s", ids[i]);
    agg_sort(u, 4);
    assert_string_equal(u[0].member, "fpt");
    assert_string_equal(u[1].member, "fpt-2");
    assert_string_equal(u[2].member, "hust");
    assert_string_equal(u[3].member, "vnpt");
}

/* Dense: avg = (1 a + 3 b) / 4; include picks a subset; none gives zero. */
static void dense_average_is_the_weighted_mean(void **state)
{
    const float a[4] = { 4, 8, -4, 0 }, b[4] = { 0, 4, 4, 2 };
    struct codec_params cp = fp32_codec(4, 4);
    struct agg_update u[2];
    make_update(&u[0], "a", a, 4, &cp, 1);
    make_update(&u[1], "b", b, 4, &cp, 3);
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 2.0f);
    float avg[4];
    char why[256];
    assert_int_equal(agg_average(&plan, 4, u, 2, NULL, avg, NULL, why, sizeof why), 0);
    const float want[4] = { 1, 5, 2, 1.5f };   /* dense: sparse_scale does not apply */
    assert_memory_equal(avg, want, sizeof want);

    const uint8_t only_b[2] = { 0, 1 };
    assert_int_equal(agg_average(&plan, 4, u, 2, only_b, avg, NULL, why, sizeof why), 0);
    assert_memory_equal(avg, b, sizeof b);

    const uint8_t none[2] = { 0, 0 };
    const float zero[4] = { 0 };
    assert_int_equal(agg_average(&plan, 4, u, 2, none, avg, NULL, why, sizeof why), 0);
    assert_memory_equal(avg, zero, sizeof zero);
    free_update(&u[0]);
    free_update(&u[1]);
}

/* Sparse, k 2 of 4: a keeps positions 0, 1; b keeps 1, 2 (weights 1 and 3, scale 2).
 *   senders: [4*2/1, (3+15)*2/4, 18*2/3, 0] = [8, 9, 12, 0]
 *   members: (acc = [4, 18, 18, 0]) * 2/4     = [2, 9, 9, 0] */
static void sparse_average_by_senders_and_by_members(void **state)
{
    const float a[4] = { 4, 3, 0.5f, 0.25f }, b[4] = { 0.5f, 5, 6, 0 };
    struct codec_params cp = fp32_codec(4, 2);
    struct agg_update u[2];
    make_update(&u[0], "a", a, 4, &cp, 1);
    make_update(&u[1], "b", b, 4, &cp, 3);
    float avg[4], support[4];
    char why[256];
    struct policy_round_plan plan = plan_of(2, POLICY_AVERAGE_SENDERS, 2.0f);
    assert_int_equal(agg_average(&plan, 4, u, 2, NULL, avg, support, why, sizeof why), 0);
    const float senders[4] = { 8, 9, 12, 0 };
    assert_memory_equal(avg, senders, sizeof senders);
    /* Senders without support scratch is refused. */
    assert_int_equal(agg_average(&plan, 4, u, 2, NULL, avg, NULL, why, sizeof why), AGG_ERR_ARG);

    plan = plan_of(2, POLICY_AVERAGE_MEMBERS, 2.0f);
    assert_int_equal(agg_average(&plan, 4, u, 2, NULL, avg, NULL, why, sizeof why), 0);
    const float members[4] = { 2, 9, 9, 0 };
    assert_memory_equal(avg, members, sizeof members);
    free_update(&u[0]);
    free_update(&u[1]);
}

/* The same updates in any arrival order, sorted, give the same bytes. */
static void sorted_sum_does_not_depend_on_arrival(void **state)
{
    enum { N = 1000, M = 5 };
    static float d[M][N];
    for (int m = 0; m < M; m++)
        for (int i = 0; i < N; i++)
            d[m][i] = (float)sin(0.37 * (i + 1) * (m + 1)) * 1e-3f * (float)(m + 1);
    struct codec_params cp = fp32_codec(N, N);
    struct agg_update u[M], v[M];
    char id[8];
    for (int m = 0; m < M; m++) {
        snprintf(id, sizeof id, "m%d", m);
        make_update(&u[m], id, d[m], N, &cp, 7 + 13 * m);
    }
    for (int m = 0; m < M; m++)
        v[m] = u[(m * 3 + 2) % M];   /* another arrival order */
    agg_sort(v, M);
    static float x[N], y[N];
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
    plan.uplink = cp;
    assert_int_equal(agg_average(&plan, N, u, M, NULL, x, NULL, NULL, 0), 0);
    assert_int_equal(agg_average(&plan, N, v, M, NULL, y, NULL, NULL, 0), 0);
    assert_memory_equal(x, y, sizeof x);
    for (int m = 0; m < M; m++)
        free_update(&u[m]);
}

static void bad_payload_names_the_member(void **state)
{
    const float a[4] = { 1, 2, 3, 4 };
    struct codec_params cp = fp32_codec(4, 4);
    struct agg_update u[2];
    make_update(&u[0], "fpt", a, 4, &cp, 1);
    make_update(&u[1], "viettel", a, 4, &cp, 1);
    u[1].len -= 1;
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
    float avg[4];
    char why[256];
    assert_int_equal(agg_average(&plan, 4, u, 2, NULL, avg, NULL, why, sizeof why),
                     AGG_ERR_PAYLOAD);
    assert_non_null(strstr(why, "viettel"));
    free_update(&u[0]);
    free_update(&u[1]);
}

/* fedavg lr 1: next = base - avg. */
static void next_model_fedavg(void **state)
{
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_FEDAVG, 4, 1.0f, 0), 0);
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
    const float base[4] = { 1, 2, 3, 4 };
    float avg[4] = { 0.5f, -1, 0, 4 }, next[4];
    char why[256];
    assert_int_equal(agg_next_model(&plan, &o, NULL, base, avg, 4, next, NULL, NULL, why,
                                    sizeof why), 0);
    const float want[4] = { 0.5f, 3, 3, 0 };
    assert_memory_equal(next, want, sizeof want);
    assert_int_equal(o.step, 1);
    outer_free(&o);
}

/* nesterov lr 0.5, mu 0.5, two rounds:
 *   round 1: m = d1;            next = base - 0.5 (d1 + 0.5 d1) = base - 0.75 d1
 *   round 2: m = 0.5 d1 + d2;   next2 = next - 0.5 (d2 + 0.5 m)
 * with d1 = [1, -2], d2 = [2, 2], base [10, 10]:
 *   next  = [9.25, 11.5];  m = [2.5, 1];  next2 = [9.25 - 0.5 (2 + 1.25), 11.5 - 0.5 (2 + 0.5)]
 *         = [7.625, 10.25]
 * agg_outer_trial gives the same model and leaves the state as it was. */
static void next_model_nesterov_and_trial(void **state)
{
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_NESTEROV, 2, 0.5f, 0.5f), 0);
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
    float base[2] = { 10, 10 }, d1[2] = { 1, -2 }, d2[2] = { 2, 2 }, next[2], trial[2];
    float scratch[2];
    char why[256];
    agg_outer_trial(&o, base, d1, 2, trial, scratch);
    assert_int_equal(o.step, 0);
    assert_true(o.m[0] == 0 && o.m[1] == 0);
    assert_int_equal(agg_next_model(&plan, &o, NULL, base, d1, 2, next, NULL, NULL, why,
                                    sizeof why), 0);
    const float want1[2] = { 9.25f, 11.5f };
    assert_memory_equal(next, want1, sizeof want1);
    assert_memory_equal(trial, want1, sizeof want1);

    float m_before[2] = { o.m[0], o.m[1] };
    float d2c[2] = { d2[0], d2[1] };
    agg_outer_trial(&o, next, d2, 2, trial, scratch);
    assert_memory_equal(o.m, m_before, sizeof m_before);
    assert_int_equal(o.step, 1);
    float next2[2];
    assert_int_equal(agg_next_model(&plan, &o, NULL, next, d2c, 2, next2, NULL, NULL, why,
                                    sizeof why), 0);
    const float want2[2] = { 7.625f, 10.25f };
    assert_memory_equal(next2, want2, sizeof want2);
    assert_memory_equal(trial, want2, sizeof want2);
    assert_int_equal(o.step, 2);
    outer_free(&o);
}

/* fedadam trial with scratch for both moments; the policy's betas and eps. */
static void outer_init_from_policy(void **state)
{
    struct policy p;
    memset(&p, 0, sizeof p);
    p.training.outer.kind = POLICY_OUTER_FEDADAM;
    p.training.outer.lr = 0.01;
    p.training.outer.beta1 = 0.5;
    p.training.outer.beta2 = 0.75;
    p.training.outer.eps = 0.125;
    struct outer_opt o;
    assert_int_equal(agg_outer_init(&p, 3, &o), 0);
    assert_int_equal(o.kind, OUTER_FEDADAM);
    assert_true(o.lr == 0.01f && o.beta1 == 0.5f && o.beta2 == 0.75f && o.tau == 0.125f);
    assert_non_null(o.m);
    assert_non_null(o.v);
    float base[3] = { 1, 1, 1 }, d[3] = { 1, -1, 0 }, out[3], scratch[6];
    agg_outer_trial(&o, base, d, 3, out, scratch);
    /* m = 0.5 d, v = 0.25 d^2: step = lr * 0.5 / (0.5 + 0.125) = 0.008 */
    assert_float_equal(out[0], 1 - 0.008f, 1e-7);
    assert_float_equal(out[1], 1 + 0.008f, 1e-7);
    assert_true(out[2] == 1.0f);
    assert_int_equal(o.step, 0);
    outer_free(&o);

    p.training.outer.kind = POLICY_OUTER_NESTEROV;
    p.training.outer.lr = 0.7;
    p.training.outer.momentum = 0.9;
    assert_int_equal(agg_outer_init(&p, 3, &o), 0);
    assert_int_equal(o.kind, OUTER_NESTEROV);
    assert_true(o.lr == 0.7f && o.momentum == 0.9f);
    outer_free(&o);
}

/* Downlink int8 with server error feedback: next = base + decode(down), and
 * delta = decoded + residual up to one rounding. */
static void next_model_with_downlink(void **state)
{
    enum { N = 64 };
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_FEDAVG, N, 1.0f, 0), 0);
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
    plan.downlink_on = 1;
    plan.downlink = fp32_codec(16, 16);
    plan.downlink.quant = CODEC_QUANT_INT8;
    plan.downlink.error_feedback = 1;
    float base[N], avg[N], delta[N], next[N], residual[N] = { 0 }, rebuilt[N];
    for (int i = 0; i < N; i++) {
        base[i] = (float)i / 8;
        avg[i] = (float)cos(i * 0.9) * 0.01f;
        delta[i] = (base[i] - avg[i]) - base[i];
    }
    uint8_t *down;
    size_t len;
    char why[256];
    assert_int_equal(agg_next_model(&plan, &o, residual, base, avg, N, next, &down, &len, why,
                                    sizeof why), 0);
    memcpy(rebuilt, base, sizeof base);
    assert_int_equal(codec_decode_accumulate(down, len, N, 1.0f, rebuilt, NULL, 0), 0);
    assert_memory_equal(next, rebuilt, sizeof next);
    float decoded[N] = { 0 };
    assert_int_equal(codec_decode_accumulate(down, len, N, 1.0f, decoded, NULL, 0), 0);
    double err = 0;
    for (int i = 0; i < N; i++) {
        err = fmax(err, fabs((double)delta[i] - decoded[i] - residual[i]));
        assert_true(fabs(residual[i]) < 1e-4);
    }
    assert_true(err < 1e-7);
    int moved = 0;
    for (int i = 0; i < N; i++)
        moved += residual[i] != 0;
    assert_true(moved > 0);   /* int8 loses something: the residual carries it */
    free(down);

    /* Downlink on without somewhere to put the payload is refused. */
    assert_int_equal(agg_next_model(&plan, &o, residual, base, avg, N, next, NULL, NULL, why,
                                    sizeof why), AGG_ERR_ARG);
    outer_free(&o);
}

/* The coordinator's close as it was written before aggregate/round.c (coordinator/
 * experiment.c: accumulate_stored in key order, average_round, outer_step, the finite
 * check, downlink_compress), replayed step by step on a sparse int8 round averaged over
 * senders with nesterov momentum and a compressed downlink with error feedback, two
 * rounds running: agg_average and agg_next_model give the same bytes. */
static void same_bytes_as_the_coordinator_close(void **state)
{
    enum { N = 10000, M = 4, ROUNDS = 2 };
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_SENDERS, 1.5f);
    plan.uplink = fp32_codec(1000, 25);
    plan.uplink.quant = CODEC_QUANT_INT8;
    plan.uplink.zstd_level = 3;
    plan.downlink_on = 1;
    plan.downlink = fp32_codec(500, 50);
    plan.downlink.quant = CODEC_QUANT_INT8;
    plan.downlink.error_feedback = 1;
    struct outer_opt ours, theirs;
    assert_int_equal(outer_init(&ours, OUTER_NESTEROV, N, 0.7f, 0.9f), 0);
    assert_int_equal(outer_init(&theirs, OUTER_NESTEROV, N, 0.7f, 0.9f), 0);
    float *base = malloc(N * sizeof(float)), *base2 = malloc(N * sizeof(float));
    float *acc = calloc(N, sizeof(float)), *support = calloc(N, sizeof(float));
    float *avg = malloc(N * sizeof(float)), *sup = malloc(N * sizeof(float));
    float *next = malloc(N * sizeof(float)), *next2 = malloc(N * sizeof(float));
    float *res = calloc(N, sizeof(float)), *res2 = calloc(N, sizeof(float));
    float *d = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        base[i] = base2[i] = (float)sin(i * 0.01);
    for (int r = 0; r < ROUNDS; r++) {
        struct agg_update u[M];
        char id[8];
        for (int m = 0; m < M; m++) {
            for (int i = 0; i < N; i++)
                d[i] = (float)cos(i * 0.003 * (m + 1) + r) * 1e-2f / (float)(m + 1);
            snprintf(id, sizeof id, "m%d", M - m);   /* made in reverse id order */
            make_update(&u[m], id, d, N, &plan.uplink, 1000 + 333 * m);
        }
        agg_sort(u, M);
        /* theirs */
        memset(acc, 0, N * sizeof(float));
        memset(support, 0, N * sizeof(float));
        double weight_sum = 0;
        for (int m = 0; m < M; m++) {
            assert_int_equal(codec_decode_accumulate_support(u[m].payload, u[m].len, N,
                                                             (float)u[m].weight, acc, support,
                                                             NULL, 0), 0);
            weight_sum += u[m].weight;
        }
        outer_average(acc, support, N, weight_sum, plan.sparse_scale);
        memcpy(next2, base2, N * sizeof(float));
        outer_step(&theirs, next2, acc);
        for (int i = 0; i < N; i++) {
            assert_true(isfinite(next2[i]));
            acc[i] = next2[i] - base2[i];
        }
        uint8_t *down2;
        size_t len2;
        assert_int_equal(codec_encode(acc, N, &plan.downlink, res2, &down2, &len2), 0);
        memcpy(next2, base2, N * sizeof(float));
        assert_int_equal(codec_decode_accumulate(down2, len2, N, 1.0f, next2, NULL, 0), 0);
        /* ours */
        char why[256];
        assert_int_equal(agg_average(&plan, N, u, M, NULL, avg, sup, why, sizeof why), 0);
        uint8_t *down;
        size_t len;
        assert_int_equal(agg_next_model(&plan, &ours, res, base, avg, N, next, &down, &len, why,
                                        sizeof why), 0);
        assert_int_equal(len, len2);
        assert_memory_equal(down, down2, len);
        assert_memory_equal(next, next2, N * sizeof(float));
        assert_memory_equal(res, res2, N * sizeof(float));
        assert_memory_equal(ours.m, theirs.m, N * sizeof(float));
        memcpy(base, next, N * sizeof(float));
        memcpy(base2, next2, N * sizeof(float));
        free(down);
        free(down2);
        for (int m = 0; m < M; m++)
            free_update(&u[m]);
    }
    outer_free(&ours);
    outer_free(&theirs);
    free(base);
    free(base2);
    free(acc);
    free(support);
    free(avg);
    free(sup);
    free(next);
    free(next2);
    free(res);
    free(res2);
    free(d);
}

static void non_finite_model_is_refused(void **state)
{
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_FEDAVG, 2, 1.0f, 0), 0);
    struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
    float base[2] = { 1, 1 }, avg[2] = { 0, INFINITY }, next[2];
    char why[256];
    assert_int_equal(agg_next_model(&plan, &o, NULL, base, avg, 2, next, NULL, NULL, why,
                                    sizeof why), AGG_ERR_MODEL);
    assert_non_null(strstr(why, "non-finite"));
    outer_free(&o);
}

/* agg_next_model_fd writes agg_next_model's downlink bytes into the file and rebuilds
 * the same next model, bit for bit (dense fp16 and int8 with feedback, sparse int8 over a
 * base with negative zeros, which only carried positions may touch). */
static void next_model_fd_equals_next_model(void **state)
{
    enum { N = 20000 };
    static const struct { uint32_t B, k; enum codec_quant q; int zstd, ef; } cases[] = {
        {4096, 4096, CODEC_QUANT_FP16, 3, 1},
        {1000, 1000, CODEC_QUANT_INT8, 1, 1},
        {1000, 10, CODEC_QUANT_INT8, 3, 1},
        {512, 512, CODEC_QUANT_FP32, 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct policy_round_plan plan = plan_of(4, POLICY_AVERAGE_MEMBERS, 1.0f);
        plan.downlink_on = 1;
        plan.downlink = fp32_codec(cases[c].B, cases[c].k);
        plan.downlink.quant = cases[c].q;
        plan.downlink.zstd_level = cases[c].zstd;
        plan.downlink.error_feedback = cases[c].ef;
        static float base[N], avg1[N], avg2[N], next1[N], next2[N], res1[N], res2[N];
        for (int i = 0; i < N; i++) {
            base[i] = i % 7 == 0 ? -0.0f : (float)sin(i * 0.37);
            avg1[i] = avg2[i] = (float)cos(i * 0.9) * 0.01f * (float)(1 + i % 13);
            res1[i] = res2[i] = (float)sin(i * 1.3) * 1e-3f;
        }
        struct outer_opt o1, o2;
        assert_int_equal(outer_init(&o1, OUTER_FEDAVG, N, 1.0f, 0), 0);
        assert_int_equal(outer_init(&o2, OUTER_FEDAVG, N, 1.0f, 0), 0);
        uint8_t *down;
        size_t len;
        char why[256];
        assert_int_equal(agg_next_model(&plan, &o1, res1, base, avg1, N, next1, &down, &len,
                                        why, sizeof why), 0);
        FILE *f = tmpfile();
        assert_non_null(f);
        uint64_t flen = 0;
        assert_int_equal(agg_next_model_fd(&plan, &o2, res2, NULL, NULL, base, NULL, NULL, avg2,
                                           N, next2, fileno(f), 32, &flen, why, sizeof why), 0);
        assert_int_equal(flen, len);
        uint8_t *got = malloc(len);
        assert_non_null(got);
        assert_int_equal(pread(fileno(f), got, len, 32), (ssize_t)len);
        assert_memory_equal(got, down, len);
        assert_memory_equal(next1, next2, sizeof next1);
        assert_memory_equal(res1, res2, sizeof res1);
        free(got);
        free(down);
        fclose(f);
        outer_free(&o1);
        outer_free(&o2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(weight_follows_the_policy),
        cmocka_unit_test(sort_is_by_member_id),
        cmocka_unit_test(dense_average_is_the_weighted_mean),
        cmocka_unit_test(sparse_average_by_senders_and_by_members),
        cmocka_unit_test(sorted_sum_does_not_depend_on_arrival),
        cmocka_unit_test(bad_payload_names_the_member),
        cmocka_unit_test(next_model_fedavg),
        cmocka_unit_test(next_model_nesterov_and_trial),
        cmocka_unit_test(outer_init_from_policy),
        cmocka_unit_test(next_model_with_downlink),
        cmocka_unit_test(next_model_fd_equals_next_model),
        cmocka_unit_test(same_bytes_as_the_coordinator_close),
        cmocka_unit_test(non_finite_model_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
