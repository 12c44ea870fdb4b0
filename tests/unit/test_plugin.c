/* worker/plugin.{h,c}: a plug-in trainer driven through plugin_train_round with the fake
 * plug-in tests/support/fake_trainer.py (worker/TRAINER.md is the contract): the round's
 * files, both modes, and every refusal with its code and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/log.h"
#include "worker/plugin.h"

static char fake_path[PATH_MAX];

struct fx {
    char dir[64];
    char log[128];
    char *argv[3];
    char env[4][512];
    char *envp[4];
    struct site_trainer t;
    struct model_layout L;
    float *base, *local;
    struct policy pol;
    struct policy_round_plan plan;
    const char *files[2];
    struct plugin *p;
    int progress_calls;
    double progress_loss;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/aulac-test-plugin-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->log, sizeof f->log, "%s/fake.log", f->dir);
    f->argv[0] = "python3";
    f->argv[1] = fake_path;
    f->t.kind = SITE_TRAINER_COMMAND;
    f->t.mode = SITE_TRAINER_ONESHOT;
    f->t.argv = f->argv;
    f->t.n_args = 2;
    f->t.timeout_s = 60;
    f->t.env = f->envp;
    struct gpt2_config cfg = { .vocab_size = 256, .max_seq_len = 8, .n_layer = 1, .n_head = 2,
                               .n_embd = 8 };
    assert_int_equal(model_layout_gpt2(&cfg, &f->L), 0);
    f->base = malloc(f->L.n_params * sizeof(float));
    f->local = malloc(f->L.n_params * sizeof(float));
    assert_non_null(f->base);
    assert_non_null(f->local);
    for (uint64_t i = 0; i < f->L.n_params; i++)
        f->base[i] = 0.01f * (float)((i % 97) + 1) - 0.5f;
    f->pol.model.family = POLICY_FAMILY_GPT2;
    f->pol.data.validation_fraction = 0.1;
    f->plan.round = 1;
    f->plan.model = cfg;
    f->plan.n_params = f->L.n_params;
    f->plan.local_steps = 2;
    f->plan.batch_size = 2;
    f->plan.seq_len = 8;
    f->plan.warmup_steps = 100;
    f->plan.lr = 6e-4f;
    f->plan.weight_decay = 0.1f;
    f->plan.grad_clip = 1.0f;
    f->plan.beta1 = 0.9f;
    f->plan.beta2 = 0.95f;
    f->plan.eps = 1e-8f;
    f->files[0] = "a.txt";
    f->files[1] = "b/c.txt";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    plugin_close(f->p);
    model_layout_free(&f->L);
    free(f->base);
    free(f->local);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* The fake's behaviour (through the site's env, as a member would set it). */
static void behave(struct fx *f, const char *mode, const char *bad_rounds)
{
    size_t n = 0;
    snprintf(f->env[n], sizeof f->env[n], "FAKE_TRAINER_MODE=%s", mode);
    f->envp[n] = f->env[n];
    n++;
    snprintf(f->env[n], sizeof f->env[n], "FAKE_TRAINER_LOG=%s", f->log);
    f->envp[n] = f->env[n];
    n++;
    if (bad_rounds) {
        snprintf(f->env[n], sizeof f->env[n], "FAKE_TRAINER_BAD_ROUNDS=%s", bad_rounds);
        f->envp[n] = f->env[n];
        n++;
    }
    f->t.n_env = n;
}

static void on_progress(void *arg, uint64_t step, uint64_t steps, double loss)
{
    struct fx *f = arg;
    f->progress_calls++;
    f->progress_loss = loss;
    assert_int_equal(step, 1);
    assert_int_equal(steps, 2);
}

