/* Roster governance in the coordinator (governance.h): replay from the ledger,
 * the live roster used by authentication, and the three governance RPCs. */
#include "coordinator/governance.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/auth.h"
#include "coordinator/record.h"
#include "coordinator/state.h"
#include "crypto/proposal.h"
#include "ledger/entry.h"
#include "ledger/history.h"
#include "policies/governance.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/roster_msg.h"

struct governance {
    pthread_rwlock_t lock;          /* guards st */
    struct governance_state st;
};

static void key_short(const uint8_t key[32], char out[CRYPTO_KEY_ID_CHARS + 1])
{
    crypto_key_id(key, out);
}

/* --- the coordinator's view of the roster ----------------------------------- */


/* c->roster, c->members and c->n_eligible from the governance state. c->mu and
 * the governance lock held (or single-threaded at open). */
static int sync_roster_locked(struct coord *c)
{
    const struct governance_state *st = &c->gov->st;
    const size_t n = st->n_members;
    struct roster_member *rm = calloc(n + 1, sizeof *rm);
    struct member_stats *ms = calloc(n + 1, sizeof *ms);
    if (!rm || !ms) {
        free(rm);
        free(ms);
        return COORD_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct gov_member *g = &st->members[i];
        snprintf(rm[i].id, sizeof rm[i].id, "%s", g->id);
        snprintf(rm[i].organization, sizeof rm[i].organization, "%s", g->organization);
        rm[i].roles = g->roles;
        memcpy(rm[i].public_key, g->public_key, 32);
        const struct member_stats *old = c->members ? coord_member_stats(c, g->id) : NULL;
        if (old)
            ms[i] = *old;
        else
            snprintf(ms[i].id, sizeof ms[i].id, "%s", g->id);
    }
    free(c->roster.members);
    free(c->members);
    c->roster.members = rm;
    c->roster.n_members = n;
    c->members = ms;
    int rc = state_load_members(c);   /* counters of members (re)joining */
    if (rc != 0)
        return rc;
    c->n_eligible = coord_eligible_count_locked(c);
    /* A removal may leave every remaining member reported. */
    if (c->model && round_all_reported_locked(c))
        c->close_pending = 1;   /* the timer closes it: the caller keeps mu throughout */
    pthread_cond_broadcast(&c->changed);
    return 0;
}

/* --- ledger entries ----------------------------------------------------------- */

static int record_proposal(struct coord *c, MDB_txn *txn, const struct roster_proposal *p,
                           const uint8_t hash[32], const uint8_t sig[64], uint64_t *index)
{
    struct entry e = { .type = ENTRY_ROSTER_PROPOSED };
    entry_proposed_from_proposal(&e.u.roster_proposed, p, hash, sig);
    return record_append(c, txn, &e, index);
}

static int record_vote(struct coord *c, MDB_txn *txn, const uint8_t hash[32], const char *voter,
                       int approve, const uint8_t sig[64], uint64_t *index)
{
    struct entry e = { .type = ENTRY_VOTE };
    memcpy(e.u.vote.policy_hash, hash, 32);
    snprintf(e.u.vote.voter, sizeof e.u.vote.voter, "%s", voter);
    e.u.vote.approve = approve ? 1 : 0;
    memcpy(e.u.vote.signature, sig, 64);
    return record_append(c, txn, &e, index);
}

/* The member_added / member_removed / key_rotated entry of an approved proposal. */
static int record_outcome(struct coord *c, MDB_txn *txn, const struct gov_proposal *gp,
                          uint64_t *index)
{
    const struct roster_proposal *p = &gp->p;
    struct entry e = { 0 };
    switch (p->action) {
    case PROPOSAL_ADD:
        e.type = ENTRY_MEMBER_ADDED;
        snprintf(e.u.member_added.member.id, sizeof e.u.member_added.member.id, "%s", p->member);
        e.u.member_added.member.organization = (char *)p->organization;
        e.u.member_added.member.roles = p->roles;
        memcpy(e.u.member_added.member.public_key, p->public_key, 32);
        memcpy(e.u.member_added.proposal_hash, gp->hash, 32);
        break;
    case PROPOSAL_REMOVE:
        e.type = ENTRY_MEMBER_REMOVED;
        snprintf(e.u.member_removed.member, sizeof e.u.member_removed.member, "%s", p->member);
        e.u.member_removed.reason = p->reason[0] ? (char *)p->reason : NULL;
        memcpy(e.u.member_removed.proposal_hash, gp->hash, 32);
        break;
    case PROPOSAL_ROTATE:
        e.type = ENTRY_KEY_ROTATED;
        snprintf(e.u.key_rotated.member, sizeof e.u.key_rotated.member, "%s", p->member);
        memcpy(e.u.key_rotated.new_public_key, p->public_key, 32);
        memcpy(e.u.key_rotated.proposal_hash, gp->hash, 32);
        break;
    default:
        return COORD_ERR_STATE;
    }
    return record_append(c, txn, &e, index);
}

