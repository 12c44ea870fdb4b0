/* aulac ledger: show, verify, prove, export and follow the coordinator's ledger,
 * from its data directory (read-only, beside a running coordinator) or over RPC
 * from any member's machine. Everything read is checked here as untrusted. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client_tls.h"
#include "cli/ledger_source.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "crypto/keys.h"
#include "ledger/checkpoint.h"
#include "ledger/entry.h"
#include "ledger/history.h"
#include "ledger/ledger.h"
#include "proto/client.h"
#include "proto/ledger_client.h"
#include "proto/service_ledger.h"

static const char usage[] =
    "usage: aulac ledger show        SOURCE [--from N] [--to M] [--json]\n"
    "       aulac ledger verify      SOURCE [--key FILE]\n"
    "       aulac ledger checkpoint  SOURCE [--size N] [--key FILE] [--json]\n"
    "       aulac ledger proof       SOURCE --index N [--size S] [--key FILE] [--json]\n"
    "       aulac ledger consistency SOURCE (--from-size M | --checkpoint FILE) [--to-size N]\n"
    "                                [--key FILE] [--json]\n"
    "       aulac ledger export      SOURCE [--from N] [--to M]\n"
    "       aulac ledger export      --data-dir D --payloads DIR\n"
    "       aulac ledger replay      (--data-dir D | --export DIR) [--experiment ID]\n"
    "\n"
    LEDGER_SOURCE_USAGE
    "\n"
    "show         entries N..M (default: all), one line each or JSON lines\n"
    "verify       recomputes every leaf hash from the entry bytes and the tree up to\n"
    "             the root (RFC 6962), checks every signed checkpoint against them and\n"
    "             that the latest covers every entry, re-checks every member signature\n"
    "             stored (update envelopes, roster proposals, motions, votes, withdrawals)\n"
    "             against the roster of its moment and that no update is accepted\n"
    "             twice, shows the charter in force, and names the first bad index.\n"
    "             Exit 0 only when all of it holds\n"
    "checkpoint   the latest signed checkpoint (or the one of tree size N), verified\n"
    "proof        inclusion proof of entry N in the signed tree of size S (default:\n"
    "             the latest checkpoint), verified from the entry's bytes\n"
    "consistency  consistency proof from tree size M, or from a checkpoint file kept\n"
    "             earlier (a worker's state/ledger-checkpoint), to size N (default:\n"
    "             the latest checkpoint), verified against both signed roots\n"
    "export       JSON lines: one per entry (index, leaf_hash, base64 bytes, decoded\n"
    "             fields), then one per signed checkpoint; enough to verify offline.\n"
    "             With --payloads DIR (SOURCE --data-dir only, the whole ledger): those\n"
    "             lines into DIR/entries.jsonl, and each accepted update's payload the\n"
    "             coordinator still keeps into DIR/payloads/<payload hash hex>.bin;\n"
    "             says on stderr how many were written and how many are missing; and\n"
    "             each ended experiment's DP noise seed into DIR/dp-seeds/<id>.seed,\n"
    "             only when all of that experiment's payloads were written (privacy:\n"
    "             PRIVACY.md, \"Replaying the noise\"). Then\n"
    "             anyone can run: aulac credits verify --export DIR --eval-set FILE\n"
    "             or aulac ledger replay --export DIR\n"
    "replay       recomputes every round's global model from round 0 out of the ledger\n"
    "             and the payloads (data dir or export) and checks each aggregate and\n"
    "             model hash round_closed recorded; names the first round that differs;\n"
    "             exit 3 when DP rounds could not be checked (aulac ledger replay --help)\n"
    "\n"
    "  --key FILE   the coordinator's public key file to check signatures with\n"
    "               (default: the key the genesis entry names; over RPC also the key\n"
    "               the coordinator presents, which must match)\n"
    "\n"
    "Reaching the coordinator (with --coordinator ADDR):\n"
    CLIENT_TLS_USAGE
    "\n"
    "Exit status: 0 ok, 1 the ledger failed a check or could not be read, 2 usage.\n";

#define CMD "ledger"

struct opts {
    const char *sub;
    const char *dir, *coordinator, *key_file, *checkpoint_file, *payloads;
    struct client_tls tls;
    int json;
    unsigned long long from, to, index, size, from_size, to_size;
    int have_from, have_to, have_index, have_size, have_from_size, have_to_size;
};

/* --- show and export -------------------------------------------------------------------- */

