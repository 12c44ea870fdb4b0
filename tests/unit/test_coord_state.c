/* The coordinator's LMDB records: what a restart reads back is what was written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord.h"
#include "coordinator/spool.h"
#include "coordinator/state.h"
#include "common/fileio.h"
#include "crypto/digest.h"

struct fixture {
    char dir[64];
    struct coord c;
    struct model_snapshot snap;
    struct member_stats members[2];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/aulac-state-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    struct coord *c = &f->c;
    c->opt.data_dir = f->dir;
    if (ledger_open(f->dir, NULL, &c->ledger) != 0 || state_open_dbs(c) != 0)
        return -1;
    snprintf(c->experiment, sizeof c->experiment, "exp-1");
    memset(c->policy_hash, 0xab, 32);
    c->state = EXP_RUNNING;
    c->rnd.number = 3;
    c->total_rounds = 10;
    c->rnd.opened_ms = 1234567;
    memset(f->snap.hash, 0x5c, 32);
    f->snap.round = 2;
    c->rnd.base = &f->snap;
    c->roster.n_members = 2;
    c->members = f->members;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->c.ledger);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void commit(struct coord *c, int (*fn)(struct coord *, MDB_txn *, void *), void *arg)
{
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(c->ledger, &txn), 0);
    assert_int_equal(fn(c, txn, arg), 0);
    assert_int_equal(ledger_txn_commit(c->ledger, txn), 0);
}

static int put_exp(struct coord *c, MDB_txn *txn, void *arg) { (void)arg; return state_put_experiment(c, txn); }

static void experiment_record_round_trips(void **state)
{
    struct fixture *f = *state;
    struct experiment_record rec;
    int found = 1;
    assert_int_equal(state_get_experiment(&f->c, &rec, &found), 0);
    assert_false(found);
    commit(&f->c, put_exp, NULL);
    assert_int_equal(state_get_experiment(&f->c, &rec, &found), 0);
    assert_true(found);
    assert_string_equal(rec.experiment, "exp-1");
    assert_memory_equal(rec.policy_hash, f->c.policy_hash, 32);
    assert_int_equal(rec.state, EXP_RUNNING);
    assert_int_equal(rec.round, 3);
    assert_int_equal(rec.total_rounds, 10);
    assert_memory_equal(rec.model_hash, f->snap.hash, 32);
    assert_int_equal(rec.completed_rounds, 2);
    assert_int_equal(rec.round_opened_ms, 1234567);
}

struct payload_arg {
    const char *member;
    uint64_t tokens;
    const char *bytes;
};

static int put_payload(struct coord *c, MDB_txn *txn, void *arg)
{
    const struct payload_arg *p = arg;
    struct round_member m = { 0 };
    snprintf(m.id, sizeof m.id, "%s", p->member);
    m.tokens = p->tokens;
    m.samples = 7;
    m.bytes = strlen(p->bytes);
    m.train_loss = 2.5f;
    m.val_loss = 3.5f;
    uint8_t hash[32];
    crypto_blake2b256(p->bytes, strlen(p->bytes), hash);
    return state_put_payload(c, txn, &m, (double)p->tokens, 42, hash, strlen(p->bytes));
}

/* A row as the previous version wrote it: the payload bytes inside. */
static int put_payload_v1(struct coord *c, MDB_txn *txn, void *arg)
{
    const struct payload_arg *p = arg;
    struct round_member m = { 0 };
    snprintf(m.id, sizeof m.id, "%s", p->member);
    m.tokens = p->tokens;
    m.samples = 7;
    m.bytes = strlen(p->bytes);
    m.train_loss = 2.5f;
    m.val_loss = 3.5f;
    return state_put_payload_v1(c, txn, &m, (double)p->tokens, 42, (const uint8_t *)p->bytes,
                                strlen(p->bytes));
}

struct seen {
    char ids[4][16];
    uint8_t hashes[4][32];
    size_t lens[4];
    double weights[4];
    int n;
};

static int collect(struct coord *c, const struct round_member *m, double weight,
                   const uint8_t payload_hash[32], size_t len, void *arg)
{
    struct seen *s = arg;
    (void)c;
    assert_true(s->n < 4);
    snprintf(s->ids[s->n], 16, "%.15s", m->id);
    memcpy(s->hashes[s->n], payload_hash, 32);
    s->lens[s->n] = len;
    s->weights[s->n] = weight;
    assert_int_equal(m->samples, 7);
    assert_true(m->val_loss == 3.5f);
    s->n++;
    return 0;
}

static int delete_round(struct coord *c, MDB_txn *txn, void *arg) { (void)arg; return state_delete_payloads(c, txn); }

