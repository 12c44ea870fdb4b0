/* The worker's checks of the coordinator's ledger: signed checkpoints, consistency
 * between every two it sees, and the inclusion of its own updates. */
#include "worker/ledger_watch.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "ledger/checkpoint.h"
#include "ledger/entry.h"
#include "proto/ledger_client.h"
#include "worker/witness.h"

struct ledger_watch {
    struct fed_ledger *client;
    struct checkpoint_key key;     /* the coordinator's, under "aulac/<alliance>" */
    char path[PATH_MAX];           /* state_dir/ledger-checkpoint */
    const char *coordinator;       /* its address, for the advice in messages */
    int have_seen;
    struct checkpoint seen;        /* the last checkpoint verified */
    int failed;
    int warned_no_checkpoint;
    struct member_witness *wit;    /* worker/witness.h */
    int await_witnesses;           /* first contact: wait for witnesses at the next refresh */
};

int ledger_watch_failed(const struct worker *w)
{
    return w->ledger_watch && w->ledger_watch->failed;
}

static void fatal(struct ledger_watch *lw, const char *what)
{
    log_error("%s", what);
    log_error("stopping: this member no longer works for a coordinator whose ledger it cannot "
              "trust. The last checkpoint it verified is kept in %s: show it to the alliance; "
              "`aulac ledger consistency --coordinator %s --checkpoint %s` repeats the check",
              lw->path, lw->coordinator, lw->path);
    lw->failed = 1;
}

static int save_seen(struct ledger_watch *lw, const char *note, size_t len)
{
    int rc = file_write_atomic(lw->path, note, len, 0600);
    if (rc != 0)
        log_warn("cannot write %s: %s", lw->path, strerror(-rc));
    return rc;
}

/* Accepts a verified checkpoint c (note: its signed text) if it extends the last one
 * seen; asks the coordinator for the consistency proof. Returns 0 (accepted or, on a
 * transport failure, left for later) or -1 after fatal(). */
static int advance(struct ledger_watch *lw, const struct checkpoint *c, const char *note,
                   size_t len, const char *source)
{
    char why[512];
    if (lw->have_seen) {
        uint8_t proof[MERKLE_PROOF_MAX][32];
        size_t proof_len = 0;
        if (c->size > lw->seen.size) {
            Aulac__V1__Proof *p = NULL;
            struct rpc_status st;
            int rc = fed_get_consistency_proof(lw->client, lw->seen.size, c->size, &p, proof,
                                               &proof_len, &st);
            if (p)
                aulac__v1__proof__free_unpacked(p, NULL);
            if (rc != 0) {
                if (st.code == GRPC_STATUS_OUT_OF_RANGE) {
                    /* the coordinator signed size c->size but cannot prove it grew from
                     * what we saw: a shorter log behind a longer checkpoint */
                    snprintf(why, sizeof why, "the coordinator's ledger at size %" PRIu64
                             " is not an extension of the one seen at size %" PRIu64
                             ": history was rewritten (%.300s)", c->size, lw->seen.size,
                             st.details);
                    fatal(lw, why);
                    return -1;
                }
                log_warn("cannot check the coordinator's checkpoint of size %" PRIu64
                         " (%s) yet: %s", c->size, source, st.details);
                return 0;
            }
        }
        char detail[400];
        int rc = checkpoint_check_extension(&lw->seen, c, (const uint8_t (*)[32])proof,
                                            proof_len, detail, sizeof detail);
        if (rc != 0) {
            /* "the coordinator's ledger at size N is not an extension of ..." */
            snprintf(why, sizeof why, "the coordinator's %s", detail);
            fatal(lw, why);
            return -1;
        }
        if (c->size <= lw->seen.size)
            return 0;
    }
    save_seen(lw, note, len);
    if (lw->have_seen)
        log_debug("ledger checkpoint %" PRIu64 " verified (%s), consistent with the one seen "
                  "at %" PRIu64, c->size, source, lw->seen.size);
    else
        log_info("ledger checkpoint %" PRIu64 " verified (%s)", c->size, source);
    lw->seen = *c;
    lw->have_seen = 1;
    return 0;
}

