#include "model/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    /* Rejection on the top of the range keeps every residue equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next(r);
    while (x >= limit);
    return x % n;
}

void rng_normal_init(struct rng_normal *g, uint64_t seed)
{
    rng_seed(&g->r, seed);
    g->spare = 0.0;
    g->has_spare = 0;
}

/* Every intermediate passes through a volatile double, so each operation is rounded
 * to double on its own: no compiler may fuse a multiply and an add (FMA), which
 * would change the last bits on some machines and not on others. */
static inline double rd(double x)
{
    volatile double v = x;
    return v;
}

/* Natural logarithm of x in (0, 1], correct to a few ulp, in IEEE double operations
 * only: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m-1)/(m+1)). */
static double strict_log(double x)
{
    int e;
    double m = frexp(x, &e); /* exact */
    if (m < 0.70710678118654752440) {
        m *= 2.0; /* exact */
        e -= 1;
    }
    double t = rd(rd(m - 1.0) / rd(m + 1.0));
    double t2 = rd(t * t);
    double s = 1.0 / 27.0;
    for (int k = 12; k >= 0; k--)
        s = rd(rd(s * t2) + 1.0 / (double)(2 * k + 1));
    const double ln2_hi = 6.93147180369123816490e-01; /* high bits of ln 2 */
    const double ln2_lo = 1.90821492927058770002e-10;
    double de = (double)e;
    return rd(rd(de * ln2_hi) + rd(rd(rd(2.0 * t) * s) + rd(de * ln2_lo)));
}

double rng_normal_next(struct rng_normal *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    for (;;) {
        /* 53-bit uniforms in [0,1) mapped exactly to [-1, 1) */
        double u = rd((double)(rng_next(&g->r) >> 11) * 0x1.0p-52 - 1.0);
        double v = rd((double)(rng_next(&g->r) >> 11) * 0x1.0p-52 - 1.0);
        double s = rd(rd(u * u) + rd(v * v));
        if (s >= 1.0 || s == 0.0)
            continue;
        double f = sqrt(rd(rd(-2.0 * strict_log(s)) / s)); /* sqrt is exact IEEE */
        g->spare = rd(v * f);
        g->has_spare = 1;
        return rd(u * f);
    }
}
