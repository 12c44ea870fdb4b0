/* The CUDA GPT-2 and trainer against the CPU ones (which tests/unit/test_model_golden.c
 * holds to PyTorch at 1e-4). Each test that needs a device is skipped (not failed) in
 * builds without CUDA and on machines without a device; the multi-GPU test also when
 * fewer than two devices are present.
 *
 * Tolerances (bf16 matmul inputs with fp32 accumulation against fp32 everywhere; bf16
 * keeps 8 significant bits, a relative rounding of at most 2^-9 = 0.2% per value):
 *   loss (scalar)                      relative 1e-2
 *   logits                             relative L2 (||a - b|| / ||b||) 2e-2
 *   gradients, per tensor              relative L2 5e-2
 *   gradients, whole vector            relative L2 3e-2
 *   losses along an AdamW trajectory   relative 2e-2 per step
 *   parameters after N AdamW steps     relative L2 2e-2
 *   their change from the start        relative L2 2.5e-1 (AdamW divides each gradient
 *                                      by its own RMS, so a gradient near zero whose sign
 *                                      bf16 rounding flips moves its weight the other
 *                                      way by the same lr: the update is noisier than
 *                                      the gradient)
 *   one GPU vs two GPUs (same rows)    loss relative 2e-3, change relative L2 2e-2
 *   cuBLASLt epilogues vs cublasGemmEx relative L2 2e-3 on logits and gradients
 * The figures are bounds set before the first run on a GPU; each comparison prints the
 * error it measured. */
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
#include "model/gpt2.h"
#include "model/trainer.h"
#include "model/trainer_cuda.h"

#define TOL_LOSS 1e-2
#define TOL_LOGITS 2e-2
#define TOL_GRAD_TENSOR 5e-2
#define TOL_GRAD_ALL 3e-2
#define TOL_TRAJ_LOSS 2e-2
#define TOL_PARAMS 2e-2
#define TOL_DELTA 2.5e-1
#define TOL_MULTI_LOSS 2e-3
#define TOL_MULTI_DELTA 2e-2
#define TOL_PATHS 2e-3

/* Runs in every build: the CUDA backend's answers when it cannot run. */
static void test_without_device(void **state)
{
    (void)state;
    const struct gpt2_config cfg = {256, 16, 1, 2, 16};
    struct trainer_opts o;
    trainer_opts_default(&o);
    o.batch = 2, o.seq_len = 8, o.backend = TRAINER_BACKEND_CUDA;
    struct trainer *t = NULL;
    struct trainer_nccl_boot boot = {.nranks = 2, .first_rank = 2};
    assert_int_equal(trainer_create_distributed(&cfg, &o, NULL, &t), MODEL_ERR_ARG);
    assert_int_equal(trainer_create_distributed(&cfg, &o, &boot, &t), MODEL_ERR_ARG);
    assert_null(t);
    o.gpus = TRAINER_MAX_GPUS + 1;
    assert_int_equal(trainer_create(&cfg, &o, &t), MODEL_ERR_ARG);
    o.gpus = 1;
    o.backend = TRAINER_BACKEND_CPU;
    boot.first_rank = 0;
    assert_int_equal(trainer_create_distributed(&cfg, &o, &boot, &t), MODEL_ERR_ARG);
    o.backend = TRAINER_BACKEND_CUDA;
    int have = trainer_cuda_device_count();
    uint8_t id[TRAINER_NCCL_ID_BYTES];
#ifndef AULAC_HAVE_CUDA
    assert_int_equal(have, 0);
    assert_int_equal(trainer_create(&cfg, &o, &t), MODEL_ERR_NO_CUDA);
    assert_int_equal(trainer_nccl_id_new(id), MODEL_ERR_NO_CUDA);
    printf("build without CUDA: %s\n", model_strerror(MODEL_ERR_NO_CUDA));
#else
    (void)id;
    printf("CUDA devices: %d\n", have);
    o.gpus = have + 1;
    assert_int_equal(trainer_create(&cfg, &o, &t), MODEL_ERR_NO_DEVICE);
    printf("more GPUs than present: %s\n", model_strerror(MODEL_ERR_NO_DEVICE));
#endif
    assert_null(t);
}

