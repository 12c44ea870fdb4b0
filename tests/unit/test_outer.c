#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "coordinator/outer.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fedavg_lr1_is_model_average),
        cmocka_unit_test(nesterov_matches_hand_computation),
        cmocka_unit_test(fedadam_moves_against_delta),
        cmocka_unit_test(state_round_trips_and_rejects_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
