/* Unit tests for site.yaml's trainer section (policies/site.h struct site_trainer,
 * worker/TRAINER.md "Choosing a trainer"): its defaults, every key, each bad value with
 * file:line:col and key path, the keys of kind command refused with builtin, and
 * site_check() refusing family external and tokenizer models on a builtin site (and
 * deferring limits.max_parameters of an external model to the worker). Other site
 * policy tests are in test_policy.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "policies/site.h"

static int site(const char *text, struct site_policy *s, struct policy_error *e)
{
    return site_load_buffer("site.yaml", text, strlen(text), s, e);
}

static void expect_error(const char *text, int code, const char *message)
{
    struct site_policy s;
    struct policy_error e;
    int rc = site(text, &s, &e);
    if (rc != code || strcmp(e.message, message) != 0)
        fail_msg("got %d \"%s\", expected %d \"%s\"", rc, e.message, code, message);
    site_policy_free(&s);
}

static void trainer_defaults_to_builtin(void **state)
{
    (void)state;
    struct site_policy s;
    struct policy_error e;
    assert_int_equal(site("schema: 1\n", &s, &e), 0);
    assert_int_equal(s.trainer.kind, SITE_TRAINER_BUILTIN);
    assert_int_equal(s.trainer.mode, SITE_TRAINER_ONESHOT);
    assert_null(s.trainer.argv);
    assert_int_equal(s.trainer.n_args, 0);
    assert_null(s.trainer.workdir);
    assert_int_equal(s.trainer.timeout_s, SITE_TRAINER_TIMEOUT_DEFAULT);
    assert_null(s.trainer.env);
    assert_int_equal(s.trainer.n_env, 0);
    site_policy_free(&s);
    assert_int_equal(site("schema: 1\ntrainer: {kind: builtin}\n", &s, &e), 0);
    assert_int_equal(s.trainer.kind, SITE_TRAINER_BUILTIN);
    site_policy_free(&s);
    site_policy_init(&s);
    assert_int_equal(s.trainer.kind, SITE_TRAINER_BUILTIN);
    assert_int_equal(s.trainer.timeout_s, SITE_TRAINER_TIMEOUT_DEFAULT);
    site_policy_free(&s);
}

static void trainer_command_keys(void **state)
{
    (void)state;
    const char *text =
        "schema: 1\n"
        "member: fpt\n"
        "trainer:\n"
        "  kind: command\n"
        "  command: [python3, /opt/aulac/plugins/torch_causal_lm.py, \"--flag=a b\"]\n"
        "  mode: serve\n"
        "  workdir: /var/lib/aulac/trainer\n"
        "  timeout_s: 7200\n"
        "  env: {CUDA_VISIBLE_DEVICES: \"0,1\", HF_HOME: /srv/hf, OMP_NUM_THREADS: 4, _X: ''}\n";
    struct site_policy s;
    struct policy_error e;
    if (site(text, &s, &e) != 0)
        fail_msg("%s", e.message);
    struct site_trainer *t = &s.trainer;
    assert_int_equal(t->kind, SITE_TRAINER_COMMAND);
    assert_int_equal(t->mode, SITE_TRAINER_SERVE);
    assert_int_equal(t->n_args, 3);
    assert_string_equal(t->argv[0], "python3");
    assert_string_equal(t->argv[1], "/opt/aulac/plugins/torch_causal_lm.py");
    assert_string_equal(t->argv[2], "--flag=a b");
    assert_null(t->argv[3]);
    assert_string_equal(t->workdir, "/var/lib/aulac/trainer");
    assert_int_equal(t->timeout_s, 7200);
    assert_int_equal(t->n_env, 4);
    assert_string_equal(t->env[0], "CUDA_VISIBLE_DEVICES=0,1");
    assert_string_equal(t->env[1], "HF_HOME=/srv/hf");
    assert_string_equal(t->env[2], "OMP_NUM_THREADS=4");
    assert_string_equal(t->env[3], "_X=");
    site_policy_free(&s);
    assert_null(s.trainer.argv);

    /* the smallest command trainer: oneshot, 3600 s, no workdir, no env */
    assert_int_equal(site("schema: 1\ntrainer:\n  kind: command\n  command: [./train]\n", &s, &e),
                     0);
    assert_int_equal(s.trainer.mode, SITE_TRAINER_ONESHOT);
    assert_int_equal(s.trainer.timeout_s, 3600);
    assert_int_equal(s.trainer.n_args, 1);
    assert_null(s.trainer.workdir);
    site_policy_free(&s);

    /* limits of the lists: 64 arguments, 64 variables */
    char big[8192];
    size_t o = (size_t)snprintf(big, sizeof big, "schema: 1\ntrainer:\n  kind: command\n"
                                "  command: [");
    for (int i = 0; i < SITE_TRAINER_ARGS_MAX; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "%sa%d", i ? ", " : "", i);
    snprintf(big + o, sizeof big - o, "]\n");
    assert_int_equal(site(big, &s, &e), 0);
    assert_int_equal(s.trainer.n_args, SITE_TRAINER_ARGS_MAX);
    site_policy_free(&s);
    snprintf(big + o, sizeof big - o, ", one_more]\n");
    assert_int_equal(site(big, &s, &e), POLICY_ERR_RANGE);
    assert_non_null(strstr(e.message, "trainer.command: expected 1 to 64 strings"));
}

