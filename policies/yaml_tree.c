#define _GNU_SOURCE     /* memmem */
#include "policies/yaml_tree.h"

#include <errno.h>
#include <libfyaml.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

#define YAML_TREE_MAX_KEYS 1024     /* keys in one mapping (duplicate check is quadratic) */

void yaml_error(struct policy_error *err, int code, const char *file, int line, int column,
                const char *path, const char *fmt, ...)
{
    if (!err)
        return;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    err->code = code;
    err->line = line;
    err->column = column;
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    char where[300];
    int r;
    if (line > 0)
        r = snprintf(where, sizeof where, "%s:%d:%d", file ? file : "<policy>", line, column);
    else
        r = snprintf(where, sizeof where, "%s", file ? file : "<policy>");
    if (r < 0)
        where[0] = '\0';
    if (path && *path)
        r = snprintf(err->message, sizeof err->message, "%s: %s: %s", where, path, detail);
    else
        r = snprintf(err->message, sizeof err->message, "%s: %s", where, detail);
    if (r < 0)
        err->message[0] = '\0';
}

void policy_errors_add(struct policy_errors *l, const struct policy_error *e)
{
    l->total++;
    /* after every error at the same place or before it: stable */
    size_t at = l->n;
    while (at > 0 && (l->item[at - 1].line > e->line ||
                      (l->item[at - 1].line == e->line && l->item[at - 1].column > e->column)))
        at--;
    if (at == POLICY_ERRORS_MAX)
        return;
    size_t keep = l->n < POLICY_ERRORS_MAX ? l->n : POLICY_ERRORS_MAX - 1;
    memmove(&l->item[at + 1], &l->item[at], (keep - at) * sizeof l->item[0]);
    l->item[at] = *e;
    l->n = keep + 1;
}

size_t policy_errors_more(const struct policy_errors *l, char *out, size_t cap)
{
    size_t more = l->total > l->n ? l->total - l->n : 0;
    if (cap) {
        if (more)
            snprintf(out, cap, "... and %zu more error%s", more, more == 1 ? "" : "s");
        else
            out[0] = '\0';
    }
    return more;
}

int yaml_errors_new(const char *file, void *out, size_t size, struct policy_errors **all,
                    struct policy_error *err)
{
    *all = NULL;
    if (size && !out) {
        yaml_error(err, POLICY_ERR_ARG, file, 0, 0, NULL, "invalid argument");
        return POLICY_ERR_ARG;
    }
    if ((*all = calloc(1, sizeof **all)) == NULL) {
        if (out)
            memset(out, 0, size);
        yaml_error(err, POLICY_ERR_NOMEM, file, 0, 0, NULL, "out of memory");
        return POLICY_ERR_NOMEM;
    }
    return 0;
}

int yaml_errors_first(struct policy_errors *all, int rc, struct policy_error *err)
{
    if (err) {
        if (all->n)
            *err = all->item[0];
        else
            memset(err, 0, sizeof *err);
    }
    free(all);
    return rc;
}

void yaml_duplicate_error(struct policy_error *err, const char *file, const struct ynode *key,
                          int line, int column)
{
    char shown[80];
    ynode_describe(key, shown, sizeof shown);
    yaml_error(err, POLICY_ERR_DUPLICATE, file, key->line, key->column, NULL,
               "duplicate key %s (first defined at line %d, column %d)", shown, line, column);
}

