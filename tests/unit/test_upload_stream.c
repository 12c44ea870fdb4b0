/* A SubmitUpdate stream that ends early (the member half-closes before sending all
 * the bytes its signed header declares, or vanishes mid-stream) is refused with a
 * reason, recorded in the ledger, aggregates nothing, and the coordinator goes on
 * accepting the others. Drives a real in-process coordinator over loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>

#include <dirent.h>

#include "coordinator/spool.h"
#include "proto/pb.h"
#include "proto/service.h"
#include "trust_fixture.h"

/* Files in the coordinator's upload spool (data_dir/spool) and their bytes. */
static size_t spool_files(struct fx *f, uint64_t *bytes)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/spool", f->paths[0]);
    size_t n = 0;
    if (bytes)
        *bytes = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && bytes)
            *bytes += (uint64_t)st.st_size;
        n++;
    }
    closedir(d);
    return n;
}

/* Waits (up to 5 s) until the spool holds one file of `bytes` bytes: the coordinator has
 * taken the upload's header and written what was sent so far. */
static void wait_spooled(struct fx *f, uint64_t bytes)
{
    uint64_t got = 0;
    size_t n = 0;
    for (int i = 0; i < 500; i++) {
        n = spool_files(f, &got);
        if (n == 1 && got == bytes)
            return;
        time_sleep_ms(10);
    }
    fail_msg("the spool holds %zu file(s) of %" PRIu64 " bytes, not one of %" PRIu64, n, got,
             bytes);
}

/* Waits (up to 5 s) until no upload is in flight (its handler has given its place back). */
static void wait_no_upload(struct fx *f)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&f->c->mu);
        size_t n = f->c->n_uploading;
        pthread_mutex_unlock(&f->c->mu);
        if (n == 0)
            return;
        time_sleep_ms(10);
    }
    fail_msg("an upload is still in flight");
}

/* The accepted payload of u is the store file named by its hash, byte for byte. */
static void expect_stored(struct fx *f, const struct upd *u)
{
    char path[4300];
    payload_path(f->c, f->c->experiment, u->e.payload_hash, path, sizeof path);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 26, &bytes, &len), 0);
    assert_int_equal(len, u->len);
    assert_memory_equal(bytes, u->payload, len);
    free(bytes);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
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

/* Opens SubmitUpdate by hand, signed for k's member, and sends the header and
 * `send` payload bytes. */
