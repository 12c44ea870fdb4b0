#include "ledger/ledger.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "crypto/digest.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle_src.h"

#define FORMAT_VERSION 1u
#define NODE_KEY_BYTES 9

struct ledger {
    MDB_env *env;
    int read_only;
    /* Held shared by every transaction of this process on env (ledger_map_hold), taken
     * exclusively only to resize the map (grow_map): mdb_env_set_mapsize remaps, which
     * is safe only when no transaction of this process is active. */
    pthread_rwlock_t map_lock;
    unsigned map_full_seen;     /* map_full_events when this ledger last grew */
    pthread_mutex_t dbi_lock;   /* guards the lazy open below (read-only mode) */
    int have_dbis;              /* 0 while a read-only opener finds no ledger yet */
    int have_checkpoints;       /* 0 for a read-only opener of a ledger older than them */
    MDB_dbi entries, nodes, index, meta, checkpoints;
    /* set by ledger_set_signer; read in the (single) write transaction */
    const struct crypto_key *signer;
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    uint64_t checkpoint_interval;
};

/* MDB_MAP_FULL results seen by this process: the next write transaction grows the map. */
static unsigned map_full_events;

static int lmdb_error(int rc, const char *what)
{
    if (rc == MDB_MAP_FULL) {
        __atomic_add_fetch(&map_full_events, 1, __ATOMIC_RELAXED);
        log_warn("ledger: %s: LMDB map full; the map grows before the next write "
                 "transaction (retry)", what);
        return LEDGER_ERR_MAP_FULL;
    }
    log_error("ledger: %s: %s", what, mdb_strerror(rc));
    return LEDGER_ERR_LMDB;
}