static void log_applied(const struct gov_proposal *p, const struct gov_tally *t)
{
    char h[17];
    hex_encode(p->hash, 8, h);
    log_info("roster: proposal %s… approved (%u of %u voters, %u needed): %s %s, ledger #%"
             PRIu64, h, t->yes, t->voters, t->needed, proposal_action_name(p->p.action),
             p->p.member, p->outcome_index);
}

/* --- rebuilding from the ledger ------------------------------------------------- */

static int member_from_entry(const struct entry_member *e, struct gov_member *m)
{
    memset(m, 0, sizeof *m);
    if (strlen(e->id) > PROPOSAL_MEMBER_MAX)
        return -1;
    snprintf(m->id, sizeof m->id, "%.32s", e->id);
    snprintf(m->organization, sizeof m->organization, "%.128s",
             e->organization ? e->organization : "");
    m->roles = e->roles;
    memcpy(m->public_key, e->public_key, 32);
    return 0;
}

static int all_zero32(const uint8_t *p)
{
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++)
        acc |= p[i];
    return acc == 0;
}

/* Marks the proposal an outcome entry names as applied. */
static void mark_applied(struct governance_state *st, const uint8_t hash[32], uint64_t index)
{
    if (all_zero32(hash))
        return;
    struct gov_proposal *p = gov_proposal_find(st, hash);
    if (p) {
        p->state = GOV_APPLIED;
        p->outcome_index = index;
        snprintf(p->note, sizeof p->note, "applied at ledger #%" PRIu64, index);
    }
}

static void genesis_checks(struct coord *c, const struct entry_genesis *g)
{
    size_t founders = 0;
    int differs = 0;
    for (uint32_t i = 0; i < g->n_members; i++) {
        const struct entry_member *m = &g->members[i];
        if (m->roles & ENTRY_ROLE_COORDINATOR) {
            if (!crypto_equal(m->public_key, c->pub.key, 32))
                log_warn("the coordinator key %s is not the one in the ledger's genesis entry; "
                         "members that pinned the genesis key will refuse its receipts",
                         c->pub.key_id);
            continue;
        }
        founders++;
        const struct roster_member *f = roster_find(&c->roster, m->id);
        if (!f || !crypto_equal(f->public_key, m->public_key, 32))
            differs = 1;
    }
    if (differs || founders != c->roster.n_members)
        log_warn("%s differs from the founding roster in the ledger; the ledger wins (roster "
                 "changes go through proposals: aulac member propose-add|remove|rotate)",
                 c->opt.roster_path);
    if (!charter_equal(&c->gov->st.charter, &c->roster.charter))
        log_warn("the charter section of %s differs from the charter in force in the ledger; "
                 "the ledger wins (the charter changes by motion: aulac charter propose)",
                 c->opt.roster_path);
}

