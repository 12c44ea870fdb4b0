#include "policies/governance.h"
#include "common/why.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "policies/roster.h"

const char *gov_state_name(enum gov_state s)
{
    switch (s) {
    case GOV_OPEN: return "open";
    case GOV_APPLIED: return "approved";
    case GOV_REJECTED: return "rejected";
    case GOV_EXPIRED: return "expired";
    case GOV_OBSOLETE: return "obsolete";
    case GOV_WITHDRAWN: return "withdrawn";
    }
    return "unknown";
}

const char *gov_proposer(const struct gov_proposal *p)
{
    return p->family == GOV_MOTION ? p->m.proposer : p->p.proposer;
}

int64_t gov_expires_ms(const struct gov_proposal *p)
{
    return p->family == GOV_MOTION ? p->m.expires_unix_ms : p->p.expires_unix_ms;
}

double gov_quorum(const struct governance_state *g, const struct gov_proposal *p)
{
    if (p->family != GOV_MOTION)
        return g->charter.roster_quorum;
    return p->m.kind == MOTION_CHARTER ? g->charter.charter_quorum : g->charter.experiment_quorum;
}

int64_t gov_default_expiry_ms(const struct governance_state *g, int64_t created_ms)
{
    return created_ms + (int64_t)g->charter.proposal_expiry_days * 24 * 3600 * 1000;
}


/* Grows an array of n used elements to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return GOV_ERR_NOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

void gov_init(struct governance_state *g, const char *alliance, const struct charter *charter)
{
    memset(g, 0, sizeof *g);
    snprintf(g->alliance, sizeof g->alliance, "%s", alliance ? alliance : "");
    if (charter)
        g->charter = *charter;
    else
        charter_default(&g->charter);
}

void gov_free(struct governance_state *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_proposals; i++)
        free(g->proposals[i].votes);
    free(g->proposals);
    free(g->members);
    free(g->retired);
    memset(g, 0, sizeof *g);
}

const struct gov_member *gov_member_find(const struct governance_state *g, const char *id)
{
    for (size_t i = 0; id && i < g->n_members; i++)
        if (strcmp(g->members[i].id, id) == 0)
            return &g->members[i];
    return NULL;
}

static const struct gov_member *member_with_key(const struct governance_state *g,
                                                const uint8_t key[32])
{
    for (size_t i = 0; i < g->n_members; i++)
        if (memcmp(g->members[i].public_key, key, 32) == 0)
            return &g->members[i];
    return NULL;
}

const struct gov_retired *gov_retired_find(const struct governance_state *g, const char *member,
                                           const uint8_t *key)
{
    for (size_t i = g->n_retired; i-- > 0;) {
        const struct gov_retired *r = &g->retired[i];
        if ((!member || strcmp(r->member, member) == 0) &&
            (!key || memcmp(r->public_key, key, 32) == 0))
            return r;
    }
    return NULL;
}

struct gov_proposal *gov_proposal_find(struct governance_state *g, const uint8_t hash[32])
{
    for (size_t i = 0; i < g->n_proposals; i++)
        if (memcmp(g->proposals[i].hash, hash, 32) == 0)
            return &g->proposals[i];
    return NULL;
}

enum gov_state gov_state_at(const struct gov_proposal *p, int64_t now_ms)
{
    if (p->state == GOV_OPEN && now_ms > gov_expires_ms(p))
        return GOV_EXPIRED;
    return p->state;
}

int gov_add_founding_member(struct governance_state *g, const struct gov_member *m)
{
    if (g->n_members >= GOV_MAX_MEMBERS)
        return GOV_ERR_LIMIT;
    if (gov_member_find(g, m->id) || member_with_key(g, m->public_key))
        return GOV_ERR_REFUSED;
    if (grow((void **)&g->members, &g->cap_members, g->n_members, sizeof *g->members))
        return GOV_ERR_NOMEM;
    g->members[g->n_members++] = *m;
    return 0;
}

static void short_key(const uint8_t key[32], char out[17])
{
    hex_encode(key, 8, out);
}

/* A key may enter the roster only if no member holds it and it never left it. */
static int key_usable(const struct governance_state *g, const uint8_t key[32], char *why,
                      size_t cap)
{
    char k[17];
    short_key(key, k);
    const struct gov_member *holder = member_with_key(g, key);
    if (holder)
        return why_fail(why, cap, GOV_ERR_REFUSED, "key %s… is already %s's key", k, holder->id);
    const struct gov_retired *r = gov_retired_find(g, NULL, key);
    if (r)
        return why_fail(why, cap, GOV_ERR_REFUSED, "key %s… was %s's and left the roster at "
                      "ledger #%" PRIu64 "; a key is never accepted again", k, r->member,
                      r->index);
    return 0;
}

