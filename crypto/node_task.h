#ifndef AULAC_CRYPTO_NODE_TASK_H
#define AULAC_CRYPTO_NODE_TASK_H
/* The node task: what the leader node of a multi-node member tells each follower node
 * (model/README.md, "Several nodes in one member"), signed with the member's own key.
 * It carries the NCCL unique id, a capability for the member's training group, so a
 * follower accepts it only when
 *
 *   - the bytes decode exactly (crypto/README.md, "Node task": no truncation, no
 *     trailing bytes, valid ids and kind),
 *   - the signer is the expected member and the signature verifies with its key,
 *   - it has not expired and is not valid for longer than NODE_TASK_MAX_LIFETIME_MS,
 *   - its nonce was not seen before (struct node_task_replay).
 *
 * node_task_accept() is the one place where a follower reads these untrusted bytes.
 * Unlike the other statements, the header itself is what travels (NodeTask.header in
 * proto/aulac.proto): the follower decodes it strictly, re-encodes the decoded fields
 * and verifies the signature over that, so nothing it was not signed is ever used.
 *
 * Returns 0 or a crypto error (crypto/digest.h): CRYPTO_ERR_ARG, CRYPTO_ERR_BAD_ID,
 * CRYPTO_ERR_KEY_MISMATCH (sign with another member's key; accept of a task naming
 * another member), CRYPTO_ERR_BAD_SIGNATURE, CRYPTO_ERR_MALFORMED, CRYPTO_ERR_EXPIRED,
 * CRYPTO_ERR_REPLAYED, CRYPTO_ERR_BUFFER. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/digest.h"
#include "crypto/keys.h"

#define NODE_TASK_DOMAIN          "aulac/node-task/v1"
#define NODE_TASK_NCCL_ID_BYTES   128      /* NCCL_UNIQUE_ID_BYTES */
#define NODE_TASK_NONCE_BYTES     16
#define NODE_TASK_HEADER_MAX      512      /* every header fits */
#define NODE_TASK_MAX_LIFETIME_MS (10 * 60 * 1000)
#define NODE_TASK_REPLAY_SLOTS    1024     /* nonces remembered by a follower */

enum node_task_kind {
    NODE_TASK_PROBE = 1,   /* check the channel and keys only; the NCCL id is all zeros */
    NODE_TASK_GROUP = 2,   /* (re)create the training group with this NCCL id */
    NODE_TASK_TRAIN = 3,   /* in this group: sync from rank 0, check the base, train */
    NODE_TASK_STOP  = 4,   /* the experiment is over (or the leader stops): leave */
};

struct node_task {
    char     member[CRYPTO_ID_MAX + 1];      /* the signer: the member all nodes belong to */
    uint8_t  kind;                           /* enum node_task_kind */
    char     experiment[CRYPTO_ID_MAX + 1];  /* "" for PROBE */
    uint64_t round;                          /* TRAIN: the coordinator's round */
    uint64_t seq;                            /* the leader's task counter (long poll) */
    uint32_t node_rank;                      /* the follower it is for (1..nodes-1) */
    uint32_t nranks;                         /* GPUs over all the member's nodes */
    uint32_t first_rank;                     /* that follower's first GPU rank */
    uint8_t  nccl_id[NODE_TASK_NCCL_ID_BYTES];
    uint8_t  base_model_hash[CRYPTO_DIGEST_BYTES]; /* TRAIN: the replica must have it */
    uint32_t inner_steps;                    /* TRAIN: steps every node runs */
    uint8_t  policy_hash[CRYPTO_DIGEST_BYTES];     /* trainer options: the approved policy */
    uint64_t data_seed;                      /* TRAIN: the round's seed, mixed with the rank */
    int64_t  expires_unix_ms;
    uint8_t  nonce[NODE_TASK_NONCE_BYTES];
};

int node_task_encode(const struct node_task *t, uint8_t *buf, size_t cap, size_t *len);
/* Strict inverse of encode: CRYPTO_ERR_MALFORMED for anything encode would not write. */
int node_task_decode(const uint8_t *buf, size_t len, struct node_task *out);
int node_task_digest(const struct node_task *t, uint8_t out[CRYPTO_DIGEST_BYTES]);
int node_task_sign(const struct node_task *t, const struct crypto_key *k,
                   uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int node_task_verify(const struct node_task *t,
                     const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                     const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

/* Nonces seen, each kept until its task's expiry; when all slots hold unexpired
 * nonces the oldest is dropped and tasks expiring no later than it are refused, so no
 * replay is ever accepted. Zero-initialize before use. */
struct node_task_replay {
    uint8_t nonce[NODE_TASK_REPLAY_SLOTS][NODE_TASK_NONCE_BYTES];
    int64_t expires[NODE_TASK_REPLAY_SLOTS];
    int64_t floor;     /* tasks expiring at or before this are refused */
};

/* CRYPTO_ERR_REPLAYED when nonce was seen (or is older than what the full cache still
 * covers), else 0 after remembering it until expires. The leader uses it for the
 * follower's request nonces too. */
int node_task_replay_check(struct node_task_replay *r, const uint8_t nonce[NODE_TASK_NONCE_BYTES],
                           int64_t expires, int64_t now) CRYPTO_WARN_UNUSED;

/* The follower's check of one received task (header bytes and signature as received):
 * all the rules above, with now_unix_ms as the clock. On 0 *out holds the task and its
 * nonce is remembered in r; otherwise why (may be NULL) says what was wrong in words. */
int node_task_accept(const uint8_t *header, size_t header_len, const uint8_t *sig,
                     size_t sig_len, const char *member,
                     const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES], int64_t now_unix_ms,
                     struct node_task_replay *r, struct node_task *out, char *why,
                     size_t why_cap) CRYPTO_WARN_UNUSED;

#endif
