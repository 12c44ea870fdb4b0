/* The pinned-file store (coordinator/artifacts.h) through its RPCs, against a real
 * coordinator in this process (tests/unit/trust_fixture.h): PutArtifact keeps a file
 * only complete and matching its hash, refuses with a reason and leaves nothing behind
 * otherwise (wrong hash, truncated stream, offsets out of order, a changed total, over
 * the size cap, a client that vanishes, a second upload of the same file at once);
 * GetArtifact serves any range, NOT_FOUND names the hash; only roster members do either.
 * The store takes only pinned files (an open experiment proposal or a queued/running
 * experiment pins them), within a store-wide cap, and serves them only to members that
 * take part in an experiment pinning them; artifacts_prune deletes what nothing pins. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "coordinator/artifacts.h"
#include "coordinator/queue.h"
#include "ledger/entry.h"
#include <math.h>
#include "proto/pb.h"
#include "proto/service.h"
#include "trust_fixture.h"

#define CAP_BYTES 20000u   /* the coordinator's --max-artifact-bytes in these tests */

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
    f->idle = 1;   /* artifacts need no experiment */
    f->opt.max_artifact_bytes = CAP_BYTES;
    fx_start(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_free(f);
    free(f);
    return 0;
}

/* --- files and what the store holds ------------------------------------------- */

struct file {
    uint8_t *bytes;
    size_t len;
    uint8_t hash[32];
};

static void file_make(struct file *x, size_t len, uint32_t salt)
{
    x->len = len;
    x->bytes = malloc(len ? len : 1);
    assert_non_null(x->bytes);
    for (size_t i = 0; i < len; i++)
        x->bytes[i] = (uint8_t)((i * 2654435761u + salt * 40503u) >> 13);
    crypto_blake2b256(x->bytes, len, x->hash);
}

static int read_file(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
    const struct file *x = ctx;
    assert_true(off + len <= x->len);
    memcpy(buf, x->bytes + off, len);
    return 0;
}

static int held(struct fx *f, const uint8_t hash[32])
{
    char path[4096];
    return artifacts_path(f->c, hash, path, sizeof path) == 0;
}

/* Files in data_dir/artifacts/tmp (what failed uploads must not leave). */
static int tmp_files(struct fx *f)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/artifacts/tmp", f->paths[0]);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Polls (up to 5 s) until tmp/ is empty: a handler that saw its client vanish cleans up
 * on its own thread. */
static void expect_tmp_empty(struct fx *f)
{
    for (int i = 0; i < 100 && tmp_files(f) > 0; i++)
        time_sleep_ms(50);
    assert_int_equal(tmp_files(f), 0);
}

/* --- the typed client ----------------------------------------------------------- */

struct progress {
    uint64_t last, total;
    int calls;
};

static void on_progress(void *ctx, uint64_t sent, uint64_t total)
{
    struct progress *p = ctx;
    assert_true(sent >= p->last);
    p->last = sent;
    p->total = total;
    p->calls++;
}

/* Uploads x as who (claimed hash: x's unless hash given); the rc, the receipt. */
static int put(struct fx *f, int who, const struct file *x, const uint8_t *hash,
               size_t chunk_bytes, struct progress *pr, Aulac__V1__ArtifactReceipt **r,
               struct rpc_status *st)
{
    struct signer s = { .key = f->keys[who] };
    struct fed_client *cl = fx_client(f, &s);
    struct fed_artifact_source src = {
        .total_bytes = x->len, .member_id = fx_ids[who], .name = "model.safetensors",
        .read = read_file, .read_ctx = (void *)x, .chunk_bytes = chunk_bytes,
        .progress = pr ? on_progress : NULL, .progress_ctx = pr,
    };
    memcpy(src.blake2b, hash ? hash : x->hash, 32);
    int rc = fed_put_artifact(cl, &src, r, st);
    fed_client_close(cl);
    return rc;
}

static void put_ok(struct fx *f, const struct file *x, int already)
{
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, x, NULL, 1000, NULL, &r, &st);
    if (rc != 0)
        fail_msg("upload failed: %d %s", rc, st.details);
    assert_int_equal(r->blake2b.len, 32);
    assert_memory_equal(r->blake2b.data, x->hash, 32);
    assert_int_equal(r->total_bytes, x->len);
    assert_int_equal(!!r->already_held, already);
    aulac__v1__artifact_receipt__free_unpacked(r, NULL);
}