static void trainer_bad_values(void **state)
{
    (void)state;
#define T "schema: 1\ntrainer:\n  kind: command\n  command: [x]\n"
    expect_error("schema: 1\ntrainer:\n  kind: command\n", POLICY_ERR_MISSING,
                 "site.yaml:3:3: trainer.command: kind command needs command, the plug-in's "
                 "argv list (no shell), e.g. [python3, /opt/aulac/plugins/torch_causal_lm.py] "
                 "(worker/TRAINER.md)");
    expect_error("schema: 1\ntrainer:\n  command: [x]\n", POLICY_ERR_INVALID,
                 "site.yaml:3:3: trainer.command: only used by kind: command (a plug-in "
                 "trainer); the trainer is builtin, the default: set trainer.kind: command or "
                 "remove the key");
    expect_error("schema: 1\ntrainer:\n  kind: builtin\n  timeout_s: 60\n", POLICY_ERR_INVALID,
                 "site.yaml:4:3: trainer.timeout_s: only used by kind: command (a plug-in "
                 "trainer); the trainer is builtin: set trainer.kind: command or remove the key");
    expect_error("schema: 1\ntrainer:\n  env: {A: b}\n", POLICY_ERR_INVALID,
                 "site.yaml:3:3: trainer.env: only used by kind: command (a plug-in trainer); "
                 "the trainer is builtin, the default: set trainer.kind: command or remove the "
                 "key");
    expect_error("schema: 1\ntrainer:\n  kind: plugin\n", POLICY_ERR_RANGE,
                 "site.yaml:3:9: trainer.kind: expected one of builtin, command, got \"plugin\"");
    expect_error(T "  mode: daemon\n", POLICY_ERR_RANGE,
                 "site.yaml:5:9: trainer.mode: expected one of oneshot, serve, got \"daemon\"");
    expect_error("schema: 1\ntrainer:\n  kind: command\n  command: python3 train.py\n",
                 POLICY_ERR_TYPE,
                 "site.yaml:4:12: trainer.command: expected a list of strings, got "
                 "\"python3 train.py\"");
    expect_error("schema: 1\ntrainer:\n  kind: command\n  command: []\n", POLICY_ERR_RANGE,
                 "site.yaml:4:12: trainer.command: expected 1 to 64 strings, got an empty list");
    expect_error("schema: 1\ntrainer:\n  kind: command\n  command: [x, \"a\\nb\"]\n",
                 POLICY_ERR_RANGE,
                 "site.yaml:4:17: trainer.command: contains control characters (newline, tab, "
                 "NUL) or invalid UTF-8");
    expect_error("schema: 1\ntrainer:\n  kind: command\n  command: [x, [y]]\n", POLICY_ERR_TYPE,
                 "site.yaml:4:16: trainer.command: expected a string, got a list");
    expect_error("schema: 1\ntrainer:\n  kind: command\n  command: [x, \"\"]\n",
                 POLICY_ERR_RANGE,
                 "site.yaml:4:17: trainer.command: expected 1 to 4096 bytes, got \"\"");
    expect_error(T "  workdir: ~\n", POLICY_ERR_TYPE,
                 "site.yaml:5:12: trainer.workdir: expected a string, got null");
    expect_error(T "  timeout_s: 0\n", POLICY_ERR_RANGE,
                 "site.yaml:5:14: trainer.timeout_s: expected an integer in [1, 604800], got 0");
    expect_error(T "  timeout_s: 604801\n", POLICY_ERR_RANGE,
                 "site.yaml:5:14: trainer.timeout_s: expected an integer in [1, 604800], got "
                 "604801");
    expect_error(T "  env: {1GPU: x}\n", POLICY_ERR_RANGE,
                 "site.yaml:5:9: trainer.env: expected an environment variable name "
                 "([A-Za-z_][A-Za-z0-9_]*, at most 128 characters), got \"1GPU\"");
    expect_error(T "  env: {A-B: x}\n", POLICY_ERR_RANGE,
                 "site.yaml:5:9: trainer.env: expected an environment variable name "
                 "([A-Za-z_][A-Za-z0-9_]*, at most 128 characters), got \"A-B\"");
    expect_error(T "  env: {A: ~}\n", POLICY_ERR_TYPE,
                 "site.yaml:5:12: trainer.env.A: expected a value (a string), got null");
    expect_error(T "  env: {A: [1]}\n", POLICY_ERR_TYPE,
                 "site.yaml:5:12: trainer.env.A: expected a value (a string), got a list");
    expect_error(T "  env: {A: x, A: y}\n", POLICY_ERR_DUPLICATE,
                 "site.yaml:5:15: duplicate key \"A\" (first defined at line 5, column 9)");
    expect_error(T "  env: {HF_HOME: /srv/hf, AULAC_PLAN: /tmp/p}\n", POLICY_ERR_INVALID,
                 "site.yaml:5:3: trainer.env.AULAC_PLAN: names starting with AULAC_ are the "
                 "worker's own (it sets AULAC_PLAN for the plug-in); choose another name");
    expect_error(T "  env: {AULAC_LOG: debug}\n", POLICY_ERR_INVALID,
                 "site.yaml:5:3: trainer.env.AULAC_LOG: names starting with AULAC_ are the "
                 "worker's own (it sets AULAC_PLAN for the plug-in); choose another name");
    expect_error(T "  env: [A=x]\n", POLICY_ERR_TYPE,
                 "site.yaml:5:8: trainer.env: expected a mapping of variable names to values, "
                 "got a list");
    expect_error(T "  args: [x]\n", POLICY_ERR_UNKNOWN_KEY,
                 "site.yaml:5:3: trainer.args: unknown key; valid keys here: kind, command, "
                 "mode, workdir, timeout_s, env");
    expect_error("schema: 1\ntrainer:\n  kind: command\n  commands: [x]\n",
                 POLICY_ERR_UNKNOWN_KEY,
                 "site.yaml:4:3: trainer.commands: unknown key (did you mean \"command\"?)");
    expect_error("schema: 1\ntrainer: command\n", POLICY_ERR_TYPE,
                 "site.yaml:2:10: trainer: expected a mapping of keys, got \"command\"");
#undef T
}

