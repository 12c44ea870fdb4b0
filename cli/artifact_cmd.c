/* aulac artifact put FILE... | get HASH -o FILE: the pinned files of policies
 * (model.init, model.config, model.tokenizer) in the coordinator's content-addressed
 * store (coordinator/artifacts.h). put hashes each file (plain BLAKE2b-256) and streams
 * it (PutArtifact, signed); get streams a file by hash into FILE.part, resumes from
 * what is there, and renames it to FILE only once the whole file hashes as asked. */
#include "cli/artifact.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/timeutil.h"
#include "crypto/digest.h"
#include "proto/service.h"

static const char usage[] =
    "usage: aulac artifact put FILE... CONNECTION\n"
    "       aulac artifact get HASH -o FILE CONNECTION\n"
    "\n"
    "The files a policy pins by BLAKE2b-256 (model.init, model.config, model.tokenizer)\n"
    "are held by the coordinator under their hash and fetched from it by the members.\n"
    "An approved experiment whose pinned files the coordinator lacks waits in the queue\n"
    "until they are uploaded (aulac status says which). The coordinator takes only files\n"
    "that an open experiment proposal or a queued or running experiment pins: propose\n"
    "first (aulac experiment propose uploads the policy's files itself once filed).\n"
    "\n"
    "  put             hash each FILE and upload it; prints its hash, size and whether the\n"
    "                  coordinator stored it or already held it (progress on stderr for\n"
    "                  large files). Only roster members may upload; the coordinator\n"
    "                  keeps a file only when all of it arrived and it hashes as announced\n"
    "  get             fetch the file HASH (64 hex characters) into FILE: the bytes go to\n"
    "                  FILE.part first, a broken download resumes from there when run\n"
    "                  again, and FILE appears only once the whole file hashes to HASH\n"
    "\n"
    "  -o, --output FILE   get: where to write the file\n"
    "\n"
    "CONNECTION:\n" SIGNED_CLIENT_USAGE;

#define PROGRESS_MIN_BYTES ((uint64_t)16 << 20)
#define BUSY_RETRIES 90              /* another member uploads the same file: wait up to */
#define BUSY_WAIT_MS 2000            /* ... 3 minutes for it */

/* Prints "label: what 40%" lines to stderr at every tenth of a large file. */
struct progress {
    const char *label, *what;
    uint64_t total;
    int shown;                      /* tenths printed */
};

static void progress_at(struct progress *p, uint64_t done)
{
    if (p->total < PROGRESS_MIN_BYTES)
        return;
    int tenth = (int)(done * 10 / p->total);
    if (tenth > p->shown) {
        p->shown = tenth;
        fprintf(stderr, "%s: %s %d%% (%" PRIu64 " of %" PRIu64 " bytes)\n", p->label, p->what,
                tenth * 10, done, p->total);
    }
}

static void on_sent(void *ctx, uint64_t sent, uint64_t total)
{
    (void)total;
    progress_at(ctx, sent);
}

/* crypto_blake2b256_fd's progress: the hashing bar. */
static void on_hashed(void *ctx, uint64_t done)
{
    progress_at(ctx, done);
}

/* Plain BLAKE2b-256 of the open file fd, of size bytes, from its start. 0 or -errno. */
static int hash_fd(int fd, uint64_t size, uint8_t out[32], struct progress *p)
{
    return crypto_blake2b256_fd(fd, size, out, p ? on_hashed : NULL, p);
}

static int read_at(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
    return file_pread_all(*(int *)ctx, buf, len, off) == 0 ? 0 : -1;
}

