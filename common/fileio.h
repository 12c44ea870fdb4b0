#ifndef AULAC_COMMON_FILEIO_H
#define AULAC_COMMON_FILEIO_H
#include <stddef.h>
#include <stdint.h>

/* Files: whole-file reads and crash-safe writes.
 * Errors are negative errno values (e.g. -ENOENT); strerror(-rc) describes them. */

/* Reads the whole file into a malloc'd buffer (NUL-terminated, not counted in *len).
 * Refuses files larger than max_len with -EFBIG. Caller frees *out. */
int file_read_all(const char *path, size_t max_len, uint8_t **out, size_t *len);

/* Writes data to path atomically: path.tmp.<pid>, fsync, rename, fsync of the
 * directory. mode is applied at creation (e.g. 0600 for secrets). */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* mkdir -p with the given mode for directories it creates. */
int file_mkdirs(const char *path, unsigned mode);

/* fsync of the directory that contains path. */
int file_fsync_dir_of(const char *path);

/* 1 if path exists (any type), 0 otherwise. */
int file_exists(const char *path);

#endif
