/* The data directory's format marker (coordinator/datadir.h): a fresh directory gets
 * FORMAT, a format-1 one (a ledger, no FORMAT) is upgraded, a newer or unreadable FORMAT
 * and a directory of other files are refused with messages naming the versions and the
 * path; and a coordinator does not start on them. Disk use sums by kind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "coordinator/datadir.h"
#include "crypto/keys.h"
#include "ledger/ledger.h"

struct fixture {
    char root[64];
    char dir[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/aulac-datadir-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/data", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0644), 0);
}

static char *read_format(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/FORMAT", dir);
    uint8_t *buf = NULL;
    size_t len;
    assert_int_equal(file_read_all(path, 1024, &buf, &len), 0);
    return (char *)buf;
}

static void fresh_directory_gets_format(void **state)
{
    struct fixture *f = *state;
    char why[1024] = "";
    int from = -1;
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), 0);   /* created */
    assert_int_equal(from, 0);
    char *text = read_format(f->dir);
    assert_string_equal(text, "aulac-coordinator data format 2\n");
    free(text);
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), 0);   /* again: as is */
    assert_int_equal(from, 0);
    /* an empty directory, and one with only what an operator puts there first */
    char other[160];
    snprintf(other, sizeof other, "%s/other", f->root);
    assert_int_equal(mkdir(other, 0700), 0);
    char evalsets[200];
    snprintf(evalsets, sizeof evalsets, "%s/evalsets", other);
    assert_int_equal(mkdir(evalsets, 0700), 0);
    assert_int_equal(datadir_check(other, &from, why, sizeof why), 0);
}

static void format_one_is_upgraded(void **state)
{
    struct fixture *f = *state;
    struct ledger *l;
    assert_int_equal(ledger_open(f->dir, NULL, &l), 0);   /* as an older aulac left it */
    ledger_close(l);
    char why[1024] = "";
    int from = 0;
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), 0);
    assert_int_equal(from, 1);
    char *text = read_format(f->dir);
    assert_string_equal(text, "aulac-coordinator data format 2\n");
    free(text);
}

static void newer_format_is_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    write_file(f->dir, "FORMAT", "aulac-coordinator data format 3\n");
    char why[1024] = "";
    int from = 0;
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), DATADIR_ERR_NEWER);
    assert_non_null(strstr(why, "data format 3"));
    assert_non_null(strstr(why, "reads data format 2"));
    assert_non_null(strstr(why, f->dir));
    char *text = read_format(f->dir);   /* left as it was */
    assert_string_equal(text, "aulac-coordinator data format 3\n");
    free(text);
}

static void unreadable_format_is_refused(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "", "aulac-coordinator data format\n", "aulac-coordinator data format 2",
        "aulac-coordinator data format 02\n", "aulac-coordinator data format 2\nmore\n",
        "aulac-coordinator data format -1\n", "aulac-coordinator data format 0\n",
        "something else entirely\n", "aulac-coordinator data format 99999999999\n",
    };
    assert_int_equal(mkdir(f->dir, 0700), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(f->dir, "FORMAT", bad[i]);
        char why[1024] = "";
        int from = 0;
        assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), DATADIR_ERR_BAD);
        assert_non_null(strstr(why, "FORMAT"));
        assert_non_null(strstr(why, "format 2"));
    }
    char path[256];   /* a directory where the file should be */
    snprintf(path, sizeof path, "%s/FORMAT", f->dir);
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    char why[1024] = "";
    int from = 0;
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), DATADIR_ERR_BAD);
}

static void foreign_directory_is_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    write_file(f->dir, "thesis.pdf", "%PDF-1.4\n");
    char why[1024] = "";
    int from = 0;
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), DATADIR_ERR_FOREIGN);
    assert_non_null(strstr(why, "not an aulac data directory"));
    assert_non_null(strstr(why, "thesis.pdf"));
    char path[256];
    snprintf(path, sizeof path, "%s/FORMAT", f->dir);
    assert_false(file_exists(path));   /* nothing written */
}