bool ynode_is_null(const struct ynode *n)
{
    if (!n)
        return true;
    if (n->kind != YNODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

void ynode_describe(const struct ynode *n, char *out, size_t out_len)
{
    if (!out_len)
        return;
    if (!n || ynode_is_null(n)) {
        snprintf(out, out_len, "null");
        return;
    }
    if (n->kind == YNODE_MAP) {
        snprintf(out, out_len, "a mapping");
        return;
    }
    if (n->kind == YNODE_SEQ) {
        snprintf(out, out_len, "a list");
        return;
    }
    /* Plain scalars that look like numbers or booleans are shown bare, the rest quoted. */
    bool bare = n->plain && n->len > 0 && n->len <= 40;
    for (size_t i = 0; bare && i < n->len; i++) {
        char c = n->text[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
              c == 'E' || c == 'x' || c == 'o' || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F')))
            bare = false;
    }
    if (n->plain && (!strcmp(n->text, "true") || !strcmp(n->text, "false")))
        bare = true;
    if (bare && !(n->text[0] >= '0' && n->text[0] <= '9') && n->text[0] != '-' &&
        n->text[0] != '+' && n->text[0] != '.' && strcmp(n->text, "true") &&
        strcmp(n->text, "false"))
        bare = false;
    if (bare) {
        snprintf(out, out_len, "%s", n->text);
        return;
    }
    size_t o = 0;
    if (o + 1 < out_len)
        out[o++] = '"';
    for (size_t i = 0; i < n->len && o + 6 < out_len; i++) {
        unsigned char c = (unsigned char)n->text[i];
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 1 < out_len)
        out[o++] = '"';
    out[o < out_len ? o : out_len - 1] = '\0';
}

void yaml_tree_free(struct ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            yaml_tree_free(n->keys[i]);
        if (n->vals)
            yaml_tree_free(n->vals[i]);
    }
    if (n->pending)
        yaml_tree_free(n->keys[n->n]);
    free(n->keys);
    free(n->vals);
    free(n->text);
    free(n);
}

struct builder {
    const char *file;
    const char *input;
    size_t input_len;
    struct policy_error *err;
    struct ynode *root;
    struct ynode *stack[YAML_TREE_MAX_DEPTH];
    int depth;
    size_t nodes;
    int documents;
    int last_line, last_column;
    unsigned flags;             /* YAML_TREE_* */
};

static void mark_of(struct fy_event *e, struct builder *b, int *line, int *column)
{
    const struct fy_mark *m = fy_event_start_mark(e);
    if (m && m->line >= 0) {
        *line = m->line + 1;
        *column = m->column + 1;
        b->last_line = *line;
        b->last_column = *column;
    } else {
        *line = b->last_line > 0 ? b->last_line : 1;
        *column = b->last_line > 0 ? b->last_column : 1;
    }
}

static int grow(struct ynode *p, bool with_keys)
{
    if (p->n < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 8;
    struct ynode **v = realloc(p->vals, cap * sizeof *v);
    if (!v)
        return POLICY_ERR_NOMEM;
    p->vals = v;
    if (with_keys) {
        struct ynode **k = realloc(p->keys, cap * sizeof *k);
        if (!k)
            return POLICY_ERR_NOMEM;
        p->keys = k;
    }
    p->cap = cap;
    return 0;
}

/* Attaches node to the open collection (or makes it the root); takes ownership. */
static int attach(struct builder *b, struct ynode *node)
{
    if (++b->nodes > YAML_TREE_MAX_NODES) {
        yaml_tree_free(node);
        yaml_error(b->err, POLICY_ERR_TOO_LARGE, b->file, b->last_line, b->last_column, NULL,
                   "more than %d YAML nodes", YAML_TREE_MAX_NODES);
        return POLICY_ERR_TOO_LARGE;
    }
    if (b->depth == 0) {
        b->root = node;
        return 0;
    }
    struct ynode *p = b->stack[b->depth - 1];
    if (p->kind == YNODE_SEQ) {
        if (grow(p, false)) {
            yaml_tree_free(node);
            return POLICY_ERR_NOMEM;
        }
        p->vals[p->n++] = node;
        return 0;
    }
    /* Mapping: keys and values alternate; a pending key sits in keys[n], n not yet
     * incremented. */
    if (p->pending) {
        p->vals[p->n++] = node;
        p->pending = false;
        return 0;
    }
    if (node->kind != YNODE_SCALAR) {
        int line = node->line, column = node->column;
        yaml_tree_free(node);
        yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, column, NULL,
                   "mapping keys must be plain strings");
        return POLICY_ERR_UNSUPPORTED;
    }
    if (p->n >= YAML_TREE_MAX_KEYS) {
        yaml_error(b->err, POLICY_ERR_TOO_LARGE, b->file, node->line, node->column, NULL,
                   "more than %d keys in one mapping", YAML_TREE_MAX_KEYS);
        yaml_tree_free(node);
        return POLICY_ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct ynode *k = p->keys[i];
        if (k->len == node->len && memcmp(k->text, node->text, k->len) == 0) {
            if (b->flags & YAML_TREE_KEEP_DUPLICATES) {
                node->dup_line = k->line;
                node->dup_column = k->column;
                break;
            }
            yaml_duplicate_error(b->err, b->file, node, k->line, k->column);
            yaml_tree_free(node);
            return POLICY_ERR_DUPLICATE;
        }
    }
    if (grow(p, true)) {
        yaml_tree_free(node);
        return POLICY_ERR_NOMEM;
    }
    p->keys[p->n] = node;
    p->vals[p->n] = NULL;
    p->pending = true;
    return 0;
}

static void token_mark(struct fy_token *t, int *line, int *column)
{
    const struct fy_mark *m = fy_token_start_mark(t);
    if (m && m->line >= 0) {
        *line = m->line + 1;
        *column = m->column + 1;
    }
}

static int check_props(struct builder *b, struct fy_token *anchor, struct fy_token *tag,
                       int line, int column)
{
    if (anchor) {
        token_mark(anchor, &line, &column);
        yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, column, NULL,
                   "anchors (&name) are not supported in policy files");
        return POLICY_ERR_UNSUPPORTED;
    }
    if (tag) {
        token_mark(tag, &line, &column);
        yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, column, NULL,
                   "tags (!tag) are not supported in policy files");
        return POLICY_ERR_UNSUPPORTED;
    }
    return 0;
}

