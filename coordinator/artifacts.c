/* The content-addressed store of pinned files (coordinator/artifacts.h):
 * data_dir/artifacts/<64 hex>, each file named by the plain BLAKE2b-256 of its bytes.
 *
 * Guarantees: a file appears under its name only complete, fsynced and with the hash
 * it is named by. An upload streams into data_dir/artifacts/tmp/<hex>.part (one upload
 * per hash at a time: a second one is refused with ABORTED while the first runs), is
 * hashed as it arrives, and is renamed into place only when the whole stream arrived in
 * order and hashes as announced; on any refusal, a stream that ends early or a client
 * that goes away, the temporary file is removed. artifacts_open removes what a crash
 * left in tmp/. GetArtifact reads with pread, so any number of members fetch at once. */
#include "coordinator/artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <dirent.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/auth.h"
#include "coordinator/governance.h"
#include "coordinator/queue.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/rpc.h"
#include "proto/service.h"

/* One upload in progress (c->uploads, guarded by c->mu). */
struct artifact_upload {
    uint8_t hash[32];
    uint64_t total;                 /* its announced size: counted against the store cap */
    char member[CRYPTO_ID_MAX + 1];
    struct artifact_upload *next;
};

static void store_dir(const struct coord *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/artifacts", c->opt.data_dir);
}

static uint64_t max_bytes(const struct coord *c)
{
    return c->opt.max_artifact_bytes ? c->opt.max_artifact_bytes
                                     : COORD_DEFAULT_MAX_ARTIFACT_BYTES;
}

static uint64_t max_store_bytes(const struct coord *c)
{
    return c->opt.max_artifact_store_bytes ? c->opt.max_artifact_store_bytes
                                           : COORD_DEFAULT_MAX_ARTIFACT_STORE_BYTES;
}

/* --- which files are pinned, by whom ------------------------------------------------ */

#define DAY_MS (24LL * 3600 * 1000)

/* Every pinned file of every policy that may still need it: open experiment motions
 * and queued or running experiments (live), ended ones within their
 * contribution.payload_retention_days (kept), ended ones after it (old: served to those
 * who took part while held, never kept for them). */
enum pin_kind { PIN_LIVE, PIN_KEPT, PIN_OLD };

struct pin {
    uint8_t hash[32];
    int kind;                       /* enum pin_kind */
    int member_takes_part;          /* the member asked about takes part in that policy */
};

struct pins {
    struct pin *v;
    size_t n, cap;
    const char *member;             /* NULL: nobody asked */
};

static int pins_add_policy(struct pins *ps, const struct policy *p, int kind)
{
    const struct policy_file *files[] = { &p->model.init, &p->model.config,
                                          &p->model.tokenizer };
    for (size_t i = 0; i < 3; i++) {
        if (!files[i]->present)
            continue;
        if (ps->n == ps->cap) {
            size_t cap = ps->cap ? 2 * ps->cap : 16;
            struct pin *v = realloc(ps->v, cap * sizeof *v);
            if (!v)
                return COORD_ERR_NOMEM;
            ps->v = v;
            ps->cap = cap;
        }
        struct pin *x = &ps->v[ps->n++];
        memcpy(x->hash, files[i]->blake2b, 32);
        x->kind = kind;
        x->member_takes_part = ps->member && policy_takes_part(p, ps->member);
    }
    return 0;
}

static int pins_add_text(struct pins *ps, const char *name, const uint8_t *text, size_t len,
                         int kind, uint32_t *retention_days)
{
    struct policy p;
    struct policy_error err;
    if (policy_load_buffer(name, (const char *)text, len, &p, &err) != 0) {
        log_warn("artifact store: the policy of %s no longer loads (%s); it pins nothing",
                 name, err.message);
        return 0;
    }
    if (retention_days)
        *retention_days = p.contribution.payload_retention_days;
    int rc = pins_add_policy(ps, &p, kind);
    policy_free(&p);
    return rc;
}

/* Collects the pins at now (unix ms). 0, COORD_ERR_NOMEM or COORD_ERR_STATE (the
 * records could not be read: the caller must not delete anything). */
