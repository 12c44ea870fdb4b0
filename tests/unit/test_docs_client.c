/* The documents are the contract: tests/docs_client.py, written from proto/aulac.proto,
 * crypto/README.md, model/gpt2.h and common/safetensors.h alone, must compute what a real
 * coordinator and a real client compute:
 *   - the model hash of every checkpoint the coordinator wrote (named by its hash, and
 *     the hash it announces), from the safetensors file;
 *   - the first SubmitUpdate message, its body digest and the request statement digest
 *     that the real client (proto/client.c) signed and the coordinator accepted;
 *   - the digest of a Task the coordinator sent, over which its signature verifies.
 * Needs python3 (stdlib only); run from the repository root, as scripts/test.sh does. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "common/hex.h"
#include "common/log.h"
#include "proto/pb.h"
#include "proto/service.h"
#include "trust_fixture.h"

/* fx_sign, and a copy of what it signed for SubmitUpdate. */
struct recorder {
    struct signer s;
    uint8_t *body;
    size_t len;
    struct request_statement st;
};

static int record_sign(void *ctx, const char *method, const uint8_t *body, size_t len,
                       struct fed_request_auth *a)
{
    struct recorder *r = ctx;
    int rc = fx_sign(&r->s, method, body, len, a);
    if (rc == 0 && strcmp(method, FED_METHOD_SUBMIT_UPDATE) == 0) {
        free(r->body);
        r->body = malloc(len);
        assert_non_null(r->body);
        memcpy(r->body, body, len);
        r->len = len;
        r->st = a->st;
    }
    return rc;
}

/* Submits an update of member m through the real client; returns it signed. */
static void submit(struct fx *f, int m, struct recorder *rec, struct upd *u)
{
    upd_make(f, u, f->keys[m], m + 1);
    struct fed_client_options o = { 0 };
    o.call_timeout_ms = 10000;
    o.stream_timeout_ms = 20000;
    o.sign = record_sign;
    o.sign_ctx = rec;
    rec->s.key = f->keys[m];
    struct fed_client *cl;
    assert_int_equal(fed_client_open(f->addr, &o, &cl), 0);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u->h, u->payload, u->len, 0, &r, &st), 0);
    assert_true(r->accepted);   /* the coordinator verified the signature over the digest */
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
}

static void put_hex(FILE *in, const char *key, const uint8_t *p, size_t n)
{
    char h[2 * 64 + 1];
    assert_true(n <= 64);
    hex_encode(p, n, h);
    fprintf(in, "submit %s %s\n", key, h);
}

/* The line "key HEX..." of out; the hex decoded into buf (cap bytes at most). */
static size_t answer(const char *out, const char *key, uint8_t *buf, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s ", key);
    const char *p = strstr(out, pat);
    if (!p)
        fail_msg("docs_client.py gave no %s:\n%s", key, out);
    p += strlen(pat);
    size_t n = strcspn(p, " \n");
    assert_true(n % 2 == 0 && n / 2 <= cap);
    char *h = strndup(p, n);
    assert_int_equal(hex_decode(h, buf, n / 2), 0);
    free(h);
    return n / 2;
}

