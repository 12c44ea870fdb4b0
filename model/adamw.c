#include "model/adamw.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/log.h"
#include "common/safetensors.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; this code copies host floats");

int adamw_init(struct adamw_state *s, size_t n)
{
    memset(s, 0, sizeof *s);
    if (n == 0)
        return MODEL_ERR_ARG;
    s->m = calloc(n, sizeof(float));
    s->v = calloc(n, sizeof(float));
    if (!s->m || !s->v) {
        adamw_free(s);
        return MODEL_ERR_NOMEM;
    }
    s->n = n;
    return 0;
}

void adamw_free(struct adamw_state *s)
{
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

void adamw_reset(struct adamw_state *s)
{
    if (s->m)
        memset(s->m, 0, s->n * sizeof(float));
    if (s->v)
        memset(s->v, 0, s->n * sizeof(float));
    s->step = 0;
}

int adamw_groups_gpt2(const struct gpt2_config *cfg, struct adamw_group **out, int *n_groups)
{
    *out = NULL;
    *n_groups = 0;
    int nt = gpt2_num_tensors(cfg);
    if (nt == 0)
        return MODEL_ERR_CONFIG;
    struct adamw_group *g = calloc((size_t)nt, sizeof *g);
    if (!g)
        return MODEL_ERR_NOMEM;
    int n = 0;
    for (int i = 0; i < nt; i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(cfg, i, &ti);
        if (n > 0 && g[n - 1].decay == ti.is_matrix &&
            g[n - 1].offset + g[n - 1].count == ti.offset) {
            g[n - 1].count += ti.numel;
        } else {
            g[n].offset = ti.offset, g[n].count = ti.numel, g[n].decay = ti.is_matrix;
            n++;
        }
    }
    *out = g;
    *n_groups = n;
    return 0;
}

double grad_sum_squares(const float *g, size_t n)
{
    double acc[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            acc[k] += (double)g[i + k] * (double)g[i + k];
    for (; i < n; i++)
        acc[0] += (double)g[i] * (double)g[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

double grad_global_norm(const float *g, size_t n) { return sqrt(grad_sum_squares(g, n)); }

double grad_clip_global_norm(float *g, size_t n, float max_norm)
{
    double norm = grad_global_norm(g, n);
    if (!isfinite(norm) || max_norm <= 0.0f)
        return norm;
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (size_t i = 0; i < n; i++)
            g[i] *= c;
    }
    return norm;
}

void adamw_begin_step(struct adamw_state *s, const struct adamw_hparams *h,
                      struct adamw_coefs *c)
{
    s->step++;
    double bc1 = 1.0 - pow((double)h->beta1, (double)s->step);
    double bc2 = 1.0 - pow((double)h->beta2, (double)s->step);
    c->beta1 = h->beta1;
    c->beta2 = h->beta2;
    c->eps = h->eps;
    c->step_size = (float)((double)h->lr / bc1);
    c->inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    c->decay_mul = 1.0f - h->lr * h->weight_decay;
}

/* The scalar formula; update() runs it four lanes at a time where SSE is available,
 * with the same operations in the same order (so the same results: sqrt is correctly
 * rounded in both). -O2 leaves the plain loop scalar because sqrtf may set errno. */
static inline float update_one(float *p, float *m, float *v, float g, float b1, float b2,
                               float eps, float step, float ib, float dm)
{
    float mi = b1 * *m + (1.0f - b1) * g;
    float vi = b2 * *v + (1.0f - b2) * g * g;
    *m = mi;
    *v = vi;
    return *p * dm - step * (mi / (sqrtf(vi) * ib + eps));
}

static void update(float *restrict p, float *restrict m, float *restrict v,
                   const float *restrict g, size_t n, const struct adamw_coefs *c, int decay)
{
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, step = c->step_size,
                ib = c->inv_sqrt_bc2, dm = decay ? c->decay_mul : 1.0f;
    size_t i = 0;
#ifdef __SSE2__
    const __m128 B1 = _mm_set1_ps(b1), C1 = _mm_set1_ps(1.0f - b1), B2 = _mm_set1_ps(b2),
                 C2 = _mm_set1_ps(1.0f - b2), EPS = _mm_set1_ps(eps),
                 STEP = _mm_set1_ps(step), IB = _mm_set1_ps(ib), DM = _mm_set1_ps(dm);
    for (; i + 4 <= n; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i);
        __m128 mi = _mm_add_ps(_mm_mul_ps(B1, _mm_loadu_ps(m + i)), _mm_mul_ps(C1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(B2, _mm_loadu_ps(v + i)),
                               _mm_mul_ps(_mm_mul_ps(C2, gi), gi));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        __m128 den = _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(vi), IB), EPS);
        __m128 pi = _mm_sub_ps(_mm_mul_ps(_mm_loadu_ps(p + i), DM),
                               _mm_mul_ps(STEP, _mm_div_ps(mi, den)));
        _mm_storeu_ps(p + i, pi);
    }
#endif
    for (; i < n; i++)
        p[i] = update_one(p + i, m + i, v + i, g[i], b1, b2, eps, step, ib, dm);
}

void adamw_apply_range(struct adamw_state *s, float *params, const float *grads,
                       const struct adamw_coefs *c, const struct adamw_group *groups,
                       int n_groups, size_t begin, size_t end)
{
    if (n_groups == 0) {
        update(params + begin, s->m + begin, s->v + begin, grads + begin, end - begin, c, 1);
        return;
    }
    for (int i = 0; i < n_groups; i++) {
        size_t b = groups[i].offset, e = b + groups[i].count;
        b = b > begin ? b : begin;
        e = e < end ? e : end;
        if (b < e)
            update(params + b, s->m + b, s->v + b, grads + b, e - b, c, groups[i].decay);
    }
}

int adamw_groups_check(const struct adamw_state *s, const struct adamw_group *groups,
                       int n_groups)
{
    if (!s || !s->m || n_groups < 0 || (n_groups && !groups))
        return MODEL_ERR_ARG;
    size_t covered = 0;
    for (int i = 0; i < n_groups; i++) {
        if (groups[i].offset != covered || groups[i].count > s->n - covered)
            return MODEL_ERR_ARG;
        covered += groups[i].count;
    }
    return n_groups && covered != s->n ? MODEL_ERR_ARG : 0;
}

int adamw_step(struct adamw_state *s, float *params, const float *grads,
               const struct adamw_hparams *h, const struct adamw_group *groups, int n_groups)
{
    if (!params || !grads || !h || adamw_groups_check(s, groups, n_groups) != 0)
        return MODEL_ERR_ARG;
    struct adamw_coefs c;
    adamw_begin_step(s, h, &c);
    adamw_apply_range(s, params, grads, &c, groups, n_groups, 0, s->n);
    return 0;
}

#define ADAMW_FORMAT "aulac-adamw-v1"

int adamw_save(const char *path, const struct adamw_state *s)
{
    if (!path || !s || !s->m)
        return MODEL_ERR_ARG;
    char step[32], count[32];
    snprintf(step, sizeof step, "%" PRIu64, s->step);
    snprintf(count, sizeof count, "%zu", s->n);
    struct st_meta meta[] = {{"format", ADAMW_FORMAT}, {"step", step}, {"n_params", count}};
    struct st_tensor t[2];
    memset(t, 0, sizeof t);
    t[0].name = "adamw.m", t[1].name = "adamw.v";
    t[0].data = s->m, t[1].data = s->v;
    for (int i = 0; i < 2; i++) {
        t[i].dtype = ST_F32;
        t[i].ndim = 1;
        t[i].shape[0] = s->n;
        t[i].nbytes = (uint64_t)s->n * 4;
    }
    return safetensors_write(path, t, 2, meta, 3, 0600);
}

int adamw_load(const char *path, struct adamw_state *s)
{
    if (!path || !s || !s->m)
        return MODEL_ERR_ARG;
    struct safetensors *f;
    int rc = safetensors_open(path, &f);
    if (rc)
        return rc;
    const char *fmt = safetensors_meta(f, "format");
    const char *step_s = safetensors_meta(f, "step");
    const struct st_tensor *m = safetensors_find(f, "adamw.m");
    const struct st_tensor *v = safetensors_find(f, "adamw.v");
    char *end = NULL;
    unsigned long long step = 0;
    if (step_s && step_s[0] >= '0' && step_s[0] <= '9') {
        errno = 0;
        step = strtoull(step_s, &end, 10);
    }
    if (!fmt || strcmp(fmt, ADAMW_FORMAT) != 0 || !m || !v || !end || *end ||
        m->dtype != ST_F32 || v->dtype != ST_F32 || m->ndim != 1 || v->ndim != 1) {
        log_error("adamw: %s is not an AdamW state file (%s)", path, ADAMW_FORMAT);
        safetensors_close(f);
        return MODEL_ERR_FORMAT;
    }
    if (m->shape[0] != s->n || v->shape[0] != s->n) {
        log_error("adamw: %s holds state for %llu parameters, the model has %zu", path,
                  (unsigned long long)m->shape[0], s->n);
        safetensors_close(f);
        return MODEL_ERR_STATE;
    }
    memcpy(s->m, m->data, s->n * sizeof(float));
    memcpy(s->v, v->data, s->n * sizeof(float));
    s->step = step;
    safetensors_close(f);
    return 0;
}
