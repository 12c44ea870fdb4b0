/* GPT-2 forward and backward in fp32 on the CPU. Every matmul is an OpenBLAS sgemm;
 * the rest (LayerNorm, GELU, softmax, cross-entropy) are loops over rows. All of it
 * runs on the model's own thread pool (model/parallel.h): matmuls split into
 * single-threaded sgemm calls over row or column blocks, attention over (batch, head)
 * pairs, reductions over columns so that no two threads write the same float.
 * Layouts and the parameter order are documented in gpt2.h. */
#include "model/gpt2.h"

/* GCC's default -ftrapping-math keeps the float selects (clamps, max) of the loops
 * below as branches, which stops them from vectorizing. Nothing here enables FP traps,
 * so let it assume they cannot happen; values are unchanged. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/parallel.h"
#include "model/rng.h"

/* ---- configuration and tensor table ------------------------------------------ */

#define GPT2_TENSORS_PER_LAYER 12

int gpt2_config_check(const struct gpt2_config *cfg)
{
    if (!cfg || cfg->vocab_size < 1 || cfg->max_seq_len < 1 || cfg->n_layer < 1 ||
        cfg->n_head < 1 || cfg->n_embd < 1)
        return MODEL_ERR_CONFIG;
    if (cfg->n_embd % cfg->n_head != 0)
        return MODEL_ERR_CONFIG;
    if (cfg->vocab_size > (1 << 24) || cfg->max_seq_len > (1 << 20) ||
        cfg->n_layer > 4096 || cfg->n_embd > (1 << 16))
        return MODEL_ERR_CONFIG;
    uint64_t C = (uint64_t)cfg->n_embd;
    uint64_t n = ((uint64_t)cfg->vocab_size + (uint64_t)cfg->max_seq_len) * C +
                 (uint64_t)cfg->n_layer * (12 * C * C + 13 * C) + 2 * C;
    if (n >= GPT2_MAX_PARAMS)
        return MODEL_ERR_CONFIG;
    return 0;
}

size_t gpt2_num_params(const struct gpt2_config *cfg)
{
    if (gpt2_config_check(cfg) != 0)
        return 0;
    size_t C = (size_t)cfg->n_embd;
    return ((size_t)cfg->vocab_size + (size_t)cfg->max_seq_len) * C +
           (size_t)cfg->n_layer * (12 * C * C + 13 * C) + 2 * C;
}

int gpt2_num_tensors(const struct gpt2_config *cfg)
{
    if (gpt2_config_check(cfg) != 0)
        return 0;
    return 4 + GPT2_TENSORS_PER_LAYER * cfg->n_layer;
}

static const struct {
    const char *suffix;
    int rows_mult; /* rows in units of C (0: 1-D tensor) */
    int cols_mult; /* columns (or length) in units of C */
} layer_tensors[GPT2_TENSORS_PER_LAYER] = {
    {"ln_1.weight", 0, 1},       {"ln_1.bias", 0, 1},
    {"attn.c_attn.weight", 1, 3}, {"attn.c_attn.bias", 0, 3},
    {"attn.c_proj.weight", 1, 1}, {"attn.c_proj.bias", 0, 1},
    {"ln_2.weight", 0, 1},       {"ln_2.bias", 0, 1},
    {"mlp.c_fc.weight", 1, 4},   {"mlp.c_fc.bias", 0, 4},
    {"mlp.c_proj.weight", 4, 1}, {"mlp.c_proj.bias", 0, 1},
};

int gpt2_tensor(const struct gpt2_config *cfg, int i, struct gpt2_tensor_info *out)
{
    int nt = gpt2_num_tensors(cfg);
    if (nt == 0)
        return MODEL_ERR_CONFIG;
    if (i < 0 || i >= nt || !out)
        return MODEL_ERR_ARG;
    memset(out, 0, sizeof *out);
    size_t C = (size_t)cfg->n_embd, V = (size_t)cfg->vocab_size, P = (size_t)cfg->max_seq_len;
    size_t layer_size = 12 * C * C + 13 * C;
    size_t rows = 0, cols = 0;
    if (i == 0) {
        strcpy(out->name, "wte.weight");
        out->offset = 0, rows = V, cols = C;
    } else if (i == 1) {
        strcpy(out->name, "wpe.weight");
        out->offset = V * C, rows = P, cols = C;
    } else if (i >= nt - 2) {
        strcpy(out->name, i == nt - 2 ? "ln_f.weight" : "ln_f.bias");
        out->offset = (V + P) * C + (size_t)cfg->n_layer * layer_size + (i == nt - 1 ? C : 0);
        cols = C;
    } else {
        int layer = (i - 2) / GPT2_TENSORS_PER_LAYER, k = (i - 2) % GPT2_TENSORS_PER_LAYER;
        size_t off = (V + P) * C + (size_t)layer * layer_size;
        for (int j = 0; j < k; j++) {
            size_t r = (size_t)layer_tensors[j].rows_mult * C;
            off += (r ? r : 1) * (size_t)layer_tensors[j].cols_mult * C;
        }
        snprintf(out->name, sizeof out->name, "h.%d.%s", layer, layer_tensors[k].suffix);
        out->offset = off;
        rows = (size_t)layer_tensors[k].rows_mult * C;
        cols = (size_t)layer_tensors[k].cols_mult * C;
    }
    if (rows) {
        out->ndim = 2, out->shape[0] = (int)rows, out->shape[1] = (int)cols;
        out->numel = rows * cols, out->is_matrix = 1;
    } else {
        out->ndim = 1, out->shape[0] = (int)cols, out->numel = cols;
    }
    return 0;
}

/* Pointers into one flat vector (parameters or gradients). */
struct layer_params {
    float *ln1_w, *ln1_b, *attn_w, *attn_b, *attnproj_w, *attnproj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
};

