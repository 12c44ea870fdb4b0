/* NCCL communicators for the CUDA trainer (nccl_group.h), and the unique-id hook of
 * trainer_cuda.h. */
#include "model/nccl_group.h"

#include <string.h>

#ifdef AULAC_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

_Static_assert(TRAINER_NCCL_ID_BYTES == NCCL_UNIQUE_ID_BYTES, "NCCL id size");

struct nccl_group {
    int n;      /* local devices */
    int nranks; /* whole group */
    int aborted;
    int devices[TRAINER_MAX_GPUS];
    ncclComm_t comm[TRAINER_MAX_GPUS];
    cudaStream_t stream[TRAINER_MAX_GPUS];
    cudaEvent_t ready[TRAINER_MAX_GPUS]; /* on the compute stream: gradients are complete */
    cudaEvent_t done[TRAINER_MAX_GPUS];  /* on the NCCL stream: the average is in place */
};

static int cuda_fail(cudaError_t e, const char *what, const char *file, int line)
{
    log_error("%s:%d: %s: %s (%s)", file, line, what, cudaGetErrorString(e),
              cudaGetErrorName(e));
    return MODEL_ERR_CUDA;
}

static int nccl_fail(ncclResult_t r, ncclComm_t comm, const char *what, const char *file,
                     int line)
{
    const char *detail = ncclGetLastError(comm);
    log_error("%s:%d: %s: %s%s%s", file, line, what, ncclGetErrorString(r),
              detail && detail[0] ? ": " : "", detail ? detail : "");
    return MODEL_ERR_CUDA;
}

