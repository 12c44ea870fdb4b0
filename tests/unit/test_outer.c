#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "aggregate/outer.h"

static void fedavg_lr1_is_model_average(void **state)
{
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_FEDAVG, 3, 1.0f, 0.0f), 0);
    float theta[3] = { 1, 2, 3 };
    /* two members moved to 0.5,2.5,3 and 0.7,1.5,3: delta = base - mean(local) */
    float delta[3] = { 1 - 0.6f, 2 - 2.0f, 0 };
    outer_step(&o, theta, delta);
    assert_float_equal(theta[0], 0.6f, 1e-6);
    assert_float_equal(theta[1], 2.0f, 1e-6);
    assert_float_equal(theta[2], 3.0f, 1e-6);
    outer_free(&o);
}

static void nesterov_matches_hand_computation(void **state)
{
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_NESTEROV, 1, 0.7f, 0.9f), 0);
    float theta = 1.0f, d = 0.1f;
    outer_step(&o, &theta, &d);          /* m = 0.1; step = 0.1 + 0.09 = 0.19 */
    assert_float_equal(theta, 1.0f - 0.7f * 0.19f, 1e-6);
    outer_step(&o, &theta, &d);          /* m = 0.19; step = 0.1 + 0.171 = 0.271 */
    assert_float_equal(theta, 1.0f - 0.7f * 0.19f - 0.7f * 0.271f, 1e-6);
    outer_free(&o);
}

static void fedadam_moves_against_delta(void **state)
{
    struct outer_opt o;
    assert_int_equal(outer_init(&o, OUTER_FEDADAM, 2, 0.01f, 0.0f), 0);
    float theta[2] = { 0, 0 }, d[2] = { 1, -1 };
    outer_step(&o, theta, d);
    /* m = 0.1, v = 0.01: step = 0.01 * 0.1 / (0.1 + 1e-3) */
    assert_float_equal(theta[0], -0.01f * 0.1f / (0.1f + 1e-3f), 1e-6);
    assert_float_equal(theta[1], 0.01f * 0.1f / (0.1f + 1e-3f), 1e-6);
    outer_free(&o);
}

static void state_round_trips_and_rejects_mismatch(void **state)
{
    struct outer_opt a, b, c;
    assert_int_equal(outer_init(&a, OUTER_FEDADAM, 4, 0.1f, 0.0f), 0);
    float theta[4] = { 0 }, d[4] = { 1, 2, 3, 4 };
    outer_step(&a, theta, d);
    uint8_t *buf;
    size_t len;
    assert_int_equal(outer_state_encode(&a, &buf, &len), 0);
    assert_int_equal(outer_init(&b, OUTER_FEDADAM, 4, 0.1f, 0.0f), 0);
    assert_int_equal(outer_state_decode(&b, buf, len), 0);
    assert_int_equal(b.step, 1);
    assert_memory_equal(a.m, b.m, sizeof(float) * 4);
    assert_memory_equal(a.v, b.v, sizeof(float) * 4);
    assert_int_equal(outer_state_decode(&b, buf, len - 1), OUTER_ERR_SIZE);
    assert_int_equal(outer_init(&c, OUTER_NESTEROV, 4, 0.1f, 0.9f), 0);
    assert_int_equal(outer_state_decode(&c, buf, len), OUTER_ERR_SIZE);
    buf[0] = 'X';
    assert_int_equal(outer_state_decode(&b, buf, len), OUTER_ERR_FORMAT);
    free(buf);
    outer_free(&a);
    outer_free(&b);
    outer_free(&c);
}

/* Without support: acc * scale / weight_sum. */
static void average_over_members(void **state)
{
    float acc[3] = { 2, -4, 6 };
    outer_average(acc, NULL, 3, 4.0, 1.0f);
    assert_float_equal(acc[0], 0.5f, 1e-7);
    assert_float_equal(acc[1], -1.0f, 1e-7);
    assert_float_equal(acc[2], 1.5f, 1e-7);
    float scaled[3] = { 2, -4, 6 };
    outer_average(scaled, NULL, 3, 4.0, 3.0f);
    assert_float_equal(scaled[0], 1.5f, 1e-6);
    assert_float_equal(scaled[1], -3.0f, 1e-6);
    assert_float_equal(scaled[2], 4.5f, 1e-6);
}

/* With support: each coordinate over the weight that carried it, times scale; a
 * coordinate no update carried becomes 0 whatever acc holds; weight_sum is unused. */
static void average_over_senders(void **state)
{
    /* members of weight 1 and 3: both sent 0, only the second sent 1, only the first
     * sent 2, nobody sent 3 (whatever acc holds there is not read) */
    float acc[4] = { 1 * 2.0f + 3 * 6.0f, 3 * -1.0f, 1 * 4.0f, 5.0f };
    const float support[4] = { 4, 3, 1, 0 };
    outer_average(acc, support, 4, 123.0, 1.0f);
    assert_float_equal(acc[0], 5.0f, 1e-6);
    assert_float_equal(acc[1], -1.0f, 1e-6);
    assert_float_equal(acc[2], 4.0f, 1e-6);
    assert_true(acc[3] == 0.0f);
    float scaled[4] = { 20, -3, 4, 5 };
    outer_average(scaled, support, 4, 123.0, 2.0f);
    assert_float_equal(scaled[0], 10.0f, 1e-5);
    assert_float_equal(scaled[1], -2.0f, 1e-6);
    assert_float_equal(scaled[2], 8.0f, 1e-6);
    assert_true(scaled[3] == 0.0f);
    /* where every member carried every coordinate it is the members' average */
    float a[2] = { 8, -2 }, b[2] = { 8, -2 };
    const float all[2] = { 4, 4 };
    outer_average(a, all, 2, 4.0, 1.5f);
    outer_average(b, NULL, 2, 4.0, 1.5f);
    assert_memory_equal(a, b, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fedavg_lr1_is_model_average),
        cmocka_unit_test(nesterov_matches_hand_computation),
        cmocka_unit_test(fedadam_moves_against_delta),
        cmocka_unit_test(state_round_trips_and_rejects_mismatch),
        cmocka_unit_test(average_over_members),
        cmocka_unit_test(average_over_senders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