static void be64(uint64_t v, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void node_key(unsigned level, uint64_t i, uint8_t out[NODE_KEY_BYTES])
{
    out[0] = (uint8_t)level;
    be64(i, out + 1);
}

/* --- opening ------------------------------------------------------------------ */

/* Opens the four DBIs in txn (creating them when writable). MDB_NOTFOUND when a
 * read-only opener finds no ledger yet. */
static int open_dbis(struct ledger *l, MDB_txn *txn)
{
    unsigned flags = l->read_only ? 0 : MDB_CREATE;
    int rc;
    if ((rc = mdb_dbi_open(txn, "ledger.entries", flags, &l->entries))
        || (rc = mdb_dbi_open(txn, "ledger.nodes", flags, &l->nodes))
        || (rc = mdb_dbi_open(txn, "ledger.index", flags, &l->index))
        || (rc = mdb_dbi_open(txn, "ledger.meta", flags, &l->meta)))
        return rc;
    rc = mdb_dbi_open(txn, "ledger.checkpoints", flags, &l->checkpoints);
    if (rc == 0)
        l->have_checkpoints = 1;
    else if (rc != MDB_NOTFOUND || !l->read_only)
        return rc;
    return 0;
}

static int check_format(struct ledger *l, MDB_txn *txn)
{
    MDB_val k = { 6, "format" }, v;
    int rc = mdb_get(txn, l->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        if (l->read_only)
            return 0;
        uint8_t fmt[4] = { 0, 0, 0, FORMAT_VERSION };
        v.mv_size = 4;
        v.mv_data = fmt;
        rc = mdb_put(txn, l->meta, &k, &v, 0);
        return rc ? lmdb_error(rc, "writing ledger.meta") : 0;
    }
    if (rc)
        return lmdb_error(rc, "reading ledger.meta");
    const uint8_t *p = v.mv_data;
    if (v.mv_size != 4 || p[0] || p[1] || p[2] || p[3] != FORMAT_VERSION) {
        log_error("ledger: unknown ledger format in ledger.meta; was it written by a newer aulac?");
        return LEDGER_ERR_CORRUPT;
    }
    return 0;
}

/* Another process (the coordinator, for a reader beside it) grew the map: adopt its
 * size once no transaction of this process is active. */
static void adopt_map_size(struct ledger *l)
{
    /* A try for up to 2 s, never a blocking wait: this thread may hold another
     * transaction itself; then the retry below reports MDB_MAP_RESIZED instead. */
    for (int i = 0; i < 200; i++) {
        if (pthread_rwlock_trywrlock(&l->map_lock) == 0) {
            mdb_env_set_mapsize(l->env, 0);
            pthread_rwlock_unlock(&l->map_lock);
            return;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* Grows the map when the last MDB_MAP_FULL came after the last growth or more than half
 * of it is in use: to twice its size (at least twice what is used), rounded to 1 MiB.
 * Only when no transaction of this process is active (a try: skipped otherwise, the next
 * write transaction tries again). The map is address space, not disk: without
 * MDB_WRITEMAP LMDB never extends the file past the pages it writes. */
static void grow_map(struct ledger *l)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(l->env, &info) || mdb_env_stat(l->env, &st))
        return;
    const uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    const uint64_t size = info.me_mapsize;
    const unsigned events = __atomic_load_n(&map_full_events, __ATOMIC_RELAXED);
    if (events == l->map_full_seen && used * 2 <= size)
        return;
    if (pthread_rwlock_trywrlock(&l->map_lock) != 0)
        return;
    uint64_t want = size * 2 > used * 2 ? size * 2 : used * 2;
    want = (want + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    int rc = mdb_env_set_mapsize(l->env, (size_t)want);
    pthread_rwlock_unlock(&l->map_lock);
    if (rc) {
        log_error("ledger: cannot grow the LMDB map from %llu to %llu bytes: %s",
                  (unsigned long long)size, (unsigned long long)want, mdb_strerror(rc));
        return;
    }
    l->map_full_seen = events;
    log_info("ledger: LMDB map grown from %llu to %llu bytes (%llu in use)",
             (unsigned long long)size, (unsigned long long)want, (unsigned long long)used);
}

void ledger_map_hold(struct ledger *l)
{
    pthread_rwlock_rdlock(&l->map_lock);
}

void ledger_map_release(struct ledger *l)
{
    pthread_rwlock_unlock(&l->map_lock);
}

static int read_begin(struct ledger *l, MDB_txn **txn)
{
    ledger_map_hold(l);
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size and retry */
        ledger_map_release(l);
        adopt_map_size(l);
        ledger_map_hold(l);
        rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);
    }
    if (rc)
        ledger_map_release(l);
    return rc ? lmdb_error(rc, "beginning a read transaction") : 0;
}

/* Ends a transaction begun by read_begin (abort) or commits it (commit: 1). */
static int read_finish(struct ledger *l, MDB_txn *txn, int commit)
{
    int rc = 0;
    if (commit)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    ledger_map_release(l);
    return rc;
}

int ledger_read_begin(struct ledger *l, MDB_txn **txn)
{
    if (!l || !txn)
        return LEDGER_ERR_ARG;
    return read_begin(l, txn);
}

void ledger_read_end(struct ledger *l, MDB_txn *txn)
{
    if (l && txn)
        read_finish(l, txn, 0);
}

/* Read-only openers may predate the coordinator's first start: find the DBIs
 * the first time they exist. Returns 1 when available, 0 when there is no
 * ledger yet, or an error. */
static int ensure_dbis(struct ledger *l)
{
    if (__atomic_load_n(&l->have_dbis, __ATOMIC_ACQUIRE))
        return 1;
    pthread_mutex_lock(&l->dbi_lock);
    int result = l->have_dbis;
    if (!result) {
        MDB_txn *txn;
        int rc = read_begin(l, &txn);
        if (rc) {
            result = rc;
        } else {
            rc = open_dbis(l, txn);
            if (rc == 0 && (rc = check_format(l, txn)) == 0) {
                rc = read_finish(l, txn, 1);   /* publishes the DBI handles */
                result = rc ? lmdb_error(rc, "opening ledger databases") : 1;
            } else {
                read_finish(l, txn, 0);
                result = rc == MDB_NOTFOUND ? 0 : rc < 0 ? rc : lmdb_error(rc, "opening ledger databases");
            }
            if (result == 1)
                __atomic_store_n(&l->have_dbis, 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&l->dbi_lock);
    return result;
}

int ledger_open(const char *dir, const struct ledger_options *opts, struct ledger **out)
{
    struct ledger_options o = { 0 };
    if (!dir || !out)
        return LEDGER_ERR_ARG;
    *out = NULL;
    if (opts)
        o = *opts;
    if (!o.max_dbs)
        o.max_dbs = LEDGER_DEFAULT_MAX_DBS;
    if (!o.map_size && !o.read_only)
        o.map_size = LEDGER_DEFAULT_MAP_SIZE;
    if (o.max_dbs < 5)
        return LEDGER_ERR_ARG;

    if (!o.read_only) {
        int rc = file_mkdirs(dir, 0700);
        if (rc) {
            log_error("ledger: cannot create data directory %s: %s", dir, strerror(-rc));
            return LEDGER_ERR_IO;
        }
    } else {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            log_error("ledger: data directory %s does not exist", dir);
            return LEDGER_ERR_IO;
        }
    }

    struct ledger *l = calloc(1, sizeof *l);
    if (!l)
        return LEDGER_ERR_NOMEM;
    l->read_only = o.read_only;
    l->checkpoint_interval = o.checkpoint_interval ? o.checkpoint_interval
                                                   : LEDGER_DEFAULT_CHECKPOINT_INTERVAL;
    pthread_mutex_init(&l->dbi_lock, NULL);
    pthread_rwlock_init(&l->map_lock, NULL);
    l->map_full_seen = __atomic_load_n(&map_full_events, __ATOMIC_RELAXED);
    int rc = mdb_env_create(&l->env);
    if (rc) {
        rc = lmdb_error(rc, "mdb_env_create");
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(l->env, o.max_dbs))
        || (o.map_size && (rc = mdb_env_set_mapsize(l->env, (size_t)o.map_size)))) {
        rc = lmdb_error(rc, "configuring LMDB");
        goto fail;
    }
    unsigned flags = MDB_NOTLS | (o.read_only ? MDB_RDONLY : 0);
    rc = mdb_env_open(l->env, dir, flags, 0600);
    if (rc) {
        log_error("ledger: cannot open LMDB environment in %s: %s%s", dir, mdb_strerror(rc),
                  o.read_only && rc == ENOENT ? " (has the coordinator ever run here?)" : "");
        rc = rc == ENOENT || rc == EACCES ? LEDGER_ERR_IO : LEDGER_ERR_LMDB;
        goto fail;
    }
    if (!o.read_only) {
        int dead = 0;
        mdb_reader_check(l->env, &dead);   /* slots of readers killed mid-read */
        MDB_txn *txn;
        if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn))) {
            rc = lmdb_error(rc, "beginning the setup transaction");
            goto fail;
        }
        if ((rc = open_dbis(l, txn))) {
            mdb_txn_abort(txn);
            rc = lmdb_error(rc, "creating ledger databases");
            goto fail;
        }
        if ((rc = check_format(l, txn))) {
            mdb_txn_abort(txn);
            goto fail;
        }
        if ((rc = mdb_txn_commit(txn))) {
            rc = lmdb_error(rc, "committing the setup transaction");
            goto fail;
        }
        l->have_dbis = 1;
    } else {
        rc = ensure_dbis(l);
        if (rc < 0)
            goto fail;
    }
    *out = l;
    return 0;
fail:
    if (l->env)
        mdb_env_close(l->env);
    pthread_mutex_destroy(&l->dbi_lock);
    pthread_rwlock_destroy(&l->map_lock);
    free(l);
    return rc;
}

void ledger_close(struct ledger *l)
{
    if (!l)
        return;
    mdb_env_close(l->env);
    pthread_mutex_destroy(&l->dbi_lock);
    pthread_rwlock_destroy(&l->map_lock);
    free(l);
}

MDB_env *ledger_env(struct ledger *l)
{
    return l ? l->env : NULL;
}

int ledger_txn_begin(struct ledger *l, MDB_txn **txn)
{
    if (!l || !txn)
        return LEDGER_ERR_ARG;
    if (l->read_only)
        return LEDGER_ERR_READ_ONLY;
    grow_map(l);
    ledger_map_hold(l);
    int rc = mdb_txn_begin(l->env, NULL, 0, txn);
    if (rc)
        ledger_map_release(l);
    return rc ? lmdb_error(rc, "beginning a write transaction") : 0;
}

static int publish_in(struct ledger *l, MDB_txn *txn);

