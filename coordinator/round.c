/* The open round (coordinator/round.h): its buffers, accepted set, acceptance checks and
 * the close's aggregation. No locking here: the caller holds coord.mu (or owns the round
 * as its close, closing set). */
#define _GNU_SOURCE   /* copy_file_range, sync_file_range */
#include "coordinator/round.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"

#include "codec/codec.h"
#include "model/model_hash.h"

/* Copies len bytes from offset off of in to the same offset of out: copy_file_range, or a
 * fixed 1 MiB buffer where the kernel cannot (another file system). 0 or -errno
 * (-ENODATA when in ends first). */
static int copy_range(int in, int out, off_t off, size_t len)
{
    loff_t a = off, b = off;
    size_t left = len;
    while (left > 0) {
        ssize_t k = copy_file_range(in, &a, out, &b, left, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        left -= (size_t)k;
    }
    if (left == 0)
        return 0;
    enum { BUF = 1 << 20 };
    uint8_t *buf = malloc(BUF);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    while (rc == 0 && left > 0) {
        size_t want = left < BUF ? left : BUF;
        rc = file_pread_all(in, buf, want, (uint64_t)a);
        if (rc == 0)
            rc = file_pwrite_all(out, buf, want, (uint64_t)b);
        a += (loff_t)want;
        b += (loff_t)want;
        left -= want;
    }
    free(buf);
    return rc;
}

int state_map_create(struct state_map *sm, const char *tmp, const char *from,
                     const uint8_t *hdr, size_t hdr_len, size_t n, size_t vectors)
{
    memset(sm, 0, sizeof *sm);
    sm->fd = -1;
    snprintf(sm->tmp, sizeof sm->tmp, "%s", tmp);
    const size_t body = vectors * n * sizeof(float);
    int rc = 0, in = -1;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = file_pwrite_all(fd, hdr, hdr_len, 0);
    if (rc == 0 && ftruncate(fd, (off_t)(hdr_len + body)) != 0)
        rc = -errno;
    if (rc == 0 && from) {
        struct stat st;
        in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0 || fstat(in, &st) != 0)
            rc = -errno;
        else if ((size_t)st.st_size != hdr_len + body)
            rc = -EINVAL;   /* the state of another model or kind: load checks it first */
        else
            rc = copy_range(in, fd, (off_t)hdr_len, body);
        if (in >= 0)
            close(in);
    }
    void *map = NULL;
    if (rc == 0 && body) {
        map = mmap(NULL, hdr_len + body, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            rc = -errno;
            map = NULL;
        }
    }
    if (rc != 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    sm->fd = fd;
    sm->map = map;
    sm->len = hdr_len + body;
    sm->at = hdr_len;
    sm->n = n;
    sm->vectors = vectors;
    return 0;
}

void state_map_release(void *arg, size_t lo, size_t hi)
{
    struct state_map *sm = arg;
    if (!sm || !sm->map || lo >= hi)
        return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t v = 0; v < sm->vectors; v++) {
        size_t a = sm->at + (v * sm->n + lo) * sizeof(float);
        size_t b = sm->at + (v * sm->n + hi) * sizeof(float);
        a &= ~(page - 1);   /* outward: a neighbour's page refaults from the cache */
        b = (b + page - 1) & ~(page - 1);
        if (b > sm->len)
            b = (sm->len + page - 1) & ~(page - 1);
        (void)madvise(sm->map + a, b - a, MADV_DONTNEED);   /* advice */
        (void)sync_file_range(sm->fd, (off_t)a, (off_t)(b - a), SYNC_FILE_RANGE_WRITE);
    }
}

void state_map_close(struct state_map *sm, int unlink_tmp)
{
    if (sm->map)
        munmap(sm->map, sm->len);
    if (sm->fd >= 0) {
        close(sm->fd);
        if (unlink_tmp && sm->tmp[0])
            unlink(sm->tmp);
    }
    sm->map = NULL;
    sm->fd = -1;
    sm->len = sm->n = sm->vectors = sm->at = 0;
}

