/* ledger/ledger: the LMDB log. Roots and proofs from storage against the
 * in-memory merkle code, reopen, shared transactions, a second read-only
 * process, secondary indexes, tampering found by ledger_verify_all, and kill -9
 * in the middle of appends. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ledger/ledger.h"
#include "ledger/merkle.h"

#define MAXE 300

struct fixture {
    char dir[256];
    struct ledger *l;
    uint8_t leaf[MAXE][32];   /* leaf hashes of what the test appended */
    uint64_t n;
};

static void rm_rf(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/aulac-ledger-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    if (ledger_open(f->dir, NULL, &f->l) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->l);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static size_t entry_bytes(uint64_t i, uint8_t *buf)
{
    /* varying lengths, never empty */
    int n = snprintf((char *)buf, 128, "entry %llu %.*s", (unsigned long long)i,
                     (int)(i % 23), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    return (size_t)n;
}

/* Appends count entries, per_txn in each transaction. */
static void append_n(struct fixture *f, uint64_t count, uint64_t per_txn)
{
    uint64_t done = 0;
    while (done < count) {
        MDB_txn *txn;
        assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
        for (uint64_t j = 0; j < per_txn && done < count; j++, done++) {
            uint8_t buf[128];
            size_t len = entry_bytes(f->n, buf);
            uint64_t idx;
            assert_int_equal(ledger_append(f->l, txn, buf, len, &idx), 0);
            assert_int_equal(idx, f->n);
            merkle_leaf_hash(buf, len, f->leaf[f->n]);
            f->n++;
        }
        assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    }
}

#define LEAVES(f) ((const uint8_t (*)[32])(f)->leaf)

static void empty_ledger(void **state)
{
    struct fixture *f = *state;
    uint64_t n = 99;
    uint8_t r[32], want[32];
    assert_int_equal(ledger_size(f->l, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ledger_root(f->l, 0, r), 0);
    assert_int_equal(merkle_root(NULL, 0, want), 0);
    assert_memory_equal(r, want, 32);
    assert_int_equal(ledger_root(f->l, 1, r), LEDGER_ERR_RANGE);
    uint8_t *b;
    size_t len;
    assert_int_equal(ledger_get(f->l, 0, &b, &len), LEDGER_ERR_NOT_FOUND);
    uint64_t bad = 7;
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, &n, r), 0);
    assert_int_equal(n, 0);
    assert_memory_equal(r, want, 32);
}

static void append_reopen_roots_match_merkle_root(void **state)
{
    struct fixture *f = *state;
    append_n(f, 1, 1);
    append_n(f, 36, 5);
    append_n(f, 100, 100);
    ledger_close(f->l);
    f->l = NULL;
    assert_int_equal(ledger_open(f->dir, NULL, &f->l), 0);

    uint64_t n;
    assert_int_equal(ledger_size(f->l, &n), 0);
    assert_int_equal(n, f->n);
    for (uint64_t s = 0; s <= f->n; s++) {
        uint8_t got[32], want[32];
        assert_int_equal(ledger_root(f->l, s, got), 0);
        assert_int_equal(merkle_root(LEAVES(f), s, want), 0);
        assert_memory_equal(got, want, 32);
    }
    for (uint64_t i = 0; i < f->n; i++) {
        uint8_t *b, want[128], h[32];
        size_t len, wlen = entry_bytes(i, want);
        assert_int_equal(ledger_get(f->l, i, &b, &len), 0);
        assert_int_equal(len, wlen);
        assert_memory_equal(b, want, len);
        free(b);
        assert_int_equal(ledger_leaf_hash(f->l, i, h), 0);
        assert_memory_equal(h, f->leaf[i], 32);
    }
    uint64_t bad = 0;
    uint8_t root[32], want[32];
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, &n, root), 0);
    assert_int_equal(n, f->n);
    assert_int_equal(merkle_root(LEAVES(f), f->n, want), 0);
    assert_memory_equal(root, want, 32);
}

