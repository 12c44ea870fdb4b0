/* aggregate/dp_noise.h: the DP noise's test vectors (aggregate/README.md, computed by
 * tests/reference/dp_noise_vector.py from the layout alone), the accuracy of the
 * libm-free logarithm against long double logl and glibc's log over millions of points
 * of its domain, and the noise's distribution over 10^6 draws (moments, tail fractions,
 * a chi-square over 34 bins). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate/robust.h"
#include "codec/codec.h"
#include "common/hex.h"

/* aggregate/README.md, "Differential privacy": tests/reference/dp_noise_vector.py */
#define DP_VECTOR_KEY3 "40d86520895e044e8f3da6a58cd97f608208ff41cb684935d65ceb5593d904eb"
#define DP_VECTOR_KEY16 "a2e04634d1c8969596d860aef35be7540fc96522d1c95dbc36fae82fba81febe"
#define DP_VECTOR_COMMIT "cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42503d6"
/* scheme 2 (this version), round 3, five parameters */
#define DP_VECTOR_POLAR3 { 0x1.7446a2p-6f, -0x1.3f8f9cp-1f, -0x1.1a8840p-1f, 0x1.db0870p-1f, \
                           -0x1.9a1c7ep+0f }
/* scheme 2, round 16, four parameters: three of its first five word pairs are rejected */
#define DP_VECTOR_POLAR16 { -0x1.94a79ep+0f, -0x1.f36a80p-2f, 0x1.14c4c4p-1f, -0x1.773f3ap+0f }
/* scheme 2, round 3: the draws themselves (agg_dp_normals, doubles): the first six at
 * sigma 1, and BLAKE2b-256 of the first 65536 as little-endian doubles at sigma 1 and 0.3 */
#define DP_VECTOR_N3 { 0x1.7446a15acace6p-6, -0x1.3f8f9cee1ab74p-1, -0x1.1a8840475ab98p-1, \
                       0x1.db0870971aa33p-1, -0x1.9a1c7ecc539b3p+0, 0x1.41ef986b8a994p-1 }
#define DP_VECTOR_N3_DIGEST "7a2fb5dee999a7fa250c631dad08b367b06f179ea30a52696dce135097aeaf73"
#define DP_VECTOR_N3_DIGEST_03 "b675def49bb51a6e3bcecac338eeb28050307c40c99e07667eebeddb75531481"
/* agg_dp_log on 2^18 points x_i of [2^-104, 1): exponent -1 - (i mod 104), mantissa bits
 * (i * 0x9e3779b97f4a7c15 mod 2^64) >> 12; BLAKE2b-256 of the results as LE doubles */
#define DP_VECTOR_LOG_DIGEST "f579d0c0549d02ac8895c5ddc198cdef0a851d176035a241cfb9bb6dee7e947e"
/* scheme 1 (earlier versions, Box-Muller with libm), round 3: glibc's values */
#define DP_VECTOR_LIBM3 { 0x1.19aa36p+0f, 0x1.54db54p-2f, 0x1.5320aep-1f, -0x1.61ce78p+0f, \
                          -0x1.5dc056p+0f }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Privacy on with noise std z * C / k = sigma (k = 1, dense uplink). */
static void dp_setup(struct policy *p, struct policy_round_plan *plan, double sigma)
{
    memset(p, 0, sizeof *p);
    p->aggregation.rule = POLICY_AGG_FEDAVG;
    p->aggregation.weighting = POLICY_WEIGHT_UNIFORM;
    p->privacy.enabled = 1;
    p->privacy.clip = 1;
    p->privacy.noise_multiplier = sigma;
    memset(plan, 0, sizeof *plan);
    codec_params_default(&plan->uplink);
    plan->uplink.k_per_block = plan->uplink.block_size;   /* dense: factor 1 */
}

static void vector_seed(uint8_t seed[AGG_DP_SEED_BYTES])
{
    for (int i = 0; i < AGG_DP_SEED_BYTES; i++)
        seed[i] = (uint8_t)i;
}