static void payloads_are_kept_per_round_until_deleted(void **state)
{
    struct fixture *f = *state;
    struct payload_arg a = { "vnpt", 100, "BBBB" }, b = { "fpt", 50, "AA" }, later = { "fpt", 9, "ZZ" };
    commit(&f->c, put_payload, &a);
    commit(&f->c, put_payload, &b);
    f->c.rnd.number = 4;
    commit(&f->c, put_payload, &later);
    f->c.rnd.number = 3;

    struct seen s = { 0 };
    assert_int_equal(state_each_payload(&f->c, collect, &s), 0);
    assert_int_equal(s.n, 2);                 /* round 4's update is not round 3's */
    uint8_t aa[32], bbbb[32];
    crypto_blake2b256("AA", 2, aa);
    crypto_blake2b256("BBBB", 4, bbbb);
    assert_string_equal(s.ids[0], "fpt");     /* key order: by member */
    assert_memory_equal(s.hashes[0], aa, 32);
    assert_int_equal(s.lens[0], 2);
    assert_true(s.weights[0] == 50.0);
    assert_string_equal(s.ids[1], "vnpt");
    assert_memory_equal(s.hashes[1], bbbb, 32);
    assert_int_equal(s.lens[1], 4);

    commit(&f->c, delete_round, NULL);
    memset(&s, 0, sizeof s);
    assert_int_equal(state_each_payload(&f->c, collect, &s), 0);
    assert_int_equal(s.n, 0);
    f->c.rnd.number = 4;
    assert_int_equal(state_each_payload(&f->c, collect, &s), 0);
    assert_int_equal(s.n, 1);
}

/* A data dir written by the previous version holds the open round's payloads inside its
 * coord.payloads rows: the start moves them to the payload store and rewrites the rows,
 * once; the close then reads them from the store files. */
