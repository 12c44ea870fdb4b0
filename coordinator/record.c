#include "coordinator/record.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate/robust.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "ledger/entry.h"
#include "ledger/history.h"

int record_append(struct coord *c, MDB_txn *txn, struct entry *e, uint64_t *index)
{
    e->timestamp_ms = time_now_unix_ms();
    uint8_t *buf;
    size_t len;
    int rc = entry_encode(e, &buf, &len);
    if (rc != 0) {
        log_error("cannot encode a %s ledger entry: %s", entry_type_name(e->type),
                  ledger_strerror(rc));
        return COORD_ERR_STATE;
    }
    rc = ledger_append(c->ledger, txn, buf, len, index);
    free(buf);
    if (rc != 0) {
        log_error("cannot append a %s ledger entry: %s", entry_type_name(e->type),
                  ledger_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

int record_genesis(struct coord *c, MDB_txn *txn)
{
    const size_t n = c->roster.n_members;
    struct entry_member *m = calloc(n + 1, sizeof *m);
    if (!m)
        return COORD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct roster_member *r = &c->roster.members[i];
        snprintf(m[i].id, sizeof m[i].id, "%s", r->id);
        m[i].organization = (char *)r->organization;
        m[i].roles = r->roles;   /* roster roles use the entry's bit values */
        memcpy(m[i].public_key, r->public_key, 32);
    }
    /* The coordinator's own key is part of the founding record: it signs receipts
     * and checkpoints that members check against this entry. */
    snprintf(m[n].id, sizeof m[n].id, "%s", crypto_key_member(c->key));
    m[n].roles = ENTRY_ROLE_COORDINATOR;
    memcpy(m[n].public_key, c->pub.key, 32);
    struct entry e = { .type = ENTRY_GENESIS };
    e.u.genesis.alliance = c->roster.alliance;
    e.u.genesis.n_members = (uint32_t)n + 1;
    e.u.genesis.members = m;
    size_t len;
    int rc = charter_format(&c->roster.charter, &e.u.genesis.charter, &len) == 0
                 ? record_append(c, txn, &e, NULL) : COORD_ERR_NOMEM;
    free(e.u.genesis.charter);
    free(m);
    return rc;
}

static void dp_seed_path(const struct coord *c, const char *experiment, char *out, size_t cap)
{
    snprintf(out, cap, "%s/experiments/%s/dp-noise-seed", c->opt.data_dir, experiment);
}

int coord_dp_seed_read(const struct coord *c, const char *experiment, uint8_t seed[32])
{
    char path[4200];
    dp_seed_path(c, experiment, path, sizeof path);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = file_read_all(path, 64, &buf, &len);
    if (rc == -ENOENT)
        return 1;
    if (rc != 0)
        return rc;
    if (len != AGG_DP_SEED_BYTES) {
        sodium_memzero(buf, len);
        free(buf);
        return -EINVAL;
    }
    memcpy(seed, buf, AGG_DP_SEED_BYTES);
    sodium_memzero(buf, len);
    free(buf);
    return 0;
}

int coord_dp_seed_make(const struct coord *c, const char *experiment, uint8_t seed[32])
{
    int rc = coord_dp_seed_read(c, experiment, seed);
    if (rc <= 0)
        return rc;
    char path[4200], dir[4200];
    snprintf(dir, sizeof dir, "%s/experiments/%s", c->opt.data_dir, experiment);
    if ((rc = file_mkdirs(dir, 0700)) != 0)
        return rc;
    dp_seed_path(c, experiment, path, sizeof path);
    randombytes_buf(seed, AGG_DP_SEED_BYTES);
    return file_write_atomic(path, seed, AGG_DP_SEED_BYTES, 0600);
}

/* The model_hash and dp_seed_commitment of `experiment`'s experiment_started entry: the
 * ledger read backwards from its end (an experiment's start is among its own entries, so
 * the scan is bounded by them), only the header of others decoded. *found 0 when the
 * ledger has no experiment_started of it. 0, or COORD_ERR_STATE (logged). */
int record_experiment_started_find(struct coord *c, const char *experiment,
                                   uint8_t model_hash[32], uint8_t out[32],
                                   uint32_t *dp_scheme, int *found)
{
    memset(out, 0, 32);
    memset(model_hash, 0, 32);
    if (dp_scheme)
        *dp_scheme = 0;
    *found = 0;
    MDB_txn *txn;
    uint64_t size = 0;
    if (ledger_read_begin(c->ledger, &txn) != 0) {
        log_error("experiment %s: cannot read the ledger for its experiment_started", experiment);
        return COORD_ERR_STATE;
    }
    int rc = ledger_size_txn(c->ledger, txn, &size);
    for (uint64_t i = size; rc == 0 && i-- > 0 && !*found;) {
        uint8_t *bytes;
        size_t len;
        if ((rc = ledger_get_txn(c->ledger, txn, i, &bytes, &len)) != 0) {
            log_error("cannot read ledger entry #%llu: %s", (unsigned long long)i,
                      ledger_strerror(rc));
            break;
        }
        /* the type sits at bytes 5..6: skip the entries that are not a start */
        unsigned type = len >= ENTRY_HEADER_BYTES ? (unsigned)(bytes[5] << 8 | bytes[6]) : 0;
        if (type == ENTRY_EXPERIMENT_STARTED) {
            struct entry e;
            if ((rc = entry_decode(bytes, len, &e)) != 0) {
                log_error("ledger entry #%llu does not decode: %s", (unsigned long long)i,
                          ledger_strerror(rc));
            } else {
                if (strcmp(e.u.experiment.experiment, experiment) == 0) {
                    memcpy(out, e.u.experiment.dp_seed_commitment, 32);
                    memcpy(model_hash, e.u.experiment.model_hash, 32);
                    if (dp_scheme)
                        *dp_scheme = e.u.experiment.dp_noise_scheme;
                    *found = 1;
                }
                entry_free(&e);
            }
        }
        free(bytes);
    }
    ledger_read_end(c->ledger, txn);
    return rc == 0 ? 0 : COORD_ERR_STATE;
}

/* Privacy on: the loaded experiment's DP noise seed into c->dp_seed. fresh: the
 * experiment starts now: the seed is read from its file, or drawn and written there first
 * (coord_dp_seed_make), and its experiment_started will commit to it. Else it resumes:
 * when its experiment_started carries a dp_seed_commitment, the file must exist and hash
 * to it, or the experiment is not resumed (COORD_ERR_STATE, logged, naming the file and
 * the commitment: the noise of its next rounds would not be the committed one's); a seed
 * is drawn only when there is no commitment (an experiment started by a version without
 * seeds, or whose privacy was switched on after its start). */
int coord_dp_seed_load(struct coord *c, int fresh)
{
    c->have_dp_seed = 0;
    if (!c->policy.privacy.enabled)
        return 0;
    char path[4200], hex[65];
    dp_seed_path(c, c->experiment, path, sizeof path);
    uint8_t commit[32], zero[32] = { 0 }, h[32], model[32];
    int started = 0;
    uint32_t scheme = 0;
    c->dp_scheme = AGG_DP_SCHEME;
    if (!fresh &&
        record_experiment_started_find(c, c->experiment, model, commit, &scheme, &started) != 0)
        return COORD_ERR_STATE;
    if (!fresh && started && sodium_memcmp(commit, zero, 32) != 0) {
        hex_encode(commit, 32, hex);
        /* its noise stays in the scheme it started with (none recorded: scheme 1) */
        c->dp_scheme = scheme ? scheme : AGG_DP_SCHEME_BOX_MULLER_LIBM;
        if (c->dp_scheme != AGG_DP_SCHEME_BOX_MULLER_LIBM &&
            c->dp_scheme != AGG_DP_SCHEME_POLAR) {
            log_error("experiment %s cannot resume: its experiment_started records DP noise "
                      "scheme %u, which this version does not know (it knows 1 and 2): run "
                      "it with the version that started it", c->experiment, c->dp_scheme);
            return COORD_ERR_STATE;
        }
        if (c->dp_scheme != AGG_DP_SCHEME)
            log_warn("experiment %s: its noise is drawn by DP noise scheme %u (Box-Muller "
                     "with this platform's libm), as it started: replay reproduces it only "
                     "with a libm that rounds log, cos and sin the same", c->experiment,
                     c->dp_scheme);
        int rc = coord_dp_seed_read(c, c->experiment, c->dp_seed);
        if (rc == 1) {
            log_error("experiment %s cannot resume: its DP noise seed %s is missing; its "
                      "experiment_started commits to the seed of BLAKE2b-256 %s: put that "
                      "file back and restart", c->experiment, path, hex);
            return COORD_ERR_STATE;
        }
        if (rc != 0) {
            log_error("experiment %s cannot resume: cannot read its DP noise seed %s: %s (its "
                      "experiment_started commits to BLAKE2b-256 %s)", c->experiment, path,
                      rc == -EINVAL ? "not 32 bytes" : strerror(-rc), hex);
            return COORD_ERR_STATE;
        }
        agg_dp_seed_commitment(c->dp_seed, h);
        if (sodium_memcmp(h, commit, 32) != 0) {
            char got[65];
            hex_encode(h, 32, got);
            sodium_memzero(c->dp_seed, sizeof c->dp_seed);
            log_error("experiment %s cannot resume: its DP noise seed %s hashes to %s, not to "
                      "the BLAKE2b-256 %s its experiment_started commits to: put the "
                      "experiment's own seed back and restart", c->experiment, path, got, hex);
            return COORD_ERR_STATE;
        }
        c->have_dp_seed = 1;
        return 0;
    }
    int had = coord_dp_seed_read(c, c->experiment, c->dp_seed) == 0;
    int rc = had ? 0 : coord_dp_seed_make(c, c->experiment, c->dp_seed);
    if (rc != 0) {
        log_error("experiment %s: cannot keep its DP noise seed in %s: %s", c->experiment, path,
                  strerror(-rc));
        return COORD_ERR_STATE;
    }
    if (!fresh)
        log_warn("experiment %s: its experiment_started %s; %s DP noise seed %s is used for "
                 "its remaining rounds, to which the ledger commits nothing, so replay cannot "
                 "check their noise", c->experiment,
                 started ? "commits to no DP noise seed (started by an earlier version, or "
                           "privacy was on only after its start)"
                         : "is not in the ledger",
                 had ? "the" : "a newly drawn", path);
    c->have_dp_seed = 1;
    return 0;
}

int record_experiment_event(struct coord *c, MDB_txn *txn, enum entry_type type,
                            const char *experiment, const uint8_t policy_hash[32],
                            const uint8_t proposal_hash[32], const uint8_t *model_hash,
                            uint64_t rounds, const char *reason)
{
    struct entry e = { .type = type };
    snprintf(e.u.experiment.experiment, sizeof e.u.experiment.experiment, "%s", experiment);
    memcpy(e.u.experiment.policy_hash, policy_hash, 32);
    memcpy(e.u.experiment.proposal_hash, proposal_hash, 32);
    if (model_hash)
        memcpy(e.u.experiment.model_hash, model_hash, 32);
    e.u.experiment.rounds = rounds;
    e.u.experiment.reason = (char *)reason;
    if (type == ENTRY_EXPERIMENT_STARTED && c->have_dp_seed &&
        strcmp(experiment, c->experiment) == 0) {
        agg_dp_seed_commitment(c->dp_seed, e.u.experiment.dp_seed_commitment);
        e.u.experiment.dp_noise_scheme = c->dp_scheme;
    }
    return record_append(c, txn, &e, NULL);
}

static int record_experiment(struct coord *c, MDB_txn *txn, enum entry_type type,
                             uint64_t rounds, const char *reason)
{
    return record_experiment_event(c, txn, type, c->experiment, c->policy_hash, c->proposal_hash,
                                   c->rnd.base->hash, rounds, reason);
}

int record_experiment_started(struct coord *c, MDB_txn *txn)
{
    return record_experiment(c, txn, ENTRY_EXPERIMENT_STARTED, c->total_rounds, NULL);
}

int record_experiment_finished(struct coord *c, MDB_txn *txn, const char *reason)
{
    return record_experiment(c, txn, ENTRY_EXPERIMENT_FINISHED, c->rnd.base->round, reason);
}

int record_update_accepted(struct coord *c, MDB_txn *txn, const struct update_envelope *env,
                           const uint8_t signature[64], double train_loss, double val_loss,
                           uint64_t *index)
{
    struct entry e = { .type = ENTRY_UPDATE_ACCEPTED };
    entry_update_from_envelope(&e.u.update, env);   /* every field the member signed */
    memcpy(e.u.update.envelope_signature, signature, 64);
    e.u.update.train_loss = train_loss;
    /* Not signed, not checked: a value that is not finite is recorded as not reported. */
    e.u.update.val_loss = isfinite(val_loss) ? val_loss : NAN;
    return record_append(c, txn, &e, index);
}

int record_update_rejected(struct coord *c, MDB_txn *txn, const char *experiment,
                           uint64_t round, const char *member, const char *reason,
                           uint64_t *index)
{
    struct entry e = { .type = ENTRY_UPDATE_REJECTED };
    struct entry_update *u = &e.u.update;
    /* Ids from the wire may be anything; the ledger records only valid ones. */
    snprintf(u->experiment, sizeof u->experiment, "%s",
             crypto_id_valid(experiment) ? experiment : "invalid-id");
    snprintf(u->member, sizeof u->member, "%s", crypto_id_valid(member) ? member : "invalid-id");
    u->round = round;
    u->reason = (char *)reason;
    return record_append(c, txn, &e, index);
}

int record_round_closed(struct coord *c, MDB_txn *txn, const struct round_summary *s,
                        const uint8_t aggregate_hash[32], const double *epsilon)
{
    struct entry e = { .type = ENTRY_ROUND_CLOSED };
    struct entry_round_closed *r = &e.u.round_closed;
    snprintf(r->experiment, sizeof r->experiment, "%s", c->experiment);
    r->round = s->round;
    r->n_participants = (uint32_t)s->n_members;
    r->participants = calloc(s->n_members + 1, sizeof *r->participants);
    if (!r->participants)
        return COORD_ERR_NOMEM;
    for (size_t i = 0; i < s->n_members; i++)
        snprintf(r->participants[i], sizeof r->participants[i], "%s", s->members[i].id);
    memcpy(r->aggregate_hash, aggregate_hash, 32);
    memcpy(r->model_hash, s->model_hash, 32);
    if (epsilon) {
        r->has_epsilon = 1;
        r->epsilon = *epsilon;
    }
    r->mean_loss = s->mean_train_loss;
    r->tokens = s->tokens;
    int rc = record_append(c, txn, &e, NULL);
    free(r->participants);
    return rc;
}

int scores_entry_fill(const struct coord *c, uint64_t round, const struct agg_update *u,
                      size_t n, const uint8_t seed[32], const struct credit_round_scores *s,
                      struct entry_contribution_scores *out)
{
    const struct policy_contribution *pc = &c->policy.contribution;
    memset(out, 0, sizeof *out);
    snprintf(out->experiment, sizeof out->experiment, "%s", c->experiment);
    out->round = round;
    int which[POLICY_MEASURES];
    for (int m = 0; m < POLICY_MEASURES; m++) {
        if (!(pc->measures & (1u << m)) || out->n_measures == ENTRY_MEASURES_MAX)
            continue;
        which[out->n_measures] = m;
        snprintf(out->measures[out->n_measures], sizeof out->measures[0], "%s",
                 policy_measure_name((enum policy_measure)m));
        out->n_measures++;
    }
    const uint32_t eval = (1u << POLICY_MEASURE_LOO) | (1u << POLICY_MEASURE_SHAPLEY);
    if ((pc->measures & eval) && pc->has_evalset)
        memcpy(out->evalset_hash, pc->evalset_hash, 32);
    memcpy(out->seed, seed, 32);
    out->evaluations = s->evaluations;
    out->exact = (uint8_t)(s->exact ? 1 : 0);
    out->base_loss = s->base_loss;
    out->model_loss = s->model_loss;
    out->n = (uint32_t)n;
    out->members = calloc(n ? n : 1, sizeof *out->members);
    if (!out->members)
        return COORD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        struct entry_member_score *ms = &out->members[i];
        snprintf(ms->member, sizeof ms->member, "%s", u[i].member);
        memcpy(ms->payload_hash, u[i].payload_hash, 32);
        for (uint32_t j = 0; j < out->n_measures; j++)
            ms->values[j] = s->value[i][which[j]];
    }
    return 0;
}

int record_contribution_scores(struct coord *c, MDB_txn *txn,
                               const struct entry_contribution_scores *s)
{
    struct entry e = { .type = ENTRY_CONTRIBUTION_SCORES };
    e.u.scores = *s;
    return record_append(c, txn, &e, NULL);
}

int record_credits(struct coord *c, MDB_txn *txn, const struct entry_credits *cr)
{
    struct entry e = { .type = ENTRY_CREDITS };
    e.u.credits = *cr;
    return record_append(c, txn, &e, NULL);
}