static int pins_collect(struct coord *c, int64_t now, const char *member, struct pins *ps)
{
    memset(ps, 0, sizeof *ps);
    ps->member = member;
    struct gov_open_proposal *open;
    size_t n_open;
    if (governance_open_proposals(c, now, &open, &n_open) != 0)
        return COORD_ERR_NOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n_open; i++) {
        const struct gov_proposal *p = &open[i].p;
        if (p->family != GOV_MOTION || p->m.kind != MOTION_EXPERIMENT)
            continue;
        uint8_t *bytes;
        size_t len;
        struct entry e;
        if (ledger_get(c->ledger, p->index, &bytes, &len) != 0) {
            rc = COORD_ERR_STATE;
            break;
        }
        int drc = entry_decode(bytes, len, &e);
        free(bytes);
        if (drc != 0) {
            rc = COORD_ERR_STATE;
            break;
        }
        if (e.type == ENTRY_POLICY_PROPOSED && e.u.motion.document)
            rc = pins_add_text(ps, p->m.experiment, e.u.motion.document,
                               e.u.motion.document_len, PIN_LIVE, NULL);
        entry_free(&e);
    }
    governance_open_free(open, n_open);
    struct experiment_info *all;
    size_t n;
    if (rc == 0 && queue_list(c, &all, &n) != 0)
        rc = COORD_ERR_STATE;
    else if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const struct experiment_info *e = &all[i];
            size_t mark = ps->n;
            uint32_t days = 30;
            int ended = queue_phase_ended(e->phase);
            rc = pins_add_text(ps, e->experiment, e->policy_yaml, e->policy_yaml_len,
                               ended ? PIN_KEPT : PIN_LIVE, &days);
            /* Ended: kept like its payloads (coordinator/retention.c); an end time
             * unknown (old records) counts as recent. */
            if (ended && e->ended_ms > 0 && now - e->ended_ms > (int64_t)days * DAY_MS)
                for (size_t k = mark; k < ps->n; k++)
                    ps->v[k].kind = PIN_OLD;
        }
        queue_list_free(all, n);
    }
    if (rc != 0) {
        free(ps->v);
        memset(ps, 0, sizeof *ps);
    }
    return rc;
}

/* The strongest pin of hash: PIN_LIVE, PIN_KEPT, PIN_OLD, or -1 when none; *part: the
 * member takes part in a policy that pins it. */
static int pins_find(const struct pins *ps, const uint8_t hash[32], int *part)
{
    int best = -1;
    if (part)
        *part = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (memcmp(ps->v[i].hash, hash, 32) != 0)
            continue;
        if (best < 0 || ps->v[i].kind < best)
            best = ps->v[i].kind;
        if (part && ps->v[i].member_takes_part)
            *part = 1;
    }
    return best;
}

/* Bytes of the files held in the store (tmp/ not counted: uploads count by their
 * announced size). */
static uint64_t store_bytes(const struct coord *c)
{
    char dir[PATH_MAX];
    store_dir(c, dir, sizeof dir);
    DIR *d = opendir(dir);
    uint64_t sum = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != 64)
            continue;
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            sum += (uint64_t)sb.st_size;
    }
    closedir(d);
    return sum;
}

size_t artifacts_prune(struct coord *c, int64_t now_ms)
{
    struct pins ps;
    if (pins_collect(c, now_ms, NULL, &ps) != 0) {
        log_warn("artifact store: cannot read the proposals and experiments; nothing "
                 "removed, trying later");
        return 0;
    }
    char dir[PATH_MAX];
    store_dir(c, dir, sizeof dir);
    DIR *d = opendir(dir);
    size_t removed = 0;
    if (!d) {
        free(ps.v);
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint8_t hash[32];
        if (strlen(e->d_name) != 64 || hex_decode(e->d_name, hash, 32) != 0)
            continue;
        int kind = pins_find(&ps, hash, NULL);
        if (kind == PIN_LIVE || kind == PIN_KEPT)
            continue;
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        uint64_t size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        if (unlink(path) != 0) {
            log_warn("artifact store: cannot remove %s: %s", path, strerror(errno));
            continue;
        }
        removed++;
        log_info("artifact store: removed %s (%" PRIu64 " bytes): no open proposal, queued "
                 "or running experiment pins it, nor an experiment that ended within its "
                 "payload retention", e->d_name, size);
    }
    closedir(d);
    free(ps.v);
    return removed;
}