struct sink {
    uint8_t *buf;
    size_t cap, got;
    uint64_t first_offset, total;
    int chunks;
};

static int on_chunk(const Aulac__V1__ArtifactChunk *ch, void *ctx)
{
    struct sink *k = ctx;
    if (k->chunks++ == 0)
        k->first_offset = ch->offset;
    assert_true(ch->data.len <= FED_MAX_CHUNK_BYTES);
    assert_true(k->got + ch->data.len <= k->cap);
    if (ch->data.len)   /* an empty file's one chunk has no data pointer */
        memcpy(k->buf + k->got, ch->data.data, ch->data.len);
    k->got += ch->data.len;
    k->total = ch->total_bytes;
    return 0;
}

static int get(struct fx *f, int who, const uint8_t hash[32], uint64_t offset,
               uint64_t length, struct sink *k, struct rpc_status *st)
{
    memset(k, 0, sizeof *k);
    k->cap = CAP_BYTES + 16;
    k->buf = malloc(k->cap);
    assert_non_null(k->buf);
    struct signer s = { .key = f->keys[who] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__ArtifactRequest q = AULAC__V1__ARTIFACT_REQUEST__INIT;
    q.member_id = (char *)fx_ids[who];
    q.blake2b.data = (uint8_t *)hash;
    q.blake2b.len = 32;
    q.offset = offset;
    q.length = length;
    int rc = fed_get_artifact(cl, &q, on_chunk, k, st);
    fed_client_close(cl);
    return rc;
}

/* --- a hand-made PutArtifact stream ----------------------------------------------- */

struct raw {
    struct rpc_channel *ch;
    struct rpc_stream *s;
};

static void chunk_pack(const uint8_t hash[32], uint64_t total, uint64_t offset,
                       const uint8_t *data, size_t len, int first, uint8_t **out,
                       size_t *out_len)
{
    Aulac__V1__ArtifactChunk m = AULAC__V1__ARTIFACT_CHUNK__INIT;
    m.blake2b.data = (uint8_t *)hash;
    m.blake2b.len = 32;
    m.total_bytes = total;
    m.offset = offset;
    m.data.data = (uint8_t *)data;
    m.data.len = len;
    if (first) {
        m.member_id = "fpt";
        m.name = "raw.bin";
    }
    assert_int_equal(pb_pack(&m.base, out, out_len), 0);
}

/* Opens PutArtifact signed by fpt and sends the first chunk: x's bytes [0, n). */
static void raw_open(struct fx *f, struct raw *r, const struct file *x, size_t n)
{
    assert_int_equal(rpc_channel_open(f->addr, NULL, &r->ch), 0);
    uint8_t *body;
    size_t body_len;
    chunk_pack(x->hash, x->len, 0, x->bytes, n, 1, &body, &body_len);
    struct request_statement st;
    uint8_t sig[64];
    assert_int_equal(request_sign_new(f->keys[FPT], FED_METHOD_PUT_ARTIFACT, body, body_len,
                                      time_now_unix_ms(), &st, sig), 0);
    char ts[32];
    snprintf(ts, sizeof ts, "%" PRId64, st.timestamp_unix_ms);
    struct rpc_metadata md[4] = {
        { REQUEST_MD_MEMBER, (const uint8_t *)st.member, strlen(st.member) },
        { REQUEST_MD_TIMESTAMP, (const uint8_t *)ts, strlen(ts) },
        { REQUEST_MD_NONCE, st.nonce, REQUEST_NONCE_BYTES },
        { REQUEST_MD_SIGNATURE, sig, 64 },
    };
    struct rpc_call_options o = { .timeout_ms = 10000, .metadata = md, .n_metadata = 4 };
    assert_int_equal(rpc_stream_open(r->ch, FED_METHOD_PUT_ARTIFACT, &o, &r->s), 0);
    assert_int_equal(rpc_stream_send(r->s, body, body_len), 0);
    free(body);
}

/* Sends a chunk claiming (hash, total, offset) with x's bytes [from, from + n). */
static void raw_send(struct raw *r, const struct file *x, uint64_t total, uint64_t offset,
                     size_t from, size_t n)
{
    uint8_t *body;
    size_t len;
    chunk_pack(x->hash, total, offset, x->bytes + from, n, 0, &body, &len);
    (void)rpc_stream_send(r->s, body, len);   /* may fail: the server refused already */
    free(body);
}

/* Half-closes, and the call's end must be code with pat in its details. */
static void raw_expect(struct raw *r, grpc_status_code code, const char *pat)
{
    (void)rpc_stream_close_send(r->s);
    uint8_t *buf = NULL;
    size_t len;
    if (rpc_stream_recv(r->s, &buf, &len) == 0)
        free(buf);
    struct rpc_status st;
    int rc = rpc_stream_finish(r->s, &st);
    rpc_channel_close(r->ch);
    if (code == GRPC_STATUS_OK) {
        if (rc != 0)
            fail_msg("expected OK, got %s: %s", rpc_status_name(st.code), st.details);
        return;
    }
    expect_status(rc, &st, code, pat);
}

/* --- pinning: an open experiment proposal whose policy pins files ----------------- */

/* hust proposes (nobody approves: the motion stays open) a policy whose model.init pins
 * init and model.tokenizer tok (either NULL: not pinned), for members (a YAML list).
 * ttl_ms 0: an hour. Returns the motion's hash in hash (may be NULL). */
static void pin_for(struct fx *f, const uint8_t *init, const uint8_t *tok,
                    const char *members, int64_t ttl_ms, uint8_t *hash)
{
    static int seq;
    char ih[65] = "", th[65] = "", files[400] = "";
    if (init) {
        hex_encode(init, 32, ih);
        snprintf(files, sizeof files, ", init: {file: m.safetensors, blake2b: \"%s\"}", ih);
    }
    if (tok) {
        hex_encode(tok, 32, th);
        size_t n = strlen(files);
        snprintf(files + n, sizeof files - n, ", tokenizer: {file: t.json, blake2b: \"%s\"}",
                 th);
    }
    char text[4096];
    snprintf(text, sizeof text,
             "schema: 1\n"
             "metadata: {name: pin-%d, proposer: hust, description: pins files}\n"
             "model: {family: gpt2, vocab_size: 256, n_positions: 16, n_layer: 1, n_head: 2,"
             " n_embd: 16, seed: 7%s}\n"
             "data: {min_tokens_per_member: 100, validation_fraction: 0.05}\n"
             "training:\n"
             "  rounds: 3\n  local_steps: 2\n  batch_size: 2\n  seq_len: 16\n"
             "  inner: {kind: adamw, lr: 0.001, weight_decay: 0.0, beta1: 0.9, beta2: 0.95,"
             " grad_clip: 1.0, warmup_steps: 0}\n"
             "  outer: {kind: fedavg, lr: 1.0}\n"
             "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n"
             "compression:\n"
             "  uplink: {method: topk, block_size: 256, k_per_block: 16, quant: int8,"
             " zstd_level: 1, error_feedback: false, dense_warmup_rounds: 0}\n"
             "  downlink: {method: none, quant: fp32}\n"
             "participation: {members: %s, min_members: 1, round_deadline_s: 600,"
             " grace_s: 1}\n", ++seq, files, members);
    struct signer s = { .key = f->keys[HUST] };
    struct fed_client *cl = fx_client(f, &s);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *r = fx_motion(cl, f->keys[HUST], MOTION_EXPERIMENT, NULL,
                                              text, strlen(text), "policy.yaml", ttl_ms, h,
                                              NULL);
    assert_non_null(r);
    if (!r->accepted)
        fail_msg("the pinning proposal was refused: %s", r->reason);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    fed_client_close(cl);
    if (hash)
        memcpy(hash, h, 32);
}

#define ALL_MEMBERS "[fpt, vnpt, hust, uet]"

static void pin(struct fx *f, const struct file *x)
{
    pin_for(f, x->hash, NULL, ALL_MEMBERS, 0, NULL);
}

/* --- tests ----------------------------------------------------------------------- */

static void good_upload_is_stored_and_served(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 5500, 1);
    pin(f, &x);
    assert_false(held(f, x.hash));
    struct progress pr = { 0 };
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, &x, NULL, 1000, &pr, &r, &st);
    if (rc != 0)
        fail_msg("upload failed: %s", st.details);
    assert_false(r->already_held);
    assert_int_equal(r->total_bytes, 5500);
    aulac__v1__artifact_receipt__free_unpacked(r, NULL);
    assert_int_equal(pr.calls, 6);   /* 5 x 1000 + 500 */
    assert_int_equal(pr.last, 5500);

    /* On disk under its hash, byte for byte; nothing left in tmp/. */
    char path[4096], hex[65];
    assert_int_equal(artifacts_path(f->c, x.hash, path, sizeof path), 0);
    hex_encode(x.hash, 32, hex);
    assert_non_null(strstr(path, hex));
    uint8_t *disk;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &disk, &len), 0);
    assert_int_equal(len, x.len);
    assert_memory_equal(disk, x.bytes, len);
    free(disk);
    assert_int_equal(tmp_files(f), 0);

    /* Another member fetches the whole file. */
    struct sink k;
    rc = get(f, VNPT, x.hash, 0, 0, &k, &st);
    if (rc != 0)
        fail_msg("download failed: %s", st.details);
    assert_int_equal(k.got, x.len);
    assert_int_equal(k.total, x.len);
    assert_memory_equal(k.buf, x.bytes, x.len);
    free(k.buf);

    /* An empty file is a file too. */
    struct file e;
    file_make(&e, 0, 0);
    pin(f, &e);
    put_ok(f, &e, 0);
    rc = get(f, HUST, e.hash, 0, 0, &k, &st);
    assert_int_equal(rc, 0);
    assert_int_equal(k.chunks, 1);
    assert_int_equal(k.got, 0);
    free(k.buf);
    free(e.bytes);
    free(x.bytes);
}

