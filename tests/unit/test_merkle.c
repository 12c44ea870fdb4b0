/* ledger/merkle: RFC 6962 known answers, a recursive reference written from the
 * RFC text cross-checked against the fast code, and proofs that must fail. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "ledger/merkle.h"

#define MAXN 64

/* --- reference: RFC 6962 section 2.1, recursion as written ---------------------- */

static uint64_t ref_k(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static void ref_mth(const uint8_t (*d)[32], uint64_t n, uint8_t out[32])
{
    if (n == 0) {
        crypto_hash_sha256(out, (const uint8_t *)"", 0);
        return;
    }
    if (n == 1) {
        memcpy(out, d[0], 32);
        return;
    }
    uint64_t k = ref_k(n);
    uint8_t l[32], r[32], buf[65];
    ref_mth(d, k, l);
    ref_mth(d + k, n - k, r);
    buf[0] = 1;
    memcpy(buf + 1, l, 32);
    memcpy(buf + 33, r, 32);
    crypto_hash_sha256(out, buf, 65);
}

/* PATH(m, D[n]) */
static size_t ref_path(uint64_t m, const uint8_t (*d)[32], uint64_t n, uint8_t (*out)[32])
{
    if (n == 1)
        return 0;
    uint64_t k = ref_k(n);
    size_t len;
    if (m < k) {
        len = ref_path(m, d, k, out);
        ref_mth(d + k, n - k, out[len]);
    } else {
        len = ref_path(m - k, d + k, n - k, out);
        ref_mth(d, k, out[len]);
    }
    return len + 1;
}

/* SUBPROOF(m, D[n], b) */
static size_t ref_subproof(uint64_t m, const uint8_t (*d)[32], uint64_t n, int b, uint8_t (*out)[32])
{
    if (m == n) {
        if (b)
            return 0;
        ref_mth(d, n, out[0]);
        return 1;
    }
    uint64_t k = ref_k(n);
    size_t len;
    if (m <= k) {
        len = ref_subproof(m, d, k, b, out);
        ref_mth(d + k, n - k, out[len]);
    } else {
        len = ref_subproof(m - k, d + k, n - k, 0, out);
        ref_mth(d, k, out[len]);
    }
    return len + 1;
}

/* --- fixtures ------------------------------------------------------------------------ */

/* The leaves of the certificate-transparency test vectors. */
static const char *ct_leaves_hex[8] = {
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};
static const char *ct_roots_hex[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static uint8_t ct_leaves[8][32];
static uint8_t ct_roots[9][32];
static uint8_t leaves[MAXN][32];   /* pseudo-random leaves for the exhaustive checks */
static uint8_t roots[MAXN + 1][32];

static void unhex(const char *h, uint8_t *out)
{
    assert_int_equal(hex_decode(h, out, strlen(h) / 2), 0);
}

static int setup(void **state)
{
    if (sodium_init() < 0)
        return -1;
    for (int i = 0; i < 8; i++) {
        uint8_t data[16];
        size_t len = strlen(ct_leaves_hex[i]) / 2;
        if (hex_decode(ct_leaves_hex[i], data, len) != 0)
            return -1;
        merkle_leaf_hash(data, len, ct_leaves[i]);
    }
    for (int i = 0; i < 9; i++)
        if (hex_decode(ct_roots_hex[i], ct_roots[i], 32) != 0)
            return -1;
    for (int i = 0; i < MAXN; i++) {
        char s[32];
        int n = snprintf(s, sizeof s, "leaf %d", i);
        merkle_leaf_hash((const uint8_t *)s, (size_t)n, leaves[i]);
    }
    for (int n = 0; n <= MAXN; n++)
        ref_mth((const uint8_t (*)[32])leaves, (uint64_t)n, roots[n]);
    return 0;
}

#define CLEAVES ((const uint8_t (*)[32])leaves)
#define PROOF(p) ((const uint8_t (*)[32])(p))

/* --- known answers ---------------------------------------------------------------------- */

static void empty_tree_is_sha256_of_nothing(void **state)
{
    uint8_t r[32];
    assert_int_equal(merkle_root(NULL, 0, r), 0);
    assert_memory_equal(r, ct_roots[0], 32);
}

static void leaf_and_node_hash_prefixes(void **state)
{
    uint8_t h[32], want[32], buf[65];
    merkle_leaf_hash((const uint8_t *)"", 0, h);
    assert_memory_equal(h, ct_roots[1], 32);    /* one empty leaf: SHA-256(0x00) */
    buf[0] = 0;
    memcpy(buf + 1, "abc", 3);
    crypto_hash_sha256(want, buf, 4);
    merkle_leaf_hash((const uint8_t *)"abc", 3, h);
    assert_memory_equal(h, want, 32);
    buf[0] = 1;
    memcpy(buf + 1, ct_leaves[0], 32);
    memcpy(buf + 33, ct_leaves[1], 32);
    crypto_hash_sha256(want, buf, 65);
    merkle_node_hash(ct_leaves[0], ct_leaves[1], h);
    assert_memory_equal(h, want, 32);
    assert_memory_equal(h, ct_roots[2], 32);
}

static void ct_roots_for_sizes_0_to_8(void **state)
{
    for (uint64_t n = 0; n <= 8; n++) {
        uint8_t r[32];
        assert_int_equal(merkle_root((const uint8_t (*)[32])ct_leaves, n, r), 0);
        if (memcmp(r, ct_roots[n], 32) != 0)
            fail_msg("root of size %llu differs from the RFC 6962 vector", (unsigned long long)n);
    }
}

static void ct_inclusion_and_consistency_vectors(void **state)
{
    static const struct { uint64_t index, size; const char *p[3]; } inc[] = {
        { 0, 8, { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
        { 5, 8, { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
    };
    static const struct { uint64_t old, new; size_t len; const char *p[3]; } cons[] = {
        { 2, 8, 2, { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
        { 6, 8, 3, { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
    };
    const uint8_t (*L)[32] = (const uint8_t (*)[32])ct_leaves;
    for (size_t t = 0; t < sizeof inc / sizeof inc[0]; t++) {
        uint8_t proof[MERKLE_PROOF_MAX][32], want[3][32];
        size_t len = MERKLE_PROOF_MAX;
        assert_int_equal(merkle_inclusion_proof(L, inc[t].size, inc[t].index, proof, &len), 0);
        assert_int_equal(len, 3);
        for (int i = 0; i < 3; i++)
            unhex(inc[t].p[i], want[i]);
        assert_memory_equal(proof, want, 3 * 32);
        assert_int_equal(merkle_verify_inclusion(inc[t].index, inc[t].size, L[inc[t].index],
                                                 PROOF(want), 3, ct_roots[inc[t].size]), 0);
    }
    for (size_t t = 0; t < sizeof cons / sizeof cons[0]; t++) {
        uint8_t proof[MERKLE_PROOF_MAX][32], want[3][32];
        size_t len = MERKLE_PROOF_MAX;
        assert_int_equal(merkle_consistency_proof(L, cons[t].new, cons[t].old, proof, &len), 0);
        assert_int_equal(len, cons[t].len);
        for (size_t i = 0; i < cons[t].len; i++)
            unhex(cons[t].p[i], want[i]);
        assert_memory_equal(proof, want, cons[t].len * 32);
        assert_int_equal(merkle_verify_consistency(cons[t].old, cons[t].new, ct_roots[cons[t].old],
                                                   ct_roots[cons[t].new], PROOF(want), cons[t].len), 0);
    }
}

/* RFC 6962 section 2.1.3, the worked examples, node for node: seven leaves d0..d6
 * with leaf hashes a..f and j, inner nodes g = (a,b), h = (c,d), i = (e,f),
 * k = (g,h), l = (i,j). The audit paths of d0, d3 and d6 are [b, h, l], [c, g, l]
 * and [i, k]; the consistency proofs of the trees of sizes 3, 4 and 6 with the
 * tree of size 7 are [c, d, g, l], [l] and [i, j, k]. */
static void rfc6962_worked_examples(void **state)
{
    const uint8_t (*L)[32] = (const uint8_t (*)[32])ct_leaves;
    uint8_t a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32], i[32], j[32], k[32], l[32];
    memcpy(a, L[0], 32); memcpy(b, L[1], 32); memcpy(c, L[2], 32); memcpy(d, L[3], 32);
    memcpy(e, L[4], 32); memcpy(f, L[5], 32); memcpy(j, L[6], 32);
    merkle_node_hash(a, b, g);
    merkle_node_hash(c, d, h);
    merkle_node_hash(e, f, i);
    merkle_node_hash(g, h, k);
    merkle_node_hash(i, j, l);
    uint8_t root7[32], root[32];
    merkle_node_hash(k, l, root7);
    assert_memory_equal(root7, ct_roots[7], 32);

    const struct { uint64_t index; size_t len; const uint8_t *p[4]; } inc[] = {
        { 0, 3, { b, h, l } }, { 3, 3, { c, g, l } }, { 6, 2, { i, k } },
    };
    for (size_t t = 0; t < 3; t++) {
        uint8_t proof[MERKLE_PROOF_MAX][32];
        size_t len = MERKLE_PROOF_MAX;
        assert_int_equal(merkle_inclusion_proof(L, 7, inc[t].index, proof, &len), 0);
        assert_int_equal(len, inc[t].len);
        for (size_t x = 0; x < len; x++)
            assert_memory_equal(proof[x], inc[t].p[x], 32);
        assert_int_equal(merkle_verify_inclusion(inc[t].index, 7, L[inc[t].index], PROOF(proof),
                                                 len, root7), 0);
    }
    const struct { uint64_t old; size_t len; const uint8_t *p[4]; } cons[] = {
        { 3, 4, { c, d, g, l } }, { 4, 1, { l } }, { 6, 3, { i, j, k } },
    };
    for (size_t t = 0; t < 3; t++) {
        uint8_t proof[MERKLE_PROOF_MAX][32];
        size_t len = MERKLE_PROOF_MAX;
        assert_int_equal(merkle_consistency_proof(L, 7, cons[t].old, proof, &len), 0);
        assert_int_equal(len, cons[t].len);
        for (size_t x = 0; x < len; x++)
            assert_memory_equal(proof[x], cons[t].p[x], 32);
        assert_int_equal(merkle_root(L, cons[t].old, root), 0);
        assert_int_equal(merkle_verify_consistency(cons[t].old, 7, root, root7, PROOF(proof), len), 0);
    }
    /* hash0 = (g, c), hash1 = k, hash2 = (k, i) as the RFC names the older roots */
    uint8_t hash0[32], hash2[32];
    merkle_node_hash(g, c, hash0);
    merkle_node_hash(k, i, hash2);
    assert_int_equal(merkle_root(L, 3, root), 0);
    assert_memory_equal(root, hash0, 32);
    assert_int_equal(merkle_root(L, 4, root), 0);
    assert_memory_equal(root, k, 32);
    assert_int_equal(merkle_root(L, 6, root), 0);
    assert_memory_equal(root, hash2, 32);
}

/* --- exhaustive cross-check against the reference ------------------------------------ */

static void roots_match_reference(void **state)
{
    for (uint64_t n = 0; n <= MAXN; n++) {
        uint8_t r[32];
        assert_int_equal(merkle_root(CLEAVES, n, r), 0);
        assert_memory_equal(r, roots[n], 32);
    }
}

static void every_inclusion_proof_matches_reference_and_verifies(void **state)
{
    int checked = 0;
    for (uint64_t n = 1; n < MAXN; n++) {
        for (uint64_t m = 0; m < n; m++) {
            uint8_t proof[MERKLE_PROOF_MAX][32], ref[MERKLE_PROOF_MAX][32];
            size_t len = MERKLE_PROOF_MAX;
            assert_int_equal(merkle_inclusion_proof(CLEAVES, n, m, proof, &len), 0);
            size_t rlen = ref_path(m, CLEAVES, n, ref);
            assert_int_equal(len, rlen);
            if (len)
                assert_memory_equal(proof, ref, len * 32);
            assert_int_equal(merkle_verify_inclusion(m, n, leaves[m], PROOF(proof), len, roots[n]), 0);
            checked++;
        }
    }
    print_message("    %d inclusion proofs match the reference and verify\n", checked);
}

static void every_consistency_proof_matches_reference_and_verifies(void **state)
{
    int checked = 0;
    for (uint64_t n = 1; n < MAXN; n++) {
        for (uint64_t m = 0; m <= n; m++) {
            uint8_t proof[MERKLE_PROOF_MAX][32], ref[MERKLE_PROOF_MAX][32];
            size_t len = MERKLE_PROOF_MAX;
            assert_int_equal(merkle_consistency_proof(CLEAVES, n, m, proof, &len), 0);
            size_t rlen = (m == 0 || m == n) ? 0 : ref_subproof(m, CLEAVES, n, 1, ref);
            assert_int_equal(len, rlen);
            if (len)
                assert_memory_equal(proof, ref, len * 32);
            assert_int_equal(merkle_verify_consistency(m, n, roots[m], roots[n], PROOF(proof), len), 0);
            checked++;
        }
    }
    print_message("    %d consistency proofs match the reference and verify\n", checked);
}

/* --- proofs that must fail ------------------------------------------------------------------ */
/* Sizes are changed by doubling and halving: a size off by one can keep the
 * shape of a leaf's path (n = 5 -> 6 for leaf 0), and then the proof is rightly
 * accepted for the root it was made for; only the root binds the size. */

static void bad_inclusion_proofs_fail(void **state)
{
    uint8_t other[32];
    merkle_leaf_hash((const uint8_t *)"not a leaf", 10, other);
    for (uint64_t n = 1; n < MAXN; n++) {
        for (uint64_t m = 0; m < n; m++) {
            uint8_t proof[MERKLE_PROOF_MAX + 1][32];
            size_t len = MERKLE_PROOF_MAX;
            assert_int_equal(merkle_inclusion_proof(CLEAVES, n, m, proof, &len), 0);
            const uint8_t (*P)[32] = PROOF(proof);

            assert_int_not_equal(merkle_verify_inclusion(m, n, other, P, len, roots[n]), 0);
            assert_int_not_equal(merkle_verify_inclusion(m, n, leaves[m], P, len, roots[n - 1]), 0);
            if (m + 1 < n)
                assert_int_not_equal(merkle_verify_inclusion(m + 1, n, leaves[m], P, len, roots[n]), 0);
            if (m > 0)
                assert_int_not_equal(merkle_verify_inclusion(m - 1, n, leaves[m], P, len, roots[n]), 0);
            assert_int_not_equal(merkle_verify_inclusion(m, 2 * n, leaves[m], P, len, roots[n]), 0);
            if (n / 2 > m)
                assert_int_not_equal(merkle_verify_inclusion(m, n / 2, leaves[m], P, len, roots[n]), 0);
            assert_int_equal(merkle_verify_inclusion(n, n, leaves[m], P, len, roots[n]), LEDGER_ERR_RANGE);
            for (size_t i = 0; i < len; i++) {
                for (int bit = 0; bit < 256; bit += 37) {
                    proof[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
                    assert_int_not_equal(merkle_verify_inclusion(m, n, leaves[m], P, len, roots[n]), 0);
                    proof[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
                }
            }
            if (len > 0)
                assert_int_equal(merkle_verify_inclusion(m, n, leaves[m], P, len - 1, roots[n]),
                                 LEDGER_ERR_PROOF_LENGTH);
            memset(proof[len], 0xab, 32);
            assert_int_equal(merkle_verify_inclusion(m, n, leaves[m], P, len + 1, roots[n]),
                             LEDGER_ERR_PROOF_LENGTH);
            if (len >= 2 && memcmp(proof[0], proof[1], 32) != 0) {
                uint8_t t[32];
                memcpy(t, proof[0], 32);
                memcpy(proof[0], proof[1], 32);
                memcpy(proof[1], t, 32);
                assert_int_equal(merkle_verify_inclusion(m, n, leaves[m], P, len, roots[n]),
                                 LEDGER_ERR_PROOF_MISMATCH);
            }
        }
    }
}

static void bad_consistency_proofs_fail(void **state)
{
    for (uint64_t n = 2; n < MAXN; n++) {
        for (uint64_t m = 1; m < n; m++) {
            uint8_t proof[MERKLE_PROOF_MAX + 1][32];
            size_t len = MERKLE_PROOF_MAX;
            assert_int_equal(merkle_consistency_proof(CLEAVES, n, m, proof, &len), 0);
            const uint8_t (*P)[32] = PROOF(proof);
            assert_true(len > 0);

            /* swapped roots, neighbouring roots, wrong sizes */
            assert_int_not_equal(merkle_verify_consistency(m, n, roots[n], roots[m], P, len), 0);
            assert_int_not_equal(merkle_verify_consistency(m, n, roots[m - 1], roots[n], P, len), 0);
            assert_int_not_equal(merkle_verify_consistency(m, n, roots[m], roots[n - 1], P, len), 0);
            assert_int_not_equal(merkle_verify_consistency(m + 1, n, roots[m], roots[n], P, len), 0);
            assert_int_not_equal(merkle_verify_consistency(m - 1, n, roots[m], roots[n], P, len), 0);
            assert_int_not_equal(merkle_verify_consistency(m, 2 * n, roots[m], roots[n], P, len), 0);
            if (m / 2 > 0)
                assert_int_not_equal(merkle_verify_consistency(m / 2, n, roots[m], roots[n], P, len), 0);
            assert_int_equal(merkle_verify_consistency(n, m, roots[n], roots[m], P, len), LEDGER_ERR_RANGE);
            for (size_t i = 0; i < len; i++) {
                for (int bit = 0; bit < 256; bit += 41) {
                    proof[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
                    assert_int_not_equal(merkle_verify_consistency(m, n, roots[m], roots[n], P, len), 0);
                    proof[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
                }
            }
            assert_int_not_equal(merkle_verify_consistency(m, n, roots[m], roots[n], P, len - 1), 0);
            memset(proof[len], 0xcd, 32);
            assert_int_not_equal(merkle_verify_consistency(m, n, roots[m], roots[n], P, len + 1), 0);
            if (len >= 2 && memcmp(proof[0], proof[1], 32) != 0) {
                uint8_t t[32];
                memcpy(t, proof[0], 32);
                memcpy(proof[0], proof[1], 32);
                memcpy(proof[1], t, 32);
                assert_int_not_equal(merkle_verify_consistency(m, n, roots[m], roots[n], P, len), 0);
            }
        }
    }
}

static void degenerate_consistency_cases(void **state)
{
    uint8_t junk[1][32];
    memset(junk, 0, sizeof junk);
    assert_int_equal(merkle_verify_consistency(4, 4, roots[4], roots[4], NULL, 0), 0);
    assert_int_equal(merkle_verify_consistency(4, 4, roots[4], roots[5], NULL, 0), LEDGER_ERR_PROOF_MISMATCH);
    assert_int_equal(merkle_verify_consistency(4, 4, roots[4], roots[4], PROOF(junk), 1), LEDGER_ERR_PROOF_LENGTH);
    assert_int_equal(merkle_verify_consistency(0, 8, roots[0], roots[8], NULL, 0), 0);
    assert_int_equal(merkle_verify_consistency(0, 8, roots[1], roots[8], NULL, 0), LEDGER_ERR_PROOF_MISMATCH);
    assert_int_equal(merkle_verify_consistency(0, 8, roots[0], roots[8], PROOF(junk), 1), LEDGER_ERR_PROOF_LENGTH);
    assert_int_equal(merkle_verify_consistency(3, 8, roots[3], roots[8], NULL, 0), LEDGER_ERR_PROOF_LENGTH);
}

static void argument_errors(void **state)
{
    uint8_t proof[MERKLE_PROOF_MAX][32], r[32];
    size_t len = MERKLE_PROOF_MAX;
    assert_int_equal(merkle_inclusion_proof(CLEAVES, 8, 8, proof, &len), LEDGER_ERR_RANGE);
    assert_int_equal(merkle_inclusion_proof(CLEAVES, 0, 0, proof, &len), LEDGER_ERR_RANGE);
    assert_int_equal(merkle_consistency_proof(CLEAVES, 3, 5, proof, &len), LEDGER_ERR_RANGE);
    len = 2;   /* a 3-hash proof does not fit */
    assert_int_equal(merkle_inclusion_proof(CLEAVES, 8, 1, proof, &len), LEDGER_ERR_PROOF_CAPACITY);
    len = 1;
    assert_int_equal(merkle_consistency_proof(CLEAVES, 8, 3, proof, &len), LEDGER_ERR_PROOF_CAPACITY);
    len = 0;   /* capacity 0 is fine for an empty proof */
    assert_int_equal(merkle_inclusion_proof(CLEAVES, 1, 0, NULL, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(merkle_root(NULL, 3, r), LEDGER_ERR_ARG);
    assert_int_equal(merkle_verify_inclusion(0, 1, NULL, NULL, 0, roots[1]), LEDGER_ERR_ARG);
    assert_int_equal(merkle_verify_inclusion(0, 1, leaves[0], NULL, 0, roots[1]), 0);
    assert_int_equal(merkle_verify_inclusion(0, UINT64_MAX, leaves[0], NULL, 0, roots[1]), LEDGER_ERR_PROOF_LENGTH);
    assert_string_equal(ledger_strerror(LEDGER_ERR_PROOF_MISMATCH), "proof does not match the root");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_tree_is_sha256_of_nothing),
        cmocka_unit_test(leaf_and_node_hash_prefixes),
        cmocka_unit_test(ct_roots_for_sizes_0_to_8),
        cmocka_unit_test(ct_inclusion_and_consistency_vectors),
        cmocka_unit_test(rfc6962_worked_examples),
        cmocka_unit_test(roots_match_reference),
        cmocka_unit_test(every_inclusion_proof_matches_reference_and_verifies),
        cmocka_unit_test(every_consistency_proof_matches_reference_and_verifies),
        cmocka_unit_test(bad_inclusion_proofs_fail),
        cmocka_unit_test(bad_consistency_proofs_fail),
        cmocka_unit_test(degenerate_consistency_cases),
        cmocka_unit_test(argument_errors),
    };
    return cmocka_run_group_tests_name("merkle", tests, setup, NULL);
}
