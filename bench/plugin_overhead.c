/* plugin_overhead: what the plug-in trainer protocol (worker/TRAINER.md) costs a round,
 * next to the round's training, at GPT-2 124M (policies/examples/gpt2-124m-diloco.yaml).
 *
 *   build/bench/plugin_overhead [--policy FILE] [--local-steps H] [--batch B] [--seq T]
 *                               [--train-steps K] [--reps R] [--threads N] [DIR...]
 *
 * For each DIR (default: $TMPDIR or /tmp, the workdir's disk, and /dev/shm, a tmpfs), in
 * a fresh directory under it:
 *   write     model_write_safetensors() of the base model (tmp, fsync, rename): what the
 *             worker does before every round
 *   read      safetensors_open() + model_read_tensors() (names, shapes, dtypes, NaN/Inf)
 *             of the trained model: what the worker does after it
 *   delta     base - local over the flat vector
 *   round     worker/plugin.c's plugin_train_round() with a pass-through plug-in (a shell
 *             command that copies in/model.safetensors to out/, fsyncs it, renames it and
 *             writes metrics.json): plan.json, config.json and the base model written, the
 *             command started and waited for, its model read and validated, metrics.json
 *             read; plus the delta. This is the protocol's whole cost per round, the
 *             plug-in's own writing of its output included (a real plug-in writes the
 *             trained model once, as the copy does); its reading of the input is not timed
 *             apart (cp reads it from the page cache).
 * Every figure is the median of R repetitions (best in brackets).
 *
 * Then the training it is compared with: the built-in CPU trainer (model/trainer.h) at the
 * policy's model, B sequences of T tokens, K measured steps after one warm-up step; the
 * round's training time is H times the median step. The policy's own batch (64 x 1024 for
 * 124M) is far too much for a CPU step in a bench run: B defaults to 1, and the share is
 * printed both for the measured batch (an upper bound: more tokens per step only make
 * training longer) and extrapolated linearly to the policy's batch. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/safetensors.h"
#include "common/timeutil.h"
#include "model/gpt2.h"
#include "model/layout.h"
#include "model/trainer.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "policies/site.h"
#include "worker/plugin.h"

#define MAX_REPS 32
#define MAX_DIRS 8

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct stat_s {
    double best, median;
};

static struct stat_s summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    struct stat_s s = {v[0], n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])};
    return s;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "plugin_overhead: %s: %s\n", what, detail);
    exit(1);
}

/* Uniform random byte tokens (the built-in trainer reads bytes). */
static int random_batch(void *ctx, uint8_t *tokens, int B, int T)
{
    uint64_t *x = ctx;
    for (size_t i = 0; i < (size_t)B * (size_t)(T + 1); i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (uint8_t)(*x >> 56);
    }
    return 0;
}

/* rm -rf of the bench's own directory (made by mkdtemp below). */
static void remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "plugin_overhead: could not remove %s\n", dir);
}

struct dir_result {
    const char *dir;
    struct stat_s write, read, delta, round;
};

static const char *PASS_THROUGH =
    "d=$(dirname \"$1\"); o=\"$d/out/model.safetensors\"; "
    "cp \"$d/in/model.safetensors\" \"$o.tmp\" && sync \"$o.tmp\" && mv \"$o.tmp\" \"$o\" && "
    "printf '{\"tokens\": 1, \"steps\": 1, \"train_loss\": 1.0, \"validation_loss\": null}\\n'"
    " > \"$d/out/metrics.json\"";