int gov_applicable(const struct governance_state *g, const struct roster_proposal *p,
                   char *why, size_t cap)
{
    const struct gov_member *m = gov_member_find(g, p->member);
    switch (p->action) {
    case PROPOSAL_ADD:
        if (m)
            return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' is already a member", p->member);
        if (g->n_members >= GOV_MAX_MEMBERS)
            return why_fail(why, cap, GOV_ERR_LIMIT, "the roster is full (%d members)",
                          GOV_MAX_MEMBERS);
        return key_usable(g, p->public_key, why, cap);
    case PROPOSAL_REMOVE:
        if (!m)
            return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' is not a member", p->member);
        if (g->n_members < 2)
            return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' is the last member; an alliance "
                          "cannot remove its last member", p->member);
        return 0;
    case PROPOSAL_ROTATE:
        if (!m)
            return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' is not a member", p->member);
        return key_usable(g, p->public_key, why, cap);
    }
    return why_fail(why, cap, GOV_ERR_REFUSED, "unknown action %u", p->action);
}

/* The rules every proposal and motion share. */
static int check_common(const struct governance_state *g, const char *alliance,
                        const char *proposer, int64_t created, int64_t expires,
                        const uint8_t hash[32], int64_t now_ms, int64_t skew_ms, char *why,
                        size_t cap)
{
    if (strcmp(alliance, g->alliance) != 0)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal is for alliance '%s', this is "
                      "'%s'", alliance, g->alliance);
    if (!gov_member_find(g, proposer))
        return why_fail(why, cap, GOV_ERR_REFUSED, "proposer '%s' is not a current member",
                      proposer);
    if (created < now_ms - skew_ms || created > now_ms + skew_ms)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal was made %+" PRId64 " s from "
                      "the coordinator's clock (window: %" PRId64 " s); sign a fresh one",
                      (created - now_ms) / 1000, skew_ms / 1000);
    if (expires <= now_ms)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal has already expired");
    if (expires - created > GOV_MAX_TTL_MS)
        return why_fail(why, cap, GOV_ERR_REFUSED, "a proposal may stay open at most 30 days");
    for (size_t i = 0; i < g->n_proposals; i++) {
        if (memcmp(g->proposals[i].hash, hash, 32) == 0)
            return why_fail(why, cap, GOV_ERR_REFUSED, "this proposal was already made (ledger "
                          "#%" PRIu64 ")", g->proposals[i].index);
    }
    size_t open = 0;
    for (size_t i = 0; i < g->n_proposals; i++)
        open += gov_state_at(&g->proposals[i], now_ms) == GOV_OPEN;
    if (open >= GOV_MAX_OPEN)
        return why_fail(why, cap, GOV_ERR_LIMIT, "%d proposals are open already; vote on them "
                      "or let them expire first", GOV_MAX_OPEN);
    return 0;
}

int gov_check_proposal(const struct governance_state *g, const struct roster_proposal *p,
                       const uint8_t hash[32], int64_t now_ms, int64_t skew_ms,
                       char *why, size_t cap)
{
    if (proposal_check(p, why, cap) != 0)
        return GOV_ERR_REFUSED;
    int rc = check_common(g, p->alliance, p->proposer, p->created_unix_ms, p->expires_unix_ms,
                          hash, now_ms, skew_ms, why, cap);
    return rc ? rc : gov_applicable(g, p, why, cap);
}

/* "member researcher" style lists: sep between the roles of a set. */
static void roles_list(uint32_t roles, const char *sep, char *out, size_t cap)
{
    char list[40];
    roster_roles_format(roles, list, sizeof list);
    size_t o = 0;
    out[0] = 0;
    for (const char *c = list; *c && o + 3 < cap; c++) {
        if (*c == ',') {
            o += (size_t)snprintf(out + o, cap - o, "%s", sep);
            continue;
        }
        out[o++] = *c;
        out[o] = 0;
    }
}

struct gov_proposal *gov_experiment_find(struct governance_state *g, const char *experiment)
{
    for (size_t i = 0; i < g->n_proposals; i++) {
        struct gov_proposal *p = &g->proposals[i];
        if (p->family == GOV_MOTION && p->m.kind == MOTION_EXPERIMENT &&
            p->state == GOV_APPLIED && strcmp(p->m.experiment, experiment) == 0)
            return p;
    }
    return NULL;
}

