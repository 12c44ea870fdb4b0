/* Request authentication and every refusal path of an update, against a real
 * coordinator in this process (tests/unit/trust_fixture.h): for each, the error
 * the member sees, the ledger's rejection entry, and that nothing was aggregated.
 * Also the request statement's test vectors (crypto/README.md) and the replay
 * cache's bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "common/hex.h"
#include "common/log.h"
#include "coordinator/replay.h"
#include "proto/service.h"
#include "tests/support/rpc_attack.h"
#include "trust_fixture.h"

static void unhex(const char *h, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(h), 2 * n);
    assert_int_equal(hex_decode(h, out, n), 0);
}

/* --- the statement ------------------------------------------------------------- */

static void request_vector(void **state)
{
    (void)state;
    uint8_t seed[32], sig[64], d[32], want[64];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed("fpt", seed, &k), 0);
    struct request_statement s = { 0 };
    strcpy(s.method, "/aulac.v1.Federation/GetTask");
    strcpy(s.member, "fpt");
    s.timestamp_unix_ms = 1767225600000;
    for (int i = 0; i < 16; i++)
        s.nonce[i] = (uint8_t)(0xf0 + i);
    request_body_digest("example request", 15, s.body_digest);
    uint8_t hdr[REQUEST_HEADER_MAX];
    size_t len;
    assert_int_equal(request_encode(&s, hdr, sizeof hdr, &len), 0);
    assert_int_equal(len, 108);
    assert_int_equal(request_digest(&s, d), 0);
    unhex("79c62705c52a03d43f83f7a9555e5110e6c910bff0d7ff3a118a07d2afc068a3", want, 32);
    assert_memory_equal(d, want, 32);
    assert_int_equal(request_sign(&s, k, sig), 0);
    unhex("b019e4e3a708f623bf015c42a0e229a0788dc9b2ee5111b10822df835c7fdbae"
          "ed82f5f1f9a9123cead7b146f203c2404063338ba220d0cdf6537da409a7b00a", want, 64);
    assert_memory_equal(sig, want, 64);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    assert_int_equal(request_verify(&s, pk.key, sig), 0);
    s.body_digest[0] ^= 1;
    assert_int_equal(request_verify(&s, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    s.body_digest[0] ^= 1;
    strcpy(s.method, "/aulac.v1.Federation/Vote");   /* same signature, other method */
    assert_int_equal(request_verify(&s, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    strcpy(s.member, "vnpt");
    assert_int_equal(request_sign(&s, k, sig), CRYPTO_ERR_KEY_MISMATCH);
    strcpy(s.method, "GetTask");                        /* not a path */
    strcpy(s.member, "fpt");
    assert_int_equal(request_encode(&s, hdr, sizeof hdr, &len), CRYPTO_ERR_ARG);
    crypto_key_free(k);
}

/* --- the replay cache ------------------------------------------------------------ */

static void key_of(int i, uint8_t k[REPLAY_KEY_BYTES])
{
    uint8_t d[32];
    crypto_blake2b256(&i, sizeof i, d);   /* uniform, like the real keys */
    memcpy(k, d, REPLAY_KEY_BYTES);
}

static void replay_cache_bounds(void **state)
{
    (void)state;
    const int64_t W = 1000;
    struct replay_cache *rc = replay_new(4);
    assert_non_null(rc);
    uint8_t k[REPLAY_KEY_BYTES];
    for (int i = 0; i < 4; i++) {
        key_of(i, k);
        assert_int_equal(replay_check(rc, k, 100 + i, 100, W), REPLAY_FRESH);
    }
    key_of(2, k);
    assert_int_equal(replay_check(rc, k, 102, 100, W), REPLAY_SEEN);
    assert_int_equal(replay_size(rc), 4);
    /* full: the oldest (ts 100) goes, and the floor rises to it */
    key_of(10, k);
    assert_int_equal(replay_check(rc, k, 150, 100, W), REPLAY_FRESH);
    assert_int_equal(replay_size(rc), 4);
    assert_int_equal(replay_floor_ms(rc), 100);
    key_of(0, k);   /* the evicted key: refused by the floor, never accepted twice */
    assert_int_equal(replay_check(rc, k, 100, 100, W), REPLAY_TOO_OLD);
    key_of(11, k);  /* a new key older than what is held: evicts ts 101, then refused */
    assert_int_equal(replay_check(rc, k, 101, 100, W), REPLAY_TOO_OLD);
    assert_int_equal(replay_floor_ms(rc), 101);
    /* keys older than now - window leave by themselves */
    key_of(20, k);
    assert_int_equal(replay_check(rc, k, 5000, 5000, W), REPLAY_FRESH);
    assert_int_equal(replay_size(rc), 1);
    key_of(20, k);
    assert_int_equal(replay_check(rc, k, 5000, 5500, W), REPLAY_SEEN);
    replay_free(rc);

    /* many keys, a small cache: memory stays put and no key is accepted twice */
    rc = replay_new(64);
    int fresh = 0;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1000; i++) {
            key_of(i, k);
            fresh += replay_check(rc, k, 10000 + i, 10000, 1000000) == REPLAY_FRESH;
        }
    assert_int_equal(fresh, 1000);
    assert_int_equal(replay_size(rc), 64);
    replay_free(rc);
}

/* --- in-process coordinator ---------------------------------------------------- */

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

/* Submits u through a client signing with s; returns rc, receipt in *r. */
static int submit(struct fx *f, struct signer *s, struct upd *u, Aulac__V1__Receipt **r,
                  struct rpc_status *st)
{
    struct fed_client *cl = fx_client(f, s);
    int rc = fed_submit_update(cl, &u->h, u->payload, u->len, 0, r, st);
    fed_client_close(cl);
    return rc;
}

/* The refusal comes as a receipt with accepted = 0 and the reason. */
static void expect_receipt_refusal(int rc, Aulac__V1__Receipt *r, const char *pat)
{
    assert_int_equal(rc, 0);
    assert_non_null(r);
    assert_false(r->accepted);
    if (!strstr(r->reason, pat))
        fail_msg("receipt reason \"%s\" lacks \"%s\"", r->reason, pat);
    aulac__v1__receipt__free_unpacked(r, NULL);
}

static void accepted_baseline(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT] };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 1);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(submit(f, &s, &u, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    size_t n;
    assert_true(fx_accepted_weight(f, &n) > 0);
    assert_int_equal(n, 1);
    struct entry e;
    fx_last_entry(f, &e, NULL);
    assert_int_equal(e.type, ENTRY_UPDATE_ACCEPTED);
    entry_free(&e);
    upd_free(&u);
}

static void unsigned_request_refused(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 2);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc = submit(f, NULL, &u, &r, &st);
    expect_status(rc, &st, GRPC_STATUS_UNAUTHENTICATED, "unsigned request");
    fx_expect_rejection(f, "fpt", "unsigned request");
    fx_expect_nothing_aggregated(f);
    /* the other member RPCs too */
    struct fed_client *cl = fx_client(f, NULL);
    Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
    q.member_id = "fpt";
    Aulac__V1__Task *t = NULL;
    expect_status(fed_get_task(cl, &q, &t, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "unsigned request");
    fed_client_close(cl);
    upd_free(&u);
}

/* Issue 10, item 1: one anonymous client opens 64 uploads (--max-calls) and sends
 * nothing. Members' signed calls and Status must still be answered. */
static void silent_uploads_do_not_stall_members(void **state)
{
    struct fx *f = *state;
    struct attack_channel *holder = attack_connect("127.0.0.2", f->c->port);
    assert_non_null(holder);
    struct attack_call *calls[64];
    for (int i = 0; i < 64; i++)
        calls[i] = attack_call_start(holder, FED_METHOD_SUBMIT_UPDATE, NULL, 0, 60000);
    char why[400] = "";
    int refused = attack_calls_wait_ended(calls, 64, 56, 5000, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                          "too many calls from ipv4:127.0.0.2", why, sizeof why);
    if (refused < 0)
        fail_msg("%s", why);
    int held = 64 - refused;
    printf("    silent uploads held by one client: %d of 64\n", held);

    struct signer s = { .key = f->keys[FPT] };
    struct fed_client *cl = fx_client(f, &s);
    struct rpc_status st;
    Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
    q.member_id = "fpt";
    q.wait_ms = 10;
    Aulac__V1__Task *t = NULL;
    int rc = fed_get_task(cl, &q, &t, &st);
    if (rc != 0)
        fail_msg("GetTask: %s", st.details);
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__TRAIN);
    aulac__v1__task__free_unpacked(t, NULL);
    Aulac__V1__StatusRequest sq = AULAC__V1__STATUS_REQUEST__INIT;
    Aulac__V1__StatusReply *sr = NULL;
    rc = fed_status(cl, &sq, &sr, &st);
    if (rc != 0)
        fail_msg("Status: %s", st.details);
    aulac__v1__status_reply__free_unpacked(sr, NULL);
    fed_client_close(cl);
    assert_true(held <= 8);
    for (int i = 0; i < 64; i++)
        attack_call_free(calls[i]);
    attack_close(holder);
}

