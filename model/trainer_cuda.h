#ifndef AULAC_MODEL_TRAINER_CUDA_H
#define AULAC_MODEL_TRAINER_CUDA_H
/* What the CUDA trainer (TRAINER_BACKEND_CUDA of model/trainer.h) offers beyond the
 * common interface: the device count, and the hooks for training one member's replica
 * across several nodes with NCCL. Always linkable: builds without CUDA answer
 * MODEL_ERR_NO_CUDA and a device count of 0.
 *
 * One node: trainer_create() with backend CUDA and opts.gpus = G uses devices 0..G-1 of
 * this process (CUDA_VISIBLE_DEVICES picks which), one replica each, driven from the
 * calling thread. Every step each replica draws its own batch of opts.batch rows from
 * the batch callback (called G times per step, from the calling thread), so a step sees
 * G * batch rows; the gradients (and the loss) are averaged with an NCCL all-reduce on a
 * stream of its own, ordered after the backward pass and before the optimizer step by
 * events. The replicas stay identical: they apply the same averaged gradient with the
 * same kernels. Statistics count the tokens of all local replicas.
 *
 * Several nodes (model/README.md describes the design): every node of the member runs
 * one worker; the node with rank 0 calls trainer_nccl_id_new() and sends the id, with
 * nranks and each node's first_rank, to the other nodes over the member's own
 * authenticated channel (the worker's job); then every node calls
 * trainer_create_distributed() with the same id and nranks, and must run the same
 * number of train steps with the same options, or the collective waits for the
 * missing ranks. */
#include <stdint.h>

#include "model/trainer.h"

#define TRAINER_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */
#define TRAINER_MAX_GPUS 64       /* per process */

struct trainer_nccl_boot {
    uint8_t id[TRAINER_NCCL_ID_BYTES]; /* from trainer_nccl_id_new() on rank 0 */
    int nranks;                        /* GPUs over all the member's nodes */
    int first_rank;                    /* rank of this process's first GPU; its GPUs are
                                          first_rank .. first_rank + gpus - 1 */
};

/* Usable CUDA devices: 0 without CUDA support, a driver or a device. */
int trainer_cuda_device_count(void);

/* A fresh NCCL unique id (ncclGetUniqueId): it names the group and the address of
 * rank 0's bootstrap listener, so only the member's own nodes may see it.
 * MODEL_ERR_NO_CUDA, MODEL_ERR_CUDA. */
int trainer_nccl_id_new(uint8_t id[TRAINER_NCCL_ID_BYTES]);

/* trainer_create() for one process of a multi-node group: opts->backend must be
 * TRAINER_BACKEND_CUDA and boot must satisfy 0 <= first_rank and first_rank + gpus <=
 * nranks (MODEL_ERR_ARG). Blocks until every rank of the group has joined (NCCL's own
 * bootstrap over TCP to the address in the id). Errors as trainer_create(). */
int trainer_create_distributed(const struct gpt2_config *cfg, const struct trainer_opts *opts,
                               const struct trainer_nccl_boot *boot, struct trainer **out);

/* For a trainer of trainer_create_distributed(): every replica of every rank takes the
 * parameters, AdamW moments and optimizer step of rank 0's first replica (an NCCL
 * broadcast), so that all nodes start a round from the same state, whatever each had
 * before. A collective: every rank calls it. MODEL_ERR_ARG (not a CUDA trainer, or one
 * without a group), MODEL_ERR_NO_CUDA, MODEL_ERR_NOMEM, MODEL_ERR_CUDA. */
int trainer_cuda_sync_from_rank0(struct trainer *t);

#endif
