#ifndef AULAC_MODEL_NCCL_GROUP_H
#define AULAC_MODEL_NCCL_GROUP_H
/* Gradient averaging across replicas with NCCL: one communicator per local device, each
 * with its own stream, all driven from one thread (NCCL group calls). Internal to
 * model/; only in builds with CUDA (AULAC_HAVE_CUDA).
 *
 * Errors: MODEL_ERR_CUDA (logged with file:line, NCCL's words and its last error
 * message), MODEL_ERR_NOMEM, MODEL_ERR_ARG. */
#include <stddef.h>

#include "model/trainer_cuda.h"

struct nccl_group;

/* Communicators for devices[0..n_local): with boot NULL the local devices are the whole
 * group (ncclCommInitAll); otherwise device i joins as rank boot->first_rank + i of
 * boot->nranks (ncclCommInitRank in one NCCL group), which waits for every rank. */
int nccl_group_create(const int *devices, int n_local, const struct trainer_nccl_boot *boot,
                      struct nccl_group **out);
void nccl_group_destroy(struct nccl_group *g);

/* Ranks in the whole group (all nodes). */
int nccl_group_ranks(const struct nccl_group *g);

/* Enqueues bufs[i] (device memory of device i, count floats) := the mean over all ranks,
 * in place. On device i the reduction starts after the work already enqueued on
 * compute_streams[i] (a cudaStream_t) and everything enqueued there afterwards waits
 * for it: events, no host synchronization. */
int nccl_group_allreduce_avg(struct nccl_group *g, float *const *bufs, size_t count,
                             void *const *compute_streams);

/* Copies host[0..count) of rank 0 (its first local device) to host on every rank, staged
 * through device memory of each local device (an ncclBroadcast). A collective: every
 * rank calls it. Waits, watching NCCL's asynchronous errors as nccl_group_wait. */
int nccl_group_broadcast_host(struct nccl_group *g, float *host, size_t count);

/* Waits for the last all-reduce on every local device while watching NCCL's
 * asynchronous errors (a rank that died or a network failure): on such an error the
 * communicators are aborted and MODEL_ERR_CUDA returned; the group may then only be
 * destroyed. */
int nccl_group_wait(struct nccl_group *g);

#endif
