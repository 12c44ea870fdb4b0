/* privacy/rdp: the RDP accountant against Google's dp-accounting (the goldens in
 * tests/reference/golden/rdp.tsv, written by `make reference-rdp`), to 1e-6 relative:
 * the default orders bit for bit, the RDP at 14 orders and epsilon at 4 deltas over the
 * (q, z, steps) grid, the optimal orders, and rdp_max_steps; then the edges (z = 0,
 * q = 0, steps = 0, q = 1 in closed form) and every refused argument. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/rdp.h"

#define TOL 1e-6

static char golden_path[512];

static void find_golden(void)
{
    const char *env = getenv("AULAC_GOLDEN_DIR");
    if (env) {
        snprintf(golden_path, sizeof golden_path, "%.490s/rdp.tsv", env);
        return;
    }
    /* __FILE__ is tests/unit/test_rdp.c relative to the repository root */
    char here[256];
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash)
        *slash = 0;
    slash = strrchr(here, '/');
    if (slash)
        *slash = 0;
    snprintf(golden_path, sizeof golden_path, "%.255s/reference/golden/rdp.tsv",
             slash ? here : "tests");
}

/* Relative error of got against want; 0 when both are the same infinity or both 0,
 * +inf when only one of them is infinite or zero. */
static double rel_err(double got, double want)
{
    if (got == want)
        return 0;
    if (isinf(want) || isinf(got) || want == 0 || isnan(got) || isnan(want))
        return INFINITY;
    return fabs(got - want) / fabs(want);
}

/* Splits a tab-separated line in place; returns the number of fields (at most max). */
static int split(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; p && n < max;) {
        f[n++] = p;
        p = strchr(p, '\t');
        if (p)
            *p++ = 0;
    }
    return n;
}

static double num(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end)
        fail_msg("golden: not a number: '%s'", s);
    return v;
}

static uint64_t u64(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end)
        fail_msg("golden: not an integer: '%s'", s);
    return (uint64_t)v;
}

