#ifndef AULAC_CLI_GOVERNANCE_CLI_H
#define AULAC_CLI_GOVERNANCE_CLI_H
/* Shared by aulac member and aulac vote. */
#include <stdio.h>

#include "proto/aulac.pb-c.h"

/* A few indented lines: what is proposed, by whom, the tally and the state. */
void governance_print_status(FILE *f, const Aulac__V1__ProposalStatus *ps);

#endif
