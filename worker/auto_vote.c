#include "worker/auto_vote.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/why.h"
#include "crypto/proposal.h"
#include "ledger/entry.h"
#include "proto/client.h"
#include "proto/ledger_client.h"
#include "proto/roster_msg.h"
#include "worker/worker.h"

/* An open proposal seen in the last listing. */
struct tracked {
    uint8_t hash[32];
    int settled;      /* voted, refused, or left alone: nothing more to do */
    int tries;        /* failed tries to vote on it (auto_vote_settled_after) */
    int seen;         /* in the current listing */
};

struct auto_vote {
    struct worker *w;
    struct fed_client *client;     /* this thread's own: ListProposals, Vote */
    struct fed_ledger *ledger;     /* GetEntries */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* on CLOCK_MONOTONIC; signalled by auto_vote_stop */
    int stop;
    struct tracked *t;
    size_t n, cap;
    int list_failing;              /* a run of failed listings was logged */
};

/* --- the pure parts ------------------------------------------------------------- */

enum auto_vote_action auto_vote_decide(const struct site_policy *site, const char *member,
                                       const struct auto_vote_proposal *p, char *why,
                                       size_t cap)
{
    char scratch[8];
    if (!why || !cap) {
        why = scratch;
        cap = sizeof scratch;
    }
    why[0] = 0;
    if (site->auto_vote != SITE_AUTO_VOTE_APPROVE_IF_ALLOWED) {
        snprintf(why, cap, "governance.auto_vote is %s", site_auto_vote_name(site->auto_vote));
        return AUTO_VOTE_NONE;
    }
    if (strcmp(p->proposer, member) == 0) {
        snprintf(why, cap, "%s proposed it (its approval is counted)", member);
        return AUTO_VOTE_NONE;
    }
    for (size_t i = 0; i < p->n_voted; i++)
        if (strcmp(p->voted[i], member) == 0) {
            snprintf(why, cap, "%s has voted on it", member);
            return AUTO_VOTE_NONE;
        }
    if (p->kind != MOTION_EXPERIMENT) {
        const char *kind = motion_kind_name(p->kind);
        snprintf(why, cap, "governance.auto_vote judges experiment proposals only (their "
                 "policy against this site's); a %s proposal is left to a vote by hand "
                 "(aulac vote)", kind ? kind : "roster");
        return AUTO_VOTE_CANNOT_JUDGE;
    }
    if (!p->policy)
        return AUTO_VOTE_NEEDS_POLICY;
    int rc = site_check(site, p->policy, why, cap);
    if (rc == 0) {
        snprintf(why, cap, "this site allows experiment %s", p->policy->metadata.name);
        return AUTO_VOTE_YES;
    }
    return rc == POLICY_ERR_SITE_REFUSED ? AUTO_VOTE_NO : AUTO_VOTE_NONE;
}

int auto_vote_motion(const Aulac__V1__ProposalsReply *r, const Aulac__V1__ProposalStatus *ps,
                     struct motion *m, char *why, size_t cap)
{
    uint8_t sig[CRYPTO_SIGNATURE_BYTES], hash[32];
    if (!ps->motion)
        return why_fail(why, cap, -1, "it is not a motion");
    if (motion_from_status_msg(ps->motion, m, sig, why, cap) != 0)
        return -1;
    const char *alliance = r->alliance ? r->alliance : "";
    if (strcmp(m->alliance, alliance) != 0)
        return why_fail(why, cap, -1, "it is a motion of alliance '%s', not of '%s'",
                        m->alliance, alliance);
    if (ps->proposal_hash.len != 32 || motion_hash(m, hash) != 0 ||
        !crypto_equal(hash, ps->proposal_hash.data, 32))
        return why_fail(why, cap, -1, "the motion does not hash to its proposal hash");
    const Aulac__V1__RosterMember *pm = NULL;
    for (size_t i = 0; i < r->n_roster && !pm; i++)
        if (r->roster[i]->member_id && strcmp(r->roster[i]->member_id, m->proposer) == 0)
            pm = r->roster[i];
    if (!pm || pm->public_key.len != CRYPTO_PUBLIC_KEY_BYTES)
        return why_fail(why, cap, -1, "its proposer %s is not in the roster", m->proposer);
    if (motion_verify(m, pm->public_key.data, sig) != 0)
        return why_fail(why, cap, -1, "its signature does not verify with %s's roster key",
                        m->proposer);
    return 0;
}