static void json_string_to(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_string(const char *s)
{
    json_string_to(stdout, s);
}

/* --- ledger export --payloads DIR ----------------------------------------------------------- */

/* Accepted payloads, copied from the coordinator's retention store
 * (DATA_DIR/experiments/<id>/payloads/<hex>.bin) to DIR/payloads/<hex>.bin. */
struct payload_export {
    const char *data_dir, *dir;
    uint64_t written, missing, damaged, seeds, seeds_withheld;
    char first_missing[200];
    /* The experiments one of whose accepted payloads was not written intact (missing or
     * damaged): their DP noise seeds are withheld (export_seed). */
    char (*incomplete)[ENTRY_ID_MAX + 1];
    size_t n_incomplete, cap_incomplete;
};

static int incomplete_has(const struct payload_export *pe, const char *experiment)
{
    for (size_t i = 0; i < pe->n_incomplete; i++)
        if (strcmp(pe->incomplete[i], experiment) == 0)
            return 1;
    return 0;
}

/* Records that an accepted payload of experiment was not written intact. 0 or -ENOMEM. */
static int incomplete_add(struct payload_export *pe, const char *experiment)
{
    if (incomplete_has(pe, experiment))
        return 0;
    if (pe->n_incomplete == pe->cap_incomplete) {
        size_t cap = pe->cap_incomplete ? 2 * pe->cap_incomplete : 8;
        void *p = realloc(pe->incomplete, cap * sizeof *pe->incomplete);
        if (!p)
            return -ENOMEM;
        pe->incomplete = p;
        pe->cap_incomplete = cap;
    }
    snprintf(pe->incomplete[pe->n_incomplete++], ENTRY_ID_MAX + 1, "%s", experiment);
    return 0;
}

/* Copies src to dst (via dst.tmp, renamed) in 1 MiB pieces, hashing what it copies.
 * 0, 1 when src does not exist, or -errno (*what says which file). */
static int copy_payload(const char *src, const char *dst, uint8_t hash[32], char *what,
                        size_t cap)
{
    static uint8_t buf[1 << 20];
    char tmp[PATH_MAX + 8];
    snprintf(what, cap, "%s", src);
    FILE *in = fopen(src, "rb");
    if (!in)
        return errno == ENOENT ? 1 : -errno;
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        int e = errno;
        fclose(in);
        snprintf(what, cap, "%s", tmp);
        return -e;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        crypto_generichash_update(&st, buf, n);
        if (fwrite(buf, 1, n, out) != n) {
            rc = -(errno ? errno : EIO);
            snprintf(what, cap, "%s", tmp);
            break;
        }
    }
    if (rc == 0 && ferror(in))
        rc = -EIO;
    fclose(in);
    if (fclose(out) != 0 && rc == 0) {
        rc = -(errno ? errno : EIO);
        snprintf(what, cap, "%s", tmp);
    }
    if (rc == 0 && rename(tmp, dst) != 0) {
        rc = -errno;
        snprintf(what, cap, "%s", dst);
    }
    if (rc != 0)
        unlink(tmp);
    crypto_generichash_final(&st, hash, 32);
    return rc;
}

static int export_payload(struct payload_export *pe, const struct entry_update *u)
{
    char hex[65], src[PATH_MAX], dst[PATH_MAX];
    hex_encode(u->payload_hash, 32, hex);
    snprintf(src, sizeof src, "%s/experiments/%s/payloads/%s.bin", pe->data_dir, u->experiment,
             hex);
    snprintf(dst, sizeof dst, "%s/payloads/%s.bin", pe->dir, hex);
    uint8_t got[32];
    char what[PATH_MAX + 8];
    int rc = copy_payload(src, dst, got, what, sizeof what);
    if (rc == 1) {
        if (pe->missing++ == 0)
            snprintf(pe->first_missing, sizeof pe->first_missing, "%s round %" PRIu64 " of %s",
                     u->member, u->round, u->experiment);
        return incomplete_add(pe, u->experiment) == 0 ? 0 : cli_fail(CMD, "out of memory");
    }
    if (rc < 0)
        return cli_fail(CMD, "cannot copy the payload %s: %s: %s", hex, what, strerror(-rc));
    pe->written++;
    if (!crypto_equal(got, u->payload_hash, 32)) {
        pe->damaged++;
        fprintf(stderr, "aulac ledger: warning: the stored payload of %s (round %" PRIu64 " of %s)"
                " does not hash to %.16s...: copied as it is; credits verify will name it\n",
                u->member, u->round, u->experiment, hex);
        if (incomplete_add(pe, u->experiment) != 0)
            return cli_fail(CMD, "out of memory");
    }
    return 0;
}

/* An ended experiment's DP noise seed (privacy), which goes with its payloads:
 * DATA_DIR/experiments/<id>/dp-noise-seed to DIR/dp-seeds/<id>.seed (PRIVACY.md,
 * "Replaying the noise"); nothing when the experiment has none. Guarantees the seed is
 * written only when every accepted payload of that experiment was written intact to DIR
 * (the ledger records an experiment's updates before its end entry): a seed without the
 * payloads it was drawn for would let whoever holds the per-round models subtract the
 * noise. */
static int export_seed(struct payload_export *pe, const char *experiment)
{
    char src[PATH_MAX], dst[PATH_MAX], what[PATH_MAX + 8];
    snprintf(src, sizeof src, "%s/experiments/%s/dp-noise-seed", pe->data_dir, experiment);
    if (!file_exists(src))
        return 0;
    if (incomplete_has(pe, experiment)) {
        pe->seeds_withheld++;
        fprintf(stderr, "aulac ledger: the DP noise seed of %s is not exported: not all of its "
                "accepted payloads were (PRIVACY.md, \"Replaying the noise\")\n", experiment);
        return 0;
    }
    snprintf(dst, sizeof dst, "%s/dp-seeds", pe->dir);
    int rc = file_mkdirs(dst, 0755);
    if (rc != 0)
        return cli_fail(CMD, "cannot create %s: %s", dst, strerror(-rc));
    snprintf(dst, sizeof dst, "%s/dp-seeds/%s.seed", pe->dir, experiment);
    uint8_t h[32];
    rc = copy_payload(src, dst, h, what, sizeof what);
    if (rc < 0)
        return cli_fail(CMD, "cannot copy the DP noise seed of %s: %s: %s", experiment, what,
                        strerror(-rc));
    pe->seeds += rc == 0;
    return 0;
}