static struct rpc_stream *open_partial(struct fx *f, struct rpc_channel **ch,
                                       struct upd *u, const struct crypto_key *k, size_t send)
{
    assert_int_equal(rpc_channel_open(f->addr, NULL, ch), 0);
    Aulac__V1__UpdateChunk first = AULAC__V1__UPDATE_CHUNK__INIT;
    first.part_case = AULAC__V1__UPDATE_CHUNK__PART_HEADER;
    first.header = &u->h;
    uint8_t *body;
    size_t body_len;
    assert_int_equal(pb_pack(&first.base, &body, &body_len), 0);
    struct request_statement st;
    uint8_t sig[64];
    assert_int_equal(request_sign_new(k, FED_METHOD_SUBMIT_UPDATE, body, body_len,
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
    struct rpc_stream *s;
    assert_int_equal(rpc_stream_open(*ch, FED_METHOD_SUBMIT_UPDATE, &o, &s), 0);
    assert_int_equal(rpc_stream_send(s, body, body_len), 0);
    free(body);
    Aulac__V1__UpdateChunk data = AULAC__V1__UPDATE_CHUNK__INIT;
    data.part_case = AULAC__V1__UPDATE_CHUNK__PART_DATA;
    data.data.data = u->payload;
    data.data.len = send;
    assert_int_equal(pb_stream_send(s, &data.base), 0);
    return s;
}

/* The upload still works for everyone afterwards. */
static void expect_still_serving(struct fx *f, int who, int salt)
{
    fx_submit_accepted(f, who, salt);
}

/* The payload streams to a spool file as it arrives (never whole in RAM); an upload that
 * stops halfway leaves no file behind, and an accepted one is in the payload store. */
static void half_closed_upload_is_refused(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 3);
    assert_true(u.len > 2);
    struct rpc_channel *ch;
    struct rpc_stream *s = open_partial(f, &ch, &u, f->keys[FPT], u.len / 2);
    wait_spooled(f, u.len / 2);
    assert_int_equal(rpc_stream_close_send(s), 0);
    ProtobufCMessage *m = NULL;
    assert_int_equal(pb_stream_recv(s, &aulac__v1__receipt__descriptor, &m), 0);
    Aulac__V1__Receipt *r = (Aulac__V1__Receipt *)m;
    assert_false(r->accepted);
    if (!strstr(r->reason, "truncated upload"))
        fail_msg("the member was told \"%s\"", r->reason);
    protobuf_c_message_free_unpacked(m, NULL);
    struct rpc_status st;
    assert_int_equal(rpc_stream_finish(s, &st), 0);
    rpc_channel_close(ch);
    fx_expect_rejection(f, "fpt", "truncated upload");
    fx_expect_nothing_aggregated(f);
    wait_no_upload(f);
    assert_int_equal(spool_files(f, NULL), 0);
    struct upd ok;
    upd_make(f, &ok, f->keys[FPT], 4);
    expect_still_serving(f, FPT, 4);
    expect_stored(f, &ok);
    assert_int_equal(spool_files(f, NULL), 0);
    upd_free(&ok);
    upd_free(&u);
}

static void vanished_uploader_is_recorded(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[VNPT], 5);
    struct rpc_channel *ch;
    uint64_t before = fx_ledger_size(f);
    struct rpc_stream *s = open_partial(f, &ch, &u, f->keys[VNPT], u.len / 3);
    /* Vanish only once the coordinator has checked the header and is reading the
     * payload (a member that vanishes before its header arrives left nothing to record). */
    time_sleep_ms(500);
    rpc_stream_cancel(s);
    struct rpc_status st;
    (void)rpc_stream_finish(s, &st);
    rpc_channel_close(ch);
    for (int i = 0; i < 100 && fx_ledger_size(f) == before; i++)
        time_sleep_ms(50);
    fx_expect_rejection(f, "vnpt", "upload cut off");
    fx_expect_nothing_aggregated(f);
    wait_no_upload(f);
    assert_int_equal(spool_files(f, NULL), 0);
    expect_still_serving(f, VNPT, 6);
    upd_free(&u);
}

/* After the header, each message must carry data and nothing else. A chunk that breaks
 * that is refused with a Receipt naming it and recorded; a chunk the coordinator cannot
 * split into its data and the rest (data given twice, truncated) ends the call
 * (INVALID_ARGUMENT, not judged). The chunks' data is stored from
 * gRPC's buffers (pb_call_recv_bulk): an update then sent in chunks of 7 bytes is stored
 * byte for byte. */
