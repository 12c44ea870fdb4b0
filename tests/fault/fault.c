/* The wrappers behind fault.h. Each __wrap_X is what our objects call instead of X
 * (ld --wrap); __real_X is the library's X. */
#include "tests/fault/fault.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <lmdb.h>

static atomic_int on;                       /* counting */
static atomic_int armed_class = -1;
static atomic_long armed_n;
static atomic_int armed_persistent;
static atomic_long calls[FAULT_N_CLASSES];
static atomic_long hits;
static atomic_int leak_check_off;
static atomic_int fsync_errno = EIO;        /* what a failed fsync sets (fault_fsync_errno) */
static atomic_int fallocate_errno;          /* fault_fallocate_errno: every call fails */

static const char *const names[FAULT_N_CLASSES] = { "alloc", "lmdb", "fsync", "file", "net" };

const char *fault_class_name(enum fault_class k)
{
    return (unsigned)k < FAULT_N_CLASSES ? names[k] : "?";
}

int fault_class_parse(const char *name)
{
    for (int k = 0; k < FAULT_N_CLASSES; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -1;
}

void fault_arm(enum fault_class k, long n, int persistent)
{
    void *warm[1];
    backtrace(warm, 1);   /* loads libgcc now, not inside a failing call */
    atomic_store(&on, 0);
    for (int i = 0; i < FAULT_N_CLASSES; i++)
        atomic_store(&calls[i], 0);
    atomic_store(&hits, 0);
    atomic_store(&armed_class, n > 0 ? (int)k : -1);
    atomic_store(&armed_n, n);
    atomic_store(&armed_persistent, persistent);
    atomic_store(&fsync_errno, EIO);
    atomic_store(&on, 1);
}

void fault_fsync_errno(int e)
{
    atomic_store(&fsync_errno, e);
}

void fault_fallocate_errno(int e)
{
    atomic_store(&fallocate_errno, e);
}

void fault_disarm(void)
{
    atomic_store(&on, 0);
    atomic_store(&armed_class, -1);
}

long fault_calls(enum fault_class k)
{
    return atomic_load(&calls[k]);
}

long fault_hits(void)
{
    return atomic_load(&hits);
}

/* 1 when this call of class k is to fail. */
static int fault_now(enum fault_class k, const char *fn)
{
    if (!atomic_load(&on))
        return 0;
    long nth = atomic_fetch_add(&calls[k], 1) + 1;
    if (atomic_load(&armed_class) != (int)k)
        return 0;
    long n = atomic_load(&armed_n);
    if (nth != n && !(atomic_load(&armed_persistent) && nth > n))
        return 0;
    if (atomic_fetch_add(&hits, 1) == 0) {
        char line[160];
        int len = snprintf(line, sizeof line, "fault: %s call #%ld (%s) fails here:\n",
                           names[k], nth, fn);
        if (write(STDERR_FILENO, line, (size_t)len) < 0)
            return 1;
        void *frames[24];
        int depth = backtrace(frames, 24);
        backtrace_symbols_fd(frames + 1, depth - 1, STDERR_FILENO);
    }
    return 1;
}

/* --- alloc ----------------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_sodium_malloc(size_t n);

void *__wrap_malloc(size_t n)
{
    if (fault_now(FAULT_ALLOC, "malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (fault_now(FAULT_ALLOC, "calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fault_now(FAULT_ALLOC, "realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    if (fault_now(FAULT_ALLOC, "strdup")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

void *__wrap_sodium_malloc(size_t n)
{
    if (fault_now(FAULT_ALLOC, "sodium_malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_sodium_malloc(n);
}

/* --- lmdb ------------------------------------------------------------------------ */

/* A write that LMDB refuses leaves the transaction unusable (MDB_TXN_ERROR): every
 * later operation and the commit fail. The poisoned table does the same here. */
#define POISONED_MAX 64
static pthread_mutex_t poison_mu = PTHREAD_MUTEX_INITIALIZER;
static MDB_txn *poisoned[POISONED_MAX];

static void poison(MDB_txn *txn, int set)
{
    pthread_mutex_lock(&poison_mu);
    for (int i = 0; i < POISONED_MAX; i++) {
        if (set && !poisoned[i]) {
            poisoned[i] = txn;
            break;
        }
        if (!set && poisoned[i] == txn)
            poisoned[i] = NULL;
    }
    pthread_mutex_unlock(&poison_mu);
}

static int is_poisoned(MDB_txn *txn)
{
    int found = 0;
    pthread_mutex_lock(&poison_mu);
    for (int i = 0; i < POISONED_MAX && !found; i++)
        found = poisoned[i] == txn;
    pthread_mutex_unlock(&poison_mu);
    return found;
}

int __real_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags, MDB_txn **txn);
int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags);
int __real_mdb_cursor_put(MDB_cursor *cur, MDB_val *key, MDB_val *data, unsigned flags);
int __real_mdb_cursor_del(MDB_cursor *cur, unsigned flags);
int __real_mdb_txn_commit(MDB_txn *txn);
void __real_mdb_txn_abort(MDB_txn *txn);

