#ifndef AULAC_COMMON_FILEIO_H
#define AULAC_COMMON_FILEIO_H
#include <stddef.h>
#include <stdint.h>

/* Files: whole-file reads and crash-safe writes.
 * Errors are negative errno values (e.g. -ENOENT); strerror(-rc) describes them. */

/* Reads the whole regular file at path into a malloc'd buffer (NUL-terminated, not
 * counted in *len); caller frees *out. Anything else is refused before it is opened
 * for reading, so a FIFO or a device can neither block nor feed endless bytes:
 * -EISDIR for a directory, -EINVAL for a FIFO, socket or device. A file larger than
 * max_len (when asked, or grown while read) is refused with -EFBIG. */
int file_read_all(const char *path, size_t max_len, uint8_t **out, size_t *len);

/* The same, and why (may be NULL) says what went wrong in words for a person: "is a
 * FIFO (named pipe), not a regular file", "is 2097152 bytes, over the 1 MiB limit",
 * or strerror()'s text. */
int file_read_all_why(const char *path, size_t max_len, uint8_t **out, size_t *len,
                      char *why, size_t why_len);

/* "1 MiB", "64 KiB" or "1000 bytes". */
void file_size_words(uint64_t n, char *out, size_t out_len);

/* Writes data to path atomically: path.tmp.<pid>, fsync, rename, fsync of the
 * directory. mode is applied at creation (e.g. 0600 for secrets). */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Copies the file at src to dst the same crash-safe way (streamed, never whole in
 * memory); dst gets mode. 0 or -errno (src's open or read errors too). */
int file_copy_atomic(const char *src, const char *dst, unsigned mode);

/* Reads exactly len bytes of fd at offset off into buf (pread: fd's file position is
 * left alone), retrying EINTR and short reads. 0 when all len bytes were read;
 * -ENODATA when the file ends first (buf then holds what was there, the rest of it is
 * unspecified; pread itself never reports ENODATA for a file); -EINVAL when off + len
 * is past the largest offset; otherwise pread's -errno. */
int file_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* Writes all len bytes of data to fd at offset off (pwrite: fd's file position is left
 * alone), retrying EINTR and short writes. 0; -EINVAL when off + len is past the
 * largest offset; pwrite's -errno (-ENOSPC, -EIO, ...); -EIO when pwrite wrote nothing
 * and said no error. Nothing is synced. */
int file_pwrite_all(int fd, const void *data, size_t len, uint64_t off);

/* mkdir -p with the given mode for directories it creates. Once it returns 0:
 *   - each directory this call created has had its parent fsynced after the mkdir;
 *   - path's parent has been fsynced, also when path was already there (made by a
 *     concurrent caller whose fsync may still be pending, or by an earlier call whose
 *     fsync failed), so path's own entry survives a crash;
 *   - a directory above path that was already there is not fsynced again: its entry is
 *     durable if whoever made it got 0 from this function.
 * So a caller that then renames a file into path and fsyncs path loses neither. A
 * directory fsync the file system refuses (EINVAL, EROFS: it cannot sync directories)
 * counts as done. 0 or -errno (of the first mkdir or fsync that failed). */
int file_mkdirs(const char *path, unsigned mode);

/* fsync of the directory that contains path. */
int file_fsync_dir_of(const char *path);

/* 1 if path exists (any type), 0 otherwise. */
int file_exists(const char *path);

#endif
