/* bench/robust_memory: peak memory of every aggregation rule (aggregate/robust.h) on a
 * round of M members' payloads of a policy's model and uplink, against the model's fp32
 * bytes (issue 13's goal: <= 3x, as for fedavg).
 *
 *   build/bench/robust_memory [--policy FILE] [--members M] [--params N] [--round R]
 *                             [--senders]
 *
 * Defaults: policies/examples/gpt2-124m-diloco.yaml (GPT-2 124M, uplink top-k 1 % int8
 * zstd 3 after its 2 dense warm-up rounds), 16 members, round 3 (the first sparse one).
 * --params N overrides the model's size (a quick run); --senders averages as
 * compression.uplink.average: senders would (the support buffer is then touched).
 *
 * The payloads are made one member at a time (one dense update of uniform noise with a
 * per-member scale, encoded, freed), so the parent holds M payloads and nothing dense.
 * Each rule then runs in a child process (fork): a child's ru_maxrss starts at the
 * parent's resident set at the fork (the payloads, as a coordinator holds them) and
 * peaks with the rule's own buffers: avg and scratch (2 x model) plus what the rule reads
 * with. Printed: the parent's RSS with the payloads, each rule's peak RSS, its ratio to
 * the model's fp32 bytes, and its time. */
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aggregate/robust.h"
#include "codec/codec.h"
#include "policies/plan.h"
#include "policies/policy.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* One member's update: uniform noise in [-s, s] (xorshift), s varying by member. */
static void fill(float *d, size_t n, uint64_t seed, float s)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d[i] = s * ((float)(int32_t)(x >> 32) * 0x1p-31f);
    }
}

struct rule_run {
    const char *name;
    enum policy_agg_rule rule;
    int dp;
};

