// The update codec on a CUDA device (codec_cuda.h). Selection and quantization run on
// the GPU; the host only compacts the kept values into the payload format and applies
// zstd (codec_finish), so GPU and CPU payloads share one writer and one reader.
//
// Encode, sparse (k < block): one thread block per codec block.
//   1. max |v| and the number of non-zeros (v = delta + residual);
//   2. radix select (4 passes of 8 bits over the magnitude bits) finds the k-th largest
//      magnitude T and how many values equal to T are taken (ties to the lower index);
//   3. each thread owns a contiguous run of the block, so block-wide exclusive scans give
//      index-ordered ranks among equals and index-ordered output slots;
//   4. kept values are quantized with codec_quantize() (codec_quant.h, shared with the
//      CPU), the residual gets what was dropped.
// Encode, dense: per-block scales, then one thread per value (per byte for int4).
// Decode: the payload is validated on the host (codec_view_open); positions and values
// are uploaded and one thread block per codec block adds weight * value into acc.
// The programs link the C++ runtime (-lstdc++) for nvcc's kernel launch code.

#include "codec/codec_cuda.h"

#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec_internal.h"
#include "codec/codec_quant.h"

#define THREADS 256
#define MAX_GRID 65535u

enum { BUF_COUNTS, BUF_SCALES, BUF_POS, BUF_CODES, BUF_VALUES, BUF_OFFS, BUF_FLAG, BUF_N };

struct codec_cuda {
    int device;
    cudaStream_t stream;
    int own_stream;
    void *buf[BUF_N];
    size_t cap[BUF_N];
    char last_error[256];
};

static int cuda_fail(struct codec_cuda *c, cudaError_t e, const char *what)
{
    if (c)
        snprintf(c->last_error, sizeof c->last_error, "%s: %s (%s)", what,
                 cudaGetErrorString(e), cudaGetErrorName(e));
    return CODEC_ERR_CUDA;
}

#define CU(call, what)                                   \
    do {                                                 \
        cudaError_t e_ = (call);                         \
        if (e_ != cudaSuccess)                           \
            return cuda_fail(c, e_, what);               \
    } while (0)

static int ensure(struct codec_cuda *c, int slot, size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (c->cap[slot] >= bytes)
        return 0;
    if (c->buf[slot]) {
        cudaFree(c->buf[slot]);
        c->buf[slot] = NULL;
        c->cap[slot] = 0;
    }
    size_t want = bytes + bytes / 4;
    CU(cudaMalloc(&c->buf[slot], want), "cudaMalloc");
    c->cap[slot] = want;
    return 0;
}

// Kernels and device helpers stay private to this file (other .cu files link alongside).
namespace {

// --- block-wide helpers (blockDim.x == THREADS, a multiple of 32) ---------------------

__device__ uint32_t warp_sum(uint32_t x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_down_sync(0xffffffffu, x, o);
    return x;
}

__device__ uint32_t warp_max(uint32_t x)
{
    for (int o = 16; o > 0; o >>= 1) {
        uint32_t y = __shfl_down_sync(0xffffffffu, x, o);
        x = y > x ? y : x;
    }
    return x;
}

// Sum or max over the block, returned to every thread.
__device__ uint32_t block_reduce(uint32_t x, bool is_max, uint32_t *smem)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = is_max ? warp_max(x) : warp_sum(x);
    if (lane == 0)
        smem[wid] = x;
    __syncthreads();
    if (wid == 0) {
        uint32_t y = lane < nw ? smem[lane] : 0;
        y = is_max ? warp_max(y) : warp_sum(y);
        if (lane == 0)
            smem[32] = y;
    }
    __syncthreads();
    uint32_t r = smem[32];
    __syncthreads();
    return r;
}

