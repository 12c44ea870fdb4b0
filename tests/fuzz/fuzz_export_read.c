/* libFuzzer target: ledger/export_read.h on a hostile entries.jsonl. Every input must
 * either open or fail with a ledger error and a reason; an opened export must give back
 * every entry (bytes that hash to the leaf hash its line names) and audit without
 * crashing, whatever it says.
 *
 *   scripts/fuzz.sh builds it with ledger/, crypto/ and common/ sources and -llmdb. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger/errors.h"
#include "ledger/export_read.h"

static char path[64];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz-export-%d.jsonl", (int)getpid());
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    struct export_reader *r = NULL;
    char why[600] = "";
    int rc = export_open(path, &r, why, sizeof why);
    if (rc != 0) {
        if (r || !why[0] || (rc != LEDGER_ERR_CORRUPT && rc != LEDGER_ERR_IO &&
                             rc != LEDGER_ERR_NOMEM))
            abort();
        return 0;
    }
    for (uint64_t i = 0; i < export_size(r); i++) {
        uint8_t *bytes;
        size_t len;
        if (export_entry(r, i, &bytes, &len, why, sizeof why) != 0 || len == 0)
            abort();   /* the file did not change: what opened reads back */
        free(bytes);
    }
    for (size_t i = 0; i < export_checkpoint_count(r); i++)
        if (!export_checkpoint(r, i, NULL))
            abort();
    struct export_audit a;
    why[0] = 0;
    if (export_audit(r, &a, why, sizeof why) != 0 && !why[0])
        abort();
    export_close(r);
    return 0;
}