static void measure_dir(const char *parent, int reps, const struct model_layout *L,
                        const float *base, float *local, float *delta, struct policy *pol,
                        const struct policy_round_plan *plan, struct dir_result *res)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/aulac-plugin-bench.XXXXXX", parent);
    if (!mkdtemp(dir))
        die(parent, strerror(errno));
    const size_t n = L->n_params;
    char path[4200], why[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    double tw[MAX_REPS], tr[MAX_REPS], td[MAX_REPS], tround[MAX_REPS];
    for (int i = 0; i < reps; i++) {
        double t0 = time_mono_s();
        int rc = model_write_safetensors(path, L, base, NULL, 0, 0600);
        tw[i] = time_mono_s() - t0;
        if (rc)
            die(path, model_strerror(rc));
        t0 = time_mono_s();
        struct safetensors *f;
        if ((rc = safetensors_open(path, &f)) != 0)
            die(path, safetensors_strerror(rc));
        rc = model_read_tensors(L, f, local, why, sizeof why);
        safetensors_close(f);
        tr[i] = time_mono_s() - t0;
        if (rc)
            die(path, why);
        t0 = time_mono_s();
        for (size_t k = 0; k < n; k++)
            delta[k] = base[k] - local[k];
        td[i] = time_mono_s() - t0;
    }

    /* the real path: worker/plugin.c with a pass-through command */
    char *argv[] = {"/bin/sh", "-c", (char *)PASS_THROUGH, "pass-through", NULL};
    char workdir[4200];
    snprintf(workdir, sizeof workdir, "%s/trainer", dir);
    struct site_trainer t = {.kind = SITE_TRAINER_COMMAND, .mode = SITE_TRAINER_ONESHOT,
                             .argv = argv, .n_args = 4, .workdir = workdir, .timeout_s = 3600};
    struct plugin *p;
    if (plugin_open(&t, dir, &p, why, sizeof why) != 0)
        die("plugin_open", why);
    for (int i = 0; i < reps; i++) {
        struct plugin_round r = {.experiment = "bench-plugin-overhead", .member = "bench",
                                 .round = (uint64_t)i + 1, .total_rounds = (uint64_t)reps,
                                 .plan = plan, .policy = pol, .layout = L, .base = base,
                                 .optimizer_step = 0, .seed = 1, .validation_windows = 0};
        struct plugin_metrics m;
        memset(local, 0, n * sizeof *local);
        double t0 = time_mono_s();
        int rc = plugin_train_round(p, &r, local, &m, NULL, why, sizeof why);
        if (rc)
            die("plugin_train_round", why);
        for (size_t k = 0; k < n; k++)
            delta[k] = base[k] - local[k];
        tround[i] = time_mono_s() - t0;
        if (memcmp(local, base, n * sizeof *local) != 0)
            die("pass-through", "the model read back differs from the base model");
    }
    plugin_close(p);
    remove_tree(dir);
    res->dir = parent;
    res->write = summarize(tw, reps);
    res->read = summarize(tr, reps);
    res->delta = summarize(td, reps);
    res->round = summarize(tround, reps);
}