struct params {
    float *wte, *wpe, *lnf_w, *lnf_b;
    struct layer_params *h; /* n_layer */
};

static void carve_params(const struct gpt2_config *cfg, float *flat, struct params *p)
{
    struct gpt2_tensor_info ti;
    int nt = gpt2_num_tensors(cfg);
    for (int i = 0; i < nt; i++) {
        gpt2_tensor(cfg, i, &ti);
        float *ptr = flat + ti.offset;
        if (i == 0)
            p->wte = ptr;
        else if (i == 1)
            p->wpe = ptr;
        else if (i == nt - 2)
            p->lnf_w = ptr;
        else if (i == nt - 1)
            p->lnf_b = ptr;
        else {
            struct layer_params *lp = &p->h[(i - 2) / GPT2_TENSORS_PER_LAYER];
            float **slots[GPT2_TENSORS_PER_LAYER] = {
                &lp->ln1_w, &lp->ln1_b, &lp->attn_w, &lp->attn_b, &lp->attnproj_w,
                &lp->attnproj_b, &lp->ln2_w, &lp->ln2_b, &lp->fc_w, &lp->fc_b,
                &lp->fcproj_w, &lp->fcproj_b};
            *slots[(i - 2) % GPT2_TENSORS_PER_LAYER] = ptr;
        }
    }
}

/* ---- initialization ----------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int gpt2_init_params(const struct gpt2_config *cfg, uint64_t seed, float *flat)
{
    if (gpt2_config_check(cfg) != 0)
        return MODEL_ERR_CONFIG;
    if (!flat)
        return MODEL_ERR_ARG;
    struct rng_normal g;
    rng_normal_init(&g, seed);
    const double std = 0.02;
    const double std_resid = 0.02 / sqrt(2.0 * cfg->n_layer); /* sqrt is exact IEEE */
    struct gpt2_tensor_info ti;
    int nt = gpt2_num_tensors(cfg);
    for (int i = 0; i < nt; i++) {
        gpt2_tensor(cfg, i, &ti);
        float *t = flat + ti.offset;
        if (ti.is_matrix) {
            double s = ends_with(ti.name, ".c_proj.weight") ? std_resid : std;
            for (size_t j = 0; j < ti.numel; j++)
                t[j] = (float)(rng_normal_next(&g) * s);
        } else {
            float v = ends_with(ti.name, ".weight") ? 1.0f : 0.0f; /* LayerNorm gain */
            for (size_t j = 0; j < ti.numel; j++)
                t[j] = v;
        }
    }
    return 0;
}

/* ---- the model instance ------------------------------------------------------- */

/* Causal attention works on blocks of ATT_BLOCK query rows: block [r0, r0 + rows) only
 * sees keys [0, r0 + rows), so the scores, the softmax and the products skip the
 * masked upper triangle (about half the work at long T), and a block's scores stay
 * in cache between the matmuls. */
#define ATT_BLOCK 64

struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [BT,C], [BT], [BT] */
    float *qkv;                       /* [BT,3C] */
    float *att;                       /* [B,H,T,T] softmax probabilities (0 above diag) */
    float *atty;                      /* [BT,C] attention output before c_proj */
    float *res2;                      /* [BT,C] x + attn */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;            /* [BT,4C] */
    float *res3;                      /* [BT,C] block output */
};

struct gpt2 {
    struct gpt2_config cfg;
    int max_B, max_T;
    size_t n_params;
    float *params, *grads;
    size_t params_mapped, grads_mapped, acts_mapped; /* huge_alloc lengths */
    struct params p, g;
    /* activations for max_B x max_T, one allocation */
    float *acts;
    float *encoded; /* [BT,C] */
    struct layer_acts *la;
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;  /* [BT,V]; backward turns it into dlogits */
    float *losses;  /* [BT] per-position cross-entropy */
    float *lse;     /* [BT] log-sum-exp of each logits row, for the backward pass */
    /* backward scratch */
    float *dres, *dln, *dbig, *dqkv, *datty;
    float *att_scratch; /* threads x ATT_BLOCK x T: one per parallel_for chunk */
    struct parallel *pool;
    int32_t *inputs, *targets; /* copies of the last forward's batch */
    int B, T, have_targets;
};

/* Lays the activations and backward scratch for max_B x max_T out in base (or only
 * counts them when base is NULL); returns the number of floats. */
static size_t carve_acts(struct gpt2 *m, float *base)
{
    size_t L = (size_t)m->cfg.n_layer, C = (size_t)m->cfg.n_embd, V = (size_t)m->cfg.vocab_size;
    size_t H = (size_t)m->cfg.n_head, T = (size_t)m->max_T, BT = (size_t)m->max_B * T;
    size_t used = 0;
#define TAKE(ptr, n) ((ptr) = base ? base + used : NULL, used += (n))
    TAKE(m->encoded, BT * C);
    for (size_t l = 0; l < L; l++) {
        struct layer_acts *la = &m->la[l];
        TAKE(la->ln1, BT * C);
        TAKE(la->ln1_mean, BT);
        TAKE(la->ln1_rstd, BT);
        TAKE(la->qkv, BT * 3 * C);
        TAKE(la->att, (size_t)m->max_B * H * T * T);
        TAKE(la->atty, BT * C);
        TAKE(la->res2, BT * C);
        TAKE(la->ln2, BT * C);
        TAKE(la->ln2_mean, BT);
        TAKE(la->ln2_rstd, BT);
        TAKE(la->fch, BT * 4 * C);
        TAKE(la->fch_gelu, BT * 4 * C);
        TAKE(la->res3, BT * C);
    }
    TAKE(m->lnf, BT * C);
    TAKE(m->lnf_mean, BT);
    TAKE(m->lnf_rstd, BT);
    TAKE(m->logits, BT * V);
    TAKE(m->losses, BT);
    TAKE(m->lse, BT);
    TAKE(m->dres, BT * C);
    TAKE(m->dln, BT * C);
    TAKE(m->dbig, BT * 4 * C);
    TAKE(m->dqkv, BT * 3 * C);
    TAKE(m->datty, BT * C);
#undef TAKE
    return used;
}