/* coord_open refuses the newer format before it creates or opens anything. */
static void coordinator_does_not_start_on_a_newer_format(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    write_file(f->dir, "FORMAT", "aulac-coordinator data format 7\n");
    struct crypto_key *k, *m;
    uint8_t seed[32] = { 1 }, mseed[32] = { 2 };
    assert_int_equal(crypto_key_from_seed("coordinator", seed, &k), 0);
    assert_int_equal(crypto_key_from_seed("fpt", mseed, &m), 0);
    struct crypto_public_key pk;
    char b64[45], text[512];
    crypto_key_public(m, &pk);
    crypto_public_key_to_base64(pk.key, b64);
    crypto_key_free(m);
    snprintf(text, sizeof text, "alliance: datadir-test\nmembers:\n  - id: fpt\n"
             "    organization: FPT\n    roles: [member]\n    public_key: %s\n", b64);
    write_file(f->root, "roster.yaml", text);
    char key[160], roster[160];
    snprintf(key, sizeof key, "%s/coordinator.key", f->root);
    snprintf(roster, sizeof roster, "%s/roster.yaml", f->root);
    assert_int_equal(crypto_key_save_secret(k, key, 0), 0);
    crypto_key_free(k);
    struct coord_options o = { .data_dir = f->dir, .key_path = key, .roster_path = roster,
                               .listen_addr = "127.0.0.1:0" };
    struct coord *c = calloc(1, sizeof *c);
    assert_int_equal(coord_open(c, &o), COORD_ERR_CONFIG);
    coord_close(c);
    free(c);
    /* without FORMAT (the refusal created nothing: a fresh directory) it starts, writes
     * FORMAT; refused again once FORMAT names a newer format */
    char path0[256];
    snprintf(path0, sizeof path0, "%s/FORMAT", f->dir);
    unlink(path0);
    c = calloc(1, sizeof *c);
    assert_int_equal(coord_open(c, &o), 0);
    coord_close(c);
    free(c);
    char *fmt = read_format(f->dir);
    assert_string_equal(fmt, "aulac-coordinator data format 2\n");
    free(fmt);
    write_file(f->dir, "FORMAT", "aulac-coordinator data format 7\n");
    c = calloc(1, sizeof *c);
    assert_int_equal(coord_open(c, &o), COORD_ERR_CONFIG);
    coord_close(c);
    free(c);
}

static void disk_use_by_kind(void **state)
{
    struct fixture *f = *state;
    char why[1024];
    int from;
    assert_int_equal(datadir_check(f->dir, &from, why, sizeof why), 0);
    char sub[256];
    static char big[64 * 1024];
    memset(big, 1, sizeof big);
    snprintf(sub, sizeof sub, "%s/models/aa", f->dir);
    assert_int_equal(file_mkdirs(sub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/models/aa/model.safetensors", f->dir);
    assert_int_equal(file_write_atomic(sub, big, sizeof big, 0644), 0);
    snprintf(sub, sizeof sub, "%s/experiments/e1/payloads", f->dir);
    assert_int_equal(file_mkdirs(sub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/experiments/e1/payloads/x.bin", f->dir);
    assert_int_equal(file_write_atomic(sub, big, sizeof big / 2, 0644), 0);
    snprintf(sub, sizeof sub, "%s/experiments/e1/outer", f->dir);
    assert_int_equal(file_mkdirs(sub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/experiments/e1/outer/1.bin", f->dir);
    assert_int_equal(file_write_atomic(sub, big, sizeof big / 4, 0644), 0);
    struct datadir_usage u;
    assert_int_equal(datadir_measure(f->dir, &u), 0);
    assert_true(u.checkpoints >= sizeof big);
    assert_true(u.payloads >= sizeof big / 2 && u.payloads < sizeof big);
    assert_true(u.experiment_files >= sizeof big / 4 && u.experiment_files < sizeof big / 2);
    assert_int_equal(u.ledger, 0);
    assert_true(u.other > 0);   /* FORMAT */
    assert_int_equal(u.total, u.ledger + u.checkpoints + u.payloads + u.experiment_files +
                                  u.artifacts + u.spool + u.other);
    assert_true(u.free_bytes > 0 && u.fs_bytes >= u.free_bytes && u.measured_ms > 0);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fresh_directory_gets_format, setup, teardown),
        cmocka_unit_test_setup_teardown(format_one_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_format_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unreadable_format_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_directory_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(coordinator_does_not_start_on_a_newer_format, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(disk_use_by_kind, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
