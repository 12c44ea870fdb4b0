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
#include "common/why.h"
#include "coordinator/auth.h"
#include "coordinator/queue.h"
#include "coordinator/record.h"
#include "coordinator/state.h"
#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "ledger/entry.h"
#include "ledger/history.h"
#include "policies/governance.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/roster_msg.h"

struct governance {
    pthread_rwlock_t lock;          /* guards st and charter_index */
    struct governance_state st;
    uint64_t charter_index;         /* the entry that put st.charter in force (0: genesis) */
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
    if (c->rnd.base)
        round_request_close_locked(c);   /* the timer closes it */
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

/* enum entry_outcome <-> the state of a decided motion. */
static enum gov_state state_of_outcome(uint32_t outcome)
{
    switch (outcome) {
    case ENTRY_OUTCOME_APPROVED: return GOV_APPLIED;
    case ENTRY_OUTCOME_REJECTED: return GOV_REJECTED;
    case ENTRY_OUTCOME_EXPIRED: return GOV_EXPIRED;
    case ENTRY_OUTCOME_WITHDRAWN: return GOV_WITHDRAWN;
    default: return GOV_OBSOLETE;
    }
}

static uint32_t outcome_of_state(enum gov_state s)
{
    switch (s) {
    case GOV_APPLIED: return ENTRY_OUTCOME_APPROVED;
    case GOV_REJECTED: return ENTRY_OUTCOME_REJECTED;
    case GOV_EXPIRED: return ENTRY_OUTCOME_EXPIRED;
    case GOV_WITHDRAWN: return ENTRY_OUTCOME_WITHDRAWN;
    default: return ENTRY_OUTCOME_OBSOLETE;
    }
}

static int replay_motion(struct governance_state *st, const struct entry_motion *r,
                         uint64_t index)
{
    struct motion m;
    struct charter ch, *chp = NULL;
    if (entry_motion_motion(r, st->alliance, &m) != 0)
        return GOV_ERR_REFUSED;
    if (m.kind == MOTION_CHARTER) {
        struct policy_error err;
        if (!r->document || charter_load_buffer("charter motion", r->document, r->document_len,
                                                &ch, &err) != 0)
            return GOV_ERR_REFUSED;
        chp = &ch;
    }
    return gov_add_motion(st, &m, r->proposal_hash, r->signature, chp, index);
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
    case ENTRY_POLICY_PROPOSED:
    case ENTRY_CHARTER_PROPOSED:
    case ENTRY_CANCEL_PROPOSED:
        return replay_motion(st, &e->u.motion, index);
    case ENTRY_PROPOSAL_DECIDED: {
        struct gov_proposal *p = gov_proposal_find(st, e->u.decided.proposal_hash);
        if (!p || p->family != GOV_MOTION)
            return GOV_ERR_REFUSED;
        gov_decide(st, p, state_of_outcome(e->u.decided.outcome), index,
                   e->u.decided.reason ? e->u.decided.reason : "");
        if (p->m.kind == MOTION_CHARTER && p->state == GOV_APPLIED)
            c->gov->charter_index = index;
        return 0;
    }
    case ENTRY_VOTE: {
        struct gov_proposal *p = gov_proposal_find(st, e->u.vote.policy_hash);
        if (!p)
            return 0;   /* a vote on nothing this coordinator recorded */
        rc = gov_add_vote(st, p, e->u.vote.voter, e->u.vote.approve, e->u.vote.signature, index);
        /* a motion's end is its own proposal_decided entry */
        if (rc == 0 && p->family == GOV_ROSTER && p->state == GOV_OPEN &&
            gov_tally(st, p, NULL) == GOV_REJECTED) {
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

static int is_governance_type(unsigned t)
{
    return t == ENTRY_GENESIS || t == ENTRY_MEMBER_ADDED || t == ENTRY_MEMBER_REMOVED ||
           t == ENTRY_KEY_ROTATED || t == ENTRY_VOTE || t == ENTRY_ROSTER_PROPOSED ||
           t == ENTRY_POLICY_PROPOSED || t == ENTRY_CHARTER_PROPOSED ||
           t == ENTRY_CANCEL_PROPOSED || t == ENTRY_PROPOSAL_DECIDED;
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
        if (!is_governance_type(type)) {
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

/* --- motions: decisions ---------------------------------------------------------- */

/* What deciding a motion takes: the state it ends in, the tally, why, and for an
 * approved experiment its exact policy bytes (for the queue). */
struct decision {
    enum gov_state s;
    struct gov_tally t;
    char note[200];
    uint8_t withdraw_sig[64];       /* GOV_WITHDRAWN */
    const uint8_t *doc;             /* an approved experiment's document */
    size_t doc_len;
    struct entry proposed;          /* its policy_proposed entry, when read from the ledger */
    int have_proposed;
};

static void decision_free(struct decision *d)
{
    if (d->have_proposed)
        entry_free(&d->proposed);
    d->have_proposed = 0;
}

/* Before the decision's transaction (mu and the write lock held): the note, the
 * document of an approved experiment (from its ledger entry unless d->doc is set),
 * and a cancel approved after its experiment ended becomes obsolete. 0 or -1 with why. */
static int decision_prepare(struct coord *c, const struct gov_proposal *p, struct decision *d,
                            char *why, size_t cap)
{
    const struct gov_tally *t = &d->t;
    switch (d->s) {
    case GOV_APPLIED:
        snprintf(d->note, sizeof d->note, "approved: %u of %u voters, %u needed", t->yes,
                 t->voters, t->needed);
        break;
    case GOV_REJECTED:
        snprintf(d->note, sizeof d->note, "%u of %u voters refused; %u approvals were needed",
                 t->no, t->voters, t->needed);
        break;
    case GOV_EXPIRED:
        snprintf(d->note, sizeof d->note, "expired with %u of %u approvals needed", t->yes,
                 t->needed);
        break;
    case GOV_WITHDRAWN:
        snprintf(d->note, sizeof d->note, "withdrawn by its proposer %s", p->m.proposer);
        break;
    default:
        break;
    }
    if (d->s == GOV_APPLIED && p->m.kind == MOTION_CANCEL) {
        struct experiment_info e;
        int found;
        if (queue_get(c, p->m.experiment, &e, &found) != 0) {
            snprintf(why, cap, "the coordinator could not read the queue (storage); retry");
            return -1;
        }
        if (!found || queue_phase_ended(e.phase)) {
            d->s = GOV_OBSOLETE;
            snprintf(d->note, sizeof d->note, "approved, but experiment %s has %s meanwhile: "
                     "nothing to cancel", p->m.experiment,
                     found ? queue_phase_name(e.phase) : "gone");
        }
        if (found)
            experiment_info_free(&e);
    }
    if (d->s == GOV_APPLIED && p->m.kind == MOTION_EXPERIMENT && !d->doc) {
        uint8_t *bytes;
        size_t len;
        int rc = ledger_get(c->ledger, p->index, &bytes, &len);
        if (rc == 0) {
            rc = entry_decode(bytes, len, &d->proposed);
            free(bytes);
        }
        if (rc != 0 || d->proposed.type != ENTRY_POLICY_PROPOSED) {
            if (rc == 0)
                entry_free(&d->proposed);
            log_error("ledger entry #%" PRIu64 " is not the policy_proposed entry of %s",
                      p->index, p->m.experiment);
            snprintf(why, cap, "the coordinator could not read the proposal's ledger entry "
                     "#%" PRIu64, p->index);
            return -1;
        }
        d->have_proposed = 1;
        d->doc = d->proposed.u.motion.document;
        d->doc_len = d->proposed.u.motion.document_len;
    }
    return 0;
}

/* In the decision's transaction: the proposal_decided entry and what the decision
 * does (queue an approved experiment; cancel one). 0 or -1 with why. */
static int decision_record(struct coord *c, MDB_txn *txn, const struct gov_proposal *p,
                           const struct decision *d, uint64_t *index, char *why, size_t cap)
{
    struct entry e = { .type = ENTRY_PROPOSAL_DECIDED };
    struct entry_proposal_decided *r = &e.u.decided;
    memcpy(r->proposal_hash, p->hash, 32);
    r->outcome = outcome_of_state(d->s);
    snprintf(r->experiment, sizeof r->experiment, "%s", p->m.experiment);
    r->yes = d->t.yes;
    r->no = d->t.no;
    r->needed = d->t.needed;
    r->voters = d->t.voters;
    r->reason = d->note[0] ? (char *)d->note : NULL;
    if (d->s == GOV_WITHDRAWN)
        memcpy(r->withdraw_signature, d->withdraw_sig, 64);
    if (record_append(c, txn, &e, index) != 0) {
        snprintf(why, cap, "the coordinator could not record the decision (storage); retry");
        return -1;
    }
    char reason[sizeof d->note + 40];
    int rc = 0;
    if (d->s == GOV_APPLIED && p->m.kind == MOTION_EXPERIMENT) {
        struct experiment_info info;
        memset(&info, 0, sizeof info);
        snprintf(info.experiment, sizeof info.experiment, "%s", p->m.experiment);
        memcpy(info.proposal_hash, p->hash, 32);
        memcpy(info.policy_hash, p->m.content_hash, 32);
        info.proposed_index = p->index;
        info.policy_yaml = (uint8_t *)d->doc;
        info.policy_yaml_len = d->doc_len;
        if ((rc = queue_push_txn(c, txn, &info)) != 0)
            snprintf(why, cap, "the coordinator could not queue experiment %s (storage); retry",
                     p->m.experiment);
    } else if (d->s == GOV_APPLIED && p->m.kind == MOTION_CANCEL) {
        snprintf(reason, sizeof reason, "cancelled by the members' vote (%s)", d->note);
        rc = experiment_cancel_locked(c, txn, p->m.experiment, reason, why, cap);
    } else if (d->s == GOV_WITHDRAWN && p->state == GOV_APPLIED) {
        rc = experiment_cancel_locked(c, txn, p->m.experiment, "withdrawn by its proposer "
                                      "before it started", why, cap);
    }
    return rc == 0 ? 0 : -1;
}

/* After the commit: the state, and an approved charter in force. */
static void decision_apply(struct coord *c, struct gov_proposal *p, const struct decision *d,
                           uint64_t index)
{
    char h[17];
    hex_encode(p->hash, 8, h);
    gov_decide(&c->gov->st, p, d->s, index, d->note);
    if (d->s == GOV_APPLIED && p->m.kind == MOTION_CHARTER)
        c->gov->charter_index = index;
    log_info("governance: %s motion %s…%s%s is %s (ledger #%" PRIu64 "): %s",
             motion_kind_name(p->m.kind), h, p->m.experiment[0] ? " for " : "",
             p->m.experiment, gov_state_name(d->s), index, d->note);
}

/* Decides a motion in a transaction of its own (restart settling, expiry): mu and
 * the write lock held, or single-threaded at open. 0, or -1 with why. */
static int motion_settle_locked(struct coord *c, struct gov_proposal *p, enum gov_state s,
                                const struct gov_tally *t, char *why, size_t cap)
{
    struct decision d = { .s = s, .t = *t };
    if (decision_prepare(c, p, &d, why, cap) != 0)
        return -1;
    MDB_txn *txn;
    uint64_t idx = 0;
    int rc = -1;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        snprintf(why, cap, "cannot begin a transaction");
    } else if (decision_record(c, txn, p, &d, &idx, why, cap) != 0) {
        ledger_txn_abort(c->ledger, txn);
    } else if (ledger_txn_commit(c->ledger, txn) != 0) {
        snprintf(why, cap, "cannot commit");
    } else {
        decision_apply(c, p, &d, idx);
        rc = 0;
    }
    decision_free(&d);
    return rc;
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

/* Roster proposals still open after the replay whose tally now decides them (the
 * roster may differ from when they were last counted). Motions wait for
 * governance_settle_motions: deciding one may cancel the experiment, which is
 * resumed only after governance_open. */
static int settle_open(struct coord *c)
{
    struct governance_state *st = &c->gov->st;
    const int64_t now = time_now_unix_ms();
    for (size_t i = 0; i < st->n_proposals; i++) {
        struct gov_proposal *p = &st->proposals[i];
        if (p->family == GOV_MOTION || gov_state_at(p, now) != GOV_OPEN)
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
    size_t open = 0;
    for (size_t i = 0; i < g->st.n_proposals; i++)
        open += gov_state_at(&g->st.proposals[i], time_now_unix_ms()) == GOV_OPEN;
    log_info("roster: %zu member(s), roster quorum %.2f, %zu open proposal(s)%s",
             g->st.n_members, g->st.charter.roster_quorum, open,
             size ? " (rebuilt from the ledger)" : "");
    return 0;
}

int governance_settle_motions(struct coord *c)
{
    struct governance *g = c->gov;
    const int64_t now = time_now_unix_ms();
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    pthread_rwlock_wrlock(&g->lock);
    for (size_t i = 0; i < g->st.n_proposals && rc == 0; i++) {
        struct gov_proposal *p = &g->st.proposals[i];
        if (p->family != GOV_MOTION || gov_state_at(p, now) != GOV_OPEN)
            continue;
        struct gov_tally t;
        char why[sizeof p->note] = "";
        enum gov_state s = gov_tally(&g->st, p, &t);
        if (s != GOV_OPEN && motion_settle_locked(c, p, s, &t, why, sizeof why) != 0) {
            log_error("motion #%" PRIu64 " is decided by the current roster and charter but "
                      "could not be recorded: %s", p->index, why);
            rc = COORD_ERR_STATE;
        }
    }
    pthread_rwlock_unlock(&g->lock);
    pthread_mutex_unlock(&c->mu);
    return rc;
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
    Aulac__V1__Motion mo;
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
    aulac__v1__proposal_status__init(&v->ps);
    if (v->p.family == GOV_MOTION) {
        motion_to_msg(&v->p.m, v->p.signature, NULL, 0, NULL, &v->mo);
        v->ps.motion = &v->mo;
    } else {
        roster_proposal_to_msg(&v->p.p, v->p.signature, &v->rp, &v->rc);
        v->ps.proposal = &v->rp;
    }
    v->ps.proposal_hash.data = v->p.hash;
    v->ps.proposal_hash.len = 32;
    v->ps.state = (char *)gov_state_name(v->s);
    v->ps.yes = v->t.yes;
    v->ps.no = v->t.no;
    v->ps.needed = v->t.needed;
    v->ps.voters = v->t.voters;
    v->voted = calloc(v->p.n_votes + 2, sizeof *v->voted);
    if (!v->voted)
        return -1;
    v->voted[0] = (char *)gov_proposer(&v->p);
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

/* The reply of a proposal, vote or withdrawal: recorded (with its status), or the
 * refusal, logged. Frees v when ok. */
static void reply_outcome(struct rpc_call *call, int ok, const char *what, const char *member,
                          const char *why, struct prop_view *v, uint64_t index)
{
    if (!ok) {
        log_warn("refused a %s from %s: %s", what, member, why);
        reply_refused(call, why);
    } else {
        reply_with(call, v, index);
        view_free(v);
    }
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
    int ok = roster_proposal_from_msg(q, &p, sig, why, sizeof why) == 0 &&
             propose(c, &p, sig, &v, &index, why, sizeof why) == 0;
    reply_outcome(call, ok, "roster proposal", q->proposer_id, why, &v, index);
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
        snprintf(why, cap, "no proposal %s… is known (aulac member list and aulac experiment "
                 "list show them)", h);
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
    struct decision d = { 0 };
    enum gov_state s;
    const int motion = p->family == GOV_MOTION;
    if (motion) {
        d.s = s = gov_tally(&g->st, p, &t);
        d.t = t;
        if (s != GOV_OPEN && decision_prepare(c, p, &d, why, cap) != 0) {
            p->n_votes--;
            decision_free(&d);
            goto out;
        }
        s = d.s;
    } else {
        s = decide(c, p, &t, note, sizeof note);
    }
    MDB_txn *txn;
    uint64_t idx = 0, out_idx = 0;
    why[0] = 0;
    int st = ledger_txn_begin(c->ledger, &txn) == 0 ? 0 : -1;
    if (st == 0) {
        st = record_vote(c, txn, rv->proposal_hash, rv->voter, rv->approve, sig, &idx);
        if (st == 0 && motion && s != GOV_OPEN)
            st = decision_record(c, txn, p, &d, &out_idx, why, cap);
        else if (st == 0 && s == GOV_APPLIED)
            st = record_outcome(c, txn, p, &out_idx);
        if (st != 0)
            ledger_txn_abort(c->ledger, txn);
        else if (ledger_txn_commit(c->ledger, txn) != 0)
            st = -1;
    }
    if (st != 0) {
        p->n_votes--;   /* not recorded, so not counted */
        if (!why[0])
            snprintf(why, cap, "the coordinator could not record the vote (storage); retry");
        decision_free(&d);
        goto out;
    }
    *index = idx;
    p->votes[p->n_votes - 1].index = idx;
    log_info("governance: %s votes %s on proposal %s… (%u of %u needed, ledger #%" PRIu64 ")",
             rv->voter, rv->approve ? "yes" : "no", h, t.yes, t.needed, idx);
    if (motion) {
        if (s != GOV_OPEN)
            decision_apply(c, p, &d, out_idx);
        decision_free(&d);
    } else if (s == GOV_APPLIED) {
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
    reply_outcome(call, ok, "vote", q->voter_id, why, &v, index);
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

    struct charter charter;
    uint64_t charter_index;
    pthread_rwlock_rdlock(&g->lock);
    snprintf(alliance, sizeof alliance, "%s", g->st.alliance);
    r.quorum = g->st.charter.roster_quorum;
    charter = g->st.charter;
    charter_index = g->charter_index;
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
    char *charter_text = NULL;
    size_t charter_len;
    uint8_t charter_hash_[32];
    if (charter_format(&charter, &charter_text, &charter_len) != 0 ||
        charter_hash(&charter, charter_hash_) != 0)
        oom = 1;
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
        r.charter = charter_text;
        r.charter_hash.data = charter_hash_;
        r.charter_hash.len = 32;
        r.charter_index = charter_index;
        pb_call_finish(call, &r.base);
    }
    free(charter_text);
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

int governance_open_proposals(struct coord *c, int64_t now, struct gov_open_proposal **out,
                               size_t *n)
{
    struct governance *g = c->gov;
    *out = NULL;
    *n = 0;
    int rc = 0;
    pthread_rwlock_rdlock(&g->lock);
    struct gov_open_proposal *list = calloc(g->st.n_proposals + 1, sizeof *list);
    size_t k = 0;
    for (size_t i = 0; list && i < g->st.n_proposals; i++) {
        const struct gov_proposal *p = &g->st.proposals[i];
        if (gov_state_at(p, now) != GOV_OPEN)
            continue;
        struct prop_view v;
        if (view_take(&v, &g->st, p, now) != 0) {
            rc = COORD_ERR_NOMEM;
            break;
        }
        list[k].p = v.p;   /* v.p.votes: moved into the list */
        list[k].t = v.t;
        list[k].s = v.s;
        k++;
    }
    pthread_rwlock_unlock(&g->lock);
    if (!list || rc != 0) {
        governance_open_free(list, k);
        return COORD_ERR_NOMEM;
    }
    *out = list;
    *n = k;
    return 0;
}

void governance_open_free(struct gov_open_proposal *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i].p.votes);
    free(list);
}

/* --- ProposeMotion ------------------------------------------------------------------ */

static int record_motion(struct coord *c, MDB_txn *txn, const struct motion *m,
                         const uint8_t hash[32], const uint8_t sig[64], const uint8_t *doc,
                         size_t doc_len, uint64_t *index)
{
    struct entry e = { .type = entry_motion_type(m->kind) };
    entry_motion_from_motion(&e.u.motion, m, hash, sig, m->kind == MOTION_CANCEL ? NULL : doc,
                             doc_len);
    return record_append(c, txn, &e, index);
}

/* An experiment motion's policy can run here: the evaluation set it pins (when it
 * measures loo or shapley) is in --eval-sets with the pinned hash (credit/evalset.h).
 * 0, or -1 with why (the check's "contribution.evaluation_set: ..." message). */
static int motion_evalset_ok(struct coord *c, const struct motion *m, const uint8_t *doc,
                             size_t doc_len, char *why, size_t cap)
{
    if (m->kind != MOTION_EXPERIMENT || !doc)
        return 0;
    struct policy p;
    struct policy_error err;
    if (policy_load_buffer("policy.yaml", doc, doc_len, &p, &err) != 0)
        return 0;   /* the document checks (motion_from_msg, policy_identify) refuse it */
    int rc = evalset_check_policy(&p.contribution, p.training.seq_len, c->eval_sets_dir, why, cap);
    policy_free(&p);
    if (rc == CREDIT_ERR_NOMEM)
        return why_fail(why, cap, -1, "out of memory");
    return rc == 0 ? 0 : -1;
}

/* Records a motion whose document was checked (charter: what a charter document
 * parses to; policy: the evaluation set it names is held) and, when the proposer's
 * approval alone reaches the quorum, decides it in the same transaction. 0 with *v
 * filled, or -1 with why (nothing written). Takes mu and the write lock. */
static int motion_propose(struct coord *c, const struct motion *m, const uint8_t sig[64],
                          const uint8_t *doc, size_t doc_len, const struct charter *charter,
                          struct prop_view *v, uint64_t *index, char *why, size_t cap)
{
    struct governance *g = c->gov;
    uint8_t hash[32];
    if (motion_hash(m, hash) != 0) {
        motion_check(m, why, cap);
        return -1;
    }
    /* Before any lock: it reads (and hashes) the evaluation set file. */
    if (motion_evalset_ok(c, m, doc, doc_len, why, cap) != 0)
        return -1;
    const int64_t now = time_now_unix_ms();
    int rc = -1;
    struct decision d = { 0 };
    pthread_mutex_lock(&c->mu);
    pthread_rwlock_wrlock(&g->lock);
    if (gov_check_motion(&g->st, m, hash, charter, now, AUTH_SKEW_MS, why, cap) != 0)
        goto out;
    const struct gov_member *pm = gov_member_find(&g->st, m->proposer);
    if (motion_verify(m, pm->public_key, sig) != 0) {
        snprintf(why, cap, "bad signature: the motion does not verify with %s's roster key",
                 m->proposer);
        goto out;
    }
    if (m->kind == MOTION_CANCEL) {
        struct experiment_info e;
        int found;
        if (queue_get(c, m->experiment, &e, &found) != 0) {
            snprintf(why, cap, "the coordinator could not read the queue (storage); retry");
            goto out;
        }
        int ended = found && queue_phase_ended(e.phase);
        if (ended) {
            char mh[17];
            hex_encode(e.final_model_hash, 8, mh);
            static const uint8_t none[32];   /* no final model recorded */
            const int has_model = memcmp(e.final_model_hash, none, 32) != 0;
            snprintf(why, cap, "experiment %s has %s after %" PRIu64 " round(s)%s%s%s; there "
                     "is nothing to cancel (its last model and ledger trail stay)",
                     m->experiment, queue_phase_name(e.phase), e.rounds_done,
                     has_model ? ", last model " : "", has_model ? mh : "",
                     has_model ? "…" : "");
        }
        if (found)
            experiment_info_free(&e);
        if (ended)
            goto out;
    }
    struct gov_proposal tmp = { .family = GOV_MOTION, .m = *m, .state = GOV_OPEN };
    if (charter)
        tmp.charter = *charter;
    memcpy(tmp.hash, hash, 32);
    d.s = gov_tally(&g->st, &tmp, &d.t);
    d.doc = doc;
    d.doc_len = doc_len;
    MDB_txn *txn;
    uint64_t idx = 0, out_idx = 0;
    why[0] = 0;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        snprintf(why, cap, "the coordinator could not record the motion (storage); retry");
        goto out;
    }
    int st = record_motion(c, txn, m, hash, sig, doc, doc_len, &idx);
    tmp.index = idx;
    if (st == 0 && d.s != GOV_OPEN)
        st = decision_prepare(c, &tmp, &d, why, cap) == 0 &&
             decision_record(c, txn, &tmp, &d, &out_idx, why, cap) == 0 ? 0 : -1;
    if (st != 0 || ledger_txn_commit(c->ledger, txn) != 0) {
        if (st != 0)
            ledger_txn_abort(c->ledger, txn);
        if (!why[0])
            snprintf(why, cap, "the coordinator could not record the motion (storage); retry");
        goto out;
    }
    *index = idx;
    if (gov_add_motion(&g->st, m, hash, sig, charter, idx) != 0) {
        log_error("out of memory after recording motion #%" PRIu64 "; restart the "
                  "coordinator to reload it", idx);
        snprintf(why, cap, "recorded at ledger #%" PRIu64 ", but the coordinator ran out of "
                 "memory", idx);
        goto out;
    }
    struct gov_proposal *gp = &g->st.proposals[g->st.n_proposals - 1];
    char h[17];
    hex_encode(hash, 8, h);
    log_info("governance: %s proposes a%s %s motion%s%s (proposal %s…, ledger #%" PRIu64 ")",
             m->proposer, m->kind == MOTION_EXPERIMENT ? "n" : "", motion_kind_name(m->kind),
             m->experiment[0] ? " for " : "", m->experiment, h, idx);
    if (d.s != GOV_OPEN)
        decision_apply(c, gp, &d, out_idx);
    rc = view_take(v, &g->st, gp, now) == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(why, cap, "out of memory");
out:
    pthread_rwlock_unlock(&g->lock);
    pthread_mutex_unlock(&c->mu);
    decision_free(&d);
    return rc;
}

/* A name for messages: printable ASCII, at most 128 bytes; otherwise fallback. */
static const char *document_name(const char *name, const char *fallback)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 128)
        return fallback;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x20 || name[i] > 0x7e)
            return fallback;
    return name;
}

/* A document that fails its schema: why is its error, or "3 errors in NAME; the first:
 * ..." when it has several (all of them are in errors). Returns -1. */
static int document_refused(char *why, size_t cap, const char *name,
                            const struct policy_errors *errors)
{
    if (errors->total == 1)
        return why_fail(why, cap, -1, "%s", errors->item[0].message);
    return why_fail(why, cap, -1, "%zu errors in %s; the first: %s", errors->total, name,
                    errors->item[0].message);
}

/* The motion a message carries, with its document checked as `aulac policy check` /
 * a charter file would be. 0, or -1 with why (and *errors, cleared first: every error of
 * the document as FILE:line:col: path: message, in file order, when that is what
 * failed). */
static int motion_from_msg(const Aulac__V1__Motion *q, struct motion *m,
                           struct charter *charter, char *why, size_t cap,
                           struct policy_errors *errors)
{
    memset(m, 0, sizeof *m);
    errors->n = errors->total = 0;
    const char *kind = motion_kind_name((int)q->kind);
    if (!kind || q->kind > 0xff)
        return why_fail(why, cap, -1, "unknown motion kind %u (1 experiment, 2 cancel, 3 "
                        "charter)", q->kind);
    m->kind = (uint8_t)q->kind;
    const char *exp = q->experiment_id ? q->experiment_id : "";
    const char *reason = q->reason ? q->reason : "";
    const char *alliance = q->alliance ? q->alliance : "";
    if (strlen(exp) > CRYPTO_ID_MAX || strlen(reason) > PROPOSAL_REASON_MAX ||
        strlen(alliance) > PROPOSAL_ALLIANCE_MAX)
        return why_fail(why, cap, -1, "malformed motion: the experiment id, reason or alliance "
                        "is over its limit (64, 256, 64 bytes)");
    if (q->signature.len != 64 || (q->content_hash.len != 32 && q->content_hash.len != 0))
        return why_fail(why, cap, -1, "malformed motion: the signature must be 64 bytes and "
                        "the content hash 32 (or empty for a cancel)");
    snprintf(m->alliance, sizeof m->alliance, "%s", alliance);
    snprintf(m->proposer, sizeof m->proposer, "%s", q->proposer_id);   /* auth checked it */
    snprintf(m->experiment, sizeof m->experiment, "%s", exp);
    snprintf(m->reason, sizeof m->reason, "%s", reason);
    m->created_unix_ms = q->created_ms;
    m->expires_unix_ms = q->expires_ms;
    if (q->content_hash.len == 32)
        memcpy(m->content_hash, q->content_hash.data, 32);
    const uint8_t *doc = q->document.data;
    size_t len = q->document.len;
    if (m->kind == MOTION_CANCEL) {
        if (len)
            return why_fail(why, cap, -1, "a cancel motion carries no document");
        return 0;
    }
    const char *name = document_name(q->document_name, m->kind == MOTION_EXPERIMENT
                                                           ? "policy.yaml" : "charter.yaml");
    if (len == 0)
        return why_fail(why, cap, -1, "%s: the %s motion carries no document", name, kind);
    struct policy_error err = { .code = POLICY_ERR_TOO_LARGE };
    if (len > POLICY_FILE_MAX) {
        snprintf(err.message, sizeof err.message, "%s: is %zu bytes, over the 1 MiB limit for "
                 "%s files", name, len, m->kind == MOTION_EXPERIMENT ? "policy" : "charter");
        policy_errors_add(errors, &err);
        return document_refused(why, cap, name, errors);
    }
    crypto_blake2b256(doc, len, m->document_digest);
    uint8_t content[32];
    if (m->kind == MOTION_CHARTER) {
        if (charter_load_buffer(name, doc, len, charter, &err) != 0) {
            policy_errors_add(errors, &err);
            return document_refused(why, cap, name, errors);
        }
        if (charter_hash(charter, content) != 0)
            return why_fail(why, cap, -1, "out of memory");
        if (!crypto_equal(content, m->content_hash, 32))
            return why_fail(why, cap, -1, "%s: the motion's content hash is not this charter's "
                            "hash", name);
        return 0;
    }
    char id[POLICY_EXPERIMENT_ID_MAX + 1];
    if (policy_identify_all(name, doc, len, content, id, sizeof id, errors) != 0)
        return document_refused(why, cap, name, errors);
    if (!crypto_equal(content, m->content_hash, 32))
        return why_fail(why, cap, -1, "%s: the motion's content hash is not this policy's hash "
                        "(aulac policy check prints it)", name);
    if (strcmp(id, m->experiment) != 0)
        return why_fail(why, cap, -1, "%s: this policy runs as experiment %s, not %s", name,
                        id, m->experiment);
    return 0;
}

void governance_on_propose_motion(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__motion__descriptor, &in, NULL) != 0)
        return;
    const Aulac__V1__Motion *q = (const Aulac__V1__Motion *)in;
    struct motion m;
    struct charter charter;
    char why[1024];
    struct prop_view v;
    uint64_t index = 0;
    struct policy_errors *errors = calloc(1, sizeof *errors);   /* 45 KiB: off the stack */
    if (!errors) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
    } else if (motion_from_msg(q, &m, &charter, why, sizeof why, errors) != 0 ||
               motion_propose(c, &m, q->signature.data, q->document.data, q->document.len,
                              m.kind == MOTION_CHARTER ? &charter : NULL, &v, &index, why,
                              sizeof why) != 0) {
        log_warn("refused a motion from %s: %s", q->proposer_id, why);
        Aulac__V1__GovernanceReply r = AULAC__V1__GOVERNANCE_REPLY__INIT;
        char *lines[POLICY_ERRORS_MAX + 1], more[64];
        for (size_t i = 0; i < errors->n; i++)
            lines[i] = errors->item[i].message;
        r.reason = why;
        r.errors = lines;
        r.n_errors = errors->n;
        if (policy_errors_more(errors, more, sizeof more))
            lines[r.n_errors++] = more;
        pb_call_finish(call, &r.base);
    } else {
        reply_outcome(call, 1, "motion", q->proposer_id, "", &v, index);
    }
    free(errors);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- Withdraw -------------------------------------------------------------------- */

static int withdraw(struct coord *c, const struct withdrawal *w, const uint8_t sig[64],
                    struct prop_view *v, uint64_t *index, char *why, size_t cap)
{
    struct governance *g = c->gov;
    const int64_t now = time_now_unix_ms();
    int rc = -1;
    char h[17];
    hex_encode(w->proposal_hash, 8, h);
    struct decision d = { .s = GOV_WITHDRAWN };
    pthread_mutex_lock(&c->mu);
    pthread_rwlock_wrlock(&g->lock);
    struct gov_proposal *p = gov_proposal_find(&g->st, w->proposal_hash);
    if (!p) {
        snprintf(why, cap, "no proposal %s… is known (aulac experiment list shows them)", h);
        goto out;
    }
    if (gov_check_withdraw(&g->st, p, w->member, now, why, cap) != 0)
        goto out;
    const struct gov_member *pm = gov_member_find(&g->st, w->member);
    if (!pm || withdrawal_verify(w, pm->public_key, sig) != 0) {
        snprintf(why, cap, "bad signature: the withdrawal does not verify with %s's roster key",
                 w->member);
        goto out;
    }
    if (p->state == GOV_APPLIED) {   /* an approved experiment: only while it waits */
        struct experiment_info e;
        int found;
        if (queue_get(c, p->m.experiment, &e, &found) != 0) {
            snprintf(why, cap, "the coordinator could not read the queue (storage); retry");
            goto out;
        }
        int phase = found ? e.phase : 0;
        if (found)
            experiment_info_free(&e);
        if (phase != PHASE_QUEUED) {
            snprintf(why, cap, "experiment %s is %s: it can no longer be withdrawn%s",
                     p->m.experiment, phase ? queue_phase_name(phase) : "not queued",
                     phase == PHASE_RUNNING ? "; propose its cancellation (aulac experiment "
                                              "propose-cancel)" : "");
            goto out;
        }
    }
    gov_tally(&g->st, p, &d.t);
    memcpy(d.withdraw_sig, sig, 64);
    if (decision_prepare(c, p, &d, why, cap) != 0)
        goto out;
    MDB_txn *txn;
    uint64_t idx = 0;
    why[0] = 0;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        snprintf(why, cap, "the coordinator could not record the withdrawal (storage); retry");
        goto out;
    }
    if (decision_record(c, txn, p, &d, &idx, why, cap) != 0) {
        ledger_txn_abort(c->ledger, txn);
        goto out;
    }
    if (ledger_txn_commit(c->ledger, txn) != 0) {
        snprintf(why, cap, "the coordinator could not record the withdrawal (storage); retry");
        goto out;
    }
    *index = idx;
    decision_apply(c, p, &d, idx);
    rc = view_take(v, &g->st, p, now) == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(why, cap, "out of memory");
out:
    pthread_rwlock_unlock(&g->lock);
    pthread_mutex_unlock(&c->mu);
    decision_free(&d);
    return rc;
}