static void malformed_chunks_are_refused(void **state)
{
    struct fx *f = *state;
    static const uint8_t both[] = {0x0a, 0x00, 0x12, 0x01, 0xaa};      /* header, data */
    static const uint8_t twice[] = {0x12, 0x01, 0xaa, 0x12, 0x01, 0xbb}; /* data twice */
    static const uint8_t trunc[] = {0x12, 0x05, 0xaa};                  /* 5 bytes said */
    const struct {
        const uint8_t *bytes;
        size_t len;
        const char *told;       /* in the Receipt and the ledger; NULL: the call fails */
    } cases[] = {
        {both, sizeof both, "a chunk with both a header and data"},
        {(const uint8_t *)"", 0, "a chunk without the data field"},
        {NULL, 0, "a second header in one upload"},    /* the header again */
        {twice, sizeof twice, NULL},
        {trunc, sizeof trunc, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct upd u;
        upd_make(f, &u, f->keys[FPT], 20 + (int)i);
        struct rpc_channel *ch;
        uint64_t before = fx_ledger_size(f);
        struct rpc_stream *s = open_partial(f, &ch, &u, f->keys[FPT], u.len / 2);
        wait_spooled(f, u.len / 2);
        if (cases[i].bytes) {
            assert_int_equal(rpc_stream_send(s, cases[i].bytes, cases[i].len), 0);
        } else {
            Aulac__V1__UpdateChunk again = AULAC__V1__UPDATE_CHUNK__INIT;
            again.part_case = AULAC__V1__UPDATE_CHUNK__PART_HEADER;
            again.header = &u.h;
            assert_int_equal(pb_stream_send(s, &again.base), 0);
        }
        (void)rpc_stream_close_send(s);
        ProtobufCMessage *m = NULL;
        int rc = pb_stream_recv(s, &aulac__v1__receipt__descriptor, &m);
        struct rpc_status st;
        if (cases[i].told) {
            assert_int_equal(rc, 0);
            Aulac__V1__Receipt *r = (Aulac__V1__Receipt *)m;
            assert_false(r->accepted);
            if (!strstr(r->reason, "malformed upload stream") || !strstr(r->reason, cases[i].told))
                fail_msg("case %zu: the member was told \"%s\"", i, r->reason);
            protobuf_c_message_free_unpacked(m, NULL);
            assert_int_equal(rpc_stream_finish(s, &st), 0);
            fx_expect_rejection(f, "fpt", cases[i].told);
        } else {
            assert_int_not_equal(rc, 0);
            assert_int_not_equal(rpc_stream_finish(s, &st), 0);
            assert_int_equal(st.code, GRPC_STATUS_INVALID_ARGUMENT);
            assert_int_equal(fx_ledger_size(f), before);
        }
        rpc_channel_close(ch);
        wait_no_upload(f);
        assert_int_equal(spool_files(f, NULL), 0);
        upd_free(&u);
    }
    fx_expect_nothing_aggregated(f);
    struct upd ok;
    upd_make(f, &ok, f->keys[FPT], 40);
    Aulac__V1__Receipt *r = fx_send(f, FPT, &ok, 7);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    expect_stored(f, &ok);
    upd_free(&ok);
}

/* A finite but enormous update must not poison the aggregate: refused before it is
 * accumulated, so the round (and every later restart) goes on. */
static void oversized_update_is_refused(void **state)
{
    struct fx *f = *state;
    struct coord *c = f->c;
    size_t n = c->n_params;
    float *delta = malloc(n * sizeof *delta);
    assert_non_null(delta);
    for (size_t i = 0; i < n; i++)
        delta[i] = (i % 2 ? 3e38f : -3e38f);   /* finite; times the weight it is not */
    struct upd u;
    upd_make(f, &u, f->keys[HUST], 8);
    free(u.payload);
    struct policy_round_plan plan;
    assert_int_equal(policy_round_plan(&c->policy, u.e.round, &plan, NULL, 0), 0);
    assert_int_equal(codec_encode(delta, n, &plan.uplink, NULL, &u.payload, &u.len), 0);
    free(delta);
    crypto_blake2b256(u.payload, u.len, u.e.payload_hash);
    u.e.payload_bytes = u.len;
    upd_sign(&u, f->keys[HUST]);
    Aulac__V1__Receipt *r = fx_send(f, HUST, &u, 0);
    assert_false(r->accepted);
    if (!strstr(r->reason, "too large to aggregate"))
        fail_msg("the member was told \"%s\"", r->reason);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fx_expect_rejection(f, "hust", "too large to aggregate");
    fx_expect_nothing_aggregated(f);
    expect_still_serving(f, HUST, 9);
    upd_free(&u);
}

/* A member whose receipt was lost sends the same update again: refused and recorded
 * as a replay, counted once, and the receipt points at the original acceptance. */
static void resend_points_at_the_original_acceptance(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[VNPT] };
    struct upd u;
    upd_make(f, &u, f->keys[VNPT], 12);
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st), 0);
    assert_true(r->accepted);
    assert_false(r->duplicate);
    uint64_t original = r->ledger_index;
    aulac__v1__receipt__free_unpacked(r, NULL);
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st), 0);
    assert_false(r->accepted);
    assert_true(r->duplicate);
    assert_int_equal(r->accepted_index, original);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    fx_expect_rejection(f, "vnpt", "was already accepted");
    size_t n;
    (void)fx_accepted_weight(f, &n);
    assert_int_equal(n, 1);
    upd_free(&u);
}

