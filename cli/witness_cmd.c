/* aulac witness check: cross-checks the members' cosigned checkpoints (ledger/witness.h)
 * against a coordinator's latest checkpoint, over RPC or from a copy of its data
 * directory (offline), with cosigned checkpoints from files besides. */
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "ledger/entry.h"
#include "ledger/witness.h"
#include "policies/roster.h"
#include "proto/client.h"
#include "proto/ledger_client.h"

#define CMD "witness"
#define FILES_MAX 64

static const char usage[] =
    "usage: aulac witness check SOURCE [--key FILE] [--witnesses FILE] [--quorum N]\n"
    "                           [--cosigned FILE]...\n"
    "\n"
    "SOURCE is --data-dir DIR (a coordinator's data directory or a copy of it: offline) or\n"
    "--coordinator ADDR with --tls-ca FILE [--tls-server-name NAME] or --insecure.\n"
    "\n"
    "check  verifies the latest signed checkpoint, then every member's cosigned checkpoint\n"
    "       the source keeps (and those of --cosigned files, e.g. a worker's\n"
    "       state-dir/ledger-cosigned): each signature, and that all of them describe the\n"
    "       same ledger as the checkpoint (equal roots at equal sizes, consistency proofs\n"
    "       between the others). Two histories signed by the coordinator's key and shown to\n"
    "       different members are a split view, named with who cosigned which root.\n"
    "\n"
    "  --key FILE        the coordinator's public key file (default: the genesis entry's\n"
    "                    coordinator; over RPC also the key it presents, which must match)\n"
    "  --witnesses FILE  roster file of the witnesses (default: the genesis entry's members)\n"
    "  --quorum N        also require N witnesses consistent with the checkpoint (default 1)\n"
    "  --cosigned FILE   a cosigned checkpoint note to check as well (repeatable)\n"
    "\n"
    "Exit status: 0 consistent and the quorum met, 1 a split view, a bad signature or too\n"
    "few witnesses, 2 usage.\n";

struct wsource {
    const char *name;
    struct ledger *l;
    struct witness_store *store;
    struct fed_ledger *rpc;
    uint8_t presented[32];
    int have_presented;
};

static int open_wsource(const char *dir, const char *coord, const struct rpc_channel_options *ch,
                        struct wsource *s)
{
    memset(s, 0, sizeof *s);
    s->name = dir ? dir : coord;
    if (dir) {
        struct ledger_options lo = { .read_only = 1 };
        int rc = ledger_open(dir, &lo, &s->l);
        if (rc == 0)
            rc = witness_store_open(s->l, &s->store);
        return rc ? cli_fail(CMD, "cannot open the ledger in %s: %s", dir, ledger_strerror(rc))
                  : 0;
    }
    struct fed_client *fc;
    struct fed_client_options co = { .channel = *ch };
    int rc = fed_ledger_open(coord, ch, 0, 0, &s->rpc);
    if (rc == 0)
        rc = fed_client_open(coord, &co, &fc);
    if (rc != 0)
        return cli_fail(CMD, "cannot open a channel to %s: %s", coord, rpc_strerror(rc));
    Aulac__V1__HelloRequest q = AULAC__V1__HELLO_REQUEST__INIT;
    q.client_version = "aulac-cli 0.1";
    Aulac__V1__HelloReply *r = NULL;
    struct rpc_status st;
    rc = fed_hello(fc, &q, &r, &st);
    if (rc == 0 && r->coordinator_public_key.len == 32) {
        memcpy(s->presented, r->coordinator_public_key.data, 32);
        s->have_presented = 1;
    }
    if (r)
        aulac__v1__hello_reply__free_unpacked(r, NULL);
    fed_client_close(fc);
    return rc ? cli_fail(CMD, "cannot reach the coordinator at %s: %s", coord, st.details) : 0;
}

static void close_wsource(struct wsource *s)
{
    witness_store_close(s->store);
    ledger_close(s->l);
    fed_ledger_close(s->rpc);
}

