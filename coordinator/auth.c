/* Request authentication for member RPCs (auth.h). The signature is checked
 * against the raw bytes received, before the message is unpacked; the nonce is
 * remembered only after the signature verifies, so unauthenticated traffic
 * cannot fill the replay cache. Each accepted nonce is also committed to LMDB
 * (coord.replay) before the request is acted on, and auth_open() reloads those of
 * the last window, so a restart (or kill -9) does not reopen the window. */
#include "coordinator/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/governance.h"
#include "coordinator/metrics.h"
#include "coordinator/replay.h"
#include "coordinator/state.h"
#include "coordinator/update.h"
#include "crypto/request.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"

_Static_assert(REPLAY_KEY_BYTES == STATE_REPLAY_KEY_BYTES, "one replay key, stored as is");

struct auth {
    pthread_mutex_t mu;               /* guards cache */
    struct replay_cache *cache;
};

struct reload {
    struct replay_cache *cache;
    int64_t now;
    size_t n;
};

/* Rows come oldest first, so a full cache evicts and raises its floor as it did when
 * they were accepted: every stored key is either held again or at or below the floor. */
static void reload_key(int64_t timestamp_ms, const uint8_t *key, void *arg)
{
    struct reload *r = arg;
    (void)replay_check(r->cache, key, timestamp_ms, r->now, AUTH_SKEW_MS);
    r->n++;
}

int auth_open(struct coord *c)
{
    struct auth *a = calloc(1, sizeof *a);
    if (!a)
        return COORD_ERR_NOMEM;
    a->cache = replay_new(AUTH_REPLAY_CAPACITY);
    if (!a->cache) {
        free(a);
        return COORD_ERR_NOMEM;
    }
    pthread_mutex_init(&a->mu, NULL);
    c->auth = a;
    struct reload r = { a->cache, time_now_unix_ms(), 0 };
    int rc = state_replay_each(c, r.now - AUTH_SKEW_MS, reload_key, &r);
    if (rc != 0)
        return rc;
    if (r.n)
        log_info("replay protection: %zu request nonce(s) of the last %d s reloaded",
                 r.n, AUTH_SKEW_MS / 1000);
    return 0;
}

void auth_close(struct coord *c)
{
    struct auth *a = c->auth;
    if (!a)
        return;
    replay_free(a->cache);
    pthread_mutex_destroy(&a->mu);
    free(a);
    c->auth = NULL;
}

struct auth_attempt {
    char member[CRYPTO_ID_MAX + 1];     /* as claimed; valid id or "" */
    char reason[280];   /* fits update_check.reason with its prefix */
    int  not_in_roster; /* the member, or the key it signs with, is not in the roster:
                           refused with PERMISSION_DENIED, which no retry cures */
    int  unavailable;   /* the coordinator failed, not the request: retry */
};

static int refuse(struct auth_attempt *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int refuse(struct auth_attempt *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->reason, sizeof t->reason, fmt, ap);
    va_end(ap);
    return -1;
}

/* A metadata value as a NUL-terminated string of at most cap - 1 bytes. */
static int md_string(struct rpc_call *call, const char *key, char *out, size_t cap)
{
    const uint8_t *v;
    size_t n;
    if (rpc_call_metadata_get(call, key, &v, &n) != 0 || n == 0 || n >= cap ||
        memchr(v, 0, n))
        return -1;
    memcpy(out, v, n);
    out[n] = 0;
    return 0;
}

static int md_bytes(struct rpc_call *call, const char *key, uint8_t *out, size_t want)
{
    const uint8_t *v;
    size_t n;
    if (rpc_call_metadata_get(call, key, &v, &n) != 0 || n != want)
        return -1;
    memcpy(out, v, n);
    return 0;
}