static void check_noise(unsigned scheme, uint64_t round, const float *want, size_t n)
{
    uint8_t seed[AGG_DP_SEED_BYTES];
    vector_seed(seed);
    struct policy p;
    struct policy_round_plan plan;
    dp_setup(&p, &plan, 1);
    float a[8] = { 0 };
    assert_true(n <= 8);
    assert_int_equal(agg_dp_noise_scheme(&p, &plan, 1, seed, round, a, n, scheme), 0);
    for (size_t j = 0; j < n; j++)
        if (a[j] != want[j])
            fail_msg("scheme %u round %llu value %zu: %a, the vector says %a", scheme,
                     (unsigned long long)round, j, (double)a[j], (double)want[j]);
}

/* BLAKE2b-256 of x[0..n) as little-endian IEEE doubles, in hex. */
static void f64_digest(const double *x, size_t n, char hex[65])
{
    uint8_t le[8], digest[32];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (size_t j = 0; j < n; j++) {
        uint64_t b;
        memcpy(&b, &x[j], 8);
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(b >> (8 * i));
        crypto_generichash_update(&h, le, 8);
    }
    crypto_generichash_final(&h, digest, 32);
    hex_encode(digest, 32, hex);
}

/* The vectors of aggregate/README.md: a change of the stream, the transform or its order
 * of operations changes these bits, and replay of recorded experiments with them. */
static void noise_matches_the_test_vectors(void **state)
{
    (void)state;
    uint8_t seed[AGG_DP_SEED_BYTES], key[32], commit[32];
    char hex[65];
    vector_seed(seed);
    agg_dp_round_key(seed, 3, key);
    hex_encode(key, 32, hex);
    assert_string_equal(hex, DP_VECTOR_KEY3);
    agg_dp_round_key(seed, 16, key);
    hex_encode(key, 32, hex);
    assert_string_equal(hex, DP_VECTOR_KEY16);
    agg_dp_seed_commitment(seed, commit);
    hex_encode(commit, 32, hex);
    assert_string_equal(hex, DP_VECTOR_COMMIT);

    const float polar3[] = DP_VECTOR_POLAR3, polar16[] = DP_VECTOR_POLAR16;
    check_noise(AGG_DP_SCHEME_POLAR, 3, polar3, 5);
    check_noise(AGG_DP_SCHEME_POLAR, 16, polar16, 4);
    /* the doubles behind them: every bit of the transform (a last-bit change of the log
     * or of the order of operations changes some of 65536 draws) */
    enum { NDRAW = 65536 };
    double *nd = malloc(NDRAW * sizeof *nd);
    float *nf = calloc(NDRAW, sizeof *nf);
    assert_non_null(nd);
    assert_non_null(nf);
    assert_int_equal(agg_dp_normals(seed, 3, AGG_DP_SCHEME_POLAR, 1.0, nd, NDRAW), 0);
    const double n3[] = DP_VECTOR_N3;
    for (int j = 0; j < 6; j++)
        if (nd[j] != n3[j])
            fail_msg("N_%d of round 3: %a, the vector says %a", j, nd[j], n3[j]);
    f64_digest(nd, NDRAW, hex);
    assert_string_equal(hex, DP_VECTOR_N3_DIGEST);
    assert_int_equal(agg_dp_normals(seed, 3, AGG_DP_SCHEME_POLAR, 0.3, nd, NDRAW), 0);
    f64_digest(nd, NDRAW, hex);
    assert_string_equal(hex, DP_VECTOR_N3_DIGEST_03);
    /* and agg_dp_noise adds exactly those, rounded to float (z = 0.3, C = 1, k = 1) */
    struct policy p;
    struct policy_round_plan plan;
    dp_setup(&p, &plan, 0.3);
    assert_int_equal(agg_dp_noise(&p, &plan, 1, seed, 3, nf, NDRAW), 0);
    for (size_t j = 0; j < NDRAW; j++)
        assert_true(nf[j] == (float)nd[j]);
    assert_int_equal(agg_dp_normals(seed, 3, 7, 1.0, nd, NDRAW), AGG_ERR_ARG);
    free(nd);
    free(nf);

    /* agg_dp_noise is scheme 2 */
    dp_setup(&p, &plan, 1);
    float a[5] = { 0 };
    assert_int_equal(agg_dp_noise(&p, &plan, 1, seed, 3, a, 5), 0);
    assert_memory_equal(a, polar3, sizeof a);
    assert_int_equal(AGG_DP_SCHEME, AGG_DP_SCHEME_POLAR);
#if defined(__GLIBC__) && defined(__x86_64__)
    /* scheme 1 depends on libm: these are glibc's bits (x86-64), as earlier versions drew */
    const float libm3[] = DP_VECTOR_LIBM3;
    check_noise(AGG_DP_SCHEME_BOX_MULLER_LIBM, 3, libm3, 5);
#endif
    /* an unknown scheme is refused, before anything is added */
    memset(a, 0, sizeof a);
    assert_int_equal(agg_dp_noise_scheme(&p, &plan, 1, seed, 3, a, 5, 3), AGG_ERR_ARG);
    assert_int_equal(agg_dp_noise_scheme(&p, &plan, 1, seed, 3, a, 5, 0), AGG_ERR_ARG);
    for (int j = 0; j < 5; j++)
        assert_true(a[j] == 0.0f);
}

