#ifndef AULAC_TESTS_TRUST_FIXTURE_H
#define AULAC_TESTS_TRUST_FIXTURE_H
/* A real coordinator in this process (coord_open + coord_serve on 127.0.0.1:0, a
 * temporary data directory, a tiny GPT-2 policy) and Federation clients whose
 * requests are signed by a hook the test controls. Shared by test_auth.c and
 * test_governance.c; everything is static inline so that a test file may use
 * only part of it. Include after cmocka.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "coordinator/coord.h"
#include "coordinator/queue.h"
#include "crypto/envelope.h"
#include "crypto/keys.h"
#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "crypto/request.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "policies/charter.h"
#include "policies/policy.h"
#include "proto/client.h"
#include "proto/roster_msg.h"

enum { FPT, VNPT, HUST, UET, N_KEYS };   /* UET is not in the founding roster */
static const char *const fx_ids[N_KEYS] = { "fpt", "vnpt", "hust", "uet" };

static const char fx_policy[] =
    "schema: 1\n"
    "metadata: {name: trust-test, proposer: fpt, description: tiny}\n"
    "model: {family: gpt2, vocab_size: 256, n_positions: 16, n_layer: 1, n_head: 2,"
    " n_embd: 16, seed: 7}\n"
    "data: {min_tokens_per_member: 100, validation_fraction: 0.05}\n"
    "training:\n"
    "  rounds: 3\n  local_steps: 2\n  batch_size: 2\n  seq_len: 16\n"
    "  inner: {kind: adamw, lr: 0.001, weight_decay: 0.0, beta1: 0.9, beta2: 0.95,"
    " grad_clip: 1.0, warmup_steps: 0}\n"
    "  outer: {kind: fedavg, lr: 1.0}\n"
    "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n"
    "compression:\n"
    "  uplink: {method: topk, block_size: 256, k_per_block: 16, quant: int8, zstd_level: 1,"
    " error_feedback: false, dense_warmup_rounds: 0}\n"
    "  downlink: {method: none, quant: fp32}\n"
    "participation: {members: [fpt, vnpt, hust, uet], min_members: 1, round_deadline_s: 600,"
    " grace_s: 1}\n";

struct fx {
    char dir[256];
    char addr[64];
    struct coord *c;
    struct coord_options opt;
    char paths[4][300];             /* data dir, key, roster, policy */
    int idle;                       /* 1: fx_start leaves the coordinator idle (the fixture's
                                       policy is not proposed) */
    const char *tls_ca;             /* fx_client's CA file when the coordinator serves TLS */
    struct crypto_key *keys[N_KEYS];
    struct crypto_key *coordinator;
};

/* Deterministic keys: seed bytes (16 * who + i). */
static inline struct crypto_key *fx_key(const char *id, int who)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(16 * who + i);
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed(id, seed, &k), 0);
    return k;
}

static inline void fx_write(const char *path, const char *text, unsigned mode)
{
    assert_int_equal(file_write_atomic(path, text, strlen(text), mode), 0);
}

/* Keys, paths and options for the fixture's files in dir (which fx_prepare writes). */
static inline void fx_use_dir(struct fx *f, const char *dir)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    for (int i = 0; i < N_KEYS; i++)
        f->keys[i] = fx_key(fx_ids[i], i + 1);
    f->coordinator = fx_key("coordinator", 9);
    snprintf(f->paths[0], sizeof f->paths[0], "%s/data", f->dir);
    snprintf(f->paths[1], sizeof f->paths[1], "%s/coordinator.key", f->dir);
    snprintf(f->paths[2], sizeof f->paths[2], "%s/roster.yaml", f->dir);
    snprintf(f->paths[3], sizeof f->paths[3], "%s/policy.yaml", f->dir);
    f->opt.data_dir = f->paths[0];
    f->opt.key_path = f->paths[1];
    f->opt.roster_path = f->paths[2];
    f->opt.listen_addr = "127.0.0.1:0";
    f->opt.max_calls = 64;
    f->opt.close_retry_ms = 20;   /* a close abandoned on a storage failure: retried soon */
}

