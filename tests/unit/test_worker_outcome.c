/* worker/: what the worker makes of each outcome of a call to the coordinator. Only a
 * roster refusal (PERMISSION_DENIED) stops it; an absent coordinator is waited for, and
 * a refusal a fresh request may pass (clock skew, a replayed nonce, a busy
 * coordinator) is retried with backoff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/worker.h"

static void only_a_roster_refusal_stops_the_worker(void **state)
{
    (void)state;
    assert_int_equal(worker_call_outcome(0, GRPC_STATUS_OK), WORKER_CALL_OK);
    assert_int_equal(worker_call_outcome(RPC_ERR_STATUS, GRPC_STATUS_PERMISSION_DENIED),
                     WORKER_CALL_NOT_IN_ROSTER);
    assert_int_equal(worker_call_outcome(RPC_ERR_STATUS, GRPC_STATUS_UNAVAILABLE),
                     WORKER_CALL_AWAY);
    assert_int_equal(worker_call_outcome(RPC_ERR_STATUS, GRPC_STATUS_DEADLINE_EXCEEDED),
                     WORKER_CALL_AWAY);
    /* clock skew, bad signature by the roster key, replayed nonce: retried */
    assert_int_equal(worker_call_outcome(RPC_ERR_STATUS, GRPC_STATUS_UNAUTHENTICATED),
                     WORKER_CALL_FAILED);
    assert_int_equal(worker_call_outcome(RPC_ERR_STATUS, GRPC_STATUS_RESOURCE_EXHAUSTED),
                     WORKER_CALL_FAILED);
    assert_int_equal(worker_call_outcome(RPC_ERR_STATUS, GRPC_STATUS_INTERNAL),
                     WORKER_CALL_FAILED);
    /* a local failure (a malformed reply) keeps the status OK */
    assert_int_equal(worker_call_outcome(FED_ERR_BAD_REPLY, GRPC_STATUS_OK), WORKER_CALL_FAILED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_a_roster_refusal_stops_the_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