int main(int argc, char **argv)
{
    const char *path = "policies/examples/gpt2-124m-diloco.yaml";
    size_t members = 16, params = 0;
    uint64_t round = 3;
    int senders = 0;
    static const struct option opts[] = {
        {"policy", required_argument, 0, 'p'}, {"members", required_argument, 0, 'm'},
        {"params", required_argument, 0, 'n'}, {"round", required_argument, 0, 'r'},
        {"senders", no_argument, 0, 's'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:m:n:r:s", opts, NULL)) != -1) {
        switch (c) {
        case 'p': path = optarg; break;
        case 'm': members = strtoull(optarg, NULL, 10); break;
        case 'n': params = strtoull(optarg, NULL, 10); break;
        case 'r': round = strtoull(optarg, NULL, 10); break;
        case 's': senders = 1; break;
        default:
            fprintf(stderr, "usage: robust_memory [--policy FILE] [--members M] [--params N] "
                            "[--round R] [--senders]\n");
            return 2;
        }
    }
    if (members < 1 || members > 1000) {
        fprintf(stderr, "robust_memory: --members must be in 1..1000\n");
        return 2;
    }
    struct policy p;
    struct policy_error err;
    if (policy_load_file(path, &p, &err) != 0) {
        fprintf(stderr, "robust_memory: %s\n", err.message);
        return 1;
    }
    struct policy_round_plan plan;
    char why[512];
    if (policy_round_plan(&p, round, &plan, why, sizeof why) != 0) {
        fprintf(stderr, "robust_memory: %s\n", why);
        return 1;
    }
    if (senders)
        plan.average = POLICY_AVERAGE_SENDERS;
    const size_t n = params ? params : plan.n_params;
    const double model_mb = 4.0 * (double)n / 1e6;
    printf("policy %s, round %" PRIu64 ": %zu parameters (fp32 %.1f MB), %zu members, uplink "
           "block %u k %u %s zstd %d, average %s\n",
           path, round, n, model_mb, members, plan.uplink.block_size, plan.uplink.k_per_block,
           codec_quant_name(plan.uplink.quant), plan.uplink.zstd_level,
           plan.average == POLICY_AVERAGE_SENDERS ? "senders" : "members");

    /* The payloads, one member at a time. */
    struct agg_update *u = calloc(members, sizeof *u);
    float *d = malloc(n * sizeof *d);
    if (!u || !d) {
        fprintf(stderr, "robust_memory: out of memory\n");
        return 1;
    }
    struct codec_params cp = plan.uplink;
    cp.error_feedback = 0;
    size_t bytes = 0;
    double t0 = now();
    for (size_t i = 0; i < members; i++) {
        fill(d, n, i + 1, 0.01f * (float)(1 + i % 4));
        uint8_t *pl;
        size_t len;
        int rc = codec_encode(d, n, &cp, NULL, &pl, &len);
        if (rc) {
            fprintf(stderr, "robust_memory: encode: %s\n", codec_strerror(rc));
            return 1;
        }
        snprintf(u[i].member, sizeof u[i].member, "member-%02zu", i);
        u[i].payload = pl;
        u[i].len = len;
        u[i].tokens = 1000000 + 1000 * i;
        u[i].weight = agg_weight(p.aggregation.weighting, u[i].tokens, 0);
        bytes += len;
    }
    free(d);
    printf("payloads: %.1f MB in all (%.2f MB each), made in %.1f s; parent peak RSS while "
           "making them %.1f MB, RSS now %.1f MB\n\n",
           (double)bytes / 1e6, (double)bytes / 1e6 / (double)members, now() - t0,
           (double)maxrss_kib() / 1024 * 1.048576, (double)rss_kib() / 1024 * 1.048576);

    const size_t f = (members - 3) / 2 < 3 ? (members - 3) / 2 : 3;
    static const struct rule_run runs[] = {
        {"fedavg", POLICY_AGG_FEDAVG, 0},
        {"clip", POLICY_AGG_CLIP, 0},
        {"trimmed_mean", POLICY_AGG_TRIMMED_MEAN, 0},
        {"median", POLICY_AGG_MEDIAN, 0},
        {"multi_krum", POLICY_AGG_MULTI_KRUM, 0},
        {"fedavg+dp", POLICY_AGG_FEDAVG, 1},
    };
    printf("%-14s %12s %10s %9s   %s\n", "rule", "peak RSS MB", "x fp32", "time s", "note");
    for (size_t e = 0; e < sizeof runs / sizeof runs[0]; e++) {
        if ((runs[e].rule == POLICY_AGG_MULTI_KRUM && members < 5) || (runs[e].dp && senders))
            continue;       /* DP requires average: members */
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            struct policy q = p;
            q.aggregation.rule = runs[e].rule;
            q.aggregation.norm_bound = 1.0;
            q.aggregation.trim = 0.1;
            q.aggregation.byzantine = (uint32_t)f;
            q.aggregation.select = 0;
            if (runs[e].dp) {
                q.aggregation.weighting = POLICY_WEIGHT_UNIFORM;
                q.privacy.enabled = 1;
                q.privacy.clip = 1.0;
                q.privacy.noise_multiplier = 1.0;
                q.privacy.delta = 1e-5;
            }
            float *avg = malloc(n * sizeof *avg), *scratch = malloc(n * sizeof *scratch);
            struct agg_member_stat *st = calloc(members, sizeof *st);
            if (!avg || !scratch || !st)
                _exit(3);
            double t = now();
            int rc = agg_combine(&q, &plan, n, u, members, NULL, avg, scratch, st, why,
                                 sizeof why);
            uint8_t dp_seed[AGG_DP_SEED_BYTES];
            randombytes_buf(dp_seed, sizeof dp_seed);
            if (!rc && runs[e].dp)
                rc = agg_dp_noise(&q, &plan, members, dp_seed, 1, avg, n);
            t = now() - t;
            if (rc) {
                fprintf(stderr, "%s: %s\n", runs[e].name, why);
                _exit(1);
            }
            size_t used = 0, clipped = 0;
            for (size_t i = 0; i < members; i++) {
                used += (size_t)st[i].used;
                clipped += st[i].scale < 1.0f;
            }
            double mb = (double)maxrss_kib() * 1024 / 1e6;
            char note[96] = "";
            if (runs[e].rule == POLICY_AGG_MULTI_KRUM)
                snprintf(note, sizeof note, "f %zu, %zu selected", f, used);
            else if (runs[e].rule == POLICY_AGG_CLIP || runs[e].dp)
                snprintf(note, sizeof note, "%zu of %zu clipped", clipped, members);
            printf("%-14s %12.1f %10.2f %9.1f   %s\n", runs[e].name, mb, mb / model_mb, t, note);
            fflush(stdout);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "robust_memory: rule %s failed\n", runs[e].name);
            return 1;
        }
    }
    for (size_t i = 0; i < members; i++)
        free((void *)u[i].payload);
    free(u);
    policy_free(&p);
    return 0;
}
