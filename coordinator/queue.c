/* The experiment queue and the experiment records, in the ledger's LMDB environment so
 * that a queue change commits with the ledger entry that causes it (the approving vote,
 * experiment_started, experiment_cancelled...).
 *
 *   coord.experiments  key: the experiment id (its bytes, 1..64)
 *                      value: u32 version (2)
 *                             u16 n ‖ n bytes   experiment id (as the key)
 *                             u8  phase         1 queued, 2 running, 3 finished,
 *                                               4 cancelled, 5 failed
 *                             u64 seq           its place in the queue (order of approval)
 *                             32  proposal_hash (zero: none, e.g. --policy at start)
 *                             32  policy_hash   canonical hash (policies/policy.h)
 *                             u64 proposed_index ledger leaf of policy_proposed (0: none)
 *                             u64 rounds_done   rounds closed (when it ended)
 *                             32  final_model_hash  the last model (when it ended; else 0)
 *                             u64 n ‖ n bytes   the policy file, exactly as approved
 *                             i64 ended_ms      unix ms it ended (0: not ended); absent
 *                                               in version 1 records (read as 0)
 *   coord.queue        key: u64 seq (big-endian, so LMDB order is queue order)
 *                      value: u32 version (1) ‖ u16 n ‖ n bytes experiment id
 *                      (the queue rows keep version 1)
 *
 * Integers are big-endian (common/bytes.h). A record is never deleted: the queue row
 * goes when the experiment starts or is cancelled before it starts. */
#include "coordinator/queue.h"

#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"

#define QUEUE_VERSION 1          /* coord.queue rows */
#define RECORD_VERSION 2         /* coord.experiments records; 1: without ended_ms */
#define POLICY_TEXT_MAX ((uint64_t)POLICY_FILE_MAX)

const char *queue_phase_name(int phase)
{
    switch (phase) {
    case PHASE_QUEUED: return "queued";
    case PHASE_RUNNING: return "running";
    case PHASE_FINISHED: return "finished";
    case PHASE_CANCELLED: return "cancelled";
    case PHASE_FAILED: return "failed";
    }
    return "unknown";
}

int queue_phase_ended(int phase)
{
    return phase == PHASE_FINISHED || phase == PHASE_CANCELLED || phase == PHASE_FAILED;
}

void experiment_info_free(struct experiment_info *e)
{
    if (!e)
        return;
    free(e->policy_yaml);
    e->policy_yaml = NULL;
    e->policy_yaml_len = 0;
}

void queue_list_free(struct experiment_info *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        experiment_info_free(&list[i]);
    free(list);
}

int queue_open_dbs(struct coord *c)
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

/* --- records ------------------------------------------------------------------ */

static int record_decode(const MDB_val *v, struct experiment_info *e)
{
    memset(e, 0, sizeof *e);
    struct bytes_reader r = { v->mv_data, v->mv_size, 0 };
    uint32_t version = br_u32(&r);
    br_str(&r, e->experiment, sizeof e->experiment);
    e->phase = br_u8(&r);
    e->seq = br_u64(&r);
    const uint8_t *p = br_raw(&r, 32);
    if (p)
        memcpy(e->proposal_hash, p, 32);
    if ((p = br_raw(&r, 32)) != NULL)
        memcpy(e->policy_hash, p, 32);
    e->proposed_index = br_u64(&r);
    e->rounds_done = br_u64(&r);
    if ((p = br_raw(&r, 32)) != NULL)
        memcpy(e->final_model_hash, p, 32);
    uint64_t n = br_u64(&r);
    p = n <= POLICY_TEXT_MAX ? br_raw(&r, (size_t)n) : NULL;
    if (version == RECORD_VERSION)
        e->ended_ms = (int64_t)br_u64(&r);
    if (r.failed || !p || r.left != 0 || (version != 1 && version != RECORD_VERSION) ||
        e->phase < PHASE_QUEUED || e->phase > PHASE_FAILED) {
        log_error("an experiment record (coord.experiments) is unreadable (version %u)",
                  version);
        return COORD_ERR_STATE;
    }
    e->policy_yaml = malloc(n + 1);   /* NUL-terminated for the YAML parser's convenience */
    if (!e->policy_yaml)
        return COORD_ERR_NOMEM;
    memcpy(e->policy_yaml, p, n);
    e->policy_yaml[n] = 0;
    e->policy_yaml_len = (size_t)n;
    return 0;
}

