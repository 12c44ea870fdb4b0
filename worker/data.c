#include "worker/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/rng.h"

#define DATA_MAX_DEPTH 64

struct data_file {
    char *path;         /* relative to the corpus directory */
    uint64_t size;
    uint64_t start;     /* offset of its first byte in the corpus stream */
    const uint8_t *bytes;
    int mapped;         /* bytes is an mmap of size bytes, else malloc'd */
};

struct data {
    struct data_file *files;
    size_t n_files, cap_files;
    uint64_t total, n_chunks, train, val;
    uint64_t val_ppm;   /* val_fraction in parts per million */
    struct rng rng;
    uint8_t *val_copy;
    size_t val_copy_len;
};

const char *data_strerror(int rc)
{
    switch (rc) {
    case 0: return "success";
    case DATA_ERR_NO_DIR: return "corpus directory missing or not a directory";
    case DATA_ERR_IO: return "a corpus file or directory could not be read";
    case DATA_ERR_EMPTY: return "the corpus has no non-empty text file";
    case DATA_ERR_TOO_SMALL: return "the corpus is smaller than one training window";
    case DATA_ERR_ARG: return "invalid corpus reader argument";
    case DATA_ERR_NOMEM: return "out of memory reading the corpus";
    default: return "unknown corpus reader error";
    }
}

static void say(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* ---- split arithmetic ----------------------------------------------------------- */

/* Validation chunks among chunks [0, i). */
static uint64_t val_before(const struct data *d, uint64_t i)
{
    return (uint64_t)(((unsigned __int128)i * d->val_ppm + 500000u) / 1000000u);
}

static int chunk_is_val(const struct data *d, uint64_t i)
{
    return val_before(d, i + 1) > val_before(d, i);
}

static uint64_t chunk_len(const struct data *d, uint64_t i)
{
    return i + 1 < d->n_chunks ? DATA_CHUNK : d->total - i * DATA_CHUNK;
}

/* Global index of the j-th training chunk: the smallest i with i+1 - val_before(i+1)
 * > j (the count of training chunks in [0, i] passes j). */
static uint64_t train_chunk(const struct data *d, uint64_t j)
{
    uint64_t lo = j, hi = d->n_chunks - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (mid + 1 - val_before(d, mid + 1) > j)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Copies n bytes of the corpus stream at pos (pos + n <= total). */
static void read_stream(const struct data *d, uint64_t pos, uint8_t *dst, size_t n)
{
    size_t lo = 0, hi = d->n_files - 1;
    while (lo < hi) { /* last file with start <= pos */
        size_t mid = lo + (hi - lo + 1) / 2;
        if (d->files[mid].start <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (size_t f = lo; n > 0; f++) {
        const struct data_file *df = &d->files[f];
        uint64_t off = pos - df->start;
        size_t take = df->size - off < n ? (size_t)(df->size - off) : n;
        memcpy(dst, df->bytes + off, take);
        dst += take, pos += take, n -= take;
    }
}

int data_read_train(const struct data *d, uint64_t offset, uint8_t *dst, size_t n)
{
    if (!d || (n && !dst) || offset > d->train || n > d->train - offset)
        return DATA_ERR_ARG;
    while (n > 0) {
        uint64_t j = offset / DATA_CHUNK, within = offset % DATA_CHUNK;
        uint64_t i = train_chunk(d, j);
        uint64_t avail = chunk_len(d, i) - within;
        size_t take = avail < n ? (size_t)avail : n;
        read_stream(d, i * DATA_CHUNK + within, dst, take);
        dst += take, offset += take, n -= take;
    }
    return 0;
}

/* ---- opening -------------------------------------------------------------------- */

static int add_file(struct data *d, const char *rel, uint64_t size)
{
    if (d->n_files == d->cap_files) {
        size_t cap = d->cap_files ? 2 * d->cap_files : 64;
        struct data_file *nf = realloc(d->files, cap * sizeof *nf);
        if (!nf)
            return DATA_ERR_NOMEM;
        d->files = nf, d->cap_files = cap;
    }
    char *p = strdup(rel);
    if (!p)
        return DATA_ERR_NOMEM;
    d->files[d->n_files++] = (struct data_file){.path = p, .size = size};
    return 0;
}

/* Collects regular files under root/rel (rel "" for the root). */
/* 1 when s is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF). */
static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                 : (c & 0xF8) == 0xF0 ? 3 : 4;
        if (n == 4 || (n == 1 && c < 0xC2))
            return 0;
        uint32_t cp = n == 0 ? c : c & (0x3Fu >> n);
        for (size_t k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[k] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n + 1;
    }
    return 1;
}

/* name with its bytes >= 0x80 and controls as \xNN, for a message. */
static void escape_name(const char *name, char *out, size_t cap)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && k + 5 < cap; p++) {
        if (*p >= 0x80 || *p < 0x20)
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", *p);
        else
            out[k++] = (char)*p;
    }
    out[k] = 0;
}

static int walk(struct data *d, const char *root, const char *rel, int depth, char *why,
                size_t why_len)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel) >= (int)sizeof path) {
        say(why, why_len, "corpus path too long: %s/%s", root, rel);
        return DATA_ERR_IO;
    }
    if (depth > DATA_MAX_DEPTH) {
        say(why, why_len, "corpus %s: directories nested deeper than %d at %s", root,
            DATA_MAX_DEPTH, rel);
        return DATA_ERR_IO;
    }
    DIR *dir = opendir(path);
    if (!dir) {
        say(why, why_len, "corpus %s: cannot list %s: %s", root, path, strerror(errno));
        return DATA_ERR_IO;
    }
    int rc = 0;
    struct dirent *e;
    for (;;) {
        errno = 0;
        e = readdir(dir);
        if (!e) {
            if (errno) {
                say(why, why_len, "corpus %s: reading directory %s: %s", root, path,
                    strerror(errno));
                rc = DATA_ERR_IO;
            }
            break;
        }
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and dotfiles */
        char child[PATH_MAX];
        if (snprintf(child, sizeof child, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >=
            (int)sizeof child) {
            say(why, why_len, "corpus %s: path too long: %s/%s", root, rel, e->d_name);
            rc = DATA_ERR_IO;
            break;
        }
        struct stat st;
        if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            say(why, why_len, "corpus %s: cannot stat %s: %s", root, child, strerror(errno));
            rc = DATA_ERR_IO;
            break;
        }
        if ((S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size > 0)) &&
            !valid_utf8((const unsigned char *)e->d_name)) {
            /* plan.json (JSON: UTF-8) names every file; so do logs and messages */
            char shown[PATH_MAX];
            escape_name(child, shown, sizeof shown);
            say(why, why_len, "corpus %s: the %s name %s is not valid UTF-8; rename it (the "
                "corpus's names travel in UTF-8 text such as a plug-in's plan.json)", root,
                S_ISDIR(st.st_mode) ? "directory" : "file", shown);
            rc = DATA_ERR_IO;
            break;
        }
        if (S_ISDIR(st.st_mode))
            rc = walk(d, root, child, depth + 1, why, why_len);
        else if (S_ISREG(st.st_mode) && st.st_size > 0)
            rc = add_file(d, child, (uint64_t)st.st_size);
        if (rc)
            break;
    }
    closedir(dir);
    return rc;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct data_file *)a)->path, ((const struct data_file *)b)->path);
}

