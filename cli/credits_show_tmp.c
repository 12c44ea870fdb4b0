/* TEMPORARY (branch h12-verify only): `aulac credits` without `verify` is
 * cli/credits_report.c's (another branch). This stand-in lets this branch link alone;
 * DELETE THIS FILE when merging that branch (a duplicate definition then fails the link
 * loudly instead of keeping this stand-in, as a weak symbol in an archive could). */
#include <stdio.h>

#include "cli/cli.h"

int cmd_credits_show(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("aulac credits: only `aulac credits verify` is in this build\n", stderr);
    return 2;
}
