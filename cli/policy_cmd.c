/* aulac policy check, aulac site check: validate the YAML files a researcher proposes
 * and a member's worker obeys, with the errors (file:line:col: path: message) the
 * coordinator and the worker would give. aulac policy diff: what two policies set
 * differently, key by key. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/governance_cli.h"
#include "common/hex.h"
#include "credit/evalset.h"
#include "crypto/digest.h"
#include "policies/model_source.h"
#include "policies/policy.h"
#include "policies/site.h"
#include "privacy/rdp.h"

static const char policy_usage[] =
    "usage: aulac policy check FILE [--eval-sets DIR] [--no-files]\n"
    "       aulac policy diff A B [CONNECTION]\n"
    "\n"
    "check: parses and validates an experiment policy as the coordinator does\n"
    "(policies/README.md); prints its canonical hash, the model size, the rounds, the\n"
    "aggregation rule, the contribution measures and, with privacy, the epsilon after all\n"
    "rounds at privacy.delta (and with target_epsilon the round after which the budget\n"
    "ends the experiment), or every error found, one per line in file order, as\n"
    "FILE:line:col: key.path: message (at most 50, then \"... and N more errors\"). A key\n"
    "this aulac does not apply is an error (\"not implemented yet\").\n"
    "The files the model pins (model.init, model.config, model.tokenizer) are read from\n"
    "their paths relative to FILE's directory and checked as the coordinator and the\n"
    "workers use them (policies/model_source.h): each one's BLAKE2b-256 is its pin; the\n"
    "init's tensors are the GPT-2 of the sizes (family gpt2) or, with a config of a\n"
    "model_type aulac knows (llama, mistral, qwen2, gpt2), the config's (family\n"
    "external), every value finite; config and tokenizer are JSON. The model line says\n"
    "what was found, e.g.\n"
    "    model: external, 57 tensors, 2,104,832 parameters (BF16), init 3f2a9c41...,\n"
    "    config llama ok, tokenizer ok\n"
    "  --no-files       check the policy text alone (the pinned files are not read; the\n"
    "                   model line of an external model then gives no size)\n"
    "  --eval-sets DIR  also check the policy's evaluation set as the coordinator does at\n"
    "                   a proposal: DIR/<contribution.evaluation_set.name> exists and its\n"
    "                   BLAKE2b-256 is the pinned contribution.evaluation_set.blake2b\n"
    "                   (nothing to check when neither loo nor shapley is measured)\n"
    "Exit status 0 when valid, 1 when not.\n"
    "\n"
    "diff: see aulac policy diff --help.\n";

static const char diff_usage[] =
    "usage: aulac policy diff A B [CONNECTION]\n"
    "\n"
    "Compares two experiment policies key by key, on the values they mean: every\n"
    "default filled in and written canonically (policies/README.md), so comments, key\n"
    "order, quoting, number spelling, list order and spelled-out defaults never show.\n"
    "A and B are policy files or, with CONNECTION, experiment ids (or proposal hashes):\n"
    "the policy exactly as proposed, from its ledger entry (digest and the proposer's\n"
    "signature re-checked, as aulac experiment show --policy does). An argument that is\n"
    "an existing file is read as a file.\n"
    "Prints one line per key that differs, in key order:\n"
    "\n"
    "    training.rounds: 12 -> 24\n"
    "    participation.members: * -> fpt,hust,vnpt      (* is members: all)\n"
    "\n"
    "or, when nothing differs, that they are the same policy and its hash.\n"
    "Exit status 0 when the same, 1 when they differ, 2 on error (a file that does not\n"
    "load, with its FILE:line:col: key.path: message; an unknown experiment; a usage\n"
    "error).\n"
    "\n"
    "CONNECTION (only for experiment ids):\n" SIGNED_CLIENT_USAGE;

static const char site_usage[] =
    "usage: aulac site check FILE [--policy POLICY]\n"
    "\n"
    "Parses and validates a member's site policy (site.yaml) as the worker does; with\n"
    "--policy, also says whether that site lets its worker take part in the experiment\n"
    "POLICY, and why not. It also shows governance.auto_vote: whether this member's\n"
    "worker votes on experiment proposals for it (approve-if-allowed: yes when the site\n"
    "allows the proposed policy, no otherwise) or leaves votes to aulac vote (never), and\n"
    "its trainer: builtin (family gpt2 without a tokenizer only) or the plug-in command\n"
    "(worker/TRAINER.md).\n"
    "Errors are FILE:line:col: key.path: message, every one found, one per line (as\n"
    "aulac policy check prints them). Exit status 0 when valid (and allowed), 1 otherwise.\n";

/* "CMD check FILE [options]" (or "CMD --help"): returns -1 to go on with *file (and
 * *option for the command's one option, --policy or --eval-sets), else the exit status. */
