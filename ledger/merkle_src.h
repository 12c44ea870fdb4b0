#ifndef AULAC_LEDGER_MERKLE_SRC_H
#define AULAC_LEDGER_MERKLE_SRC_H
/* Private to ledger/: the proof algorithms of merkle.c over any source of
 * subtree hashes, so the in-memory API and the LMDB log share one implementation. */
#include <stddef.h>
#include <stdint.h>

/* Writes MTH(D[begin:end]) (begin < end) into out; 0 or a ledger error. Only
 * called for ranges the RFC recursion produces: begin is a multiple of the
 * largest power of two <= end - begin. */
typedef int (*merkle_range_fn)(void *ctx, uint64_t begin, uint64_t end, uint8_t out[32]);

int merkle_src_inclusion_proof(merkle_range_fn range, void *ctx, uint64_t n, uint64_t index,
                               uint8_t (*proof)[32], size_t *proof_len);
int merkle_src_consistency_proof(merkle_range_fn range, void *ctx, uint64_t n_new, uint64_t n_old,
                                 uint8_t (*proof)[32], size_t *proof_len);

/* Largest power of two strictly less than n (n >= 2). */
uint64_t merkle_split(uint64_t n);

#endif