int ledger_txn_commit(struct ledger *l, MDB_txn *txn)
{
    if (!l || !txn)
        return LEDGER_ERR_ARG;
    if (l->signer) {
        int prc = publish_in(l, txn);
        if (prc) {
            read_finish(l, txn, 0);
            return prc;
        }
    }
    int rc = read_finish(l, txn, 1);
    return rc ? lmdb_error(rc, "committing") : 0;
}

void ledger_txn_abort(struct ledger *l, MDB_txn *txn)
{
    if (l && txn)
        read_finish(l, txn, 0);
}

/* --- reading inside a transaction ------------------------------------------------ */

static int size_in(struct ledger *l, MDB_txn *txn, uint64_t *size)
{
    MDB_stat st;
    int rc = mdb_stat(txn, l->entries, &st);
    if (rc)
        return lmdb_error(rc, "mdb_stat(ledger.entries)");
    *size = st.ms_entries;
    return 0;
}

/* 0 with the hash, 1 when absent, or an LMDB error. */
static int node_get_quiet(struct ledger *l, MDB_txn *txn, unsigned level, uint64_t i, uint8_t out[32])
{
    uint8_t kb[NODE_KEY_BYTES];
    node_key(level, i, kb);
    MDB_val k = { sizeof kb, kb }, v;
    int rc = mdb_get(txn, l->nodes, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc)
        return lmdb_error(rc, "reading ledger.nodes");
    if (v.mv_size != 32)
        return LEDGER_ERR_CORRUPT;
    memcpy(out, v.mv_data, 32);
    return 0;
}

static int node_get(struct ledger *l, MDB_txn *txn, unsigned level, uint64_t i, uint8_t out[32])
{
    int rc = node_get_quiet(l, txn, level, i, out);
    if (rc == 1 || rc == LEDGER_ERR_CORRUPT) {
        log_error("ledger: stored hash of subtree (level %u, %llu) is %s", level,
                  (unsigned long long)i, rc == 1 ? "missing" : "not 32 bytes");
        return LEDGER_ERR_CORRUPT;
    }
    return rc;
}

static int node_put(struct ledger *l, MDB_txn *txn, unsigned level, uint64_t i, const uint8_t h[32])
{
    uint8_t kb[NODE_KEY_BYTES];
    node_key(level, i, kb);
    MDB_val k = { sizeof kb, kb }, v = { 32, (void *)h };
    int rc = mdb_put(txn, l->nodes, &k, &v, 0);
    return rc ? lmdb_error(rc, "writing ledger.nodes") : 0;
}

struct range_ctx {
    struct ledger *l;
    MDB_txn *txn;
};

/* MTH(D[begin:end]) from stored complete subtrees: the pieces of the binary
 * decomposition of end - begin, largest first, folded right to left. */
static int stored_range(void *vctx, uint64_t begin, uint64_t end, uint8_t out[32])
{
    struct range_ctx *c = vctx;
    uint8_t piece[64][32];
    int n = 0;
    uint64_t pos = begin;
    while (pos < end) {
        unsigned level = 63 - (unsigned)__builtin_clzll(end - pos);
        if (pos & (((uint64_t)1 << level) - 1))
            return LEDGER_ERR_ARG;   /* not a range the RFC recursion asks for */
        int rc = node_get(c->l, c->txn, level, pos >> level, piece[n++]);
        if (rc)
            return rc;
        pos += (uint64_t)1 << level;
    }
    uint8_t r[32];
    memcpy(r, piece[--n], 32);
    while (n > 0)
        merkle_node_hash(piece[--n], r, r);
    memcpy(out, r, 32);
    return 0;
}

static int root_in(struct ledger *l, MDB_txn *txn, uint64_t size, uint8_t out[32])
{
    uint64_t n;
    int rc = size_in(l, txn, &n);
    if (rc)
        return rc;
    if (size > n)
        return LEDGER_ERR_RANGE;
    if (size == 0) {
        crypto_hash_sha256(out, NULL, 0);
        return 0;
    }
    struct range_ctx c = { l, txn };
    return stored_range(&c, 0, size, out);
}

static int get_in(struct ledger *l, MDB_txn *txn, uint64_t index, uint8_t **bytes, size_t *len)
{
    uint8_t kb[8];
    be64(index, kb);
    MDB_val k = { 8, kb }, v;
    int rc = mdb_get(txn, l->entries, &k, &v);
    if (rc == MDB_NOTFOUND)
        return LEDGER_ERR_NOT_FOUND;
    if (rc)
        return lmdb_error(rc, "reading ledger.entries");
    uint8_t *copy = malloc(v.mv_size ? v.mv_size : 1);
    if (!copy)
        return LEDGER_ERR_NOMEM;
    memcpy(copy, v.mv_data, v.mv_size);
    *bytes = copy;
    *len = v.mv_size;
    return 0;
}

static int inclusion_in(struct ledger *l, MDB_txn *txn, uint64_t index, uint64_t size,
                        uint8_t (*proof)[32], size_t *proof_len)
{
    uint64_t n;
    int rc = size_in(l, txn, &n);
    if (rc)
        return rc;
    if (size > n || index >= size)
        return LEDGER_ERR_RANGE;
    struct range_ctx c = { l, txn };
    return merkle_src_inclusion_proof(stored_range, &c, size, index, proof, proof_len);
}

static int consistency_in(struct ledger *l, MDB_txn *txn, uint64_t old_size, uint64_t new_size,
                          uint8_t (*proof)[32], size_t *proof_len)
{
    uint64_t n;
    int rc = size_in(l, txn, &n);
    if (rc)
        return rc;
    if (new_size > n || old_size > new_size)
        return LEDGER_ERR_RANGE;
    struct range_ctx c = { l, txn };
    return merkle_src_consistency_proof(stored_range, &c, new_size, old_size, proof, proof_len);
}

/* Readers run in the caller's transaction when given one, otherwise in a
 * snapshot of their own. Returns 1 with *txn ready (*own set when read_end must
 * abort it), 0 when no ledger exists yet (a read-only opener before the
 * coordinator's first start), or an error. */
static int read_open(struct ledger *l, MDB_txn **txn, int *own)
{
    *own = 0;
    if (!l)
        return LEDGER_ERR_ARG;
    int have = ensure_dbis(l);
    if (have <= 0 || *txn)
        return have;
    int rc = read_begin(l, txn);
    if (rc)
        return rc;
    *own = 1;
    return 1;
}

