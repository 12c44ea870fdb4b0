/* bench/ledger: the LMDB log's throughput and proof costs, with signed checkpoints on
 * (as the coordinator runs it). Prints figures and their ratio to the goals of
 * issue 4; asserts nothing.
 *
 *   bench/ledger [--entries N] [--batch B] [--threads T] [--dir DIR]
 *
 *   durable single appends/s   one entry per commit (fsync + checkpoint each)
 *   batched appends/s          B entries per commit, up to N entries      goal >= 10,000/s
 *   group commit appends/s     T threads appending one entry at a time through
 *                              ledger_group (their appends share commits)
 *   full verification          ledger_audit: every leaf, subtree and checkpoint
 *                              of the N-entry log                         goal >= 200,000/s
 *   proofs at N entries        inclusion and consistency proof generation (and
 *                              verification) at random indexes and sizes */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger/checkpoint.h"
#include "ledger/entry.h"
#include "ledger/group.h"
#include "ledger/ledger.h"

#define GOAL_BATCHED 10000.0
#define GOAL_VERIFY  200000.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A realistic leaf: an update_accepted entry (~230 bytes), different each time. */
static size_t make_entry(uint64_t i, uint8_t **out)
{
    struct entry e = { .type = ENTRY_UPDATE_ACCEPTED, .timestamp_ms = 1767225600000 + (int64_t)i };
    struct entry_update *u = &e.u.update;
    snprintf(u->experiment, sizeof u->experiment, "gpt2-vi-bench");
    snprintf(u->member, sizeof u->member, "member-%03u", (unsigned)(i % 100));
    u->round = i / 100 + 1;
    for (int k = 0; k < 32; k++)
        u->payload_hash[k] = (uint8_t)(i >> (k % 8) * 8) ^ (uint8_t)k;
    u->tokens = 1048576 + i % 1000;
    u->samples = 2048;
    u->bytes = 5123456;
    for (int k = 0; k < 64; k++)
        u->envelope_signature[k] = (uint8_t)(i * 31 + (uint64_t)k);
    u->train_loss = 2.5;
    size_t len;
    if (entry_encode(&e, out, &len) != 0) {
        fprintf(stderr, "bench: cannot encode an entry\n");
        exit(1);
    }
    return len;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench: %s: %s\n", what, ledger_strerror(rc));
    exit(1);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
}

struct group_arg {
    struct ledger_group *g;
    uint64_t base, count;
};

static void *group_thread(void *p)
{
    struct group_arg *a = p;
    for (uint64_t i = 0; i < a->count; i++) {
        uint8_t *buf;
        size_t len = make_entry(a->base + i, &buf);
        int rc = ledger_group_append(a->g, buf, len, NULL);
        free(buf);
        if (rc)
            die("group append", rc);
    }
    return NULL;
}

/* One entry per transaction for up to seconds; returns appends/s. */
static double single_appends(struct ledger *l, uint64_t *i, double seconds, uint64_t *count,
                             double *elapsed)
{
    uint64_t start = *i;
    double t0 = now_s(), t;
    do {
        uint8_t *buf;
        size_t len = make_entry(*i, &buf);
        MDB_txn *txn;
        int rc;
        if ((rc = ledger_txn_begin(l, &txn)) || (rc = ledger_append(l, txn, buf, len, NULL)) ||
            (rc = ledger_txn_commit(l, txn)))
            die("single append", rc);
        free(buf);
        (*i)++;
        t = now_s() - t0;
    } while (t < seconds && *i - start < 20000);
    *count = *i - start;
    *elapsed = t;
    return (double)*count / t;
}

static uint64_t rnd(uint64_t n)
{
    uint64_t v;
    randombytes_buf(&v, sizeof v);
    return n ? v % n : 0;
}

