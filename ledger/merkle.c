#include "ledger/merkle.h"

#include <sodium.h>
#include <string.h>

#include "ledger/merkle_src.h"

void merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[32])
{
    static const uint8_t prefix = 0x00;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, &prefix, 1);
    if (len)
        crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, out);
}

void merkle_node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32])
{
    uint8_t buf[65];
    buf[0] = 0x01;
    memcpy(buf + 1, left, 32);
    memcpy(buf + 33, right, 32);
    crypto_hash_sha256(out, buf, sizeof buf);
}

uint64_t merkle_split(uint64_t n)
{
    uint64_t k = (uint64_t)1 << (63 - __builtin_clzll(n - 1));
    return k;
}

int merkle_root(const uint8_t (*leaf_hashes)[32], uint64_t n, uint8_t out[32])
{
    if (!out || (n && !leaf_hashes))
        return LEDGER_ERR_ARG;
    if (n == 0) {
        crypto_hash_sha256(out, NULL, 0);
        return 0;
    }
    /* stack[j] holds the hash of a complete subtree; leaf i closes one subtree
     * per trailing 1 bit of i. What remains at the end are the subtrees of n's
     * binary decomposition, largest first, folded right to left. */
    uint8_t stack[64][32];
    int depth = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t h[32];
        memcpy(h, leaf_hashes[i], 32);
        for (uint64_t k = i; k & 1; k >>= 1)
            merkle_node_hash(stack[--depth], h, h);
        memcpy(stack[depth++], h, 32);
    }
    uint8_t r[32];
    memcpy(r, stack[--depth], 32);
    while (depth > 0)
        merkle_node_hash(stack[--depth], r, r);
    memcpy(out, r, 32);
    return 0;
}

/* The generic proofs, RFC 9162 2.1.3.1 and 2.1.4.1, unrolled into loops that
 * walk from the root down; hashes are collected root-first and reversed. */

int merkle_src_inclusion_proof(merkle_range_fn range, void *ctx, uint64_t n, uint64_t index,
                               uint8_t (*proof)[32], size_t *proof_len)
{
    if (!proof_len || (*proof_len && !proof))
        return LEDGER_ERR_ARG;
    if (index >= n)
        return LEDGER_ERR_RANGE;
    uint8_t path[MERKLE_PROOF_MAX][32];
    size_t len = 0;
    uint64_t a = 0, b = n;
    while (b - a > 1) {
        uint64_t k = merkle_split(b - a);
        int rc;
        if (index < a + k) {
            rc = range(ctx, a + k, b, path[len]);
            b = a + k;
        } else {
            rc = range(ctx, a, a + k, path[len]);
            a = a + k;
        }
        if (rc)
            return rc;
        len++;
    }
    if (len > *proof_len)
        return LEDGER_ERR_PROOF_CAPACITY;
    for (size_t i = 0; i < len; i++)
        memcpy(proof[i], path[len - 1 - i], 32);
    *proof_len = len;
    return 0;
}

int merkle_src_consistency_proof(merkle_range_fn range, void *ctx, uint64_t n_new, uint64_t n_old,
                                 uint8_t (*proof)[32], size_t *proof_len)
{
    if (!proof_len || (*proof_len && !proof))
        return LEDGER_ERR_ARG;
    if (n_old > n_new)
        return LEDGER_ERR_RANGE;
    if (n_old == 0 || n_old == n_new) {
        *proof_len = 0;
        return 0;
    }
    /* SUBPROOF(m, D[a:b], whole): while m < b - a, split at k; the sibling of
     * the side holding the boundary goes into the proof. */
    uint8_t path[MERKLE_PROOF_MAX][32];
    size_t len = 0;
    uint64_t m = n_old, a = 0, b = n_new;
    int whole = 1;   /* D[a:a+m] is (so far) the entire old tree: its root is known */
    int rc;
    while (m != b - a) {
        uint64_t k = merkle_split(b - a);
        if (m <= k) {
            rc = range(ctx, a + k, b, path[len]);
            b = a + k;
        } else {
            rc = range(ctx, a, a + k, path[len]);
            m -= k;
            a += k;
            whole = 0;
        }
        if (rc)
            return rc;
        len++;
    }
    size_t total = len + (whole ? 0 : 1);
    if (total > *proof_len)
        return LEDGER_ERR_PROOF_CAPACITY;
    size_t o = 0;
    if (!whole) {
        rc = range(ctx, a, b, proof[o++]);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < len; i++)
        memcpy(proof[o++], path[len - 1 - i], 32);
    *proof_len = total;
    return 0;
}

