/* The experiments approved by the members and their queue (queue.h).
 *
 *   coord.experiments  experiment id -> record:
 *       u32 version (1) | u8 phase | u64 seq | u64 proposed_index | u64 rounds_done |
 *       32 proposal_hash | 32 policy_hash | 32 final_model_hash | the policy's exact bytes
 *   coord.queue        u64 BE seq -> experiment id: approved experiments in order
 *
 * All integers big-endian. This file keeps what governance needs (push, look up,
 * list, cancel a queued experiment); the runner that starts queued experiments and
 * stops a running one is the experiment lifecycle's (issue 11, part L). */
#include "coordinator/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "coordinator/record.h"
#include "ledger/entry.h"

#define QUEUE_RECORD_VERSION 1
#define QUEUE_HEADER_BYTES (4 + 1 + 8 + 8 + 8 + 32 + 32 + 32)

int queue_open(struct coord *c)
{
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    int rc = mdb_dbi_open(txn, "coord.experiments", MDB_CREATE, &c->db_experiments);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "coord.queue", MDB_CREATE, &c->db_queue);
    if (rc != 0) {
        log_error("cannot open the experiment queue in %s: %s", c->opt.data_dir,
                  mdb_strerror(rc));
        ledger_txn_abort(c->ledger, txn);
        return COORD_ERR_STATE;
    }
    return ledger_txn_commit(c->ledger, txn) == 0 ? 0 : COORD_ERR_STATE;
}

void experiment_info_free(struct experiment_info *e)
{
    if (!e)
        return;
    free(e->policy_yaml);
    e->policy_yaml = NULL;
    e->policy_yaml_len = 0;
}