static int round_of(struct fx *f, uint64_t round, struct plugin_metrics *m, char *why,
                    size_t cap)
{
    if (!f->p) {
        assert_int_equal(plugin_open(&f->t, f->dir, &f->p, why, cap), 0);
    }
    f->plan.round = round;
    struct plugin_round r = {
        .experiment = "demo-3f2a9c41", .member = "fpt", .round = round, .total_rounds = 12,
        .plan = &f->plan, .policy = &f->pol, .layout = &f->L, .base = f->base,
        .data_dir = "/srv/corpus", .data_files = f->files, .n_data_files = 2,
        .optimizer_step = 40, .seed = 1311768467463790320ull, .validation_windows = 32,
        .on_progress = on_progress, .progress_arg = f,
    };
    why[0] = 0;
    for (uint64_t i = 0; i < f->L.n_params; i++)
        f->local[i] = -1;
    return plugin_train_round(f->p, &r, f->local, m, NULL, why, cap);
}

static void assert_trained(const struct fx *f)
{
    for (uint64_t i = 0; i < f->L.n_params; i++)
        assert_true(fabsf(f->local[i] - f->base[i] * (1.0f - 1e-3f)) <= 1e-6f);
}

static void assert_refused(struct fx *f, uint64_t round, int code, const char *fragment)
{
    struct plugin_metrics m;
    char why[600];
    int rc = round_of(f, round, &m, why, sizeof why);
    if (rc != code || !strstr(why, fragment))
        fail_msg("expected %s (%d) with \"%s\"; got %d: %s", plugin_strerror(code), code,
                 fragment, rc, why);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "round %llu: ", (unsigned long long)round);
    assert_true(strncmp(why, prefix, strlen(prefix)) == 0);
}

static char *slurp(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, 1 << 20, &buf, &len) != 0)
        return NULL;
    char *s = realloc(buf, len + 1);
    s[len] = 0;
    return s;
}

/* The current round's directory: the one trainer/round-* there is (earlier rounds' are
 * removed). */
static void current_round_dir(const struct fx *f, char *out, size_t cap)
{
    char trainer[PATH_MAX / 2];
    snprintf(trainer, sizeof trainer, "%s/trainer", f->dir);
    DIR *d = opendir(trainer);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "round", 5) == 0) {
            snprintf(out, cap, "%s/%s", trainer, de->d_name);
            n++;
        }
    closedir(d);
    assert_int_equal(n, 1);
}

static int count_lines(const char *path, const char *line)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    char b[256];
    int n = 0;
    while (fgets(b, sizeof b, fp))
        n += strcmp(b, line) == 0;
    fclose(fp);
    return n;
}