#ifdef AULAC_HAVE_CUDA
#include "model/gpt2_cuda.h"

static int devices(void) { return gpt2_cuda_device_count(); }

#define NEED_GPUS(n)                                                                   \
    do {                                                                               \
        if (devices() < (n)) {                                                         \
            printf("skipped: %d CUDA device(s), %d needed\n", devices(), (n));         \
            skip();                                                                    \
        }                                                                              \
    } while (0)

static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        d += e * e;
        r += (double)b[i] * (double)b[i];
    }
    return sqrt(d) / (sqrt(r) > 1e-30 ? sqrt(r) : 1e-30);
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30); }

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Two shapes: aligned sizes with T > 32 (warp loops run twice), and odd ones (C = 48,
 * T = 17) that exercise unaligned strides and the cuBLAS fallback. */
struct shape {
    struct gpt2_config cfg;
    int B, T;
};
static const struct shape shapes[] = {
    {{256, 64, 2, 4, 64}, 2, 64},
    {{256, 40, 1, 3, 48}, 3, 17},
};

struct pair {
    struct gpt2 *cpu;
    struct gpt2_cuda *gpu;
    float *params;
    int32_t *in, *tg;
    size_t n;
    int N;
};

static void pair_make(const struct shape *s, uint64_t seed, struct pair *p)
{
    memset(p, 0, sizeof *p);
    p->n = gpt2_num_params(&s->cfg);
    p->N = s->B * s->T;
    p->params = malloc(p->n * sizeof(float));
    p->in = malloc((size_t)p->N * sizeof(int32_t));
    p->tg = malloc((size_t)p->N * sizeof(int32_t));
    assert_non_null(p->params);
    assert_int_equal(gpt2_init_params(&s->cfg, seed, p->params), 0);
    uint64_t r = seed * 2654435761u + 1;
    for (int i = 0; i < p->N; i++) {
        p->in[i] = (int32_t)(xs(&r) % 96 + 32); /* printable bytes: repeated tokens */
        p->tg[i] = (int32_t)(xs(&r) % 96 + 32);
    }
    assert_int_equal(gpt2_create(&s->cfg, s->B, s->T, &p->cpu), 0);
    memcpy(gpt2_params(p->cpu), p->params, p->n * sizeof(float));
    assert_int_equal(gpt2_cuda_create(&s->cfg, 0, s->B, s->T, &p->gpu), 0);
    assert_int_equal(gpt2_cuda_set_params(p->gpu, p->params), 0);
}

static void pair_free(struct pair *p)
{
    gpt2_destroy(p->cpu);
    gpt2_cuda_destroy(p->gpu);
    free(p->params);
    free(p->in);
    free(p->tg);
}

static void test_forward_matches_cpu(void **state)
{
    (void)state;
    NEED_GPUS(1);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const struct shape *s = &shapes[k];
        struct pair p;
        pair_make(s, 11 + k, &p);
        const size_t nl = (size_t)p.N * s->cfg.vocab_size;
        float loss_cpu, loss_gpu, loss_gemmex;
        float *logits = malloc(nl * sizeof(float)), *logits2 = malloc(nl * sizeof(float));
        assert_int_equal(gpt2_forward(p.cpu, p.in, p.tg, s->B, s->T, &loss_cpu), 0);
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, p.tg, s->B, s->T), 0);
        assert_int_equal(gpt2_cuda_loss(p.gpu, &loss_gpu), 0);
        assert_int_equal(gpt2_cuda_get_logits(p.gpu, logits), 0);
        double e_loss = rel(loss_gpu, loss_cpu), e_logits = rel_l2(logits, gpt2_logits(p.cpu), nl);

        gpt2_cuda_use_cublaslt(p.gpu, 0);
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, p.tg, s->B, s->T), 0);
        assert_int_equal(gpt2_cuda_loss(p.gpu, &loss_gemmex), 0);
        assert_int_equal(gpt2_cuda_get_logits(p.gpu, logits2), 0);
        double e_paths = rel_l2(logits2, logits, nl);
        printf("shape %zu: loss cpu %.6f gpu %.6f (rel %.2e), logits rel L2 %.2e, "
               "Lt vs GemmEx %.2e\n", k, loss_cpu, loss_gpu, e_loss, e_logits, e_paths);
        assert_true(e_loss <= TOL_LOSS);
        assert_true(e_logits <= TOL_LOGITS);
        assert_true(e_paths <= TOL_PATHS);
        assert_true(rel(loss_gemmex, loss_gpu) <= TOL_PATHS);

        /* forward without targets, fewer rows than reserved */
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, NULL, 1, s->T), 0);
        assert_int_equal(gpt2_cuda_backward(p.gpu), MODEL_ERR_ARG);
        int32_t bad = s->cfg.vocab_size;
        int32_t save = p.in[0];
        p.in[0] = bad;
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, p.tg, s->B, s->T), MODEL_ERR_TOKEN);
        p.in[0] = save;
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, p.tg, s->B + 1, s->T), MODEL_ERR_ARG);
        free(logits);
        free(logits2);
        pair_free(&p);
    }
}

