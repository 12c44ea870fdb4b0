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
    static const struct {
        int rc;
        grpc_status_code code;
        enum worker_call_outcome want;
    } cases[] = {
        { 0, GRPC_STATUS_OK, WORKER_CALL_OK },
        { RPC_ERR_STATUS, GRPC_STATUS_PERMISSION_DENIED, WORKER_CALL_NOT_IN_ROSTER },
        { RPC_ERR_STATUS, GRPC_STATUS_UNAVAILABLE, WORKER_CALL_AWAY },
        { RPC_ERR_STATUS, GRPC_STATUS_DEADLINE_EXCEEDED, WORKER_CALL_AWAY },
        /* clock skew, a bad signature by the roster key, a replayed nonce: retried */
        { RPC_ERR_STATUS, GRPC_STATUS_UNAUTHENTICATED, WORKER_CALL_FAILED },
        { RPC_ERR_STATUS, GRPC_STATUS_RESOURCE_EXHAUSTED, WORKER_CALL_FAILED },
        { RPC_ERR_STATUS, GRPC_STATUS_INTERNAL, WORKER_CALL_FAILED },
        /* a local failure (a malformed reply) leaves the status OK */
        { FED_ERR_BAD_REPLY, GRPC_STATUS_OK, WORKER_CALL_FAILED },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (worker_call_outcome(cases[i].rc, cases[i].code) != cases[i].want)
            fail_msg("case %zu: rc %d, %s: outcome %d, expected %d", i, cases[i].rc,
                     rpc_status_name(cases[i].code),
                     (int)worker_call_outcome(cases[i].rc, cases[i].code), (int)cases[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_a_roster_refusal_stops_the_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