static void duplicate_is_already_held(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 3000, 2);
    pin(f, &x);
    put_ok(f, &x, 0);
    put_ok(f, &x, 1);
    assert_int_equal(tmp_files(f), 0);
    free(x.bytes);
}

static void wrong_hash_is_refused_and_nothing_kept(void **state)
{
    struct fx *f = *state;
    struct file x, other;
    file_make(&x, 4000, 3);
    pin(f, &x);
    file_make(&other, 4000, 4);
    pin(f, &other);
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, &x, other.hash, 1000, NULL, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_INVALID_ARGUMENT, "nothing kept");
    char hx[65];
    hex_encode(x.hash, 32, hx);
    if (!strstr(st.details, hx))   /* the hash the bytes really have */
        fail_msg("the refusal does not say what the bytes hash to: %s", st.details);
    assert_null(r);
    assert_false(held(f, other.hash));
    assert_false(held(f, x.hash));
    expect_tmp_empty(f);
    put_ok(f, &x, 0);   /* the right one still goes in */
    free(x.bytes);
    free(other.bytes);
}

static void truncated_stream_is_refused(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 3000, 5);
    pin(f, &x);
    struct raw r;
    raw_open(f, &r, &x, 1000);
    raw_send(&r, &x, x.len, 1000, 1000, 1000);
    raw_expect(&r, GRPC_STATUS_INVALID_ARGUMENT, "the stream ended after 2000 of 3000 bytes");
    assert_false(held(f, x.hash));
    expect_tmp_empty(f);
    free(x.bytes);
}

