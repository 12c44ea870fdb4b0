#ifndef AULAC_TESTS_RPC_ATTACK_H
#define AULAC_TESTS_RPC_ATTACK_H
/* A hostile gRPC client for tests, on the gRPC core directly: it connects from
 * a chosen loopback address (127.0.0.2...) so that the server sees another
 * peer, holds calls open without sending a message, and sends messages of any
 * size from one shared zero buffer (its own memory stays ~1 MiB, so a test can
 * read the server's memory from its own VmRSS). Also an RSS sampler. */
#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>

struct attack_channel;
struct attack_call;

/* Connects to 127.0.0.1:port from source_ip. NULL on failure. */
struct attack_channel *attack_connect(const char *source_ip, int port);
void attack_close(struct attack_channel *ch);

/* Opens a call of method and sends messages of sizes[0..n) bytes (n may be
 * 0: a silent call), without closing its side. timeout_ms: the call's deadline. */
struct attack_call *attack_call_start(struct attack_channel *ch, const char *method,
                                      const size_t *sizes, size_t n, int64_t timeout_ms);
/* 1 once the call has its status (filled in), 0 if it is still running after
 * wait_ms. details may be NULL. */
int attack_call_wait(struct attack_call *c, int64_t wait_ms, grpc_status_code *code,
                     char *details, size_t cap);
/* Polls calls[0..n) until want of them have ended or limit_ms has passed;
 * returns how many ended, each with status code and details containing
 * pattern, or -1 (and the status in unexpected) at the first that did not. */
int attack_calls_wait_ended(struct attack_call **calls, int n, int want, int64_t limit_ms,
                            grpc_status_code code, const char *pattern, char *unexpected,
                            size_t cap);
/* Cancels the call if still running, waits for its end and frees it. */
void attack_call_free(struct attack_call *c);

/* Samples this process's VmRSS every 5 ms in a thread until stopped. */
struct rss_sampler;
struct rss_sampler *rss_sampler_start(void);
/* Stops; returns the peak growth over the RSS at start, in MiB. */
long rss_sampler_stop(struct rss_sampler *s);
long rss_now_kib(void);

#endif