void governance_on_withdraw(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__withdraw_request__descriptor, &in, NULL) != 0)
        return;
    const Aulac__V1__WithdrawRequest *q = (const Aulac__V1__WithdrawRequest *)in;
    struct withdrawal w = { 0 };
    char why[400];
    struct prop_view v;
    uint64_t index = 0;
    int ok = 0;
    if (q->proposal_hash.len != 32 || q->signature.len != 64) {
        snprintf(why, sizeof why, "malformed withdrawal: proposal_hash must be 32 bytes and "
                 "the signature 64");
    } else {
        memcpy(w.proposal_hash, q->proposal_hash.data, 32);
        snprintf(w.member, sizeof w.member, "%s", q->member_id);   /* auth checked it */
        ok = withdraw(c, &w, q->signature.data, &v, &index, why, sizeof why) == 0;
    }
    reply_outcome(call, ok, "withdrawal", q->member_id, why, &v, index);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- ListExperiments --------------------------------------------------------------- */

/* The state a member reads: the motion's while it is undecided or did not pass, the
 * queue's once approved. */
static const char *experiment_state(const struct prop_view *v, const struct experiment_info *e)
{
    if (v->s == GOV_OPEN)
        return "proposed";
    if (v->p.state == GOV_APPLIED)
        return e ? queue_phase_name(e->phase) : "approved";
    return gov_state_name(v->s);
}

