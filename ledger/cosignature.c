/* C2SP cosignature/v1 (Ed25519) over checkpoint notes: signing, and verifying the
 * cosignature lines of untrusted notes. The note's framing is checked by
 * checkpoint.c before any line is looked at here. */
#include "ledger/cosignature.h"
#include "common/why.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "crypto/digest.h"

#define EM_DASH_SPACE "\xe2\x80\x94 "

uint32_t cosignature_key_id(const char *name, const uint8_t public_key[32])
{
    return checkpoint_typed_key_id(name, COSIGNATURE_TYPE, public_key);
}

int cosigner_init(struct cosigner *k, const char *origin, const char *member,
                  const uint8_t public_key[32])
{
    if (!k || !public_key || !checkpoint_name_valid(origin) || !crypto_id_valid(member))
        return LEDGER_ERR_ARG;
    memset(k, 0, sizeof *k);
    snprintf(k->member, sizeof k->member, "%s", member);
    snprintf(k->name, sizeof k->name, "%s" COSIGNATURE_NAME_INFIX "%s", origin, member);
    memcpy(k->public_key, public_key, 32);
    k->id = cosignature_key_id(k->name, public_key);
    return 0;
}

int cosignature_message(const char *text, size_t text_len, uint64_t timestamp, char *out,
                        size_t cap, size_t *len)
{
    if (!text || !out || text_len == 0 || text[text_len - 1] != '\n' ||
        timestamp > (uint64_t)COSIGNATURE_TIME_MAX)
        return LEDGER_ERR_ARG;
    int n = snprintf(out, cap, COSIGNATURE_HEADER "time %" PRIu64 "\n", timestamp);
    if (n < 0 || (size_t)n >= cap || text_len > cap - (size_t)n)
        return LEDGER_ERR_ARG;
    memcpy(out + n, text, text_len);
    *len = (size_t)n + text_len;
    return 0;
}

/* Length of the text of a note whose framing is valid: up to its last blank line. */
static size_t text_length(const char *note, size_t len)
{
    for (size_t i = len - 1; i > 0; i--)
        if (note[i] == '\n' && note[i - 1] == '\n')
            return i;
    return 0;
}