int auto_vote_policy(const struct motion *m, const uint8_t proposal_hash[32],
                     const uint8_t *entry, size_t entry_len, struct policy *out, char *why,
                     size_t cap)
{
    memset(out, 0, sizeof *out);
    struct entry e;
    if (entry_decode(entry, entry_len, &e) != 0)
        return why_fail(why, cap, -1, "its ledger entry does not decode");
    const struct entry_motion *em = &e.u.motion;
    uint8_t digest[32], hash[POLICY_HASH_LEN];
    char id[POLICY_EXPERIMENT_ID_MAX + 1];
    struct policy_error err;
    int rc = -1;
    if (e.type != ENTRY_POLICY_PROPOSED || !crypto_equal(em->proposal_hash, proposal_hash, 32)) {
        why_fail(why, cap, -1, "its ledger entry is not its policy_proposed entry");
    } else if (!em->document || em->document_len == 0) {
        why_fail(why, cap, -1, "its ledger entry holds no policy");
    } else if (crypto_blake2b256(em->document, em->document_len, digest),
               !crypto_equal(digest, m->document_digest, 32)) {
        why_fail(why, cap, -1, "the policy text in its ledger entry does not hash to the "
                 "document digest %s signed", m->proposer);
    } else if (policy_load_buffer("proposed policy", em->document, em->document_len, out,
                                  &err) != 0) {
        why_fail(why, cap, -1, "the proposed policy does not parse: %s", err.message);
    } else if (policy_hash(out, hash) != 0 || !crypto_equal(hash, m->content_hash, 32)) {
        why_fail(why, cap, -1, "the proposed policy does not hash to the policy hash %s signed",
                 m->proposer);
    } else if (policy_experiment_id(out, hash, id, sizeof id) != 0 ||
               strcmp(id, m->experiment) != 0) {
        why_fail(why, cap, -1, "the proposed policy runs as experiment %s, not %s as signed",
                 id, m->experiment);
    } else {
        rc = 0;
    }
    if (rc != 0)
        policy_free(out);
    entry_free(&e);
    return rc;
}

/* --- the thread ------------------------------------------------------------------- */

static int stopping(struct auto_vote *a)
{
    pthread_mutex_lock(&a->mu);
    int s = a->stop;
    pthread_mutex_unlock(&a->mu);
    return s;
}

static struct tracked *track(struct auto_vote *a, const uint8_t hash[32])
{
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(a->t[i].hash, hash, 32) == 0)
            return &a->t[i];
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        struct tracked *t = realloc(a->t, cap * sizeof *t);
        if (!t)
            return NULL;
        a->t = t;
        a->cap = cap;
    }
    struct tracked *t = &a->t[a->n++];
    memset(t, 0, sizeof *t);
    memcpy(t->hash, hash, 32);
    return t;
}

/* Keeps only the proposals of the last listing (the others closed). */
static void forget_closed(struct auto_vote *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->t[i].seen)
            a->t[k++] = a->t[i];
    a->n = k;
}

int auto_vote_settled_after(enum auto_vote_try outcome, int *failures)
{
    if (outcome != AUTO_VOTE_FAILED)
        return 1;
    return ++*failures >= AUTO_VOTE_MAX_TRIES;
}

static void failed_try(struct tracked *t, const char *what, const char *hx, const char *why)
{
    t->settled = auto_vote_settled_after(AUTO_VOTE_FAILED, &t->tries);
    if (!t->settled)
        log_warn("auto_vote: %s %s… (%s); trying again (%d of %d)", what, hx, why, t->tries,
                 AUTO_VOTE_MAX_TRIES);
    else
        log_warn("auto_vote: %s %s… (%s); giving up after %d tries: vote by hand with aulac "
                 "vote", what, hx, why, t->tries);
}