static void offsets_out_of_order_are_refused(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 3000, 6);
    pin(f, &x);
    struct raw r;
    raw_open(f, &r, &x, 1000);
    raw_send(&r, &x, x.len, 2000, 2000, 1000);   /* skips [1000, 2000) */
    raw_expect(&r, GRPC_STATUS_INVALID_ARGUMENT, "offsets out of order");
    assert_false(held(f, x.hash));
    expect_tmp_empty(f);

    /* A repeated chunk too. */
    raw_open(f, &r, &x, 1000);
    raw_send(&r, &x, x.len, 0, 0, 1000);
    raw_expect(&r, GRPC_STATUS_INVALID_ARGUMENT, "offsets out of order");

    /* A total_bytes that changes mid-stream. */
    raw_open(f, &r, &x, 1000);
    raw_send(&r, &x, x.len + 1, 1000, 1000, 1000);
    raw_expect(&r, GRPC_STATUS_INVALID_ARGUMENT, "says total_bytes 3001");

    /* More bytes than total_bytes. */
    struct file big;
    file_make(&big, 3000, 6);
    pin(f, &big);
    big.len = 1500;   /* claims 1500 (its hash is of 3000: refused before that matters) */
    raw_open(f, &r, &big, 1000);
    raw_send(&r, &big, 1500, 1000, 1000, 1000);
    raw_expect(&r, GRPC_STATUS_INVALID_ARGUMENT, "more bytes than total_bytes 1500");
    assert_false(held(f, x.hash));
    expect_tmp_empty(f);
    free(big.bytes);
    free(x.bytes);
}

