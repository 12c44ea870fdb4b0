/* Witnessing: the store of members' cosigned checkpoints beside the log, and the
 * cross-check of cosigned checkpoints against the checkpoint a verifier relies on. */
#include "ledger/witness.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "ledger/entry.h"

struct witness_store {
    struct ledger *l;
    MDB_dbi dbi;
    int present;          /* the database exists (a read-only directory may lack it) */
};

static int store_error(int rc, const char *what)
{
    log_error("witness store: %s: %s", what, mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? LEDGER_ERR_MAP_FULL : LEDGER_ERR_LMDB;
}

/* A read transaction (ledger_read_begin: the map lock held; end with read_end). */
static int read_txn(struct witness_store *s, MDB_txn **txn)
{
    return ledger_read_begin(s->l, txn) == 0 ? 0 : MDB_PANIC;
}

static void read_end(struct witness_store *s, MDB_txn *txn)
{
    ledger_read_end(s->l, txn);
}

/* A write transaction on the ledger's environment, the map lock held (ledger_map_hold);
 * end with write_commit or read_end. */
static int write_txn(struct ledger *l, MDB_txn **txn)
{
    ledger_map_hold(l);
    int rc = mdb_txn_begin(ledger_env(l), NULL, 0, txn);
    if (rc)
        ledger_map_release(l);
    return rc;
}

static int write_commit(struct ledger *l, MDB_txn *txn)
{
    int rc = mdb_txn_commit(txn);
    ledger_map_release(l);
    return rc;
}

int witness_store_open(struct ledger *l, struct witness_store **out)
{
    if (!l || !out)
        return LEDGER_ERR_ARG;
    *out = NULL;
    struct witness_store *s = calloc(1, sizeof *s);
    if (!s)
        return LEDGER_ERR_NOMEM;
    s->l = l;
    unsigned env_flags = 0;
    mdb_env_get_flags(ledger_env(l), &env_flags);
    const int read_only = (env_flags & MDB_RDONLY) != 0;
    MDB_txn *txn;
    int rc = read_only ? read_txn(s, &txn) : write_txn(l, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, WITNESS_DB, read_only ? 0 : MDB_CREATE, &s->dbi);
        if (rc == 0) {
            s->present = 1;
            rc = write_commit(l, txn);
        } else {
            read_end(s, txn);
            if (rc == MDB_NOTFOUND && read_only)
                rc = 0;
        }
    }
    if (rc != 0) {
        free(s);
        return store_error(rc, "opening " WITNESS_DB);
    }
    *out = s;
    return 0;
}

void witness_store_close(struct witness_store *s)
{
    free(s);
}

int witness_store_put(struct witness_store *s, const char *member, const char *note,
                      size_t len, uint64_t timestamp, int *stored)
{
    if (stored)
        *stored = 0;
    if (!s || !member || !note || !member[0])
        return LEDGER_ERR_ARG;
    if (!s->present)
        return LEDGER_ERR_READ_ONLY;
    if (len > CHECKPOINT_NOTE_MAX || strlen(member) > CRYPTO_ID_MAX)
        return LEDGER_ERR_TOO_LARGE;
    MDB_txn *txn;
    int rc = write_txn(s->l, &txn);
    if (rc != 0)
        return store_error(rc, "beginning a write transaction");
    MDB_val k = { strlen(member), (void *)member }, v;
    rc = mdb_get(txn, s->dbi, &k, &v);
    if (rc == 0 && v.mv_size >= 8) {
        uint64_t have = 0;
        for (int i = 0; i < 8; i++)
            have = have << 8 | ((const uint8_t *)v.mv_data)[i];
        if (have > timestamp) {
            read_end(s, txn);
            return 0;
        }
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        read_end(s, txn);
        return store_error(rc, "reading a cosigned checkpoint");
    }
    uint8_t buf[8 + CHECKPOINT_NOTE_MAX];
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(timestamp >> (56 - 8 * i));
    memcpy(buf + 8, note, len);
    v.mv_size = 8 + len;
    v.mv_data = buf;
    if ((rc = mdb_put(txn, s->dbi, &k, &v, 0)) != 0) {
        read_end(s, txn);
        return store_error(rc, "storing a cosigned checkpoint");
    }
    if ((rc = write_commit(s->l, txn)) != 0)
        return store_error(rc, "committing a cosigned checkpoint");
    if (stored)
        *stored = 1;
    return 0;
}