static int load_file(struct data_file *f, const char *root, char *why, size_t why_len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, f->path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        say(why, why_len, "corpus %s: cannot open %s: %s", root, f->path, strerror(errno));
        return DATA_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
        say(why, why_len, "corpus %s: %s changed while the corpus was opened", root, f->path);
        close(fd);
        return DATA_ERR_IO;
    }
    if (f->size >= DATA_MMAP_MIN && f->size <= SIZE_MAX) {
        void *p = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            f->bytes = p;
            f->mapped = 1;
            return 0;
        }
    }
    if (f->size > SIZE_MAX) {
        close(fd);
        return DATA_ERR_NOMEM;
    }
    uint8_t *buf = malloc((size_t)f->size);
    if (!buf) {
        close(fd);
        say(why, why_len, "corpus %s: no memory for %s (%llu bytes)", root, f->path,
            (unsigned long long)f->size);
        return DATA_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < f->size) {
        ssize_t r = read(fd, buf + got, (size_t)f->size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            say(why, why_len, "corpus %s: reading %s: %s", root, f->path,
                r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return DATA_ERR_IO;
        }
        got += (size_t)r;
    }
    close(fd);
    f->bytes = buf;
    return 0;
}

int data_open(const char *dir, const struct data_opts *opts, struct data **out, char *why,
              size_t why_len)
{
    *out = NULL;
    say(why, why_len, "%s", "");
    if (!dir || !opts || !(opts->val_fraction >= 0.0 && opts->val_fraction <= 0.5) ||
        opts->seq_len < 1) {
        say(why, why_len, "corpus reader: val_fraction must be in [0, 0.5] and seq_len >= 1");
        return DATA_ERR_ARG;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        say(why, why_len, "corpus directory %s: %s", dir, strerror(errno));
        return DATA_ERR_NO_DIR;
    }
    if (!S_ISDIR(st.st_mode)) {
        say(why, why_len, "corpus directory %s is not a directory", dir);
        return DATA_ERR_NO_DIR;
    }
    struct data *d = calloc(1, sizeof *d);
    if (!d)
        return DATA_ERR_NOMEM;
    d->val_ppm = (uint64_t)llround(opts->val_fraction * 1e6);
    rng_seed(&d->rng, opts->seed);
    int rc = walk(d, dir, "", 0, why, why_len);
    if (rc)
        goto fail;
    if (d->n_files == 0) {
        say(why, why_len, "corpus %s holds no non-empty regular file (dotfiles and symlinks "
            "are skipped)", dir);
        rc = DATA_ERR_EMPTY;
        goto fail;
    }
    qsort(d->files, d->n_files, sizeof *d->files, cmp_files);
    for (size_t i = 0; i < d->n_files; i++) {
        d->files[i].start = d->total;
        d->total += d->files[i].size;
        if ((rc = load_file(&d->files[i], dir, why, why_len)))
            goto fail;
    }
    d->n_chunks = (d->total + DATA_CHUNK - 1) / DATA_CHUNK;
    uint64_t nval = val_before(d, d->n_chunks);
    d->val = nval * DATA_CHUNK;
    if (chunk_is_val(d, d->n_chunks - 1))
        d->val -= DATA_CHUNK - chunk_len(d, d->n_chunks - 1);
    d->train = d->total - d->val;
    if (d->train < (uint64_t)opts->seq_len + 1) {
        say(why, why_len, "corpus %s holds %llu training bytes (%llu in %zu files, %llu kept "
            "for validation); one window needs %d (seq_len %d + 1)", dir,
            (unsigned long long)d->train, (unsigned long long)d->total, d->n_files,
            (unsigned long long)d->val, opts->seq_len + 1, opts->seq_len);
        rc = DATA_ERR_TOO_SMALL;
        goto fail;
    }
    *out = d;
    return 0;
fail:
    data_close(d);
    return rc;
}