/* x's distance from ref in units of the last place of the double nearest ref. */
static long double ulps(double x, long double ref)
{
    double r = (double)ref;
    double up = nextafter(fabs(r), INFINITY) - fabs(r);
    return fabsl((long double)x - ref) / (long double)up;
}

struct log_error {
    long double max_ulps;       /* against logl */
    double at;
    size_t n, differs_libm;     /* points; points where glibc's log gives other bits */
    size_t not_nearest;         /* points more than 0.5 ulp from logl (not the nearest) */
    double max_libm_ulps;       /* against glibc's log, in its ulps */
};

/* 1 when long double arithmetic really carries more bits than double at run time (not
 * under valgrind, which computes x87 long doubles in double). */
static int wide_long_double(void)
{
    volatile long double one = 1.0L, tiny = 0x1p-60L;
    return LDBL_MANT_DIG > DBL_MANT_DIG && one + tiny != one;
}

static int wide;

static void log_check(struct log_error *e, double x)
{
    double y = agg_dp_log(x);
    if (wide) {
        long double err = ulps(y, logl((long double)x));
        e->not_nearest += err > 0.5L;
        if (err > e->max_ulps) {
            e->max_ulps = err;
            e->at = x;
        }
    }
    double l = log(x);
    if (y != l) {
        e->differs_libm++;
        double d = (double)ulps(y, (long double)l);
        if (d > e->max_libm_ulps)
            e->max_libm_ulps = d;
    }
    e->n++;
}

/* agg_dp_log over its domain [2^-104, 1) (and beyond): below 1 ulp from logl (x86-64's
 * 64-bit-mantissa long double) everywhere sampled, and never more than 1 ulp from
 * glibc's log. aggregate/README.md quotes the figures this prints. */
