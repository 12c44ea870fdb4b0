/* aulac solo: one member trains the policy's model alone, with the compute it gives an
 * experiment (rounds x local_steps inner steps), for the value-of-joining comparison
 * (scripts/demo.sh). The steps are the worker's (worker/inner.h): the round plan's
 * AdamW, warm-up and batch shape, the member's sampler seed reseeded every round as
 * the worker reseeds it; the parameters and the AdamW state run on from round to round
 * (nobody averages them). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/hex.h"
#include "crypto/digest.h"
#include "model/gpt2.h"
#include "model/model_hash.h"
#include "model/trainer.h"
#include "policies/model_source.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "worker/data.h"
#include "worker/inner.h"

#define CMD "solo"

static const char usage[] =
    "usage: aulac solo --policy FILE --member ID --data DIR --out DIR\n"
    "                  [--rounds R] [--steps H] [--threads N] [--windows N]\n"
    "\n"
    "Trains the policy's model (the built-in GPT-2) on one member's corpus alone, from\n"
    "the experiment's round-0 model, with the compute the member gives the experiment:\n"
    "R rounds of H inner steps, each round as the worker runs it (the round plan's\n"
    "AdamW, learning-rate warm-up, batch shape and the member's sampler seed), the\n"
    "parameters and the optimizer state carried from round to round. Writes the model\n"
    "(model.safetensors + config.json, as `aulac eval --model` reads) and prints its\n"
    "validation loss on the member's held-out text (the policy's validation_fraction,\n"
    "split as the worker splits it).\n"
    "\n"
    "  --policy FILE     the experiment's policy (model.family gpt2; pinned files next to it)\n"
    "  --member ID       whose sampler seed to use (as its worker would)\n"
    "  --data DIR        the member's corpus directory\n"
    "  --out DIR         where the model is written (made when missing)\n"
    "  --rounds R        rounds (default: the policy's training.rounds)\n"
    "  --steps H         inner steps per round (default: the round plan's local_steps)\n"
    "  --threads N       CPU threads (default: all cores)\n"
    "  --windows N       validation windows for the printed loss (default 64; 0: all)\n";

/* The member's rounds; the trained model in flat. 0, or 1 after a message. */
static int train_alone(const struct policy *p, const char *member, const char *data_dir,
                       uint64_t rounds, uint64_t steps, int threads, struct trainer *t,
                       struct data **dp, float *flat, size_t n)
{
    char why[512];
    struct policy_round_plan plan;
    for (uint64_t r = 1; r <= rounds; r++) {
        if (policy_round_plan(p, r, &plan, why, sizeof why) != 0)
            return cli_fail(CMD, "round %" PRIu64 ": %s", r, why);
        struct trainer_opts to;
        trainer_get_opts(t, &to);
        inner_trainer_opts(&plan, 1, &to);
        to.threads = threads;
        int rc = trainer_set_opts(t, &to);
        if (rc != 0)
            return cli_fail(CMD, "round %" PRIu64 ": the trainer refuses the round's options: %s",
                            r, model_strerror(rc));
        if (!*dp) {
            struct data_opts dopt = { .val_fraction = p->data.validation_fraction,
                                      .seq_len = (int)plan.seq_len,
                                      .seed = inner_member_seed(member) };
            if (data_open(data_dir, &dopt, dp, why, sizeof why) != 0)
                return cli_fail(CMD, "%s", why);
            if (data_train_bytes(*dp) < p->data.min_tokens_per_member)
                return cli_fail(CMD, "the corpus %s has %" PRIu64 " training bytes; the policy "
                                "asks for at least %" PRIu64 " per member (data."
                                "min_tokens_per_member): its worker would refuse to train",
                                data_dir, data_train_bytes(*dp),
                                p->data.min_tokens_per_member);
        }
        data_reseed(*dp, inner_round_seed(plan.seed, inner_member_seed(member), r));
        struct trainer_stats ts;
        const int h = (int)(steps ? steps : plan.local_steps);
        if ((rc = inner_train(t, *dp, &plan, h, NULL, NULL, &ts)) != 0)
            return cli_fail(CMD, "round %" PRIu64 " of %s's solo run: %s", r, member,
                            model_strerror(rc));
        printf("round %" PRIu64 "/%" PRIu64 ": %d steps, train loss %.4f, %.1f s\n", r, rounds,
               ts.steps, ts.mean_loss, ts.seconds);
        fflush(stdout);
    }
    int rc = trainer_get_params(t, flat, n);
    if (rc != 0)
        return cli_fail(CMD, "cannot read the trained parameters: %s", model_strerror(rc));
    return 0;
}