int artifacts_open(struct coord *c)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/artifacts/tmp", c->opt.data_dir);
    int rc = file_mkdirs(dir, 0755);
    if (rc != 0) {
        log_error("cannot create %s: %s", dir, strerror(-rc));
        return COORD_ERR_CONFIG;
    }
    DIR *d = opendir(dir);
    if (!d) {
        log_error("cannot read %s: %s", dir, strerror(errno));
        return COORD_ERR_CONFIG;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            log_info("removed %s: an upload that a restart cut off", path);
    }
    closedir(d);
    return 0;
}

int artifacts_path(const struct coord *c, const uint8_t hash[32], char *path, size_t cap)
{
    char dir[PATH_MAX], hex[65];
    store_dir(c, dir, sizeof dir);
    hex_encode(hash, 32, hex);
    if ((size_t)snprintf(path, cap, "%s/%s", dir, hex) >= cap)
        return COORD_ERR_NOT_FOUND;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return COORD_ERR_NOT_FOUND;
    return 0;
}

int artifacts_resolver(void *ctx, const char *key, const struct policy_file *f, char *path,
                       size_t cap, char *why, size_t why_cap)
{
    const struct coord *c = ctx;
    if (artifacts_path(c, f->blake2b, path, cap) == 0)
        return 0;
    char hex[65];
    hex_encode(f->blake2b, 32, hex);
    snprintf(why, why_cap, "%s: %s (BLAKE2b-256 %.16s...) is not in the coordinator's "
             "artifact store; upload it: aulac artifact put %s", key, f->file, hex, f->file);
    return COORD_ERR_NOT_FOUND;
}

int artifacts_missing(const struct coord *c, const struct policy *p, char *out, size_t cap)
{
    static const char *const keys[] = { "model.init", "model.config", "model.tokenizer" };
    const struct policy_file *files[] = { &p->model.init, &p->model.config,
                                          &p->model.tokenizer };
    int n = 0;
    size_t used = 0;
    if (cap)
        out[0] = 0;
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX], hex[65];
        if (!files[i]->present || artifacts_path(c, files[i]->blake2b, path, sizeof path) == 0)
            continue;
        hex_encode(files[i]->blake2b, 32, hex);
        if (used < cap) {
            int w = snprintf(out + used, cap - used, "%s%s (%s, %.8s...)", n ? ", " : "",
                             keys[i], files[i]->file, hex);
            used += w > 0 ? (size_t)w : 0;
        }
        n++;
    }
    return n;
}

/* --- uploads in progress ------------------------------------------------------------ */

/* Claims hash for this upload of total bytes: 0; COORD_ERR_BUSY with the member whose
 * upload of it runs; COORD_ERR_IO when the held files and the uploads under way would
 * pass the store cap (*pending: those bytes). */
static int claim(struct coord *c, const uint8_t hash[32], uint64_t total, uint64_t held,
                 const char *member, char other[CRYPTO_ID_MAX + 1], uint64_t *pending,
                 struct artifact_upload **out)
{
    struct artifact_upload *u = calloc(1, sizeof *u);
    if (!u)
        return COORD_ERR_NOMEM;
    memcpy(u->hash, hash, 32);
    u->total = total;
    snprintf(u->member, sizeof u->member, "%s", member);
    pthread_mutex_lock(&c->mu);
    uint64_t sum = held;
    for (struct artifact_upload *p = c->uploads; p; p = p->next) {
        if (memcmp(p->hash, hash, 32) == 0) {
            snprintf(other, CRYPTO_ID_MAX + 1, "%s", p->member);
            pthread_mutex_unlock(&c->mu);
            free(u);
            return COORD_ERR_BUSY;
        }
        sum += p->total;
    }
    *pending = sum;
    if (sum > max_store_bytes(c) || total > max_store_bytes(c) - sum) {
        pthread_mutex_unlock(&c->mu);
        free(u);
        return COORD_ERR_IO;
    }
    u->next = c->uploads;
    c->uploads = u;
    pthread_mutex_unlock(&c->mu);
    *out = u;
    return 0;
}

