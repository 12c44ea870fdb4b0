/* C2SP signed-note checkpoints: formatting, signing, and parsing of untrusted notes.
 * Every byte of a note is checked here, once, before anything else looks at it. */
#include "ledger/checkpoint.h"
#include "common/why.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto/digest.h"

#define EM_DASH_SPACE     "\xe2\x80\x94 "   /* U+2014 then U+0020 */
#define SIG_TYPE_ED25519  0x01
#define NOTE_SIGS_MAX     100               /* signature lines looked at in one note */
#define ROOT_B64_CHARS    44


int checkpoint_name_valid(const char *name)
{
    if (!name)
        return 0;
    size_t n = strnlen(name, CHECKPOINT_ORIGIN_MAX + 1);
    if (n == 0 || n > CHECKPOINT_ORIGIN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '+')
            return 0;
    }
    return 1;
}

int checkpoint_origin(const char *alliance, char *out, size_t cap)
{
    if (!alliance || !out || !alliance[0])
        return LEDGER_ERR_ARG;
    int n = snprintf(out, cap, CHECKPOINT_ORIGIN_PREFIX "%s", alliance);
    if (n < 0 || (size_t)n >= cap || !checkpoint_name_valid(out)) {
        if (cap)
            out[0] = '\0';
        return LEDGER_ERR_ARG;
    }
    return 0;
}

uint32_t checkpoint_key_id(const char *name, const uint8_t public_key[32])
{
    return checkpoint_typed_key_id(name, SIG_TYPE_ED25519, public_key);
}

uint32_t checkpoint_typed_key_id(const char *name, uint8_t type, const uint8_t public_key[32])
{
    crypto_hash_sha256_state st;
    const uint8_t sep[2] = { 0x0a, type };
    uint8_t h[32];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
    crypto_hash_sha256_update(&st, sep, 2);
    crypto_hash_sha256_update(&st, public_key, 32);
    crypto_hash_sha256_final(&st, h);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

int checkpoint_key_init(struct checkpoint_key *k, const char *name, const uint8_t public_key[32])
{
    if (!k || !public_key || !checkpoint_name_valid(name))
        return LEDGER_ERR_ARG;
    memset(k, 0, sizeof *k);
    memcpy(k->name, name, strlen(name) + 1);
    memcpy(k->public_key, public_key, 32);
    k->id = checkpoint_key_id(name, public_key);
    return 0;
}

int checkpoint_format(const struct checkpoint *c, char *out, size_t cap, size_t *len)
{
    if (!c || !out || !checkpoint_name_valid(c->origin))
        return LEDGER_ERR_ARG;
    char b64[ROOT_B64_CHARS + 1];
    sodium_bin2base64(b64, sizeof b64, c->root, 32, sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(out, cap, "%s\n%" PRIu64 "\n%s\n", c->origin, c->size, b64);
    if (n < 0 || (size_t)n >= cap)
        return LEDGER_ERR_ARG;
    if (len)
        *len = (size_t)n;
    return 0;
}

int checkpoint_note_sign(const char *text, size_t text_len, const char *name,
                         const struct crypto_key *key, char *out, size_t cap, size_t *len)
{
    if (!text || !key || !out || !checkpoint_name_valid(name) || text_len == 0 ||
        text[text_len - 1] != '\n' || text_len >= cap)
        return LEDGER_ERR_ARG;
    if (out != text)
        memmove(out, text, text_len);
    const size_t tlen = text_len;
    struct crypto_public_key pub;
    crypto_key_public(key, &pub);
    uint8_t blob[4 + 64];
    uint32_t id = checkpoint_key_id(name, pub.key);
    blob[0] = (uint8_t)(id >> 24);
    blob[1] = (uint8_t)(id >> 16);
    blob[2] = (uint8_t)(id >> 8);
    blob[3] = (uint8_t)id;
    if (crypto_signature_create(key, out, tlen, blob + 4) != 0)
        return LEDGER_ERR_ARG;
    char b64[sodium_base64_ENCODED_LEN(sizeof blob, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(out + tlen, cap - tlen, "\n" EM_DASH_SPACE "%s %s\n", name, b64);
    if (n < 0 || (size_t)n >= cap - tlen) {
        out[0] = '\0';
        return LEDGER_ERR_ARG;
    }
    if (len)
        *len = tlen + (size_t)n;
    return 0;
}

int checkpoint_sign(const struct checkpoint *c, const struct crypto_key *key,
                    char *out, size_t cap, size_t *len)
{
    if (!c || !key || !out)
        return LEDGER_ERR_ARG;
    size_t tlen;
    int rc = checkpoint_format(c, out, cap, &tlen);
    if (rc)
        return rc;
    return checkpoint_note_sign(out, tlen, c->origin, key, out, cap, len);
}

/* --- parsing untrusted notes ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned min, cp;
    if ((c & 0xe0) == 0xc0) { need = 2; min = 0x80; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { need = 3; min = 0x800; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { need = 4; min = 0x10000; cp = c & 0x07; }
    else return 0;
    if (need > n)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

/* UTF-8, no control characters but newline, ends in a newline. */
static int check_bytes(const char *note, size_t len, char *why, size_t cap)
{
    const unsigned char *p = (const unsigned char *)note;
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < len;) {
        if (p[i] == '\n') {
            line++;
            col = 1;
            i++;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7f)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u column %u: control character 0x%02x (%s)", line, col, p[i],
                         p[i] == '\r' ? "notes end lines with LF only" : "not allowed in a note");
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u column %u: invalid UTF-8 byte 0x%02x", line, col, p[i]);
        i += k;
        col++;
    }
    if (p[len - 1] != '\n')
        return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                     "the note does not end with a newline (truncated?)");
    return 0;
}

/* Standard padded base64 of exactly what it decodes to (re-encoding gives the
 * same characters). 0 with *out_len, or -1. */
static int b64_decode_canonical(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    const char *end;
    size_t bl;
    if (n == 0 || n % 4 != 0)
        return -1;
    if (sodium_base642bin(out, cap, s, n, NULL, &bl, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + n)
        return -1;
    char again[CHECKPOINT_NOTE_MAX + 4];
    if (sodium_base64_ENCODED_LEN(bl, sodium_base64_VARIANT_ORIGINAL) > sizeof again)
        return -1;
    sodium_bin2base64(again, sizeof again, out, bl, sodium_base64_VARIANT_ORIGINAL);
    if (strlen(again) != n || memcmp(again, s, n) != 0)
        return -1;
    *out_len = bl;
    return 0;
}

static int parse_body(const char *text, size_t tlen, struct checkpoint *c, char *why, size_t cap)
{
    memset(c, 0, sizeof *c);
    const char *p = text, *end = text + tlen;
    unsigned line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p);   /* the text ends in a newline: nl is never NULL */
        line++;
        if (n == 0)
            return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                         "line %u is empty: checkpoint lines may not be empty", line);
        if (line == 1) {
            if (n > CHECKPOINT_ORIGIN_MAX)
                return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                             "line 1: the origin is %zu bytes, more than %d", n,
                             CHECKPOINT_ORIGIN_MAX);
            memcpy(c->origin, p, n);
            c->origin[n] = '\0';
        } else if (line == 2) {
            uint64_t v = 0;
            for (size_t i = 0; i < n; i++)
                if (p[i] < '0' || p[i] > '9')
                    return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                                 "line 2: tree size '%.*s' is not a decimal number",
                                 (int)(n < 24 ? n : 24), p);
            if (n > 20 || (n > 1 && p[0] == '0'))
                return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                             "line 2: tree size '%.*s' %s", (int)(n < 24 ? n : 24), p,
                             n > 20 ? "is too long" : "has a leading zero");
            for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned)(p[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                    return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                                 "line 2: tree size %.*s does not fit in 64 bits", (int)n, p);
                v = v * 10 + d;
            }
            c->size = v;
        } else if (line == 3) {
            uint8_t buf[48];
            size_t bl;
            if (n != ROOT_B64_CHARS || b64_decode_canonical(p, n, buf, sizeof buf, &bl) != 0 ||
                bl != 32)
                return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                             "line 3: the root hash is not 44 characters of base64 for 32 bytes");
            memcpy(c->root, buf, 32);
        }
        /* later lines: extension lines, opaque */
        p = nl + 1;
    }
    if (line < 3)
        return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_FORMAT,
                     "the checkpoint has %u line(s); it needs origin, tree size and root hash",
                     line);
    return 0;
}