static void unknown_key_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[UET] };     /* not in the roster */
    struct upd u;
    upd_make(f, &u, f->keys[UET], 3);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    expect_status(submit(f, &s, &u, &r, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "unknown member 'uet'");
    fx_expect_rejection(f, "uet", "unknown member 'uet'");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

static void bad_request_signature_refused(void **state)
{
    struct fx *f = *state;
    /* fpt's name, vnpt's key: the request does not verify with fpt's roster key. As the
     * key id names it, that key is not fpt's roster key: no retry cures it. */
    struct signer s = { .key = f->keys[VNPT], .claim = "fpt" };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 4);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    expect_status(submit(f, &s, &u, &r, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "which is not in the roster");
    fx_expect_rejection(f, "fpt", "bad signature");
    fx_expect_nothing_aggregated(f);
    /* with no key id, or fpt's own: a bad signature, which a fresh request may cure */
    struct crypto_public_key pk;
    crypto_key_public(f->keys[FPT], &pk);
    const char *ids[] = { "", pk.key_id };
    for (int i = 0; i < 2; i++) {
        s.key_id = ids[i];
        expect_status(submit(f, &s, &u, &r, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                      "bad signature: the request does not verify with member 'fpt''s");
        fx_expect_rejection(f, "fpt", "bad signature");
    }
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

static void bad_envelope_signature_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT] };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 5);
    u.sig[10] ^= 0x40;   /* the request is fine; the envelope's signature is not */
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc;
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "bad signature: the update envelope");
    fx_expect_rejection(f, "fpt", "bad signature: the update envelope");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

