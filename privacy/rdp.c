/* The RDP accountant of the Poisson-subsampled Gaussian mechanism, written after
 * Google's dp-accounting (python/dp_accounting/rdp/rdp_privacy_accountant.py:
 * _compute_rdp_poisson_subsampled_gaussian, _compute_log_a_int, _compute_log_a_frac,
 * compute_epsilon, DEFAULT_RDP_ORDERS). The same series, in the same order, in log
 * space, so the values agree to rounding (privacy/README.md; tests/unit/test_rdp.c
 * checks the committed goldens to 1e-6 relative). */
#include "privacy/rdp.h"

#include <math.h>
#include <stdlib.h>

/* dp-accounting's DEFAULT_RDP_ORDERS: [1 + x / 10.0 for x in 1..99] + [11..63] +
 * [128, 256, 512, 1024]. F(x) is the same double expression, folded at compile time with
 * the same rounding as Python's. */
#define F(x) (1 + (x) / 10.0)
const double rdp_default_orders[] = {
    F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), F(9), F(10), F(11), F(12), F(13),
    F(14), F(15), F(16), F(17), F(18), F(19), F(20), F(21), F(22), F(23), F(24), F(25),
    F(26), F(27), F(28), F(29), F(30), F(31), F(32), F(33), F(34), F(35), F(36), F(37),
    F(38), F(39), F(40), F(41), F(42), F(43), F(44), F(45), F(46), F(47), F(48), F(49),
    F(50), F(51), F(52), F(53), F(54), F(55), F(56), F(57), F(58), F(59), F(60), F(61),
    F(62), F(63), F(64), F(65), F(66), F(67), F(68), F(69), F(70), F(71), F(72), F(73),
    F(74), F(75), F(76), F(77), F(78), F(79), F(80), F(81), F(82), F(83), F(84), F(85),
    F(86), F(87), F(88), F(89), F(90), F(91), F(92), F(93), F(94), F(95), F(96), F(97),
    F(98), F(99),
    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54,
    55, 56, 57, 58, 59, 60, 61, 62, 63, 128, 256, 512, 1024,
};
#undef F
#define RDP_N_DEFAULT_ORDERS (sizeof rdp_default_orders / sizeof rdp_default_orders[0])
const size_t rdp_n_default_orders = RDP_N_DEFAULT_ORDERS;
_Static_assert(RDP_N_DEFAULT_ORDERS == 156, "99 + 53 + 4 default orders");

/* The series of the fractional orders stops after this many terms; an order whose series
 * has not converged by then is excluded (its RDP is +inf), as in dp-accounting. */
#define MAX_STEPS_LOG_A_FRAC 1000

/* log(exp(x) + exp(y)), exact when one is -inf. */
static double log_add(double logx, double logy)
{
    double a = fmin(logx, logy), b = fmax(logx, logy);
    if (a == -INFINITY)
        return b;
    return log1p(exp(a - b)) + b;
}

