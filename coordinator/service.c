/* The Federation service: one handler per RPC of proto/aulac.proto. Handlers run on
 * their own threads (proto/rpc.h); they translate messages to the experiment's
 * operations and back. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/artifacts.h"
#include "coordinator/auth.h"
#include "coordinator/coord.h"
#include "coordinator/governance.h"
#include "coordinator/queue.h"
#include "coordinator/service_ledger.h"
#include "coordinator/spool.h"
#include "coordinator/status.h"
#include "coordinator/state.h"
#include "coordinator/update.h"
#include "coordinator/witness.h"
#include "crypto/envelope.h"
#include "privacy/rdp.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/rpc.h"
#include "proto/service.h"
#include "proto/service_ledger.h"

#define AULAC_VERSION "aulac 0.1"

/* --- Hello ------------------------------------------------------------------ */

static void on_hello(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__hello_request__descriptor, &in) != 0)
        return;
    protobuf_c_message_free_unpacked(in, NULL);
    Aulac__V1__HelloReply r = AULAC__V1__HELLO_REPLY__INIT;
    r.server_version = AULAC_VERSION;
    r.alliance = c->roster.alliance;
    r.coordinator_public_key.data = c->pub.key;
    r.coordinator_public_key.len = 32;
    r.max_chunk_bytes = FED_MAX_CHUNK_BYTES;
    r.max_message_bytes = FED_DEFAULT_MAX_MESSAGE_BYTES;
    pb_call_finish(call, &r.base);
}

/* --- Join ------------------------------------------------------------------- */

/* Join is authenticated once, as every member RPC is: auth_call_recv checks the request
 * signature with the member's roster key, the clock window and the request nonce (the
 * replay cache of auth.c, kept across restarts), and that the request names its signer.
 * JoinRequest's own timestamp, nonce and signature fields are not read. A member that
 * the experiment's participation.members leaves out is still a member: it learns the
 * experiment and sits it out (GetTask never hands it TRAIN). */
static void on_join(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    char member[CRYPTO_ID_MAX + 1];
    if (auth_call_recv(c, call, &aulac__v1__join_request__descriptor, &in, member) != 0)
        return;
    Aulac__V1__JoinReply r = AULAC__V1__JOIN_REPLY__INIT;
    /* The loaded experiment, copied under mu: the timer may start the next meanwhile.
     * None (idle): accepted with an empty experiment id and no policy. */
    char experiment[COORD_EXPERIMENT_MAX + 1] = "";
    uint8_t policy_hash[32];
    char *yaml = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->experiment[0] && (yaml = strdup((const char *)c->policy_yaml)) != NULL) {
        snprintf(experiment, sizeof experiment, "%s", c->experiment);
        memcpy(policy_hash, c->policy_hash, 32);
        r.current_round = c->rnd.number;
    }
    int no_memory = c->experiment[0] && !yaml;
    pthread_mutex_unlock(&c->mu);
    if (no_memory) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        protobuf_c_message_free_unpacked(in, NULL);
        return;
    }
    r.accepted = 1;
    r.reason = "";
    r.experiment_id = experiment;
    if (yaml) {
        r.policy_hash.data = policy_hash;
        r.policy_hash.len = 32;
        r.policy_yaml = yaml;
    }
    log_info("member %s joined from %s%s%s", member, rpc_call_peer(call),
             experiment[0] ? ": experiment " : " (idle: no experiment yet)", experiment);
    pb_call_finish(call, &r.base);
    free(yaml);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- GetTask (long poll) ---------------------------------------------------- */


/* The buffers a Task reply points into: filled with mu held, packed after. */
struct task_bufs {
    char experiment[COORD_EXPERIMENT_MAX + 1];
    uint8_t hash[32], policy[32], prev[32], sig[64];
    char message[200];
};