static void signer_and_body_differ_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[VNPT] };    /* vnpt signs an upload in fpt's name */
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 6);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    expect_status(submit(f, &s, &u, &r, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "signed by 'vnpt' but made for member 'fpt'");
    fx_expect_rejection(f, "fpt", "made for member 'fpt'");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

/* Wrong experiment, round or base model: signed correctly, refused by the round. */
static void wrong_experiment_round_base_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT] };
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc;
    struct upd u;

    upd_make(f, &u, f->keys[FPT], 7);
    snprintf(u.e.experiment, sizeof u.e.experiment, "another-experiment");
    upd_sign(&u, f->keys[FPT]);
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "unknown experiment 'another-experiment'");
    fx_expect_rejection(f, "fpt", "unknown experiment");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);

    upd_make(f, &u, f->keys[FPT], 8);
    u.e.round = 2;
    upd_sign(&u, f->keys[FPT]);
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "round 2 is not open yet");
    fx_expect_rejection(f, "fpt", "round 2 is not open yet");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);

    upd_make(f, &u, f->keys[FPT], 9);
    u.e.base_model_hash[0] ^= 1;
    upd_sign(&u, f->keys[FPT]);
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "trained from another model");
    fx_expect_rejection(f, "fpt", "trained from another model");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

static void payload_byte_changed_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT] };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 10);
    u.payload[u.len / 2] ^= 0x01;   /* after signing */
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc;
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "altered after signing");
    fx_expect_rejection(f, "fpt", "altered after signing");
    fx_expect_nothing_aggregated(f);
    upd_free(&u);
}

