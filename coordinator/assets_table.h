#ifndef AULAC_COORDINATOR_ASSETS_TABLE_H
#define AULAC_COORDINATOR_ASSETS_TABLE_H
/* The dashboard's files compiled into the coordinator: $(BUILD)/gen/assets_data.c, which
 * scripts/embed-assets.sh writes from the files in coordinator/assets/ at build time. Internal to
 * coordinator/assets.c (and its test). */
#include <stddef.h>

struct asset_file {
    const char *name;                /* file name under coordinator/assets/ ("app.js") */
    const unsigned char *data;       /* len bytes, then a NUL not counted in len */
    size_t len;
    const char *etag;                /* "\"<32 hex of SHA-256>\"", quotes included */
};

/* Ends with an entry whose name is NULL. */
extern const struct asset_file assets_table[];

#endif