/* Verifies an untrusted note with the coordinator's key and advances to it. */
static int take_note(struct ledger_watch *lw, const char *note, size_t len, const char *source,
                     struct checkpoint *out)
{
    char why[400], msg[600];
    struct checkpoint c;
    int rc = checkpoint_verify(note, len, &lw->key, &c, why, sizeof why);
    if (rc != 0) {
        snprintf(msg, sizeof msg, "the checkpoint in %s is not a valid checkpoint signed by the "
                 "coordinator's key (%s, key ID %08x): %s", source, lw->key.name,
                 (unsigned)lw->key.id, why);
        fatal(lw, msg);
        return -1;
    }
    if (out)
        *out = c;
    return advance(lw, &c, note, len, source);
}

static void await_witnesses(struct worker *w);

void ledger_watch_refresh(struct worker *w)
{
    struct ledger_watch *lw = w->ledger_watch;
    if (!lw || lw->failed)
        return;
    Aulac__V1__Checkpoint *r = NULL;
    struct rpc_status st;
    int rc = fed_get_checkpoint(lw->client, 0, 0, &r, &st);
    if (rc != 0) {
        if (!lw->warned_no_checkpoint)
            log_warn("cannot fetch the coordinator's ledger checkpoint: %s", st.details);
        lw->warned_no_checkpoint = 1;
        return;
    }
    struct checkpoint c;
    const char *note = r->note ? r->note : "";
    char why[1200];
    /* witness only what was verified as an extension of everything seen: the one seen */
    if (take_note(lw, note, strlen(note), "the coordinator's latest checkpoint", &c) == 0 &&
        lw->wit && lw->have_seen && lw->seen.size == c.size &&
        memcmp(lw->seen.root, c.root, 32) == 0 &&
        member_witness_refresh(lw->wit, &c, note, strlen(note), why, sizeof why) != 0)
        fatal(lw, why);
    aulac__v1__checkpoint__free_unpacked(r, NULL);
    if (lw->await_witnesses && !lw->failed) {
        lw->await_witnesses = 0;
        await_witnesses(w);
    }
}

/* At first contact: the ledger is taken only once other members witnessed it. */
static void await_witnesses(struct worker *w)
{
    struct ledger_watch *lw = w->ledger_watch;
    const int64_t deadline = time_mono_ms() + (int64_t)w->opt.witness_wait_s * 1000;
    char why[700], msg[1000];
    int waited = 0;
    while (!lw->failed && !member_witness_quorum_met(lw->wit, why, sizeof why)) {
        if (worker_stopping())
            return;
        if (time_mono_ms() >= deadline) {
            snprintf(msg, sizeof msg, "the coordinator's ledger (checkpoint of size %" PRIu64
                     ") is not witnessed: this member has no checkpoint of its own to compare "
                     "with, and after %d s %s. A coordinator could be showing it a ledger no "
                     "other member sees; start it while other members are online, or lower "
                     "--witness-quorum", lw->seen.size, w->opt.witness_wait_s, why);
            fatal(lw, msg);
            return;
        }
        if (!waited++)
            log_info("waiting up to %d s for other members to witness the ledger: %s",
                     w->opt.witness_wait_s, why);
        time_sleep_ms(1000);
        ledger_watch_refresh(w);
    }
    if (!lw->failed && waited)
        log_info("the ledger is witnessed by other members");
}

