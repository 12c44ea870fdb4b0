#include "worker/artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/timeutil.h"
#include "common/why.h"
#include "crypto/digest.h"
#include "proto/client.h"

#define ARTIFACT_ATTEMPTS 30        /* calls that fail for a reason a retry may pass */
#define ARTIFACT_RETRY_MS 1000

struct part {
    int fd;
    uint64_t size;      /* bytes in the .part file */
    uint64_t total;     /* the file's size, as the coordinator says (have_total) */
    int have_total;     /* total known: from an earlier chunk or attempt */
    uint64_t cap;       /* site limits.max_artifact_bytes */
    int failed;         /* a write failed (errno in err) */
    int err;
    char bad[200];      /* a chunk the worker refuses: why */
};

/* Takes one chunk: in order, inside total_bytes, total_bytes the same across chunks and
 * resumed attempts, and within the site's cap; anything else stops the download. */
static int on_chunk(const Aulac__V1__ArtifactChunk *ch, void *ctx)
{
    struct part *p = ctx;
    if (p->have_total && ch->total_bytes != p->total) {
        snprintf(p->bad, sizeof p->bad, "the coordinator said the file has %" PRIu64
                 " bytes, then %" PRIu64, p->total, ch->total_bytes);
        return 1;
    }
    if (ch->total_bytes > p->cap) {
        snprintf(p->bad, sizeof p->bad, "the file has %" PRIu64 " bytes, over this site's "
                 "limits.max_artifact_bytes %" PRIu64, ch->total_bytes, p->cap);
        return 1;
    }
    if (ch->offset != p->size || ch->offset > ch->total_bytes ||
        ch->data.len > ch->total_bytes - ch->offset) {
        snprintf(p->bad, sizeof p->bad, "a chunk [%" PRIu64 ", +%zu) of a %" PRIu64
                 "-byte file where offset %" PRIu64 " was expected", ch->offset,
                 ch->data.len, ch->total_bytes, p->size);
        return 1;
    }
    p->total = ch->total_bytes;
    p->have_total = 1;
    size_t off = 0;
    while (off < ch->data.len) {
        ssize_t n = write(p->fd, ch->data.data + off, ch->data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            p->failed = 1;
            p->err = errno;
            return 1;
        }
        off += (size_t)n;
    }
    p->size += ch->data.len;
    return 0;
}

static uint64_t site_artifact_cap(const struct worker *w)
{
    return w->site.max_artifact_bytes ? w->site.max_artifact_bytes
                                      : SITE_DEFAULT_MAX_ARTIFACT_BYTES;
}

/* Fetches the file `hash` into part_path (appending to what is there) until complete. */
static int download(struct worker *w, const char *key, const uint8_t hash[32],
                    const char *hex, const char *part_path, char *why, size_t why_cap)
{
    uint64_t total = 0;
    int have_total = 0;
    for (int attempt = 1;; attempt++) {
        struct part p = { .fd = open(part_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600),
                          .total = total, .have_total = have_total,
                          .cap = site_artifact_cap(w) };
        if (p.fd < 0)
            return why_fail(why, why_cap, -1, "%s: cannot write %s: %s", key, part_path,
                            strerror(errno));
        struct stat st;
        if (fstat(p.fd, &st) != 0) {
            close(p.fd);
            return why_fail(why, why_cap, -1, "%s: cannot read %s: %s", key, part_path,
                            strerror(errno));
        }
        p.size = (uint64_t)st.st_size;
        if (p.size > p.cap) {
            close(p.fd);
            unlink(part_path);
            return why_fail(why, why_cap, -1, "%s: %s holds %" PRIu64 " bytes, over this "
                            "site's limits.max_artifact_bytes %" PRIu64 "; removed", key,
                            part_path, p.size, p.cap);
        }
        if (attempt == 1 && p.size > 0)
            log_info("%s: resuming the download of %.16s at %" PRIu64 " bytes", key, hex, p.size);
        Aulac__V1__ArtifactRequest q = AULAC__V1__ARTIFACT_REQUEST__INIT;
        q.member_id = (char *)w->opt.member;
        q.blake2b.data = (uint8_t *)hash;
        q.blake2b.len = 32;
        q.offset = p.size;
        struct rpc_status rs = { 0 };
        int rc = fed_get_artifact(w->client, &q, on_chunk, &p, &rs);
        int sync_rc = fsync(p.fd);
        close(p.fd);
        if (p.failed)
            return why_fail(why, why_cap, -1, "%s: cannot write %s: %s", key, part_path,
                            strerror(p.err));
        if (p.bad[0]) {
            unlink(part_path);
            return why_fail(why, why_cap, -1, "%s: the pinned file %.16s... is refused: %s; "
                            "nothing kept", key, hex, p.bad);
        }
        total = p.total;
        have_total = p.have_total;
        if (rc == 0 && sync_rc == 0)
            return 0;
        if (rs.code == GRPC_STATUS_OUT_OF_RANGE) {
            /* the .part is longer than the file: it cannot be a prefix of it */
            unlink(part_path);
        } else if (rs.code == GRPC_STATUS_NOT_FOUND) {
            return why_fail(why, why_cap, -1, "%s: the coordinator does not hold the pinned "
                            "file %.16s... (the proposer uploads it with `aulac artifact put`)",
                            key, hex);
        } else if (rs.code == GRPC_STATUS_PERMISSION_DENIED ||
                   rs.code == GRPC_STATUS_INVALID_ARGUMENT) {
            return why_fail(why, why_cap, -1, "%s: the coordinator refuses the pinned file "
                            "%.16s...: %s", key, hex, rs.details);
        }
        if (attempt >= ARTIFACT_ATTEMPTS || worker_stopping())
            return why_fail(why, why_cap, -1, "%s: the download of the pinned file %.16s... "
                            "failed %d times, the last: %s", key, hex, attempt,
                            rs.details[0] ? rs.details : rpc_strerror(rc));
        log_warn("%s: the download of %.16s... stopped at %" PRIu64 " bytes (%s); resuming",
                 key, hex, p.size, rs.details[0] ? rs.details : rpc_strerror(rc));
        time_sleep_ms(ARTIFACT_RETRY_MS);
    }
}

