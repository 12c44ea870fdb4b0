/* Fault injection sweeps (tests/fault/fault.h): the acceptance of an update, the
 * close of a round and a restart, each run again and again with the Nth call of one
 * class failing (allocation, LMDB write, fsync, file write, gRPC op), N = 1, 2, ...
 * until a run no longer reaches the Nth call. After every run:
 *
 *   - the process ended cleanly: no crash, no sanitizer report, no leak; the one
 *     allowed stop is the round close's fail-stop exit(70), after a fault that cannot
 *     be retried (out of memory); a storage failure (file write, fsync, LMDB) abandons
 *     the close, which the timer retries (coordinator/experiment.c);
 *   - what failed reported an error (a failed call without an injected fault fails),
 *     and our fault is never the update's: a valid update is not refused (a refusal
 *     is recorded and final for the worker) nor called malformed;
 *   - the state resumes: the missing updates are sent again (an update acknowledged
 *     before must come back as a duplicate), round 1 closes on exactly the model of
 *     the run without faults (bit for bit), the ledger verifies, holds one acceptance
 *     per member and one close, no payload is left, counters counted each update once;
 *     and all of it again after a restart on the same data directory.
 *
 * Each run is a child process (this binary with --trial) on a copy of a template data
 * directory, so that a crash or exit is observed rather than suffered. The templates:
 * `one` (fpt's update accepted in round 1 of 3), `two` (fpt, vnpt), `three` (all three
 * accepted, the process stopped before the close), and `reference`, the model hash of
 * round 1 closed without faults.
 *
 *   build/tests/test_fault_sweep                      every sweep (prints runs per class)
 *   build/tests/test_fault_sweep --trial close alloc 17 once DIR   one run (DIR: a copy
 *                                                     of a template, next to `reference`)
 *   AULAC_FAULT_KEEP=1 ...                              keeps the directories of failed runs
 *   AULAC_FAULT_JOBS=8 AULAC_FAULT_STRIDE=1 ...         runs at once (4); every how many N
 *                                                       (1; 2 under ASan, several times slower)
 *
 * Allocation is swept twice over accept and close: failing once, and persistently
 * (every call from the Nth on), which reaches the allocations of error paths.
 *
 * To cover a new path: a test function calling sweep(name, template, persistent) and
 * a branch in trial() for what runs armed (a new template in make_templates if it
 * needs another starting state); a new kind of failure: a class in fault.h, its
 * wrappers in fault.c and the symbols in the Makefile's FAULT_WRAP. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "trust_fixture.h"

#include "common/hex.h"
#include "coordinator/metrics.h"
#include "coordinator/spool.h"
#include "coordinator/state.h"
#include "proto/pb.h"
#include "tests/fault/fault.h"

enum { N_ROUND = 3 };               /* fpt, vnpt, hust report in round 1 */
#define FAIL_STOP 70                /* coordinator/experiment.c close_failed() */
#define MAX_N 5000                  /* no path here makes this many calls of a class */

static char self[PATH_MAX];         /* this binary */
static char root[1024];             /* the templates and the runs' copies */

/* --- in a child: the coordinator and its members --------------------------------- */

static int coord_up(struct fx *f)
{
    f->c = calloc(1, sizeof *f->c);
    if (!f->c)
        return COORD_ERR_NOMEM;
    int rc = coord_open(f->c, &f->opt);
    if (rc == 0)
        rc = coord_serve(f->c);
    if (rc != 0) {
        coord_close(f->c);
        free(f->c);
        f->c = NULL;
        return rc;
    }
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->c->port);
    return 0;
}

struct sent {
    int rc;                         /* fed_submit_update's, or fed_client_open's */
    grpc_status_code code;          /* with rc RPC_ERR_STATUS */
    int accepted, duplicate;
    char reason[320];
};

