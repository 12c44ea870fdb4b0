#ifndef AULAC_COMMON_BYTES_H
#define AULAC_COMMON_BYTES_H
/* Bounds-checked big-endian byte writer and reader for small binary records
 * (the coordinator's LMDB state records). A reader that runs past its end sets
 * failed and returns zeros, so a caller checks once at the end. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct bytes_writer {
    uint8_t *buf;      /* malloc'd, grown as needed; owned by the caller after use */
    size_t len, cap;
    int failed;        /* out of memory */
};

void bw_u8(struct bytes_writer *w, uint8_t v);
void bw_u32(struct bytes_writer *w, uint32_t v);
void bw_u64(struct bytes_writer *w, uint64_t v);
void bw_f32(struct bytes_writer *w, float v);
void bw_f64(struct bytes_writer *w, double v);
void bw_raw(struct bytes_writer *w, const void *p, size_t n);
void bw_str(struct bytes_writer *w, const char *s);     /* u16 length + bytes */

struct bytes_reader {
    const uint8_t *p;
    size_t left;
    int failed;
};

uint8_t  br_u8(struct bytes_reader *r);
uint32_t br_u32(struct bytes_reader *r);
uint64_t br_u64(struct bytes_reader *r);
float    br_f32(struct bytes_reader *r);
double   br_f64(struct bytes_reader *r);
const uint8_t *br_raw(struct bytes_reader *r, size_t n);   /* NULL when short */
/* Copies a u16-length string into out (cap bytes incl. NUL); fails when it does not fit. */
void     br_str(struct bytes_reader *r, char *out, size_t cap);

static inline void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

#endif