static int replay_entry(struct coord *c, const struct entry *e, uint64_t index)
{
    struct governance_state *st = &c->gov->st;
    struct gov_member m;
    int rc = 0;
    switch (e->type) {
    case ENTRY_GENESIS:
        if (index != 0)
            return 0;
        if (e->u.genesis.alliance)
            snprintf(st->alliance, sizeof st->alliance, "%s", e->u.genesis.alliance);
        if (e->u.genesis.charter) {
            const char *text = e->u.genesis.charter;
            struct policy_error err;
            if (charter_load_buffer("the genesis charter", text, strlen(text), &st->charter,
                                    &err) != 0) {
                log_error("ledger entry #0: %s", err.message);
                return GOV_ERR_REFUSED;
            }
        }   /* a ledger from before charters: the default charter (gov_init) */
        genesis_checks(c, &e->u.genesis);
        for (uint32_t i = 0; i < e->u.genesis.n_members && rc == 0; i++) {
            if (e->u.genesis.members[i].roles & ENTRY_ROLE_COORDINATOR)
                continue;
            rc = member_from_entry(&e->u.genesis.members[i], &m) ? GOV_ERR_REFUSED
                                                                 : gov_add_founding_member(st, &m);
        }
        return rc;
    case ENTRY_ROSTER_PROPOSED: {
        const struct entry_roster_proposed *r = &e->u.roster_proposed;
        struct roster_proposal p;
        if (entry_proposed_proposal(r, st->alliance, &p) != 0)
            return GOV_ERR_REFUSED;   /* a field over a proposal's limit: not one we wrote */
        return gov_add_proposal(st, &p, r->proposal_hash, r->signature, index);
    }
    case ENTRY_VOTE: {
        struct gov_proposal *p = gov_proposal_find(st, e->u.vote.policy_hash);
        if (!p)
            return 0;   /* a vote on a policy */
        rc = gov_add_vote(st, p, e->u.vote.voter, e->u.vote.approve, e->u.vote.signature, index);
        if (rc == 0 && p->state == GOV_OPEN && gov_tally(st, p, NULL) == GOV_REJECTED) {
            p->state = GOV_REJECTED;
            snprintf(p->note, sizeof p->note, "rejected at ledger #%" PRIu64, index);
        }
        return rc;
    }
    case ENTRY_MEMBER_ADDED:
        if (member_from_entry(&e->u.member_added.member, &m))
            return GOV_ERR_REFUSED;
        rc = gov_replay_added(st, &m, index);
        if (rc == 0)
            mark_applied(st, e->u.member_added.proposal_hash, index);
        return rc;
    case ENTRY_MEMBER_REMOVED:
        rc = gov_replay_removed(st, e->u.member_removed.member, index);
        if (rc == 0)
            mark_applied(st, e->u.member_removed.proposal_hash, index);
        return rc;
    case ENTRY_KEY_ROTATED:
        rc = gov_replay_rotated(st, e->u.key_rotated.member, e->u.key_rotated.new_public_key,
                                index);
        if (rc == 0)
            mark_applied(st, e->u.key_rotated.proposal_hash, index);
        return rc;
    default:
        return 0;
    }
}

static int is_roster_type(unsigned t)
{
    return t == ENTRY_GENESIS || t == ENTRY_MEMBER_ADDED || t == ENTRY_MEMBER_REMOVED ||
           t == ENTRY_KEY_ROTATED || t == ENTRY_VOTE || t == ENTRY_ROSTER_PROPOSED;
}

static int replay_ledger(struct coord *c, uint64_t size)
{
    for (uint64_t i = 0; i < size; i++) {
        uint8_t *bytes;
        size_t len;
        int rc = ledger_get(c->ledger, i, &bytes, &len);
        if (rc != 0) {
            log_error("cannot read ledger entry #%" PRIu64 ": %s", i, ledger_strerror(rc));
            return COORD_ERR_STATE;
        }
        /* the type sits at bytes 5..6: skip the many entries that are not ours */
        unsigned type = len >= ENTRY_HEADER_BYTES ? (unsigned)(bytes[5] << 8 | bytes[6]) : 0;
        if (!is_roster_type(type)) {
            free(bytes);
            continue;
        }
        struct entry e;
        rc = entry_decode(bytes, len, &e);
        free(bytes);
        if (rc != 0) {
            log_error("ledger entry #%" PRIu64 " does not decode: %s", i, ledger_strerror(rc));
            return COORD_ERR_STATE;
        }
        if (i == 0 && e.type != ENTRY_GENESIS) {
            entry_free(&e);
            log_error("ledger entry #0 is not the genesis roster");
            return COORD_ERR_STATE;
        }
        rc = replay_entry(c, &e, i);
        if (rc != 0) {
            char line[200];
            entry_describe(&e, line, sizeof line);
            log_error("ledger entry #%" PRIu64 " (%s) does not apply to the roster before it",
                      i, line);
            entry_free(&e);
            return rc == GOV_ERR_NOMEM ? COORD_ERR_NOMEM : COORD_ERR_STATE;
        }
        entry_free(&e);
    }
    return 0;
}

/* --- deciding ---------------------------------------------------------------- */