int cmd_solo(int argc, char **argv)
{
    const char *policy_path = NULL, *member = NULL, *data_dir = NULL, *out = NULL;
    unsigned long long rounds = 0, steps = 0, threads = 0, windows = 64;
    int ch;
    static const struct option lo[] = {
        { "policy", required_argument, 0, 'p' }, { "member", required_argument, 0, 'm' },
        { "data", required_argument, 0, 'd' }, { "out", required_argument, 0, 'o' },
        { "rounds", required_argument, 0, 'r' }, { "steps", required_argument, 0, 's' },
        { "threads", required_argument, 0, 't' }, { "windows", required_argument, 0, 'w' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': policy_path = optarg; break;
        case 'm': member = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'o': out = optarg; break;
        case 'r': if (cli_parse_u64(CMD, "--rounds", optarg, &rounds)) return 2; break;
        case 's': if (cli_parse_u64(CMD, "--steps", optarg, &steps)) return 2; break;
        case 't': if (cli_parse_u64(CMD, "--threads", optarg, &threads)) return 2; break;
        case 'w': if (cli_parse_u64(CMD, "--windows", optarg, &windows)) return 2; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, usage, "unexpected argument '%s'", argv[optind]);
    if (!policy_path || !member || !data_dir || !out)
        return cli_usage_error(CMD, usage, "--policy, --member, --data and --out are required");
    if (!crypto_id_valid(member))
        return cli_usage_error(CMD, usage, "--member '%s' is not a member id (1..64 of "
                               "[a-z0-9._-], starting with a letter or digit)", member);
    if (threads > 1024)
        return cli_usage_error(CMD, usage, "--threads %llu: at most 1024", threads);
    if (steps > 1000000 || rounds > 1000000)
        return cli_usage_error(CMD, usage, "--rounds and --steps are at most 1000000");
    if (windows > 0x7fffffff)
        return cli_usage_error(CMD, usage, "--windows %llu is too large", windows);

    static struct policy_errors errors;   /* large: off the stack */
    struct policy p;
    if (policy_check_file(policy_path, &p, &errors) != 0) {
        cli_print_policy_errors(&errors);
        return 1;
    }
    int rc = 1;
    struct model_layout L = { 0 };
    struct trainer *t = NULL;
    struct data *d = NULL;
    float *flat = NULL;
    char why[1024];
    char dir[4096];
    const char *slash = strrchr(policy_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - policy_path) : 0, policy_path);
    if (slash == policy_path)
        snprintf(dir, sizeof dir, "/");
    if (p.model.family != POLICY_FAMILY_GPT2) {
        cli_fail(CMD, "%s: model.family is external: aulac solo trains the built-in GPT-2 "
                 "(family gpt2); train an external model alone with its own trainer",
                 policy_path);
        goto done;
    }
    if (policy_model_layout(&p, policy_file_next_to, dir, &L, why, sizeof why) != 0) {
        cli_fail(CMD, "%s: %s", policy_path, why);
        goto done;
    }
    const size_t n = (size_t)L.n_params;
    if (!(flat = malloc(n * sizeof *flat))) {
        cli_fail(CMD, "out of memory for %zu parameters", n);
        goto done;
    }
    /* round 0: the model every member starts the experiment from */
    if (policy_model_init(&p, &L, policy_file_next_to, dir, flat, why, sizeof why) != 0) {
        cli_fail(CMD, "%s: cannot make the round-0 model: %s", policy_path, why);
        goto done;
    }
    struct policy_round_plan first;
    if (policy_round_plan(&p, 1, &first, why, sizeof why) != 0) {
        cli_fail(CMD, "%s: %s", policy_path, why);
        goto done;
    }
    struct trainer_opts to;
    trainer_opts_default(&to);
    inner_trainer_opts(&first, 1, &to);
    to.threads = (int)threads;
    int mrc = trainer_create(&L.gpt2, &to, &t);
    if (mrc == 0)
        mrc = trainer_set_params(t, flat, n);
    if (mrc != 0) {
        cli_fail(CMD, "cannot create the trainer: %s", model_strerror(mrc));
        goto done;
    }
    if (!rounds)
        rounds = p.training.rounds;
    if (train_alone(&p, member, data_dir, rounds, steps, (int)threads, t, &d, flat, n) != 0)
        goto done;
    if ((mrc = gpt2_save(out, &L.gpt2, flat)) != 0) {
        cli_fail(CMD, "cannot write the model to %s: %s", out, model_strerror(mrc));
        goto done;
    }
    const uint8_t *val;
    size_t vlen;
    float loss = NAN;
    if ((mrc = data_validation(d, 0, &val, &vlen)) != 0 ||
        (mrc = trainer_evaluate(t, val, vlen, (int)windows, &loss)) != 0) {
        cli_fail(CMD, "cannot evaluate the solo model on %s's held-out text: %s", member,
                 model_strerror(mrc));
        goto done;
    }
    uint8_t h[32];
    char hex[65];
    model_hash(flat, n, h);
    hex_encode(h, 32, hex);
    printf("solo model %.16s of %s (%" PRIu64 " steps) in %s: validation loss %.4f on its "
           "held-out text\n", hex, member, trainer_optimizer_step(t), out, loss);
    rc = 0;
done:
    data_close(d);
    trainer_destroy(t);
    free(flat);
    model_layout_free(&L);
    policy_free(&p);
    return rc;
}
