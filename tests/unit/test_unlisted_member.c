/* A member that an experiment's participation.members leaves out, through the GetTask
 * of a real coordinator in this process: while it does not know the experiment (its
 * worker joined while nothing ran, or sat out the one before), the coordinator names
 * the experiment at once (NONE with its id) instead of leaving the poll to wait, so
 * that the worker joins, learns it and sits it out; once it sits it out, its polls
 * wait; a listed member trains. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "trust_fixture.h"

static Aulac__V1__Task *get_task(struct fed_client *cl, const char *member,
                                 const char *experiment, int sit_out, uint32_t wait_ms)
{
    Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
    q.member_id = (char *)member;
    q.experiment_id = (char *)experiment;
    q.sit_out = sit_out;
    q.wait_ms = wait_ms;
    Aulac__V1__Task *t = NULL;
    struct rpc_status st;
    if (fed_get_task(cl, &q, &t, &st) != 0)
        fail_msg("GetTask: %s", st.details);
    return t;
}

/* The fixture's policy for fpt and hust only, running. */
static int setup_fpt_and_hust(void **state)
{
    int rc = fx_setup_prepared(state);
    if (rc != 0)
        return rc;
    struct fx *f = *state;
    static const char all[] = "members: [fpt, vnpt, hust, uet]";
    char doc[sizeof fx_policy];
    const char *at = strstr(fx_policy, all);
    assert_non_null(at);
    snprintf(doc, sizeof doc, "%.*smembers: [fpt, hust]%s", (int)(at - fx_policy), fx_policy,
             at + strlen(all));
    fx_write(f->paths[3], doc, 0644);
    fx_start(f);   /* approves paths[3] and waits until it runs */
    return 0;
}

static void unlisted_member_learns_the_experiment(void **state)
{
    struct fx *f = *state;
    char id[COORD_EXPERIMENT_MAX + 1];
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->state, EXP_RUNNING);
    snprintf(id, sizeof id, "%s", f->c->experiment);
    pthread_mutex_unlock(&f->c->mu);
    struct signer sv = { .key = f->keys[VNPT] }, sf = { .key = f->keys[FPT] };
    struct fed_client *vnpt = fx_client(f, &sv), *fpt = fx_client(f, &sf);

    int64_t t0 = time_mono_ms();
    Aulac__V1__Task *t = get_task(vnpt, "vnpt", "", 0, 8000);
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__NONE);
    assert_string_equal(t->experiment_id, id);
    if (!strstr(t->message, "runs without member vnpt (participation.members)"))
        fail_msg("message: %s", t->message);
    assert_true(time_mono_ms() - t0 < 4000);   /* answered, not left to wait 8 s */
    aulac__v1__task__free_unpacked(t, NULL);
    t = get_task(vnpt, "vnpt", "exp-gone-12345678", 0, 8000);   /* names another one */
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__NONE);
    assert_string_equal(t->experiment_id, id);
    aulac__v1__task__free_unpacked(t, NULL);
    t = get_task(vnpt, "vnpt", id, 1, 300);   /* sits it out: nothing new */
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__NONE);
    assert_string_equal(t->experiment_id, "");
    aulac__v1__task__free_unpacked(t, NULL);
    t = get_task(fpt, "fpt", "", 0, 8000);
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__TRAIN);
    assert_string_equal(t->experiment_id, id);
    aulac__v1__task__free_unpacked(t, NULL);
    fed_client_close(vnpt);
    fed_client_close(fpt);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(unlisted_member_learns_the_experiment,
                                        setup_fpt_and_hust, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