/* Lets go of the claim; stored: the file is in place, so the timer retries a queued
 * experiment that waited for it at once. */
static void release(struct coord *c, struct artifact_upload *u, int stored)
{
    pthread_mutex_lock(&c->mu);
    for (struct artifact_upload **p = &c->uploads; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            break;
        }
    if (stored) {
        c->next_start_ms = 0;
        pthread_cond_signal(&c->timer_wake);
    }
    pthread_mutex_unlock(&c->mu);
    free(u);
}

/* --- PutArtifact -------------------------------------------------------------------- */

static void finish_receipt(struct rpc_call *call, const uint8_t hash[32], uint64_t total,
                           int already)
{
    Aulac__V1__ArtifactReceipt r = AULAC__V1__ARTIFACT_RECEIPT__INIT;
    r.blake2b.data = (uint8_t *)hash;
    r.blake2b.len = 32;
    r.total_bytes = total;
    r.already_held = already;
    pb_call_finish(call, &r.base);
}

/* The whole upload after its first chunk was checked: file fd at tmp, hash h. Returns
 * 0 when the file is stored, else the call has been finished with the refusal (or the
 * client is gone) and the caller removes tmp. */
struct upload {
    struct coord *c;
    struct rpc_call *call;
    uint8_t hash[32];
    uint64_t total, got;
    crypto_generichash_blake2b_state h;
    int fd;
    char tmp[PATH_MAX];
    char name[80];                  /* for messages */
    char member[CRYPTO_ID_MAX + 1];
};

static int refuse(struct upload *u, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct upload *u, grpc_status_code code, const char *fmt, ...)
{
    char msg[512];
    char hex[65];
    hex_encode(u->hash, 32, hex);
    int n = snprintf(msg, sizeof msg, "PutArtifact %.16s... (%s): ", hex, u->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    log_warn("refused an upload from %s: %s", u->member, msg);
    rpc_call_finish(u->call, code, msg, NULL, 0);
    return -1;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Checks one chunk against the upload and appends it. */
static int take_chunk(struct upload *u, const Aulac__V1__ArtifactChunk *ch)
{
    if (ch->blake2b.len != 32 || memcmp(ch->blake2b.data, u->hash, 32) != 0)
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "the chunk at offset %" PRIu64
                      " names another file than the upload's first chunk", ch->offset);
    if (ch->total_bytes != u->total)
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "the chunk at offset %" PRIu64
                      " says total_bytes %" PRIu64 ", the first chunk %" PRIu64,
                      ch->offset, ch->total_bytes, u->total);
    if (ch->offset != u->got)
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "offsets out of order: a chunk at "
                      "offset %" PRIu64 " where %" PRIu64 " was expected (chunks must follow "
                      "each other from 0)", ch->offset, u->got);
    if (ch->data.len > FED_MAX_CHUNK_BYTES)
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "a chunk of %zu bytes, over the "
                      "1 MiB limit", ch->data.len);
    if (ch->data.len > u->total - u->got)
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "more bytes than total_bytes "
                      "%" PRIu64 " (a chunk of %zu at offset %" PRIu64 ")", u->total,
                      ch->data.len, ch->offset);
    int rc = write_all(u->fd, ch->data.data, ch->data.len);
    if (rc != 0) {
        log_error("cannot write %s: %s", u->tmp, strerror(-rc));
        return refuse(u, rc == -ENOSPC || rc == -EDQUOT ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                                        : GRPC_STATUS_INTERNAL,
                      "the coordinator cannot write the file: %s", strerror(-rc));
    }
    crypto_generichash_blake2b_update(&u->h, ch->data.data, ch->data.len);
    u->got += ch->data.len;
    return 0;
}

