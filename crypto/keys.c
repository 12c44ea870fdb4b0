#include "crypto/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "crypto/key_private.h"

#define SECRET_HEADER "aulac-secret-key v1"
#define PUBLIC_HEADER "aulac-public-key v1"
#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL

static int key_alloc(const char *member_id, struct crypto_key **out)
{
    *out = NULL;
    if (!crypto_id_valid(member_id))
        return CRYPTO_ERR_BAD_ID;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    struct crypto_key *k = calloc(1, sizeof *k);
    if (!k)
        return CRYPTO_ERR_NOMEM;
    k->secret = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (!k->secret) {
        free(k);
        return CRYPTO_ERR_NOMEM;
    }
    snprintf(k->id, sizeof k->id, "%s", member_id);
    *out = k;
    return 0;
}

int crypto_key_generate(const char *member_id, struct crypto_key **out)
{
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = key_alloc(member_id, out);
    if (rc)
        return rc;
    crypto_sign_ed25519_keypair((*out)->public_key, (*out)->secret);
    return 0;
}

int crypto_key_from_seed(const char *member_id, const uint8_t seed[CRYPTO_SEED_BYTES],
                         struct crypto_key **out)
{
    if (!out || !seed)
        return CRYPTO_ERR_ARG;
    int rc = key_alloc(member_id, out);
    if (rc)
        return rc;
    crypto_sign_ed25519_seed_keypair((*out)->public_key, (*out)->secret, seed);
    return 0;
}

void crypto_key_free(struct crypto_key *k)
{
    if (!k)
        return;
    sodium_free(k->secret);   /* wipes before unmapping */
    sodium_memzero(k, sizeof *k);
    free(k);
}

const char *crypto_key_member(const struct crypto_key *k)
{
    return k ? k->id : NULL;
}

void crypto_key_id(const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                   char out[CRYPTO_KEY_ID_CHARS + 1])
{
    uint8_t h[CRYPTO_DIGEST_BYTES];
    crypto_blake2b256(public_key, CRYPTO_PUBLIC_KEY_BYTES, h);
    hex_encode(h, CRYPTO_KEY_ID_CHARS / 2, out);
}

void crypto_key_public(const struct crypto_key *k, struct crypto_public_key *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", k->id);
    memcpy(out->key, k->public_key, sizeof out->key);
    crypto_key_id(out->key, out->key_id);
}

void crypto_public_key_to_base64(const uint8_t key[CRYPTO_PUBLIC_KEY_BYTES], char out[45])
{
    sodium_bin2base64(out, 45, key, CRYPTO_PUBLIC_KEY_BYTES, B64_VARIANT);
}

/* Decodes exactly want bytes of canonical padded base64 into out. */
static int base64_exact(const char *b64, size_t b64_len, uint8_t *out, size_t want)
{
    size_t got = 0;
    const char *end = NULL;
    if (b64_len != sodium_base64_ENCODED_LEN(want, B64_VARIANT) - 1)
        return CRYPTO_ERR_KEY_FORMAT;
    if (sodium_base642bin(out, want, b64, b64_len, NULL, &got, &end, B64_VARIANT) != 0
        || got != want || end != b64 + b64_len)
        return CRYPTO_ERR_KEY_FORMAT;
    return 0;
}

int crypto_public_key_from_base64(const char *b64, uint8_t key[CRYPTO_PUBLIC_KEY_BYTES])
{
    if (!b64 || !key)
        return CRYPTO_ERR_ARG;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    return base64_exact(b64, strlen(b64), key, CRYPTO_PUBLIC_KEY_BYTES);
}

/* --- key file text -------------------------------------------------------- */

/* One "name: value" line of a key file, pointing into the text. */
struct kv {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Splits text into header + fields. Blank lines and '#' comments are skipped.
 * Returns the number of fields, or CRYPTO_ERR_KEY_FORMAT. */
static int split_key_file(const char *text, size_t len, const char *header,
                          struct kv *fields, int max_fields)
{
    size_t pos = 0;
    int n = 0, seen_header = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl ? 1 : 0);
        if (line_len && line[line_len - 1] == '\r')
            line_len--;
        if (memchr(line, '\0', line_len))
            return CRYPTO_ERR_KEY_FORMAT;
        if (!seen_header) {
            if (line_len != strlen(header) || memcmp(line, header, line_len) != 0)
                return CRYPTO_ERR_KEY_FORMAT;
            seen_header = 1;
            continue;
        }
        if (line_len == 0 || line[0] == '#')
            continue;
        const char *colon = memchr(line, ':', line_len);
        if (!colon || n == max_fields)
            return CRYPTO_ERR_KEY_FORMAT;
        const char *v = colon + 1;
        const char *vend = line + line_len;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        fields[n].name = line;
        fields[n].name_len = (size_t)(colon - line);
        fields[n].value = v;
        fields[n].value_len = (size_t)(vend - v);
        for (int i = 0; i < n; i++)
            if (fields[i].name_len == fields[n].name_len
                && memcmp(fields[i].name, fields[n].name, fields[n].name_len) == 0)
                return CRYPTO_ERR_KEY_FORMAT;   /* duplicate field */
        n++;
    }
    return seen_header ? n : CRYPTO_ERR_KEY_FORMAT;
}

