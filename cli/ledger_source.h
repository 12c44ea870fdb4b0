#ifndef AULAC_CLI_LEDGER_SOURCE_H
#define AULAC_CLI_LEDGER_SOURCE_H
/* Where a command reads the coordinator's ledger from (aulac ledger, credits, report):
 * its data directory (--data-dir DIR, opened read-only beside a running coordinator) or
 * its RPC service (--coordinator ADDR with the client TLS options). One set of options,
 * one check, one reader for both; everything read is untrusted bytes.
 *
 * Every function that fails has already printed "aulac CMD: what failed" to stderr
 * (cli_fail, CMD the command named at open) and returns nonzero. */
#include <stddef.h>
#include <stdint.h>

#include "cli/client_tls.h"
#include "ledger/checkpoint.h"

struct ledger;
struct fed_ledger;
struct fed_client;

#define LEDGER_SOURCE_USAGE                                                                  \
    "SOURCE is --data-dir DIR (the coordinator's data directory, opened read-only; a\n"      \
    "running coordinator may keep writing) or --coordinator ADDR with --tls-ca FILE\n"       \
    "[--tls-cert FILE --tls-key FILE] [--tls-server-name NAME] or --insecure (its\n"         \
    "ledger over RPC; --tls-cert and --tls-key where it requires client certificates).\n"

struct ledger_source {
    const char *cmd;               /* the command, for messages */
    const char *name;              /* the directory or the address */
    struct ledger *l;              /* --data-dir */
    struct fed_ledger *rpc;        /* --coordinator */
    struct fed_client *fc;
    char alliance[CHECKPOINT_ORIGIN_MAX + 1];   /* RPC: from Hello */
    uint8_t presented_key[32];     /* RPC: the key the coordinator presents */
    int have_presented_key;
};

/* Refuses (usage message naming cmd, returns 2) anything but exactly one of dir and
 * coordinator ("WHAT needs one source: ..."; what: the command as typed, "ledger show"),
 * TLS options with --data-dir, or TLS options that client_tls_check refuses. 0 when fine. */
int ledger_source_check(const char *cmd, const char *usage, const char *what,
                        const char *dir, const char *coordinator, const struct client_tls *tls);

/* Opens dir (read-only) or a channel to coordinator (and says Hello). s is zeroed first,
 * so ledger_source_close(s) is always safe afterwards, even when this failed. */
int ledger_source_open(struct ledger_source *s, const char *cmd, const char *dir,
                       const char *coordinator, const struct client_tls *tls);
void ledger_source_close(struct ledger_source *s);

/* Number of entries. */
int ledger_source_size(struct ledger_source *s, uint64_t *size);

/* Calls fn for entries [from, to) in order with their bytes (valid during the call);
 * stops at fn's first nonzero and returns it. */
typedef int (*ledger_source_entry_fn)(uint64_t index, const uint8_t *data, size_t len,
                                      void *arg);
int ledger_source_entries(struct ledger_source *s, uint64_t from, uint64_t to,
                          ledger_source_entry_fn fn, void *arg);

/* A stored checkpoint note (malloc'd, the caller frees *note) of tree size size, or the
 * latest (LEDGER_LATEST); *found its size. 0, 1 when there is none (not reported), or -1
 * (reported). The note is as served: verify it before relying on it. */
int ledger_source_checkpoint(struct ledger_source *s, uint64_t size, char **note,
                             uint64_t *found);

/* Calls fn for every stored checkpoint in size order; stops at fn's first nonzero. */
typedef int (*ledger_source_note_fn)(uint64_t size, const char *note, size_t len, void *arg);
int ledger_source_checkpoints(struct ledger_source *s, ledger_source_note_fn fn, void *arg);

/* Inclusion proof of index in the tree of size, consistency proof from old_size to
 * new_size; *len gets the number of hashes (MERKLE_PROOF_MAX at most). */
int ledger_source_inclusion(struct ledger_source *s, uint64_t index, uint64_t size,
                            uint8_t (*proof)[32], size_t *len);
int ledger_source_consistency(struct ledger_source *s, uint64_t old_size, uint64_t new_size,
                              uint8_t (*proof)[32], size_t *len);

/* The key checkpoints are checked with: key_file when given (a public key file), else the
 * coordinator key the genesis entry names, else (RPC) the key the coordinator presents;
 * over RPC the presented key must match. from (cap bytes) gets one line saying where the
 * key came from, with its key ID. */
int ledger_source_key(struct ledger_source *s, const char *key_file, struct checkpoint_key *k,
                      char *from, size_t cap);

/* The stored checkpoint of tree size size (or the latest), verified against the key
 * ledger_source_key resolves (key_file may be NULL); *note_out (may be NULL) gets the
 * note, malloc'd. A missing or failing checkpoint is reported (a failing one on stdout:
 * "checkpoint of size N at SRC: FAILED: why"). */
int ledger_source_verified_checkpoint(struct ledger_source *s, const char *key_file,
                                      uint64_t size, struct checkpoint *c, char **note_out);

#endif