static void over_the_cap_is_refused(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, CAP_BYTES + 1, 7);
    pin(f, &x);
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, &x, NULL, 0, NULL, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, "--max-artifact-bytes");
    assert_false(held(f, x.hash));
    expect_tmp_empty(f);
    x.len = CAP_BYTES;   /* exactly the cap is fine */
    crypto_blake2b256(x.bytes, x.len, x.hash);
    pin(f, &x);
    put_ok(f, &x, 0);
    free(x.bytes);
}

static void concurrent_upload_of_one_file_one_wins(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 2000, 8);
    pin(f, &x);
    struct raw r;
    raw_open(f, &r, &x, 1000);
    /* The first upload is under way (wait until the coordinator has claimed it). */
    for (int i = 0; i < 100 && tmp_files(f) == 0; i++)
        time_sleep_ms(20);
    assert_int_equal(tmp_files(f), 1);
    Aulac__V1__ArtifactReceipt *rec = NULL;
    struct rpc_status st;
    int rc = put(f, VNPT, &x, NULL, 1000, NULL, &rec, &st);
    expect_status(rc, &st, GRPC_STATUS_ABORTED, "another upload of the same file (by fpt)");
    raw_send(&r, &x, x.len, 1000, 1000, 1000);
    raw_expect(&r, GRPC_STATUS_OK, NULL);
    assert_true(held(f, x.hash));
    put_ok(f, &x, 1);   /* the retry: already held */
    free(x.bytes);
}

static void vanished_uploader_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 3000, 9);
    pin(f, &x);
    struct raw r;
    raw_open(f, &r, &x, 1000);
    for (int i = 0; i < 100 && tmp_files(f) == 0; i++)
        time_sleep_ms(20);
    rpc_stream_cancel(r.s);
    struct rpc_status st;
    (void)rpc_stream_finish(r.s, &st);
    rpc_channel_close(r.ch);
    expect_tmp_empty(f);
    assert_false(held(f, x.hash));
    put_ok(f, &x, 0);   /* its claim was let go */
    free(x.bytes);
}

static void get_serves_ranges(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 5000, 10);
    pin(f, &x);
    put_ok(f, &x, 0);
    struct sink k;
    struct rpc_status st;
    assert_int_equal(get(f, FPT, x.hash, 1500, 2000, &k, &st), 0);   /* a middle range */
    assert_int_equal(k.first_offset, 1500);
    assert_int_equal(k.got, 2000);
    assert_int_equal(k.total, 5000);
    assert_memory_equal(k.buf, x.bytes + 1500, 2000);
    free(k.buf);
    assert_int_equal(get(f, FPT, x.hash, 4000, 0, &k, &st), 0);      /* resume to the end */
    assert_int_equal(k.got, 1000);
    assert_memory_equal(k.buf, x.bytes + 4000, 1000);
    free(k.buf);
    assert_int_equal(get(f, FPT, x.hash, 4500, 9999, &k, &st), 0);   /* clipped at the end */
    assert_int_equal(k.got, 500);
    free(k.buf);
    assert_int_equal(get(f, FPT, x.hash, 5000, 0, &k, &st), 0);      /* at the end: empty */
    assert_int_equal(k.chunks, 1);
    assert_int_equal(k.got, 0);
    free(k.buf);
    int rc = get(f, FPT, x.hash, 5001, 0, &k, &st);
    free(k.buf);
    expect_status(rc, &st, GRPC_STATUS_OUT_OF_RANGE, "past the end");
    free(x.bytes);
}

