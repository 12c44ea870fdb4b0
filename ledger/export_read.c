#define _FILE_OFFSET_BITS 64
#include "ledger/export_read.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/hex.h"
#include "common/why.h"
#include "crypto/digest.h"
#include "ledger/entry.h"
#include "ledger/errors.h"
#include "ledger/history.h"
#include "ledger/merkle.h"

struct export_checkpoint {
    uint64_t size;
    char *note;
};

struct export_reader {
    FILE *f;
    char *path;
    uint64_t n, cap;
    off_t *offset;                  /* of entry i's line */
    uint64_t *line_no;              /* 1-based, for messages */
    uint8_t (*leaf)[32];
    size_t n_ckpt, cap_ckpt;
    struct export_checkpoint *ckpt;
    char *buf;                      /* getline's */
    size_t buf_cap;
};

/* --- a small JSON scanner: enough to find the top-level keys of one line ----------- */

struct jcur {
    const char *p, *end;
};

static void j_ws(struct jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

/* A string at c->p: *s, *n = the raw bytes between the quotes (escapes left in). */
static int j_string(struct jcur *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"')
        return -1;
    const char *start = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20)
            return -1;
        if (ch == '\\') {
            if (++c->p >= c->end)
                return -1;
            if (*c->p == 'u') {
                for (int k = 0; k < 4; k++) {
                    if (++c->p >= c->end || !strchr("0123456789abcdefABCDEF", *c->p) || !*c->p)
                        return -1;
                }
            } else if (!strchr("\"\\/bfnrt", *c->p) || !*c->p) {
                return -1;
            }
        }
        c->p++;
    }
    if (c->p >= c->end)
        return -1;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return 0;
}

static int j_skip(struct jcur *c, int depth)
{
    if (depth > 64)
        return -1;
    j_ws(c);
    if (c->p >= c->end)
        return -1;
    const char *s;
    size_t n;
    switch (*c->p) {
    case '"':
        return j_string(c, &s, &n);
    case '{':
    case '[': {
        const char close = *c->p == '{' ? '}' : ']';
        const int object = close == '}';
        c->p++;
        j_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            j_ws(c);
            if (object) {
                if (j_string(c, &s, &n) != 0)
                    return -1;
                j_ws(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return -1;
            }
            if (j_skip(c, depth + 1) != 0)
                return -1;
            j_ws(c);
            if (c->p >= c->end)
                return -1;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p++ != close)
                return -1;
            return 0;
        }
    }
    default: {
        const char *start = c->p;
        while (c->p < c->end && strchr("+-.0123456789eEtrufalsn", *c->p) && *c->p)
            c->p++;
        return c->p > start ? 0 : -1;
    }
    }
}

static int j_u64(struct jcur *c, uint64_t *v)
{
    const char *start = c->p;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
        c->p++;
    }
    if (c->p == start || (c->p - start > 1 && *start == '0'))
        return -1;
    *v = x;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return ch - 'A' + 10;
}

/* The JSON string s (n raw bytes, escapes checked by j_string) as UTF-8 into a malloc'd
 * NUL-terminated copy; NULL when out of memory or a \u escape is a lone surrogate. */
static char *j_unescape(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            *o++ = s[i];
            continue;
        }
        char e = s[++i];
        switch (e) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned u = 0;
            for (int k = 1; k <= 4; k++)
                u = u * 16 + (unsigned)hexval(s[i + (size_t)k]);
            i += 4;
            if (u >= 0xd800 && u <= 0xdfff) {   /* checkpoint notes never need them */
                free(out);
                return NULL;
            }
            if (u < 0x80) {
                *o++ = (char)u;
            } else if (u < 0x800) {   /* \uXXXX is 6 bytes in, at most 3 out */
                *o++ = (char)(0xc0 | (u >> 6));
                *o++ = (char)(0x80 | (u & 0x3f));
            } else {
                *o++ = (char)(0xe0 | (u >> 12));
                *o++ = (char)(0x80 | ((u >> 6) & 0x3f));
                *o++ = (char)(0x80 | (u & 0x3f));
            }
            break;
        }
        default: *o++ = e; break;   /* " \ / */
        }
    }
    *o = 0;
    return out;
}