void governance_on_list_experiments(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    struct governance *g = c->gov;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__experiments_request__descriptor, &in, NULL) != 0)
        return;
    const Aulac__V1__ExperimentsRequest *q = (const Aulac__V1__ExperimentsRequest *)in;
    const char *only = q->experiment_id && q->experiment_id[0] ? q->experiment_id : NULL;
    const int64_t now = time_now_unix_ms();
    struct prop_view *views = NULL;
    size_t n_views = 0;
    int oom = 0;
    pthread_rwlock_rdlock(&g->lock);
    views = calloc(g->st.n_proposals + 1, sizeof *views);
    for (size_t i = 0; views && i < g->st.n_proposals && !oom; i++) {
        const struct gov_proposal *p = &g->st.proposals[i];
        if (p->family != GOV_MOTION || p->m.kind != MOTION_EXPERIMENT ||
            (only && strcmp(only, p->m.experiment) != 0))
            continue;
        if (view_take(&views[n_views], &g->st, p, now) != 0)
            oom = 1;
        else
            n_views++;
    }
    pthread_rwlock_unlock(&g->lock);
    struct experiment_info *infos = NULL;
    size_t n_infos = 0;
    int qrc = views && !oom ? queue_list(c, &infos, &n_infos) : 0;
    /* A running experiment's record holds its rounds only once it ends: the loaded
     * experiment's model says how many closed so far. */
    char loaded[COORD_EXPERIMENT_MAX + 1] = "";
    uint64_t loaded_rounds = 0;
    pthread_mutex_lock(&c->mu);
    if (c->rnd.base) {
        snprintf(loaded, sizeof loaded, "%s", c->experiment);
        loaded_rounds = c->rnd.base->round;
    }
    pthread_mutex_unlock(&c->mu);
    Aulac__V1__ExperimentStatus *rows = calloc(n_views + 1, sizeof *rows);
    Aulac__V1__ExperimentStatus **ptrs = calloc(n_views + 1, sizeof *ptrs);
    char ***voted = calloc(n_views + 1, sizeof *voted);
    if (!views || oom || !rows || !ptrs || !voted || qrc == COORD_ERR_NOMEM) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
    } else if (qrc != 0) {
        rpc_call_finish(call, GRPC_STATUS_INTERNAL, "the experiment queue could not be read",
                        NULL, 0);
    } else {
        Aulac__V1__ExperimentsReply r = AULAC__V1__EXPERIMENTS_REPLY__INIT;
        size_t k = 0;
        for (size_t i = 0; i < n_views; i++) {
            struct prop_view *v = &views[i];
            const struct experiment_info *e = NULL;
            for (size_t j = 0; j < n_infos; j++)
                if (memcmp(infos[j].proposal_hash, v->p.hash, 32) == 0)
                    e = &infos[j];
            Aulac__V1__ExperimentStatus *x = &rows[k];
            aulac__v1__experiment_status__init(x);
            x->experiment_id = v->p.m.experiment;
            x->proposal_hash.data = v->p.hash;
            x->proposal_hash.len = 32;
            x->proposer_id = v->p.m.proposer;
            x->state = (char *)experiment_state(v, e);
            x->yes = v->t.yes;
            x->no = v->t.no;
            x->needed = v->t.needed;
            x->voters = v->t.voters;
            voted[i] = calloc(v->p.n_votes + 2, sizeof **voted);
            if (voted[i]) {
                voted[i][0] = v->p.m.proposer;
                for (size_t j = 0; j < v->p.n_votes; j++)
                    voted[i][j + 1] = v->p.votes[j].voter;
                x->voted = voted[i];
                x->n_voted = v->p.n_votes + 1;
            }
            if (e) {
                x->rounds_done = e->phase == PHASE_RUNNING && strcmp(e->experiment, loaded) == 0
                                 ? loaded_rounds : e->rounds_done;
                if (queue_phase_ended(e->phase)) {
                    x->final_model_hash.data = (uint8_t *)e->final_model_hash;
                    x->final_model_hash.len = 32;
                }
            }
            x->policy_hash.data = v->p.m.content_hash;
            x->policy_hash.len = 32;
            x->ledger_index = v->p.index;
            x->decided_index = v->p.outcome_index;
            x->reason = v->p.m.reason;
            x->expires_ms = v->p.m.expires_unix_ms;
            x->note = v->p.note;
            ptrs[k++] = x;
        }
        r.experiments = ptrs;
        r.n_experiments = k;
        pb_call_finish(call, &r.base);
    }
    for (size_t i = 0; voted && i < n_views; i++)
        free(voted[i]);
    for (size_t i = 0; views && i < n_views; i++)
        view_free(&views[i]);
    for (size_t i = 0; i < n_infos; i++)
        experiment_info_free(&infos[i]);
    free(infos);
    free(voted);
    free(rows);
    free(ptrs);
    free(views);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- the timer: expiry ---------------------------------------------------------------- */

