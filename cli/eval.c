#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/json.h"
#include "common/safetensors.h"
#include "model/gpt2.h"
#include "model/model_hash.h"
#include "model/trainer.h"
#include "worker/data.h"

static const char usage[] =
    "usage: aulac eval --model DIR --data DIR [--val-fraction F] [--seq-len T]\n"
    "                  [--windows N] [--threads N]\n"
    "\n"
    "Mean cross-entropy (nats per byte) of a saved model (model.safetensors +\n"
    "config.json) on the held-out part of a corpus, split as the worker splits it.\n"
    "It is the built-in GPT-2's evaluator (byte-level): the checkpoint of an external\n"
    "model (policy model.family external) is refused; it loads with its own framework\n"
    "(transformers: AutoModelForCausalLM.from_pretrained(DIR)).\n"
    "\n"
    "  --model DIR         a directory written by the coordinator or worker\n"
    "  --data DIR          a corpus directory (tree of UTF-8 text files)\n"
    "  --val-fraction F    held-out fraction (default 0.1, as in the policy default)\n"
    "  --seq-len T         evaluation window (default: the model's context length)\n"
    "  --windows N         at most N windows (default 64)\n"
    "  --threads N         CPU threads (default: all cores)\n";

/* 1 when dir holds a checkpoint of an external model (coordinator/models.c): a
 * model.safetensors marked aulac_layout "named", or a config.json whose model_type is
 * not gpt2; kind says which. */
static int external_model(const char *dir, char *kind, size_t cap)
{
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct safetensors *f = NULL;
    int named = 0;
    if (safetensors_open(path, &f) == 0) {
        const char *m = safetensors_meta(f, "aulac_layout");
        named = m && strcmp(m, "named") == 0;
        safetensors_close(f);
    }
    if (named) {
        snprintf(kind, cap, "a named-tensor (external) model");
        return 1;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    uint8_t *text;
    size_t len;
    if (file_read_all(path, 1 << 20, &text, &len) != 0)
        return 0;
    struct json_doc *d = NULL;
    int other = 0;
    if (json_parse((const char *)text, len, &d, NULL, 0) == 0) {
        const char *t = json_str(json_get(json_root(d), "model_type"));
        if (t && strcmp(t, "gpt2") != 0) {
            snprintf(kind, cap, "a model of type %.60s", t);
            other = 1;
        }
    }
    json_free(d);
    free(text);
    return other;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL;
    double val_fraction = 0.1;
    unsigned long long seq = 0, windows = 64, threads = 0;
    int ch;
    static const struct option lo[] = {
        { "model", required_argument, 0, 'm' }, { "data", required_argument, 0, 'd' },
        { "val-fraction", required_argument, 0, 'v' }, { "seq-len", required_argument, 0, 's' },
        { "windows", required_argument, 0, 'w' }, { "threads", required_argument, 0, 't' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'v':
            val_fraction = strtod(optarg, &end);
            if (*end || !(val_fraction > 0 && val_fraction <= 0.5))
                return cli_usage_error("eval", usage, "--val-fraction must be in (0, 0.5]");
            break;
        case 's': if (cli_parse_u64("eval", "--seq-len", optarg, &seq)) return 2; break;
        case 'w': if (cli_parse_u64("eval", "--windows", optarg, &windows)) return 2; break;
        case 't': if (cli_parse_u64("eval", "--threads", optarg, &threads)) return 2; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!model || !data)
        return cli_usage_error("eval", usage, "--model and --data are required");
    char kind[120];
    if (external_model(model, kind, sizeof kind))
        return cli_fail("eval", "%s holds %s, not a built-in GPT-2: aulac eval is the built-in "
                        "GPT-2's byte-level evaluator; evaluate it with its own framework (it "
                        "loads with transformers' AutoModelForCausalLM.from_pretrained and "
                        "AutoTokenizer)", model, kind);
    struct gpt2_config cfg;
    float *flat = NULL;
    int rc = gpt2_load(model, &cfg, &flat);
    if (rc != 0)
        return cli_fail("eval", "cannot load the model in %s: %s", model, model_strerror(rc));
    if (seq == 0 || seq > (unsigned long long)cfg.max_seq_len)
        seq = (unsigned long long)cfg.max_seq_len;
    struct trainer_opts to;
    trainer_opts_default(&to);
    to.batch = 1;
    to.seq_len = (int)seq;
    to.threads = (int)threads;
    struct trainer *t = NULL;
    struct data *d = NULL;
    char why[512];
    struct data_opts dopt = { .val_fraction = val_fraction, .seq_len = (int)seq, .seed = 1 };
    float loss = NAN;
    const uint8_t *val;
    size_t vlen;
    if ((rc = trainer_create(&cfg, &to, &t)) != 0) {
        rc = cli_fail("eval", "cannot create a trainer: %s", model_strerror(rc));
    } else if ((rc = data_open(data, &dopt, &d, why, sizeof why)) != 0) {
        rc = cli_fail("eval", "%s", why);
    } else if ((rc = trainer_set_params(t, flat, gpt2_num_params(&cfg))) != 0 ||
               (rc = data_validation(d, 0, &val, &vlen)) != 0 ||
               (rc = trainer_evaluate(t, val, vlen, (int)windows, &loss)) != 0) {
        rc = cli_fail("eval", "evaluation failed: %s", model_strerror(rc));
    } else {
        uint8_t h[32];
        char hex[65];
        model_hash(flat, gpt2_num_params(&cfg), h);
        hex_encode(h, 32, hex);
        printf("model %.16s on %s: validation loss %.4f nats/byte (%.3f bits/byte)\n", hex,
               data, loss, loss / log(2.0));
        rc = 0;
    }
    data_close(d);
    trainer_destroy(t);
    free(flat);
    return rc;
}
