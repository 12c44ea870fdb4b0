/* DownloadModel serves any model the coordinator still holds, by hash (proto/aulac.proto):
 * the current one, and older ones from their checkpoints; NOT_FOUND with a reason for a
 * model it does not hold (never made, or pruned by --keep-checkpoints). Against a real
 * coordinator in this process (tests/unit/trust_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "codec/codec.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "model/model_hash.h"
#include "proto/pb.h"
#include "proto/service.h"
#include "trust_fixture.h"

/* Every member of the roster reports: the last update closes the round. */
static void close_round(struct fx *f)
{
    pthread_mutex_lock(&f->c->mu);
    uint64_t round = f->c->rnd.number;
    pthread_mutex_unlock(&f->c->mu);
    for (int m = FPT; m <= HUST; m++)
        fx_submit_accepted(f, m, m + 10 * (int)round);
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->rnd.number, round + 1);
    pthread_mutex_unlock(&f->c->mu);
}

/* The older model in memory, if any, once the handlers of finished downloads have let
 * it go (they release it just after the client has seen the end of the stream). */
static struct model_snapshot *archived_after_downloads(struct fx *f)
{
    struct model_snapshot *a = NULL;
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&f->c->mu);
        a = f->c->archived;
        pthread_mutex_unlock(&f->c->mu);
        if (!a)
            break;
        time_sleep_ms(10);
    }
    return a;
}

static void current_hash(struct fx *f, uint8_t out[32])
{
    pthread_mutex_lock(&f->c->mu);
    memcpy(out, f->c->rnd.base->hash, 32);
    pthread_mutex_unlock(&f->c->mu);
}

/* Starts the coordinator and closes two rounds: h0 the initial model, h1 round 1's. */
static void start_and_close_two_rounds(struct fx *f, uint8_t h0[32], uint8_t h1[32])
{
    fx_start(f);
    current_hash(f, h0);
    close_round(f);
    current_hash(f, h1);
    close_round(f);
}

struct sink {
    uint8_t *buf;
    size_t cap;
    uint64_t total, round;
    uint8_t hash[32];
};

static int on_chunk(const Aulac__V1__ModelChunk *ch, void *arg)
{
    struct sink *k = arg;
    assert_false(ch->is_update);
    assert_int_equal(ch->model_hash.len, 32);
    assert_true(ch->offset + ch->data.len <= k->cap);
    memcpy(k->buf + ch->offset, ch->data.data, ch->data.len);
    memcpy(k->hash, ch->model_hash.data, 32);
    k->total = ch->total_bytes;
    k->round = ch->round;
    return 0;
}