int main(int argc, char **argv)
{
    uint64_t n_total = 1000000, batch = 1000;
    int threads = 32;
    const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    static const struct option lo[] = {
        { "entries", required_argument, 0, 'n' }, { "batch", required_argument, 0, 'b' },
        { "threads", required_argument, 0, 't' }, { "dir", required_argument, 0, 'd' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'n': n_total = strtoull(optarg, NULL, 10); break;
        case 'b': batch = strtoull(optarg, NULL, 10); break;
        case 't': threads = atoi(optarg); break;
        case 'd': base = optarg; break;
        default:
            fprintf(stderr, "usage: %s [--entries N] [--batch B] [--threads T] [--dir DIR]\n",
                    argv[0]);
            return ch == 'h' ? 0 : 2;
        }
    }
    if (n_total < 1000 || batch < 1 || batch > LEDGER_GROUP_MAX_BATCH * 16 || threads < 1 ||
        threads > 1024) {
        fprintf(stderr, "bench: --entries >= 1000, --batch 1..65536, --threads 1..1024\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;

    char dir[512];
    snprintf(dir, sizeof dir, "%s/aulac-bench-ledger-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("bench: mkdtemp");
        return 1;
    }
    struct crypto_key *key;
    uint8_t seed[32] = { 1 };
    if (crypto_key_from_seed("coordinator", seed, &key) != 0)
        return 1;
    struct ledger *l;
    struct ledger_options lo_opts = { .map_size = 16ULL << 30 };
    int rc = ledger_open(dir, &lo_opts, &l);
    if (rc)
        die("open", rc);
    if ((rc = ledger_set_signer(l, "aulac/bench", key)))
        die("set signer", rc);
    uint8_t *example;
    size_t example_len = make_entry(0, &example);
    free(example);
    printf("ledger benchmark in %s (LMDB, full fsync per commit, a signed checkpoint per "
           "commit; update_accepted entries of ~%zu bytes)\n", dir, example_len);

    /* 1. durable single appends, on an empty log */
    uint64_t i = 0, count;
    double t0, t;
    double single = single_appends(l, &i, 2.0, &count, &t);
    printf("  durable single appends:   %10.0f /s   (empty log: %" PRIu64 " commits in %.2f s; "
           "%.2f ms per commit)\n", single, count, t, 1e3 * t / (double)count);

    /* 2. batched appends up to n_total */
    uint8_t **bufs = malloc(batch * sizeof *bufs);
    size_t *lens = malloc(batch * sizeof *lens);
    if (!bufs || !lens)
        return 1;
    uint64_t start = i, commits = 0;
    size_t bytes = 0;
    t0 = now_s();
    while (i < n_total) {
        uint64_t n = n_total - i < batch ? n_total - i : batch;
        for (uint64_t k = 0; k < n; k++) {
            lens[k] = make_entry(i + k, &bufs[k]);
            bytes += lens[k];
        }
        MDB_txn *txn;
        if ((rc = ledger_txn_begin(l, &txn)) ||
            (rc = ledger_append_batch(l, txn, (const uint8_t *const *)bufs, lens, n, NULL)) ||
            (rc = ledger_txn_commit(l, txn)))
            die("batched append", rc);
        for (uint64_t k = 0; k < n; k++)
            free(bufs[k]);
        i += n;
        commits++;
        if (commits % 100 == 0) {
            fprintf(stderr, "\r  appending: %" PRIu64 " / %" PRIu64, i, n_total);
        }
    }
    t = now_s() - t0;
    fprintf(stderr, "\r%60s\r", "");
    double batched = (double)(i - start) / t;
    printf("  batched appends:          %10.0f /s   (%" PRIu64 " entries, %" PRIu64 " per commit, "
           "%.1f MB in %.2f s)   goal >= %.0f/s: %.1fx\n", batched, i - start, batch,
           (double)bytes / 1e6, t, GOAL_BATCHED, batched / GOAL_BATCHED);
    free(bufs);
    free(lens);

    /* durable single appends again, on the big log; first let the kernel write back
     * what the bulk load left dirty, or every fsync below waits for it */
    sync();
    single = single_appends(l, &i, 2.0, &count, &t);
    printf("  durable single appends:   %10.0f /s   (at %" PRIu64 " entries: %" PRIu64 " commits "
           "in %.2f s; %.2f ms per commit)\n", single, i, count, t, 1e3 * t / (double)count);

    /* 3. group commit from many threads, on top of the big log */
    struct ledger_group *g;
    if ((rc = ledger_group_open(l, &g)))
        die("group open", rc);
    const uint64_t per_thread = 300;
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    struct group_arg *ga = calloc((size_t)threads, sizeof *ga);
    t0 = now_s();
    for (int k = 0; k < threads; k++) {
        ga[k] = (struct group_arg){ g, i + (uint64_t)k * per_thread, per_thread };
        pthread_create(&th[k], NULL, group_thread, &ga[k]);
    }
    for (int k = 0; k < threads; k++)
        pthread_join(th[k], NULL);
    t = now_s() - t0;
    uint64_t gcommits = ledger_group_commits(g);
    ledger_group_close(g);
    uint64_t gn = (uint64_t)threads * per_thread;
    i += gn;
    printf("  group commit appends:     %10.0f /s   (%d threads x %" PRIu64 " single appends, "
           "%" PRIu64 " commits: %.1f entries per commit)\n", (double)gn / t, threads,
           per_thread, gcommits, (double)gn / (double)(gcommits ? gcommits : 1));

    /* 4. full verification of the whole log, checkpoints included; and without the
     * checkpoint signatures, to show what they cost */
    struct crypto_public_key pub;
    crypto_key_public(key, &pub);
    struct checkpoint_key ck;
    checkpoint_key_init(&ck, "aulac/bench", pub.key);
    struct ledger_audit a;
    t0 = now_s();
    rc = ledger_audit(l, NULL, NULL, NULL, &a);
    double t_roots = now_s() - t0;
    if (rc)
        die(a.why, rc);
    t0 = now_s();
    rc = ledger_audit(l, &ck, NULL, NULL, &a);
    t = now_s() - t0;
    if (rc)
        die(a.why, rc);
    double verify = (double)a.size / t;
    printf("  full verification:        %10.0f entries/s   (%" PRIu64 " entries and %" PRIu64
           " signed checkpoints in %.2f s)   goal >= %.0f/s: %.1fx\n", verify, a.size,
           a.checkpoints, t, GOAL_VERIFY, verify / GOAL_VERIFY);
    char *note;
    size_t note_len;
    double t_sig = 0;
    if (ledger_checkpoint_get(l, LEDGER_LATEST, 0, &note, &note_len, NULL) == 0) {
        struct checkpoint c;
        t0 = now_s();
        for (int r = 0; r < 1000; r++)
            if (checkpoint_verify(note, note_len, &ck, &c, NULL, 0) != 0)
                die("checkpoint_verify", LEDGER_ERR_NOTE_SIGNATURE);
        t_sig = (now_s() - t0) / 1000;
        free(note);
    }
    printf("                            %10.0f entries/s   without checking the checkpoint "
           "signatures (%.2f s); one checkpoint check (parse + Ed25519) takes %.0f us\n",
           (double)a.size / t_roots, t_roots, 1e6 * t_sig);

    /* 5. proofs at the full size */
    uint64_t size = a.size;
    const int reps = 2000;
    uint8_t proof[MERKLE_PROOF_MAX][32], root[32], leaf[32];
    size_t len, total_len = 0;
    if ((rc = ledger_root(l, size, root)))
        die("root", rc);
    double t_gen = 0, t_ver = 0;
    int bad = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t ix = rnd(size);
        len = MERKLE_PROOF_MAX;
        double s0 = now_s();
        if ((rc = ledger_inclusion_proof(l, ix, size, proof, &len)))
            die("inclusion proof", rc);
        double s1 = now_s();
        if ((rc = ledger_leaf_hash(l, ix, leaf)))
            die("leaf hash", rc);
        double s2 = now_s();
        bad |= merkle_verify_inclusion(ix, size, leaf, (const uint8_t (*)[32])proof, len, root) != 0;
        t_ver += now_s() - s2;
        t_gen += s1 - s0;
        total_len += len;
    }
    printf("  inclusion proof at %" PRIu64 ":  %7.1f us to generate, %5.1f us to verify "
           "(mean of %d; %.1f hashes)%s\n", size, 1e6 * t_gen / reps, 1e6 * t_ver / reps, reps,
           (double)total_len / reps, bad ? "  SOME DID NOT VERIFY" : "");
    t_gen = t_ver = 0;
    total_len = 0;
    bad = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t old = 1 + rnd(size - 1);
        uint8_t old_root[32];
        if ((rc = ledger_root(l, old, old_root)))
            die("root", rc);
        len = MERKLE_PROOF_MAX;
        double s0 = now_s();
        if ((rc = ledger_consistency_proof(l, old, size, proof, &len)))
            die("consistency proof", rc);
        double s1 = now_s();
        bad |= merkle_verify_consistency(old, size, old_root, root, (const uint8_t (*)[32])proof,
                                         len) != 0;
        t_ver += now_s() - s1;
        t_gen += s1 - s0;
        total_len += len;
    }
    printf("  consistency proof to %" PRIu64 ": %6.1f us to generate, %5.1f us to verify "
           "(mean of %d; %.1f hashes)%s\n", size, 1e6 * t_gen / reps, 1e6 * t_ver / reps, reps,
           (double)total_len / reps, bad ? "  SOME DID NOT VERIFY" : "");

    printf("  ratios to goals: batched appends %.1fx of 10,000/s; verification %.1fx of "
           "200,000 entries/s\n", batched / GOAL_BATCHED, verify / GOAL_VERIFY);
    ledger_close(l);
    crypto_key_free(key);
    rm_rf(dir);
    free(th);
    free(ga);
    return 0;
}
