/* The data directory's format marker and disk use (coordinator/datadir.h). */
#include "coordinator/datadir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"

int datadir_read_format(const char *dir, unsigned *format, char *why, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, DATADIR_FORMAT_FILE);
    if (!file_exists(path))
        return 1;
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[200] = "";
    int rc = file_read_all_why(path, 256, &buf, &len, err, sizeof err);
    if (rc != 0) {
        snprintf(why, cap, "the data directory's format marker %s cannot be read: %s", path,
                 err);
        return DATADIR_ERR_BAD;
    }
    const size_t plen = strlen(DATADIR_FORMAT_PREFIX);
    unsigned long v = 0;
    size_t i = plen, digits = 0;
    int ok = len > plen + 1 && memcmp(buf, DATADIR_FORMAT_PREFIX, plen) == 0;
    for (; ok && i < len && buf[i] >= '0' && buf[i] <= '9' && digits < 9; i++, digits++)
        v = v * 10 + (unsigned long)(buf[i] - '0');
    ok = ok && digits > 0 && !(digits > 1 && buf[plen] == '0') && i == len - 1 &&
         buf[i] == '\n' && v > 0;
    free(buf);
    if (!ok) {
        snprintf(why, cap, "the data directory's format marker %s is not one line \"%s<N>\" "
                 "(this aulac writes format %d): not written by aulac, or damaged", path,
                 DATADIR_FORMAT_PREFIX, DATADIR_FORMAT);
        return DATADIR_ERR_BAD;
    }
    *format = (unsigned)v;
    return 0;
}

static int write_format(const char *dir, char *why, size_t cap)
{
    char path[PATH_MAX], text[64];
    snprintf(path, sizeof path, "%s/%s", dir, DATADIR_FORMAT_FILE);
    int n = snprintf(text, sizeof text, DATADIR_FORMAT_PREFIX "%d\n", DATADIR_FORMAT);
    int rc = file_write_atomic(path, text, (size_t)n, 0644);
    if (rc != 0) {
        snprintf(why, cap, "cannot write the data directory's format marker %s: %s", path,
                 strerror(-rc));
        return DATADIR_ERR_IO;
    }
    return 0;
}

/* The first entry of dir that a fresh data directory does not hold ("" when none). */
static void first_foreign(const char *dir, char *out, size_t cap)
{
    static const char *const known[] = DATADIR_KNOWN_NAMES;
    out[0] = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while (!out[0] && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int ok = 0;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = strcmp(e->d_name, known[i]) == 0;
        if (!ok)
            snprintf(out, cap, "%s", e->d_name);
    }
    closedir(d);
}

int datadir_check(const char *dir, int *upgraded_from, char *why, size_t cap)
{
    *upgraded_from = 0;
    unsigned format = 0;
    int rc = datadir_read_format(dir, &format, why, cap);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (format > DATADIR_FORMAT) {
            snprintf(why, cap, "the data directory %s is in data format %u (its FORMAT file), "
                     "written by a newer aulac; this aulac reads data format %d and older. "
                     "Run the newer aulac, or restore a backup made before the upgrade",
                     dir, format, DATADIR_FORMAT);
            return DATADIR_ERR_NEWER;
        }
        if (format == DATADIR_FORMAT)
            return 0;
        *upgraded_from = (int)format;   /* format 1 never wrote FORMAT, but read it alike */
        return write_format(dir, why, cap);
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (file_exists(path)) {
        *upgraded_from = 1;
        return write_format(dir, why, cap);
    }
    char foreign[256];
    first_foreign(dir, foreign, sizeof foreign);
    if (foreign[0]) {
        snprintf(why, cap, "%s is not an aulac data directory: it has no ledger (data.mdb) "
                 "and no format marker (FORMAT) but holds other files (%s). Give an empty "
                 "or new directory, or the data directory of a coordinator", dir, foreign);
        return DATADIR_ERR_FOREIGN;
    }
    rc = file_mkdirs(dir, 0700);
    if (rc != 0) {
        snprintf(why, cap, "cannot create the data directory %s: %s", dir, strerror(-rc));
        return DATADIR_ERR_IO;
    }
    return write_format(dir, why, cap);
}

/* Allocated bytes under path (a file or a tree), symlinks not followed. */
static uint64_t tree_bytes(const char *path, int depth)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    uint64_t n = (uint64_t)st.st_blocks * 512;
    if (!S_ISDIR(st.st_mode) || depth > 16)
        return n;
    DIR *d = opendir(path);
    if (!d)
        return n;
    struct dirent *e;
    char sub[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            continue;
        n += tree_bytes(sub, depth + 1);
    }
    closedir(d);
    return n;
}

/* experiments/: each experiment's payloads/ apart from its other files. */
static void experiments_bytes(const char *root, struct datadir_usage *u)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    char sub[PATH_MAX], pay[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(sub, sizeof sub, "%s/%s", root, e->d_name) >= (int)sizeof sub ||
            snprintf(pay, sizeof pay, "%s/payloads", sub) >= (int)sizeof pay)
            continue;
        const uint64_t all = tree_bytes(sub, 1), p = tree_bytes(pay, 2);
        u->payloads += p;
        u->experiment_files += all > p ? all - p : 0;
    }
    closedir(d);
}

int datadir_measure(const char *dir, struct datadir_usage *u)
{
    memset(u, 0, sizeof *u);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char sub[PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            const char *n = e->d_name;
            if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
                continue;
            if (snprintf(sub, sizeof sub, "%s/%s", dir, n) >= (int)sizeof sub)
                continue;
            if (strcmp(n, "data.mdb") == 0 || strcmp(n, "lock.mdb") == 0)
                u->ledger += tree_bytes(sub, 0);
            else if (strcmp(n, "models") == 0)
                u->checkpoints += tree_bytes(sub, 0);
            else if (strcmp(n, "artifacts") == 0)
                u->artifacts += tree_bytes(sub, 0);
            else if (strcmp(n, "spool") == 0)
                u->spool += tree_bytes(sub, 0);
            else if (strcmp(n, "experiments") == 0)
                experiments_bytes(sub, u);
            else
                u->other += tree_bytes(sub, 0);
        }
        closedir(d);
    }
    u->total = u->ledger + u->checkpoints + u->payloads + u->experiment_files + u->artifacts +
               u->spool + u->other;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    u->measured_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    struct statvfs v;
    if (statvfs(dir, &v) != 0)
        return -errno;
    u->free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
    u->fs_bytes = (uint64_t)v.f_blocks * v.f_frsize;
    return 0;
}

int datadir_low(const struct datadir_usage *u)
{
    if (!u->measured_ms || !u->fs_bytes)
        return 0;
    return u->free_bytes < DATADIR_LOW_FREE_BYTES || u->free_bytes < u->fs_bytes / 20;
}
