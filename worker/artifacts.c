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
#include "common/log.h"
#include "common/timeutil.h"
#include "common/why.h"
#include "crypto/digest.h"
#include "proto/client.h"

#define ARTIFACT_ATTEMPTS 30        /* calls that fail for a reason a retry may pass */
#define ARTIFACT_RETRY_MS 1000

struct part {
    int fd;
    uint64_t size;      /* bytes in the .part file */
    uint64_t total;     /* the file's size, as the coordinator says */
    int failed;         /* a write failed (errno in err) */
    int err;
};

static int on_chunk(const Aulac__V1__ArtifactChunk *ch, void *ctx)
{
    struct part *p = ctx;
    if (ch->offset != p->size)
        return 1;
    p->total = ch->total_bytes;
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

/* Fetches the file `hash` into part_path (appending to what is there) until complete. */
static int download(struct worker *w, const char *key, const uint8_t hash[32],
                    const char *hex, const char *part_path, char *why, size_t why_cap)
{
    for (int attempt = 1;; attempt++) {
        struct part p = { .fd = open(part_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) };
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
