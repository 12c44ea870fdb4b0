/* The aggregation rules and DP-FedAvg's clipping and noise (aggregate/robust.h; every
 * formula and its order of operations is in aggregate/README.md, "The rules").
 *
 * fedavg and clip decode each payload straight into avg (agg_average_scaled). The
 * coordinate-wise rules (trimmed_mean, median) and Krum's distances read the k included
 * payloads side by side, block by block, with one codec_reader each: extra memory
 * k * (block_size floats + block_size bytes) plus the readers' zstd contexts. */
#include "aggregate/robust.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/why.h"

size_t agg_rule_min_updates(const struct policy *p)
{
    if (p && p->aggregation.rule == POLICY_AGG_MULTI_KRUM)
        return 2 * (size_t)p->aggregation.byzantine + 3;
    return 1;
}

static int payload_error(int rc, const struct agg_update *x, const char *what, char *why,
                         size_t cap)
{
    if (rc == CODEC_ERR_NOMEM)
        return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory reading the update of %s",
                        x->member);
    return why_fail(why, cap, AGG_ERR_PAYLOAD, "the update of %s does not decode: %s", x->member,
                    what);
}

/* In a sparse round with average: senders a coordinate a member did not send is absent;
 * otherwise (average: members, or a dense round) it is a zero like any other value. */
static int senders_absent(const struct policy_round_plan *plan)
{
    return plan->average == POLICY_AVERAGE_SENDERS &&
           plan->uplink.k_per_block < plan->uplink.block_size;
}

float agg_sparse_factor(const struct policy_round_plan *plan)
{
    return plan->uplink.k_per_block < plan->uplink.block_size ? plan->sparse_scale : 1.0f;
}

/* --- the k payloads side by side ------------------------------------------ */

/* k readers, each with its current block; lanes advance together over the coordinates. */
struct lanes {
    size_t k;
    struct codec_reader **r;
    float **val;                /* val[i]: reader i's current block */
    uint8_t **pre;              /* pre[i]: which of its values the payload carries */
    size_t *have, *off;         /* its block's length; values consumed */
    size_t bmax;                /* the largest block size among the readers */
    const struct agg_update **x;
    size_t since;               /* coordinates read since the payloads' pages were dropped */
};

/* Coordinates between drops of the lanes' mapped payload pages: the readers' cursors
 * move through several sections of each payload at once, so every few MiB of progress
 * the whole payload's pages are dropped (agg_payload_consumed) and only the few the
 * cursors still stand on come back from the file: resident pages stay O(this). */
#define LANES_DROP_EVERY ((size_t)1 << 22)

static void lanes_drop_pages(struct lanes *l)
{
    for (size_t i = 0; l->x && i < l->k; i++)
        if (l->x[i])
            agg_payload_consumed(l->x[i], 0, l->x[i]->len);
    l->since = 0;
}

static void lanes_free(struct lanes *l)
{
    lanes_drop_pages(l);
    for (size_t i = 0; i < l->k; i++) {
        if (l->r)
            codec_reader_free(l->r[i]);
        if (l->val)
            free(l->val[i]);
        if (l->pre)
            free(l->pre[i]);
    }
    free(l->r);
    free(l->val);
    free(l->pre);
    free(l->have);
    free(l->off);
    free(l->x);
    memset(l, 0, sizeof *l);
}

static int lanes_open(struct lanes *l, const struct agg_update *u, const size_t *idx, size_t k,
                      size_t n_params, char *why, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->r = calloc(k, sizeof *l->r);
    l->val = calloc(k, sizeof *l->val);
    l->pre = calloc(k, sizeof *l->pre);
    l->have = calloc(k, sizeof *l->have);
    l->off = calloc(k, sizeof *l->off);
    l->x = calloc(k, sizeof *l->x);
    l->k = k;
    if (!l->r || !l->val || !l->pre || !l->have || !l->off || !l->x) {
        lanes_free(l);
        return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory opening %zu payload readers", k);
    }
    for (size_t i = 0; i < k; i++) {
        char what[200];
        l->x[i] = &u[idx[i]];
        int rc = codec_reader_open(l->x[i]->payload, l->x[i]->len, n_params, &l->r[i], what,
                                   sizeof what);
        if (rc) {
            rc = payload_error(rc, l->x[i], what, why, cap);
            lanes_free(l);
            return rc;
        }
        size_t B = codec_reader_block_size(l->r[i]);
        l->bmax = B > l->bmax ? B : l->bmax;
        l->val[i] = malloc(B * sizeof(float));
        l->pre[i] = malloc(B);
        if (!l->val[i] || !l->pre[i]) {
            lanes_free(l);
            return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory for payload blocks");
        }
    }
    return 0;
}