static void unknown_hash_is_not_found(void **state)
{
    struct fx *f = *state;
    uint8_t h[32];
    memset(h, 0xab, 32);
    char hex[65];
    hex_encode(h, 32, hex);
    struct sink k;
    struct rpc_status st;
    int rc = get(f, FPT, h, 0, 0, &k, &st);
    free(k.buf);
    expect_status(rc, &st, GRPC_STATUS_NOT_FOUND, hex);
    expect_status(rc, &st, GRPC_STATUS_NOT_FOUND, "aulac artifact put");
}

static void only_members_put_and_get(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 1000, 11);
    pin(f, &x);
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, UET, &x, NULL, 0, NULL, &r, &st);   /* not in the roster */
    expect_status(rc, &st, GRPC_STATUS_PERMISSION_DENIED, "uet");
    assert_false(held(f, x.hash));
    put_ok(f, &x, 0);
    struct sink k;
    rc = get(f, UET, x.hash, 0, 0, &k, &st);
    free(k.buf);
    expect_status(rc, &st, GRPC_STATUS_PERMISSION_DENIED, "uet");
    /* A request signed by fpt for another member is refused too. */
    struct signer s = { .key = f->keys[FPT] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__ArtifactRequest q = AULAC__V1__ARTIFACT_REQUEST__INIT;
    q.member_id = "vnpt";
    q.blake2b.data = x.hash;
    q.blake2b.len = 32;
    memset(&k, 0, sizeof k);
    rc = fed_get_artifact(cl, &q, on_chunk, &k, &st);
    fed_client_close(cl);
    expect_status(rc, &st, GRPC_STATUS_UNAUTHENTICATED, "made for member 'vnpt'");
    free(x.bytes);
}

static void restart_removes_cut_off_uploads(void **state)
{
    struct fx *f = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/artifacts/tmp/%064d.part", f->paths[0], 0);
    fx_write(path, "half a file", 0644);
    assert_int_equal(tmp_files(f), 1);
    fx_stop(f);
    fx_start(f);
    assert_int_equal(tmp_files(f), 0);
}

static void missing_lists_what_the_store_lacks(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 1000, 12);
    struct policy p;
    memset(&p, 0, sizeof p);
    p.model.init.present = 1;
    snprintf(p.model.init.file, sizeof p.model.init.file, "tiny/model.safetensors");
    memcpy(p.model.init.blake2b, x.hash, 32);
    p.model.tokenizer.present = 1;
    snprintf(p.model.tokenizer.file, sizeof p.model.tokenizer.file, "tiny/tokenizer.json");
    memset(p.model.tokenizer.blake2b, 0xcd, 32);
    char out[512], hex[65];
    hex_encode(x.hash, 32, hex);
    assert_int_equal(artifacts_missing(f->c, &p, out, sizeof out), 2);
    char want[512];
    snprintf(want, sizeof want, "model.init (tiny/model.safetensors, %.8s...), "
             "model.tokenizer (tiny/tokenizer.json, cdcdcdcd...)", hex);
    assert_string_equal(out, want);
    pin(f, &x);
    put_ok(f, &x, 0);
    assert_int_equal(artifacts_missing(f->c, &p, out, sizeof out), 1);
    assert_string_equal(out, "model.tokenizer (tiny/tokenizer.json, cdcdcdcd...)");
    /* The resolver finds the held one and names the command for the other. */
    char path[4096], why[400];
    assert_int_equal(artifacts_resolver(f->c, "model.init", &p.model.init, path, sizeof path,
                                        why, sizeof why), 0);
    assert_non_null(strstr(path, hex));
    assert_int_not_equal(artifacts_resolver(f->c, "model.tokenizer", &p.model.tokenizer, path,
                                            sizeof path, why, sizeof why), 0);
    assert_non_null(strstr(why, "aulac artifact put tiny/tokenizer.json"));
    free(x.bytes);
}

