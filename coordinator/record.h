#ifndef AULAC_COORDINATOR_RECORD_H
#define AULAC_COORDINATOR_RECORD_H
/* The coordinator's ledger entries (ledger/entry.h), each appended in the caller's
 * write transaction so that it commits with the state change it records.
 * Return 0 or COORD_ERR_STATE (logged). */
#include "aggregate/round.h"
#include "coordinator/coord.h"
#include "coordinator/state.h"
#include "credit/score.h"
#include "crypto/envelope.h"
#include "ledger/entry.h"

struct entry;

/* Stamps e with the time, encodes it and appends it; *index (may be NULL) gets its leaf. */
int record_append(struct coord *c, MDB_txn *txn, struct entry *e, uint64_t *index);

int record_genesis(struct coord *c, MDB_txn *txn);
int record_experiment_started(struct coord *c, MDB_txn *txn);
/* reason: NULL when it ran its planned rounds, else why it ended early (privacy budget). */
int record_experiment_finished(struct coord *c, MDB_txn *txn, const char *reason);
/* Any of the four experiment entries, of an experiment that need not be loaded.
 * experiment_started of the loaded experiment with c->have_dp_seed carries the seed's
 * commitment (agg_dp_seed_commitment, PRIVACY.md).
 * proposal_hash the approved policy_proposed motion's, model_hash (NULL: none) its initial or last model, rounds planned (started) or closed,
 * reason (cancelled, failed; may be NULL). */
int record_experiment_event(struct coord *c, MDB_txn *txn, enum entry_type type,
                            const char *experiment, const uint8_t policy_hash[32],
                            const uint8_t proposal_hash[32], const uint8_t *model_hash,
                            uint64_t rounds, const char *reason);
/* The model_hash (the initial model), dp_seed_commitment (zero: none) and, when
 * dp_scheme is not NULL, dp_noise_scheme (0: none) of `experiment`'s experiment_started,
 * read from the ledger (backwards from its end). *found 0 when there is none. 0, or
 * COORD_ERR_STATE (logged). */
int record_experiment_started_find(struct coord *c, const char *experiment,
                                   uint8_t model_hash[32], uint8_t commitment[32],
                                   uint32_t *dp_scheme, int *found);
/* The DP noise seed of `experiment` (privacy on): <data dir>/experiments/<id>/dp-noise-seed,
 * 32 bytes, 0600. coord_dp_seed_read: 0, 1 when there is none, -errno. coord_dp_seed_make:
 * reads it, or draws one from libsodium's CSPRNG and writes it (atomically, fsynced)
 * when there is none; 0 or -errno. The coordinator serves it nowhere (status, API, HTTP,
 * logs); it leaves the data directory only with the payloads, once the experiment has
 * ended (`aulac ledger export --payloads`: PRIVACY.md, "Replaying the noise"). */
int coord_dp_seed_read(const struct coord *c, const char *experiment, uint8_t seed[32]);
int coord_dp_seed_make(const struct coord *c, const char *experiment, uint8_t seed[32]);
/* Privacy on: the loaded experiment's seed into c->dp_seed, c->have_dp_seed = 1, and the
 * noise scheme it is drawn with into c->dp_scheme; privacy off: have_dp_seed = 0. fresh:
 * it starts now (read, or drawn and kept first; its experiment_started commits to the
 * seed and records AGG_DP_SCHEME). Else it resumes: when its experiment_started carries a
 * dp_seed_commitment the file must exist and hash to it (else COORD_ERR_STATE, logged
 * with the file and the commitment: the experiment is not resumed), and the experiment
 * keeps the scheme it recorded (none: scheme 1, an earlier version's; one this version
 * does not know: COORD_ERR_STATE); only without a commitment is a seed drawn (logged:
 * replay cannot check those rounds), used with AGG_DP_SCHEME.
 * 0, or COORD_ERR_STATE (logged). Timer thread (or coord_open). */
int coord_dp_seed_load(struct coord *c, int fresh);

/* val_loss: the member's reported validation loss (informational, not signed). */
int record_update_accepted(struct coord *c, MDB_txn *txn, const struct update_envelope *env,
                           const uint8_t signature[64], double train_loss, double val_loss,
                           uint64_t *index);
int record_update_rejected(struct coord *c, MDB_txn *txn, const char *experiment,
                           uint64_t round, const char *member, const char *reason,
                           uint64_t *index);
/* epsilon: NULL without privacy, else the epsilon spent after this round. */
int record_round_closed(struct coord *c, MDB_txn *txn, const struct round_summary *s,
                        const uint8_t aggregate_hash[32], const double *epsilon);

/* The contribution_scores entry of the loaded experiment's round `round` from its scores:
 * the policy's measures in enum policy_measure order, each member (u[i], sorted by id) with
 * its payload hash and values, the evaluation set's hash when loo or shapley is measured.
 * out->members is malloc'd (free it). COORD_ERR_NOMEM. */
int scores_entry_fill(const struct coord *c, uint64_t round, const struct agg_update *u,
                      size_t n, const uint8_t seed[32], const struct credit_round_scores *s,
                      struct entry_contribution_scores *out);
int record_contribution_scores(struct coord *c, MDB_txn *txn,
                               const struct entry_contribution_scores *s);
int record_credits(struct coord *c, MDB_txn *txn, const struct entry_credits *cr);

#endif
