#ifndef AULAC_CLI_GOVERNANCE_CLI_H
#define AULAC_CLI_GOVERNANCE_CLI_H
/* Shared by aulac member, aulac vote, aulac experiment and aulac charter. */
#include <stdio.h>

#include "cli/signed_client.h"
#include "crypto/motion.h"
#include "proto/aulac.pb-c.h"

/* A few indented lines: what is proposed, by whom, the tally and the state. */
void governance_print_status(FILE *f, const Aulac__V1__ProposalStatus *ps);

/* ListProposals with the closed ones (only: that proposal hash, or NULL): roster,
 * proposals, the charter in force. 0, or 1 with a message. */
int governance_fetch(struct signed_client *sc, const char *cmd, const uint8_t *only,
                     Aulac__V1__ProposalsReply **out);

/* Signs and sends a motion whose kind, experiment, content hash and reason are set
 * (alliance, proposer, times and document digest are filled here; days 0: the
 * charter's proposal_expiry_days), and prints the outcome: the proposal hash, or
 * every error of the document as FILE:line:col: path: message. 0, or 1. */
int motion_submit(struct signed_client *sc, const char *cmd, struct motion *m, unsigned days,
                  const uint8_t *doc, size_t doc_len, const char *doc_name);

/* The proposal hash of the experiment ID names (an id or a hash). 0, or 1 with a message. */
int governance_experiment_hash(struct signed_client *sc, const char *id, uint8_t hash[32]);

/* The exact policy text of the experiment ID names (an id or a proposal hash), from its
 * policy_proposed ledger entry, re-checked (document digest, motion hash, the proposer's
 * roster signature). *doc is malloc'd (free it). 0, or 1 with a message. */
int governance_experiment_policy(struct signed_client *sc, const char *id, uint8_t **doc,
                                 size_t *len);

/* --expires-in DAYS: 1..30, or 0 after a message. */
unsigned governance_parse_days(const char *cmd, const char *arg);

#endif