static void unpinned_upload_is_refused(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 2000, 13);
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, &x, NULL, 1000, NULL, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_FAILED_PRECONDITION, "propose the policy that pins it");
    assert_false(held(f, x.hash));
    expect_tmp_empty(f);
    pin(f, &x);
    put_ok(f, &x, 0);
    free(x.bytes);
}

static void store_cap_is_refused(void **state)
{
    struct fx *f = *state;
    f->c->opt.max_artifact_store_bytes = 25000;
    struct file a, b;
    file_make(&a, 15000, 14);
    file_make(&b, 15000, 15);
    pin(f, &a);
    pin(f, &b);
    put_ok(f, &a, 0);
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, &b, NULL, 0, NULL, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, "--max-artifact-store-bytes");
    assert_false(held(f, b.hash));
    expect_tmp_empty(f);
    b.len = 10000;   /* exactly up to the cap is fine */
    crypto_blake2b256(b.bytes, b.len, b.hash);
    pin(f, &b);
    put_ok(f, &b, 0);
    free(a.bytes);
    free(b.bytes);
}

static void unpinned_files_are_pruned(void **state)
{
    struct fx *f = *state;
    struct file keep, gone;
    file_make(&keep, 1000, 16);
    file_make(&gone, 1000, 17);
    pin(f, &keep);
    pin_for(f, gone.hash, NULL, ALL_MEMBERS, 1500, NULL);   /* expires in 1.5 s */
    put_ok(f, &keep, 0);
    put_ok(f, &gone, 0);
    assert_int_equal(artifacts_prune(f->c, time_now_unix_ms()), 0);   /* both pinned */
    assert_true(held(f, gone.hash));
    time_sleep_ms(1700);
    assert_int_equal(artifacts_prune(f->c, time_now_unix_ms()), 1);
    assert_false(held(f, gone.hash));
    assert_true(held(f, keep.hash));
    /* Expired: not taken again either. */
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st;
    int rc = put(f, FPT, &gone, NULL, 0, NULL, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_FAILED_PRECONDITION, "no open experiment proposal");
    free(keep.bytes);
    free(gone.bytes);
}

static void only_takers_part_get(void **state)
{
    struct fx *f = *state;
    struct file x;
    file_make(&x, 1000, 18);
    pin_for(f, NULL, x.hash, "[fpt, hust]", 0, NULL);   /* vnpt does not take part */
    put_ok(f, &x, 0);
    struct sink k;
    struct rpc_status st;
    int rc = get(f, VNPT, x.hash, 0, 0, &k, &st);
    free(k.buf);
    expect_status(rc, &st, GRPC_STATUS_PERMISSION_DENIED, "vnpt takes part in no experiment");
    assert_int_equal(get(f, HUST, x.hash, 0, 0, &k, &st), 0);
    assert_int_equal(k.got, x.len);
    free(k.buf);
    /* Once another experiment vnpt takes part in pins it too, vnpt gets it. */
    pin(f, &x);
    assert_int_equal(get(f, VNPT, x.hash, 0, 0, &k, &st), 0);
    free(k.buf);
    free(x.bytes);
}

/* --- an external experiment's files checked before it starts -------------------- */

/* A safetensors file of two F32 tensors (a [2,3] and b [4]) with v at a[1]. */
static void init_file(struct fx *f, const char *name, float v, struct file *x)
{
    float a[6] = { 0.5f, v, -1.0f, 0.25f, 2.0f, 1.5f }, b[4] = { 1, 2, 3, 4 };
    struct st_tensor t[2] = {
        { .name = "a", .dtype = ST_F32, .ndim = 2, .shape = { 2, 3 }, .data = a,
          .nbytes = sizeof a },
        { .name = "b", .dtype = ST_F32, .ndim = 1, .shape = { 4 }, .data = b,
          .nbytes = sizeof b },
    };
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", f->paths[0], name);
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), 0);
    assert_int_equal(file_read_all(path, 1 << 20, &x->bytes, &x->len), 0);
    crypto_blake2b256(x->bytes, x->len, x->hash);
}