static void test_gradients_match_cpu(void **state)
{
    (void)state;
    NEED_GPUS(1);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const struct shape *s = &shapes[k];
        struct pair p;
        pair_make(s, 21 + k, &p);
        float *g = malloc(p.n * sizeof(float)), *g2 = malloc(p.n * sizeof(float));
        float loss;
        assert_int_equal(gpt2_forward(p.cpu, p.in, p.tg, s->B, s->T, &loss), 0);
        assert_int_equal(gpt2_backward(p.cpu), 0);
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, p.tg, s->B, s->T), 0);
        assert_int_equal(gpt2_cuda_backward(p.gpu), 0);
        assert_int_equal(gpt2_cuda_get_grads(p.gpu, g), 0);
        assert_int_equal(gpt2_cuda_backward(p.gpu), MODEL_ERR_ARG); /* consumed */
        const float *gc = gpt2_grads(p.cpu);
        double worst = 0, all = rel_l2(g, gc, p.n);
        char worst_name[GPT2_NAME_MAX] = "";
        int nt = gpt2_num_tensors(&s->cfg);
        for (int i = 0; i < nt; i++) {
            struct gpt2_tensor_info ti;
            gpt2_tensor(&s->cfg, i, &ti);
            double e = rel_l2(g + ti.offset, gc + ti.offset, ti.numel);
            if (e > worst) {
                worst = e;
                strcpy(worst_name, ti.name);
            }
            if (e > TOL_GRAD_TENSOR)
                printf("  %-24s rel L2 %.2e (over %.0e)\n", ti.name, e, TOL_GRAD_TENSOR);
        }
        /* the loss rides at the end of the device gradient buffer for the all-reduce */
        size_t count;
        float *dev = gpt2_cuda_grad_buffer(p.gpu, &count);
        assert_non_null(dev);
        assert_int_equal(count, p.n + 1);

        gpt2_cuda_use_cublaslt(p.gpu, 0);
        assert_int_equal(gpt2_cuda_forward(p.gpu, p.in, p.tg, s->B, s->T), 0);
        assert_int_equal(gpt2_cuda_backward(p.gpu), 0);
        assert_int_equal(gpt2_cuda_get_grads(p.gpu, g2), 0);
        double e_paths = rel_l2(g2, g, p.n);
        printf("shape %zu: gradients rel L2 %.2e, worst tensor %s %.2e, Lt vs GemmEx %.2e\n",
               k, all, worst_name, worst, e_paths);
        assert_true(all <= TOL_GRAD_ALL);
        assert_true(worst <= TOL_GRAD_TENSOR);
        assert_true(e_paths <= TOL_PATHS);
        free(g);
        free(g2);
        pair_free(&p);
    }
}

/* Batches: rows of T+1 bytes from a text at positions drawn one row at a time, so any
 * split of the rows over calls sees the same sequence. */