static void send_vote(struct auto_vote *a, struct tracked *t, const struct motion *m,
                      const char *hx, int approve, const char *reason)
{
    const char *member = a->w->opt.member;
    struct roster_vote v = { 0 };
    memcpy(v.proposal_hash, t->hash, 32);
    snprintf(v.voter, sizeof v.voter, "%s", member);
    v.approve = (uint8_t)approve;
    uint8_t sig[CRYPTO_SIGNATURE_BYTES];
    int rc = vote_sign(&v, a->w->key, sig);
    if (rc != 0) {
        log_error("auto_vote: cannot sign a vote on proposal %s…: %s", hx, crypto_strerror(rc));
        t->settled = 1;
        return;
    }
    Aulac__V1__VoteRequest q = AULAC__V1__VOTE_REQUEST__INIT;
    q.proposal_hash.data = t->hash;
    q.proposal_hash.len = 32;
    q.voter_id = (char *)member;
    q.approve = approve;
    q.signature.data = sig;
    q.signature.len = sizeof sig;
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st = { 0 };
    if ((rc = fed_vote(a->client, &q, &r, &st)) != 0) {
        failed_try(t, "cannot send the vote on proposal", hx,
                   st.details[0] ? st.details : rpc_strerror(rc));
        return;
    }
    if (r->accepted)
        log_info("auto_vote: voted %s for %s on experiment %s (proposal %s…, proposed by %s), "
                 "recorded in the ledger at #%" PRIu64 ": %s%s", approve ? "yes" : "no", member,
                 m->experiment, hx, m->proposer, r->ledger_index,
                 approve ? "" : "this site refuses it: ", reason);
    else
        log_warn("auto_vote: the coordinator refused %s's %s vote on experiment %s (proposal "
                 "%s…): %s; not sending it again", member, approve ? "yes" : "no",
                 m->experiment, hx, r->reason ? r->reason : "");
    t->settled = auto_vote_settled_after(r->accepted ? AUTO_VOTE_RECORDED : AUTO_VOTE_REFUSED,
                                         &t->tries);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
}

/* Decides about one open proposal and votes when the decision is yes or no. */
static void consider(struct auto_vote *a, const Aulac__V1__ProposalsReply *r,
                     const Aulac__V1__ProposalStatus *ps, struct tracked *t)
{
    const struct worker *w = a->w;
    char why[768], hx[17];
    hex_encode(t->hash, 8, hx);
    const char *proposer = ps->motion ? ps->motion->proposer_id : ps->proposal->proposer_id;
    struct auto_vote_proposal p = {
        .kind = ps->motion ? (int)ps->motion->kind : 0,
        .proposer = proposer ? proposer : "",
        .voted = ps->voted,
        .n_voted = ps->n_voted,
    };
    enum auto_vote_action act = auto_vote_decide(&w->site, w->opt.member, &p, why, sizeof why);
    if (act == AUTO_VOTE_NONE) {
        log_debug("auto_vote: nothing to do on proposal %s…: %s", hx, why);
        t->settled = 1;
        return;
    }
    if (act == AUTO_VOTE_CANNOT_JUDGE) {
        log_info("auto_vote: leaves proposal %s… by %s alone: %s", hx, p.proposer, why);
        t->settled = 1;
        return;
    }
    struct motion m;
    if (auto_vote_motion(r, ps, &m, why, sizeof why) != 0) {
        log_warn("auto_vote: will not vote on proposal %s…: %s", hx, why);
        t->settled = 1;
        return;
    }
    Aulac__V1__EntriesPage *page = NULL;
    struct rpc_status st = { 0 };
    int rc = fed_get_entries(a->ledger, ps->ledger_index, 1, &page, &st);
    if (rc != 0 || page->n_entries != 1) {
        snprintf(why, sizeof why, "ledger entry #%" PRIu64 ": %s", ps->ledger_index,
                 rc ? (st.details[0] ? st.details : rpc_strerror(rc)) : "not returned");
        if (page)
            aulac__v1__entries_page__free_unpacked(page, NULL);
        failed_try(t, "cannot read the policy of proposal", hx, why);
        return;
    }
    struct policy pol;
    rc = auto_vote_policy(&m, t->hash, page->entries[0]->data.data, page->entries[0]->data.len,
                          &pol, why, sizeof why);
    aulac__v1__entries_page__free_unpacked(page, NULL);
    if (rc != 0) {
        log_warn("auto_vote: will not vote on experiment %s (proposal %s…): %s", m.experiment,
                 hx, why);
        t->settled = 1;
        return;
    }
    p.policy = &pol;
    act = auto_vote_decide(&w->site, w->opt.member, &p, why, sizeof why);
    if (act == AUTO_VOTE_YES || act == AUTO_VOTE_NO)
        send_vote(a, t, &m, hx, act == AUTO_VOTE_YES, why);
    else
        t->settled = 1;
    policy_free(&pol);
}