/* Anyone can send unsigned uploads; they are all refused, but only so many a minute
 * are written to the ledger, which must not grow without bound. */
static void unauthenticated_refusals_are_recorded_at_a_bounded_rate(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 13);
    uint64_t before = fx_ledger_size(f);
    struct fed_client *cl = fx_client(f, NULL);     /* no signature on the request */
    for (int i = 0; i < COORD_REFUSALS_PER_MINUTE + 15; i++) {
        Aulac__V1__Receipt *r = NULL;
        struct rpc_status st;
        assert_int_not_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_UNAUTHENTICATED);
    }
    fed_client_close(cl);
    uint64_t grown = fx_ledger_size(f) - before;
    assert_true(grown >= 1);
    assert_true(grown <= COORD_REFUSALS_PER_MINUTE);
    fx_expect_nothing_aggregated(f);
    expect_still_serving(f, FPT, 14);
    upd_free(&u);
}

/* The same fixture with a norm bound in the policy. */
static int setup_bounded(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
    const char *from = "norm_bound: 0}", *to = "norm_bound: 0.01}";
    const char *at = strstr(fx_policy, from);
    assert_non_null(at);
    char text[sizeof fx_policy + 16];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - fx_policy), fx_policy, to,
             at + strlen(from));
    fx_write(f->paths[3], text, 0644);
    fx_start(f);
    *state = f;
    return 0;
}

static void update_over_the_norm_bound_is_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT] };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 11);
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st), 0);
    assert_false(r->accepted);
    if (!strstr(r->reason, "exceeds the policy's aggregation.norm_bound 0.01"))
        fail_msg("the member was told \"%s\"", r->reason);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    fx_expect_rejection(f, "fpt", "norm_bound");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

/* A second upload of a member whose first is still streaming is refused at its header
 * (nothing recorded: the update was not judged); once the first ends, it goes through. */