/* Receives the chunks after the first to the end of the stream, then checks and
 * stores. 0: stored (the caller answers). */
static int receive_rest(struct upload *u)
{
    for (;;) {
        ProtobufCMessage *m;
        int rc = pb_call_recv(u->call, &aulac__v1__artifact_chunk__descriptor, &m);
        if (rc == RPC_EOS)
            break;
        if (rc != 0) {   /* cancelled: the client is gone; malformed: already finished */
            log_warn("upload of %s from %s cut off after %" PRIu64 " of %" PRIu64
                     " bytes (%s); nothing kept", u->name, u->member, u->got, u->total,
                     rpc_strerror(rc));
            return -1;
        }
        rc = take_chunk(u, (const Aulac__V1__ArtifactChunk *)m);
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc != 0)
            return rc;
    }
    if (u->got != u->total)
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "the stream ended after %" PRIu64
                      " of %" PRIu64 " bytes; nothing kept", u->got, u->total);
    uint8_t got[32];
    crypto_generichash_blake2b_final(&u->h, got, sizeof got);
    if (memcmp(got, u->hash, 32) != 0) {
        char want_hex[65], got_hex[65];
        hex_encode(u->hash, 32, want_hex);
        hex_encode(got, 32, got_hex);
        return refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "the %" PRIu64 " bytes received hash "
                      "to %s, not the %s the upload names; nothing kept", u->got, got_hex,
                      want_hex);
    }
    if (fsync(u->fd) != 0) {
        int e = errno;
        log_error("cannot fsync %s: %s", u->tmp, strerror(e));
        return refuse(u, GRPC_STATUS_INTERNAL, "the coordinator cannot write the file: %s",
                      strerror(e));
    }
    return 0;
}

