/* One member update: the header is checked and its signature verified before a byte
 * of payload is read; the payload streams to a spool file (coordinator/spool.h), hashed
 * as it arrives, and its hash is compared with the signed one; the whole payload is
 * validated from the file outside mu (round_validate: it decodes, finite, within the
 * norm bound) without decoding it into any aggregate, then made durable in the payload
 * store. Acceptance (payload row, index, contribution counters, ledger entry) commits in
 * one LMDB transaction after that and before the receipt is sent. Every refusal of the
 * update is answered with its reason and recorded; refusals for the coordinator's own
 * limits (uploads at once, disk space) are call statuses, not recorded. */
#include "coordinator/update.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "aggregate/round.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/governance.h"
#include "coordinator/metrics.h"
#include "coordinator/record.h"
#include "coordinator/spool.h"
#include "coordinator/state.h"
#include "ledger/entry.h"
#include "proto/rpc.h"

static int fail(struct update_check *u, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* u->reason (what the member is told and the ledger records) and its metrics label. */
static int fail(struct update_check *u, const char *label, const char *fmt, ...)
{
    u->reason_label = label;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->reason, sizeof u->reason, fmt, ap);
    va_end(ap);
    return -1;
}

static void copy_id(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int codec_matches(const struct envelope_codec *got, const struct codec_params *want)
{
    return got->format_version == want->format_version && got->block_size == want->block_size &&
           got->k_per_block == want->k_per_block && got->quant == (uint32_t)want->quant;
}

/* Checks against the loaded experiment's policy (after its id matched); mu held. */
static int check_policy_locked(struct coord *c, struct update_check *u)
{
    const struct update_envelope *e = &u->env;
    if (!policy_takes_part(&c->policy, u->member))
        return fail(u, "not_eligible", "member '%s' does not take part in experiment %s (policy "
                    "participation.members)", u->member, c->experiment);
    struct policy_round_plan plan;
    char why[200];
    if (policy_round_plan(&c->policy, e->round, &plan, why, sizeof why) != 0)
        return fail(u, "policy", "%s", why);
    const struct codec_params *want = &plan.uplink;
    if (!codec_matches(&e->codec, want))
        return fail(u, "policy", "codec parameters (block %u, k %u, quant %u) differ from the policy's "
                    "uplink for round %" PRIu64 " (block %u, k %u, quant %u)",
                    e->codec.block_size, e->codec.k_per_block, e->codec.quant, e->round,
                    want->block_size, want->k_per_block, (unsigned)want->quant);
    size_t max_len = codec_max_payload_len(c->n_params, want);
    if (max_len > 0 && e->payload_bytes > max_len)
        return fail(u, "policy", "payload_bytes %" PRIu64 " is more than these codec parameters can "
                    "produce for %zu parameters (%zu)", e->payload_bytes, c->n_params, max_len);
    uint64_t max_samples = (uint64_t)plan.local_steps * plan.batch_size;
    if (e->samples == 0 || e->samples > max_samples || e->tokens == 0 ||
        e->tokens > max_samples * plan.seq_len)
        return fail(u, "policy", "claims %" PRIu64 " samples and %" PRIu64 " tokens; a round of this "
                    "policy trains at most %" PRIu64 " samples of %u tokens (%" PRIu64
                    " tokens: training.local_steps x batch_size x seq_len)", e->samples,
                    e->tokens, max_samples, plan.seq_len, max_samples * plan.seq_len);
    return 0;
}

/* Checks against the open round; mu held. */
static int check_round_locked(struct coord *c, struct update_check *u)
{
    const struct update_envelope *e = &u->env;
    while (c->rnd.closing)   /* the round is being closed outside mu: see what follows it */
        pthread_cond_wait(&c->changed, &c->mu);
    if (c->state == EXP_IDLE)
        return fail(u, "no_experiment", "no experiment is running (the update names '%s')", e->experiment);
    if (c->state != EXP_RUNNING && strcmp(e->experiment, c->experiment) == 0)
        return fail(u, "no_experiment", "experiment %s is not running (it has ended)", c->experiment);
    if (c->state != EXP_RUNNING)
        return fail(u, "no_experiment", "experiment %s is not running (no experiment runs now)", e->experiment);
    if (strcmp(e->experiment, c->experiment) != 0)
        return fail(u, "no_experiment", "unknown experiment '%s' (this coordinator runs '%s')", e->experiment,
                    c->experiment);
    if (check_policy_locked(c, u) != 0)
        return -1;
    if (e->round < c->rnd.number)
        return fail(u, "round", "round %" PRIu64 " is closed; the open round is %" PRIu64
                    ": late updates are not accepted", e->round, c->rnd.number);
    if (e->round > c->rnd.number)
        return fail(u, "round", "round %" PRIu64 " is not open yet; the open round is %" PRIu64,
                    e->round, c->rnd.number);
    if (round_has(&c->rnd, e->member))
        return fail(u, "duplicate", "an update of %s for round %" PRIu64 " was already accepted; "
                    "each member is counted once per round", e->member, e->round);
    if (c->rnd.n_accepted >= COORD_ROUND_MAX_UPDATES)   /* members removed and added mid-round */
        return fail(u, "round", "round %" PRIu64 " already has %d updates, the most one round takes",
                    e->round, COORD_ROUND_MAX_UPDATES);
    if (!crypto_equal(e->base_model_hash, c->rnd.base->hash, 32)) {
        char want[65];
        hex_encode(c->rnd.base->hash, 32, want);
        return fail(u, "base_model", "the update was trained from another model than round %" PRIu64
                    "'s base %.16s; download the base model and train again", c->rnd.number, want);
    }
    return 0;
}

/* The same signed update sent again, typically because its receipt was lost (a cut
 * connection, a coordinator restart between commit and reply): 1 with u->duplicate_of
 * set to the ledger index of the original acceptance. It is refused and recorded like
 * any replay, counted once, and the receipt tells the member where its update stands. */
static int already_accepted(struct coord *c, struct update_check *u)
{
    uint8_t key[LEDGER_UPDATE_KEY_MAX];
    int klen = ledger_update_key(u->env.experiment, u->env.round, u->env.member, key);
    uint64_t index;
    if (klen < 0 || ledger_index_get(c->ledger, NULL, "update", key, (size_t)klen, &index) != 0)
        return 0;
    uint8_t *bytes;
    size_t len;
    if (ledger_get(c->ledger, index, &bytes, &len) != 0)
        return 0;
    struct entry e;
    int same = 0;
    if (entry_decode(bytes, len, &e) == 0) {
        same = e.type == ENTRY_UPDATE_ACCEPTED &&
               crypto_equal(e.u.update.payload_hash, u->env.payload_hash, 32);
        entry_free(&e);
    }
    free(bytes);
    if (same) {
        u->duplicate = 1;
        u->duplicate_of = index;
    }
    return same;
}

int update_check_header(struct coord *c, const Aulac__V1__UpdateHeader *h,
                        struct update_check *u)
{
    memset(u, 0, sizeof *u);
    struct update_envelope *e = &u->env;
    copy_id(u->member, sizeof u->member, h->member_id);
    copy_id(u->experiment, sizeof u->experiment, h->experiment_id);
    u->round = h->round;
    if (!crypto_id_valid(u->member))
        return fail(u, "malformed", "malformed header: member id '%.64s' is not 1..64 of [a-z0-9._-]",
                    h->member_id ? h->member_id : "");
    if (!crypto_id_valid(u->experiment))
        return fail(u, "malformed", "malformed header: experiment id is not 1..64 of [a-z0-9._-]");
    if (h->base_model_hash.len != 32 || h->payload_hash.len != 32)
        return fail(u, "malformed", "malformed header: base_model_hash and payload_hash must be 32 bytes");
    if (h->signature.len != CRYPTO_SIGNATURE_BYTES)
        return fail(u, "malformed", "malformed header: the signature must be 64 bytes, got %zu",
                    h->signature.len);
    if (!h->codec)
        return fail(u, "malformed", "malformed header: codec parameters are missing");
    if (h->payload_bytes == 0 || h->payload_bytes > COORD_MAX_UPLOAD_BYTES)
        return fail(u, "malformed", "payload_bytes %" PRIu64 " is outside 1..%llu", h->payload_bytes,
                    (unsigned long long)COORD_MAX_UPLOAD_BYTES);

    copy_id(e->experiment, sizeof e->experiment, u->experiment);
    copy_id(e->member, sizeof e->member, u->member);
    e->round = h->round;
    memcpy(e->base_model_hash, h->base_model_hash.data, 32);
    memcpy(e->payload_hash, h->payload_hash.data, 32);
    e->payload_bytes = h->payload_bytes;
    e->samples = h->samples;
    e->tokens = h->tokens;
    e->codec.format_version = h->codec->format_version;
    e->codec.block_size = h->codec->block_size;
    e->codec.k_per_block = h->codec->k_per_block;
    e->codec.quant = h->codec->quant;
    e->codec.zstd_level = h->codec->zstd_level;
    e->codec.error_feedback = h->codec->error_feedback ? 1 : 0;
    memcpy(u->signature, h->signature.data, CRYPTO_SIGNATURE_BYTES);
    u->train_loss = h->train_loss;
    u->val_loss = h->val_loss;

    uint8_t member_key[32];
    char why[300];
    if (governance_member_key(c, u->member, member_key, why, sizeof why) != 0)
        return fail(u, "unknown_member", "%s", why);
    u->known_member = 1;
    if (envelope_verify(e, member_key, u->signature) != 0)
        return fail(u, "signature", "bad signature: the update envelope does not verify with %s's roster "
                    "key", u->member);
    if (already_accepted(c, u))
        return fail(u, "duplicate", "this update of %s for round %" PRIu64 " was already accepted (ledger "
                    "#%" PRIu64 "); each member is counted once per round", u->member, u->round,
                    u->duplicate_of);
    pthread_mutex_lock(&c->mu);
    int rc = check_round_locked(c, u);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int receipt_fill(struct coord *c, MDB_txn *txn, struct update_check *u, int accepted,
                        uint64_t index)
{
    u->ledger_index = index;
    if (ledger_size_txn(c->ledger, txn, &u->ledger_size) != 0 ||
        ledger_root_txn(c->ledger, txn, u->ledger_size, u->ledger_root) != 0)
        return COORD_ERR_STATE;
    struct update_receipt r = { 0 };
    snprintf(r.experiment, sizeof r.experiment, "%s",
             crypto_id_valid(u->experiment) ? u->experiment : "invalid-id");
    snprintf(r.member, sizeof r.member, "%s", crypto_id_valid(u->member) ? u->member : "invalid-id");
    r.round = u->round;
    memcpy(r.payload_hash, u->env.payload_hash, 32);
    r.accepted = (uint8_t)accepted;
    r.ledger_index = index;
    r.ledger_size = u->ledger_size;
    memcpy(r.ledger_root, u->ledger_root, 32);
    return envelope_receipt_sign(&r, c->key, u->receipt_signature) == 0 ? 0 : COORD_ERR_STATE;
}

/* The checks of the open round again, with mu held: the member is still in the roster
 * (it may have been removed while its upload streamed in). -1 with u->reason. */
static int recheck_locked(struct coord *c, struct update_check *u)
{
    if (check_round_locked(c, u) != 0)
        return -1;
    if (!coord_member_stats(c, u->member)) {
        fail(u, "removed", "member '%s' was removed from the alliance while its update was uploading",
             u->member);
        u->known_member = 0;
        return -1;
    }
    return 0;
}

int update_accept(struct coord *c, struct update_check *u, struct spool *sp)
{
    const uint64_t got_len = spool_size(sp);
    if (got_len != u->env.payload_bytes) {
        fail(u, "payload", "the payload has %" PRIu64 " bytes but the signed header says %" PRIu64,
             got_len, u->env.payload_bytes);
        return update_reject(c, u);
    }
    const size_t len = (size_t)got_len;
    uint8_t got[32];
    spool_hash(sp, got);
    if (!crypto_equal(got, u->env.payload_hash, 32)) {
        fail(u, "payload", "the payload's hash differs from the signed payload hash: it was altered "
             "after signing or damaged in transit");
        return update_reject(c, u);
    }

    /* The whole payload is checked (it decodes; no NaN/Inf; the norm bound) from its
     * file, outside mu, before anything is recorded; nothing is decoded into an
     * aggregate: the close does that from the store. c->validating keeps the experiment
     * (its policy) loaded meanwhile, and bounds the validations that run at once (each
     * maps a whole payload). */
    pthread_mutex_lock(&c->mu);
    if (recheck_locked(c, u) != 0) {
        pthread_mutex_unlock(&c->mu);
        return update_reject(c, u);
    }
    const size_t n_params = c->n_params, n_eligible = c->n_eligible;
    /* The weight the round close gives it too (aggregate/round.h). */
    double weight = agg_weight(c->policy.aggregation.weighting, u->env.tokens, u->env.samples);
    while (c->validating >= COORD_MAX_VALIDATIONS)
        pthread_cond_wait(&c->changed, &c->mu);
    c->validating++;
    pthread_mutex_unlock(&c->mu);
    char why[300];
    double norm = 0;
    const uint8_t *payload;
    int rc = spool_map(sp, &payload);
    if (rc == 0)
        rc = round_validate(&c->policy, n_params, n_eligible, weight, payload, len, &norm, why,
                            sizeof why);
    spool_unmap(sp);
    pthread_mutex_lock(&c->mu);
    c->validating--;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    if (rc == CODEC_ERR_NOMEM || rc == COORD_ERR_IO || rc == COORD_ERR_NOMEM) {
        /* ours, not the update's: nothing is recorded */
        fail(u, "other", "the coordinator is short of %s to check the update; retry later",
             rc == COORD_ERR_IO ? "file mappings" : "memory");
        return COORD_ERR_NOMEM;
    }
    if (rc != 0) {
        fail(u, "invalid_update", "the update is refused: %s", why);
        return update_reject(c, u);
    }
    if (spool_sync(sp) != 0) {
        fail(u, "other", "the coordinator could not store the update (storage error); retry later");
        return COORD_ERR_IO;
    }

    /* The round may have closed (or the member gone) while it was validated. */
    pthread_mutex_lock(&c->mu);
    if (recheck_locked(c, u) != 0) {
        pthread_mutex_unlock(&c->mu);
        return update_reject(c, u);
    }
    weight = agg_weight(c->policy.aggregation.weighting, u->env.tokens, u->env.samples);
    /* Durable in the payload store before the acceptance that names it commits. */
    if (spool_commit(sp, c, u->env.experiment, got) != 0) {
        pthread_mutex_unlock(&c->mu);
        fail(u, "other", "the coordinator could not store the update (storage error); retry later");
        return COORD_ERR_IO;
    }

    struct round_member rm = { 0 };
    snprintf(rm.id, sizeof rm.id, "%s", u->member);
    rm.tokens = u->env.tokens;
    rm.samples = u->env.samples;
    rm.bytes = len;
    rm.train_loss = u->train_loss;
    rm.val_loss = u->val_loss;
    struct member_stats *ms = coord_member_stats(c, u->member);
    struct member_stats next = *ms;
    next.tokens += rm.tokens;
    next.bytes_sent += len;
    next.has_val_loss = 1;
    next.last_val_loss = u->val_loss;
    next.last_val_round = u->env.round;

    MDB_txn *txn;
    uint64_t index = 0;
    uint8_t key[LEDGER_UPDATE_KEY_MAX];
    int klen = ledger_update_key(u->env.experiment, u->env.round, u->env.member, key);
    rc = ledger_txn_begin(c->ledger, &txn);
    if (rc == 0) {
        rc = record_update_accepted(c, txn, &u->env, u->signature, u->train_loss, u->val_loss,
                                    &index);
        if (rc == 0 && (klen < 0 || ledger_index_put(c->ledger, txn, "update", key,
                                                     (size_t)klen, index) != 0))
            rc = COORD_ERR_STATE;
        if (rc == 0)
            rc = state_put_payload(c, txn, &rm, weight, index, got, len);
        if (rc == 0)
            rc = state_put_member(c, txn, &next);
        if (rc == 0)
            rc = receipt_fill(c, txn, u, 1, index);
        if (rc == 0)
            rc = ledger_txn_commit(c->ledger, txn) == 0 ? 0 : COORD_ERR_STATE;
        else
            ledger_txn_abort(c->ledger, txn);
    }
    if (rc != 0) {
        /* Not durable, so not accepted: nothing in memory changed. */
        pthread_mutex_unlock(&c->mu);
        fail(u, "other", "the coordinator could not record the update (storage error); retry later");
        u->accepted = 0;
        return rc;
    }
    *ms = next;
    (void)round_accept(&c->rnd, &rm, weight);   /* room: check_round_locked */
    u->accepted = 1;
    log_info("round %" PRIu64 ": accepted %s (%" PRIu64 " tokens, %zu bytes, loss %.4f) "
             "%zu/%zu, ledger #%" PRIu64, u->env.round, u->member, rm.tokens, len,
             rm.train_loss, c->rnd.n_accepted, c->n_eligible, index);
    /* The last one in: the timer thread closes the round; the receipt goes out now. */
    round_request_close_locked(c);
    pthread_mutex_unlock(&c->mu);
    metrics_upload(c->metrics, u->member, len, NULL);
    return 0;
}

int update_reject(struct coord *c, struct update_check *u)
{
    u->accepted = 0;
    log_warn("round %" PRIu64 ": rejected update from %s: %s", u->round,
             crypto_id_valid(u->member) ? u->member : "(invalid id)", u->reason);
    const char *label = u->reason_label ? metrics_reason_label(u->reason_label) : "other";
    pthread_mutex_lock(&c->mu);
    /* Counted against a roster member unless the request did not authenticate as it. */
    const int as_member = strcmp(label, "auth") != 0 && crypto_id_valid(u->member) &&
                          coord_member_stats(c, u->member) != NULL;
    metrics_upload(c->metrics, as_member ? u->member : METRICS_MEMBER_UNKNOWN, 0, label);
    MDB_txn *txn;
    uint64_t index = 0;
    int rc = ledger_txn_begin(c->ledger, &txn);
    if (rc == 0) {
        rc = record_update_rejected(c, txn, u->experiment, u->round, u->member, u->reason,
                                    &index);
        struct member_stats *ms = u->known_member ? coord_member_stats(c, u->member) : NULL;
        struct member_stats next;
        if (ms) {
            next = *ms;
            next.rejected++;
            struct member_rejection *j = &next.recent[next.n_recent++ % COORD_RECENT_REJECTIONS];
            j->round = u->round;
            j->at_ms = time_now_unix_ms();
            size_t cut = strlen(u->reason);
            if (cut >= sizeof j->reason)   /* cut to fit, never inside a UTF-8 sequence */
                for (cut = sizeof j->reason - 1;
                     cut > 0 && ((unsigned char)u->reason[cut] & 0xC0) == 0x80; cut--)
                    ;
            memcpy(j->reason, u->reason, cut);
            j->reason[cut] = 0;
            if (rc == 0)
                rc = state_put_member(c, txn, &next);
        }
        if (rc == 0)
            rc = receipt_fill(c, txn, u, 0, index);
        if (rc == 0 && ledger_txn_commit(c->ledger, txn) == 0) {
            if (ms)
                *ms = next;
        } else {
            if (rc != 0)
                ledger_txn_abort(c->ledger, txn);
            rc = COORD_ERR_STATE;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* --- uploads in flight ------------------------------------------------------- */

static ssize_t uploading_find_locked(const struct coord *c, const char *member)
{
    for (size_t i = 0; i < c->n_uploading; i++)
        if (strcmp(c->uploading[i].member, member) == 0)
            return (ssize_t)i;
    return -1;
}

int update_upload_begin(struct coord *c, const struct update_check *u, int *code, char *why,
                        size_t cap)
{
    const uint64_t want = u->env.payload_bytes;
    pthread_mutex_lock(&c->mu);
    if (uploading_find_locked(c, u->member) >= 0) {
        pthread_mutex_unlock(&c->mu);
        *code = GRPC_STATUS_ABORTED;
        snprintf(why, cap, "member %s already has an upload in progress on this coordinator; "
                 "one upload per member at a time: wait for its receipt (or its failure) "
                 "before sending another", u->member);
        return -1;
    }
    if (c->n_uploading >= (size_t)c->opt.max_uploads) {
        pthread_mutex_unlock(&c->mu);
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(why, cap, "the coordinator is receiving %zu uploads, the most it takes at "
                 "once (aulac-coordinator --max-uploads %d); retry later", c->n_uploading,
                 c->opt.max_uploads);
        return -1;
    }
    /* The declared bytes must fit the disk beside what the uploads in flight may still
     * write, keeping free the margin plus what the round's close writes
     * (c->close_reserve_bytes, models_close_write_bytes): uploads never leave the close
     * without room for its checkpoint, outer state and downlink files. */
    struct statvfs vfs;
    if (statvfs(c->opt.data_dir, &vfs) == 0) {
        const uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        const uint64_t margin = c->opt.upload_free_margin_bytes;
        const uint64_t close_b = c->close_reserve_bytes;
        const uint64_t keep = margin > UINT64_MAX - close_b ? UINT64_MAX : margin + close_b;
        const uint64_t need = want + c->upload_reserved_bytes;
        if (avail < keep || need > avail - keep) {
            pthread_mutex_unlock(&c->mu);
            char free_w[32], want_w[32], res_w[32], margin_w[32], close_w[32], keep_w[32];
            file_size_words(avail, free_w, sizeof free_w);
            file_size_words(want, want_w, sizeof want_w);
            file_size_words(need - want, res_w, sizeof res_w);
            file_size_words(margin, margin_w, sizeof margin_w);
            file_size_words(close_b, close_w, sizeof close_w);
            file_size_words(keep, keep_w, sizeof keep_w);
            *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
            snprintf(why, cap, "the coordinator's disk has too little free space for this "
                     "upload: payload_bytes %" PRIu64 " (%s), %s free, %s reserved by the "
                     "uploads in progress, and %s must stay free (%s for the round close's "
                     "files, %s margin: --upload-free-margin); retry later", want, want_w,
                     free_w, res_w, keep_w, close_w, margin_w);
            log_warn("refused an upload of %s for round %" PRIu64 ": %s (data directory %s)",
                     u->member, u->round, why, c->opt.data_dir);
            return -1;
        }
    }
    struct upload_slot *s = &c->uploading[c->n_uploading++];
    snprintf(s->member, sizeof s->member, "%s", u->member);
    s->bytes = want;
    c->upload_reserved_bytes += want;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void update_upload_end(struct coord *c, const struct update_check *u)
{
    pthread_mutex_lock(&c->mu);
    ssize_t i = uploading_find_locked(c, u->member);
    if (i >= 0) {
        c->upload_reserved_bytes -= c->uploading[i].bytes;
        c->uploading[i] = c->uploading[--c->n_uploading];
    }
    pthread_mutex_unlock(&c->mu);
}
