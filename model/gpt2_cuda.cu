// GPT-2 on one CUDA device (gpt2_cuda.h): bf16 matmuls with fp32 accumulation on
// cuBLASLt/cuBLAS, fp32 master weights, and a handful of simple kernels around them.
//
// Layouts follow gpt2.c: activations are row-major [N = B*T, width]; weights are the
// Conv1D [in, out] tensors of the flat vector. cuBLAS is column-major, so a row-major
// [rows, cols] matrix is passed as the column-major [cols, rows] matrix with ld = cols:
//   y[N,O] = x[N,K] W[K,O]      gemm(N, N, m=O, n=N, k=K, A=W  lda=O, B=x  ldb=K)
//   dx[N,K] = dy[N,O] W^T       gemm(T, N, m=K, n=N, k=O, A=W  lda=O, B=dy ldb=O)
//   dW[K,O] = x^T dy            gemm(N, T, m=O, n=K, k=N, A=dy lda=O, B=x  ldb=K)
// Attention runs head-major ([B, H, T, hs] per q, k, v) with strided-batched GEMMs over
// the B*H pairs and a causal softmax kernel between them; the probabilities of every
// layer are kept (bf16) for the backward pass.
//
// Kernels are deliberately plain: grid-stride loops for elementwise work, one warp per
// row for LayerNorm and softmax rows, one block per row for the cross-entropy over the
// vocabulary, 32-column tiles for column sums. Every reduction has a fixed order (no
// atomics), so results are reproducible run to run.
#include "model/gpt2_cuda.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common/log.h"
}

typedef __nv_bfloat16 bf16;

#define THREADS 256
#define ROWS_PER_BLOCK (THREADS / 32) // warp-per-row kernels
#define MAX_GRID (1u << 20)           // grid-stride loops cover the rest
#define NORM_BLOCKS 512               // partial sums of the gradient norm
#define LT_WORKSPACE (32u << 20)      // cuBLASLt workspace (Hopper wants 32 MiB)
#define ALIGN 256                     // every carved device tensor starts on this

// ---- errors ----------------------------------------------------------------------------

static int cuda_error(cudaError_t e, const char *what, const char *file, int line)
{
    log_error("%s:%d: %s: %s (%s)", file, line, what, cudaGetErrorString(e),
              cudaGetErrorName(e));
    return e == cudaErrorMemoryAllocation ? MODEL_ERR_NOMEM : MODEL_ERR_CUDA;
}

static int blas_error(cublasStatus_t s, const char *what, const char *file, int line)
{
    log_error("%s:%d: %s: %s", file, line, what, cublasGetStatusString(s));
    return s == CUBLAS_STATUS_ALLOC_FAILED ? MODEL_ERR_NOMEM : MODEL_ERR_CUDA;
}

#define CU(call)                                                         \
    do {                                                                 \
        cudaError_t e_ = (call);                                         \
        if (e_ != cudaSuccess)                                           \
            return cuda_error(e_, #call, __FILE__, __LINE__);            \
    } while (0)

#define BLAS(call)                                                       \
    do {                                                                 \
        cublasStatus_t s_ = (call);                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                 \
            return blas_error(s_, #call, __FILE__, __LINE__);            \
    } while (0)

// after every kernel launch: a bad configuration shows up here, faults at the next wait
#define LAUNCHED(name) CU(cudaGetLastError())

#define TRY(expr)              \
    do {                       \
        int rc_ = (expr);      \
        if (rc_)               \
            return rc_;        \
    } while (0)

// ---- the replica -------------------------------------------------------------------------

// Offsets (in elements) of one layer's tensors in the flat vector.
struct layer_off {
    size_t ln1_w, ln1_b, attn_w, attn_b, attnproj_w, attnproj_b;
    size_t ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
};

// Which parameters AdamW decays (adamw.h: the 2-D tensors), as arithmetic on the index.
// Checked against adamw_groups_gpt2's tensor table when a replica is created.
struct decay_layout {
    unsigned long long emb_end;    // (V + P) C: wte and wpe, decayed
    unsigned long long layers_end; // + L (12 C^2 + 13 C); ln_f after it, not decayed
    unsigned long long layer_size; // 12 C^2 + 13 C
    unsigned long long C;
};

struct layer_acts {
    bf16 *ln1;                 // [N,C]
    float *ln1_mean, *ln1_rstd; // [N]
    bf16 *qkvh;                // [3][B,H,T,hs]: q, k, v head-major
    bf16 *att;                 // [B,H,T,T] probabilities (0 above the diagonal)
    bf16 *atty;                // [N,C] attention output before c_proj
    float *res2;               // [N,C] x + attn
    bf16 *ln2;
    float *ln2_mean, *ln2_rstd;
    float *fch;                // [N,4C] before GELU
    bf16 *gelu;                // [N,4C]
    float *res3;               // [N,C] block output
};

struct acts {
    int max_B, max_T;
    void *base;
    size_t bytes;
    struct layer_acts *la; // host array, n_layer
    float *encoded;        // [N,C]
    bf16 *lnf;
    float *lnf_mean, *lnf_rstd;
    float *logits;         // [N,V]
    bf16 *dlogits;         // [N,V] d(mean loss)/dlogits
    float *losses;         // [N]
    float *big_f32;        // [N,4C] qkv matmul out; backward: d(gelu out), then dq|dk|dv
    bf16 *big_bf;          // [N,4C] backward: d(pre-gelu), then dqkv [N,3C]
    float *scores;         // [B,H,T,T] scaled q k^T; backward: d(probabilities)
    float *yh;             // [N,C] att v, head-major
    float *datty;          // [N,C]
    float *dln;            // [N,C] gradient arriving at a LayerNorm output
    float *dres;           // [N,C] gradient of the residual stream
    bf16 *dres_bf;         // [N,C]
    bf16 *dyh;             // [N,C] datty head-major
    int32_t *batch;        // inputs [N], targets [N], bucket positions [N], bucket
                           // tokens [<= N], bucket starts [<= N + 1]
    // pinned host staging for the batch, same layout
    int32_t *staging;
};

struct host_result {
    float loss;
    float pad;
    double sumsq;
};

struct gpt2_cuda {
    struct gpt2_config cfg;
    int device;
    size_t n_params;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *lt_ws;
    int use_lt;
    int lt_fallback_logged;

    void *pbase; // parameters, gradients, moments, bf16 copy, small scalars
    size_t pbytes;
    float *params, *grads, *mom1, *mom2; // grads: n_params + 1 (the loss last)
    bf16 *params_bf;
    double *norm_partials; // [NORM_BLOCKS]
    double *sumsq;
    float *loss_dev;

    size_t wte, wpe, lnf_w, lnf_b; // offsets
    struct layer_off *lo;          // n_layer
    struct decay_layout decay;

    struct acts a;
    cudaEvent_t staged; // the last batch upload has left the staging buffer
    struct host_result *res; // pinned
    int32_t *counts;         // host, vocab_size: bucket sort of the inputs

    int B, T;        // of the last forward
    int U;           // distinct input tokens in the last forward
    int have_targets; // a forward with targets whose backward has not run yet
};

// ---- kernels -----------------------------------------------------------------------------

namespace {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

__device__ __forceinline__ float warp_sum(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ double warp_sum_d(double x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Block-wide sum / max returned to every thread; blockDim.x is a multiple of 32.
// smem holds 32 values; the leading barrier lets a block call these back to back.
__device__ float block_sum(float x, float *smem)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads();
    if (lane == 0)
        smem[w] = x;
    __syncthreads();
    return warp_sum(lane < nw ? smem[lane] : 0.0f);
}

__device__ float block_max(float x, float *smem)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0)
        smem[w] = x;
    __syncthreads();
    return warp_max(lane < nw ? smem[lane] : -INFINITY);
}

__device__ double block_sum_d(double x, double *smem)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_sum_d(x);
    __syncthreads();
    if (lane == 0)
        smem[w] = x;
    __syncthreads();
    return warp_sum_d(lane < nw ? smem[lane] : 0.0);
}

#define GRID_STRIDE(i, n)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);            \
         i += (size_t)gridDim.x * blockDim.x)