/* libfyaml 0.7.12 leaks memory formatting some single-quoted scalars that contain the
 * '' escape (a hostile proposal could repeat one until the coordinator runs out), so
 * that escape is refused before the text is asked for. Token marks span the scalar's
 * source text without its quotes. */
static int check_single_quoted(struct builder *b, struct fy_token *t, int line, int column)
{
    const struct fy_mark *s = fy_token_start_mark(t), *e = fy_token_end_mark(t);
    if (!s || !e || e->input_pos < s->input_pos || e->input_pos > b->input_len)
        return 0;
    if (memmem(b->input + s->input_pos, e->input_pos - s->input_pos, "''", 2)) {
        yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, column, NULL,
                   "the '' escape in single-quoted strings is not supported; use double "
                   "quotes for text that contains a single quote");
        return POLICY_ERR_UNSUPPORTED;
    }
    return 0;
}

static struct ynode *new_node(enum ynode_kind kind, int line, int column)
{
    struct ynode *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = line;
        n->column = column;
    }
    return n;
}

/* Directives sit on lines of their own, starting with '%', before the "---" that opens
 * the document. Policies are YAML 1.2 read with the core schema, so "%YAML 1.2" is the
 * only one that changes nothing: under 1.1 a reader takes 017 for octal 15 and yes for
 * true, and %TAG only serves tags, which are refused anyway. */
static int check_directives(struct builder *b, struct fy_event *e)
{
    const struct fy_mark *m = fy_event_start_mark(e);
    if (e->document_start.implicit || !m || m->line < 0)
        return 0;
    const char *in = b->input;
    size_t n = b->input_len, p = 0;
    if (n >= 3 && memcmp(in, "\xef\xbb\xbf", 3) == 0)
        p = 3;
    for (int line = 1; p < n && line <= m->line; line++) {
        size_t eol = p;
        while (eol < n && in[eol] != '\n')
            eol++;
        if (in[p] == '%') {
            size_t end = eol;
            while (end > p && (in[end - 1] == '\r' || in[end - 1] == ' ' || in[end - 1] == '\t'))
                end--;
            const char *d = in + p;
            int len = (int)(end - p) > 80 ? 80 : (int)(end - p);
            if (len >= 6 && memcmp(d, "%YAML", 5) == 0 && (d[5] == ' ' || d[5] == '\t')) {
                const char *v = d + 6;
                while (v < d + len && (*v == ' ' || *v == '\t'))
                    v++;
                int vlen = (int)(d + len - v);
                if (vlen == 3 && memcmp(v, "1.2", 3) == 0) {
                    p = eol + 1;
                    continue;
                }
                yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, 1, NULL,
                           "%.*s: policy files are YAML 1.2, read with its core schema (under "
                           "YAML 1.1, 017 would be octal 15 and yes would be true); remove "
                           "the directive", len, d);
            } else if (len >= 4 && memcmp(d, "%TAG", 4) == 0) {
                yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, 1, NULL,
                           "%%TAG directives are not supported in policy files (nor are tags)");
            } else {
                yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, 1, NULL,
                           "unknown YAML directive %.*s; policy files take none but "
                           "%%YAML 1.2", len, d);
            }
            return POLICY_ERR_UNSUPPORTED;
        }
        p = eol + 1;
    }
    return 0;
}