/* Downloads hash (len 0: the current model) as fpt; the rc, the status and the bytes. */
static int download(struct fx *f, const uint8_t *hash, size_t len, struct sink *k,
                    struct rpc_status *st)
{
    memset(k, 0, sizeof *k);
    k->cap = f->c->n_params * sizeof(float);
    k->buf = malloc(k->cap);
    assert_non_null(k->buf);
    struct signer s = { .key = f->keys[FPT] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__ModelRequest q = AULAC__V1__MODEL_REQUEST__INIT;
    q.member_id = "fpt";
    q.model_hash.data = (uint8_t *)hash;
    q.model_hash.len = len;
    int rc = fed_download_model(cl, &q, on_chunk, k, st);
    fed_client_close(cl);
    return rc;
}

/* A complete download of exactly the model `want`, made after `round` rounds. */
static void expect_model(struct fx *f, const uint8_t *ask, size_t ask_len,
                         const uint8_t want[32], uint64_t round)
{
    struct sink k;
    struct rpc_status st;
    int rc = download(f, ask, ask_len, &k, &st);
    if (rc != 0)
        fail_msg("download failed: %d %s", rc, st.details);
    assert_int_equal(k.total, k.cap);
    assert_memory_equal(k.hash, want, 32);
    assert_int_equal(k.round, round);
    uint8_t got[32];
    model_hash((const float *)k.buf, f->c->n_params, got);
    assert_memory_equal(got, want, 32);
    free(k.buf);
}

static void expect_refused(struct fx *f, const uint8_t *ask, size_t len, grpc_status_code code,
                           const char *pat)
{
    struct sink k;
    struct rpc_status st;
    int rc = download(f, ask, len, &k, &st);
    free(k.buf);
    expect_status(rc, &st, code, pat);
}

static void older_models_are_served_by_hash(void **state)
{
    struct fx *f = *state;
    uint8_t h0[32], h1[32], h2[32];
    start_and_close_two_rounds(f, h0, h1);
    current_hash(f, h2);
    assert_memory_not_equal(h0, h1, 32);

    expect_model(f, NULL, 0, h2, 2);          /* no hash: the current model */
    expect_model(f, h2, 32, h2, 2);
    expect_model(f, h0, 32, h0, 0);           /* the initial model, from its checkpoint */
    expect_model(f, h1, 32, h1, 1);
    expect_model(f, h1, 32, h1, 1);
    assert_null(archived_after_downloads(f)); /* nothing older kept once nobody streams it */
}

static void unknown_model_not_found(void **state)
{
    struct fx *f = *state;
    fx_start(f);
    uint8_t other[32];
    memset(other, 0x5a, sizeof other);
    expect_refused(f, other, 32, GRPC_STATUS_NOT_FOUND,
                   "model 5a5a5a5a5a5a5a5a is not held by this coordinator");
    expect_refused(f, other, 5, GRPC_STATUS_INVALID_ARGUMENT, "model_hash must be 32 bytes");
}

/* Checkpoint retention (coord_retain_checkpoints) with --keep-checkpoints 2 and no
 * every-K-th: after round 3, round 1's checkpoint is gone; rounds 2 and 3 and the initial
 * model (what replay rebuilds from) stay. */
static void pruned_model_not_found(void **state)
{
    struct fx *f = *state;
    f->opt.keep_checkpoints = 2;
    f->opt.checkpoint_every = COORD_CHECKPOINT_EVERY_NONE;
    uint8_t h0[32], h1[32], h2[32], h3[32];
    start_and_close_two_rounds(f, h0, h1);
    current_hash(f, h2);
    expect_model(f, h1, 32, h1, 1);           /* round 1 is among the last 2 still */
    close_round(f);
    current_hash(f, h3);
    expect_refused(f, h1, 32, GRPC_STATUS_NOT_FOUND, "not held by this coordinator");
    expect_model(f, h0, 32, h0, 0);
    expect_model(f, h2, 32, h2, 2);
    expect_model(f, h3, 32, h3, 3);
    char dir[512], path[600];   /* the outer state files follow the same rounds */
    coord_experiment_dir(f->c, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/outer/1.bin", dir);
    assert_false(file_exists(path));
    snprintf(path, sizeof path, "%s/outer/2.bin", dir);
    assert_true(file_exists(path));
    snprintf(path, sizeof path, "%s/outer/3.bin", dir);
    assert_true(file_exists(path));
}

/* The default retention (last 3 + every 10th) keeps every checkpoint of a short run. */
static void default_retention_keeps_the_last_three(void **state)
{
    struct fx *f = *state;
    uint8_t h0[32], h1[32], h2[32], h3[32];
    start_and_close_two_rounds(f, h0, h1);
    current_hash(f, h2);
    close_round(f);
    current_hash(f, h3);
    expect_model(f, h0, 32, h0, 0);
    expect_model(f, h1, 32, h1, 1);
    expect_model(f, h2, 32, h2, 2);
}

/* One older model is held at a time: the downloads of it share one copy, and
 * another older model waits until nobody streams the first. It and the current model
 * (made by a close) are read-only mappings of unnamed files (snapshot_map), not heap;
 * the older one only while the disk keeps the close reserve free beside its file. */
static void one_older_model_in_memory(void **state)
{
    struct fx *f = *state;
    uint8_t h0[32], h1[32];
    start_and_close_two_rounds(f, h0, h1);
    pthread_mutex_lock(&f->c->mu);
    assert_true(f->c->rnd.base->map_len >= f->c->n_params * sizeof(float));
    pthread_mutex_unlock(&f->c->mu);

    struct model_snapshot *a, *b;
    assert_int_equal(models_acquire(f->c, h0, &a), 0);   /* as a download streaming h0 */
    assert_int_equal(models_acquire(f->c, h0, &b), 0);
    assert_ptr_equal(a, b);
    assert_true(a->map_len >= a->n * sizeof(float));
    expect_model(f, h0, 32, h0, 0);
    expect_refused(f, h1, 32, GRPC_STATUS_RESOURCE_EXHAUSTED, "retry model");
    pthread_mutex_lock(&f->c->mu);
    snapshot_release(f->c, a);
    snapshot_release(f->c, b);
    pthread_mutex_unlock(&f->c->mu);
    assert_null(archived_after_downloads(f));
    expect_model(f, h1, 32, h1, 1);

    /* The older model's file is not in the close reserve: without free space beyond the
     * reserve plus its 4N it stays in memory (map_len 0) and is served all the same. */
    pthread_mutex_lock(&f->c->mu);
    const uint64_t reserve = f->c->close_reserve_bytes;
    f->c->close_reserve_bytes = UINT64_MAX / 2;   /* more than any disk has free */
    pthread_mutex_unlock(&f->c->mu);
    assert_null(archived_after_downloads(f));
    assert_int_equal(models_acquire(f->c, h0, &a), 0);
    assert_int_equal(a->map_len, 0);
    assert_int_equal(a->round, 0);
    pthread_mutex_lock(&f->c->mu);
    snapshot_release(f->c, a);
    f->c->close_reserve_bytes = reserve;
    pthread_mutex_unlock(&f->c->mu);
    expect_model(f, h0, 32, h0, 0);
}

/* Opens DownloadModel by hand as fpt for the current model and sends the request. */
static struct rpc_stream *open_download(struct fx *f, struct rpc_channel **ch)
{
    assert_int_equal(rpc_channel_open(f->addr, NULL, ch), 0);
    Aulac__V1__ModelRequest q = AULAC__V1__MODEL_REQUEST__INIT;
    q.member_id = "fpt";
    uint8_t *body;
    size_t body_len;
    assert_int_equal(pb_pack(&q.base, &body, &body_len), 0);
    struct request_statement st;
    uint8_t sig[64];
    assert_int_equal(request_sign_new(f->keys[FPT], FED_METHOD_DOWNLOAD_MODEL, body, body_len,
                                      time_now_unix_ms(), &st, sig), 0);
    char ts[32];
    snprintf(ts, sizeof ts, "%" PRId64, st.timestamp_unix_ms);
    struct rpc_metadata md[4] = {
        { REQUEST_MD_MEMBER, (const uint8_t *)st.member, strlen(st.member) },
        { REQUEST_MD_TIMESTAMP, (const uint8_t *)ts, strlen(ts) },
        { REQUEST_MD_NONCE, st.nonce, REQUEST_NONCE_BYTES },
        { REQUEST_MD_SIGNATURE, sig, 64 },
    };
    struct rpc_call_options o = { .timeout_ms = 60000, .metadata = md, .n_metadata = 4 };
    struct rpc_stream *s;
    assert_int_equal(rpc_stream_open(*ch, FED_METHOD_DOWNLOAD_MODEL, &o, &s), 0);
    assert_int_equal(rpc_stream_send(s, body, body_len), 0);
    assert_int_equal(rpc_stream_close_send(s), 0);
    free(body);
    return s;
}

static int base_refs(struct fx *f)
{
    pthread_mutex_lock(&f->c->mu);
    int refs = f->c->rnd.base->refs;
    pthread_mutex_unlock(&f->c->mu);
    return refs;
}

/* Waits (up to 10 s) until the current model has refs references again: the handlers of
 * the downloads that streamed it have let it go. */
static void wait_base_refs(struct fx *f, int refs)
{
    for (int i = 0; i < 1000 && base_refs(f) != refs; i++)
        time_sleep_ms(10);
    assert_int_equal(base_refs(f), refs);
}

/* A model of several 1 MiB chunks (n_embd 384: 7.4 MB), and a 1 s gap allowed between
 * stream messages. */
static int setup_big_model(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
    const char *from = "n_embd: 16", *to = "n_embd: 384";
    const char *at = strstr(fx_policy, from);
    assert_non_null(at);
    char text[sizeof fx_policy + 16];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - fx_policy), fx_policy, to,
             at + strlen(from));
    fx_write(f->paths[3], text, 0644);
    f->opt.message_gap_ms = 1000;
    *state = f;
    return 0;
}