/* Checks the metadata and the signature over body; fills t->member. */
static int check_request(struct coord *c, struct rpc_call *call, const uint8_t *body,
                         size_t len, struct auth_attempt *t)
{
    struct request_statement s = { 0 };
    uint8_t sig[CRYPTO_SIGNATURE_BYTES];
    char ts[24], key_id[CRYPTO_KEY_ID_CHARS + 1] = "";
    if (md_string(call, REQUEST_MD_MEMBER, s.member, sizeof s.member) != 0 ||
        md_bytes(call, REQUEST_MD_SIGNATURE, sig, sizeof sig) != 0)
        return refuse(t, "unsigned request: %s needs the metadata %s, %s, %s and %s (a "
                      "signature by the member's key; crypto/README.md \"Request\")",
                      rpc_call_method(call), REQUEST_MD_MEMBER, REQUEST_MD_TIMESTAMP,
                      REQUEST_MD_NONCE, REQUEST_MD_SIGNATURE);
    if (!crypto_id_valid(s.member))
        return refuse(t, "malformed request metadata: member id is not 1..64 of [a-z0-9._-]");
    memcpy(t->member, s.member, sizeof t->member);
    char *end;
    errno = 0;
    if (md_string(call, REQUEST_MD_TIMESTAMP, ts, sizeof ts) != 0 ||
        (s.timestamp_unix_ms = strtoll(ts, &end, 10), errno != 0 || *end != 0 || end == ts))
        return refuse(t, "malformed request metadata: %s must be Unix milliseconds in decimal",
                      REQUEST_MD_TIMESTAMP);
    if (md_bytes(call, REQUEST_MD_NONCE, s.nonce, sizeof s.nonce) != 0)
        return refuse(t, "malformed request metadata: %s must be %d bytes", REQUEST_MD_NONCE,
                      REQUEST_NONCE_BYTES);
    (void)md_string(call, REQUEST_MD_KEY_ID, key_id, sizeof key_id);

    const int64_t now = time_now_unix_ms();
    if (s.timestamp_unix_ms < now - AUTH_SKEW_MS || s.timestamp_unix_ms > now + AUTH_SKEW_MS)
        return refuse(t, "request timestamp is %+" PRId64 " s from the coordinator's clock "
                      "(allowed: +-%d s); check the member's clock (NTP)",
                      (s.timestamp_unix_ms - now + (s.timestamp_unix_ms > now ? 500 : -500)) /
                          1000, AUTH_SKEW_MS / 1000);

    uint8_t key[32];
    char why[300];
    if (governance_member_key(c, s.member, key, why, sizeof why) != 0) {
        t->not_in_roster = 1;
        return refuse(t, "%s", why);
    }
    snprintf(s.method, sizeof s.method, "%s", rpc_call_method(call));
    request_body_digest(body, len, s.body_digest);
    if (request_verify(&s, key, sig) != 0) {
        t->not_in_roster = governance_explain_bad_key(c, s.member, key_id[0] ? key_id : NULL,
                                                      why, sizeof why);
        return refuse(t, "%s", why);
    }

    /* The nonce is the member's: key it by member so nobody else can burn it. */
    uint8_t k[32];
    struct crypto_digest_state d;
    (void)crypto_digest_init(&d, "aulac/replay-key");
    crypto_digest_update(&d, s.member, strlen(s.member) + 1);
    crypto_digest_update(&d, s.nonce, sizeof s.nonce);
    crypto_digest_final(&d, k);
    pthread_mutex_lock(&c->auth->mu);
    enum replay_result r = replay_check(c->auth->cache, k, s.timestamp_unix_ms, now,
                                        AUTH_SKEW_MS);
    pthread_mutex_unlock(&c->auth->mu);
    if (r == REPLAY_SEEN)
        return refuse(t, "replayed request: this nonce of %s was already used within the "
                      "last %d s", s.member, AUTH_SKEW_MS / 1000);
    if (r == REPLAY_TOO_OLD)
        return refuse(t, "request too old for the coordinator's replay window under the "
                      "current load; retry with a fresh request");
    /* Durable before the request is acted on: a restart reloads it (auth_open). */
    if (state_replay_record(c, k, s.timestamp_unix_ms, now - AUTH_SKEW_MS) != 0) {
        t->unavailable = 1;
        return refuse(t, "the coordinator could not record this request's nonce (storage); "
                      "retry with a fresh request");
    }
    return 0;
}

/* The member a request message speaks for; NULL when it names none. */
static const char *body_member(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &aulac__v1__join_request__descriptor)
        return ((const Aulac__V1__JoinRequest *)m)->member_id;
    if (d == &aulac__v1__task_request__descriptor)
        return ((const Aulac__V1__TaskRequest *)m)->member_id;
    if (d == &aulac__v1__model_request__descriptor)
        return ((const Aulac__V1__ModelRequest *)m)->member_id;
    if (d == &aulac__v1__roster_proposal__descriptor)
        return ((const Aulac__V1__RosterProposal *)m)->proposer_id;
    if (d == &aulac__v1__vote_request__descriptor)
        return ((const Aulac__V1__VoteRequest *)m)->voter_id;
    if (d == &aulac__v1__proposals_request__descriptor)
        return ((const Aulac__V1__ProposalsRequest *)m)->member_id;
    if (d == &aulac__v1__motion__descriptor)
        return ((const Aulac__V1__Motion *)m)->proposer_id;
    if (d == &aulac__v1__withdraw_request__descriptor)
        return ((const Aulac__V1__WithdrawRequest *)m)->member_id;
    if (d == &aulac__v1__experiments_request__descriptor)
        return ((const Aulac__V1__ExperimentsRequest *)m)->member_id;
    if (d == &aulac__v1__artifact_request__descriptor)
        return ((const Aulac__V1__ArtifactRequest *)m)->member_id;
    if (d == &aulac__v1__artifact_chunk__descriptor)   /* PutArtifact's first chunk */
        return ((const Aulac__V1__ArtifactChunk *)m)->member_id;
    if (d == &aulac__v1__update_chunk__descriptor) {
        const Aulac__V1__UpdateChunk *u = (const Aulac__V1__UpdateChunk *)m;
        return u->part_case == AULAC__V1__UPDATE_CHUNK__PART_HEADER && u->header
                   ? u->header->member_id : NULL;
    }
    return NULL;
}