/* Checks the framing of the note; with key, also its signatures. *text_len
 * gets the length of the text (with its final newline). */
static int open_note(const char *note, size_t len, const struct checkpoint_key *key,
                     size_t *text_len, char *why, size_t cap)
{
    if (!note)
        return why_fail(why, cap, LEDGER_ERR_ARG, "no note");
    if (len == 0)
        return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT, "the note is empty");
    if (len > CHECKPOINT_NOTE_MAX)
        return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT, "the note is %zu bytes, more than %d",
                     len, CHECKPOINT_NOTE_MAX);
    int rc = check_bytes(note, len, why, cap);
    if (rc)
        return rc;
    /* the text ends at the last blank line */
    size_t sep = SIZE_MAX;
    for (size_t i = len - 1; i > 0; i--) {
        if (note[i] == '\n' && note[i - 1] == '\n') {
            sep = i;
            break;
        }
    }
    if (sep == SIZE_MAX || sep < 1)
        return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                     "no blank line separates the text from the signature lines");
    const size_t tlen = sep;       /* text, with its final newline */
    if (tlen == 1)
        return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT, "the note text is empty");
    if (sep + 1 >= len)
        return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT, "the note has no signature line");

    unsigned text_lines = 0;
    for (size_t i = 0; i < tlen; i++)
        text_lines += note[i] == '\n';
    int found = 0;
    unsigned n_sigs = 0, line = text_lines + 1;
    const char *p = note + sep + 1, *end = note + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p);
        line++;
        if (++n_sigs > NOTE_SIGS_MAX)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT, "more than %d signature lines",
                         NOTE_SIGS_MAX);
        const size_t pre = sizeof EM_DASH_SPACE - 1;
        if (n < pre || memcmp(p, EM_DASH_SPACE, pre) != 0)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u: a signature line starts with an em dash (U+2014) and a space",
                         line);
        const char *name = p + pre;
        const char *sp = memchr(name, ' ', (size_t)(nl - name));
        if (!sp || sp == name)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u: expected '— <key name> <base64 signature>'", line);
        size_t name_len = (size_t)(sp - name);
        if (memchr(name, '+', name_len))
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u: the key name contains '+'", line);
        const char *b64 = sp + 1;
        size_t b64_len = (size_t)(nl - b64);
        uint8_t blob[CHECKPOINT_NOTE_MAX];
        size_t bl;
        if (memchr(b64, ' ', b64_len) ||
            b64_decode_canonical(b64, b64_len, blob, sizeof blob, &bl) != 0)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u: the signature is not canonical base64", line);
        if (bl < 5)
            return why_fail(why, cap, LEDGER_ERR_NOTE_FORMAT,
                         "line %u: the signature has %zu bytes; it needs a 4-byte key ID and "
                         "a signature", line, bl);
        uint32_t id = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
                      (uint32_t)blob[2] << 8 | blob[3];
        if (key && id == key->id && name_len == strlen(key->name) &&
            memcmp(name, key->name, name_len) == 0) {
            if (bl != 4 + 64 ||
                crypto_signature_verify(key->public_key, note, tlen, blob + 4) != 0)
                return why_fail(why, cap, LEDGER_ERR_NOTE_SIGNATURE,
                             "line %u: the signature by %s (key ID %08x) does not verify: "
                             "the checkpoint was altered or not signed by that key", line,
                             key->name, (unsigned)id);
            found = 1;
        }
        p = nl + 1;
    }
    if (key && !found)
        return why_fail(why, cap, LEDGER_ERR_NOTE_UNSIGNED,
                     "no signature by %s (key ID %08x) among the note's %u signature "
                     "line(s): signed by another key?", key->name, (unsigned)key->id, n_sigs);
    *text_len = tlen;
    return 0;
}