/* Parameters, gradients and activations are large arrays that every step streams
 * through sgemm's packing. On 2 MiB pages (transparent huge pages, which the kernel
 * gives on request where it has them) they take far fewer TLB misses than on 4 KiB
 * pages: about 3 % of a 124M-parameter step. Zeroed (the kernel's fresh pages, touched
 * only when used); *mapped is what huge_free needs. Small arrays come from calloc. */
#define HUGE_PAGE ((size_t)2 << 20)

static void *huge_alloc(size_t bytes, size_t *mapped)
{
    *mapped = 0;
    if (bytes < HUGE_PAGE)
        return calloc(1, bytes ? bytes : 1);
    size_t len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (len > SIZE_MAX - HUGE_PAGE)
        return NULL;
    char *raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    /* keep the 2 MiB-aligned len bytes inside, give the slack back */
    char *p = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (raw + len + HUGE_PAGE > p + len)
        munmap(p + len, (size_t)(raw + len + HUGE_PAGE - (p + len)));
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advice: where it fails, 4 KiB pages work the same */
#endif
    *mapped = len;
    return p;
}

static void huge_free(void *p, size_t mapped)
{
    if (p && mapped)
        munmap(p, mapped);
    else
        free(p);
}

int gpt2_create(const struct gpt2_config *cfg, int max_B, int max_T, struct gpt2 **out)
{
    *out = NULL;
    if (gpt2_config_check(cfg) != 0)
        return MODEL_ERR_CONFIG;
    if (max_B < 1 || max_T < 1 || max_T > cfg->max_seq_len || max_B > (1 << 20))
        return MODEL_ERR_ARG;
    struct gpt2 *m = calloc(1, sizeof *m);
    if (!m)
        return MODEL_ERR_NOMEM;
    m->cfg = *cfg;
    m->max_B = max_B, m->max_T = max_T;
    m->n_params = gpt2_num_params(cfg);
    size_t L = (size_t)cfg->n_layer, BT = (size_t)max_B * (size_t)max_T;

    m->params = huge_alloc(m->n_params * sizeof(float), &m->params_mapped);
    m->grads = huge_alloc(m->n_params * sizeof(float), &m->grads_mapped);
    m->p.h = calloc(L, sizeof *m->p.h);
    m->g.h = calloc(L, sizeof *m->g.h);
    m->la = calloc(L, sizeof *m->la);
    if (m->la)
        m->acts = huge_alloc(carve_acts(m, NULL) * sizeof(float), &m->acts_mapped);
    m->inputs = malloc(BT * sizeof(int32_t));
    m->targets = malloc(BT * sizeof(int32_t));
    if (!m->params || !m->grads || !m->p.h || !m->g.h || !m->la || !m->acts || !m->inputs ||
        !m->targets || gpt2_set_threads(m, 1) != 0) {
        gpt2_destroy(m);
        return MODEL_ERR_NOMEM;
    }
    carve_params(cfg, m->params, &m->p);
    carve_params(cfg, m->grads, &m->g);
    carve_acts(m, m->acts);
    *out = m;
    return 0;
}

int gpt2_set_threads(struct gpt2 *m, int threads)
{
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > 1024)
        threads = 1024;
    if (m->pool && parallel_threads(m->pool) == threads)
        return 0;
    struct parallel *pool;
    size_t T = (size_t)m->max_T;
    float *scratch = malloc((size_t)threads * ATT_BLOCK * T * sizeof(float));
    if (!scratch || parallel_create(threads, &pool) != 0) {
        free(scratch);
        return MODEL_ERR_NOMEM;
    }
    parallel_destroy(m->pool);
    free(m->att_scratch);
    m->pool = pool;
    m->att_scratch = scratch;
    return 0;
}

void gpt2_destroy(struct gpt2 *m)
{
    if (!m)
        return;
    parallel_destroy(m->pool);
    free(m->att_scratch);
    huge_free(m->params, m->params_mapped);
    huge_free(m->grads, m->grads_mapped);
    free(m->p.h);
    free(m->g.h);
    free(m->la);
    huge_free(m->acts, m->acts_mapped);
    free(m->inputs);
    free(m->targets);
    free(m);
}

const struct gpt2_config *gpt2_get_config(const struct gpt2 *m) { return &m->cfg; }
struct parallel *gpt2_parallel(struct gpt2 *m) { return m->pool; }
float *gpt2_params(struct gpt2 *m) { return m->params; }
float *gpt2_grads(struct gpt2 *m) { return m->grads; }
const float *gpt2_logits(const struct gpt2 *m) { return m->logits; }

/* ---- elementwise math ------------------------------------------------------------
 * Loops run in blocks of VB with a fixed trip count, which the compiler vectorizes at
 * -O2; tanh and exp are branch-free so they vectorize too. */

#define VB 16

/* Hot loops get an AVX2+FMA clone next to the baseline build, picked at load time
 * (GCC function multiversioning); elsewhere they are compiled once. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) /* TSan instruments the resolver, which runs too early */
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

/* tanh to ~4e-7 absolute (rational minimax approximation, as in Eigen). */
static inline float fast_tanhf(float x)
{
    const float c = 7.90531110763549805f;
    x = x > c ? c : x;
    x = x < -c ? -c : x;
    float x2 = x * x;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x2 * p + 4.89352455891786e-03f;
    p = x * p;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    return p / q;
}