/* The latest checkpoint note (malloc'd). */
static int latest_note(struct wsource *s, char **note)
{
    if (s->l) {
        int rc = ledger_checkpoint_get(s->l, LEDGER_LATEST, 0, note, NULL, NULL);
        return rc ? cli_fail(CMD, "%s: no signed checkpoint: %s", s->name, ledger_strerror(rc))
                  : 0;
    }
    Aulac__V1__Checkpoint *r;
    struct rpc_status st;
    if (fed_get_checkpoint(s->rpc, 0, 0, &r, &st) != 0)
        return cli_fail(CMD, "%s", st.details);
    *note = strdup(r->note ? r->note : "");
    aulac__v1__checkpoint__free_unpacked(r, NULL);
    return *note ? 0 : cli_fail(CMD, "out of memory");
}

/* Entry 0 (malloc'd) with its inclusion proof in the tree of size. */
static int genesis_entry(struct wsource *s, uint64_t size, uint8_t **data, size_t *len,
                         uint8_t (*proof)[32], size_t *plen)
{
    if (s->l) {
        *plen = MERKLE_PROOF_MAX;
        int rc = ledger_get(s->l, 0, data, len);
        if (rc == 0)
            rc = ledger_inclusion_proof(s->l, 0, size, proof, plen);
        return rc ? cli_fail(CMD, "cannot read the genesis entry: %s", ledger_strerror(rc)) : 0;
    }
    Aulac__V1__EntriesPage *p;
    Aulac__V1__Proof *pr;
    struct rpc_status st;
    if (fed_get_entries(s->rpc, 0, 1, &p, &st) != 0)
        return cli_fail(CMD, "%s", st.details);
    int ok = p->n_entries == 1 && (*data = malloc(p->entries[0]->data.len + 1)) != NULL;
    if (ok) {
        *len = p->entries[0]->data.len;
        memcpy(*data, p->entries[0]->data.data, *len);
    }
    aulac__v1__entries_page__free_unpacked(p, NULL);
    if (!ok)
        return cli_fail(CMD, "%s serves no genesis entry", s->name);
    if (fed_get_inclusion_proof(s->rpc, 0, size, &pr, proof, plen, &st) != 0) {
        free(*data);
        return cli_fail(CMD, "%s", st.details);
    }
    aulac__v1__proof__free_unpacked(pr, NULL);
    return 0;
}

static int proof_from_source(void *arg, uint64_t old_size, uint64_t new_size,
                             uint8_t (*proof)[32], size_t *proof_len, char *why, size_t cap)
{
    struct wsource *s = arg;
    if (s->l) {
        uint64_t size = 0;
        *proof_len = MERKLE_PROOF_MAX;
        int rc = ledger_size(s->l, &size);
        if (rc == 0 && new_size > size) {
            snprintf(why, cap, "this ledger holds only %" PRIu64 " entries", size);
            return 1;
        }
        if (rc == 0)
            rc = ledger_consistency_proof(s->l, old_size, new_size, proof, proof_len);
        if (rc != 0)
            snprintf(why, cap, "%s", ledger_strerror(rc));
        return rc ? -1 : 0;
    }
    return fed_witness_proof(s->rpc, old_size, new_size, proof, proof_len, why, cap);
}

struct collect {
    const struct checkpoint_key *log;
    const struct cosigner *set;
    size_t n_set;
    struct witness_view *v;
    size_t n;
    int bad;
};

static int collect_note(const char *from, const char *note, size_t len, struct collect *x)
{
    char why[400];
    size_t before = x->n;
    if (witness_views_from_note(note, len, x->log, x->set, x->n_set, x->v, WITNESS_MEMBERS_MAX,
                                &x->n, why, sizeof why) != 0) {
        printf("  %s: FAILED: %s\n", from, why);
        x->bad = 1;
    } else if (x->n == before) {
        printf("  %s: no cosignature by a witness\n", from);
    }
    return 0;
}