void data_close(struct data *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_files; i++) {
        struct data_file *f = &d->files[i];
        if (f->bytes) {
            if (f->mapped)
                munmap((void *)f->bytes, (size_t)f->size);
            else
                free((void *)f->bytes);
        }
        free(f->path);
    }
    free(d->files);
    free(d->val_copy);
    free(d);
}

size_t data_num_files(const struct data *d) { return d->n_files; }

const char *data_file_path(const struct data *d, size_t i)
{
    return i < d->n_files ? d->files[i].path : NULL;
}

uint64_t data_total_bytes(const struct data *d) { return d->total; }
uint64_t data_train_bytes(const struct data *d) { return d->train; }
uint64_t data_val_bytes(const struct data *d) { return d->val; }

void data_reseed(struct data *d, uint64_t seed) { rng_seed(&d->rng, seed); }

int data_next_batch(void *ctx, uint8_t *tokens, int B, int T)
{
    struct data *d = ctx;
    if (!d || !tokens || B < 1 || T < 1)
        return DATA_ERR_ARG;
    uint64_t w = (uint64_t)T + 1;
    if (w > d->train)
        return DATA_ERR_TOO_SMALL;
    for (int b = 0; b < B; b++) {
        uint64_t start = rng_below(&d->rng, d->train - w + 1);
        int rc = data_read_train(d, start, tokens + (size_t)b * w, (size_t)w);
        if (rc)
            return rc;
    }
    return 0;
}

int data_validation(struct data *d, size_t max_bytes, const uint8_t **out, size_t *len)
{
    if (!d || !out || !len)
        return DATA_ERR_ARG;
    uint64_t want = d->val;
    if (max_bytes && max_bytes < want)
        want = max_bytes;
    if (want > SIZE_MAX)
        return DATA_ERR_NOMEM;
    if (!d->val_copy || d->val_copy_len < want) {
        uint8_t *buf = malloc(want ? (size_t)want : 1);
        if (!buf)
            return DATA_ERR_NOMEM;
        uint64_t got = 0;
        for (uint64_t i = 0; i < d->n_chunks && got < want; i++) {
            if (!chunk_is_val(d, i))
                continue;
            uint64_t take = chunk_len(d, i);
            if (take > want - got)
                take = want - got;
            read_stream(d, i * DATA_CHUNK, buf + got, (size_t)take);
            got += take;
        }
        free(d->val_copy);
        d->val_copy = buf;
        d->val_copy_len = (size_t)want;
    }
    *out = d->val_copy;
    *len = want;
    return 0;
}
