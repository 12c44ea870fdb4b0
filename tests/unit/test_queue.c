/* The experiment queue (coordinator/queue.h) and experiments one after another: order,
 * records and the exact policy text survive a restart; an idle coordinator; a finished
 * experiment hands over to the next one; a cancel stops the running one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "trust_fixture.h"

#include "common/bytes.h"
#include "common/hex.h"

#include "coordinator/queue.h"
#include "coordinator/state.h"
#include "ledger/entry.h"

/* --- the tables alone ----------------------------------------------------------- */

struct qfx {
    char dir[64];
    struct coord c;
};

static void q_open(struct qfx *f)
{
    f->c.opt.data_dir = f->dir;
    assert_int_equal(ledger_open(f->dir, NULL, &f->c.ledger), 0);
    assert_int_equal(state_open_dbs(&f->c), 0);
    assert_int_equal(queue_open_dbs(&f->c), 0);
}

static void q_close(struct qfx *f)
{
    ledger_close(f->c.ledger);
    memset(&f->c, 0, sizeof f->c);
}

static void info_make(struct experiment_info *e, const char *id, uint8_t tag, const char *text)
{
    memset(e, 0, sizeof *e);
    snprintf(e->experiment, sizeof e->experiment, "%s", id);
    memset(e->policy_hash, tag, 32);
    memset(e->proposal_hash, tag ^ 0xff, 32);
    e->proposed_index = tag;
    e->policy_yaml = (uint8_t *)strdup(text);
    e->policy_yaml_len = strlen(text);
}

static int push(struct coord *c, const struct experiment_info *e)
{
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(c->ledger, &txn), 0);
    int rc = queue_push_txn(c, txn, e);
    if (rc == 0)
        assert_int_equal(ledger_txn_commit(c->ledger, txn), 0);
    else
        ledger_txn_abort(c->ledger, txn);
    return rc;
}

static void start_head(struct coord *c)   /* as the timer does when it starts one */
{
    struct experiment_info h;
    int found;
    assert_int_equal(queue_head(c, NULL, &h, &found), 0);
    assert_true(found);
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(c->ledger, &txn), 0);
    h.phase = PHASE_RUNNING;
    assert_int_equal(queue_record_put_txn(c, txn, &h), 0);
    assert_int_equal(queue_remove_txn(c, txn, h.seq), 0);
    assert_int_equal(ledger_txn_commit(c->ledger, txn), 0);
    experiment_info_free(&h);
}