/* A download abandoned mid-stream, by a cancel or by a client that stops reading, frees
 * what its handler holds (the model reference, the call), and the coordinator goes on
 * serving the others meanwhile. */
static void abandoned_downloads_free_their_model(void **state)
{
    struct fx *f = *state;
    fx_start(f);
    uint8_t h0[32];
    current_hash(f, h0);
    assert_true(f->c->n_params * sizeof(float) > 4 * FED_MAX_CHUNK_BYTES);
    const int refs = base_refs(f);

    /* Cancelled after its first chunk. */
    struct rpc_channel *ch;
    struct rpc_stream *s = open_download(f, &ch);
    ProtobufCMessage *m = NULL;
    assert_int_equal(pb_stream_recv(s, &aulac__v1__model_chunk__descriptor, &m), 0);
    assert_int_equal(((Aulac__V1__ModelChunk *)m)->offset, 0);
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_stream_cancel(s);
    struct rpc_status st;
    (void)rpc_stream_finish(s, &st);
    rpc_channel_close(ch);
    wait_base_refs(f, refs);

    /* Stalled: asks, then reads nothing. Another member downloads meanwhile. */
    s = open_download(f, &ch);
    expect_model(f, NULL, 0, h0, 0);
    wait_base_refs(f, refs);       /* within the 1 s message gap, not never */
    rpc_stream_cancel(s);
    (void)rpc_stream_finish(s, &st);
    rpc_channel_close(ch);
    expect_model(f, NULL, 0, h0, 0);
}