/* What the tally now says: open, approved (GOV_APPLIED: still applicable, so
 * apply it), rejected, or obsolete (approved but no longer applicable), with a
 * note for the last two. mu and the write lock held. */
static enum gov_state decide(struct coord *c, struct gov_proposal *p, struct gov_tally *t,
                             char *note, size_t cap)
{
    enum gov_state s = gov_tally(&c->gov->st, p, t);
    if (s == GOV_APPLIED && gov_applicable(&c->gov->st, &p->p, note, cap) != 0)
        return GOV_OBSOLETE;
    if (s == GOV_REJECTED)
        snprintf(note, cap, "%u of %u voters refused; %u approvals were needed", t->no,
                 t->voters, t->needed);
    return s;
}

/* Proposals still open after the replay whose tally now decides them (the
 * roster may differ from when they were last counted). */
static int settle_open(struct coord *c)
{
    struct governance_state *st = &c->gov->st;
    const int64_t now = time_now_unix_ms();
    for (size_t i = 0; i < st->n_proposals; i++) {
        struct gov_proposal *p = &st->proposals[i];
        if (gov_state_at(p, now) != GOV_OPEN)
            continue;
        struct gov_tally t;
        char note[sizeof p->note] = "";
        enum gov_state s = decide(c, p, &t, note, sizeof note);
        if (s == GOV_OPEN)
            continue;
        if (s != GOV_APPLIED) {
            p->state = s;
            snprintf(p->note, sizeof p->note, "%s", note);
            continue;
        }
        MDB_txn *txn;
        uint64_t idx;
        if (ledger_txn_begin(c->ledger, &txn) != 0)
            return COORD_ERR_STATE;
        if (record_outcome(c, txn, p, &idx) != 0) {
            ledger_txn_abort(c->ledger, txn);
            return COORD_ERR_STATE;
        }
        if (ledger_txn_commit(c->ledger, txn) != 0)
            return COORD_ERR_STATE;
        if (gov_apply(st, p, idx) != 0)
            return COORD_ERR_STATE;
        log_applied(p, &t);
    }
    return 0;
}

int governance_open(struct coord *c)
{
    struct governance *g = calloc(1, sizeof *g);
    if (!g)
        return COORD_ERR_NOMEM;
    pthread_rwlock_init(&g->lock, NULL);
    /* The roster file's charter founds a new ledger; replay takes the genesis one. */
    gov_init(&g->st, c->roster.alliance, NULL);
    c->gov = g;
    uint64_t size;
    if (ledger_size(c->ledger, &size) != 0)
        return COORD_ERR_STATE;
    int rc = 0;
    if (size == 0) {
        /* A new ledger: the roster file becomes the genesis entry. */
        g->st.charter = c->roster.charter;
        for (size_t i = 0; i < c->roster.n_members && rc == 0; i++) {
            const struct roster_member *r = &c->roster.members[i];
            struct gov_member m = { 0 };
            snprintf(m.id, sizeof m.id, "%s", r->id);
            snprintf(m.organization, sizeof m.organization, "%s", r->organization);
            m.roles = r->roles;
            memcpy(m.public_key, r->public_key, 32);
            rc = gov_add_founding_member(&g->st, &m);
        }
        if (rc != 0)
            return rc == GOV_ERR_NOMEM ? COORD_ERR_NOMEM : COORD_ERR_CONFIG;
    } else if ((rc = replay_ledger(c, size)) != 0 || (rc = settle_open(c)) != 0) {
        return rc;
    }
    if ((rc = sync_roster_locked(c)) != 0)
        return rc;
    for (size_t i = 0; i < c->policy.participation.n_members; i++)
        if (!gov_member_find(&g->st, c->policy.participation.members[i]))
            log_warn("policy member '%s' is not in the roster: it takes part once the members "
                     "add it (aulac member propose-add)", c->policy.participation.members[i]);
    size_t open = 0;
    for (size_t i = 0; i < g->st.n_proposals; i++)
        open += gov_state_at(&g->st.proposals[i], time_now_unix_ms()) == GOV_OPEN;
    log_info("roster: %zu member(s), roster quorum %.2f, %zu open proposal(s)%s",
             g->st.n_members, g->st.charter.roster_quorum, open,
             size ? " (rebuilt from the ledger)" : "");
    return 0;
}

