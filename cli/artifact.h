#ifndef AULAC_CLI_ARTIFACT_H
#define AULAC_CLI_ARTIFACT_H
/* Pinned files (coordinator/artifacts.h) from the command line: `aulac artifact put`
 * and `get` (cli/artifact_cmd.c), and the uploads `aulac experiment propose` makes of a
 * policy's pinned files before proposing it. */
#include <stdint.h>

#include "cli/signed_client.h"

/* Hashes the file at path (plain BLAKE2b-256, as policies pin it) and uploads it with
 * PutArtifact, printing one line to stdout:
 *   "<64 hex>  <bytes> bytes  <label>: stored" (or ": already held")
 * and progress lines to stderr for files of 16 MiB or more. want (may be NULL): the hash
 * the file must have (a policy's pin), checked before anything is sent. While another
 * member uploads the same file it waits and retries (then it is already held). Returns
 * 0, or 1 with the reason printed ("aulac CMD: ..."). */
int artifact_upload_file(struct signed_client *sc, const char *cmd, const char *path,
                         const char *label, const uint8_t *want);

#endif
