#ifndef AULAC_CLI_CLI_H
#define AULAC_CLI_CLI_H
/* The aulac command line: one function per command, each parsing its own options
 * (getopt_long, argv[0] is the command name) and returning the process exit status:
 * 0 success, 1 failure, 2 usage error. */

int cmd_keygen(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_ledger(int argc, char **argv);   /* show | verify | checkpoint | proof | consistency | export */
int cmd_eval(int argc, char **argv);
int cmd_solo(int argc, char **argv);   /* cli/solo.c */
int cmd_policy(int argc, char **argv);   /* check | diff */
int cmd_site(int argc, char **argv);     /* check */
int cmd_member(int argc, char **argv);   /* propose-add | propose-remove | propose-rotate | list */
int cmd_vote(int argc, char **argv);
int cmd_experiment(int argc, char **argv);   /* propose | withdraw | propose-cancel | list | show */
int cmd_charter(int argc, char **argv);      /* propose | show */
int cmd_tls(int argc, char **argv);
int cmd_witness(int argc, char **argv);  /* check */
int cmd_roster(int argc, char **argv);   /* add | show */      /* init | issue */
/* aulac credits: `credits verify ...` (cli/credits_verify.c) and otherwise the credits
 * table (cli/credits_show.c: aulac credits SOURCE [--experiment ID] [--format
 * table|csv|json]); argv[0] is "verify" / "credits". */
int cmd_credits_verify(int argc, char **argv);
int cmd_ledger_replay(int argc, char **argv);   /* cli/credits_verify.c: the same replay */
int cmd_credits_show(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_artifact(int argc, char **argv); /* put | get (cli/artifact_cmd.c) */   /* SOURCE --experiment ID --out FILE */

/* Prints "aulac CMD: message" to stderr; returns 2 (usage) or 1. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints every error of a policy or site policy check to stderr, one per line, then
 * "... and N more errors" when some were left out (cli/policy_cmd.c). */
struct policy_errors;
void cli_print_policy_errors(const struct policy_errors *errors);
/* Parses a non-negative integer option; -1 with a message on bad input. */
int cli_parse_u64(const char *cmd, const char *flag, const char *s, unsigned long long *out);

#endif