// Exclusive prefix sum over the block in thread order; *total gets the sum.
__device__ uint32_t block_exclusive_scan(uint32_t x, uint32_t *smem, uint32_t *total)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    uint32_t inc = x;
    for (int o = 1; o < 32; o <<= 1) {
        uint32_t y = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o)
            inc += y;
    }
    if (lane == 31)
        smem[wid] = inc;
    __syncthreads();
    if (wid == 0) {
        uint32_t w = lane < nw ? smem[lane] : 0, winc = w;
        for (int o = 1; o < 32; o <<= 1) {
            uint32_t y = __shfl_up_sync(0xffffffffu, winc, o);
            if (lane >= o)
                winc += y;
        }
        if (lane < nw)
            smem[lane] = winc - w;
        if (lane == 31)
            smem[32] = winc;
    }
    __syncthreads();
    uint32_t r = smem[wid] + inc - x;
    *total = smem[32];
    __syncthreads();
    return r;
}

__device__ inline float load_v(const float *d, const float *r, uint64_t i)
{
    return r ? d[i] + r[i] : d[i];
}

__device__ inline uint32_t mag(float v) { return codec_f32_bits(v) & 0x7fffffffu; }

// --- kernels --------------------------------------------------------------------------

__global__ void k_nonfinite(const float *d, const float *r, uint64_t n, int *flag)
{
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        if ((codec_f32_bits(load_v(d, r, i)) & 0x7f800000u) == 0x7f800000u) {
            *flag = 1;
            return;
        }
}

// Code storage per kept slot: 4 bytes (fp32), 2 (fp16), 1 (int8, fp8, int4 as a byte).
__device__ inline void put_code(uint8_t *codes, uint64_t slot, int q, uint32_t code)
{
    if (q == CODEC_QUANT_FP32)
        ((uint32_t *)codes)[slot] = code;
    else if (q == CODEC_QUANT_FP16)
        ((uint16_t *)codes)[slot] = (uint16_t)code;
    else
        codes[slot] = (uint8_t)code;
}

__global__ void __launch_bounds__(THREADS)
k_encode_sparse(const float *d, float *r, uint64_t n, uint64_t nb, uint32_t B, uint32_t K,
                int q, uint16_t *counts, float *scales, uint16_t *pos, uint8_t *codes)
{
    __shared__ uint32_t hist[256];
    __shared__ uint32_t smem[33];
    __shared__ uint32_t s_digit, s_above;
    const int tid = threadIdx.x;
    for (uint64_t b = blockIdx.x; b < nb; b += gridDim.x) {
        const uint64_t base = b * B;
        const uint32_t len = (uint32_t)(n - base < B ? n - base : B);
        const float *db = d + base;
        float *rb = r ? r + base : NULL;

        uint32_t mx = 0, nnz = 0;
        for (uint32_t i = tid; i < len; i += THREADS) {
            uint32_t a = mag(load_v(db, rb, i));
            mx = a > mx ? a : mx;
            nnz += a != 0;
        }
        mx = block_reduce(mx, true, smem);
        nnz = block_reduce(nnz, false, smem);
        const uint32_t k = K < len ? K : len;

        // Threshold: keep a > thr, and the first take_eq of a == thr in index order.
        uint32_t thr = 0, take_eq = 0;
        if (nnz > k) {
            uint32_t prefix = 0, mask = 0, remaining = k;
            for (int shift = 24; shift >= 0; shift -= 8) {
                hist[tid] = 0;      // THREADS == 256 bins
                __syncthreads();
                for (uint32_t i = tid; i < len; i += THREADS) {
                    uint32_t a = mag(load_v(db, rb, i));
                    if ((a & mask) == prefix)
                        atomicAdd(&hist[(a >> shift) & 0xffu], 1u);
                }
                __syncthreads();
                if (tid == 0) {
                    uint32_t cum = 0;
                    for (int dg = 255; dg >= 0; dg--) {
                        if (cum + hist[dg] >= remaining) {
                            s_digit = (uint32_t)dg;
                            s_above = cum;
                            break;
                        }
                        cum += hist[dg];
                    }
                }
                __syncthreads();
                remaining -= s_above;
                prefix |= s_digit << shift;
                mask |= 0xffu << shift;
                __syncthreads();
            }
            thr = prefix;
            take_eq = remaining;
        }

        // Contiguous runs per thread: ranks among equals, then output slots.
        const uint32_t run = (len + THREADS - 1) / THREADS;
        const uint32_t lo = tid * run < len ? tid * run : len;
        const uint32_t hi = lo + run < len ? lo + run : len;
        uint32_t eq = 0;
        if (nnz > k)
            for (uint32_t i = lo; i < hi; i++)
                eq += mag(load_v(db, rb, i)) == thr;
        uint32_t total_eq;
        uint32_t eq_before = block_exclusive_scan(eq, smem, &total_eq);
        uint32_t keep = 0, e = eq_before;
        for (uint32_t i = lo; i < hi; i++) {
            uint32_t a = mag(load_v(db, rb, i));
            bool kept = nnz > k ? (a > thr || (a == thr && e++ < take_eq)) : a != 0;
            keep += kept;
        }
        uint32_t count;
        uint32_t slot = block_exclusive_scan(keep, smem, &count);

        const float scale = codec_block_scale((enum codec_quant)q, codec_bits_f32(mx));
        e = eq_before;
        for (uint32_t i = lo; i < hi; i++) {
            float v = load_v(db, rb, i);
            uint32_t a = mag(v);
            bool kept = nnz > k ? (a > thr || (a == thr && e++ < take_eq)) : a != 0;
            if (kept) {
                float deq;
                uint32_t code = codec_quantize((enum codec_quant)q, v, scale, &deq);
                pos[b * K + slot] = (uint16_t)i;
                put_code(codes, b * K + slot, q, code);
                slot++;
                if (rb)
                    rb[i] = v - deq;
            } else if (rb) {
                rb[i] = v;
            }
        }
        if (tid == 0) {
            counts[b] = (uint16_t)count;
            scales[b] = scale;
        }
        __syncthreads();
    }
}