/* exp to ~2 ulp for x in [-87, 88] (clamped): 2^k e^r with |r| <= ln2/2. */
static inline float fast_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to int */
    float r = x - k * 0.693145751953125f;
    r = r - k * 1.428606765330187045e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float kc = k > -127.0f ? k : -127.0f; /* NaN too: the conversion below is defined, */
    int32_t e = ((int32_t)kc + 127) << 23; /* and p, computed from x, stays NaN */
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

SIMD_CLONES
static float max_of(const float *x, size_t n)
{
    float acc[VB];
    size_t i = 0;
    float mx = x[0];
    if (n >= VB) {
        for (int j = 0; j < VB; j++)
            acc[j] = x[j];
        for (i = VB; i + VB <= n; i += VB)
            for (int j = 0; j < VB; j++)
                acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
        for (int j = 0; j < VB; j++)
            mx = acc[j] > mx ? acc[j] : mx;
    }
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* sum_i exp(x[i] - shift) */
SIMD_CLONES
static float sum_exp(const float *x, size_t n, float shift)
{
    float acc[VB] = {0}, s = 0.0f;
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int j = 0; j < VB; j++)
            acc[j] += fast_expf(x[i + j] - shift);
    for (; i < n; i++)
        s += fast_expf(x[i] - shift);
    for (int j = 0; j < VB; j++)
        s += acc[j];
    return s;
}

/* x[i] = exp(x[i] - shift); returns their sum */
SIMD_CLONES
static float exp_inplace(float *x, size_t n, float shift)
{
    float acc[VB] = {0}, s = 0.0f;
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int j = 0; j < VB; j++) {
            float e = fast_expf(x[i + j] - shift);
            x[i + j] = e;
            acc[j] += e;
        }
    for (; i < n; i++) {
        float e = fast_expf(x[i] - shift);
        x[i] = e;
        s += e;
    }
    for (int j = 0; j < VB; j++)
        s += acc[j];
    return s;
}

/* x[i] = exp(x[i] - shift) * scale */
SIMD_CLONES
static void exp_scale_inplace(float *x, size_t n, float shift, float scale)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int j = 0; j < VB; j++)
            x[i + j] = fast_expf(x[i + j] - shift) * scale;
    for (; i < n; i++)
        x[i] = fast_expf(x[i] - shift) * scale;
}

SIMD_CLONES
static float sum_of(const float *x, size_t n)
{
    float acc[VB] = {0}, s = 0.0f;
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int j = 0; j < VB; j++)
            acc[j] += x[i + j];
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < VB; j++)
        s += acc[j];
    return s;
}

SIMD_CLONES
static float dot_of(const float *x, const float *y, size_t n)
{
    float acc[VB] = {0}, s = 0.0f;
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int j = 0; j < VB; j++)
            acc[j] += x[i + j] * y[i + j];
    for (; i < n; i++)
        s += x[i] * y[i];
    for (int j = 0; j < VB; j++)
        s += acc[j];
    return s;
}

/* acc[i] += x[i] */
SIMD_CLONES
static void add_into(float *restrict acc, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            acc[i + k] += x[i + k];
    for (; i < n; i++)
        acc[i] += x[i];
}

/* out[i] = a[i] + b[i] */
SIMD_CLONES
static void add_to(float *restrict out, const float *restrict a, const float *restrict b,
                   size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            out[i + k] = a[i + k] + b[i + k];
    for (; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ---- parallel matmul ------------------------------------------------------------ */

struct gemm_job {
    CBLAS_TRANSPOSE ta, tb;
    int M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int split_m; /* split the rows of C (else its columns), in units of 16 */
};

static void gemm_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct gemm_job *j = ctx;
    int lo = (int)b * 16, hi = (int)e * 16;
    if (j->split_m) {
        if (hi > j->M)
            hi = j->M;
        const float *A = j->ta == CblasNoTrans ? j->A + (size_t)lo * j->lda : j->A + lo;
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, hi - lo, j->N, j->K, j->alpha, A, j->lda, j->B,
                    j->ldb, j->beta, j->C + (size_t)lo * j->ldc, j->ldc);
    } else {
        if (hi > j->N)
            hi = j->N;
        const float *B = j->tb == CblasNoTrans ? j->B + lo : j->B + (size_t)lo * j->ldb;
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, j->M, hi - lo, j->K, j->alpha, j->A, j->lda, B,
                    j->ldb, j->beta, j->C + lo, j->ldc);
    }
}

/* C = alpha op(A) op(B) + beta C (row-major), split over the pool along the larger of
 * C's dimensions; each part is a single-threaded sgemm. */
static void par_sgemm(struct gpt2 *m, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
                      int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc)
{
    struct gemm_job j = {ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, M >= N};
    size_t dim = (size_t)(j.split_m ? M : N), other = (size_t)(j.split_m ? N : M);
    size_t units = (dim + 15) / 16;
    size_t work_per_unit = 16 * other * (size_t)K;
    size_t grain = work_per_unit ? (((size_t)1 << 18) + work_per_unit - 1) / work_per_unit : 1;
    parallel_for(m->pool, units, grain, gemm_range, &j);
}

/* ---- layers --------------------------------------------------------------------- */

struct rows_job {
    float *out, *out2, *out3;
    const float *in, *in2, *w, *b;
    const int32_t *tok;
    size_t N, C, T, OC; /* rows, width, positions, output width */
};

static void encoder_forward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct rows_job *j = ctx; /* out = wte[tok] + wpe[t]; in = wte, in2 = wpe */
    for (size_t n = b; n < e; n++) {
        const float *te = j->in + (size_t)j->tok[n] * j->C, *pe = j->in2 + (n % j->T) * j->C;
        add_to(j->out + n * j->C, te, pe, j->C);
    }
}

