/* tests/reference/export_check: the C half of `make reference`'s export check.
 *
 *   export_check DIR
 *
 * Trains a small byte-level GPT-2 for a few AdamW steps on a fixed UTF-8 text (the
 * CPU trainer, as a worker does), saves it with gpt2_save into DIR (the function the
 * worker uses for its final model: model.safetensors + config.json), and measures
 * its mean cross-entropy on held-out bytes of the same text with trainer_evaluate
 * (the worker's validation path). Writes DIR/eval.bin (those bytes) and
 * DIR/eval.json ({"seq_len": T, "windows": W, "aulac_loss": L}) for
 * tests/reference/gpt2_ref.py, which loads DIR with transformers'
 * GPT2LMHeadModel.from_pretrained and computes the loss of the same windows.
 *
 * Exit status 0 on success. Built and run by scripts/reference.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt2.h"
#include "model/trainer.h"

static const char text[] =
    "Trăm năm trong cõi người ta, chữ tài chữ mệnh khéo là ghét nhau. "
    "Trải qua một cuộc bể dâu, những điều trông thấy mà đau đớn lòng. "
    "Lạ gì bỉ sắc tư phong, trời xanh quen thói má hồng đánh ghen. "
    "The quick brown fox jumps over the lazy dog; pack my box with five dozen "
    "liquor jugs. Sphinx of black quartz, judge my vow! How vexingly quick daft "
    "zebras jump. 0123456789 {}[]()<>=+-*/%&|^~!?.,;:'\"`@#$_\\ \n\t"
    "Nước chảy đá mòn. Có công mài sắt, có ngày nên kim. Uống nước nhớ nguồn. ";

#define SEQ 63   /* windows of 64 bytes: 63 predictions each */
#define EVAL 4   /* held-out windows */

struct cursor {
    const uint8_t *data;
    size_t n, pos;
};

/* Consecutive windows of the training part, wrapping around. */
static int next_rows(void *ctx, uint8_t *tokens, int B, int T)
{
    struct cursor *c = ctx;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i <= T; i++)
            tokens[(size_t)b * (T + 1) + i] = c->data[(c->pos + (size_t)i) % c->n];
        c->pos = (c->pos + 37) % c->n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: export_check DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    const struct gpt2_config cfg = {256, 64, 2, 4, 64};
    const size_t n_text = sizeof text - 1, n_eval = (size_t)EVAL * SEQ + 1;
    if (n_text < 2 * n_eval) {
        fprintf(stderr, "export_check: text too short\n");
        return 1;
    }
    const uint8_t *eval = (const uint8_t *)text + n_text - n_eval; /* the last bytes */

    struct trainer_opts o;
    trainer_opts_default(&o);
    o.batch = 4, o.seq_len = SEQ, o.lr = 3e-3f, o.threads = 1;
    struct trainer *t;
    int rc = trainer_create(&cfg, &o, &t);
    size_t n = gpt2_num_params(&cfg);
    float *p = malloc(n * sizeof(float));
    if (rc || !p || gpt2_init_params(&cfg, 42, p) || trainer_set_params(t, p, n)) {
        fprintf(stderr, "export_check: cannot create the trainer: %s\n", model_strerror(rc));
        return 1;
    }
    struct cursor cur = {(const uint8_t *)text, n_text - n_eval, 0};
    struct trainer_stats st = {0};
    float loss0, loss;
    if ((rc = trainer_evaluate(t, eval, n_eval, 0, &loss0)) ||
        (rc = trainer_train_steps(t, 30, next_rows, &cur, NULL, NULL, &st)) ||
        (rc = trainer_evaluate(t, eval, n_eval, 0, &loss)) ||
        (rc = trainer_get_params(t, p, n)) || (rc = gpt2_save(dir, &cfg, p))) {
        fprintf(stderr, "export_check: %s\n", model_strerror(rc));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/eval.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(eval, 1, n_eval, f) != n_eval || fclose(f)) {
        perror(path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/eval.json", dir);
    f = fopen(path, "w");
    if (!f || fprintf(f, "{\"seq_len\": %d, \"windows\": %d, \"aulac_loss\": %.9g}\n", SEQ,
                      EVAL, (double)loss) < 0 || fclose(f)) {
        perror(path);
        return 1;
    }
    printf("export_check: trained 30 steps (mean train loss %.4f, last %.4f), held-out loss %.6f "
           "(untrained %.6f); saved to %s\n",
           st.mean_loss, st.last_loss, (double)loss, (double)loss0, dir);
    free(p);
    trainer_destroy(t);
    return 0;
}