struct text_src {
    uint64_t s;
    int calls;
};
static const char text[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it "
    "was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness.";

static int text_batch(void *ctx, uint8_t *tok, int B, int T)
{
    struct text_src *src = ctx;
    const size_t len = sizeof text - 1;
    src->calls++;
    for (int b = 0; b < B; b++) {
        size_t at = (size_t)(xs(&src->s) % len);
        for (int i = 0; i <= T; i++)
            tok[(size_t)b * (T + 1) + i] = (uint8_t)text[(at + i) % len];
    }
    return 0;
}

static const struct gpt2_config tcfg = {256, 32, 2, 4, 64};

static struct trainer *trainer_make(enum trainer_backend be, int gpus, int B, int T,
                                    const float *params)
{
    struct trainer_opts o;
    trainer_opts_default(&o);
    o.batch = B, o.seq_len = T, o.lr = 1e-3f, o.backend = be, o.gpus = gpus, o.threads = 2;
    struct trainer *t = NULL;
    int rc = trainer_create(&tcfg, &o, &t);
    if (rc)
        fail_msg("trainer_create: %s", model_strerror(rc));
    assert_int_equal(trainer_set_params(t, params, trainer_num_params(t)), 0);
    return t;
}

static float *init_params(uint64_t seed)
{
    size_t n = gpt2_num_params(&tcfg);
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    assert_int_equal(gpt2_init_params(&tcfg, seed, p), 0);
    return p;
}

/* Trains `steps` steps one at a time, recording the losses. */
static void run_steps(struct trainer *t, struct text_src *src, int steps, float *losses)
{
    for (int s = 0; s < steps; s++) {
        struct trainer_stats st;
        int rc = trainer_train_steps(t, 1, text_batch, src, NULL, NULL, &st);
        if (rc)
            fail_msg("trainer_train_steps: %s", model_strerror(rc));
        losses[s] = (float)st.last_loss;
    }
}

static double delta_rel_l2(const float *a, const float *b, const float *p0, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double da = (double)a[i] - p0[i], db = (double)b[i] - p0[i];
        d += (da - db) * (da - db);
        r += db * db;
    }
    return sqrt(d) / (sqrt(r) > 1e-30 ? sqrt(r) : 1e-30);
}