/* One listing of the open proposals, and a vote on each that needs one. Returns the
 * number still pending (open, not settled). */
static size_t poll_once(struct auto_vote *a)
{
    Aulac__V1__ProposalsRequest q = AULAC__V1__PROPOSALS_REQUEST__INIT;
    q.member_id = (char *)a->w->opt.member;
    Aulac__V1__ProposalsReply *r = NULL;
    struct rpc_status st = { 0 };
    int rc = fed_list_proposals(a->client, &q, &r, &st);
    if (rc != 0) {
        if (!a->list_failing)
            log_warn("auto_vote: cannot list the open proposals (%s); trying again",
                     st.details[0] ? st.details : rpc_strerror(rc));
        a->list_failing = 1;
        return 0;
    }
    if (a->list_failing)
        log_info("auto_vote: listing the open proposals again");
    a->list_failing = 0;
    for (size_t i = 0; i < a->n; i++)
        a->t[i].seen = 0;
    size_t pending = 0, open = 0;
    for (size_t i = 0; i < r->n_proposals && !stopping(a); i++) {
        const Aulac__V1__ProposalStatus *ps = r->proposals[i];
        if ((!ps->motion && !ps->proposal) || !ps->state || strcmp(ps->state, "open") != 0 ||
            ps->proposal_hash.len != 32)
            continue;
        struct tracked *t = track(a, ps->proposal_hash.data);
        if (!t) {
            log_error("auto_vote: out of memory");
            break;
        }
        t->seen = 1;
        open++;
        if (!t->settled)
            consider(a, r, ps, t);
        pending += !t->settled;
    }
    aulac__v1__proposals_reply__free_unpacked(r, NULL);
    forget_closed(a);
    log_debug("auto_vote: listed %zu open proposal(s), %zu still to vote on", open, pending);
    return pending;
}

static void *auto_vote_main(void *arg)
{
    struct auto_vote *a = arg;
    while (!stopping(a)) {
        size_t pending = poll_once(a);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ms = pending ? AUTO_VOTE_POLL_OPEN_MS : AUTO_VOTE_POLL_IDLE_MS;
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_mutex_lock(&a->mu);
        while (!a->stop && pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT) {
        }
        pthread_mutex_unlock(&a->mu);
    }
    return NULL;
}

static void auto_vote_free(struct auto_vote *a)
{
    fed_ledger_close(a->ledger);
    fed_client_close(a->client);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->t);
    free(a);
}

int auto_vote_start(struct worker *w)
{
    if (w->site.auto_vote != SITE_AUTO_VOTE_APPROVE_IF_ALLOWED || w->auto_vote)
        return 0;
    struct auto_vote *a = calloc(1, sizeof *a);
    if (!a) {
        log_error("auto_vote: out of memory");
        return WORKER_EXIT_ERROR;
    }
    a->w = w;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    struct fed_client_options co = { 0 };
    worker_channel_options(&w->opt, &co.channel);
    co.call_timeout_ms = AUTO_VOTE_CALL_MS;
    co.identity = w->key;   /* ListProposals and Vote are signed requests */
    int rc = fed_client_open(w->opt.coordinator, &co, &a->client);
    if (rc == 0)
        rc = fed_ledger_open(w->opt.coordinator, &co.channel, AUTO_VOTE_CALL_MS, 0, &a->ledger);
    if (rc != 0) {
        log_error("auto_vote: cannot open a channel to %s: %s", w->opt.coordinator,
                  rpc_strerror(rc));
        auto_vote_free(a);
        return WORKER_EXIT_ERROR;
    }
    if ((rc = pthread_create(&a->thread, NULL, auto_vote_main, a)) != 0) {
        log_error("auto_vote: cannot start its thread: %s", strerror(rc));
        auto_vote_free(a);
        return WORKER_EXIT_ERROR;
    }
    a->started = 1;
    w->auto_vote = a;
    log_info("auto_vote: votes for %s on experiment proposals (governance.auto_vote: "
             "approve-if-allowed in %s): yes when this site allows the proposed policy, no "
             "otherwise", w->opt.member, w->opt.site_path ? w->opt.site_path : "the site");
    return 0;
}

void auto_vote_stop(struct worker *w)
{
    struct auto_vote *a = w->auto_vote;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->started)
        pthread_join(a->thread, NULL);
    auto_vote_free(a);
    w->auto_vote = NULL;
}