/* columns [b, e): every row adds into the same wte/wpe rows, so split by column */
static void encoder_backward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct rows_job *j = ctx; /* in = dres [BT, C], out = dwte, out2 = dwpe */
    for (size_t n = 0; n < j->N; n++) {
        const float *d = j->in + n * j->C;
        add_into(j->out + (size_t)j->tok[n] * j->C + b, d + b, e - b);
        add_into(j->out2 + (n % j->T) * j->C + b, d + b, e - b);
    }
}

/* out = bias (+ resid), the start of a matmul that accumulates onto it */
static void bias_init_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct rows_job *j = ctx; /* in = resid or NULL, b = bias */
    for (size_t n = b; n < e; n++) {
        float *o = j->out + n * j->OC;
        if (j->in) {
            add_to(o, j->in + n * j->OC, j->b, j->OC);
        } else {
            memcpy(o, j->b, j->OC * sizeof(float));
        }
    }
}

static void bias_grad_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct rows_job *j = ctx; /* out += column sums of in [N, OC] */
    for (size_t n = 0; n < j->N; n++)
        add_into(j->out + b, j->in + n * j->OC + b, e - b);
}

/* out[N,OC] = in[N,IC] W[IC,OC] + bias (+ resid when given). */
static void matmul_forward(struct gpt2 *m, float *out, const float *in, const float *W,
                           const float *bias, const float *resid, size_t N, size_t IC, size_t OC)
{
    struct rows_job j = {.out = out, .in = resid, .b = bias, .OC = OC};
    parallel_for(m->pool, N, 64, bias_init_range, &j);
    par_sgemm(m, CblasNoTrans, CblasNoTrans, (int)N, (int)OC, (int)IC, 1.0f, in, (int)IC, W,
              (int)OC, 1.0f, out, (int)OC);
}

/* Backward of matmul_forward: din = dout W^T and dW = in^T dout (both overwritten),
 * dbias += column sums of dout. */
static void matmul_backward(struct gpt2 *m, float *din, float *dW, float *dbias,
                            const float *dout, const float *in, const float *W, size_t N,
                            size_t IC, size_t OC)
{
    par_sgemm(m, CblasNoTrans, CblasTrans, (int)N, (int)IC, (int)OC, 1.0f, dout, (int)OC, W,
              (int)OC, 0.0f, din, (int)IC);
    par_sgemm(m, CblasTrans, CblasNoTrans, (int)IC, (int)OC, (int)N, 1.0f, in, (int)IC, dout,
              (int)OC, 0.0f, dW, (int)OC);
    struct rows_job j = {.out = dbias, .in = dout, .N = N, .OC = OC};
    parallel_for(m->pool, OC, 32, bias_grad_range, &j);
}

struct ln_job {
    float *out, *mean, *rstd, *din, *dw, *db;
    const float *in, *w, *b, *dout;
    const float *cmean, *crstd;
    size_t N, C;
};

SIMD_CLONES
static void layernorm_forward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct ln_job *j = ctx;
    const size_t C = j->C;
    for (size_t n = b; n < e; n++) {
        const float *x = j->in + n * C;
        float mu = sum_of(x, C) / (float)C;
        float acc[VB] = {0}, v = 0.0f;
        size_t i = 0;
        for (; i + VB <= C; i += VB)
            for (int k = 0; k < VB; k++) {
                float d = x[i + k] - mu;
                acc[k] += d * d;
            }
        for (; i < C; i++)
            v += (x[i] - mu) * (x[i] - mu);
        for (int k = 0; k < VB; k++)
            v += acc[k];
        v /= (float)C;
        float r = 1.0f / sqrtf(v + GPT2_LN_EPS);
        float *o = j->out + n * C;
        for (i = 0; i < C; i++)
            o[i] = (x[i] - mu) * r * j->w[i] + j->b[i];
        j->mean[n] = mu;
        j->rstd[n] = r;
    }
}

/* din += dLN/din for rows [b, e) */
SIMD_CLONES
static void layernorm_backward_rows(void *ctx, size_t b, size_t e, int chunk)
{
    const struct ln_job *j = ctx;
    const size_t C = j->C;
    for (size_t n = b; n < e; n++) {
        const float *x = j->in + n * C, *dy = j->dout + n * C;
        float *dx = j->din + n * C;
        float mu = j->cmean[n], r = j->crstd[n];
        float a1[VB] = {0}, a2[VB] = {0}, dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        size_t i = 0;
        for (; i + VB <= C; i += VB)
            for (int k = 0; k < VB; k++) {
                float dn = j->w[i + k] * dy[i + k];
                a1[k] += dn;
                a2[k] += dn * (x[i + k] - mu) * r;
            }
        for (; i < C; i++) {
            float dn = j->w[i] * dy[i];
            dnorm_mean += dn;
            dnorm_norm_mean += dn * (x[i] - mu) * r;
        }
        for (int k = 0; k < VB; k++) {
            dnorm_mean += a1[k];
            dnorm_norm_mean += a2[k];
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (i = 0; i < C; i++) {
            float xhat = (x[i] - mu) * r;
            dx[i] += (j->w[i] * dy[i] - dnorm_mean - xhat * dnorm_norm_mean) * r;
        }
    }
}

SIMD_CLONES
static void ln_param_grads(float *restrict dw, float *restrict db, const float *restrict x,
                           const float *restrict dy, float mu, float r, size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++) {
            db[i + k] += dy[i + k];
            dw[i + k] += (x[i + k] - mu) * r * dy[i + k];
        }
    for (; i < n; i++) {
        db[i] += dy[i];
        dw[i] += (x[i] - mu) * r * dy[i];
    }
}

