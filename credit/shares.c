/* Credit totals and shares (credit/shares.h; credit/README.md, "Credits" and "The totals
 * record"). */
#include "credit/shares.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "credit/evalset.h"
#include "crypto/digest.h"

/* The measure names of policies/policy.h enum policy_measure (policies/README.md). */
static const char *const measure_names[POLICY_MEASURES] = {
    [POLICY_MEASURE_TOKENS] = "tokens",       [POLICY_MEASURE_ROUNDS] = "rounds",
    [POLICY_MEASURE_BYTES] = "bytes",         [POLICY_MEASURE_ALIGNMENT] = "alignment",
    [POLICY_MEASURE_LOO] = "loo",             [POLICY_MEASURE_SHAPLEY] = "shapley",
};

static int measure_index(const char *name)
{
    for (int m = 0; m < POLICY_MEASURES; m++)
        if (strcmp(name, measure_names[m]) == 0)
            return m;
    return -1;
}

void credit_totals_init(struct credit_totals *t)
{
    memset(t, 0, sizeof *t);
}

void credit_totals_free(struct credit_totals *t)
{
    if (!t)
        return;
    free(t->members);
    memset(t, 0, sizeof *t);
}

/* Index of member id in t (sorted), or where it would go (*found 0). */
static size_t member_find(const struct credit_totals *t, const char *id, int *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->members[mid].member, id);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int name_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    return n >= 1 && n <= max;
}

int credit_totals_add(struct credit_totals *t, const struct entry_contribution_scores *s)
{
    if (!t || !s || (s->n && !s->members))
        return CREDIT_ERR_ARG;
    if (s->n_measures < 1 || s->n_measures > ENTRY_MEASURES_MAX || s->n > ENTRY_LIST_MAX ||
        !name_ok(s->experiment, ENTRY_ID_MAX))
        return CREDIT_ERR_FORMAT;
    for (uint32_t m = 0; m < s->n_measures; m++)
        if (!name_ok(s->measures[m], ENTRY_MEASURE_NAME_MAX))
            return CREDIT_ERR_FORMAT;
    const int first = t->rounds == 0 && t->n_measures == 0;
    if (!first) {
        if (strcmp(t->experiment, s->experiment) != 0 || t->n_measures != s->n_measures)
            return CREDIT_ERR_FORMAT;
        for (uint32_t m = 0; m < s->n_measures; m++)
            if (strcmp(t->measures[m], s->measures[m]) != 0)
                return CREDIT_ERR_FORMAT;
    }
    /* Check everything and make room before changing anything: a refused entry leaves
     * t as it was. */
    size_t added = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct entry_member_score *ms = &s->members[i];
        if (!crypto_id_valid(ms->member) ||
            (i > 0 && strcmp(s->members[i - 1].member, ms->member) >= 0))
            return CREDIT_ERR_FORMAT;
        for (uint32_t m = 0; m < s->n_measures; m++)
            if (isinf(ms->values[m]) || isnan(ms->values[m]))
                return CREDIT_ERR_FORMAT;
        int found;
        member_find(t, ms->member, &found);
        added += !found;
    }
    if (t->n + added > t->cap) {
        size_t cap = t->cap ? t->cap : 8;
        while (cap < t->n + added)
            cap *= 2;
        struct entry_credit_share *nm = realloc(t->members, cap * sizeof *nm);
        if (!nm)
            return CREDIT_ERR_NOMEM;
        t->members = nm;
        t->cap = cap;
    }
    if (first) {
        memcpy(t->experiment, s->experiment, sizeof t->experiment);
        t->n_measures = s->n_measures;
        memcpy(t->measures, s->measures, sizeof t->measures);
    }
    for (uint32_t i = 0; i < s->n; i++) {
        const struct entry_member_score *ms = &s->members[i];
        int found;
        size_t at = member_find(t, ms->member, &found);
        if (!found) {
            memmove(&t->members[at + 1], &t->members[at], (t->n - at) * sizeof *t->members);
            memset(&t->members[at], 0, sizeof *t->members);
            memcpy(t->members[at].member, ms->member, sizeof t->members[at].member);
            t->n++;
        }
        struct entry_credit_share *cs = &t->members[at];
        for (uint32_t m = 0; m < s->n_measures; m++)
            if (ms->values[m] > 0)     /* negative values add nothing */
                cs->measure_share[m] += ms->values[m];
        cs->rounds++;
    }
    t->rounds++;
    return 0;
}

int credit_shares(const struct credit_totals *t, const struct policy_contribution *c,
                  struct entry_credits *out)
{
    if (!t || !c || !out)
        return CREDIT_ERR_ARG;
    memset(out, 0, sizeof *out);
    double weight[ENTRY_MEASURES_MAX] = { 0 }, weight_sum = 0;
    for (uint32_t m = 0; m < t->n_measures; m++) {
        int k = measure_index(t->measures[m]);
        if (k < 0)
            return CREDIT_ERR_FORMAT;
        weight[m] = c->credit_weights[k];
        weight_sum += weight[m];
    }
    double total[ENTRY_MEASURES_MAX] = { 0 };
    for (size_t i = 0; i < t->n; i++)
        for (uint32_t m = 0; m < t->n_measures; m++)
            total[m] += t->members[i].measure_share[m];
    struct entry_credit_share *cs = NULL;
    if (t->n) {
        cs = calloc(t->n, sizeof *cs);
        if (!cs)
            return CREDIT_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->n; i++) {
        memcpy(cs[i].member, t->members[i].member, sizeof cs[i].member);
        cs[i].rounds = t->members[i].rounds;
        double credit = 0;
        for (uint32_t m = 0; m < t->n_measures; m++) {
            double share = total[m] > 0 ? t->members[i].measure_share[m] / total[m] : 0;
            cs[i].measure_share[m] = share;
            credit += weight[m] * share;
        }
        cs[i].share = weight_sum > 0 ? credit / weight_sum : 0;
    }
    memcpy(out->experiment, t->experiment, sizeof out->experiment);
    out->rounds = t->rounds;
    out->n_measures = t->n_measures;
    memcpy(out->measures, t->measures, sizeof out->measures);
    for (uint32_t m = 0; m < t->n_measures; m++)
        out->weights[m] = weight[m];
    out->n = (uint32_t)t->n;
    out->members = cs;
    return 0;
}