static int collect_stored(const char *member, const char *note, size_t len, uint64_t t,
                          void *arg)
{
    char from[96];
    snprintf(from, sizeof from, "kept for %s", member);
    return collect_note(from, note, len, arg);
}

static int collect_source(struct wsource *s, struct collect *x)
{
    if (s->l) {
        int rc = witness_store_each(s->store, collect_stored, x);
        return rc ? cli_fail(CMD, "cannot read the cosigned checkpoints: %s",
                             ledger_strerror(rc)) : 0;
    }
    Aulac__V1__CosignaturesReply *r;
    struct rpc_status st;
    if (fed_get_cosignatures(s->rpc, &r, &st) != 0)
        return cli_fail(CMD, "%s", st.details);
    for (size_t i = 0; i < r->n_cosigned; i++) {
        const char *note = r->cosigned[i]->note ? r->cosigned[i]->note : "";
        collect_stored(r->cosigned[i]->member_id ? r->cosigned[i]->member_id : "?", note,
                       strlen(note), 0, x);
    }
    aulac__v1__cosignatures_reply__free_unpacked(r, NULL);
    return 0;
}

/* The coordinator's checkpoint key: --key, the genesis entry's coordinator, or the key
 * it presents; origin from the checkpoint. */
static int log_key(struct wsource *s, const char *key_file, const char *note,
                   const uint8_t *genesis_key, struct checkpoint_key *k)
{
    struct checkpoint c;
    char why[400];
    if (checkpoint_parse(note, strlen(note), &c, why, sizeof why) != 0)
        return cli_fail(CMD, "%s: the latest checkpoint is malformed: %s", s->name, why);
    uint8_t key[32];
    const char *from;
    if (key_file) {
        struct crypto_public_key pk;
        int rc = crypto_public_key_load(key_file, &pk);
        if (rc != 0)
            return cli_fail(CMD, "cannot read %s: %s", key_file, crypto_strerror(rc));
        memcpy(key, pk.key, 32);
        from = key_file;
    } else if (genesis_key) {
        memcpy(key, genesis_key, 32);
        from = "the genesis entry";
    } else if (s->have_presented) {
        memcpy(key, s->presented, 32);
        from = "the coordinator's Hello";
    } else {
        return cli_fail(CMD, "%s: no key to check the checkpoint with: give --key", s->name);
    }
    if (s->have_presented && memcmp(key, s->presented, 32) != 0)
        return cli_fail(CMD, "the coordinator at %s presents another key than %s", s->name,
                        from);
    if (checkpoint_key_init(k, c.origin, key) != 0)
        return cli_fail(CMD, "'%s' cannot name a log", c.origin);
    return 0;
}

/* The coordinator key named in the genesis entry, when the unverified entry has one. */
static int genesis_coordinator(const uint8_t *data, size_t len, uint8_t key[32])
{
    struct entry e;
    int found = 0;
    if (entry_decode(data, len, &e) != 0)
        return 0;
    for (uint32_t i = 0; e.type == ENTRY_GENESIS && i < e.u.genesis.n_members; i++)
        if (e.u.genesis.members[i].roles & ENTRY_ROLE_COORDINATOR) {
            memcpy(key, e.u.genesis.members[i].public_key, 32);
            found = 1;
        }
    entry_free(&e);
    return found;
}

static int witnesses_from_roster(const char *path, const char *origin, struct cosigner *set,
                                 size_t *n)
{
    struct roster r;
    struct policy_error err;
    if (roster_load_file(path, &r, &err) != 0)
        return cli_fail(CMD, "%s", err.message);
    int rc = 0;
    for (size_t i = 0; i < r.n_members && rc == 0; i++)
        rc = *n < WITNESS_MEMBERS_MAX
                 ? cosigner_init(&set[(*n)++], origin, r.members[i].id, r.members[i].public_key)
                 : LEDGER_ERR_RANGE;
    roster_free(&r);
    return rc ? cli_fail(CMD, "%s: cannot take its members as witnesses: %s", path,
                         ledger_strerror(rc)) : 0;
}

