/* The open round (coordinator/round.h): its buffers, accepted set, acceptance checks and
 * the close's aggregation. No locking here: the caller holds coord.mu (or owns the round
 * as its close, closing set). */
#include "coordinator/round.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

int round_init_members(struct coord_round *r)
{
    r->accepted = calloc(COORD_ROUND_MAX_UPDATES, sizeof *r->accepted);
    return r->accepted ? 0 : -1;
}

void round_free_members(struct coord_round *r)
{
    free(r->accepted);
    r->accepted = NULL;
}

int round_init(struct coord_round *r, size_t n_params, int down_ef)
{
    r->avg = calloc(n_params ? n_params : 1, sizeof(float));
    r->scratch = calloc(n_params ? n_params : 1, sizeof(float));
    if (down_ef)
        r->down_residual = calloc(n_params ? n_params : 1, sizeof(float));
    if (!r->avg || !r->scratch || (down_ef && !r->down_residual)) {
        free(r->avg);
        free(r->scratch);
        free(r->down_residual);
        r->avg = r->scratch = r->down_residual = NULL;
        return -1;
    }
    return 0;
}

void round_free(struct coord_round *r)
{
    struct round_member *slots = r->accepted;
    outer_free(&r->outer);
    free(r->avg);
    free(r->scratch);
    free(r->down_residual);
    free(r->down_payload);
    memset(r, 0, sizeof *r);
    r->accepted = slots;
}

void round_reset(struct coord_round *r, uint64_t number, const struct policy *p,
                 int64_t opened_ms)
{
    r->number = number;
    r->n_accepted = 0;
    r->weight_sum = 0;
    r->opened_ms = opened_ms;
    r->deadline_ms = opened_ms + (int64_t)p->participation.round_deadline_s * 1000;
    r->deadline_logged = 0;
    r->closing = 0;
    r->close_pending = 0;
}

int round_validate(const struct policy *p, size_t n_params, size_t n_eligible, double weight,
                   const uint8_t *payload, size_t len, double *norm, char *why, size_t cap)
{
    char what[200];
    *norm = 0;
    int rc = codec_payload_norm(payload, len, n_params, norm, what, sizeof what);
    if (rc == CODEC_ERR_NOMEM) {
        snprintf(why, cap, "the coordinator is short of memory to check the update");
        return rc;
    }
    if (rc != 0) {
        snprintf(why, cap, "%s", what);
        return -1;
    }
    if (!(*norm * weight * (double)(n_eligible + 1) < 1e36)) {
        snprintf(why, cap, "its L2 norm %.3g is too large to aggregate", *norm);
        return -1;
    }
    const struct policy_aggregation *a = &p->aggregation;
    if (a->rule == POLICY_AGG_CLIP) {
        if (a->norm_cap > 0 && *norm > a->norm_cap) {
            snprintf(why, cap, "its L2 norm %.4g exceeds the policy's aggregation.norm_cap %.4g "
                     "(rule clip scales updates above norm_bound %.4g, and refuses them above "
                     "the cap)", *norm, a->norm_cap, a->norm_bound);
            return -1;
        }
    } else if (a->norm_bound > 0 && *norm > a->norm_bound) {
        snprintf(why, cap, "its L2 norm %.4g exceeds the policy's aggregation.norm_bound %.4g",
                 *norm, a->norm_bound);
        return -1;
    }
    return 0;
}

int round_has(const struct coord_round *r, const char *member)
{
    for (size_t i = 0; i < r->n_accepted; i++)
        if (strcmp(r->accepted[i].id, member) == 0)
            return 1;
    return 0;
}

int round_accept(struct coord_round *r, const struct round_member *m, double weight)
{
    if (r->n_accepted >= COORD_ROUND_MAX_UPDATES)
        return -1;
    r->accepted[r->n_accepted++] = *m;
    r->weight_sum += weight;
    return 0;
}

int round_all_reported(const struct coord_round *r, const struct roster *roster,
                       const struct policy *p)
{
    if (r->n_accepted == 0)
        return 0;
    for (size_t i = 0; i < roster->n_members; i++) {
        const char *id = roster->members[i].id;
        if (policy_takes_part(p, id) && !round_has(r, id))
            return 0;
    }
    return 1;
}

int round_combine(struct coord_round *r, const struct policy *p,
                  const struct policy_round_plan *plan, size_t n_params,
                  const struct agg_update *u, size_t n, struct round_outcome *out, char *why,
                  size_t cap)
{
    (void)p;
    memset(out, 0, sizeof *out);
    int rc = agg_average(plan, n_params, u, n, NULL, r->avg, r->scratch, why, cap);
    if (rc == 0)
        out->n = n;
    return rc;
}