int cosignature_add(const char *note, size_t len, const char *origin, const char *member,
                    const struct crypto_key *key, uint64_t timestamp, char *out, size_t cap,
                    size_t *out_len)
{
    struct checkpoint c;
    if (!note || !key || !out)
        return LEDGER_ERR_ARG;
    int rc = checkpoint_parse(note, len, &c, NULL, 0);
    if (rc != 0)
        return rc;
    struct crypto_public_key pub;
    struct cosigner k;
    crypto_key_public(key, &pub);
    if ((rc = cosigner_init(&k, origin, member, pub.key)) != 0)
        return rc;
    size_t tlen = text_length(note, len), mlen;
    char msg[CHECKPOINT_NOTE_MAX + 64];
    if ((rc = cosignature_message(note, tlen, timestamp, msg, sizeof msg, &mlen)) != 0)
        return rc;
    uint8_t blob[COSIGNATURE_BLOB_BYTES];
    for (int i = 0; i < 4; i++)
        blob[i] = (uint8_t)(k.id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        blob[4 + i] = (uint8_t)(timestamp >> (56 - 8 * i));
    if (crypto_signature_create(key, msg, mlen, blob + 12) != 0)
        return LEDGER_ERR_ARG;
    char b64[sodium_base64_ENCODED_LEN(sizeof blob, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);
    if (len >= cap)
        return LEDGER_ERR_ARG;
    if (out != note)
        memmove(out, note, len);
    int n = snprintf(out + len, cap - len, EM_DASH_SPACE "%s %s\n", k.name, b64);
    if (n < 0 || (size_t)n >= cap - len) {
        out[0] = '\0';
        return LEDGER_ERR_ARG;
    }
    if (out_len)
        *out_len = len + (size_t)n;
    return 0;
}

/* The key ID of a signature line "— name base64" whose framing is valid (0 when the
 * base64 holds fewer than 4 bytes); *name / *name_len the name. */
static uint32_t line_key_id(const char *p, const char *nl, const char **name, size_t *name_len)
{
    *name = p + sizeof EM_DASH_SPACE - 1;
    const char *sp = memchr(*name, ' ', (size_t)(nl - *name));
    *name_len = (size_t)(sp - *name);
    uint8_t blob[8];
    char b64[8];
    size_t bl = 0;
    if (nl - (sp + 1) < 8)
        return 0;
    memcpy(b64, sp + 1, 8);    /* the first 8 characters hold the first 6 bytes */
    if (sodium_base642bin(blob, sizeof blob, b64, 8, NULL, &bl, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || bl < 4)
        return 0;
    return (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
}

int cosignature_base_note(const char *note, size_t len, const struct checkpoint_key *log,
                          char *out, size_t cap, size_t *out_len)
{
    if (!note || !log || !out || len == 0)
        return LEDGER_ERR_ARG;
    size_t tlen = text_length(note, len), n = tlen + 1, keep = strlen(log->name);
    if (tlen == 0 || n >= cap)
        return LEDGER_ERR_ARG;
    memmove(out, note, n);
    for (const char *p = note + tlen + 1, *end = note + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *name;
        size_t name_len, line = (size_t)(nl - p) + 1;
        if (line_key_id(p, nl, &name, &name_len) == log->id && name_len == keep &&
            memcmp(name, log->name, keep) == 0) {
            if (n + line >= cap)
                return LEDGER_ERR_ARG;
            memmove(out + n, p, line);
            n += line;
        }
        p = nl + 1;
    }
    out[n] = '\0';
    *out_len = n;
    return 0;
}

size_t cosignature_count_lines(const char *note, size_t len)
{
    size_t tlen = len ? text_length(note, len) : 0, n = 0;
    if (tlen == 0)
        return 0;
    for (size_t i = tlen + 1; i < len; i++)
        n += note[i] == '\n';
    return n;
}

int cosignature_verify(const char *note, size_t len, const struct checkpoint_key *log,
                       const struct cosigner *k, struct checkpoint *out, uint64_t *timestamp,
                       char *why, size_t cap)
{
    if (!note || !log || !k)
        return why_fail(why, cap, LEDGER_ERR_ARG, "no note or key");
    struct checkpoint c;
    int rc = checkpoint_verify(note, len, log, &c, why, cap);
    if (rc != 0)
        return rc;
    /* the framing is valid: text, blank line, '— name base64' lines */
    const size_t tlen = text_length(note, len);
    char msg[CHECKPOINT_NOTE_MAX + 64];
    const size_t name_len = strlen(k->name), pre = sizeof EM_DASH_SPACE - 1;
    int found = 0;
    uint64_t latest = 0;
    unsigned line = 0;
    for (size_t i = 0; i < tlen; i++)
        line += note[i] == '\n';
    line++;
    for (const char *p = note + tlen + 1, *end = note + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *name = p + pre, *sp = memchr(name, ' ', (size_t)(nl - name));
        line++;
        const char *b64 = sp + 1;
        uint8_t blob[COSIGNATURE_BLOB_BYTES + 1];
        size_t bl = 0;
        if ((size_t)(sp - name) == name_len && memcmp(name, k->name, name_len) == 0 &&
            sodium_base642bin(blob, sizeof blob, b64, (size_t)(nl - b64), NULL, &bl, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0 &&
            bl >= 4 && ((uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
                        (uint32_t)blob[2] << 8 | blob[3]) == k->id) {
            uint64_t t = 0;
            for (int i = 0; i < 8 && bl == COSIGNATURE_BLOB_BYTES; i++)
                t = t << 8 | blob[4 + i];
            size_t mlen;
            if (bl != COSIGNATURE_BLOB_BYTES ||
                cosignature_message(note, tlen, t, msg, sizeof msg, &mlen) != 0 ||
                crypto_signature_verify(k->public_key, msg, mlen, blob + 12) != 0)
                return why_fail(why, cap, LEDGER_ERR_NOTE_SIGNATURE,
                             "line %u: the cosignature by %s (key ID %08x) does not verify: the "
                             "checkpoint or its time was altered, or another key signed it",
                             line, k->member, (unsigned)k->id);
            found = 1;
            if (t > latest)
                latest = t;
        }
        p = nl + 1;
    }
    if (!found)
        return why_fail(why, cap, LEDGER_ERR_NOTE_UNSIGNED,
                     "no cosignature by %s (%s, key ID %08x) on the checkpoint of size %" PRIu64,
                     k->member, k->name, (unsigned)k->id, c.size);
    if (out)
        *out = c;
    if (timestamp)
        *timestamp = latest;
    return 0;
}