struct show_ctx {
    int json, export_, bad;
    FILE *out;                  /* stdout, or DIR/entries.jsonl with --payloads */
    struct payload_export *pe;  /* --payloads; NULL otherwise */
};

static int show_one(uint64_t i, const uint8_t *bytes, size_t len, void *arg)
{
    struct show_ctx *x = arg;
    struct entry e;
    int rc = entry_decode(bytes, len, &e);
    char leaf_hex[65] = "";
    if (x->export_) {
        uint8_t leaf[32];
        merkle_leaf_hash(bytes, len, leaf);
        hex_encode(leaf, 32, leaf_hex);
    }
    if (rc != 0) {
        x->bad = 1;
        if (x->json || x->export_) {
            fprintf(x->out, "{\"index\":%" PRIu64 ",\"error\":\"%s\"", i, ledger_strerror(rc));
            if (!x->export_) {
                fprintf(x->out, "}\n");
                return 0;
            }
        } else {
            fprintf(x->out, "#%-6" PRIu64 " undecodable entry: %s\n", i, ledger_strerror(rc));
            return 0;
        }
    }
    if (x->export_) {
        size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        if (!b64) {
            if (rc == 0)
                entry_free(&e);
            return cli_fail(CMD, "out of memory");
        }
        sodium_bin2base64(b64, cap, bytes, len, sodium_base64_VARIANT_ORIGINAL);
        if (rc != 0) {
            fprintf(x->out, ",\"leaf_hash\":\"%s\",\"bytes\":\"%s\"}\n", leaf_hex, b64);
        } else {
            char *j = entry_to_json(&e);
            fprintf(x->out, "{\"index\":%" PRIu64 ",\"leaf_hash\":\"%s\",\"bytes\":\"%s\",\"entry\":%s}\n",
                   i, leaf_hex, b64, j ? j : "null");
            free(j);
        }
        free(b64);
    } else if (x->json) {
        char *j = entry_to_json(&e);
        if (j && j[0] == '{')
            fprintf(x->out, "{\"index\":%" PRIu64 ",%s\n", i, j + 1);
        free(j);
    } else {
        char line[1024];
        entry_describe(&e, line, sizeof line);
        fprintf(x->out, "#%-6" PRIu64 " %s\n", i, line);
    }
    int copy_rc = 0;
    if (rc == 0 && x->pe && e.type == ENTRY_UPDATE_ACCEPTED)
        copy_rc = export_payload(x->pe, &e.u.update);
    if (rc == 0 && x->pe && (e.type == ENTRY_EXPERIMENT_FINISHED ||
                             e.type == ENTRY_EXPERIMENT_CANCELLED ||
                             e.type == ENTRY_EXPERIMENT_FAILED))
        copy_rc = export_seed(x->pe, e.u.experiment.experiment);
    if (rc == 0)
        entry_free(&e);
    return copy_rc;
}

static int export_checkpoint(uint64_t size, const char *note, size_t len, void *arg)
{
    struct show_ctx *x = arg;
    char *copy = strndup(note, len);
    if (!copy)
        return cli_fail(CMD, "out of memory");
    fprintf(x->out, "{\"checkpoint_size\":%" PRIu64 ",\"checkpoint\":", size);
    json_string_to(x->out, copy);
    fprintf(x->out, "}\n");
    free(copy);
    return 0;
}

/* [from, to] clipped to the log; 1 when empty. */
static int range_of(struct ledger_source *s, const struct opts *o, uint64_t *from,
                    uint64_t *to_excl)
{
    uint64_t size;
    if (ledger_source_size(s, &size) != 0)
        return -1;
    *from = o->have_from ? o->from : 0;
    *to_excl = o->have_to && o->to < size ? o->to + 1 : size;
    if (o->have_from && o->from >= size && size > 0)
        return cli_fail(CMD, "--from %llu is past the last entry (%" PRIu64 " entries, indexes 0.."
                        "%" PRIu64 ")", o->from, size, size - 1), -1;
    return *from >= *to_excl;
}

static int cmd_show(struct ledger_source *s, const struct opts *o, int export_)
{
    uint64_t from, to;
    int rc = range_of(s, o, &from, &to);
    if (rc < 0)
        return 1;
    struct show_ctx x = { .json = o->json, .export_ = export_, .out = stdout };
    if (rc == 0 && ledger_source_entries(s, from, to, show_one, &x) != 0)
        return 1;
    if (export_ && ledger_source_checkpoints(s, export_checkpoint, &x) != 0)
        return 1;
    if (x.bad)
        fprintf(stderr, "aulac ledger: some entries do not decode (see above); run aulac ledger "
                        "verify\n");
    return x.bad;
}

/* ledger export --data-dir D --payloads DIR: DIR/entries.jsonl (the lines export prints,
 * written to .tmp and renamed once complete) and DIR/payloads/<hex>.bin. */