/* Sends u as its member would; with class k armed at n when n >= 0 (0: counting). */
static void send_update(struct fx *f, struct upd *u, int m, int k, long n, int persistent,
                        struct sent *out)
{
    memset(out, 0, sizeof *out);
    struct signer s = { .key = f->keys[m] };
    struct fed_client_options o = { .call_timeout_ms = 10000, .stream_timeout_ms = 20000,
                                    .sign = fx_sign, .sign_ctx = &s };
    if (n >= 0)
        fault_arm((enum fault_class)k, n, persistent);
    struct fed_client *cl = NULL;
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    memset(&st, 0, sizeof st);
    out->rc = fed_client_open(f->addr, &o, &cl);
    if (out->rc == 0)
        out->rc = fed_submit_update(cl, &u->h, u->payload, u->len, 0, &r, &st);
    fed_client_close(cl);
    fx_wait_closed(f);   /* a close it asked for runs on the timer thread, faults armed */
    fault_disarm();
    out->code = st.code;
    if (out->rc == 0) {
        out->accepted = r->accepted;
        out->duplicate = r->duplicate;
        snprintf(out->reason, sizeof out->reason, "%s", r->reason ? r->reason : "");
        aulac__v1__receipt__free_unpacked(r, NULL);
    } else {
        snprintf(out->reason, sizeof out->reason, "rc %d, %s: %.200s", out->rc,
                 rpc_status_name(st.code), st.details);
    }
}

static uint64_t round_now(struct fx *f)
{
    pthread_mutex_lock(&f->c->mu);
    uint64_t r = f->c->rnd.number;
    pthread_mutex_unlock(&f->c->mu);
    return r;
}

static int reported(struct fx *f, int m)
{
    pthread_mutex_lock(&f->c->mu);
    int yes = round_member_reported_locked(f->c, fx_ids[m]);
    pthread_mutex_unlock(&f->c->mu);
    return yes;
}

/* Member m's round-1 update (the same bytes in every process). */
static void update_of(struct fx *f, int m, struct upd *u)
{
    upd_make(f, u, f->keys[m], 100 + m);
}

static void read_reference(uint8_t ref[32])
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/reference", root);
    uint8_t *hex;
    size_t len;
    assert_int_equal(file_read_all(path, 64, &hex, &len), 0);
    assert_int_equal(len, 64);
    assert_int_equal(hex_decode((const char *)hex, ref, 32), 0);
    free(hex);
}

/* The ledger verifies; round 1 has one acceptance per member and one close on the
 * reference model; no payload is left; each member's counters hold its update once. */
static void check_round_one_closed(struct fx *f, const uint8_t ref[32])
{
    struct coord *c = f->c;
    uint64_t bad = 0, size = 0;
    int rc = ledger_verify_all(c->ledger, &bad, NULL, NULL, &size, NULL);
    if (rc != 0)
        fail_msg("the ledger does not verify at #%" PRIu64 ": %s", bad, ledger_strerror(rc));
    int accepted[N_ROUND] = { 0 }, closed = 0;
    for (uint64_t i = 0; i < size; i++) {
        uint8_t *bytes;
        size_t len;
        assert_int_equal(ledger_get(c->ledger, i, &bytes, &len), 0);
        struct entry e;
        assert_int_equal(entry_decode(bytes, len, &e), 0);
        free(bytes);
        if (e.type == ENTRY_UPDATE_ACCEPTED) {
            assert_int_equal(e.u.update.round, 1);
            for (int m = 0; m < N_ROUND; m++)
                accepted[m] += strcmp(e.u.update.member, fx_ids[m]) == 0;
        } else if (e.type == ENTRY_ROUND_CLOSED) {
            assert_int_equal(e.u.round_closed.round, 1);
            assert_int_equal(e.u.round_closed.n_participants, N_ROUND);
            assert_memory_equal(e.u.round_closed.model_hash, ref, 32);
            closed++;
        }
        entry_free(&e);
    }
    for (int m = 0; m < N_ROUND; m++)
        if (accepted[m] != 1)
            fail_msg("the ledger holds %d acceptances of %s's round-1 update", accepted[m],
                     fx_ids[m]);
    assert_int_equal(closed, 1);

    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->rnd.number, 2);
    assert_int_equal(c->rnd.n_accepted, 0);
    assert_memory_equal(c->rnd.base->hash, ref, 32);
    for (int m = 0; m < N_ROUND; m++) {
        struct member_stats *ms = coord_member_stats(c, fx_ids[m]);
        assert_non_null(ms);
        if (ms->rounds_joined != 1 || ms->tokens != 64)
            fail_msg("%s's counters: %" PRIu64 " rounds, %" PRIu64 " tokens (want 1, 64)",
                     fx_ids[m], ms->rounds_joined, ms->tokens);
    }
    pthread_mutex_unlock(&c->mu);

    MDB_txn *txn;
    MDB_stat st;
    assert_int_equal(mdb_txn_begin(ledger_env(c->ledger), NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, c->db_payloads, &st), 0);
    mdb_txn_abort(txn);
    if (st.ms_entries != 0)
        fail_msg("%zu payload(s) left after the close", (size_t)st.ms_entries);
    struct round_summary sum;
    int found;
    assert_int_equal(state_get_round(c, c->experiment, 1, &sum, &found), 0);
    assert_true(found);
    assert_int_equal(sum.n_members, N_ROUND);
    assert_memory_equal(sum.model_hash, ref, 32);
    free(sum.members);
}

