/* A round's arithmetic (aggregate/round.h, aggregate/README.md): the weighted sum of
 * the decoded updates in array order, the average, the outer step and the downlink.
 * Every float operation here is the one the coordinator's close has always made, in the
 * same order, so a model built here is the coordinator's bit for bit. */
#include "aggregate/round.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec/codec.h"
#include "common/why.h"

double agg_weight(enum policy_weighting w, uint64_t tokens, uint64_t samples)
{
    switch (w) {
    case POLICY_WEIGHT_SAMPLES: return (double)samples;
    case POLICY_WEIGHT_UNIFORM: return 1.0;
    case POLICY_WEIGHT_TOKENS: break;
    }
    return (double)tokens;
}

void agg_payload_consumed(const struct agg_update *u, size_t lo, size_t hi)
{
    if (!u || !u->mapped || !u->payload || hi > u->len || lo >= hi)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)u->payload + lo + page - 1) & ~(page - 1);
    uintptr_t b = ((uintptr_t)u->payload + hi) & ~(page - 1);
    if (hi == u->len && ((uintptr_t)u->payload & (page - 1)) == 0)
        b = ((uintptr_t)u->payload + hi + page - 1) & ~(page - 1);   /* the mapping's tail page */
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_DONTNEED);   /* advice: nothing to do if refused */
}

static int by_member(const void *a, const void *b)
{
    return strcmp(((const struct agg_update *)a)->member, ((const struct agg_update *)b)->member);
}

void agg_sort(struct agg_update *u, size_t n)
{
    if (u && n > 1)
        qsort(u, n, sizeof *u, by_member);
}

int agg_average(const struct policy_round_plan *plan, size_t n_params,
                const struct agg_update *u, size_t n, const uint8_t *include, float *avg,
                float *support, char *why, size_t cap)
{
    return agg_average_scaled(plan, n_params, u, n, include, NULL, avg, support, why, cap);
}

int agg_average_scaled(const struct policy_round_plan *plan, size_t n_params,
                       const struct agg_update *u, size_t n, const uint8_t *include,
                       const float *scale, float *avg, float *support, char *why, size_t cap)
{
    const int senders = plan && plan->average == POLICY_AVERAGE_SENDERS;
    if (!plan || !avg || (n && !u) || (senders && !support))
        return why_fail(why, cap, AGG_ERR_ARG, "agg_average: missing argument");
    memset(avg, 0, n_params * sizeof(float));
    if (senders)
        memset(support, 0, n_params * sizeof(float));
    double weight_sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (include && !include[i])
            continue;
        char what[200];
        int rc = codec_decode_accumulate_scaled(u[i].payload, u[i].len, n_params,
                                                (float)u[i].weight, scale ? scale[i] : 1.0f,
                                                avg, senders ? support : NULL, what,
                                                sizeof what);
        if (rc == CODEC_ERR_NOMEM)
            return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory decoding the update of %s",
                            u[i].member);
        if (rc != 0)
            return why_fail(why, cap, AGG_ERR_PAYLOAD, "the update of %s does not decode: %s",
                            u[i].member, what);
        agg_payload_consumed(&u[i], 0, u[i].len);
        weight_sum += u[i].weight;
    }
    /* No update (or only weightless ones): the average is zero, not 0/0. */
    if (!(weight_sum > 0)) {
        memset(avg, 0, n_params * sizeof(float));
        return 0;
    }
    const int sparse = plan->uplink.k_per_block < plan->uplink.block_size;
    outer_average(avg, sparse && senders ? support : NULL, n_params, weight_sum,
                  sparse ? plan->sparse_scale : 1.0f);
    return 0;
}

void agg_outer_trial(const struct outer_opt *outer, const float *base, const float *avg,
                     size_t n, float *out, float *scratch)
{
    struct outer_opt o = *outer;
    o.n = n;
    o.m = o.v = NULL;
    o.release = NULL;
    if (outer->kind != OUTER_FEDAVG) {
        o.m = scratch;
        memcpy(o.m, outer->m, n * sizeof(float));
    }
    if (outer->kind == OUTER_FEDADAM) {
        o.v = scratch + n;
        memcpy(o.v, outer->v, n * sizeof(float));
    }
    if (outer->release && outer->kind != OUTER_FEDAVG)
        outer->release(outer->release_arg, 0, n);   /* read only: the pages may go */
    memcpy(out, base, n * sizeof(float));
    outer_step(&o, out, avg);
}

