/* Model snapshots kept out of anonymous memory (coordinator/round.h): a model's floats
 * in a file of the data directory that no name points to, mapped read-only, so the
 * kernel's page cache holds them and this process only the pages a pass is reading
 * (snapshot_drop behind each pass); and the close's model-sized work buffers as
 * anonymous mappings whose pages are given back between closes (model_buf_drop). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coordinator/round.h"

/* Writes all of len bytes of buf to fd: 0 or -errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t part = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        ssize_t w = write(fd, buf, part);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A file in dir that has no name: O_TMPFILE where the file system has it, else a
 * mkstemp name removed at once (the open descriptor keeps the file). */
static int unnamed_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4200];
    if (snprintf(path, sizeof path, "%s/base-model.XXXXXX", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (unlink(path) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* params' n floats into an unnamed file of dir, mapped read-only: *map, *len (bytes). */
static int map_floats(const char *dir, const float *params, size_t n, float **map,
                      size_t *len)
{
    const size_t bytes = (n ? n : 1) * sizeof(float);
    int fd = unnamed_file(dir);
    if (fd < 0)
        return fd;
    /* The blocks reserved first: a full disk fails here (ENOSPC, EDQUOT), not as a
     * write-back error of the shared mapping's pages later, which nobody would see (the
     * file is never fsynced: it lives only while mapped). Also sizes the file (a mapping
     * needs a byte; no caller has 0 parameters). */
    int rc = -posix_fallocate(fd, 0, (off_t)bytes);
    if (rc == 0)
        rc = write_all(fd, (const uint8_t *)params, n * sizeof(float));
    void *m = MAP_FAILED;
    if (rc == 0 && (m = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
        rc = -errno;
    close(fd);
    if (rc != 0)
        return rc;
    *map = m;
    *len = bytes;
    return 0;
}

/* params' n floats mapped as map_floats does, with their reference count (1). */
static int map_pages(const char *dir, const float *params, size_t n,
                     struct snapshot_pages **out)
{
    struct snapshot_pages *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    float *map;
    int rc = map_floats(dir, params, n, &map, &p->len);
    if (rc != 0) {
        free(p);
        return rc;
    }
    p->addr = map;
    atomic_init(&p->refs, 1);
    *out = p;
    return 0;
}

void snapshot_pages_lend(struct snapshot_pages *pages)
{
    atomic_fetch_add_explicit(&pages->refs, 1, memory_order_relaxed);
}

void snapshot_pages_return(void *arg)
{
    struct snapshot_pages *p = arg;
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        munmap(p->addr, p->len);
        free(p);
    }
}

int snapshot_map(const char *dir, const float *params, size_t n, struct model_snapshot **out)
{
    *out = NULL;
    struct model_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = map_pages(dir, params, n, &s->pages);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->params = s->pages->addr;
    s->map_len = s->pages->len;
    s->n = n;
    s->refs = 1;
    *out = s;
    return 0;
}

int snapshot_to_file(const char *dir, struct model_snapshot *s)
{
    if (s->map_len)
        return 0;
    struct snapshot_pages *p;
    int rc = map_pages(dir, s->params, s->n, &p);
    if (rc != 0)
        return rc;
    free(s->params);
    s->pages = p;
    s->params = p->addr;
    s->map_len = p->len;
    return 0;
}

void snapshot_drop(const struct model_snapshot *s, size_t from, size_t n)
{
    if (!s || !s->map_len || n == 0)
        return;
    /* Computed per call: several download threads drop ranges at once,
     * so no lazily set static (sysconf is cheap). */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = from * sizeof(float), b = (from + n) * sizeof(float);
    a = a / page * page;
    b = (b + page - 1) / page * page;
    if (b > s->map_len)
        b = s->map_len;
    if (b > a)
        madvise((uint8_t *)s->params + a, b - a, MADV_DONTNEED);
}

void snapshot_drop_range(void *s, size_t lo, size_t hi)
{
    if (hi > lo)
        snapshot_drop(s, lo, hi - lo);
}

void snapshot_free(struct model_snapshot *s)
{
    if (!s)
        return;
    if (s->map_len)
        snapshot_pages_return(s->pages);
    else
        free(s->params);
    free(s);
}

static size_t buf_bytes(size_t n)
{
    return (n ? n : 1) * sizeof(float);
}

float *model_buf_alloc(size_t n)
{
    void *p = mmap(NULL, buf_bytes(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void model_buf_drop(float *p, size_t n)
{
    if (p)
        madvise(p, buf_bytes(n), MADV_DONTNEED);
}

void model_buf_free(float *p, size_t n)
{
    if (p)
        munmap(p, buf_bytes(n));
}