static void oneshot_model_trains_and_plan_has_every_field(void **state)
{
    struct fx *f = *state;
    behave(f, "good_model", NULL);
    struct plugin_metrics m;
    char why[600];
    assert_int_equal(round_of(f, 3, &m, why, sizeof why), 0);
    assert_trained(f);
    assert_int_equal(m.tokens, 32);
    assert_int_equal(m.steps, 2);
    assert_true(m.train_loss == 2.5 && m.validation_loss == 2.75);

    char round_dir[PATH_MAX];
    current_round_dir(f, round_dir, sizeof round_dir);
    assert_non_null(strstr(round_dir, "/trainer/round-3-"));
    char *text = slurp(round_dir, "plan.json");
    assert_non_null(text);
    struct json_doc *d;
    assert_int_equal(json_parse(text, strlen(text), &d, why, sizeof why), 0);
    const struct json_value *r = json_root(d);
    uint64_t u;
    assert_int_equal(json_u64(json_get(r, "aulac_trainer"), &u), 0);
    assert_int_equal(u, 1);
    assert_string_equal(json_str(json_get(r, "experiment")), "demo-3f2a9c41");
    assert_string_equal(json_str(json_get(r, "member")), "fpt");
    assert_int_equal(json_u64(json_get(r, "round"), &u), 0);
    assert_int_equal(u, 3);
    assert_int_equal(json_u64(json_get(r, "total_rounds"), &u), 0);
    assert_int_equal(u, 12);
    const struct json_value *model = json_get(r, "model");
    assert_string_equal(json_str(json_get(model, "family")), "gpt2");
    assert_int_equal(json_u64(json_get(model, "n_params"), &u), 0);
    assert_int_equal(u, f->L.n_params);
    assert_int_equal(json_u64(json_get(json_get(model, "gpt2"), "n_positions"), &u), 0);
    assert_int_equal(u, 8);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s/in/model.safetensors", round_dir);
    assert_string_equal(json_str(json_get(model, "input")), want);
    snprintf(want, sizeof want, "%s/in/config.json", round_dir);
    assert_string_equal(json_str(json_get(model, "config")), want);
    assert_int_equal(json_type(json_get(model, "tokenizer")), JSON_NULL);
    const struct json_value *out = json_get(r, "output");
    snprintf(want, sizeof want, "%s/out/delta.safetensors", round_dir);
    assert_string_equal(json_str(json_get(out, "delta")), want);
    snprintf(want, sizeof want, "%s/out/metrics.json", round_dir);
    assert_string_equal(json_str(json_get(out, "metrics")), want);
    assert_int_equal(json_str(json_get(r, "state_dir"))[0], '/');
    const struct json_value *tr = json_get(r, "training");
    double x;
    assert_int_equal(json_double(json_get(tr, "lr"), &x), 0);
    assert_true(x == 0.0006);   /* the shortest text of the float: "0.0006" */
    assert_int_equal(json_double(json_get(tr, "eps"), &x), 0);
    assert_true(x == 1e-8);
    assert_int_equal(json_u64(json_get(tr, "optimizer_step"), &u), 0);
    assert_int_equal(u, 40);
    assert_int_equal(json_u64(json_get(tr, "warmup_steps"), &u), 0);
    assert_int_equal(u, 100);
    assert_int_equal(json_u64(json_get(r, "seed"), &u), 0);
    assert_true(u == 1311768467463790320ull);
    const struct json_value *data = json_get(r, "data");
    assert_string_equal(json_str(json_at(json_get(data, "files"), 1, NULL)), "b/c.txt");
    assert_int_equal(json_double(json_get(data, "validation_fraction"), &x), 0);
    assert_true(x == 0.1);
    assert_int_equal(json_u64(json_get(json_get(r, "limits"), "max_tokens"), &u), 0);
    assert_int_equal(u, 32);
    assert_int_equal(json_u64(json_get(json_get(r, "limits"), "timeout_s"), &u), 0);
    assert_int_equal(u, 60);
    json_free(d);
    free(text);

    char in_dir[PATH_MAX + 8];
    snprintf(in_dir, sizeof in_dir, "%s/in", round_dir);
    char *config = slurp(in_dir, "config.json");
    assert_non_null(config);
    assert_non_null(strstr(config, "\"model_type\": \"gpt2\""));
    free(config);
}

static void oneshot_delta_is_added_to_the_base(void **state)
{
    struct fx *f = *state;
    behave(f, "good_delta", NULL);
    struct plugin_metrics m;
    char why[600];
    assert_int_equal(round_of(f, 1, &m, why, sizeof why), 0);
    assert_trained(f);
}

static void null_validation_loss_is_allowed(void **state)
{
    struct fx *f = *state;
    behave(f, "null_validation", NULL);
    struct plugin_metrics m;
    char why[600];
    assert_int_equal(round_of(f, 1, &m, why, sizeof why), 0);
    assert_true(isnan(m.validation_loss));
}