static void proofs_from_storage_verify(void **state)
{
    struct fixture *f = *state;
    append_n(f, 45, 7);
    uint8_t roots[46][32];
    for (uint64_t s = 0; s <= f->n; s++)
        assert_int_equal(ledger_root(f->l, s, roots[s]), 0);
    for (uint64_t s = 1; s <= f->n; s++) {
        for (uint64_t i = 0; i < s; i++) {
            uint8_t p[MERKLE_PROOF_MAX][32], q[MERKLE_PROOF_MAX][32];
            size_t len = MERKLE_PROOF_MAX, qlen = MERKLE_PROOF_MAX;
            assert_int_equal(ledger_inclusion_proof(f->l, i, s, p, &len), 0);
            assert_int_equal(merkle_inclusion_proof(LEAVES(f), s, i, q, &qlen), 0);
            assert_int_equal(len, qlen);
            if (len)
                assert_memory_equal(p, q, len * 32);
            assert_int_equal(merkle_verify_inclusion(i, s, f->leaf[i], (const uint8_t (*)[32])p,
                                                     len, roots[s]), 0);
        }
        for (uint64_t o = 0; o <= s; o++) {
            uint8_t p[MERKLE_PROOF_MAX][32], q[MERKLE_PROOF_MAX][32];
            size_t len = MERKLE_PROOF_MAX, qlen = MERKLE_PROOF_MAX;
            assert_int_equal(ledger_consistency_proof(f->l, o, s, p, &len), 0);
            assert_int_equal(merkle_consistency_proof(LEAVES(f), s, o, q, &qlen), 0);
            assert_int_equal(len, qlen);
            if (len)
                assert_memory_equal(p, q, len * 32);
            assert_int_equal(merkle_verify_consistency(o, s, roots[o], roots[s],
                                                       (const uint8_t (*)[32])p, len), 0);
        }
    }
    uint8_t p[MERKLE_PROOF_MAX][32];
    size_t len = MERKLE_PROOF_MAX;
    assert_int_equal(ledger_inclusion_proof(f->l, 45, 45, p, &len), LEDGER_ERR_RANGE);
    assert_int_equal(ledger_inclusion_proof(f->l, 0, 46, p, &len), LEDGER_ERR_RANGE);
    assert_int_equal(ledger_consistency_proof(f->l, 10, 46, p, &len), LEDGER_ERR_RANGE);
    assert_int_equal(ledger_consistency_proof(f->l, 11, 10, p, &len), LEDGER_ERR_RANGE);
}

static void abort_leaves_nothing_and_state_commits_with_entry(void **state)
{
    struct fixture *f = *state;
    append_n(f, 3, 3);
    uint8_t before[32], after[32];
    assert_int_equal(ledger_root(f->l, 3, before), 0);

    /* a caller's own database in the same environment, same transaction */
    MDB_txn *txn;
    MDB_dbi mine;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "coordinator.state", MDB_CREATE, &mine), 0);
    MDB_val k = { 5, "round" }, v = { 1, "7" };
    assert_int_equal(mdb_put(txn, mine, &k, &v, 0), 0);
    assert_int_equal(ledger_append(f->l, txn, (const uint8_t *)"round 7 opened", 14, NULL), 0);
    uint64_t n;
    uint8_t inside[32];
    assert_int_equal(ledger_size_txn(f->l, txn, &n), 0);
    assert_int_equal(n, 4);   /* the open transaction sees its own append */
    assert_int_equal(ledger_root_txn(f->l, txn, 4, inside), 0);
    ledger_txn_abort(f->l, txn);

    assert_int_equal(ledger_size(f->l, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ledger_root(f->l, 3, after), 0);
    assert_memory_equal(before, after, 32);

    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "coordinator.state", MDB_CREATE, &mine), 0);
    assert_int_equal(mdb_put(txn, mine, &k, &v, 0), 0);
    assert_int_equal(ledger_append(f->l, txn, (const uint8_t *)"round 7 opened", 14, NULL), 0);
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    assert_int_equal(ledger_root(f->l, 4, after), 0);
    assert_memory_equal(inside, after, 32);

    MDB_txn *r;
    assert_int_equal(mdb_txn_begin(ledger_env(f->l), NULL, MDB_RDONLY, &r), 0);
    assert_int_equal(mdb_get(r, mine, &k, &v), 0);
    assert_int_equal(v.mv_size, 1);
    mdb_txn_abort(r);

    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(ledger_append(f->l, txn, (const uint8_t *)"", 0, NULL), LEDGER_ERR_ARG);
    ledger_txn_abort(f->l, txn);
}