static void print_view(const struct witness_view *v)
{
    char hex[65], when[32] = "?";
    hex_encode(v->c.root, 32, hex);
    time_t t = v->timestamp > (uint64_t)INT32_MAX * 4 ? 0 : (time_t)v->timestamp;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("  %-12s cosigned size %-8" PRIu64 " root %.16s… at %s\n", v->member, v->c.size, hex,
           when);
}

struct wopts {
    const char *dir, *coordinator, *tls_ca, *tls_server_name, *key_file, *witnesses;
    const char *files[FILES_MAX];
    size_t n_files;
    unsigned long long quorum;
    int insecure;
};

static int check(struct wsource *s, const struct wopts *o)
{
    char *note = NULL, why[400];
    uint8_t *genesis = NULL, proof[MERKLE_PROOF_MAX][32], gkey[32];
    size_t glen = 0, plen = 0;
    struct checkpoint_key log;
    struct checkpoint c;
    struct cosigner *set = calloc(WITNESS_MEMBERS_MAX, sizeof *set);
    struct collect x = { .log = &log, .v = calloc(WITNESS_MEMBERS_MAX, sizeof *x.v) };
    int rc = set && x.v ? latest_note(s, &note) : cli_fail(CMD, "out of memory");
    if (rc == 0) {
        struct checkpoint peek;
        rc = checkpoint_parse(note, strlen(note), &peek, why, sizeof why) != 0
                 ? cli_fail(CMD, "%s: the latest checkpoint is malformed: %s", s->name, why)
                 : genesis_entry(s, peek.size, &genesis, &glen, proof, &plen);
    }
    if (rc == 0)
        rc = log_key(s, o->key_file, note, genesis_coordinator(genesis, glen, gkey) ? gkey : NULL,
                     &log);
    if (rc == 0 && checkpoint_verify(note, strlen(note), &log, &c, why, sizeof why) != 0) {
        printf("checkpoint at %s: FAILED: %s\n", s->name, why);
        rc = 1;
    }
    uint8_t leaf[32];
    if (rc == 0) {
        merkle_leaf_hash(genesis, glen, leaf);
        if (merkle_verify_inclusion(0, c.size, leaf, (const uint8_t (*)[32])proof, plen,
                                    c.root) != 0)
            rc = cli_fail(CMD, "%s: the genesis entry is not proved included in the signed "
                          "checkpoint of size %" PRIu64, s->name, c.size);
    }
    const char *set_from = o->witnesses ? o->witnesses : "the genesis entry";
    size_t n_set = 0;
    if (rc == 0)
        rc = o->witnesses ? witnesses_from_roster(o->witnesses, log.name, set, &n_set)
                          : (witness_set_from_genesis(genesis, glen, log.name, set,
                                                      WITNESS_MEMBERS_MAX, &n_set) != 0
                                 ? cli_fail(CMD, "%s: entry 0 is not a genesis entry", s->name)
                                 : 0);
    if (rc == 0) {
        char hex[65];
        hex_encode(c.root, 32, hex);
        printf("checkpoint of %s: size %" PRIu64 ", root %s (signed by %s, key ID %08x)\n",
               s->name, c.size, hex, log.name, (unsigned)log.id);
        printf("witnesses: %zu member(s) of %s\n", n_set, set_from);
        x.set = set;
        x.n_set = n_set;
        rc = collect_source(s, &x);
    }
    for (size_t i = 0; rc == 0 && i < o->n_files; i++) {
        uint8_t *buf;
        size_t len;
        int frc = file_read_all(o->files[i], CHECKPOINT_NOTE_MAX, &buf, &len);
        if (frc != 0) {
            rc = cli_fail(CMD, "cannot read %s: %s", o->files[i], strerror(-frc));
            break;
        }
        collect_note(o->files[i], (const char *)buf, len, &x);
        free(buf);
    }
    if (rc == 0) {
        for (size_t i = 0; i < x.n; i++)
            print_view(&x.v[i]);
        struct witness_report r;
        int crc = witness_check(&c, x.v, x.n, NULL, proof_from_source, s, &r);
        if (crc == LEDGER_ERR_SPLIT_VIEW) {
            printf("FAILED: %s\n", r.why);
            rc = 1;
        } else if (crc != 0) {
            rc = cli_fail(CMD, "%s", r.why);
        } else if (x.bad) {
            printf("FAILED: a cosigned checkpoint does not verify (see above)\n");
            rc = 1;
        } else if (r.others < o->quorum) {
            printf("FAILED: only %zu witness(es) cosigned checkpoints consistent with it; %llu "
                   "needed (--quorum)\n", r.others, o->quorum);
            rc = 1;
        } else {
            printf("OK: %zu witness(es) cosigned checkpoints consistent with it%s%s; no split "
                   "view\n", r.others, r.others ? ": " : "", r.others_list);
        }
    }
    free(note);
    free(genesis);
    free(set);
    free(x.v);
    return rc;
}

