/* The C GPT-2 against PyTorch: goldens written by tests/reference/gpt2_ref.py
 * (scripts/reference.sh) from an independent torch implementation that is itself
 * checked against transformers' GPT2LMHeadModel. No Python needed here.
 *
 * Per golden: loss, logits and every parameter's gradient of one forward/backward,
 * and a 10-step AdamW run through the trainer interface (clipping, decoupled decay
 * on matrices only): the losses, gradient norms, parameters after step 1 and after
 * step 10. Tolerance: relative L2 error <= 1e-4 per tensor (see check_tensors for
 * the one slice left out of the AdamW comparison).
 *
 * With AULAC_EXPORT_DIR set it also writes a checkpoint (gpt2_save) there, which
 * scripts/reference.sh loads with GPT2LMHeadModel.from_pretrained. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/safetensors.h"
#include "model/gpt2.h"
#include "model/trainer.h"

#define TOL 1e-4

static char golden_dir[512];

static void find_golden_dir(void)
{
    const char *env = getenv("AULAC_GOLDEN_DIR");
    if (env) {
        snprintf(golden_dir, sizeof golden_dir, "%.511s", env);
        return;
    }
    /* __FILE__ is tests/unit/test_model_golden.c relative to the repository root */
    char here[256];
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash)
        *slash = 0;
    slash = strrchr(here, '/');
    if (slash)
        *slash = 0;
    snprintf(golden_dir, sizeof golden_dir, "%.255s/reference/golden", slash ? here : "tests");
}

static const struct st_tensor *need(const struct safetensors *f, const char *name,
                                    enum st_dtype dtype)
{
    const struct st_tensor *t = safetensors_find(f, name);
    if (!t)
        fail_msg("golden lacks tensor %s", name);
    assert_int_equal(t->dtype, dtype);
    return t;
}

static long meta_long(const struct safetensors *f, const char *key)
{
    const char *v = safetensors_meta(f, key);
    if (!v)
        fail_msg("golden lacks metadata %s", key);
    return strtol(v, NULL, 10);
}

static float meta_float(const struct safetensors *f, const char *key)
{
    const char *v = safetensors_meta(f, key);
    if (!v)
        fail_msg("golden lacks metadata %s", key);
    return strtof(v, NULL);
}

static float *copy_f32(const struct st_tensor *t)
{
    float *p = malloc(t->nbytes ? t->nbytes : 1);
    memcpy(p, t->data, t->nbytes); /* file data need not be aligned */
    return p;
}

/* ||a - b|| / ||b|| over n floats (absolute when ||b|| is tiny). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / fmax(sqrt(s), 1e-6);
}

static int check(const char *what, double err)
{
    int ok = err <= TOL;
    printf("    %-34s rel err %.2e%s\n", what, err, ok ? "" : "  FAIL");
    return ok;
}

/* Per-tensor comparison of two flat vectors; returns the number of failures.
 * skip_key_bias: leave out the key third of attn.c_attn.bias. Its gradient is zero in
 * exact arithmetic (a bias on the keys adds the same q.b to every score of a row,
 * which the softmax ignores), so both sides hold rounding noise there, and AdamW,
 * which normalizes the gradient, turns that noise into steps of either sign. */
static int check_tensors(const struct gpt2_config *c, const char *what, const float *got,
                         const float *want, int skip_key_bias)
{
    int bad = 0;
    double worst = 0;
    char worst_name[GPT2_NAME_MAX] = "";
    for (int i = 0; i < gpt2_num_tensors(c); i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(c, i, &ti);
        double e;
        size_t len = strlen(ti.name);
        if (skip_key_bias && len > 16 && strcmp(ti.name + len - 16, "attn.c_attn.bias") == 0) {
            size_t C = (size_t)c->n_embd;
            const float *g = got + ti.offset, *w = want + ti.offset;
            e = fmax(rel_err(g, w, C), rel_err(g + 2 * C, w + 2 * C, C)); /* q and v */
        } else {
            e = rel_err(got + ti.offset, want + ti.offset, ti.numel);
        }
        if (e > worst) {
            worst = e;
            snprintf(worst_name, sizeof worst_name, "%s", ti.name);
        }
        if (e > TOL) {
            printf("    %s %s: rel err %.2e  FAIL\n", what, ti.name, e);
            bad++;
        }
    }
    printf("    %-34s worst rel err %.2e (%s)\n", what, worst, worst_name);
    return bad;
}

