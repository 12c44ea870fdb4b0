/* model/adamw and model/trainer: AdamW against hand-computed values, clipping, the
 * weight-decay rule, and the trainer interface (training drives the loss down,
 * determinism, exact resume from saved state, evaluation, errors). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/adamw.h"
#include "model/rng.h"
#include "model/trainer.h"

/* ---- AdamW ---------------------------------------------------------------------- */

/* Two steps by hand (double), PyTorch's formula:
 *   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p *= 1 - lr wd (decayed only);
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps) */
static void test_adamw_hand_computed(void **state)
{
    (void)state;
    struct adamw_state s;
    assert_int_equal(adamw_init(&s, 4), 0);
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    const float g1[4] = {0.1f, -0.2f, 0.3f, 0.0f};
    const float g2[4] = {-0.05f, 0.4f, 0.3f, 1.0f};
    struct adamw_hparams h = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                              .weight_decay = 0.5f};
    struct adamw_group groups[2] = {{0, 2, 1}, {2, 2, 0}}; /* decay on the first two */

    double ep[4] = {1.0, -2.0, 0.5, 3.0}, em[4] = {0}, ev[4] = {0};
    const float *gs[2] = {g1, g2};
    for (int t = 1; t <= 2; t++) {
        assert_int_equal(adamw_step(&s, p, gs[t - 1], &h, groups, 2), 0);
        double b1 = 0.9f, b2 = 0.999f, lr = 0.1f, wd = 0.5f;
        for (int i = 0; i < 4; i++) {
            double g = gs[t - 1][i];
            em[i] = b1 * em[i] + (1 - b1) * g;
            ev[i] = b2 * ev[i] + (1 - b2) * g * g;
            if (i < 2)
                ep[i] *= 1 - lr * wd;
            ep[i] -= lr / (1 - pow(b1, t)) * em[i] /
                     (sqrt(ev[i]) / sqrt(1 - pow(b2, t)) + (double)1e-8f);
        }
        for (int i = 0; i < 4; i++) {
            assert_true(fabs(p[i] - ep[i]) <= 2e-6 * fmax(1.0, fabs(ep[i])));
            assert_true(fabs(s.m[i] - em[i]) <= 1e-6 * fmax(1e-3, fabs(em[i])));
        }
    }
    /* step 1 by hand: p0 = 1 * (1 - 0.05) - 0.1 * 0.1 / (0.1 + 1e-8) = 0.85000001 */
    assert_int_equal(s.step, 2);
    /* a parameter with zero gradient and no decay does not move on step 1 */
    /* (p[3] moved only on step 2, where its gradient is 1: by ~lr) */
    assert_true(fabs(p[3] - ep[3]) < 1e-6);

    /* groups must tile [0, n) */
    struct adamw_group bad[2] = {{0, 2, 1}, {3, 1, 0}};
    assert_int_equal(adamw_step(&s, p, g1, &h, bad, 2), MODEL_ERR_ARG);
    assert_int_equal(s.step, 2);
    adamw_reset(&s);
    assert_int_equal(s.step, 0);
    assert_true(s.m[0] == 0.0f && s.v[1] == 0.0f);
    adamw_free(&s);
}

static void test_adamw_first_step_value(void **state)
{
    (void)state;
    /* With bias correction the first update is lr * g / (|g| + eps), i.e. ~lr*sign(g). */
    struct adamw_state s;
    assert_int_equal(adamw_init(&s, 2), 0);
    float p[2] = {1.0f, 1.0f}, g[2] = {0.1f, -1e-3f};
    struct adamw_hparams h = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                              .weight_decay = 0.0f};
    assert_int_equal(adamw_step(&s, p, g, &h, NULL, 0), 0);
    assert_true(fabs(p[0] - 0.99) < 1e-6);
    assert_true(fabs(p[1] - 1.01) < 1e-6);
    adamw_free(&s);
}