int agg_next_model(const struct policy_round_plan *plan, struct outer_opt *outer,
                   float *down_residual, const float *base, float *avg, size_t n, float *next,
                   uint8_t **down, size_t *down_len, char *why, size_t cap)
{
    return agg_next_model_released(plan, outer, down_residual, NULL, NULL, base, NULL, NULL,
                                   avg, n, next, down, down_len, why, cap);
}

/* next = base, chunk by chunk, base_release after each. */
static void copy_base(float *next, const float *base, size_t n, codec_release_fn base_release,
                      void *base_arg)
{
    for (size_t lo = 0; lo < n; lo += OUTER_CHUNK) {
        size_t hi = n - lo < OUTER_CHUNK ? n : lo + OUTER_CHUNK;
        memcpy(next + lo, base + lo, (hi - lo) * sizeof(float));
        if (base_release)
            base_release(base_arg, lo, hi);
    }
}

/* next = base, outer_step along avg; every value finite; then, with the downlink on,
 * avg = next - base (the change the downlink compresses). */
static int next_step(const struct policy_round_plan *plan, struct outer_opt *outer,
                     const float *base, codec_release_fn base_release, void *base_arg,
                     float *avg, size_t n, float *next, char *why, size_t cap)
{
    copy_base(next, base, n, base_release, base_arg);
    outer_step(outer, next, avg);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(next[i]))
            return why_fail(why, cap, AGG_ERR_MODEL,
                            "the new model has non-finite parameters (the first at %zu)", i);
    if (plan->downlink_on)
        for (size_t lo = 0; lo < n; lo += OUTER_CHUNK) {
            size_t hi = n - lo < OUTER_CHUNK ? n : lo + OUTER_CHUNK;
            for (size_t i = lo; i < hi; i++)
                avg[i] = next[i] - base[i];
            if (base_release)
                base_release(base_arg, lo, hi);
        }
    return 0;
}

int agg_next_model_released(const struct policy_round_plan *plan, struct outer_opt *outer,
                            float *down_residual, codec_release_fn down_release,
                            void *down_arg, const float *base, codec_release_fn base_release,
                            void *base_arg, float *avg, size_t n, float *next, uint8_t **down,
                            size_t *down_len, char *why, size_t cap)
{
    if (!plan || !outer || !base || !avg || !next || outer->n != n ||
        (plan->downlink_on && (!down || !down_len)) ||
        (plan->downlink_on && plan->downlink.error_feedback && !down_residual))
        return why_fail(why, cap, AGG_ERR_ARG, "agg_next_model: missing argument");
    if (down) {
        *down = NULL;
        *down_len = 0;
    }
    int rc = next_step(plan, outer, base, base_release, base_arg, avg, n, next, why, cap);
    if (rc != 0 || !plan->downlink_on)
        return rc;

    /* The downlink: the change is compressed (with server-side error feedback) and the
     * new model is base + decode(change), which every replica rebuilds from the bytes. */
    const struct codec_params *dl = &plan->downlink;
    rc = codec_encode_released(avg, n, dl, dl->error_feedback ? down_residual : NULL,
                                   down_release, down_arg, down, down_len);
    if (rc == CODEC_ERR_NOMEM)
        return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory compressing the downlink update");
    if (rc != 0)
        return why_fail(why, cap, AGG_ERR_MODEL, "the downlink update could not be compressed: %s",
                        codec_strerror(rc));
    copy_base(next, base, n, base_release, base_arg);
    char what[200];
    rc = codec_decode_accumulate(*down, *down_len, n, 1.0f, next, what, sizeof what);
    if (rc != 0) {
        free(*down);
        *down = NULL;
        *down_len = 0;
        return why_fail(why, cap, rc == CODEC_ERR_NOMEM ? AGG_ERR_NOMEM : AGG_ERR_MODEL,
                        "the downlink update does not decode: %s", what);
    }
    return 0;
}

/* next += decode(payload) block by block from a read-only mapping of fd (the payload at
 * [at, at + len)), adding only at the positions the payload carries, which is what
 * codec_decode_accumulate with weight 1 does, bit for bit (codec_block_decode's product);
 * the mapping's pages are dropped every few MiB of values. */
