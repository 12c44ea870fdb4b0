#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/hex.h"
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
    "\n"
    "  --model DIR         a directory written by the coordinator or worker\n"
    "  --data DIR          a corpus directory (tree of UTF-8 text files)\n"
    "  --val-fraction F    held-out fraction (default 0.1, as in the policy default)\n"
    "  --seq-len T         evaluation window (default: the model's context length)\n"
    "  --windows N         at most N windows (default 64)\n"
    "  --threads N         CPU threads (default: all cores)\n";

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