int state_map_commit(struct state_map *sm, const char *path, const uint8_t *hdr,
                     size_t hdr_len)
{
    if (sm->fd < 0)
        return -EBADF;
    int rc = file_pwrite_all(sm->fd, hdr, hdr_len, 0);
    if (sm->map) {
        munmap(sm->map, sm->len);
        sm->map = NULL;
    }
    if (rc == 0 && fsync(sm->fd) != 0)
        rc = -errno;
    if (rc == 0 && rename(sm->tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = file_fsync_dir_of(path);
    state_map_close(sm, rc != 0);
    return rc;
}

int down_payload_map(const char *path, struct down_payload **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && st.st_size <= 32)
        rc = -EINVAL;
    struct down_payload *d = rc == 0 ? calloc(1, sizeof *d) : NULL;
    if (rc == 0 && !d)
        rc = -ENOMEM;
    if (rc == 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            rc = -errno;
        } else {
            d->refs = 1;
            d->map = m;
            d->map_len = (size_t)st.st_size;
            memcpy(d->from, d->map, 32);
            d->bytes = d->map + 32;
            d->len = d->map_len - 32;
            /* A download reads it front to back. */
            madvise(d->map, d->map_len, MADV_SEQUENTIAL);
        }
    }
    close(fd);
    if (rc != 0) {
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void down_payload_release(struct down_payload *d)
{
    if (d && --d->refs == 0) {
        munmap(d->map, d->map_len);
        free(d);
    }
}

void down_payload_drop(const struct down_payload *d, size_t lo, size_t hi)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = 32 + lo, b = 32 + (hi < d->len ? hi : d->len);
    a = (a + page - 1) / page * page;
    b = b / page * page;
    if (hi >= d->len)
        b = d->map_len;   /* the last, partial page too */
    if (b > a)
        madvise(d->map + a, b - a, MADV_DONTNEED);
}

int round_init_members(struct coord_round *r)
{
    r->accepted = calloc(COORD_ROUND_MAX_UPDATES, sizeof *r->accepted);
    return r->accepted ? 0 : -1;
}

void round_free_members(struct coord_round *r)
{
    free(r->accepted);
    r->accepted = NULL;
}

int round_init(struct coord_round *r, size_t n_params)
{
    r->outer_map.fd = r->down_map.fd = -1;
    r->avg = model_buf_alloc(n_params);
    r->buf_n = n_params;
    return r->avg ? 0 : -1;
}

void round_release_buffers(struct coord_round *r)
{
    model_buf_drop(r->avg, r->buf_n);
    model_buf_drop(r->scratch, r->buf_n);
    model_buf_drop(r->next, r->buf_n);
}

void round_free(struct coord_round *r)
{
    struct round_member *slots = r->accepted;
    state_map_close(&r->outer_map, 1);
    state_map_close(&r->down_map, 1);
    r->outer.m = r->outer.v = NULL;   /* pointed into outer_map */
    outer_free(&r->outer);
    model_buf_free(r->avg, r->buf_n);
    model_buf_free(r->scratch, r->buf_n);
    model_buf_free(r->next, r->buf_n);
    down_payload_release(r->down);
    memset(r, 0, sizeof *r);
    r->accepted = slots;
    r->outer_map.fd = r->down_map.fd = -1;
}

void round_reset(struct coord_round *r, uint64_t number, const struct policy *p,
                 int64_t opened_ms)
{
    r->number = number;
    r->n_accepted = 0;
    r->weight_sum = 0;
    r->opened_ms = opened_ms;
    r->deadline_ms = opened_ms + (int64_t)p->participation.round_deadline_s * 1000;
    r->deadline_logged = 0;
    r->closing = 0;
    r->close_pending = 0;
    r->close_retry_at_ms = 0;
    r->close_failures = 0;
}

int round_validate(const struct policy *p, size_t n_params, size_t n_eligible, double weight,
                   const uint8_t *payload, size_t len, double *norm, char *why, size_t cap)
{
    char what[200];
    *norm = 0;
    int rc = codec_payload_norm(payload, len, n_params, norm, what, sizeof what);
    if (rc == CODEC_ERR_NOMEM) {
        snprintf(why, cap, "the coordinator is short of memory to check the update");
        return rc;
    }
    if (rc != 0) {
        snprintf(why, cap, "%s", what);
        return -1;
    }
    /* The reason goes to the ledger and the API: under privacy it does not publish the
     * update's norm (a statistic of the member's data the noise does not cover). */
    char its[48];
    if (p->privacy.enabled)
        snprintf(its, sizeof its, "its L2 norm");
    else
        snprintf(its, sizeof its, "its L2 norm %.4g", *norm);
    if (!(*norm * weight * (double)(n_eligible + 1) < 1e36)) {
        snprintf(why, cap, "%s is too large to aggregate", its);
        return -1;
    }
    const struct policy_aggregation *a = &p->aggregation;
    if (a->rule == POLICY_AGG_CLIP) {
        if (a->norm_cap > 0 && *norm > a->norm_cap) {
            snprintf(why, cap, "%s exceeds the policy's aggregation.norm_cap %.4g (rule clip "
                     "scales updates above norm_bound %.4g, and refuses them above the cap)",
                     its, a->norm_cap, a->norm_bound);
            return -1;
        }
    } else if (a->norm_bound > 0 && *norm > a->norm_bound) {
        snprintf(why, cap, "%s exceeds the policy's aggregation.norm_bound %.4g", its,
                 a->norm_bound);
        return -1;
    }
    return 0;
}

int round_has(const struct coord_round *r, const char *member)
{
    for (size_t i = 0; i < r->n_accepted; i++)
        if (strcmp(r->accepted[i].id, member) == 0)
            return 1;
    return 0;
}

int round_accept(struct coord_round *r, const struct round_member *m, double weight)
{
    if (r->n_accepted >= COORD_ROUND_MAX_UPDATES)
        return -1;
    r->accepted[r->n_accepted++] = *m;
    r->weight_sum += weight;
    return 0;
}

int round_all_reported(const struct coord_round *r, const struct roster *roster,
                       const struct policy *p)
{
    if (r->n_accepted == 0)
        return 0;
    for (size_t i = 0; i < roster->n_members; i++) {
        const char *id = roster->members[i].id;
        if (policy_takes_part(p, id) && !round_has(r, id))
            return 0;
    }
    return 1;
}

size_t round_min_updates(const struct policy *p)
{
    size_t need = p->participation.min_members;
    size_t rule = agg_rule_min_updates(p);
    if (rule > need)
        need = rule;
    return need ? need : 1;
}

int round_combine(struct coord_round *r, const struct policy *p,
                  const struct policy_round_plan *plan, size_t n_params,
                  const struct agg_update *u, size_t n, const uint8_t *dp_seed,
                  unsigned dp_scheme, struct round_outcome *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->stats = calloc(n ? n : 1, sizeof *out->stats);
    if (!out->stats) {
        snprintf(why, cap, "out of memory");
        return AGG_ERR_NOMEM;
    }
    if (plan->average == POLICY_AVERAGE_SENDERS && !r->scratch &&
        !(r->scratch = model_buf_alloc(r->buf_n))) {
        round_outcome_free(out);
        snprintf(why, cap, "out of memory for the senders' support");
        return AGG_ERR_NOMEM;
    }
    int rc = agg_combine(p, plan, n_params, u, n, NULL, r->avg, r->scratch, out->stats, why,
                         cap);
    if (rc != 0) {
        round_outcome_free(out);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        out->used += out->stats[i].used != 0;
        out->clipped += out->stats[i].used && out->stats[i].scale < 1.0f;
    }
    if (p->privacy.enabled) {
        rc = agg_dp_noise_scheme(p, plan, out->used, dp_seed, r->number, r->avg, n_params,
                                 dp_scheme);
        if (rc != 0) {
            snprintf(why, cap, "the DP noise could not be added (%d)", rc);
            round_outcome_free(out);
            return rc;
        }
        out->noised = p->privacy.noise_multiplier > 0;
    }
    /* Under privacy the hash is of the noised average: a hash of the clean one would let
     * anyone holding the other members' updates test guesses of one member's update
     * exactly, voiding the guarantee (PRIVACY.md). */
    model_hash(r->avg, n_params, out->aggregate_hash);
    return 0;
}

void round_outcome_free(struct round_outcome *out)
{
    free(out->stats);
    out->stats = NULL;
}

/* Appends to buf at *at (cap bytes in all); "..." when full. */
static void put(char *buf, size_t cap, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t cap, size_t *at, const char *fmt, ...)
{
    if (*at >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *at, cap - *at, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k >= cap - *at) {
        *at = cap;
        if (cap >= 4)
            memcpy(buf + cap - 4, "...", 4);
        return;
    }
    *at += (size_t)k;
}

void round_outcome_describe(const struct round_outcome *out, const struct policy *p,
                            const struct agg_update *u, char *buf, size_t cap)
{
    size_t at = 0;
    if (cap == 0)
        return;
    buf[0] = 0;
    const struct policy_aggregation *a = &p->aggregation;
    put(buf, cap, &at, "rule %s: %zu of %zu update(s) averaged",
        policy_agg_rule_name(a->rule), out->used, out->n);
    if (a->rule == POLICY_AGG_CLIP || p->privacy.enabled) {
        double c = p->privacy.enabled ? p->privacy.clip : a->norm_bound;
        if (p->privacy.enabled && a->rule == POLICY_AGG_CLIP && a->norm_bound < c)
            c = a->norm_bound;
        put(buf, cap, &at, "; clipped to %.4g: %zu", c, out->clipped);
        const char *sep = " (";
        for (size_t i = 0; i < out->n; i++)
            if (out->stats[i].used && out->stats[i].scale < 1.0f) {
                put(buf, cap, &at, "%s%s norm %.4g", sep, u[i].member, out->stats[i].norm);
                sep = ", ";
            }
        if (out->clipped)
            put(buf, cap, &at, ")");
    }
    if (a->rule == POLICY_AGG_MULTI_KRUM) {
        const char *sep = "; Krum selected: ";
        for (size_t i = 0; i < out->n; i++)
            if (out->stats[i].used) {
                put(buf, cap, &at, "%s%s", sep, u[i].member);
                sep = ", ";
            }
        sep = "; left out: ";
        for (size_t i = 0; i < out->n; i++)
            if (!out->stats[i].used) {
                put(buf, cap, &at, "%s%s (score %.4g)", sep, u[i].member,
                    out->stats[i].krum_score);
                sep = ", ";
            }
    }
    if (out->noised)
        put(buf, cap, &at, "; DP noise of std %.4g (noise_multiplier %.4g x clip %.4g) on "
            "the sum", p->privacy.noise_multiplier * p->privacy.clip,
            p->privacy.noise_multiplier, p->privacy.clip);
}