/* The downlink update to the current model, when there is one. */
static void fill_downlink_locked(struct coord *c, Aulac__V1__Task *t, struct task_bufs *b)
{
    if (c->rnd.down) {
        memcpy(b->prev, c->rnd.down_from, 32);
        t->prev_model_hash.data = b->prev;
        t->prev_model_hash.len = 32;
        t->downlink_bytes = c->rnd.down->len;
    }
}

static void fill_task_locked(struct coord *c, Aulac__V1__Task *t, struct task_bufs *b)
{
    t->kind = AULAC__V1__TASK__KIND__TRAIN;
    snprintf(b->experiment, sizeof b->experiment, "%s", c->experiment);
    t->experiment_id = b->experiment;
    memcpy(b->policy, c->policy_hash, 32);
    t->policy_hash.data = b->policy;
    t->policy_hash.len = 32;
    t->round = c->rnd.number;
    t->total_rounds = c->total_rounds;
    memcpy(b->hash, c->rnd.base->hash, 32);
    t->base_model_hash.data = b->hash;
    t->base_model_hash.len = 32;
    t->deadline_unix_ms = c->rnd.deadline_ms;
    fill_downlink_locked(c, t, b);
    struct task_announcement a = { 0 };
    snprintf(a.experiment, sizeof a.experiment, "%s", c->experiment);
    memcpy(a.policy_hash, c->policy_hash, 32);
    a.round = c->rnd.number;
    memcpy(a.base_model_hash, b->hash, 32);
    a.deadline_unix_ms = c->rnd.deadline_ms;
    a.total_rounds = c->total_rounds;
    if (envelope_task_sign(&a, c->key, b->sig) == 0) {
        t->signature.data = b->sig;
        t->signature.len = 64;
    }
}

static const char *ended_verb(int phase)
{
    return phase == PHASE_CANCELLED ? "was cancelled" : phase == PHASE_FAILED ? "failed"
                                                                               : "finished";
}

/* FINISHED for the loaded experiment, which has ended: its last model, with the
 * downlink update to it. */
static void fill_finished_loaded_locked(struct coord *c, Aulac__V1__Task *t,
                                        struct task_bufs *b)
{
    const int phase = c->state == EXP_CANCELLED ? PHASE_CANCELLED
                    : c->state == EXP_FAILED ? PHASE_FAILED : PHASE_FINISHED;
    t->kind = AULAC__V1__TASK__KIND__FINISHED;
    snprintf(b->experiment, sizeof b->experiment, "%s", c->experiment);
    t->experiment_id = b->experiment;
    t->round = c->rnd.number;
    t->total_rounds = c->total_rounds;
    memcpy(b->hash, c->rnd.base->hash, 32);
    t->base_model_hash.data = b->hash;   /* the final model */
    t->base_model_hash.len = 32;
    memcpy(b->policy, c->policy_hash, 32);
    t->policy_hash.data = b->policy;
    t->policy_hash.len = 32;
    fill_downlink_locked(c, t, b);
    snprintf(b->message, sizeof b->message, "experiment %s %s after %" PRIu64 " rounds",
             c->experiment, ended_verb(phase), c->rnd.base->round);
}

/* FINISHED for an experiment that ended before the loaded one, from its record. */
static void fill_finished_record(Aulac__V1__Task *t, struct task_bufs *b,
                                 const struct experiment_info *e)
{
    static const uint8_t zero[32];
    t->kind = AULAC__V1__TASK__KIND__FINISHED;
    snprintf(b->experiment, sizeof b->experiment, "%s", e->experiment);
    t->experiment_id = b->experiment;
    t->round = e->rounds_done + 1;
    t->total_rounds = e->rounds_done;
    if (memcmp(e->final_model_hash, zero, 32) != 0) {
        memcpy(b->hash, e->final_model_hash, 32);
        t->base_model_hash.data = b->hash;
        t->base_model_hash.len = 32;
    }
    snprintf(b->message, sizeof b->message, "experiment %s %s after %" PRIu64 " rounds",
             e->experiment, ended_verb(e->phase), e->rounds_done);
}