/* The last path component, for the coordinator's messages. */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int artifact_upload_file(struct signed_client *sc, const char *cmd, const char *path,
                         const char *label, const uint8_t *want)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_fail(cmd, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cli_fail(cmd, "%s is not a regular file", path);
    }
    struct fed_artifact_source src = {
        .total_bytes = (uint64_t)sb.st_size, .member_id = sc->member, .name = base_name(path),
        .read = read_at, .read_ctx = &fd,
    };
    struct progress hp = { .label = label, .what = "hashed", .total = src.total_bytes };
    int rc = hash_fd(fd, src.total_bytes, src.blake2b, &hp);
    if (rc != 0) {
        close(fd);
        return cli_fail(cmd, "cannot read %s: %s", path, strerror(-rc));
    }
    char hex[65];
    hex_encode(src.blake2b, 32, hex);
    if (want && memcmp(want, src.blake2b, 32) != 0) {
        char w[65];
        hex_encode(want, 32, w);
        close(fd);
        return cli_fail(cmd, "%s: %s has BLAKE2b-256 %s, the policy pins %s; nothing uploaded",
                        label, path, hex, w);
    }
    struct progress sp = { .label = label, .what = "uploaded", .total = src.total_bytes };
    src.progress = on_sent;
    src.progress_ctx = &sp;
    Aulac__V1__ArtifactReceipt *r = NULL;
    struct rpc_status st = { 0 };
    for (int attempt = 0;; attempt++) {
        sp.shown = 0;
        rc = fed_put_artifact(sc->fc, &src, &r, &st);
        if (!(rc == RPC_ERR_STATUS && st.code == GRPC_STATUS_ABORTED) ||
            attempt == BUSY_RETRIES)
            break;
        if (attempt == 0)
            fprintf(stderr, "%s: another member is uploading the same file; waiting for "
                    "that upload to end\n", label);
        time_sleep_ms(BUSY_WAIT_MS);
    }
    close(fd);
    if (rc != 0)
        return cli_fail(cmd, "%s: %s", label, st.details[0] ? st.details : rpc_strerror(rc));
    printf("%s  %" PRIu64 " bytes  %s: %s\n", hex, src.total_bytes, label,
           r->already_held ? "already held" : "stored");
    fflush(stdout);
    aulac__v1__artifact_receipt__free_unpacked(r, NULL);
    return 0;
}

/* --- get ------------------------------------------------------------------------------ */

struct sink {
    int fd;
    const char *part;
    uint64_t written;               /* FILE.part's length so far */
    struct progress p;
    int failed;
};

static int on_chunk(const Aulac__V1__ArtifactChunk *ch, void *ctx)
{
    struct sink *k = ctx;
    k->p.total = ch->total_bytes;
    int e = file_pwrite_all(k->fd, ch->data.data, ch->data.len, ch->offset);
    if (e != 0) {
        k->failed = -e;
        return -1;
    }
    k->written = ch->offset + ch->data.len;
    progress_at(&k->p, k->written);
    return 0;
}