static void queue_keeps_order_and_exact_text_across_restart(void **state)
{
    (void)state;
    struct qfx f = { 0 };
    snprintf(f.dir, sizeof f.dir, "/tmp/aulac-queue-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    q_open(&f);
    const char *texts[3] = { "schema: 1\n# a\n", "schema: 1\n# b  (spaces kept)\n",
                             "schema: 1\n# c\n" };
    const char *ids[3] = { "exp-a-00000001", "exp-b-00000002", "exp-c-00000003" };
    struct experiment_info e[3];
    for (int i = 0; i < 3; i++) {
        info_make(&e[i], ids[i], (uint8_t)(i + 1), texts[i]);
        assert_int_equal(push(&f.c, &e[i]), 0);
    }
    assert_int_equal(push(&f.c, &e[1]), COORD_ERR_STATE);   /* an id runs once */
    size_t n;
    assert_int_equal(queue_length(&f.c, &n), 0);
    assert_int_equal(n, 3);
    start_head(&f.c);   /* a leaves the queue, its record stays */

    q_close(&f);   /* restart */
    q_open(&f);
    assert_int_equal(queue_length(&f.c, &n), 0);
    assert_int_equal(n, 2);
    struct experiment_info h;
    int found;
    assert_int_equal(queue_head(&f.c, NULL, &h, &found), 0);
    assert_true(found);
    assert_string_equal(h.experiment, ids[1]);
    assert_int_equal(h.phase, PHASE_QUEUED);
    assert_int_equal(h.policy_yaml_len, strlen(texts[1]));
    assert_memory_equal(h.policy_yaml, texts[1], h.policy_yaml_len);
    assert_memory_equal(h.proposal_hash, e[1].proposal_hash, 32);
    assert_int_equal(h.proposed_index, 2);
    experiment_info_free(&h);

    struct experiment_info d;   /* a later push goes behind, with a fresh seq */
    info_make(&d, "exp-d-00000004", 4, "schema: 1\n# d\n");
    assert_int_equal(push(&f.c, &d), 0);
    struct experiment_info *all;
    assert_int_equal(queue_list(&f.c, &all, &n), 0);
    assert_int_equal(n, 4);
    const int phases[4] = { PHASE_RUNNING, PHASE_QUEUED, PHASE_QUEUED, PHASE_QUEUED };
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(all[i].seq, i + 1);
        assert_int_equal(all[i].phase, phases[i]);
    }
    assert_string_equal(all[3].experiment, "exp-d-00000004");
    queue_list_free(all, n);
    assert_int_equal(queue_find_policy(&f.c, e[2].policy_hash, &h, &found), 0);
    assert_true(found);
    assert_string_equal(h.experiment, ids[2]);
    experiment_info_free(&h);
    uint8_t other[32];
    memset(other, 9, 32);
    assert_int_equal(queue_find_policy(&f.c, other, &h, &found), 0);
    assert_false(found);

    /* A queued experiment is cancelled: its entry, its record, out of the queue; a
     * second cancel and an unknown one are refused with the reason. */
    char why[200];
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(f.c.ledger, &txn), 0);
    assert_int_equal(experiment_cancel_locked(&f.c, txn, ids[1], "not needed", why, sizeof why), 0);
    assert_int_equal(ledger_txn_commit(f.c.ledger, txn), 0);
    assert_int_equal(queue_head(&f.c, NULL, &h, &found), 0);
    assert_string_equal(h.experiment, ids[2]);
    experiment_info_free(&h);
    assert_int_equal(queue_get(&f.c, ids[1], &h, &found), 0);
    assert_int_equal(h.phase, PHASE_CANCELLED);
    assert_true(h.ended_ms > 0 && h.ended_ms <= time_now_unix_ms());   /* payload retention */
    experiment_info_free(&h);
    /* A record of version 1 (before ended_ms) still reads, ended_ms 0. */
    struct bytes_writer w = { 0 };
    bw_u32(&w, 1);
    bw_str(&w, "exp-old-00000009");
    bw_u8(&w, PHASE_FINISHED);
    bw_u64(&w, 9);
    uint8_t zero[32] = { 0 };
    bw_raw(&w, zero, 32);
    bw_raw(&w, zero, 32);
    bw_u64(&w, 0);
    bw_u64(&w, 5);
    bw_raw(&w, zero, 32);
    bw_u64(&w, 10);
    bw_raw(&w, "schema: 1\n", 10);
    assert_false(w.failed);
    assert_int_equal(ledger_txn_begin(f.c.ledger, &txn), 0);
    MDB_val k = { 16, "exp-old-00000009" }, v = { w.len, w.buf };
    assert_int_equal(mdb_put(txn, f.c.db_experiments, &k, &v, 0), 0);
    assert_int_equal(ledger_txn_commit(f.c.ledger, txn), 0);
    free(w.buf);
    assert_int_equal(queue_get(&f.c, "exp-old-00000009", &h, &found), 0);
    assert_true(found);
    assert_int_equal(h.phase, PHASE_FINISHED);
    assert_int_equal(h.rounds_done, 5);
    assert_int_equal(h.ended_ms, 0);
    assert_int_equal(h.policy_yaml_len, 10);
    experiment_info_free(&h);
    uint64_t size;
    assert_int_equal(ledger_size(f.c.ledger, &size), 0);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ledger_get(f.c.ledger, size - 1, &bytes, &len), 0);
    struct entry en;
    assert_int_equal(entry_decode(bytes, len, &en), 0);
    free(bytes);
    assert_int_equal(en.type, ENTRY_EXPERIMENT_CANCELLED);
    assert_string_equal(en.u.experiment.experiment, ids[1]);
    assert_string_equal(en.u.experiment.reason, "not needed");
    entry_free(&en);
    assert_int_equal(ledger_txn_begin(f.c.ledger, &txn), 0);
    assert_int_equal(experiment_cancel_locked(&f.c, txn, ids[1], "again", why, sizeof why),
                     COORD_ERR_STATE);
    assert_non_null(strstr(why, "already ended (cancelled)"));
    assert_int_equal(experiment_cancel_locked(&f.c, txn, "nope-1", "x", why, sizeof why),
                     COORD_ERR_STATE);
    assert_non_null(strstr(why, "no experiment nope-1"));
    ledger_txn_abort(f.c.ledger, txn);

    for (int i = 0; i < 3; i++)
        experiment_info_free(&e[i]);
    experiment_info_free(&d);
    q_close(&f);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f.dir);
    assert_int_equal(system(cmd), 0);
}

/* --- a coordinator ---------------------------------------------------------------- */

static size_t queued(struct coord *c)
{
    size_t n;
    assert_int_equal(queue_length(c, &n), 0);
    return n;
}

/* Starts the coordinator with the fixture's policy running and a second one (another
 * name, so another experiment id) approved behind it. */
static void two_policies(struct fx *f)
{
    fx_start(f);
    char text[sizeof fx_policy + 16];
    const char *name = strstr(fx_policy, "trust-test");
    snprintf(text, sizeof text, "%.*strust-other%s", (int)(name - fx_policy), fx_policy,
             name + strlen("trust-test"));
    fx_approve_policy(f, text);
}