/* A refused upload is a rejected update: the ledger records the attempt. */
static void record_refused_upload(struct coord *c, const ProtobufCMessage *msg,
                                  const struct auth_attempt *t)
{
    struct update_check u;
    memset(&u, 0, sizeof u);
    const Aulac__V1__UpdateHeader *h = NULL;
    if (msg && ((const Aulac__V1__UpdateChunk *)msg)->part_case ==
                   AULAC__V1__UPDATE_CHUNK__PART_HEADER)
        h = ((const Aulac__V1__UpdateChunk *)msg)->header;
    const char *member = h && h->member_id && h->member_id[0] ? h->member_id : t->member;
    snprintf(u.member, sizeof u.member, "%s", member ? member : "");
    if (h && h->experiment_id)
        snprintf(u.experiment, sizeof u.experiment, "%s", h->experiment_id);
    u.round = h ? h->round : 0;
    if (h && h->payload_hash.len == 32)
        memcpy(u.env.payload_hash, h->payload_hash.data, 32);
    snprintf(u.reason, sizeof u.reason, "request authentication failed: %s", t->reason);
    u.reason_label = "auth";
    u.known_member = 0;   /* a forgery must not count against the member it names */
    int64_t now = time_now_unix_ms();
    pthread_mutex_lock(&c->mu);
    if (!(h && h->experiment_id))   /* the loaded one (the timer may change it) */
        snprintf(u.experiment, sizeof u.experiment, "%s", c->experiment);
    if (now - c->refusals_window_ms >= 60000) {
        c->refusals_window_ms = now;
        c->refusals_in_window = 0;
    }
    int record = c->refusals_in_window < COORD_REFUSALS_PER_MINUTE;
    if (record)
        c->refusals_in_window++;
    pthread_mutex_unlock(&c->mu);
    if (!record) {
        log_warn("not recording this refused upload in the ledger: more than %d "
                 "unauthenticated uploads were refused this minute", COORD_REFUSALS_PER_MINUTE);
        return;
    }
    if (update_reject(c, &u) != 0)
        log_error("cannot record the refused upload in the ledger");
}

int auth_call_recv(struct coord *c, struct rpc_call *call,
                   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                   char member[CRYPTO_ID_MAX + 1])
{
    uint8_t *buf;
    size_t len;
    *out = NULL;
    int rc = rpc_call_recv(call, &buf, &len);
    if (rc == RPC_ERR_NOMEM)
        pb_call_finish_unpack_error(call, rc);
    if (rc != 0)
        return rc;
    struct auth_attempt t = { .member = "" };
    int refused = check_request(c, call, buf, len, &t);
    int err = 0;
    ProtobufCMessage *m = pb_unpack(desc, buf, len, SIZE_MAX, &err);
    free(buf);
    if (!m) {
        pb_call_finish_unpack_error(call, err);
        return err ? err : -1;
    }
    if (!refused) {
        const char *named = body_member(m);
        if (named && strcmp(named, t.member) != 0)
            refused = refuse(&t, "the request is signed by '%s' but made for member '%.64s'",
                             t.member, named);
    }
    if (refused) {
        log_warn("refused %s from %s (member %s): %s", rpc_call_method(call),
                 rpc_call_peer(call), t.member[0] ? t.member : "(none)", t.reason);
        if (desc == &aulac__v1__update_chunk__descriptor && !t.unavailable)
            record_refused_upload(c, m, &t);
        protobuf_c_message_free_unpacked(m, NULL);
        rpc_call_finish(call, t.unavailable     ? GRPC_STATUS_UNAVAILABLE
                              : t.not_in_roster ? GRPC_STATUS_PERMISSION_DENIED
                                                : GRPC_STATUS_UNAUTHENTICATED,
                        t.reason, NULL, 0);
        return -1;
    }
    rpc_call_set_authenticated(call);
    int64_t now_ms = time_now_unix_ms();
    pthread_mutex_lock(&c->mu);   /* last seen (coordinator/HTTP.md, /api/v1/members) */
    struct member_stats *seen = coord_member_stats(c, t.member);
    if (seen)
        seen->last_seen_ms = now_ms;
    pthread_mutex_unlock(&c->mu);
    metrics_member_seen(c->metrics, t.member, now_ms);
    if (member)
        memcpy(member, t.member, CRYPTO_ID_MAX + 1);
    *out = m;
    return 0;
}
