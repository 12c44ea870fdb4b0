#ifndef AULAC_WORKER_NODE_WORKER_H
#define AULAC_WORKER_NODE_WORKER_H
/* A member that trains on several nodes (--nodes N, model/README.md): the worker's
 * side. Node 0, the leader, is the only one talking to the coordinator; it serves the
 * followers node tasks over the member's own channel (worker/node.h), creates the
 * NCCL group with them, and at every round has every node take rank 0's state
 * (trainer_cuda_sync_from_rank0), check the base model hash and run the same steps.
 * Only the leader evaluates, encodes and uploads. */
#include "worker/worker.h"

/* Refuses --nodes > 1 where it cannot work: a build without CUDA, no usable GPU,
 * or missing node options. 0, or a WORKER_EXIT_* code (logged). */
int node_worker_preflight(const struct worker_options *o);

/* Leader: starts the node channel, publishes a GROUP task with a fresh NCCL id and
 * creates the distributed trainer (it returns once every node has joined). Also used
 * to recreate the group after a failure. 0 or WORKER_EXIT_ERROR. */
int node_worker_create_trainer(struct worker *w, const struct trainer_opts *to);

/* Leader, after the base model is in the trainer: publishes the round's TRAIN task,
 * syncs every node from rank 0 and checks the base hash. data_seed is the seed the
 * leader samples with (followers mix in their rank). 0 or -1 (logged). */
int node_worker_start_round(struct worker *w, uint64_t round, const uint8_t base_hash[32],
                            uint32_t steps, uint64_t data_seed);

/* Leader: the group failed (a node was lost): a new group with a fresh NCCL id, and
 * the state of the last accepted round reloaded. 0 or WORKER_EXIT_ERROR. */
int node_worker_regroup(struct worker *w);

/* Leader: tells the followers to leave (the experiment is over). */
void node_worker_stop_followers(struct worker *w);

/* Leader with --check-nodes: serves a PROBE task until every follower has fetched
 * it, then exits. WORKER_EXIT_DONE or WORKER_EXIT_ERROR. */
int node_worker_check_leader(struct worker *w);

/* Follower (--node-rank R >= 1): the node's whole life, following the leader until it
 * says STOP. With --check-nodes it verifies one task and exits. WORKER_EXIT_*. */
int node_worker_follow(struct worker *w);

/* The sampling seed of node rank r for a round whose leader seed is s (rank 0: s). */
uint64_t node_worker_rank_seed(uint64_t s, int r);

#endif