/* A second process opens the directory read-only while this one holds it open
 * for writing, as the CLI does beside a running coordinator. */
static void second_process_reads_read_only(void **state)
{
    struct fixture *f = *state;
    append_n(f, 20, 20);
    uint8_t want[32];
    assert_int_equal(merkle_root(LEAVES(f), 20, want), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child must not touch the parent's LMDB handle */
        close(fds[0]);
        struct ledger_options o = { .read_only = 1 };
        struct ledger *ro;
        uint8_t res[1 + 8 + 32 + 1] = { 0 };
        if (ledger_open(f->dir, &o, &ro) == 0) {
            uint64_t n = 0, bad = 0;
            MDB_txn *t;
            res[0] = 1;
            if (ledger_size(ro, &n) == 0)
                memcpy(res + 1, &n, 8);
            if (ledger_root(ro, n, res + 9) != 0)
                res[0] = 2;
            if (ledger_verify_all(ro, &bad, NULL, NULL, NULL, NULL) != 0)
                res[0] = 3;
            res[41] = ledger_txn_begin(ro, &t) == LEDGER_ERR_READ_ONLY;
            ledger_close(ro);
        }
        if (write(fds[1], res, sizeof res) != (ssize_t)sizeof res)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    uint8_t res[42];
    assert_int_equal(read(fds[0], res, sizeof res), (ssize_t)sizeof res);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(res[0], 1);
    uint64_t n;
    memcpy(&n, res + 1, 8);
    assert_int_equal(n, 20);
    assert_memory_equal(res + 9, want, 32);
    assert_int_equal(res[41], 1);
}

static void read_only_open_of_missing_dir_fails(void **state)
{
    struct fixture *f = *state;
    char path[300];
    snprintf(path, sizeof path, "%s/nope", f->dir);
    struct ledger_options o = { .read_only = 1 };
    struct ledger *ro = NULL;
    assert_int_equal(ledger_open(path, &o, &ro), LEDGER_ERR_IO);
    assert_null(ro);
}

static void secondary_index(void **state)
{
    struct fixture *f = *state;
    uint8_t key[LEDGER_UPDATE_KEY_MAX], key2[LEDGER_UPDATE_KEY_MAX];
    int klen = ledger_update_key("gpt2-vi", 3, "fpt", key);
    int klen2 = ledger_update_key("gpt2-vi", 3, "vnpt", key2);
    assert_true(klen > 0 && klen2 > 0);
    assert_int_equal(klen, 1 + 7 + 8 + 1 + 3);
    assert_memory_equal(key, key2, 1 + 7 + 8);   /* same (experiment, round) prefix */
    assert_int_equal(ledger_update_key("Bad", 3, "fpt", key), LEDGER_ERR_ENTRY_ID);

    MDB_txn *txn;
    uint64_t idx, v;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(ledger_append(f->l, txn, (const uint8_t *)"accepted", 8, &idx), 0);
    assert_int_equal(ledger_index_put(f->l, txn, "update", key, (size_t)klen, idx), 0);
    assert_int_equal(ledger_index_put(f->l, txn, "update", key, (size_t)klen, 99), LEDGER_ERR_EXISTS);
    assert_int_equal(ledger_index_get(f->l, txn, "update", key, (size_t)klen, &v), 0);
    assert_int_equal(v, idx);
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);

    assert_int_equal(ledger_index_get(f->l, NULL, "update", key, (size_t)klen, &v), 0);
    assert_int_equal(v, idx);
    assert_int_equal(ledger_index_get(f->l, NULL, "update", key2, (size_t)klen2, &v), LEDGER_ERR_NOT_FOUND);
    assert_int_equal(ledger_index_get(f->l, NULL, "other", key, (size_t)klen, &v), LEDGER_ERR_NOT_FOUND);
    assert_int_equal(ledger_index_get(f->l, NULL, "", key, (size_t)klen, &v), LEDGER_ERR_ARG);
    uint8_t big[LEDGER_INDEX_KEY_MAX] = { 0 };
    assert_int_equal(ledger_index_get(f->l, NULL, "update", big, sizeof big, &v), LEDGER_ERR_TOO_LARGE);
}