static void read_end(struct ledger *l, MDB_txn *txn, int own)
{
    if (own)
        read_finish(l, txn, 0);
}

/* --- public reads ---------------------------------------------------------------- */

int ledger_size_txn(struct ledger *l, MDB_txn *txn, uint64_t *size)
{
    int own;
    if (!size)
        return LEDGER_ERR_ARG;
    *size = 0;
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc;
    rc = size_in(l, txn, size);
    read_end(l, txn, own);
    return rc;
}

int ledger_size(struct ledger *l, uint64_t *size)
{
    return ledger_size_txn(l, NULL, size);
}

int ledger_root_txn(struct ledger *l, MDB_txn *txn, uint64_t size, uint8_t out[32])
{
    int own;
    if (!out)
        return LEDGER_ERR_ARG;
    int rc = read_open(l, &txn, &own);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (size)
            return LEDGER_ERR_RANGE;
        crypto_hash_sha256(out, NULL, 0);
        return 0;
    }
    rc = root_in(l, txn, size, out);
    read_end(l, txn, own);
    return rc;
}

int ledger_root(struct ledger *l, uint64_t size, uint8_t out[32])
{
    return ledger_root_txn(l, NULL, size, out);
}

int ledger_get_txn(struct ledger *l, MDB_txn *txn, uint64_t index, uint8_t **bytes, size_t *len)
{
    int own;
    if (!bytes || !len)
        return LEDGER_ERR_ARG;
    *bytes = NULL;
    *len = 0;
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc ? rc : LEDGER_ERR_NOT_FOUND;
    rc = get_in(l, txn, index, bytes, len);
    read_end(l, txn, own);
    return rc;
}

int ledger_get(struct ledger *l, uint64_t index, uint8_t **bytes, size_t *len)
{
    return ledger_get_txn(l, NULL, index, bytes, len);
}

int ledger_leaf_hash(struct ledger *l, uint64_t index, uint8_t out[32])
{
    MDB_txn *txn = NULL;
    int own;
    uint64_t n;
    if (!out)
        return LEDGER_ERR_ARG;
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc ? rc : LEDGER_ERR_NOT_FOUND;
    rc = size_in(l, txn, &n);
    if (rc == 0)
        rc = index < n ? node_get(l, txn, 0, index, out) : LEDGER_ERR_NOT_FOUND;
    read_end(l, txn, own);
    return rc;
}

int ledger_inclusion_proof_txn(struct ledger *l, MDB_txn *txn, uint64_t index, uint64_t size,
                               uint8_t (*proof)[32], size_t *proof_len)
{
    int own;
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc ? rc : LEDGER_ERR_RANGE;
    rc = inclusion_in(l, txn, index, size, proof, proof_len);
    read_end(l, txn, own);
    return rc;
}

int ledger_inclusion_proof(struct ledger *l, uint64_t index, uint64_t size,
                           uint8_t (*proof)[32], size_t *proof_len)
{
    return ledger_inclusion_proof_txn(l, NULL, index, size, proof, proof_len);
}

int ledger_consistency_proof(struct ledger *l, uint64_t old_size, uint64_t new_size,
                             uint8_t (*proof)[32], size_t *proof_len)
{
    MDB_txn *txn = NULL;
    int own;
    if (!proof_len)
        return LEDGER_ERR_ARG;
    int rc = read_open(l, &txn, &own);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (old_size || new_size)
            return LEDGER_ERR_RANGE;
        *proof_len = 0;
        return 0;
    }
    rc = consistency_in(l, txn, old_size, new_size, proof, proof_len);
    read_end(l, txn, own);
    return rc;
}

/* --- appending ---------------------------------------------------------------------- */

/* Stores entry as leaf i (the current size) and the subtrees it completes. */
static int append_at(struct ledger *l, MDB_txn *txn, MDB_cursor *cur, uint64_t i,
                     const uint8_t *entry, size_t len)
{
    uint8_t kb[8];
    be64(i, kb);
    MDB_val k = { 8, kb }, v = { len, (void *)entry };
    int rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        /* keys are not exactly 0..n-1: a leaf was deleted behind our back */
        log_error("ledger: cannot append leaf %llu: stored leaf keys are not contiguous; "
                  "run `aulac ledger verify`", (unsigned long long)i);
        return LEDGER_ERR_CORRUPT;
    }
    if (rc)
        return lmdb_error(rc, "appending to ledger.entries");

    /* the new leaf completes one subtree per trailing 1 bit of its index */
    uint8_t h[32];
    merkle_leaf_hash(entry, len, h);
    if ((rc = node_put(l, txn, 0, i, h)))
        return rc;
    unsigned level = 0;
    for (uint64_t j = i; j & 1; j >>= 1) {
        uint8_t left[32];
        if ((rc = node_get(l, txn, level, j - 1, left)))
            return rc;
        merkle_node_hash(left, h, h);
        level++;
        if ((rc = node_put(l, txn, level, j >> 1, h)))
            return rc;
    }
    return 0;
}

int ledger_append_batch(struct ledger *l, MDB_txn *txn, const uint8_t *const *entries,
                        const size_t *lens, size_t n, uint64_t *first_index)
{
    if (!l || !txn || (n && (!entries || !lens)))
        return LEDGER_ERR_ARG;
    if (l->read_only)
        return LEDGER_ERR_READ_ONLY;
    for (size_t j = 0; j < n; j++) {
        if (!entries[j] || lens[j] == 0)
            return LEDGER_ERR_ARG;
        if (lens[j] > LEDGER_ENTRY_MAX)
            return LEDGER_ERR_TOO_LARGE;
    }
    uint64_t i;
    int rc = size_in(l, txn, &i);
    if (rc)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, l->entries, &cur)))
        return lmdb_error(rc, "opening a cursor on ledger.entries");
    for (size_t j = 0; j < n && rc == 0; j++)
        rc = append_at(l, txn, cur, i + j, entries[j], lens[j]);
    mdb_cursor_close(cur);
    if (rc == 0 && first_index)
        *first_index = i;
    return rc;
}