int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags, MDB_txn **txn)
{
    if (!(flags & MDB_RDONLY) && fault_now(FAULT_LMDB, "mdb_txn_begin"))
        return ENOMEM;
    return __real_mdb_txn_begin(env, parent, flags, txn);
}

int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags)
{
    if (is_poisoned(txn))
        return MDB_BAD_TXN;
    if (fault_now(FAULT_LMDB, "mdb_put")) {
        poison(txn, 1);
        return MDB_MAP_FULL;
    }
    return __real_mdb_put(txn, dbi, key, data, flags);
}

int __wrap_mdb_cursor_put(MDB_cursor *cur, MDB_val *key, MDB_val *data, unsigned flags)
{
    if (is_poisoned(mdb_cursor_txn(cur)))
        return MDB_BAD_TXN;
    if (fault_now(FAULT_LMDB, "mdb_cursor_put")) {
        poison(mdb_cursor_txn(cur), 1);
        return MDB_MAP_FULL;
    }
    return __real_mdb_cursor_put(cur, key, data, flags);
}

int __wrap_mdb_cursor_del(MDB_cursor *cur, unsigned flags)
{
    if (is_poisoned(mdb_cursor_txn(cur)))
        return MDB_BAD_TXN;
    if (fault_now(FAULT_LMDB, "mdb_cursor_del")) {
        poison(mdb_cursor_txn(cur), 1);
        return MDB_MAP_FULL;
    }
    return __real_mdb_cursor_del(cur, flags);
}

int __wrap_mdb_txn_commit(MDB_txn *txn)
{
    if (is_poisoned(txn)) {
        poison(txn, 0);
        __real_mdb_txn_abort(txn);
        return MDB_BAD_TXN;
    }
    if (fault_now(FAULT_LMDB, "mdb_txn_commit")) {
        __real_mdb_txn_abort(txn);   /* a failed commit frees the transaction */
        return EIO;
    }
    return __real_mdb_txn_commit(txn);
}

void __wrap_mdb_txn_abort(MDB_txn *txn)
{
    if (txn)
        poison(txn, 0);
    __real_mdb_txn_abort(txn);
}

/* --- fsync, file ----------------------------------------------------------------- */

int __real_fsync(int fd);
int __real_fdatasync(int fd);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_rename(const char *from, const char *to);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
int __real_posix_fallocate(int fd, off_t off, off_t len);

int __wrap_fsync(int fd)
{
    if (fault_now(FAULT_FSYNC, "fsync")) {
        errno = atomic_load(&fsync_errno);
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_fdatasync(int fd)
{
    if (fault_now(FAULT_FSYNC, "fdatasync")) {
        errno = atomic_load(&fsync_errno);
        return -1;
    }
    return __real_fdatasync(fd);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (fd > STDERR_FILENO && fault_now(FAULT_FILE, "write")) {
        errno = ENOSPC;
        return -1;
    }
    return __real_write(fd, buf, n);
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fault_now(FAULT_FILE, "pwrite")) {
        errno = ENOSPC;
        return -1;
    }
    return __real_pwrite(fd, buf, n, off);
}

int __wrap_posix_fallocate(int fd, off_t off, off_t len)
{
    const int e = atomic_load(&fallocate_errno);
    if (e)
        return e;   /* fault_fallocate_errno: armed or not */
    if (fault_now(FAULT_FILE, "posix_fallocate"))
        return ENOSPC;   /* posix_fallocate returns the error, errno untouched */
    return __real_posix_fallocate(fd, off, len);
}

int __wrap_rename(const char *from, const char *to)
{
    if (fault_now(FAULT_FILE, "rename")) {
        errno = EIO;
        return -1;
    }
    return __real_rename(from, to);
}

/* --- net ------------------------------------------------------------------------- */

grpc_call_error __real_grpc_call_start_batch(grpc_call *call, const grpc_op *ops, size_t nops,
                                             void *tag, void *reserved);

grpc_call_error __wrap_grpc_call_start_batch(grpc_call *call, const grpc_op *ops, size_t nops,
                                             void *tag, void *reserved)
{
    if (fault_now(FAULT_NET, "grpc_call_start_batch"))
        grpc_call_cancel_with_status(call, GRPC_STATUS_UNAVAILABLE,
                                     "fault injected: the connection broke", NULL);
    return __real_grpc_call_start_batch(call, ops, nops, tag, reserved);
}

/* --- exit ------------------------------------------------------------------------ */

void __real_exit(int code) __attribute__((noreturn));

/* A fail-stop exit leaves the daemon's memory where it was: not a leak. */
void __wrap_exit(int code)
{
    if (code != 0) {
        char line[96];
        int len = snprintf(line, sizeof line, "fault: exit(%d) after %ld injected fault(s)\n",
                           code, atomic_load(&hits));
        if (write(STDERR_FILENO, line, (size_t)len) < 0)
            code = code ? code : 1;
        atomic_store(&leak_check_off, 1);
    }
    __real_exit(code);
}

/* LeakSanitizer asks before its exit-time check (a no-op in other builds). */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return atomic_load(&leak_check_off);
}