/* Refills the lanes whose block is used up; *step = the coordinates every lane holds
 * next. At the end (remaining 0) every reader has been asked once more and has checked
 * its payload to the end (the count total, the zstd frame's end); *step is then 0. */
static int lanes_next(struct lanes *l, size_t remaining, size_t *step, char *why, size_t cap)
{
    size_t s = remaining;
    for (size_t i = 0; i < l->k; i++) {
        if (l->off[i] == l->have[i]) {
            char what[200];
            size_t len = 0;
            int rc = codec_reader_next(l->r[i], l->val[i], l->pre[i], &len, what, sizeof what);
            if (rc)
                return payload_error(rc, l->x[i], what, why, cap);
            l->have[i] = len;
            l->off[i] = 0;
        }
        size_t left = l->have[i] - l->off[i];
        s = left < s ? left : s;
    }
    *step = s;
    return 0;
}

static void lanes_advance(struct lanes *l, size_t step)
{
    for (size_t i = 0; i < l->k; i++)
        l->off[i] += step;
    l->since += step;
    if (l->since >= LANES_DROP_EVERY)
        lanes_drop_pages(l);
}

/* --- coordinate-wise rules ------------------------------------------------- */

static void sort_floats(float *v, size_t m)
{
    for (size_t i = 1; i < m; i++) {
        float x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* The rule's value of one coordinate from its m values (sorted here). */
static double order_stat(enum policy_agg_rule rule, double trim, float *v, size_t m)
{
    if (m == 0)
        return 0.0;
    int nonzero = 0;
    for (size_t i = 0; i < m && !nonzero; i++)
        nonzero = v[i] != 0.0f;
    if (!nonzero)
        return 0.0;
    sort_floats(v, m);
    if (rule == POLICY_AGG_MEDIAN)
        return m & 1 ? (double)v[m / 2] : ((double)v[m / 2 - 1] + (double)v[m / 2]) / 2.0;
    size_t t = (size_t)floor(trim * (double)m);
    double sum = 0;
    for (size_t i = t; i < m - t; i++)
        sum += (double)v[i];
    return sum / (double)(m - 2 * t);
}

static int coordinatewise(const struct policy *p, const struct policy_round_plan *plan,
                          size_t n_params, const struct agg_update *u, const size_t *idx,
                          size_t k, float *avg, char *why, size_t cap)
{
    struct lanes l;
    int rc = lanes_open(&l, u, idx, k, n_params, why, cap);
    if (rc)
        return rc;
    float *v = malloc((k ? k : 1) * sizeof *v);
    if (!v) {
        lanes_free(&l);
        return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory");
    }
    const int absent = senders_absent(plan);
    const float f = agg_sparse_factor(plan);
    const enum policy_agg_rule rule = p->aggregation.rule;
    const double trim = p->aggregation.trim;
    size_t pos = 0;
    for (;;) {
        size_t step;
        if ((rc = lanes_next(&l, n_params - pos, &step, why, cap)) != 0 || step == 0)
            break;
        for (size_t j = 0; j < step; j++) {
            size_t m = 0;
            for (size_t i = 0; i < k; i++) {
                size_t at = l.off[i] + j;
                if (!absent || l.pre[i][at])
                    v[m++] = l.val[i][at];
            }
            avg[pos + j] = (float)order_stat(rule, trim, v, m) * f;
        }
        lanes_advance(&l, step);
        pos += step;
    }
    free(v);
    lanes_free(&l);
    return rc;
}

/* --- multi-Krum ------------------------------------------------------------ */

/* d[i * k + j] = ||x_i - x_j||^2 over the zero-filled decoded updates, in double, summed
 * in coordinate order. Coordinates where every update is 0 add exactly +0 to every
 * distance, so they are skipped (a sparse round touches a few % of them): the sums are
 * the plain loop's bit for bit. */
static int krum_distances(size_t n_params, const struct agg_update *u, const size_t *idx,
                          size_t k, double *d, char *why, size_t cap)
{
    struct lanes l;
    int rc = lanes_open(&l, u, idx, k, n_params, why, cap);
    if (rc)
        return rc;
    size_t *nz = malloc((l.bmax ? l.bmax : 1) * sizeof *nz);
    if (!nz) {
        lanes_free(&l);
        return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory for Krum's distances");
    }
    memset(d, 0, k * k * sizeof *d);
    size_t pos = 0;
    for (;;) {
        size_t step;
        if ((rc = lanes_next(&l, n_params - pos, &step, why, cap)) != 0 || step == 0)
            break;
        size_t cnt = 0;
        for (size_t j = 0; j < step; j++) {
            int any = 0;
            for (size_t a = 0; a < k && !any; a++)
                any = l.val[a][l.off[a] + j] != 0.0f;
            nz[cnt] = j;
            cnt += (size_t)any;
        }
        for (size_t a = 0; a < k; a++) {
            const float *xa = l.val[a] + l.off[a];
            for (size_t b = a + 1; b < k; b++) {
                const float *xb = l.val[b] + l.off[b];
                double s = 0;
                for (size_t t = 0; t < cnt; t++) {
                    double x = (double)xa[nz[t]] - (double)xb[nz[t]];
                    s += x * x;
                }
                d[a * k + b] += s;
            }
        }
        lanes_advance(&l, step);
        pos += step;
    }
    free(nz);
    lanes_free(&l);
    for (size_t a = 0; a < k; a++)
        for (size_t b = a + 1; b < k; b++)
            d[b * k + a] = d[a * k + b];
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Marks in sel[] (indexed like idx) the m updates of lowest Krum score with f faulty. */
static int krum_select(const struct policy *p, size_t n_params, const struct agg_update *u,
                       const size_t *idx, size_t k, size_t f, uint8_t *sel, double *score,
                       char *why, size_t cap)
{
    double *d = malloc(k * k * sizeof *d);
    double *row = malloc(k * sizeof *row);
    size_t *order = malloc(k * sizeof *order);
    int rc = 0;
    if (!d || !row || !order) {
        rc = why_fail(why, cap, AGG_ERR_NOMEM, "out of memory for Krum's distances");
        goto out;
    }
    if ((rc = krum_distances(n_params, u, idx, k, d, why, cap)) != 0)
        goto out;
    const size_t nearest = k - f - 2;    /* k >= 2f + 3: at least f + 1 */
    for (size_t i = 0; i < k; i++) {
        size_t r = 0;
        for (size_t j = 0; j < k; j++)
            if (j != i)
                row[r++] = d[i * k + j];
        qsort(row, r, sizeof *row, cmp_double);
        double s = 0;
        for (size_t j = 0; j < nearest; j++)
            s += row[j];
        score[i] = s;
    }
    /* Lowest score first; ties in member-id (array) order: a stable insertion sort. */
    for (size_t i = 0; i < k; i++) {
        size_t j = i;
        while (j > 0 && score[order[j - 1]] > score[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    size_t m = p->aggregation.select ? p->aggregation.select : k - f;
    if (m > k - f)
        m = k - f;
    memset(sel, 0, k);
    for (size_t i = 0; i < m; i++)
        sel[order[i]] = 1;
out:
    free(d);
    free(row);
    free(order);
    return rc;
}

/* --- the rules ------------------------------------------------------------- */

/* The rule with Krum's f given (agg_combine: the policy's; a coalition: f'). */
static int combine(const struct policy *p, const struct policy_round_plan *plan,
                   size_t n_params, const struct agg_update *u, size_t n,
                   const uint8_t *include, size_t krum_f, float *avg, float *scratch,
                   struct agg_member_stat *stats, char *why, size_t cap)
{
    if (!p || !plan || !avg || (n && !u) ||
        (plan->average == POLICY_AVERAGE_SENDERS && !scratch))
        return why_fail(why, cap, AGG_ERR_ARG, "agg_combine: missing argument");
    const enum policy_agg_rule rule = p->aggregation.rule;
    const int dp = p->privacy.enabled;
    if (dp && rule != POLICY_AGG_FEDAVG && rule != POLICY_AGG_CLIP)
        return why_fail(why, cap, AGG_ERR_RULE, "privacy needs aggregation.rule fedavg or clip, "
                        "not %s", policy_agg_rule_name(rule));
    if (dp && senders_absent(plan))
        return why_fail(why, cap, AGG_ERR_RULE, "privacy needs compression.uplink.average "
                        "members");
    if (dp && !(p->privacy.clip > 0))
        return why_fail(why, cap, AGG_ERR_RULE, "privacy.clip must be > 0");
    if (stats)
        memset(stats, 0, n * sizeof *stats);

    size_t k = 0;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    float *scale = malloc((n ? n : 1) * sizeof *scale);
    uint8_t *mask = calloc(n ? n : 1, 1);
    struct agg_update *w1 = NULL;
    int rc = 0;
    if (!idx || !scale || !mask) {
        rc = why_fail(why, cap, AGG_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!include || include[i]) {
            idx[k++] = i;
            mask[i] = 1;
        }
    if (k == 0) {
        memset(avg, 0, n_params * sizeof *avg);
        goto out;
    }
    if (rule == POLICY_AGG_MULTI_KRUM && k < 2 * krum_f + 3) {
        rc = why_fail(why, cap, AGG_ERR_RULE, "multi_krum with byzantine %zu needs at least %zu "
                      "updates, the round has %zu", krum_f, 2 * krum_f + 3, k);
        goto out;
    }

    /* Norms and clip factors: what each update is scaled by (1 when not clipped). */
    const int clip = rule == POLICY_AGG_CLIP || dp;
    double bound = 0;
    if (rule == POLICY_AGG_CLIP)
        bound = p->aggregation.norm_bound;
    if (dp && (bound == 0 || p->privacy.clip < bound))
        bound = p->privacy.clip;
    if (clip && !(bound > 0)) {
        rc = why_fail(why, cap, AGG_ERR_RULE, "clip needs aggregation.norm_bound > 0");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        scale[i] = 1.0f;
    if (clip || stats) {
        for (size_t e = 0; e < k; e++) {
            size_t i = idx[e];
            char what[200];
            double norm;
            int c = codec_payload_norm(u[i].payload, u[i].len, n_params, &norm, what, sizeof what);
            agg_payload_consumed(&u[i], 0, u[i].len);
            if (c) {
                rc = payload_error(c, &u[i], what, why, cap);
                goto out;
            }
            if (clip && norm > bound)
                scale[i] = (float)(bound / norm);
            if (stats) {
                stats[i].norm = norm;
                stats[i].scale = scale[i];
                stats[i].used = 1;
            }
        }
    }

    switch (rule) {
    case POLICY_AGG_TRIMMED_MEAN:
    case POLICY_AGG_MEDIAN:
        rc = coordinatewise(p, plan, n_params, u, idx, k, avg, why, cap);
        break;
    case POLICY_AGG_MULTI_KRUM: {
        double *score = malloc(k * sizeof *score);
        uint8_t *sel = malloc(k);
        if (!score || !sel) {
            free(score);
            free(sel);
            rc = why_fail(why, cap, AGG_ERR_NOMEM, "out of memory for Krum's scores");
            break;
        }
        rc = krum_select(p, n_params, u, idx, k, krum_f, sel, score, why, cap);
        if (!rc) {
            memset(mask, 0, n);
            for (size_t e = 0; e < k; e++) {
                mask[idx[e]] = sel[e];
                if (stats) {
                    stats[idx[e]].krum_score = score[e];
                    stats[idx[e]].used = sel[e];
                }
            }
            rc = agg_average(plan, n_params, u, n, mask, avg, scratch, why, cap);
        }
        free(score);
        free(sel);
        break;
    }
    case POLICY_AGG_FEDAVG:
    case POLICY_AGG_CLIP:
    default:
        if (dp) {
            /* DP-FedAvg: uniform weights, whatever the updates carry. */
            w1 = malloc(n * sizeof *w1);
            if (!w1) {
                rc = why_fail(why, cap, AGG_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(w1, u, n * sizeof *w1);
            for (size_t i = 0; i < n; i++)
                w1[i].weight = 1.0;
        }
        rc = agg_average_scaled(plan, n_params, w1 ? w1 : u, n, mask, clip ? scale : NULL, avg,
                                scratch, why, cap);
        break;
    }
out:
    if (rc && stats)
        memset(stats, 0, n * sizeof *stats);
    free(idx);
    free(scale);
    free(mask);
    free(w1);
    return rc;
}

int agg_combine(const struct policy *p, const struct policy_round_plan *plan,
                size_t n_params, const struct agg_update *u, size_t n,
                const uint8_t *include, float *avg, float *scratch,
                struct agg_member_stat *stats, char *why, size_t cap)
{
    size_t f = p ? p->aggregation.byzantine : 0;
    return combine(p, plan, n_params, u, n, include, f, avg, scratch, stats, why, cap);
}

int agg_combine_coalition(const struct policy *p, const struct policy_round_plan *plan,
                          size_t n_params, const struct agg_update *u, size_t n,
                          const uint8_t *include, float *avg, float *scratch, char *why,
                          size_t cap)
{
    if (!p || !plan)
        return why_fail(why, cap, AGG_ERR_ARG, "agg_combine_coalition: missing argument");
    size_t f = p->aggregation.byzantine;
    if (p->aggregation.rule == POLICY_AGG_MULTI_KRUM) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += !include || include[i];
        if (k < 2 * f + 3) {
            if (k < 3) {
                /* Too few for any Krum: fedavg's average. */
                struct policy q = *p;
                q.aggregation.rule = POLICY_AGG_FEDAVG;
                return combine(&q, plan, n_params, u, n, include, 0, avg, scratch, NULL, why,
                               cap);
            }
            f = (k - 3) / 2;
        }
    }
    return combine(p, plan, n_params, u, n, include, f, avg, scratch, NULL, why, cap);
}
