#include "crypto/node_task.h"
#include "common/why.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto/statement.h"

static int kind_valid(uint8_t k) { return k >= NODE_TASK_PROBE && k <= NODE_TASK_STOP; }

/* The experiment is empty only in a PROBE. */
static int experiment_valid(const struct node_task *t)
{
    return t->kind == NODE_TASK_PROBE ? t->experiment[0] == 0 || crypto_id_valid(t->experiment)
                                      : crypto_id_valid(t->experiment);
}

int node_task_encode(const struct node_task *t, uint8_t *buf, size_t cap, size_t *len)
{
    if (!t || !buf || !kind_valid(t->kind))
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(t->member) || !experiment_valid(t))
        return CRYPTO_ERR_BAD_ID;
    struct stmt_writer w = { buf, cap, 0, 0 };
    stmt_put_domain(&w, NODE_TASK_DOMAIN);
    stmt_put_str(&w, t->member);
    stmt_put_be(&w, t->kind, 1);
    stmt_put_str(&w, t->experiment);
    stmt_put_be(&w, t->round, 8);
    stmt_put_be(&w, t->seq, 8);
    stmt_put_be(&w, t->node_rank, 4);
    stmt_put_be(&w, t->nranks, 4);
    stmt_put_be(&w, t->first_rank, 4);
    stmt_put(&w, t->nccl_id, sizeof t->nccl_id);
    stmt_put(&w, t->base_model_hash, sizeof t->base_model_hash);
    stmt_put_be(&w, t->inner_steps, 4);
    stmt_put(&w, t->policy_hash, sizeof t->policy_hash);
    stmt_put_be(&w, t->data_seed, 8);
    stmt_put_be(&w, (uint64_t)t->expires_unix_ms, 8);
    stmt_put(&w, t->nonce, sizeof t->nonce);
    return stmt_finish(&w, len);
}

/* A bounded big-endian reader; any short read sticks. */
struct reader {
    const uint8_t *p;
    size_t left;
    int bad;
};

static void get(struct reader *r, void *dst, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
}

static uint64_t get_be(struct reader *r, int bytes)
{
    uint8_t b[8];
    get(r, b, (size_t)bytes);
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | b[i];
    return v;
}

static void get_str(struct reader *r, char *dst, size_t cap)
{
    size_t n = (size_t)get_be(r, 2);
    if (r->bad || n >= cap) {
        r->bad = 1;
        dst[0] = 0;
        return;
    }
    get(r, dst, n);
    dst[n] = 0;
    if (memchr(dst, 0, n))   /* an embedded NUL would shorten the id */
        r->bad = 1;
}

int node_task_decode(const uint8_t *buf, size_t len, struct node_task *out)
{
    if (!buf || !out)
        return CRYPTO_ERR_ARG;
    memset(out, 0, sizeof *out);
    struct reader r = { buf, len, 0 };
    char domain[sizeof NODE_TASK_DOMAIN];
    get(&r, domain, sizeof domain);
    if (r.bad || memcmp(domain, NODE_TASK_DOMAIN, sizeof domain) != 0)
        return CRYPTO_ERR_MALFORMED;
    get_str(&r, out->member, sizeof out->member);
    out->kind = (uint8_t)get_be(&r, 1);
    get_str(&r, out->experiment, sizeof out->experiment);
    out->round = get_be(&r, 8);
    out->seq = get_be(&r, 8);
    out->node_rank = (uint32_t)get_be(&r, 4);
    out->nranks = (uint32_t)get_be(&r, 4);
    out->first_rank = (uint32_t)get_be(&r, 4);
    get(&r, out->nccl_id, sizeof out->nccl_id);
    get(&r, out->base_model_hash, sizeof out->base_model_hash);
    out->inner_steps = (uint32_t)get_be(&r, 4);
    get(&r, out->policy_hash, sizeof out->policy_hash);
    out->data_seed = get_be(&r, 8);
    out->expires_unix_ms = (int64_t)get_be(&r, 8);
    get(&r, out->nonce, sizeof out->nonce);
    if (r.bad || r.left != 0 || !kind_valid(out->kind) || !crypto_id_valid(out->member) ||
        !experiment_valid(out))
        return CRYPTO_ERR_MALFORMED;
    return 0;
}

int node_task_digest(const struct node_task *t, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    uint8_t buf[NODE_TASK_HEADER_MAX];
    size_t len;
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = node_task_encode(t, buf, sizeof buf, &len);
    if (rc)
        return rc;
    crypto_blake2b256(buf, len, out);
    return 0;
}