static int cmd_get(struct signed_client *sc, const char *hash_hex, const char *out)
{
    static const char cmd[] = "artifact";
    uint8_t hash[32];
    if (strlen(hash_hex) != 64 || hex_decode(hash_hex, hash, 32) != 0)
        return cli_fail(cmd, "HASH must be 64 hex characters, not '%s'", hash_hex);
    char hex[65], part[4096];
    hex_encode(hash, 32, hex);
    struct stat sb;
    if (stat(out, &sb) == 0) {
        int fd = open(out, O_RDONLY | O_CLOEXEC);
        uint8_t have[32];
        int same = fd >= 0 && S_ISREG(sb.st_mode) &&
                   hash_fd(fd, (uint64_t)sb.st_size, have, NULL) == 0 &&
                   memcmp(have, hash, 32) == 0;
        if (fd >= 0)
            close(fd);
        if (!same)
            return cli_fail(cmd, "%s exists and is not the file %.16s...; remove it or choose "
                            "another -o", out, hex);
        printf("%s  %" PRIu64 " bytes  %s: already here\n", hex, (uint64_t)sb.st_size, out);
        return 0;
    }
    if ((size_t)snprintf(part, sizeof part, "%s.part", out) >= sizeof part)
        return cli_fail(cmd, "-o %s: path too long", out);
    struct sink k = { .part = part, .p = { .label = out, .what = "fetched" } };
    k.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (k.fd < 0)
        return cli_fail(cmd, "cannot create %s: %s", part, strerror(errno));
    if (fstat(k.fd, &sb) == 0 && sb.st_size > 0) {
        k.written = (uint64_t)sb.st_size;
        fprintf(stderr, "%s: resuming after the %" PRIu64 " bytes in %s\n", out, k.written,
                part);
    }
    Aulac__V1__ArtifactRequest q = AULAC__V1__ARTIFACT_REQUEST__INIT;
    q.member_id = (char *)sc->member;
    q.blake2b.data = hash;
    q.blake2b.len = 32;
    struct rpc_status st = { 0 };
    int rc;
    for (int attempt = 0;; attempt++) {
        q.offset = k.written;
        rc = fed_get_artifact(sc->fc, &q, on_chunk, &k, &st);
        /* A .part longer than the file is not a prefix of it: start over, once. */
        if (rc == RPC_ERR_STATUS && st.code == GRPC_STATUS_OUT_OF_RANGE && attempt == 0 &&
            q.offset > 0 && ftruncate(k.fd, 0) == 0) {
            fprintf(stderr, "%s: %s is longer than the file; starting over\n", out, part);
            k.written = 0;
            continue;
        }
        break;
    }
    if (rc != 0) {
        int kept = k.written > 0;
        close(k.fd);
        if (!kept)
            unlink(part);
        if (k.failed)
            return cli_fail(cmd, "cannot write %s: %s", part, strerror(k.failed));
        return cli_fail(cmd, "%s%s", st.details[0] ? st.details : rpc_strerror(rc),
                        kept ? "; the bytes so far stay in the .part file: run the same "
                               "command again to resume" : "");
    }
    uint8_t got[32];
    if (ftruncate(k.fd, (off_t)k.written) != 0 || fsync(k.fd) != 0 ||
        hash_fd(k.fd, k.written, got, NULL) != 0) {
        int e = errno;
        close(k.fd);
        return cli_fail(cmd, "cannot write %s: %s", part, strerror(e));
    }
    close(k.fd);
    if (memcmp(got, hash, 32) != 0) {
        char g[65];
        hex_encode(got, 32, g);
        unlink(part);
        return cli_fail(cmd, "the %" PRIu64 " bytes fetched hash to %s, not %s; removed %s "
                        "(run the command again to fetch it whole)", k.written, g, hex, part);
    }
    if (rename(part, out) != 0)
        return cli_fail(cmd, "cannot rename %s to %s: %s", part, out, strerror(errno));
    (void)file_fsync_dir_of(out);
    printf("%s  %" PRIu64 " bytes  %s: fetched\n", hex, k.written, out);
    return 0;
}

enum { O_OUTPUT = 300 };

int cmd_artifact(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    int put = strcmp(sub, "put") == 0;
    if (!put && strcmp(sub, "get") != 0)
        return cli_usage_error("artifact", usage, "unknown subcommand '%s'", sub);
    struct signed_client sc = { 0 };
    const char *output = NULL;
    int ch;
    static const struct option lo[] = {
        SIGNED_CLIENT_OPTIONS,
        { "output", required_argument, 0, 'o' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "ho:", lo, NULL)) != -1) {
        if (signed_client_option(&sc, ch, optarg))
            continue;
        switch (ch) {
        case 'o': output = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    int args = argc - 1 - optind;
    char **arg = argv + 1 + optind;
    if (put && args < 1)
        return cli_usage_error("artifact", usage, "put needs at least one FILE");
    if (put && output)
        return cli_usage_error("artifact", usage, "-o applies to get only");
    if (!put && (args != 1 || !output))
        return cli_usage_error("artifact", usage, "get needs one HASH and -o FILE");
    sc.stream_timeout_ms = 24LL * 3600 * 1000;   /* files of many GiB */
    int rc = signed_client_open(&sc, "artifact", usage);
    if (rc == 0 && put) {
        for (int i = 0; i < args; i++)
            rc |= artifact_upload_file(&sc, "artifact", arg[i], arg[i], NULL);
    } else if (rc == 0) {
        rc = cmd_get(&sc, arg[0], output);
    }
    signed_client_close(&sc);
    return rc;
}