__global__ void __launch_bounds__(THREADS)
k_block_scales(const float *d, const float *r, uint64_t n, uint64_t nb, uint32_t B, int q,
               float *scales)
{
    __shared__ uint32_t smem[33];
    for (uint64_t b = blockIdx.x; b < nb; b += gridDim.x) {
        const uint64_t base = b * B;
        const uint32_t len = (uint32_t)(n - base < B ? n - base : B);
        uint32_t mx = 0;
        for (uint32_t i = threadIdx.x; i < len; i += THREADS) {
            uint32_t a = mag(load_v(d, r, base + i));
            mx = a > mx ? a : mx;
        }
        mx = block_reduce(mx, true, smem);
        if (threadIdx.x == 0)
            scales[b] = codec_block_scale((enum codec_quant)q, codec_bits_f32(mx));
    }
}

// One thread per value (fp32/fp16/int8/fp8) or per pair of values (int4 byte).
__global__ void k_encode_dense(const float *d, float *r, uint64_t n, uint32_t B, int q,
                               const float *scales, uint8_t *values)
{
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    const uint64_t items = q == CODEC_QUANT_INT4 ? (n + 1) / 2 : n;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < items; t += stride) {
        if (q == CODEC_QUANT_INT4) {
            uint8_t byte = 0;
            for (int h = 0; h < 2; h++) {
                uint64_t i = 2 * t + h;
                if (i >= n)
                    break;
                float v = load_v(d, r, i), deq;
                uint32_t code = codec_quantize(CODEC_QUANT_INT4, v, scales[i / B], &deq);
                byte |= (uint8_t)((code & 0xfu) << (4 * h));
                if (r)
                    r[i] = v - deq;
            }
            values[t] = byte;
            continue;
        }
        float v = load_v(d, r, t), deq;
        float scale = q == CODEC_QUANT_FP32 ? 1.0f : scales[t / B];
        uint32_t code = codec_quantize((enum codec_quant)q, v, scale, &deq);
        put_code(values, t, q, code);
        if (r)
            r[t] = v - deq;
    }
}