static int check_experiment(const struct governance_state *g, const struct motion *m,
                            int64_t now_ms, char *why, size_t cap)
{
    const struct gov_member *pm = gov_member_find(g, m->proposer);
    if (!(pm->roles & g->charter.proposer_roles)) {
        char has[48], need[48];
        roles_list(pm->roles, ", ", has, sizeof has);
        roles_list(g->charter.proposer_roles, ", ", need, sizeof need);
        int several = strchr(need, ',') != NULL;
        return why_fail(why, cap, GOV_ERR_REFUSED, "member %s has roles [%s]; proposing an "
                        "experiment needs %s%s (charter.proposers)", m->proposer, has,
                        several ? "one of the roles " : "the role ", need);
    }
    for (size_t i = 0; i < g->n_proposals; i++) {
        const struct gov_proposal *q = &g->proposals[i];
        if (q->family != GOV_MOTION || q->m.kind != MOTION_EXPERIMENT)
            continue;
        char h[17];
        hex_encode(m->content_hash, 8, h);
        if (memcmp(q->m.content_hash, m->content_hash, 32) == 0)
            return why_fail(why, cap, GOV_ERR_REFUSED, "this policy (hash %s…) was already "
                            "proposed by %s as experiment %s (ledger #%" PRIu64 ", %s); a "
                            "policy is proposed once: change metadata.name or model.seed to "
                            "propose it again", h, q->m.proposer, q->m.experiment, q->index,
                            gov_state_name(gov_state_at(q, now_ms)));
        if (strcmp(q->m.experiment, m->experiment) == 0)
            return why_fail(why, cap, GOV_ERR_REFUSED, "experiment id %s was already proposed "
                            "(ledger #%" PRIu64 ")", m->experiment, q->index);
    }
    return 0;
}

static int check_cancel(const struct governance_state *g, const struct motion *m,
                        int64_t now_ms, char *why, size_t cap)
{
    if (!gov_experiment_find((struct governance_state *)g, m->experiment))
        return why_fail(why, cap, GOV_ERR_REFUSED, "no approved experiment %s is known: only "
                        "an approved experiment can be cancelled (a proposal still open can be "
                        "voted down, or withdrawn by its proposer)", m->experiment);
    for (size_t i = 0; i < g->n_proposals; i++) {
        const struct gov_proposal *q = &g->proposals[i];
        if (q->family == GOV_MOTION && q->m.kind == MOTION_CANCEL &&
            strcmp(q->m.experiment, m->experiment) == 0 && gov_state_at(q, now_ms) == GOV_OPEN) {
            char h[17];
            hex_encode(q->hash, 8, h);
            return why_fail(why, cap, GOV_ERR_REFUSED, "a cancellation of %s is already open "
                            "(proposal %s…, ledger #%" PRIu64 "): vote on it", m->experiment, h,
                            q->index);
        }
    }
    return 0;
}

int gov_check_motion(const struct governance_state *g, const struct motion *m,
                     const uint8_t hash[32], const struct charter *charter, int64_t now_ms,
                     int64_t skew_ms, char *why, size_t cap)
{
    if (motion_check(m, why, cap) != 0)
        return GOV_ERR_REFUSED;
    int rc = check_common(g, m->alliance, m->proposer, m->created_unix_ms, m->expires_unix_ms,
                          hash, now_ms, skew_ms, why, cap);
    if (rc)
        return rc;
    switch (m->kind) {
    case MOTION_EXPERIMENT:
        return check_experiment(g, m, now_ms, why, cap);
    case MOTION_CANCEL:
        return check_cancel(g, m, now_ms, why, cap);
    default:
        if (!charter)
            return why_fail(why, cap, GOV_ERR_REFUSED, "a charter motion needs its charter");
        if (charter_equal(charter, &g->charter))
            return why_fail(why, cap, GOV_ERR_REFUSED, "this charter is the one in force: "
                            "nothing to change");
        return 0;
    }
}

