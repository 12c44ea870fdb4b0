#ifndef AULAC_COORDINATOR_DATADIR_H
#define AULAC_COORDINATOR_DATADIR_H
/* The coordinator's data directory as a whole: its format marker and its disk use.
 *
 * Format marker: <data_dir>/FORMAT holds exactly "aulac-coordinator data format N\n"
 * (ASCII, N decimal, no leading zeros). This build writes and reads N =
 * DATADIR_FORMAT (2). datadir_check, at start before anything is opened or created:
 *   - no FORMAT, no ledger (data.mdb) and nothing but what a coordinator creates or an
 *     operator puts there first (DATADIR_KNOWN_NAMES): a fresh data directory; FORMAT
 *     is written (the directory is created when missing);
 *   - no FORMAT and a ledger: format 1 (written by aulac before the marker existed):
 *     upgraded by writing FORMAT (content conversions run at start regardless);
 *   - FORMAT of this format: used;
 *   - FORMAT of a newer format, or unreadable (not that one line, unreadable file):
 *     refused, naming both versions and the path;
 *   - no FORMAT, no ledger and other files: refused (not a data directory; naming the
 *     first such entry).
 *
 * Disk use: datadir_measure sums the allocated bytes (st_blocks) under the data
 * directory by kind and reads the file system's free bytes (statvfs f_bavail: what an
 * unprivileged coordinator may still write). It walks the tree, so the coordinator calls
 * it from the timer every COORD_DISK_INTERVAL_MS and at start, never per request. */
#include <stddef.h>
#include <stdint.h>

#define DATADIR_FORMAT 2
#define DATADIR_FORMAT_FILE "FORMAT"
#define DATADIR_FORMAT_PREFIX "aulac-coordinator data format "
/* Entries a fresh data directory may hold before the first start. */
#define DATADIR_KNOWN_NAMES \
    { "models", "experiments", "artifacts", "evalsets", "spool", "lock.mdb", "data.mdb", \
      "lost+found", NULL }

/* DATADIR_ERR_*: why is set to a sentence naming the path (and the versions). */
#define DATADIR_ERR_NEWER    (-1)
#define DATADIR_ERR_BAD      (-2)   /* FORMAT unreadable or malformed */
#define DATADIR_ERR_FOREIGN  (-3)   /* not a data directory */
#define DATADIR_ERR_IO       (-4)   /* cannot create it or write FORMAT */

/* 0 (FORMAT present and DATADIR_FORMAT afterwards; *upgraded_from is 1 when a format-1
 * directory was upgraded, 0 when it was fresh or current) or DATADIR_ERR_*. */
int datadir_check(const char *dir, int *upgraded_from, char *why, size_t cap);

/* The format FORMAT names: 0 and *format, or DATADIR_ERR_BAD (why), or 1 when absent. */
int datadir_read_format(const char *dir, unsigned *format, char *why, size_t cap);

struct datadir_usage {
    uint64_t ledger;        /* data.mdb + lock.mdb */
    uint64_t checkpoints;   /* models/ */
    uint64_t payloads;      /* experiments/<id>/payloads/ */
    uint64_t experiment_files;   /* experiments/<id>/ besides payloads: outer state, downlink */
    uint64_t artifacts;     /* artifacts/ */
    uint64_t spool;         /* spool/ */
    uint64_t other;         /* anything else (evalsets, ...) */
    uint64_t total;         /* all of the above */
    uint64_t free_bytes;    /* available to the coordinator on the file system */
    uint64_t fs_bytes;      /* the file system's size */
    int64_t measured_ms;    /* unix ms; 0: never measured */
};

/* 0, or -errno when statvfs of dir fails (the sums are still filled). */
int datadir_measure(const char *dir, struct datadir_usage *out);

/* 1 when free space is low: under DATADIR_LOW_FREE_BYTES or under 5 % of the file
 * system. */
#define DATADIR_LOW_FREE_BYTES (10ULL << 30)
int datadir_low(const struct datadir_usage *u);

#endif
