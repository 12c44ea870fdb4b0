/* credit/evalset.h: loading and pinning the evaluation set, the policy check the
 * coordinator runs (its messages), and the evaluator's windows and loss against a
 * window-by-window computation with the model itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hex.h"
#include "credit/evalset.h"
#include "crypto/digest.h"
#include "policies/policy.h"

static const char text[] =
    "Chao mung ban den voi Firefox. Trang nay khong ton tai. Hay thu lai sau it phut. "
    "Mo trong cua so moi; luu trang nay; in trang nay; tim trong trang; phong to; thu nho. "
    "Dau trang, lich su, tai ve, tien ich mo rong, cai dat, tro giup, thoat.";

static char dir[64];
static char path[128];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/aulac-evalset-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/vi-ui.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    unlink(path);
    rmdir(dir);
    return 0;
}

static void load_pins_the_hash(void **state)
{
    uint8_t want[32];
    crypto_blake2b256(text, strlen(text), want);
    struct evalset es;
    char why[512];
    assert_int_equal(evalset_load(path, want, &es, why, sizeof why), 0);
    assert_int_equal(es.len, strlen(text));
    assert_memory_equal(es.text, text, es.len);
    assert_memory_equal(es.hash, want, 32);
    evalset_free(&es);
    assert_int_equal(evalset_load(path, NULL, &es, why, sizeof why), 0);
    evalset_free(&es);

    uint8_t other[32];
    memset(other, 0xab, 32);
    assert_int_equal(evalset_load(path, other, &es, why, sizeof why), CREDIT_ERR_HASH);
    char hw[65], ho[65];
    hex_encode(want, 32, hw);
    hex_encode(other, 32, ho);
    assert_non_null(strstr(why, hw));
    assert_non_null(strstr(why, ho));
    assert_non_null(strstr(why, path));
    assert_null(es.text);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.txt", dir);
    assert_int_equal(evalset_load(missing, NULL, &es, why, sizeof why), CREDIT_ERR_IO);
    assert_non_null(strstr(why, missing));
    assert_non_null(strstr(why, "No such file"));
    assert_int_equal(evalset_load(dir, NULL, &es, why, sizeof why), CREDIT_ERR_IO);
    assert_non_null(strstr(why, "directory"));
}

static struct policy_contribution with_evalset(const char *name, const uint8_t hash[32])
{
    struct policy_contribution c;
    memset(&c, 0, sizeof c);
    c.measures = 1u << POLICY_MEASURE_TOKENS | 1u << POLICY_MEASURE_SHAPLEY;
    c.has_evalset = 1;
    snprintf(c.evalset_name, sizeof c.evalset_name, "%s", name);
    memcpy(c.evalset_hash, hash, 32);
    c.eval_windows = 16;
    return c;
}

static void check_policy_messages(void **state)
{
    uint8_t good[32], bad[32];
    crypto_blake2b256(text, strlen(text), good);
    memset(bad, 0x5a, 32);
    char why[1024];
    static const char pre[] = "contribution.evaluation_set: ";

    struct policy_contribution c = with_evalset("vi-ui.txt", good);
    assert_int_equal(evalset_check_policy(&c, 16, dir, why, sizeof why), 0);

    /* No loo, no shapley: nothing to check, even without a directory. */
    c.measures = 1u << POLICY_MEASURE_TOKENS | 1u << POLICY_MEASURE_ALIGNMENT;
    assert_int_equal(evalset_check_policy(&c, 16, "/nonexistent", why, sizeof why), 0);

    c = with_evalset("missing.txt", good);
    c.measures = 1u << POLICY_MEASURE_LOO;
    assert_int_equal(evalset_check_policy(&c, 16, dir, why, sizeof why), CREDIT_ERR_IO);
    assert_memory_equal(why, pre, strlen(pre));
    assert_non_null(strstr(why, "missing.txt"));
    assert_non_null(strstr(why, "No such file"));
    assert_non_null(strstr(why, dir));

    c = with_evalset("vi-ui.txt", bad);
    assert_int_equal(evalset_check_policy(&c, 16, dir, why, sizeof why), CREDIT_ERR_HASH);
    assert_memory_equal(why, pre, strlen(pre));
    char hg[65], hb[65];
    hex_encode(good, 32, hg);
    hex_encode(bad, 32, hb);
    assert_non_null(strstr(why, "vi-ui.txt"));
    assert_non_null(strstr(why, hg));
    assert_non_null(strstr(why, hb));

    /* Shorter than one window of seq_len + 1 bytes: refused before the experiment starts. */
    c = with_evalset("vi-ui.txt", good);
    const uint32_t long_seq = (uint32_t)strlen(text);
    assert_int_equal(evalset_check_policy(&c, long_seq, dir, why, sizeof why), CREDIT_ERR_SMALL);
    assert_memory_equal(why, pre, strlen(pre));
    assert_non_null(strstr(why, "fewer than one window"));
    assert_int_equal(evalset_check_policy(&c, long_seq - 1, dir, why, sizeof why), 0);

    c = with_evalset("../vi-ui.txt", good);
    assert_int_equal(evalset_check_policy(&c, 16, dir, why, sizeof why), CREDIT_ERR_ARG);
    assert_memory_equal(why, pre, strlen(pre));
}