int ledger_append(struct ledger *l, MDB_txn *txn, const uint8_t *entry, size_t len,
                  uint64_t *index)
{
    if (!entry || len == 0)
        return LEDGER_ERR_ARG;
    return ledger_append_batch(l, txn, &entry, &len, 1, index);
}

/* --- checkpoints ------------------------------------------------------------------------ */

/* The stored checkpoint with the largest size: 0 with *size and *note (pointing
 * into the transaction), 1 when there is none, or an error. */
static int checkpoint_last_in(struct ledger *l, MDB_txn *txn, uint64_t *size, MDB_val *note)
{
    if (!l->have_checkpoints)
        return 1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, l->checkpoints, &cur);
    if (rc)
        return lmdb_error(rc, "opening a cursor on ledger.checkpoints");
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc)
        return lmdb_error(rc, "reading ledger.checkpoints");
    if (k.mv_size != 8) {
        log_error("ledger: a key of ledger.checkpoints is not 8 bytes");
        return LEDGER_ERR_CORRUPT;
    }
    *size = rd64(k.mv_data);
    if (note)
        *note = v;
    return 0;
}

/* After a checkpoint of size n was stored beside the previous latest, last: the
 * previous one stays only if it is the first stored at or past a multiple of the
 * checkpoint interval (so roughly one per interval, plus the latest, remain). */
static int thin_checkpoints(struct ledger *l, MDB_txn *txn, uint64_t last)
{
    const uint64_t k = l->checkpoint_interval;
    if (k <= 1)
        return 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, l->checkpoints, &cur);
    if (rc)
        return lmdb_error(rc, "opening a cursor on ledger.checkpoints");
    uint8_t kb[8];
    be64(last, kb);
    MDB_val key = { 8, kb }, v;
    rc = mdb_cursor_get(cur, &key, &v, MDB_SET_KEY);
    if (rc == 0) {
        MDB_val pk;
        int prc = mdb_cursor_get(cur, &pk, &v, MDB_PREV);
        int first_of_bucket = prc != 0 || pk.mv_size != 8 || rd64(pk.mv_data) / k < last / k;
        if (prc == 0)
            prc = mdb_cursor_get(cur, &pk, &v, MDB_NEXT);   /* back on last */
        if (!first_of_bucket && prc == 0)
            rc = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    return rc ? lmdb_error(rc, "thinning ledger.checkpoints") : 0;
}

/* Signs and stores a checkpoint of the transaction's tree size unless one of
 * that size (or larger) is stored already. */
static int publish_in(struct ledger *l, MDB_txn *txn)
{
    uint64_t n, last = 0;
    int rc = size_in(l, txn, &n);
    if (rc)
        return rc;
    rc = checkpoint_last_in(l, txn, &last, NULL);
    if (rc < 0)
        return rc;
    int had_last = rc == 0;
    if (n == 0 || (had_last && last >= n))
        return 0;
    struct checkpoint c = { .size = n };
    memcpy(c.origin, l->origin, sizeof c.origin);
    if ((rc = root_in(l, txn, n, c.root)))
        return rc;
    char note[CHECKPOINT_SIGNED_MAX];
    size_t len;
    if ((rc = checkpoint_sign(&c, l->signer, note, sizeof note, &len)) != 0) {
        log_error("ledger: cannot sign the checkpoint of size %llu", (unsigned long long)n);
        return rc;
    }
    uint8_t kb[8];
    be64(n, kb);
    MDB_val k = { 8, kb }, v = { len, note };
    rc = mdb_put(txn, l->checkpoints, &k, &v, MDB_APPEND);
    if (rc)
        return lmdb_error(rc, "writing ledger.checkpoints");
    return had_last ? thin_checkpoints(l, txn, last) : 0;
}

/* One line on entries [from, n) that no stored checkpoint covers. */
static void unsigned_entries_why(uint64_t from, uint64_t n, int have_checkpoint, char *why,
                                 size_t cap)
{
    char newest[64];
    if (have_checkpoint)
        snprintf(newest, sizeof newest, "the newest signed checkpoint is of size %llu",
                 (unsigned long long)from);
    else
        snprintf(newest, sizeof newest, "no signed checkpoint is stored");
    snprintf(why, cap, "entries %llu..%llu are covered by no signed checkpoint (%s); every "
             "commit stores the checkpoint of its entries, so these were written without the "
             "coordinator's key or their checkpoints were deleted", (unsigned long long)from,
             (unsigned long long)n - 1, newest);
}

int ledger_set_signer(struct ledger *l, const char *origin, const struct crypto_key *key)
{
    if (!l || !key || !checkpoint_name_valid(origin))
        return LEDGER_ERR_ARG;
    if (l->read_only)
        return LEDGER_ERR_READ_ONLY;
    MDB_txn *txn;
    int rc = read_begin(l, &txn);
    if (rc)
        return rc;
    /* Never sign over entries no checkpoint of ours covers, nor contradict one signed
     * before: the log must hold exactly what the last stored checkpoint covers. */
    uint64_t n, last = 0;
    MDB_val note;
    rc = size_in(l, txn, &n);
    int have = rc ? rc : checkpoint_last_in(l, txn, &last, &note);
    if (have < 0) {
        read_finish(l, txn, 0);
        return have;
    }
    char why[400] = "";
    if (have == 0) {
        struct checkpoint c;
        uint8_t root[32];
        rc = checkpoint_parse(note.mv_data, note.mv_size, &c, why, sizeof why);
        if (rc == 0 && (c.size != last || strcmp(c.origin, origin) != 0)) {
            snprintf(why, sizeof why, "it is stored as size %llu of log '%s'",
                     (unsigned long long)last, origin);
            rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
        }
        if (rc == 0 && last > n) {
            snprintf(why, sizeof why, "the log has only %llu entries: entries were removed",
                     (unsigned long long)n);
            rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
        }
        if (rc == 0 && (rc = root_in(l, txn, last, root)) == 0 && !crypto_equal(root, c.root, 32)) {
            snprintf(why, sizeof why, "the first %llu stored entries no longer hash to its root",
                     (unsigned long long)last);
            rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
        }
        if (rc) {
            read_finish(l, txn, 0);
            log_error("ledger: refusing to sign checkpoints: the last signed checkpoint (size "
                      "%llu) does not match the log: %s. Run `aulac ledger verify`",
                      (unsigned long long)last, why);
            return rc;
        }
    }
    read_finish(l, txn, 0);
    if (last < n) {
        unsigned_entries_why(last, n, have == 0, why, sizeof why);
        log_error("ledger: refusing to sign checkpoints over this log: %s. Run `aulac ledger "
                  "verify`, and restore the data directory from a copy whose every entry is "
                  "signed", why);
        return LEDGER_ERR_UNSIGNED_ENTRIES;
    }
    memcpy(l->origin, origin, strlen(origin) + 1);
    l->signer = key;
    return 0;
}

