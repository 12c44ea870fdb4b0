#include "policies/governance.h"
#include "common/why.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

const char *gov_state_name(enum gov_state s)
{
    switch (s) {
    case GOV_OPEN: return "open";
    case GOV_APPLIED: return "approved";
    case GOV_REJECTED: return "rejected";
    case GOV_EXPIRED: return "expired";
    case GOV_OBSOLETE: return "obsolete";
    }
    return "unknown";
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
    if (p->state == GOV_OPEN && now_ms > p->p.expires_unix_ms)
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

int gov_check_proposal(const struct governance_state *g, const struct roster_proposal *p,
                       const uint8_t hash[32], int64_t now_ms, int64_t skew_ms,
                       char *why, size_t cap)
{
    if (proposal_check(p, why, cap) != 0)
        return GOV_ERR_REFUSED;
    if (strcmp(p->alliance, g->alliance) != 0)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal is for alliance '%s', this is "
                      "'%s'", p->alliance, g->alliance);
    if (!gov_member_find(g, p->proposer))
        return why_fail(why, cap, GOV_ERR_REFUSED, "proposer '%s' is not a current member",
                      p->proposer);
    if (p->created_unix_ms < now_ms - skew_ms || p->created_unix_ms > now_ms + skew_ms)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal was made %+" PRId64 " s from "
                      "the coordinator's clock (window: %" PRId64 " s); sign a fresh one",
                      (p->created_unix_ms - now_ms) / 1000, skew_ms / 1000);
    if (p->expires_unix_ms <= now_ms)
        return why_fail(why, cap, GOV_ERR_REFUSED, "the proposal has already expired");
    if (p->expires_unix_ms - p->created_unix_ms > GOV_MAX_TTL_MS)
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
    return gov_applicable(g, p, why, cap);
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
    return !(p->p.action == PROPOSAL_REMOVE && strcmp(p->p.member, member) == 0);
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
    if (strcmp(p->p.proposer, voter) == 0)
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
    double need = ceil(g->charter.roster_quorum * (double)x.voters - 1e-9);
    x.needed = need < 1 ? 1 : (uint32_t)need;
    if (is_voter(g, p, p->p.proposer))
        x.yes++;
    for (size_t i = 0; i < p->n_votes; i++) {
        if (!is_voter(g, p, p->votes[i].voter) || strcmp(p->votes[i].voter, p->p.proposer) == 0)
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