/* ---- the totals record ------------------------------------------------------------
 *   "AUCT" | version u32 (1) | experiment str | n_measures u32 | measure str x n_measures |
 *   rounds u64 | n u32 | n x (member str | rounds u64 | total f64 x n_measures)
 * big-endian, str = u16 length + bytes (common/bytes.h). */

#define TOTALS_MAGIC "AUCT"
#define TOTALS_VERSION 1

int credit_totals_encode(const struct credit_totals *t, uint8_t **out, size_t *len)
{
    if (!t || !out || !len || t->n_measures > ENTRY_MEASURES_MAX || t->n > ENTRY_LIST_MAX)
        return CREDIT_ERR_ARG;
    struct bytes_writer w = { 0 };
    bw_raw(&w, TOTALS_MAGIC, 4);
    bw_u32(&w, TOTALS_VERSION);
    bw_str(&w, t->experiment);
    bw_u32(&w, t->n_measures);
    for (uint32_t m = 0; m < t->n_measures; m++)
        bw_str(&w, t->measures[m]);
    bw_u64(&w, t->rounds);
    bw_u32(&w, (uint32_t)t->n);
    for (size_t i = 0; i < t->n; i++) {
        bw_str(&w, t->members[i].member);
        bw_u64(&w, t->members[i].rounds);
        for (uint32_t m = 0; m < t->n_measures; m++)
            bw_f64(&w, t->members[i].measure_share[m]);
    }
    if (w.failed) {
        free(w.buf);
        return CREDIT_ERR_NOMEM;
    }
    *out = w.buf;
    *len = w.len;
    return 0;
}

/* A u16-length string of 1..max bytes without NUL into out (max + 1 bytes). */
static int read_name(struct bytes_reader *r, char *out, size_t max, int allow_empty)
{
    const uint8_t *lp = br_raw(r, 2);
    size_t n = lp ? (size_t)(lp[0] << 8 | lp[1]) : 0;
    const uint8_t *s = br_raw(r, n);
    if (!s || n > max || (n == 0 && !allow_empty) || memchr(s, 0, n))
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

int credit_totals_decode(struct credit_totals *t, const uint8_t *buf, size_t len)
{
    if (!t || (!buf && len))
        return CREDIT_ERR_ARG;
    credit_totals_init(t);
    struct bytes_reader r = { .p = buf, .left = len };
    const uint8_t *magic = br_raw(&r, 4);
    if (!magic || memcmp(magic, TOTALS_MAGIC, 4) != 0 || br_u32(&r) != TOTALS_VERSION)
        return CREDIT_ERR_FORMAT;
    struct credit_totals d;
    credit_totals_init(&d);
    int bad = read_name(&r, d.experiment, ENTRY_ID_MAX, 1) != 0;
    d.n_measures = br_u32(&r);
    bad |= d.n_measures > ENTRY_MEASURES_MAX;
    for (uint32_t m = 0; !bad && m < d.n_measures; m++)
        bad |= read_name(&r, d.measures[m], ENTRY_MEASURE_NAME_MAX, 0) != 0;
    d.rounds = br_u64(&r);
    const uint32_t n = br_u32(&r);
    /* Each member needs at least 2 + 1 + 8 + 8 * n_measures bytes. */
    bad |= r.failed || n > ENTRY_LIST_MAX ||
           (uint64_t)n * (11 + 8 * (uint64_t)d.n_measures) > r.left ||
           (d.experiment[0] ? !crypto_id_valid(d.experiment) : d.rounds != 0 || n != 0) ||
           (d.n_measures == 0 && (d.rounds != 0 || n != 0));
    if (bad)
        return CREDIT_ERR_FORMAT;
    if (n) {
        d.members = calloc(n, sizeof *d.members);
        if (!d.members)
            return CREDIT_ERR_NOMEM;
        d.cap = n;
    }
    for (uint32_t i = 0; !bad && i < n; i++) {
        struct entry_credit_share *cs = &d.members[i];
        bad |= read_name(&r, cs->member, ENTRY_ID_MAX, 0) != 0 || !crypto_id_valid(cs->member) ||
               (i > 0 && strcmp(d.members[i - 1].member, cs->member) >= 0);
        cs->rounds = br_u64(&r);
        bad |= cs->rounds == 0 || cs->rounds > d.rounds;
        for (uint32_t m = 0; m < d.n_measures; m++) {
            double v = br_f64(&r);
            bad |= !(v >= 0) || isinf(v);
            cs->measure_share[m] = v;
        }
        d.n = i + 1;
    }
    if (bad || r.failed || r.left != 0) {
        credit_totals_free(&d);
        return CREDIT_ERR_FORMAT;
    }
    *t = d;
    return 0;
}
