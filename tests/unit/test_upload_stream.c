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

#include "proto/pb.h"
#include "proto/service.h"
#include "trust_fixture.h"

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

static void half_closed_upload_is_refused(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 3);
    assert_true(u.len > 2);
    struct rpc_channel *ch;
    struct rpc_stream *s = open_partial(f, &ch, &u, f->keys[FPT], u.len / 2);
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
    expect_still_serving(f, FPT, 4);
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
    expect_still_serving(f, VNPT, 6);
    upd_free(&u);
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
    struct signer s = { .key = f->keys[HUST] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st), 0);
    assert_false(r->accepted);
    if (!strstr(r->reason, "too large to aggregate"))
        fail_msg("the member was told \"%s\"", r->reason);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(half_closed_upload_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(vanished_uploader_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_update_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unauthenticated_refusals_are_recorded_at_a_bounded_rate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(resend_points_at_the_original_acceptance, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(update_over_the_norm_bound_is_refused, setup_bounded,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