static int copy_note(const MDB_val *v, char **note, size_t *len)
{
    char *copy = malloc(v->mv_size + 1);
    if (!copy)
        return LEDGER_ERR_NOMEM;
    memcpy(copy, v->mv_data, v->mv_size);
    copy[v->mv_size] = '\0';
    *note = copy;
    if (len)
        *len = v->mv_size;
    return 0;
}

int ledger_checkpoint_get(struct ledger *l, uint64_t size, int at_least, char **note,
                          size_t *len, uint64_t *found_size)
{
    MDB_txn *txn = NULL;
    int own;
    if (!note)
        return LEDGER_ERR_ARG;
    *note = NULL;
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc ? rc : LEDGER_ERR_NOT_FOUND;
    MDB_val k, v;
    uint8_t kb[8];
    if (!l->have_checkpoints) {
        rc = LEDGER_ERR_NOT_FOUND;
    } else if (size == LEDGER_LATEST) {
        uint64_t last = 0;
        rc = checkpoint_last_in(l, txn, &last, &v);
        if (rc == 1)
            rc = LEDGER_ERR_NOT_FOUND;
        be64(last, kb);
        k.mv_size = 8;
        k.mv_data = kb;
    } else {
        MDB_cursor *cur;
        be64(size, kb);
        k.mv_size = 8;
        k.mv_data = kb;
        rc = mdb_cursor_open(txn, l->checkpoints, &cur);
        if (rc == 0) {
            rc = mdb_cursor_get(cur, &k, &v, at_least ? MDB_SET_RANGE : MDB_SET_KEY);
            mdb_cursor_close(cur);
        }
        if (rc == MDB_NOTFOUND)
            rc = LEDGER_ERR_NOT_FOUND;
        else if (rc > 0)
            rc = lmdb_error(rc, "reading ledger.checkpoints");
        else if (k.mv_size != 8)
            rc = LEDGER_ERR_CORRUPT;
    }
    if (rc == 0) {
        if (found_size)
            *found_size = rd64(k.mv_data);
        rc = copy_note(&v, note, len);
    }
    read_end(l, txn, own);
    return rc;
}

int ledger_checkpoint_each(struct ledger *l, uint64_t from_size, ledger_checkpoint_fn fn,
                           void *arg)
{
    MDB_txn *txn = NULL;
    int own;
    if (!fn)
        return LEDGER_ERR_ARG;
    int rc = read_open(l, &txn, &own);
    if (rc <= 0 || !l->have_checkpoints) {
        if (rc > 0)
            read_end(l, txn, own);
        return rc < 0 ? rc : 0;
    }
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, l->checkpoints, &cur))) {
        read_end(l, txn, own);
        return lmdb_error(rc, "opening a cursor on ledger.checkpoints");
    }
    uint8_t kb[8];
    be64(from_size, kb);
    MDB_val k = { 8, kb }, v;
    int op = MDB_SET_RANGE, stop = 0;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 8)
            stop = LEDGER_ERR_CORRUPT;
        else
            stop = fn(rd64(k.mv_data), v.mv_data, v.mv_size, arg);
        if (stop)
            break;
    }
    if (stop)
        rc = stop;
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    else
        rc = lmdb_error(rc, "reading ledger.checkpoints");
    mdb_cursor_close(cur);
    read_end(l, txn, own);
    return rc;
}

/* --- audit ----------------------------------------------------------------------------- */

/* Checkpoints met during the audit, in size order. */
struct ckpt_audit {
    MDB_cursor *cur;                     /* NULL: checkpoints are not checked */
    int have;                            /* cur is on the next checkpoint to check */
    uint64_t next;                       /* its size */
    MDB_val note;
    const struct checkpoint_key *key;    /* NULL: roots only, signatures unchecked */
    struct ledger_audit *out;
};

static int ckpt_advance(struct ckpt_audit *a, MDB_cursor_op op)
{
    MDB_val k;
    int rc = mdb_cursor_get(a->cur, &k, &a->note, op);
    a->have = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return lmdb_error(rc, "reading ledger.checkpoints");
    if (k.mv_size != 8)
        return LEDGER_ERR_CORRUPT;
    a->next = rd64(k.mv_data);
    a->have = 1;
    return 0;
}

/* Checks the checkpoint stored under size n against the recomputed root. */
static int ckpt_check(struct ckpt_audit *a, uint64_t n, const uint8_t root[32])
{
    struct ledger_audit *o = a->out;
    struct checkpoint c;
    char why[240];
    int rc = a->key ? checkpoint_verify(a->note.mv_data, a->note.mv_size, a->key, &c, why, sizeof why)
                    : checkpoint_parse(a->note.mv_data, a->note.mv_size, &c, why, sizeof why);
    if (rc == 0 && c.size != n) {
        snprintf(why, sizeof why, "it says size %llu but is stored as the checkpoint of size %llu",
                 (unsigned long long)c.size, (unsigned long long)n);
        rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
    }
    if (rc == 0 && !crypto_equal(c.root, root, 32)) {
        snprintf(why, sizeof why, "its root differs from the root of the stored entries: an "
                 "entry in %llu..%llu differs from what was signed",
                 (unsigned long long)o->last_good_checkpoint, (unsigned long long)n - 1);
        rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
    }
    if (rc) {
        o->bad_checkpoint = n;
        o->bad_index = o->last_good_checkpoint;
        snprintf(o->why, sizeof o->why, "checkpoint of size %llu: %s", (unsigned long long)n, why);
        return rc;
    }
    o->checkpoints++;
    o->last_good_checkpoint = n;
    return 0;
}

/* Stored subtree hashes read in index order, one cursor per level: the audit
 * asks for (level, 0), (level, 1), ... so each read is a step, not a search. */