static void replayed_envelope_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT] };
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 11);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc;
    assert_int_equal(submit(f, &s, &u, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    size_t n;
    double sum = fx_accepted_weight(f, &n);
    assert_int_equal(n, 1);
    /* the same signed envelope and payload again, in a fresh (validly signed) request */
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "already accepted");
    fx_expect_rejection(f, "fpt", "already accepted");
    assert_true(fx_accepted_weight(f, &n) == sum);   /* counted once */
    assert_int_equal(n, 1);
    upd_free(&u);
}

static void replayed_request_nonce_refused(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[FPT], .fixed = 1, .ts = time_now_unix_ms() };
    randombytes_buf(s.nonce, sizeof s.nonce);
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 12);
    u.e.round = 2;                  /* refused by the round, after authentication */
    upd_sign(&u, f->keys[FPT]);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc;
    rc = submit(f, &s, &u, &r, &st);
    expect_receipt_refusal(rc, r, "not open yet");
    /* the identical request, byte for byte, nonce included */
    expect_status(submit(f, &s, &u, &r, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "replayed request");
    fx_expect_rejection(f, "fpt", "replayed request");
    fx_expect_nothing_aggregated(f);
    /* and on a unary RPC */
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
    q.member_id = "fpt";
    q.have_round = 1;
    q.after_round = 100;
    q.wait_ms = 0;
    Aulac__V1__Task *t = NULL;
    s.nonce[0] ^= 0x80;
    assert_int_equal(fed_get_task(cl, &q, &t, &st), 0);
    aulac__v1__task__free_unpacked(t, NULL);
    expect_status(fed_get_task(cl, &q, &t, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "replayed request");
    fed_client_close(cl);
    upd_free(&u);
}

/* Join is authenticated once, by the request signature and the replay cache of every
 * member RPC: a JoinRequest that carries only its member id is accepted (its own
 * timestamp, nonce and signature fields are not read); the identical request again is
 * refused as a replayed request; a fresh request with the same body is accepted (no
 * second nonce window on the body). */
static void join_authenticated_once(void **state)
{
    struct fx *f = *state;
    struct signer s = { .key = f->keys[VNPT], .fixed = 1, .ts = time_now_unix_ms() };
    randombytes_buf(s.nonce, sizeof s.nonce);
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__JoinRequest jq = AULAC__V1__JOIN_REQUEST__INIT;
    jq.member_id = "vnpt";
    uint8_t body_nonce[16] = { 7 };
    jq.nonce.data = body_nonce;     /* the same in every request below */
    jq.nonce.len = sizeof body_nonce;
    Aulac__V1__JoinReply *jr = NULL;
    struct rpc_status st;
    assert_int_equal(fed_join(cl, &jq, &jr, &st), 0);
    if (!jr->accepted)
        fail_msg("join refused: %s", jr->reason);
    assert_string_equal(jr->experiment_id, f->c->experiment);
    aulac__v1__join_reply__free_unpacked(jr, NULL);
    /* the identical request, byte for byte, request nonce included: refused once */
    expect_status(fed_join(cl, &jq, &jr, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "replayed request");
    /* a fresh request nonce, the same join body: accepted */
    s.nonce[0] ^= 0x80;
    assert_int_equal(fed_join(cl, &jq, &jr, &st), 0);
    if (!jr->accepted)
        fail_msg("a fresh request with the same join body was refused: %s", jr->reason);
    aulac__v1__join_reply__free_unpacked(jr, NULL);
    /* signed by fpt, made for vnpt: refused by the one path */
    struct signer other = { .key = f->keys[FPT] };
    struct fed_client *co = fx_client(f, &other);
    expect_status(fed_join(co, &jq, &jr, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "signed by 'fpt' but made for member 'vnpt'");
    fed_client_close(co);
    fed_client_close(cl);
}

/* --- replays across restarts ------------------------------------------------------ */

extern char **environ;

/* Starts this build's aulac-coordinator (BUILD/tests/.. holds it) on f's files and
 * sets f->addr; returns its pid. No --policy: it serves idle (nothing approved yet),
 * and authenticates requests all the same. */
static pid_t spawn_coordinator(struct fx *f)
{
    char exe[4096], bin[4096], port_file[300];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    snprintf(bin, sizeof bin, "%s/aulac-coordinator", dirname(dirname(exe)));
    snprintf(port_file, sizeof port_file, "%s/port", f->dir);
    unlink(port_file);
    char *argv[] = { bin, "--data-dir", f->paths[0], "--key", f->paths[1], "--roster",
                     f->paths[2], "--listen", "127.0.0.1:0",
                     "--port-file", port_file, "--insecure", NULL };
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, bin, NULL, NULL, argv, environ), 0);
    uint8_t *text = NULL;
    size_t len = 0;
    for (int i = 0; i < 300 && !text; i++) {   /* up to 30 s */
        if (file_read_all(port_file, 32, &text, &len) != 0 || len == 0) {
            free(text);
            text = NULL;
            time_sleep_ms(100);
        }
    }
    if (!text)
        fail_msg("%s did not start", bin);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", atoi((char *)text));
    free(text);
    return pid;
}

static int get_task_as(struct fx *f, struct signer *s, struct rpc_status *st)
{
    struct fed_client *cl = fx_client(f, s);
    Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
    q.member_id = "fpt";
    q.wait_ms = 0;
    Aulac__V1__Task *t = NULL;
    int rc = fed_get_task(cl, &q, &t, st);
    if (t)
        aulac__v1__task__free_unpacked(t, NULL);
    fed_client_close(cl);
    return rc;
}

/* A request accepted just before the coordinator dies (kill -9) or stops is refused
 * when replayed to the restarted one, inside the timestamp window. */
static void replayed_request_refused_after_restart(void **state)
{
    (void)state;
    struct fx f;
    fx_prepare(&f);
    struct signer a = { .key = f.keys[FPT], .fixed = 1, .ts = time_now_unix_ms() };
    struct signer b = { .key = f.keys[FPT], .fixed = 1, .ts = time_now_unix_ms() };
    randombytes_buf(a.nonce, sizeof a.nonce);
    randombytes_buf(b.nonce, sizeof b.nonce);
    struct rpc_status st;

    pid_t pid = spawn_coordinator(&f);
    assert_int_equal(get_task_as(&f, &a, &st), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    fx_start(&f);                     /* same data directory, in this process */
    expect_status(get_task_as(&f, &a, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "replayed request");
    assert_int_equal(get_task_as(&f, &b, &st), 0);   /* a fresh nonce still works */
    fx_stop(&f);

    fx_start(&f);                     /* an orderly restart */
    expect_status(get_task_as(&f, &a, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "replayed request");
    expect_status(get_task_as(&f, &b, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "replayed request");
    fx_free(&f);
}

static void timestamp_outside_window_refused(void **state)
{
    struct fx *f = *state;
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 13);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    struct signer past = { .key = f->keys[FPT], .skew_ms = -10 * 60 * 1000 };
    expect_status(submit(f, &past, &u, &r, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "from the coordinator's clock");
    fx_expect_rejection(f, "fpt", "-600 s from the coordinator's clock");
    struct signer future = { .key = f->keys[FPT], .skew_ms = 6 * 60 * 1000 };
    expect_status(submit(f, &future, &u, &r, &st), &st, GRPC_STATUS_UNAUTHENTICATED,
                  "from the coordinator's clock");
    fx_expect_rejection(f, "fpt", "+360 s from the coordinator's clock");
    fx_expect_nothing_aggregated(f);
    /* inside the window it goes through */
    struct signer near = { .key = f->keys[FPT], .skew_ms = -4 * 60 * 1000 };
    assert_int_equal(submit(f, &near, &u, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);
}

static void removed_member_refused(void **state)
{
    struct fx *f = *state;
    struct signer sf = { .key = f->keys[FPT] }, sv = { .key = f->keys[VNPT] };
    struct fed_client *cf = fx_client(f, &sf), *cv = fx_client(f, &sv);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_REMOVE, "hust",
                                               NULL, h);
    assert_true(g->accepted);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    /* still a member until the quorum approves: its update goes through */
    struct signer sh = { .key = f->keys[HUST] };
    struct upd u;
    upd_make(f, &u, f->keys[HUST], 14);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    g = fx_vote(cv, f->keys[VNPT], h, 1);
    assert_true(g->accepted);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    /* from the next request on */
    expect_status(submit(f, &sh, &u, &r, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "member 'hust' was removed from the alliance");
    fx_expect_rejection(f, "hust", "was removed");
    fx_expect_nothing_aggregated(f);
    struct fed_client *ch = fx_client(f, &sh);
    Aulac__V1__JoinRequest jq = AULAC__V1__JOIN_REQUEST__INIT;
    jq.member_id = "hust";
    Aulac__V1__JoinReply *jr = NULL;
    expect_status(fed_join(ch, &jq, &jr, &st), &st, GRPC_STATUS_PERMISSION_DENIED, "was removed");
    fed_client_close(ch);
    pthread_mutex_lock(&f->c->mu);
    assert_null(roster_find(&f->c->roster, "hust"));
    assert_int_equal(f->c->n_eligible, 2);    /* fpt, vnpt (uet is not a member) */
    pthread_mutex_unlock(&f->c->mu);
    fed_client_close(cf);
    fed_client_close(cv);
    upd_free(&u);
}

static void rotated_key_refused(void **state)
{
    struct fx *f = *state;
    struct signer sf = { .key = f->keys[FPT] }, sv = { .key = f->keys[VNPT] };
    struct fed_client *cf = fx_client(f, &sf), *cv = fx_client(f, &sv);
    struct crypto_key *fresh = fx_key("fpt", 12);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_ROTATE, "fpt",
                                               fresh, h);
    assert_true(g->accepted);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cv, f->keys[VNPT], h, 1);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    fed_client_close(cf);
    fed_client_close(cv);

    /* the old key: refused, and named as rotated out */
    struct upd u;
    upd_make(f, &u, f->keys[FPT], 15);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    int rc;
    expect_status(submit(f, &sf, &u, &r, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "rotated out");
    fx_expect_rejection(f, "fpt", "rotated out");
    fx_expect_nothing_aggregated(f);
    /* the old key's envelope in a request signed with the new key: the envelope fails */
    struct signer sn = { .key = fresh };
    rc = submit(f, &sn, &u, &r, &st);
    expect_receipt_refusal(rc, r, "bad signature: the update envelope");
    fx_expect_nothing_aggregated(f);
    /* the new key throughout: accepted */
    upd_sign(&u, fresh);
    assert_int_equal(submit(f, &sn, &u, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);
    crypto_key_free(fresh);
}

static void world_readable_key_refused(void **state)
{
    (void)state;
    struct fx f;
    fx_prepare(&f);
    assert_int_equal(chmod(f.paths[1], 0644), 0);
    struct crypto_key *k = NULL;
    assert_int_equal(crypto_key_load(f.paths[1], &k), CRYPTO_ERR_KEY_PERMS);
    assert_null(k);
    struct coord *c = calloc(1, sizeof *c);
    assert_int_equal(coord_open(c, &f.opt), COORD_ERR_CONFIG);
    coord_close(c);
    free(c);
    assert_int_equal(chmod(f.paths[1], 0640), 0);   /* group-readable: refused too */
    assert_int_equal(crypto_key_load(f.paths[1], &k), CRYPTO_ERR_KEY_PERMS);
    fx_free(&f);
}

/* TLS: certificates from aulac tls (the program next to this test's directory,
 * which runs openssl); a client that trusts another CA cannot connect, one that
 * trusts the alliance CA can. */
static int run_aulac(const char *args)
{
    char exe[512], cmd[2048];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    assert_non_null(slash);
    *slash = 0;
    snprintf(cmd, sizeof cmd, "'%s/../aulac' %s >/dev/null", exe, args);
    return system(cmd);
}

static void wrong_ca_cannot_connect(void **state)
{
    (void)state;
    if (system("openssl version >/dev/null 2>&1") != 0)
        skip();
    struct fx f;
    fx_prepare(&f);
    char ca[300], other[300], cert[320], key[320], ca_pem[320], other_pem[320];
    snprintf(ca, sizeof ca, "%s/tls", f.dir);
    snprintf(other, sizeof other, "%s/other", f.dir);
    char args[700];
    snprintf(args, sizeof args, "tls init --dir '%s'", ca);
    assert_int_equal(run_aulac(args), 0);
    snprintf(args, sizeof args, "tls init --dir '%s' --name 'another ca'", other);
    assert_int_equal(run_aulac(args), 0);
    snprintf(args, sizeof args, "tls issue --ca-dir '%s' --name coordinator --server", ca);
    assert_int_equal(run_aulac(args), 0);
    snprintf(cert, sizeof cert, "%s/coordinator.pem", ca);
    snprintf(key, sizeof key, "%s/coordinator.key", ca);
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", ca);
    snprintf(other_pem, sizeof other_pem, "%s/ca.pem", other);
    struct stat sb;
    assert_int_equal(stat(key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    f.opt.tls_cert = cert;
    f.opt.tls_key = key;
    f.tls_ca = ca_pem;                    /* the fixture's own clients (its policy's vote) */
    fx_start(&f);

    struct signer s = { .key = f.keys[FPT] };
    struct fed_client_options o = { .call_timeout_ms = 5000, .sign = fx_sign, .sign_ctx = &s };
    Aulac__V1__HelloRequest hq = AULAC__V1__HELLO_REQUEST__INIT;
    Aulac__V1__HelloReply *hr = NULL;
    struct rpc_status st;
    struct fed_client *cl;

    o.channel.tls_ca_file = other_pem;    /* the wrong CA */
    assert_int_equal(fed_client_open(f.addr, &o, &cl), 0);
    expect_status(fed_hello(cl, &hq, &hr, &st), &st, GRPC_STATUS_UNAVAILABLE, "");
    Aulac__V1__TaskRequest tq = AULAC__V1__TASK_REQUEST__INIT;
    tq.member_id = "fpt";
    Aulac__V1__Task *t = NULL;
    expect_status(fed_get_task(cl, &tq, &t, &st), &st, GRPC_STATUS_UNAVAILABLE, "");
    fed_client_close(cl);

    o.channel.tls_ca_file = NULL;         /* plaintext against a TLS server */
    assert_int_equal(fed_client_open(f.addr, &o, &cl), 0);
    expect_status(fed_hello(cl, &hq, &hr, &st), &st, GRPC_STATUS_UNAVAILABLE, "");
    fed_client_close(cl);

    o.channel.tls_ca_file = ca_pem;       /* the alliance CA: 127.0.0.1 is in the cert */
    assert_int_equal(fed_client_open(f.addr, &o, &cl), 0);
    assert_int_equal(fed_hello(cl, &hq, &hr, &st), 0);
    aulac__v1__hello_reply__free_unpacked(hr, NULL);
    tq.wait_ms = 0;
    assert_int_equal(fed_get_task(cl, &tq, &t, &st), 0);
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__TRAIN);
    aulac__v1__task__free_unpacked(t, NULL);
    fed_client_close(cl);
    fx_free(&f);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_vector),
        cmocka_unit_test(replay_cache_bounds),
        cmocka_unit_test_setup_teardown(accepted_baseline, setup, teardown),
        cmocka_unit_test_setup_teardown(unsigned_request_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_uploads_do_not_stall_members, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_request_signature_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_envelope_signature_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(signer_and_body_differ_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_experiment_round_base_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(payload_byte_changed_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(replayed_envelope_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(replayed_request_nonce_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(join_authenticated_once, setup, teardown),
        cmocka_unit_test(replayed_request_refused_after_restart),
        cmocka_unit_test_setup_teardown(timestamp_outside_window_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(removed_member_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(rotated_key_refused, setup, teardown),
        cmocka_unit_test(world_readable_key_refused),
        cmocka_unit_test(wrong_ca_cannot_connect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