void artifacts_on_put(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    char member[CRYPTO_ID_MAX + 1];
    if (auth_call_recv(c, call, &aulac__v1__artifact_chunk__descriptor, &in, member) != 0)
        return;
    const Aulac__V1__ArtifactChunk *first = (const Aulac__V1__ArtifactChunk *)in;
    struct upload *u = calloc(1, sizeof *u);
    if (!u) {
        protobuf_c_message_free_unpacked(in, NULL);
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        return;
    }
    u->c = c;
    u->call = call;
    u->fd = -1;
    snprintf(u->member, sizeof u->member, "%s", member);
    snprintf(u->name, sizeof u->name, "%s", first->name && first->name[0] ? first->name
                                                                          : "unnamed");
    for (char *p = u->name; *p; p++)   /* for logs: printable only */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    struct artifact_upload *claimed = NULL;
    int stored = 0;
    if (first->blake2b.len != 32) {
        refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "blake2b must be 32 bytes, not %zu",
               first->blake2b.len);
        goto out;
    }
    memcpy(u->hash, first->blake2b.data, 32);
    u->total = first->total_bytes;
    if (first->offset != 0) {
        refuse(u, GRPC_STATUS_INVALID_ARGUMENT, "offsets out of order: the first chunk is "
               "at offset %" PRIu64 ", not 0", first->offset);
        goto out;
    }
    char final_path[PATH_MAX];
    if (artifacts_path(c, u->hash, final_path, sizeof final_path) == 0) {
        struct stat sb;
        uint64_t held = stat(final_path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        log_info("upload of %s from %s: already held (%" PRIu64 " bytes)", u->name, member,
                 held);
        finish_receipt(call, u->hash, held, 1);
        goto out;
    }
    if (u->total > max_bytes(c)) {
        char cap[32];
        file_size_words(max_bytes(c), cap, sizeof cap);
        refuse(u, GRPC_STATUS_RESOURCE_EXHAUSTED, "a file of %" PRIu64 " bytes is over the "
               "coordinator's limit of %s (aulac-coordinator --max-artifact-bytes)", u->total,
               cap);
        goto out;
    }
    /* Only a file that an open experiment proposal or a queued or running experiment
     * pins: nobody fills the store with files no policy asks for. */
    struct pins ps;
    int prc = pins_collect(c, time_now_unix_ms(), NULL, &ps);
    int kind = prc == 0 ? pins_find(&ps, u->hash, NULL) : -1;
    free(ps.v);
    if (prc != 0) {
        refuse(u, GRPC_STATUS_UNAVAILABLE, "the coordinator cannot read its proposals and "
               "experiments; retry later");
        goto out;
    }
    if (kind != PIN_LIVE) {
        refuse(u, GRPC_STATUS_FAILED_PRECONDITION, "no open experiment proposal and no "
               "queued or running experiment pins this file; propose the policy that pins "
               "it first (aulac experiment propose POLICY uploads its files after filing "
               "the proposal)");
        goto out;
    }
    char dir[PATH_MAX];
    store_dir(c, dir, sizeof dir);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        if (avail < COORD_ARTIFACT_FREE_MARGIN_BYTES ||
            u->total > avail - COORD_ARTIFACT_FREE_MARGIN_BYTES) {
            char free_w[32], size_w[32];
            file_size_words(avail, free_w, sizeof free_w);
            file_size_words(u->total, size_w, sizeof size_w);
            refuse(u, GRPC_STATUS_RESOURCE_EXHAUSTED, "a file of %s would leave less than "
                   "1 GiB free on the coordinator's disk (%s free)", size_w, free_w);
            goto out;
        }
    }
    char other[CRYPTO_ID_MAX + 1];
    uint64_t pending = 0;
    int rc = claim(c, u->hash, u->total, store_bytes(c), member, other, &pending, &claimed);
    if (rc == COORD_ERR_IO) {
        char cap[32], now_w[32];
        file_size_words(max_store_bytes(c), cap, sizeof cap);
        file_size_words(pending, now_w, sizeof now_w);
        refuse(u, GRPC_STATUS_RESOURCE_EXHAUSTED, "a file of %" PRIu64 " bytes would take "
               "the coordinator's artifact store past its limit of %s (%s held or being "
               "uploaded; aulac-coordinator --max-artifact-store-bytes)", u->total, cap,
               now_w);
        goto out;
    }
    if (rc == COORD_ERR_BUSY) {
        refuse(u, GRPC_STATUS_ABORTED, "another upload of the same file (by %s) is in "
               "progress; retry once it ends (the file is then already held)", other);
        goto out;
    }
    if (rc != 0) {
        refuse(u, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* Held now? An upload that finished between the check above and the claim. */
    if (artifacts_path(c, u->hash, final_path, sizeof final_path) == 0) {
        finish_receipt(call, u->hash, u->total, 1);
        goto out;
    }
    char hex[65];
    hex_encode(u->hash, 32, hex);
    snprintf(u->tmp, sizeof u->tmp, "%s/artifacts/tmp/%s.part", c->opt.data_dir, hex);
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (u->fd < 0) {
        log_error("cannot create %s: %s", u->tmp, strerror(errno));
        u->tmp[0] = 0;
        refuse(u, GRPC_STATUS_INTERNAL, "the coordinator cannot create the file: %s",
               strerror(errno));
        goto out;
    }
    crypto_generichash_blake2b_init(&u->h, NULL, 0, 32);
    if (take_chunk(u, first) != 0 || receive_rest(u) != 0)
        goto out;
    close(u->fd);
    u->fd = -1;
    if (rename(u->tmp, final_path) != 0) {
        int e = errno;
        log_error("cannot rename %s to %s: %s", u->tmp, final_path, strerror(e));
        refuse(u, GRPC_STATUS_INTERNAL, "the coordinator cannot store the file: %s",
               strerror(e));
        goto out;
    }
    u->tmp[0] = 0;
    (void)file_fsync_dir_of(final_path);
    stored = 1;
    log_info("stored artifact %s (%s, %" PRIu64 " bytes) uploaded by %s", hex, u->name,
             u->total, member);
    finish_receipt(call, u->hash, u->total, 0);
out:
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp[0])
        unlink(u->tmp);
    if (claimed)
        release(c, claimed, stored);
    protobuf_c_message_free_unpacked(in, NULL);
    free(u);
}