/* --- tampering ------------------------------------------------------------------- */

/* Opens the environment behind the ledger's back and runs edit on one DB. */
static void raw_edit(const char *dir, const char *db, void (*edit)(MDB_txn *, MDB_dbi, void *), void *arg)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, LEDGER_DEFAULT_MAP_SIZE), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    edit(txn, dbi, arg);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void be64(uint64_t v, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static void flip_entry_byte(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    uint8_t kb[8], copy[256];
    be64(*(uint64_t *)arg, kb);
    MDB_val k = { 8, kb }, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size / 2] ^= 0x01;
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void delete_entry(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    uint8_t kb[8];
    be64(*(uint64_t *)arg, kb);
    MDB_val k = { 8, kb };
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
}

static void flip_node_byte(MDB_txn *txn, MDB_dbi dbi, void *arg)
{
    const uint8_t *kb = arg;   /* level ‖ be64 index */
    uint8_t copy[32];
    MDB_val k = { 9, (void *)kb }, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    memcpy(copy, v.mv_data, 32);
    copy[0] ^= 0x80;
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void reopen_around(struct fixture *f, void (*edit)(MDB_txn *, MDB_dbi, void *),
                          const char *db, void *arg)
{
    ledger_close(f->l);
    f->l = NULL;
    raw_edit(f->dir, db, edit, arg);
    assert_int_equal(ledger_open(f->dir, NULL, &f->l), 0);
}

static void tampered_entry_is_named(void **state)
{
    struct fixture *f = *state;
    append_n(f, 40, 40);
    uint64_t target = 17, bad = 0;
    reopen_around(f, flip_entry_byte, "ledger.entries", &target);
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), LEDGER_ERR_CORRUPT);
    assert_int_equal(bad, 17);
}

static void tampered_subtree_hash_is_named(void **state)
{
    struct fixture *f = *state;
    append_n(f, 40, 40);
    uint8_t key[9] = { 2 };          /* level 2, subtree 3: leaves 12..15 */
    be64(3, key + 1);
    uint64_t bad = 0;
    reopen_around(f, flip_node_byte, "ledger.nodes", key);
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), LEDGER_ERR_CORRUPT);
    assert_int_equal(bad, 15);
}

static void deleted_entry_is_named(void **state)
{
    struct fixture *f = *state;
    append_n(f, 40, 40);
    uint64_t target = 9, bad = 0;
    reopen_around(f, delete_entry, "ledger.entries", &target);
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), LEDGER_ERR_CORRUPT);
    assert_int_equal(bad, 9);
    /* and the log refuses to grow over the hole */
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_int_equal(ledger_append(f->l, txn, (const uint8_t *)"x", 1, NULL), LEDGER_ERR_CORRUPT);
    ledger_txn_abort(f->l, txn);
}

/* The last entry removed: its stored leaf hash remains and gives it away. */
static void truncated_tail_is_named(void **state)
{
    struct fixture *f = *state;
    append_n(f, 40, 40);
    uint64_t target = 39, bad = 0;
    reopen_around(f, delete_entry, "ledger.entries", &target);
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), LEDGER_ERR_CORRUPT);
    assert_int_equal(bad, 39);
}

static void progress_cb(uint64_t done, uint64_t total, void *arg)
{
    uint64_t *calls = arg;
    calls[0]++;
    calls[1] = done;
    calls[2] = total;
}