/* --- an init's parameters, from its safetensors header alone ------------------------ */

struct mem_sink {
    uint8_t *buf;
    uint64_t want, got;
};

static int on_mem_chunk(const Aulac__V1__ArtifactChunk *ch, void *ctx)
{
    struct mem_sink *m = ctx;
    if (ch->data.len > m->want - m->got)
        return 1;
    memcpy(m->buf + m->got, ch->data.data, ch->data.len);
    m->got += ch->data.len;
    return 0;
}

/* Bytes [offset, offset + len) of the pinned file into buf: 0, or -1 with why. */
static int fetch_range(struct worker *w, const char *key, const uint8_t hash[32],
                       const char *hex, uint64_t offset, uint64_t len, uint8_t *buf,
                       char *why, size_t why_cap)
{
    struct rpc_status rs = { 0 };
    for (int attempt = 1;; attempt++) {
        struct mem_sink m = { .buf = buf, .want = len };
        Aulac__V1__ArtifactRequest q = AULAC__V1__ARTIFACT_REQUEST__INIT;
        q.member_id = (char *)w->opt.member;
        q.blake2b.data = (uint8_t *)hash;
        q.blake2b.len = 32;
        q.offset = offset;
        q.length = len;
        int rc = fed_get_artifact(w->client, &q, on_mem_chunk, &m, &rs);
        if (rc == 0 && m.got == len)
            return 0;
        if (rc == 0 || rs.code == GRPC_STATUS_NOT_FOUND || rs.code == GRPC_STATUS_OUT_OF_RANGE ||
            rs.code == GRPC_STATUS_PERMISSION_DENIED || rs.code == GRPC_STATUS_INVALID_ARGUMENT ||
            attempt >= ARTIFACT_ATTEMPTS || worker_stopping())
            return why_fail(why, why_cap, -1, "%s: cannot read the header of the pinned file "
                            "%.16s... (%" PRIu64 " bytes at %" PRIu64 "): %s", key, hex, len,
                            offset, rc == 0 ? "the file is shorter" :
                            rs.details[0] ? rs.details : rpc_strerror(rc));
        time_sleep_ms(ARTIFACT_RETRY_MS);
    }
}

/* The parameters of a safetensors header (JSON text): the sum over tensors of the
 * product of their shapes. 0, or -1 with why. */
static int header_parameters(const char *text, size_t len, uint64_t *out, char *why,
                             size_t why_cap)
{
    struct json_doc *d;
    char jwhy[200];
    if (json_parse(text, len, &d, jwhy, sizeof jwhy) != 0)
        return why_fail(why, why_cap, -1, "its safetensors header is not JSON: %s", jwhy);
    const struct json_value *root = json_root(d);
    int rc = 0;
    uint64_t total = 0;
    if (json_type(root) != JSON_OBJECT)
        rc = why_fail(why, why_cap, -1, "its safetensors header is not a JSON object");
    for (size_t i = 0; rc == 0 && i < json_count(root); i++) {
        const char *name;
        const struct json_value *t = json_at(root, i, &name);
        if (name && strcmp(name, "__metadata__") == 0)
            continue;
        const struct json_value *shape = json_get(t, "shape");
        if (json_type(shape) != JSON_ARRAY) {
            rc = why_fail(why, why_cap, -1, "tensor %s of its safetensors header has no shape",
                          name ? name : "?");
            break;
        }
        uint64_t n = 1;
        for (size_t k = 0; rc == 0 && k < json_count(shape); k++) {
            uint64_t dim;
            if (json_u64(json_at(shape, k, NULL), &dim) != 0 ||
                (dim && n > UINT64_MAX / dim))
                rc = why_fail(why, why_cap, -1, "tensor %s of its safetensors header has a "
                              "bad or too large shape", name ? name : "?");
            else
                n *= dim;
        }
        if (rc == 0 && n > UINT64_MAX - total)
            rc = why_fail(why, why_cap, -1, "its safetensors header counts too many parameters");
        total += n;
    }
    json_free(d);
    *out = total;
    return rc;
}