static int cmd_export_payloads(struct ledger_source *s, const struct opts *o)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/payloads", o->payloads);
    int rc = file_mkdirs(path, 0755);
    if (rc != 0)
        return cli_fail(CMD, "cannot create %s: %s", path, strerror(-rc));
    snprintf(path, sizeof path, "%s/entries.jsonl", o->payloads);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct payload_export pe = { .data_dir = o->dir, .dir = o->payloads };
    struct show_ctx x = { .export_ = 1, .pe = &pe };
    if (!(x.out = fopen(tmp, "w")))
        return cli_fail(CMD, "cannot write %s: %s", tmp, strerror(errno));
    uint64_t size = 0;
    rc = ledger_source_size(s, &size) != 0 ||
         ledger_source_entries(s, 0, size, show_one, &x) != 0 ||
         ledger_source_checkpoints(s, export_checkpoint, &x) != 0;
    int werr = ferror(x.out) ? EIO : 0;
    if (fclose(x.out) != 0 && !werr)
        werr = errno;
    if (!rc && werr)
        rc = cli_fail(CMD, "cannot write %s: %s", tmp, strerror(werr));
    if (!rc && rename(tmp, path) != 0)
        rc = cli_fail(CMD, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    free(pe.incomplete);
    if (rc) {
        unlink(tmp);
        return 1;
    }
    fprintf(stderr, "aulac ledger: wrote %s (%" PRIu64 " entries) and %" PRIu64 " payload(s) to "
            "%s/payloads; %" PRIu64 " missing", path, size, pe.written, o->payloads, pe.missing);
    if (pe.missing)
        fprintf(stderr, " (not in %s/experiments/*/payloads: the first is %s's; kept for "
                "contribution.payload_retention_days after an experiment ends)", o->dir,
                pe.first_missing);
    if (pe.damaged)
        fprintf(stderr, "; %" PRIu64 " damaged (see above)", pe.damaged);
    if (pe.seeds)
        fprintf(stderr, "; the DP noise seed(s) of %" PRIu64 " ended experiment(s) to %s/dp-seeds",
                pe.seeds, o->payloads);
    if (pe.seeds_withheld)
        fprintf(stderr, "; %" PRIu64 " DP noise seed(s) withheld (payloads missing or damaged)",
                pe.seeds_withheld);
    fputc('\n', stderr);
    if (x.bad)
        fprintf(stderr, "aulac ledger: some entries do not decode; run aulac ledger verify\n");
    return x.bad;
}

/* --- verify -------------------------------------------------------------------------------- */

static void verify_progress(uint64_t done, uint64_t total, void *arg)
{
    (void)arg;
    if (total >= 100000)
        fprintf(stderr, "\rverifying: %" PRIu64 " / %" PRIu64, done, total);
    if (total >= 100000 && done == total)
        fputc('\n', stderr);
}

/* Every entry through ledger/history.h: it decodes, and what members signed in it
 * holds against the roster of its moment. */
struct history_ctx {
    struct ledger_history *h;
    int rc;                  /* the first failure */
    char why[600];
    uint8_t (*leaves)[32];   /* RPC: every leaf hash, to find a first bad index */
};

static int history_one(uint64_t i, const uint8_t *data, size_t len, void *arg)
{
    struct history_ctx *x = arg;
    if (x->leaves)
        merkle_leaf_hash(data, len, x->leaves[i]);
    if (x->rc == 0)
        x->rc = ledger_history_add(x->h, i, data, len, x->why, sizeof x->why);
    return 0;
}

/* Runs entries [0, n) through a new history; 0, or 1 when they could not be read
 * (reported). x->rc and x->why say what the history found. */
static int check_history(struct ledger_source *s, uint64_t n, struct history_ctx *x)
{
    if (ledger_history_new(&x->h) != 0)
        return cli_fail(CMD, "out of memory");
    return ledger_source_entries(s, 0, n, history_one, x) != 0;
}

static void print_history_ok(const struct history_ctx *x)
{
    struct ledger_history_counts k;
    ledger_history_counts(x->h, &k);
    printf("  member signatures re-checked against the roster of their moment: %" PRIu64
           " update envelope(s), %" PRIu64 " roster proposal(s), %" PRIu64 " vote(s) (%" PRIu64
           " roster change(s) replayed); no (experiment, round, member) accepted twice\n",
           k.updates, k.proposals, k.votes, k.roster_changes);
    uint8_t charter[32];
    uint64_t at;
    ledger_history_charter(x->h, charter, &at);
    char hex[65];
    hex_encode(charter, 32, hex);
    printf("  governance: %" PRIu64 " motion(s) (experiment, cancel, charter) with their "
           "documents, %" PRIu64 " decision(s) (withdrawal signatures re-checked); charter in "
           "force: %s\n", k.motions, k.decisions, k.charter_changes == 0 && charter[0] == 0 &&
           !memcmp(charter, charter + 1, 31) ? "the default charter (genesis has none)" : hex);
    if (k.charter_changes)
        printf("  the charter was amended %" PRIu64 " time(s), last at entry %" PRIu64 "\n",
               k.charter_changes, at);
    if (k.scores || k.credits)
        printf("  contributions: %" PRIu64 " round score(s), each of a closed round, its "
               "participants and their accepted payloads; %" PRIu64 " credits entr%s, each "
               "after its experiment's last round (values are re-computed by aulac credits "
               "verify)\n", k.scores, k.credits, k.credits == 1 ? "y" : "ies");
}

