#ifndef AULAC_AGGREGATE_OUTER_H
#define AULAC_AGGREGATE_OUTER_H
#include <stddef.h>
#include <stdint.h>

/* The outer optimizer: applies a round's aggregated pseudo-gradient
 * delta = theta_base - mean(theta_local) to the global parameters.
 *   fedavg    theta -= lr * delta                      (lr 1: plain model averaging)
 *   nesterov  m = mu*m + delta; theta -= lr * (delta + mu*m)   (DiLoCo: lr 0.7, mu 0.9)
 *   fedadam   m = b1*m + (1-b1)*delta; v = b2*v + (1-b2)*delta^2;
 *             theta -= lr * m / (sqrt(v) + tau)        (Reddi et al. 2021, no bias correction)
 * The state (m, v, step) is part of the coordinator's checkpoint. */

enum outer_kind { OUTER_FEDAVG = 0, OUTER_NESTEROV = 1, OUTER_FEDADAM = 2 };

#define OUTER_ERR_NOMEM   (-1650)
#define OUTER_ERR_FORMAT  (-1651)
#define OUTER_ERR_SIZE    (-1652)

/* Elements per chunk of outer_step (16 MiB of floats): the step runs over the state in
 * chunks of this many values, in index order, calling release after each. */
#define OUTER_CHUNK ((size_t)1 << 22)

struct outer_opt {
    enum outer_kind kind;
    float lr, momentum, beta1, beta2, tau;
    size_t n;
    uint64_t step;
    float *m;   /* n floats for nesterov and fedadam, NULL for fedavg */
    float *v;   /* n floats for fedadam, else NULL */
    /* Optional (NULL: none): called by outer_step after it has read and written the
     * state values [lo, hi) of m and v, so a caller whose m and v are file mappings can
     * write those pages back and drop them (the coordinator: coordinator/models.c). The
     * arithmetic is elementwise, so chunking changes no bit of the result. */
    void (*release)(void *arg, size_t lo, size_t hi);
    void *release_arg;
};

int  outer_init(struct outer_opt *o, enum outer_kind kind, size_t n, float lr, float momentum);
void outer_free(struct outer_opt *o);
void outer_step(struct outer_opt *o, float *params, const float *delta);

/* A round's average update, in place: acc holds sum(weight * decoded update). Without
 * support, acc *= scale / weight_sum; with it (policy average: senders: support[i] is the
 * weight of the updates that carried value i), acc[i] *= scale / support[i], and 0 where
 * no update carried i. scale is the policy's sparse_scale in sparse rounds, else 1. */
void outer_average(float *acc, const float *support, size_t n, double weight_sum,
                   float scale);
const char *outer_kind_name(enum outer_kind kind);

/* Bytes of the state record's header, and of its whole record for o's kind and n. */
#define OUTER_STATE_HEADER 28
size_t outer_state_bytes(const struct outer_opt *o);
/* The record's header for o (kind, n, step) into hdr[OUTER_STATE_HEADER]; and a header
 * checked against o (magic, version, kind, n): *step from it; OUTER_ERR_FORMAT or
 * OUTER_ERR_SIZE. The m and v vectors follow the header in the record. */
void outer_state_header(const struct outer_opt *o, uint8_t hdr[OUTER_STATE_HEADER]);
int  outer_state_header_check(const struct outer_opt *o, const uint8_t *hdr, size_t len,
                              uint64_t *step);

/* State as bytes: "AUOS" u32 version, u32 kind, u64 n, u64 step, then m and v (LE fp32).
 * outer_state_decode checks the kind and n against o and every length. */
int outer_state_encode(const struct outer_opt *o, uint8_t **out, size_t *len);
int outer_state_decode(struct outer_opt *o, const uint8_t *buf, size_t len);

#endif