static void test_matches_dp_accounting(void **state)
{
    (void)state;
    find_golden();
    FILE *fp = fopen(golden_path, "r");
    if (!fp)
        fail_msg("no golden %s (written by make reference-rdp)", golden_path);
    static char line[1 << 16];
    char *f[200];
    int n_orders_rows = 0, n_rdp = 0, n_eps = 0, n_max = 0, n_inf = 0;
    double worst_rdp = 0, worst_eps = 0;
    char worst_rdp_at[128] = "", worst_eps_at[128] = "";
    double rdp[200];
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int n = split(line, f, 200);
        if (!strcmp(f[0], "orders")) {
            /* the accountant's default orders, bit for bit */
            assert_int_equal((size_t)(n - 1), rdp_n_default_orders);
            for (int i = 1; i < n; i++)
                if (num(f[i]) != rdp_default_orders[i - 1])
                    fail_msg("default order %d: %.17g, dp-accounting %s", i - 1,
                             rdp_default_orders[i - 1], f[i]);
            n_orders_rows++;
        } else if (!strcmp(f[0], "rdp")) {
            assert_int_equal(n, 6);
            double q = num(f[1]), z = num(f[2]), order = num(f[4]), want = num(f[5]);
            uint64_t steps = u64(f[3]);
            double got;
            assert_int_equal(rdp_compute(q, z, steps, &order, 1, &got), 0);
            double e = rel_err(got, want);
            if (e > TOL)
                fail_msg("rdp q=%g z=%g steps=%llu order=%g: %.17g, dp-accounting %.17g "
                         "(relative error %.3g)", q, z, (unsigned long long)steps, order, got,
                         want, e);
            if (e > worst_rdp) {
                worst_rdp = e;
                snprintf(worst_rdp_at, sizeof worst_rdp_at, "q=%g z=%g steps=%llu order=%g",
                         q, z, (unsigned long long)steps, order);
            }
            n_inf += isinf(want);
            n_rdp++;
        } else if (!strcmp(f[0], "eps")) {
            assert_int_equal(n, 7);
            double q = num(f[1]), z = num(f[2]), delta = num(f[4]), want = num(f[5]),
                   want_order = num(f[6]);
            uint64_t steps = u64(f[3]);
            double got, got_order, via_epsilon;
            assert_int_equal(rdp_compute(q, z, steps, rdp_default_orders,
                                         rdp_n_default_orders, rdp), 0);
            assert_int_equal(rdp_to_epsilon(rdp_default_orders, rdp, rdp_n_default_orders,
                                            delta, &got, &got_order), 0);
            assert_int_equal(rdp_epsilon(q, z, steps, delta, &via_epsilon), 0);
            assert_true(via_epsilon == got || (isnan(via_epsilon) && isnan(got)));
            double e = rel_err(got, want);
            if (e > TOL)
                fail_msg("epsilon q=%g z=%g steps=%llu delta=%g: %.17g, dp-accounting %.17g "
                         "(relative error %.3g)", q, z, (unsigned long long)steps, delta, got,
                         want, e);
            if (got_order != want_order)
                fail_msg("optimal order q=%g z=%g steps=%llu delta=%g: %g, dp-accounting %g",
                         q, z, (unsigned long long)steps, delta, got_order, want_order);
            if (e > worst_eps) {
                worst_eps = e;
                snprintf(worst_eps_at, sizeof worst_eps_at, "q=%g z=%g steps=%llu delta=%g",
                         q, z, (unsigned long long)steps, delta);
            }
            n_eps++;
        } else if (!strcmp(f[0], "max")) {
            assert_int_equal(n, 7);
            double q = num(f[1]), z = num(f[2]), delta = num(f[3]), target = num(f[4]);
            uint64_t limit = u64(f[5]), want = u64(f[6]), got = 12345;
            assert_int_equal(rdp_max_steps(q, z, delta, target, limit, &got), 0);
            if (got != want)
                fail_msg("max steps q=%g z=%g delta=%g target=%g limit=%llu: %llu, "
                         "dp-accounting %llu", q, z, delta, target, (unsigned long long)limit,
                         (unsigned long long)got, (unsigned long long)want);
            n_max++;
        } else {
            fail_msg("golden: unknown row '%s'", f[0]);
        }
    }
    fclose(fp);
    /* the grid is all there: 5 q x 5 z x 4 steps at 1e-5, more deltas and points */
    assert_int_equal(n_orders_rows, 1);
    assert_true(n_eps >= 250);
    assert_true(n_rdp >= 5 * 5 * 4 * 14);
    assert_true(n_inf > 0);   /* excluded (non-converged) fractional orders and z = 0 */
    assert_true(n_max >= 5);
    printf("rdp vs dp-accounting: %d RDP values, worst relative error %.3g (%s); "
           "%d epsilons, worst relative error %.3g (%s); %d max-steps cases equal\n",
           n_rdp, worst_rdp, worst_rdp_at, n_eps, worst_eps, worst_eps_at, n_max);
}

static void test_q1_is_the_gaussian_closed_form(void **state)
{
    (void)state;
    /* no sampling: RDP(alpha) = steps * alpha / (2 z^2) */
    double orders[] = { 1.5, 2, 32, 1024 }, rdp[4];
    assert_int_equal(rdp_compute(1.0, 2.0, 10, orders, 4, rdp), 0);
    for (int i = 0; i < 4; i++)
        assert_true(rdp[i] == 10 * (orders[i] / 8.0));
    /* epsilon grows with rounds and falls with noise */
    double prev = 0, e;
    for (uint64_t r = 1; r <= 64; r *= 2) {
        assert_int_equal(rdp_epsilon(1.0, 1.0, r, 1e-5, &e), 0);
        assert_true(e > prev);
        prev = e;
    }
    double e_lo, e_hi;
    assert_int_equal(rdp_epsilon(1.0, 0.8, 100, 1e-5, &e_lo), 0);
    assert_int_equal(rdp_epsilon(1.0, 1.6, 100, 1e-5, &e_hi), 0);
    assert_true(e_hi < e_lo);
    /* sampling amplifies: q < 1 spends less than q = 1 */
    double e_q;
    assert_int_equal(rdp_epsilon(0.1, 1.0, 100, 1e-5, &e_q), 0);
    assert_int_equal(rdp_epsilon(1.0, 1.0, 100, 1e-5, &e), 0);
    assert_true(e_q < e);
}