#define WARP_ROWS(row, rows)                                                           \
    for (size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);     \
         row < (rows); row += (size_t)gridDim.x * (blockDim.x >> 5))

// x[n] = wte[tok[n]] + wpe[n mod T]
__global__ void encoder_forward(float *out, const int32_t *tok, const float *wte,
                                const float *wpe, int N, int T, int C)
{
    GRID_STRIDE(i, (size_t)N * C)
    {
        size_t n = i / C, c = i % C;
        out[i] = wte[(size_t)tok[n] * C + c] + wpe[(n % T) * C + c];
    }
}

__global__ void to_bf16(bf16 *out, const float *in, size_t n)
{
    GRID_STRIDE(i, n)
    out[i] = __float2bfloat16(in[i]);
}

// One warp per row: out = (x - mean) rstd w + b, as gpt2.c (variance about the mean).
__global__ void layernorm_forward(bf16 *out, float *mean, float *rstd, const float *x,
                                  const float *w, const float *b, int N, int C)
{
    const int lane = threadIdx.x & 31;
    WARP_ROWS(row, (size_t)N)
    {
        const float *xr = x + row * C;
        float s = 0.0f;
        for (int c = lane; c < C; c += 32)
            s += xr[c];
        float mu = warp_sum(s) / (float)C;
        float v = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float d = xr[c] - mu;
            v += d * d;
        }
        float r = 1.0f / sqrtf(warp_sum(v) / (float)C + GPT2_LN_EPS);
        bf16 *o = out + row * C;
        for (int c = lane; c < C; c += 32)
            o[c] = __float2bfloat16((xr[c] - mu) * r * w[c] + b[c]);
        if (lane == 0) {
            mean[row] = mu;
            rstd[row] = r;
        }
    }
}

// One warp per row: dx += (w dy - mean(w dy) - xhat mean(w dy xhat)) rstd.
__global__ void layernorm_backward_dx(float *dx, const float *dy, const float *x,
                                      const float *w, const float *mean, const float *rstd,
                                      int N, int C)
{
    const int lane = threadIdx.x & 31;
    WARP_ROWS(row, (size_t)N)
    {
        const float *xr = x + row * C, *dyr = dy + row * C;
        const float mu = mean[row], r = rstd[row];
        float a1 = 0.0f, a2 = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float dn = w[c] * dyr[c];
            a1 += dn;
            a2 += dn * (xr[c] - mu) * r;
        }
        a1 = warp_sum(a1) / (float)C;
        a2 = warp_sum(a2) / (float)C;
        float *dxr = dx + row * C;
        for (int c = lane; c < C; c += 32) {
            float xhat = (xr[c] - mu) * r;
            dxr[c] += (w[c] * dyr[c] - a1 - xhat * a2) * r;
        }
    }
}

// Column tiles of 32 x (32 x 16 threads): dw[c] += sum_n xhat dy, db[c] += sum_n dy.
__global__ void layernorm_backward_params(float *dw, float *db, const float *dy,
                                          const float *x, const float *mean,
                                          const float *rstd, int N, int C)
{
    __shared__ float sw[16][33], sb[16][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    float aw = 0.0f, ab = 0.0f;
    if (c < C)
        for (int n = ty; n < N; n += 16) {
            float d = dy[(size_t)n * C + c];
            aw += (x[(size_t)n * C + c] - mean[n]) * rstd[n] * d;
            ab += d;
        }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && c < C) {
        float s1 = 0.0f, s2 = 0.0f;
        for (int k = 0; k < 16; k++) {
            s1 += sw[k][tx];
            s2 += sb[k][tx];
        }
        dw[c] += s1;
        db[c] += s2;
    }
}

// out[c] += sum_n in[n, c] over a row-major [N, O] matrix (bias gradients).
template <typename Tin>
__global__ void column_sum(float *out, const Tin *in, int N, int O)
{
    __shared__ float s[16][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    float acc = 0.0f;
    if (c < O)
        for (int n = ty; n < N; n += 16)
            acc += to_f(in[(size_t)n * O + c]);
    s[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < O) {
        float sum = 0.0f;
        for (int k = 0; k < 16; k++)
            sum += s[k][tx];
        out[c] += sum;
    }
}

// out[n, o] += bias[o] (the matmul fallback without a fused epilogue)
__global__ void add_bias(float *out, const float *bias, int N, int O)
{
    GRID_STRIDE(i, (size_t)N * O)
    out[i] += bias[i % O];
}

// qkv [B,T,3,H,hs] (fp32) -> q, k, v [B,H,T,hs] (bf16), each N*C apart; and back (for the
// gradients: dq|dk|dv head-major fp32 -> dqkv [B,T,3C] bf16). i walks [B,T,3C].
__device__ __forceinline__ size_t head_major_index(size_t i, int T, int H, int hs, size_t NC)
{
    const size_t C = (size_t)H * hs;
    size_t n = i / (3 * C), r = i % (3 * C);
    size_t which = r / C, c = r % C;
    size_t b = n / T, t = n % T, h = c / hs, d = c % hs;
    return which * NC + ((b * H + h) * T + t) * hs + d;
}

__global__ void qkv_to_heads(bf16 *qkvh, const float *qkv, int N, int T, int H, int hs)
{
    const size_t NC = (size_t)N * H * hs;
    GRID_STRIDE(i, 3 * NC)
    qkvh[head_major_index(i, T, H, hs, NC)] = __float2bfloat16(qkv[i]);
}

__global__ void heads_to_qkv(bf16 *dqkv, const float *dqkvh, int N, int T, int H, int hs)
{
    const size_t NC = (size_t)N * H * hs;
    GRID_STRIDE(i, 3 * NC)
    dqkv[i] = __float2bfloat16(dqkvh[head_major_index(i, T, H, hs, NC)]);
}

// [B,T,C] <-> [B,H,T,hs] for one tensor; i walks [B,T,C].
__device__ __forceinline__ size_t head_index(size_t i, int T, int H, int hs)
{
    const size_t C = (size_t)H * hs;
    size_t n = i / C, c = i % C;
    size_t b = n / T, t = n % T, h = c / hs, d = c % hs;
    return ((b * H + h) * T + t) * hs + d;
}

__global__ void heads_to_rows(bf16 *out, const float *yh, int N, int T, int H, int hs)
{
    GRID_STRIDE(i, (size_t)N * H * hs)
    out[i] = __float2bfloat16(yh[head_index(i, T, H, hs)]);
}

__global__ void rows_to_heads(bf16 *outh, const float *y, int N, int T, int H, int hs)
{
    GRID_STRIDE(i, (size_t)N * H * hs)
    outh[head_index(i, T, H, hs)] = __float2bfloat16(y[i]);
}

// One warp per row i of a [T, T] score matrix (rows = B*H*T): causal softmax of the
// already scaled scores s[0..i]; zeros above the diagonal.
__global__ void softmax_forward(bf16 *att, const float *scores, size_t rows, int T)
{
    const int lane = threadIdx.x & 31;
    WARP_ROWS(row, rows)
    {
        const int i = (int)(row % T);
        const float *s = scores + row * T;
        float mx = -INFINITY;
        for (int j = lane; j <= i; j += 32)
            mx = fmaxf(mx, s[j]);
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int j = lane; j <= i; j += 32)
            sum += expf(s[j] - mx);
        float inv = 1.0f / warp_sum(sum);
        bf16 *p = att + row * T;
        for (int j = lane; j < T; j += 32)
            p[j] = __float2bfloat16(j <= i ? expf(s[j] - mx) * inv : 0.0f);
    }
}

