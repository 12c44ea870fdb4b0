#ifndef AULAC_CLI_SIGNED_CLIENT_H
#define AULAC_CLI_SIGNED_CLIENT_H
/* What the member commands (aulac member, aulac vote) share: the options that
 * say where the coordinator is, how to reach it (TLS) and who is asking (member
 * id and secret key), and a client that signs every request with that key. */
#include <getopt.h>

#include "cli/client_tls.h"
#include "crypto/keys.h"
#include "proto/client.h"

/* The long options below take these values (and client_tls.h's); commands add their
 * own from 300 up. */
enum { SC_COORDINATOR = 200, SC_MEMBER, SC_KEY };

#define SIGNED_CLIENT_OPTIONS                                                         \
    { "coordinator", required_argument, 0, SC_COORDINATOR },                          \
    { "member", required_argument, 0, SC_MEMBER },                                    \
    { "key", required_argument, 0, SC_KEY },                                          \
    CLIENT_TLS_OPTIONS

#define SIGNED_CLIENT_USAGE                                                                 \
    "  --coordinator ADDR   the coordinator's gRPC address (host:port)\n"                    \
    "  --member ID          your member id\n"                                                \
    "  --key FILE           your secret key (mode 0600); signs the request and what it carries\n" \
    CLIENT_TLS_USAGE

struct signed_client {
    const char *coordinator, *member, *key_path;
    struct client_tls tls;
    struct crypto_key *key;
    struct fed_client *fc;
    int64_t stream_timeout_ms;          /* set before open: whole streaming calls
                                           (0: proto/client.h's default, 1 h) */
    char alliance[128];                 /* from Hello */
    uint8_t coordinator_key[32];
};

/* Takes one of the options above: 1 if it was one, 0 if not. */
int signed_client_option(struct signed_client *s, int ch, const char *arg);

/* Checks the options, loads the key (refusing a group/world-readable file),
 * connects and says Hello. Returns 0, 2 (usage, message printed with usage) or
 * 1 (failure, message printed). */
int signed_client_open(struct signed_client *s, const char *cmd, const char *usage);
void signed_client_close(struct signed_client *s);

#endif
