/* libFuzzer target: signed checkpoint notes (ledger/checkpoint.h) on hostile bytes.
 * checkpoint_parse and checkpoint_verify must accept or refuse every input with a
 * ledger error and a reason; a note that parses re-formats to text that parses to the
 * same checkpoint; nothing verifies unless signed by the test key (whose signature
 * the fuzzer cannot forge: a verified note must contain a valid signature line).
 *
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_checkpoint_note.c \
 *         ledger/checkpoint.c ledger/merkle.c ledger/errors.c crypto/digest.c \
 *         crypto/keys.c common/fileio.c common/log.c -lsodium \
 *         -o fuzz_checkpoint_note                                (scripts/fuzz.sh does this) */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/checkpoint.h"

static struct checkpoint_key key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    struct crypto_key *k;
    if (sodium_init() < 0 || crypto_key_from_seed("coordinator", seed, &k) != 0)
        abort();
    struct crypto_public_key pub;
    crypto_key_public(k, &pub);
    if (checkpoint_key_init(&key, "aulac/au-lac-demo", pub.key) != 0)
        abort();
    crypto_key_free(k);
    return 0;
}

static void check_refusal(int rc, const char *why)
{
    if (rc > LEDGER_ERR_ARG || rc < -1199 || why[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *note = (const char *)data;
    struct checkpoint c, v;
    char why[400] = "";
    int rc = checkpoint_parse(note, size, &c, why, sizeof why);
    if (rc) {
        check_refusal(rc, why);
    } else {
        char text[CHECKPOINT_SIGNED_MAX];
        size_t len;
        if (checkpoint_name_valid(c.origin) &&
            checkpoint_format(&c, text, sizeof text, &len) == 0) {
            /* the canonical text of what was parsed, as an (unsigned) body */
            static const char sig[] = "\n\xe2\x80\x94 x AAAAAAA=\n";
            struct checkpoint again;
            memcpy(text + len, sig, sizeof sig - 1);
            if (checkpoint_parse(text, len + sizeof sig - 1, &again, NULL, 0) != 0 ||
                again.size != c.size || memcmp(again.root, c.root, 32) != 0 ||
                strcmp(again.origin, c.origin) != 0)
                abort();
        }
    }
    why[0] = '\0';
    rc = checkpoint_verify(note, size, &key, &v, why, sizeof why);
    if (rc)
        check_refusal(rc, why);
    else if (strcmp(v.origin, key.name) != 0)
        abort();
    size_t text_len = 0;
    why[0] = '\0';
    rc = checkpoint_note_open(note, size, &key, &text_len, why, sizeof why);
    if (rc)
        check_refusal(rc, why);
    else if (text_len == 0 || text_len >= size)
        abort();
    return 0;
}
