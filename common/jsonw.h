#ifndef AULAC_COMMON_JSONW_H
#define AULAC_COMMON_JSONW_H
/* A JSON text written into a growing buffer: the one JSON writer the coordinator's API
 * and `aulac status --json` share. Strings are escaped (", \, control bytes as \u00XX;
 * other bytes, UTF-8 included, pass as they are), so text from outside (member ids,
 * reasons) cannot break the document. A number that is not finite is written null.
 *
 * Errors stick: after an allocation failure every call is a no-op and jw_finish returns
 * NULL. The caller writes the punctuation ({, [, commas) with jw_raw. */
#include <stddef.h>
#include <stdint.h>

struct jsonw {
    char *buf;
    size_t len, cap;
    int failed;
};

void jw_init(struct jsonw *w);                  /* empty; nothing allocated yet */
void jw_raw(struct jsonw *w, const char *s);    /* s as it is */
void jw_printf(struct jsonw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jw_str(struct jsonw *w, const char *s);    /* "s" escaped; NULL: "" */
void jw_key(struct jsonw *w, const char *k);    /* "k": */
void jw_num(struct jsonw *w, double v);         /* %.17g, or null when not finite */
void jw_fixed(struct jsonw *w, double v);       /* %.6f, or null when not finite */
void jw_u64(struct jsonw *w, uint64_t v);
void jw_i64(struct jsonw *w, int64_t v);
void jw_hex(struct jsonw *w, const uint8_t *b, size_t n);   /* "hex" (lower case) */
/* The text (NUL-terminated, malloc'd: the caller frees) and its length; NULL after an
 * allocation failure (the buffer is freed either way). */
char *jw_finish(struct jsonw *w, size_t *len);
void jw_free(struct jsonw *w);

#endif