/* Files only, in a new temporary directory; fx_start opens the coordinator. */
static inline void fx_prepare(struct fx *f)
{
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/aulac-trust-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    fx_use_dir(f, dir);
    assert_int_equal(crypto_key_save_secret(f->coordinator, f->paths[1], 0), 0);
    char roster[4096];
    size_t n = (size_t)snprintf(roster, sizeof roster, "alliance: trust-test\nmembers:\n");
    for (int i = 0; i < UET; i++) {
        struct crypto_public_key pk;
        char b64[45];
        crypto_key_public(f->keys[i], &pk);
        crypto_public_key_to_base64(pk.key, b64);
        n += (size_t)snprintf(roster + n, sizeof roster - n,
                              "  - id: %s\n    organization: Org %s\n    roles: [member%s]\n"
                              "    public_key: %s\n", fx_ids[i], fx_ids[i],
                              i == HUST ? ", researcher" : "", b64);
    }
    snprintf(roster + n, sizeof roster - n, "charter:\n  quorum: {roster: 0.66, experiments: "
             "0.66, charter: 0.67}\n  proposers: [researcher]\n");
    fx_write(f->paths[2], roster, 0644);
    fx_write(f->paths[3], fx_policy, 0644);
}

static inline void fx_run_fixture_policy(struct fx *f);

/* Opens and serves the coordinator; unless f->idle, the policy file (paths[3], which a
 * test may rewrite before) runs: hust (researcher) proposes it, fpt approves (2 of 3
 * under the fixture's charter), and fx_start waits for the timer to start it. A restart
 * finds it approved already. */
static inline void fx_start(struct fx *f)
{
    f->c = calloc(1, sizeof *f->c);
    assert_non_null(f->c);
    assert_int_equal(coord_open(f->c, &f->opt), 0);
    assert_int_equal(coord_serve(f->c), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->c->port);
    if (!f->idle)
        fx_run_fixture_policy(f);
}

/* cmocka setup: a fixture in *state, prepared but not started, so that a test may still
 * change f->opt before fx_start. fx_teardown frees it, started or not. */
static inline int fx_setup_prepared(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    fx_prepare(f);
    *state = f;
    return 0;
}

static inline void fx_free(struct fx *f);

/* cmocka setup: a fixture with its coordinator started. */
static inline int fx_setup_started(void **state)
{
    int rc = fx_setup_prepared(state);
    if (rc == 0)
        fx_start(*state);
    return rc;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    fx_free(f);
    free(f);
    return 0;
}

static inline void fx_stop(struct fx *f)
{
    if (f->c) {
        coord_close(f->c);
        free(f->c);
        f->c = NULL;
    }
}

/* Stops the coordinator and frees the keys; the directory stays. */
static inline void fx_release(struct fx *f)
{
    fx_stop(f);
    for (int i = 0; i < N_KEYS; i++)
        crypto_key_free(f->keys[i]);
    crypto_key_free(f->coordinator);
}