/* Faults off: sends what round 1 still lacks (fpt, vnpt, hust in this order, as the
 * reference run did), checks the closed round, restarts and checks again. acked:
 * members whose update a receipt acknowledged before: one that is missing now (sent
 * again and accepted) was lost. */
static void settle(struct fx *f, const int acked[N_ROUND])
{
    uint8_t ref[32];
    read_reference(ref);
    fx_wait_settled(f);   /* a restart's close, or the retry of one abandoned on storage */
    for (int m = 0; m < N_ROUND && round_now(f) == 1; m++) {
        if (reported(f, m))
            continue;
        struct upd u;
        update_of(f, m, &u);
        struct sent s;
        send_update(f, &u, m, 0, -1, 0, &s);
        /* The handler of an upload the fault cut off may still be ending: the member's
         * place is taken until it does (ABORTED, "one upload per member"); a worker
         * retries, and so does this. */
        for (int i = 0; i < 100 && s.rc != 0 && s.code == GRPC_STATUS_ABORTED; i++) {
            time_sleep_ms(50);
            send_update(f, &u, m, 0, -1, 0, &s);
        }
        upd_free(&u);
        if (s.rc != 0)
            fail_msg("%s's update cannot be sent again: %s", fx_ids[m], s.reason);
        if (acked[m] && s.accepted)
            fail_msg("%s's update was acknowledged, then accepted a second time", fx_ids[m]);
        if (!s.accepted && !s.duplicate)
            fail_msg("%s's update sent again is refused: %s", fx_ids[m], s.reason);
    }
    fx_wait_settled(f);
    if (round_now(f) != 1)
        check_round_one_closed(f, ref);   /* in memory: the close of this process */
    else
        fail_msg("round 1 is still open with every update sent");
    fx_stop(f);
    assert_int_equal(coord_up(f), 0);
    fx_wait_settled(f);
    check_round_one_closed(f, ref);       /* on disk */
    fx_stop(f);
}

/* --- in a child: the runs ---------------------------------------------------------- */

static char hits_path[PATH_MAX + 16];

/* At exit, also the fail-stop exit(70) of a round close: how many faults fired. */
static void write_hits(void)
{
    fault_disarm();
    fprintf(stderr, "trial: calls while armed:");
    for (int k = 0; k < FAULT_N_CLASSES; k++)
        fprintf(stderr, " %s %ld", fault_class_name(k), fault_calls(k));
    fprintf(stderr, "\n");
    FILE *fp = fopen(hits_path, "w");
    if (fp) {
        fprintf(fp, "%ld\n", fault_hits());
        fclose(fp);
    }
}

/* --- a full disk during a close -------------------------------------------------- */

static void submit_ok(struct fx *f, int m);

static atomic_int disk_full;

/* close_hook: while disk_full, every file write of the close (and after it) fails with
 * ENOSPC, as on a full file system (LMDB's own writes are not ours: they still work). */
static void fill_disk(void *arg)
{
    (void)arg;
    if (atomic_load(&disk_full))
        fault_arm(FAULT_FILE, 1, 1);
}

/* hust's update completes round 1; its close finds the disk full, again at each retry:
 * the process stays up, the round stays open with its 3 updates, status and metrics say
 * why; stopped and restarted with space back but a data directory whose file system
 * cannot take the base model's file (ENODEV, not a full disk), the close completes on the
 * reference model kept in memory, nothing acknowledged lost. */