static int verify_dir(struct ledger_source *s, const struct opts *o)
{
    struct checkpoint_key key;
    char key_from[300];
    if (ledger_source_key(s, o->key_file, &key, key_from, sizeof key_from) != 0)
        return 1;
    struct ledger_audit a;
    int rc = ledger_audit(s->l, &key, verify_progress, NULL, &a);
    int failed = 0;
    if (rc == LEDGER_ERR_CORRUPT || rc == LEDGER_ERR_CHECKPOINT_MISMATCH ||
        rc == LEDGER_ERR_UNSIGNED_ENTRIES) {
        printf("ledger %s: FAILED at entry %" PRIu64 ": %s\n", s->name, a.bad_index, a.why);
        failed = 1;
    } else if (rc != 0 && a.bad_checkpoint) {
        /* the entries may be fine; a stored checkpoint is not a valid one by this key */
        printf("ledger %s: FAILED: %s\n", s->name, a.why);
        failed = 1;
    } else if (rc != 0) {
        return cli_fail(CMD, "verify: %s", a.why[0] ? a.why : ledger_strerror(rc));
    }
    /* the signatures too, even when the hashes failed: say what else is wrong */
    uint64_t n;
    struct history_ctx x = { 0 };
    int unreadable = ledger_source_size(s, &n) != 0 || check_history(s, n, &x) != 0;
    if (!unreadable && x.rc != 0) {
        printf("ledger %s: FAILED at %s\n", s->name, x.why);
        failed = 1;
    }
    if (failed || unreadable) {
        ledger_history_free(x.h);
        return 1;
    }
    char hex[65];
    hex_encode(a.root, 32, hex);
    printf("ledger %s: OK, %" PRIu64 " entries, every leaf and subtree hash recomputed, root %s\n",
           s->name, a.size, hex);
    if (a.checkpoints > 0)
        printf("  %" PRIu64 " signed checkpoint(s), each signed by %s (key ID %08x; key from %s) "
               "and matching the entries; the latest covers all %" PRIu64 " entries\n",
               a.checkpoints, key.name, (unsigned)key.id, key_from, a.last_good_checkpoint);
    print_history_ok(&x);
    ledger_history_free(x.h);
    return 0;
}

/* First index at which the fetched entries differ from what the signed root covers:
 * the largest m whose root (from our leaves) the coordinator proves consistent. */
static uint64_t first_bad_index(struct ledger_source *s, uint8_t (*leaves)[32], uint64_t n,
                                const uint8_t root[32])
{
    uint64_t lo = 0, hi = n;   /* prefix of lo entries is good; of hi is bad */
    while (hi - lo > 1) {
        uint64_t m = lo + (hi - lo) / 2;
        uint8_t rm[32], proof[MERKLE_PROOF_MAX][32];
        size_t len;
        if (merkle_root((const uint8_t (*)[32])leaves, m, rm) != 0 ||
            ledger_source_consistency(s, m, n, proof, &len) != 0)
            break;
        if (merkle_verify_consistency(m, n, rm, root, (const uint8_t (*)[32])proof, len) == 0)
            lo = m;
        else
            hi = m;
    }
    return lo;
}

struct rpc_ckpt_ctx {
    const struct checkpoint_key *key;
    uint8_t (*leaves)[32];
    uint64_t n;             /* leaves fetched */
    uint64_t checked;
    uint64_t bad_size;
    char why[400];
};

static int check_rpc_checkpoint(uint64_t size, const char *note, size_t len, void *arg)
{
    struct rpc_ckpt_ctx *x = arg;
    if (size > x->n)
        return 0;   /* newer than the entries fetched */
    struct checkpoint c;
    char why[300];
    uint8_t root[32];
    int rc = checkpoint_verify(note, len, x->key, &c, why, sizeof why);
    if (rc == 0 && c.size != size) {
        snprintf(why, sizeof why, "it says size %" PRIu64, c.size);
        rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
    }
    if (rc == 0 && merkle_root((const uint8_t (*)[32])x->leaves, size, root) == 0 &&
        !crypto_equal(root, c.root, 32)) {
        snprintf(why, sizeof why, "its root differs from the root of the entries served");
        rc = LEDGER_ERR_CHECKPOINT_MISMATCH;
    }
    if (rc != 0) {
        x->bad_size = size;
        snprintf(x->why, sizeof x->why, "checkpoint of size %" PRIu64 ": %s", size, why);
        return 1;
    }
    x->checked++;
    return 0;
}

static int verify_rpc(struct ledger_source *s, const struct opts *o)
{
    struct checkpoint_key key;
    char key_from[300];
    if (ledger_source_key(s, o->key_file, &key, key_from, sizeof key_from) != 0)
        return 1;
    char *note;
    uint64_t found, size_before;
    if (ledger_source_size(s, &size_before) != 0)
        return 1;
    int rc = ledger_source_checkpoint(s, LEDGER_LATEST, &note, &found);
    if (rc < 0)
        return 1;
    if (rc == 1) {
        if (size_before == 0)
            return cli_fail(CMD, "the coordinator at %s has an empty ledger and no signed "
                            "checkpoint yet", s->name);
        printf("ledger at %s: FAILED at entry 0: entries 0..%" PRIu64 " are covered by no "
               "signed checkpoint (no signed checkpoint is served)\n", s->name, size_before - 1);
        return 1;
    }
    struct checkpoint latest;
    char why[400];
    rc = checkpoint_verify(note, strlen(note), &key, &latest, why, sizeof why);
    free(note);
    if (rc != 0) {
        printf("ledger at %s: FAILED: its latest checkpoint: %s\n", s->name, why);
        return 1;
    }
    uint64_t n = latest.size;
    if (n < size_before) {
        /* a checkpoint commits with its entries: the latest covers every entry there was */
        printf("ledger at %s: FAILED at entry %" PRIu64 ": entries %" PRIu64 "..%" PRIu64
               " are covered by no signed checkpoint (the latest is of size %" PRIu64 ")\n",
               s->name, n, n, size_before - 1, n);
        return 1;
    }
    uint8_t (*leaves)[32] = malloc((n ? n : 1) * 32);
    if (!leaves)
        return cli_fail(CMD, "out of memory for %" PRIu64 " leaf hashes", n);
    struct history_ctx d = { .leaves = leaves };
    int result = 1;
    if (check_history(s, n, &d) != 0)
        goto out;
    uint8_t root[32];
    merkle_root((const uint8_t (*)[32])leaves, n, root);
    if (!crypto_equal(root, latest.root, 32)) {
        uint64_t bad = first_bad_index(s, leaves, n, latest.root);
        printf("ledger at %s: FAILED at entry %" PRIu64 ": the entries served do not hash to the "
               "signed root of size %" PRIu64 "; entries before %" PRIu64 " match it\n", s->name,
               bad, n, bad);
        goto out;
    }
    if (d.rc != 0) {
        printf("ledger at %s: FAILED at %s\n", s->name, d.why);
        goto out;
    }
    struct rpc_ckpt_ctx x = { .key = &key, .leaves = leaves, .n = n };
    rc = ledger_source_checkpoints(s, check_rpc_checkpoint, &x);
    if (rc < 0)
        goto out;
    if (x.bad_size) {
        printf("ledger at %s: FAILED: %s\n", s->name, x.why);
        goto out;
    }
    char hex[65];
    hex_encode(root, 32, hex);
    printf("ledger at %s: OK, %" PRIu64 " entries fetched, every leaf hash recomputed, root %s\n"
           "  = the root of its latest checkpoint, signed by %s (key ID %08x; key from %s);\n"
           "  %" PRIu64 " signed checkpoint(s) checked against the entries\n", s->name, n, hex,
           key.name, (unsigned)key.id, key_from, x.checked);
    print_history_ok(&d);
    result = 0;
out:
    ledger_history_free(d.h);
    free(leaves);
    return result;
}