/* How many files of the data directory with no name (model snapshots, coordinator/
 * snapshot.c) of the model's size this process maps. */
static int mapped_models(struct fx *f)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = (f->c->n_params * sizeof(float) + page - 1) / page * page;
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[4600];
    int n = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi - lo == bytes &&
            strstr(line, f->opt.data_dir) && strstr(line, "(deleted)"))
            n++;
    }
    fclose(maps);
    return n;
}

/* Waits (up to 10 s) until this process maps `want` model snapshots. */
static void wait_mapped_models(struct fx *f, int want)
{
    for (int i = 0; i < 1000 && mapped_models(f) != want; i++)
        time_sleep_ms(10);
    assert_int_equal(mapped_models(f), want);
}

struct into_sink {
    uint8_t *model;
    uint64_t bytes, chunks;
};

static uint8_t *into_dest(const Aulac__V1__ModelChunk *ch, void *arg)
{
    struct into_sink *k = arg;
    assert_null(ch->data.data);   /* not read yet: only its length */
    assert_true(ch->offset + ch->data.len <= ch->total_bytes);
    return k->model + ch->offset;
}

static int into_chunk(const Aulac__V1__ModelChunk *ch, void *arg)
{
    struct into_sink *k = arg;
    assert_ptr_equal(ch->data.data, k->model + ch->offset);   /* copied there */
    k->bytes += ch->data.len;
    k->chunks++;
    return 0;
}

/* The model's chunks are lent to gRPC from the snapshot's mapping, not copied: a download
 * into the caller's buffer (fed_download_model_into) gets the model; after a download
 * stalled over a round close is let go, nothing of the old model is left mapped (no lent
 * chunk keeps its mapping forever; under the sanitizers, a mapping gone while gRPC still
 * read it would fault). */
static void lent_model_pages_unmapped_when_let_go(void **state)
{
    struct fx *f = *state;
    fx_start(f);
    uint8_t h0[32], h1[32];
    current_hash(f, h0);
    wait_mapped_models(f, 1);
    const size_t bytes = f->c->n_params * sizeof(float);

    struct into_sink k = { .model = malloc(bytes) };
    assert_non_null(k.model);
    struct signer sg = { .key = f->keys[FPT] };
    struct fed_client *cl = fx_client(f, &sg);
    Aulac__V1__ModelRequest q = AULAC__V1__MODEL_REQUEST__INIT;
    q.member_id = "fpt";
    struct rpc_status st;
    assert_int_equal(fed_download_model_into(cl, &q, into_dest, into_chunk, &k, &st), 0);
    assert_int_equal(k.bytes, bytes);
    assert_true(k.chunks > 4);
    uint8_t got[32];
    model_hash((const float *)k.model, f->c->n_params, got);
    assert_memory_equal(got, h0, 32);
    /* no callback at all is refused */
    assert_int_equal(fed_download_model_into(cl, &q, NULL, NULL, &k, &st), RPC_ERR_INVALID_ARG);
    fed_client_close(cl);
    free(k.model);

    /* A download that stalls after one chunk holds model h0 while the round closes. */
    struct rpc_channel *ch;
    struct rpc_stream *s = open_download(f, &ch);
    ProtobufCMessage *m = NULL;
    assert_int_equal(pb_stream_recv(s, &aulac__v1__model_chunk__descriptor, &m), 0);
    protobuf_c_message_free_unpacked(m, NULL);
    close_round(f);
    current_hash(f, h1);
    assert_memory_not_equal(h0, h1, 32);
    expect_model(f, NULL, 0, h1, 1);
    rpc_stream_cancel(s);
    (void)rpc_stream_finish(s, &st);
    rpc_channel_close(ch);
    /* h0's snapshot and its lent pages are gone: only the current model is mapped. */
    wait_mapped_models(f, 1);
}

/* The big model with an fp16 dense downlink with error feedback, raw (no zstd: the few
 * changed values would shrink it to one chunk). */
