/* Reading the ledger from a data directory or over RPC (cli/ledger_source.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ledger_source.h"
#include "crypto/keys.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "proto/client.h"
#include "proto/ledger_client.h"
#include "proto/service_ledger.h"

int ledger_source_check(const char *cmd, const char *usage, const char *what,
                        const char *dir, const char *coordinator, const struct client_tls *tls)
{
    if (!dir == !coordinator)
        return cli_usage_error(cmd, usage, "%s needs one source: --data-dir DIR or "
                               "--coordinator ADDR", what);
    if (coordinator && client_tls_check(tls, cmd, usage) != 0)
        return 2;
    if (dir && client_tls_given(tls))
        return cli_usage_error(cmd, usage, "--tls-ca, --tls-cert, --tls-key, --tls-server-name "
                               "and --insecure go with --coordinator, not --data-dir");
    return 0;
}

int ledger_source_open(struct ledger_source *s, const char *cmd, const char *dir,
                       const char *coordinator, const struct client_tls *tls)
{
    memset(s, 0, sizeof *s);
    s->cmd = cmd;
    if (dir) {
        s->name = dir;
        struct ledger_options lo = { .read_only = 1 };
        int rc = ledger_open(dir, &lo, &s->l);
        if (rc != 0)
            return cli_fail(cmd, "cannot open the ledger in %s: %s", dir, ledger_strerror(rc));
        return 0;
    }
    s->name = coordinator;
    struct rpc_channel_options ch = { 0 };
    client_tls_channel(tls, &ch);
    struct fed_client_options co = { .channel = ch };
    int rc = fed_ledger_open(coordinator, &ch, 0, 0, &s->rpc);
    if (rc == 0)
        rc = fed_client_open(coordinator, &co, &s->fc);
    if (rc != 0)
        return cli_fail(cmd, "cannot open a channel to %s: %s", coordinator, rpc_strerror(rc));
    Aulac__V1__HelloRequest q = AULAC__V1__HELLO_REQUEST__INIT;
    q.client_version = "aulac-cli 0.1";
    Aulac__V1__HelloReply *r = NULL;
    struct rpc_status st;
    if ((rc = fed_hello(s->fc, &q, &r, &st)) != 0)
        return cli_fail(cmd, "cannot reach the coordinator at %s: %s", coordinator, st.details);
    snprintf(s->alliance, sizeof s->alliance, "%s", r->alliance ? r->alliance : "");
    if (r->coordinator_public_key.len == 32) {
        memcpy(s->presented_key, r->coordinator_public_key.data, 32);
        s->have_presented_key = 1;
    }
    aulac__v1__hello_reply__free_unpacked(r, NULL);
    return 0;
}

void ledger_source_close(struct ledger_source *s)
{
    ledger_close(s->l);
    fed_ledger_close(s->rpc);
    fed_client_close(s->fc);
    s->l = NULL;
    s->rpc = NULL;
    s->fc = NULL;
}

/* Number of entries. */
int ledger_source_size(struct ledger_source *s, uint64_t *size)
{
    if (s->l) {
        int rc = ledger_size(s->l, size);
        return rc ? cli_fail(s->cmd, "cannot read the ledger size: %s", ledger_strerror(rc)) : 0;
    }
    Aulac__V1__EntriesPage *p;
    struct rpc_status st;
    if (fed_get_entries(s->rpc, UINT64_MAX, 1, &p, &st) != 0)
        return cli_fail(s->cmd, "%s", st.details);
    *size = p->size;
    aulac__v1__entries_page__free_unpacked(p, NULL);
    return 0;
}