/* --- checkpoint, proof, consistency ---------------------------------------------------------- */

static int cmd_checkpoint(struct ledger_source *s, const struct opts *o)
{
    struct checkpoint c;
    char *note;
    if (ledger_source_verified_checkpoint(s, o->key_file, o->have_size ? o->size : LEDGER_LATEST,
                                          &c, &note) != 0)
        return 1;
    if (o->json) {
        char hex[65];
        hex_encode(c.root, 32, hex);
        printf("{\"origin\":");
        json_string(c.origin);
        printf(",\"size\":%" PRIu64 ",\"root\":\"%s\",\"verified\":true,\"note\":", c.size, hex);
        json_string(note);
        printf("}\n");
    } else {
        fputs(note, stdout);
        printf("(verified: signed by the coordinator's key for %s)\n", c.origin);
    }
    free(note);
    return 0;
}

static void print_proof(const char *label, uint8_t (*proof)[32], size_t len, int json)
{
    char hex[65];
    if (json) {
        printf("\"%s\":[", label);
        for (size_t i = 0; i < len; i++) {
            hex_encode(proof[i], 32, hex);
            printf("%s\"%s\"", i ? "," : "", hex);
        }
        printf("]");
        return;
    }
    printf("%s (%zu hash%s, leaf side first):\n", label, len, len == 1 ? "" : "es");
    for (size_t i = 0; i < len; i++) {
        hex_encode(proof[i], 32, hex);
        printf("  %s\n", hex);
    }
}

struct one_entry {
    uint8_t *data;
    size_t len;
};

static int grab(uint64_t i, const uint8_t *data, size_t len, void *arg)
{
    struct one_entry *e = arg;
    e->data = malloc(len ? len : 1);
    if (!e->data)
        return cli_fail(CMD, "out of memory");
    memcpy(e->data, data, len);
    e->len = len;
    return 0;
}

static int cmd_proof(struct ledger_source *s, const struct opts *o)
{
    struct checkpoint c;
    if (ledger_source_verified_checkpoint(s, o->key_file, o->have_size ? o->size : LEDGER_LATEST,
                                          &c, NULL) != 0)
        return 1;
    if (o->index >= c.size)
        return cli_fail(CMD, "--index %llu is not in the signed tree of size %" PRIu64 " (indexes "
                        "0..%" PRIu64 ")%s", o->index, c.size, c.size ? c.size - 1 : 0,
                        o->have_size ? "" : "; the entry may be newer than the latest checkpoint");
    struct one_entry e = { 0 };
    if (ledger_source_entries(s, o->index, o->index + 1, grab, &e) != 0)
        return 1;
    uint8_t leaf[32], proof[MERKLE_PROOF_MAX][32];
    size_t len;
    merkle_leaf_hash(e.data, e.len, leaf);
    int rc = ledger_source_inclusion(s, o->index, c.size, proof, &len);
    int ok = rc == 0 && merkle_verify_inclusion(o->index, c.size, leaf,
                                                (const uint8_t (*)[32])proof, len, c.root) == 0;
    char leaf_hex[65], root_hex[65], line[1024] = "(does not decode)";
    hex_encode(leaf, 32, leaf_hex);
    hex_encode(c.root, 32, root_hex);
    struct entry en;
    if (entry_decode(e.data, e.len, &en) == 0) {
        entry_describe(&en, line, sizeof line);
        entry_free(&en);
    }
    free(e.data);
    if (rc != 0)
        return 1;
    if (o->json) {
        printf("{\"index\":%llu,\"size\":%" PRIu64 ",\"leaf_hash\":\"%s\",\"root\":\"%s\",",
               o->index, c.size, leaf_hex, root_hex);
        print_proof("proof", proof, len, 1);
        printf(",\"verified\":%s}\n", ok ? "true" : "false");
    } else {
        printf("entry #%llu: %s\nleaf hash %s\nsigned tree: size %" PRIu64 ", root %s\n",
               o->index, line, leaf_hex, c.size, root_hex);
        print_proof("inclusion proof", proof, len, 0);
        printf(ok ? "verified: entry %llu, as served, is in the signed tree of size %" PRIu64 "\n"
                  : "FAILED: the inclusion proof of entry %llu does not lead to the signed root "
                    "of size %" PRIu64 "\n", o->index, c.size);
    }
    return ok ? 0 : 1;
}