static const struct kv *field(const struct kv *f, int n, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (f[i].name_len == len && memcmp(f[i].name, name, len) == 0)
            return &f[i];
    return NULL;
}

/* Copies an id field into out (CRYPTO_ID_MAX + 1) and validates it. */
static int field_id(const struct kv *f, char *out)
{
    if (!f || f->value_len == 0 || f->value_len > CRYPTO_ID_MAX)
        return CRYPTO_ERR_KEY_FORMAT;
    memcpy(out, f->value, f->value_len);
    out[f->value_len] = 0;
    return crypto_id_valid(out) ? 0 : CRYPTO_ERR_KEY_FORMAT;
}

/* The optional key-id line must match the key when present. */
static int check_key_id(const struct kv *f, const char key_id[CRYPTO_KEY_ID_CHARS + 1])
{
    if (!f)
        return 0;
    if (f->value_len != CRYPTO_KEY_ID_CHARS || memcmp(f->value, key_id, CRYPTO_KEY_ID_CHARS) != 0)
        return CRYPTO_ERR_KEY_FORMAT;
    return 0;
}

static int only_known_fields(const struct kv *f, int n, const char *const *known)
{
    for (int i = 0; i < n; i++) {
        int ok = 0;
        for (const char *const *k = known; *k; k++)
            if (f[i].name_len == strlen(*k) && memcmp(f[i].name, *k, f[i].name_len) == 0)
                ok = 1;
        if (!ok)
            return CRYPTO_ERR_KEY_FORMAT;
    }
    return 0;
}

int crypto_public_key_parse(const char *text, size_t len, struct crypto_public_key *out)
{
    static const char *const known[] = { "id", "key-id", "public", NULL };
    struct kv f[8];
    if (!text || !out)
        return CRYPTO_ERR_ARG;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    memset(out, 0, sizeof *out);
    int n = split_key_file(text, len, PUBLIC_HEADER, f, 8);
    if (n < 0)
        return n;
    if (only_known_fields(f, n, known) || field_id(field(f, n, "id"), out->id))
        return CRYPTO_ERR_KEY_FORMAT;
    const struct kv *pub = field(f, n, "public");
    if (!pub || base64_exact(pub->value, pub->value_len, out->key, sizeof out->key))
        return CRYPTO_ERR_KEY_FORMAT;
    crypto_key_id(out->key, out->key_id);
    if (check_key_id(field(f, n, "key-id"), out->key_id))
        return CRYPTO_ERR_KEY_FORMAT;
    /* a key that can never verify anything is a typo or an attack; say so now */
    uint8_t curve[32];
    if (crypto_sign_ed25519_pk_to_curve25519(curve, out->key) != 0)
        return CRYPTO_ERR_BAD_KEY;
    return 0;
}

int crypto_public_key_format(const struct crypto_public_key *pk, char *buf, size_t cap)
{
    if (!pk || !buf || !crypto_id_valid(pk->id))
        return CRYPTO_ERR_ARG;
    char b64[45], kid[CRYPTO_KEY_ID_CHARS + 1];
    crypto_public_key_to_base64(pk->key, b64);
    crypto_key_id(pk->key, kid);
    int n = snprintf(buf, cap, PUBLIC_HEADER "\nid: %s\nkey-id: %s\npublic: %s\n", pk->id, kid, b64);
    if (n < 0 || (size_t)n >= cap)
        return CRYPTO_ERR_BUFFER;
    return n;
}

int crypto_public_key_save(const struct crypto_public_key *pk, const char *path)
{
    char buf[256];
    if (!path)
        return CRYPTO_ERR_ARG;
    int n = crypto_public_key_format(pk, buf, sizeof buf);
    if (n < 0)
        return n;
    int rc = file_write_atomic(path, buf, (size_t)n, 0644);
    if (rc) {
        log_error("cannot write public key file %s: %s", path, strerror(-rc));
        return CRYPTO_ERR_IO;
    }
    return 0;
}

int crypto_public_key_load(const char *path, struct crypto_public_key *out)
{
    uint8_t *text = NULL;
    size_t len = 0;
    if (!path || !out)
        return CRYPTO_ERR_ARG;
    int rc = file_read_all(path, CRYPTO_KEY_FILE_MAX, &text, &len);
    if (rc) {
        log_error("cannot read public key file %s: %s", path, strerror(-rc));
        return rc == -EFBIG ? CRYPTO_ERR_KEY_FORMAT : CRYPTO_ERR_IO;
    }
    rc = crypto_public_key_parse((const char *)text, len, out);
    free(text);
    if (rc)
        log_error("public key file %s: %s (expected \"" PUBLIC_HEADER "\" then id:, key-id:, public: lines)",
                  path, crypto_strerror(rc));
    return rc;
}

