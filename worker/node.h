#ifndef AULAC_WORKER_NODE_H
#define AULAC_WORKER_NODE_H
/* The channel between the nodes of one member that trains on several nodes
 * (model/README.md, "Several nodes in one member"): the leader node serves the Node
 * service (proto/service_node.h) and publishes node tasks (crypto/node_task.h); each
 * follower node long-polls it. Both sides hold the member's key:
 *
 *   - followers sign every request with it (crypto/request.h); the leader refuses a
 *     request that is unsigned, from another member, from another key, replayed, or
 *     more than NODE_AUTH_SKEW_MS from its clock, or for a node rank outside 1..nodes-1;
 *   - the leader signs each delivery of a task afresh (new nonce, expiry now +
 *     NODE_TASK_TTL_MS); followers verify it with node_task_accept().
 *
 * The channel is TLS (server certificate checked against the alliance CA) unless the
 * worker runs with --insecure. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/keys.h"
#include "crypto/node_task.h"
#include "proto/rpc.h"

#define NODE_TASK_TTL_MS   60000
#define NODE_AUTH_SKEW_MS  (5 * 60 * 1000)

struct node_leader;

struct node_leader_options {
    const char *listen;              /* host:port; port 0 picks one (logged) */
    const char *tls_cert, *tls_key;  /* both NULL: plaintext (--insecure) */
    int nodes;                       /* this member's nodes, leader included (>= 2) */
    int gpus;                        /* GPUs per node */
};

/* Starts the Node service. key must outlive the leader. *bound_port (may be NULL)
 * receives the port. 0 or an rpc error (RPC_ERR_LISTEN, RPC_ERR_TLS_FILE, ...). */
int node_leader_start(const struct node_leader_options *o, const struct crypto_key *key,
                      struct node_leader **out, int *bound_port);

/* Publishes the next task to every follower. From t the leader takes kind, experiment,
 * round, nccl_id, base_model_hash, inner_steps, policy_hash and data_seed; it fills
 * member, seq, node rank, nranks, first rank, expiry and nonce per delivery.
 * policy_yaml (may be NULL) is copied. 0, or -1 when out of memory. */
int node_leader_publish(struct node_leader *l, const struct node_task *t,
                        const char *policy_yaml);

/* Waits until every follower has fetched the latest task: 0, or -1 after timeout_ms
 * (<= 0: forever) or when *stop becomes nonzero. */
int node_leader_wait_fetched(struct node_leader *l, int64_t timeout_ms,
                             const volatile sig_atomic_t *stop);

/* Stops the service (waiting calls end) and frees the leader. NULL is a no-op. */
void node_leader_stop(struct node_leader *l);

struct node_follower;

/* A follower node of rank node_rank (1..nodes-1) of a member with `nodes` nodes of
 * `gpus` GPUs each; polls the leader at `leader` (host:port) over ch (TLS when
 * ch->tls_ca_file is set). key must outlive the follower. interrupt (may be NULL; the
 * worker's stop flag) cuts a poll short: node_follower_next then returns
 * NODE_POLL_NOTHING. 0 or an rpc error. */
int node_follower_open(const char *leader, const struct rpc_channel_options *ch,
                       const struct crypto_key *key, int nodes, int gpus, int node_rank,
                       const volatile sig_atomic_t *interrupt, struct node_follower **out);

/* One long poll of up to wait_ms. Returns 0 with the next verified task in *t and its
 * policy text in *policy_yaml (malloc'd, caller frees; "" when none was sent);
 * NODE_POLL_NOTHING when nothing new came; NODE_POLL_UNREACHABLE when the leader
 * could not be asked; NODE_POLL_REFUSED when it refused this node's request or its
 * answer fails the checks (bad signature, another member, stale, replayed, malformed, or meant for
 * another node layout). why says what happened in the last three cases. */
#define NODE_POLL_NOTHING      1
#define NODE_POLL_UNREACHABLE  (-1)
#define NODE_POLL_REFUSED      (-2)
int node_follower_next(struct node_follower *f, uint32_t wait_ms, struct node_task *t,
                       char **policy_yaml, char *why, size_t why_cap);

void node_follower_close(struct node_follower *f);

#endif