void governance_close(struct coord *c)
{
    struct governance *g = c->gov;
    if (!g)
        return;
    gov_free(&g->st);
    pthread_rwlock_destroy(&g->lock);
    free(g);
    c->gov = NULL;
}

/* --- lookups for authentication ------------------------------------------------ */

int governance_member_key(struct coord *c, const char *id, uint8_t key[32], char *why,
                          size_t cap)
{
    struct governance *g = c->gov;
    int rc = 0;
    pthread_rwlock_rdlock(&g->lock);
    const struct gov_member *m = gov_member_find(&g->st, id);
    if (m) {
        memcpy(key, m->public_key, 32);
    } else {
        rc = -1;
        const struct gov_retired *r = gov_retired_find(&g->st, id, NULL);
        if (!why)
            ;
        else if (r && r->removed)
            snprintf(why, cap, "member '%s' was removed from the alliance (ledger #%" PRIu64
                     "); its requests are refused", id, r->index);
        else
            snprintf(why, cap, "unknown member '%s': it is not in the alliance roster; the "
                     "members can add it by a governance proposal (aulac member propose-add)",
                     id);
    }
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

int governance_explain_bad_key(struct coord *c, const char *id, const char *key_id,
                               char *why, size_t cap)
{
    struct governance *g = c->gov;
    char cur[CRYPTO_KEY_ID_CHARS + 1] = "?", old[CRYPTO_KEY_ID_CHARS + 1];
    pthread_rwlock_rdlock(&g->lock);
    const struct gov_member *m = gov_member_find(&g->st, id);
    if (m)
        key_short(m->public_key, cur);
    const struct gov_retired *hit = NULL;
    for (size_t i = g->st.n_retired; key_id && i-- > 0;) {
        const struct gov_retired *r = &g->st.retired[i];
        key_short(r->public_key, old);
        if (strcmp(r->member, id) == 0 && strcmp(old, key_id) == 0) {
            hit = r;
            break;
        }
    }
    if (hit)
        snprintf(why, cap, "member '%s' signed with key %s, which was rotated out of the "
                 "roster (ledger #%" PRIu64 "); its key is now %s: use the new key", id,
                 key_id, hit->index, cur);
    else if (key_id && strcmp(key_id, cur) != 0)
        snprintf(why, cap, "bad signature: member '%s' signed with key %s, which is not in "
                 "the roster (its roster key is %s): use the member's key", id, key_id, cur);
    else if (key_id)
        snprintf(why, cap, "bad signature: the request does not verify with member '%s''s "
                 "roster key %s (it was signed with key %s)", id, cur, key_id);
    else
        snprintf(why, cap, "bad signature: the request does not verify with member '%s''s "
                 "roster key %s", id, cur);
    pthread_rwlock_unlock(&g->lock);
    return key_id && strcmp(key_id, cur) != 0;
}

/* --- replies --------------------------------------------------------------------- */

/* A proposal copied out of the locked state, with what its reply needs. */
struct prop_view {
    struct gov_proposal p;          /* p.votes: own copy */
    struct gov_tally t;
    enum gov_state s;
    Aulac__V1__ProposalStatus ps;
    Aulac__V1__RosterProposal rp;
    Aulac__V1__RosterChange rc;
    char **voted;
};

static int view_take(struct prop_view *v, const struct governance_state *st,
                     const struct gov_proposal *p, int64_t now)
{
    memset(v, 0, sizeof *v);
    v->p = *p;
    v->p.votes = NULL;
    if (p->n_votes) {
        v->p.votes = malloc(p->n_votes * sizeof *p->votes);
        if (!v->p.votes)
            return -1;
        memcpy(v->p.votes, p->votes, p->n_votes * sizeof *p->votes);
    }
    v->s = gov_state_at(p, now);
    gov_tally(st, p, &v->t);
    return 0;
}

static void view_free(struct prop_view *v)
{
    free(v->p.votes);
    free(v->voted);
}

static int view_fill(struct prop_view *v)
{
    const struct roster_proposal *p = &v->p.p;
    roster_proposal_to_msg(p, v->p.signature, &v->rp, &v->rc);
    aulac__v1__proposal_status__init(&v->ps);
    v->ps.proposal_hash.data = v->p.hash;
    v->ps.proposal_hash.len = 32;
    v->ps.proposal = &v->rp;
    v->ps.state = (char *)gov_state_name(v->s);
    v->ps.yes = v->t.yes;
    v->ps.no = v->t.no;
    v->ps.needed = v->t.needed;
    v->ps.voters = v->t.voters;
    v->voted = calloc(v->p.n_votes + 2, sizeof *v->voted);
    if (!v->voted)
        return -1;
    v->voted[0] = (char *)p->proposer;
    for (size_t i = 0; i < v->p.n_votes; i++)
        v->voted[i + 1] = v->p.votes[i].voter;
    v->ps.voted = v->voted;
    v->ps.n_voted = v->p.n_votes + 1;
    v->ps.ledger_index = v->p.index;
    v->ps.outcome_index = v->p.outcome_index;
    v->ps.note = v->p.note;
    return 0;
}

static void reply_refused(struct rpc_call *call, const char *reason)
{
    Aulac__V1__GovernanceReply r = AULAC__V1__GOVERNANCE_REPLY__INIT;
    r.accepted = 0;
    r.reason = (char *)reason;
    pb_call_finish(call, &r.base);
}

static void reply_with(struct rpc_call *call, struct prop_view *v, uint64_t index)
{
    Aulac__V1__GovernanceReply r = AULAC__V1__GOVERNANCE_REPLY__INIT;
    r.accepted = 1;
    r.reason = "";
    r.ledger_index = index;
    if (view_fill(v) == 0)
        r.proposal = &v->ps;
    pb_call_finish(call, &r.base);
}

/* --- ProposeRosterChange -------------------------------------------------------- */

/* Records and, when the proposer's approval alone reaches the quorum, applies.
 * 0 with *v filled, or -1 with why. Takes mu and the write lock. */
static int propose(struct coord *c, const struct roster_proposal *p, const uint8_t sig[64],
                   struct prop_view *v, uint64_t *index, char *why, size_t cap)
{
    struct governance *g = c->gov;
    uint8_t hash[32], key[32];
    if (proposal_hash(p, hash) != 0) {
        snprintf(why, cap, "malformed proposal");
        return -1;
    }
    const int64_t now = time_now_unix_ms();
    int rc = -1;
    pthread_mutex_lock(&c->mu);
    pthread_rwlock_wrlock(&g->lock);
    const struct gov_member *pm = gov_member_find(&g->st, p->proposer);
    if (gov_check_proposal(&g->st, p, hash, now, AUTH_SKEW_MS, why, cap) != 0)
        goto out;
    memcpy(key, pm->public_key, 32);
    if (proposal_verify(p, key, sig) != 0) {
        snprintf(why, cap, "bad signature: the proposal does not verify with %s's roster key",
                 p->proposer);
        goto out;
    }
    struct gov_proposal tmp = { .p = *p, .state = GOV_OPEN };
    memcpy(tmp.hash, hash, 32);
    struct gov_tally t;
    int approved = gov_tally(&g->st, &tmp, &t) == GOV_APPLIED;

    MDB_txn *txn;
    uint64_t idx = 0, out_idx = 0;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        snprintf(why, cap, "the coordinator could not record the proposal (storage); retry");
        goto out;
    }
    int st = record_proposal(c, txn, p, hash, sig, &idx);
    if (st == 0 && approved)
        st = record_outcome(c, txn, &tmp, &out_idx);
    if (st != 0 || ledger_txn_commit(c->ledger, txn) != 0) {
        if (st != 0)
            ledger_txn_abort(c->ledger, txn);
        snprintf(why, cap, "the coordinator could not record the proposal (storage); retry");
        goto out;
    }
    *index = idx;
    if (gov_add_proposal(&g->st, p, hash, sig, idx) != 0) {
        log_error("out of memory after recording proposal #%" PRIu64 "; restart the "
                  "coordinator to reload it", idx);
        snprintf(why, cap, "recorded at ledger #%" PRIu64 ", but the coordinator ran out of "
                 "memory", idx);
        goto out;
    }
    struct gov_proposal *gp = &g->st.proposals[g->st.n_proposals - 1];
    char h[17];
    hex_encode(hash, 8, h);
    log_info("roster: %s proposes to %s %s (proposal %s…, ledger #%" PRIu64 ")", p->proposer,
             proposal_action_name(p->action), p->member, h, idx);
    if (approved) {
        if (gov_apply(&g->st, gp, out_idx) == 0) {
            log_applied(gp, &t);
            sync_roster_locked(c);
        } else {
            log_error("roster: approved proposal %s… did not apply: %s", h, gp->note);
        }
    }
    rc = view_take(v, &g->st, gp, now) == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(why, cap, "out of memory");
out:
    pthread_rwlock_unlock(&g->lock);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void governance_on_propose(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__roster_proposal__descriptor, &in, NULL) != 0)
        return;
    const Aulac__V1__RosterProposal *q = (const Aulac__V1__RosterProposal *)in;
    struct roster_proposal p;
    uint8_t sig[64];
    char why[400];
    struct prop_view v;
    uint64_t index = 0;
    if (roster_proposal_from_msg(q, &p, sig, why, sizeof why) != 0 ||
        propose(c, &p, sig, &v, &index, why, sizeof why) != 0) {
        log_warn("refused a roster proposal from %s: %s", q->proposer_id, why);
        reply_refused(call, why);
    } else {
        reply_with(call, &v, index);
        view_free(&v);
    }
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- Vote ------------------------------------------------------------------------ */