int cmd_witness(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "check") != 0)
        return cli_usage_error(CMD, usage, "unknown subcommand '%s' (check)", argv[1]);
    struct wopts o = { .quorum = 1 };
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'd' }, { "coordinator", required_argument, 0, 'c' },
        { "tls-ca", required_argument, 0, 'a' }, { "tls-server-name", required_argument, 0, 'n' },
        { "insecure", no_argument, 0, 'I' }, { "key", required_argument, 0, 'k' },
        { "witnesses", required_argument, 0, 'w' }, { "quorum", required_argument, 0, 'q' },
        { "cosigned", required_argument, 0, 'f' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc - 1, argv + 1, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o.dir = optarg; break;
        case 'c': o.coordinator = optarg; break;
        case 'a': o.tls_ca = optarg; break;
        case 'n': o.tls_server_name = optarg; break;
        case 'I': o.insecure = 1; break;
        case 'k': o.key_file = optarg; break;
        case 'w': o.witnesses = optarg; break;
        case 'q':
            if (cli_parse_u64(CMD, "--quorum", optarg, &o.quorum))
                return 2;
            break;
        case 'f':
            if (o.n_files == FILES_MAX)
                return cli_usage_error(CMD, usage, "at most %d --cosigned files", FILES_MAX);
            o.files[o.n_files++] = optarg;
            break;
        case 'h': fputs(usage, stdout); return 0;
        case ':': return cli_usage_error(CMD, usage, "%s needs a value", argv[optind]);
        default: return cli_usage_error(CMD, usage, "unknown option '%s'", argv[optind]);
        }
    }
    if (optind + 1 < argc)
        return cli_usage_error(CMD, usage, "unexpected argument '%s'", argv[optind + 1]);
    if (!o.dir == !o.coordinator)
        return cli_usage_error(CMD, usage, "one source: --data-dir DIR or --coordinator ADDR");
    if (o.coordinator && !o.tls_ca && !o.insecure)
        return cli_usage_error(CMD, usage, "--coordinator needs --tls-ca FILE (or --insecure)");
    if (o.dir && (o.tls_ca || o.insecure || o.tls_server_name))
        return cli_usage_error(CMD, usage, "--tls-ca, --tls-server-name and --insecure go with "
                               "--coordinator");
    if (sodium_init() < 0)
        return cli_fail(CMD, "libsodium failed to initialize");
    struct rpc_channel_options chopt = { .tls_ca_file = o.tls_ca,
                                         .tls_server_name_override = o.tls_server_name };
    struct wsource s;
    int rc = open_wsource(o.dir, o.coordinator, &chopt, &s);
    if (rc == 0)
        rc = check(&s, &o);
    close_wsource(&s);
    return rc;
}