static int collect_leaf(uint64_t i, const uint8_t *data, size_t len, void *arg)
{
    merkle_leaf_hash(data, len, ((uint8_t (*)[32])arg)[i]);
    return 0;
}

/* The root of the first m entries as served, computed here. */
static int served_root(struct ledger_source *s, uint64_t m, uint8_t root[32])
{
    uint8_t (*leaves)[32] = malloc((m ? m : 1) * 32);
    if (!leaves)
        return cli_fail(CMD, "out of memory for %" PRIu64 " leaf hashes", m);
    int rc = ledger_source_entries(s, 0, m, collect_leaf, leaves);
    if (rc == 0)
        merkle_root((const uint8_t (*)[32])leaves, m, root);
    free(leaves);
    return rc;
}

static int cmd_consistency(struct ledger_source *s, const struct opts *o)
{
    struct checkpoint newer, older;
    const char *old_kind = "signed";
    if (ledger_source_verified_checkpoint(s, o->key_file,
                                          o->have_to_size ? o->to_size : LEDGER_LATEST, &newer,
                                          NULL) != 0)
        return 1;
    if (o->checkpoint_file) {
        uint8_t *buf;
        size_t blen;
        int rc = file_read_all(o->checkpoint_file, CHECKPOINT_NOTE_MAX, &buf, &blen);
        if (rc != 0)
            return cli_fail(CMD, "cannot read %s: %s", o->checkpoint_file, strerror(-rc));
        struct checkpoint_key key;
        char key_from[300], why[400];
        if (ledger_source_key(s, o->key_file, &key, key_from, sizeof key_from) != 0) {
            free(buf);
            return 1;
        }
        rc = checkpoint_verify((const char *)buf, blen, &key, &older, why, sizeof why);
        free(buf);
        if (rc != 0)
            return cli_fail(CMD, "%s is not a checkpoint signed by this coordinator (%s): %s",
                            o->checkpoint_file, key.name, why);
    } else {
        if (o->from_size > newer.size)
            return cli_fail(CMD, "--from-size %llu is larger than the newer tree (%" PRIu64 ")",
                            o->from_size, newer.size);
        char *note;
        uint64_t found;
        int rc = ledger_source_checkpoint(s, o->from_size, &note, &found);
        if (rc < 0)
            return 1;
        free(note);
        if (rc == 0) {
            if (ledger_source_verified_checkpoint(s, o->key_file, o->from_size, &older, NULL) != 0)
                return 1;
        } else {
            /* no checkpoint of that size is kept: take the root of the entries as served */
            older = newer;
            older.size = o->from_size;
            if (served_root(s, older.size, older.root) != 0)
                return 1;
            old_kind = "of the entries served; no checkpoint of that size is kept";
        }
    }
    uint8_t proof[MERKLE_PROOF_MAX][32];
    size_t len = 0;
    if (older.size <= newer.size &&
        ledger_source_consistency(s, older.size, newer.size, proof, &len) != 0)
        return 1;
    char why[400];
    int rc = checkpoint_check_extension(&older, &newer, (const uint8_t (*)[32])proof, len, why,
                                        sizeof why);
    char a[65], b[65];
    hex_encode(older.root, 32, a);
    hex_encode(newer.root, 32, b);
    if (o->json) {
        printf("{\"old_size\":%" PRIu64 ",\"old_root\":\"%s\",\"size\":%" PRIu64
               ",\"root\":\"%s\",", older.size, a, newer.size, b);
        print_proof("proof", proof, len, 1);
        printf(",\"verified\":%s}\n", rc == 0 ? "true" : "false");
    } else {
        printf("from: size %" PRIu64 ", root %s (%s)\nto:   size %" PRIu64 ", root %s "
               "(signed)\n", older.size, a, old_kind, newer.size, b);
        print_proof("consistency proof", proof, len, 0);
        if (rc == 0)
            printf("verified: the ledger of size %" PRIu64 " extends the one of size %" PRIu64
                   "\n", newer.size, older.size);
        else
            printf("FAILED: the %s\n", why);
    }
    return rc == 0 ? 0 : 1;
}