static void log_is_within_one_ulp(void **state)
{
    (void)state;
    struct log_error e = { 0 };
    wide = wide_long_double();
    if (!wide)
        print_message("long double is no wider than double here: no logl reference\n");
    /* the q the polar method feeds it: u^2 + v^2 of its uniforms, 0 < q < 1 */
    for (size_t i = 0; i < 1000000; i++) {
        double u = (double)(next_u64() >> 11) * 0x1p-52 - 1.0;
        double v = (double)(next_u64() >> 11) * 0x1p-52 - 1.0;
        double q = u * u + v * v;
        if (q > 0 && q < 1)
            log_check(&e, q);
    }
    /* every binade of [2^-104, 1): random mantissas */
    for (size_t i = 0; i < 1000000; i++) {
        uint64_t b = ((uint64_t)(1023 - 1 - next_u64() % 104) << 52) |
                     (next_u64() & 0xfffffffffffffull);
        double x;
        memcpy(&x, &b, 8);
        log_check(&e, x);
    }
    /* next to 1 (fdlibm's |f| < 2^-20 branch) and to the sqrt(2)/2 switch */
    for (size_t i = 1; i <= 100000; i++) {
        log_check(&e, 1.0 - (double)i * 0x1p-53);
        log_check(&e, 1.0 - (double)(next_u64() >> 11) * 0x1p-73);
        log_check(&e, 0.70710678118654752 + ((double)i - 50000.0) * 0x1p-40);
    }
    /* and above 1, where replay never calls it, for completeness */
    for (size_t i = 0; i < 200000; i++) {
        uint64_t b = ((uint64_t)(1023 + next_u64() % 1000) << 52) |
                     (next_u64() & 0xfffffffffffffull);
        double x;
        memcpy(&x, &b, 8);
        log_check(&e, x);
    }
    print_message("agg_dp_log: %zu points, max error %.3Lf ulp against logl (at %a), %zu "
                  "not the nearest double; %zu differ from glibc log, by at most %.0f ulp\n",
                  e.n, e.max_ulps, e.at, e.not_nearest, e.differs_libm, e.max_libm_ulps);
    if (wide)
        assert_true(e.max_ulps < 1.0L);
    assert_true(e.max_libm_ulps <= 1.0);
    assert_true(e.differs_libm < e.n / 10);

    /* pinned bit for bit (tests/reference/dp_noise_vector.py) */
    enum { NL = 1 << 18 };
    double *l = malloc(NL * sizeof *l);
    assert_non_null(l);
    for (uint64_t i = 0; i < NL; i++) {
        uint64_t b = (uint64_t)(1022 - i % 104) << 52 | (i * 0x9e3779b97f4a7c15ull) >> 12;
        double x;
        memcpy(&x, &b, 8);
        l[i] = agg_dp_log(x);
    }
    char hex[65];
    f64_digest(l, NL, hex);
    assert_string_equal(hex, DP_VECTOR_LOG_DIGEST);
    free(l);

    /* exact and refused values */
    assert_true(agg_dp_log(1.0) == 0.0 && !signbit(agg_dp_log(1.0)));
    assert_true(agg_dp_log(0.5) == -0x1.62e42fefa39efp-1);   /* -ln 2, rounded */
    assert_true(agg_dp_log(0x1p-104) == -104 * 0x1.62e42fefa39efp-1 ||
                ulps(agg_dp_log(0x1p-104), -104 * 0.693147180559945309417232121458176568L)
                    < 1.0L);
    assert_true(isnan(agg_dp_log(0.0)));
    assert_true(isnan(agg_dp_log(-1.0)));
    assert_true(isnan(agg_dp_log(0x1p-1074)));              /* subnormal: not its domain */
    assert_true(isnan(agg_dp_log(INFINITY)));
    assert_true(isnan(agg_dp_log(NAN)));
}

static double phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* 10^6 draws of scheme 2 at sigma = 1 are N(0, 1): mean, variance, skewness and excess
 * kurtosis within 5 standard errors, the two-sided tail fractions beyond 1 to 4.5 sigma
 * within 5 binomial standard errors (each side alike), and a chi-square over 34 bins of
 * the CDF below the 10^-6 critical value; the same (seed, round) gives the same bits,
 * another round other noise. */