static void old_layout_rows_are_converted_at_start(void **state)
{
    struct fixture *f = *state;
    struct payload_arg a = { "vnpt", 100, "BBBB" }, b = { "fpt", 50, "AA" };
    commit(&f->c, put_payload_v1, &a);
    commit(&f->c, put_payload, &b);            /* already the new layout */
    struct seen s = { 0 };
    assert_int_equal(state_each_payload(&f->c, collect, &s), COORD_ERR_STATE);   /* unconverted */

    size_t converted = 99;
    assert_int_equal(state_convert_payload_rows(&f->c, &converted), 0);
    assert_int_equal(converted, 1);
    uint8_t bbbb[32];
    crypto_blake2b256("BBBB", 4, bbbb);
    char path[4300];
    payload_path(&f->c, "exp-1", bbbb, path, sizeof path);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &bytes, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(bytes, "BBBB", 4);
    free(bytes);
    memset(&s, 0, sizeof s);
    assert_int_equal(state_each_payload(&f->c, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[1], "vnpt");
    assert_memory_equal(s.hashes[1], bbbb, 32);
    assert_int_equal(s.lens[1], 4);
    assert_true(s.weights[1] == 100.0);

    assert_int_equal(state_convert_payload_rows(&f->c, &converted), 0);   /* idempotent */
    assert_int_equal(converted, 0);

    /* The close's view: vnpt's payload mapped from its store file; fpt's store file was
     * never written (only its row), which the close reports rather than reads. */
    uint8_t aa[32];
    crypto_blake2b256("AA", 2, aa);
    char aa_path[4300];
    payload_path(&f->c, "exp-1", aa, aa_path, sizeof aa_path);
    assert_int_equal(file_write_atomic(aa_path, "AA", 2, 0644), 0);
    struct agg_update u[2];
    size_t n = 0;
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(ledger_env(f->c.ledger), NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(state_round_updates(&f->c, txn, u, 2, &n, NULL, 0), 0);
    mdb_txn_abort(txn);
    assert_int_equal(n, 2);
    assert_string_equal(u[1].member, "vnpt");
    assert_true(u[1].mapped);
    assert_int_equal(u[1].len, 4);
    assert_memory_equal(u[1].payload, "BBBB", 4);
    assert_memory_equal(u[1].payload_hash, bbbb, 32);
    assert_memory_equal(u[0].payload, "AA", 2);
    state_round_updates_release(u, n);
    assert_null(u[0].payload);
}

/* A row whose store file is missing (or of another length) is an error, not a silent
 * zero update; nothing stays mapped. */
static void a_missing_store_file_is_reported(void **state)
{
    struct fixture *f = *state;
    struct payload_arg a = { "vnpt", 100, "BBBB" };
    commit(&f->c, put_payload, &a);
    struct agg_update u[1];
    size_t n = 7;
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(ledger_env(f->c.ledger), NULL, MDB_RDONLY, &txn), 0);
    char why[1024];
    assert_int_equal(state_round_updates(&f->c, txn, u, 1, &n, why, sizeof why), COORD_ERR_IO);
    mdb_txn_abort(txn);
    assert_int_equal(n, 0);
    /* The close shows why: whose update, which file, what to do. */
    assert_non_null(strstr(why, "the update of member vnpt to round "));
    assert_non_null(strstr(why, "is missing: "));
    assert_non_null(strstr(why, "(errno 2)"));
    assert_non_null(strstr(why, "aulac experiment propose-cancel exp-1"));
    uint8_t bbbb[32];
    crypto_blake2b256("BBBB", 4, bbbb);
    char path[4300];
    payload_path(&f->c, "exp-1", bbbb, path, sizeof path);
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/experiments/exp-1/payloads", f->dir);
    assert_int_equal(file_mkdirs(dir, 0755), 0);
    assert_int_equal(file_write_atomic(path, "BBB", 3, 0644), 0);
    assert_int_equal(mdb_txn_begin(ledger_env(f->c.ledger), NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(state_round_updates(&f->c, txn, u, 1, &n, why, sizeof why),
                     COORD_ERR_STATE);
    mdb_txn_abort(txn);
    assert_int_equal(n, 0);
    assert_non_null(strstr(why, "the update of member vnpt to round "));
    assert_non_null(strstr(why, "cannot be read: "));
    assert_non_null(strstr(why, path));
    assert_non_null(strstr(why, "has 3 bytes, not the 4 accepted"));
}

static int put_round(struct coord *c, MDB_txn *txn, void *arg) { return state_put_round(c, txn, arg); }

static void round_summaries_round_trip(void **state)
{
    struct fixture *f = *state;
    struct round_member members[2] = { { .id = "fpt", .tokens = 10, .bytes = 99, .train_loss = 1.5f, .val_loss = 2.5f },
                                       { .id = "hust", .tokens = 20, .bytes = 77, .train_loss = 1.25f, .val_loss = 2.0f } };
    struct round_summary s = { .round = 3, .mean_train_loss = 1.33f, .tokens = 30, .bytes = 176,
                               .closed_ms = 99, .members = members, .n_members = 2 };
    memset(s.model_hash, 0x77, 32);
    commit(&f->c, put_round, &s);
    struct round_summary got;
    int found;
    assert_int_equal(state_get_round(&f->c, f->c.experiment, 3, &got, &found), 0);
    assert_true(found);
    assert_int_equal(got.n_members, 2);
    assert_string_equal(got.members[1].id, "hust");
    assert_true(got.members[1].val_loss == 2.0f);
    assert_int_equal(got.bytes, 176);
    assert_memory_equal(got.model_hash, s.model_hash, 32);
    free(got.members);
    assert_int_equal(state_get_round(&f->c, f->c.experiment, 4, &got, &found), 0);
    assert_false(found);
}

static int put_member(struct coord *c, MDB_txn *txn, void *arg) { return state_put_member(c, txn, arg); }

static void contribution_counters_survive_a_reload(void **state)
{
    struct fixture *f = *state;
    struct member_stats m = { .id = "fpt", .rounds_joined = 4, .tokens = 1000, .bytes_sent = 55, .rejected = 1 };
    commit(&f->c, put_member, &m);
    snprintf(f->members[0].id, sizeof f->members[0].id, "fpt");
    snprintf(f->members[1].id, sizeof f->members[1].id, "hust");
    assert_int_equal(state_load_members(&f->c), 0);
    assert_int_equal(f->members[0].rounds_joined, 4);
    assert_int_equal(f->members[0].tokens, 1000);
    assert_int_equal(f->members[0].bytes_sent, 55);
    assert_int_equal(f->members[0].rejected, 1);
    assert_int_equal(f->members[1].tokens, 0);     /* never written: zero */
}

struct seen_keys {
    int64_t ts[8];
    uint8_t first[8];
    int n;
};

static void collect_key(int64_t timestamp_ms, const uint8_t *key, void *arg)
{
    struct seen_keys *k = arg;
    if (k->n < 8) {
        k->ts[k->n] = timestamp_ms;
        k->first[k->n] = key[0];
    }
    k->n++;
}

/* Accepted request keys come back oldest first; each commit prunes those older than
 * its window, and a reader can start anywhere. */
static void replay_keys_kept_for_the_window(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c;
    uint8_t key[STATE_REPLAY_KEY_BYTES];
    const int64_t t0 = 1767225600000;
    for (int i = 0; i < 4; i++) {
        memset(key, 0x10 * (i + 1), sizeof key);
        assert_int_equal(state_replay_record(c, key, t0 + 1000 * (3 - i), 0), 0);
    }
    struct seen_keys k = { .n = 0 };
    assert_int_equal(state_replay_each(c, 0, collect_key, &k), 0);
    assert_int_equal(k.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(k.ts[i], t0 + 1000 * i);
        assert_int_equal(k.first[i], 0x10 * (4 - i));
    }
    k.n = 0;
    assert_int_equal(state_replay_each(c, t0 + 1500, collect_key, &k), 0);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.ts[0], t0 + 2000);
    /* the next record drops everything before t0 + 2000 */
    memset(key, 0x77, sizeof key);
    assert_int_equal(state_replay_record(c, key, t0 + 5000, t0 + 2000), 0);
    k.n = 0;
    assert_int_equal(state_replay_each(c, 0, collect_key, &k), 0);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.ts[0], t0 + 2000);
    assert_int_equal(k.ts[2], t0 + 5000);
    assert_int_equal(k.first[2], 0x77);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(experiment_record_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(payloads_are_kept_per_round_until_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(old_layout_rows_are_converted_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_store_file_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(round_summaries_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(contribution_counters_survive_a_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(replay_keys_kept_for_the_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
