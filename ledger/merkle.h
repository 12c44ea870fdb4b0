#ifndef AULAC_LEDGER_MERKLE_H
#define AULAC_LEDGER_MERKLE_H
/* RFC 6962 / RFC 9162 Merkle tree hashing over SHA-256:
 *
 *   leaf hash   H(0x00 ‖ entry)
 *   node hash   H(0x01 ‖ left ‖ right)
 *   MTH(D[n])   for n > 1: node(MTH(D[0:k]), MTH(D[k:n])), k the largest power
 *               of two < n;  MTH of one leaf is its leaf hash;  MTH({}) = H("")
 *
 * Functions here work on arrays of leaf hashes held in memory; ledger.h gives
 * the same roots and proofs from the LMDB log without reading every leaf.
 * Proofs are arrays of 32-byte hashes in RFC 9162 order (nearest the leaf first).
 *
 * All int-returning functions give 0 when valid or a negative code from
 * ledger/errors.h: LEDGER_ERR_ARG (NULL), LEDGER_ERR_RANGE (index >= n,
 * n_old > n_new), LEDGER_ERR_PROOF_CAPACITY (*proof_len too small; no proof is
 * longer than MERKLE_PROOF_MAX), and from the verifiers LEDGER_ERR_PROOF_LENGTH
 * or LEDGER_ERR_PROOF_MISMATCH. */
#include <stddef.h>
#include <stdint.h>

#include "ledger/errors.h"

#define MERKLE_HASH_BYTES 32
#define MERKLE_PROOF_MAX  65   /* inclusion <= 64, consistency <= 65 hashes, for any n < 2^64 */

void merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[32]);
void merkle_node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32]);

/* MTH of the first n leaf hashes. O(n) time, O(log n) memory. */
int  merkle_root(const uint8_t (*leaf_hashes)[32], uint64_t n, uint8_t out[32]);

/* Audit path for leaf index in the tree of the first n leaves.
 * *proof_len: capacity in, length out. */
int  merkle_inclusion_proof(const uint8_t (*leaf_hashes)[32], uint64_t n, uint64_t index,
                            uint8_t (*proof)[32], size_t *proof_len);

/* Consistency proof between the trees of the first n_old and n_new leaves
 * (empty when n_old is 0 or n_old == n_new). *proof_len: capacity in, length out. */
int  merkle_consistency_proof(const uint8_t (*leaf_hashes)[32], uint64_t n_new, uint64_t n_old,
                              uint8_t (*proof)[32], size_t *proof_len);

/* RFC 9162 2.1.3.2. */
int  merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[32],
                             const uint8_t (*proof)[32], size_t proof_len,
                             const uint8_t root[32]) __attribute__((warn_unused_result));

/* RFC 9162 2.1.4.2; size_old == size_new needs an empty proof and equal roots,
 * size_old == 0 an empty proof and root_old == H(""). */
int  merkle_verify_consistency(uint64_t size_old, uint64_t size_new,
                               const uint8_t root_old[32], const uint8_t root_new[32],
                               const uint8_t (*proof)[32], size_t proof_len)
                               __attribute__((warn_unused_result));

#endif