static int full_disk(const char *dir)
{
    struct fx fx, *f = &fx;
    fx_use_dir(f, dir);
    f->opt.close_hook = fill_disk;
    atomic_store(&disk_full, 1);
    assert_int_equal(coord_up(f), 0);
    submit_ok(f, 2);
    uint64_t round = 0;
    size_t accepted = 0;
    unsigned failures = 0;
    char why[1024] = "";
    for (int i = 0; i < 500 && failures < 3; i++) {
        time_sleep_ms(10);
        pthread_mutex_lock(&f->c->mu);
        failures = f->c->rnd.close_failures;
        round = f->c->rnd.number;
        accepted = f->c->rnd.n_accepted;
        snprintf(why, sizeof why, "%s", f->c->storage_error);
        pthread_mutex_unlock(&f->c->mu);
    }
    fprintf(stderr, "full disk: %u failed close(s); status says: %s\n", failures, why);
    if (failures < 3)
        fail_msg("the close was not retried after failing on a full disk");
    assert_int_equal(round, 1);
    assert_int_equal(accepted, N_ROUND);
    if (!strstr(why, "round 1 could not close") || !strstr(why, "free in"))
        fail_msg("status does not say why the round does not close: '%s'", why);
    /* A checkpoint that could not be written leaves nothing (models_save removes its
     * models/<hex>.tmp directory). */
    char models[PATH_MAX + 16];
    snprintf(models, sizeof models, "%s/models", f->c->opt.data_dir);
    DIR *d = opendir(models);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp"))
            fail_msg("a failed close left %s/%s", models, e->d_name);
    closedir(d);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(f->c, f->c->metrics, &text, &len), 0);
    if (!strstr(text, "aulac_round_close_failing 1\n") ||
        !strstr(text, "aulac_round_close_failures_total "))
        fail_msg("the metrics do not show the failing close");
    free(text);
    fx_stop(f);   /* while a retry waits */
    atomic_store(&disk_full, 0);
    fault_disarm();
    fault_fallocate_errno(ENODEV);   /* no base model file: the resume and the close
                                        keep the model in memory and go on */
    const int acked[N_ROUND] = { 1, 1, 1 };
    assert_int_equal(coord_up(f), 0);
    settle(f, acked);   /* closes on the reference model; restarts and checks again */
    fault_fallocate_errno(0);
    fx_release(f);
    return 0;
}

/* --- a payload file that cannot be read at the close ------------------------------ */

/* Waits (up to 5 s) for at least `want` failed closes of round 1: their count, and the
 * status's storage_error in why. */
static unsigned wait_close_failures(struct fx *f, unsigned want, char *why, size_t cap)
{
    unsigned failures = 0;
    for (int i = 0; i < 500 && failures < want; i++) {
        time_sleep_ms(10);
        pthread_mutex_lock(&f->c->mu);
        failures = f->c->rnd.close_failures;
        assert_int_equal(f->c->rnd.number, 1);
        assert_int_equal(f->c->rnd.n_accepted, N_ROUND);
        snprintf(why, cap, "%s", f->c->storage_error);
        pthread_mutex_unlock(&f->c->mu);
    }
    return failures;
}

/* fpt's stored payload file is gone when hust's update completes round 1: the close
 * fails as a storage failure (no exit), is retried, status names the member, the round,
 * the file and what the operator can do; a file that cannot be opened for another
 * reason (ELOOP here; EMFILE, EIO, EACCES alike) is one too, its errno shown. Put
 * back, the next retry closes the round on the reference model, in this process and
 * after a restart. */
static int missing_payload(const char *dir)
{
    struct fx fx, *f = &fx;
    fx_use_dir(f, dir);
    assert_int_equal(coord_up(f), 0);
    struct upd u;
    update_of(f, 0, &u);
    char path[4300], away[4320];
    payload_path(f->c, f->c->experiment, u.e.payload_hash, path, sizeof path);
    upd_free(&u);
    snprintf(away, sizeof away, "%s.away", path);
    if (rename(path, away) != 0)
        fail_msg("cannot move %s away: %s", path, strerror(errno));
    submit_ok(f, 2);
    char why[1024] = "";
    unsigned failures = wait_close_failures(f, 2, why, sizeof why);
    fprintf(stderr, "missing payload: %u failed close(s); status says: %s\n", failures, why);
    if (failures < 2)
        fail_msg("the close was not retried after a payload file went missing");
    if (!strstr(why, "round 1 could not close") || !strstr(why, "member fpt") ||
        !strstr(why, "round 1 is missing") || !strstr(why, path) ||
        !strstr(why, "No such file or directory (errno 2)") ||
        !strstr(why, "aulac experiment propose-cancel"))
        fail_msg("status does not say which update is missing and what to do: '%s'", why);
    /* Another error than ENOENT: a symbolic link to itself where the file should be
     * (open fails with ELOOP, as root too): the close still only fails. */
    assert_int_equal(symlink(path, path), 0);
    pthread_mutex_lock(&f->c->mu);
    unsigned before = f->c->rnd.close_failures;
    pthread_mutex_unlock(&f->c->mu);
    failures = wait_close_failures(f, before + 2, why, sizeof why);
    fprintf(stderr, "unreadable payload: %u failed close(s); status says: %s\n", failures, why);
    if (failures < before + 2 || !strstr(why, "member fpt") || !strstr(why, "cannot be read") ||
        !strstr(why, path) || !strstr(why, "errno"))
        fail_msg("status does not say which update cannot be read: '%s'", why);
    assert_int_equal(unlink(path), 0);
    if (rename(away, path) != 0)
        fail_msg("cannot put %s back: %s", path, strerror(errno));
    const int acked[N_ROUND] = { 1, 1, 1 };
    settle(f, acked);   /* the retry closes on the reference model; restarts, checks again */
    fx_release(f);
    return 0;
}