int gov_add_motion(struct governance_state *g, const struct motion *m, const uint8_t hash[32],
                   const uint8_t signature[64], const struct charter *charter, uint64_t index)
{
    if (grow((void **)&g->proposals, &g->cap_proposals, g->n_proposals, sizeof *g->proposals))
        return GOV_ERR_NOMEM;
    struct gov_proposal *n = &g->proposals[g->n_proposals++];
    memset(n, 0, sizeof *n);
    n->family = GOV_MOTION;
    n->m = *m;
    if (charter)
        n->charter = *charter;
    memcpy(n->hash, hash, 32);
    memcpy(n->signature, signature, 64);
    n->index = index;
    n->state = GOV_OPEN;
    return 0;
}

int gov_check_withdraw(const struct governance_state *g, const struct gov_proposal *p,
                       const char *member, int64_t now_ms, char *why, size_t cap)
{
    (void)g;
    if (p->family != GOV_MOTION)
        return why_fail(why, cap, GOV_ERR_REFUSED, "a roster proposal cannot be withdrawn; "
                        "vote it down or let it expire");
    if (strcmp(p->m.proposer, member) != 0)
        return why_fail(why, cap, GOV_ERR_REFUSED, "only its proposer %s may withdraw it, not "
                        "%s", p->m.proposer, member);
    enum gov_state s = gov_state_at(p, now_ms);
    if (s == GOV_OPEN || (s == GOV_APPLIED && p->m.kind == MOTION_EXPERIMENT))
        return 0;
    return why_fail(why, cap, GOV_ERR_REFUSED, "the %s motion is %s: there is nothing to "
                    "withdraw", motion_kind_name(p->m.kind), gov_state_name(s));
}

void gov_decide(struct governance_state *g, struct gov_proposal *p, enum gov_state s,
                uint64_t index, const char *note)
{
    p->state = s;
    p->outcome_index = index;
    snprintf(p->note, sizeof p->note, "%s", note ? note : "");
    if (s == GOV_APPLIED && p->family == GOV_MOTION && p->m.kind == MOTION_CHARTER)
        g->charter = p->charter;
}

int gov_add_proposal(struct governance_state *g, const struct roster_proposal *p,
                     const uint8_t hash[32], const uint8_t signature[64], uint64_t index)
{
    if (grow((void **)&g->proposals, &g->cap_proposals, g->n_proposals, sizeof *g->proposals))
        return GOV_ERR_NOMEM;
    struct gov_proposal *n = &g->proposals[g->n_proposals++];
    memset(n, 0, sizeof *n);
    n->p = *p;
    memcpy(n->hash, hash, 32);
    memcpy(n->signature, signature, 64);
    n->index = index;
    n->state = GOV_OPEN;
    return 0;
}

/* Whether member may vote on p at all (independent of having voted). */
static int is_voter(const struct governance_state *g, const struct gov_proposal *p,
                    const char *member)
{
    if (!gov_member_find(g, member))
        return 0;
    return p->family == GOV_MOTION ||
           !(p->p.action == PROPOSAL_REMOVE && strcmp(p->p.member, member) == 0);
}

int gov_check_vote(struct governance_state *g, const struct gov_proposal *p,
                   const char *voter, int64_t now_ms, char *why, size_t cap)
{
    enum gov_state s = gov_state_at(p, now_ms);
    if (s != GOV_OPEN)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal is %s: votes are closed",
                      gov_state_name(s));
    if (!gov_member_find(g, voter))
        return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' is not a current member", voter);
    if (!is_voter(g, p, voter))
        return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' does not vote on its own removal", voter);
    if (strcmp(gov_proposer(p), voter) == 0)
        return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' made the proposal: its approval is "
                      "already counted", voter);
    for (size_t i = 0; i < p->n_votes; i++)
        if (strcmp(p->votes[i].voter, voter) == 0)
            return why_fail(why, cap, GOV_ERR_REFUSED, "'%s' has already voted %s on it (ledger "
                          "#%" PRIu64 ")", voter, p->votes[i].approve ? "yes" : "no",
                          p->votes[i].index);
    return 0;
}

int gov_add_vote(struct governance_state *g, struct gov_proposal *p, const char *voter,
                 int approve, const uint8_t signature[64], uint64_t index)
{
    (void)g;
    if (grow((void **)&p->votes, &p->cap_votes, p->n_votes, sizeof *p->votes))
        return GOV_ERR_NOMEM;
    struct gov_vote *v = &p->votes[p->n_votes++];
    memset(v, 0, sizeof *v);
    snprintf(v->voter, sizeof v->voter, "%s", voter);
    v->approve = approve ? 1 : 0;
    memcpy(v->signature, signature, 64);
    v->index = index;
    return 0;
}