/* The entry must record this member's update, as sent. NULL when it does, else why. */
static const char *entry_mismatch(const struct entry *en, const Aulac__V1__Receipt *r,
                                  const struct update_envelope *e, const uint8_t sig[64])
{
    enum entry_type want = r->accepted ? ENTRY_UPDATE_ACCEPTED : ENTRY_UPDATE_REJECTED;
    if (en->type != want)
        return r->accepted ? "it is not an update_accepted entry"
                           : "it is not an update_rejected entry";
    const struct entry_update *u = &en->u.update;
    if (strcmp(u->member, e->member) != 0)
        return "it names another member";
    if (strcmp(u->experiment, e->experiment) != 0 || u->round != e->round)
        return "it names another experiment or round";
    if (r->accepted &&
        (memcmp(u->payload_hash, e->payload_hash, 32) != 0 ||
         memcmp(u->envelope_signature, sig, 64) != 0 || u->tokens != e->tokens ||
         u->samples != e->samples || u->bytes != e->payload_bytes))
        return "its payload hash, signature or counts differ from the update sent";
    return NULL;
}

void ledger_watch_receipt(struct worker *w, const Aulac__V1__Receipt *r,
                          const struct update_envelope *e, const uint8_t sig[64])
{
    struct ledger_watch *lw = w->ledger_watch;
    if (!lw || lw->failed)
        return;
    char source[96], msg[600];
    snprintf(source, sizeof source, "the receipt for round %" PRIu64, e->round);
    if (!r->checkpoint || !r->checkpoint[0] || r->ledger_entry.len == 0) {
        if (!lw->warned_no_checkpoint)
            log_warn("%s carries no checkpoint and inclusion proof (a coordinator older than "
                     "this worker?); its ledger entry is not checked", source);
        lw->warned_no_checkpoint = 1;
        return;
    }
    struct checkpoint c;
    if (take_note(lw, r->checkpoint, strlen(r->checkpoint), source, &c) != 0)
        return;

    struct entry en;
    int rc = entry_decode(r->ledger_entry.data, r->ledger_entry.len, &en);
    const char *bad = rc != 0 ? ledger_strerror(rc) : entry_mismatch(&en, r, e, sig);
    if (rc == 0)
        entry_free(&en);
    if (bad) {
        snprintf(msg, sizeof msg, "%s: ledger entry %" PRIu64 " does not record this update: %s",
                 source, r->ledger_index, bad);
        fatal(lw, msg);
        return;
    }
    uint8_t leaf[32], proof[MERKLE_PROOF_MAX][32];
    size_t proof_len = 0;
    merkle_leaf_hash(r->ledger_entry.data, r->ledger_entry.len, leaf);
    rc = fed_proof_hashes(r->inclusion_proof, r->n_inclusion_proof, proof, &proof_len);
    if (rc == 0)
        rc = merkle_verify_inclusion(r->ledger_index, c.size, leaf, (const uint8_t (*)[32])proof,
                                     proof_len, c.root);
    if (rc == 0 && r->ledger_size > c.size)
        rc = LEDGER_ERR_RANGE;
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s: the inclusion proof of ledger entry %" PRIu64 " in the "
                 "signed tree of size %" PRIu64 " does not verify (%s): the coordinator cannot "
                 "prove it recorded this update", source, r->ledger_index, c.size,
                 ledger_strerror(rc));
        fatal(lw, msg);
        return;
    }
    log_info("%s: ledger entry %" PRIu64 " is included in the signed tree of size %" PRIu64
             ", consistent with every checkpoint seen before", source, r->ledger_index, c.size);
}

/* The kept checkpoint, checked with the current coordinator key. */
static int load_seen(struct ledger_watch *lw)
{
    uint8_t *buf;
    size_t len;
    int rc = file_read_all(lw->path, CHECKPOINT_NOTE_MAX, &buf, &len);
    if (rc != 0)
        return 0;   /* none yet: the first one seen is trusted on its signature */
    char why[400];
    rc = checkpoint_verify((const char *)buf, len, &lw->key, &lw->seen, why, sizeof why);
    free(buf);
    if (rc != 0) {
        log_error("the last ledger checkpoint this member saw (%s) is not signed by this "
                  "coordinator (%s, key ID %08x): %s", lw->path, lw->key.name,
                  (unsigned)lw->key.id, why);
        log_error("either the coordinator's key or alliance changed, or this is another "
                  "coordinator's ledger. If the alliance started a new ledger on purpose, move "
                  "that file away and start again");
        return WORKER_EXIT_LEDGER;
    }
    lw->have_seen = 1;
    log_info("last ledger checkpoint seen: size %" PRIu64 " (%s)", lw->seen.size, lw->path);
    return 0;
}

