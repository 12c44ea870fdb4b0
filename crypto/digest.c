#include "crypto/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "crypto/key_private.h"

const char *crypto_strerror(int rc)
{
    switch (rc) {
    case CRYPTO_OK:                return "ok";
    case CRYPTO_ERR_ARG:           return "invalid argument";
    case CRYPTO_ERR_INIT:          return "libsodium initialization failed";
    case CRYPTO_ERR_NOMEM:         return "out of memory";
    case CRYPTO_ERR_BAD_SIGNATURE: return "signature does not verify";
    case CRYPTO_ERR_BAD_ID:        return "invalid id (want 1-64 characters of a-z 0-9 . _ -)";
    case CRYPTO_ERR_IO:            return "key file could not be read or written";
    case CRYPTO_ERR_KEY_PERMS:     return "secret key file is readable by group or others (chmod 600 it)";
    case CRYPTO_ERR_KEY_FORMAT:    return "malformed key file";
    case CRYPTO_ERR_KEY_EXISTS:    return "secret key file already exists (refusing to overwrite)";
    case CRYPTO_ERR_KEY_MISMATCH:  return "key does not belong to the claimed member or key id";
    case CRYPTO_ERR_BAD_KEY:       return "not a valid Ed25519 public key";
    case CRYPTO_ERR_BUFFER:        return "buffer too small";
    case CRYPTO_ERR_MALFORMED:     return "malformed statement (truncated, oversized or bad field)";
    case CRYPTO_ERR_EXPIRED:       return "statement expired (or valid for longer than allowed)";
    case CRYPTO_ERR_REPLAYED:      return "statement replayed (nonce seen before)";
    default:                       return "unknown crypto error";
    }
}

int crypto_init(void)
{
    return sodium_init() < 0 ? CRYPTO_ERR_INIT : 0;
}

static int domain_valid(const char *domain)
{
    if (!domain)
        return 0;
    size_t n = strnlen(domain, CRYPTO_DOMAIN_MAX + 1);
    return n >= 1 && n <= CRYPTO_DOMAIN_MAX;
}

int crypto_digest_init(struct crypto_digest_state *s, const char *domain)
{
    if (!s || !domain_valid(domain))
        return CRYPTO_ERR_ARG;
    crypto_generichash_blake2b_init(&s->st, NULL, 0, CRYPTO_DIGEST_BYTES);
    /* the terminating NUL is part of the hashed bytes: "a"+"bc" != "ab"+"c" */
    crypto_generichash_blake2b_update(&s->st, (const uint8_t *)domain, strlen(domain) + 1);
    return 0;
}

void crypto_digest_update(struct crypto_digest_state *s, const void *data, size_t len)
{
    if (len)
        crypto_generichash_blake2b_update(&s->st, data, len);
}

void crypto_digest_final(struct crypto_digest_state *s, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    crypto_generichash_blake2b_final(&s->st, out, CRYPTO_DIGEST_BYTES);
    sodium_memzero(s, sizeof *s);
}

int crypto_digest(const char *domain, const void *data, size_t len,
                  uint8_t out[CRYPTO_DIGEST_BYTES])
{
    struct crypto_digest_state s;
    int rc = crypto_digest_init(&s, domain);
    if (rc)
        return rc;
    crypto_digest_update(&s, data, len);
    crypto_digest_final(&s, out);
    return 0;
}

void crypto_blake2b256(const void *data, size_t len, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    crypto_generichash_blake2b(out, CRYPTO_DIGEST_BYTES, data, len, NULL, 0);
}

#define FILE_HASH_BUF (1u << 20)

int crypto_blake2b256_fd(int fd, uint64_t size, uint8_t out[CRYPTO_DIGEST_BYTES],
                         crypto_progress_fn progress, void *ctx)
{
    crypto_generichash_blake2b_state h;
    crypto_generichash_blake2b_init(&h, NULL, 0, CRYPTO_DIGEST_BYTES);
    uint8_t *buf = malloc(FILE_HASH_BUF);
    if (!buf)
        return -ENOMEM;
    uint64_t off = 0;
    while (off < size) {
        size_t want = size - off < FILE_HASH_BUF ? (size_t)(size - off) : FILE_HASH_BUF;
        int e = file_pread_all(fd, buf, want, off);
        if (e != 0) {
            free(buf);
            return e == -ENODATA ? -EIO : e;   /* the file ends before size bytes */
        }
        crypto_generichash_blake2b_update(&h, buf, want);
        off += want;
        if (progress)
            progress(ctx, off);
    }
    free(buf);
    crypto_generichash_blake2b_final(&h, out, CRYPTO_DIGEST_BYTES);
    return 0;
}

int crypto_blake2b256_file(const char *path, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? -errno
                                 : crypto_blake2b256_fd(fd, (uint64_t)st.st_size, out, NULL, NULL);
    close(fd);
    return rc;
}

int crypto_signature_create(const struct crypto_key *k, const void *msg, size_t len,
                            uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!k || !k->secret || (!msg && len) || !sig)
        return CRYPTO_ERR_ARG;
    crypto_sign_ed25519_detached(sig, NULL, msg, len, k->secret);
    return 0;
}

int crypto_signature_verify(const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                            const void *msg, size_t len,
                            const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!public_key || (!msg && len) || !sig)
        return CRYPTO_ERR_ARG;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    return crypto_sign_ed25519_verify_detached(sig, msg, len, public_key) == 0
               ? 0 : CRYPTO_ERR_BAD_SIGNATURE;
}

int crypto_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

int crypto_id_valid(const char *id)
{
    if (!id)
        return 0;
    size_t n = strnlen(id, CRYPTO_ID_MAX + 1);
    if (n == 0 || n > CRYPTO_ID_MAX)
        return 0;
    /* a leading '.' or '-' would make ids like ".." or "-rf" reach paths and argv */
    if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}
