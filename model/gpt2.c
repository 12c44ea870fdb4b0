/* GPT-2 forward and backward in fp32 on the CPU. Every matmul is an OpenBLAS sgemm;
 * the rest (LayerNorm, GELU, softmax, cross-entropy) are plain loops over rows.
 * Layouts and the parameter order are documented in gpt2.h. */
#include "model/gpt2.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (n >= (1ull << 36))
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
    struct params p, g;
    /* activations for max_B x max_T, one allocation */
    float *acts;
    float *encoded; /* [BT,C] */
    struct layer_acts *la;
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits; /* [BT,V]; backward turns it into dlogits */
    /* backward scratch */
    float *dres, *dln, *dbig, *dqkv, *datty, *dscratch;
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
    TAKE(m->dres, BT * C);
    TAKE(m->dln, BT * C);
    TAKE(m->dbig, BT * 4 * C);
    TAKE(m->dqkv, BT * 3 * C);
    TAKE(m->datty, BT * C);
    TAKE(m->dscratch, 2 * T * T);
#undef TAKE
    return used;
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

    m->params = calloc(m->n_params, sizeof(float));
    m->grads = calloc(m->n_params, sizeof(float));
    m->p.h = calloc(L, sizeof *m->p.h);
    m->g.h = calloc(L, sizeof *m->g.h);
    m->la = calloc(L, sizeof *m->la);
    if (m->la)
        m->acts = malloc(carve_acts(m, NULL) * sizeof(float));
    m->inputs = malloc(BT * sizeof(int32_t));
    m->targets = malloc(BT * sizeof(int32_t));
    if (!m->params || !m->grads || !m->p.h || !m->g.h || !m->la || !m->acts || !m->inputs ||
        !m->targets) {
        gpt2_destroy(m);
        return MODEL_ERR_NOMEM;
    }
    carve_params(cfg, m->params, &m->p);
    carve_params(cfg, m->grads, &m->g);

    carve_acts(m, m->acts);
    *out = m;
    return 0;
}

void gpt2_destroy(struct gpt2 *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->p.h);
    free(m->g.h);
    free(m->la);
    free(m->acts);
    free(m->inputs);
    free(m->targets);
    free(m);
}

const struct gpt2_config *gpt2_get_config(const struct gpt2 *m) { return &m->cfg; }
float *gpt2_params(struct gpt2 *m) { return m->params; }
float *gpt2_grads(struct gpt2 *m) { return m->grads; }
const float *gpt2_logits(const struct gpt2 *m) { return m->logits; }

/* ---- layers ------------------------------------------------------------------- */

/* out[N,OC] = in[N,IC] W[IC,OC] + bias (+ resid when given). */
static void matmul_forward(float *out, const float *in, const float *W, const float *bias,
                           const float *resid, size_t N, size_t IC, size_t OC)
{
    for (size_t n = 0; n < N; n++) {
        float *o = out + n * OC;
        if (resid) {
            const float *r = resid + n * OC;
            for (size_t j = 0; j < OC; j++)
                o[j] = r[j] + bias[j];
        } else {
            memcpy(o, bias, OC * sizeof(float));
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)OC, (int)IC, 1.0f, in,
                (int)IC, W, (int)OC, 1.0f, out, (int)OC);
}

/* Backward of matmul_forward: din = dout W^T (overwritten), dW += in^T dout,
 * dbias += column sums of dout. */
static void matmul_backward(float *din, float *dW, float *dbias, const float *dout,
                            const float *in, const float *W, size_t N, size_t IC, size_t OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)IC, (int)OC, 1.0f, dout,
                (int)OC, W, (int)OC, 0.0f, din, (int)IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)IC, (int)OC, (int)N, 1.0f, in,
                (int)IC, dout, (int)OC, 1.0f, dW, (int)OC);
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * OC;
        for (size_t j = 0; j < OC; j++)
            dbias[j] += d[j];
    }
}

static void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                              const float *w, const float *b, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const float *x = in + n * C;
        float s = 0.0f;
        for (size_t i = 0; i < C; i++)
            s += x[i];
        float mu = s / (float)C;
        float v = 0.0f;
        for (size_t i = 0; i < C; i++) {
            float d = x[i] - mu;
            v += d * d;
        }
        v /= (float)C;
        float r = 1.0f / sqrtf(v + GPT2_LN_EPS);
        float *o = out + n * C;
        for (size_t i = 0; i < C; i++)
            o[i] = (x[i] - mu) * r * w[i] + b[i];
        mean[n] = mu;
        rstd[n] = r;
    }
}

