/* gpt2_dump: what the built-in C trainer computes, written to files, so that another
 * implementation of the same model (worker/plugins/numpy_gpt2.py) can be checked
 * against it (tests/plugins/check_numpy_gpt2.py, run by tests/plugins/numpy_gpt2.sh).
 *
 *   gpt2_dump OUTDIR CORPUS [key=value ...]
 *
 * Keys (defaults in brackets): layers [2] heads [4] embd [64] positions [64]
 * batch [4] seq [48] steps [3] rounds [2] warmup [4] lr [0.001] wd [0.1] clip [0.5]
 * beta1 [0.9] beta2 [0.95] eps [1e-8] val_fraction [0.1] eval_windows [8]
 * init_seed [7] seed [1311768467463790320] (round r's data seed is seed + r).
 *
 * Writes into OUTDIR (created):
 *   init/model.safetensors, init/config.json   gpt2_init_params(init_seed), gpt2_save
 *   step1/tokens.bin        the first batch: batch rows of seq+1 bytes (data.c's
 *                           sampler on CORPUS with round 1's seed)
 *   step1/grads/model.safetensors   d(mean loss)/d(params) of that batch at init
 *   step1/after/model.safetensors   the parameters after one clipped AdamW step at the
 *                           round-1 learning rate (warm-up step 0)
 *   round<r>/model.safetensors      the model after round r: `steps` steps from the
 *                           previous round's model (round 1: init) with the AdamW state
 *                           carried over, the learning rate of worker.c's warm-up
 *   summary.json            the settings, step 1's loss and gradient norm, and per
 *                           round: seed, optimizer_step, steps, tokens, train_loss (mean
 *                           of the steps), validation_loss (of the round's base model
 *                           over eval_windows windows of the held-out text)
 * One thread, so the numbers do not depend on the machine's core count. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/adamw.h"
#include "model/gpt2.h"
#include "model/trainer.h"
#include "worker/data.h"

struct settings {
    int layers, heads, embd, positions, batch, seq, steps, rounds, warmup, eval_windows;
    double lr, wd, clip, beta1, beta2, eps, val_fraction;
    uint64_t init_seed, seed;
};

static int parse_kv(struct settings *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return -1;
    size_t k = (size_t)(eq - kv);
    const char *v = eq + 1;
    char *end;
#define INT_KEY(name)                                                                     \
    if (k == strlen(#name) && strncmp(kv, #name, k) == 0) {                              \
        long x = strtol(v, &end, 10);                                                     \
        if (*end || x < 0 || x > 1 << 20)                                                 \
            return -1;                                                                    \
        s->name = (int)x;                                                                 \
        return 0;                                                                         \
    }
#define DBL_KEY(name)                                                                     \
    if (k == strlen(#name) && strncmp(kv, #name, k) == 0) {                              \
        s->name = strtod(v, &end);                                                        \
        return *end ? -1 : 0;                                                             \
    }
#define U64_KEY(name)                                                                     \
    if (k == strlen(#name) && strncmp(kv, #name, k) == 0) {                              \
        errno = 0;                                                                        \
        s->name = strtoull(v, &end, 10);                                                  \
        return *end || errno ? -1 : 0;                                                    \
    }
    INT_KEY(layers) INT_KEY(heads) INT_KEY(embd) INT_KEY(positions) INT_KEY(batch)
    INT_KEY(seq) INT_KEY(steps) INT_KEY(rounds) INT_KEY(warmup) INT_KEY(eval_windows)
    DBL_KEY(lr) DBL_KEY(wd) DBL_KEY(clip) DBL_KEY(beta1) DBL_KEY(beta2) DBL_KEY(eps)
    DBL_KEY(val_fraction) U64_KEY(init_seed) U64_KEY(seed)
    return -1;
}

static int mkdir_p(const char *a, const char *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", a, b ? "/" : "", b ? b : "");
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int save(const char *out, const char *sub, const struct gpt2_config *cfg,
                const float *flat)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", out, sub);
    int rc = gpt2_save(dir, cfg, flat);
    if (rc)
        fprintf(stderr, "gpt2_dump: cannot write %s: %s\n", dir, model_strerror(rc));
    return rc;
}

#define CHECK(expr, what)                                                                 \
    do {                                                                                  \
        int rc_ = (expr);                                                                 \
        if (rc_ != 0) {                                                                   \
            fprintf(stderr, "gpt2_dump: %s: %s\n", what, model_strerror(rc_));            \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

/* worker.c train_local's schedule: the k-th optimizer step (from 0) runs at
 * lr (k+1)/warmup while k < warmup, then at lr. */