/* One look at the state for GetTask: 1 when *t is the answer. mu held. */
static int task_answer_locked(struct coord *c, const Aulac__V1__TaskRequest *q,
                              const char *member, Aulac__V1__Task *t, struct task_bufs *b)
{
    const char *want = q->experiment_id ? q->experiment_id : "";
    const int same = want[0] && c->experiment[0] && strcmp(want, c->experiment) == 0;
    if (want[0] && !same) {
        /* The member's experiment is not the loaded one: it ended before (FINISHED), or
         * the member names one that is queued or unknown: treated as asking for any. */
        struct experiment_info e;
        int found = 0;
        if (queue_get(c, want, &e, &found) == 0 && found && queue_phase_ended(e.phase)) {
            fill_finished_record(t, b, &e);
            experiment_info_free(&e);
            return 1;
        }
        experiment_info_free(&e);
    }
    if (same && c->state != EXP_RUNNING && c->state != EXP_IDLE) {
        fill_finished_loaded_locked(c, t, b);
        return 1;
    }
    if (c->state == EXP_RUNNING && !same && !policy_takes_part(&c->policy, member)) {
        /* Not one of its members, and the member does not know it yet: NONE naming it,
         * so that the worker joins, learns it and sits it out (it would wait unaware). */
        t->kind = AULAC__V1__TASK__KIND__NONE;
        snprintf(b->experiment, sizeof b->experiment, "%s", c->experiment);
        t->experiment_id = b->experiment;
        snprintf(b->message, sizeof b->message, "experiment %s runs without member %s "
                 "(participation.members)", c->experiment, member);
        return 1;
    }
    if (c->state != EXP_RUNNING || (same && q->sit_out) ||
        !policy_takes_part(&c->policy, member))
        return 0;   /* idle, sitting this one out, or not one of its members: wait */
    int newer = !same || !q->have_round || c->rnd.number > q->after_round;
    if (newer && !round_member_reported_locked(c, member)) {
        fill_task_locked(c, t, b);
        return 1;
    }
    return 0;
}

static void on_get_task(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    /* authenticated: the member is in the current roster and signed it */
    if (auth_call_recv(c, call, &aulac__v1__task_request__descriptor, &in, NULL) != 0)
        return;
    Aulac__V1__TaskRequest *q = (Aulac__V1__TaskRequest *)in;
    const char *member = q->member_id ? q->member_id : "";
    uint32_t wait_ms = q->wait_ms < FED_MAX_LONG_POLL_MS ? q->wait_ms : FED_MAX_LONG_POLL_MS;
    int64_t until = time_mono_ms() + wait_ms;
    Aulac__V1__Task t = AULAC__V1__TASK__INIT;
    struct task_bufs *b = calloc(1, sizeof *b);
    if (!b) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        protobuf_c_message_free_unpacked(in, NULL);
        return;
    }

    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (task_answer_locked(c, q, member, &t, b))
            break;
        int64_t left = until - time_mono_ms();
        if (left <= 0 || rpc_call_is_cancelled(call) || c->stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t slice = left < 100 ? left : 100;
        ts.tv_nsec += slice * 1000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&c->changed, &c->mu, &ts);
    }
    if (t.kind == AULAC__V1__TASK__KIND__NONE && c->state == EXP_IDLE)
        snprintf(b->message, sizeof b->message, "no experiment is running");
    pthread_mutex_unlock(&c->mu);
    t.message = b->message;
    pb_call_finish(call, &t.base);
    free(b);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- DownloadModel ------------------------------------------------------------ */

/* A download drops the pages it has sent from this process in steps of this many bytes. */
#define DOWNLOAD_DROP_BYTES ((uint64_t)4 << 20)