/* dw, db for columns [b, e): sums over all rows */
static void layernorm_backward_cols(void *ctx, size_t b, size_t e, int chunk)
{
    const struct ln_job *j = ctx;
    const size_t C = j->C;
    for (size_t n = 0; n < j->N; n++)
        ln_param_grads(j->dw + b, j->db + b, j->in + n * C + b, j->dout + n * C + b, j->cmean[n],
                       j->crstd[n], e - b);
}

static void layernorm_forward(struct gpt2 *m, float *out, float *mean, float *rstd,
                              const float *in, const float *w, const float *b, size_t N,
                              size_t C)
{
    struct ln_job j = {.out = out, .mean = mean, .rstd = rstd, .in = in, .w = w, .b = b,
                       .N = N, .C = C};
    parallel_for(m->pool, N, 16, layernorm_forward_range, &j);
}

/* din += dLN/din; dw, db accumulate. */
static void layernorm_backward(struct gpt2 *m, float *din, float *dw, float *db,
                               const float *dout, const float *in, const float *w,
                               const float *mean, const float *rstd, size_t N, size_t C)
{
    struct ln_job j = {.din = din, .dw = dw, .db = db, .dout = dout, .in = in, .w = w,
                       .cmean = mean, .crstd = rstd, .N = N, .C = C};
    parallel_for(m->pool, N, 16, layernorm_backward_rows, &j);
    parallel_for(m->pool, C, 32, layernorm_backward_cols, &j);
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

static inline float gelu(float x)
{
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + fast_tanhf(u));
}

static inline float gelu_grad(float x)
{
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = fast_tanhf(u);
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

SIMD_CLONES
static void gelu_forward_block(float *restrict out, const float *restrict in, size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            out[i + k] = gelu(in[i + k]);
    for (; i < n; i++)
        out[i] = gelu(in[i]);
}

SIMD_CLONES
static void gelu_backward_block(float *restrict d, const float *restrict in, size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            d[i + k] *= gelu_grad(in[i + k]);
    for (; i < n; i++)
        d[i] *= gelu_grad(in[i]);
}

static void gelu_forward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct rows_job *j = ctx; /* out = gelu(in), elements [b, e) */
    gelu_forward_block(j->out + b, j->in + b, e - b);
}

static void gelu_backward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct rows_job *j = ctx; /* out *= gelu'(in), elements [b, e) */
    gelu_backward_block(j->out + b, j->in + b, e - b);
}

/* ---- attention ------------------------------------------------------------------ */

struct att_job {
    float *out, *att, *dqkv, *scratch;
    const float *qkv, *dout, *catt;
    int B, T, C, H;
};

/* row[0, n) = softmax(row[0, n)); row[n, len) = 0 (the masked scores) */
SIMD_CLONES
static void softmax_causal_row(float *row, size_t n, size_t len)
{
    float mx = max_of(row, n);
    float inv = 1.0f / exp_inplace(row, n, mx);
    size_t t = 0;
    for (; t + VB <= n; t += VB)
        for (int k = 0; k < VB; k++)
            row[t + k] *= inv;
    for (; t < n; t++)
        row[t] *= inv;
    memset(row + n, 0, (len - n) * sizeof(float));
}

/* Softmax backward of one row, in place over d = dL/dP: d = p * (d - sum_t p d) on
 * [0, n), 0 on [n, len). */
SIMD_CLONES
static void softmax_causal_backward_row(float *restrict d, const float *restrict p, size_t n,
                                        size_t len)
{
    float dot = dot_of(p, d, n);
    size_t t = 0;
    for (; t + VB <= n; t += VB)
        for (int k = 0; k < VB; k++)
            d[t + k] = p[t + k] * (d[t + k] - dot);
    for (; t < n; t++)
        d[t] = p[t] * (d[t] - dot);
    memset(d + n, 0, (len - n) * sizeof(float));
}

/* Causal self-attention for (batch, head) pairs [b, e) over qkv [B,T,3C] into out
 * [B,T,C]; att keeps the probabilities [B,H,T,T] for the backward pass: row i holds
 * them in columns [0, i] and zeros up to the end of its block; the columns after
 * that are never written nor read. */
static void attention_forward_range(void *ctx, size_t b0, size_t e0, int chunk)
{
    const struct att_job *j = ctx;
    const int T = j->T, C = j->C, H = j->H, hs = C / H;
    const float scale = 1.0f / sqrtf((float)hs);
    for (size_t bh = b0; bh < e0; bh++) {
        int b = (int)bh / H, h = (int)bh % H;
        const float *q = j->qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *o = j->out + (size_t)b * T * C + (size_t)h * hs;
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            int rows = T - r0 < ATT_BLOCK ? T - r0 : ATT_BLOCK, keys = r0 + rows;
            float *S = j->att + bh * T * T + (size_t)r0 * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, hs, scale,
                        q + (size_t)r0 * 3 * C, 3 * C, k, 3 * C, 0.0f, S, T);
            for (int i = 0; i < rows; i++)
                softmax_causal_row(S + (size_t)i * T, (size_t)r0 + (size_t)i + 1, (size_t)keys);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, keys, 1.0f, S, T, v,
                        3 * C, 0.0f, o + (size_t)r0 * C, C);
        }
    }
}

/* dqkv (overwritten) from dout [B,T,C] for (batch, head) pairs [b, e), block by block
 * as the forward pass: a block's dQ is written once, dK and dV of its keys
 * accumulate over the blocks that see them. */