static int put_info(struct coord *c, MDB_txn *txn, const struct experiment_info *e)
{
    struct bytes_writer w = { 0 };
    bw_u32(&w, QUEUE_RECORD_VERSION);
    bw_u8(&w, (uint8_t)e->phase);
    bw_u64(&w, e->seq);
    bw_u64(&w, e->proposed_index);
    bw_u64(&w, e->rounds_done);
    bw_raw(&w, e->proposal_hash, 32);
    bw_raw(&w, e->policy_hash, 32);
    bw_raw(&w, e->final_model_hash, 32);
    bw_raw(&w, e->policy_yaml, e->policy_yaml_len);
    if (w.failed) {
        free(w.buf);
        return COORD_ERR_NOMEM;
    }
    MDB_val k = { strlen(e->experiment), (void *)e->experiment }, v = { w.len, w.buf };
    int rc = mdb_put(txn, c->db_experiments, &k, &v, 0);
    free(w.buf);
    if (rc != 0) {
        log_error("cannot write experiment %s: %s", e->experiment, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

/* The record v of experiment id (length klen) into *out (policy bytes copied). */
static int parse_info(const MDB_val *k, const MDB_val *v, struct experiment_info *out)
{
    memset(out, 0, sizeof *out);
    struct bytes_reader r = { v->mv_data, v->mv_size, 0 };
    if (k->mv_size == 0 || k->mv_size > COORD_EXPERIMENT_MAX || v->mv_size < QUEUE_HEADER_BYTES ||
        br_u32(&r) != QUEUE_RECORD_VERSION) {
        log_error("an experiment record in coord.experiments is malformed");
        return COORD_ERR_STATE;
    }
    memcpy(out->experiment, k->mv_data, k->mv_size);
    out->phase = br_u8(&r);
    out->seq = br_u64(&r);
    out->proposed_index = br_u64(&r);
    out->rounds_done = br_u64(&r);
    memcpy(out->proposal_hash, br_raw(&r, 32), 32);
    memcpy(out->policy_hash, br_raw(&r, 32), 32);
    memcpy(out->final_model_hash, br_raw(&r, 32), 32);
    out->policy_yaml_len = r.left;
    out->policy_yaml = malloc(r.left + 1);
    if (!out->policy_yaml)
        return COORD_ERR_NOMEM;
    memcpy(out->policy_yaml, r.p, r.left);
    out->policy_yaml[r.left] = 0;
    return 0;
}

static int get_txn(struct coord *c, MDB_txn *txn, const char *experiment,
                   struct experiment_info *out, int *found)
{
    MDB_val k = { strlen(experiment), (void *)experiment }, v;
    *found = 0;
    int rc = mdb_get(txn, c->db_experiments, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        log_error("cannot read experiment %s: %s", experiment, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    rc = parse_info(&k, &v, out);
    *found = rc == 0;
    return rc;
}

int queue_push_txn(struct coord *c, MDB_txn *txn, const struct experiment_info *e)
{
    struct experiment_info old;
    int found, rc = get_txn(c, txn, e->experiment, &old, &found);
    if (rc != 0)
        return rc;
    if (found) {
        experiment_info_free(&old);
        log_error("experiment %s is already in coord.experiments", e->experiment);
        return COORD_ERR_STATE;
    }
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->db_queue, &cur) != 0)
        return COORD_ERR_STATE;
    MDB_val k, v;
    uint64_t seq = 1;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        seq = be64_get(k.mv_data) + 1;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return COORD_ERR_STATE;
    struct experiment_info rec = *e;
    rec.seq = seq;
    rec.phase = PHASE_QUEUED;
    if ((rc = put_info(c, txn, &rec)) != 0)
        return rc;
    uint8_t key[8];
    be64_put(key, seq);
    MDB_val qk = { 8, key }, qv = { strlen(e->experiment), (void *)e->experiment };
    if ((rc = mdb_put(txn, c->db_queue, &qk, &qv, MDB_APPEND)) != 0) {
        log_error("cannot queue experiment %s: %s", e->experiment, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

int queue_get(struct coord *c, const char *experiment, struct experiment_info *out, int *found)
{
    MDB_txn *txn;
    *found = 0;
    if (mdb_txn_begin(ledger_env(c->ledger), NULL, MDB_RDONLY, &txn) != 0)
        return COORD_ERR_STATE;
    int rc = get_txn(c, txn, experiment, out, found);
    mdb_txn_abort(txn);
    return rc;
}

static int by_seq(const void *a, const void *b)
{
    const struct experiment_info *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int queue_list(struct coord *c, struct experiment_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(ledger_env(c->ledger), NULL, MDB_RDONLY, &txn) != 0)
        return COORD_ERR_STATE;
    if (mdb_cursor_open(txn, c->db_experiments, &cur) != 0) {
        mdb_txn_abort(txn);
        return COORD_ERR_STATE;
    }
    struct experiment_info *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    MDB_val k, v;
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        if (cnt == cap) {
            size_t nc = cap ? 2 * cap : 16;
            struct experiment_info *g = realloc(arr, nc * sizeof *g);
            if (!g) {
                rc = COORD_ERR_NOMEM;
                break;
            }
            arr = g;
            cap = nc;
        }
        if ((rc = parse_info(&k, &v, &arr[cnt])) != 0) {
            experiment_info_free(&arr[cnt]);
            break;
        }
        cnt++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc != 0) {
        for (size_t i = 0; i < cnt; i++)
            experiment_info_free(&arr[i]);
        free(arr);
        return rc;
    }
    if (cnt)
        qsort(arr, cnt, sizeof *arr, by_seq);
    *out = arr;
    *n = cnt;
    return 0;
}

int experiment_cancel_locked(struct coord *c, MDB_txn *txn, const char *experiment,
                             const char *reason, char *why, size_t cap)
{
    struct experiment_info e;
    int found, rc = get_txn(c, txn, experiment, &e, &found);
    if (rc != 0)
        return rc;
    if (!found) {
        snprintf(why, cap, "experiment %s is not in the queue", experiment);
        return COORD_ERR_STATE;
    }
    static const char *const done[] = { "", "queued", "running", "finished", "cancelled",
                                        "failed" };
    if (e.phase != PHASE_QUEUED) {
        snprintf(why, cap, e.phase == PHASE_RUNNING
                 ? "cancelling a running experiment (%s) is not possible here: only a queued "
                   "one is taken off the queue"
                 : "experiment %s has %s; there is nothing to cancel", experiment,
                 e.phase >= PHASE_FINISHED && e.phase <= PHASE_FAILED ? done[e.phase] : "ended");
        experiment_info_free(&e);
        return COORD_ERR_STATE;
    }
    uint8_t key[8];
    be64_put(key, e.seq);
    MDB_val qk = { 8, key };
    rc = mdb_del(txn, c->db_queue, &qk, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        experiment_info_free(&e);
        return COORD_ERR_STATE;
    }
    e.phase = PHASE_CANCELLED;
    rc = put_info(c, txn, &e);
    if (rc == 0) {
        struct entry en = { .type = ENTRY_EXPERIMENT_CANCELLED };
        snprintf(en.u.experiment.experiment, sizeof en.u.experiment.experiment, "%s", experiment);
        memcpy(en.u.experiment.policy_hash, e.policy_hash, 32);
        memcpy(en.u.experiment.proposal_hash, e.proposal_hash, 32);
        en.u.experiment.rounds = e.rounds_done;
        en.u.experiment.reason = (char *)reason;
        rc = record_append(c, txn, &en, NULL);
    }
    experiment_info_free(&e);
    return rc;
}
