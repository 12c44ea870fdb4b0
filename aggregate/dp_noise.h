#ifndef AULAC_AGGREGATE_DP_NOISE_H
#define AULAC_AGGREGATE_DP_NOISE_H
/* DP-FedAvg's Gaussian noise on the round's average (aggregate/README.md, "Differential
 * privacy", has the byte layout and test vectors; PRIVACY.md, "Replaying the noise").
 * The coordinator's round close (agg_dp_noise) and `aulac ledger replay` / `credits
 * verify` (agg_dp_noise_scheme with the scheme the experiment recorded) call the same
 * code, so the noise of a round is a function of (seed, round, scheme) alone.
 *
 * Scheme 2 (AGG_DP_SCHEME, this version) turns the ChaCha20 stream into Gaussians with
 * IEEE-754 double +, -, *, / and sqrt only, in a fixed order (the Marsaglia polar method
 * and agg_dp_log below): every operation is correctly rounded on every conforming
 * platform, so the noise is the same bits everywhere. The file is compiled without
 * floating-point contraction (Makefile: -ffp-contract=off; clang also by pragma) and
 * refuses to compile with -ffast-math or excess-precision evaluation.
 *
 * Scheme 1 (the earlier versions) is Box-Muller with the platform's libm log, cos and
 * sin: it is kept only so that replay can check experiments recorded with it, and it
 * reproduces their noise bit for bit only with a libm that rounds those three the same. */
#include <stddef.h>
#include <stdint.h>

#include "policies/plan.h"
#include "policies/policy.h"

#define AGG_DP_SEED_BYTES 32

#define AGG_DP_SCHEME_BOX_MULLER_LIBM 1u   /* earlier versions (experiment_started without
                                              dp_noise_scheme) */
#define AGG_DP_SCHEME_POLAR           2u   /* libm-free polar method: this version */
#define AGG_DP_SCHEME AGG_DP_SCHEME_POLAR  /* what agg_dp_noise draws and
                                              experiment_started records */

/* DP-FedAvg's noise on the round's average of k clipped updates: avg[j] += N(0, s^2)
 * with s = z * C * f / k, f the factor outer_average applied to the sum (sparse_scale in
 * sparse rounds, else 1): the same as noise of std z * C on the sum before the average.
 * Nothing when privacy is off or z = 0. AGG_ERR_ARG when k = 0.
 *
 * The noise of round `round` is a function of (seed, round) alone, so anyone holding the
 * experiment's seed (revealed with the payloads once the experiment has ended,
 * committed by BLAKE2b-256(seed) in experiment_started: PRIVACY.md) recomputes it:
 *   key    = BLAKE2b-256(seed (32) || "aulac/dp-noise" (14 bytes) || round (u64 LE))
 *   stream = ChaCha20 (libsodium crypto_stream_chacha20, 64-bit nonce of zeros, block
 *            counter from 0) keystream under key, read as little-endian u64 words w0 w1 ...
 *   for each pair of parameters j, j+1 (j = 0, 2, 4, ...), scheme 2:
 *            repeat: the next two words a, b; u = (a >> 11) 2^-52 - 1,
 *                    v = (b >> 11) 2^-52 - 1 (exact, in [-1, 1)); q = u u + v v
 *            until 0 < q < 1 (a rejected pair's words are skipped);
 *            m = sqrt((-2 agg_dp_log(q)) / q), N_j = u m, N_j+1 = v m,
 *            avg[j] += (float)(s N_j), avg[j+1] += (float)(s N_j+1) (when j + 1 < n)
 * in IEEE double, each operation rounded in the order written. The seed is 32 bytes from
 * libsodium's CSPRNG, drawn when the experiment starts, committed in experiment_started,
 * and handed out only with the payloads once the experiment has ended. */
int agg_dp_noise(const struct policy *p, const struct policy_round_plan *plan, size_t k,
                 const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, float *avg,
                 size_t n_params);

/* As agg_dp_noise with the given scheme (AGG_DP_SCHEME_*; replay passes the scheme the
 * experiment recorded). AGG_ERR_ARG for an unknown scheme. Scheme 1: for each pair the
 * next two words a, b; u1 = ((a >> 11) + 1) 2^-53, u2 = (b >> 11) 2^-53,
 * r = sqrt(-2 log(u1)), avg[j] += (float)((s r) cos(2 pi u2)),
 * avg[j+1] += (float)((s r) sin(2 pi u2)), with libm's log, cos and sin. */
int agg_dp_noise_scheme(const struct policy *p, const struct policy_round_plan *plan,
                        size_t k, const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round,
                        float *avg, size_t n_params, unsigned scheme);

/* The draws themselves, before the float conversion: out[j] = the double agg_dp_noise
 * rounds to float and adds to avg[j], for noise std sigma (scheme 2: sigma (u m),
 * sigma (v m) above; scheme 1: (sigma r) cos, (sigma r) sin), for j < n, of (seed,
 * round) under `scheme`. For the test vectors, which pin them bit for bit (the float
 * noise alone would hide a last-bit change of the transform in all but ~2^-29 of its
 * values). AGG_ERR_ARG for an unknown scheme or a NULL argument. */
int agg_dp_normals(const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, unsigned scheme,
                   double sigma, double *out, size_t n);

/* The natural logarithm scheme 2 uses, for positive normal finite x (scheme 2 calls it on
 * [2^-104, 1)): fdlibm's e_log.c algorithm (x = 2^k (1 + f), 1 + f in [sqrt(2)/2,
 * sqrt(2)); log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f / (2 + f), R a fixed
 * degree-14 polynomial) with +, -, *, / only, in fdlibm's order: the same bits on every
 * IEEE-754 platform, error below 1 ulp (measured against long double logl:
 * aggregate/README.md). Other x (zero, negative, subnormal, infinite, NaN): NaN. */
double agg_dp_log(double x);

/* The round key above (BLAKE2b-256(seed || "aulac/dp-noise" || round LE)). */
void agg_dp_round_key(const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, uint8_t key[32]);

/* The commitment experiment_started records: BLAKE2b-256(seed). */
void agg_dp_seed_commitment(const uint8_t seed[AGG_DP_SEED_BYTES], uint8_t out[32]);

#endif