static void usage(void)
{
    fprintf(stderr, "usage: plugin_overhead [--policy FILE] [--local-steps H] [--batch B] "
            "[--seq T] [--train-steps K] [--reps R] [--threads N] [DIR...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *policy_path = "policies/examples/gpt2-124m-diloco.yaml";
    int local_steps = 20, batch = 1, seq = 0, train_steps = 2, reps = 3, threads = 0;
    const char *dirs[MAX_DIRS];
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--policy") && v)
            policy_path = v, i++;
        else if (!strcmp(a, "--local-steps") && v)
            local_steps = atoi(v), i++;
        else if (!strcmp(a, "--batch") && v)
            batch = atoi(v), i++;
        else if (!strcmp(a, "--seq") && v)
            seq = atoi(v), i++;
        else if (!strcmp(a, "--train-steps") && v)
            train_steps = atoi(v), i++;
        else if (!strcmp(a, "--reps") && v)
            reps = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v)
            threads = atoi(v), i++;
        else if (a[0] == '-')
            usage();
        else if (n_dirs < MAX_DIRS)
            dirs[n_dirs++] = a;
    }
    if (local_steps < 1 || batch < 1 || seq < 0 || train_steps < 0 || reps < 1 ||
        reps > MAX_REPS)
        usage();
    if (n_dirs == 0) {
        const char *tmp = getenv("TMPDIR");
        dirs[n_dirs++] = tmp && tmp[0] ? tmp : "/tmp";
        if (access("/dev/shm", W_OK) == 0)
            dirs[n_dirs++] = "/dev/shm";
    }

    struct policy pol;
    struct policy_error perr;
    if (policy_load_file(policy_path, &pol, &perr) != 0)
        die(policy_path, perr.message);
    struct policy_round_plan plan;
    char why[512];
    if (policy_round_plan(&pol, 1, &plan, why, sizeof why) != 0)
        die(policy_path, why);
    if (pol.model.family != POLICY_FAMILY_GPT2)
        die(policy_path, "the bench trains the built-in GPT-2: give a family gpt2 policy");
    plan.local_steps = (uint32_t)local_steps;
    const struct gpt2_config *cfg = &plan.model;
    if (seq == 0)
        seq = (int)plan.seq_len;
    struct model_layout L;
    int rc = model_layout_gpt2(cfg, &L);
    if (rc)
        die("layout", model_strerror(rc));
    const size_t n = L.n_params;
    float *base = malloc(n * sizeof *base), *local = malloc(n * sizeof *local),
          *delta = malloc(n * sizeof *delta);
    if (!base || !local || !delta)
        die("memory", "cannot allocate three copies of the model");
    if ((rc = gpt2_init_params(cfg, plan.seed, base)) != 0)
        die("init", model_strerror(rc));
    const double mb = (double)n * 4.0 / 1e6;
    printf("plugin_overhead: %s: GPT-2 %d layers x %d, vocabulary %d: %zu parameters, "
           "%.1f MB as F32 safetensors; %d local steps; median of %d (best)\n",
           policy_path, cfg->n_layer, cfg->n_embd, cfg->vocab_size, n, mb, local_steps, reps);

    struct dir_result res[MAX_DIRS];
    for (int d = 0; d < n_dirs; d++) {
        measure_dir(dirs[d], reps, &L, base, local, delta, &pol, &plan, &res[d]);
        printf("  %-12s write %.3f s (%.3f)  read+validate %.3f s (%.3f)  delta %.3f s "
               "(%.3f)  |  plugin_train_round + delta %.3f s (%.3f)\n", res[d].dir,
               res[d].write.median, res[d].write.best, res[d].read.median, res[d].read.best,
               res[d].delta.median, res[d].delta.best, res[d].round.median, res[d].round.best);
        fflush(stdout);
    }

    if (train_steps == 0)
        return 0;
    struct trainer_opts to;
    trainer_opts_default(&to);
    to.batch = batch, to.seq_len = seq, to.lr = plan.lr, to.weight_decay = plan.weight_decay;
    to.beta1 = plan.beta1, to.beta2 = plan.beta2, to.eps = plan.eps;
    to.grad_clip = plan.grad_clip, to.threads = threads;
    struct trainer *tr;
    if ((rc = trainer_create(cfg, &to, &tr)) != 0)
        die("trainer", model_strerror(rc));
    trainer_set_params(tr, base, n);
    uint64_t x = 42;
    struct trainer_stats ts;
    double steps_s[64];
    int k = train_steps > 63 ? 63 : train_steps;
    for (int i = 0; i <= k; i++) { /* step 0 warms up (first touch of the activations) */
        if ((rc = trainer_train_steps(tr, 1, random_batch, &x, NULL, NULL, &ts)) != 0)
            die("train", model_strerror(rc));
        if (i > 0)
            steps_s[i - 1] = ts.seconds;
        printf("  training step %d/%d (%s): %.2f s\n", i, k, i ? "measured" : "warm-up",
               ts.seconds);
        fflush(stdout);
    }
    trainer_destroy(tr);
    struct stat_s step = summarize(steps_s, k);
    const double round_train = step.median * local_steps;
    const double scale = (double)plan.batch_size * plan.seq_len / ((double)batch * seq);
    printf("training (built-in CPU trainer, %d threads): %d x %d tokens a step: %.2f s median "
           "(%.2f best) over %d steps; %d local steps: %.1f s\n",
           threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN), batch, seq, step.median,
           step.best, k, local_steps, round_train);
    printf("the policy's batch (%u x %u) is %.0fx the tokens: %.1f s a round, extrapolated "
           "linearly\n", plan.batch_size, plan.seq_len, scale, round_train * scale);
    printf("\nprotocol share of the round (overhead / (training + overhead)); goal <= 5 %%\n");
    printf("  %-12s %10s %14s %20s\n", "workdir", "overhead", "measured batch",
           "policy batch (extr.)");
    for (int d = 0; d < n_dirs; d++) {
        double o = res[d].round.median;
        printf("  %-12s %8.2f s %13.2f %% %19.3f %%\n", res[d].dir, o,
               100.0 * o / (round_train + o), 100.0 * o / (round_train * scale + o));
    }
    free(base);
    free(local);
    free(delta);
    model_layout_free(&L);
    policy_free(&pol);
    return 0;
}
