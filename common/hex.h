#ifndef AULAC_COMMON_HEX_H
#define AULAC_COMMON_HEX_H
#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Parses exactly 2*len hex digits; returns 0, or -1 on a bad digit or length. */
int  hex_decode(const char *in, uint8_t *out, size_t len);

#endif
