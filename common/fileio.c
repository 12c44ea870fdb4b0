#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void file_size_words(uint64_t n, char *out, size_t out_len)
{
    if (n >= (1u << 20) && n % (1u << 20) == 0)
        snprintf(out, out_len, "%llu MiB", (unsigned long long)(n >> 20));
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(out, out_len, "%llu KiB", (unsigned long long)(n >> 10));
    else
        snprintf(out, out_len, "%llu bytes", (unsigned long long)n);
}

static const char *type_name(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    return "not a plain file";
}

static int refuse_type(mode_t m, char *why, size_t why_len)
{
    if (why)
        snprintf(why, why_len, "is %s, not a regular file", type_name(m));
    return S_ISDIR(m) ? -EISDIR : -EINVAL;
}

static int refuse_size(uint64_t size, size_t max_len, int grew, char *why, size_t why_len)
{
    if (why) {
        char limit[32];
        file_size_words(max_len, limit, sizeof limit);
        snprintf(why, why_len, "%s %llu bytes, over the %s limit", grew ? "grew to" : "is",
                 (unsigned long long)size, limit);
    }
    return -EFBIG;
}

static int fail_errno(int e, char *why, size_t why_len)
{
    if (why)
        snprintf(why, why_len, "%s", strerror(e));
    return -e;
}

int file_read_all_why(const char *path, size_t max_len, uint8_t **out, size_t *len,
                      char *why, size_t why_len)
{
    *out = NULL;
    *len = 0;
    if (why && why_len)
        why[0] = 0;
    /* Look before opening: opening a FIFO for reading waits for a writer, and opening
     * a device may act on it. */
    struct stat st;
    if (stat(path, &st) != 0)
        return fail_errno(errno, why, why_len);
    if (!S_ISREG(st.st_mode))
        return refuse_type(st.st_mode, why, why_len);
    if ((uint64_t)st.st_size > max_len)
        return refuse_size((uint64_t)st.st_size, max_len, 0, why, why_len);
    /* It may have been swapped since: never block, and check what was opened. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return fail_errno(errno, why, why_len);
    int rc = 0;
    uint8_t *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &st) != 0) {
        rc = fail_errno(errno, why, why_len);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = refuse_type(st.st_mode, why, why_len);
        goto out;
    }
    /* Read to the end, whatever the size said (it may grow, or be 0 as in /proc),
     * and never past max_len. */
    size_t cap = (uint64_t)st.st_size < max_len ? (size_t)st.st_size : max_len;
    cap = cap < 4096 ? 4096 : cap;
    if (cap > max_len)
        cap = max_len;
    buf = malloc(cap + 1);
    if (!buf) {
        rc = fail_errno(ENOMEM, why, why_len);
        goto out;
    }
    for (;;) {
        if (got == cap) {
            uint8_t probe;
            ssize_t r = read(fd, &probe, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = fail_errno(errno, why, why_len);
                goto out;
            }
            if (r == 0)
                break;
            if (cap == max_len) {
                rc = refuse_size((uint64_t)got + 1, max_len, 1, why, why_len);
                goto out;
            }
            size_t ncap = cap > max_len / 2 ? max_len : cap * 2;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = fail_errno(ENOMEM, why, why_len);
                goto out;
            }
            buf = nb;
            cap = ncap;
            buf[got++] = probe;
            continue;
        }
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = fail_errno(errno, why, why_len);
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

int file_read_all(const char *path, size_t max_len, uint8_t **out, size_t *len)
{
    return file_read_all_why(path, max_len, out, len, NULL, 0);
}

int file_fsync_dir_of(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *dir = dirname(tmp);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Writes all len bytes to fd, retrying short writes and EINTR. 0 or -errno. */
static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* off + len fits in off_t (pread and pwrite refuse a negative offset; past it the
 * loop's offsets would wrap). */
static int range_fits(uint64_t off, size_t len)
{
    const uint64_t max = (uint64_t)INT64_MAX;
    return off <= max && (uint64_t)len <= max - off;
}

int file_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    if (!range_fits(off, len))
        return -EINVAL;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ENODATA;   /* end of file before len bytes */
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int file_pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
    if (!range_fits(off, len))
        return -EINVAL;
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;   /* no progress and no error: never loop on it */
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Streams src's bytes (or, with src < 0, the len bytes at data) into path's
 * temporary file, then fsync, rename, fsync of the directory: the one crash-safe
 * write behind file_write_atomic and file_copy_atomic. */
static int write_atomic(const char *path, int src, const void *data, size_t len,
                        unsigned mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (src < 0) {
        rc = write_all(fd, data, len);
    } else {
        uint8_t *buf = malloc(1 << 16);
        if (!buf)
            rc = -ENOMEM;
        while (rc == 0) {
            ssize_t n = read(src, buf, 1 << 16);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = n < 0 ? -errno : 0;
                break;
            }
            rc = write_all(fd, buf, (size_t)n);
        }
        free(buf);
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return file_fsync_dir_of(path);
}

int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    return write_atomic(path, -1, data, len, mode);
}

int file_copy_atomic(const char *src, const char *dst, unsigned mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int rc = write_atomic(dst, in, NULL, 0, mode);
    close(in);
    return rc;
}

/* fsync of the directory holding path, where a file system that cannot fsync a
 * directory (EINVAL, EROFS) counts as done: it has nothing more to make durable. */
static int fsync_parent(const char *path)
{
    int rc = file_fsync_dir_of(path);
    return rc == -EINVAL || rc == -EROFS ? 0 : rc;
}

/* mkdir of path; 1 when it made it (and then fsynced its parent, which holds the new
 * entry), 0 when something was already there, or -errno. last: path is the one asked
 * for, whose parent is fsynced even when path was already there (its creator's fsync,
 * in another thread or an earlier call that failed, may not have happened). */
static int mkdir_durable(const char *path, unsigned mode, int last)
{
    int made = 1;
    if (mkdir(path, (mode_t)mode) != 0) {
        if (errno != EEXIST)
            return -errno;
        made = 0;
        if (!last)
            return 0;
    }
    int rc = fsync_parent(path);
    return rc != 0 ? rc : made;
}

int file_mkdirs(const char *path, unsigned mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = 0;   /* "a/b/": b is the last component */
    int rc;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;   /* "a//b": "a/" is "a" again */
        *p = 0;
        rc = mkdir_durable(tmp, mode, 0);
        if (rc < 0)
            return rc;
        *p = '/';
    }
    rc = mkdir_durable(tmp, mode, 1);
    return rc < 0 ? rc : 0;
}

int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}