static int on_event(struct builder *b, struct fy_event *e)
{
    int line, column, rc;
    switch (e->type) {
    case FYET_STREAM_START:
    case FYET_STREAM_END:
    case FYET_DOCUMENT_END:
        return 0;
    case FYET_DOCUMENT_START:
        if (++b->documents > 1) {
            mark_of(e, b, &line, &column);
            yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, column, NULL,
                       "only one YAML document is allowed in a policy file");
            return POLICY_ERR_UNSUPPORTED;
        }
        return check_directives(b, e);
    case FYET_ALIAS:
        mark_of(e, b, &line, &column);
        yaml_error(b->err, POLICY_ERR_UNSUPPORTED, b->file, line, column, NULL,
                   "aliases (*name) are not supported in policy files");
        return POLICY_ERR_UNSUPPORTED;
    case FYET_SCALAR: {
        mark_of(e, b, &line, &column);
        if ((rc = check_props(b, e->scalar.anchor, e->scalar.tag, line, column)))
            return rc;
        if (e->scalar.value && fy_token_scalar_style(e->scalar.value) == FYSS_SINGLE_QUOTED &&
            (rc = check_single_quoted(b, e->scalar.value, line, column)))
            return rc;
        struct ynode *n = new_node(YNODE_SCALAR, line, column);
        if (!n)
            return POLICY_ERR_NOMEM;
        size_t len = 0;
        const char *t = e->scalar.value ? fy_token_get_text(e->scalar.value, &len) : NULL;
        if (!t)
            len = 0;
        n->text = malloc(len + 1);
        if (!n->text) {
            free(n);
            return POLICY_ERR_NOMEM;
        }
        if (len)
            memcpy(n->text, t, len);
        n->text[len] = '\0';
        n->len = len;
        n->plain = !e->scalar.value ||
                   fy_token_scalar_style(e->scalar.value) == FYSS_PLAIN;
        return attach(b, n);
    }
    case FYET_MAPPING_START:
    case FYET_SEQUENCE_START: {
        mark_of(e, b, &line, &column);
        bool map = e->type == FYET_MAPPING_START;
        rc = map ? check_props(b, e->mapping_start.anchor, e->mapping_start.tag, line, column)
                 : check_props(b, e->sequence_start.anchor, e->sequence_start.tag, line, column);
        if (rc)
            return rc;
        if (b->depth >= YAML_TREE_MAX_DEPTH) {
            yaml_error(b->err, POLICY_ERR_TOO_LARGE, b->file, line, column, NULL,
                       "nesting deeper than %d levels", YAML_TREE_MAX_DEPTH);
            return POLICY_ERR_TOO_LARGE;
        }
        struct ynode *n = new_node(map ? YNODE_MAP : YNODE_SEQ, line, column);
        if (!n)
            return POLICY_ERR_NOMEM;
        if ((rc = attach(b, n)))
            return rc;
        b->stack[b->depth++] = n;
        return 0;
    }
    case FYET_MAPPING_END:
    case FYET_SEQUENCE_END:
        if (b->depth > 0)
            b->depth--;
        return 0;
    default:
        return 0;
    }
}

size_t yaml_text_check(const void *bytes, size_t len, unsigned flags)
{
    const unsigned char *p = bytes;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            int allowed = c == '\t' || c == '\n' || (c == '\r' && (flags & YAML_TEXT_CR));
            if ((c < 0x20 && !allowed) || c == 0x7f)
                return i;
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= need)
            return i;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) ||
            ((flags & YAML_TEXT_NO_C1) && cp >= 0x80 && cp < 0xa0))
            return i;
        i += need + 1;
    }
    return len;
}

int yaml_file_read(const char *path, const char *kind, uint8_t **buf, size_t *len,
                   struct policy_error *err)
{
    char why[160];
    int rc = file_read_all_why(path, POLICY_FILE_MAX, buf, len, why, sizeof why);
    if (rc == 0)
        return 0;
    if (rc == -EFBIG) {
        yaml_error(err, POLICY_ERR_TOO_LARGE, path, 0, 0, NULL, "%s for %s files", why, kind);
        return POLICY_ERR_TOO_LARGE;
    }
    yaml_error(err, POLICY_ERR_IO, path, 0, 0, NULL, "cannot read: %s", why);
    return POLICY_ERR_IO;
}