static int vote(struct coord *c, const struct roster_vote *rv, const uint8_t sig[64],
                struct prop_view *v, uint64_t *index, char *why, size_t cap)
{
    struct governance *g = c->gov;
    const int64_t now = time_now_unix_ms();
    int rc = -1;
    char h[17];
    hex_encode(rv->proposal_hash, 8, h);
    pthread_mutex_lock(&c->mu);
    pthread_rwlock_wrlock(&g->lock);
    struct gov_proposal *p = gov_proposal_find(&g->st, rv->proposal_hash);
    const struct gov_member *vm = gov_member_find(&g->st, rv->voter);
    if (!p) {
        snprintf(why, cap, "no roster proposal %s… is known (aulac member list shows them)", h);
        goto out;
    }
    if (gov_check_vote(&g->st, p, rv->voter, now, why, cap) != 0)
        goto out;
    if (vote_verify(rv, vm->public_key, sig) != 0) {
        snprintf(why, cap, "bad signature: the vote does not verify with %s's roster key",
                 rv->voter);
        goto out;
    }
    if (gov_add_vote(&g->st, p, rv->voter, rv->approve, sig, 0) != 0) {
        snprintf(why, cap, "out of memory");
        goto out;
    }
    struct gov_tally t;
    char note[sizeof p->note] = "";
    enum gov_state s = decide(c, p, &t, note, sizeof note);
    MDB_txn *txn;
    uint64_t idx = 0, out_idx = 0;
    int st = ledger_txn_begin(c->ledger, &txn) == 0 ? 0 : -1;
    if (st == 0) {
        st = record_vote(c, txn, rv->proposal_hash, rv->voter, rv->approve, sig, &idx);
        if (st == 0 && s == GOV_APPLIED)
            st = record_outcome(c, txn, p, &out_idx);
        if (st != 0)
            ledger_txn_abort(c->ledger, txn);
        else if (ledger_txn_commit(c->ledger, txn) != 0)
            st = -1;
    }
    if (st != 0) {
        p->n_votes--;   /* not recorded, so not counted */
        snprintf(why, cap, "the coordinator could not record the vote (storage); retry");
        goto out;
    }
    *index = idx;
    p->votes[p->n_votes - 1].index = idx;
    log_info("roster: %s votes %s on proposal %s… (%u of %u needed, ledger #%" PRIu64 ")",
             rv->voter, rv->approve ? "yes" : "no", h, t.yes, t.needed, idx);
    if (s == GOV_APPLIED) {
        if (gov_apply(&g->st, p, out_idx) == 0) {
            log_applied(p, &t);
            sync_roster_locked(c);
        } else {
            log_error("roster: approved proposal %s… did not apply: %s", h, p->note);
        }
    } else if (s != GOV_OPEN) {
        p->state = s;
        snprintf(p->note, sizeof p->note, "%s", note);
        log_info("roster: proposal %s… is %s: %s", h, gov_state_name(s), note);
    }
    rc = view_take(v, &g->st, p, now) == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(why, cap, "out of memory");
out:
    pthread_rwlock_unlock(&g->lock);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void governance_on_vote(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__vote_request__descriptor, &in, NULL) != 0)
        return;
    const Aulac__V1__VoteRequest *q = (const Aulac__V1__VoteRequest *)in;
    struct roster_vote rv = { 0 };
    char why[400];
    struct prop_view v;
    uint64_t index = 0;
    int ok = 0;
    if (q->proposal_hash.len != 32 || q->signature.len != 64) {
        snprintf(why, sizeof why, "malformed vote: proposal_hash must be 32 bytes and the "
                 "signature 64");
    } else {
        memcpy(rv.proposal_hash, q->proposal_hash.data, 32);
        snprintf(rv.voter, sizeof rv.voter, "%s", q->voter_id);   /* auth checked it */
        rv.approve = q->approve ? 1 : 0;
        ok = vote(c, &rv, q->signature.data, &v, &index, why, sizeof why) == 0;
    }
    if (!ok) {
        log_warn("refused a vote from %s: %s", q->voter_id, why);
        reply_refused(call, why);
    } else {
        reply_with(call, &v, index);
        view_free(&v);
    }
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- ListProposals --------------------------------------------------------------- */

