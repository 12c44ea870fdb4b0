#ifndef AULAC_WORKER_ARTIFACTS_H
#define AULAC_WORKER_ARTIFACTS_H
/* The pinned files of the worker's experiment (policy model.init/config/tokenizer),
 * fetched from the coordinator (GetArtifact) into <state dir>/artifacts/<64 hex>:
 *
 *   - a download goes to <hex>.part and resumes from its size after an interruption
 *     (a worker restart included);
 *   - the complete file is hashed (BLAKE2b-256) and renamed to <hex> only when it is
 *     the pinned hash; a .part that does not hash right is deleted and fetched again;
 *   - a file already at <hex> is hashed again before it is used (and fetched again when
 *     it does not match), so files are reused across restarts and experiments but never
 *     trusted.
 *
 * worker_artifact_resolver is a policy_file_resolver (policies/model_source.h) with
 * ctx = struct worker *. */
#include <stddef.h>

#include "policies/model_source.h"
#include "worker/worker.h"

int worker_artifact_resolver(void *ctx, const char *key, const struct policy_file *f,
                             char *path, size_t cap, char *why, size_t why_cap);

#endif
