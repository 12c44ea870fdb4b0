/* `aulac status` and the Status RPC with differential privacy (PRIVACY.md): a real
 * in-process coordinator whose experiment's policy has privacy (set on the loaded
 * policy: the accountant's inputs) answers each closed round's epsilon and the epsilon
 * spent so far, rdp_epsilon(1, z, rounds, delta), the value round_closed carries; the
 * CLI prints them; without privacy nothing of it is shown. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>

#include "trust_fixture.h"
#include "cli/cli.h"
#include "privacy/rdp.h"

static const struct policy_privacy dp = {
    .enabled = 1, .clip = 1.0, .noise_multiplier = 1.1, .delta = 1e-5, .target_epsilon = 30,
};

static void set_privacy(struct fx *f, const struct policy_privacy *p)
{
    pthread_mutex_lock(&f->c->mu);
    f->c->policy.privacy = *p;
    pthread_mutex_unlock(&f->c->mu);
}

static Aulac__V1__StatusReply *status(struct fx *f)
{
    struct fed_client *cl = fx_client(f, NULL);
    Aulac__V1__StatusRequest req = AULAC__V1__STATUS_REQUEST__INIT;
    Aulac__V1__StatusReply *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_status(cl, &req, &r, &st), 0);
    fed_client_close(cl);
    return r;
}

/* What `aulac status --coordinator ADDR [--json]` prints (malloc'd). */
static char *status_output(struct fx *f, int json)
{
    char path[] = "/tmp/aulac-status-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 1), 1);
    char *argv[8];
    int argc = 0;
    argv[argc++] = "status";
    argv[argc++] = "--coordinator";
    argv[argc++] = f->addr;
    if (f->tls_ca) {
        argv[argc++] = "--tls-ca";
        argv[argc++] = (char *)f->tls_ca;
    } else {
        argv[argc++] = "--insecure";
    }
    if (json)
        argv[argc++] = "--json";
    argv[argc] = NULL;
    int rc = cmd_status(argc, argv);
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(saved);
    close(fd);
    assert_int_equal(rc, 0);
    uint8_t *text;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &text, &len), 0);
    unlink(path);
    char *s = malloc(len + 1);
    memcpy(s, text, len);
    s[len] = 0;
    free(text);
    return s;
}

static void status_shows_the_epsilon_spent(void **state)
{
    (void)state;
    struct fx fx;
    struct fx *f = &fx;
    memset(f, 0, sizeof *f);
    fx_prepare(f);
    fx_start(f);
    set_privacy(f, &dp);

    /* before the first round closes: privacy, nothing spent */
    Aulac__V1__StatusReply *r = status(f);
    assert_true(r->privacy);
    assert_true(r->epsilon == 0);
    assert_true(r->privacy_delta == 1e-5);
    assert_true(r->noise_multiplier == 1.1);
    assert_true(r->target_epsilon == 30);
    assert_int_equal(r->n_rounds, 0);
    aulac__v1__status_reply__free_unpacked(r, NULL);

    for (int m = FPT; m <= HUST; m++)   /* the roster's members: the round closes */
        fx_submit_accepted(f, m, 1);
    assert_true(fx_wait_round(f, 2) >= 2);

    double e1;
    assert_int_equal(rdp_epsilon(1.0, 1.1, 1, 1e-5, &e1), 0);
    assert_true(e1 > 0 && isfinite(e1));
    r = status(f);
    assert_true(r->privacy);
    assert_int_equal(r->n_rounds, 1);
    assert_true(r->rounds[0]->epsilon == e1);
    assert_true(r->epsilon == e1);
    aulac__v1__status_reply__free_unpacked(r, NULL);

    char *text = status_output(f, 0);
    char want[160];
    snprintf(want, sizeof want, "privacy: epsilon %.4g spent at delta 1e-05 (noise multiplier "
             "1.1; target epsilon 30)", e1);
    if (!strstr(text, want))
        fail_msg("status printed:\n%s\nwithout: %s", text, want);
    assert_non_null(strstr(text, "train loss  epsilon\n"));
    free(text);
    char *json = status_output(f, 1);
    char num[40];
    snprintf(num, sizeof num, "%.17g", e1);
    char jwant[200];
    snprintf(jwant, sizeof jwant, "\"privacy\":{\"epsilon\":%s,\"delta\":1.0000000000000001e-05,"
             "\"noise_multiplier\":1.1000000000000001,\"target_epsilon\":30}", num);
    if (!strstr(json, jwant))
        fail_msg("status --json printed:\n%s\nwithout: %s", json, jwant);
    snprintf(jwant, sizeof jwant, "\"upload_bytes\":");
    assert_non_null(strstr(json, jwant));
    snprintf(jwant, sizeof jwant, ",\"epsilon\":%s,\"members\":[", num);
    assert_non_null(strstr(json, jwant));   /* the round's */
    free(json);

    /* without privacy: no epsilon anywhere */
    struct policy_privacy none = { 0 };
    set_privacy(f, &none);
    r = status(f);
    assert_false(r->privacy);
    assert_true(r->epsilon == 0);
    assert_true(r->rounds[0]->epsilon == 0);
    aulac__v1__status_reply__free_unpacked(r, NULL);
    text = status_output(f, 0);
    assert_null(strstr(text, "epsilon"));
    free(text);
    json = status_output(f, 1);
    assert_null(strstr(json, "epsilon"));
    assert_null(strstr(json, "privacy"));
    free(json);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_shows_the_epsilon_spent),
    };
    return cmocka_run_group_tests_name("status_privacy", tests, NULL, NULL);
}