static void idle_then_queued_survive_restarts(void **state)
{
    struct fx *f = *state;
    f->idle = 1;   /* nothing approved */
    fx_start(f);
    assert_int_equal(f->c->state, EXP_IDLE);
    assert_string_equal(f->c->experiment, "");
    assert_null(f->c->rnd.base);
    assert_int_equal(queued(f->c), 0);
    fx_stop(f);
    fx_start(f);   /* restart while idle */
    assert_int_equal(f->c->state, EXP_IDLE);
    fx_stop(f);

    f->idle = 0;
    two_policies(f);
    assert_int_equal(f->c->state, EXP_RUNNING);
    assert_non_null(strstr(f->c->experiment, "trust-test-"));
    assert_int_equal(queued(f->c), 1);
    char first[COORD_EXPERIMENT_MAX + 1];
    snprintf(first, sizeof first, "%s", f->c->experiment);
    fx_stop(f);
    f->idle = 1;   /* nothing proposed at start: the queue is in the data dir */
    fx_start(f);
    assert_string_equal(f->c->experiment, first);
    assert_int_equal(f->c->state, EXP_RUNNING);
    assert_int_equal(queued(f->c), 1);
}

/* Waits (up to 20 s) until the timer has started an experiment other than `not`. */
static void wait_next(struct fx *f, const char *not)
{
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&f->c->mu);
        int moved = f->c->state == EXP_RUNNING && strcmp(f->c->experiment, not) != 0;
        pthread_mutex_unlock(&f->c->mu);
        if (moved)
            return;
        time_sleep_ms(100);
    }
    fail_msg("the next experiment did not start after %s", not);
}

static void finished_experiment_hands_over_to_the_next(void **state)
{
    struct fx *f = *state;
    two_policies(f);
    char first[COORD_EXPERIMENT_MAX + 1];
    snprintf(first, sizeof first, "%s", f->c->experiment);
    for (int round = 1; round <= 3; round++)
        for (int who = FPT; who <= HUST; who++)
            fx_submit_accepted(f, who, round * 10 + who);
    wait_next(f, first);
    assert_non_null(strstr(f->c->experiment, "trust-other-"));
    assert_int_equal(f->c->rnd.number, 1);
    assert_int_equal(queued(f->c), 0);
    struct experiment_info e;
    int found;
    assert_int_equal(queue_get(f->c, first, &e, &found), 0);
    assert_true(found);
    assert_int_equal(e.phase, PHASE_FINISHED);
    assert_int_equal(e.rounds_done, 3);
    experiment_info_free(&e);
    struct entry last;
    fx_last_entry(f, &last, NULL);
    assert_int_equal(last.type, ENTRY_EXPERIMENT_STARTED);
    assert_non_null(strstr(last.u.experiment.experiment, "trust-other-"));
    entry_free(&last);
    char second[COORD_EXPERIMENT_MAX + 1];
    snprintf(second, sizeof second, "%s", f->c->experiment);
    fx_stop(f);
    fx_start(f);   /* between two experiments' rounds: the second resumes */
    assert_string_equal(f->c->experiment, second);
    assert_int_equal(f->c->state, EXP_RUNNING);
}

static void cancel_stops_the_running_one_and_the_next_starts(void **state)
{
    struct fx *f = *state;
    two_policies(f);
    char first[COORD_EXPERIMENT_MAX + 1];
    snprintf(first, sizeof first, "%s", f->c->experiment);
    fx_submit_accepted(f, FPT, 1);
    uint8_t last_model[32];
    struct coord *c = f->c;
    char why[200];
    pthread_mutex_lock(&c->mu);
    memcpy(last_model, c->rnd.base->hash, 32);
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(c->ledger, &txn), 0);
    assert_int_equal(experiment_cancel_locked(c, txn, first, "wrong data", why, sizeof why), 0);
    assert_int_equal(ledger_txn_commit(c->ledger, txn), 0);
    pthread_mutex_unlock(&c->mu);
    wait_next(f, first);
    struct experiment_info e;
    int found;
    assert_int_equal(queue_get(c, first, &e, &found), 0);
    assert_int_equal(e.phase, PHASE_CANCELLED);
    assert_memory_equal(e.final_model_hash, last_model, 32);   /* its last model stays */
    experiment_info_free(&e);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/models/", f->opt.data_dir);
    char hex[65];
    hex_encode(last_model, 32, hex);
    strcat(dir, hex);
    assert_true(file_exists(dir));
    /* its stored payload went with it: nothing of round 1 of the first is kept */
    uint8_t prefix[LEDGER_UPDATE_KEY_MAX];
    int plen = ledger_update_key(first, 1, "fpt", prefix);
    MDB_txn *r;
    assert_int_equal(mdb_txn_begin(ledger_env(c->ledger), NULL, MDB_RDONLY, &r), 0);
    MDB_val k = { (size_t)plen, prefix }, v;
    assert_int_equal(mdb_get(r, c->db_payloads, &k, &v), MDB_NOTFOUND);
    mdb_txn_abort(r);
    fx_stop(f);
    fx_start(f);
    assert_non_null(strstr(f->c->experiment, "trust-other-"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_keeps_order_and_exact_text_across_restart),
        cmocka_unit_test_setup_teardown(idle_then_queued_survive_restarts, fx_setup_prepared,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(finished_experiment_hands_over_to_the_next,
                                        fx_setup_prepared, fx_teardown),
        cmocka_unit_test_setup_teardown(cancel_stops_the_running_one_and_the_next_starts,
                                        fx_setup_prepared, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
