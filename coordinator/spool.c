/* Uploads spooled to disk and the payload store they are renamed into (spool.h). */
#include "coordinator/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"

struct spool {
    int fd;
    char path[4200];
    uint64_t size;
    crypto_generichash_blake2b_state hash;
    int hashed;                     /* spool_hash done: no more writes */
    const uint8_t *map;
    int committed;                  /* renamed into the store: nothing to remove */
};

static void spool_dir(const struct coord *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/spool", c->opt.data_dir);
}

int spool_open(const struct coord *c, struct spool **out)
{
    *out = NULL;
    char dir[4096];
    spool_dir(c, dir, sizeof dir);
    int rc = file_mkdirs(dir, 0755);
    if (rc != 0) {
        log_error("cannot create the upload spool %s: %s", dir, strerror(-rc));
        return COORD_ERR_IO;
    }
    struct spool *s = calloc(1, sizeof *s);
    if (!s)
        return COORD_ERR_NOMEM;
    uint8_t rnd[8];
    char hex[17];
    for (int attempt = 0; attempt < 8; attempt++) {
        randombytes_buf(rnd, sizeof rnd);
        hex_encode(rnd, sizeof rnd, hex);
        snprintf(s->path, sizeof s->path, "%s/upload-%s.part", dir, hex);
        s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (s->fd >= 0 || errno != EEXIST)
            break;
    }
    if (s->fd < 0) {
        log_error("cannot create the spool file %s: %s", s->path, strerror(errno));
        free(s);
        return COORD_ERR_IO;
    }
    crypto_generichash_blake2b_init(&s->hash, NULL, 0, 32);
    *out = s;
    return 0;
}

int spool_write(struct spool *s, const uint8_t *data, size_t len, int *err)
{
    if (s->hashed)
        return COORD_ERR_IO;
    crypto_generichash_blake2b_update(&s->hash, data, len);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(s->fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            if (err)
                *err = errno;
            log_error("cannot write the spool file %s: %s", s->path, strerror(errno));
            return COORD_ERR_IO;
        }
        done += (size_t)w;
    }
    s->size += len;
    return 0;
}

uint64_t spool_size(const struct spool *s)
{
    return s->size;
}

void spool_hash(struct spool *s, uint8_t out[32])
{
    crypto_generichash_blake2b_final(&s->hash, out, 32);
    s->hashed = 1;
}

int spool_map(struct spool *s, const uint8_t **data)
{
    *data = NULL;
    if (s->map) {
        *data = s->map;
        return 0;
    }
    if (s->size == 0)
        return 0;
    void *p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map the spool file %s: %s", s->path, strerror(errno));
        return COORD_ERR_IO;
    }
    (void)madvise(p, s->size, MADV_SEQUENTIAL);
    s->map = p;
    *data = p;
    return 0;
}

void spool_unmap(struct spool *s)
{
    if (s->map)
        munmap((void *)s->map, s->size);
    s->map = NULL;
}

int spool_sync(struct spool *s)
{
    if (fdatasync(s->fd) != 0) {
        log_error("cannot sync the spool file %s: %s", s->path, strerror(errno));
        return COORD_ERR_IO;
    }
    return 0;
}

static void payloads_dir(const struct coord *c, const char *experiment, char *out, size_t cap)
{
    snprintf(out, cap, "%s/experiments/%s/payloads", c->opt.data_dir, experiment);
}

void payload_path(const struct coord *c, const char *experiment, const uint8_t hash[32],
                  char *out, size_t cap)
{
    char dir[4096], hex[65];
    payloads_dir(c, experiment, dir, sizeof dir);
    hex_encode(hash, 32, hex);
    snprintf(out, cap, "%s/%s.bin", dir, hex);
}

int spool_commit(struct spool *s, const struct coord *c, const char *experiment,
                 const uint8_t hash[32])
{
    char dir[4096], path[4200];
    payloads_dir(c, experiment, dir, sizeof dir);
    int rc = file_mkdirs(dir, 0755);
    if (rc != 0) {
        log_error("cannot create the payload store %s: %s", dir, strerror(-rc));
        return COORD_ERR_IO;
    }
    payload_path(c, experiment, hash, path, sizeof path);
    if (rename(s->path, path) != 0) {
        log_error("cannot move %s to %s: %s", s->path, path, strerror(errno));
        return COORD_ERR_IO;
    }
    s->committed = 1;
    if ((rc = file_fsync_dir_of(path)) != 0) {
        log_error("cannot sync the payload store %s: %s", dir, strerror(-rc));
        return COORD_ERR_IO;
    }
    return 0;
}

void spool_discard(struct spool *s)
{
    if (!s)
        return;
    spool_unmap(s);
    if (s->fd >= 0)
        close(s->fd);
    if (!s->committed && unlink(s->path) != 0 && errno != ENOENT)
        log_warn("cannot remove the spool file %s: %s", s->path, strerror(errno));
    free(s);
}

void spool_clean(const struct coord *c)
{
    char dir[4096];
    spool_dir(c, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;   /* none yet */
    size_t n = 0;
    uint64_t bytes = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[4096 + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (unlink(path) != 0) {
            log_warn("cannot remove the unfinished upload %s: %s", path, strerror(errno));
            continue;
        }
        n++;
        bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    if (n) {
        char size[32];
        file_size_words(bytes, size, sizeof size);
        log_info("removed %zu unfinished upload(s) (%s) from %s: none was acknowledged", n,
                 size, dir);
    }
}

int payload_map(const struct coord *c, const char *experiment, const uint8_t hash[32],
                size_t len, const uint8_t **out, char *why, size_t cap)
{
    *out = NULL;
    if (why && cap)
        why[0] = 0;
    char path[4200];
    payload_path(c, experiment, hash, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        log_error("the accepted payload %s cannot be opened: %s", path, strerror(e));
        if (why && cap)
            snprintf(why, cap, "%s cannot be opened: %s (errno %d)", path, strerror(e), e);
        return e == ENOENT ? COORD_ERR_NOT_FOUND : COORD_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        log_error("the accepted payload %s cannot be examined: %s", path, strerror(e));
        if (why && cap)
            snprintf(why, cap, "%s cannot be examined: %s (errno %d)", path, strerror(e), e);
        close(fd);
        return COORD_ERR_IO;
    }
    if ((uint64_t)st.st_size != (uint64_t)len || len == 0) {
        log_error("the accepted payload %s has %lld bytes, not the %zu accepted", path,
                  (long long)st.st_size, len);
        if (why && cap)
            snprintf(why, cap, "%s has %lld bytes, not the %zu accepted", path,
                     (long long)st.st_size, len);
        close(fd);
        return COORD_ERR_STATE;
    }
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        log_error("cannot map the accepted payload %s: %s", path, strerror(e));
        if (why && cap)
            snprintf(why, cap, "%s cannot be mapped: %s (errno %d)", path, strerror(e), e);
        return COORD_ERR_IO;
    }
    *out = p;
    return 0;
}

void payload_unmap(const uint8_t *p, size_t len)
{
    if (p && len)
        munmap((void *)p, len);
}