__device__ inline float code_value(int q, const uint8_t *vals, uint64_t j)
{
    switch (q) {
    case CODEC_QUANT_INT8: return (float)(int8_t)vals[j];
    case CODEC_QUANT_INT4: {
        uint8_t nib = (uint8_t)((vals[j >> 1] >> ((j & 1) * 4)) & 0xf);
        return (float)((int8_t)(uint8_t)(nib << 4) >> 4);
    }
    case CODEC_QUANT_FP16: return codec_f16_to_f32(((const uint16_t *)vals)[j]);
    case CODEC_QUANT_FP8_E4M3: return codec_e4m3_to_f32(vals[j]);
    default: return ((const float *)vals)[j];
    }
}

__global__ void k_acc_dense(float *acc, uint64_t n, uint32_t B, int q, const float *scales,
                            const uint8_t *vals, float weight)
{
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float ws = scales ? weight * scales[i / B] : weight;
        acc[i] += code_value(q, vals, i) * ws;
    }
}

// Positions are distinct within a block and blocks are disjoint: no atomics needed.
__global__ void k_acc_sparse(float *acc, uint64_t nb, uint32_t B, int q, const float *scales,
                             const uint64_t *offs, const uint16_t *pos, const uint8_t *vals,
                             float weight)
{
    for (uint64_t b = blockIdx.x; b < nb; b += gridDim.x) {
        float ws = scales ? weight * scales[b] : weight;
        float *a = acc + b * B;
        for (uint64_t j = offs[b] + threadIdx.x; j < offs[b + 1]; j += blockDim.x)
            a[pos[j]] += code_value(q, vals, j) * ws;
    }
}

}  // namespace

// --- host API ---------------------------------------------------------------------------

static unsigned grid_for(uint64_t items)
{
    uint64_t g = (items + THREADS - 1) / THREADS;
    return (unsigned)(g < 1 ? 1 : (g > MAX_GRID * 16 ? MAX_GRID * 16 : g));
}

extern "C" int codec_cuda_device_count(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();     // clear the sticky "no driver" error
        return 0;
    }
    return count;
}

extern "C" int codec_cuda_create(int device, void *stream, struct codec_cuda **out)
{
    if (!out)
        return CODEC_ERR_ARG;
    *out = NULL;
    int count = codec_cuda_device_count();
    if (count <= 0 || device < 0 || device >= count)
        return CODEC_ERR_NO_CUDA;
    struct codec_cuda *c = (struct codec_cuda *)calloc(1, sizeof *c);
    if (!c)
        return CODEC_ERR_NOMEM;
    c->device = device;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess && !stream) {
        e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
        c->own_stream = e == cudaSuccess;
    } else {
        c->stream = (cudaStream_t)stream;
    }
    if (e != cudaSuccess) {
        free(c);
        return CODEC_ERR_CUDA;
    }
    *out = c;
    return 0;
}