int checkpoint_note_open(const char *note, size_t len, const struct checkpoint_key *key,
                         size_t *text_len, char *why, size_t why_cap)
{
    size_t tl;
    if (!key)
        return why_fail(why, why_cap, LEDGER_ERR_ARG, "no key to verify with");
    int rc = open_note(note, len, key, &tl, why, why_cap);
    if (rc == 0 && text_len)
        *text_len = tl;
    return rc;
}

/* Parses the note; with key, also verifies. */
static int parse_note(const char *note, size_t len, const struct checkpoint_key *key,
                      struct checkpoint *out, char *why, size_t cap)
{
    size_t tlen;
    if (!out)
        return why_fail(why, cap, LEDGER_ERR_ARG, "no checkpoint to fill");
    int rc = open_note(note, len, key, &tlen, why, cap);
    if (rc)
        return rc;
    struct checkpoint c;
    if ((rc = parse_body(note, tlen, &c, why, cap)) != 0)
        return rc;
    if (key) {
        if (strcmp(c.origin, key->name) != 0)
            return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_MISMATCH,
                         "the checkpoint is of log '%s', not the expected '%s'", c.origin,
                         key->name);
    }
    *out = c;
    return 0;
}

int checkpoint_verify(const char *note, size_t len, const struct checkpoint_key *key,
                      struct checkpoint *out, char *why, size_t why_cap)
{
    if (!key)
        return why_fail(why, why_cap, LEDGER_ERR_ARG, "no key to verify with");
    return parse_note(note, len, key, out, why, why_cap);
}

int checkpoint_parse(const char *note, size_t len, struct checkpoint *out,
                     char *why, size_t why_cap)
{
    return parse_note(note, len, NULL, out, why, why_cap);
}

int checkpoint_check_extension(const struct checkpoint *a, const struct checkpoint *b,
                               const uint8_t (*proof)[32], size_t proof_len,
                               char *why, size_t cap)
{
    if (!a || !b)
        return why_fail(why, cap, LEDGER_ERR_ARG, "no checkpoint");
    if (strcmp(a->origin, b->origin) != 0)
        return why_fail(why, cap, LEDGER_ERR_CHECKPOINT_MISMATCH,
                     "the checkpoints are of different logs ('%s' and '%s')", a->origin,
                     b->origin);
    const char *detail = NULL;
    if (b->size < a->size)
        detail = "it is smaller: entries were removed";
    else if (b->size == a->size && !crypto_equal(a->root, b->root, 32))
        detail = "same size, different root";
    else if (b->size > a->size &&
             merkle_verify_consistency(a->size, b->size, a->root, b->root, proof, proof_len) != 0)
        detail = "the consistency proof between them does not verify";
    if (detail)
        return why_fail(why, cap, LEDGER_ERR_REWRITTEN,
                     "ledger at size %" PRIu64 " is not an extension of the one seen at "
                     "size %" PRIu64 ": history was rewritten (%s)", b->size, a->size, detail);
    return 0;
}