/* Whether an open motion is past its expiry; read lock only, so that the timer does
 * not hold back request authentication when there is nothing to do. */
static int any_expired(struct governance *g, int64_t now)
{
    int any = 0;
    pthread_rwlock_rdlock(&g->lock);
    for (size_t i = 0; i < g->st.n_proposals && !any; i++)
        any = g->st.proposals[i].family == GOV_MOTION && g->st.proposals[i].state == GOV_OPEN &&
              gov_state_at(&g->st.proposals[i], now) == GOV_EXPIRED;
    pthread_rwlock_unlock(&g->lock);
    return any;
}

void governance_tick(struct coord *c)
{
    struct governance *g = c->gov;
    const int64_t now = time_now_unix_ms();
    if (!any_expired(g, now))
        return;
    pthread_mutex_lock(&c->mu);
    pthread_rwlock_wrlock(&g->lock);
    for (size_t i = 0; i < g->st.n_proposals; i++) {
        struct gov_proposal *p = &g->st.proposals[i];
        if (p->family != GOV_MOTION || gov_state_at(p, now) != GOV_EXPIRED ||
            p->state != GOV_OPEN)
            continue;
        struct gov_tally t;
        char why[200];
        gov_tally(&g->st, p, &t);
        if (motion_settle_locked(c, p, GOV_EXPIRED, &t, why, sizeof why) != 0) {
            log_warn("governance: could not record the expiry of proposal #%" PRIu64 ": %s; "
                     "retrying", p->index, why);
            break;
        }
    }
    pthread_rwlock_unlock(&g->lock);
    pthread_mutex_unlock(&c->mu);
}

