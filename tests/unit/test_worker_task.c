/* worker/: which tasks a worker trains. The task carries no training parameters, only
 * the hash of the policy they come from, signed by the coordinator with the round: a
 * worker trains a task signed by its coordinator for the policy it joined with, and
 * refuses, with a log line that names both policies, one for any other policy (even
 * one its coordinator signed), and one whose signature does not cover what it says. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/envelope.h"
#include "worker/worker.h"

struct task_case {
    struct crypto_key *coordinator;
    struct worker w;
    struct task_announcement a;
    uint8_t sig[64];
    Aulac__V1__Task t;
};

/* A worker that joined with policy hash 0x11.., and the coordinator's task for round 3
 * of that policy, signed. */
static void task_case_init(struct task_case *k)
{
    memset(k, 0, sizeof *k);
    assert_int_equal(crypto_init(), 0);
    assert_int_equal(crypto_key_generate("coordinator", &k->coordinator), 0);
    struct crypto_public_key pk;
    crypto_key_public(k->coordinator, &pk);
    memcpy(k->w.coordinator_key, pk.key, 32);
    memset(k->w.policy_hash, 0x11, 32);
    snprintf(k->w.experiment, sizeof k->w.experiment, "demo-gpt2-bytes-11111111");

    snprintf(k->a.experiment, sizeof k->a.experiment, "%s", k->w.experiment);
    memset(k->a.policy_hash, 0x11, 32);
    k->a.round = 3;
    memset(k->a.base_model_hash, 0xb0, 32);
    k->a.deadline_unix_ms = 1767229200000;
    k->a.total_rounds = 12;
    assert_int_equal(envelope_task_sign(&k->a, k->coordinator, k->sig), 0);

    aulac__v1__task__init(&k->t);
    k->t.kind = AULAC__V1__TASK__KIND__TRAIN;
    k->t.experiment_id = k->a.experiment;
    k->t.policy_hash.data = k->a.policy_hash;
    k->t.policy_hash.len = 32;
    k->t.round = k->a.round;
    k->t.total_rounds = k->a.total_rounds;
    k->t.base_model_hash.data = k->a.base_model_hash;
    k->t.base_model_hash.len = 32;
    k->t.deadline_unix_ms = k->a.deadline_unix_ms;
    k->t.signature.data = k->sig;
    k->t.signature.len = 64;
}

/* worker_verify_task's answer, and what it logged in *log (cap bytes). */
static int verify_logged(const struct task_case *k, char *log, size_t cap)
{
    char path[] = "/tmp/aulac-worker-task.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    int rc = worker_verify_task(&k->w, &k->t);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    ssize_t n = pread(fd, log, cap - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

static void a_task_for_the_joined_policy_is_trained(void **state)
{
    (void)state;
    struct task_case k;
    task_case_init(&k);
    char log[2048];
    assert_int_equal(verify_logged(&k, log, sizeof log), 0);
    assert_string_equal(log, "");
    crypto_key_free(k.coordinator);
}

static void a_task_for_another_policy_is_refused_even_signed(void **state)
{
    (void)state;
    struct task_case k;
    task_case_init(&k);
    memset(k.a.policy_hash, 0x22, 32);   /* the coordinator announces another policy */
    assert_int_equal(envelope_task_sign(&k.a, k.coordinator, k.sig), 0);
    char log[2048];
    assert_int_equal(verify_logged(&k, log, sizeof log), -1);
    if (!strstr(log, "refusing the task for round 3 of experiment demo-gpt2-bytes-11111111") ||
        !strstr(log, "policy 2222222222222222") || !strstr(log, "policy 1111111111111111"))
        fail_msg("the log does not say which policies: %s", log);
    crypto_key_free(k.coordinator);
}

static void a_task_the_signature_does_not_cover_is_refused(void **state)
{
    (void)state;
    struct task_case k;
    task_case_init(&k);
    char log[2048];
    uint8_t other[32];
    memset(other, 0x33, 32);
    k.t.policy_hash.data = other;        /* changed after signing */
    assert_int_equal(verify_logged(&k, log, sizeof log), -1);
    assert_non_null(strstr(log, "signature does not verify"));

    crypto_key_free(k.coordinator);
    task_case_init(&k);
    k.t.policy_hash.len = 0;             /* no policy named */
    assert_int_equal(verify_logged(&k, log, sizeof log), -1);
    assert_non_null(strstr(log, "signature does not verify"));

    crypto_key_free(k.coordinator);
    task_case_init(&k);
    k.t.round = 4;                       /* another round than the one signed */
    assert_int_equal(verify_logged(&k, log, sizeof log), -1);
    assert_non_null(strstr(log, "signature does not verify"));
    crypto_key_free(k.coordinator);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_task_for_the_joined_policy_is_trained),
        cmocka_unit_test(a_task_for_another_policy_is_refused_even_signed),
        cmocka_unit_test(a_task_the_signature_does_not_cover_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