/* --- arguments ------------------------------------------------------------------------------ */

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'd' }, { "coordinator", required_argument, 0, 'c' },
        CLIENT_TLS_OPTIONS, { "key", required_argument, 0, 'k' },
        { "from", required_argument, 0, 'f' }, { "to", required_argument, 0, 't' },
        { "index", required_argument, 0, 'x' }, { "size", required_argument, 0, 's' },
        { "from-size", required_argument, 0, 'F' }, { "to-size", required_argument, 0, 'T' },
        { "checkpoint", required_argument, 0, 'p' }, { "json", no_argument, 0, 'j' },
        { "payloads", required_argument, 0, 'P' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc - 1, argv + 1, ":h", lo, NULL)) != -1) {
        if (client_tls_option(&o->tls, ch, optarg))
            continue;
        switch (ch) {
        case 'd': o->dir = optarg; break;
        case 'c': o->coordinator = optarg; break;
        case 'k': o->key_file = optarg; break;
        case 'p': o->checkpoint_file = optarg; break;
        case 'P': o->payloads = optarg; break;
        case 'j': o->json = 1; break;
#define NUM(flag, field, have)                                          \
            if (cli_parse_u64(CMD, flag, optarg, &o->field)) return 2;  \
            o->have = 1;                                                \
            break;
        case 'f': NUM("--from", from, have_from)
        case 't': NUM("--to", to, have_to)
        case 'x': NUM("--index", index, have_index)
        case 's': NUM("--size", size, have_size)
        case 'F': NUM("--from-size", from_size, have_from_size)
        case 'T': NUM("--to-size", to_size, have_to_size)
#undef NUM
        case 'h': fputs(usage, stdout); return 0;
        case ':':
            return cli_usage_error(CMD, usage, "%s needs a value", argv[optind]);
        default:
            return cli_usage_error(CMD, usage, "unknown option '%s' for 'ledger %s'",
                                   argv[optind], o->sub);
        }
    }
    if (optind + 1 < argc)
        return cli_usage_error(CMD, usage, "unexpected argument '%s'", argv[optind + 1]);
    return -1;
}

/* Which options each subcommand takes, beyond the source. */
static int check_options(const struct opts *o)
{
    const char *s = o->sub;
    int show = !strcmp(s, "show"), export_ = !strcmp(s, "export"), proof = !strcmp(s, "proof"),
        cons = !strcmp(s, "consistency"), ckpt = !strcmp(s, "checkpoint");
    char what[32];
    snprintf(what, sizeof what, "ledger %s", s);
    int rc = ledger_source_check(CMD, usage, what, o->dir, o->coordinator, &o->tls);
    if (rc != 0)
        return rc;
    if ((o->have_from || o->have_to) && !show && !export_)
        return cli_usage_error(CMD, usage, "--from/--to are for show and export");
    if (o->have_from && o->have_to && o->from > o->to)
        return cli_usage_error(CMD, usage, "--from %llu is after --to %llu", o->from, o->to);
    if (o->json && !show && !proof && !cons && !ckpt)
        return cli_usage_error(CMD, usage, "--json is for show, checkpoint, proof and "
                               "consistency (export always writes JSON lines)");
    if (o->key_file && (show || export_))
        return cli_usage_error(CMD, usage, "--key is for verify, checkpoint, proof and "
                               "consistency");
    if (o->have_index != proof)
        return cli_usage_error(CMD, usage, proof ? "ledger proof needs --index N"
                                                 : "--index is for ledger proof");
    if (o->have_size && !proof && !ckpt)
        return cli_usage_error(CMD, usage, "--size is for proof and checkpoint");
    if (cons && !o->have_from_size == !o->checkpoint_file)
        return cli_usage_error(CMD, usage, "ledger consistency needs --from-size M or "
                               "--checkpoint FILE (one of them)");
    if (!cons && (o->have_from_size || o->have_to_size || o->checkpoint_file))
        return cli_usage_error(CMD, usage, "--from-size, --to-size and --checkpoint are for "
                               "ledger consistency");
    if (o->payloads && !export_)
        return cli_usage_error(CMD, usage, "--payloads is for ledger export");
    if (o->payloads && !o->dir)
        return cli_usage_error(CMD, usage, "ledger export --payloads reads the payloads from the "
                               "coordinator's data directory: give --data-dir DIR");
    if (o->payloads && (o->have_from || o->have_to))
        return cli_usage_error(CMD, usage, "ledger export --payloads writes the whole ledger "
                               "(credits verify --export replays it from entry 0): no --from/--to");
    if (o->have_size && o->size == 0)
        return cli_usage_error(CMD, usage, "--size 0: the empty tree has no entries to prove");
    return 0;
}

int cmd_ledger(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "replay") == 0)   /* its own options: aulac ledger replay --help */
        return cmd_ledger_replay(argc - 1, argv + 1);
    static const char *subs[] = { "show", "verify", "checkpoint", "proof", "consistency",
                                  "export" };
    struct opts o = { .sub = argv[1] };
    int known = 0;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        known |= strcmp(o.sub, subs[i]) == 0;
    if (!known)
        return cli_usage_error(CMD, usage, "unknown subcommand '%s' (show, verify, checkpoint, "
                               "proof, consistency, export or replay)", o.sub);
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if ((rc = check_options(&o)) != 0)
        return rc;
    if (sodium_init() < 0)
        return cli_fail(CMD, "libsodium failed to initialize");
    struct ledger_source s;
    if (ledger_source_open(&s, CMD, o.dir, o.coordinator, &o.tls) != 0) {
        ledger_source_close(&s);
        return 1;
    }
    if (!strcmp(o.sub, "show"))
        rc = cmd_show(&s, &o, 0);
    else if (!strcmp(o.sub, "export"))
        rc = o.payloads ? cmd_export_payloads(&s, &o) : cmd_show(&s, &o, 1);
    else if (!strcmp(o.sub, "verify"))
        rc = s.l ? verify_dir(&s, &o) : verify_rpc(&s, &o);
    else if (!strcmp(o.sub, "checkpoint"))
        rc = cmd_checkpoint(&s, &o);
    else if (!strcmp(o.sub, "proof"))
        rc = cmd_proof(&s, &o);
    else
        rc = cmd_consistency(&s, &o);
    ledger_source_close(&s);
    return rc;
}
