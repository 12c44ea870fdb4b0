#include "ledger/ledger.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/log.h"
#include "crypto/digest.h"
#include "ledger/merkle_src.h"

#define FORMAT_VERSION 1u
#define NODE_KEY_BYTES 9

struct ledger {
    MDB_env *env;
    int read_only;
    pthread_mutex_t dbi_lock;   /* guards the lazy open below (read-only mode) */
    int have_dbis;              /* 0 while a read-only opener finds no ledger yet */
    MDB_dbi entries, nodes, index, meta;
};

static int lmdb_error(int rc, const char *what)
{
    if (rc == MDB_MAP_FULL) {
        log_error("ledger: %s: LMDB map full; restart with a larger map size", what);
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

static int read_begin(struct ledger *l, MDB_txn **txn)
{
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* the writer grew the map: adopt its size and retry */
        mdb_env_set_mapsize(l->env, 0);
        rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);
    }
    return rc ? lmdb_error(rc, "beginning a read transaction") : 0;
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
                rc = mdb_txn_commit(txn);   /* publishes the DBI handles */
                result = rc ? lmdb_error(rc, "opening ledger databases") : 1;
            } else {
                mdb_txn_abort(txn);
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
    if (o.max_dbs < 4)
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
    pthread_mutex_init(&l->dbi_lock, NULL);
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
    free(l);
    return rc;
}

void ledger_close(struct ledger *l)
{
    if (!l)
        return;
    mdb_env_close(l->env);
    pthread_mutex_destroy(&l->dbi_lock);
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
    int rc = mdb_txn_begin(l->env, NULL, 0, txn);
    return rc ? lmdb_error(rc, "beginning a write transaction") : 0;
}

int ledger_txn_commit(struct ledger *l, MDB_txn *txn)
{
    if (!l || !txn)
        return LEDGER_ERR_ARG;
    int rc = mdb_txn_commit(txn);
    return rc ? lmdb_error(rc, "committing") : 0;
}

void ledger_txn_abort(struct ledger *l, MDB_txn *txn)
{
    if (txn)
        mdb_txn_abort(txn);
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

static void read_end(MDB_txn *txn, int own)
{
    if (own)
        mdb_txn_abort(txn);
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
    read_end(txn, own);
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
    read_end(txn, own);
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
    read_end(txn, own);
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
    read_end(txn, own);
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
    read_end(txn, own);
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
    read_end(txn, own);
    return rc;
}

/* --- appending ---------------------------------------------------------------------- */

int ledger_append(struct ledger *l, MDB_txn *txn, const uint8_t *entry, size_t len,
                  uint64_t *index)
{
    if (!l || !txn || !entry || len == 0)
        return LEDGER_ERR_ARG;
    if (l->read_only)
        return LEDGER_ERR_READ_ONLY;
    if (len > LEDGER_ENTRY_MAX)
        return LEDGER_ERR_TOO_LARGE;
    uint64_t i;
    int rc = size_in(l, txn, &i);
    if (rc)
        return rc;

    uint8_t kb[8];
    be64(i, kb);
    MDB_val k = { 8, kb }, v = { len, (void *)entry };
    rc = mdb_put(txn, l->entries, &k, &v, MDB_APPEND);
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
    if (index)
        *index = i;
    return 0;
}

/* --- audit ----------------------------------------------------------------------------- */

static int verify_in(struct ledger *l, MDB_txn *txn, uint64_t *bad_index,
                     ledger_progress_fn progress, void *arg,
                     uint64_t *size_out, uint8_t root_out[32])
{
    uint64_t n;
    int rc = size_in(l, txn, &n);
    if (rc)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, l->entries, &cur)))
        return lmdb_error(rc, "opening a cursor on ledger.entries");

    uint8_t stack[64][32];
    int depth = 0;
    uint64_t i = 0;
    MDB_val k, v;
    int op = MDB_FIRST;
    rc = 0;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 8 || rd64(k.mv_data) != i) {
            log_error("ledger verify: leaf %llu is missing", (unsigned long long)i);
            rc = LEDGER_ERR_CORRUPT;
            break;
        }
        uint8_t h[32], stored[32];
        merkle_leaf_hash(v.mv_data, v.mv_size, h);
        rc = node_get(l, txn, 0, i, stored);
        if (rc == 0 && sodium_memcmp(h, stored, 32) != 0) {
            log_error("ledger verify: entry %llu does not match its stored leaf hash "
                      "(the entry bytes or the hash were edited)", (unsigned long long)i);
            rc = LEDGER_ERR_CORRUPT;
        }
        if (rc)
            break;
        unsigned level = 0;
        for (uint64_t j = i; j & 1; j >>= 1) {
            merkle_node_hash(stack[--depth], h, h);
            level++;
            rc = node_get(l, txn, level, j >> 1, stored);
            if (rc == 0 && sodium_memcmp(h, stored, 32) != 0) {
                log_error("ledger verify: stored hash of subtree (level %u, %llu) ending at "
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
        if (progress && (i & 4095) == 0)
            progress(i, n, arg);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        rc = i == n ? 0 : LEDGER_ERR_CORRUPT;
        /* a leaf hash past the last entry: the last entries were removed */
        uint8_t extra[32];
        if (rc == 0 && node_get_quiet(l, txn, 0, n, extra) == 0) {
            log_error("ledger verify: leaf %llu has a stored hash but no entry (entries were "
                      "removed from the end)", (unsigned long long)n);
            rc = LEDGER_ERR_CORRUPT;
        }
    } else if (rc > 0)
        rc = lmdb_error(rc, "reading ledger.entries");
    if (rc) {
        if (bad_index)
            *bad_index = i;
        return rc;
    }
    if (progress)
        progress(n, n, arg);
    uint8_t root[32];
    if (depth == 0) {
        crypto_hash_sha256(root, NULL, 0);
    } else {
        memcpy(root, stack[--depth], 32);
        while (depth > 0)
            merkle_node_hash(stack[--depth], root, root);
    }
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
    rc = verify_in(l, txn, bad_index, progress, arg, size_out, root_out);
    read_end(txn, own);
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
    read_end(txn, own);
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