static void test_zero_noise_zero_rate_zero_steps(void **state)
{
    (void)state;
    double orders[] = { 1.5, 2, 64 }, rdp[3], e, order = 0;
    /* z = 0 with q > 0: no privacy */
    assert_int_equal(rdp_compute(0.5, 0.0, 1, orders, 3, rdp), 0);
    for (int i = 0; i < 3; i++)
        assert_true(isinf(rdp[i]) && rdp[i] > 0);
    assert_int_equal(rdp_epsilon(1.0, 0.0, 1, 1e-5, &e), 0);
    assert_true(isinf(e) && e > 0);
    assert_int_equal(rdp_to_epsilon(orders, rdp, 3, 1e-5, &e, &order), 0);
    assert_true(isinf(e));
    assert_true(order == 1.5);   /* the first order when none is finite */
    /* q = 0 (even with z = 0) and steps = 0: nothing spent */
    assert_int_equal(rdp_compute(0.0, 0.0, 100, orders, 3, rdp), 0);
    for (int i = 0; i < 3; i++)
        assert_true(rdp[i] == 0);
    assert_int_equal(rdp_compute(1.0, 0.0, 0, orders, 3, rdp), 0);
    for (int i = 0; i < 3; i++)
        assert_true(rdp[i] == 0);
    assert_int_equal(rdp_epsilon(1.0, 0.0, 0, 1e-5, &e), 0);
    assert_true(e == 0);
    assert_int_equal(rdp_epsilon(0.0, 1.0, 1000, 1e-5, &e), 0);
    assert_true(e == 0);
    /* an infinite order: infinite RDP unless q = 0 */
    double inf_order = INFINITY;
    assert_int_equal(rdp_compute(0.5, 1.0, 1, &inf_order, 1, rdp), 0);
    assert_true(isinf(rdp[0]));
    /* negative RDP (numerical noise of other mechanisms) counts as epsilon 0 */
    double neg = -1e-9, two = 2;
    assert_int_equal(rdp_to_epsilon(&two, &neg, 1, 1e-5, &e, NULL), 0);
    assert_true(e == 0);
}