int ledger_watch_start(struct worker *w)
{
    struct ledger_watch *lw = calloc(1, sizeof *lw);
    if (!lw)
        return WORKER_EXIT_ERROR;
    w->ledger_watch = lw;
    snprintf(lw->path, sizeof lw->path, "%s/%s", w->opt.state_dir, LEDGER_WATCH_FILE);
    lw->coordinator = w->opt.coordinator;

    Aulac__V1__HelloRequest q = AULAC__V1__HELLO_REQUEST__INIT;
    q.client_version = "aulac-worker 0.1";
    q.member_id = (char *)w->opt.member;
    Aulac__V1__HelloReply *hr = NULL;
    struct rpc_status st;
    if (fed_hello(w->client, &q, &hr, &st) != 0) {
        log_error("cannot ask the coordinator for its alliance: %s", st.details);
        return WORKER_EXIT_ERROR;
    }
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    int rc = checkpoint_origin(hr->alliance ? hr->alliance : "", origin, sizeof origin);
    aulac__v1__hello_reply__free_unpacked(hr, NULL);
    if (rc != 0 || checkpoint_key_init(&lw->key, origin, w->coordinator_key) != 0) {
        log_error("the coordinator's alliance name cannot name a ledger (origin '%s')", origin);
        return WORKER_EXIT_ERROR;
    }
    struct rpc_channel_options ch;
    worker_channel_options(&w->opt, &ch);
    if ((rc = fed_ledger_open(w->opt.coordinator, &ch, 0, 0, &lw->client)) != 0) {
        log_error("cannot open a channel to %s: %s", w->opt.coordinator, rpc_strerror(rc));
        return WORKER_EXIT_ERROR;
    }
    if ((rc = load_seen(lw)) != 0)
        return rc;
    const int first_contact = !lw->have_seen;
    if ((rc = member_witness_open(w, lw->client, &lw->key, &lw->wit)) != 0)
        return rc;
    member_witness_republish(lw->wit);
    ledger_watch_refresh(w);
    /* the wait comes with the first round's check, after the local set-up was checked */
    lw->await_witnesses = first_contact;
    return lw->failed ? WORKER_EXIT_LEDGER : 0;
}

void ledger_watch_stop(struct worker *w)
{
    if (!w->ledger_watch)
        return;
    member_witness_close(w->ledger_watch->wit);
    fed_ledger_close(w->ledger_watch->client);
    free(w->ledger_watch);
    w->ledger_watch = NULL;
}

int ledger_watch_confirm_accepted(struct worker *w, uint64_t index,
                                  const struct update_envelope *e)
{
    if (!w->ledger_watch || !w->ledger_watch->client)
        return 0;
    Aulac__V1__EntriesPage *page = NULL;
    struct rpc_status st;
    if (fed_get_entries(w->ledger_watch->client, index, 1, &page, &st) != 0) {
        log_warn("cannot read ledger entry %" PRIu64 ": %s", index, st.details);
        return 0;
    }
    int ok = 0;
    struct entry en;
    if (page->n_entries == 1 &&
        entry_decode(page->entries[0]->data.data, page->entries[0]->data.len, &en) == 0) {
        const struct entry_update *u = &en.u.update;
        ok = en.type == ENTRY_UPDATE_ACCEPTED && u->round == e->round &&
             strcmp(u->experiment, e->experiment) == 0 && strcmp(u->member, e->member) == 0 &&
             memcmp(u->payload_hash, e->payload_hash, 32) == 0;
        entry_free(&en);
    }
    aulac__v1__entries_page__free_unpacked(page, NULL);
    if (!ok)
        log_warn("ledger entry %" PRIu64 " does not record the acceptance of this update",
                 index);
    return ok;
}
