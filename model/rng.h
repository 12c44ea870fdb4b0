#ifndef AULAC_MODEL_RNG_H
#define AULAC_MODEL_RNG_H
/* Portable pseudo-random numbers: the same sequence on every machine and compiler.
 * xoshiro256** (Blackman & Vigna) seeded through splitmix64; normal deviates by the
 * Marsaglia polar method with a logarithm computed in strict double arithmetic
 * (no libm transcendental, no fused multiply-add), so initializations and sampled
 * windows are bit-identical everywhere. Not for cryptography. */
#include <stdint.h>

struct rng {
    uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

struct rng_normal {
    struct rng r;
    double spare;
    int has_spare;
};

void rng_normal_init(struct rng_normal *g, uint64_t seed);
/* A standard normal deviate. */
double rng_normal_next(struct rng_normal *g);

#endif