// One warp per row, in place: att (probabilities P) becomes dS = P (dP - sum_j P dP),
// zeros above the diagonal. The scale of the scores is applied by the next matmuls.
__global__ void softmax_backward(bf16 *att, const float *dP, size_t rows, int T)
{
    const int lane = threadIdx.x & 31;
    WARP_ROWS(row, rows)
    {
        const int i = (int)(row % T);
        bf16 *p = att + row * T;
        const float *d = dP + row * T;
        float dot = 0.0f;
        for (int j = lane; j <= i; j += 32)
            dot += __bfloat162float(p[j]) * d[j];
        dot = warp_sum(dot);
        for (int j = lane; j < T; j += 32) {
            float v = j <= i ? __bfloat162float(p[j]) * (d[j] - dot) : 0.0f;
            p[j] = __float2bfloat16(v);
        }
    }
}

#define GELU_SCALE 0.7978845608028654f // sqrt(2/pi)

__global__ void gelu_forward(bf16 *out, const float *in, size_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = __float2bfloat16(0.5f * x * (1.0f + tanhf(u)));
    }
}

__global__ void gelu_backward(bf16 *din, const float *dout, const float *in, size_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float g = 0.5f * (1.0f + th) +
                  0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        din[i] = __float2bfloat16(dout[i] * g);
    }
}

// One block per row of logits [N, V]: loss = logsumexp - logit[target]; with dlogits,
// also d(mean loss)/dlogits = (softmax - onehot) / N.
__global__ void cross_entropy(float *losses, bf16 *dlogits, const float *logits,
                              const int32_t *targets, int N, int V, float inv_n)
{
    __shared__ float smem[32];
    for (size_t n = blockIdx.x; n < (size_t)N; n += gridDim.x) {
        const float *row = logits + n * V;
        float mx = -INFINITY;
        for (int v = threadIdx.x; v < V; v += blockDim.x)
            mx = fmaxf(mx, row[v]);
        mx = block_max(mx, smem);
        float s = 0.0f;
        for (int v = threadIdx.x; v < V; v += blockDim.x)
            s += expf(row[v] - mx);
        s = block_sum(s, smem);
        const int tgt = targets[n];
        if (threadIdx.x == 0)
            losses[n] = mx + logf(s) - row[tgt];
        if (dlogits) {
            const float inv = 1.0f / s;
            bf16 *d = dlogits + n * V;
            for (int v = threadIdx.x; v < V; v += blockDim.x) {
                float p = expf(row[v] - mx) * inv;
                d[v] = __float2bfloat16((p - (v == tgt ? 1.0f : 0.0f)) * inv_n);
            }
        }
    }
}

// One block: the mean of losses[N], summed in double in a fixed order.
__global__ void mean_loss(float *out, const float *losses, int N)
{
    __shared__ double smem[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
        acc += losses[i];
    acc = block_sum_d(acc, smem);
    if (threadIdx.x == 0)
        *out = (float)(acc / (double)N);
}

// dwpe[t, c] += sum_b dres[b, t, c]
__global__ void encoder_backward_wpe(float *dwpe, const float *dres, int B, int T, int C)
{
    GRID_STRIDE(i, (size_t)T * C)
    {
        size_t t = i / C, c = i % C;
        float s = 0.0f;
        for (int b = 0; b < B; b++)
            s += dres[((size_t)b * T + t) * C + c];
        dwpe[i] += s;
    }
}

// Block (u, column tile): dwte[tok[u], c] += sum of dres[pos, c] over the positions
// pos[start[u] .. start[u+1]) holding token tok[u] (a bucket sort made on the host).
__global__ void encoder_backward_wte(float *dwte, const float *dres, const int32_t *pos,
                                     const int32_t *tok, const int32_t *start, int C)
{
    const int u = blockIdx.x;
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float s = 0.0f;
    for (int k = start[u]; k < start[u + 1]; k++)
        s += dres[(size_t)pos[k] * C + c];
    dwte[(size_t)tok[u] * C + c] += s;
}

// Partial sums of g^2 in double (as grad_sum_squares: a float sum overflows to Inf where
// the CPU's norm is finite), one per block (NORM_BLOCKS blocks), then their sum.
__global__ void grad_sumsq_partial(double *partials, const float *g, size_t n)
{
    __shared__ double smem[32];
    double acc = 0.0;
    GRID_STRIDE(i, n)
    acc += (double)g[i] * (double)g[i];
    acc = block_sum_d(acc, smem);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = acc;
}

__global__ void grad_sumsq_final(double *out, const double *partials, int count)
{
    __shared__ double smem[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        acc += partials[i];
    acc = block_sum_d(acc, smem);
    if (threadIdx.x == 0)
        *out = acc;
}

__host__ __device__ __forceinline__ bool param_decays(unsigned long long i,
                                                      const struct decay_layout &d)
{
    if (i < d.emb_end)
        return true;
    if (i >= d.layers_end)
        return false;
    const unsigned long long C = d.C, C2 = C * C;
    unsigned long long o = (i - d.emb_end) % d.layer_size;
    return (o >= 2 * C && o < 2 * C + 3 * C2) ||            // attn.c_attn.weight
           (o >= 5 * C + 3 * C2 && o < 5 * C + 4 * C2) ||   // attn.c_proj.weight
           (o >= 8 * C + 4 * C2 && o < 8 * C + 8 * C2) ||   // mlp.c_fc.weight
           (o >= 12 * C + 8 * C2 && o < 12 * C + 12 * C2);  // mlp.c_proj.weight
}

// Clipping and AdamW in one pass (adamw.c's update(), element for element); skipped
// entirely when the gradient norm or the loss is not finite.
__global__ void adamw_update(float *p, bf16 *pbf, float *m1, float *m2, const float *g,
                            size_t n, const double *sumsq, const float *loss, float clip,
                            struct adamw_coefs k, struct decay_layout dl)
{
    const double norm = sqrt(*sumsq);
    if (!isfinite(norm) || !isfinite(*loss))
        return;
    float scale = 1.0f;
    if (clip > 0.0f) {
        double coef = (double)clip / (norm + 1e-6);
        if (coef < 1.0)
            scale = (float)coef;
    }
    GRID_STRIDE(i, n)
    {
        // _rn intrinsics: nvcc would otherwise contract these into FMAs, which round
        // differently from adamw.c's separate multiplies and adds
        float gi = __fmul_rn(g[i], scale);
        float mi = __fadd_rn(__fmul_rn(k.beta1, m1[i]), __fmul_rn(1.0f - k.beta1, gi));
        float vi = __fadd_rn(__fmul_rn(k.beta2, m2[i]), __fmul_rn(__fmul_rn(1.0f - k.beta2, gi), gi));
        m1[i] = mi;
        m2[i] = vi;
        float dm = param_decays(i, dl) ? k.decay_mul : 1.0f;
        float den = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), k.inv_sqrt_bc2), k.eps);
        float pi = __fsub_rn(__fmul_rn(p[i], dm), __fmul_rn(k.step_size, __fdiv_rn(mi, den)));
        p[i] = pi;
        pbf[i] = __float2bfloat16(pi);
    }
}

} // namespace