#define CU(call)                                                      \
    do {                                                              \
        cudaError_t e_ = (call);                                      \
        if (e_ != cudaSuccess)                                        \
            return cuda_fail(e_, #call, __FILE__, __LINE__);          \
    } while (0)

#define NC(call, comm)                                                \
    do {                                                              \
        ncclResult_t r_ = (call);                                     \
        if (r_ != ncclSuccess)                                        \
            return nccl_fail(r_, (comm), #call, __FILE__, __LINE__);  \
    } while (0)

static int init_comms(struct nccl_group *g, const struct trainer_nccl_boot *boot)
{
    if (!boot) {
        NC(ncclCommInitAll(g->comm, g->n, g->devices), NULL);
        return 0;
    }
    ncclUniqueId id;
    memcpy(id.internal, boot->id, sizeof id.internal);
    /* One thread initializes several ranks: NCCL requires a group around them. */
    NC(ncclGroupStart(), NULL);
    ncclResult_t first = ncclSuccess;
    for (int i = 0; i < g->n; i++) {
        cudaError_t e = cudaSetDevice(g->devices[i]);
        if (e != cudaSuccess) {
            ncclGroupEnd();
            return cuda_fail(e, "cudaSetDevice", __FILE__, __LINE__);
        }
        ncclResult_t r = ncclCommInitRank(&g->comm[i], boot->nranks, id, boot->first_rank + i);
        if (r != ncclSuccess && first == ncclSuccess)
            first = r;
    }
    ncclResult_t end = ncclGroupEnd();
    if (first != ncclSuccess)
        return nccl_fail(first, NULL, "ncclCommInitRank", __FILE__, __LINE__);
    NC(end, NULL);
    return 0;
}

int nccl_group_create(const int *devices, int n_local, const struct trainer_nccl_boot *boot,
                      struct nccl_group **out)
{
    *out = NULL;
    if (n_local < 1 || n_local > TRAINER_MAX_GPUS)
        return MODEL_ERR_ARG;
    if (boot && (boot->nranks < n_local || boot->first_rank < 0 ||
                 boot->first_rank > boot->nranks - n_local))
        return MODEL_ERR_ARG;
    struct nccl_group *g = calloc(1, sizeof *g);
    if (!g)
        return MODEL_ERR_NOMEM;
    g->n = n_local;
    g->nranks = boot ? boot->nranks : n_local;
    memcpy(g->devices, devices, (size_t)n_local * sizeof(int));
    int rc = 0;
    for (int i = 0; i < n_local && !rc; i++) {
        cudaError_t e = cudaSetDevice(devices[i]);
        if (e == cudaSuccess)
            e = cudaStreamCreateWithFlags(&g->stream[i], cudaStreamNonBlocking);
        if (e == cudaSuccess)
            e = cudaEventCreateWithFlags(&g->ready[i], cudaEventDisableTiming);
        if (e == cudaSuccess)
            e = cudaEventCreateWithFlags(&g->done[i], cudaEventDisableTiming);
        if (e != cudaSuccess)
            rc = cuda_fail(e, "stream and events for NCCL", __FILE__, __LINE__);
    }
    if (!rc)
        rc = init_comms(g, boot);
    if (rc) {
        nccl_group_destroy(g);
        return rc;
    }
    log_info("NCCL %d.%d.%d: %d local GPU(s), %d rank(s) in all", NCCL_MAJOR, NCCL_MINOR,
             NCCL_PATCH, g->n, g->nranks);
    *out = g;
    return 0;
}

void nccl_group_destroy(struct nccl_group *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        cudaSetDevice(g->devices[i]);
        if (g->comm[i])
            ncclCommDestroy(g->comm[i]);
        if (g->stream[i])
            cudaStreamDestroy(g->stream[i]);
        if (g->ready[i])
            cudaEventDestroy(g->ready[i]);
        if (g->done[i])
            cudaEventDestroy(g->done[i]);
    }
    cudaGetLastError();
    free(g);
}

int nccl_group_ranks(const struct nccl_group *g) { return g->nranks; }

int nccl_group_allreduce_avg(struct nccl_group *g, float *const *bufs, size_t count,
                             void *const *compute_streams)
{
    if (g->aborted)
        return MODEL_ERR_CUDA;
    for (int i = 0; i < g->n; i++) {
        CU(cudaSetDevice(g->devices[i]));
        CU(cudaEventRecord(g->ready[i], (cudaStream_t)compute_streams[i]));
        CU(cudaStreamWaitEvent(g->stream[i], g->ready[i], 0));
    }
    NC(ncclGroupStart(), NULL);
    ncclResult_t first = ncclSuccess;
    int first_i = 0;
    for (int i = 0; i < g->n; i++) {
        ncclResult_t r = ncclAllReduce(bufs[i], bufs[i], count, ncclFloat, ncclAvg, g->comm[i],
                                       g->stream[i]);
        if (r != ncclSuccess && first == ncclSuccess)
            first = r, first_i = i;
    }
    ncclResult_t end = ncclGroupEnd();
    if (first != ncclSuccess)
        return nccl_fail(first, g->comm[first_i], "ncclAllReduce", __FILE__, __LINE__);
    NC(end, g->comm[0]);
    for (int i = 0; i < g->n; i++) {
        CU(cudaSetDevice(g->devices[i]));
        CU(cudaEventRecord(g->done[i], g->stream[i]));
        CU(cudaStreamWaitEvent((cudaStream_t)compute_streams[i], g->done[i], 0));
    }
    return 0;
}

int nccl_group_broadcast_host(struct nccl_group *g, float *host, size_t count)
{
    if (g->aborted)
        return MODEL_ERR_CUDA;
    const size_t bytes = count * sizeof(float);
    float *dev[TRAINER_MAX_GPUS] = { 0 };
    int rc = 0;
    for (int i = 0; i < g->n && !rc; i++) {
        cudaError_t e = cudaSetDevice(g->devices[i]);
        if (e == cudaSuccess && (e = cudaMalloc((void **)&dev[i], bytes)) != cudaSuccess) {
            cudaGetLastError();
            dev[i] = NULL;
            rc = MODEL_ERR_NOMEM;
            break;
        }
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(dev[i], host, bytes, cudaMemcpyHostToDevice, g->stream[i]);
        if (e != cudaSuccess)
            rc = cuda_fail(e, "staging the broadcast", __FILE__, __LINE__);
    }
    if (!rc) {
        ncclResult_t first = ncclGroupStart();
        int first_i = 0;
        for (int i = 0; i < g->n && first == ncclSuccess; i++) {
            first = ncclBroadcast(dev[i], dev[i], count, ncclFloat, 0, g->comm[i], g->stream[i]);
            first_i = i;
        }
        ncclResult_t end = ncclGroupEnd();
        if (first == ncclSuccess)
            first = end;
        if (first != ncclSuccess)
            rc = nccl_fail(first, g->comm[first_i], "ncclBroadcast", __FILE__, __LINE__);
    }
    for (int i = 0; i < g->n && !rc; i++) {
        cudaError_t e = cudaSetDevice(g->devices[i]);
        if (e == cudaSuccess)
            e = cudaEventRecord(g->done[i], g->stream[i]);
        if (e != cudaSuccess)
            rc = cuda_fail(e, "cudaEventRecord (broadcast)", __FILE__, __LINE__);
    }
    if (!rc)
        rc = nccl_group_wait(g);
    if (!rc) {
        cudaError_t e = cudaSetDevice(g->devices[0]);
        if (e == cudaSuccess)
            e = cudaMemcpy(host, dev[0], bytes, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess)
            rc = cuda_fail(e, "reading the broadcast", __FILE__, __LINE__);
    }
    for (int i = 0; i < g->n; i++) {
        if (dev[i]) {
            cudaSetDevice(g->devices[i]);
            cudaFree(dev[i]);
        }
    }
    return rc;
}

int nccl_group_wait(struct nccl_group *g)
{
    if (g->aborted)
        return MODEL_ERR_CUDA;
    const struct timespec nap = {0, 20000}; /* 20 us */
    for (int i = 0; i < g->n; i++) {
        CU(cudaSetDevice(g->devices[i]));
        for (;;) {
            cudaError_t e = cudaEventQuery(g->done[i]);
            if (e == cudaSuccess)
                break;
            if (e != cudaErrorNotReady)
                return cuda_fail(e, "cudaEventQuery (all-reduce)", __FILE__, __LINE__);
            ncclResult_t async = ncclSuccess;
            NC(ncclCommGetAsyncError(g->comm[i], &async), g->comm[i]);
            if (async != ncclSuccess && async != ncclInProgress) {
                int rc = nccl_fail(async, g->comm[i], "NCCL all-reduce", __FILE__, __LINE__);
                /* aborting ends the kernels still waiting for the lost ranks */
                for (int j = 0; j < g->n; j++) {
                    cudaSetDevice(g->devices[j]);
                    ncclCommAbort(g->comm[j]);
                    g->comm[j] = NULL;
                }
                g->aborted = 1;
                return rc;
            }
            nanosleep(&nap, NULL);
        }
    }
    return 0;
}

int trainer_nccl_id_new(uint8_t id[TRAINER_NCCL_ID_BYTES])
{
    ncclUniqueId u;
    NC(ncclGetUniqueId(&u), NULL);
    memcpy(id, u.internal, TRAINER_NCCL_ID_BYTES);
    return 0;
}

#else /* no CUDA in this build */

int trainer_nccl_id_new(uint8_t id[TRAINER_NCCL_ID_BYTES])
{
    memset(id, 0, TRAINER_NCCL_ID_BYTES);
    return MODEL_ERR_NO_CUDA;
}

#endif
