/* What the ledger says about each experiment (cli/experiment_view.h). */
#include "cli/experiment_view.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credit/evalset.h"
#include "credit/shares.h"

struct ev_proposal {
    char    experiment[ENTRY_ID_MAX + 1];
    uint8_t content_hash[32];
    int     have_policy;
    char    policy_name[POLICY_NAME_MAX + 1];
    struct policy_contribution contribution;
};

const char *ev_state_name(enum ev_state s)
{
    switch (s) {
    case EV_PROPOSED: return "proposed";
    case EV_RUNNING: return "running";
    case EV_FINISHED: return "finished";
    case EV_CANCELLED: return "cancelled";
    case EV_FAILED: return "failed";
    }
    return "unknown";
}

void experiment_views_init(struct experiment_views *v, const char *only)
{
    memset(v, 0, sizeof *v);
    v->only = only;
}

static void experiment_free(struct ev_experiment *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n_updates; i++)
        free(x->updates[i].reason);
    free(x->updates);
    free(x->rounds);
    for (size_t i = 0; i < x->n_scores; i++)
        entry_free(&x->scores[i]);
    free(x->scores);
    if (x->have_credits)
        entry_free(&x->credits);
    free(x->end_reason);
    free(x);
}

void experiment_views_free(struct experiment_views *v)
{
    for (size_t i = 0; i < v->n; i++)
        experiment_free(v->items[i]);
    free(v->items);
    free(v->proposals);
    experiment_views_init(v, v->only);
}

/* Makes room for one more element of size sz in *arr (n used, *cap allocated). */
static int grow(void **arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, c * sz);
    if (!p)
        return -1;
    *arr = p;
    *cap = c;
    return 0;
}

struct ev_experiment *experiment_views_find(const struct experiment_views *v, const char *id)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i]->id, id) == 0)
            return v->items[i];
    return NULL;
}

static int wanted(const struct experiment_views *v, const char *id)
{
    return id[0] && (!v->only || strcmp(v->only, id) == 0);
}

/* The experiment id's view, created on first sight; NULL when out of memory. */
static struct ev_experiment *experiment_of(struct experiment_views *v, const char *id)
{
    struct ev_experiment *x = experiment_views_find(v, id);
    if (x)
        return x;
    if (grow((void **)&v->items, v->n, &v->cap, sizeof *v->items) != 0)
        return NULL;
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    snprintf(x->id, sizeof x->id, "%s", id);
    v->items[v->n++] = x;
    return x;
}

static int add_proposal(struct experiment_views *v, const struct entry_motion *m)
{
    if (m->kind != 1 || !wanted(v, m->experiment) || !m->document)
        return 0;
    if (grow((void **)&v->proposals, v->n_proposals, &v->cap_proposals,
             sizeof *v->proposals) != 0)
        return -1;
    struct ev_proposal *p = &v->proposals[v->n_proposals++];
    memset(p, 0, sizeof *p);
    snprintf(p->experiment, sizeof p->experiment, "%s", m->experiment);
    memcpy(p->content_hash, m->content_hash, 32);
    struct policy pol;
    struct policy_error err;
    if (policy_load_buffer("policy_proposed", m->document, m->document_len, &pol, &err) == 0) {
        p->have_policy = 1;
        snprintf(p->policy_name, sizeof p->policy_name, "%s", pol.metadata.name);
        p->contribution = pol.contribution;
        policy_free(&pol);
    }
    return 0;
}

/* The policy of an experiment started with policy_hash: the proposal of that id whose
 * content hash is the started policy hash. */
static void attach_policy(const struct experiment_views *v, struct ev_experiment *x)
{
    for (size_t i = v->n_proposals; i-- > 0;) {
        const struct ev_proposal *p = &v->proposals[i];
        if (strcmp(p->experiment, x->id) == 0 && memcmp(p->content_hash, x->policy_hash, 32) == 0) {
            x->have_policy = p->have_policy;
            snprintf(x->policy_name, sizeof x->policy_name, "%s", p->policy_name);
            x->contribution = p->contribution;
            return;
        }
    }
}

static int add_update(struct ev_experiment *x, uint64_t index, const struct entry *e)
{
    const struct entry_update *u = &e->u.update;
    if (grow((void **)&x->updates, x->n_updates, &x->cap_updates, sizeof *x->updates) != 0)
        return -1;
    struct ev_update *d = &x->updates[x->n_updates];
    memset(d, 0, sizeof *d);
    d->index = index;
    d->round = u->round;
    memcpy(d->member, u->member, sizeof d->member);
    d->accepted = e->type == ENTRY_UPDATE_ACCEPTED;
    d->tokens = u->tokens;
    d->bytes = u->bytes;
    d->train_loss = d->accepted ? u->train_loss : NAN;
    d->val_loss = d->accepted ? u->val_loss : NAN;
    if (u->reason && !(d->reason = strdup(u->reason)))
        return -1;
    x->n_updates++;
    return 0;
}