void governance_on_list(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    struct governance *g = c->gov;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__proposals_request__descriptor, &in, NULL) != 0)
        return;
    const Aulac__V1__ProposalsRequest *q = (const Aulac__V1__ProposalsRequest *)in;
    const int64_t now = time_now_unix_ms();
    Aulac__V1__ProposalsReply r = AULAC__V1__PROPOSALS_REPLY__INIT;
    struct gov_member *members = NULL;
    struct prop_view *views = NULL;
    size_t n_members = 0, n_views = 0;
    char alliance[PROPOSAL_ALLIANCE_MAX + 1];
    int oom = 0;

    pthread_rwlock_rdlock(&g->lock);
    snprintf(alliance, sizeof alliance, "%s", g->st.alliance);
    r.quorum = g->st.charter.roster_quorum;
    n_members = g->st.n_members;
    members = calloc(n_members + 1, sizeof *members);
    views = calloc(g->st.n_proposals + 1, sizeof *views);
    if (!members || !views) {
        oom = 1;
    } else {
        memcpy(members, g->st.members, n_members * sizeof *members);
        for (size_t i = 0; i < g->st.n_proposals && !oom; i++) {
            const struct gov_proposal *p = &g->st.proposals[i];
            if (q->proposal_hash.len == 32 && memcmp(q->proposal_hash.data, p->hash, 32) != 0)
                continue;
            if (!q->include_closed && q->proposal_hash.len != 32 &&
                gov_state_at(p, now) != GOV_OPEN)
                continue;
            if (view_take(&views[n_views], &g->st, p, now) != 0)
                oom = 1;
            else
                n_views++;
        }
    }
    pthread_rwlock_unlock(&g->lock);

    Aulac__V1__RosterMember *rows = calloc(n_members + 1, sizeof *rows);
    Aulac__V1__RosterMember **rptr = calloc(n_members + 1, sizeof *rptr);
    char (*kid)[CRYPTO_KEY_ID_CHARS + 1] = calloc(n_members + 1, sizeof *kid);
    Aulac__V1__ProposalStatus **pptr = calloc(n_views + 1, sizeof *pptr);
    if (oom || !rows || !rptr || !kid || !pptr) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
    } else {
        r.alliance = alliance;
        for (size_t i = 0; i < n_members; i++) {
            aulac__v1__roster_member__init(&rows[i]);
            rows[i].member_id = members[i].id;
            rows[i].organization = members[i].organization;
            rows[i].roles = members[i].roles;
            rows[i].public_key.data = members[i].public_key;
            rows[i].public_key.len = 32;
            key_short(members[i].public_key, kid[i]);
            rows[i].key_id = kid[i];
            rptr[i] = &rows[i];
        }
        r.roster = rptr;
        r.n_roster = n_members;
        size_t k = 0;
        for (size_t i = 0; i < n_views; i++)
            if (view_fill(&views[i]) == 0)
                pptr[k++] = &views[i].ps;
        r.proposals = pptr;
        r.n_proposals = k;
        pb_call_finish(call, &r.base);
    }
    for (size_t i = 0; views && i < n_views; i++)
        view_free(&views[i]);
    free(views);
    free(members);
    free(rows);
    free(rptr);
    free(kid);
    free(pptr);
    protobuf_c_message_free_unpacked(in, NULL);
}
