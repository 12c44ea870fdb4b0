#ifndef AULAC_TESTS_FAULT_H
#define AULAC_TESTS_FAULT_H
/* Fault injection for tests (as sqlite's test builds do): a test binary linked with
 * `-Wl,--wrap=SYMBOL` for every symbol below (the Makefile's FAULT_WRAP) sends our own
 * objects' calls (libaulac.a, libcoord.a, the test) through fault.c, which counts
 * them per class and fails the Nth. Calls made inside shared libraries (liblmdb,
 * libgrpc, libc itself) are not redirected, which is the point: LMDB's own fsync and
 * gRPC's own allocations work; what fails is what our code sees fail.
 *
 *   class   symbols                                        a fault returns
 *   alloc   malloc calloc realloc strdup sodium_malloc      NULL, errno ENOMEM
 *   lmdb    mdb_txn_begin (write txns) mdb_put             MDB_MAP_FULL; a failed
 *           mdb_cursor_put mdb_cursor_del mdb_txn_commit    commit frees the txn as
 *                                                           LMDB's does
 *   fsync   fsync fdatasync                                 -1, errno EIO (or
 *                                                           fault_fsync_errno's)
 *   file    write (fds > 2: logging still works) rename     -1, errno ENOSPC
 *           pwrite                                          (posix_fallocate returns
 *           posix_fallocate                                 ENOSPC); reads are not
 *                                                           failed (no read class)
 *   net     grpc_call_start_batch (client and server)       the call is cancelled
 *           first, so this batch and every later one on      (UNAVAILABLE), then the
 *           the call completes as a broken stream            batch starts
 *
 * A test arms one class with fault_arm(class, n, persistent): the nth call of that
 * class from now on fails (and with persistent, every call after it too). n = 0 only
 * counts. The hit is reported on stderr with a backtrace; exit() from our code is
 * noted too (the round close stops the process with exit(70) when its outcome cannot
 * be made durable) and turns LeakSanitizer's exit check off for that exit only.
 * Counters are process-wide and atomic: with several threads the Nth call depends on
 * scheduling, so a sweep checks outcomes, never which call failed. */
#include <stdio.h>

enum fault_class { FAULT_ALLOC, FAULT_LMDB, FAULT_FSYNC, FAULT_FILE, FAULT_NET, FAULT_N_CLASSES };

/* "alloc", "lmdb", ...; fault_class_parse returns -1 for an unknown name. */
const char *fault_class_name(enum fault_class k);
int fault_class_parse(const char *name);

/* Resets every counter and arms class k: its nth call from now fails (n >= 1),
 * and every later one too when persistent. n = 0: count only. */
void fault_arm(enum fault_class k, long n, int persistent);
/* The errno of the fsync faults from now until the next fault_arm (which sets EIO). */
void fault_fsync_errno(int e);
/* e != 0: every posix_fallocate of our objects fails with e from now on, uncounted and
 * whether armed or not (a file system that cannot take the base model's file: the
 * coordinator keeps the model in memory); 0 stops it. */
void fault_fallocate_errno(int e);
/* Stops failing and counting; fault_calls and fault_hits keep their values. */
void fault_disarm(void);
/* Calls of class k counted since fault_arm. */
long fault_calls(enum fault_class k);
/* Faults injected since fault_arm. */
long fault_hits(void);

#endif