int witness_store_each(struct witness_store *s, witness_note_fn fn, void *arg)
{
    if (!s || !fn)
        return LEDGER_ERR_ARG;
    if (!s->present)
        return 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = read_txn(s, &txn);
    if (rc != 0)
        return store_error(rc, "beginning a read transaction");
    if ((rc = mdb_cursor_open(txn, s->dbi, &cur)) != 0) {
        read_end(s, txn);
        return store_error(rc, "opening a cursor");
    }
    MDB_val k, v;
    int out = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && out == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char member[CRYPTO_ID_MAX + 1];
        if (v.mv_size < 8 || k.mv_size == 0 || k.mv_size > CRYPTO_ID_MAX) {
            out = LEDGER_ERR_CORRUPT;
            break;
        }
        memcpy(member, k.mv_data, k.mv_size);
        member[k.mv_size] = '\0';
        const uint8_t *p = v.mv_data;
        uint64_t t = 0;
        for (int i = 0; i < 8; i++)
            t = t << 8 | p[i];
        out = fn(member, (const char *)p + 8, v.mv_size - 8, t, arg);
    }
    mdb_cursor_close(cur);
    read_end(s, txn);
    if (out == 0 && rc != 0 && rc != MDB_NOTFOUND)
        return store_error(rc, "reading cosigned checkpoints");
    return out;
}

/* --- cross-check --------------------------------------------------------------------------- */

int witness_set_from_genesis(const uint8_t *entry, size_t len, const char *origin,
                             struct cosigner *out, size_t cap, size_t *n)
{
    struct entry e;
    *n = 0;
    int rc = entry_decode(entry, len, &e);
    if (rc != 0)
        return rc;
    if (e.type != ENTRY_GENESIS) {
        entry_free(&e);
        return LEDGER_ERR_ENTRY_TYPE;
    }
    for (uint32_t i = 0; i < e.u.genesis.n_members && rc == 0; i++) {
        const struct entry_member *m = &e.u.genesis.members[i];
        if (m->roles & ENTRY_ROLE_COORDINATOR)
            continue;
        rc = *n < cap ? cosigner_init(&out[*n], origin, m->id, m->public_key) : LEDGER_ERR_RANGE;
        *n += rc == 0;
    }
    entry_free(&e);
    return rc;
}

int witness_views_from_note(const char *note, size_t len, const struct checkpoint_key *log,
                            const struct cosigner *set, size_t n_set, struct witness_view *v,
                            size_t cap, size_t *n, char *why, size_t why_cap)
{
    struct checkpoint c;
    int rc = checkpoint_verify(note, len, log, &c, why, why_cap);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n_set; i++) {
        uint64_t t;
        rc = cosignature_verify(note, len, log, &set[i], NULL, &t, why, why_cap);
        if (rc == LEDGER_ERR_NOTE_UNSIGNED)
            continue;
        if (rc != 0)
            return rc;
        if (*n >= cap) {
            if (why && why_cap)
                snprintf(why, why_cap, "more than %zu cosignatures to check", cap);
            return LEDGER_ERR_RANGE;
        }
        memset(&v[*n], 0, sizeof v[*n]);
        snprintf(v[*n].member, sizeof v[*n].member, "%s", set[i].member);
        v[*n].c = c;
        v[*n].timestamp = t;
        (*n)++;
    }
    return 0;
}