/* --- GetArtifact -------------------------------------------------------------------- */

void artifacts_on_get(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    char member[CRYPTO_ID_MAX + 1];
    if (auth_call_recv(c, call, &aulac__v1__artifact_request__descriptor, &in, member) != 0)
        return;
    const Aulac__V1__ArtifactRequest *q = (const Aulac__V1__ArtifactRequest *)in;
    char msg[300], hex[65], path[PATH_MAX];
    uint8_t *buf = NULL;
    int fd = -1;
    if (q->blake2b.len != 32) {
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "GetArtifact: blake2b must be "
                        "32 bytes", NULL, 0);
        goto out;
    }
    hex_encode(q->blake2b.data, 32, hex);
    /* Only to a member that takes part in an experiment (proposed, queued, running or
     * ended) that pins the file: a restricted experiment's model stays with its members. */
    struct pins ps;
    int part = 0;
    int prc = pins_collect(c, time_now_unix_ms(), member, &ps);
    int kind = prc == 0 ? pins_find(&ps, q->blake2b.data, &part) : -1;
    free(ps.v);
    if (prc != 0) {
        rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "GetArtifact: the coordinator cannot "
                        "read its proposals and experiments; retry later", NULL, 0);
        goto out;
    }
    if (kind >= 0 && !part) {
        snprintf(msg, sizeof msg, "GetArtifact %.16s...: %s takes part in no experiment "
                 "that pins this file", hex, member);
        rpc_call_finish(call, GRPC_STATUS_PERMISSION_DENIED, msg, NULL, 0);
        goto out;
    }
    if (kind < 0 || artifacts_path(c, q->blake2b.data, path, sizeof path) != 0 ||
        (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(msg, sizeof msg, "the coordinator holds no pinned file %s; a member who "
                 "has it uploads it with: aulac artifact put FILE", hex);
        rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, msg, NULL, 0);
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rpc_call_finish(call, GRPC_STATUS_INTERNAL, "GetArtifact: cannot read the file", NULL,
                        0);
        goto out;
    }
    const uint64_t total = (uint64_t)sb.st_size;
    if (q->offset > total) {
        snprintf(msg, sizeof msg, "GetArtifact %.16s...: offset %" PRIu64 " is past the end "
                 "of the file (%" PRIu64 " bytes)", hex, q->offset, total);
        rpc_call_finish(call, GRPC_STATUS_OUT_OF_RANGE, msg, NULL, 0);
        goto out;
    }
    const uint64_t end = q->length && q->length < total - q->offset ? q->offset + q->length
                                                                   : total;
    buf = malloc(FED_MAX_CHUNK_BYTES);
    if (!buf) {
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        goto out;
    }
    uint64_t off = q->offset;
    int rc = 0;
    do {
        size_t n = end - off < FED_MAX_CHUNK_BYTES ? (size_t)(end - off) : FED_MAX_CHUNK_BYTES;
        int e = file_pread_all(fd, buf, n, off);
        if (e != 0) {
            log_error("cannot read %s at offsets %" PRIu64 "..%" PRIu64 ": %s", path, off,
                      off + n, e == -ENODATA ? "the file is shorter than it was" : strerror(-e));
            rpc_call_finish(call, GRPC_STATUS_INTERNAL, "GetArtifact: the coordinator cannot "
                            "read the file", NULL, 0);
            goto out;
        }
        Aulac__V1__ArtifactChunk ch = AULAC__V1__ARTIFACT_CHUNK__INIT;
        ch.blake2b.data = q->blake2b.data;
        ch.blake2b.len = 32;
        ch.total_bytes = total;
        ch.offset = off;
        rc = pb_call_send_bulk(call, &ch.base, FED_ARTIFACT_CHUNK_DATA_FIELD, buf, n, NULL,
                               NULL);
        off += n;
    } while (rc == 0 && off < end);
    if (rc == 0)
        rpc_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    protobuf_c_message_free_unpacked(in, NULL);
}