int node_task_sign(const struct node_task *t, const struct crypto_key *k,
                   uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!t || !k)
        return CRYPTO_ERR_ARG;
    if (strcmp(crypto_key_member(k), t->member) != 0)
        return CRYPTO_ERR_KEY_MISMATCH;
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = node_task_digest(t, d);
    return rc ? rc : crypto_signature_create(k, d, sizeof d, sig);
}

int node_task_verify(const struct node_task *t,
                     const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                     const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = node_task_digest(t, d);
    return rc ? rc : crypto_signature_verify(public_key, d, sizeof d, sig);
}

int node_task_replay_check(struct node_task_replay *r, const uint8_t nonce[NODE_TASK_NONCE_BYTES],
                           int64_t expires, int64_t now)
{
    if (expires <= r->floor)
        return CRYPTO_ERR_REPLAYED;
    size_t free_slot = SIZE_MAX, oldest = 0;
    for (size_t i = 0; i < NODE_TASK_REPLAY_SLOTS; i++) {
        if (r->expires[i] < now) {    /* expired (or never used): the nonce may go */
            if (free_slot == SIZE_MAX)
                free_slot = i;
            continue;
        }
        if (crypto_equal(r->nonce[i], nonce, NODE_TASK_NONCE_BYTES))
            return CRYPTO_ERR_REPLAYED;
        if (r->expires[i] < r->expires[oldest])
            oldest = i;
    }
    /* Full: forget the nonce expiring first and refuse what it covered. A ring position
     * would not do: slots freed by expiry are reused out of order, and dropping a recent
     * nonce would raise the floor over live requests from nodes whose clocks lag. */
    if (free_slot == SIZE_MAX) {
        free_slot = oldest;
        if (r->expires[free_slot] > r->floor)
            r->floor = r->expires[free_slot];
    }
    memcpy(r->nonce[free_slot], nonce, NODE_TASK_NONCE_BYTES);
    r->expires[free_slot] = expires;
    return 0;
}

int node_task_accept(const uint8_t *header, size_t header_len, const uint8_t *sig,
                     size_t sig_len, const char *member,
                     const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES], int64_t now_unix_ms,
                     struct node_task_replay *r, struct node_task *out, char *why,
                     size_t why_cap)
{
    if (!header || !sig || !member || !public_key || !r || !out)
        return why_fail(why, why_cap, CRYPTO_ERR_ARG, "invalid argument");
    if (header_len > NODE_TASK_HEADER_MAX)
        return why_fail(why, why_cap, CRYPTO_ERR_MALFORMED,
                      "node task of %zu bytes: oversized (at most %d)", header_len,
                      NODE_TASK_HEADER_MAX);
    if (sig_len != CRYPTO_SIGNATURE_BYTES)
        return why_fail(why, why_cap, CRYPTO_ERR_MALFORMED,
                      "node task signature of %zu bytes, expected %d", sig_len,
                      CRYPTO_SIGNATURE_BYTES);
    struct node_task t;
    if (node_task_decode(header, header_len, &t) != 0)
        return why_fail(why, why_cap, CRYPTO_ERR_MALFORMED,
                      "malformed node task (%zu bytes): not an %s statement, truncated, "
                      "trailing bytes or a bad field", header_len, NODE_TASK_DOMAIN);
    if (strcmp(t.member, member) != 0)
        return why_fail(why, why_cap, CRYPTO_ERR_KEY_MISMATCH,
                      "node task signed for member '%s', this node belongs to '%s'", t.member,
                      member);
    if (node_task_verify(&t, public_key, sig) != 0)
        return why_fail(why, why_cap, CRYPTO_ERR_BAD_SIGNATURE,
                      "node task signature does not verify with member %s's key: the "
                      "leader signs with another key", member);
    if (t.expires_unix_ms < now_unix_ms)
        return why_fail(why, why_cap, CRYPTO_ERR_EXPIRED,
                      "stale node task: expired %" PRId64 " ms ago (check the nodes' clocks)",
                      now_unix_ms - t.expires_unix_ms);
    if (t.expires_unix_ms - now_unix_ms > NODE_TASK_MAX_LIFETIME_MS)
        return why_fail(why, why_cap, CRYPTO_ERR_EXPIRED,
                      "node task valid for %" PRId64 " s more, over the %d s allowed (check "
                      "the nodes' clocks)", (t.expires_unix_ms - now_unix_ms) / 1000,
                      NODE_TASK_MAX_LIFETIME_MS / 1000);
    if (node_task_replay_check(r, t.nonce, t.expires_unix_ms, now_unix_ms) != 0)
        return why_fail(why, why_cap, CRYPTO_ERR_REPLAYED,
                      "replayed node task (seq %" PRIu64 "): its nonce was seen before", t.seq);
    *out = t;
    return 0;
}