static int setup_big_model_downlink(void **state)
{
    setup_big_model(state);
    struct fx *f = *state;
    const char *from = "downlink: {method: none, quant: fp32}";
    const char *to = "downlink: {method: none, quant: fp16, zstd_level: 0, error_feedback: true}";
    uint8_t *text;
    size_t len;
    assert_int_equal(file_read_all(f->paths[3], 1 << 20, &text, &len), 0);
    char *at = strstr((char *)text, from);
    assert_non_null(at);
    char out[sizeof fx_policy + 128];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - (char *)text), (char *)text, to,
             at + strlen(from));
    fx_write(f->paths[3], out, 0644);
    free(text);
    return 0;
}

struct update_sink {
    uint8_t *buf;
    size_t cap;
    uint64_t total, got;
};

static int on_update_chunk(const Aulac__V1__ModelChunk *ch, void *arg)
{
    struct update_sink *k = arg;
    assert_true(ch->is_update);
    assert_true(ch->offset + ch->data.len <= k->cap);
    memcpy(k->buf + ch->offset, ch->data.data, ch->data.len);
    k->total = ch->total_bytes;
    k->got += ch->data.len;
    return 0;
}

/* A member one round behind gets the round's compressed update, served from a read-only
 * mapping of downlink/<hex>.bin with the pages behind each chunk dropped: the bytes of
 * that file after its 32-byte prefix, exactly, twice in a row, and base + decode(update)
 * is the new model. */
static void update_served_from_its_file(void **state)
{
    struct fx *f = *state;
    fx_start(f);
    uint8_t h0[32], h1[32];
    current_hash(f, h0);
    struct sink m0;
    struct rpc_status st;
    assert_int_equal(download(f, NULL, 0, &m0, &st), 0);
    close_round(f);
    current_hash(f, h1);
    pthread_mutex_lock(&f->c->mu);
    assert_non_null(f->c->rnd.down);
    assert_memory_equal(f->c->rnd.down_from, h0, 32);
    size_t n = f->c->n_params;
    pthread_mutex_unlock(&f->c->mu);

    char dir[512], path[700], hex[65];
    coord_experiment_dir(f->c, dir, sizeof dir);
    hex_encode(h1, 32, hex);
    snprintf(path, sizeof path, "%s/downlink/%s.bin", dir, hex);
    uint8_t *file;
    size_t file_len;
    assert_int_equal(file_read_all(path, 1 << 30, &file, &file_len), 0);
    if (file_len <= 32 + FED_MAX_CHUNK_BYTES)   /* more than one chunk */
        fail_msg("the downlink update is %zu bytes", file_len);
    assert_memory_equal(file, h0, 32);
    snprintf(path, sizeof path, "%s/downlink/close.tmp", dir);
    assert_int_equal(access(path, F_OK), -1);               /* renamed, not left behind */

    for (int pass = 0; pass < 2; pass++) {
        struct update_sink k = { .cap = file_len, .buf = calloc(1, file_len) };
        assert_non_null(k.buf);
        struct signer s = { .key = f->keys[FPT] };
        struct fed_client *cl = fx_client(f, &s);
        Aulac__V1__ModelRequest q = AULAC__V1__MODEL_REQUEST__INIT;
        q.member_id = "fpt";
        q.from_model_hash.data = h0;
        q.from_model_hash.len = 32;
        int rc = fed_download_model(cl, &q, on_update_chunk, &k, &st);
        fed_client_close(cl);
        if (rc != 0)
            fail_msg("update download failed: %d %s", rc, st.details);
        assert_int_equal(k.total, file_len - 32);
        assert_int_equal(k.got, file_len - 32);
        assert_memory_equal(k.buf, file + 32, file_len - 32);
        float *model = malloc(n * sizeof *model);
        assert_non_null(model);
        memcpy(model, m0.buf, n * sizeof *model);
        assert_int_equal(codec_decode_accumulate(k.buf, k.total, n, 1.0f, model, NULL, 0), 0);
        uint8_t got[32];
        model_hash(model, n, got);
        assert_memory_equal(got, h1, 32);
        free(model);
        free(k.buf);
    }
    free(file);
    free(m0.buf);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(older_models_are_served_by_hash, fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(unknown_model_not_found, fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(pruned_model_not_found, fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(default_retention_keeps_the_last_three, fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(one_older_model_in_memory, fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(update_served_from_its_file, setup_big_model_downlink,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(abandoned_downloads_free_their_model, setup_big_model,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(lent_model_pages_unmapped_when_let_go, setup_big_model,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