static void test_adamw_trajectory_matches_cpu(void **state)
{
    (void)state;
    NEED_GPUS(1);
    enum { STEPS = 8 };
    float *p0 = init_params(5);
    const size_t n = gpt2_num_params(&tcfg);
    struct trainer *cpu = trainer_make(TRAINER_BACKEND_CPU, 0, 4, 32, p0);
    struct trainer *gpu = trainer_make(TRAINER_BACKEND_CUDA, 1, 4, 32, p0);
    struct text_src a = {.s = 99}, b = {.s = 99};
    float lc[STEPS], lg[STEPS];
    run_steps(cpu, &a, STEPS, lc);
    run_steps(gpu, &b, STEPS, lg);
    double worst = 0;
    for (int s = 0; s < STEPS; s++) {
        double e = rel(lg[s], lc[s]);
        worst = e > worst ? e : worst;
        printf("step %d: loss cpu %.5f gpu %.5f\n", s + 1, lc[s], lg[s]);
    }
    assert_true(lc[STEPS - 1] < lc[0]); /* it learns */
    float *pc = malloc(n * sizeof(float)), *pg = malloc(n * sizeof(float));
    assert_int_equal(trainer_get_params(cpu, pc, n), 0);
    assert_int_equal(trainer_get_params(gpu, pg, n), 0);
    double e_params = rel_l2(pg, pc, n), e_delta = delta_rel_l2(pg, pc, p0, n);
    printf("after %d AdamW steps: loss worst rel %.2e, params rel L2 %.2e, change rel L2 "
           "%.2e\n", STEPS, worst, e_params, e_delta);
    assert_true(worst <= TOL_TRAJ_LOSS);
    assert_true(e_params <= TOL_PARAMS);
    assert_true(e_delta <= TOL_DELTA);
    assert_int_equal(trainer_optimizer_step(gpu), STEPS);

    /* evaluation, with a window count that leaves a partial chunk of rows */
    float ec, eg;
    const uint8_t *bytes = (const uint8_t *)text;
    assert_int_equal(trainer_evaluate(cpu, bytes, sizeof text - 1, 0, &ec), 0);
    assert_int_equal(trainer_evaluate(gpu, bytes, sizeof text - 1, 0, &eg), 0);
    printf("evaluate: cpu %.5f gpu %.5f\n", ec, eg);
    assert_true(rel(eg, ec) <= TOL_LOSS);
    assert_int_equal(trainer_evaluate(gpu, bytes, 1, 0, &eg), MODEL_ERR_SHORT);

    /* bigger batches and windows after creation: buffers grow */
    struct trainer_opts o;
    trainer_get_opts(gpu, &o);
    o.batch = 6, o.seq_len = tcfg.max_seq_len;
    assert_int_equal(trainer_set_opts(gpu, &o), 0);
    assert_int_equal(trainer_set_opts(cpu, &o), 0);
    run_steps(cpu, &a, 1, lc);
    run_steps(gpu, &b, 1, lg);
    printf("after growing to B=6 T=%d: loss cpu %.5f gpu %.5f\n", o.seq_len, lc[0], lg[0]);
    assert_true(rel(lg[0], lc[0]) <= TOL_TRAJ_LOSS);
    o.gpus = 2;
    assert_int_equal(trainer_set_opts(gpu, &o), MODEL_ERR_ARG);

    free(pc);
    free(pg);
    free(p0);
    trainer_destroy(cpu);
    trainer_destroy(gpu);
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n);
    *len = fread(*data, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

/* A member switches backends: the optimizer state of one loads in the other. */
static void test_state_moves_between_backends(void **state)
{
    (void)state;
    NEED_GPUS(1);
    float *p0 = init_params(6);
    const size_t n = gpt2_num_params(&tcfg);
    struct trainer *gpu = trainer_make(TRAINER_BACKEND_CUDA, 1, 4, 32, p0);
    struct text_src src = {.s = 7};
    float l[4];
    run_steps(gpu, &src, 3, l);
    char dir[] = "/tmp/aulac-cuda-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "%s/gpu.state", dir);
    snprintf(s2, sizeof s2, "%s/again.state", dir);
    assert_int_equal(trainer_save_state(gpu, s1), 0);

    float *p = malloc(n * sizeof(float));
    assert_int_equal(trainer_get_params(gpu, p, n), 0);
    struct trainer *cpu = trainer_make(TRAINER_BACKEND_CPU, 0, 4, 32, p);
    struct trainer *gpu2 = trainer_make(TRAINER_BACKEND_CUDA, 1, 4, 32, p);
    assert_int_equal(trainer_load_state(cpu, s1), 0);
    assert_int_equal(trainer_load_state(gpu2, s1), 0);
    assert_int_equal(trainer_optimizer_step(cpu), 3);
    assert_int_equal(trainer_optimizer_step(gpu2), 3);
    /* the CUDA trainer writes back exactly what it loaded */
    assert_int_equal(trainer_save_state(gpu2, s2), 0);
    uint8_t *d1, *d2;
    size_t n1, n2;
    assert_int_equal(read_file(s1, &d1, &n1), 0);
    assert_int_equal(read_file(s2, &d2, &n2), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1);
    free(d1);
    free(d2);

    /* the next steps continue the same trajectory on either backend */
    struct text_src a = {.s = 1234}, b = {.s = 1234}, c = {.s = 1234};
    float lc[2], lg[2], lg2[2];
    run_steps(cpu, &a, 2, lc);
    run_steps(gpu, &b, 2, lg);
    run_steps(gpu2, &c, 2, lg2);
    printf("after the switch: cpu %.5f %.5f, gpu %.5f %.5f, reloaded gpu %.5f %.5f\n", lc[0],
           lc[1], lg[0], lg[1], lg2[0], lg2[1]);
    for (int s = 0; s < 2; s++) {
        assert_true(rel(lg[s], lc[s]) <= TOL_TRAJ_LOSS);
        assert_true(rel(lg2[s], lg[s]) <= 1e-6); /* same device, state and kernels */
    }
    trainer_reset_optimizer(gpu);
    assert_int_equal(trainer_optimizer_step(gpu), 0);

    unlink(s1);
    unlink(s2);
    rmdir(dir);
    free(p);
    free(p0);
    trainer_destroy(cpu);
    trainer_destroy(gpu);
    trainer_destroy(gpu2);
}

static void test_nonfinite_step_is_refused(void **state)
{
    (void)state;
    NEED_GPUS(1);
    float *p0 = init_params(8);
    const size_t n = gpt2_num_params(&tcfg);
    p0[100] = NAN; /* in wte: the rows that use it poison the loss */
    struct trainer *gpu = trainer_make(TRAINER_BACKEND_CUDA, 1, 4, 32, p0);
    struct text_src src = {.s = 3};
    struct trainer_stats st;
    assert_int_equal(trainer_train_steps(gpu, 2, text_batch, &src, NULL, NULL, &st),
                     MODEL_ERR_NONFINITE);
    assert_int_equal(st.steps, 0);
    assert_int_equal(trainer_optimizer_step(gpu), 0);
    float *q = malloc(n * sizeof(float));
    assert_int_equal(trainer_get_params(gpu, q, n), 0);
    assert_memory_equal(p0, q, n * sizeof(float)); /* not a bit changed */
    free(q);
    free(p0);
    trainer_destroy(gpu);
}

static int stop_at_2(void *ctx, const struct trainer_progress *p)
{
    (void)ctx;
    return p->step == 2;
}

/* Two GPUs with B rows each against one GPU with 2B rows: the same rows per step, so the
 * same averaged gradient up to summation order. */
static void test_two_gpus_match_one(void **state)
{
    (void)state;
    NEED_GPUS(2);
    enum { STEPS = 4 };
    float *p0 = init_params(9);
    const size_t n = gpt2_num_params(&tcfg);
    struct trainer *one = trainer_make(TRAINER_BACKEND_CUDA, 1, 4, 32, p0);
    struct trainer *two = trainer_make(TRAINER_BACKEND_CUDA, 2, 2, 32, p0);
    struct text_src a = {.s = 42}, b = {.s = 42};
    float l1[STEPS], l2[STEPS];
    run_steps(one, &a, STEPS, l1);
    run_steps(two, &b, STEPS, l2);
    assert_int_equal(a.calls, STEPS);
    assert_int_equal(b.calls, 2 * STEPS); /* each GPU draws its own batch */
    double worst = 0;
    for (int s = 0; s < STEPS; s++) {
        double e = rel(l2[s], l1[s]);
        worst = e > worst ? e : worst;
    }
    float *q1 = malloc(n * sizeof(float)), *q2 = malloc(n * sizeof(float));
    assert_int_equal(trainer_get_params(one, q1, n), 0);
    assert_int_equal(trainer_get_params(two, q2, n), 0);
    double e_delta = delta_rel_l2(q2, q1, p0, n);
    printf("1 GPU x 4 rows vs 2 GPUs x 2 rows: loss worst rel %.2e, change rel L2 %.2e\n",
           worst, e_delta);
    assert_true(worst <= TOL_MULTI_LOSS);
    assert_true(e_delta <= TOL_MULTI_DELTA);

    struct trainer_stats st;
    assert_int_equal(trainer_train_steps(two, 5, text_batch, &b, stop_at_2, NULL, &st),
                     MODEL_ERR_CANCELLED);
    assert_int_equal(st.steps, 2);
    assert_int_equal(st.tokens, (uint64_t)2 * 2 * 2 * 32); /* steps x GPUs x B x T */
    free(q1);
    free(q2);
    free(p0);
    trainer_destroy(one);
    trainer_destroy(two);
}

#else /* no CUDA in this build */

static void skip_no_cuda(void **state)
{
    (void)state;
    printf("skipped: this build has no CUDA\n");
    skip();
}
#define test_forward_matches_cpu skip_no_cuda
#define test_gradients_match_cpu skip_no_cuda
#define test_adamw_trajectory_matches_cpu skip_no_cuda
#define test_state_moves_between_backends skip_no_cuda
#define test_nonfinite_step_is_refused skip_no_cuda
#define test_two_gpus_match_one skip_no_cuda

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_device),
        cmocka_unit_test(test_forward_matches_cpu),
        cmocka_unit_test(test_gradients_match_cpu),
        cmocka_unit_test(test_adamw_trajectory_matches_cpu),
        cmocka_unit_test(test_state_moves_between_backends),
        cmocka_unit_test(test_nonfinite_step_is_refused),
        cmocka_unit_test(test_two_gpus_match_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