/* --- --policy with --operator-key ------------------------------------------------------- */

int governance_propose_operator(struct coord *c, const char *path)
{
    struct policy_error err;
    uint8_t *doc = NULL;
    size_t len = 0;
    struct crypto_key *key = NULL;
    int rc = crypto_key_load(c->opt.operator_key_path, &key);
    if (rc != 0) {
        log_error("cannot load the operator key %s: %s", c->opt.operator_key_path,
                  crypto_strerror(rc));
        return COORD_ERR_CONFIG;
    }
    struct motion m = { .kind = MOTION_EXPERIMENT };
    if (policy_read_file(path, &doc, &len, &err) != 0 ||
        policy_identify(path, doc, len, m.content_hash, m.experiment, sizeof m.experiment,
                        &err) != 0) {
        log_error("%s", err.message);
        free(doc);
        crypto_key_free(key);
        return COORD_ERR_CONFIG;
    }
    uint64_t earlier = 0;
    int known = 0;
    pthread_rwlock_rdlock(&c->gov->lock);
    for (size_t i = 0; rc == 0 && i < c->gov->st.n_proposals; i++) {
        const struct gov_proposal *q = &c->gov->st.proposals[i];
        if (q->family == GOV_MOTION && q->m.kind == MOTION_EXPERIMENT &&
            memcmp(q->m.content_hash, m.content_hash, 32) == 0) {
            known = 1;
            earlier = q->index;
        }
    }
    snprintf(m.alliance, sizeof m.alliance, "%s", c->gov->st.alliance);
    m.created_unix_ms = time_now_unix_ms();
    m.expires_unix_ms = gov_default_expiry_ms(&c->gov->st, m.created_unix_ms);
    pthread_rwlock_unlock(&c->gov->lock);
    if (rc == 0 && known) {
        log_info("--policy %s: experiment %s was already proposed (ledger #%" PRIu64 "); "
                 "nothing filed", path, m.experiment, earlier);
    } else if (rc == 0) {
        snprintf(m.proposer, sizeof m.proposer, "%s", crypto_key_member(key));
        snprintf(m.reason, sizeof m.reason, "filed by the coordinator's operator (--policy %s)",
                 document_name(path, "policy.yaml"));
        crypto_blake2b256(doc, len, m.document_digest);
        uint8_t sig[64];
        struct prop_view v;
        uint64_t index;
        char why[1024];
        if (motion_sign(&m, key, sig) != 0) {
            log_error("cannot sign the operator's proposal with %s", c->opt.operator_key_path);
            rc = COORD_ERR_CONFIG;
        } else if (motion_propose(c, &m, sig, doc, len, NULL, &v, &index, why, sizeof why) != 0) {
            log_error("--policy %s: the proposal signed by %s was refused: %s", path,
                      m.proposer, why);
            rc = COORD_ERR_CONFIG;
        } else {
            char hex[65];
            hex_encode(v.p.hash, 32, hex);
            if (v.s == GOV_OPEN)
                log_info("--policy %s: filed experiment %s as a proposal signed by member %s "
                         "(ledger #%" PRIu64 ", proposal %s, open: %u of %u approvals); "
                         "members vote with aulac vote --proposal %s", path, m.experiment,
                         m.proposer, index, hex, v.t.yes, v.t.needed, hex);
            else
                log_info("--policy %s: filed experiment %s as a proposal signed by member %s "
                         "(ledger #%" PRIu64 ", proposal %s): %s by the charter's quorum "
                         "alone (%u of %u approvals)", path, m.experiment, m.proposer, index,
                         hex, gov_state_name(v.s), v.t.yes, v.t.needed);
            view_free(&v);
        }
    }
    free(doc);
    crypto_key_free(key);
    return rc;
}