static int array_range(void *ctx, uint64_t begin, uint64_t end, uint8_t out[32])
{
    const uint8_t (*leaves)[32] = ctx;
    return merkle_root(leaves + begin, end - begin, out);
}

int merkle_inclusion_proof(const uint8_t (*leaf_hashes)[32], uint64_t n, uint64_t index,
                           uint8_t (*proof)[32], size_t *proof_len)
{
    if (!leaf_hashes)
        return LEDGER_ERR_ARG;
    return merkle_src_inclusion_proof(array_range, (void *)leaf_hashes, n, index, proof, proof_len);
}

int merkle_consistency_proof(const uint8_t (*leaf_hashes)[32], uint64_t n_new, uint64_t n_old,
                             uint8_t (*proof)[32], size_t *proof_len)
{
    if (!leaf_hashes && n_new)
        return LEDGER_ERR_ARG;
    return merkle_src_consistency_proof(array_range, (void *)leaf_hashes, n_new, n_old,
                                        proof, proof_len);
}

int merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[32],
                            const uint8_t (*proof)[32], size_t proof_len, const uint8_t root[32])
{
    if (!leaf_hash || !root || (proof_len && !proof))
        return LEDGER_ERR_ARG;
    if (index >= size)
        return LEDGER_ERR_RANGE;
    if (proof_len > MERKLE_PROOF_MAX)
        return LEDGER_ERR_PROOF_LENGTH;
    uint64_t fn = index, sn = size - 1;
    uint8_t r[32];
    memcpy(r, leaf_hash, 32);
    for (size_t i = 0; i < proof_len; i++) {
        if (sn == 0)
            return LEDGER_ERR_PROOF_LENGTH;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(proof[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node_hash(r, proof[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return LEDGER_ERR_PROOF_LENGTH;
    return sodium_memcmp(r, root, 32) == 0 ? 0 : LEDGER_ERR_PROOF_MISMATCH;
}

int merkle_verify_consistency(uint64_t size_old, uint64_t size_new,
                              const uint8_t root_old[32], const uint8_t root_new[32],
                              const uint8_t (*proof)[32], size_t proof_len)
{
    if (!root_old || !root_new || (proof_len && !proof))
        return LEDGER_ERR_ARG;
    if (size_old > size_new)
        return LEDGER_ERR_RANGE;
    if (size_old == size_new) {
        if (proof_len)
            return LEDGER_ERR_PROOF_LENGTH;
        return sodium_memcmp(root_old, root_new, 32) == 0 ? 0 : LEDGER_ERR_PROOF_MISMATCH;
    }
    if (size_old == 0) {
        uint8_t empty[32];
        crypto_hash_sha256(empty, NULL, 0);
        if (proof_len)
            return LEDGER_ERR_PROOF_LENGTH;
        return sodium_memcmp(root_old, empty, 32) == 0 ? 0 : LEDGER_ERR_PROOF_MISMATCH;
    }
    if (proof_len == 0 || proof_len > MERKLE_PROOF_MAX)
        return LEDGER_ERR_PROOF_LENGTH;

    /* When the old tree is a complete subtree its root is the implicit first hash. */
    const uint8_t *first;
    size_t next;
    if ((size_old & (size_old - 1)) == 0) {
        first = root_old;
        next = 0;
    } else {
        first = proof[0];
        next = 1;
    }
    uint64_t fn = size_old - 1, sn = size_new - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[32], sr[32];
    memcpy(fr, first, 32);
    memcpy(sr, first, 32);
    for (size_t i = next; i < proof_len; i++) {
        if (sn == 0)
            return LEDGER_ERR_PROOF_LENGTH;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(proof[i], fr, fr);
            merkle_node_hash(proof[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node_hash(sr, proof[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return LEDGER_ERR_PROOF_LENGTH;
    if (sodium_memcmp(fr, root_old, 32) != 0 || sodium_memcmp(sr, root_new, 32) != 0)
        return LEDGER_ERR_PROOF_MISMATCH;
    return 0;
}