/* "size 14, root 0a1b2c3d4e5f6071…" */
static void describe(const struct checkpoint *c, char *out, size_t cap)
{
    char hex[65];
    hex_encode(c->root, 32, hex);
    snprintf(out, cap, "size %" PRIu64 ", root %.16s…", c->size, hex);
}

static int split(struct witness_report *r, const char *who, const struct checkpoint *a,
                 const char *other, const struct checkpoint *b, const char *detail)
{
    char da[96], db[96];
    describe(a, da, sizeof da);
    describe(b, db, sizeof db);
    snprintf(r->why, sizeof r->why, "split view: %s cosigned the ledger at %s, which is not the "
             "same history as %s (%s): %s. The coordinator signed both: it showed members "
             "different ledgers", who, da, other, db, detail);
    return LEDGER_ERR_SPLIT_VIEW;
}

/* 0 when the smaller of a, b is extended by the larger; else the split or error. */
static int check_pair(const struct witness_view *va, const struct checkpoint *a,
                      const char *b_name, const struct checkpoint *b, witness_proof_fn proof,
                      void *arg, struct witness_report *r)
{
    if (a->size == b->size) {
        if (memcmp(a->root, b->root, 32) != 0)
            return split(r, va->member, a, b_name, b, "same size, different root");
        return 0;
    }
    const struct checkpoint *lo = a->size < b->size ? a : b, *hi = a->size < b->size ? b : a;
    uint8_t p[MERKLE_PROOF_MAX][32];
    size_t plen = 0;
    char why[400] = "";
    int rc = proof(arg, lo->size, hi->size, p, &plen, why, sizeof why);
    if (rc < 0) {
        snprintf(r->why, sizeof r->why, "cannot check %s's cosigned checkpoint of size %" PRIu64
                 " now: %s", va->member, a->size, why);
        return rc;
    }
    if (rc > 0)
        return split(r, va->member, a, b_name, b, why[0] ? why : "no consistency proof");
    if (checkpoint_check_extension(lo, hi, (const uint8_t (*)[32])p, plen, why, sizeof why) != 0)
        return split(r, va->member, a, b_name, b, "the consistency proof between them does not "
                     "verify");
    return 0;
}

int witness_check(const struct checkpoint *c, const struct witness_view *v, size_t n,
                  const char *self, witness_proof_fn proof, void *arg,
                  struct witness_report *r)
{
    if (!c || (n && !v) || !proof || !r)
        return LEDGER_ERR_ARG;
    memset(r, 0, sizeof *r);
    char shown[64];
    snprintf(shown, sizeof shown, "the checkpoint shown here");
    /* each against the checkpoint shown; those beyond it against the largest too: all
     * of them are then one history (equal sizes included) */
    size_t largest = n;
    for (size_t i = 0; i < n; i++)
        if (v[i].c.size > c->size && (largest == n || v[i].c.size > v[largest].c.size))
            largest = i;
    for (size_t i = 0; i < n; i++) {
        int rc = check_pair(&v[i], &v[i].c, shown, c, proof, arg, r);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; largest < n && i < n; i++) {
        if (i == largest || v[i].c.size <= c->size)
            continue;
        char other[96];
        snprintf(other, sizeof other, "what %s cosigned", v[largest].member);
        int rc = check_pair(&v[i], &v[i].c, other, &v[largest].c, proof, arg, r);
        if (rc != 0)
            return rc;
    }
    r->consistent = n;
    for (size_t i = 0; i < n; i++) {
        int seen = self && strcmp(v[i].member, self) == 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(v[i].member, v[j].member) == 0;
        if (seen)
            continue;
        size_t used = strlen(r->others_list);
        snprintf(r->others_list + used, sizeof r->others_list - used, "%s%s (size %" PRIu64 ")",
                 r->others ? ", " : "", v[i].member, v[i].c.size);
        r->others++;
    }
    return 0;
}