static void every_bad_output_is_refused_and_the_next_round_proceeds(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *mode;
        int code;
        const char *fragment;
    } cases[] = {
        { "missing", PLUGIN_ERR_OUTPUT, "model.safetensors: tensor h.0.attn.c_attn.bias is missing" },
        { "extra", PLUGIN_ERR_OUTPUT, "tensor zz.extra.weight is not in the model" },
        { "shape", PLUGIN_ERR_OUTPUT, "tensor h.0.attn.c_attn.bias has shape [1, 24]; the model's is [24]" },
        { "i64", PLUGIN_ERR_OUTPUT, "is stored as I64" },
        { "nan", PLUGIN_ERR_NONFINITE, "holds NaN at index" },
        { "zero", PLUGIN_ERR_OUTPUT, "model.safetensors is empty (0 bytes)" },
        { "truncated", PLUGIN_ERR_OUTPUT, "is truncated or malformed" },
        { "both", PLUGIN_ERR_OUTPUT, "wrote both model.safetensors and delta.safetensors" },
        { "no_metrics", PLUGIN_ERR_METRICS, "wrote no readable metrics.json" },
        { "tokens_over", PLUGIN_ERR_METRICS, "claims 33 tokens; the plan allows 1 to 32" },
        { "negative_loss", PLUGIN_ERR_METRICS, "train_loss as -0.5; losses are never negative" },
        { "exit3", PLUGIN_ERR_EXIT, "the trainer exited with status 3" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        behave(f, cases[i].mode, "1");
        assert_refused(f, 1, cases[i].code, cases[i].fragment);
        struct plugin_metrics m;
        char why[600];
        if (round_of(f, 2, &m, why, sizeof why) != 0)
            fail_msg("after %s: round 2 failed: %s", cases[i].mode, why);
        assert_trained(f);
    }
}

static void a_command_that_cannot_start_is_refused(void **state)
{
    struct fx *f = *state;
    behave(f, "good_model", NULL);
    f->argv[0] = "/nonexistent/aulac-trainer";
    assert_refused(f, 4, PLUGIN_ERR_START, "cannot be started");
}

static void a_hung_trainer_is_killed_at_its_timeout(void **state)
{
    struct fx *f = *state;
    f->t.timeout_s = 1;
    behave(f, "sleep", "1");
    assert_refused(f, 1, PLUGIN_ERR_TIMEOUT, "still running after timeout_s 1 s");
}

static void what_it_writes_after_the_timeout_is_never_read(void **state)
{
    struct fx *f = *state;
    f->t.timeout_s = 1;
    behave(f, "late_write", "1");
    assert_refused(f, 1, PLUGIN_ERR_TIMEOUT, "nothing it wrote is used");
    /* it did write its outputs on SIGTERM: they are there, and were not used */
    char dir1[PATH_MAX], path[PATH_MAX + 32];
    current_round_dir(f, dir1, sizeof dir1);
    snprintf(path, sizeof path, "%s/out/model.safetensors", dir1);
    assert_true(file_exists(path));
    /* the next round gets a fresh directory; round 1's is gone */
    f->t.timeout_s = 60;
    behave(f, "no_metrics", "2");
    assert_refused(f, 2, PLUGIN_ERR_METRICS, "no readable metrics.json");
    char dir2[PATH_MAX];
    current_round_dir(f, dir2, sizeof dir2);
    assert_string_not_equal(dir1, dir2);
    assert_false(file_exists(dir1));
}

/* H3: a helper that left the process group (setsid) and outlived the timeout is ended
 * with the round, and could not have reached the next round's files anyway. */
static void a_descendant_that_escaped_is_ended_and_never_read(void **state)
{
    struct fx *f = *state;
    f->t.timeout_s = 1;
    behave(f, "escape", "1");
    assert_refused(f, 1, PLUGIN_ERR_TIMEOUT, "nothing it wrote is used");
    char *pidtext = slurp(f->dir, "trainer/state/escaped.pid");
    assert_non_null(pidtext);
    pid_t pid = (pid_t)atoi(pidtext);
    free(pidtext);
    assert_true(pid > 0);
    /* ended and reaped by the worker (its subreaper) before round 1 returned */
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    /* round 2 runs across the moment the helper would have written (+100): its own
     * model is read */
    f->t.timeout_s = 60;
    behave(f, "slow_model", NULL);
    struct plugin_metrics m;
    char why[600];
    if (round_of(f, 2, &m, why, sizeof why) != 0)
        fail_msg("round 2: %s", why);
    assert_trained(f);
}

