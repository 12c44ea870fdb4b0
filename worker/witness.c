/* The member as a witness: cross-checks the cosigned checkpoints the coordinator
 * serves, cosigns what it verified, and keeps its latest cosigned checkpoint. */
#include "worker/witness.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "ledger/witness.h"
#include "policies/roster.h"

struct member_witness {
    struct worker *w;
    struct fed_ledger *lc;
    const struct checkpoint_key *log;
    char path[PATH_MAX];                 /* state_dir/ledger-cosigned */
    struct cosigner set[WITNESS_MEMBERS_MAX];
    size_t n_set;
    int have_set;
    char set_from[PATH_MAX + 32];
    uint64_t cosigned_size;              /* the kept cosigned checkpoint */
    int64_t cosigned_at;                 /* its time, Unix seconds */
    struct witness_report last;          /* of the last cross-check */
    int checked;
    uint64_t checked_size;
    int warned_alone;
};

int member_witness_open(struct worker *w, struct fed_ledger *lc,
                        const struct checkpoint_key *log, struct member_witness **out)
{
    struct member_witness *m = calloc(1, sizeof *m);
    if (!m)
        return WORKER_EXIT_ERROR;
    *out = m;
    m->w = w;
    m->lc = lc;
    m->log = log;
    snprintf(m->path, sizeof m->path, "%s/%s", w->opt.state_dir, WITNESS_KEPT_FILE);
    if (!w->opt.witnesses)
        return 0;
    struct roster r;
    struct policy_error err;
    if (roster_load_file(w->opt.witnesses, &r, &err) != 0) {
        log_error("--witnesses: %s", err.message);
        return WORKER_EXIT_ERROR;
    }
    int rc = 0;
    for (size_t i = 0; i < r.n_members && rc == 0; i++) {
        if (m->n_set == WITNESS_MEMBERS_MAX)
            rc = LEDGER_ERR_RANGE;
        else
            rc = cosigner_init(&m->set[m->n_set++], log->name, r.members[i].id,
                               r.members[i].public_key);
    }
    roster_free(&r);
    if (rc != 0) {
        log_error("--witnesses %s: cannot make cosigners of its members (%s; at most %d)",
                  w->opt.witnesses, ledger_strerror(rc), WITNESS_MEMBERS_MAX);
        return WORKER_EXIT_ERROR;
    }
    m->have_set = 1;
    snprintf(m->set_from, sizeof m->set_from, "%s", w->opt.witnesses);
    return 0;
}

void member_witness_close(struct member_witness *m)
{
    free(m);
}

/* The witnesses of the genesis entry, proved included in c. 0, or -1 with why. */
static int load_genesis_set(struct member_witness *m, const struct checkpoint *c, char *why,
                            size_t cap)
{
    Aulac__V1__EntriesPage *page = NULL;
    Aulac__V1__Proof *p = NULL;
    struct rpc_status st;
    uint8_t proof[MERKLE_PROOF_MAX][32], leaf[32];
    size_t proof_len = 0;
    if (c->size == 0)
        return 0;   /* nothing yet: no witnesses to ask */
    if (fed_get_entries(m->lc, 0, 1, &page, &st) != 0) {
        log_warn("cannot read the genesis entry for the witness set yet: %s", st.details);
        return 1;
    }
    int rc = page->n_entries == 1 ? 0 : LEDGER_ERR_NOT_FOUND;
    if (rc == 0 && fed_get_inclusion_proof(m->lc, 0, c->size, &p, proof, &proof_len, &st) != 0) {
        aulac__v1__entries_page__free_unpacked(page, NULL);
        log_warn("cannot prove the genesis entry for the witness set yet: %s", st.details);
        return 1;
    }
    if (p)
        aulac__v1__proof__free_unpacked(p, NULL);
    if (rc == 0) {
        const ProtobufCBinaryData *d = &page->entries[0]->data;
        merkle_leaf_hash(d->data, d->len, leaf);
        rc = merkle_verify_inclusion(0, c->size, leaf, (const uint8_t (*)[32])proof, proof_len,
                                     c->root);
        if (rc == 0)
            rc = witness_set_from_genesis(d->data, d->len, m->log->name, m->set,
                                          WITNESS_MEMBERS_MAX, &m->n_set);
    }
    aulac__v1__entries_page__free_unpacked(page, NULL);
    if (rc != 0) {
        snprintf(why, cap, "the coordinator's ledger entry 0 is not a genesis entry proved "
                 "included in its checkpoint of size %" PRIu64 ": %s", c->size,
                 ledger_strerror(rc));
        return -1;
    }
    m->have_set = 1;
    snprintf(m->set_from, sizeof m->set_from, "the ledger's genesis entry");
    log_info("witnesses: the %zu member(s) of %s", m->n_set, m->set_from);
    return 0;
}