static inline void fx_free(struct fx *f)
{
    fx_release(f);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

/* --- signing hooks ---------------------------------------------------------- */

struct signer {
    struct crypto_key *key;         /* signs */
    const char *claim;              /* member named in the metadata (NULL: the key's) */
    const char *key_id;             /* key id in the metadata (NULL: the key's; "": none) */
    int64_t skew_ms;                /* added to the clock */
    int fixed;                      /* 1: reuse nonce and timestamp below */
    uint8_t nonce[16];
    int64_t ts;
    int calls;
};

static inline int fx_sign(void *ctx, const char *method, const uint8_t *body, size_t len,
                          struct fed_request_auth *a)
{
    struct signer *s = ctx;
    s->calls++;
    struct request_statement *st = &a->st;
    memset(st, 0, sizeof *st);
    snprintf(st->method, sizeof st->method, "%s", method);
    snprintf(st->member, sizeof st->member, "%s",
             s->claim ? s->claim : crypto_key_member(s->key));
    st->timestamp_unix_ms = s->fixed ? s->ts : time_now_unix_ms() + s->skew_ms;
    if (s->fixed)
        memcpy(st->nonce, s->nonce, 16);
    else
        randombytes_buf(st->nonce, 16);
    request_body_digest(body, len, st->body_digest);
    uint8_t d[32];
    if (request_digest(st, d) != 0)
        return -1;
    struct crypto_public_key pk;
    crypto_key_public(s->key, &pk);
    snprintf(a->key_id, sizeof a->key_id, "%s", s->key_id ? s->key_id : pk.key_id);
    return crypto_signature_create(s->key, d, sizeof d, a->signature);
}

static inline struct fed_client *fx_client(struct fx *f, struct signer *s)
{
    struct fed_client_options o = { 0 };
    o.call_timeout_ms = 10000;
    o.stream_timeout_ms = 20000;
    o.channel.tls_ca_file = f->tls_ca;
    if (s) {
        o.sign = fx_sign;
        o.sign_ctx = s;
    }
    struct fed_client *c;
    assert_int_equal(fed_client_open(f->addr, &o, &c), 0);
    return c;
}

/* --- updates ------------------------------------------------------------------ */

struct upd {
    struct update_envelope e;
    uint8_t sig[64];
    uint8_t *payload;
    size_t len;
    Aulac__V1__UpdateHeader h;
    Aulac__V1__CodecParams cp;
};

/* The header fields follow e and sig. */
static inline void upd_header(struct upd *u)
{
    aulac__v1__codec_params__init(&u->cp);
    u->cp.format_version = u->e.codec.format_version;
    u->cp.block_size = u->e.codec.block_size;
    u->cp.k_per_block = u->e.codec.k_per_block;
    u->cp.quant = u->e.codec.quant;
    u->cp.zstd_level = u->e.codec.zstd_level;
    u->cp.error_feedback = u->e.codec.error_feedback;
    aulac__v1__update_header__init(&u->h);
    u->h.experiment_id = u->e.experiment;
    u->h.round = u->e.round;
    u->h.member_id = u->e.member;
    u->h.base_model_hash.data = u->e.base_model_hash;
    u->h.base_model_hash.len = 32;
    u->h.payload_hash.data = u->e.payload_hash;
    u->h.payload_hash.len = 32;
    u->h.payload_bytes = u->e.payload_bytes;
    u->h.samples = u->e.samples;
    u->h.tokens = u->e.tokens;
    u->h.codec = &u->cp;
    u->h.signature.data = u->sig;
    u->h.signature.len = 64;
    u->h.train_loss = 3.0f;
    u->h.val_loss = 3.5f;
}

static inline void upd_sign(struct upd *u, const struct crypto_key *k)
{
    assert_int_equal(envelope_sign(&u->e, k, u->sig), 0);
    upd_header(u);
}

/* A valid update of member for the open round, signed with k. */
static inline void upd_make(struct fx *f, struct upd *u, const struct crypto_key *k, int salt)
{
    memset(u, 0, sizeof *u);
    struct coord *c = f->c;
    size_t n = c->n_params;
    float *delta = malloc(n * sizeof *delta);
    assert_non_null(delta);
    for (size_t i = 0; i < n; i++)
        delta[i] = (float)(((i * 2654435761u + (unsigned)salt * 97u) % 2001) - 1000) * 1e-5f;
    pthread_mutex_lock(&c->mu);
    snprintf(u->e.experiment, sizeof u->e.experiment, "%s", c->experiment);
    u->e.round = c->rnd.number;
    memcpy(u->e.base_model_hash, c->rnd.base->hash, 32);
    pthread_mutex_unlock(&c->mu);
    struct policy_round_plan plan;
    assert_int_equal(policy_round_plan(&c->policy, u->e.round, &plan, NULL, 0), 0);
    const struct codec_params *cp = &plan.uplink;
    assert_int_equal(codec_encode(delta, n, cp, NULL, &u->payload, &u->len), 0);
    free(delta);
    snprintf(u->e.member, sizeof u->e.member, "%s", crypto_key_member(k));
    crypto_blake2b256(u->payload, u->len, u->e.payload_hash);
    u->e.payload_bytes = u->len;
    u->e.samples = 4;
    u->e.tokens = 64;
    u->e.codec.format_version = cp->format_version;
    u->e.codec.block_size = cp->block_size;
    u->e.codec.k_per_block = cp->k_per_block;
    u->e.codec.quant = (uint32_t)cp->quant;
    u->e.codec.zstd_level = cp->zstd_level;
    u->e.codec.error_feedback = (uint8_t)cp->error_feedback;
    upd_sign(u, k);
}

static inline void upd_free(struct upd *u)
{
    free(u->payload);
    u->payload = NULL;
}

/* A valid update of member `who` for the open round, sent through a client signing with
 * its key; the coordinator must accept it. */
static inline void fx_wait_closed(struct fx *f);

/* Sends u signed as who, in chunks of chunk_bytes (0: the client's default), and returns
 * the coordinator's receipt (the call must succeed; free it with
 * aulac__v1__receipt__free_unpacked). */
static inline Aulac__V1__Receipt *fx_send(struct fx *f, int who, const struct upd *u,
                                          size_t chunk_bytes)
{
    struct signer s = { .key = f->keys[who] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u->h, u->payload, u->len, chunk_bytes, &r, &st), 0);
    fed_client_close(cl);
    return r;
}

