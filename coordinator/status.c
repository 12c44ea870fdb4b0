#include "coordinator/status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/artifacts.h"
#include "coordinator/queue.h"
#include "coordinator/state.h"
#include "privacy/rdp.h"

const char *coord_state_name(enum coord_exp_state s)
{
    switch (s) {
    case EXP_RUNNING: return "running";
    case EXP_FINISHED: return "finished";
    case EXP_FAILED: return "failed";
    case EXP_CANCELLED: return "cancelled";
    case EXP_IDLE: return "idle";
    }
    return "unknown";
}

/* Everything the reply points into while it is built on the stack; then it is packed
 * and unpacked into one owned message. */
struct status_parts {
    uint64_t closed;
    struct member_stats *ms;
    struct roster_member *rm;
    Aulac__V1__MemberStatus *mrows, **mptr;
    struct round_summary *sums;
    Aulac__V1__RoundSummary *rrows, **rptr;
    char ***names;
    Aulac__V1__MemberLoss **lrows, ***lptr;
};

static void parts_free(struct status_parts *p)
{
    for (uint64_t i = 0; i < p->closed; i++) {
        if (p->sums)
            free(p->sums[i].members);
        if (p->names)
            free(p->names[i]);
        if (p->lrows)
            free(p->lrows[i]);
        if (p->lptr)
            free(p->lptr[i]);
    }
    free(p->sums);
    free(p->rrows);
    free(p->rptr);
    free(p->names);
    free(p->lrows);
    free(p->lptr);
    free(p->mrows);
    free(p->mptr);
    free(p->ms);
    free(p->rm);
}