struct rows_src {
    const uint8_t *rows;
    int B, T, next;
};

static int golden_batch(void *ctx, uint8_t *tokens, int B, int T)
{
    struct rows_src *s = ctx;
    assert_int_equal(B, s->B);
    assert_int_equal(T, s->T);
    memcpy(tokens, s->rows + (size_t)s->next * B * (T + 1), (size_t)B * (T + 1));
    s->next++;
    return 0;
}

struct trace {
    float loss[16];
    double norm[16];
    int n;
};

static int record(void *ctx, const struct trainer_progress *p)
{
    struct trace *t = ctx;
    if (t->n < 16) {
        t->loss[t->n] = p->loss;
        t->norm[t->n] = p->grad_norm;
        t->n++;
    }
    return 0;
}

static int check_golden(const char *path)
{
    struct safetensors *f;
    int rc = safetensors_open(path, &f);
    if (rc)
        fail_msg("%s: %s", path, safetensors_strerror(rc));
    struct gpt2_config c = {(int)meta_long(f, "vocab_size"), (int)meta_long(f, "max_seq_len"),
                            (int)meta_long(f, "n_layer"), (int)meta_long(f, "n_head"),
                            (int)meta_long(f, "n_embd")};
    const int B = (int)meta_long(f, "batch"), T = (int)meta_long(f, "seq_len");
    const int steps = (int)meta_long(f, "steps");
    size_t n = gpt2_num_params(&c), BT = (size_t)B * T;
    printf("  %s: L=%d C=%d H=%d V=%d, %zu params, B=%d T=%d\n", path, c.n_layer, c.n_embd,
           c.n_head, c.vocab_size, n, B, T);
    const struct st_tensor *tp = need(f, "params", ST_F32);
    assert_int_equal(tp->nbytes, n * 4);
    float *params = copy_f32(tp);
    int32_t *in = malloc(BT * 4), *tg = malloc(BT * 4);
    assert_int_equal(need(f, "inputs", ST_I32)->nbytes, BT * 4);
    memcpy(in, need(f, "inputs", ST_I32)->data, BT * 4);
    memcpy(tg, need(f, "targets", ST_I32)->data, BT * 4);
    float *want_logits = copy_f32(need(f, "logits", ST_F32));
    float *want_grads = copy_f32(need(f, "grads", ST_F32));
    float want_loss;
    memcpy(&want_loss, need(f, "loss", ST_F32)->data, 4);
    int bad = 0;

    /* one forward/backward, single-threaded and threaded */
    for (int threads = 1; threads <= 2; threads++) {
        struct gpt2 *m;
        assert_int_equal(gpt2_create(&c, B, T, &m), 0);
        assert_int_equal(gpt2_set_threads(m, threads), 0);
        memcpy(gpt2_params(m), params, n * 4);
        float loss;
        assert_int_equal(gpt2_forward(m, in, tg, B, T, &loss), 0);
        printf("   %d thread(s): loss %.6f, torch %.6f\n", threads, loss, want_loss);
        bad += !check("loss", fabs(loss - want_loss) / want_loss);
        bad += !check("logits", rel_err(gpt2_logits(m), want_logits, BT * c.vocab_size));
        assert_int_equal(gpt2_backward(m), 0);
        bad += check_tensors(&c, "gradient", gpt2_grads(m), want_grads, 0);
        gpt2_destroy(m);
    }

    /* AdamW through the trainer interface */
    struct trainer_opts o;
    trainer_opts_default(&o);
    o.batch = B;
    o.seq_len = T;
    o.lr = meta_float(f, "lr");
    o.beta1 = meta_float(f, "beta1");
    o.beta2 = meta_float(f, "beta2");
    o.eps = meta_float(f, "eps");
    o.weight_decay = meta_float(f, "weight_decay");
    o.grad_clip = meta_float(f, "grad_clip");
    o.threads = 2;
    struct trainer *t;
    assert_int_equal(trainer_create(&c, &o, &t), 0);
    assert_int_equal(trainer_set_params(t, params, n), 0);
    const struct st_tensor *rows = need(f, "adamw.rows", ST_U8);
    assert_int_equal(rows->nbytes, (size_t)steps * B * (T + 1));
    struct rows_src src = {rows->data, B, T, 0};
    struct trace tr = {.n = 0};
    float *got = malloc(n * 4);
    assert_int_equal(trainer_train_steps(t, 1, golden_batch, &src, record, &tr, NULL), 0);
    trainer_get_params(t, got, n);
    float *want = copy_f32(need(f, "adamw.step1_params", ST_F32));
    bad += check_tensors(&c, "params after AdamW step 1", got, want, 1);
    free(want);
    assert_int_equal(trainer_train_steps(t, steps - 1, golden_batch, &src, record, &tr, NULL),
                     0);
    trainer_get_params(t, got, n);
    want = copy_f32(need(f, "adamw.final_params", ST_F32));
    bad += check_tensors(&c, "params after AdamW step 10", got, want, 1);
    free(want);
    float *wl = copy_f32(need(f, "adamw.losses", ST_F32));
    float *wn = copy_f32(need(f, "adamw.grad_norms", ST_F32));
    double le = 0, ne = 0;
    for (int s = 0; s < steps; s++) {
        le = fmax(le, fabs(tr.loss[s] - wl[s]) / wl[s]);
        ne = fmax(ne, fabs(tr.norm[s] - wn[s]) / wn[s]);
    }
    printf("    AdamW losses %.4f -> %.4f (torch %.4f -> %.4f)\n", tr.loss[0], tr.loss[steps - 1],
           wl[0], wl[steps - 1]);
    bad += !check("training losses (worst step)", le);
    bad += !check("gradient norms (worst step)", ne);
    free(wl);
    free(wn);
    free(got);
    trainer_destroy(t);
    free(params);
    free(in);
    free(tg);
    free(want_logits);
    free(want_grads);
    safetensors_close(f);
    return bad;
}