/* Submits who's update, which must be accepted; when it completes the round, returns
 * once the timer thread has closed it. */
static inline void fx_submit_accepted(struct fx *f, int who, int salt)
{
    struct upd u;
    upd_make(f, &u, f->keys[who], salt);
    Aulac__V1__Receipt *r = fx_send(f, who, &u, 0);
    if (!r->accepted)
        fail_msg("the update of %s was refused: %s", fx_ids[who], r->reason);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);
    fx_wait_closed(f);
}

/* --- what the coordinator holds ----------------------------------------------- */

/* The last ledger entry, decoded (entry_free it). */
static inline void fx_last_entry(struct fx *f, struct entry *e, uint64_t *index)
{
    uint64_t size;
    assert_int_equal(ledger_size(f->c->ledger, &size), 0);
    assert_true(size > 0);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ledger_get(f->c->ledger, size - 1, &bytes, &len), 0);
    assert_int_equal(entry_decode(bytes, len, e), 0);
    free(bytes);
    if (index)
        *index = size - 1;
}

static inline uint64_t fx_ledger_size(struct fx *f)
{
    uint64_t size;
    assert_int_equal(ledger_size(f->c->ledger, &size), 0);
    return size;
}

/* The ledger's last entry is a rejection of member's update saying pat. */
static inline void fx_expect_rejection(struct fx *f, const char *member, const char *pat)
{
    struct entry e;
    fx_last_entry(f, &e, NULL);
    assert_int_equal(e.type, ENTRY_UPDATE_REJECTED);
    assert_string_equal(e.u.update.member, member);
    if (!strstr(e.u.update.reason, pat))
        fail_msg("ledger reason \"%s\" lacks \"%s\"", e.u.update.reason, pat);
    entry_free(&e);
}

/* The open round's accepted weight (sum of agg_weight) and count, read under the
 * coordinator's lock. */
static inline double fx_accepted_weight(struct fx *f, size_t *n_accepted)
{
    pthread_mutex_lock(&f->c->mu);
    double s = f->c->rnd.weight_sum;
    if (n_accepted)
        *n_accepted = f->c->rnd.n_accepted;
    pthread_mutex_unlock(&f->c->mu);
    return s;
}

static inline void fx_expect_nothing_aggregated(struct fx *f)
{
    size_t n;
    assert_true(fx_accepted_weight(f, &n) == 0.0);
    assert_int_equal(n, 0);
}

static inline void expect_status(int rc, const struct rpc_status *st, grpc_status_code code,
                                 const char *pat)
{
    if (rc != RPC_ERR_STATUS || st->code != code || !strstr(st->details, pat))
        fail_msg("expected %s with \"%s\"; got rc %d, %s: %s", rpc_status_name(code), pat, rc,
                 rpc_status_name(st->code), st->details);
}

/* --- governance through the RPCs ------------------------------------------------ */

