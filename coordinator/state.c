/* The coordinator's own LMDB records, kept in the ledger's environment so that a
 * state change and the ledger entry recording it commit together.
 *
 *   coord.state    "experiment" -> the loaded experiment's record (absent: idle)
 *   coord.members  member id -> contribution counters
 *   coord.payloads ledger_update_key(exp, round, member) -> accepted update of the
 *                  open round (metadata and payload hash; the payload itself is the file
 *                  experiments/<exp>/payloads/<hex>.bin, spool.h), deleted at close
 *   coord.rounds   round_key(exp, round) -> closed round summary
 *   coord.credit   experiment id -> u32 version ‖ credit_totals_encode() bytes: the
 *                  running credit totals of its scored rounds (credit/shares.h)
 *   coord.replay   u64 timestamp ms ‖ 16-byte replay key -> u32 version: the signed
 *                  requests accepted within the replay window (auth.c), kept in
 *                  timestamp order so that the expired ones are pruned from the front
 *
 * Every record starts with a u32 version; all integers are big-endian. */
#include "coordinator/state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/fileio.h"
#include "coordinator/spool.h"
#include "crypto/digest.h"

#define RECORD_VERSION 1

static int open_db(struct coord *c, MDB_txn *txn, const char *name, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);
    if (rc != 0) {
        log_error("cannot open LMDB database %s in %s: %s", name, c->opt.data_dir,
                  mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

int state_open_dbs(struct coord *c)
{
    MDB_txn *txn;
    int rc = ledger_txn_begin(c->ledger, &txn);
    if (rc != 0)
        return COORD_ERR_STATE;
    if ((rc = open_db(c, txn, "coord.state", &c->db_state)) != 0 ||
        (rc = open_db(c, txn, "coord.members", &c->db_members)) != 0 ||
        (rc = open_db(c, txn, "coord.payloads", &c->db_payloads)) != 0 ||
        (rc = open_db(c, txn, "coord.rounds", &c->db_rounds)) != 0 ||
        (rc = open_db(c, txn, "coord.replay", &c->db_replay)) != 0 ||
        (rc = open_db(c, txn, "coord.credit", &c->db_credit)) != 0) {
        ledger_txn_abort(c->ledger, txn);
        return rc;
    }
    return ledger_txn_commit(c->ledger, txn) == 0 ? 0 : COORD_ERR_STATE;
}

static int put_record(struct coord *c, MDB_txn *txn, MDB_dbi dbi, const void *key,
                      size_t key_len, struct bytes_writer *w)
{
    if (w->failed) {
        free(w->buf);
        return COORD_ERR_NOMEM;
    }
    MDB_val k = { key_len, (void *)key }, v = { w->len, w->buf };
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    free(w->buf);
    if (rc != 0) {
        log_error("cannot write coordinator state: %s", mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

/* Reads key in a fresh read-only transaction into a malloc'd copy. */
static int get_record(struct coord *c, MDB_txn *txn, MDB_dbi dbi, const void *key,
                      size_t key_len, uint8_t **out, size_t *len)
{
    MDB_txn *own = NULL;
    int rc;
    if (!txn) {
        rc = ledger_read_begin(c->ledger, &own);
        if (rc != 0)
            return COORD_ERR_STATE;
        txn = own;
    }
    MDB_val k = { key_len, (void *)key }, v;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = NULL;
        *len = 0;
        rc = 0;
    } else if (rc == 0) {
        *out = malloc(v.mv_size ? v.mv_size : 1);
        if (*out) {
            memcpy(*out, v.mv_data, v.mv_size);
            *len = v.mv_size;
        } else {
            rc = COORD_ERR_NOMEM;
        }
    } else {
        log_error("cannot read coordinator state: %s", mdb_strerror(rc));
        rc = COORD_ERR_STATE;
    }
    if (own)
        ledger_read_end(c->ledger, own);
    return rc;
}

/* --- experiment ----------------------------------------------------------- */

int state_put_experiment(struct coord *c, MDB_txn *txn)
{
    struct bytes_writer w = { 0 };
    bw_u32(&w, RECORD_VERSION);
    bw_str(&w, c->experiment);
    bw_raw(&w, c->policy_hash, 32);
    bw_u8(&w, (uint8_t)c->state);
    bw_u64(&w, c->rnd.number);
    bw_u64(&w, c->total_rounds);
    bw_raw(&w, c->rnd.base->hash, 32);
    bw_u64(&w, c->rnd.base->round);
    bw_u64(&w, (uint64_t)c->rnd.opened_ms);
    return put_record(c, txn, c->db_state, "experiment", 10, &w);
}

int state_get_experiment(struct coord *c, struct experiment_record *rec, int *found)
{
    uint8_t *buf;
    size_t len;
    int rc = get_record(c, NULL, c->db_state, "experiment", 10, &buf, &len);
    if (rc != 0)
        return rc;
    *found = buf != NULL;
    if (!buf)
        return 0;
    struct bytes_reader r = { buf, len, 0 };
    memset(rec, 0, sizeof *rec);
    uint32_t version = br_u32(&r);
    br_str(&r, rec->experiment, sizeof rec->experiment);
    const uint8_t *ph = br_raw(&r, 32);
    if (ph)
        memcpy(rec->policy_hash, ph, 32);
    rec->state = br_u8(&r);
    rec->round = br_u64(&r);
    rec->total_rounds = br_u64(&r);
    const uint8_t *mh = br_raw(&r, 32);
    if (mh)
        memcpy(rec->model_hash, mh, 32);
    rec->completed_rounds = br_u64(&r);
    rec->round_opened_ms = (int64_t)br_u64(&r);
    free(buf);
    if (r.failed || r.left != 0 || version != RECORD_VERSION) {
        log_error("the experiment record in %s is unreadable (version %u)", c->opt.data_dir,
                  version);
        return COORD_ERR_STATE;
    }
    return 0;
}

int state_delete_experiment(struct coord *c, MDB_txn *txn)
{
    MDB_val k = { 10, "experiment" };
    int rc = mdb_del(txn, c->db_state, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_error("cannot delete the experiment record: %s", mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

/* --- members -------------------------------------------------------------- */

int state_put_member(struct coord *c, MDB_txn *txn, const struct member_stats *m)
{
    struct bytes_writer w = { 0 };
    bw_u32(&w, RECORD_VERSION);
    bw_u64(&w, m->rounds_joined);
    bw_u64(&w, m->tokens);
    bw_u64(&w, m->bytes_sent);
    bw_u64(&w, m->rejected);
    return put_record(c, txn, c->db_members, m->id, strlen(m->id), &w);
}

int state_load_members(struct coord *c)
{
    for (size_t i = 0; i < c->roster.n_members; i++) {
        struct member_stats *m = &c->members[i];
        uint8_t *buf;
        size_t len;
        int rc = get_record(c, NULL, c->db_members, m->id, strlen(m->id), &buf, &len);
        if (rc != 0)
            return rc;
        if (!buf)
            continue;
        struct bytes_reader r = { buf, len, 0 };
        uint32_t version = br_u32(&r);
        m->rounds_joined = br_u64(&r);
        m->tokens = br_u64(&r);
        m->bytes_sent = br_u64(&r);
        m->rejected = br_u64(&r);
        free(buf);
        if (r.failed || version != RECORD_VERSION) {
            log_error("the contribution record of %s is unreadable", m->id);
            return COORD_ERR_STATE;
        }
    }
    return 0;
}

/* --- the open round's accepted payloads ------------------------------------ */

/* coord.payloads rows: metadata only since version 2 (the payload is a file of the
 * payload store, coordinator/spool.h); version 1 rows (a data dir of an earlier
 * version) carried the payload bytes after len instead of the hash, and are converted at
 * start (state_convert_payload_rows). */
#define PAYLOAD_ROW_VERSION 2
#define PAYLOAD_ROW_VERSION_BYTES 1

static void payload_row_head(struct bytes_writer *w, uint32_t version, const struct round_member *m,
                             double weight, uint64_t ledger_index, uint64_t len)
{
    bw_u32(w, version);
    bw_str(w, m->id);
    bw_u64(w, m->tokens);
    bw_u64(w, m->samples);
    bw_u64(w, m->bytes);
    bw_f32(w, m->train_loss);
    bw_f32(w, m->val_loss);
    bw_f64(w, weight);
    bw_u64(w, ledger_index);
    bw_u64(w, len);
}

int state_put_payload(struct coord *c, MDB_txn *txn, const struct round_member *m,
                      double weight, uint64_t ledger_index, const uint8_t payload_hash[32],
                      size_t len)
{
    uint8_t key[LEDGER_UPDATE_KEY_MAX];
    int klen = ledger_update_key(c->experiment, c->rnd.number, m->id, key);
    if (klen < 0)
        return COORD_ERR_STATE;
    struct bytes_writer w = { 0 };
    payload_row_head(&w, PAYLOAD_ROW_VERSION, m, weight, ledger_index, len);
    bw_raw(&w, payload_hash, 32);
    return put_record(c, txn, c->db_payloads, key, (size_t)klen, &w);
}

int state_put_payload_v1(struct coord *c, MDB_txn *txn, const struct round_member *m,
                         double weight, uint64_t ledger_index, const uint8_t *payload,
                         size_t len)
{
    uint8_t key[LEDGER_UPDATE_KEY_MAX];
    int klen = ledger_update_key(c->experiment, c->rnd.number, m->id, key);
    if (klen < 0)
        return COORD_ERR_STATE;
    struct bytes_writer w = { 0 };
    payload_row_head(&w, PAYLOAD_ROW_VERSION_BYTES, m, weight, ledger_index, len);
    bw_raw(&w, payload, len);
    return put_record(c, txn, c->db_payloads, key, (size_t)klen, &w);
}

/* One coord.payloads row. payload (version 1 rows only) points into v. */
struct payload_row {
    uint32_t version;
    struct round_member m;
    double weight;
    uint64_t ledger_index;
    uint8_t hash[32];               /* version 2 */
    const uint8_t *payload;         /* version 1 */
    size_t len;
};

static int payload_row_parse(const MDB_val *v, struct payload_row *out)
{
    struct bytes_reader r = { v->mv_data, v->mv_size, 0 };
    memset(out, 0, sizeof *out);
    out->version = br_u32(&r);
    br_str(&r, out->m.id, sizeof out->m.id);
    out->m.tokens = br_u64(&r);
    out->m.samples = br_u64(&r);
    out->m.bytes = br_u64(&r);
    out->m.train_loss = br_f32(&r);
    out->m.val_loss = br_f32(&r);
    out->weight = br_f64(&r);
    out->ledger_index = br_u64(&r);
    uint64_t len = br_u64(&r);
    out->len = (size_t)len;
    if (out->version == PAYLOAD_ROW_VERSION_BYTES) {
        out->payload = len <= r.left ? br_raw(&r, (size_t)len) : NULL;
        if (!out->payload)
            r.failed = 1;
    } else {
        const uint8_t *h = br_raw(&r, 32);
        if (h)
            memcpy(out->hash, h, 32);
    }
    if (r.failed || r.left != 0 || len == 0 ||
        (out->version != PAYLOAD_ROW_VERSION && out->version != PAYLOAD_ROW_VERSION_BYTES))
        return COORD_ERR_STATE;
    return 0;
}

/* A row of the current layout (metadata; the payload is in the store). */
static int payload_row_decode(const struct coord *c, const MDB_val *v, struct payload_row *out)
{
    if (payload_row_parse(v, out) != 0 || out->version != PAYLOAD_ROW_VERSION) {
        log_error("a stored update of round %llu is unreadable%s",
                  (unsigned long long)c->rnd.number,
                  out->version == PAYLOAD_ROW_VERSION_BYTES ? " (an unconverted version 1 row)"
                                                            : "");
        return COORD_ERR_STATE;
    }
    return 0;
}

int state_convert_payload_rows(struct coord *c, size_t *converted)
{
    *converted = 0;
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->db_payloads, &cur) != 0) {
        ledger_txn_abort(c->ledger, txn);
        return COORD_ERR_STATE;
    }
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST), out = 0;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct payload_row row;
        if (payload_row_parse(&v, &row) != 0) {
            log_error("a stored update in %s (coord.payloads) is unreadable", c->opt.data_dir);
            out = COORD_ERR_STATE;
            break;
        }
        if (row.version == PAYLOAD_ROW_VERSION)
            continue;
        /* The key is ledger_update_key: u8 length, experiment id, ... */
        const uint8_t *kp = k.mv_data;
        char experiment[COORD_EXPERIMENT_MAX + 1];
        if (k.mv_size < 1 || kp[0] > COORD_EXPERIMENT_MAX || k.mv_size < 1u + kp[0]) {
            out = COORD_ERR_STATE;
            break;
        }
        memcpy(experiment, kp + 1, kp[0]);
        experiment[kp[0]] = 0;
        uint8_t hash[32];
        crypto_blake2b256(row.payload, row.len, hash);
        char dir[4096], path[4200];
        payload_path(c, experiment, hash, path, sizeof path);
        snprintf(dir, sizeof dir, "%s/experiments/%s/payloads", c->opt.data_dir, experiment);
        int fr = file_mkdirs(dir, 0755);
        if (fr == 0)
            fr = file_write_atomic(path, row.payload, row.len, 0644);
        if (fr != 0) {
            log_error("cannot write the stored update of %s to %s: %s", row.m.id, path,
                      strerror(-fr));
            out = COORD_ERR_IO;
            break;
        }
        struct bytes_writer w = { 0 };
        payload_row_head(&w, PAYLOAD_ROW_VERSION, &row.m, row.weight, row.ledger_index,
                         row.len);
        bw_raw(&w, hash, 32);
        if (w.failed) {
            free(w.buf);
            out = COORD_ERR_NOMEM;
            break;
        }
        MDB_val nv = { w.len, w.buf };
        int pr = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT);
        free(w.buf);
        if (pr != 0) {
            log_error("cannot rewrite a stored update: %s", mdb_strerror(pr));
            out = COORD_ERR_STATE;
            break;
        }
        (*converted)++;
    }
    if (out == 0 && rc != 0 && rc != MDB_NOTFOUND)
        out = COORD_ERR_STATE;
    mdb_cursor_close(cur);
    if (out != 0) {
        ledger_txn_abort(c->ledger, txn);
        return out;
    }
    if (ledger_txn_commit(c->ledger, txn) != 0)
        return COORD_ERR_STATE;
    if (*converted)
        log_info("converted %zu stored update(s) of an earlier version: their payloads are "
                 "now files of the payload store (experiments/<id>/payloads/)", *converted);
    return 0;
}

/* A cursor on the open round's first stored payload (rc MDB_NOTFOUND: none); *plen gets
 * the length of the (experiment, round) key prefix in prefix. */
static int round_cursor(struct coord *c, MDB_txn *txn, uint8_t *prefix, size_t *plen,
                        MDB_cursor **cur, MDB_val *k, MDB_val *v, int *rc)
{
    /* The key of member "0" shares the (experiment, round) prefix; cut the member. */
    int n = ledger_update_key(c->experiment, c->rnd.number, "0", prefix);
    if (n < 0)
        return COORD_ERR_STATE;
    *plen = (size_t)n - 2;
    if (mdb_cursor_open(txn, c->db_payloads, cur) != 0)
        return COORD_ERR_STATE;
    k->mv_size = *plen;
    k->mv_data = prefix;
    *rc = mdb_cursor_get(*cur, k, v, MDB_SET_RANGE);
    return 0;
}

static int in_round(const MDB_val *k, const uint8_t *prefix, size_t plen)
{
    return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}

/* Calls fn for each stored payload of the open round, in key order. */
int state_each_payload(struct coord *c, state_payload_fn fn, void *arg)
{
    MDB_txn *txn;
    if (ledger_read_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    uint8_t prefix[LEDGER_UPDATE_KEY_MAX];
    size_t plen;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;
    int out = round_cursor(c, txn, prefix, &plen, &cur, &k, &v, &rc);
    if (out != 0) {
        ledger_read_end(c->ledger, txn);
        return out;
    }
    while (rc == 0 && in_round(&k, prefix, plen)) {
        struct payload_row row;
        if ((out = payload_row_decode(c, &v, &row)) != 0)
            break;
        out = fn(c, &row.m, row.weight, row.hash, row.len, arg);
        if (out != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    ledger_read_end(c->ledger, txn);
    return out;
}

int state_round_updates(struct coord *c, MDB_txn *txn, struct agg_update *u, size_t cap,
                        size_t *n, char *why, size_t why_cap)
{
    *n = 0;
    if (why && why_cap)
        why[0] = 0;
    uint8_t prefix[LEDGER_UPDATE_KEY_MAX];
    size_t plen;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;
    int out = round_cursor(c, txn, prefix, &plen, &cur, &k, &v, &rc);
    if (out != 0)
        return out;
    while (rc == 0 && in_round(&k, prefix, plen)) {
        struct payload_row row;
        if ((out = payload_row_decode(c, &v, &row)) != 0)
            break;
        if (*n == cap) {
            log_error("round %llu has more stored updates than the %zu accepted",
                      (unsigned long long)c->rnd.number, cap);
            out = COORD_ERR_STATE;
            break;
        }
        struct agg_update *a = &u[*n];
        memset(a, 0, sizeof *a);
        snprintf(a->member, sizeof a->member, "%s", row.m.id);
        a->tokens = row.m.tokens;
        a->samples = row.m.samples;
        a->weight = agg_weight(c->policy.aggregation.weighting, row.m.tokens, row.m.samples);
        memcpy(a->payload_hash, row.hash, 32);
        char file_why[4400];
        if ((out = payload_map(c, c->experiment, row.hash, row.len, &a->payload, file_why,
                               sizeof file_why)) != 0) {
            if (why && why_cap && out == COORD_ERR_NOT_FOUND)
                snprintf(why, why_cap, "the update of member %s to round %llu is missing: %s; "
                         "put the file back (from a backup) and the retry closes the round, "
                         "or cancel the experiment (aulac experiment propose-cancel %s, then "
                         "the members vote)", row.m.id, (unsigned long long)c->rnd.number,
                         file_why, c->experiment);
            else if (why && why_cap)
                snprintf(why, why_cap, "the update of member %s to round %llu cannot be read: "
                         "%s", row.m.id, (unsigned long long)c->rnd.number, file_why);
            if (out == COORD_ERR_NOT_FOUND)
                out = COORD_ERR_IO;
            break;
        }
        a->len = row.len;
        a->mapped = 1;
        (*n)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (out == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        log_error("cannot read the stored updates of round %llu: %s",
                  (unsigned long long)c->rnd.number, mdb_strerror(rc));
        out = COORD_ERR_STATE;
    }
    mdb_cursor_close(cur);
    if (out != 0) {
        state_round_updates_release(u, *n);
        *n = 0;
    }
    return out;
}

void state_round_updates_release(struct agg_update *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (u[i].mapped)
            payload_unmap(u[i].payload, u[i].len);
        u[i].payload = NULL;
        u[i].mapped = 0;
    }
}

/* Deletes the run of rows that starts at the first key >= from (the first row when
 * from is NULL) and goes on while in_run(key, arg). */
static int delete_run(MDB_txn *txn, MDB_dbi dbi, const MDB_val *from,
                      int (*in_run)(const MDB_val *key, const void *arg), const void *arg)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return COORD_ERR_STATE;
    MDB_val k = from ? *from : (MDB_val){ 0, NULL }, v;
    int rc = mdb_cursor_get(cur, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST);
    int out = 0;
    while (rc == 0 && in_run(&k, arg)) {
        if (mdb_cursor_del(cur, 0) != 0) {
            out = COORD_ERR_STATE;
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return out;
}

static int has_prefix(const MDB_val *k, const void *arg)
{
    const MDB_val *prefix = arg;
    return k->mv_size >= prefix->mv_size &&
           memcmp(k->mv_data, prefix->mv_data, prefix->mv_size) == 0;
}

int state_delete_payloads(struct coord *c, MDB_txn *txn)
{
    uint8_t prefix[LEDGER_UPDATE_KEY_MAX];
    int plen = ledger_update_key(c->experiment, c->rnd.number, "0", prefix);
    if (plen < 0)
        return COORD_ERR_STATE;
    MDB_val p = { (size_t)plen - 2, prefix };
    return delete_run(txn, c->db_payloads, &p, has_prefix, &p);
}

/* --- closed rounds --------------------------------------------------------- */

static size_t round_key(const char *experiment, uint64_t round, uint8_t *key)
{
    size_t n = strlen(experiment);
    key[0] = (uint8_t)n;
    memcpy(key + 1, experiment, n);
    be64_put(key + 1 + n, round);
    return 1 + n + 8;
}

int state_put_round(struct coord *c, MDB_txn *txn, const struct round_summary *s)
{
    uint8_t key[1 + COORD_EXPERIMENT_MAX + 8];
    size_t klen = round_key(c->experiment, s->round, key);
    struct bytes_writer w = { 0 };
    bw_u32(&w, RECORD_VERSION);
    bw_raw(&w, s->model_hash, 32);
    bw_f32(&w, s->mean_train_loss);
    bw_u64(&w, s->tokens);
    bw_u64(&w, s->bytes);
    bw_u64(&w, (uint64_t)s->closed_ms);
    bw_u32(&w, (uint32_t)s->n_members);
    for (size_t i = 0; i < s->n_members; i++) {
        bw_str(&w, s->members[i].id);
        bw_u64(&w, s->members[i].tokens);
        bw_u64(&w, s->members[i].bytes);
        bw_f32(&w, s->members[i].train_loss);
        bw_f32(&w, s->members[i].val_loss);
    }
    return put_record(c, txn, c->db_rounds, key, klen, &w);
}

int state_get_round(struct coord *c, const char *experiment, uint64_t round,
                    struct round_summary *s, int *found)
{
    uint8_t key[1 + COORD_EXPERIMENT_MAX + 8];
    size_t klen = round_key(experiment, round, key);
    uint8_t *buf;
    size_t len;
    int rc = get_record(c, NULL, c->db_rounds, key, klen, &buf, &len);
    if (rc != 0)
        return rc;
    memset(s, 0, sizeof *s);
    *found = buf != NULL;
    if (!buf)
        return 0;
    struct bytes_reader r = { buf, len, 0 };
    uint32_t version = br_u32(&r);
    s->round = round;
    const uint8_t *h = br_raw(&r, 32);
    if (h)
        memcpy(s->model_hash, h, 32);
    s->mean_train_loss = br_f32(&r);
    s->tokens = br_u64(&r);
    s->bytes = br_u64(&r);
    s->closed_ms = (int64_t)br_u64(&r);
    uint32_t n = br_u32(&r);
    if (!r.failed && n <= ROSTER_MAX_MEMBERS) {
        s->members = calloc(n ? n : 1, sizeof *s->members);
        if (!s->members) {
            free(buf);
            return COORD_ERR_NOMEM;
        }
        for (uint32_t i = 0; i < n && !r.failed; i++) {
            br_str(&r, s->members[i].id, sizeof s->members[i].id);
            s->members[i].tokens = br_u64(&r);
            s->members[i].bytes = br_u64(&r);
            s->members[i].train_loss = br_f32(&r);
            s->members[i].val_loss = br_f32(&r);
        }
        s->n_members = n;
    } else {
        r.failed = 1;
    }
    free(buf);
    if (r.failed || r.left != 0 || version != RECORD_VERSION) {
        free(s->members);
        s->members = NULL;
        log_error("the summary of round %llu is unreadable", (unsigned long long)round);
        return COORD_ERR_STATE;
    }
    return 0;
}

/* --- credit totals ---------------------------------------------------------- */

int state_get_credit(struct coord *c, MDB_txn *txn, const char *experiment,
                     struct credit_totals *t, int *found)
{
    credit_totals_init(t);
    *found = 0;
    if (!txn) {   /* a read-only snapshot of its own */
        MDB_txn *own;
        int rc = ledger_read_begin(c->ledger, &own);
        if (rc != 0) {
            log_error("cannot read the credit totals of %s: %s", experiment, ledger_strerror(rc));
            return COORD_ERR_STATE;
        }
        rc = state_get_credit(c, own, experiment, t, found);
        ledger_read_end(c->ledger, own);
        return rc;
    }
    MDB_val k = { strlen(experiment), (void *)experiment }, v;
    int rc = mdb_get(txn, c->db_credit, &k, &v);
    if (rc == MDB_NOTFOUND) {
        snprintf(t->experiment, sizeof t->experiment, "%s", experiment);
        return 0;
    }
    if (rc != 0) {
        log_error("cannot read the credit totals of %s: %s", experiment, mdb_strerror(rc));
        return COORD_ERR_STATE;
    }
    struct bytes_reader r = { v.mv_data, v.mv_size, 0 };
    uint32_t version = br_u32(&r);
    if (r.failed || version != RECORD_VERSION ||
        credit_totals_decode(t, (const uint8_t *)v.mv_data + 4, v.mv_size - 4) != 0 ||
        strcmp(t->experiment, experiment) != 0) {
        credit_totals_free(t);
        log_error("the credit totals of %s (coord.credit) are unreadable", experiment);
        return COORD_ERR_STATE;
    }
    *found = 1;
    return 0;
}

int state_put_credit(struct coord *c, MDB_txn *txn, const struct credit_totals *t)
{
    uint8_t *bytes;
    size_t len;
    int rc = credit_totals_encode(t, &bytes, &len);
    if (rc != 0) {
        log_error("cannot encode the credit totals of %s (%d)", t->experiment, rc);
        return rc == CREDIT_ERR_NOMEM ? COORD_ERR_NOMEM : COORD_ERR_STATE;
    }
    struct bytes_writer w = { 0 };
    bw_u32(&w, RECORD_VERSION);
    bw_raw(&w, bytes, len);
    free(bytes);
    return put_record(c, txn, c->db_credit, t->experiment, strlen(t->experiment), &w);
}

/* --- accepted request keys (replay protection) ------------------------------ */

#define REPLAY_ROW_KEY (8 + STATE_REPLAY_KEY_BYTES)

/* Rows timestamped before *arg (ms): they sit at the front, oldest first. */
static int expired(const MDB_val *k, const void *arg)
{
    return k->mv_size == REPLAY_ROW_KEY &&
           (int64_t)be64_get(k->mv_data) < *(const int64_t *)arg;
}

int state_replay_record(struct coord *c, const uint8_t key[STATE_REPLAY_KEY_BYTES],
                        int64_t timestamp_ms, int64_t prune_before_ms)
{
    uint8_t row[REPLAY_ROW_KEY];
    be64_put(row, (uint64_t)timestamp_ms);
    memcpy(row + 8, key, STATE_REPLAY_KEY_BYTES);
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    int rc = delete_run(txn, c->db_replay, NULL, expired, &prune_before_ms);
    if (rc == 0) {
        struct bytes_writer w = { 0 };
        bw_u32(&w, RECORD_VERSION);
        rc = put_record(c, txn, c->db_replay, row, sizeof row, &w);
    }
    if (rc != 0) {
        ledger_txn_abort(c->ledger, txn);
        return rc;
    }
    return ledger_txn_commit(c->ledger, txn) == 0 ? 0 : COORD_ERR_STATE;
}

int state_replay_each(struct coord *c, int64_t from_ms, state_replay_fn fn, void *arg)
{
    MDB_txn *txn;
    if (ledger_read_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->db_replay, &cur) != 0) {
        ledger_read_end(c->ledger, txn);
        return COORD_ERR_STATE;
    }
    uint8_t start[8];
    be64_put(start, (uint64_t)(from_ms > 0 ? from_ms : 0));
    MDB_val k = { sizeof start, start }, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE), out = 0;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct bytes_reader r = { v.mv_data, v.mv_size, 0 };
        uint32_t version = br_u32(&r);
        if (k.mv_size != REPLAY_ROW_KEY || r.failed || r.left != 0 ||
            version != RECORD_VERSION) {
            log_error("a stored request nonce in %s is unreadable (coord.replay)",
                      c->opt.data_dir);
            out = COORD_ERR_STATE;
            break;
        }
        const uint8_t *p = k.mv_data;
        fn((int64_t)be64_get(p), p + 8, arg);
    }
    if (out == 0 && rc != MDB_NOTFOUND) {
        log_error("cannot read the stored request nonces: %s", mdb_strerror(rc));
        out = COORD_ERR_STATE;
    }
    mdb_cursor_close(cur);
    ledger_read_end(c->ledger, txn);
    return out;
}