/* H2: an output that is a link to a FIFO is refused without blocking. */
static void a_link_to_a_fifo_is_refused(void **state)
{
    struct fx *f = *state;
    behave(f, "fifo_link", "1");
    alarm(60);
    assert_refused(f, 1, PLUGIN_ERR_OUTPUT, "model.safetensors is a symbolic link");
    alarm(0);
}

/* A serve-mode plug-in (or what it left running) that rewrites its output while the
 * worker reads it: each round is read or refused, the worker never faults (H1: the
 * file was mapped; truncating it raised SIGBUS) nor blocks (H2: a link to a FIFO that
 * appears between the check and the open). */
static void outputs_changing_under_the_reader_are_read_or_refused(void **state)
{
    struct fx *f = *state;
    static const char *const modes[] = { "truncating", "fifo_race" };
    model_layout_free(&f->L);
    struct gpt2_config cfg = { .vocab_size = 256, .max_seq_len = 8, .n_layer = 4, .n_head = 2,
                               .n_embd = 128 };
    assert_int_equal(model_layout_gpt2(&cfg, &f->L), 0);
    f->base = realloc(f->base, f->L.n_params * sizeof(float));
    f->local = realloc(f->local, f->L.n_params * sizeof(float));
    for (uint64_t i = 0; i < f->L.n_params; i++)
        f->base[i] = 0.25f;
    f->plan.model = cfg;
    f->plan.n_params = f->L.n_params;
    f->t.mode = SITE_TRAINER_SERVE;
    alarm(240);   /* a blocked open ends the test instead of hanging it */
    for (size_t k = 0; k < 2; k++) {
        plugin_close(f->p);
        f->p = NULL;
        behave(f, modes[k], NULL);
        int ok = 0, refused = 0;
        for (uint64_t r = 1; r <= 6; r++) {
            struct plugin_metrics m;
            char why[600];
            int rc = round_of(f, r, &m, why, sizeof why);
            if (rc == 0)
                ok++;
            else if (rc == PLUGIN_ERR_OUTPUT || rc == PLUGIN_ERR_NONFINITE)
                refused++;
            else
                fail_msg("%s: round %llu: %d %s", modes[k], (unsigned long long)r, rc, why);
        }
        assert_int_equal(ok + refused, 6);
    }
    alarm(0);
}

/* L10: a progress line of an earlier round that arrives in the next one is ignored. */
static void a_stale_progress_line_is_ignored(void **state)
{
    struct fx *f = *state;
    f->t.mode = SITE_TRAINER_SERVE;
    behave(f, "stale_progress", "1");
    struct plugin_metrics m;
    char why[600];
    for (uint64_t r = 1; r <= 2; r++) {
        if (round_of(f, r, &m, why, sizeof why) != 0)
            fail_msg("round %llu: %s", (unsigned long long)r, why);
        assert_trained(f);
    }
    assert_int_equal(count_lines(f->log, "start\n"), 1);
}

/* L11: two workers on one workdir: the second is refused, naming the first. */
static void a_workdir_holds_one_worker(void **state)
{
    struct fx *f = *state;
    char why[600];
    assert_int_equal(plugin_open(&f->t, f->dir, &f->p, why, sizeof why), 0);
    struct plugin *q = NULL;
    assert_int_equal(plugin_open(&f->t, f->dir, &q, why, sizeof why), PLUGIN_ERR_IO);
    assert_null(q);
    char want[128];
    snprintf(want, sizeof want, "is used by another worker (pid %ld)", (long)getpid());
    if (!strstr(why, want))
        fail_msg("got: %s", why);
    plugin_close(f->p);
    f->p = NULL;
    assert_int_equal(plugin_open(&f->t, f->dir, &q, why, sizeof why), 0);
    plugin_close(q);
}