/* One run of scenario (accept, close, restart) with class k's nth call failing (and
 * every later one when persistent), on the copy of its template in dir. Exit status 0:
 * every check passed. */
static int trial(const char *scenario, int k, long n, int persistent, const char *dir)
{
    snprintf(hits_path, sizeof hits_path, "%s/hits", dir);
    atexit(write_hits);
    struct fx fx, *f = &fx;
    fx_use_dir(f, dir);
    int acked[N_ROUND] = { 1, 0, 0 };   /* every template has fpt's update */
    if (strcmp(scenario, "restart") == 0) {
        acked[1] = acked[2] = 1;
        f->c = calloc(1, sizeof *f->c);
        assert_non_null(f->c);
        fault_arm((enum fault_class)k, n, persistent);
        int rc = coord_open(f->c, &f->opt);
        if (rc == 0)
            rc = coord_serve(f->c);
        fault_disarm();
        if (rc != 0) {
            fprintf(stderr, "trial: the restart failed: %s\n", coord_strerror(rc));
            if (fault_hits() == 0)
                fail_msg("the restart failed without an injected fault: %s", coord_strerror(rc));
            coord_close(f->c);
            free(f->c);
            f->c = NULL;
            assert_int_equal(coord_up(f), 0);
        } else {
            snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->c->port);
        }
    } else {
        int m = strcmp(scenario, "accept") == 0 ? 1 : 2;
        acked[1] = m == 2;
        assert_int_equal(coord_up(f), 0);
        struct upd u;
        update_of(f, m, &u);
        struct sent s;
        send_update(f, &u, m, k, n, persistent, &s);
        upd_free(&u);
        fprintf(stderr, "trial: %s's update: rc %d, accepted %d, duplicate %d: %s\n",
                fx_ids[m], s.rc, s.accepted, s.duplicate, s.reason);
        if ((s.rc != 0 || !s.accepted) && fault_hits() == 0)
            fail_msg("the update failed without an injected fault: %s", s.reason);
        /* A fault of ours is never the update's: it is not refused (a refusal is final
         * for the worker, and recorded), and not called malformed. */
        if (s.rc == 0 && !s.accepted)
            fail_msg("a valid update was refused: %s", s.reason);
        if (s.rc == PB_ERR_MALFORMED ||
            (s.rc == RPC_ERR_STATUS && s.code == GRPC_STATUS_INVALID_ARGUMENT))
            fail_msg("a valid update was called malformed: %s", s.reason);
        acked[m] = s.rc == 0 && s.accepted;
    }
    settle(f, acked);
    fx_release(f);
    return 0;
}

/* After a fail-stop: the restart finishes what was left (faults off). */
static int resume_after_stop(const char *dir)
{
    struct fx fx, *f = &fx;
    fx_use_dir(f, dir);
    assert_int_equal(coord_up(f), 0);
    const int acked[N_ROUND] = { 1, 0, 0 };   /* the run's receipts are not known here */
    settle(f, acked);
    fx_release(f);
    return 0;
}

static void submit_ok(struct fx *f, int m)
{
    struct upd u;
    update_of(f, m, &u);
    struct sent s;
    send_update(f, &u, m, 0, -1, 0, &s);
    upd_free(&u);
    if (s.rc != 0 || !s.accepted)
        fail_msg("%s's update: %s", fx_ids[m], s.reason);
}

/* Removes path and everything under it (no symbolic link is followed); 0 when it is
 * gone, -1 with errno. */
