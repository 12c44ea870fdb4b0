/* proto/: a client channel follows a server that goes away and comes back on the same
 * port. While the server is away, calls that do not wait for ready fail at once and
 * rpc_channel_wait_ready() gives up at its timeout; once the server serves again,
 * rpc_channel_wait_ready() returns and the next call goes through. Loopback only. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "proto/rpc.h"

#define M_PING "/test.Reconnect/Ping"

static void h_ping(struct rpc_call *call, void *ctx)
{
    (void)ctx;
    uint8_t *buf;
    size_t len;
    if (rpc_call_recv(call, &buf, &len) == 0) {
        rpc_call_finish(call, GRPC_STATUS_OK, NULL, (const uint8_t *)"pong", 4);
        free(buf);
    }
}

static const struct rpc_method methods[] = { { M_PING, RPC_UNARY, h_ping } };

static struct rpc_server *serve(const char *addr, int *port)
{
    struct rpc_server_options so = { .listen_addr = addr, .shutdown_grace_ms = 100 };
    struct rpc_server *srv = NULL;
    assert_int_equal(rpc_server_start(&so, methods, 1, NULL, &srv, port), 0);
    return srv;
}

/* A call that does not wait for ready, as the worker makes them. */
static int ping(struct rpc_channel *ch, struct rpc_status *st)
{
    static const struct rpc_call_options o = { .timeout_ms = 2000 };
    uint8_t *reply = NULL;
    size_t len = 0;
    int rc = rpc_unary(ch, M_PING, &o, (const uint8_t *)"ping", 4, &reply, &len, st);
    if (rc == 0)
        assert_memory_equal(reply, "pong", 4);
    free(reply);
    return rc;
}

static void wait_ready_follows_a_restarted_server(void **state)
{
    (void)state;
    int port = 0;
    struct rpc_server *srv = serve("127.0.0.1:0", &port);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    struct rpc_channel *ch;
    assert_int_equal(rpc_channel_open(target, NULL, &ch), 0);
    struct rpc_status st;
    assert_int_equal(ping(ch, &st), 0);
    assert_int_equal(rpc_channel_wait_ready(ch, 1000), 0);   /* connected: at once */

    rpc_server_stop(srv);
    /* Away for 4 s, retried the way the worker does: gRPC's own backoff (1 s growing
     * by 1.6) would by then space its connection attempts seconds apart. */
    int64_t t0 = time_mono_ms();
    int failures = 0;
    while (time_mono_ms() - t0 < 4000) {
        assert_int_equal(ping(ch, &st), RPC_ERR_STATUS);
        assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
        failures++;
        int64_t w0 = time_mono_ms();
        assert_int_equal(rpc_channel_wait_ready(ch, 300), RPC_ERR_CANCELLED);
        assert_true(time_mono_ms() - w0 >= 250);   /* it waited, it did not spin */
    }
    assert_true(failures >= 5);

    srv = serve(target, &port);
    t0 = time_mono_ms();
    int rc = RPC_ERR_CANCELLED;
    while (rc != 0 && time_mono_ms() - t0 < 15000)   /* a generous bound on the wait */
        rc = rpc_channel_wait_ready(ch, 1000);
    assert_int_equal(rc, 0);
    int64_t back = time_mono_ms() - t0;
    /* The first call after it goes through: no stale "connection refused". */
    assert_int_equal(ping(ch, &st), 0);
    print_message("reconnected %.2f s after the server came back (4 s away, %d failed "
                  "calls)\n", (double)back / 1e3, failures);

    rpc_channel_close(ch);
    rpc_server_stop(srv);
}

static void wait_ready_arguments(void **state)
{
    (void)state;
    assert_int_equal(rpc_channel_wait_ready(NULL, 10), RPC_ERR_INVALID_ARG);
    struct rpc_channel *ch;
    assert_int_equal(rpc_channel_open("127.0.0.1:1", NULL, &ch), 0);
    assert_int_equal(rpc_channel_wait_ready(ch, -1), RPC_ERR_INVALID_ARG);
    assert_int_equal(rpc_channel_wait_ready(ch, 0), RPC_ERR_CANCELLED);   /* nobody there */
    rpc_channel_close(ch);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wait_ready_arguments),
        cmocka_unit_test(wait_ready_follows_a_restarted_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