static void noise_is_standard_normal(void **state)
{
    (void)state;
    const size_t n = 1000000;
    uint8_t seed[AGG_DP_SEED_BYTES];
    for (int i = 0; i < AGG_DP_SEED_BYTES; i++)
        seed[i] = (uint8_t)(0xa5 ^ (3 * i));
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    struct policy p;
    struct policy_round_plan plan;
    dp_setup(&p, &plan, 1);
    assert_int_equal(agg_dp_noise(&p, &plan, 1, seed, 11, a, n), 0);

    static const double tail_at[] = { 1, 2, 3, 4, 4.5 };
    enum { NT = sizeof tail_at / sizeof tail_at[0], NB = 34 };
    size_t above[NT] = { 0 }, below[NT] = { 0 }, bins[NB] = { 0 };
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, amax = 0;
    for (size_t j = 0; j < n; j++) {
        double x = a[j];
        s1 += x;
        s2 += x * x;
        s3 += x * x * x;
        s4 += x * x * x * x;
        amax = fmax(amax, fabs(x));
        for (int t = 0; t < NT; t++) {
            above[t] += x > tail_at[t];
            below[t] += x < -tail_at[t];
        }
        /* bins: (-inf, -4), [-4 + 0.25 i, -4 + 0.25 (i + 1)) for i < 32, [4, inf) */
        int bin = x < -4 ? 0 : x >= 4 ? NB - 1 : 1 + (int)floor((x + 4) / 0.25);
        bins[bin]++;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    double skew = s3 / n / pow(var, 1.5), kurt = s4 / n / (var * var) - 3;
    print_message("10^6 draws: mean %.5f, variance %.5f, skewness %.5f, excess kurtosis "
                  "%.5f, max |x| %.3f\n", mean, var, skew, kurt, amax);
    assert_true(fabs(mean) < 5 / sqrt((double)n));
    assert_true(fabs(var - 1) < 5 * sqrt(2.0 / n));
    assert_true(fabs(skew) < 5 * sqrt(6.0 / n));
    assert_true(fabs(kurt) < 5 * sqrt(24.0 / n));
    for (int t = 0; t < NT; t++) {
        double pside = phi(-tail_at[t]), want = 2 * pside * n;
        double got = (double)(above[t] + below[t]);
        double sd = sqrt(n * 2 * pside * (1 - 2 * pside));
        print_message("  |x| > %.1f: %.0f (expected %.1f), + %zu, - %zu\n", tail_at[t], got,
                      want, above[t], below[t]);
        assert_true(fabs(got - want) < 5 * sd + 1);
        double sd1 = sqrt(n * pside * (1 - pside));
        assert_true(fabs((double)above[t] - pside * n) < 5 * sd1 + 1);
        assert_true(fabs((double)below[t] - pside * n) < 5 * sd1 + 1);
    }
    double chi2 = 0;
    for (int i = 0; i < NB; i++) {
        double lo = i == 0 ? -INFINITY : -4 + 0.25 * (i - 1);
        double hi = i == NB - 1 ? INFINITY : -4 + 0.25 * i;
        double e = n * ((i == NB - 1 ? 1.0 : phi(hi)) - (i == 0 ? 0.0 : phi(lo)));
        chi2 += (bins[i] - e) * (bins[i] - e) / e;
    }
    print_message("  chi-square over %d bins: %.1f (33 degrees of freedom; 1e-6 critical "
                  "value 86.9)\n", NB, chi2);
    assert_true(chi2 < 86.9);

    /* the same (seed, round): the same bits; another round: other noise */
    assert_int_equal(agg_dp_noise(&p, &plan, 1, seed, 11, b, n), 0);
    assert_memory_equal(a, b, n * sizeof *a);
    memset(b, 0, n * sizeof *b);
    assert_int_equal(agg_dp_noise(&p, &plan, 1, seed, 12, b, n), 0);
    size_t same = 0;
    for (size_t j = 0; j < n; j++)
        same += a[j] == b[j];
    assert_true(same < n / 1000);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(noise_matches_the_test_vectors),
        cmocka_unit_test(log_is_within_one_ulp),
        cmocka_unit_test(noise_is_standard_normal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