/* Approves an external policy whose model.init pins x; its experiment id in id. */
static void approve_external(struct fx *f, const char *name, const struct file *x, char *id,
                             size_t cap)
{
    char hex[65], text[2048];
    hex_encode(x->hash, 32, hex);
    snprintf(text, sizeof text,
             "schema: 1\n"
             "metadata: {name: %s, proposer: hust, description: external}\n"
             "model: {family: external, init: {file: m.safetensors, blake2b: \"%s\"}, seed: 7}\n"
             "data: {min_tokens_per_member: 100, validation_fraction: 0.05}\n"
             "training:\n"
             "  rounds: 3\n  local_steps: 2\n  batch_size: 2\n  seq_len: 16\n"
             "  inner: {kind: adamw, lr: 0.001, weight_decay: 0.0, beta1: 0.9, beta2: 0.95,"
             " grad_clip: 1.0, warmup_steps: 0}\n"
             "  outer: {kind: fedavg, lr: 1.0}\n"
             "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n"
             "compression:\n"
             "  uplink: {method: topk, block_size: 4, k_per_block: 2, quant: int8,"
             " zstd_level: 1, error_feedback: false, dense_warmup_rounds: 0}\n"
             "  downlink: {method: none, quant: fp32}\n"
             "participation: {members: [fpt, vnpt, hust], min_members: 1,"
             " round_deadline_s: 600, grace_s: 1}\n", name, hex);
    uint8_t h[32];
    struct policy_error err;
    assert_int_equal(policy_identify("p.yaml", text, strlen(text), h, id, cap, &err), 0);
    fx_approve_policy(f, text);
}

static int wait_phase(struct fx *f, const char *id, int phase)
{
    for (int i = 0; i < 500; i++) {
        struct experiment_info e;
        int found = 0;
        assert_int_equal(queue_get(f->c, id, &e, &found), 0);
        int got = found ? e.phase : 0;
        if (found)
            experiment_info_free(&e);
        if (got == phase)
            return 1;
        time_sleep_ms(20);
    }
    return 0;
}

static void unfit_init_fails_the_experiment(void **state)
{
    struct fx *f = *state;
    struct file bad, good;
    init_file(f, "bad.safetensors", NAN, &bad);
    char id[80], id2[80];
    approve_external(f, "ext-bad", &bad, id, sizeof id);
    put_ok(f, &bad, 0);
    if (!wait_phase(f, id, PHASE_FAILED))
        fail_msg("an experiment whose init holds a NaN was not failed");
    /* The reason is recorded (experiment_failed); the queue moved on. */
    struct entry e;
    fx_last_entry(f, &e, NULL);
    assert_int_equal(e.type, ENTRY_EXPERIMENT_FAILED);
    if (!strstr(e.u.experiment.reason, "its pinned files fail the check") ||
        !strstr(e.u.experiment.reason, "tensor a holds NaN at index 1"))
        fail_msg("reason: %s", e.u.experiment.reason);
    entry_free(&e);
    /* A fit one starts (its model read by the timer without mu), round 0 = its tensors. */
    init_file(f, "good.safetensors", 3.0f, &good);
    approve_external(f, "ext-good", &good, id2, sizeof id2);
    put_ok(f, &good, 0);
    assert_true(fx_wait_running(f, id2));
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->n_params, 10);
    const float *p = f->c->rnd.base->params;   /* tensors sorted by name: a then b */
    assert_true(p[1] == 3.0f && p[6] == 1.0f && p[9] == 4.0f);
    assert_null(f->c->prepared);
    pthread_mutex_unlock(&f->c->mu);
    free(bad.bytes);
    free(good.bytes);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(good_upload_is_stored_and_served, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_is_already_held, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_hash_is_refused_and_nothing_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_stream_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(offsets_out_of_order_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(over_the_cap_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_upload_of_one_file_one_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(vanished_uploader_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(get_serves_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_hash_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(only_members_put_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_removes_cut_off_uploads, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_lists_what_the_store_lacks, setup, teardown),
        cmocka_unit_test_setup_teardown(unpinned_upload_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(store_cap_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unpinned_files_are_pruned, setup, teardown),
        cmocka_unit_test_setup_teardown(only_takers_part_get, setup, teardown),
        cmocka_unit_test_setup_teardown(unfit_init_fails_the_experiment, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
