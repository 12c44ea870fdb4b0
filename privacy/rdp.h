#ifndef AULAC_PRIVACY_RDP_H
#define AULAC_PRIVACY_RDP_H
/* The Renyi-DP accountant of the subsampled Gaussian mechanism (Mironov, Talwar, Zhang
 * 2019, "Renyi Differential Privacy of the Sampled Gaussian Mechanism"), and its
 * conversion to (epsilon, delta)-DP, as Google's dp-accounting RdpAccountant computes
 * them (privacy/README.md: formulas; tests/reference/golden/rdp.tsv: the reference grid,
 * written by `make reference-rdp` from dp-accounting in a venv, matched to 1e-6 relative).
 *
 * aulac's use (PRIVACY.md): each round is one Gaussian mechanism on the sum of the
 * members' clipped updates with noise multiplier z = privacy.noise_multiplier; every
 * member of the round takes part (no sampling: q = 1); epsilon after r rounds is
 * rdp_epsilon(1, z, r, delta). */
#include <stddef.h>
#include <stdint.h>

#define RDP_ERR_ARG  (-1760)   /* q outside [0, 1], z < 0, delta outside (0, 1), no orders */

/* The orders dp-accounting's RdpAccountant uses by default (RDP_DEFAULT_ORDERS of them). */
extern const double rdp_default_orders[];
extern const size_t rdp_n_default_orders;

/* rdp[i] = the RDP at orders[i] of `steps` compositions of the Poisson-subsampled
 * Gaussian mechanism with sampling rate q and noise multiplier z (noise std / L2
 * sensitivity). z = 0 with q > 0 gives INFINITY; q = 0 or steps = 0 gives 0. */
int rdp_compute(double q, double z, uint64_t steps, const double *orders, size_t n_orders,
                double *rdp);

/* The smallest epsilon over the orders at which the RDP curve gives (epsilon, delta)-DP
 * (dp-accounting's conversion); *order (may be NULL) the order attaining it. INFINITY
 * when every rdp[i] is infinite. */
int rdp_to_epsilon(const double *orders, const double *rdp, size_t n_orders, double delta,
                   double *epsilon, double *order);

/* rdp_compute over rdp_default_orders, then rdp_to_epsilon. */
int rdp_epsilon(double q, double z, uint64_t steps, double delta, double *epsilon);

/* The most steps (0..max_steps) whose epsilon stays <= target (binary search on the
 * monotone epsilon(steps)). */
int rdp_max_steps(double q, double z, double delta, double target, uint64_t max_steps,
                  uint64_t *steps);

const char *rdp_strerror(int rc);

#endif