/* din += dLN/din; dw, db accumulate. */
static void layernorm_backward(float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w, const float *mean,
                               const float *rstd, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const float *x = in + n * C, *dy = dout + n * C;
        float *dx = din + n * C;
        float mu = mean[n], r = rstd[n];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (size_t i = 0; i < C; i++) {
            float xhat = (x[i] - mu) * r;
            float dn = w[i] * dy[i];
            dnorm_mean += dn;
            dnorm_norm_mean += dn * xhat;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (size_t i = 0; i < C; i++) {
            float xhat = (x[i] - mu) * r;
            float dn = w[i] * dy[i];
            db[i] += dy[i];
            dw[i] += xhat * dy[i];
            dx[i] += (dn - dnorm_mean - xhat * dnorm_norm_mean) * r;
        }
    }
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

static void gelu_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

/* dx = dgelu/dx(in) * dout (overwrites dx; dx may alias dout). */
static void gelu_backward(float *dx, const float *in, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float local = 0.5f * (1.0f + th) +
                      0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dx[i] = local * dout[i];
    }
}

/* Causal self-attention over qkv [B,T,3C] into out [B,T,C]; att keeps the
 * probabilities [B,H,T,T] for the backward pass. */
static void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                              int H)
{
    int hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            const float *k = q + C, *v = q + 2 * C;
            float *P = att + ((size_t)b * H + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, 3 * C, k,
                        3 * C, 0.0f, P, T);
            for (int i = 0; i < T; i++) {
                float *row = P + (size_t)i * T;
                float mx = row[0];
                for (int j = 1; j <= i; j++)
                    mx = row[j] > mx ? row[j] : mx;
                float sum = 0.0f;
                for (int j = 0; j <= i; j++) {
                    row[j] = expf(row[j] - mx);
                    sum += row[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j <= i; j++)
                    row[j] *= inv;
                for (int j = i + 1; j < T; j++)
                    row[j] = 0.0f;
            }
            float *o = out + (size_t)b * T * C + (size_t)h * hs;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, v,
                        3 * C, 0.0f, o, C);
        }
}

/* dqkv (overwritten) from dout [B,T,C]; scratch holds 2*T*T floats. */
static void attention_backward(float *dqkv, const float *dout, const float *qkv,
                               const float *att, float *scratch, int B, int T, int C, int H)
{
    int hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    float *dP = scratch;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            const float *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            float *dk = dq + C, *dv = dq + 2 * C;
            const float *P = att + ((size_t)b * H + h) * T * T;
            const float *dO = dout + (size_t)b * T * C + (size_t)h * hs;
            /* dP = dO V^T, dV = P^T dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, v,
                        3 * C, 0.0f, dP, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, dO, C,
                        0.0f, dv, 3 * C);
            /* softmax backward in place: dS = P * (dP - sum_j P dP); 0 above diagonal */
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * T;
                float *d = dP + (size_t)i * T;
                float dot = 0.0f;
                for (int j = 0; j <= i; j++)
                    dot += p[j] * d[j];
                for (int j = 0; j <= i; j++)
                    d[j] = p[j] * (d[j] - dot);
                for (int j = i + 1; j < T; j++)
                    d[j] = 0.0f;
            }
            /* S = scale * Q K^T: dQ = scale dS K, dK = scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, dP, T, k,
                        3 * C, 0.0f, dq, 3 * C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, dP, T, q,
                        3 * C, 0.0f, dk, 3 * C);
        }
}

/* ---- forward and backward ----------------------------------------------------- */

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
    memcpy(m->inputs, inputs, BT * sizeof(int32_t));
    if (targets)
        memcpy(m->targets, targets, BT * sizeof(int32_t));
    m->B = B, m->T = T, m->have_targets = targets != NULL;

    const struct params *p = &m->p;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = m->encoded + ((size_t)b * T + t) * C;
            const float *te = p->wte + (size_t)inputs[(size_t)b * T + t] * C;
            const float *pe = p->wpe + (size_t)t * C;
            for (int i = 0; i < C; i++)
                o[i] = te[i] + pe[i];
        }

    const float *x = m->encoded;
    for (int l = 0; l < L; l++) {
        const struct layer_params *lp = &p->h[l];
        struct layer_acts *la = &m->la[l];
        layernorm_forward(la->ln1, la->ln1_mean, la->ln1_rstd, x, lp->ln1_w, lp->ln1_b, BT, C);
        matmul_forward(la->qkv, la->ln1, lp->attn_w, lp->attn_b, NULL, BT, C, 3 * (size_t)C);
        attention_forward(la->atty, la->att, la->qkv, B, T, C, H);
        matmul_forward(la->res2, la->atty, lp->attnproj_w, lp->attnproj_b, x, BT, C, C);
        layernorm_forward(la->ln2, la->ln2_mean, la->ln2_rstd, la->res2, lp->ln2_w, lp->ln2_b,
                          BT, C);
        matmul_forward(la->fch, la->ln2, lp->fc_w, lp->fc_b, NULL, BT, C, 4 * (size_t)C);
        gelu_forward(la->fch_gelu, la->fch, BT * 4 * C);
        matmul_forward(la->res3, la->fch_gelu, lp->fcproj_w, lp->fcproj_b, la->res2, BT,
                       4 * (size_t)C, C);
        x = la->res3;
    }
    layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, x, p->lnf_w, p->lnf_b, BT, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)BT, V, C, 1.0f, m->lnf, C, p->wte,
                C, 0.0f, m->logits, V);

    if (targets) {
        double total = 0.0;
        for (size_t n = 0; n < BT; n++) {
            const float *row = m->logits + n * V;
            float mx = row[0];
            for (int j = 1; j < V; j++)
                mx = row[j] > mx ? row[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j < V; j++)
                sum += expf(row[j] - mx);
            total += (double)(mx + logf(sum) - row[targets[n]]);
        }
        if (loss)
            *loss = (float)(total / (double)BT);
    }
    return 0;
}