static int is_golden(const char *name)
{
    size_t n = strlen(name);
    return n > 12 && strcmp(name + n - 12, ".safetensors") == 0;
}

static void test_goldens(void **state)
{
    (void)state;
    find_golden_dir();
    DIR *d = opendir(golden_dir);
    if (!d)
        fail_msg("no golden directory %s (written by scripts/reference.sh)", golden_dir);
    char names[16][256];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 16)
        if (is_golden(e->d_name))
            snprintf(names[count++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    assert_true(count >= 1);
    int bad = 0;
    for (int i = 0; i < count; i++) {
        char path[800];
        snprintf(path, sizeof path, "%.511s/%.255s", golden_dir, names[i]);
        bad += check_golden(path);
    }
    assert_int_equal(bad, 0);
}

/* A directory written by transformers' save_pretrained holds the golden's parameters:
 * gpt2_load must read exactly them. */
static void test_load_hf_save_pretrained(void **state)
{
    (void)state;
    find_golden_dir();
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%.511s/hf_gpt2_l1_c16_h4", golden_dir);
    snprintf(path, sizeof path, "%.511s/gpt2_l1_c16_h4.safetensors", golden_dir);
    struct gpt2_config c;
    float *flat = NULL;
    assert_int_equal(gpt2_load(dir, &c, &flat), 0);
    struct safetensors *f;
    assert_int_equal(safetensors_open(path, &f), 0);
    assert_int_equal(c.n_layer, meta_long(f, "n_layer"));
    assert_int_equal(c.n_head, meta_long(f, "n_head"));
    assert_int_equal(c.n_embd, meta_long(f, "n_embd"));
    assert_int_equal(c.vocab_size, meta_long(f, "vocab_size"));
    assert_int_equal(c.max_seq_len, meta_long(f, "max_seq_len"));
    const struct st_tensor *p = need(f, "params", ST_F32);
    assert_int_equal(p->nbytes, gpt2_num_params(&c) * 4);
    assert_memory_equal(flat, p->data, p->nbytes);
    printf("  %s: transformers' save_pretrained output loads bit for bit\n", dir);
    safetensors_close(f);
    free(flat);
}

static void test_export_for_python(void **state)
{
    (void)state;
    const char *dir = getenv("AULAC_EXPORT_DIR");
    if (!dir)
        skip();
    struct gpt2_config c = {256, 16, 2, 2, 32};
    size_t n = gpt2_num_params(&c);
    float *p = malloc(n * 4);
    assert_int_equal(gpt2_init_params(&c, 1234, p), 0);
    assert_int_equal(gpt2_save(dir, &c, p), 0);
    printf("  wrote a checkpoint to %s\n", dir);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_load_hf_save_pretrained),
        cmocka_unit_test(test_export_for_python),
    };
    if (getenv("AULAC_EXPORT_DIR")) /* scripts/reference.sh, before goldens exist */
        cmocka_set_test_filter("test_export_for_python");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