static void one_upload_per_member_at_a_time(void **state)
{
    struct fx *f = *state;
    struct upd first, second;
    upd_make(f, &first, f->keys[FPT], 21);
    upd_make(f, &second, f->keys[FPT], 22);
    struct rpc_channel *ch;
    struct rpc_stream *s = open_partial(f, &ch, &first, f->keys[FPT], first.len / 2);
    wait_spooled(f, first.len / 2);
    uint64_t before = fx_ledger_size(f);
    struct signer sg = { .key = f->keys[FPT] };
    struct fed_client *cl = fx_client(f, &sg);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc = fed_submit_update(cl, &second.h, second.payload, second.len, 0, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_ABORTED, "member fpt already has an upload in progress");
    assert_non_null(strstr(st.details, "one upload per member at a time"));
    assert_int_equal(fx_ledger_size(f), before);
    rpc_stream_cancel(s);
    (void)rpc_stream_finish(s, &st);
    rpc_channel_close(ch);
    wait_no_upload(f);
    assert_int_equal(fed_submit_update(cl, &second.h, second.payload, second.len, 0, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    expect_stored(f, &second);
    upd_free(&first);
    upd_free(&second);
}

/* --max-uploads 1: while one member's upload streams, another's is refused at its header
 * with "retry later", and goes through once the first is done. */
static int setup_one_upload(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
    f->opt.max_uploads = 1;
    fx_start(f);
    *state = f;
    return 0;
}

static void uploads_past_the_cap_retry_later(void **state)
{
    struct fx *f = *state;
    struct upd first, other;
    upd_make(f, &first, f->keys[FPT], 31);
    upd_make(f, &other, f->keys[VNPT], 32);
    struct rpc_channel *ch;
    struct rpc_stream *s = open_partial(f, &ch, &first, f->keys[FPT], first.len / 2);
    wait_spooled(f, first.len / 2);
    uint64_t before = fx_ledger_size(f);
    struct signer sg = { .key = f->keys[VNPT] };
    struct fed_client *cl = fx_client(f, &sg);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc = fed_submit_update(cl, &other.h, other.payload, other.len, 0, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, "the coordinator is receiving 1 "
                  "uploads, the most it takes at once (aulac-coordinator --max-uploads 1); "
                  "retry later");
    assert_int_equal(fx_ledger_size(f), before);
    /* The first completes; then the other member's upload is taken. */
    Aulac__V1__UpdateChunk data = AULAC__V1__UPDATE_CHUNK__INIT;
    data.part_case = AULAC__V1__UPDATE_CHUNK__PART_DATA;
    data.data.data = first.payload + first.len / 2;
    data.data.len = first.len - first.len / 2;
    assert_int_equal(pb_stream_send(s, &data.base), 0);
    assert_int_equal(rpc_stream_close_send(s), 0);
    ProtobufCMessage *m = NULL;
    assert_int_equal(pb_stream_recv(s, &aulac__v1__receipt__descriptor, &m), 0);
    assert_true(((Aulac__V1__Receipt *)m)->accepted);
    protobuf_c_message_free_unpacked(m, NULL);
    (void)rpc_stream_finish(s, &st);
    rpc_channel_close(ch);
    wait_no_upload(f);
    assert_int_equal(fed_submit_update(cl, &other.h, other.payload, other.len, 0, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    expect_stored(f, &first);
    expect_stored(f, &other);
    upd_free(&first);
    upd_free(&other);
}

/* A disk without room for the declared payload_bytes plus the margin the coordinator
 * keeps free: refused at the header, before a payload byte is read, with the numbers. The
 * margin (--upload-free-margin) is set past any disk's size here. */
static int setup_full_disk(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
    f->opt.upload_free_margin_bytes = 1ULL << 60;
    fx_start(f);
    *state = f;
    return 0;
}

static void upload_refused_when_the_disk_lacks_room(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[HUST], 41);
    uint64_t before = fx_ledger_size(f);
    struct signer sg = { .key = f->keys[HUST] };
    struct fed_client *cl = fx_client(f, &sg);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc = fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st);
    char want[96];
    snprintf(want, sizeof want, "too little free space for this upload: payload_bytes %zu",
             u.len);
    expect_status(rc, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, want);
    /* The numbers: what must stay free is the margin plus the close's files. */
    char close_part[200], close_w[32];
    pthread_mutex_lock(&f->c->mu);
    const uint64_t close_b = f->c->close_reserve_bytes;
    pthread_mutex_unlock(&f->c->mu);
    assert_true(close_b > 0);
    file_size_words(close_b, close_w, sizeof close_w);
    snprintf(close_part, sizeof close_part, " must stay free (%s for the round close's files, "
             "1099511627776 MiB margin: --upload-free-margin); retry later", close_w);
    if (!strstr(st.details, close_part))
        fail_msg("'%s' lacks '%s'", st.details, close_part);
    fed_client_close(cl);
    assert_int_equal(fx_ledger_size(f), before);
    assert_int_equal(spool_files(f, NULL), 0);
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

/* What a round close writes (models_close_write_bytes) with n = n_params floats:
 * checkpoint 4n + 512 per tensor, the outer state file, 4n of downlink residual with
 * error feedback, 32 + 4n of downlink update with downlink on, 4n of the next base
 * model's (unnamed) file, and 1 MiB of slack (the fixture pins no config or tokenizer). */
static uint64_t close_formula(const struct coord *c)
{
    const uint64_t f4 = 4 * (uint64_t)c->n_params;
    return f4 + 512 * (uint64_t)c->layout.n_tensors + outer_state_bytes(&c->rnd.outer) +
           (c->down_ef ? f4 : 0) + (c->down_on ? 32 + f4 : 0) + f4 + (1u << 20);
}

/* A margin that leaves room for the payload but not for the payload and the round
 * close's files is refused, with the numbers: the close reserve (here set past any
 * disk's size, as the margin is in the test above) is kept free beside the margin, and
 * with the experiment's own reserve the same upload is accepted. */
static void upload_refused_when_the_close_would_lack_room(void **state)
{
    struct fx *f = *state;
    pthread_mutex_lock(&f->c->mu);
    const uint64_t reserve = f->c->close_reserve_bytes;
    assert_int_equal(reserve, close_formula(f->c));
    assert_true(reserve > 4 * (uint64_t)f->c->n_params);
    f->c->opt.upload_free_margin_bytes = 1 << 20;   /* fits the payload on any test disk */
    f->c->close_reserve_bytes = 1ULL << 60;
    pthread_mutex_unlock(&f->c->mu);
    struct upd u;
    upd_make(f, &u, f->keys[HUST], 43);
    uint64_t before = fx_ledger_size(f);
    struct signer sg = { .key = f->keys[HUST] };
    struct fed_client *cl = fx_client(f, &sg);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc = fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st);
    char want[96];
    snprintf(want, sizeof want, "too little free space for this upload: payload_bytes %zu",
             u.len);
    expect_status(rc, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, want);
    if (!strstr(st.details, "0 bytes reserved by the uploads in progress, and "
                            "1099511627777 MiB must stay free (1099511627776 MiB for the round "
                            "close's files, 1 MiB margin: --upload-free-margin); retry later"))
        fail_msg("the refusal does not give the numbers: '%s'", st.details);
    assert_int_equal(fx_ledger_size(f), before);
    assert_int_equal(spool_files(f, NULL), 0);
    fx_expect_nothing_aggregated(f);
    pthread_mutex_lock(&f->c->mu);
    f->c->close_reserve_bytes = reserve;
    pthread_mutex_unlock(&f->c->mu);
    rc = fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st);
    assert_int_equal(rc, 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    upd_free(&u);
}

/* A crash leaves unacknowledged spool files: the next start removes them; an accepted
 * update survives the restart (its row and its store file) and the round closes from the
 * store. */
static void restart_cleans_the_spool_and_keeps_accepted_updates(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 51);
    fx_submit_accepted(f, FPT, 51);
    char stray[400];
    snprintf(stray, sizeof stray, "%s/spool/upload-0123456789abcdef.part", f->paths[0]);
    fx_write(stray, "half an upload", 0644);
    fx_stop(f);
    fx_start(f);
    assert_int_equal(spool_files(f, NULL), 0);
    size_t n;
    (void)fx_accepted_weight(f, &n);
    assert_int_equal(n, 1);
    expect_stored(f, &u);
    pthread_mutex_lock(&f->c->mu);
    uint64_t round = f->c->rnd.number;
    pthread_mutex_unlock(&f->c->mu);
    fx_submit_accepted(f, VNPT, 52);
    fx_submit_accepted(f, HUST, 53);   /* the last one: the round closes */
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->rnd.number, round + 1);
    pthread_mutex_unlock(&f->c->mu);
    expect_stored(f, &u);              /* kept for export and credits verify */
    upd_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(half_closed_upload_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(vanished_uploader_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_chunks_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_update_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unauthenticated_refusals_are_recorded_at_a_bounded_rate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(resend_points_at_the_original_acceptance, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(update_over_the_norm_bound_is_refused, setup_bounded,
                                        teardown),
        cmocka_unit_test_setup_teardown(one_upload_per_member_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(uploads_past_the_cap_retry_later, setup_one_upload,
                                        teardown),
        cmocka_unit_test_setup_teardown(upload_refused_when_the_close_would_lack_room, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upload_refused_when_the_disk_lacks_room, setup_full_disk,
                                        teardown),
        cmocka_unit_test_setup_teardown(restart_cleans_the_spool_and_keeps_accepted_updates,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