static float lr_at(const struct settings *s, uint64_t k)
{
    const float lr = (float)s->lr;
    return k < (uint64_t)s->warmup ? lr * (float)(k + 1) / (float)s->warmup : lr;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gpt2_dump OUTDIR CORPUS [key=value ...] (see the source)\n");
        return 2;
    }
    const char *out = argv[1], *corpus = argv[2];
    struct settings s = {.layers = 2, .heads = 4, .embd = 64, .positions = 64, .batch = 4,
                         .seq = 48, .steps = 3, .rounds = 2, .warmup = 4, .eval_windows = 8,
                         .lr = 1e-3, .wd = 0.1, .clip = 0.5, .beta1 = 0.9, .beta2 = 0.95,
                         .eps = 1e-8, .val_fraction = 0.1, .init_seed = 7,
                         .seed = 1311768467463790320ull};
    for (int i = 3; i < argc; i++) {
        if (parse_kv(&s, argv[i]) != 0) {
            fprintf(stderr, "gpt2_dump: bad setting %s\n", argv[i]);
            return 2;
        }
    }
    struct gpt2_config cfg = {.vocab_size = 256, .max_seq_len = s.positions,
                              .n_layer = s.layers, .n_head = s.heads, .n_embd = s.embd};
    CHECK(gpt2_config_check(&cfg), "model sizes");
    if (mkdir_p(out, NULL) != 0) {
        fprintf(stderr, "gpt2_dump: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    const size_t n = gpt2_num_params(&cfg);
    float *init = malloc(n * sizeof *init), *p = malloc(n * sizeof *p);
    if (!init || !p)
        return 1;
    CHECK(gpt2_init_params(&cfg, s.init_seed, init), "init");
    CHECK(save(out, "init", &cfg, init), "init");

    char why[512];
    struct data_opts dopt = {.val_fraction = s.val_fraction, .seq_len = s.seq,
                             .seed = s.seed + 1};
    struct data *d;
    int drc = data_open(corpus, &dopt, &d, why, sizeof why);
    if (drc) {
        fprintf(stderr, "gpt2_dump: %s\n", why);
        return 1;
    }

    /* ---- step 1, by hand: batch, loss, gradients, one clipped AdamW step ---- */
    const int B = s.batch, T = s.seq;
    uint8_t *tok = malloc((size_t)B * (size_t)(T + 1));
    int32_t *in = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    if (!tok || !in || !tg)
        return 1;
    CHECK(data_next_batch(d, tok, B, T), "batch");
    char path[4096];
    snprintf(path, sizeof path, "%s/step1", out);
    if (mkdir_p(path, NULL) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/step1/tokens.bin", out);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(tok, 1, (size_t)B * (size_t)(T + 1), f) != (size_t)B * (size_t)(T + 1) ||
        fclose(f) != 0) {
        fprintf(stderr, "gpt2_dump: cannot write %s\n", path);
        return 1;
    }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            in[b * T + i] = tok[b * (T + 1) + i];
            tg[b * T + i] = tok[b * (T + 1) + i + 1];
        }
    struct gpt2 *m;
    CHECK(gpt2_create(&cfg, B, T, &m), "model");
    CHECK(gpt2_set_threads(m, 1), "threads");
    memcpy(gpt2_params(m), init, n * sizeof(float));
    float loss1;
    CHECK(gpt2_forward(m, in, tg, B, T, &loss1), "forward");
    CHECK(gpt2_backward(m), "backward");
    CHECK(save(out, "step1/grads", &cfg, gpt2_grads(m)), "grads");
    struct adamw_state st;
    struct adamw_group *groups;
    int n_groups;
    CHECK(adamw_init(&st, n), "adamw");
    CHECK(adamw_groups_gpt2(&cfg, &groups, &n_groups), "groups");
    memcpy(p, gpt2_params(m), n * sizeof(float));
    float *g = gpt2_grads(m);
    double norm1 = grad_clip_global_norm(g, n, (float)s.clip);
    struct adamw_hparams h = {.lr = lr_at(&s, 0), .beta1 = (float)s.beta1,
                              .beta2 = (float)s.beta2, .eps = (float)s.eps,
                              .weight_decay = (float)s.wd};
    CHECK(adamw_step(&st, p, g, &h, groups, n_groups), "adamw step");
    CHECK(save(out, "step1/after", &cfg, p), "after");
    adamw_free(&st);
    free(groups);
    gpt2_destroy(m);

    /* ---- rounds through the trainer, as worker.c drives it ---- */
    struct trainer_opts to;
    trainer_opts_default(&to);
    to.batch = B, to.seq_len = T, to.lr = (float)s.lr, to.weight_decay = (float)s.wd;
    to.beta1 = (float)s.beta1, to.beta2 = (float)s.beta2, to.eps = (float)s.eps;
    to.grad_clip = (float)s.clip, to.threads = 1;
    struct trainer *t;
    CHECK(trainer_create(&cfg, &to, &t), "trainer");
    memcpy(p, init, n * sizeof(float));
    snprintf(path, sizeof path, "%s/summary.json", out);
    FILE *js = fopen(path, "w");
    if (!js)
        return 1;
    fprintf(js, "{\"settings\": {\"layers\": %d, \"heads\": %d, \"embd\": %d, "
            "\"positions\": %d, \"batch\": %d, \"seq\": %d, \"steps\": %d, \"rounds\": %d, "
            "\"warmup\": %d, \"eval_windows\": %d, \"lr\": %.9g, \"wd\": %.9g, \"clip\": %.9g, "
            "\"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, \"val_fraction\": %.9g, "
            "\"init_seed\": %" PRIu64 ", \"seed\": %" PRIu64 "},\n",
            s.layers, s.heads, s.embd, s.positions, B, T, s.steps, s.rounds, s.warmup,
            s.eval_windows, s.lr, s.wd, s.clip, s.beta1, s.beta2, s.eps, s.val_fraction,
            s.init_seed, s.seed);
    fprintf(js, " \"step1\": {\"loss\": %.9g, \"grad_norm\": %.17g, \"lr\": %.9g},\n",
            (double)loss1, norm1, (double)lr_at(&s, 0));
    fprintf(js, " \"rounds\": [");
    for (int r = 1; r <= s.rounds; r++) {
        uint64_t seed = s.seed + (uint64_t)r;
        CHECK(trainer_set_params(t, p, n), "set params");
        const uint8_t *val;
        size_t vlen;
        float vloss = NAN;
        CHECK(data_validation(d, 0, &val, &vlen), "validation text");
        CHECK(trainer_evaluate(t, val, vlen, s.eval_windows, &vloss), "evaluate");
        data_reseed(d, seed);
        uint64_t k0 = trainer_optimizer_step(t);
        double loss_sum = 0;
        int done = 0;
        while (done < s.steps) { /* one call per learning rate, as train_local */
            uint64_t k = trainer_optimizer_step(t);
            int steps = k < (uint64_t)s.warmup ? 1 : s.steps - done;
            to.lr = lr_at(&s, k);
            CHECK(trainer_set_opts(t, &to), "set opts");
            struct trainer_stats ts;
            CHECK(trainer_train_steps(t, steps, data_next_batch, d, NULL, NULL, &ts), "train");
            loss_sum += ts.mean_loss * ts.steps;
            done += ts.steps;
        }
        CHECK(trainer_get_params(t, p, n), "get params");
        char sub[64];
        snprintf(sub, sizeof sub, "round%d", r);
        CHECK(save(out, sub, &cfg, p), "round model");
        fprintf(js, "%s\n  {\"round\": %d, \"seed\": %" PRIu64 ", \"optimizer_step\": %" PRIu64
                ", \"steps\": %d, \"tokens\": %d, \"train_loss\": %.9g, "
                "\"validation_loss\": %.9g}", r > 1 ? "," : "", r, seed, k0, s.steps,
                s.steps * B * T, loss_sum / s.steps, (double)vloss);
    }
    fprintf(js, "]}\n");
    if (fclose(js) != 0)
        return 1;
    trainer_destroy(t);
    data_close(d);
    free(tok);
    free(in);
    free(tg);
    free(init);
    free(p);
    printf("gpt2_dump: %zu parameters; step 1 loss %.6f, gradient norm %.6f; wrote %s\n", n,
           (double)loss1, norm1, out);
    return 0;
}
