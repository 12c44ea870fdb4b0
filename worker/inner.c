#include "worker/inner.h"

#include <string.h>

#include "crypto/digest.h"

uint64_t inner_member_seed(const char *member)
{
    uint8_t h[32];
    crypto_blake2b256(member, strlen(member), h);
    uint64_t seed;
    memcpy(&seed, h, sizeof seed);
    return seed;
}

uint64_t inner_round_seed(uint64_t plan_seed, uint64_t member_seed, uint64_t round)
{
    return plan_seed ^ member_seed ^ (round * 0x9e3779b97f4a7c15ULL);
}

int inner_trainer_opts(const struct policy_round_plan *plan, int share,
                       struct trainer_opts *to)
{
    if (share < 1 || plan->batch_size % (uint32_t)share != 0)
        return -1;
    to->batch = (int)(plan->batch_size / (uint32_t)share);
    to->seq_len = (int)plan->seq_len;
    to->lr = plan->lr;
    to->weight_decay = plan->weight_decay;
    to->grad_clip = plan->grad_clip;
    to->beta1 = plan->beta1;
    to->beta2 = plan->beta2;
    to->eps = plan->eps;
    return 0;
}

/* The caller's progress callback with counts over the whole inner_train call. */
struct inner_progress {
    trainer_progress_fn fn;
    void *ctx;
    int offset, total;      /* steps done before this trainer call, and in all */
    double seconds;         /* spent before this trainer call */
    uint64_t tokens;        /* trained before this trainer call */
};

static int on_step(void *arg, const struct trainer_progress *p)
{
    const struct inner_progress *ip = arg;
    struct trainer_progress q = *p;
    q.step = ip->offset + p->step;
    q.steps = ip->total;
    q.tokens = ip->tokens + p->tokens;
    q.seconds = ip->seconds + p->seconds;
    return ip->fn(ip->ctx, &q);
}

int inner_train(struct trainer *t, struct data *d, const struct policy_round_plan *plan,
                int steps, trainer_progress_fn progress, void *pctx, struct trainer_stats *ts)
{
    const uint64_t warm = plan->warmup_steps;
    const float lr = plan->lr;
    struct trainer_opts to;
    trainer_get_opts(t, &to);
    memset(ts, 0, sizeof *ts);
    struct inner_progress ip = { progress, pctx, 0, steps, 0, 0 };
    double loss_sum = 0;
    int done = 0, rc = 0;
    while (done < steps && rc == 0) {
        uint64_t step = trainer_optimizer_step(t);
        int n = step < warm ? 1 : steps - done;   /* warm-up: one step per learning rate */
        to.lr = step < warm ? lr * (float)(step + 1) / (float)warm : lr;
        struct trainer_stats part;
        ip.offset = done;
        ip.seconds = ts->seconds;
        ip.tokens = ts->tokens;
        if ((rc = trainer_set_opts(t, &to)) == 0)
            rc = trainer_train_steps(t, n, data_next_batch, d, progress ? on_step : NULL,
                                     &ip, &part);
        if (rc != 0)
            break;
        done += part.steps;
        loss_sum += part.mean_loss * part.steps;
        ts->steps += part.steps;
        ts->tokens += part.tokens;
        ts->seconds += part.seconds;
        ts->last_loss = part.last_loss;
        ts->last_grad_norm = part.last_grad_norm;
    }
    ts->mean_loss = ts->steps ? loss_sum / ts->steps : 0;
    return rc;
}