int queue_record_put_txn(struct coord *c, MDB_txn *txn, const struct experiment_info *e)
{
    (void)c;
    struct bytes_writer w = { 0 };
    bw_u32(&w, RECORD_VERSION);
    bw_str(&w, e->experiment);
    bw_u8(&w, (uint8_t)e->phase);
    bw_u64(&w, e->seq);
    bw_raw(&w, e->proposal_hash, 32);
    bw_raw(&w, e->policy_hash, 32);
    bw_u64(&w, e->proposed_index);
    bw_u64(&w, e->rounds_done);
    bw_raw(&w, e->final_model_hash, 32);
    bw_u64(&w, e->policy_yaml_len);
    bw_raw(&w, e->policy_yaml, e->policy_yaml_len);
    bw_u64(&w, (uint64_t)e->ended_ms);
    if (w.failed) {
        free(w.buf);
        return COORD_ERR_NOMEM;
    }
    MDB_val k = { strlen(e->experiment), (void *)e->experiment }, v = { w.len, w.buf };
    int rc = mdb_put(txn, c->db_experiments, &k, &v, 0);
    free(w.buf);
    if (rc != 0) {
        log_error("cannot write the record of experiment %s: %s", e->experiment,
                  mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

int queue_get_txn(struct coord *c, MDB_txn *txn, const char *experiment,
                  struct experiment_info *out, int *found)
{
    memset(out, 0, sizeof *out);
    *found = 0;
    if (!experiment[0] || strlen(experiment) > COORD_EXPERIMENT_MAX)
        return 0;
    MDB_val k = { strlen(experiment), (void *)experiment }, v;
    int rc = mdb_get(txn, c->db_experiments, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        log_error("cannot read the record of experiment %s: %s", experiment, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    if ((rc = record_decode(&v, out)) != 0)
        return rc;
    *found = 1;
    return 0;
}

/* Runs fn(c, txn, arg) in a read-only transaction of its own when txn is NULL. */
static int with_read_txn(struct coord *c, MDB_txn *txn,
                         int (*fn)(struct coord *, MDB_txn *, void *), void *arg)
{
    if (txn)
        return fn(c, txn, arg);
    MDB_txn *own;
    if (ledger_read_begin(c->ledger, &own) != 0)
        return COORD_ERR_STATE;
    int rc = fn(c, own, arg);
    ledger_read_end(c->ledger, own);
    return rc;
}

struct get_args {
    const char *experiment;
    struct experiment_info *out;
    int *found;
};

static int get_in(struct coord *c, MDB_txn *txn, void *arg)
{
    struct get_args *a = arg;
    return queue_get_txn(c, txn, a->experiment, a->out, a->found);
}

int queue_get(struct coord *c, const char *experiment, struct experiment_info *out, int *found)
{
    struct get_args a = { experiment, out, found };
    memset(out, 0, sizeof *out);
    *found = 0;
    return with_read_txn(c, NULL, get_in, &a);
}

/* --- the queue ------------------------------------------------------------------ */

int queue_push_txn(struct coord *c, MDB_txn *txn, const struct experiment_info *e)
{
    if (!e->experiment[0] || !e->policy_yaml || e->policy_yaml_len == 0 ||
        e->policy_yaml_len > POLICY_TEXT_MAX) {
        log_error("refusing to queue experiment '%s': no id or no policy text", e->experiment);
        return COORD_ERR_STATE;
    }
    struct experiment_info old;
    int found, rc = queue_get_txn(c, txn, e->experiment, &old, &found);
    if (rc != 0)
        return rc;
    if (found) {
        log_error("experiment %s was queued before (it is %s); a policy runs once: change "
                  "metadata.name or model.seed for another run", e->experiment,
                  queue_phase_name(old.phase));
        experiment_info_free(&old);
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
    /* Past every seq handed out before too (the queue may be empty now): records keep
     * theirs, and the order of records is the order of approval. */
    MDB_cursor *rc_cur;
    if (mdb_cursor_open(txn, c->db_experiments, &rc_cur) != 0)
        return COORD_ERR_STATE;
    for (rc = mdb_cursor_get(rc_cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(rc_cur, &k, &v, MDB_NEXT)) {
        struct bytes_reader r = { v.mv_data, v.mv_size, 0 };
        (void)br_u32(&r);
        char id[COORD_EXPERIMENT_MAX + 1];
        br_str(&r, id, sizeof id);
        (void)br_u8(&r);
        uint64_t s = br_u64(&r);
        if (!r.failed && s >= seq)
            seq = s + 1;
    }
    mdb_cursor_close(rc_cur);

    struct experiment_info rec = *e;
    rec.seq = seq;
    rec.phase = PHASE_QUEUED;
    rec.rounds_done = 0;
    rec.ended_ms = 0;
    memset(rec.final_model_hash, 0, 32);
    if ((rc = queue_record_put_txn(c, txn, &rec)) != 0)
        return rc;
    uint8_t key[8];
    be64_put(key, seq);
    struct bytes_writer w = { 0 };
    bw_u32(&w, QUEUE_VERSION);
    bw_str(&w, e->experiment);
    if (w.failed) {
        free(w.buf);
        return COORD_ERR_NOMEM;
    }
    MDB_val qk = { 8, key }, qv = { w.len, w.buf };
    rc = mdb_put(txn, c->db_queue, &qk, &qv, MDB_NOOVERWRITE);
    free(w.buf);
    if (rc != 0) {
        log_error("cannot queue experiment %s: %s", e->experiment, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

int queue_remove_txn(struct coord *c, MDB_txn *txn, uint64_t seq)
{
    uint8_t key[8];
    be64_put(key, seq);
    MDB_val k = { 8, key };
    int rc = mdb_del(txn, c->db_queue, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_error("cannot take queue position %llu out of the queue: %s",
                  (unsigned long long)seq, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

struct head_args {
    struct experiment_info *out;
    int *found;
};

static int head_in(struct coord *c, MDB_txn *txn, void *arg)
{
    struct head_args *a = arg;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->db_queue, &cur) != 0)
        return COORD_ERR_STATE;
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    char id[COORD_EXPERIMENT_MAX + 1] = "";
    uint64_t seq = 0;
    int out = 0;
    if (rc == 0) {
        struct bytes_reader r = { v.mv_data, v.mv_size, 0 };
        uint32_t version = br_u32(&r);
        br_str(&r, id, sizeof id);
        seq = k.mv_size == 8 ? be64_get(k.mv_data) : 0;
        if (r.failed || r.left != 0 || version != QUEUE_VERSION || k.mv_size != 8) {
            log_error("a queue row (coord.queue) is unreadable");
            out = COORD_ERR_STATE;
        }
    } else if (rc != MDB_NOTFOUND) {
        out = COORD_ERR_STATE;
    }
    mdb_cursor_close(cur);
    if (out != 0 || rc == MDB_NOTFOUND)
        return out;
    if ((out = queue_get_txn(c, txn, id, a->out, a->found)) != 0)
        return out;
    if (!*a->found || a->out->seq != seq) {
        log_error("queue position %llu names experiment %s, whose record %s",
                  (unsigned long long)seq, id, *a->found ? "has another position" : "is missing");
        experiment_info_free(a->out);
        *a->found = 0;
        return COORD_ERR_STATE;
    }
    return 0;
}

int queue_head(struct coord *c, MDB_txn *txn, struct experiment_info *out, int *found)
{
    struct head_args a = { out, found };
    memset(out, 0, sizeof *out);
    *found = 0;
    return with_read_txn(c, txn, head_in, &a);
}

static int length_in(struct coord *c, MDB_txn *txn, void *arg)
{
    MDB_stat st;
    if (mdb_stat(txn, c->db_queue, &st) != 0)
        return COORD_ERR_STATE;
    *(size_t *)arg = st.ms_entries;
    return 0;
}

int queue_length(struct coord *c, size_t *n)
{
    *n = 0;
    return with_read_txn(c, NULL, length_in, n);
}

struct list_args {
    struct experiment_info *list;
    size_t n;
};

static int by_seq(const void *a, const void *b)
{
    const struct experiment_info *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int list_in(struct coord *c, MDB_txn *txn, void *arg)
{
    struct list_args *a = arg;
    MDB_stat st;
    if (mdb_stat(txn, c->db_experiments, &st) != 0)
        return COORD_ERR_STATE;
    a->list = calloc(st.ms_entries + 1, sizeof *a->list);
    if (!a->list)
        return COORD_ERR_NOMEM;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->db_experiments, &cur) != 0)
        return COORD_ERR_STATE;
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST), out = 0;
    for (; rc == 0 && a->n < st.ms_entries; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((out = record_decode(&v, &a->list[a->n])) != 0) {
            experiment_info_free(&a->list[a->n]);
            break;
        }
        a->n++;
    }
    mdb_cursor_close(cur);
    if (out == 0)
        qsort(a->list, a->n, sizeof *a->list, by_seq);
    return out;
}

int queue_list(struct coord *c, struct experiment_info **out, size_t *n)
{
    struct list_args a = { NULL, 0 };
    int rc = with_read_txn(c, NULL, list_in, &a);
    if (rc != 0) {
        queue_list_free(a.list, a.n);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = a.list;
    *n = a.n;
    return 0;
}

int queue_find_policy(struct coord *c, const uint8_t hash[32], struct experiment_info *out,
                      int *found)
{
    memset(out, 0, sizeof *out);
    *found = 0;
    struct experiment_info *all;
    size_t n;
    int rc = queue_list(c, &all, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && !*found; i++) {
        if (memcmp(all[i].policy_hash, hash, 32) == 0) {
            *out = all[i];
            memset(&all[i], 0, sizeof all[i]);   /* ownership of the text moves to out */
            *found = 1;
        }
    }
    queue_list_free(all, n);
    return 0;
}