static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -1;
        struct dirent *e;
        char sub[PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub ||
                remove_tree(sub) != 0) {
                closedir(d);
                return -1;
            }
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

/* Copies the tree at from to the new path to: directories, regular files (their bytes
 * and permission bits) and symbolic links; anything else fails. 0, or -1 with errno. */
static int copy_tree(const char *from, const char *to)
{
    struct stat st;
    if (lstat(from, &st) != 0)
        return -1;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(from, target, sizeof target - 1);
        if (n < 0)
            return -1;
        target[n] = 0;
        return symlink(target, to);
    }
    if (S_ISREG(st.st_mode)) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
            return -1;
        int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int rc = out < 0 ? -1 : 0;
        char buf[65536];
        while (rc == 0) {
            ssize_t n = read(in, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = n < 0 ? -1 : 0;
                break;
            }
            for (ssize_t off = 0; off < n && rc == 0;) {
                ssize_t w = write(out, buf + off, (size_t)(n - off));
                if (w < 0 && errno != EINTR)
                    rc = -1;
                else if (w > 0)
                    off += w;
            }
        }
        if (rc == 0 && fchmod(out, st.st_mode & 07777) != 0)
            rc = -1;
        int e = errno;
        if (out >= 0)
            close(out);
        close(in);
        errno = e;
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    if (mkdir(to, 0700) != 0)
        return -1;
    DIR *d = opendir(from);
    if (!d)
        return -1;
    struct dirent *e;
    char a[PATH_MAX], b[PATH_MAX];
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(a, sizeof a, "%s/%s", from, e->d_name) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", to, e->d_name) >= (int)sizeof b) {
            errno = ENAMETOOLONG;
            rc = -1;
        } else {
            rc = copy_tree(a, b);
        }
    }
    closedir(d);
    if (rc == 0 && chmod(to, st.st_mode & 07777) != 0)
        rc = -1;
    return rc;
}

/* to becomes a copy of the tree at from (what was at to first is removed). In this
 * process: a shell's rm and cp for each of a sweep's thousand runs cost more than the
 * runs' own start. */
static void copy_dir(const char *from, const char *to)
{
    if (remove_tree(to) != 0 || copy_tree(from, to) != 0)
        fail_msg("cannot copy %s to %s: %s", from, to, strerror(errno));
}

static void stop_in_close(void *arg)
{
    (void)arg;
    _exit(0);   /* as kill -9 would, after the last acceptance has committed */
}

/* Template `name` under root: a copy of `from` (NULL: new files) with member m's
 * update accepted; the last one stops in the close. */
static void template_step(const char *from, const char *name, int m, int stop)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    struct fx fx, *f = &fx;
    if (!from) {
        fx_prepare(f);
        copy_dir(f->dir, dir);
        fx_free(f);
    } else {
        char src[PATH_MAX + 16];
        snprintf(src, sizeof src, "%s/%s", root, from);
        copy_dir(src, dir);
    }
    fx_use_dir(f, dir);
    if (stop) {
        f->opt.close_hook = stop_in_close;
    }
    assert_int_equal(coord_up(f), 0);
    if (!from)
        fx_run_fixture_policy(f);   /* proposed, approved, started */
    submit_ok(f, m);
    if (strcmp(name, "ref") == 0) {
        char hex[65], path[PATH_MAX + 16];
        pthread_mutex_lock(&f->c->mu);
        assert_int_equal(f->c->rnd.number, 2);
        hex_encode(f->c->rnd.base->hash, 32, hex);
        pthread_mutex_unlock(&f->c->mu);
        snprintf(path, sizeof path, "%s/reference", root);
        assert_int_equal(file_write_atomic(path, hex, 64, 0644), 0);
    }
    fx_release(f);
}

static int make_templates(void)
{
    template_step(NULL, "one", 0, 0);
    template_step("one", "two", 1, 0);
    template_step("two", "ref", 2, 0);
    template_step("two", "three", 2, 1);   /* exits in the close */
    fail_msg("the close of template three did not stop");
    return 1;
}

/* --- the parent: sweeps ------------------------------------------------------------ */

/* Starts this binary with args (NULL-terminated) in a child, output to log. A run
 * that hangs is stopped by SIGALRM after limit_s. */
static pid_t start_child(const char *const *args, const char *log, unsigned limit_s)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        close(fd);
        alarm(limit_s);
        execv(self, (char *const *)args);
        _exit(127);
    }
    return pid;
}