static void serve_mode_keeps_one_process_across_rounds(void **state)
{
    struct fx *f = *state;
    f->t.mode = SITE_TRAINER_SERVE;
    behave(f, "good_delta", NULL);
    struct plugin_metrics m;
    char why[600];
    for (uint64_t r = 1; r <= 3; r++) {
        if (round_of(f, r, &m, why, sizeof why) != 0)
            fail_msg("round %llu: %s", (unsigned long long)r, why);
        assert_trained(f);
    }
    assert_int_equal(f->progress_calls, 3);
    assert_true(f->progress_loss == 3.25);
    assert_int_equal(count_lines(f->log, "start\n"), 1);
    plugin_close(f->p);   /* "exit": it ends by itself */
    f->p = NULL;
}

static void serve_protocol_errors_restart_the_trainer(void **state)
{
    struct fx *f = *state;
    f->t.mode = SITE_TRAINER_SERVE;
    static const struct {
        const char *mode;
        int code;
        const char *fragment;
        int restarts;
    } cases[] = {
        { "garbage", PLUGIN_ERR_PROTOCOL, "a line on stdout that is not JSON", 1 },
        { "wrong_round", PLUGIN_ERR_PROTOCOL, "answered \"done\" for round 2; this is round 1", 1 },
        { "long_line", PLUGIN_ERR_PROTOCOL, "(the limit is 64 KiB)", 1 },
        { "error", PLUGIN_ERR_EXIT, "reports an error: CUDA out of memory", 0 },
        { "exit3", PLUGIN_ERR_EXIT, "exited with status 3 before answering the round", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(f->log);
        plugin_close(f->p);
        f->p = NULL;
        behave(f, cases[i].mode, "1");
        assert_refused(f, 1, cases[i].code, cases[i].fragment);
        struct plugin_metrics m;
        char why[600];
        if (round_of(f, 2, &m, why, sizeof why) != 0)
            fail_msg("after %s: round 2 failed: %s", cases[i].mode, why);
        assert_trained(f);
        assert_int_equal(count_lines(f->log, "start\n"), 1 + cases[i].restarts);
    }
}

static void serve_timeout_kills_the_process(void **state)
{
    struct fx *f = *state;
    f->t.mode = SITE_TRAINER_SERVE;
    f->t.timeout_s = 1;
    behave(f, "sleep", "1");
    assert_refused(f, 1, PLUGIN_ERR_TIMEOUT, "had not answered after timeout_s 1 s");
}

static void external_model_gets_its_pinned_config_and_tokenizer(void **state)
{
    struct fx *f = *state;
    model_layout_free(&f->L);
    struct model_tensor t[2] = {
        { .name = "model.embed_tokens.weight", .ndim = 2, .shape = { 5, 4 }, .stored = ST_F32 },
        { .name = "lm_head.weight", .ndim = 2, .shape = { 5, 4 }, .stored = ST_F32 },
    };
    char why[600];
    assert_int_equal(model_layout_named(t, 2, &f->L, why, sizeof why), 0);
    assert_int_equal(f->L.kind, MODEL_LAYOUT_NAMED);
    f->pol.model.family = POLICY_FAMILY_EXTERNAL;
    char cfg[PATH_MAX], tok[PATH_MAX];
    snprintf(cfg, sizeof cfg, "%s/pinned-config.json", f->dir);
    snprintf(tok, sizeof tok, "%s/pinned-tokenizer.json", f->dir);
    assert_int_equal(file_write_atomic(cfg, "{\"model_type\": \"llama\"}", 23, 0600), 0);
    assert_int_equal(file_write_atomic(tok, "{\"model\": {}}", 13, 0600), 0);
    behave(f, "good_model", NULL);
    assert_int_equal(plugin_open(&f->t, f->dir, &f->p, why, sizeof why), 0);
    f->plan.round = 1;
    struct plugin_round r = {
        .experiment = "llama-1", .member = "fpt", .round = 1, .total_rounds = 2,
        .plan = &f->plan, .policy = &f->pol, .layout = &f->L, .base = f->base,
        .config_path = cfg, .tokenizer_path = tok, .data_dir = "/srv/corpus",
        .validation_windows = 32,
    };
    struct plugin_metrics m;
    assert_int_equal(plugin_train_round(f->p, &r, f->local, &m, NULL, why, sizeof why), 0);
    assert_trained(f);
    char rd[PATH_MAX], in_dir[PATH_MAX + 8];
    current_round_dir(f, rd, sizeof rd);
    snprintf(in_dir, sizeof in_dir, "%s/in", rd);
    char *c = slurp(in_dir, "config.json"), *k = slurp(in_dir, "tokenizer.json");
    assert_string_equal(c, "{\"model_type\": \"llama\"}");
    assert_string_equal(k, "{\"model\": {}}");
    free(c);
    free(k);
    char *plan = slurp(in_dir, "../plan.json");
    struct json_doc *d;
    assert_int_equal(json_parse(plan, strlen(plan), &d, why, sizeof why), 0);
    const struct json_value *model = json_get(json_root(d), "model");
    assert_string_equal(json_str(json_get(model, "family")), "external");
    assert_int_equal(json_type(json_get(model, "gpt2")), JSON_NULL);
    assert_non_null(strstr(json_str(json_get(model, "tokenizer")), "/in/tokenizer.json"));
    assert_non_null(strstr(json_str(json_get(model, "config")), "/in/config.json"));
    json_free(d);
    free(plan);
}

static void reset_empties_the_state_dir(void **state)
{
    struct fx *f = *state;
    char why[600];
    assert_int_equal(plugin_open(&f->t, f->dir, &f->p, why, sizeof why), 0);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer/state/adam.bin", f->dir);
    assert_int_equal(file_write_atomic(path, "x", 1, 0600), 0);
    assert_int_equal(plugin_reset(f->p, why, sizeof why), 0);
    assert_false(file_exists(path));
    snprintf(path, sizeof path, "%s/trainer/state", f->dir);
    assert_true(file_exists(path));
}

int main(void)
{
    log_set_level(LOG_WARN);
    /* a setting of the worker's own: never passed to the plug-in (fake_trainer.py checks) */
    setenv("AULAC_TEST_WORKER_SETTING", "secret", 1);
    setenv("AULAC_PLAN", "/stale/plan.json", 1);
    if (!realpath("tests/support/fake_trainer.py", fake_path)) {
        fprintf(stderr, "test_plugin: run from the repository root (tests/support/fake_trainer.py)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(oneshot_model_trains_and_plan_has_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(oneshot_delta_is_added_to_the_base, setup, teardown),
        cmocka_unit_test_setup_teardown(null_validation_loss_is_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(every_bad_output_is_refused_and_the_next_round_proceeds, setup, teardown),
        cmocka_unit_test_setup_teardown(a_command_that_cannot_start_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_hung_trainer_is_killed_at_its_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(what_it_writes_after_the_timeout_is_never_read, setup, teardown),
        cmocka_unit_test_setup_teardown(a_descendant_that_escaped_is_ended_and_never_read, setup, teardown),
        cmocka_unit_test_setup_teardown(a_link_to_a_fifo_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(outputs_changing_under_the_reader_are_read_or_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stale_progress_line_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(a_workdir_holds_one_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_mode_keeps_one_process_across_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_protocol_errors_restart_the_trainer, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_timeout_kills_the_process, setup, teardown),
        cmocka_unit_test_setup_teardown(external_model_gets_its_pinned_config_and_tokenizer, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_empties_the_state_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
