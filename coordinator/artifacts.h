#ifndef AULAC_COORDINATOR_ARTIFACTS_H
#define AULAC_COORDINATOR_ARTIFACTS_H
/* Files that policies pin by BLAKE2b-256 (model.init, model.config, model.tokenizer),
 * held content-addressed under data_dir/artifacts/<64 hex> and served to members
 * (proto PutArtifact / GetArtifact). A file appears only complete and with the hash it
 * is named by: an upload streams into data_dir/artifacts/tmp/, is hashed as it arrives,
 * fsynced, and renamed when the hash matches (otherwise deleted and refused). An
 * experiment whose pinned files are not all held does not start; status says which are
 * missing. Once they are held the timer checks them (policies/model_source.h
 * policy_check_model_files) and an experiment whose files fail is recorded failed with
 * the reason (coordinator/lifecycle.c). The store holds only what a live proposal or
 * experiment pins (artifacts_prune).
 *
 * Errors: COORD_ERR_* (coordinator/coord.h). */
#include <stddef.h>
#include <stdint.h>

#include "coordinator/coord.h"
#include "policies/model_source.h"

/* At coord_open: creates data_dir/artifacts/tmp/ and removes what uploads cut off by a
 * crash left there. 0 or COORD_ERR_CONFIG (logged). */
int artifacts_open(struct coord *c);

/* data_dir/artifacts/<hex> when held (0), COORD_ERR_NOT_FOUND otherwise. */
int artifacts_path(const struct coord *c, const uint8_t hash[32], char *path, size_t cap);

/* policy_file_resolver over the store (ctx = struct coord *): for policy_model_layout /
 * policy_model_init at experiment start. */
int artifacts_resolver(void *ctx, const char *key, const struct policy_file *f, char *path,
                       size_t cap, char *why, size_t why_cap);

/* The pinned files of p that the store lacks, as "model.init (model.safetensors,
 * 3f2a9c41...)" joined by ", " into out; returns how many. */
int artifacts_missing(const struct coord *c, const struct policy *p, char *out, size_t cap);

/* The timer's store clean-up (with the payload retention pass, without mu): deletes
 * every held file that no open experiment proposal, queued or running experiment pins,
 * nor an experiment that ended within its contribution.payload_retention_days (like its
 * payloads, coordinator/retention.c). Nothing is deleted when the proposals or records
 * cannot be read. Returns how many files it removed. */
size_t artifacts_prune(struct coord *c, int64_t now_ms);

/* RPC handlers (registered by coordinator/service.c). Both are member RPCs
 * (auth_call_recv: only roster members upload and fetch). PutArtifact takes only a file
 * that an open experiment proposal or a queued or running experiment's policy pins
 * (else FAILED_PRECONDITION: propose first, upload after), and refuses, naming the file
 * and with nothing left behind: a hash mismatch, offsets out of order, a total_bytes
 * that changes or is overrun, a stream that ends early (INVALID_ARGUMENT), a file over
 * --max-artifact-bytes, held files plus uploads under way over
 * --max-artifact-store-bytes, or an upload that would leave under 1 GiB free on the
 * disk (RESOURCE_EXHAUSTED), a second upload of a hash while one runs (ABORTED: retry,
 * it is then already held); a held file is answered already_held at once.
 * GetArtifact serves a file only to a member that takes part (policy_takes_part) in a
 * proposed, queued, running or ended experiment pinning it (else PERMISSION_DENIED);
 * it streams [offset, offset + length) in 1 MiB chunks; NOT_FOUND names the hash (also
 * for a file no policy pins), OUT_OF_RANGE an offset past the end. */
struct rpc_call;
void artifacts_on_put(struct rpc_call *call, void *ctx);
void artifacts_on_get(struct rpc_call *call, void *ctx);

#endif