/* Why a model cannot be downloaded, as the call's status. */
static void refuse_download(struct coord *c, struct rpc_call *call, const uint8_t hash[32],
                            int rc)
{
    char want[65], have[65] = "(none: no experiment is loaded)", msg[400];
    static const uint8_t none[32];
    hex_encode(hash ? hash : none, 32, want);
    pthread_mutex_lock(&c->mu);
    if (c->rnd.base)
        hex_encode(c->rnd.base->hash, 32, have);
    pthread_mutex_unlock(&c->mu);
    switch (rc) {
    case COORD_ERR_NOT_FOUND:
        snprintf(msg, sizeof msg, "model %.16s is not held by this coordinator: it keeps the "
                 "checkpoints of its experiment's rounds (with --keep-checkpoints only the "
                 "current and previous ones); the current model is %.16s", want, have);
        rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, msg, NULL, 0);
        break;
    case COORD_ERR_BUSY:
        snprintf(msg, sizeof msg, "another older model is being downloaded; retry model "
                 "%.16s later (the current model %.16s is always served)", want, have);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL, 0);
        break;
    case COORD_ERR_NOMEM:
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        break;
    default:
        snprintf(msg, sizeof msg, "the checkpoint of model %.16s does not load: %s", want,
                 coord_strerror(rc));
        rpc_call_finish(call, GRPC_STATUS_INTERNAL, msg, NULL, 0);
    }
}

static void on_download(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__model_request__descriptor, &in, NULL) != 0)
        return;
    Aulac__V1__ModelRequest *q = (Aulac__V1__ModelRequest *)in;
    if (q->model_hash.len != 0 && q->model_hash.len != 32) {
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "model_hash must be 32 bytes, or "
                        "empty for the current model", NULL, 0);
        protobuf_c_message_free_unpacked(in, NULL);
        return;
    }
    struct model_snapshot *s;
    int rc = models_acquire(c, q->model_hash.len ? q->model_hash.data : NULL, &s);
    if (rc != 0) {
        refuse_download(c, call, q->model_hash.len ? q->model_hash.data : NULL, rc);
        protobuf_c_message_free_unpacked(in, NULL);
        return;
    }
    /* A replica one round behind the current model gets the compressed round update
     * instead: a reference to it (no copy per download). */
    struct down_payload *down = NULL;
    const uint8_t *update = NULL;
    uint8_t from[32];
    size_t update_len = 0;
    pthread_mutex_lock(&c->mu);
    if (s == c->rnd.base && c->rnd.down && q->from_model_hash.len == 32 &&
        memcmp(q->from_model_hash.data, c->rnd.down_from, 32) == 0) {
        down = c->rnd.down;
        down->refs++;
        update = down->bytes;
        update_len = down->len;
        memcpy(from, c->rnd.down_from, 32);
    }
    pthread_mutex_unlock(&c->mu);
    const uint8_t *bytes = update ? update : (const uint8_t *)s->params;
    const uint64_t total = update ? update_len : (uint64_t)s->n * sizeof(float);
    uint64_t off = q->offset, dropped = off;
    if (off > total) {
        rpc_call_finish(call, GRPC_STATUS_OUT_OF_RANGE, "offset past the end of the model",
                        NULL, 0);
    } else {
        do {
            size_t n = total - off < FED_MAX_CHUNK_BYTES ? (size_t)(total - off) : FED_MAX_CHUNK_BYTES;
            Aulac__V1__ModelChunk ch = AULAC__V1__MODEL_CHUNK__INIT;
            ch.model_hash.data = s->hash;
            ch.model_hash.len = 32;
            ch.total_bytes = total;
            ch.offset = off;
            ch.round = s->round;
            if (update) {
                ch.is_update = 1;
                ch.from_model_hash.data = from;
                ch.from_model_hash.len = 32;
            }
            /* The data field last. A mapped model's pages are lent to gRPC, not copied
             * (their mapping lives until gRPC has written them); the rest is copied once,
             * straight into the message gRPC sends. */
            struct snapshot_pages *lend = update ? NULL : s->pages;
            if (lend)
                snapshot_pages_lend(lend);
            rc = pb_call_send_bulk(call, &ch.base, FED_MODEL_CHUNK_DATA_FIELD, bytes + off, n,
                                   lend ? snapshot_pages_return : NULL, lend);
            off += n;
            /* What was sent leaves this process every DOWNLOAD_DROP_BYTES (one madvise, one
             * TLB flush, per 4 MiB): the kernel has copied most of it into the socket by
             * then, and a page gRPC still reads, or another download or the close needs,
             * comes back from the file. */
            if (off - dropped >= DOWNLOAD_DROP_BYTES || off == total || rc != 0) {
                if (update)
                    down_payload_drop(down, (size_t)dropped, (size_t)off);
                else
                    snapshot_drop(s, (size_t)(dropped / sizeof(float)),
                                  (size_t)((off + sizeof(float) - 1) / sizeof(float) -
                                           dropped / sizeof(float)));
                dropped = off;
            }
        } while (rc == 0 && off < total);
        if (rc == 0)
            rpc_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0);
    }
    pthread_mutex_lock(&c->mu);
    down_payload_release(down);
    snapshot_release(c, s);
    pthread_mutex_unlock(&c->mu);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* --- SubmitUpdate --------------------------------------------------------------- */