static void test_clip(void **state)
{
    (void)state;
    float g[4] = {3.0f, 0.0f, -4.0f, 0.0f}; /* norm 5 */
    assert_true(fabs(grad_global_norm(g, 4) - 5.0) < 1e-12);
    double n = grad_clip_global_norm(g, 4, 10.0f); /* under the bound: untouched */
    assert_true(fabs(n - 5.0) < 1e-12 && g[0] == 3.0f);
    n = grad_clip_global_norm(g, 4, 1.0f);
    assert_true(fabs(n - 5.0) < 1e-12);
    assert_true(fabs(grad_global_norm(g, 4) - 1.0) < 1e-6);
    assert_true(fabs(g[0] - 0.6f) < 1e-6 && fabs(g[2] + 0.8f) < 1e-6);
    g[1] = NAN;
    float before = g[0];
    assert_false(isfinite(grad_clip_global_norm(g, 4, 1.0f)));
    assert_true(g[0] == before);
    float z[2] = {1, 1};
    grad_clip_global_norm(z, 2, 0.0f); /* 0 disables */
    assert_true(z[0] == 1.0f);
}

static void test_decay_groups(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 8, 2, 2, 8};
    struct adamw_group *g;
    int n;
    assert_int_equal(adamw_groups_gpt2(&c, &g, &n), 0);
    size_t covered = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(g[i].offset, covered);
        covered += g[i].count;
    }
    assert_int_equal(covered, gpt2_num_params(&c));
    /* every parameter's decay flag is its tensor's is_matrix */
    for (int t = 0; t < gpt2_num_tensors(&c); t++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(&c, t, &ti);
        for (int i = 0; i < n; i++)
            if (ti.offset >= g[i].offset && ti.offset < g[i].offset + g[i].count) {
                assert_int_equal(g[i].decay, ti.is_matrix);
                assert_true(ti.offset + ti.numel <= g[i].offset + g[i].count);
            }
    }
    assert_int_equal(g[0].decay, 1); /* wte + wpe merged */
    assert_int_equal(g[0].count, (256 + 8) * 8);
    free(g);
}

/* ---- trainer -------------------------------------------------------------------- */

static const struct gpt2_config small = {256, 32, 2, 2, 32};

static struct trainer_opts opts_small(void)
{
    struct trainer_opts o;
    trainer_opts_default(&o);
    o.batch = 4;
    o.seq_len = 16;
    o.lr = 1e-2f;
    o.weight_decay = 0.0f;
    o.threads = 2;
    return o;
}

/* Windows of a repeated phrase at positions from a seeded generator. */
struct phrase_src {
    const char *text;
    struct rng r;
    int calls;
    int fail_at; /* return an error on this call (0: never) */
};

static int phrase_batch(void *ctx, uint8_t *tokens, int B, int T)
{
    struct phrase_src *s = ctx;
    if (++s->calls == s->fail_at)
        return -1463;
    size_t len = strlen(s->text);
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)rng_below(&s->r, len);
        for (int i = 0; i <= T; i++)
            tokens[(size_t)b * (T + 1) + i] = (uint8_t)s->text[(off + (size_t)i) % len];
    }
    return 0;
}

static struct trainer *make_trainer(const struct trainer_opts *o, uint64_t seed)
{
    struct trainer *t;
    assert_int_equal(trainer_create(&small, o, &t), 0);
    size_t n = trainer_num_params(t);
    float *p = malloc(n * sizeof(float));
    assert_int_equal(gpt2_init_params(&small, seed, p), 0);
    assert_int_equal(trainer_set_params(t, p, n), 0);
    free(p);
    return t;
}

static const char *phrase = "the quick brown fox jumps over the lazy dog. ";

static void test_training_drives_loss_down(void **state)
{
    (void)state;
    struct trainer_opts o = opts_small();
    struct trainer *t = make_trainer(&o, 1);
    struct phrase_src src = {.text = phrase};
    rng_seed(&src.r, 9);
    uint8_t eval[512];
    for (size_t i = 0; i < sizeof eval; i++)
        eval[i] = (uint8_t)phrase[i % strlen(phrase)];
    float before, after;
    assert_int_equal(trainer_evaluate(t, eval, sizeof eval, 0, &before), 0);
    struct trainer_stats st;
    assert_int_equal(trainer_train_steps(t, 150, phrase_batch, &src, NULL, NULL, &st), 0);
    assert_int_equal(trainer_evaluate(t, eval, sizeof eval, 0, &after), 0);
    printf("eval loss %.4f -> %.4f; last train loss %.4f; %d steps, %llu tokens, %.2f s\n",
           before, after, st.last_loss, st.steps, (unsigned long long)st.tokens, st.seconds);
    assert_true(fabs(before - log(256.0)) < 0.1);
    assert_true(after < 0.25); /* from 5.5 nats: the phrase is learned */
    assert_int_equal(st.steps, 150);
    assert_int_equal(st.tokens, 150ull * 4 * 16);
    assert_int_equal(trainer_optimizer_step(t), 150);
    trainer_destroy(t);
}