extern "C" void codec_cuda_destroy(struct codec_cuda *c)
{
    if (!c)
        return;
    cudaSetDevice(c->device);
    for (int i = 0; i < BUF_N; i++)
        if (c->buf[i])
            cudaFree(c->buf[i]);
    if (c->own_stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" const char *codec_cuda_last_error(const struct codec_cuda *c)
{
    return c ? c->last_error : "";
}

static int check_launch(struct codec_cuda *c, const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return cuda_fail(c, e, what);
    return 0;
}

static void put_value_host(enum codec_quant q, uint8_t *vals, uint64_t j, const uint8_t *codes,
                           uint64_t slot)
{
    switch (q) {
    case CODEC_QUANT_FP32: memcpy(vals + 4 * j, codes + 4 * slot, 4); break;
    case CODEC_QUANT_FP16: memcpy(vals + 2 * j, codes + 2 * slot, 2); break;
    case CODEC_QUANT_INT4:
        if (j & 1)
            vals[j >> 1] |= (uint8_t)((codes[slot] & 0xfu) << 4);
        else
            vals[j >> 1] = (uint8_t)(codes[slot] & 0xfu);
        break;
    default: vals[j] = codes[slot]; break;
    }
}

extern "C" int codec_cuda_encode(struct codec_cuda *c, const float *d_delta, size_t n,
                                 const struct codec_params *params, float *d_residual,
                                 uint8_t **payload, size_t *payload_len)
{
    if (!payload || !payload_len || !params || (n && !d_delta))
        return CODEC_ERR_ARG;
    *payload = NULL;
    *payload_len = 0;
    if (!c)
        return CODEC_ERR_NO_CUDA;
    int rc = codec_params_validate(params, NULL, 0);
    if (rc)
        return rc;
    if ((uint64_t)n > CODEC_MAX_N)
        return CODEC_ERR_TOO_LARGE;
    if (params->error_feedback && n && !d_residual)
        return CODEC_ERR_ARG;
    c->last_error[0] = '\0';
    CU(cudaSetDevice(c->device), "cudaSetDevice");

    struct codec_params p = *params;
    const uint32_t B = p.block_size;
    if (p.k_per_block > B)
        p.k_per_block = B;
    const uint32_t K = p.k_per_block;
    const int dense = K == B;
    const enum codec_quant q = p.quant;
    const uint64_t nb = (n + B - 1) / B;
    float *r = params->error_feedback ? d_residual : NULL;
    const unsigned block_grid = (unsigned)(nb < MAX_GRID ? (nb ? nb : 1) : MAX_GRID);

    // NaN/Inf first, so a refused encode leaves the residual as it was.
    if ((rc = ensure(c, BUF_FLAG, sizeof(int))))
        return rc;
    int *d_flag = (int *)c->buf[BUF_FLAG];
    CU(cudaMemsetAsync(d_flag, 0, sizeof(int), c->stream), "cudaMemsetAsync");
    if (n)
        k_nonfinite<<<grid_for(n), THREADS, 0, c->stream>>>(d_delta, r, n, d_flag);
    if ((rc = check_launch(c, "nonfinite kernel")))
        return rc;
    int flag = 0;
    CU(cudaMemcpyAsync(&flag, d_flag, sizeof flag, cudaMemcpyDeviceToHost, c->stream),
       "cudaMemcpyAsync");
    CU(cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
    if (flag)
        return CODEC_ERR_NONFINITE;

    const size_t scales_len = q == CODEC_QUANT_FP32 ? 0 : (size_t)nb * 4;
    if ((rc = ensure(c, BUF_SCALES, (size_t)nb * 4)))
        return rc;
    float *d_scales = (float *)c->buf[BUF_SCALES];

    if (dense) {
        const uint64_t body_len = codec_body_len(1, q, n, nb, n);
        uint8_t *buf = (uint8_t *)malloc((size_t)(CODEC_HEADER_LEN + body_len));
        if (!buf)
            return CODEC_ERR_NOMEM;
        const size_t vlen = (size_t)codec_values_bytes(q, n);
        if ((rc = ensure(c, BUF_VALUES, vlen))) {
            free(buf);
            return rc;
        }
        uint8_t *d_vals = (uint8_t *)c->buf[BUF_VALUES];
        if (n && q != CODEC_QUANT_FP32)
            k_block_scales<<<block_grid, THREADS, 0, c->stream>>>(d_delta, r, n, nb, B, (int)q,
                                                                  d_scales);
        if (n)
            k_encode_dense<<<grid_for(q == CODEC_QUANT_INT4 ? (n + 1) / 2 : n), THREADS, 0,
                             c->stream>>>(d_delta, r, n, B, (int)q, d_scales, d_vals);
        cudaError_t e = cudaGetLastError();
        if (e == cudaSuccess && scales_len)
            e = cudaMemcpyAsync(buf + CODEC_HEADER_LEN, d_scales, scales_len,
                                cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess && vlen)
            e = cudaMemcpyAsync(buf + CODEC_HEADER_LEN + scales_len, d_vals, vlen,
                                cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) {
            free(buf);
            return cuda_fail(c, e, "dense encode");
        }
        return codec_finish(&p, n, n, buf, (size_t)body_len, payload, payload_len);
    }

    const uint32_t slot_bytes = codec_value_bytes(q);       // int4: one byte per slot
    const size_t slots = (size_t)nb * K;
    if ((rc = ensure(c, BUF_COUNTS, (size_t)nb * 2)) || (rc = ensure(c, BUF_POS, slots * 2)) ||
        (rc = ensure(c, BUF_CODES, slots * slot_bytes)))
        return rc;
    uint16_t *d_counts = (uint16_t *)c->buf[BUF_COUNTS];
    uint16_t *d_pos = (uint16_t *)c->buf[BUF_POS];
    uint8_t *d_codes = (uint8_t *)c->buf[BUF_CODES];
    if (n)
        k_encode_sparse<<<block_grid, THREADS, 0, c->stream>>>(d_delta, r, n, nb, B, K, (int)q,
                                                               d_counts, d_scales, d_pos,
                                                               d_codes);
    if ((rc = check_launch(c, "sparse encode kernel")))
        return rc;

    uint16_t *h_counts = (uint16_t *)malloc((size_t)nb * 2 + 2);
    float *h_scales = (float *)malloc((size_t)nb * 4 + 4);
    uint16_t *h_pos = (uint16_t *)malloc(slots * 2 + 2);
    uint8_t *h_codes = (uint8_t *)malloc(slots * slot_bytes + 4);
    uint8_t *buf = NULL;
    rc = 0;
    if (!h_counts || !h_scales || !h_pos || !h_codes) {
        rc = CODEC_ERR_NOMEM;
    } else {
        cudaError_t e = cudaSuccess;
        if (nb) {
            e = cudaMemcpyAsync(h_counts, d_counts, (size_t)nb * 2, cudaMemcpyDeviceToHost,
                                c->stream);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(h_scales, d_scales, (size_t)nb * 4, cudaMemcpyDeviceToHost,
                                    c->stream);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(h_pos, d_pos, slots * 2, cudaMemcpyDeviceToHost, c->stream);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(h_codes, d_codes, slots * slot_bytes, cudaMemcpyDeviceToHost,
                                    c->stream);
        }
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess)
            rc = cuda_fail(c, e, "sparse encode copy");
    }
    uint64_t total = 0;
    for (uint64_t b = 0; !rc && b < nb; b++)
        total += h_counts[b];
    uint64_t body_len = codec_body_len(0, q, n, nb, total);
    if (!rc && !(buf = (uint8_t *)malloc((size_t)(CODEC_HEADER_LEN + body_len))))
        rc = CODEC_ERR_NOMEM;
    if (!rc) {
        uint8_t *body = buf + CODEC_HEADER_LEN;
        uint8_t *counts = body, *scales = counts + nb * 2;
        uint8_t *gaps = scales + scales_len, *vals = gaps + total * 2;
        memcpy(counts, h_counts, (size_t)nb * 2);
        if (scales_len)
            memcpy(scales, h_scales, scales_len);
        uint64_t j = 0;
        for (uint64_t b = 0; b < nb; b++) {
            uint32_t prev = 0;
            for (uint32_t s = 0; s < h_counts[b]; s++, j++) {
                uint32_t at = h_pos[b * K + s];
                uint16_t g = (uint16_t)(s ? at - prev - 1 : at);
                memcpy(gaps + 2 * j, &g, 2);
                prev = at;
                put_value_host(q, vals, j, h_codes, b * K + s);
            }
        }
    }
    free(h_counts);
    free(h_scales);
    free(h_pos);
    free(h_codes);
    if (rc) {
        free(buf);
        return rc;
    }
    return codec_finish(&p, n, total, buf, (size_t)body_len, payload, payload_len);
}

extern "C" int codec_cuda_decode_accumulate(struct codec_cuda *c, const uint8_t *payload,
                                            size_t len, size_t n_expected, float weight,
                                            float *d_acc, char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!payload || (n_expected && !d_acc) || !(weight - weight == 0.0f)) {
        if (why && why_len)
            snprintf(why, why_len, "NULL payload or accumulator, or weight not finite");
        return CODEC_ERR_ARG;
    }
    if (!c) {
        if (why && why_len)
            snprintf(why, why_len, "no CUDA context");
        return CODEC_ERR_NO_CUDA;
    }
    c->last_error[0] = '\0';
    struct codec_view v;
    int rc = codec_view_open(payload, len, n_expected, &v, why, why_len);
    if (rc)
        return rc;
    cudaError_t e = cudaSetDevice(c->device);
    const enum codec_quant q = v.h.quant;
    const uint64_t nb = v.nb, total = v.h.total;
    const size_t vlen = (size_t)codec_values_bytes(q, total);
    const unsigned block_grid = (unsigned)(nb < MAX_GRID ? (nb ? nb : 1) : MAX_GRID);
    float *d_scales = NULL;
    if (e == cudaSuccess && v.scales) {
        if ((rc = ensure(c, BUF_SCALES, (size_t)nb * 4)))
            goto out;
        d_scales = (float *)c->buf[BUF_SCALES];
        e = cudaMemcpyAsync(d_scales, v.scales, (size_t)nb * 4, cudaMemcpyHostToDevice,
                            c->stream);
    }
    if (e == cudaSuccess) {
        if ((rc = ensure(c, BUF_VALUES, vlen)))
            goto out;
        if (vlen)
            e = cudaMemcpyAsync(c->buf[BUF_VALUES], v.values, vlen, cudaMemcpyHostToDevice,
                                c->stream);
    }
    if (e == cudaSuccess && v.dense) {
        if (v.h.n)
            k_acc_dense<<<grid_for(v.h.n), THREADS, 0, c->stream>>>(
                d_acc, v.h.n, v.h.block_size, (int)q, d_scales,
                (const uint8_t *)c->buf[BUF_VALUES], weight);
        e = cudaGetLastError();
    } else if (e == cudaSuccess) {
        // Absolute in-block positions and per-block offsets, from the validated gaps.
        uint64_t *offs = (uint64_t *)malloc((size_t)(nb + 1) * 8);
        uint16_t *pos = (uint16_t *)malloc((size_t)total * 2 + 2);
        if (!offs || !pos) {
            free(offs);
            free(pos);
            rc = CODEC_ERR_NOMEM;
            goto out;
        }
        uint64_t j = 0;
        for (uint64_t b = 0; b < nb; b++) {
            offs[b] = j;
            uint16_t cnt;
            memcpy(&cnt, v.counts + 2 * b, 2);
            uint32_t at = 0;
            for (uint32_t s = 0; s < cnt; s++, j++) {
                uint16_t g;
                memcpy(&g, v.gaps + 2 * j, 2);
                at = s ? at + 1u + g : g;
                pos[j] = (uint16_t)at;
            }
        }
        offs[nb] = j;
        if (!(rc = ensure(c, BUF_OFFS, (size_t)(nb + 1) * 8)) &&
            !(rc = ensure(c, BUF_POS, (size_t)total * 2))) {
            e = cudaMemcpyAsync(c->buf[BUF_OFFS], offs, (size_t)(nb + 1) * 8,
                                cudaMemcpyHostToDevice, c->stream);
            if (e == cudaSuccess && total)
                e = cudaMemcpyAsync(c->buf[BUF_POS], pos, (size_t)total * 2,
                                    cudaMemcpyHostToDevice, c->stream);
            // The host arrays must outlive the copies.
            if (e == cudaSuccess)
                e = cudaStreamSynchronize(c->stream);
            if (e == cudaSuccess && total) {
                k_acc_sparse<<<block_grid, THREADS, 0, c->stream>>>(
                    d_acc, nb, v.h.block_size, (int)q, d_scales, (const uint64_t *)c->buf[BUF_OFFS],
                    (const uint16_t *)c->buf[BUF_POS], (const uint8_t *)c->buf[BUF_VALUES], weight);
                e = cudaGetLastError();
            }
        }
        free(offs);
        free(pos);
        if (rc)
            goto out;
    }
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        rc = cuda_fail(c, e, "decode-accumulate");
        if (why && why_len)
            snprintf(why, why_len, "%s", c->last_error);
    }
out:
    codec_view_close(&v);
    return rc;
}