static void finish_receipt(struct coord *c, struct rpc_call *call, const struct update_check *u)
{
    Aulac__V1__Receipt r = AULAC__V1__RECEIPT__INIT;
    struct receipt_ledger rl;
    receipt_ledger_fill(c, u, &r, &rl);
    r.accepted = u->accepted;
    r.reason = u->accepted ? "" : (char *)u->reason;
    r.duplicate = u->duplicate;
    r.accepted_index = u->duplicate_of;
    r.ledger_index = u->ledger_index;
    r.ledger_size = u->ledger_size;
    r.ledger_root.data = (uint8_t *)u->ledger_root;
    r.ledger_root.len = 32;
    r.signature.data = (uint8_t *)u->receipt_signature;
    r.signature.len = 64;
    pb_call_finish(call, &r.base);
    receipt_ledger_free(&rl);
}

/* rpc_msg_each's writer of an upload chunk's pieces into the spool file. */
struct spool_piece {
    struct spool *sp;
    int *err;
};

static int spool_piece(void *ctx, const uint8_t *p, size_t n)
{
    struct spool_piece *w = ctx;
    return spool_write(w->sp, p, n, w->err);
}

static void on_submit(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (auth_call_recv(c, call, &aulac__v1__update_chunk__descriptor, &in, NULL) != 0)
        return;
    Aulac__V1__UpdateChunk *first = (Aulac__V1__UpdateChunk *)in;
    struct update_check u;
    if (first->part_case != AULAC__V1__UPDATE_CHUNK__PART_HEADER) {
        protobuf_c_message_free_unpacked(in, NULL);
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
                        "SubmitUpdate: the first message must be the header", NULL, 0);
        return;
    }
    int check = update_check_header(c, first->header, &u);
    protobuf_c_message_free_unpacked(in, NULL);
    if (check != 0) {
        if (update_reject(c, &u) == 0)
            finish_receipt(c, call, &u);
        else
            rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "storage error", NULL, 0);
        return;
    }

    /* Room for it: one upload per member, --max-uploads at once, the disk. */
    int code;
    char why[600];
    if (update_upload_begin(c, &u, &code, why, sizeof why) != 0) {
        rpc_call_finish(call, code, why, NULL, 0);
        return;
    }
    /* The payload streams to a spool file, hashed as it arrives: a chunk in RAM at a time. */
    struct spool *sp;
    if (spool_open(c, &sp) != 0) {
        update_upload_end(c, &u);
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "the coordinator cannot store uploads "
                        "now (its spool directory is unusable; logged); retry later", NULL, 0);
        return;
    }
    const uint64_t want = u.env.payload_bytes;
    uint64_t got = 0;
    int rc, io_errno = 0;
    for (;;) {
        /* Each chunk's data goes from gRPC's buffers to the spool file: no copy. */
        struct rpc_msg *msg;
        size_t off, len;
        rc = pb_call_recv_bulk(call, &aulac__v1__update_chunk__descriptor,
                               FED_UPDATE_CHUNK_DATA_FIELD, &in, &msg, &off, &len);
        if (rc != 0)
            break;
        Aulac__V1__UpdateChunk *ch = (Aulac__V1__UpdateChunk *)in;
        const char *bad = NULL;
        if (ch->part_case == AULAC__V1__UPDATE_CHUNK__PART_HEADER)
            bad = off ? "a chunk with both a header and data" : "a second header in one upload";
        else if (!off)
            bad = "a chunk without the data field";
        else if (len > FED_MAX_CHUNK_BYTES)
            bad = "a chunk larger than 1 MiB";
        else if (len > want - got)
            bad = "more payload bytes than the signed header declares";
        struct spool_piece w = { sp, &io_errno };
        if (!bad && rpc_msg_each(msg, off, len, spool_piece, &w) != 0) {
            protobuf_c_message_free_unpacked(in, NULL);
            rpc_msg_free(msg);
            rc = -2;
            break;
        }
        if (!bad)
            got += len;
        protobuf_c_message_free_unpacked(in, NULL);
        rpc_msg_free(msg);
        if (bad) {
            snprintf(u.reason, sizeof u.reason, "malformed upload stream: %s", bad);
            u.reason_label = "malformed";
            rc = -1;
            break;
        }
    }
    if (rc == RPC_EOS && got < want) {
        snprintf(u.reason, sizeof u.reason, "truncated upload: the stream ended after %" PRIu64
                 " of %" PRIu64 " payload bytes", got, want);
        u.reason_label = "truncated";
        rc = -1;
    }
    /* The outcome is settled before the member hears it: the spool file is gone (or in
     * the store) and the upload's place given back, so that a member told anything may
     * send again at once. */
    int accepted_rc = 0;
    if (rc == RPC_EOS)
        accepted_rc = update_accept(c, &u, sp);
    else if (rc == -1)
        accepted_rc = update_reject(c, &u);
    else if (rc == RPC_ERR_CANCELLED) {
        snprintf(u.reason, sizeof u.reason, "upload cut off after %" PRIu64 " of %" PRIu64
                 " payload bytes (client gone or deadline passed)", got, want);
        u.reason_label = "truncated";
        update_reject(c, &u);
    }
    spool_discard(sp);
    update_upload_end(c, &u);
    if (rc == RPC_EOS) {
        if (accepted_rc == 0)
            finish_receipt(c, call, &u);
        else
            rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, u.reason, NULL, 0);
    } else if (rc == -2) {
        /* Ours (the disk filled meanwhile, typically), not the update's: not recorded. */
        snprintf(why, sizeof why, "the coordinator could not store the upload after %" PRIu64
                 " of %" PRIu64 " payload bytes: %s; retry later", got, want,
                 strerror(io_errno));
        rpc_call_finish(call, io_errno == ENOSPC || io_errno == EDQUOT
                              ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE,
                        why, NULL, 0);
    } else if (rc == -1) {
        if (accepted_rc == 0)
            finish_receipt(c, call, &u);
        else
            rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "storage error", NULL, 0);
    }
    /* PB_ERR_*, RPC_ERR_NOMEM: pb_call_recv_bulk has already finished the call. */
}

