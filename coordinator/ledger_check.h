#ifndef AULAC_COORDINATOR_LEDGER_CHECK_H
#define AULAC_COORDINATOR_LEDGER_CHECK_H
/* The ledger's periodic self-check, shown by the HTTP API (/api/v1/ledger "verify"): a
 * thread of its own runs ledger_audit (every leaf and subtree hash recomputed, every
 * stored checkpoint checked against the coordinator's key) at start and then every
 * interval. It never takes c->mu: the audit reads its own LMDB snapshot, so rounds go on
 * while it runs. Its result is kept under the checker's own mutex. */
#include <stdint.h>

#include "coordinator/coord.h"

#define LEDGER_CHECK_INTERVAL_MS (5 * 60 * 1000)

enum ledger_check_state { LEDGER_CHECK_PENDING = 0, LEDGER_CHECK_OK = 1, LEDGER_CHECK_FAILED = 2 };

struct ledger_check_result {
    enum ledger_check_state state;  /* PENDING: no audit finished yet */
    int running;                    /* 1 while an audit runs */
    int64_t checked_ms;             /* unix ms the last audit finished (0: none) */
    double seconds;                 /* how long it took */
    uint64_t size;                  /* entries it verified */
    uint8_t root[32];               /* their root */
    uint64_t checkpoints;           /* checkpoints it verified */
    uint64_t runs;                  /* audits finished since the start */
    char why[320];                  /* FAILED: what the audit found */
};

struct ledger_check;

/* Starts the thread (c->ledger open, c->key set); first audit at once. interval_ms <= 0:
 * LEDGER_CHECK_INTERVAL_MS. 0, COORD_ERR_NOMEM or COORD_ERR_CONFIG (the alliance cannot
 * name a ledger origin: not reached once coord_open succeeded). */
int  ledger_check_start(struct coord *c, int64_t interval_ms, struct ledger_check **out);
/* Wakes the thread for an audit now (tests, and an operator's refresh). */
void ledger_check_kick(struct ledger_check *k);
/* A copy of the latest result; a NULL checker gives PENDING. */
void ledger_check_get(struct ledger_check *k, struct ledger_check_result *out);
/* Stops the thread (waits for a running audit to end) and frees k; NULL is fine. */
void ledger_check_stop(struct ledger_check *k);

#endif
