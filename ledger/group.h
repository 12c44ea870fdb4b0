#ifndef AULAC_LEDGER_GROUP_H
#define AULAC_LEDGER_GROUP_H
/* Group commit: many threads append, one committer makes their entries durable
 * together. Each ledger_group_append() call blocks until its entry is committed
 * (fsync'd, with the checkpoint of that commit when the ledger has a signer);
 * entries that arrive while a commit is running all go into the next one, so N
 * concurrent appenders share one LMDB commit instead of paying N fsyncs.
 *
 * For appends that carry no state of their own. A caller whose state change must
 * commit with its entry uses its own write transaction (ledger.h) instead.
 *
 * Errors: ledger/errors.h. An error of a commit is returned to every appender
 * whose entry was in it (none of those entries was written). */
#include <stddef.h>
#include <stdint.h>

#include "ledger/ledger.h"

#define LEDGER_GROUP_MAX_BATCH 4096   /* entries per commit at most */

struct ledger_group;

/* Starts the committer thread. LEDGER_ERR_ARG, LEDGER_ERR_READ_ONLY,
 * LEDGER_ERR_NOMEM. The ledger must outlive the group. */
int ledger_group_open(struct ledger *l, struct ledger_group **out);

/* Appends a copy-free reference to entry (it must stay valid until the call
 * returns) and waits until it is durable; *index (may be NULL) gets its leaf
 * index. Errors of ledger_append, or LEDGER_ERR_ARG after ledger_group_close began. */
int ledger_group_append(struct ledger_group *g, const uint8_t *entry, size_t len,
                        uint64_t *index);

/* Commits what is pending, stops the thread and frees g. No append may be
 * running or start afterwards. NULL is fine. */
void ledger_group_close(struct ledger_group *g);

/* Commits made so far (for measurements). */
uint64_t ledger_group_commits(const struct ledger_group *g);

#endif
