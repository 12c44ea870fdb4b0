/* The evaluation set and the deterministic evaluator (credit/evalset.h; credit/README.md,
 * "Evaluation"). */
#include "credit/evalset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/why.h"
#include "crypto/digest.h"
#include "policies/policy.h"

int evalset_load(const char *path, const uint8_t *want_hash, struct evalset *out, char *why,
                 size_t cap)
{
    if (!path || !out)
        return why_fail(why, cap, CREDIT_ERR_ARG, "evalset_load: missing argument");
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    char what[256];
    int rc = file_read_all_why(path, CREDIT_EVALSET_MAX, &buf, &len, what, sizeof what);
    if (rc == -ENOMEM)
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "%s: out of memory reading it", path);
    if (rc != 0)
        return why_fail(why, cap, CREDIT_ERR_IO, "%s: %s", path, what);
    uint8_t got[32];
    crypto_blake2b256(buf, len, got);
    if (want_hash && memcmp(got, want_hash, 32) != 0) {
        char g[65], w[65];
        hex_encode(got, 32, g);
        hex_encode(want_hash, 32, w);
        free(buf);
        return why_fail(why, cap, CREDIT_ERR_HASH, "%s has BLAKE2b-256 %s, not the pinned %s",
                        path, g, w);
    }
    out->text = buf;
    out->len = len;
    memcpy(out->hash, got, 32);
    return 0;
}

void evalset_free(struct evalset *e)
{
    if (!e)
        return;
    free(e->text);
    memset(e, 0, sizeof *e);
}

/* A plain file name: [A-Za-z0-9._-]{1,128}, not "." or "..": never a path. */
static int plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > POLICY_EVALSET_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int evalset_check_policy(const struct policy_contribution *c, uint32_t seq_len,
                         const char *dir, char *why, size_t cap)
{
    static const char pre[] = "contribution.evaluation_set: ";
    if (!c)
        return why_fail(why, cap, CREDIT_ERR_ARG, "%smissing argument", pre);
    const uint32_t eval = 1u << POLICY_MEASURE_LOO | 1u << POLICY_MEASURE_SHAPLEY;
    if (!(c->measures & eval))
        return 0;
    if (!c->has_evalset)
        return why_fail(why, cap, CREDIT_ERR_ARG, "%srequired by the loo and shapley measures",
                        pre);
    if (!plain_name(c->evalset_name))
        return why_fail(why, cap, CREDIT_ERR_ARG, "%sname \"%s\" is not a plain file name", pre,
                        c->evalset_name);
    if (!dir || !*dir)
        return why_fail(why, cap, CREDIT_ERR_ARG, "%sno evaluation-set directory is set", pre);
    char path[4096 + POLICY_EVALSET_NAME_MAX + 2];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, c->evalset_name) >= sizeof path)
        return why_fail(why, cap, CREDIT_ERR_ARG, "%sthe directory path %.64s... is too long",
                        pre, dir);
    struct evalset es;
    char what[768];
    int rc = evalset_load(path, c->evalset_hash, &es, what, sizeof what);
    if (rc == CREDIT_ERR_IO)
        return why_fail(why, cap, rc, "%s%s (evaluation sets are looked up by name in %s, the "
                        "--eval-sets directory)", pre, what, dir);
    if (rc != 0)
        return why_fail(why, cap, rc, "%s%s", pre, what);
    const size_t len = es.len;
    evalset_free(&es);
    if (seq_len > 0 && len < (size_t)seq_len + 1)
        return why_fail(why, cap, CREDIT_ERR_SMALL, "%s%s has %zu bytes, fewer than one window "
                        "of training.seq_len + 1 = %u bytes", pre, path, len, seq_len + 1);
    return 0;
}

/* ---- the evaluator ------------------------------------------------------------ */

struct evaluator {
    const struct evalset *es;
    struct gpt2 *model;
    size_t n_params;
    uint32_t windows, seq_len;
    int vocab;
    int32_t *inputs;          /* CREDIT_EVAL_BATCH * seq_len */
    uint8_t *targets;         /* the same, bytes */
    uint64_t count;
};