/* Cross-checks what the coordinator serves against c. 0, 1 (not now), -1 (why). */
static int cross_check(struct member_witness *m, const struct checkpoint *c, char *why,
                       size_t cap)
{
    Aulac__V1__CosignaturesReply *r = NULL;
    struct rpc_status st;
    if (fed_get_cosignatures(m->lc, &r, &st) != 0) {
        log_warn("cannot fetch the members' cosigned checkpoints yet: %s", st.details);
        return 1;
    }
    struct witness_view *v = calloc(WITNESS_MEMBERS_MAX, sizeof *v);
    size_t n = 0;
    int rc = v ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->n_cosigned; i++) {
        const char *note = r->cosigned[i]->note ? r->cosigned[i]->note : "";
        char bad[400];
        if (witness_views_from_note(note, strlen(note), m->log, m->set, m->n_set, v,
                                    WITNESS_MEMBERS_MAX, &n, bad, sizeof bad) != 0)
            log_warn("ignoring the cosigned checkpoint the coordinator serves for %.64s: %s",
                     r->cosigned[i]->member_id ? r->cosigned[i]->member_id : "?", bad);
    }
    aulac__v1__cosignatures_reply__free_unpacked(r, NULL);
    if (rc == 0) {
        rc = witness_check(c, v, n, m->w->opt.member, fed_witness_proof, m->lc, &m->last);
        if (rc == LEDGER_ERR_SPLIT_VIEW) {
            snprintf(why, cap, "%s", m->last.why);
            rc = -1;
        } else if (rc != 0) {
            log_warn("%s", m->last.why);
            rc = 1;
        } else {
            m->checked = 1;
            m->checked_size = c->size;
            if (n)
                log_debug("witnesses: %zu cosigned checkpoint(s) consistent with size %" PRIu64
                          "; other members: %s", n, c->size,
                          m->last.others ? m->last.others_list : "none");
        }
    }
    free(v);
    return rc;
}

static void send_note(struct member_witness *m, const char *note, const char *what)
{
    Aulac__V1__CosignatureRequest q = AULAC__V1__COSIGNATURE_REQUEST__INIT;
    q.member_id = (char *)m->w->opt.member;
    q.note = (char *)note;
    Aulac__V1__CosignatureReply *r = NULL;
    struct rpc_status st;
    if (fed_add_cosignature(m->w->client, &q, &r, &st) != 0) {
        log_warn("cannot send %s: %s", what, st.details);
        return;
    }
    if (!r->accepted)
        log_warn("the coordinator did not keep %s: %s", what, r->reason ? r->reason : "");
    else if (!r->consistent)
        log_warn("the coordinator kept %s but says its ledger does not hold that checkpoint",
                 what);
    aulac__v1__cosignature_reply__free_unpacked(r, NULL);
}