static void run_steps(struct trainer *t, int steps, uint64_t data_seed, int skip,
                      float *losses)
{
    struct phrase_src src = {.text = phrase};
    rng_seed(&src.r, data_seed);
    uint8_t dummy[4 * 17];
    for (int i = 0; i < skip; i++)
        phrase_batch(&src, dummy, 4, 16);
    for (int i = 0; i < steps; i++) {
        struct trainer_stats st;
        assert_int_equal(trainer_train_steps(t, 1, phrase_batch, &src, NULL, NULL, &st), 0);
        if (losses)
            losses[i] = (float)st.last_loss;
    }
}

static void test_determinism_and_exact_resume(void **state)
{
    (void)state;
    struct trainer_opts o = opts_small();
    o.weight_decay = 0.1f;
    size_t n;
    float la[8], lb[8];

    struct trainer *a = make_trainer(&o, 5);
    run_steps(a, 8, 77, 0, la);
    n = trainer_num_params(a);
    float *pa = malloc(n * sizeof(float)), *pb = malloc(n * sizeof(float));
    trainer_get_params(a, pa, n);

    /* same seed, same data: bit-identical losses and parameters */
    struct trainer *b = make_trainer(&o, 5);
    run_steps(b, 8, 77, 0, lb);
    trainer_get_params(b, pb, n);
    assert_memory_equal(la, lb, sizeof la);
    assert_memory_equal(pa, pb, n * sizeof(float));
    trainer_destroy(b);

    /* 4 steps, save params + optimizer state, a new trainer resumes: identical */
    char path[] = "/tmp/aulac-test-adamw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct trainer *c = make_trainer(&o, 5);
    run_steps(c, 4, 77, 0, NULL);
    assert_int_equal(trainer_save_state(c, path), 0);
    float *mid = malloc(n * sizeof(float));
    trainer_get_params(c, mid, n);
    trainer_destroy(c);

    struct trainer *d;
    assert_int_equal(trainer_create(&small, &o, &d), 0);
    assert_int_equal(trainer_set_params(d, mid, n), 0);
    assert_int_equal(trainer_load_state(d, path), 0);
    assert_int_equal(trainer_optimizer_step(d), 4);
    run_steps(d, 4, 77, 4, lb);
    trainer_get_params(d, pb, n);
    assert_memory_equal(la + 4, lb, 4 * sizeof(float));
    assert_memory_equal(pa, pb, n * sizeof(float));

    /* without the state, the resumed run differs (the moments matter) */
    trainer_reset_optimizer(d);
    assert_int_equal(trainer_optimizer_step(d), 0);
    assert_int_equal(trainer_set_params(d, mid, n), 0);
    run_steps(d, 4, 77, 4, NULL);
    trainer_get_params(d, pb, n);
    assert_true(memcmp(pa, pb, n * sizeof(float)) != 0);

    /* state of another model size is refused, and leaves the trainer as it was */
    struct gpt2_config other = {256, 32, 1, 2, 32};
    struct trainer *e;
    assert_int_equal(trainer_create(&other, &o, &e), 0);
    assert_int_equal(trainer_load_state(e, path), MODEL_ERR_STATE);
    assert_int_equal(trainer_optimizer_step(e), 0);
    /* a model checkpoint is not an optimizer state; a missing file is an error */
    char dir[] = "/tmp/aulac-test-ckpt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    float *zeros = calloc(gpt2_num_params(&other), sizeof(float));
    assert_int_equal(gpt2_save(dir, &other, zeros), 0);
    char model_path[64];
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", dir);
    assert_int_equal(trainer_load_state(e, model_path), MODEL_ERR_FORMAT);
    free(zeros);
    unlink(model_path);
    snprintf(model_path, sizeof model_path, "%s/config.json", dir);
    unlink(model_path);
    rmdir(dir);
    assert_true(trainer_load_state(d, "/nonexistent/state.safetensors") < 0);
    trainer_destroy(e);
    unlink(path);
    trainer_destroy(d);
    trainer_destroy(a);
    free(pa);
    free(pb);
    free(mid);
}