static int parse_check(const char *cmd, const char *usage, int argc, char **argv,
                       const struct option *lo, const char **file, const char **option,
                       int *no_files)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return cli_usage_error(cmd, usage, "expected: %s check FILE", cmd);
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
        case 'e': *option = optarg; break;
        case 'n': *no_files = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind + 1 != argc - 1)
        return cli_usage_error(cmd, usage, "expected one FILE");
    *file = argv[optind + 1];
    return -1;
}

void cli_print_policy_errors(const struct policy_errors *errors)
{
    for (size_t i = 0; i < errors->n; i++)
        fprintf(stderr, "%s\n", errors->item[i].message);
    char more[64];
    if (policy_errors_more(errors, more, sizeof more))
        fprintf(stderr, "%s\n", more);
}

/* A policy named on the command line: a file, or (when it is no file and sc names a
 * coordinator) an experiment id or proposal hash whose proposed text is fetched. 0, or
 * -1 with every error printed. */
static int load_policy_arg(struct signed_client *sc, int *opened, const char *arg,
                           struct policy *out)
{
    static struct policy_errors errors;   /* 45 KiB: off the stack */
    if (access(arg, F_OK) == 0 || !sc->coordinator) {
        if (policy_check_file(arg, out, &errors) != 0) {
            cli_print_policy_errors(&errors);
            return -1;
        }
        return 0;
    }
    if (!crypto_id_valid(arg) && strlen(arg) != 64) {
        cli_fail("policy diff", "%s is neither a policy file nor an experiment id", arg);
        return -1;
    }
    if (!*opened) {
        if (signed_client_open(sc, "policy diff", diff_usage) != 0)
            return -1;
        *opened = 1;
    }
    uint8_t *doc = NULL;
    size_t len = 0;
    if (governance_experiment_policy(sc, arg, &doc, &len) != 0)
        return -1;
    int rc = policy_check_buffer(arg, doc, len, out, &errors);
    free(doc);
    if (rc != 0) {
        cli_print_policy_errors(&errors);
        return -1;
    }
    return 0;
}

static int print_difference(const char *path, const char *a, const char *b, void *arg)
{
    (void)arg;
    printf("%s: %s -> %s\n", path, a ? a : "(absent)", b ? b : "(absent)");
    return 0;
}