/* Proposes as the key's member; returns the reply (free it) and the hash. */
static inline Aulac__V1__GovernanceReply *fx_propose(struct fx *f, struct fed_client *cl,
                                                     const struct crypto_key *proposer,
                                                     int action, const char *member,
                                                     const struct crypto_key *subject_key,
                                                     uint8_t hash[32])
{
    struct roster_proposal p = { 0 };
    snprintf(p.alliance, sizeof p.alliance, "trust-test");
    p.action = (uint8_t)action;
    snprintf(p.proposer, sizeof p.proposer, "%s", crypto_key_member(proposer));
    snprintf(p.member, sizeof p.member, "%s", member);
    if (action == PROPOSAL_ADD) {
        snprintf(p.organization, sizeof p.organization, "Org %s", member);
        p.roles = 1;
    }
    if (subject_key) {
        struct crypto_public_key pk;
        crypto_key_public(subject_key, &pk);
        memcpy(p.public_key, pk.key, 32);
    }
    p.created_unix_ms = time_now_unix_ms();
    p.expires_unix_ms = p.created_unix_ms + 3600 * 1000;
    uint8_t sig[64];
    assert_int_equal(proposal_sign(&p, proposer, sig), 0);
    assert_int_equal(proposal_hash(&p, hash), 0);
    Aulac__V1__RosterProposal q;
    Aulac__V1__RosterChange ch;
    roster_proposal_to_msg(&p, sig, &q, &ch);
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st;
    int rc = fed_propose_roster_change(cl, &q, &r, &st);
    if (rc != 0)
        fail_msg("propose: %s", st.details);
    (void)f;
    return r;
}

static inline Aulac__V1__GovernanceReply *fx_vote(struct fed_client *cl,
                                                  const struct crypto_key *voter,
                                                  const uint8_t hash[32], int approve)
{
    struct roster_vote v = { 0 };
    memcpy(v.proposal_hash, hash, 32);
    snprintf(v.voter, sizeof v.voter, "%s", crypto_key_member(voter));
    v.approve = (uint8_t)approve;
    uint8_t sig[64];
    assert_int_equal(vote_sign(&v, voter, sig), 0);
    Aulac__V1__VoteRequest q = AULAC__V1__VOTE_REQUEST__INIT;
    q.proposal_hash.data = (uint8_t *)hash;
    q.proposal_hash.len = 32;
    q.voter_id = v.voter;
    q.approve = approve;
    q.signature.data = sig;
    q.signature.len = 64;
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st;
    int rc = fed_vote(cl, &q, &r, &st);
    if (rc != 0)
        fail_msg("vote: %s", st.details);
    return r;
}

/* A motion by the key's member: kind 1 with a policy document (hash and id computed
 * from it; a document that does not parse gets a zero hash and id "unparsed-0"),
 * kind 2 for experiment, kind 3 with a charter document. ttl_ms 0: one hour. Returns
 * the reply (free it) or NULL with *st filled when the call itself failed. */
static inline Aulac__V1__GovernanceReply *fx_motion(struct fed_client *cl,
                                                    const struct crypto_key *proposer, int kind,
                                                    const char *experiment, const char *doc,
                                                    size_t doc_len, const char *doc_name,
                                                    int64_t ttl_ms, uint8_t hash[32],
                                                    struct rpc_status *st)
{
    struct motion m = { .kind = (uint8_t)kind };
    snprintf(m.alliance, sizeof m.alliance, "trust-test");
    snprintf(m.proposer, sizeof m.proposer, "%s", crypto_key_member(proposer));
    struct policy_error err;
    if (kind == MOTION_EXPERIMENT &&
        policy_identify("p.yaml", doc, doc_len, m.content_hash, m.experiment,
                        sizeof m.experiment, &err) != 0) {
        memset(m.content_hash, 0x11, 32);
        snprintf(m.experiment, sizeof m.experiment, "unparsed-0");
    }
    if (kind == MOTION_CANCEL)
        snprintf(m.experiment, sizeof m.experiment, "%s", experiment);
    if (kind == MOTION_CHARTER) {
        struct charter ch;
        if (charter_load_buffer("c.yaml", doc, doc_len, &ch, &err) != 0 ||
            charter_hash(&ch, m.content_hash) != 0)
            memset(m.content_hash, 0x22, 32);
    }
    if (doc)
        crypto_blake2b256(doc, doc_len, m.document_digest);
    if (kind != MOTION_CANCEL && doc_len > 0 && !doc)
        memset(m.document_digest, 0x33, 32);
    m.created_unix_ms = time_now_unix_ms();
    m.expires_unix_ms = m.created_unix_ms + (ttl_ms ? ttl_ms : 3600 * 1000);
    uint8_t sig[64];
    assert_int_equal(motion_sign(&m, proposer, sig), 0);
    assert_int_equal(motion_hash(&m, hash), 0);
    Aulac__V1__Motion q;
    motion_to_msg(&m, sig, (const uint8_t *)doc, doc_len, doc_name, &q);
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status local;
    if (fed_propose_motion(cl, &q, &r, st ? st : &local) != 0)
        return NULL;
    return r;
}