/* Before a model.init's body is downloaded: its header alone (GetArtifact [0, 8), then
 * the header), its parameters counted against limits.max_parameters. 0, or -1 with why
 * (the experiment is sat out without downloading the body). */
static int check_init_header(struct worker *w, const char *key, const uint8_t hash[32],
                             const char *hex, char *why, size_t why_cap)
{
    uint8_t le[8];
    if (fetch_range(w, key, hash, hex, 0, 8, le, why, why_cap) != 0)
        return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | le[i];
    if (n == 0 || n > ST_HEADER_MAX)
        return why_fail(why, why_cap, -1, "%s: the pinned file %.16s... is not a safetensors "
                        "file: its header length %" PRIu64 " is 0 or over %u bytes", key, hex,
                        n, ST_HEADER_MAX);
    char *text = malloc((size_t)n);
    if (!text)
        return why_fail(why, why_cap, -1, "%s: out of memory", key);
    int rc = fetch_range(w, key, hash, hex, 8, n, (uint8_t *)text, why, why_cap);
    uint64_t params = 0;
    char hwhy[300];
    if (rc == 0 && header_parameters(text, (size_t)n, &params, hwhy, sizeof hwhy) != 0)
        rc = why_fail(why, why_cap, -1, "%s: the pinned file %.16s... is not a safetensors "
                      "file: %s", key, hex, hwhy);
    free(text);
    if (rc == 0 && params > w->site.max_parameters)
        rc = why_fail(why, why_cap, -1, "%s: its model has %" PRIu64 " parameters; this site's "
                      "limits.max_parameters is %" PRIu64 " (counted from the init's header; "
                      "its body was not downloaded)", key, params, w->site.max_parameters);
    return rc;
}

int worker_artifact_resolver(void *ctx, const char *key, const struct policy_file *f,
                             char *path, size_t cap, char *why, size_t why_cap)
{
    struct worker *w = ctx;
    char hex[65], dir[PATH_MAX], part[PATH_MAX + 8];
    hex_encode(f->blake2b, 32, hex);
    if (snprintf(dir, sizeof dir, "%s/artifacts", w->opt.state_dir) >= (int)sizeof dir ||
        snprintf(path, cap, "%s/%s", dir, hex) >= (int)cap)
        return why_fail(why, why_cap, -1, "%s: the state directory's path is too long", key);
    snprintf(part, sizeof part, "%s.part", path);
    int e = file_mkdirs(dir, 0700);
    if (e != 0)
        return why_fail(why, why_cap, -1, "%s: cannot create %s: %s", key, dir, strerror(-e));
    uint8_t got[32];
    if (file_exists(path)) {
        if (crypto_blake2b256_file(path, got) == 0 && sodium_memcmp(got, f->blake2b, 32) == 0)
            return 0;
        log_warn("%s: %s does not hash to its name any more; fetching it again", key, path);
        unlink(path);
    }
    if (!w->client)
        return why_fail(why, why_cap, -1, "%s: %s is not here and there is no coordinator to "
                        "fetch it from", key, path);
    if (w->site.max_parameters && strcmp(key, "model.init") == 0 &&
        check_init_header(w, key, f->blake2b, hex, why, why_cap) != 0)
        return -1;
    for (int tries = 0; tries < 2; tries++) {
        double t0 = time_mono_s();
        if (download(w, key, f->blake2b, hex, part, why, why_cap) != 0)
            return -1;
        if ((e = crypto_blake2b256_file(part, got)) != 0)
            return why_fail(why, why_cap, -1, "%s: cannot read %s: %s", key, part, strerror(-e));
        if (sodium_memcmp(got, f->blake2b, 32) == 0) {
            if (rename(part, path) != 0)
                return why_fail(why, why_cap, -1, "%s: cannot rename %s: %s", key, part,
                                strerror(errno));
            (void)file_fsync_dir_of(path);
            struct stat st;
            log_info("%s: fetched the pinned file %s (%s, %lld bytes in %.2f s)", key, f->file,
                     hex, stat(path, &st) == 0 ? (long long)st.st_size : -1LL,
                     time_mono_s() - t0);
            return 0;
        }
        /* a stale or corrupted .part: start over once */
        log_warn("%s: the downloaded file does not hash to %.16s...; downloading it again",
                 key, hex);
        unlink(part);
    }
    return why_fail(why, why_cap, -1, "%s: the coordinator's copy of %s does not hash to "
                    "the pinned %.16s...", key, f->file, hex);
}
