#ifndef AULAC_WORKER_INNER_H
#define AULAC_WORKER_INNER_H
/* The inner loop of a member's round with the built-in trainer, shared by the worker
 * (worker/worker.c, one round per task) and `aulac solo` (cli/solo.c: a member alone,
 * the same steps without the alliance):
 *
 *   inner_member_seed(id)                   the member's sampler seed
 *   inner_trainer_opts(plan, share, &to)    the round plan's AdamW and batch shape
 *   data_reseed(d, inner_round_seed(...))   each round's windows
 *   inner_train(t, d, plan, H, ...)         H steps with the plan's linear warm-up
 *
 * Everything here is a function of its arguments: the same trainer state, corpus,
 * plan and seeds give the same steps in the worker and in `aulac solo`. */
#include <stdint.h>

#include "model/trainer.h"
#include "policies/plan.h"
#include "worker/data.h"

/* The member's sampler seed: the first 8 bytes of BLAKE2b-256(member id) in host byte
 * order (what every worker has used: members draw different windows). */
uint64_t inner_member_seed(const char *member);

/* The sampler seed of round r (1-based): plan_seed ^ member_seed ^ r * 0x9e3779b97f4a7c15. */
uint64_t inner_round_seed(uint64_t plan_seed, uint64_t member_seed, uint64_t round);

/* The plan's batch shape and inner optimizer (lr, weight decay, clip, betas, eps) into
 * *to, the plan's batch_size split over `share` devices (>= 1: a member's GPUs x nodes
 * each draw batch_size / share sequences). Other fields of *to are left as they are.
 * -1 when share does not divide batch_size (*to unchanged). */
int inner_trainer_opts(const struct policy_round_plan *plan, int share,
                       struct trainer_opts *to);

/* Runs `steps` inner steps of t on batches of d (data_next_batch) at the plan's
 * learning rate, with its linear warm-up over the first plan->warmup_steps optimizer
 * steps of this trainer (counted across calls, as the AdamW state is: lr * (s + 1) /
 * warmup for optimizer step s). The other options of t are kept. progress (may be
 * NULL) sees steps, tokens and seconds counted over the whole call (step 1..steps).
 * Fills *ts for all the steps done, also on error. Returns trainer_train_steps's code. */
int inner_train(struct trainer *t, struct data *d, const struct policy_round_plan *plan,
                int steps, trainer_progress_fn progress, void *pctx, struct trainer_stats *ts);

#endif