/* One line's top-level fields. */
struct line {
    int have_index, have_leaf, have_bytes, have_ck_size, have_ck;
    uint64_t index, ck_size;
    const char *leaf, *b64, *note;
    size_t leaf_n, b64_n, note_n;
};

static int parse_line(const char *text, size_t len, struct line *l, const char **what)
{
    memset(l, 0, sizeof *l);
    struct jcur c = { text, text + len };
    j_ws(&c);
    *what = "not a JSON object";
    if (c.p >= c.end || *c.p++ != '{')
        return -1;
    j_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            const char *k;
            size_t kn;
            j_ws(&c);
            *what = "malformed JSON";
            if (j_string(&c, &k, &kn) != 0)
                return -1;
            j_ws(&c);
            if (c.p >= c.end || *c.p++ != ':')
                return -1;
            j_ws(&c);
#define KEY(name) (kn == sizeof name - 1 && memcmp(k, name, kn) == 0)
#define ONCE(flag) do { if (l->flag) { *what = "a key appears twice"; return -1; } l->flag = 1; } while (0)
            if (KEY("index")) {
                ONCE(have_index);
                *what = "\"index\" is not a non-negative integer";
                if (j_u64(&c, &l->index) != 0)
                    return -1;
            } else if (KEY("checkpoint_size")) {
                ONCE(have_ck_size);
                *what = "\"checkpoint_size\" is not a non-negative integer";
                if (j_u64(&c, &l->ck_size) != 0)
                    return -1;
            } else if (KEY("leaf_hash")) {
                ONCE(have_leaf);
                if (j_string(&c, &l->leaf, &l->leaf_n) != 0)
                    return -1;
            } else if (KEY("bytes")) {
                ONCE(have_bytes);
                if (j_string(&c, &l->b64, &l->b64_n) != 0)
                    return -1;
            } else if (KEY("checkpoint")) {
                ONCE(have_ck);
                if (j_string(&c, &l->note, &l->note_n) != 0)
                    return -1;
            } else if (j_skip(&c, 0) != 0) {   /* "entry", "error" and anything newer */
                return -1;
            }
#undef KEY
#undef ONCE
            j_ws(&c);
            *what = "malformed JSON";
            if (c.p >= c.end)
                return -1;
            if (*c.p == ',') {
                c.p++;
                continue;
            }
            if (*c.p++ != '}')
                return -1;
            break;
        }
    }
    j_ws(&c);
    *what = "text after the JSON object";
    if (c.p != c.end)
        return -1;
    if (l->have_index || l->have_leaf || l->have_bytes) {
        *what = "an entry line needs \"index\", \"leaf_hash\" and \"bytes\"";
        if (!l->have_index || !l->have_leaf || !l->have_bytes || l->have_ck || l->have_ck_size)
            return -1;
        return 1;
    }
    *what = "neither an entry line (index, leaf_hash, bytes) nor a checkpoint line "
            "(checkpoint_size, checkpoint)";
    if (!l->have_ck || !l->have_ck_size)
        return -1;
    return 2;
}