/* log|Gamma(x)|; lgamma_r: no write to the global signgam, so callable from any thread. */
static double log_gamma(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

/* log of the (generalised) binomial coefficient, in absolute value, as scipy's gammaln
 * gives it. */
static double log_comb(double n, double k)
{
    return log_gamma(n + 1) - log_gamma(k + 1) - log_gamma(n - k + 1);
}

/* log(erfc(x)), accurate where erfc(x) underflows. dp-accounting computes
 * log(2) + scipy.special.log_ndtr(-x * sqrt(2)); glibc's erfc has full relative precision
 * while its result is a normal double (x < 26.5), past that the asymptotic series
 * erfc(x) = exp(-x^2) / (x sqrt(pi)) * sum_k (-1)^k (2k-1)!! / (2x^2)^k. */
static double log_erfc(double x)
{
    if (x < 25.0)
        return log(erfc(x));
    double x2 = x * x, term = 1.0, sum = 1.0;
    for (int k = 1; k < 12; k++) {
        term *= -(2.0 * k - 1.0) / (2.0 * x2);
        sum += term;
    }
    return -x2 - log(x) - 0.5 * log(M_PI) + log(sum);
}

/* log(A_alpha) for an integer order alpha >= 2 and 0 < q < 1 (Mironov et al. 2019,
 * Sec. 3.3): A_alpha = sum_{i=0..alpha} C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2-i)/(2s^2)). */
static double log_a_int(double q, double sigma, uint64_t alpha)
{
    double log_a = -INFINITY;
    double log1mq = log1p(-q), logq = log(q);
    for (uint64_t i = 0; i <= alpha; i++) {
        double di = (double)i;
        double log_coef_i = log_comb((double)alpha, di) + di * logq + (double)(alpha - i) * log1mq;
        double s = log_coef_i + (di * di - di) / (2 * (sigma * sigma));
        log_a = log_add(log_a, s);
    }
    return log_a;
}

/* log(A_alpha) for a fractional order alpha > 1 and 0 < q < 1: the two integrals over
 * (-inf, z0] and [z0, inf) as series (Mironov et al. 2019, Sec. 3.3), summed until both
 * terms decrease and lie 30 nats below the total; +inf when they have not after
 * MAX_STEPS_LOG_A_FRAC terms. */
static double log_a_frac(double q, double sigma, double alpha)
{
    double log_a0 = -INFINITY, log_a1 = -INFINITY;
    double z0 = sigma * sigma * log(1 / q - 1) + 0.5;
    double log1mq = log1p(-q), logq = log(q);
    double last_s0 = -INFINITY, last_s1 = -INFINITY;
    for (int i = 0; i < MAX_STEPS_LOG_A_FRAC; i++) {
        double di = i;
        double log_coef = log_comb(alpha, di);
        double j = alpha - di;
        double log_t0 = log_coef + di * logq + j * log1mq;
        double log_t1 = log_coef + j * logq + di * log1mq;
        double log_e0 = log(0.5) + log_erfc((di - z0) / (sqrt(2) * sigma));
        double log_e1 = log(0.5) + log_erfc((z0 - j) / (sqrt(2) * sigma));
        double log_s0 = log_t0 + (di * di - di) / (2 * (sigma * sigma)) + log_e0;
        double log_s1 = log_t1 + (j * j - j) / (2 * (sigma * sigma)) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        double total = log_add(log_a0, log_a1);
        if (log_s0 < last_s0 && log_s1 < last_s1 && fmax(log_s0, log_s1) < total - 30)
            return total;
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    return INFINITY;
}

/* The RDP of one step at order alpha (> 1 or +inf); q, z already checked. */
static double rdp_one_order(double q, double z, double alpha)
{
    if (q == 0)
        return 0;
    if (isinf(alpha) || z == 0)
        return INFINITY;
    if (q == 1.0)
        return alpha / (2 * (z * z));
    double log_a;
    if (alpha == floor(alpha) && alpha < 9007199254740992.0) /* an integer order */
        log_a = log_a_int(q, z, (uint64_t)alpha);
    else
        log_a = log_a_frac(q, z, alpha);
    return log_a / (alpha - 1);
}

static int orders_ok(const double *orders, size_t n_orders)
{
    if (!orders || n_orders == 0)
        return 0;
    for (size_t i = 0; i < n_orders; i++)
        if (!(orders[i] > 1))   /* also refuses NaN */
            return 0;
    return 1;
}

int rdp_compute(double q, double z, uint64_t steps, const double *orders, size_t n_orders,
                double *rdp)
{
    if (!(q >= 0 && q <= 1) || !(z >= 0) || isinf(z) || !orders_ok(orders, n_orders) || !rdp)
        return RDP_ERR_ARG;
    for (size_t i = 0; i < n_orders; i++) {
        /* zero steps compose nothing (dp-accounting would give 0 * inf = nan) */
        rdp[i] = steps == 0 ? 0 : (double)steps * rdp_one_order(q, z, orders[i]);
    }
    return 0;
}

int rdp_to_epsilon(const double *orders, const double *rdp, size_t n_orders, double delta,
                   double *epsilon, double *order)
{
    if (!orders_ok(orders, n_orders) || !rdp || !(delta > 0 && delta < 1) || !epsilon)
        return RDP_ERR_ARG;
    for (size_t i = 0; i < n_orders; i++)
        if (isnan(rdp[i]))
            return RDP_ERR_ARG;
    /* RdpAccountant.get_epsilon: delta = 1 - (1 - effective)(1 - extra_delta), extra 0 */
    double d = -expm1(log1p(-delta));
    size_t best = 0;
    double best_eps = INFINITY;
    for (size_t i = 0; i < n_orders; i++) {
        double a = orders[i], r = rdp[i], eps;
        if (r < 0)
            eps = 0;            /* numerical noise of extreme events */
        else if (d * d + expm1(-r) > 0)
            eps = 0;            /* the KL bound: delta <= sqrt(1 - exp(-r)) */
        else if (a > 1.01)      /* Canonne, Kamath, Steinke 2020, Prop. 12 */
            eps = r + log1p(-1 / a) - log(d * a) / (a - 1);
        else
            eps = INFINITY;     /* the bound is unstable as alpha -> 1 */
        if (i == 0 || eps < best_eps) { /* numpy.argmin: the first minimum */
            best = i;
            best_eps = eps;
        }
    }
    *epsilon = best_eps > 0 ? best_eps : 0;
    if (order)
        *order = orders[best];
    return 0;
}

int rdp_epsilon(double q, double z, uint64_t steps, double delta, double *epsilon)
{
    double rdp[RDP_N_DEFAULT_ORDERS];
    int rc = rdp_compute(q, z, steps, rdp_default_orders, rdp_n_default_orders, rdp);
    if (rc)
        return rc;
    return rdp_to_epsilon(rdp_default_orders, rdp, rdp_n_default_orders, delta, epsilon, NULL);
}

int rdp_max_steps(double q, double z, double delta, double target, uint64_t max_steps,
                  uint64_t *steps)
{
    if (!(target >= 0) || !steps)
        return RDP_ERR_ARG;
    double one[RDP_N_DEFAULT_ORDERS], rdp[RDP_N_DEFAULT_ORDERS], eps;
    int rc = rdp_compute(q, z, 1, rdp_default_orders, rdp_n_default_orders, one);
    if (rc)
        return rc;
    if (!(delta > 0 && delta < 1))
        return RDP_ERR_ARG;
    /* epsilon(n) from n * rdp(1): the same doubles rdp_epsilon(q, z, n, delta) computes */
    uint64_t lo = 0, hi = max_steps;   /* epsilon(lo) <= target (epsilon(0) = 0) */
    while (lo < hi) {
        uint64_t mid = hi - (hi - lo) / 2;   /* the upper midpoint, no overflow */
        for (size_t i = 0; i < rdp_n_default_orders; i++)
            rdp[i] = (double)mid * one[i];
        rc = rdp_to_epsilon(rdp_default_orders, rdp, rdp_n_default_orders, delta, &eps, NULL);
        if (rc)
            return rc;
        if (eps <= target)
            lo = mid;
        else
            hi = mid - 1;
    }
    *steps = lo;
    return 0;
}

const char *rdp_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case RDP_ERR_ARG:
        return "privacy accountant: argument out of range (q outside [0, 1], noise multiplier "
               "negative or not finite, delta outside (0, 1), no orders or an order <= 1)";
    default:
        return "privacy accountant: unknown error";
    }
}