int yaml_errors_read(const char *path, const char *kind, uint8_t **buf, size_t *len,
                     struct policy_errors *errors)
{
    errors->n = errors->total = 0;
    struct policy_error err = {0};
    int rc = POLICY_ERR_ARG;
    *buf = NULL;
    *len = 0;
    if (!path)
        yaml_error(&err, rc, path, 0, 0, NULL, "invalid argument");
    else
        rc = yaml_file_read(path, kind, buf, len, &err);
    if (rc)
        policy_errors_add(errors, &err);
    return rc;
}

int yaml_tree_parse(const char *file, const void *bytes, size_t len,
                    struct ynode **root, struct policy_error *err)
{
    return yaml_tree_parse_flags(file, bytes, len, 0, root, err);
}

int yaml_tree_parse_flags(const char *file, const void *bytes, size_t len, unsigned flags,
                          struct ynode **root, struct policy_error *err)
{
    *root = NULL;
    if (len > POLICY_FILE_MAX) {
        char limit[32];
        file_size_words(POLICY_FILE_MAX, limit, sizeof limit);
        yaml_error(err, POLICY_ERR_TOO_LARGE, file, 0, 0, NULL, "is %zu bytes, over the %s limit",
                   len, limit);
        return POLICY_ERR_TOO_LARGE;
    }
    /* libfyaml is only ever given well-formed UTF-8 text: some invalid byte sequences
     * make its scanner (0.7.12) loop forever. */
    size_t bad = yaml_text_check(bytes, len, YAML_TEXT_CR);
    if (bad < len) {
        const unsigned char *c = bytes;
        int line = 1, column = 1;
        for (size_t i = 0; i < bad; i++) {
            if (c[i] == '\n') {
                line++;
                column = 1;
            } else if ((c[i] & 0xc0) != 0x80) {
                column++;
            }
        }
        if (c[bad] == 0)
            yaml_error(err, POLICY_ERR_SYNTAX, file, line, column, NULL,
                       "NUL byte in a policy file");
        else if (c[bad] < 0x80)
            yaml_error(err, POLICY_ERR_SYNTAX, file, line, column, NULL,
                       "control character 0x%02x in a policy file", c[bad]);
        else
            yaml_error(err, POLICY_ERR_SYNTAX, file, line, column, NULL,
                       "invalid UTF-8 (byte 0x%02x); policy files are UTF-8 text", c[bad]);
        return POLICY_ERR_SYNTAX;
    }

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (!diag)
        return POLICY_ERR_NOMEM;
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET, .diag = diag};
    struct fy_parser *fyp = fy_parser_create(&pcfg);
    if (!fyp) {
        fy_diag_destroy(diag);
        return POLICY_ERR_NOMEM;
    }
    /* An empty string would make libfyaml complain; an empty file is an empty document. */
    static const char empty[] = "\n";
    if (fy_parser_set_string(fyp, len ? bytes : empty, len ? len : 1) != 0) {
        fy_parser_destroy(fyp);
        fy_diag_destroy(diag);
        return POLICY_ERR_NOMEM;
    }

    struct builder b = {.file = file, .err = err, .input = len ? bytes : empty,
                        .input_len = len ? len : 1, .flags = flags};
    int rc = 0;
    struct fy_event *e;
    while ((e = fy_parser_parse(fyp)) != NULL) {
        rc = on_event(&b, e);
        fy_parser_event_free(fyp, e);
        if (rc)
            break;
    }
    if (!rc && fy_parser_get_stream_error(fyp)) {
        rc = POLICY_ERR_SYNTAX;
        void *it = NULL;
        struct fy_diag_error *de;
        bool found = false;
        while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
            if (de->type < FYET_ERROR)
                continue;
            yaml_error(err, rc, file, de->line > 0 ? de->line : 1,
                       de->column > 0 ? de->column : 1, NULL, "YAML syntax error: %s",
                       de->msg ? de->msg : "malformed");
            found = true;
            break;
        }
        if (!found)
            yaml_error(err, rc, file, b.last_line > 0 ? b.last_line : 1,
                       b.last_column > 0 ? b.last_column : 1, NULL, "YAML syntax error");
    }
    fy_parser_destroy(fyp);
    fy_diag_destroy(diag);
    if (rc) {
        if (rc == POLICY_ERR_NOMEM)
            yaml_error(err, rc, file, 0, 0, NULL, "out of memory");
        yaml_tree_free(b.root);
        return rc;
    }
    *root = b.root;
    return 0;
}