static void docs_client_agrees_with_the_code(void **state)
{
    struct fx f;
    fx_prepare(&f);
    fx_start(&f);
    uint8_t initial[32];
    memcpy(initial, f.c->rnd.base->hash, 32);

    struct recorder rec = { 0 };
    struct upd first;
    submit(&f, FPT, &rec, &first);
    for (int m = VNPT; m <= HUST; m++) {   /* the round closes: a second checkpoint */
        struct recorder other = { 0 };
        struct upd u;
        submit(&f, m, &other, &u);
        upd_free(&u);
        free(other.body);
    }
    fx_wait_closed(&f);   /* the timer thread closes it */
    pthread_mutex_lock(&f.c->mu);
    uint8_t current[32];
    memcpy(current, f.c->rnd.base->hash, 32);
    assert_int_equal(f.c->rnd.number, 2);
    pthread_mutex_unlock(&f.c->mu);

    char in_path[300], out_path[300], cmd[800], models[320];
    snprintf(in_path, sizeof in_path, "%s/docs-client.in", f.dir);
    snprintf(out_path, sizeof out_path, "%s/docs-client.out", f.dir);
    snprintf(models, sizeof models, "%s/models", f.paths[0]);
    FILE *in = fopen(in_path, "w");
    assert_non_null(in);
    DIR *d = opendir(models);
    assert_non_null(d);
    struct dirent *e;
    int n_checkpoints = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        fprintf(in, "checkpoint %s/%s\n", models, e->d_name);
        n_checkpoints++;
    }
    closedir(d);
    assert_int_equal(n_checkpoints, 2);   /* the initial model and round 1's */

    const struct update_envelope *v = &first.e;
    fprintf(in, "submit method %s\nsubmit member %s\nsubmit timestamp_ms %lld\n",
            rec.st.method, rec.st.member, (long long)rec.st.timestamp_unix_ms);
    put_hex(in, "nonce", rec.st.nonce, 16);
    fprintf(in, "submit experiment %s\nsubmit round %llu\n", v->experiment,
            (unsigned long long)v->round);
    put_hex(in, "base_model_hash", v->base_model_hash, 32);
    put_hex(in, "payload_hash", v->payload_hash, 32);
    fprintf(in, "submit payload_bytes %llu\nsubmit samples %llu\nsubmit tokens %llu\n",
            (unsigned long long)v->payload_bytes, (unsigned long long)v->samples,
            (unsigned long long)v->tokens);
    fprintf(in, "submit format_version %u\nsubmit block_size %u\nsubmit k_per_block %u\n"
            "submit quant %u\nsubmit zstd_level %d\nsubmit error_feedback %u\n",
            v->codec.format_version, v->codec.block_size, v->codec.k_per_block,
            v->codec.quant, v->codec.zstd_level, v->codec.error_feedback);
    put_hex(in, "signature", first.sig, 64);
    fprintf(in, "submit train_loss %.9g\nsubmit val_loss %.9g\n", (double)first.h.train_loss,
            (double)first.h.val_loss);

    /* The task of round 2 for fpt, as it came over the wire. */
    struct signer s = { .key = f.keys[FPT] };
    struct fed_client *cl = fx_client(&f, &s);
    Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
    q.member_id = "fpt";
    Aulac__V1__Task *task = NULL;
    struct rpc_status st;
    assert_int_equal(fed_get_task(cl, &q, &task, &st), 0);
    fed_client_close(cl);
    assert_int_equal(task->kind, AULAC__V1__TASK__KIND__TRAIN);
    assert_int_equal(task->round, 2);
    assert_true(task->policy_hash.len == 32 && task->signature.len == 64);
    assert_memory_equal(task->policy_hash.data, f.c->policy_hash, 32);
    uint8_t task_sig[64], *packed;
    size_t packed_len;
    memcpy(task_sig, task->signature.data, 64);
    assert_int_equal(pb_pack(&task->base, &packed, &packed_len), 0);
    aulac__v1__task__free_unpacked(task, NULL);
    char *task_hex = malloc(2 * packed_len + 1);
    assert_non_null(task_hex);
    hex_encode(packed, packed_len, task_hex);
    fprintf(in, "task %s\n", task_hex);
    free(task_hex);
    free(packed);
    fclose(in);

    snprintf(cmd, sizeof cmd, "python3 tests/docs_client.py <'%s' >'%s'", in_path, out_path);
    assert_int_equal(system(cmd), 0);
    uint8_t *out_bytes;
    size_t out_len;
    assert_int_equal(file_read_all(out_path, 1 << 20, &out_bytes, &out_len), 0);
    char *out = strndup((const char *)out_bytes, out_len);
    free(out_bytes);

    /* Every checkpoint hashes, by the documents, to the name the coordinator gave it. */
    int seen_initial = 0, seen_current = 0;
    for (const char *p = out; (p = strstr(p, "model_hash ")) != NULL; p++) {
        uint8_t got[32], named[32];
        char h[65];
        memcpy(h, p + 11, 64);
        h[64] = 0;
        assert_int_equal(hex_decode(h, got, 32), 0);
        const char *dir = p + 11 + 65;
        char *path = strndup(dir, strcspn(dir, "\n"));
        const char *slash = strrchr(path, '/');
        assert_non_null(slash);
        assert_int_equal(hex_decode(slash + 1, named, 32), 0);
        free(path);
        assert_memory_equal(got, named, 32);
        seen_initial |= memcmp(got, initial, 32) == 0;
        seen_current |= memcmp(got, current, 32) == 0;
    }
    assert_true(seen_initial && seen_current);

    /* The request the real client signed and the coordinator accepted. */
    uint8_t msg[1024], digest[32];
    size_t len = answer(out, "submit_first_message", msg, sizeof msg);
    assert_int_equal(len, rec.len);
    assert_memory_equal(msg, rec.body, len);
    answer(out, "submit_body_digest", digest, 32);
    assert_memory_equal(digest, rec.st.body_digest, 32);
    uint8_t want[32];
    assert_int_equal(request_digest(&rec.st, want), 0);
    answer(out, "request_digest", digest, 32);
    assert_memory_equal(digest, want, 32);

    /* The task: the coordinator signed the digest the documents give. */
    uint8_t task_digest[32], sig_read[64];
    answer(out, "task_digest", task_digest, 32);
    char *sig_hex = strndup(strstr(out, "task_digest ") + strlen("task_digest ") + 65, 128);
    assert_int_equal(hex_decode(sig_hex, sig_read, 64), 0);
    free(sig_hex);
    assert_memory_equal(sig_read, task_sig, 64);
    struct crypto_public_key coordinator;
    crypto_key_public(f.coordinator, &coordinator);
    assert_int_equal(crypto_signature_verify(coordinator.key, task_digest, 32, task_sig), 0);

    free(out);
    free(rec.body);
    upd_free(&first);
    fx_free(&f);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(docs_client_agrees_with_the_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