// ---- launch helpers --------------------------------------------------------------------

static unsigned grid_for(size_t n, unsigned threads)
{
    size_t g = (n + threads - 1) / threads;
    if (g == 0)
        g = 1;
    return g > MAX_GRID ? MAX_GRID : (unsigned)g;
}

static unsigned alignment_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a % al) != 0)
        al >>= 1;
    return al;
}

// D[M, Nn] (column-major, ld M) = alpha op(A) op(B) + beta C (+ bias[M] per column);
// A and B bf16, C and D fp32 with the same layout (C may be D; C NULL means D).
static int gemm_lt(struct gpt2_cuda *m, bool ta, bool tb, int M, int Nn, int K, float alpha,
                   const bf16 *A, int lda, const bf16 *B, int ldb, float beta, const float *C,
                   float *D, const float *bias, bool *done)
{
    *done = false;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0, rc = 0;
    cublasStatus_t st;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    cudaDataType_t bias_type = CUDA_R_32F;
    uint64_t ws = LT_WORKSPACE;
    uint32_t al_a = alignment_of(A), al_b = alignment_of(B), al_c = alignment_of(C),
             al_d = alignment_of(D);
#define LT(call)                                                   \
    do {                                                           \
        if ((st = (call)) != CUBLAS_STATUS_SUCCESS) {              \
            rc = blas_error(st, #call, __FILE__, __LINE__);        \
            goto out;                                              \
        }                                                          \
    } while (0)
    LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (bias) {
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                          sizeof bias));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                          sizeof bias_type));
    }
    LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta ? K : M, ta ? M : K, lda));
    LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb ? Nn : K, tb ? K : Nn, ldb));
    LT(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, M, Nn, M));
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                            sizeof ws));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                            &al_a, sizeof al_a));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                            &al_b, sizeof al_b));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                            &al_c, sizeof al_c));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                            &al_d, sizeof al_d));
    st = cublasLtMatmulAlgoGetHeuristic(m->lt, op, la, lb, lc, lc, pref, 1, &heur, &found);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        if (!m->lt_fallback_logged) {
            m->lt_fallback_logged = 1;
            log_debug("cuBLASLt has no algorithm for %dx%dx%d (%s); using cublasGemmEx", M, Nn,
                      K, cublasGetStatusString(st));
        }
        goto out; // not done: the caller falls back
    }
    LT(cublasLtMatmul(m->lt, op, &alpha, A, la, B, lb, &beta, C, lc, D, lc, &heur.algo,
                      m->lt_ws, LT_WORKSPACE, m->stream));
    *done = true;
#undef LT
out:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (lc)
        cublasLtMatrixLayoutDestroy(lc);
    if (lb)
        cublasLtMatrixLayoutDestroy(lb);
    if (la)
        cublasLtMatrixLayoutDestroy(la);
    if (op)
        cublasLtMatmulDescDestroy(op);
    return rc;
}