/* hust (researcher) proposes the policy text and fpt approves it: 2 of 3, the fixture
 * charter's experiment quorum, so it is queued. */
static inline void fx_approve_policy(struct fx *f, const char *text)
{
    struct signer s = { .key = f->keys[HUST] };
    struct fed_client *cl = fx_client(f, &s);
    uint8_t hash[32];
    Aulac__V1__GovernanceReply *r = fx_motion(cl, f->keys[HUST], MOTION_EXPERIMENT, NULL, text,
                                              strlen(text), "policy.yaml", 0, hash, NULL);
    assert_non_null(r);
    if (!r->accepted)
        fail_msg("the policy was refused: %s", r->reason);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    fed_client_close(cl);
    s.key = f->keys[FPT];
    cl = fx_client(f, &s);
    r = fx_vote(cl, f->keys[FPT], hash, 1);
    if (!r->accepted)
        fail_msg("the vote on the policy was refused: %s", r->reason);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    fed_client_close(cl);
}

/* Waits (up to 10 s) until no round close is requested or running: an accepted update
 * that completes its round asks the timer thread to close it (close_pending, set before
 * the receipt is sent) and the receipt does not wait for the close. */
static inline void fx_wait_closed(struct fx *f)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&f->c->mu);
        int busy = f->c->rnd.close_pending || f->c->rnd.closing;
        pthread_mutex_unlock(&f->c->mu);
        if (!busy)
            return;
        time_sleep_ms(10);
    }
    fail_msg("the round close did not finish within 10 s");
}

/* Waits (up to 10 s) until no close is pending, running or waiting for its retry after
 * a storage failure. */
static inline void fx_wait_settled(struct fx *f)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&f->c->mu);
        int busy = f->c->rnd.close_pending || f->c->rnd.closing || f->c->rnd.close_retry_at_ms;
        pthread_mutex_unlock(&f->c->mu);
        if (!busy)
            return;
        time_sleep_ms(10);
    }
    fail_msg("the round close (or its retry) did not finish within 10 s");
}

/* Waits (up to 10 s: a close may run on the timer) until the open round is at least
 * round; returns the open round. */
static inline uint64_t fx_wait_round(struct fx *f, uint64_t round)
{
    uint64_t now = 0;
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&f->c->mu);
        now = f->c->rnd.number;
        pthread_mutex_unlock(&f->c->mu);
        if (now >= round)
            break;
        time_sleep_ms(50);
    }
    return now;
}

/* Waits (up to 10 s: the timer starts experiments) until experiment id runs; 1 when it
 * does. */
static inline int fx_wait_running(struct fx *f, const char *id)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&f->c->mu);
        int running = f->c->state == EXP_RUNNING && strcmp(f->c->experiment, id) == 0;
        pthread_mutex_unlock(&f->c->mu);
        if (running)
            return 1;
        time_sleep_ms(20);
    }
    return 0;
}

/* Approves the policy file paths[3] (unless it was approved before) and waits until it
 * runs. */
static inline void fx_run_fixture_policy(struct fx *f)
{
    uint8_t *text;
    size_t len;
    assert_int_equal(file_read_all(f->paths[3], POLICY_FILE_MAX, &text, &len), 0);
    uint8_t policy_hash[32];
    char id[POLICY_EXPERIMENT_ID_MAX + 1];
    struct policy_error err;
    if (policy_identify(f->paths[3], text, len, policy_hash, id, sizeof id, &err) != 0)
        fail_msg("%s", err.message);
    struct experiment_info info;
    int found = 0;
    assert_int_equal(queue_find_policy(f->c, policy_hash, &info, &found), 0);
    experiment_info_free(&info);
    if (!found)   /* else a restart: it runs, ran, or waits as it did */
        fx_approve_policy(f, (const char *)text);
    free(text);
    if (!found && !fx_wait_running(f, id))
        fail_msg("the fixture's experiment %s did not start", id);
}

#endif