int evaluator_create(const struct gpt2_config *cfg, const struct evalset *es, uint32_t windows,
                     uint32_t seq_len, struct evaluator **out, char *why, size_t cap)
{
    if (!cfg || !es || !out)
        return why_fail(why, cap, CREDIT_ERR_ARG, "evaluator_create: missing argument");
    *out = NULL;
    if (gpt2_config_check(cfg) != 0)
        return why_fail(why, cap, CREDIT_ERR_MODEL, "the model configuration is not a GPT-2 "
                        "this build runs");
    if (windows == 0 || seq_len == 0 || seq_len > (uint32_t)cfg->max_seq_len)
        return why_fail(why, cap, CREDIT_ERR_ARG, "evaluation windows %u of %u tokens: need at "
                        "least one window of 1..%d tokens", windows, seq_len, cfg->max_seq_len);
    if (cfg->vocab_size < 256)
        return why_fail(why, cap, CREDIT_ERR_MODEL, "the evaluation set is bytes; the model's "
                        "vocabulary has only %d tokens", cfg->vocab_size);
    if (es->len < (size_t)seq_len + 1)
        return why_fail(why, cap, CREDIT_ERR_SMALL, "the evaluation set has %zu bytes, fewer "
                        "than one window of %u + 1", es->len, seq_len);
    struct evaluator *ev = calloc(1, sizeof *ev);
    if (!ev)
        return why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory");
    const int batch = windows < CREDIT_EVAL_BATCH ? (int)windows : CREDIT_EVAL_BATCH;
    ev->es = es;
    ev->windows = windows;
    ev->seq_len = seq_len;
    ev->vocab = cfg->vocab_size;
    ev->n_params = gpt2_num_params(cfg);
    ev->inputs = malloc((size_t)batch * seq_len * sizeof *ev->inputs);
    ev->targets = malloc((size_t)batch * seq_len);
    int rc = ev->inputs && ev->targets ? gpt2_create(cfg, batch, (int)seq_len, &ev->model)
                                       : MODEL_ERR_NOMEM;
    if (rc == 0 && gpt2_set_threads(ev->model, 1) != 0)
        rc = MODEL_ERR_NOMEM;
    if (rc != 0) {
        evaluator_destroy(ev);
        return rc == MODEL_ERR_NOMEM ? why_fail(why, cap, CREDIT_ERR_NOMEM, "out of memory for "
                                                "the evaluation model")
                                     : why_fail(why, cap, CREDIT_ERR_MODEL, "the evaluation "
                                                "model cannot be built (model error %d)", rc);
    }
    *out = ev;
    return 0;
}

void evaluator_destroy(struct evaluator *ev)
{
    if (!ev)
        return;
    gpt2_destroy(ev->model);
    free(ev->inputs);
    free(ev->targets);
    free(ev);
}

uint64_t evaluator_count(const struct evaluator *ev)
{
    return ev ? ev->count : 0;
}

/* Window i's first byte: floor(i * (len - T - 1) / (W - 1)), 0 when W is 1. */
static size_t window_start(const struct evaluator *ev, uint32_t i)
{
    if (ev->windows == 1)
        return 0;
    const uint64_t span = (uint64_t)ev->es->len - ev->seq_len - 1;
    return (size_t)((uint64_t)i * span / (ev->windows - 1));
}

/* Sum over the rows of -log softmax(logits)[target], in double. */
static double batch_cross_entropy(const float *logits, const uint8_t *targets, size_t rows,
                                  int V)
{
    double total = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *row = logits + r * (size_t)V;
        float mx = row[0];
        for (int v = 1; v < V; v++)
            if (row[v] > mx)
                mx = row[v];
        double s = 0;
        for (int v = 0; v < V; v++)
            s += exp((double)row[v] - (double)mx);
        total += log(s) + (double)mx - (double)row[targets[r]];
    }
    return total;
}

int evaluator_loss(struct evaluator *ev, const float *params, double *loss)
{
    if (!ev || !params || !loss)
        return CREDIT_ERR_ARG;
    ev->count++;
    memcpy(gpt2_params(ev->model), params, ev->n_params * sizeof(float));
    const uint32_t T = ev->seq_len;
    double total = 0;
    for (uint32_t w0 = 0; w0 < ev->windows; w0 += CREDIT_EVAL_BATCH) {
        uint32_t nb = ev->windows - w0;
        if (nb > CREDIT_EVAL_BATCH)
            nb = CREDIT_EVAL_BATCH;
        for (uint32_t b = 0; b < nb; b++) {
            const uint8_t *s = ev->es->text + window_start(ev, w0 + b);
            for (uint32_t t = 0; t < T; t++) {
                ev->inputs[(size_t)b * T + t] = s[t];
                ev->targets[(size_t)b * T + t] = s[t + 1];
            }
        }
        if (gpt2_forward(ev->model, ev->inputs, NULL, (int)nb, (int)T, NULL) != 0)
            return CREDIT_ERR_MODEL;
        const double sum = batch_cross_entropy(gpt2_logits(ev->model), ev->targets,
                                               (size_t)nb * T, ev->vocab);
        total += sum / ((double)nb * T) * nb;   /* the batch's mean, weighted by its windows */
    }
    const double l = total / ev->windows;
    if (!isfinite(l)) {
        *loss = l;   /* what it came to: score.c caps it */
        return CREDIT_ERR_MODEL;
    }
    *loss = l;
    return 0;
}