/* The kept cosigned checkpoint: its size and time, when it is one by this member. */
static int load_kept(struct member_witness *m, char **note, size_t *len)
{
    uint8_t *buf;
    if (file_read_all(m->path, CHECKPOINT_NOTE_MAX, &buf, len) != 0)
        return -1;
    struct crypto_public_key pub;
    struct cosigner self;
    struct checkpoint c;
    uint64_t t;
    crypto_key_public(m->w->key, &pub);
    if (cosigner_init(&self, m->log->name, m->w->opt.member, pub.key) != 0 ||
        cosignature_verify((const char *)buf, *len, m->log, &self, &c, &t, NULL, 0) != 0) {
        log_warn("%s is not a checkpoint of this coordinator cosigned by this member's key: "
                 "not sent again", m->path);
        free(buf);
        return -1;
    }
    m->cosigned_size = c.size;
    m->cosigned_at = t > INT64_MAX ? INT64_MAX : (int64_t)t;
    *note = (char *)buf;
    return 0;
}

void member_witness_republish(struct member_witness *m)
{
    char *note;
    size_t len;
    if (load_kept(m, &note, &len) != 0)
        return;
    char *z = realloc(note, len + 1);
    if (!z) {
        free(note);
        return;
    }
    z[len] = '\0';
    send_note(m, z, "the checkpoint this member cosigned last");
    free(z);
}

int member_witness_refresh(struct member_witness *m, const struct checkpoint *c,
                           const char *note, size_t len, char *why, size_t cap)
{
    if (!m->have_set) {
        int rc = load_genesis_set(m, c, why, cap);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    int rc = cross_check(m, c, why, cap);
    if (rc < 0)
        return -1;
    const int64_t now = time_now_unix_ms() / 1000;
    if (c->size < m->cosigned_size ||
        (c->size == m->cosigned_size && now - m->cosigned_at < WITNESS_RECOSIGN_S))
        return 0;
    char out[CHECKPOINT_NOTE_MAX + COSIGNATURE_LINE_MAX];
    size_t out_len;
    /* only the coordinator's own signature line is cosigned and sent on */
    char single[CHECKPOINT_NOTE_MAX + 1];
    size_t slen = 0;
    if (cosignature_base_note(note, len, m->log, single, sizeof single, &slen) != 0 ||
        cosignature_add(single, slen, m->log->name, m->w->opt.member, m->w->key, (uint64_t)now, out,
                        sizeof out, &out_len) != 0) {
        log_warn("cannot cosign the checkpoint of size %" PRIu64, c->size);
        return 0;
    }
    if (file_write_atomic(m->path, out, out_len, 0600) != 0)
        log_warn("cannot write %s", m->path);
    m->cosigned_size = c->size;
    m->cosigned_at = now;
    send_note(m, out, "this member's cosignature");
    return 0;
}

int member_witness_quorum_met(struct member_witness *m, char *why, size_t cap)
{
    size_t quorum = (size_t)(m->w->opt.witness_quorum > 0 ? m->w->opt.witness_quorum : 0);
    if (quorum == 0)
        return 1;
    if (!m->have_set) {
        snprintf(why, cap, "the witnesses are not known yet (the ledger's genesis entry could "
                 "not be read)");
        return 0;
    }
    size_t others = 0;
    for (size_t i = 0; i < m->n_set; i++)
        others += strcmp(m->set[i].member, m->w->opt.member) != 0;
    if (others == 0) {
        if (!m->warned_alone)
            log_warn("%s names no other member to witness the ledger: it is taken unwitnessed",
                     m->set_from);
        m->warned_alone = 1;
        return 1;
    }
    if (quorum > others)
        quorum = others;
    if (m->checked && m->last.others >= quorum)
        return 1;
    snprintf(why, cap, "%zu of the %zu other member(s) needed (witnesses from %s) cosigned "
             "checkpoints consistent with it%s%s", m->checked ? m->last.others : 0, quorum,
             m->set_from, m->checked && m->last.others ? ": " : "",
             m->checked && m->last.others ? m->last.others_list : "");
    return 0;
}