struct level_reader {
    MDB_cursor *cur[64];
    uint64_t next[64];    /* the index the cursor of that level is just before */
};

static int level_get(struct ledger *l, MDB_txn *txn, struct level_reader *r, unsigned level,
                     uint64_t i, uint8_t out[32])
{
    MDB_val k, v;
    int rc = MDB_NOTFOUND;
    if (r->cur[level] && r->next[level] == i) {
        rc = mdb_cursor_get(r->cur[level], &k, &v, MDB_NEXT);
        if (rc == 0 && (k.mv_size != NODE_KEY_BYTES || ((uint8_t *)k.mv_data)[0] != level ||
                        rd64((uint8_t *)k.mv_data + 1) != i))
            rc = MDB_NOTFOUND;   /* a gap: look it up below */
    }
    if (rc != 0) {
        if (!r->cur[level] && (rc = mdb_cursor_open(txn, l->nodes, &r->cur[level])))
            return lmdb_error(rc, "opening a cursor on ledger.nodes");
        uint8_t kb[NODE_KEY_BYTES];
        node_key(level, i, kb);
        k.mv_size = NODE_KEY_BYTES;
        k.mv_data = kb;
        rc = mdb_cursor_get(r->cur[level], &k, &v, MDB_SET_KEY);
        if (rc == MDB_NOTFOUND) {
            r->next[level] = UINT64_MAX;
            log_error("ledger: stored hash of subtree (level %u, %llu) is missing", level,
                      (unsigned long long)i);
            return LEDGER_ERR_CORRUPT;
        }
        if (rc)
            return lmdb_error(rc, "reading ledger.nodes");
    }
    r->next[level] = i + 1;
    if (v.mv_size != 32) {
        log_error("ledger: stored hash of subtree (level %u, %llu) is not 32 bytes", level,
                  (unsigned long long)i);
        return LEDGER_ERR_CORRUPT;
    }
    memcpy(out, v.mv_data, 32);
    return 0;
}

static void level_reader_close(struct level_reader *r)
{
    for (int i = 0; i < 64; i++)
        if (r->cur[i])
            mdb_cursor_close(r->cur[i]);
}

static void fold(uint8_t (*stack)[32], int depth, uint8_t root[32])
{
    if (depth == 0) {
        crypto_hash_sha256(root, NULL, 0);
        return;
    }
    memcpy(root, stack[depth - 1], 32);
    for (int d = depth - 2; d >= 0; d--)
        merkle_node_hash(stack[d], root, root);
}

static int verify_in(struct ledger *l, MDB_txn *txn, uint64_t *bad_index,
                     ledger_progress_fn progress, void *arg,
                     uint64_t *size_out, uint8_t root_out[32], struct ckpt_audit *ca)
{
    uint64_t n;
    int rc = size_in(l, txn, &n);
    if (rc)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, l->entries, &cur)))
        return lmdb_error(rc, "opening a cursor on ledger.entries");
    struct level_reader lr;
    memset(&lr, 0, sizeof lr);

    uint8_t stack[64][32];
    int depth = 0;
    uint64_t i = 0;
    MDB_val k, v;
    int op = MDB_FIRST;
    char why[200] = "";
    if (ca && ca->have && ca->next == 0) {
        uint8_t empty[32];
        fold(stack, 0, empty);
        if ((rc = ckpt_check(ca, 0, empty)) || (rc = ckpt_advance(ca, MDB_NEXT)))
            goto done;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 8 || rd64(k.mv_data) != i) {
            snprintf(why, sizeof why, "leaf %llu is missing", (unsigned long long)i);
            rc = LEDGER_ERR_CORRUPT;
            break;
        }
        uint8_t h[32], stored[32];
        merkle_leaf_hash(v.mv_data, v.mv_size, h);
        rc = level_get(l, txn, &lr, 0, i, stored);
        if (rc == 0 && sodium_memcmp(h, stored, 32) != 0) {
            snprintf(why, sizeof why, "entry %llu does not match its stored leaf hash "
                     "(the entry bytes or the hash were edited)", (unsigned long long)i);
            rc = LEDGER_ERR_CORRUPT;
        }
        if (rc)
            break;
        unsigned level = 0;
        for (uint64_t j = i; j & 1; j >>= 1) {
            merkle_node_hash(stack[--depth], h, h);
            level++;
            rc = level_get(l, txn, &lr, level, j >> 1, stored);
            if (rc == 0 && sodium_memcmp(h, stored, 32) != 0) {
                snprintf(why, sizeof why, "stored hash of subtree (level %u, %llu) ending at "
                         "leaf %llu is wrong", level, (unsigned long long)(j >> 1),
                         (unsigned long long)i);
                rc = LEDGER_ERR_CORRUPT;
            }
            if (rc)
                break;
        }
        if (rc)
            break;
        memcpy(stack[depth++], h, 32);
        i++;
        if (ca && ca->have && ca->next == i) {
            uint8_t root[32];
            fold(stack, depth, root);
            if ((rc = ckpt_check(ca, i, root)) || (rc = ckpt_advance(ca, MDB_NEXT)))
                break;
        }
        if (progress && (i & 4095) == 0)
            progress(i, n, arg);
    }
    if (rc == MDB_NOTFOUND) {
        rc = i == n ? 0 : LEDGER_ERR_CORRUPT;
        /* a leaf hash past the last entry: the last entries were removed */
        uint8_t extra[32];
        if (rc == 0 && node_get_quiet(l, txn, 0, n, extra) == 0) {
            snprintf(why, sizeof why, "leaf %llu has a stored hash but no entry (entries were "
                     "removed from the end)", (unsigned long long)n);
            rc = LEDGER_ERR_CORRUPT;
        }
        if (rc == 0 && ca && ca->have && ca->next > n) {
            snprintf(ca->out->why, sizeof ca->out->why, "a checkpoint was signed at size %llu "
                     "but the log has only %llu entries: entries from %llu on were removed",
                     (unsigned long long)ca->next, (unsigned long long)n, (unsigned long long)n);
            ca->out->bad_checkpoint = ca->next;
            ca->out->bad_index = n;
            rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
        }
    } else if (rc > 0)
        rc = lmdb_error(rc, "reading ledger.entries");
