#ifndef AULAC_CREDIT_EVALSET_H
#define AULAC_CREDIT_EVALSET_H
/* The alliance evaluation set: a public text file, pinned in the policy by its
 * BLAKE2b-256 (contribution.evaluation_set), on which the evaluation-based
 * contribution measures (loo, shapley) measure models. Tokens are its bytes (the
 * built-in byte vocabulary).
 *
 * Windows (credit/README.md): W windows of T + 1 bytes, T = the training seq_len;
 * window i (0-based) starts at floor(i * (len - T - 1) / (W - 1)) (0 when W is 1), so
 * they spread over the whole text; inputs are bytes [s, s+T), targets [s+1, s+T+1).
 * The loss is the mean cross-entropy over all W * T positions, computed in batches of
 * CREDIT_EVAL_BATCH windows (the last one shorter) on one CPU thread, each batch's
 * mean weighted by its window count, summed in double in window order: the same
 * inputs give the same bytes on the same machine. */
#include <stddef.h>
#include <stdint.h>

#include "model/gpt2.h"

/* Error codes of credit/ (range -1700..-1749). */
#define CREDIT_ERR_ARG      (-1700)
#define CREDIT_ERR_NOMEM    (-1701)
#define CREDIT_ERR_IO       (-1702)   /* the file cannot be read */
#define CREDIT_ERR_HASH     (-1703)   /* the file's hash is not the one pinned */
#define CREDIT_ERR_SMALL    (-1704)   /* shorter than one window */
#define CREDIT_ERR_MODEL    (-1705)   /* the model cannot be built or evaluated */
#define CREDIT_ERR_PAYLOAD  (-1706)   /* an update does not decode */
#define CREDIT_ERR_FORMAT   (-1707)   /* a scores / credits entry is inconsistent */

#define CREDIT_EVALSET_MAX   (64u << 20)  /* bytes */
#define CREDIT_EVAL_BATCH    8

struct evalset {
    uint8_t *text;                /* the file's bytes; owned */
    size_t len;
    uint8_t hash[32];             /* BLAKE2b-256 of the bytes */
};

/* Reads path (a regular file of at most CREDIT_EVALSET_MAX bytes) and hashes it. When
 * want_hash is not NULL the hash must equal it: CREDIT_ERR_HASH, with both hashes in
 * why. CREDIT_ERR_IO (why: path and errno words), CREDIT_ERR_NOMEM. */
int evalset_load(const char *path, const uint8_t *want_hash, struct evalset *out, char *why,
                 size_t cap);
void evalset_free(struct evalset *e);

/* The policy's evaluation set as the coordinator holds it: 0 when c needs none (no loo,
 * no shapley) or dir/name exists, hashes to the pinned hash and holds one window of
 * seq_len + 1 bytes (the policy's training.seq_len; 0: not checked); else CREDIT_ERR_IO,
 * CREDIT_ERR_HASH or CREDIT_ERR_SMALL with why starting "contribution.evaluation_set: "
 * and naming the file (and both hashes, or both sizes). */
struct policy_contribution;
int evalset_check_policy(const struct policy_contribution *c, uint32_t seq_len,
                         const char *dir, char *why, size_t cap);

/* A model of cfg evaluating W windows of T tokens of es (es must outlive it).
 * CREDIT_ERR_SMALL when es->len < T + 1, CREDIT_ERR_ARG (W 0, T 0 or > cfg->max_seq_len),
 * CREDIT_ERR_MODEL, CREDIT_ERR_NOMEM. */
struct evaluator;
int  evaluator_create(const struct gpt2_config *cfg, const struct evalset *es, uint32_t windows,
                      uint32_t seq_len, struct evaluator **out, char *why, size_t cap);
void evaluator_destroy(struct evaluator *ev);
/* Mean cross-entropy (nats per byte) of params (gpt2_num_params floats) on the windows.
 * Counts one evaluation. CREDIT_ERR_MODEL when the loss is not finite (*loss then holds
 * the non-finite value) or the forward pass fails (*loss untouched). */
int  evaluator_loss(struct evaluator *ev, const float *params, double *loss);
uint64_t evaluator_count(const struct evaluator *ev);   /* evaluations so far */

#endif