int experiment_views_add(struct experiment_views *v, uint64_t index, const uint8_t *data,
                         size_t len)
{
    struct entry e;
    v->entries++;
    if (entry_decode(data, len, &e) != 0) {
        v->undecodable++;
        return 0;
    }
    int rc = 0, keep = 0;
    struct ev_experiment *x = NULL;
    const char *id = NULL;
    switch (e.type) {
    case ENTRY_POLICY_PROPOSED:
        rc = add_proposal(v, &e.u.motion);
        break;
    case ENTRY_EXPERIMENT_STARTED: case ENTRY_EXPERIMENT_FINISHED:
    case ENTRY_EXPERIMENT_CANCELLED: case ENTRY_EXPERIMENT_FAILED:
        id = e.u.experiment.experiment;
        break;
    case ENTRY_UPDATE_ACCEPTED: case ENTRY_UPDATE_REJECTED:
        id = e.u.update.experiment;
        break;
    case ENTRY_ROUND_CLOSED:
        id = e.u.round_closed.experiment;
        break;
    case ENTRY_CONTRIBUTION_SCORES:
        id = e.u.scores.experiment;
        break;
    case ENTRY_CREDITS:
        id = e.u.credits.experiment;
        break;
    default:
        break;
    }
    if (rc == 0 && id && wanted(v, id)) {
        if (!(x = experiment_of(v, id))) {
            rc = -1;
            goto out;
        }
        switch (e.type) {
        case ENTRY_EXPERIMENT_STARTED:
            x->started = 1;
            x->state = EV_RUNNING;
            memcpy(x->policy_hash, e.u.experiment.policy_hash, 32);
            x->rounds_planned = e.u.experiment.rounds;
            attach_policy(v, x);
            break;
        case ENTRY_EXPERIMENT_FINISHED: case ENTRY_EXPERIMENT_CANCELLED:
        case ENTRY_EXPERIMENT_FAILED:
            x->state = e.type == ENTRY_EXPERIMENT_FINISHED ? EV_FINISHED
                     : e.type == ENTRY_EXPERIMENT_CANCELLED ? EV_CANCELLED : EV_FAILED;
            free(x->end_reason);
            x->end_reason = NULL;
            if (e.u.experiment.reason && !(x->end_reason = strdup(e.u.experiment.reason)))
                rc = -1;
            break;
        case ENTRY_UPDATE_ACCEPTED: case ENTRY_UPDATE_REJECTED:
            rc = add_update(x, index, &e);
            break;
        case ENTRY_ROUND_CLOSED:
            if (grow((void **)&x->rounds, x->n_rounds, &x->cap_rounds, sizeof *x->rounds) != 0) {
                rc = -1;
                break;
            }
            x->rounds[x->n_rounds++] = (struct ev_round){
                .round = e.u.round_closed.round,
                .n_participants = e.u.round_closed.n_participants,
                .mean_loss = e.u.round_closed.mean_loss,
                .tokens = e.u.round_closed.tokens,
                .has_epsilon = e.u.round_closed.has_epsilon,
                .epsilon = e.u.round_closed.epsilon };
            break;
        case ENTRY_CONTRIBUTION_SCORES:
            if (grow((void **)&x->scores, x->n_scores, &x->cap_scores, sizeof *x->scores) != 0) {
                rc = -1;
                break;
            }
            x->scores[x->n_scores++] = e;   /* the view owns it now */
            keep = 1;
            break;
        case ENTRY_CREDITS:
            if (!x->have_credits) {
                x->credits = e;
                x->have_credits = 1;
                keep = 1;
            }
            break;
        default:
            break;
        }
    }
out:
    if (!keep)
        entry_free(&e);
    return rc;
}

void ev_credits_free(struct entry_credits *c)
{
    free(c->members);
    memset(c, 0, sizeof *c);
}

int ev_credits(const struct ev_experiment *x, struct entry_credits *out, int *final,
               char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    *final = 0;
    if (x->have_credits) {
        const struct entry_credits *c = &x->credits.u.credits;
        *out = *c;
        out->members = malloc((c->n ? c->n : 1) * sizeof *c->members);
        if (!out->members) {
            memset(out, 0, sizeof *out);
            snprintf(why, cap, "out of memory");
            return -1;
        }
        memcpy(out->members, c->members, c->n * sizeof *c->members);
        *final = 1;
        return 0;
    }
    if (x->n_scores == 0)
        return 1;
    struct credit_totals t;
    credit_totals_init(&t);
    for (size_t i = 0; i < x->n_scores; i++) {
        int rc = credit_totals_add(&t, &x->scores[i].u.scores);
        if (rc != 0) {
            credit_totals_free(&t);
            if (rc == CREDIT_ERR_FORMAT)
                snprintf(why, cap, "experiment %s: the contribution_scores entry of round %llu "
                         "does not fit the rounds before it (other measures, members out of "
                         "order, or a value that is not finite)",
                         x->id, (unsigned long long)x->scores[i].u.scores.round);
            else
                snprintf(why, cap, "out of memory");
            return -1;
        }
    }
    /* the policy's weights; without its policy, 1 for each measure scored */
    struct policy_contribution c = x->contribution;
    if (!x->have_policy) {
        memset(&c, 0, sizeof c);
        for (uint32_t m = 0; m < t.n_measures; m++) {
            int k = policy_measure_parse(t.measures[m]);
            if (k >= 0) {
                c.measures |= 1u << k;
                c.credit_weights[k] = 1;
            }
        }
    }
    int rc = credit_shares(&t, &c, out);
    credit_totals_free(&t);
    if (rc != 0) {
        memset(out, 0, sizeof *out);
        if (rc == CREDIT_ERR_NOMEM)
            snprintf(why, cap, "out of memory");
        else
            snprintf(why, cap, "experiment %s: its scores name a measure this aulac does not "
                     "know", x->id);
        return -1;
    }
    return 0;
}