static const struct gpt2_config tiny = { .vocab_size = 256, .max_seq_len = 16, .n_layer = 1,
                                         .n_head = 2, .n_embd = 16 };

/* The loss of W windows as credit/evalset.h places them (start floor(i (len - T - 1) /
 * (W - 1))), one forward pass per window: the mean of the per-window means. */
static double by_hand(const float *params, uint32_t W, uint32_t T)
{
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&tiny, 1, (int)T, &m), 0);
    memcpy(gpt2_params(m), params, gpt2_num_params(&tiny) * sizeof(float));
    const size_t len = strlen(text);
    double total = 0;
    for (uint32_t i = 0; i < W; i++) {
        size_t s = W == 1 ? 0 : (size_t)i * (len - T - 1) / (W - 1);
        int32_t in[16], tg[16];
        for (uint32_t t = 0; t < T; t++) {
            in[t] = (uint8_t)text[s + t];
            tg[t] = (uint8_t)text[s + t + 1];
        }
        float loss;
        assert_int_equal(gpt2_forward(m, in, tg, 1, (int)T, &loss), 0);
        total += loss;
    }
    gpt2_destroy(m);
    return total / W;
}

static void loss_is_the_mean_over_the_windows(void **state)
{
    struct evalset es = { .text = (uint8_t *)text, .len = strlen(text) };
    const size_t n = gpt2_num_params(&tiny);
    float *p = malloc(n * sizeof(float));
    assert_int_equal(gpt2_init_params(&tiny, 3, p), 0);
    const uint32_t windows[] = { 1, 3, 8, 9, 17 };
    char why[256];
    for (size_t k = 0; k < sizeof windows / sizeof *windows; k++) {
        struct evaluator *ev;
        assert_int_equal(evaluator_create(&tiny, &es, windows[k], 16, &ev, why, sizeof why), 0);
        double loss, again;
        assert_int_equal(evaluator_loss(ev, p, &loss), 0);
        assert_int_equal(evaluator_loss(ev, p, &again), 0);
        assert_memory_equal(&loss, &again, sizeof loss);
        assert_int_equal(evaluator_count(ev), 2);
        double want = by_hand(p, windows[k], 16);
        assert_float_equal(loss, want, 2e-6);
        evaluator_destroy(ev);
    }
    /* Windows differ: 3 windows are not the first one thrice. */
    assert_true(fabs(by_hand(p, 3, 16) - by_hand(p, 1, 16)) > 1e-4);

    struct evaluator *ev;
    assert_int_equal(evaluator_create(&tiny, &es, 4, 16, &ev, why, sizeof why), 0);
    double loss;
    p[5] = NAN;
    assert_int_equal(evaluator_loss(ev, p, &loss), CREDIT_ERR_MODEL);
    evaluator_destroy(ev);
    free(p);
}

static void create_refuses_what_it_cannot_evaluate(void **state)
{
    struct evalset es = { .text = (uint8_t *)text, .len = 16 };
    struct evaluator *ev = NULL;
    char why[256];
    assert_int_equal(evaluator_create(&tiny, &es, 4, 16, &ev, why, sizeof why), CREDIT_ERR_SMALL);
    assert_non_null(strstr(why, "16 bytes"));
    es.len = 17;
    assert_int_equal(evaluator_create(&tiny, &es, 4, 16, &ev, why, sizeof why), 0);
    evaluator_destroy(ev);
    assert_int_equal(evaluator_create(&tiny, &es, 0, 16, &ev, why, sizeof why), CREDIT_ERR_ARG);
    assert_int_equal(evaluator_create(&tiny, &es, 4, 17, &ev, why, sizeof why), CREDIT_ERR_ARG);
    assert_int_equal(evaluator_create(&tiny, &es, 4, 0, &ev, why, sizeof why), CREDIT_ERR_ARG);
    struct gpt2_config bad = tiny;
    bad.n_head = 3;
    assert_int_equal(evaluator_create(&bad, &es, 4, 16, &ev, why, sizeof why), CREDIT_ERR_MODEL);
    assert_null(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_pins_the_hash),
        cmocka_unit_test(check_policy_messages),
        cmocka_unit_test(loss_is_the_mean_over_the_windows),
        cmocka_unit_test(create_refuses_what_it_cannot_evaluate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