/* The entry's bytes from the line's base64 (malloc'd) and its leaf hash. */
static int decode_entry(const struct line *l, uint8_t **bytes, size_t *len, uint8_t leaf[32],
                        const char **what)
{
    size_t cap = l->b64_n / 4 * 3 + 3;
    uint8_t *b = malloc(cap);
    if (!b)
        return LEDGER_ERR_NOMEM;
    size_t n = 0;
    const char *end = NULL;
    if (sodium_base642bin(b, cap, l->b64, l->b64_n, NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || end != l->b64 + l->b64_n ||
        n == 0) {
        free(b);
        *what = "\"bytes\" is not base64 of an entry";
        return LEDGER_ERR_CORRUPT;
    }
    merkle_leaf_hash(b, n, leaf);
    *bytes = b;
    *len = n;
    return 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Reads the next line into r->buf without its newline; 1 at the end, -errno. */
static int next_line(struct export_reader *r, size_t *len)
{
    errno = 0;
    ssize_t got = getline(&r->buf, &r->buf_cap, r->f);
    if (got < 0)
        return errno ? -errno : 1;
    *len = (size_t)got;
    if (*len > EXPORT_LINE_MAX)
        return -EFBIG;
    if (*len && r->buf[*len - 1] == '\n')
        (*len)--;
    return 0;
}

static int grow_entries(struct export_reader *r)
{
    if (r->n < r->cap)
        return 0;
    uint64_t cap = r->cap ? r->cap * 2 : 1024;
    off_t *o = realloc(r->offset, cap * sizeof *o);
    if (!o)
        return LEDGER_ERR_NOMEM;
    r->offset = o;
    uint64_t *ln = realloc(r->line_no, cap * sizeof *ln);
    if (!ln)
        return LEDGER_ERR_NOMEM;
    r->line_no = ln;
    uint8_t (*lf)[32] = realloc(r->leaf, cap * 32);
    if (!lf)
        return LEDGER_ERR_NOMEM;
    r->leaf = lf;
    r->cap = cap;
    return 0;
}

int export_open(const char *path, struct export_reader **out, char *why, size_t cap)
{
    *out = NULL;
    struct export_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return why_fail(why, cap, LEDGER_ERR_NOMEM, "out of memory");
    }
    const char *name = base_name(path);
    int rc = 0;
    struct stat st;
    r->f = fopen(path, "r");
    if (!r->f || fstat(fileno(r->f), &st) != 0) {
        rc = why_fail(why, cap, LEDGER_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = why_fail(why, cap, LEDGER_ERR_IO, "%s is not a regular file", path);
        goto fail;
    }
    for (uint64_t line_no = 1;; line_no++) {
        off_t at = ftello(r->f);
        size_t len;
        int got = next_line(r, &len);
        if (got == 1)
            break;
        if (got < 0) {
            rc = why_fail(why, cap, LEDGER_ERR_IO, "%s:%" PRIu64 ": %s", name, line_no,
                          got == -EFBIG ? "line too long" : strerror(-got));
            goto fail;
        }
        size_t k = 0;
        while (k < len && (r->buf[k] == ' ' || r->buf[k] == '\t' || r->buf[k] == '\r'))
            k++;
        if (k == len)
            continue;   /* blank */
        struct line l;
        const char *what = "";
        int kind = parse_line(r->buf, len, &l, &what);
        if (kind < 0) {
            rc = why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": %s", name, line_no, what);
            goto fail;
        }
        if (kind == 2) {
            if (r->n_ckpt == r->cap_ckpt) {
                size_t c2 = r->cap_ckpt ? r->cap_ckpt * 2 : 8;
                struct export_checkpoint *ck = realloc(r->ckpt, c2 * sizeof *ck);
                if (!ck) {
                    rc = why_fail(why, cap, LEDGER_ERR_NOMEM, "out of memory");
                    goto fail;
                }
                r->ckpt = ck;
                r->cap_ckpt = c2;
            }
            char *note = j_unescape(l.note, l.note_n);
            if (!note) {
                rc = why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": the checkpoint "
                              "note holds an escape no note has", name, line_no);
                goto fail;
            }
            r->ckpt[r->n_ckpt].size = l.ck_size;
            r->ckpt[r->n_ckpt++].note = note;
            continue;
        }
        if (l.index != r->n) {
            rc = why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": entry %" PRIu64 " where "
                          "entry %" PRIu64 " should be (an export of the whole ledger, without "
                          "--from/--to, lists every entry from 0 in order)", name, line_no,
                          l.index, r->n);
            goto fail;
        }
        uint8_t want[32], leaf[32], *bytes;
        size_t blen;
        if (l.leaf_n != 64 || hex_decode(l.leaf, want, 32) != 0) {
            rc = why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": \"leaf_hash\" is not 64 "
                          "hex digits", name, line_no);
            goto fail;
        }
        if ((rc = decode_entry(&l, &bytes, &blen, leaf, &what)) != 0) {
            why_fail(why, cap, rc, "%s:%" PRIu64 ": %s", name, line_no,
                     rc == LEDGER_ERR_NOMEM ? "out of memory" : what);
            goto fail;
        }
        free(bytes);
        if (!crypto_equal(leaf, want, 32)) {
            char a[65], b[65];
            hex_encode(leaf, 32, a);
            hex_encode(want, 32, b);
            rc = why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": the bytes of entry %"
                          PRIu64 " hash to leaf %.16s..., the line says %.16s...", name, line_no,
                          l.index, a, b);
            goto fail;
        }
        if (grow_entries(r) != 0) {
            rc = why_fail(why, cap, LEDGER_ERR_NOMEM, "out of memory");
            goto fail;
        }
        r->offset[r->n] = at;
        r->line_no[r->n] = line_no;
        memcpy(r->leaf[r->n], leaf, 32);
        r->n++;
    }
    *out = r;
    return 0;
