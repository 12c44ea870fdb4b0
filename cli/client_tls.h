#ifndef AULAC_CLI_CLIENT_TLS_H
#define AULAC_CLI_CLIENT_TLS_H
/* How every command that talks to the coordinator (status, ledger --coordinator,
 * member, vote) reaches it: TLS checked against the alliance CA, with a client
 * certificate where the coordinator requires mutual TLS (--require-client-cert), or
 * plaintext with --insecure. One set of options, one check, one channel setup. */
#include <getopt.h>

#include "proto/rpc.h"

/* The long options below take these values (signed_client.h uses 200..209, commands
 * their own from 300 up). */
enum { CT_TLS_CA = 210, CT_TLS_CERT, CT_TLS_KEY, CT_TLS_NAME, CT_INSECURE };

#define CLIENT_TLS_OPTIONS                                                            \
    { "tls-ca", required_argument, 0, CT_TLS_CA },                                    \
    { "tls-cert", required_argument, 0, CT_TLS_CERT },                                \
    { "tls-key", required_argument, 0, CT_TLS_KEY },                                  \
    { "tls-server-name", required_argument, 0, CT_TLS_NAME },                         \
    { "insecure", no_argument, 0, CT_INSECURE }

#define CLIENT_TLS_USAGE                                                                    \
    "  --tls-ca FILE        check the coordinator's certificate against the alliance CA\n"   \
    "  --tls-cert FILE      client certificate, when the coordinator requires mutual TLS\n"  \
    "  --tls-key FILE       its private key\n"                                               \
    "  --tls-server-name N  name expected in the coordinator's certificate\n"                \
    "  --insecure           plaintext connection (no TLS)\n"

struct client_tls {
    const char *ca, *cert, *key, *server_name;
    int insecure;
};

/* Takes one of the options above: 1 if it was one, 0 if not. */
int client_tls_option(struct client_tls *t, int ch, const char *arg);

/* 1 when any of the options was given. */
int client_tls_given(const struct client_tls *t);

/* Refuses, with a usage message naming cmd (returns 2): neither --tls-ca nor
 * --insecure, both, or one of --tls-cert / --tls-key without the other. 0 when fine. */
int client_tls_check(const struct client_tls *t, const char *cmd, const char *usage);

/* The channel options these select (other fields of *out are left as they are). */
void client_tls_channel(const struct client_tls *t, struct rpc_channel_options *out);

#endif