static int wait_child(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return status;
}

static long read_hits(const char *dir)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/hits", dir);
    FILE *fp = fopen(path, "r");
    long hits = -1;
    if (fp) {
        if (fscanf(fp, "%ld", &hits) != 1)
            hits = -1;
        fclose(fp);
    }
    return hits;
}

static void describe(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "status %#x", status);
}

static void show_log(const char *log)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "tail -n 40 '%s' | sed 's/^/    | /' >&2", log);
    if (system(cmd) != 0)
        fprintf(stderr, "    (no log)\n");
}

/* A run in flight: its trial, then (after a fail-stop) the restart that resumes it. */
struct slot {
    pid_t pid;                      /* 0: free */
    long n;
    int resuming;
    char dir[PATH_MAX], log[PATH_MAX];
};

#define MAX_JOBS 16

static int jobs(void)
{
    const char *e = getenv("AULAC_FAULT_JOBS");
    int j = e ? atoi(e) : 4;   /* mostly waiting on sockets and fsync: more than cores */
    return j < 1 ? 1 : j > MAX_JOBS ? MAX_JOBS : j;
}

/* Every how many N a sweep runs: 1, but 2 in the sanitizer build (each run there is
 * several times slower); AULAC_FAULT_STRIDE sets it. */
static long stride(void)
{
    const char *e = getenv("AULAC_FAULT_STRIDE");
#if defined(__SANITIZE_ADDRESS__)
    long st = e ? atol(e) : 2;
#else
    long st = e ? atol(e) : 1;
#endif
    return st < 1 ? 1 : st;
}

/* Sweeps class k over scenario, run on copies of template; returns failures. */
static int sweep_class(const char *scenario, const char *tmpl, int k, const char *mode)
{
    struct slot slots[MAX_JOBS];
    memset(slots, 0, sizeof slots);
    const int n_jobs = jobs();
    const long step = stride();
    long next = 1, end = MAX_N + 1;   /* end: the first n no run reached */
    int failures = 0, active = 0;
    long stops = 0, runs = 0;
    for (;;) {
        for (int i = 0; i < n_jobs && next < end; i++) {
            struct slot *sl = &slots[i];
            if (sl->pid)
                continue;
            snprintf(sl->dir, sizeof sl->dir, "%s/run%d", root, i);
            snprintf(sl->log, sizeof sl->log, "%s/run%d.log", root, i);
            copy_dir(tmpl, sl->dir);
            char nbuf[24];
            snprintf(nbuf, sizeof nbuf, "%ld", next);
            const char *args[] = { self, "--trial", scenario, fault_class_name(k), nbuf,
                                   mode, sl->dir, NULL };
            sl->n = next;
            next += step;
            runs++;
            sl->resuming = 0;
            sl->pid = start_child(args, sl->log, 120);
            active++;
        }
        if (active == 0)
            break;
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            assert_int_equal(errno, EINTR);
            continue;
        }
        struct slot *sl = NULL;
        for (int i = 0; i < n_jobs; i++)
            if (slots[i].pid == pid)
                sl = &slots[i];
        if (!sl)
            continue;
        sl->pid = 0;
        active--;
        long hits = sl->resuming ? 1 : read_hits(sl->dir);
        if (!sl->resuming && hits > 0 && WIFEXITED(status) &&
            WEXITSTATUS(status) == FAIL_STOP) {
            stops++;
            const char *args[] = { self, "--resume", sl->dir, NULL };
            sl->resuming = 1;
            sl->pid = start_child(args, sl->log, 120);
            active++;
            continue;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char what[80];
            describe(status, what, sizeof what);
            fprintf(stderr, "FAULT SWEEP FAILURE: %s, %s call #%ld fails (%s): %s%s\n",
                    scenario, fault_class_name(k), sl->n, mode,
                    sl->resuming ? "the restart after the stop: " : "", what);
            show_log(sl->log);
            if (getenv("AULAC_FAULT_KEEP")) {
                char kept[PATH_MAX];
                snprintf(kept, sizeof kept, "%s-failed-%s-%s-%ld-%s", root, scenario,
                         fault_class_name(k), sl->n, mode);
                copy_dir(sl->dir, kept);
                fprintf(stderr, "    kept in %s\n", kept);
            }
            failures++;
        }
        if (hits == 0 && sl->n < end)
            end = sl->n;   /* the run made fewer than n calls of this class */
    }
    printf("  %-8s %-6s %-10s %4ld calls, %4ld runs, %3ld fail-stop(s) resumed, %d failure(s)\n",
           scenario, fault_class_name(k), mode, end - 1, runs, stops, failures);
    if (end > MAX_N)
        fail_msg("%s: class %s never stopped reaching the Nth call", scenario,
                 fault_class_name(k));
    return failures;
}