fail:
    export_close(r);
    return rc;
}

void export_close(struct export_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    for (size_t i = 0; i < r->n_ckpt; i++)
        free(r->ckpt[i].note);
    free(r->ckpt);
    free(r->offset);
    free(r->line_no);
    free(r->leaf);
    free(r->buf);
    free(r->path);
    free(r);
}

uint64_t export_size(const struct export_reader *r)
{
    return r->n;
}

size_t export_checkpoint_count(const struct export_reader *r)
{
    return r->n_ckpt;
}

const char *export_checkpoint(const struct export_reader *r, size_t i, uint64_t *size)
{
    if (i >= r->n_ckpt)
        return NULL;
    if (size)
        *size = r->ckpt[i].size;
    return r->ckpt[i].note;
}

int export_entry(struct export_reader *r, uint64_t index, uint8_t **bytes, size_t *len,
                 char *why, size_t cap)
{
    *bytes = NULL;
    const char *name = base_name(r->path);
    if (index >= r->n)
        return why_fail(why, cap, LEDGER_ERR_RANGE, "%s has no entry %" PRIu64, name, index);
    size_t n;
    int got = fseeko(r->f, r->offset[index], SEEK_SET) != 0 ? -errno : next_line(r, &n);
    if (got != 0)
        return why_fail(why, cap, LEDGER_ERR_IO, "%s:%" PRIu64 ": cannot read it again: %s",
                        name, r->line_no[index], got == 1 ? "the file got shorter"
                                                          : strerror(-got));
    struct line l;
    const char *what = "";
    uint8_t leaf[32];
    if (parse_line(r->buf, n, &l, &what) != 1 || l.index != index)
        return why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": the line changed since "
                        "it was read", name, r->line_no[index]);
    int rc = decode_entry(&l, bytes, len, leaf, &what);
    if (rc != 0)
        return why_fail(why, cap, rc, "%s:%" PRIu64 ": %s", name, r->line_no[index], what);
    if (!crypto_equal(leaf, r->leaf[index], 32)) {
        free(*bytes);
        *bytes = NULL;
        return why_fail(why, cap, LEDGER_ERR_CORRUPT, "%s:%" PRIu64 ": entry %" PRIu64 " changed "
                        "since the file was read", name, r->line_no[index], index);
    }
    return 0;
}

/* --- the audit ------------------------------------------------------------------------- */