static int policy_diff_cmd(int argc, char **argv)
{
    static const struct option lo[] = { SIGNED_CLIENT_OPTIONS, { "help", no_argument, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    struct signed_client sc = { 0 };
    int ch, opened = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (signed_client_option(&sc, ch, optarg))
            continue;
        switch (ch) {
        case 'h': fputs(diff_usage, stdout); return 0;
        default: fputs(diff_usage, stderr); return 2;
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("policy diff", diff_usage, "expected two policies, A and B");
    struct policy a, b;
    if (load_policy_arg(&sc, &opened, argv[optind], &a) != 0) {
        signed_client_close(&sc);
        return 2;
    }
    if (load_policy_arg(&sc, &opened, argv[optind + 1], &b) != 0) {
        policy_free(&a);
        signed_client_close(&sc);
        return 2;
    }
    signed_client_close(&sc);
    size_t n = 0;
    uint8_t h[32];
    int rc = policy_diff(&a, &b, print_difference, NULL, &n);
    if (rc == 0 && n == 0)
        rc = policy_hash(&a, h);
    if (rc == 0 && n == 0) {
        char hex[65];
        hex_encode(h, 32, hex);
        printf("%s and %s are the same policy (hash %s)\n", argv[optind], argv[optind + 1],
               hex);
    }
    policy_free(&a);
    policy_free(&b);
    if (rc != 0) {
        cli_fail("policy diff", "%s", policy_strerror(rc));
        return 2;
    }
    return n == 0 ? 0 : 1;
}

/* "tokens, shapley x2" (weights other than 1 shown), the evaluation set, the retention. */
static void print_contribution(const struct policy_contribution *c)
{
    char line[512];
    size_t o = 0;
    line[0] = '\0';
    for (int m = 0; m < POLICY_MEASURES && o < sizeof line; m++) {
        if (!(c->measures & (1u << m)))
            continue;
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s", o ? ", " : "",
                              policy_measure_name((enum policy_measure)m));
        if (c->credit_weights[m] == 0 && o < sizeof line)
            o += (size_t)snprintf(line + o, sizeof line - o, " (not credited)");
        else if (c->credit_weights[m] != 1 && o < sizeof line)
            o += (size_t)snprintf(line + o, sizeof line - o, " (weight %g)", c->credit_weights[m]);
    }
    printf("contribution: %s; accepted payloads kept %u days after the experiment\n", line,
           c->payload_retention_days);
    if (c->has_evalset) {
        char hex[65];
        hex_encode(c->evalset_hash, 32, hex);
        printf("evaluation set: %s (BLAKE2b-256 %s), %u windows\n", c->evalset_name, hex,
               c->eval_windows);
    }
}

/* "aggregation: multi_krum, byzantine 2 (a round needs 2f + 3 = 7 updates), select n - f;
 * weighting uniform; ..." */
static void print_aggregation(const struct policy *p)
{
    const struct policy_aggregation *a = &p->aggregation;
    uint32_t k = p->participation.min_members;
    char rule[256];
    switch (a->rule) {
    case POLICY_AGG_CLIP:
        if (a->norm_cap > 0)
            snprintf(rule, sizeof rule, "clip, each update scaled to L2 norm <= %g; one over "
                     "%g refused", a->norm_bound, a->norm_cap);
        else
            snprintf(rule, sizeof rule, "clip, each update scaled to L2 norm <= %g",
                     a->norm_bound);
        break;
    case POLICY_AGG_TRIMMED_MEAN: {
        uint32_t cut = (uint32_t)(a->trim * k);   /* floor(trim k), as aggregate/robust.h */
        snprintf(rule, sizeof rule, "trimmed_mean, trim %g (with min_members %u: %u value%s of "
                 "each coordinate dropped at each end)", a->trim, k, cut, cut == 1 ? "" : "s");
        break;
    }
    case POLICY_AGG_MULTI_KRUM:
        if (a->select)
            snprintf(rule, sizeof rule, "multi_krum, byzantine %u (a round needs 2f + 3 = %u "
                     "updates), the %u of lowest score averaged", a->byzantine,
                     2 * a->byzantine + 3, a->select);
        else
            snprintf(rule, sizeof rule, "multi_krum, byzantine %u (a round needs 2f + 3 = %u "
                     "updates), n - f of the n that report averaged", a->byzantine,
                     2 * a->byzantine + 3);
        break;
    default:
        snprintf(rule, sizeof rule, "%s", policy_agg_rule_name(a->rule));
        break;
    }
    char bound[64] = "";
    if (a->rule != POLICY_AGG_CLIP && a->norm_bound > 0)
        snprintf(bound, sizeof bound, "; an update of L2 norm over %g refused", a->norm_bound);
    printf("aggregation: %s; weighting %s%s\n", rule, policy_weighting_name(a->weighting), bound);
}

/* 2104832 as "2,104,832". */
static const char *grouped(uint64_t v, char *out, size_t cap)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

/* The model line: the family and its size, and what the pinned files were found to be
 * (s NULL: the files were not read, --no-files). */
static void print_model(const struct policy *p, const struct policy_model_summary *s)
{
    const struct policy_model *m = &p->model;
    char line[1024], num[40], hex[65];
    size_t o = 0;
    if (m->family == POLICY_FAMILY_GPT2)
        o += (size_t)snprintf(line + o, sizeof line - o, "gpt2 %u layers, %u heads, %u wide, "
                              "%llu parameters", m->n_layer, m->n_head, m->n_embd,
                              (unsigned long long)policy_model_parameters(m));
    else if (s)
        o += (size_t)snprintf(line + o, sizeof line - o, "external, %zu tensors, %s "
                              "parameters", s->n_tensors, grouped(s->n_params, num, sizeof num));
    else
        o += (size_t)snprintf(line + o, sizeof line - o, "external (size: the init file's, "
                              "not read)");
    if (s && m->init.present) {
        size_t k = 0;
        char dt[40] = "";
        for (int d = 0; d < ST_DTYPE_COUNT; d++)
            if (s->dtypes & (1u << d))
                k += (size_t)snprintf(dt + k, sizeof dt - k, "%s%s", k ? "+" : "",
                                      st_dtype_name((enum st_dtype)d));
        if (o < sizeof line)
            o += (size_t)snprintf(line + o, sizeof line - o, " (%s)", dt);
    }
    if (m->init.present && o < sizeof line) {
        hex_encode(m->init.blake2b, 32, hex);
        o += (size_t)snprintf(line + o, sizeof line - o, ", init %.8s...%s", hex,
                              !s ? " (not read)" : m->family == POLICY_FAMILY_GPT2 ?
                              " ok (the GPT-2 of these sizes)" : "");
    }
    if (m->config.present && o < sizeof line) {
        if (!s)
            o += (size_t)snprintf(line + o, sizeof line - o, ", config (not read)");
        else if (s->config_checked)
            o += (size_t)snprintf(line + o, sizeof line - o, ", config %s ok", s->config_type);
        else if (s->config_type[0])
            o += (size_t)snprintf(line + o, sizeof line - o, ", config \"%s\" (a model_type "
                                  "aulac does not know: the init's tensor set was not checked "
                                  "against the config)", s->config_type);
        else
            o += (size_t)snprintf(line + o, sizeof line - o, ", config without a model_type "
                                  "(the init's tensor set was not checked against it)");
    }
    if (m->tokenizer.present && o < sizeof line)
        o += (size_t)snprintf(line + o, sizeof line - o, ", tokenizer %s",
                              s ? "ok" : "(not read)");
    printf("model: %s\n", line);
}

/* DP-FedAvg: the epsilon after all rounds at delta (privacy/rdp.h, q = 1), and with a
 * target epsilon the round at which the budget ends the experiment. 0, or 1 when the
 * accountant fails. */
static int print_privacy(const struct policy *p)
{
    const struct policy_privacy *v = &p->privacy;
    if (!v->enabled) {
        printf("privacy: none (updates are neither clipped nor noised)\n");
        return 0;
    }
    uint32_t rounds = p->training.rounds;
    printf("privacy: DP-FedAvg, each update clipped to L2 norm %g, noise multiplier %g (noise "
           "std %g on the round's sum), delta %g\n", v->clip, v->noise_multiplier,
           v->noise_multiplier * v->clip, v->delta);
    double eps;
    int rc = rdp_epsilon(1.0, v->noise_multiplier, rounds, v->delta, &eps);
    if (rc != 0) {
        fprintf(stderr, "aulac policy: the privacy accountant failed: %s\n", rdp_strerror(rc));
        return 1;
    }
    if (isinf(eps))
        printf("epsilon: infinite (noise_multiplier 0: clipping only, no privacy guarantee)\n");
    else
        printf("epsilon: %.4g after all %u rounds at delta %g\n", eps, rounds, v->delta);
    if (v->target_epsilon <= 0)
        return 0;
    uint64_t steps = 0;
    rc = rdp_max_steps(1.0, v->noise_multiplier, v->delta, v->target_epsilon, rounds, &steps);
    if (rc != 0) {
        fprintf(stderr, "aulac policy: the privacy accountant failed: %s\n", rdp_strerror(rc));
        return 1;
    }
    if (steps >= rounds) {
        printf("target epsilon %g: not reached in the %u rounds\n", v->target_epsilon, rounds);
        return 0;
    }
    double next;
    if ((rc = rdp_epsilon(1.0, v->noise_multiplier, steps + 1, v->delta, &next)) != 0) {
        fprintf(stderr, "aulac policy: the privacy accountant failed: %s\n", rdp_strerror(rc));
        return 1;
    }
    if (steps == 0) {
        printf("target epsilon %g: the budget ends the experiment before round 1 (round 1 "
               "alone would spend %.4g)\n", v->target_epsilon, next);
        return 0;
    }
    double spent;
    if ((rc = rdp_epsilon(1.0, v->noise_multiplier, steps, v->delta, &spent)) != 0) {
        fprintf(stderr, "aulac policy: the privacy accountant failed: %s\n", rdp_strerror(rc));
        return 1;
    }
    printf("target epsilon %g: the budget ends the experiment after round %llu of %u "
           "(epsilon %.4g; round %llu would reach %.4g)\n", v->target_epsilon,
           (unsigned long long)steps, rounds, spent, (unsigned long long)steps + 1, next);
    return 0;
}

int cmd_policy(int argc, char **argv)
{
    static const struct option lo[] = { { "eval-sets", required_argument, 0, 'e' },
                                        { "no-files", no_argument, 0, 'n' },
                                        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    if (argc >= 2 && strcmp(argv[1], "diff") == 0)
        return policy_diff_cmd(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "check") != 0 && argv[1][0] != '-')
        return cli_usage_error("policy", policy_usage, "unknown subcommand '%s'", argv[1]);
    const char *file = NULL, *eval_sets = NULL;
    int no_files = 0;
    int rc = parse_check("policy", policy_usage, argc, argv, lo, &file, &eval_sets, &no_files);
    if (rc >= 0)
        return rc;
    struct policy p;
    struct signed_client none = { 0 };   /* check reads files only */
    int opened = 0;
    if (load_policy_arg(&none, &opened, file, &p) != 0)
        return 1;
    if (eval_sets) {
        /* the coordinator's check of a proposal (credit/evalset.h) */
        char why[768];
        if (evalset_check_policy(&p.contribution, p.training.seq_len, eval_sets, why, sizeof why) != 0) {
            fprintf(stderr, "%s: %s\n", file, why);
            policy_free(&p);
            return 1;
        }
    }
    /* the pinned files, next to the policy, as the coordinator and workers check them */
    struct policy_model_summary summary;
    if (!no_files) {
        char dir[4096], why[1024];
        const char *slash = strrchr(file, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - file) : 0, file);
        if (slash == file)
            snprintf(dir, sizeof dir, "/");
        if (policy_model_check(&p, policy_file_next_to, dir, &summary, why, sizeof why) != 0) {
            fprintf(stderr, "%s: %s\n", file, why);
            policy_free(&p);
            return 1;
        }
    }
    uint8_t h[32];
    char hex[65], members[48];
    if (policy_hash(&p, h) != 0) {
        policy_free(&p);
        return cli_fail("policy", "out of memory");
    }
    hex_encode(h, 32, hex);
    if (policy_all_members(&p))
        snprintf(members, sizeof members, "every roster member (members: all)");
    else
        snprintf(members, sizeof members, "%zu members", p.participation.n_members);
    printf("%s: ok\nname: %s\nhash: %s\n", file, p.metadata.name, hex);
    print_model(&p, no_files ? NULL : &summary);
    printf("rounds: %u x %u local steps, %s (min %u)\n", p.training.rounds,
           p.training.local_steps, members, p.participation.min_members);
    print_aggregation(&p);
    print_contribution(&p.contribution);
    if (print_privacy(&p) != 0) {
        policy_free(&p);
        return 1;
    }
    if (eval_sets)
        printf("%s\n", p.contribution.has_evalset
                          ? "evaluation set: found in --eval-sets with the pinned hash"
                          : "evaluation set: none needed (neither loo nor shapley is measured)");
    policy_free(&p);
    return 0;
}

int cmd_site(int argc, char **argv)
{
    static const struct option lo[] = {
        { "policy", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    const char *file = NULL, *policy_file = NULL;
    int no_files = 0;   /* no such option for site check */
    int rc = parse_check("site", site_usage, argc, argv, lo, &file, &policy_file, &no_files);
    if (rc >= 0)
        return rc;
    struct site_policy s;
    static struct policy_errors errors;
    if (site_policy_check_file(file, &s, &errors) != 0) {
        cli_print_policy_errors(&errors);
        return 1;
    }
    printf("%s: ok\n", file);
    if (s.auto_vote == SITE_AUTO_VOTE_APPROVE_IF_ALLOWED)
        printf("governance.auto_vote: approve-if-allowed (this member's worker votes on "
               "experiment proposals: yes when this site allows one, no with the reason "
               "otherwise)\n");
    else
        printf("governance.auto_vote: never (this member votes by hand: aulac vote)\n");
    if (s.trainer.kind == SITE_TRAINER_COMMAND) {
        printf("trainer: command");
        for (size_t i = 0; i < s.trainer.n_args; i++)
            printf(" %s", s.trainer.argv[i]);
        printf(" (mode %s, timeout %u s, workdir %s, %zu environment variable%s)\n",
               s.trainer.mode == SITE_TRAINER_SERVE ? "serve" : "oneshot", s.trainer.timeout_s,
               s.trainer.workdir ? s.trainer.workdir : "<state dir>/trainer", s.trainer.n_env,
               s.trainer.n_env == 1 ? "" : "s");
    } else {
        printf("trainer: builtin (trains family gpt2 without a tokenizer only; other "
               "experiments are sat out)\n");
    }
    if (!policy_file) {
        site_policy_free(&s);
        return 0;
    }
    struct policy p;
    struct signed_client none = { 0 };   /* files only */
    int opened = 0;
    if (load_policy_arg(&none, &opened, policy_file, &p) != 0) {
        site_policy_free(&s);
        return 1;
    }
    char why[512];
    rc = site_check(&s, &p, why, sizeof why);
    if (rc == 0)
        printf("%s: this site allows experiment %s\n", file, p.metadata.name);
    if (rc == 0 && p.model.family != POLICY_FAMILY_GPT2 && s.max_parameters)
        printf("%s: limits.max_parameters %llu is checked by the worker once it has the "
               "model's init file (family external: its size is the file's)\n", file,
               (unsigned long long)s.max_parameters);
    else
        fprintf(stderr, "%s: refuses %s\n", file, why);
    policy_free(&p);
    site_policy_free(&s);
    return rc == 0 ? 0 : 1;
}
