/* common/fileio: the positioned whole-range reads and writes, and file_mkdirs's
 * durability (its fsyncs counted through the fault layer, tests/fault/fault.h: this
 * binary is linked with it, as test_fault_sweep is). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "tests/fault/fault.h"

static char tmpdir[256];

static int make_tmp(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/aulac-fileio-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmp(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* file_pread_all / file_pwrite_all move whole ranges at an offset, leave the file
 * position alone, say -ENODATA (never 0) when the file ends before the range does, and
 * carry on after a short write (here cut short by RLIMIT_FSIZE) to the error behind it. */
static void file_pread_pwrite_all_whole_ranges(void **state)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ranges.bin", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(file_pwrite_all(fd, "0123456789", 10, 0), 0);
    assert_int_equal(file_pwrite_all(fd, "ab", 2, 20), 0);   /* a hole at [10, 20) */
    assert_int_equal(file_pwrite_all(fd, NULL, 0, 1000), 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 22);

    uint8_t want[22] = "0123456789", got[32];
    want[20] = 'a';
    want[21] = 'b';
    assert_int_equal(file_pread_all(fd, got, 22, 0), 0);
    assert_memory_equal(got, want, 22);
    assert_int_equal(file_pread_all(fd, got, 4, 18), 0);
    assert_memory_equal(got, "\0\0ab", 4);
    assert_int_equal(file_pread_all(fd, got, 0, 1000), 0);
    /* The file ends first: -ENODATA, what there was in buf. */
    memset(got, 0xee, sizeof got);
    assert_int_equal(file_pread_all(fd, got, 23, 0), -ENODATA);
    assert_memory_equal(got, want, 22);
    assert_int_equal(file_pread_all(fd, got, 8, 18), -ENODATA);
    assert_int_equal(file_pread_all(fd, got, 1, 22), -ENODATA);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);

    /* Offsets past off_t, a pipe, a bad descriptor: the errno, nothing done. */
    assert_int_equal(file_pread_all(fd, got, 1, UINT64_MAX), -EINVAL);
    assert_int_equal(file_pwrite_all(fd, "xy", 2, (uint64_t)INT64_MAX), -EINVAL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(file_pread_all(p[0], got, 1, 0), -ESPIPE);
    assert_int_equal(file_pwrite_all(p[1], "x", 1, 0), -ESPIPE);
    close(p[0]);
    close(p[1]);
    assert_int_equal(file_pread_all(-1, got, 1, 0), -EBADF);

    /* A write that crosses the file size limit is cut short at it, and the next one
     * fails: the bytes below the limit are there, and the error comes back. */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 25;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = file_pwrite_all(fd, "ABCDEFGHIJ", 10, 20);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(file_pread_all(fd, got, 5, 20), 0);
    assert_memory_equal(got, "ABCDE", 5);
    assert_int_equal(file_pread_all(fd, got, 6, 20), -ENODATA);
    close(fd);
    unlink(path);
}

/* file_mkdirs fsyncs the parent of every directory it creates, one fsync each, and
 * the parent of the last one also when it was there already (none for the directories
 * above it); a failed fsync is its error, and stops it; a retry fsyncs what the failed
 * call left unsynced; a file system that refuses directory fsyncs (EINVAL, EROFS) is no
 * error. */
static void mkdirs_fsyncs_the_parent_of_each_directory_it_creates(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/a/b/c", tmpdir);
    fault_arm(FAULT_FSYNC, 0, 0);   /* count only */
    assert_int_equal(file_mkdirs(path, 0755), 0);
    assert_int_equal(fault_calls(FAULT_FSYNC), 3);   /* tmpdir, a, b */
    assert_true(is_dir(path));

    fault_arm(FAULT_FSYNC, 0, 0);
    assert_int_equal(file_mkdirs(path, 0755), 0);
    assert_int_equal(fault_calls(FAULT_FSYNC), 1);   /* all there: b, for c, only */

    snprintf(path, sizeof path, "%s/a//b/d/", tmpdir);
    fault_arm(FAULT_FSYNC, 0, 0);
    assert_int_equal(file_mkdirs(path, 0755), 0);
    assert_int_equal(fault_calls(FAULT_FSYNC), 1);   /* b, for d */
    assert_true(is_dir(path));

    snprintf(path, sizeof path, "%s/x/y/z", tmpdir);
    fault_arm(FAULT_FSYNC, 2, 0);   /* the fsync of x, for y, fails */
    assert_int_equal(file_mkdirs(path, 0755), -EIO);
    fault_disarm();
    assert_int_equal(fault_hits(), 1);
    snprintf(path, sizeof path, "%s/x/y", tmpdir);
    assert_true(is_dir(path));
    snprintf(path, sizeof path, "%s/x/y/z", tmpdir);
    assert_false(is_dir(path));
    /* The retry of x/y (there, its entry in x never synced) fsyncs x. */
    snprintf(path, sizeof path, "%s/x/y/", tmpdir);
    fault_arm(FAULT_FSYNC, 0, 0);
    assert_int_equal(file_mkdirs(path, 0755), 0);
    assert_int_equal(fault_calls(FAULT_FSYNC), 1);

    /* Directory fsyncs refused by the file system: the mkdirs succeed. */
    snprintf(path, sizeof path, "%s/e/f", tmpdir);
    fault_arm(FAULT_FSYNC, 1, 1);
    fault_fsync_errno(EINVAL);
    assert_int_equal(file_mkdirs(path, 0755), 0);
    assert_int_equal(fault_hits(), 2);
    assert_true(is_dir(path));
    fault_arm(FAULT_FSYNC, 1, 1);
    fault_fsync_errno(EROFS);
    assert_int_equal(file_mkdirs(path, 0755), 0);
    assert_int_equal(fault_hits(), 1);
    fault_disarm();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_pread_pwrite_all_whole_ranges),
        cmocka_unit_test(mkdirs_fsyncs_the_parent_of_each_directory_it_creates),
    };
    return cmocka_run_group_tests_name("fileio", tests, make_tmp, remove_tmp);
}