static int gemm(struct gpt2_cuda *m, bool ta, bool tb, int M, int Nn, int K, float alpha,
                const bf16 *A, int lda, const bf16 *B, int ldb, float beta, const float *C,
                float *D, const float *bias)
{
    if (!C || beta == 0.0f)
        C = D;
    // no preference describes the bias pointer's alignment: give cuBLASLt aligned ones only
    if (m->use_lt && (!bias || (uintptr_t)bias % 16 == 0)) {
        bool done;
        TRY(gemm_lt(m, ta, tb, M, Nn, K, alpha, A, lda, B, ldb, beta, C, D, bias, &done));
        if (done)
            return 0;
    }
    if (C != D)
        CU(cudaMemcpyAsync(D, C, (size_t)M * Nn * sizeof(float), cudaMemcpyDeviceToDevice,
                           m->stream));
    BLAS(cublasGemmEx(m->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, M,
                      Nn, K, &alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, D,
                      CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias) {
        add_bias<<<grid_for((size_t)M * Nn, THREADS), THREADS, 0, m->stream>>>(D, bias, Nn, M);
        LAUNCHED(add_bias);
    }
    return 0;
}

// Strided-batched: C_i = alpha op(A_i) op(B_i), i < batch (attention over B*H pairs).
static int gemm_batched(struct gpt2_cuda *m, bool ta, bool tb, int M, int Nn, int K,
                        float alpha, const bf16 *A, int lda, long long sa, const bf16 *B,
                        int ldb, long long sb, float *C, int ldc, long long sc, int batch)
{
    const float beta = 0.0f;
    BLAS(cublasGemmStridedBatchedEx(m->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    tb ? CUBLAS_OP_T : CUBLAS_OP_N, M, Nn, K, &alpha, A,
                                    CUDA_R_16BF, lda, sa, B, CUDA_R_16BF, ldb, sb, &beta, C,
                                    CUDA_R_32F, ldc, sc, batch, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
    return 0;
}

// out[N,O] = in[N,K] W[K,O] + bias (+ resid[N,O])
static int linear_forward(struct gpt2_cuda *m, float *out, const bf16 *in, const bf16 *W,
                          const float *bias, const float *resid, int N, int K, int O)
{
    return gemm(m, false, false, O, N, K, 1.0f, W, O, in, K, resid ? 1.0f : 0.0f, resid, out,
                bias);
}

// din[N,K] = dout W^T (overwritten), dW[K,O] = in^T dout (overwritten)
static int linear_backward(struct gpt2_cuda *m, float *din, float *dW, const bf16 *dout,
                           const bf16 *in, const bf16 *W, int N, int K, int O)
{
    TRY(gemm(m, true, false, K, N, O, 1.0f, W, O, dout, O, 0.0f, NULL, din, NULL));
    return gemm(m, false, true, O, K, N, 1.0f, dout, O, in, K, 0.0f, NULL, dW, NULL);
}

static int layernorm_fwd(struct gpt2_cuda *m, bf16 *out, float *mean, float *rstd,
                         const float *x, const float *w, const float *b, int N, int C)
{
    layernorm_forward<<<grid_for((size_t)N, ROWS_PER_BLOCK), THREADS, 0, m->stream>>>(
        out, mean, rstd, x, w, b, N, C);
    LAUNCHED(layernorm_forward);
    return 0;
}

// dx += d LN / dx; dw, db += parameter gradients
static int layernorm_bwd(struct gpt2_cuda *m, float *dx, float *dw, float *db, const float *dy,
                         const float *x, const float *w, const float *mean, const float *rstd,
                         int N, int C)
{
    layernorm_backward_dx<<<grid_for((size_t)N, ROWS_PER_BLOCK), THREADS, 0, m->stream>>>(
        dx, dy, x, w, mean, rstd, N, C);
    LAUNCHED(layernorm_backward_dx);
    layernorm_backward_params<<<(C + 31) / 32, dim3(32, 16), 0, m->stream>>>(dw, db, dy, x,
                                                                             mean, rstd, N, C);
    LAUNCHED(layernorm_backward_params);
    return 0;
}

template <typename Tin>
static int bias_grad(struct gpt2_cuda *m, float *db, const Tin *dout, int N, int O)
{
    column_sum<Tin><<<(O + 31) / 32, dim3(32, 16), 0, m->stream>>>(db, dout, N, O);
    LAUNCHED(column_sum);
    return 0;
}

static int convert_bf16(struct gpt2_cuda *m, bf16 *out, const float *in, size_t n)
{
    to_bf16<<<grid_for(n, THREADS), THREADS, 0, m->stream>>>(out, in, n);
    LAUNCHED(to_bf16);
    return 0;
}

// ---- memory ----------------------------------------------------------------------------

// Lays the activations for max_B x max_T out from base (or only counts with base NULL).
static size_t carve_acts(const struct gpt2_config *cfg, struct acts *a, char *base)
{
    const size_t L = (size_t)cfg->n_layer, C = (size_t)cfg->n_embd, V = (size_t)cfg->vocab_size;
    const size_t H = (size_t)cfg->n_head, B = (size_t)a->max_B, T = (size_t)a->max_T;
    const size_t N = B * T, BHTT = B * H * T * T;
    size_t used = 0;
#define TAKE(ptr, count)                                                                   \
    do {                                                                                   \
        used = (used + ALIGN - 1) / ALIGN * ALIGN;                                         \
        (ptr) = base ? (decltype(ptr))(base + used) : NULL;                                \
        used += (size_t)(count) * sizeof(*(ptr));                                          \
    } while (0)
    for (size_t l = 0; l < L; l++) {
        struct layer_acts *la = &a->la[l];
        TAKE(la->ln1, N * C);
        TAKE(la->ln1_mean, N);
        TAKE(la->ln1_rstd, N);
        TAKE(la->qkvh, 3 * N * C);
        TAKE(la->att, BHTT);
        TAKE(la->atty, N * C);
        TAKE(la->res2, N * C);
        TAKE(la->ln2, N * C);
        TAKE(la->ln2_mean, N);
        TAKE(la->ln2_rstd, N);
        TAKE(la->fch, 4 * N * C);
        TAKE(la->gelu, 4 * N * C);
        TAKE(la->res3, N * C);
    }
    TAKE(a->encoded, N * C);
    TAKE(a->lnf, N * C);
    TAKE(a->lnf_mean, N);
    TAKE(a->lnf_rstd, N);
    TAKE(a->logits, N * V);
    TAKE(a->dlogits, N * V);
    TAKE(a->losses, N);
    TAKE(a->big_f32, 4 * N * C);
    TAKE(a->big_bf, 4 * N * C);
    TAKE(a->scores, BHTT);
    TAKE(a->yh, N * C);
    TAKE(a->datty, N * C);
    TAKE(a->dln, N * C);
    TAKE(a->dres, N * C);
    TAKE(a->dres_bf, N * C);
    TAKE(a->dyh, N * C);
    TAKE(a->batch, 5 * N + 8);
#undef TAKE
    return used;
}

static void acts_free(struct acts *a)
{
    if (a->base)
        cudaFree(a->base);
    if (a->staging)
        cudaFreeHost(a->staging);
    free(a->la);
    memset(a, 0, sizeof *a);
}

static int acts_alloc(const struct gpt2_config *cfg, int max_B, int max_T, struct acts *a)
{
    memset(a, 0, sizeof *a);
    a->max_B = max_B, a->max_T = max_T;
    a->la = (struct layer_acts *)calloc((size_t)cfg->n_layer, sizeof *a->la);
    if (!a->la)
        return MODEL_ERR_NOMEM;
    a->bytes = carve_acts(cfg, a, NULL);
    const size_t staging = (5 * (size_t)max_B * max_T + 8) * sizeof(int32_t);
    cudaError_t e = cudaMalloc(&a->base, a->bytes);
    if (e == cudaSuccess)
        e = cudaMallocHost((void **)&a->staging, staging);
    if (e != cudaSuccess) {
        cudaGetLastError();
        log_error("cannot allocate %.1f MiB of device activations for B=%d T=%d: %s",
                  (double)a->bytes / (1 << 20), max_B, max_T, cudaGetErrorString(e));
        acts_free(a);
        return e == cudaErrorMemoryAllocation ? MODEL_ERR_NOMEM : MODEL_ERR_CUDA;
    }
    carve_acts(cfg, a, (char *)a->base);
    return 0;
}

// ---- lifecycle -------------------------------------------------------------------------

extern "C" int gpt2_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // no driver / no device: not an error to keep
        return 0;
    }
    return n;
}

// Tensor offsets, and the check that param_decays() agrees with the tensor table.
static int layout_init(struct gpt2_cuda *m)
{
    const struct gpt2_config *cfg = &m->cfg;
    const size_t C = (size_t)cfg->n_embd;
    m->lo = (struct layer_off *)calloc((size_t)cfg->n_layer, sizeof *m->lo);
    if (!m->lo)
        return MODEL_ERR_NOMEM;
    m->decay.C = C;
    m->decay.layer_size = 12 * C * C + 13 * C;
    m->decay.emb_end = ((size_t)cfg->vocab_size + (size_t)cfg->max_seq_len) * C;
    m->decay.layers_end = m->decay.emb_end + (size_t)cfg->n_layer * m->decay.layer_size;
    int nt = gpt2_num_tensors(cfg);
    for (int i = 0; i < nt; i++) {
        struct gpt2_tensor_info ti;
        TRY(gpt2_tensor(cfg, i, &ti));
        if (param_decays(ti.offset, m->decay) != (bool)ti.is_matrix ||
            param_decays(ti.offset + ti.numel - 1, m->decay) != (bool)ti.is_matrix) {
            log_error("gpt2_cuda: the decay layout disagrees with tensor %s", ti.name);
            return MODEL_ERR_CONFIG;
        }
        if (i == 0)
            m->wte = ti.offset;
        else if (i == 1)
            m->wpe = ti.offset;
        else if (i == nt - 2)
            m->lnf_w = ti.offset;
        else if (i == nt - 1)
            m->lnf_b = ti.offset;
        else {
            struct layer_off *lo = &m->lo[(i - 2) / 12];
            size_t *slots[12] = {&lo->ln1_w, &lo->ln1_b, &lo->attn_w, &lo->attn_b,
                                 &lo->attnproj_w, &lo->attnproj_b, &lo->ln2_w, &lo->ln2_b,
                                 &lo->fc_w, &lo->fc_b, &lo->fcproj_w, &lo->fcproj_b};
            *slots[(i - 2) % 12] = ti.offset;
        }
    }
    return 0;
}

static int params_alloc(struct gpt2_cuda *m)
{
    const size_t n = m->n_params;
    size_t used = 0, off[8];
    const size_t sizes[8] = {n * 4, (n + 1) * 4, n * 4, n * 4, n * 2, NORM_BLOCKS * 8, 8, 4};
    for (int i = 0; i < 8; i++) {
        used = (used + ALIGN - 1) / ALIGN * ALIGN;
        off[i] = used;
        used += sizes[i];
    }
    CU(cudaMalloc(&m->pbase, used));
    m->pbytes = used;
    char *b = (char *)m->pbase;
    m->params = (float *)(b + off[0]);
    m->grads = (float *)(b + off[1]);
    m->mom1 = (float *)(b + off[2]);
    m->mom2 = (float *)(b + off[3]);
    m->params_bf = (bf16 *)(b + off[4]);
    m->norm_partials = (double *)(b + off[5]);
    m->sumsq = (double *)(b + off[6]);
    m->loss_dev = (float *)(b + off[7]);
    CU(cudaMemsetAsync(m->pbase, 0, used, m->stream));
    return 0;
}

static int create(struct gpt2_cuda *m, int max_B, int max_T)
{
    CU(cudaSetDevice(m->device));
    CU(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    BLAS(cublasCreate(&m->blas));
    BLAS(cublasSetStream(m->blas, m->stream));
    BLAS(cublasLtCreate(&m->lt));
    CU(cudaMalloc(&m->lt_ws, LT_WORKSPACE));
    CU(cudaEventCreateWithFlags(&m->staged, cudaEventDisableTiming));
    CU(cudaMallocHost((void **)&m->res, sizeof *m->res));
    m->counts = (int32_t *)calloc((size_t)m->cfg.vocab_size, sizeof(int32_t));
    if (!m->counts)
        return MODEL_ERR_NOMEM;
    TRY(layout_init(m));
    TRY(params_alloc(m));
    TRY(acts_alloc(&m->cfg, max_B, max_T, &m->a));
    CU(cudaStreamSynchronize(m->stream));
    return 0;
}

extern "C" int gpt2_cuda_create(const struct gpt2_config *cfg, int device, int max_B,
                                int max_T, struct gpt2_cuda **out)
{
    *out = NULL;
    if (gpt2_config_check(cfg) != 0)
        return MODEL_ERR_CONFIG;
    if (max_B < 1 || max_T < 1 || max_T > cfg->max_seq_len ||
        (size_t)max_B * (size_t)max_T > (size_t)INT_MAX / 8)
        return MODEL_ERR_ARG;
    if (device < 0 || device >= gpt2_cuda_device_count())
        return MODEL_ERR_NO_DEVICE;
    struct gpt2_cuda *m = (struct gpt2_cuda *)calloc(1, sizeof *m);
    if (!m)
        return MODEL_ERR_NOMEM;
    m->cfg = *cfg;
    m->device = device;
    m->n_params = gpt2_num_params(cfg);
    m->use_lt = 1;
    int rc = create(m, max_B, max_T);
    if (rc) {
        gpt2_cuda_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

extern "C" void gpt2_cuda_destroy(struct gpt2_cuda *m)
{
    if (!m)
        return;
    cudaSetDevice(m->device);
    if (m->stream)
        cudaStreamSynchronize(m->stream);
    acts_free(&m->a);
    if (m->pbase)
        cudaFree(m->pbase);
    if (m->lt_ws)
        cudaFree(m->lt_ws);
    if (m->res)
        cudaFreeHost(m->res);
    if (m->staged)
        cudaEventDestroy(m->staged);
    if (m->lt)
        cublasLtDestroy(m->lt);
    if (m->blas)
        cublasDestroy(m->blas);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    cudaGetLastError(); // leave no error behind for the next user of this thread
    free(m->counts);
    free(m->lo);
    free(m);
}

extern "C" int gpt2_cuda_reserve(struct gpt2_cuda *m, int max_B, int max_T)
{
    if (max_B < 1 || max_T < 1 || max_T > m->cfg.max_seq_len ||
        (size_t)max_B * (size_t)max_T > (size_t)INT_MAX / 8)
        return MODEL_ERR_ARG;
    if (max_B <= m->a.max_B && max_T <= m->a.max_T)
        return 0;
    if (max_B < m->a.max_B)
        max_B = m->a.max_B;
    if (max_T < m->a.max_T)
        max_T = m->a.max_T;
    CU(cudaSetDevice(m->device));
    CU(cudaStreamSynchronize(m->stream));
    struct acts fresh;
    TRY(acts_alloc(&m->cfg, max_B, max_T, &fresh));
    acts_free(&m->a);
    m->a = fresh;
    m->have_targets = 0;
    return 0;
}

extern "C" int gpt2_cuda_device(const struct gpt2_cuda *m) { return m->device; }
extern "C" size_t gpt2_cuda_num_params(const struct gpt2_cuda *m) { return m->n_params; }
extern "C" void *gpt2_cuda_stream(struct gpt2_cuda *m) { return (void *)m->stream; }
extern "C" void gpt2_cuda_use_cublaslt(struct gpt2_cuda *m, int on) { m->use_lt = on != 0; }

extern "C" size_t gpt2_cuda_memory_bytes(const struct gpt2_cuda *m)
{
    return m->pbytes + m->a.bytes + LT_WORKSPACE;
}

extern "C" float *gpt2_cuda_grad_buffer(struct gpt2_cuda *m, size_t *count)
{
    if (count)
        *count = m->n_params + 1;
    return m->grads;
}

// ---- parameters and moments ----------------------------------------------------------

static int copy_in(struct gpt2_cuda *m, float *dst, const float *src, size_t n)
{
    CU(cudaSetDevice(m->device));
    CU(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, m->stream));
    return 0;
}

static int copy_out(struct gpt2_cuda *m, float *dst, const float *src, size_t n)
{
    CU(cudaSetDevice(m->device));
    CU(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, m->stream));
    CU(cudaStreamSynchronize(m->stream));
    return 0;
}

extern "C" int gpt2_cuda_set_params(struct gpt2_cuda *m, const float *flat)
{
    TRY(copy_in(m, m->params, flat, m->n_params));
    TRY(convert_bf16(m, m->params_bf, m->params, m->n_params));
    CU(cudaStreamSynchronize(m->stream));
    return 0;
}

extern "C" int gpt2_cuda_get_params(struct gpt2_cuda *m, float *flat)
{
    return copy_out(m, flat, m->params, m->n_params);
}

extern "C" int gpt2_cuda_get_grads(struct gpt2_cuda *m, float *flat)
{
    return copy_out(m, flat, m->grads, m->n_params);
}

extern "C" int gpt2_cuda_get_moments(struct gpt2_cuda *m, float *mom1, float *mom2)
{
    TRY(copy_out(m, mom1, m->mom1, m->n_params));
    return copy_out(m, mom2, m->mom2, m->n_params);
}

extern "C" int gpt2_cuda_set_moments(struct gpt2_cuda *m, const float *mom1, const float *mom2)
{
    TRY(copy_in(m, m->mom1, mom1, m->n_params));
    TRY(copy_in(m, m->mom2, mom2, m->n_params));
    CU(cudaStreamSynchronize(m->stream));
    return 0;
}

extern "C" int gpt2_cuda_zero_moments(struct gpt2_cuda *m)
{
    CU(cudaSetDevice(m->device));
    CU(cudaMemsetAsync(m->mom1, 0, m->n_params * sizeof(float), m->stream));
    CU(cudaMemsetAsync(m->mom2, 0, m->n_params * sizeof(float), m->stream));
    CU(cudaStreamSynchronize(m->stream));
    return 0;
}

// ---- forward ----------------------------------------------------------------------------

// Fills the staging buffer: inputs, targets, and the inputs bucketed by token (positions
// in increasing order per token) for the embedding gradient. Returns the ints used.
static size_t stage_batch(struct gpt2_cuda *m, const int32_t *inputs, const int32_t *targets,
                          int N)
{
    int32_t *s = m->a.staging;
    int32_t *in = s, *tg = s + N, *pos = s + 2 * (size_t)N, *tok = s + 3 * (size_t)N,
            *start = s + 4 * (size_t)N;
    const int V = m->cfg.vocab_size;
    memcpy(in, inputs, (size_t)N * sizeof(int32_t));
    if (targets)
        memcpy(tg, targets, (size_t)N * sizeof(int32_t));
    int32_t *cnt = m->counts;
    memset(cnt, 0, (size_t)V * sizeof(int32_t));
    for (int n = 0; n < N; n++)
        cnt[inputs[n]]++;
    int U = 0, off = 0;
    for (int v = 0; v < V; v++) {
        if (!cnt[v])
            continue;
        tok[U] = v;
        start[U] = off;
        off += cnt[v];
        cnt[v] = start[U]; // now the next free slot of bucket v
        U++;
    }
    start[U] = N;
    for (int n = 0; n < N; n++)
        pos[cnt[inputs[n]]++] = n;
    m->U = U;
    return 4 * (size_t)N + (size_t)U + 1;
}

static int forward_enqueue(struct gpt2_cuda *m, bool with_targets)
{
    const int B = m->B, T = m->T, N = B * T;
    const int C = m->cfg.n_embd, H = m->cfg.n_head, hs = C / H, V = m->cfg.vocab_size;
    const int L = m->cfg.n_layer;
    const size_t NC = (size_t)N * C;
    const float scale = 1.0f / sqrtf((float)hs);
    struct acts *a = &m->a;
    const float *P = m->params;
    const bf16 *PB = m->params_bf;
    cudaStream_t s = m->stream;

    encoder_forward<<<grid_for(NC, THREADS), THREADS, 0, s>>>(a->encoded, a->batch, P + m->wte,
                                                              P + m->wpe, N, T, C);
    LAUNCHED(encoder_forward);
    const float *x = a->encoded;
    for (int l = 0; l < L; l++) {
        const struct layer_off *o = &m->lo[l];
        struct layer_acts *la = &a->la[l];
        TRY(layernorm_fwd(m, la->ln1, la->ln1_mean, la->ln1_rstd, x, P + o->ln1_w,
                          P + o->ln1_b, N, C));
        TRY(linear_forward(m, a->big_f32, la->ln1, PB + o->attn_w, P + o->attn_b, NULL, N, C,
                           3 * C));
        qkv_to_heads<<<grid_for(3 * NC, THREADS), THREADS, 0, s>>>(la->qkvh, a->big_f32, N, T,
                                                                     H, hs);
        LAUNCHED(qkv_to_heads);
        const bf16 *q = la->qkvh, *k = q + NC, *v = k + NC;
        const long long Ths = (long long)T * hs, TT = (long long)T * T;
        // scores[b,h] (row-major [Tq, Tk]) = scale q k^T
        TRY(gemm_batched(m, true, false, T, T, hs, scale, k, hs, Ths, q, hs, Ths, a->scores, T,
                         TT, B * H));
        softmax_forward<<<grid_for((size_t)B * H * T, ROWS_PER_BLOCK), THREADS, 0, s>>>(
            la->att, a->scores, (size_t)B * H * T, T);
        LAUNCHED(softmax_forward);
        // y[b,h] ([Tq, hs]) = att v
        TRY(gemm_batched(m, false, false, hs, T, T, 1.0f, v, hs, Ths, la->att, T, TT, a->yh, hs,
                         Ths, B * H));
        heads_to_rows<<<grid_for(NC, THREADS), THREADS, 0, s>>>(la->atty, a->yh, N, T, H, hs);
        LAUNCHED(heads_to_rows);
        TRY(linear_forward(m, la->res2, la->atty, PB + o->attnproj_w, P + o->attnproj_b, x, N, C,
                           C));
        TRY(layernorm_fwd(m, la->ln2, la->ln2_mean, la->ln2_rstd, la->res2, P + o->ln2_w,
                          P + o->ln2_b, N, C));
        TRY(linear_forward(m, la->fch, la->ln2, PB + o->fc_w, P + o->fc_b, NULL, N, C, 4 * C));
        gelu_forward<<<grid_for(4 * NC, THREADS), THREADS, 0, s>>>(la->gelu, la->fch, 4 * NC);
        LAUNCHED(gelu_forward);
        TRY(linear_forward(m, la->res3, la->gelu, PB + o->fcproj_w, P + o->fcproj_b, la->res2, N,
                           4 * C, C));
        x = la->res3;
    }
    TRY(layernorm_fwd(m, a->lnf, a->lnf_mean, a->lnf_rstd, x, P + m->lnf_w, P + m->lnf_b, N, C));
    // logits[N,V] = lnf wte^T
    TRY(gemm(m, true, false, V, N, C, 1.0f, PB + m->wte, C, a->lnf, C, 0.0f, NULL, a->logits,
             NULL));
    if (with_targets) {
        unsigned threads = V >= 1024 ? 1024 : (V >= 256 ? 256 : 64);
        cross_entropy<<<grid_for((size_t)N, 1), threads, 0, s>>>(
            a->losses, a->dlogits, a->logits, a->batch + N, N, V, 1.0f / (float)N);
        LAUNCHED(cross_entropy);
        mean_loss<<<1, 1024, 0, s>>>(m->loss_dev, a->losses, N);
        LAUNCHED(mean_loss);
    }
    return 0;
}

extern "C" int gpt2_cuda_forward(struct gpt2_cuda *m, const int32_t *inputs,
                                 const int32_t *targets, int B, int T)
{
    if (!m || !inputs || B < 1 || T < 1 || B > m->a.max_B || T > m->a.max_T)
        return MODEL_ERR_ARG;
    const int V = m->cfg.vocab_size, N = B * T;
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
            return MODEL_ERR_TOKEN;
    CU(cudaSetDevice(m->device));
    CU(cudaEventSynchronize(m->staged)); // the previous upload has left the staging buffer
    size_t ints = stage_batch(m, inputs, targets, N);
    CU(cudaMemcpyAsync(m->a.batch, m->a.staging, ints * sizeof(int32_t), cudaMemcpyHostToDevice,
                       m->stream));
    CU(cudaEventRecord(m->staged, m->stream));
    m->B = B, m->T = T;
    m->have_targets = 0;
    TRY(forward_enqueue(m, targets != NULL));
    m->have_targets = targets != NULL;
    return 0;
}

extern "C" int gpt2_cuda_loss(struct gpt2_cuda *m, float *loss)
{
    CU(cudaSetDevice(m->device));
    CU(cudaMemcpyAsync(&m->res->loss, m->loss_dev, sizeof(float), cudaMemcpyDeviceToHost,
                       m->stream));
    CU(cudaStreamSynchronize(m->stream));
    *loss = m->res->loss;
    return 0;
}

extern "C" int gpt2_cuda_get_logits(struct gpt2_cuda *m, float *logits)
{
    return copy_out(m, logits, m->a.logits, (size_t)m->B * m->T * m->cfg.vocab_size);
}

// ---- backward ---------------------------------------------------------------------------

static int backward_enqueue(struct gpt2_cuda *m)
{
    const int B = m->B, T = m->T, N = B * T;
    const int C = m->cfg.n_embd, H = m->cfg.n_head, hs = C / H, V = m->cfg.vocab_size;
    const int L = m->cfg.n_layer;
    const size_t NC = (size_t)N * C;
    const float scale = 1.0f / sqrtf((float)hs);
    struct acts *a = &m->a;
    const float *P = m->params;
    const bf16 *PB = m->params_bf;
    float *G = m->grads;
    cudaStream_t s = m->stream;

    CU(cudaMemsetAsync(G, 0, (m->n_params + 1) * sizeof(float), s));
    CU(cudaMemsetAsync(a->dres, 0, NC * sizeof(float), s));
    // logits = lnf wte^T: dlnf = dlogits wte, dwte = dlogits^T lnf
    TRY(gemm(m, false, false, C, N, V, 1.0f, PB + m->wte, C, a->dlogits, V, 0.0f, NULL, a->dln,
             NULL));
    TRY(gemm(m, false, true, C, V, N, 1.0f, a->lnf, C, a->dlogits, V, 0.0f, NULL, G + m->wte,
             NULL));
    TRY(layernorm_bwd(m, a->dres, G + m->lnf_w, G + m->lnf_b, a->dln, a->la[L - 1].res3,
                      P + m->lnf_w, a->lnf_mean, a->lnf_rstd, N, C));

    for (int l = L - 1; l >= 0; l--) {
        const struct layer_off *o = &m->lo[l];
        struct layer_acts *la = &a->la[l];
        const float *x = l == 0 ? a->encoded : a->la[l - 1].res3;

        // MLP: res3 = res2 + gelu(ln2 Wfc + bfc) Wp + bp; dres flows to res2 unchanged
        TRY(convert_bf16(m, a->dres_bf, a->dres, NC));
        TRY(bias_grad<float>(m, G + o->fcproj_b, a->dres, N, C));
        TRY(linear_backward(m, a->big_f32, G + o->fcproj_w, a->dres_bf, la->gelu,
                            PB + o->fcproj_w, N, 4 * C, C));
        gelu_backward<<<grid_for(4 * NC, THREADS), THREADS, 0, s>>>(a->big_bf, a->big_f32,
                                                                      la->fch, 4 * NC);
        LAUNCHED(gelu_backward);
        TRY(bias_grad<bf16>(m, G + o->fc_b, a->big_bf, N, 4 * C));
        TRY(linear_backward(m, a->dln, G + o->fc_w, a->big_bf, la->ln2, PB + o->fc_w, N, C,
                            4 * C));
        TRY(layernorm_bwd(m, a->dres, G + o->ln2_w, G + o->ln2_b, a->dln, la->res2,
                          P + o->ln2_w, la->ln2_mean, la->ln2_rstd, N, C));

        // attention: res2 = x + atty Wp + bp
        TRY(convert_bf16(m, a->dres_bf, a->dres, NC));
        TRY(bias_grad<float>(m, G + o->attnproj_b, a->dres, N, C));
        TRY(linear_backward(m, a->datty, G + o->attnproj_w, a->dres_bf, la->atty,
                            PB + o->attnproj_w, N, C, C));
        rows_to_heads<<<grid_for(NC, THREADS), THREADS, 0, s>>>(a->dyh, a->datty, N, T, H, hs);
        LAUNCHED(rows_to_heads);
        const bf16 *q = la->qkvh, *k = q + NC, *v = k + NC;
        float *dq = a->big_f32, *dk = dq + NC, *dv = dk + NC;
        const long long Ths = (long long)T * hs, TT = (long long)T * T;
        // dP = dy v^T (into scores), dv = att^T dy
        TRY(gemm_batched(m, true, false, T, T, hs, 1.0f, v, hs, Ths, a->dyh, hs, Ths, a->scores,
                         T, TT, B * H));
        TRY(gemm_batched(m, false, true, hs, T, T, 1.0f, a->dyh, hs, Ths, la->att, T, TT, dv, hs,
                         Ths, B * H));
        softmax_backward<<<grid_for((size_t)B * H * T, ROWS_PER_BLOCK), THREADS, 0, s>>>(
            la->att, a->scores, (size_t)B * H * T, T);
        LAUNCHED(softmax_backward);
        const bf16 *dS = la->att;
        // scores = scale q k^T: dq = scale dS k, dk = scale dS^T q
        TRY(gemm_batched(m, false, false, hs, T, T, scale, k, hs, Ths, dS, T, TT, dq, hs, Ths,
                         B * H));
        TRY(gemm_batched(m, false, true, hs, T, T, scale, q, hs, Ths, dS, T, TT, dk, hs, Ths,
                         B * H));
        heads_to_qkv<<<grid_for(3 * NC, THREADS), THREADS, 0, s>>>(a->big_bf, a->big_f32, N, T,
                                                                     H, hs);
        LAUNCHED(heads_to_qkv);
        TRY(bias_grad<bf16>(m, G + o->attn_b, a->big_bf, N, 3 * C));
        TRY(linear_backward(m, a->dln, G + o->attn_w, a->big_bf, la->ln1, PB + o->attn_w, N, C,
                            3 * C));
        TRY(layernorm_bwd(m, a->dres, G + o->ln1_w, G + o->ln1_b, a->dln, x, P + o->ln1_w,
                          la->ln1_mean, la->ln1_rstd, N, C));
    }
    encoder_backward_wpe<<<grid_for((size_t)T * C, THREADS), THREADS, 0, s>>>(G + m->wpe,
                                                                               a->dres, B, T, C);
    LAUNCHED(encoder_backward_wpe);
    const int32_t *pos = a->batch + 2 * (size_t)N, *tok = a->batch + 3 * (size_t)N,
                  *start = a->batch + 4 * (size_t)N;
    encoder_backward_wte<<<dim3(m->U, (C + THREADS - 1) / THREADS), THREADS, 0, s>>>(
        G + m->wte, a->dres, pos, tok, start, C);
    LAUNCHED(encoder_backward_wte);
    CU(cudaMemcpyAsync(G + m->n_params, m->loss_dev, sizeof(float), cudaMemcpyDeviceToDevice, s));
    return 0;
}

extern "C" int gpt2_cuda_backward(struct gpt2_cuda *m)
{
    if (!m || !m->have_targets)
        return MODEL_ERR_ARG;
    m->have_targets = 0; // the attention probabilities are consumed below
    CU(cudaSetDevice(m->device));
    return backward_enqueue(m);
}

// ---- optimizer --------------------------------------------------------------------------

extern "C" int gpt2_cuda_optimizer_step(struct gpt2_cuda *m, const struct adamw_hparams *h,
                                        uint64_t step, float grad_clip)
{
    if (!m || !h || step == 0)
        return MODEL_ERR_ARG;
    struct adamw_state s;
    memset(&s, 0, sizeof s);
    s.step = step - 1;
    struct adamw_coefs k;
    adamw_begin_step(&s, h, &k); // the CPU's coefficients, bit for bit
    CU(cudaSetDevice(m->device));
    const size_t n = m->n_params;
    grad_sumsq_partial<<<NORM_BLOCKS, THREADS, 0, m->stream>>>(m->norm_partials, m->grads, n);
    LAUNCHED(grad_sumsq_partial);
    grad_sumsq_final<<<1, THREADS, 0, m->stream>>>(m->sumsq, m->norm_partials, NORM_BLOCKS);
    LAUNCHED(grad_sumsq_final);
    adamw_update<<<grid_for(n, THREADS), THREADS, 0, m->stream>>>(
        m->params, m->params_bf, m->mom1, m->mom2, m->grads, n, m->sumsq, m->grads + n,
        grad_clip, k, m->decay);
    LAUNCHED(adamw_update);
    return 0;
}

extern "C" int gpt2_cuda_step_result(struct gpt2_cuda *m, float *loss, double *grad_norm)
{
    CU(cudaSetDevice(m->device));
    CU(cudaMemcpyAsync(&m->res->loss, m->grads + m->n_params, sizeof(float),
                       cudaMemcpyDeviceToHost, m->stream));
    CU(cudaMemcpyAsync(&m->res->sumsq, m->sumsq, sizeof(double), cudaMemcpyDeviceToHost,
                       m->stream));
    CU(cudaStreamSynchronize(m->stream));
    *loss = m->res->loss;
    *grad_norm = sqrt(m->res->sumsq);
    return 0;
}