static void many_appends_and_progress(void **state)
{
    struct fixture *f = *state;
    MDB_txn *txn;
    uint8_t (*leaves)[32] = malloc(10000 * 32);
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    for (uint64_t i = 0; i < 10000; i++) {
        uint8_t buf[64];
        int n = snprintf((char *)buf, sizeof buf, "bulk %llu", (unsigned long long)i);
        assert_int_equal(ledger_append(f->l, txn, buf, (size_t)n, NULL), 0);
        merkle_leaf_hash(buf, (size_t)n, leaves[i]);
    }
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    uint64_t calls[3] = { 0 }, bad, n;
    uint8_t root[32], want[32], got[32];
    assert_int_equal(ledger_verify_all(f->l, &bad, progress_cb, calls, &n, root), 0);
    assert_int_equal(calls[0], 10000 / 4096 + 1);
    assert_int_equal(calls[1], 10000);
    assert_int_equal(calls[2], 10000);
    assert_int_equal(merkle_root((const uint8_t (*)[32])leaves, 10000, want), 0);
    assert_memory_equal(root, want, 32);
    assert_int_equal(ledger_root(f->l, 10000, got), 0);
    assert_memory_equal(got, want, 32);
    assert_int_equal(merkle_root((const uint8_t (*)[32])leaves, 6789, want), 0);
    assert_int_equal(ledger_root(f->l, 6789, got), 0);
    assert_memory_equal(got, want, 32);
    free(leaves);
}

static uint64_t map_size_of(struct ledger *l)
{
    MDB_envinfo info;
    assert_int_equal(mdb_env_info(ledger_env(l), &info), 0);
    return info.me_mapsize;
}

/* A ledger opened with a tiny map keeps taking appends past it: the map grows before a
 * write transaction; a transaction that alone overflows the map fails with
 * LEDGER_ERR_MAP_FULL and the same appends succeed in the next one. */
static void map_grows_as_needed(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->l);
    rm_rf(f->dir);
    struct ledger_options o = { .map_size = 256 * 1024 };
    assert_int_equal(ledger_open(f->dir, &o, &f->l), 0);
    append_n(f, 10, 10);
    static uint8_t big[16 * 1024];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 100; i++) {   /* 1.6 MB in 100 transactions: 6x the first map */
        MDB_txn *txn;
        assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
        assert_int_equal(ledger_append(f->l, txn, big, sizeof big, NULL), 0);
        assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    }
    assert_true(map_size_of(f->l) > 1600 * 1024);
    uint64_t n, bad;
    assert_int_equal(ledger_size(f->l, &n), 0);
    assert_int_equal(n, 110);
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), 0);

    /* Reopened with a map smaller than its data (LMDB takes the data's size), one
     * transaction of 200 appends overflows it: refused whole, then taken by the next. */
    ledger_close(f->l);
    assert_int_equal(ledger_open(f->dir, &o, &f->l), 0);
    MDB_txn *txn;
    int rc = 0, i;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    for (i = 0; i < 200 && rc == 0; i++)
        rc = ledger_append(f->l, txn, big, sizeof big, NULL);
    assert_int_equal(rc, LEDGER_ERR_MAP_FULL);
    ledger_txn_abort(f->l, txn);
    assert_int_equal(ledger_size(f->l, &n), 0);
    assert_int_equal(n, 110);
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    for (i = 0; i < 200; i++)
        assert_int_equal(ledger_append(f->l, txn, big, sizeof big, NULL), 0);
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    assert_int_equal(ledger_size(f->l, &n), 0);
    assert_int_equal(n, 310);
    assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, NULL, NULL), 0);
}

/* While a read transaction of this process is open the map is not resized under it
 * (its pages stay valid); the growth happens at a later write transaction. */
static void map_does_not_grow_under_a_reader(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->l);
    rm_rf(f->dir);
    struct ledger_options o = { .map_size = 256 * 1024 };
    assert_int_equal(ledger_open(f->dir, &o, &f->l), 0);
    static uint8_t big[16 * 1024];
    memset(big, 'r', sizeof big);
    MDB_txn *r;
    assert_int_equal(ledger_read_begin(f->l, &r), 0);
    const uint64_t before = map_size_of(f->l);
    for (int i = 0; i < 20; i++) {   /* until past half of the map */
        MDB_envinfo info;
        MDB_stat st;
        assert_int_equal(mdb_env_info(ledger_env(f->l), &info), 0);
        assert_int_equal(mdb_env_stat(ledger_env(f->l), &st), 0);
        if (((uint64_t)info.me_last_pgno + 1) * st.ms_psize * 2 > before)
            break;
        MDB_txn *txn;
        assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
        assert_int_equal(ledger_append(f->l, txn, big, sizeof big / 4, NULL), 0);
        assert_int_equal(ledger_txn_commit(f->l, txn), 0);
    }
    assert_int_equal(map_size_of(f->l), before);
    ledger_read_end(f->l, r);
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(f->l, &txn), 0);
    assert_true(map_size_of(f->l) > before);
    assert_int_equal(ledger_append(f->l, txn, big, sizeof big, NULL), 0);
    assert_int_equal(ledger_txn_commit(f->l, txn), 0);
}