static int audit_key(struct export_reader *r, struct checkpoint_key *key, char *why, size_t cap)
{
    if (r->n == 0)
        return why_fail(why, cap, LEDGER_ERR_CORRUPT, "the export holds no entry");
    uint8_t *bytes;
    size_t len;
    int rc = export_entry(r, 0, &bytes, &len, why, cap);
    if (rc != 0)
        return rc;
    struct entry e;
    rc = entry_decode(bytes, len, &e);
    free(bytes);
    if (rc != 0)
        return why_fail(why, cap, rc, "entry 0 does not decode: %s", ledger_strerror(rc));
    char alliance[CHECKPOINT_ORIGIN_MAX + 1] = "";
    uint8_t pk[32];
    int have_key = 0;
    if (e.type == ENTRY_GENESIS) {
        if (e.u.genesis.alliance)
            snprintf(alliance, sizeof alliance, "%s", e.u.genesis.alliance);
        for (uint32_t i = 0; i < e.u.genesis.n_members; i++) {
            if (e.u.genesis.members[i].roles & ENTRY_ROLE_COORDINATOR) {
                memcpy(pk, e.u.genesis.members[i].public_key, 32);
                have_key = 1;
            }
        }
    }
    entry_free(&e);
    if (!have_key)
        return why_fail(why, cap, LEDGER_ERR_HISTORY, "entry 0 is no genesis naming the "
                        "coordinator's key");
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    if (!alliance[0] || checkpoint_origin(alliance, origin, sizeof origin) != 0) {
        /* no alliance name: the log's name from its newest checkpoint, as ledger verify */
        struct checkpoint c;
        if (r->n_ckpt == 0 || checkpoint_parse(r->ckpt[r->n_ckpt - 1].note,
                                               strlen(r->ckpt[r->n_ckpt - 1].note), &c, NULL,
                                               0) != 0)
            return why_fail(why, cap, LEDGER_ERR_UNSIGNED_ENTRIES, "no alliance name and no "
                            "readable checkpoint: cannot tell which log this is");
        snprintf(origin, sizeof origin, "%s", c.origin);
    }
    if (checkpoint_key_init(key, origin, pk) != 0)
        return why_fail(why, cap, LEDGER_ERR_ARG, "'%s' cannot name a log", origin);
    return 0;
}

int export_audit(struct export_reader *r, struct export_audit *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->size = r->n;
    merkle_root((const uint8_t (*)[32])r->leaf, r->n, out->root);
    struct checkpoint_key key;
    int rc = audit_key(r, &key, why, cap);
    if (rc != 0)
        return rc;
    snprintf(out->key_name, sizeof out->key_name, "%s", key.name);
    out->key_id = key.id;
    uint64_t newest = 0;
    for (size_t i = 0; i < r->n_ckpt; i++) {
        struct checkpoint c;
        char w[300];
        const char *note = r->ckpt[i].note;
        rc = checkpoint_verify(note, strlen(note), &key, &c, w, sizeof w);
        if (rc != 0)
            return why_fail(why, cap, rc, "checkpoint of size %" PRIu64 ": %s", r->ckpt[i].size, w);
        if (c.size != r->ckpt[i].size)
            return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_MISMATCH, "the checkpoint line of "
                            "size %" PRIu64 " holds a checkpoint of size %" PRIu64,
                            r->ckpt[i].size, c.size);
        if (c.size > r->n)
            return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_MISMATCH, "a checkpoint signs %"
                            PRIu64 " entries, the export holds %" PRIu64 ": entries are missing",
                            c.size, r->n);
        uint8_t root[32];
        merkle_root((const uint8_t (*)[32])r->leaf, c.size, root);
        if (!crypto_equal(root, c.root, 32))
            return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_MISMATCH, "the first %" PRIu64
                            " entries do not hash to the root their signed checkpoint names",
                            c.size);
        if (c.size > newest)
            newest = c.size;
        out->checkpoints++;
    }
    if (newest < r->n)
        return why_fail(why, cap, LEDGER_ERR_UNSIGNED_ENTRIES, "entries %" PRIu64 "..%" PRIu64
                        " are covered by no signed checkpoint", newest, r->n - 1);
    struct ledger_history *h;
    if (ledger_history_new(&h) != 0)
        return why_fail(why, cap, LEDGER_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < r->n && rc == 0; i++) {
        uint8_t *bytes;
        size_t len;
        if ((rc = export_entry(r, i, &bytes, &len, why, cap)) != 0)
            break;
        rc = ledger_history_add(h, i, bytes, len, why, cap);
        free(bytes);
    }
    if (rc == 0) {
        struct ledger_history_counts k;
        ledger_history_counts(h, &k);
        out->signatures = k.updates + k.proposals + k.votes + k.motions;
    }
    ledger_history_free(h);
    return rc;
}
