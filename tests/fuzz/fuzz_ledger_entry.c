/* libFuzzer target: entry_decode() (ledger/entry.h) on hostile bytes. Every input must
 * either decode or fail with a ledger entry error; a decoded entry must describe and
 * print as JSON, and re-encode to bytes that decode to the same encoding again
 * (encode(decode(x)) is a fixed point: unknown fields are dropped once, then stable).
 *
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_ledger_entry.c \
 *         ledger/entry.c ledger/errors.c crypto/digest.c common/hex.c -lsodium \
 *         -o fuzz_ledger_entry                                  (scripts/fuzz.sh does this) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct entry e;
    int rc = entry_decode(data, size, &e);
    if (rc) {
        if (rc > LEDGER_ERR_ARG || rc < -1199 || !ledger_strerror(rc)[0])
            abort();
        return 0;
    }
    char line[512];
    entry_describe(&e, line, sizeof line);
    if (strlen(line) >= sizeof line)
        abort();
    char *json = entry_to_json(&e);
    if (!json || json[0] != '{' || json[strlen(json) - 1] != '}')
        abort();
    free(json);
    if (!entry_type_name(e.type))
        abort();

    uint8_t *once = NULL, *twice = NULL;
    size_t once_len = 0, twice_len = 0;
    if (entry_encode(&e, &once, &once_len) != 0)
        abort();   /* what decodes must encode */
    struct entry again;
    if (entry_decode(once, once_len, &again) != 0)
        abort();
    if (entry_encode(&again, &twice, &twice_len) != 0 || twice_len != once_len ||
        memcmp(once, twice, once_len) != 0)
        abort();
    if (again.type != e.type || again.timestamp_ms != e.timestamp_ms)
        abort();
    free(once);
    free(twice);
    entry_free(&again);
    entry_free(&e);
    return 0;
}