done:
    level_reader_close(&lr);
    mdb_cursor_close(cur);
    if (rc == LEDGER_ERR_CORRUPT && !why[0])
        snprintf(why, sizeof why, "a stored hash of a subtree ending at leaf %llu is missing "
                 "or malformed", (unsigned long long)i);
    if (rc == LEDGER_ERR_CORRUPT && why[0]) {
        if (ca)
            snprintf(ca->out->why, sizeof ca->out->why, "%s", why);
        else
            log_error("ledger verify: %s", why);
    }
    if (rc) {
        if (bad_index && rc == LEDGER_ERR_CORRUPT)
            *bad_index = i;
        return rc;
    }
    if (progress)
        progress(n, n, arg);
    uint8_t root[32];
    fold(stack, depth, root);
    if (size_out)
        *size_out = n;
    if (root_out)
        memcpy(root_out, root, 32);
    return 0;
}

int ledger_verify_all(struct ledger *l, uint64_t *bad_index,
                      ledger_progress_fn progress, void *arg,
                      uint64_t *size_out, uint8_t root_out[32])
{
    MDB_txn *txn = NULL;
    int own;
    if (size_out)
        *size_out = 0;
    if (root_out)
        crypto_hash_sha256(root_out, NULL, 0);
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc;
    rc = verify_in(l, txn, bad_index, progress, arg, size_out, root_out, NULL);
    read_end(l, txn, own);
    return rc;
}

int ledger_audit(struct ledger *l, const struct checkpoint_key *key,
                 ledger_progress_fn progress, void *arg, struct ledger_audit *out)
{
    MDB_txn *txn = NULL;
    int own;
    if (!out)
        return LEDGER_ERR_ARG;
    memset(out, 0, sizeof *out);
    crypto_hash_sha256(out->root, NULL, 0);
    int rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc;
    struct ckpt_audit ca = { .key = key, .out = out };
    if (l->have_checkpoints) {
        if ((rc = mdb_cursor_open(txn, l->checkpoints, &ca.cur))) {
            read_end(l, txn, own);
            return lmdb_error(rc, "opening a cursor on ledger.checkpoints");
        }
        rc = ckpt_advance(&ca, MDB_FIRST);
    }
    if (rc == 0)
        rc = verify_in(l, txn, &out->bad_index, progress, arg, &out->size, out->root, &ca);
    if (rc == 0 && out->last_good_checkpoint < out->size) {
        unsigned_entries_why(out->last_good_checkpoint, out->size, out->checkpoints > 0,
                             out->why, sizeof out->why);
        out->bad_index = out->last_good_checkpoint;
        rc = LEDGER_ERR_UNSIGNED_ENTRIES;
    }
    if (rc && !out->why[0])
        snprintf(out->why, sizeof out->why, "%s", ledger_strerror(rc));
    if (ca.cur)
        mdb_cursor_close(ca.cur);
    read_end(l, txn, own);
    return rc;
}

/* --- secondary indexes ----------------------------------------------------------------- */

static int index_key(const char *name, const void *key, size_t key_len, uint8_t *out, size_t *len)
{
    if (!name || (!key && key_len))
        return LEDGER_ERR_ARG;
    size_t n = strnlen(name, 65);
    if (n == 0 || n > 64)
        return LEDGER_ERR_ARG;
    if (n + 1 + key_len > LEDGER_INDEX_KEY_MAX)
        return LEDGER_ERR_TOO_LARGE;
    memcpy(out, name, n + 1);   /* with its NUL: "ab"+"c" and "a"+"bc" differ */
    if (key_len)
        memcpy(out + n + 1, key, key_len);
    *len = n + 1 + key_len;
    return 0;
}

int ledger_index_put(struct ledger *l, MDB_txn *txn, const char *name,
                     const void *key, size_t key_len, uint64_t value)
{
    if (!l || !txn)
        return LEDGER_ERR_ARG;
    if (l->read_only)
        return LEDGER_ERR_READ_ONLY;
    uint8_t kb[LEDGER_INDEX_KEY_MAX], vb[8];
    size_t klen;
    int rc = index_key(name, key, key_len, kb, &klen);
    if (rc)
        return rc;
    be64(value, vb);
    MDB_val k = { klen, kb }, v = { 8, vb };
    rc = mdb_put(txn, l->index, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return LEDGER_ERR_EXISTS;
    return rc ? lmdb_error(rc, "writing ledger.index") : 0;
}

static int index_get_in(struct ledger *l, MDB_txn *txn, const uint8_t *kb, size_t klen, uint64_t *value)
{
    MDB_val k = { klen, (void *)kb }, v;
    int rc = mdb_get(txn, l->index, &k, &v);
    if (rc == MDB_NOTFOUND)
        return LEDGER_ERR_NOT_FOUND;
    if (rc)
        return lmdb_error(rc, "reading ledger.index");
    if (v.mv_size != 8)
        return LEDGER_ERR_CORRUPT;
    *value = rd64(v.mv_data);
    return 0;
}

int ledger_index_get(struct ledger *l, MDB_txn *txn, const char *name,
                     const void *key, size_t key_len, uint64_t *value)
{
    uint8_t kb[LEDGER_INDEX_KEY_MAX];
    size_t klen;
    if (!value)
        return LEDGER_ERR_ARG;
    int own;
    int rc = index_key(name, key, key_len, kb, &klen);
    if (rc)
        return rc;
    rc = read_open(l, &txn, &own);
    if (rc <= 0)
        return rc ? rc : LEDGER_ERR_NOT_FOUND;
    rc = index_get_in(l, txn, kb, klen, value);
    read_end(l, txn, own);
    return rc;
}

int ledger_update_key(const char *experiment, uint64_t round, const char *member,
                      uint8_t out[LEDGER_UPDATE_KEY_MAX])
{
    if (!crypto_id_valid(experiment) || !crypto_id_valid(member) || !out)
        return LEDGER_ERR_ENTRY_ID;
    size_t e = strlen(experiment), m = strlen(member), p = 0;
    out[p++] = (uint8_t)e;
    memcpy(out + p, experiment, e);
    p += e;
    be64(round, out + p);
    p += 8;
    out[p++] = (uint8_t)m;
    memcpy(out + p, member, m);
    p += m;
    return (int)p;
}