/* persistent: allocation is also swept with every call after the nth failing too (what
 * an error path allocates then fails as well). */
static void sweep(const char *scenario, const char *template, int persistent)
{
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/%s", root, template);
    int failures = 0;
    for (int k = 0; k < FAULT_N_CLASSES; k++) {
        failures += sweep_class(scenario, tmpl, k, "once");
        if (persistent && k == FAULT_ALLOC)
            failures += sweep_class(scenario, tmpl, k, "persistent");
    }
    if (failures)
        fail_msg("%d run(s) failed (above)", failures);
}

static void accepting_an_update_survives_every_fault(void **state)
{
    (void)state;
    sweep("accept", "one", 1);
}

static void closing_a_round_survives_every_fault(void **state)
{
    (void)state;
    sweep("close", "two", 1);
}

static void restarting_survives_every_fault(void **state)
{
    (void)state;
    sweep("restart", "three", 0);
}

static void a_full_disk_during_a_close_is_survived(void **state)
{
    (void)state;
    char dir[PATH_MAX], tmpl[PATH_MAX], log[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/two", root);
    snprintf(dir, sizeof dir, "%s/full-disk", root);
    snprintf(log, sizeof log, "%s/full-disk.log", root);
    copy_dir(tmpl, dir);
    const char *args[] = { self, "--full-disk", dir, NULL };
    int status = wait_child(start_child(args, log, 120));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char what[80];
        describe(status, what, sizeof what);
        show_log(log);
        fail_msg("the full-disk run failed: %s", what);
    }
}

static void a_missing_payload_file_fails_the_close_not_the_process(void **state)
{
    (void)state;
    char dir[PATH_MAX], tmpl[PATH_MAX], log[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/two", root);
    snprintf(dir, sizeof dir, "%s/missing-payload", root);
    snprintf(log, sizeof log, "%s/missing-payload.log", root);
    copy_dir(tmpl, dir);
    const char *args[] = { self, "--missing-payload", dir, NULL };
    int status = wait_child(start_child(args, log, 120));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char what[80];
        describe(status, what, sizeof what);
        show_log(log);
        fail_msg("the missing-payload run failed: %s", what);
    }
}

static int make_root(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/aulac-fault-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        return -1;
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/templates.log", root);
    const char *args[] = { self, "--templates", root, NULL };
    int status = wait_child(start_child(args, log, 120));
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/three/data", root);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !file_exists(path)) {
        fprintf(stderr, "the templates could not be made:\n");
        show_log(log);
        return -1;
    }
    return 0;
}

static int remove_root(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return 1;
    self[len] = 0;
    if (argc == 3 && strcmp(argv[1], "--templates") == 0) {
        snprintf(root, sizeof root, "%s", argv[2]);
        return make_templates();
    }
    if (argc == 7 && strcmp(argv[1], "--trial") == 0) {
        int k = fault_class_parse(argv[3]);
        if (k < 0)
            return 2;
        snprintf(root, sizeof root, "%s/..", argv[6]);
        return trial(argv[2], k, atol(argv[4]), strcmp(argv[5], "persistent") == 0, argv[6]);
    }
    if (argc == 3 && strcmp(argv[1], "--full-disk") == 0) {
        snprintf(root, sizeof root, "%s/..", argv[2]);
        return full_disk(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "--missing-payload") == 0) {
        snprintf(root, sizeof root, "%s/..", argv[2]);
        return missing_payload(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "--resume") == 0) {
        snprintf(root, sizeof root, "%s/..", argv[2]);
        return resume_after_stop(argv[2]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_disk_during_a_close_is_survived),
        cmocka_unit_test(a_missing_payload_file_fails_the_close_not_the_process),
        cmocka_unit_test(accepting_an_update_survives_every_fault),
        cmocka_unit_test(closing_a_round_survives_every_fault),
        cmocka_unit_test(restarting_survives_every_fault),
    };
    return cmocka_run_group_tests_name("fault_sweep", tests, make_root, remove_root);
}