static int decode_from_fd(int fd, uint64_t at, uint64_t len, size_t n, float *next,
                          char *what, size_t cap)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t map_at = at - at % (uint64_t)page;
    size_t map_len = (size_t)(at + len - map_at);
    uint8_t *map = mmap(NULL, map_len, PROT_READ, MAP_SHARED, fd, (off_t)map_at);
    if (map == MAP_FAILED)
        return why_fail(what, cap, CODEC_ERR_IO, "cannot map the payload file");
    struct codec_reader *r = NULL;
    int rc = codec_reader_open(map + (at - map_at), (size_t)len, n, &r, what, cap);
    float *values = NULL;
    uint8_t *present = NULL;
    if (rc == 0) {
        values = malloc(codec_reader_block_size(r) * sizeof *values);
        present = malloc(codec_reader_block_size(r));
        if (!values || !present)
            rc = why_fail(what, cap, CODEC_ERR_NOMEM, "out of memory");
    }
    size_t pos = 0, since = 0, got;
    while (rc == 0 && (rc = codec_reader_next(r, values, present, &got, what, cap)) == 0 &&
           got > 0) {
        float *o = next + pos;
        for (size_t i = 0; i < got; i++)
            if (present[i])
                o[i] += values[i];
        pos += got;
        if ((since += got) >= (size_t)1 << 20) {
            madvise(map, map_len, MADV_DONTNEED);   /* come back from the file if needed */
            since = 0;
        }
    }
    free(values);
    free(present);
    codec_reader_free(r);
    munmap(map, map_len);
    return rc;
}

int agg_next_model_fd(const struct policy_round_plan *plan, struct outer_opt *outer,
                      float *down_residual, codec_release_fn down_release, void *down_arg,
                      const float *base, codec_release_fn base_release, void *base_arg,
                      float *avg, size_t n, float *next, int down_fd, uint64_t down_at,
                      uint64_t *down_len, char *why, size_t cap)
{
    if (!plan || !outer || !base || !avg || !next || outer->n != n || !plan->downlink_on ||
        down_fd < 0 || !down_len || (plan->downlink.error_feedback && !down_residual))
        return why_fail(why, cap, AGG_ERR_ARG, "agg_next_model_fd: missing argument");
    *down_len = 0;
    int rc = next_step(plan, outer, base, base_release, base_arg, avg, n, next, why, cap);
    if (rc != 0)
        return rc;
    const struct codec_params *dl = &plan->downlink;
    uint64_t len;
    rc = codec_encode_fd(avg, n, dl, dl->error_feedback ? down_residual : NULL, down_release,
                         down_arg, down_fd, down_at, &len);
    if (rc == CODEC_ERR_NOMEM)
        return why_fail(why, cap, AGG_ERR_NOMEM, "out of memory compressing the downlink update");
    if (rc == CODEC_ERR_IO)
        return why_fail(why, cap, AGG_ERR_IO, "the downlink update could not be written: %s",
                        strerror(errno));
    if (rc != 0)
        return why_fail(why, cap, AGG_ERR_MODEL, "the downlink update could not be compressed: %s",
                        codec_strerror(rc));
    copy_base(next, base, n, base_release, base_arg);
    char what[200];
    rc = decode_from_fd(down_fd, down_at, len, n, next, what, sizeof what);
    if (rc != 0)
        return why_fail(why, cap, rc == CODEC_ERR_NOMEM ? AGG_ERR_NOMEM : AGG_ERR_MODEL,
                        "the downlink update does not decode: %s", what);
    *down_len = len;
    return 0;
}

static enum outer_kind outer_kind_of(enum policy_outer_kind k)
{
    switch (k) {
    case POLICY_OUTER_NESTEROV: return OUTER_NESTEROV;
    case POLICY_OUTER_FEDADAM: return OUTER_FEDADAM;
    case POLICY_OUTER_FEDAVG: break;
    }
    return OUTER_FEDAVG;
}

int agg_outer_init(const struct policy *p, size_t n_params, struct outer_opt *out)
{
    if (!p || !out)
        return AGG_ERR_ARG;
    const struct policy_outer_optimizer *o = &p->training.outer;
    if (outer_init(out, outer_kind_of(o->kind), n_params, (float)o->lr, (float)o->momentum) != 0)
        return AGG_ERR_NOMEM;
    if (o->kind == POLICY_OUTER_FEDADAM) {
        out->beta1 = (float)o->beta1;
        out->beta2 = (float)o->beta2;
        out->tau = (float)o->eps;
    }
    return 0;
}