#define POLICY_HEAD "schema: 1\nmetadata: {name: t}\n"
#define PIN "3f2a9c41aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void load_policy(const char *text, struct policy *p)
{
    struct policy_error e;
    if (policy_load_buffer("p.yaml", text, strlen(text), p, &e) != 0)
        fail_msg("%s", e.message);
}

/* A builtin site sits out external and tokenizer models, saying what to do; a command
 * site takes them; max_parameters of an external model is the worker's to check. */
static void builtin_site_refuses_what_it_cannot_train(void **state)
{
    (void)state;
    struct policy gpt2, gpt2_tok, gpt2_init, ext;
    load_policy(POLICY_HEAD "model: {n_positions: 16, n_layer: 1, n_head: 1, n_embd: 8}\n"
                "training: {rounds: 1}\n", &gpt2);
    load_policy(POLICY_HEAD "model:\n  n_positions: 16\n  n_layer: 1\n  n_head: 1\n"
                "  n_embd: 8\n  tokenizer: {file: tok/tokenizer.json, blake2b: \"" PIN "\"}\n"
                "training: {rounds: 1}\n", &gpt2_tok);
    load_policy(POLICY_HEAD "model:\n  n_positions: 16\n  n_layer: 1\n  n_head: 1\n"
                "  n_embd: 8\n  init: {file: gpt2.safetensors, blake2b: \"" PIN "\"}\n"
                "training: {rounds: 1}\n", &gpt2_init);
    load_policy(POLICY_HEAD "model:\n  family: external\n"
                "  init: {file: m.safetensors, blake2b: \"" PIN "\"}\n"
                "training: {rounds: 1, seq_len: 64}\n", &ext);
    struct site_policy builtin, command;
    struct policy_error e;
    char why[512];
    assert_int_equal(site("schema: 1\nlimits: {max_parameters: 10, max_artifact_bytes: 4096}\n",
                          &builtin, &e), 0);
    assert_int_equal(builtin.max_artifact_bytes, 4096);   /* the worker's download cap */
    assert_int_equal(site("schema: 1\nlimits: {max_parameters: 10}\ntrainer:\n  kind: command\n"
                          "  command: [python3, plug.py]\n", &command, &e), 0);

    assert_int_equal(site_check(&builtin, &ext, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_string_equal(why, "experiment t: its model is of family external, and this site's "
                        "trainer is builtin: the built-in trainer trains only GPT-2 on bytes; "
                        "set trainer.kind: command with a plug-in (worker/TRAINER.md)");
    assert_int_equal(site_check(&builtin, &gpt2_tok, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_string_equal(why, "experiment t: its model has a tokenizer (model.tokenizer "
                        "tok/tokenizer.json), and this site's trainer is builtin: the built-in "
                        "trainer trains only GPT-2 on bytes; set trainer.kind: command with a "
                        "plug-in (worker/TRAINER.md)");
    /* an init (continued pre-training) is fine for the built-in trainer: only the limit */
    assert_int_equal(site_check(&builtin, &gpt2_init, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "over this site's limits.max_parameters 10"));
    assert_int_equal(site_check(&builtin, &gpt2, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "limits.max_parameters 10"));

    /* a command site: the external model passes site_check (its size is the worker's to
     * check once it has the layout), the GPT-2 ones meet the limit as before */
    assert_int_equal(site_check(&command, &ext, why, sizeof why), 0);
    assert_int_equal(site_check(&command, &gpt2_tok, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "limits.max_parameters 10"));
    site_policy_free(&command);
    assert_int_equal(site("schema: 1\ntrainer:\n  kind: command\n  command: [p]\n", &command, &e),
                     0);
    assert_int_equal(site_check(&command, &gpt2_tok, why, sizeof why), 0);
    assert_int_equal(site_check(&command, &gpt2, why, sizeof why), 0);
    /* the allow rules come first, whatever the trainer */
    site_policy_free(&builtin);
    assert_int_equal(site("schema: 1\nallow: {experiments: [demo-*]}\n", &builtin, &e), 0);
    assert_int_equal(site_check(&builtin, &ext, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "allow.experiments"));

    site_policy_free(&builtin);
    site_policy_free(&command);
    policy_free(&gpt2);
    policy_free(&gpt2_tok);
    policy_free(&gpt2_init);
    policy_free(&ext);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trainer_defaults_to_builtin),
        cmocka_unit_test(trainer_command_keys),
        cmocka_unit_test(trainer_bad_values),
        cmocka_unit_test(builtin_site_refuses_what_it_cannot_train),
    };
    return cmocka_run_group_tests_name("site", tests, NULL, NULL);
}