static void test_threads_do_not_change_much(void **state)
{
    (void)state;
    /* 1 and 2 BLAS threads: the same training up to float summation order. */
    struct trainer_opts o = opts_small();
    float l1[5], l2[5];
    o.threads = 1;
    struct trainer *a = make_trainer(&o, 3);
    run_steps(a, 5, 1, 0, l1);
    o.threads = 2;
    struct trainer *b = make_trainer(&o, 3);
    run_steps(b, 5, 1, 0, l2);
    for (int i = 0; i < 5; i++)
        assert_true(fabsf(l1[i] - l2[i]) < 1e-3f);
    trainer_destroy(a);
    trainer_destroy(b);
}

static void test_evaluate(void **state)
{
    (void)state;
    struct trainer_opts o = opts_small();
    struct trainer *t = make_trainer(&o, 2);
    uint8_t buf[200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    float a, b, c;
    assert_int_equal(trainer_evaluate(t, buf, sizeof buf, 0, &a), 0);
    assert_int_equal(trainer_evaluate(t, buf, sizeof buf, 0, &b), 0);
    assert_true(a == b); /* deterministic */
    /* windows: 199 / 16 = 12 windows; max_windows 1 = the first window only */
    assert_int_equal(trainer_evaluate(t, buf, sizeof buf, 1, &c), 0);
    float d;
    assert_int_equal(trainer_evaluate(t, buf, 17, 0, &d), 0);
    assert_true(c == d);
    /* the batch grouping does not matter (B 4 vs B 1) */
    o.batch = 1;
    assert_int_equal(trainer_set_opts(t, &o), 0);
    assert_int_equal(trainer_evaluate(t, buf, sizeof buf, 0, &b), 0);
    assert_true(fabsf(a - b) < 1e-5f);
    /* shorter than a window: one window of n-1 */
    assert_int_equal(trainer_evaluate(t, buf, 5, 0, &d), 0);
    assert_true(isfinite(d));
    assert_int_equal(trainer_evaluate(t, buf, 1, 0, &d), MODEL_ERR_SHORT);
    trainer_destroy(t);
}

static void test_set_opts_and_params(void **state)
{
    (void)state;
    struct trainer_opts o = opts_small();
    struct trainer *t = make_trainer(&o, 4);
    size_t n = trainer_num_params(t);
    assert_int_equal(n, gpt2_num_params(&small));
    float *p = malloc(n * sizeof(float)), *q = malloc(n * sizeof(float));
    trainer_get_params(t, p, n);
    /* growing B and T keeps the parameters */
    o.batch = 8;
    o.seq_len = 32;
    assert_int_equal(trainer_set_opts(t, &o), 0);
    trainer_get_params(t, q, n);
    assert_memory_equal(p, q, n * sizeof(float));
    struct phrase_src src = {.text = phrase};
    rng_seed(&src.r, 1);
    assert_int_equal(trainer_train_steps(t, 2, phrase_batch, &src, NULL, NULL, NULL), 0);
    struct trainer_opts got;
    trainer_get_opts(t, &got);
    assert_int_equal(got.seq_len, 32);
    o.seq_len = 33; /* > max_seq_len */
    assert_int_equal(trainer_set_opts(t, &o), MODEL_ERR_ARG);
    o.seq_len = 8;
    o.beta2 = 1.0f;
    assert_int_equal(trainer_set_opts(t, &o), MODEL_ERR_ARG);
    o.beta2 = 0.95f;
    o.backend = TRAINER_BACKEND_CUDA;
    assert_int_equal(trainer_set_opts(t, &o), MODEL_ERR_ARG);
    trainer_get_opts(t, &got);
    assert_int_equal(got.seq_len, 32); /* unchanged by the refused calls */
    assert_int_equal(trainer_set_params(t, p, n - 1), MODEL_ERR_ARG);
    assert_int_equal(trainer_get_params(t, q, n + 1), MODEL_ERR_ARG);
    free(p);
    free(q);
    trainer_destroy(t);
}

static int stop_after_3(void *ctx, const struct trainer_progress *p)
{
    int *seen = ctx;
    (*seen)++;
    assert_true(p->step == *seen && p->steps == 10 && isfinite(p->loss) && p->tokens > 0);
    return p->step == 3;
}

static void test_errors_and_callbacks(void **state)
{
    (void)state;
    struct trainer_opts o = opts_small();
    struct trainer *t = NULL;
    o.backend = TRAINER_BACKEND_CUDA;
    int rc = trainer_create(&small, &o, &t);
#ifdef AULAC_HAVE_CUDA
    if (rc == 0) { /* a GPU is present: tests/unit/test_model_cuda.c covers it */
        trainer_destroy(t);
        t = NULL;
    } else {
        assert_int_equal(rc, MODEL_ERR_NO_DEVICE);
    }
#else
    assert_int_equal(rc, MODEL_ERR_NO_CUDA);
#endif
    assert_null(t);
    printf("CUDA request: %s\n", model_strerror(rc));
    o = opts_small();
    struct gpt2_config c = small;
    c.vocab_size = 128; /* bytes need 256 */
    assert_int_equal(trainer_create(&c, &o, &t), MODEL_ERR_ARG);
    c.n_head = 3;
    assert_int_equal(trainer_create(&c, &o, &t), MODEL_ERR_CONFIG);
    o.seq_len = 0;
    assert_int_equal(trainer_create(&small, &o, &t), MODEL_ERR_ARG);

    o = opts_small();
    t = make_trainer(&o, 8);
    struct phrase_src src = {.text = phrase};
    rng_seed(&src.r, 1);
    int seen = 0;
    struct trainer_stats st;
    assert_int_equal(trainer_train_steps(t, 10, phrase_batch, &src, stop_after_3, &seen, &st),
                     MODEL_ERR_CANCELLED);
    assert_int_equal(st.steps, 3);
    assert_int_equal(trainer_optimizer_step(t), 3);

    src.calls = 0, src.fail_at = 2; /* the batch source fails on its 2nd call */
    assert_int_equal(trainer_train_steps(t, 5, phrase_batch, &src, NULL, NULL, &st), -1463);
    assert_int_equal(st.steps, 1);

    /* a NaN parameter: the step is refused and nothing is updated */
    size_t n = trainer_num_params(t);
    float *p = malloc(n * sizeof(float)), *q = malloc(n * sizeof(float));
    trainer_get_params(t, p, n);
    p[100] = NAN;
    trainer_set_params(t, p, n);
    uint64_t step = trainer_optimizer_step(t);
    src.fail_at = 0;
    assert_int_equal(trainer_train_steps(t, 1, phrase_batch, &src, NULL, NULL, &st),
                     MODEL_ERR_NONFINITE);
    trainer_get_params(t, q, n);
    assert_memory_equal(p, q, n * sizeof(float));
    assert_int_equal(trainer_optimizer_step(t), step);
    assert_int_equal(st.steps, 0);
    assert_string_equal(model_strerror(-1463),
                        "the corpus reader failed (worker/data.h data_strerror() has details)");
    assert_non_null(strstr(model_strerror(MODEL_ERR_NONFINITE), "not finite"));
    free(p);
    free(q);
    trainer_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_hand_computed),
        cmocka_unit_test(test_adamw_first_step_value),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_decay_groups),
        cmocka_unit_test(test_training_drives_loss_down),
        cmocka_unit_test(test_determinism_and_exact_resume),
        cmocka_unit_test(test_threads_do_not_change_much),
        cmocka_unit_test(test_evaluate),
        cmocka_unit_test(test_set_opts_and_params),
        cmocka_unit_test(test_errors_and_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