/* --- kill -9 in the middle of appends ------------------------------------------------ */

static void child_appends_forever(const char *dir, int fd)
{
    struct ledger *l;
    if (ledger_open(dir, NULL, &l) != 0)
        _exit(3);
    uint64_t n;
    if (ledger_size(l, &n) != 0)
        _exit(4);
    for (;;) {
        MDB_txn *txn;
        uint8_t buf[128];
        size_t len = entry_bytes(n, buf);
        uint64_t idx;
        if (ledger_txn_begin(l, &txn) || ledger_append(l, txn, buf, len, &idx) || idx != n)
            _exit(5);
        uint8_t key[8];
        be64(idx, key);
        if (ledger_index_put(l, txn, "by-index", key, 8, idx))
            _exit(6);
        if (ledger_txn_commit(l, txn))
            _exit(7);
        /* reported only after the commit returned: this index is acknowledged */
        if (write(fd, &idx, sizeof idx) != (ssize_t)sizeof idx)
            _exit(8);
        n++;
    }
}

static void kill_9_loses_no_acknowledged_entry(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->l);
    f->l = NULL;
    uint64_t last_acked = 0, acked_total = 0;
    int have_ack = 0;
    for (int round = 0; round < 4; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_appends_forever(f->dir, fds[1]);
        }
        close(fds[1]);
        /* let it commit a varying number of entries, then kill it mid-stride */
        uint64_t want = 20 + (uint64_t)round * 37, got = 0, idx;
        while (got < want && read(fds[0], &idx, sizeof idx) == (ssize_t)sizeof idx) {
            if (have_ack)
                assert_int_equal(idx, last_acked + 1);
            last_acked = idx;
            have_ack = 1;
            got++;
        }
        usleep((useconds_t)(round * 1500));
        kill(pid, SIGKILL);
        ssize_t r;
        while ((r = read(fds[0], &idx, sizeof idx)) == (ssize_t)sizeof idx) {
            assert_int_equal(idx, last_acked + 1);
            last_acked = idx;
            got++;
        }
        close(fds[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        acked_total += got;

        assert_int_equal(ledger_open(f->dir, NULL, &f->l), 0);
        uint64_t n, bad = 0;
        assert_int_equal(ledger_verify_all(f->l, &bad, NULL, NULL, &n, NULL), 0);
        assert_true(n >= last_acked + 1);
        for (uint64_t i = 0; i <= last_acked; i++) {
            uint8_t *b, wantb[128], key[8];
            size_t len, wlen = entry_bytes(i, wantb);
            assert_int_equal(ledger_get(f->l, i, &b, &len), 0);
            assert_int_equal(len, wlen);
            assert_memory_equal(b, wantb, len);
            free(b);
            uint64_t v;
            be64(i, key);
            assert_int_equal(ledger_index_get(f->l, NULL, "by-index", key, 8, &v), 0);
            assert_int_equal(v, i);
        }
        /* what was committed but not yet reported must be whole too */
        last_acked = n - 1;
        ledger_close(f->l);
        f->l = NULL;
    }
    print_message("    %llu acknowledged appends survived 4 kill -9s\n", (unsigned long long)acked_total);
    assert_int_equal(ledger_open(f->dir, NULL, &f->l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(empty_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(append_reopen_roots_match_merkle_root, setup, teardown),
        cmocka_unit_test_setup_teardown(proofs_from_storage_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_leaves_nothing_and_state_commits_with_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(second_process_reads_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(read_only_open_of_missing_dir_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(secondary_index, setup, teardown),
        cmocka_unit_test_setup_teardown(tampered_entry_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(tampered_subtree_hash_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(deleted_entry_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_tail_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(many_appends_and_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(map_grows_as_needed, setup, teardown),
        cmocka_unit_test_setup_teardown(map_does_not_grow_under_a_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(kill_9_loses_no_acknowledged_entry, setup, teardown),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