static void test_max_steps(void **state)
{
    (void)state;
    uint64_t s = 99, lim = 1000;
    double e, e_next;
    assert_int_equal(rdp_max_steps(1.0, 1.0, 1e-5, 20.0, lim, &s), 0);
    assert_true(s > 0 && s < lim);
    assert_int_equal(rdp_epsilon(1.0, 1.0, s, 1e-5, &e), 0);
    assert_int_equal(rdp_epsilon(1.0, 1.0, s + 1, 1e-5, &e_next), 0);
    assert_true(e <= 20.0 && e_next > 20.0);
    /* the limit binds */
    assert_int_equal(rdp_max_steps(1.0, 10.0, 1e-5, 1000.0, 7, &s), 0);
    assert_int_equal(s, 7);
    assert_int_equal(rdp_max_steps(1.0, 1.0, 1e-5, 20.0, 0, &s), 0);
    assert_int_equal(s, 0);
    /* no noise: not one step; a budget below one step: none */
    assert_int_equal(rdp_max_steps(1.0, 0.0, 1e-5, 100.0, lim, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(rdp_max_steps(1.0, 1.0, 1e-5, 0.1, lim, &s), 0);
    assert_int_equal(s, 0);
    /* the largest limits do not overflow the search */
    assert_int_equal(rdp_max_steps(1.0, 1e6, 1e-5, 1.0, UINT64_MAX, &s), 0);
    assert_true(s > 1000);
    assert_int_equal(rdp_epsilon(1.0, 1e6, s, 1e-5, &e), 0);
    assert_true(e <= 1.0);
    /* refused */
    assert_int_equal(rdp_max_steps(1.0, 1.0, 1e-5, -1.0, lim, &s), RDP_ERR_ARG);
    assert_int_equal(rdp_max_steps(1.0, 1.0, 1e-5, NAN, lim, &s), RDP_ERR_ARG);
    assert_int_equal(rdp_max_steps(1.0, 1.0, 0.0, 1.0, lim, &s), RDP_ERR_ARG);
    assert_int_equal(rdp_max_steps(1.5, 1.0, 1e-5, 1.0, lim, &s), RDP_ERR_ARG);
    assert_int_equal(rdp_max_steps(1.0, -1.0, 1e-5, 1.0, lim, &s), RDP_ERR_ARG);
    assert_int_equal(rdp_max_steps(1.0, 1.0, 1e-5, 1.0, lim, NULL), RDP_ERR_ARG);
}

static void test_bad_arguments_refused(void **state)
{
    (void)state;
    double orders[] = { 1.5, 2 }, rdp[2] = { 0.5, 1 }, e = -7, o;
    double bad_q[] = { -0.1, 1.0000001, NAN, INFINITY };
    for (size_t i = 0; i < sizeof bad_q / sizeof bad_q[0]; i++) {
        assert_int_equal(rdp_compute(bad_q[i], 1.0, 1, orders, 2, rdp), RDP_ERR_ARG);
        assert_int_equal(rdp_epsilon(bad_q[i], 1.0, 1, 1e-5, &e), RDP_ERR_ARG);
    }
    double bad_z[] = { -1e-300, -1, NAN, INFINITY };
    for (size_t i = 0; i < sizeof bad_z / sizeof bad_z[0]; i++) {
        assert_int_equal(rdp_compute(0.5, bad_z[i], 1, orders, 2, rdp), RDP_ERR_ARG);
        assert_int_equal(rdp_epsilon(0.5, bad_z[i], 1, 1e-5, &e), RDP_ERR_ARG);
    }
    double bad_delta[] = { 0, -1e-5, 1, 2, NAN };
    for (size_t i = 0; i < sizeof bad_delta / sizeof bad_delta[0]; i++) {
        assert_int_equal(rdp_epsilon(1.0, 1.0, 1, bad_delta[i], &e), RDP_ERR_ARG);
        assert_int_equal(rdp_to_epsilon(orders, rdp, 2, bad_delta[i], &e, &o), RDP_ERR_ARG);
    }
    /* orders: none, or one <= 1 (the RDP bound needs alpha > 1), or NaN */
    double bad_orders[][2] = { { 1.0, 2 }, { 0.5, 2 }, { 2, NAN }, { 2, -3 } };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rdp_compute(0.5, 1.0, 1, bad_orders[i], 2, rdp), RDP_ERR_ARG);
        double r[2] = { 1, 1 };
        assert_int_equal(rdp_to_epsilon(bad_orders[i], r, 2, 1e-5, &e, &o), RDP_ERR_ARG);
    }
    assert_int_equal(rdp_compute(0.5, 1.0, 1, orders, 0, rdp), RDP_ERR_ARG);
    assert_int_equal(rdp_compute(0.5, 1.0, 1, NULL, 2, rdp), RDP_ERR_ARG);
    assert_int_equal(rdp_compute(0.5, 1.0, 1, orders, 2, NULL), RDP_ERR_ARG);
    double r_ok[2] = { 0.5, 1 }, r_nan[2] = { 0.5, NAN };
    assert_int_equal(rdp_to_epsilon(orders, r_ok, 0, 1e-5, &e, &o), RDP_ERR_ARG);
    assert_int_equal(rdp_to_epsilon(orders, r_nan, 2, 1e-5, &e, &o), RDP_ERR_ARG);
    assert_int_equal(rdp_to_epsilon(orders, NULL, 2, 1e-5, &e, &o), RDP_ERR_ARG);
    assert_int_equal(rdp_to_epsilon(orders, r_ok, 2, 1e-5, NULL, &o), RDP_ERR_ARG);
    assert_int_equal(rdp_epsilon(1.0, 1.0, 1, 1e-5, NULL), RDP_ERR_ARG);
    assert_true(e == -7);   /* nothing written on refusal */
    /* order may be NULL */
    assert_int_equal(rdp_to_epsilon(orders, r_ok, 2, 1e-5, &e, NULL), 0);
    assert_non_null(strstr(rdp_strerror(RDP_ERR_ARG), "delta"));
    assert_non_null(rdp_strerror(0));
    assert_non_null(rdp_strerror(-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_dp_accounting),
        cmocka_unit_test(test_q1_is_the_gaussian_closed_form),
        cmocka_unit_test(test_zero_noise_zero_rate_zero_steps),
        cmocka_unit_test(test_max_steps),
        cmocka_unit_test(test_bad_arguments_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