static void attention_backward_range(void *ctx, size_t b0, size_t e0, int chunk)
{
    const struct att_job *j = ctx;
    const int T = j->T, C = j->C, H = j->H, hs = C / H;
    const float scale = 1.0f / sqrtf((float)hs);
    float *dS = j->scratch + (size_t)chunk * ATT_BLOCK * T; /* one block per chunk */
    for (size_t bh = b0; bh < e0; bh++) {
        int b = (int)bh / H, h = (int)bh % H;
        const float *q = j->qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *dq = j->dqkv + (size_t)b * T * 3 * C + (size_t)h * hs;
        float *dk = dq + C, *dv = dq + 2 * C;
        const float *dO = j->dout + (size_t)b * T * C + (size_t)h * hs;
        for (int t = 0; t < T; t++) {
            memset(dk + (size_t)t * 3 * C, 0, (size_t)hs * sizeof(float));
            memset(dv + (size_t)t * 3 * C, 0, (size_t)hs * sizeof(float));
        }
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            int rows = T - r0 < ATT_BLOCK ? T - r0 : ATT_BLOCK, keys = r0 + rows;
            const float *P = j->catt + bh * T * T + (size_t)r0 * T;
            const float *dOb = dO + (size_t)r0 * C;
            /* dP = dO V^T; dV += P^T dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, hs, 1.0f, dOb, C, v,
                        3 * C, 0.0f, dS, keys);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, hs, rows, 1.0f, P, T, dOb, C,
                        1.0f, dv, 3 * C);
            /* softmax backward turns dP into dS in place */
            for (int i = 0; i < rows; i++)
                softmax_causal_backward_row(dS + (size_t)i * keys, P + (size_t)i * T,
                                            (size_t)r0 + (size_t)i + 1, (size_t)keys);
            /* S = scale Q K^T: dQ = scale dS K, dK += scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, keys, scale, dS, keys,
                        k, 3 * C, 0.0f, dq + (size_t)r0 * 3 * C, 3 * C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, hs, rows, scale, dS, keys,
                        q + (size_t)r0 * 3 * C, 3 * C, 1.0f, dk, 3 * C);
        }
    }
}

/* ---- cross-entropy -------------------------------------------------------------- */

struct ce_job {
    float *logits, *losses, *lse;
    const int32_t *targets;
    size_t V;
    float inv_bt;
};

static void ce_forward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct ce_job *j = ctx;
    for (size_t n = b; n < e; n++) {
        const float *row = j->logits + n * j->V;
        float mx = max_of(row, j->V);
        float lse = mx + logf(sum_exp(row, j->V, mx));
        j->lse[n] = lse;
        j->losses[n] = lse - row[j->targets[n]];
    }
}

/* logits -> d(mean CE)/dlogits = (softmax - onehot) / BT, in place, in one pass with
 * the forward's log-sum-exp */
static void ce_backward_range(void *ctx, size_t b, size_t e, int chunk)
{
    const struct ce_job *j = ctx;
    for (size_t n = b; n < e; n++) {
        float *row = j->logits + n * j->V;
        exp_scale_inplace(row, j->V, j->lse[n], j->inv_bt);
        row[j->targets[n]] -= j->inv_bt;
    }
}

/* ---- forward and backward ----------------------------------------------------- */

/* The model parallelizes around single-threaded BLAS calls; a threaded BLAS inside
 * would oversubscribe the cores. */
static void blas_single_threaded(void)
{
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

int gpt2_forward(struct gpt2 *m, const int32_t *inputs, const int32_t *targets, int B,
                 int T, float *loss)
{
    if (!m || !inputs || B < 1 || T < 1 || B > m->max_B || T > m->max_T)
        return MODEL_ERR_ARG;
    const int V = m->cfg.vocab_size, C = m->cfg.n_embd, H = m->cfg.n_head,
              L = m->cfg.n_layer;
    const size_t BT = (size_t)B * T;
    for (size_t i = 0; i < BT; i++) {
        if (inputs[i] < 0 || inputs[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
            return MODEL_ERR_TOKEN;
    }
    blas_single_threaded();
    memcpy(m->inputs, inputs, BT * sizeof(int32_t));
    if (targets)
        memcpy(m->targets, targets, BT * sizeof(int32_t));
    m->B = B, m->T = T, m->have_targets = targets != NULL;

    const struct params *p = &m->p;
    struct rows_job enc = {.out = m->encoded, .in = p->wte, .in2 = p->wpe, .tok = m->inputs,
                           .C = (size_t)C, .T = (size_t)T};
    parallel_for(m->pool, BT, 64, encoder_forward_range, &enc);

    const float *x = m->encoded;
    for (int l = 0; l < L; l++) {
        const struct layer_params *lp = &p->h[l];
        struct layer_acts *la = &m->la[l];
        layernorm_forward(m, la->ln1, la->ln1_mean, la->ln1_rstd, x, lp->ln1_w, lp->ln1_b, BT,
                          C);
        matmul_forward(m, la->qkv, la->ln1, lp->attn_w, lp->attn_b, NULL, BT, C, 3 * (size_t)C);
        struct att_job aj = {.out = la->atty, .att = la->att, .qkv = la->qkv, .B = B, .T = T,
                             .C = C, .H = H};
        parallel_for(m->pool, (size_t)B * H, 1, attention_forward_range, &aj);
        matmul_forward(m, la->res2, la->atty, lp->attnproj_w, lp->attnproj_b, x, BT, C, C);
        layernorm_forward(m, la->ln2, la->ln2_mean, la->ln2_rstd, la->res2, lp->ln2_w,
                          lp->ln2_b, BT, C);
        matmul_forward(m, la->fch, la->ln2, lp->fc_w, lp->fc_b, NULL, BT, C, 4 * (size_t)C);
        struct rows_job gj = {.out = la->fch_gelu, .in = la->fch};
        parallel_for(m->pool, BT * 4 * C, 4096, gelu_forward_range, &gj);
        matmul_forward(m, la->res3, la->fch_gelu, lp->fcproj_w, lp->fcproj_b, la->res2, BT,
                       4 * (size_t)C, C);
        x = la->res3;
    }
    layernorm_forward(m, m->lnf, m->lnf_mean, m->lnf_rstd, x, p->lnf_w, p->lnf_b, BT, C);
    par_sgemm(m, CblasNoTrans, CblasTrans, (int)BT, V, C, 1.0f, m->lnf, C, p->wte, C, 0.0f,
              m->logits, V);

    if (targets) {
        struct ce_job cj = {.logits = m->logits, .losses = m->losses, .lse = m->lse,
                            .targets = m->targets, .V = (size_t)V};
        parallel_for(m->pool, BT, 16, ce_forward_range, &cj);
        double total = 0.0;
        for (size_t n = 0; n < BT; n++)
            total += m->losses[n];
        if (loss)
            *loss = (float)(total / (double)BT);
    }
    return 0;
}

/* The backward pass overwrites the gradients of the weight matrices (their sgemm
 * runs with beta 0) and of wte (the LM head's, before the encoder adds into it), so
 * only what accumulates needs zeroing first: wpe, biases and LayerNorm parameters,
 * a small part of the vector. */
static void zero_accumulated_grads(struct gpt2 *m)
{
    const size_t C = (size_t)m->cfg.n_embd;
    const struct params *g = &m->g;
    memset(g->wpe, 0, (size_t)m->cfg.max_seq_len * C * sizeof(float));
    memset(g->lnf_w, 0, C * sizeof(float));
    memset(g->lnf_b, 0, C * sizeof(float));
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const struct layer_params *lg = &g->h[l];
        float *vecs[] = {lg->ln1_w, lg->ln1_b, lg->attnproj_b, lg->ln2_w, lg->ln2_b, lg->fcproj_b};
        for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
            memset(vecs[i], 0, C * sizeof(float));
        memset(lg->attn_b, 0, 3 * C * sizeof(float));
        memset(lg->fc_b, 0, 4 * C * sizeof(float));
    }
}

int gpt2_backward(struct gpt2 *m)
{
    if (!m || !m->have_targets)
        return MODEL_ERR_ARG;
    m->have_targets = 0; /* the logits are consumed below */
    blas_single_threaded();
    const int B = m->B, T = m->T, V = m->cfg.vocab_size, C = m->cfg.n_embd,
              H = m->cfg.n_head, L = m->cfg.n_layer;
    const size_t BT = (size_t)B * T;
    const struct params *p = &m->p;
    const struct params *g = &m->g;
    zero_accumulated_grads(m);

    struct ce_job cj = {.logits = m->logits, .lse = m->lse, .targets = m->targets,
                        .V = (size_t)V, .inv_bt = 1.0f / (float)BT};
    parallel_for(m->pool, BT, 16, ce_backward_range, &cj);
    const float *dlogits = m->logits;
    /* logits = lnf wte^T */
    par_sgemm(m, CblasNoTrans, CblasNoTrans, (int)BT, C, V, 1.0f, dlogits, V, p->wte, C, 0.0f,
              m->dln, C);
    par_sgemm(m, CblasTrans, CblasNoTrans, V, C, (int)BT, 1.0f, dlogits, V, m->lnf, C, 0.0f,
              g->wte, C); /* the encoder's part is added at the end */
    const float *xlast = m->la[L - 1].res3;
    memset(m->dres, 0, BT * C * sizeof(float));
    layernorm_backward(m, m->dres, g->lnf_w, g->lnf_b, m->dln, xlast, p->lnf_w, m->lnf_mean,
                       m->lnf_rstd, BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const struct layer_params *lp = &p->h[l];
        const struct layer_params *lg = &g->h[l];
        const struct layer_acts *la = &m->la[l];
        const float *x = l == 0 ? m->encoded : m->la[l - 1].res3;
        /* res3 = res2 + gelu(fch) Wp + bp: dres flows to res2 unchanged */
        matmul_backward(m, m->dbig, lg->fcproj_w, lg->fcproj_b, m->dres, la->fch_gelu,
                        lp->fcproj_w, BT, 4 * (size_t)C, C);
        struct rows_job gj = {.out = m->dbig, .in = la->fch};
        parallel_for(m->pool, BT * 4 * C, 4096, gelu_backward_range, &gj);
        matmul_backward(m, m->dln, lg->fc_w, lg->fc_b, m->dbig, la->ln2, lp->fc_w, BT, C,
                        4 * (size_t)C);
        layernorm_backward(m, m->dres, lg->ln2_w, lg->ln2_b, m->dln, la->res2, lp->ln2_w,
                           la->ln2_mean, la->ln2_rstd, BT, C);
        /* res2 = x + atty Wp + bp */
        matmul_backward(m, m->datty, lg->attnproj_w, lg->attnproj_b, m->dres, la->atty,
                        lp->attnproj_w, BT, C, C);
        struct att_job aj = {.dqkv = m->dqkv, .scratch = m->att_scratch, .qkv = la->qkv,
                             .dout = m->datty, .catt = la->att, .B = B, .T = T, .C = C, .H = H};
        parallel_for(m->pool, (size_t)B * H, 1, attention_backward_range, &aj);
        matmul_backward(m, m->dln, lg->attn_w, lg->attn_b, m->dqkv, la->ln1, lp->attn_w, BT, C,
                        3 * (size_t)C);
        layernorm_backward(m, m->dres, lg->ln1_w, lg->ln1_b, m->dln, x, lp->ln1_w, la->ln1_mean,
                           la->ln1_rstd, BT, C);
    }
    struct rows_job ej = {.out = g->wte, .out2 = g->wpe, .in = m->dres, .tok = m->inputs,
                          .N = BT, .C = (size_t)C, .T = (size_t)T};
    parallel_for(m->pool, (size_t)C, 32, encoder_backward_range, &ej);
    return 0;
}