/* --- Status ------------------------------------------------------------------------ */

static void on_status(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__status_request__descriptor, &in) != 0)
        return;
    char want[COORD_EXPERIMENT_MAX + 1];
    const char *asked = ((Aulac__V1__StatusRequest *)in)->experiment_id;
    snprintf(want, sizeof want, "%s", asked ? asked : "");
    const int too_long = asked && strlen(asked) > COORD_EXPERIMENT_MAX;
    protobuf_c_message_free_unpacked(in, NULL);
    if (too_long) {
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "experiment_id is longer than 64 "
                        "bytes", NULL, 0);
        return;
    }
    Aulac__V1__StatusReply *r;
    int rc = coord_status_reply(c, want, &r);
    if (rc == COORD_ERR_NOT_FOUND) {
        char msg[160];
        snprintf(msg, sizeof msg, "no experiment '%s' was approved here (aulac experiment "
                 "list shows them)", want);
        rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, msg, NULL, 0);
        return;
    }
    if (rc != 0) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory building the "
                        "status", NULL, 0);
        return;
    }
    pb_call_finish(call, &r->base);
    aulac__v1__status_reply__free_unpacked(r, NULL);
}

static const struct rpc_method methods[] = {
    { FED_METHOD_HELLO, RPC_UNARY, on_hello },
    { FED_METHOD_JOIN, RPC_UNARY, on_join },
    { FED_METHOD_GET_TASK, RPC_UNARY, on_get_task },
    { FED_METHOD_DOWNLOAD_MODEL, RPC_SERVER_STREAM, on_download },
    { FED_METHOD_SUBMIT_UPDATE, RPC_CLIENT_STREAM, on_submit },
    { FED_METHOD_STATUS, RPC_UNARY, on_status },
    { FED_METHOD_GET_CHECKPOINT, RPC_UNARY, service_get_checkpoint },
    { FED_METHOD_GET_CONSISTENCY, RPC_UNARY, service_get_consistency_proof },
    { FED_METHOD_GET_INCLUSION, RPC_UNARY, service_get_inclusion_proof },
    { FED_METHOD_GET_ENTRIES, RPC_UNARY, service_get_entries },
    { FED_METHOD_GET_CHECKPOINTS, RPC_UNARY, service_get_checkpoints },
    { FED_METHOD_ADD_COSIGNATURE, RPC_UNARY, witness_on_add_cosignature },
    { FED_METHOD_GET_COSIGNATURES, RPC_UNARY, witness_on_get_cosignatures },
    { FED_METHOD_PROPOSE_ROSTER, RPC_UNARY, governance_on_propose },
    { FED_METHOD_VOTE, RPC_UNARY, governance_on_vote },
    { FED_METHOD_LIST_PROPOSALS, RPC_UNARY, governance_on_list },
    { FED_METHOD_PROPOSE_MOTION, RPC_UNARY, governance_on_propose_motion },
    { FED_METHOD_WITHDRAW, RPC_UNARY, governance_on_withdraw },
    { FED_METHOD_LIST_EXPERIMENTS, RPC_UNARY, governance_on_list_experiments },
    { FED_METHOD_PUT_ARTIFACT, RPC_CLIENT_STREAM, artifacts_on_put },
    { FED_METHOD_GET_ARTIFACT, RPC_SERVER_STREAM, artifacts_on_get },
};

int service_start(struct coord *c)
{
    struct rpc_server_options o = { 0 };
    o.listen_addr = c->opt.listen_addr;
    o.max_message_bytes = FED_DEFAULT_MAX_MESSAGE_BYTES;
    o.max_concurrent_calls = c->opt.max_calls;
    o.max_unauthenticated_calls = c->opt.max_unauthenticated_calls;
    o.max_calls_per_peer = c->opt.max_calls_per_peer;
    o.first_message_ms = c->opt.first_message_ms;
    o.message_gap_ms = c->opt.message_gap_ms;
    o.memory_quota_bytes = c->opt.memory_quota_bytes;
    o.tls_cert_file = c->opt.tls_cert;
    o.tls_key_file = c->opt.tls_key;
    o.tls_client_ca_file = c->opt.tls_client_ca;
    o.require_client_cert = c->opt.require_client_cert;
    int rc = rpc_server_start(&o, methods, sizeof methods / sizeof methods[0], c, &c->srv,
                              &c->port);
    if (rc != 0) {
        log_error("cannot serve on %s: %s", c->opt.listen_addr, rpc_strerror(rc));
        return COORD_ERR_SERVE;
    }
    return 0;
}