int ledger_source_entries(struct ledger_source *s, uint64_t from, uint64_t to,
                          ledger_source_entry_fn fn, void *arg)
{
    uint64_t i = from;
    while (i < to) {
        if (s->l) {
            uint8_t *data;
            size_t len;
            int rc = ledger_get(s->l, i, &data, &len);
            if (rc != 0)
                return cli_fail(s->cmd, "cannot read entry %" PRIu64 ": %s", i,
                                ledger_strerror(rc));
            rc = fn(i, data, len, arg);
            free(data);
            if (rc)
                return rc;
            i++;
            continue;
        }
        Aulac__V1__EntriesPage *p;
        struct rpc_status st;
        uint64_t want = to - i < FED_LEDGER_PAGE_ITEMS ? to - i : FED_LEDGER_PAGE_ITEMS;
        if (fed_get_entries(s->rpc, i, want, &p, &st) != 0)
            return cli_fail(s->cmd, "%s", st.details);
        if (p->n_entries == 0) {
            aulac__v1__entries_page__free_unpacked(p, NULL);
            return cli_fail(s->cmd, "the coordinator sent no entry at index %" PRIu64 " although "
                            "its ledger has %" PRIu64, i, to);
        }
        int rc = 0;
        for (size_t k = 0; k < p->n_entries && rc == 0 && i < to; k++, i++)
            rc = fn(i, p->entries[k]->data.data, p->entries[k]->data.len, arg);
        aulac__v1__entries_page__free_unpacked(p, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

int ledger_source_checkpoint(struct ledger_source *s, uint64_t size, char **note,
                             uint64_t *found)
{
    *note = NULL;
    if (s->l) {
        int rc = ledger_checkpoint_get(s->l, size, 0, note, NULL, found);
        if (rc == LEDGER_ERR_NOT_FOUND)
            return 1;
        if (rc != 0)
            return cli_fail(s->cmd, "cannot read a checkpoint: %s", ledger_strerror(rc)), -1;
        return 0;
    }
    Aulac__V1__Checkpoint *r;
    struct rpc_status st;
    if (fed_get_checkpoint(s->rpc, size != LEDGER_LATEST, size == LEDGER_LATEST ? 0 : size, &r,
                           &st) != 0) {
        if (st.code == GRPC_STATUS_NOT_FOUND)
            return 1;
        return cli_fail(s->cmd, "%s", st.details), -1;
    }
    *note = strdup(r->note ? r->note : "");
    *found = r->size;
    aulac__v1__checkpoint__free_unpacked(r, NULL);
    return *note ? 0 : (cli_fail(s->cmd, "out of memory"), -1);
}

int ledger_source_checkpoints(struct ledger_source *s, ledger_source_note_fn fn, void *arg)
{
    if (s->l) {
        int rc = ledger_checkpoint_each(s->l, 0, fn, arg);
        if (rc < 0)
            return cli_fail(s->cmd, "cannot read the checkpoints: %s", ledger_strerror(rc)), -1;
        return rc;
    }
    uint64_t from = 0;
    for (;;) {
        Aulac__V1__CheckpointsPage *p;
        struct rpc_status st;
        if (fed_get_checkpoints(s->rpc, from, 0, &p, &st) != 0)
            return cli_fail(s->cmd, "%s", st.details), -1;
        int rc = 0;
        for (size_t k = 0; k < p->n_checkpoints && rc == 0; k++) {
            const char *n = p->checkpoints[k]->note ? p->checkpoints[k]->note : "";
            rc = fn(p->checkpoints[k]->size, n, strlen(n), arg);
            from = p->checkpoints[k]->size + 1;
        }
        int more = p->more && p->n_checkpoints > 0;
        aulac__v1__checkpoints_page__free_unpacked(p, NULL);
        if (rc || !more)
            return rc;
    }
}

int ledger_source_inclusion(struct ledger_source *s, uint64_t index, uint64_t size,
                            uint8_t (*proof)[32], size_t *len)
{
    if (s->l) {
        *len = MERKLE_PROOF_MAX;
        int rc = ledger_inclusion_proof(s->l, index, size, proof, len);
        return rc ? cli_fail(s->cmd, "cannot make the inclusion proof: %s", ledger_strerror(rc))
                  : 0;
    }
    Aulac__V1__Proof *p;
    struct rpc_status st;
    if (fed_get_inclusion_proof(s->rpc, index, size, &p, proof, len, &st) != 0)
        return cli_fail(s->cmd, "%s", st.details);
    aulac__v1__proof__free_unpacked(p, NULL);
    return 0;
}

int ledger_source_consistency(struct ledger_source *s, uint64_t old_size, uint64_t new_size,
                              uint8_t (*proof)[32], size_t *len)
{
    if (s->l) {
        *len = MERKLE_PROOF_MAX;
        int rc = ledger_consistency_proof(s->l, old_size, new_size, proof, len);
        return rc ? cli_fail(s->cmd, "cannot make the consistency proof: %s", ledger_strerror(rc))
                  : 0;
    }
    Aulac__V1__Proof *p;
    struct rpc_status st;
    if (fed_get_consistency_proof(s->rpc, old_size, new_size, &p, proof, len, &st) != 0)
        return cli_fail(s->cmd, "%s", st.details);
    aulac__v1__proof__free_unpacked(p, NULL);
    return 0;
}

/* --- the coordinator's key ------------------------------------------------------------- */

struct genesis_info {
    int found;
    char alliance[CHECKPOINT_ORIGIN_MAX + 1];
    int have_key;
    uint8_t key[32];
};

static int read_genesis(uint64_t index, const uint8_t *data, size_t len, void *arg)
{
    struct genesis_info *g = arg;
    struct entry e;
    if (entry_decode(data, len, &e) != 0)
        return 0;
    if (e.type == ENTRY_GENESIS) {
        g->found = 1;
        if (e.u.genesis.alliance)
            snprintf(g->alliance, sizeof g->alliance, "%s", e.u.genesis.alliance);
        for (uint32_t i = 0; i < e.u.genesis.n_members; i++) {
            if (e.u.genesis.members[i].roles & ENTRY_ROLE_COORDINATOR) {
                memcpy(g->key, e.u.genesis.members[i].public_key, 32);
                g->have_key = 1;
            }
        }
    }
    entry_free(&e);
    return 0;
}

int ledger_source_key(struct ledger_source *s, const char *key_file, struct checkpoint_key *k,
                      char *from, size_t cap)
{
    struct genesis_info g = { 0 };
    uint64_t size;
    if (ledger_source_size(s, &size) != 0)
        return -1;
    if (size > 0 && ledger_source_entries(s, 0, 1, read_genesis, &g) != 0)
        return -1;
    const char *alliance = s->rpc ? s->alliance : g.alliance;
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    if (!alliance[0] || checkpoint_origin(alliance, origin, sizeof origin) != 0) {
        /* no alliance to go by: take the log's name from its latest checkpoint */
        char *note;
        uint64_t found;
        struct checkpoint c;
        int rc = ledger_source_checkpoint(s, LEDGER_LATEST, &note, &found);
        if (rc < 0)
            return -1;
        if (rc != 0)
            return cli_fail(s->cmd, "%s: no alliance name and no checkpoint: cannot tell which log "
                            "this is", s->name), -1;
        rc = checkpoint_parse(note, strlen(note), &c, NULL, 0);
        free(note);
        if (rc != 0)
            return cli_fail(s->cmd, "%s: the latest checkpoint is malformed", s->name), -1;
        snprintf(origin, sizeof origin, "%s", c.origin);
    }
    uint8_t key[32];
    if (key_file) {
        struct crypto_public_key pk;
        int rc = crypto_public_key_load(key_file, &pk);
        if (rc != 0)
            return cli_fail(s->cmd, "cannot read the key file %s: %s", key_file,
                            crypto_strerror(rc)), -1;
        memcpy(key, pk.key, 32);
        snprintf(from, cap, "%s", key_file);
        if (g.have_key && !crypto_equal(g.key, key, 32))
            fprintf(stderr, "aulac %s: warning: the genesis entry names another coordinator "
                            "key than %s\n", s->cmd, key_file);
    } else if (g.have_key) {
        memcpy(key, g.key, 32);
        snprintf(from, cap, "the genesis entry");
    } else if (s->have_presented_key) {
        memcpy(key, s->presented_key, 32);
        snprintf(from, cap, "the coordinator's Hello (no genesis entry names a key)");
    } else {
        return cli_fail(s->cmd, "%s: no genesis entry names the coordinator's key; give its public "
                        "key file with --key", s->name), -1;
    }
    if (s->have_presented_key && !crypto_equal(s->presented_key, key, 32))
        return cli_fail(s->cmd, "the coordinator at %s presents another key than %s: it is not the "
                        "coordinator that signed this ledger", s->name, from), -1;
    if (checkpoint_key_init(k, origin, key) != 0)
        return cli_fail(s->cmd, "'%s' cannot name a log", origin), -1;
    char id[CRYPTO_KEY_ID_CHARS + 1];
    crypto_key_id(key, id);
    size_t n = strlen(from);
    snprintf(from + n, cap - n, ", key id %s", id);
    return 0;
}

int ledger_source_verified_checkpoint(struct ledger_source *s, const char *key_file,
                                      uint64_t size, struct checkpoint *c, char **note_out)
{
    struct checkpoint_key key;
    char key_from[300], why[400];
    if (ledger_source_key(s, key_file, &key, key_from, sizeof key_from) != 0)
        return 1;
    char *note;
    uint64_t found;
    int rc = ledger_source_checkpoint(s, size, &note, &found);
    if (rc < 0)
        return 1;
    if (rc == 1) {
        if (size == LEDGER_LATEST)
            return cli_fail(s->cmd, "%s has no signed checkpoint yet", s->name);
        return cli_fail(s->cmd, "%s has no checkpoint of tree size %" PRIu64 " (one is signed per "
                        "commit; `aulac ledger export` lists them)", s->name, size);
    }
    rc = checkpoint_verify(note, strlen(note), &key, c, why, sizeof why);
    if (rc != 0) {
        printf("checkpoint of size %" PRIu64 " at %s: FAILED: %s\n", found, s->name, why);
        free(note);
        return 1;
    }
    if (note_out)
        *note_out = note;
    else
        free(note);
    return 0;
}

