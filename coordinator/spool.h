#ifndef AULAC_COORDINATOR_SPOOL_H
#define AULAC_COORDINATOR_SPOOL_H
/* Accepted payloads on disk, never whole in RAM (issue 16).
 *
 * An upload is written, as its chunks arrive, to a spool file
 * data_dir/spool/upload-<random>.part and hashed as it goes (plain BLAKE2b-256, the
 * payload_hash of the update envelope). Acceptance maps it read-only to validate it,
 * fsyncs it and renames it into the payload store
 * data_dir/experiments/<id>/payloads/<hex>.bin (the retention store of
 * coordinator/retention.c: the same names `aulac ledger export --payloads` and
 * `aulac credits verify` read), fsyncs that directory, and only then commits the
 * acceptance. A spool file is never acknowledged: the coordinator removes whatever is
 * left in data_dir/spool at start (spool_clean).
 *
 * The round close reads the stored payloads through payload_map: a read-only private
 * mapping (agg_update.mapped = 1) whose consumed pages a reader may drop.
 *
 * A struct spool belongs to the one thread that handles its upload. Errors: COORD_ERR_IO
 * (logged with the path and errno; *err gets the errno when asked), COORD_ERR_NOMEM. */
#include <stddef.h>
#include <stdint.h>

#include "coordinator/coord.h"

struct spool;

/* Creates a new spool file (O_EXCL, 0644) under data_dir/spool (made if missing). */
int spool_open(const struct coord *c, struct spool **out);
/* Appends data and hashes it. COORD_ERR_IO with *err = errno (ENOSPC: the disk is full). */
int spool_write(struct spool *s, const uint8_t *data, size_t len, int *err);
/* Bytes written so far. */
uint64_t spool_size(const struct spool *s);
/* The BLAKE2b-256 of everything written; the spool takes no more writes after it. */
void spool_hash(struct spool *s, uint8_t out[32]);
/* A read-only mapping of the whole file (valid until spool_discard; NULL for an empty
 * file). */
int spool_map(struct spool *s, const uint8_t **data);
/* Drops the mapping of spool_map (its pages leave the process). */
void spool_unmap(struct spool *s);
/* fsync of the file's data: slow for large payloads, so outside any lock. */
int spool_sync(struct spool *s);
/* Renames the (synced) file to data_dir/experiments/<experiment>/payloads/<hex of
 * hash>.bin, replacing a file of that name (the same bytes: the name is their hash), and
 * fsyncs the directory: durable when it returns 0. The spool then holds no file. */
int spool_commit(struct spool *s, const struct coord *c, const char *experiment,
                 const uint8_t hash[32]);
/* Closes, unmaps and, unless committed, removes the spool file; frees s. NULL is fine. */
void spool_discard(struct spool *s);
/* Removes every file in data_dir/spool (uploads a crash or a stop cut off: never
 * acknowledged); logs how many. Called once at start, before the service listens. */
void spool_clean(const struct coord *c);

/* data_dir/experiments/<experiment>/payloads/<hex>.bin */
void payload_path(const struct coord *c, const char *experiment, const uint8_t hash[32],
                  char *out, size_t cap);
/* A read-only MAP_PRIVATE mapping of the stored payload named hash, which must be len
 * bytes long (COORD_ERR_STATE otherwise); COORD_ERR_NOT_FOUND when the file does not
 * exist (ENOENT), COORD_ERR_IO when it cannot be opened, examined or mapped (EMFILE,
 * EACCES, EIO ...). Every failure is logged and, when why is not NULL, described in
 * why[cap] with the file's path (and strerror and errno number). *out is released with
 * payload_unmap(*out, len). */
int payload_map(const struct coord *c, const char *experiment, const uint8_t hash[32],
                size_t len, const uint8_t **out, char *why, size_t cap);
void payload_unmap(const uint8_t *p, size_t len);

#endif