/* --- secret key files ------------------------------------------------------ */

int crypto_key_save_secret(const struct crypto_key *k, const char *path, int overwrite)
{
    if (!k || !path)
        return CRYPTO_ERR_ARG;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    if (!overwrite && file_exists(path)) {
        log_error("secret key file %s already exists; not replacing it (move it away first)", path);
        return CRYPTO_ERR_KEY_EXISTS;
    }
    enum { CAP = 256 };
    char *text = sodium_malloc(CAP);
    if (!text)
        return CRYPTO_ERR_NOMEM;
    char kid[CRYPTO_KEY_ID_CHARS + 1];
    crypto_key_id(k->public_key, kid);
    int n = snprintf(text, CAP, SECRET_HEADER "\nid: %s\nkey-id: %s\nsecret: ", k->id, kid);
    /* seed = first 32 bytes of libsodium's secret key (seed ‖ public key) */
    sodium_bin2base64(text + n, CAP - (size_t)n, k->secret, CRYPTO_SEED_BYTES, B64_VARIANT);
    n += (int)strlen(text + n);
    text[n++] = '\n';
    int rc = file_write_atomic(path, text, (size_t)n, 0600);
    sodium_free(text);
    if (rc) {
        log_error("cannot write secret key file %s: %s", path, strerror(-rc));
        return CRYPTO_ERR_IO;
    }
    return 0;
}

static int parse_secret(const char *text, size_t len, struct crypto_key **out)
{
    static const char *const known[] = { "id", "key-id", "secret", NULL };
    struct kv f[8];
    char id[CRYPTO_ID_MAX + 1];
    int n = split_key_file(text, len, SECRET_HEADER, f, 8);
    if (n < 0)
        return n;
    if (only_known_fields(f, n, known) || field_id(field(f, n, "id"), id))
        return CRYPTO_ERR_KEY_FORMAT;
    const struct kv *sec = field(f, n, "secret");
    if (!sec)
        return CRYPTO_ERR_KEY_FORMAT;
    uint8_t *seed = sodium_malloc(CRYPTO_SEED_BYTES);
    if (!seed)
        return CRYPTO_ERR_NOMEM;
    int rc = base64_exact(sec->value, sec->value_len, seed, CRYPTO_SEED_BYTES);
    if (rc == 0)
        rc = crypto_key_from_seed(id, seed, out);
    sodium_free(seed);
    if (rc)
        return rc;
    char kid[CRYPTO_KEY_ID_CHARS + 1];
    crypto_key_id((*out)->public_key, kid);
    if (check_key_id(field(f, n, "key-id"), kid)) {
        crypto_key_free(*out);
        *out = NULL;
        return CRYPTO_ERR_KEY_FORMAT;
    }
    return 0;
}

int crypto_key_load(const char *path, struct crypto_key **out)
{
    if (!path || !out)
        return CRYPTO_ERR_ARG;
    *out = NULL;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    /* mode is checked on the opened file itself, so a symlink (as container
     * secret mounts use) is judged by its target and cannot be swapped after */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot open secret key file %s: %s", path, strerror(errno));
        return CRYPTO_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_error("secret key file %s is not a regular file", path);
        close(fd);
        return CRYPTO_ERR_IO;
    }
    if (st.st_mode & 077) {
        log_error("secret key file %s has mode %04o: group or others may access it; "
                  "refusing to use it. Run: chmod 600 %s (and consider the key exposed "
                  "if others could read it)", path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return CRYPTO_ERR_KEY_PERMS;
    }
    if (st.st_size > CRYPTO_KEY_FILE_MAX) {
        log_error("secret key file %s is %lld bytes; not a key file", path, (long long)st.st_size);
        close(fd);
        return CRYPTO_ERR_KEY_FORMAT;
    }
    char *text = sodium_malloc(CRYPTO_KEY_FILE_MAX);
    if (!text) {
        close(fd);
        return CRYPTO_ERR_NOMEM;
    }
    size_t len = 0;
    int rc = 0;
    while (len < CRYPTO_KEY_FILE_MAX) {
        ssize_t r = read(fd, text + len, CRYPTO_KEY_FILE_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_error("cannot read secret key file %s: %s", path, strerror(errno));
            rc = CRYPTO_ERR_IO;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (rc == 0) {
        rc = parse_secret(text, len, out);
        if (rc)
            log_error("secret key file %s: %s (expected \"" SECRET_HEADER
                      "\" then id:, key-id:, secret: lines)", path, crypto_strerror(rc));
    }
    sodium_free(text);
    return rc;
}