int gpt2_backward(struct gpt2 *m)
{
    if (!m || !m->have_targets)
        return MODEL_ERR_ARG;
    m->have_targets = 0; /* the logits are consumed below */
    const int B = m->B, T = m->T, V = m->cfg.vocab_size, C = m->cfg.n_embd,
              H = m->cfg.n_head, L = m->cfg.n_layer;
    const size_t BT = (size_t)B * T;
    const struct params *p = &m->p;
    const struct params *g = &m->g;
    memset(m->grads, 0, m->n_params * sizeof(float));

    /* d(mean CE)/dlogits = (softmax - onehot) / BT, in place */
    const float inv_bt = 1.0f / (float)BT;
    for (size_t n = 0; n < BT; n++) {
        float *row = m->logits + n * V;
        float mx = row[0];
        for (int j = 1; j < V; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float scale = inv_bt / sum;
        for (int j = 0; j < V; j++)
            row[j] *= scale;
        row[m->targets[n]] -= inv_bt;
    }
    const float *dlogits = m->logits;
    /* logits = lnf wte^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BT, C, V, 1.0f, dlogits, V,
                p->wte, C, 0.0f, m->dln, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, (int)BT, 1.0f, dlogits, V,
                m->lnf, C, 1.0f, g->wte, C);
    const float *xlast = m->la[L - 1].res3;
    memset(m->dres, 0, BT * C * sizeof(float));
    layernorm_backward(m->dres, g->lnf_w, g->lnf_b, m->dln, xlast, p->lnf_w, m->lnf_mean,
                       m->lnf_rstd, BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const struct layer_params *lp = &p->h[l];
        const struct layer_params *lg = &g->h[l];
        const struct layer_acts *la = &m->la[l];
        const float *x = l == 0 ? m->encoded : m->la[l - 1].res3;
        /* res3 = res2 + gelu(fch) Wp + bp: dres flows to res2 unchanged */
        matmul_backward(m->dbig, lg->fcproj_w, lg->fcproj_b, m->dres, la->fch_gelu,
                        lp->fcproj_w, BT, 4 * (size_t)C, C);
        gelu_backward(m->dbig, la->fch, m->dbig, BT * 4 * C);
        matmul_backward(m->dln, lg->fc_w, lg->fc_b, m->dbig, la->ln2, lp->fc_w, BT, C,
                        4 * (size_t)C);
        layernorm_backward(m->dres, lg->ln2_w, lg->ln2_b, m->dln, la->res2, lp->ln2_w,
                           la->ln2_mean, la->ln2_rstd, BT, C);
        /* res2 = x + atty Wp + bp */
        matmul_backward(m->datty, lg->attnproj_w, lg->attnproj_b, m->dres, la->atty,
                        lp->attnproj_w, BT, C, C);
        attention_backward(m->dqkv, m->datty, la->qkv, la->att, m->dscratch, B, T, C, H);
        matmul_backward(m->dln, lg->attn_w, lg->attn_b, m->dqkv, la->ln1, lp->attn_w, BT, C,
                        3 * (size_t)C);
        layernorm_backward(m->dres, lg->ln1_w, lg->ln1_b, m->dln, x, lp->ln1_w, la->ln1_mean,
                           la->ln1_rstd, BT, C);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = m->dres + ((size_t)b * T + t) * C;
            float *dte = g->wte + (size_t)m->inputs[(size_t)b * T + t] * C;
            float *dpe = g->wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) {
                dte[i] += d[i];
                dpe[i] += d[i];
            }
        }
    return 0;
}