enum gov_state gov_tally(const struct governance_state *g, const struct gov_proposal *p,
                         struct gov_tally *t)
{
    struct gov_tally x = { 0 };
    for (size_t i = 0; i < g->n_members; i++)
        x.voters += is_voter(g, p, g->members[i].id);
    /* A tolerance keeps e.g. 0.7 x 10 = 7.000000000000001 from needing 8. */
    double need = ceil(gov_quorum(g, p) * (double)x.voters - 1e-9);
    x.needed = need < 1 ? 1 : (uint32_t)need;
    const char *proposer = gov_proposer(p);
    if (is_voter(g, p, proposer))
        x.yes++;
    for (size_t i = 0; i < p->n_votes; i++) {
        if (!is_voter(g, p, p->votes[i].voter) || strcmp(p->votes[i].voter, proposer) == 0)
            continue;
        if (p->votes[i].approve)
            x.yes++;
        else
            x.no++;
    }
    if (t)
        *t = x;
    if (x.yes >= x.needed)
        return GOV_APPLIED;
    if (x.needed > x.voters || x.no > x.voters - x.needed)
        return GOV_REJECTED;
    return GOV_OPEN;
}

static int retire(struct governance_state *g, const char *member, const uint8_t key[32],
                  int removed, uint64_t index)
{
    if (grow((void **)&g->retired, &g->cap_retired, g->n_retired, sizeof *g->retired))
        return GOV_ERR_NOMEM;
    struct gov_retired *r = &g->retired[g->n_retired++];
    memset(r, 0, sizeof *r);
    snprintf(r->member, sizeof r->member, "%s", member);
    memcpy(r->public_key, key, 32);
    r->removed = removed;
    r->index = index;
    return 0;
}

int gov_replay_added(struct governance_state *g, const struct gov_member *m, uint64_t index)
{
    if (gov_member_find(g, m->id) || member_with_key(g, m->public_key))
        return GOV_ERR_REFUSED;
    if (g->n_members >= GOV_MAX_MEMBERS)
        return GOV_ERR_LIMIT;
    if (grow((void **)&g->members, &g->cap_members, g->n_members, sizeof *g->members))
        return GOV_ERR_NOMEM;
    struct gov_member *n = &g->members[g->n_members++];
    *n = *m;
    n->since_index = index;
    return 0;
}

int gov_replay_removed(struct governance_state *g, const char *member, uint64_t index)
{
    for (size_t i = 0; i < g->n_members; i++) {
        if (strcmp(g->members[i].id, member) != 0)
            continue;
        if (retire(g, member, g->members[i].public_key, 1, index))
            return GOV_ERR_NOMEM;
        memmove(&g->members[i], &g->members[i + 1], (g->n_members - i - 1) * sizeof *g->members);
        g->n_members--;
        return 0;
    }
    return GOV_ERR_REFUSED;
}

int gov_replay_rotated(struct governance_state *g, const char *member, const uint8_t key[32],
                       uint64_t index)
{
    struct gov_member *m = (struct gov_member *)gov_member_find(g, member);
    if (!m || member_with_key(g, key))
        return GOV_ERR_REFUSED;
    if (retire(g, member, m->public_key, 0, index))
        return GOV_ERR_NOMEM;
    memcpy(m->public_key, key, 32);
    m->since_index = index;
    return 0;
}

int gov_apply(struct governance_state *g, struct gov_proposal *p, uint64_t index)
{
    int rc = gov_applicable(g, &p->p, p->note, sizeof p->note);
    if (rc != 0)
        return rc;
    switch (p->p.action) {
    case PROPOSAL_ADD: {
        struct gov_member m = { 0 };
        snprintf(m.id, sizeof m.id, "%.32s", p->p.member);
        snprintf(m.organization, sizeof m.organization, "%s", p->p.organization);
        m.roles = p->p.roles;
        memcpy(m.public_key, p->p.public_key, 32);
        rc = gov_replay_added(g, &m, index);
        break;
    }
    case PROPOSAL_REMOVE:
        rc = gov_replay_removed(g, p->p.member, index);
        break;
    case PROPOSAL_ROTATE:
        rc = gov_replay_rotated(g, p->p.member, p->p.public_key, index);
        break;
    default:
        rc = GOV_ERR_REFUSED;
    }
    if (rc == 0) {
        p->state = GOV_APPLIED;
        p->outcome_index = index;
        snprintf(p->note, sizeof p->note, "applied at ledger #%" PRIu64, index);
    }
    return rc;
}