int coord_status_reply(struct coord *c, const char *experiment_id, Aulac__V1__StatusReply **out)
{
    *out = NULL;
    char want[COORD_EXPERIMENT_MAX + 1];
    snprintf(want, sizeof want, "%s", experiment_id ? experiment_id : "");
    Aulac__V1__StatusReply r = AULAC__V1__STATUS_REPLY__INIT;
    struct status_parts p = { 0 };
    uint8_t model[32], root[32];
    char experiment[COORD_EXPERIMENT_MAX + 1], policy_name[POLICY_NAME_MAX + 1];
    char waiting[sizeof c->waiting] = "";
    r.waiting = waiting;
    char storage_error[sizeof c->storage_error] = "";
    r.storage_error = storage_error;
    Aulac__V1__DiskUsage disk = AULAC__V1__DISK_USAGE__INIT;
    size_t queued = 0;
    (void)queue_length(c, &queued);
    r.queue_length = (uint32_t)queued;
    /* Another experiment than the loaded one: its record (queued or ended). */
    struct experiment_info other = { 0 };
    struct policy_privacy privacy = { 0 };   /* the experiment's, for epsilon */
    int is_other = 0;
    pthread_mutex_lock(&c->mu);
    if (want[0] && strcmp(want, c->experiment) != 0) {
        pthread_mutex_unlock(&c->mu);
        int found = 0;
        if (queue_get(c, want, &other, &found) != 0 || !found) {
            experiment_info_free(&other);
            return COORD_ERR_NOT_FOUND;
        }
        is_other = 1;
        pthread_mutex_lock(&c->mu);
    }
    if (is_other) {
        struct policy pol;
        struct policy_error perr;
        snprintf(experiment, sizeof experiment, "%s", other.experiment);
        policy_name[0] = 0;
        if (policy_load_buffer("policy", other.policy_yaml, other.policy_yaml_len, &pol,
                               &perr) == 0) {
            snprintf(policy_name, sizeof policy_name, "%s", pol.metadata.name);
            r.total_rounds = pol.training.rounds;
            char missing[700];
            if (other.phase == PHASE_QUEUED &&
                artifacts_missing(c, &pol, missing, sizeof missing) > 0)
                snprintf(waiting, sizeof waiting, "experiment %s waits for pinned files the "
                         "coordinator does not hold: %s; upload them with aulac artifact put "
                         "FILE... (aulac experiment propose uploads them itself): it starts "
                         "once they are held", other.experiment, missing);
            privacy = pol.privacy;
            policy_free(&pol);
        }
        r.state = (char *)queue_phase_name(other.phase);
        r.round = other.rounds_done + (other.phase == PHASE_QUEUED);
        if (other.phase != PHASE_QUEUED) {
            memcpy(model, other.final_model_hash, 32);
            r.model_hash.data = model;
            r.model_hash.len = 32;
        }
    } else {
        snprintf(experiment, sizeof experiment, "%s", c->experiment);
        snprintf(policy_name, sizeof policy_name, "%s", c->policy.metadata.name);
        r.state = (char *)coord_state_name(c->state);
        snprintf(waiting, sizeof waiting, "%s", c->waiting);
        r.round = c->rnd.number;
        r.total_rounds = c->total_rounds;
        if (c->rnd.base) {
            memcpy(model, c->rnd.base->hash, 32);
            r.model_hash.data = model;
            r.model_hash.len = 32;
        }
    }
    snprintf(storage_error, sizeof storage_error, "%s", c->storage_error);
    if (c->disk.measured_ms) {
        const struct datadir_usage *u = &c->disk;
        disk.ledger_bytes = u->ledger;
        disk.checkpoint_bytes = u->checkpoints;
        disk.payload_bytes = u->payloads;
        disk.experiment_file_bytes = u->experiment_files;
        disk.artifact_bytes = u->artifacts;
        disk.spool_bytes = u->spool;
        disk.other_bytes = u->other;
        disk.total_bytes = u->total;
        disk.free_bytes = u->free_bytes;
        disk.filesystem_bytes = u->fs_bytes;
        disk.low_space = datadir_low(u);
        disk.measured_unix_ms = u->measured_ms;
        r.disk = &disk;
    }
    r.experiment_id = experiment;
    r.policy_name = policy_name;
    uint64_t closed = is_other ? other.rounds_done : c->rnd.base ? c->rnd.base->round : 0;
    if (!is_other)
        privacy = c->policy.privacy;
    experiment_info_free(&other);
    size_t n_members = c->roster.n_members;
    p.ms = calloc(n_members + 1, sizeof *p.ms);
    p.rm = calloc(n_members + 1, sizeof *p.rm);  /* governance may change it */
    if (p.ms)
        memcpy(p.ms, c->members, n_members * sizeof *p.ms);
    if (p.rm)
        memcpy(p.rm, c->roster.members, n_members * sizeof *p.rm);
    pthread_mutex_unlock(&c->mu);
    if (ledger_size(c->ledger, &r.ledger_size) == 0 &&
        ledger_root(c->ledger, r.ledger_size, root) == 0) {
        r.ledger_root.data = root;
        r.ledger_root.len = 32;
    }

    int rc = COORD_ERR_NOMEM;
    p.mrows = calloc(n_members + 1, sizeof *p.mrows);
    p.mptr = calloc(n_members + 1, sizeof *p.mptr);
    if (!p.ms || !p.rm || !p.mrows || !p.mptr)
        goto done;
    for (size_t i = 0; i < n_members; i++) {
        aulac__v1__member_status__init(&p.mrows[i]);
        p.mrows[i].member_id = p.ms[i].id;
        p.mrows[i].organization = p.rm[i].organization;
        p.mrows[i].rounds_joined = p.ms[i].rounds_joined;
        p.mrows[i].tokens = p.ms[i].tokens;
        p.mrows[i].bytes_sent = p.ms[i].bytes_sent;
        p.mrows[i].rejected = p.ms[i].rejected;
        p.mptr[i] = &p.mrows[i];
    }
    r.n_members = n_members;
    r.members = p.mptr;

    p.closed = closed;
    p.sums = calloc(closed + 1, sizeof *p.sums);
    p.rrows = calloc(closed + 1, sizeof *p.rrows);
    p.rptr = calloc(closed + 1, sizeof *p.rptr);
    p.names = calloc(closed + 1, sizeof *p.names);
    p.lrows = calloc(closed + 1, sizeof *p.lrows);
    p.lptr = calloc(closed + 1, sizeof *p.lptr);
    if (!p.sums || !p.rrows || !p.rptr || !p.names || !p.lrows || !p.lptr)
        goto done;
    for (uint64_t i = 0; i < closed; i++) {
        int found;
        /* A summary that cannot be read ends the list (as the RPC always did). */
        if (state_get_round(c, experiment, i + 1, &p.sums[i], &found) != 0 || !found)
            break;
        struct round_summary *s = &p.sums[i];
        Aulac__V1__RoundSummary *rr = &p.rrows[i];
        aulac__v1__round_summary__init(rr);
        rr->round = s->round;
        rr->model_hash.data = s->model_hash;
        rr->model_hash.len = 32;
        rr->mean_train_loss = s->mean_train_loss;
        rr->tokens = s->tokens;
        rr->upload_bytes = s->bytes;
        if (privacy.enabled &&   /* = its round_closed.epsilon (PRIVACY.md) */
            rdp_epsilon(1.0, privacy.noise_multiplier, s->round, privacy.delta,
                        &rr->epsilon) != 0)
            rr->epsilon = NAN;   /* a policy the accountant refuses: unknown */
        p.names[i] = calloc(s->n_members + 1, sizeof(char *));
        p.lrows[i] = calloc(s->n_members + 1, sizeof **p.lrows);
        p.lptr[i] = calloc(s->n_members + 1, sizeof **p.lptr);
        if (!p.names[i] || !p.lrows[i] || !p.lptr[i])
            goto done;
        for (size_t k = 0; k < s->n_members; k++) {
            p.names[i][k] = s->members[k].id;
            aulac__v1__member_loss__init(&p.lrows[i][k]);
            p.lrows[i][k].member_id = s->members[k].id;
            p.lrows[i][k].val_loss = s->members[k].val_loss;
            p.lrows[i][k].train_loss = s->members[k].train_loss;
            p.lrows[i][k].tokens = s->members[k].tokens;
            p.lrows[i][k].upload_bytes = s->members[k].bytes;
            p.lptr[i][k] = &p.lrows[i][k];
        }
        rr->participants = p.names[i];
        rr->n_participants = s->n_members;
        rr->member_losses = p.lptr[i];
        rr->n_member_losses = s->n_members;
        p.rptr[i] = rr;
        r.n_rounds = i + 1;
    }
    r.rounds = p.rptr;
    if (privacy.enabled) {
        r.privacy = 1;
        r.privacy_delta = privacy.delta;
        r.noise_multiplier = privacy.noise_multiplier;
        r.target_epsilon = privacy.target_epsilon;
        if (rdp_epsilon(1.0, privacy.noise_multiplier, closed, privacy.delta, &r.epsilon) != 0)
            r.epsilon = NAN;
    }
    /* One owned message out of the borrowed pieces. */
    size_t len = aulac__v1__status_reply__get_packed_size(&r);
    uint8_t *buf = malloc(len + 1);
    if (!buf)
        goto done;
    aulac__v1__status_reply__pack(&r, buf);
    *out = aulac__v1__status_reply__unpack(NULL, len, buf);
    free(buf);
    if (*out)
        rc = 0;
done:
    parts_free(&p);
    return rc;
}
