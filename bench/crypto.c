/* bench/crypto: what trust costs the coordinator. Prints figures and their ratio to
 * the goal of issue 3; asserts nothing.
 *
 *   bench/crypto [--members M] [--params N] [--k K] [--block B] [--seconds S]
 *
 *   signatures/s, verifications/s   Ed25519 over a 32-byte digest (libsodium)
 *   request sign / verify           the aulac/request/v1 statement of one RPC
 *   digest GB/s                     BLAKE2b-256 over 64 MiB (the payload hash)
 *   share of a round on trust       per update, the coordinator hashes the payload,
 *                                   verifies the request and the envelope signature,
 *                                   then decodes the payload into the accumulator
 *                                   (codec_decode_accumulate). For M members of a
 *                                   GPT-2 124M model (N = 124,439,808) at 1% top-k
 *                                   int8 + zstd:  trust / (trust + decode)  goal < 1%.
 *
 * A round is more than its updates: closing it takes the outer step, the hashes of
 * the aggregate and of the new model, the checkpoint (safetensors, fsync) and the
 * outer optimizer's state, all on the same coordinator. The bench runs those real
 * functions too and prints the share both ways: of the per-update work alone, and of
 * the whole round (the measure the goal names). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec.h"
#include "crypto/envelope.h"
#include "crypto/keys.h"
#include "crypto/request.h"
#include "model/gpt2.h"
#include "model/model_hash.h"
#include "common/fileio.h"
#include "aggregate/outer.h"

#define GOAL_SHARE 0.01

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs fn until seconds have passed (at least once); returns calls per second. */
#define RATE(seconds, body)                                                \
    ({                                                                     \
        double t0_ = now_s(), t_;                                          \
        long n_ = 0;                                                       \
        do {                                                               \
            for (int r_ = 0; r_ < 64; r_++) {                              \
                body;                                                      \
            }                                                              \
            n_ += 64;                                                      \
            t_ = now_s() - t0_;                                            \
        } while (t_ < (seconds));                                          \
        (double)n_ / t_;                                                   \
    })

static void usage(void)
{
    fputs("usage: bench/crypto [--members M] [--params N] [--k K] [--block B] [--seconds S]\n"
          "  defaults: 8 members, GPT-2 124M (124439808 parameters), block 4096, k 41 (1%),\n"
          "  1 s per primitive\n", stderr);
}

int main(int argc, char **argv)
{
    int members = 8;
    size_t n = 0;
    unsigned block = 4096, k = 41;
    double seconds = 1.0;
    static const struct option lo[] = {
        { "members", required_argument, 0, 'm' }, { "params", required_argument, 0, 'n' },
        { "k", required_argument, 0, 'k' }, { "block", required_argument, 0, 'b' },
        { "seconds", required_argument, 0, 's' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': members = atoi(optarg); break;
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'k': k = (unsigned)atoi(optarg); break;
        case 'b': block = (unsigned)atoi(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'h': usage(); return 0;
        default: usage(); return 2;
        }
    }
    if (members < 1 || seconds <= 0 || block == 0 || k == 0) {
        usage();
        return 2;
    }
    struct gpt2_config cfg = { .vocab_size = 50257, .max_seq_len = 1024, .n_layer = 12,
                               .n_head = 12, .n_embd = 768 };
    if (n == 0)
        n = gpt2_num_params(&cfg);
    if (crypto_init() != 0)
        return 1;
    printf("bench/crypto: libsodium %s, %d members, %zu parameters, block %u, k %u (%.2f%%)\n\n",
           sodium_version_string(), members, n, block, k, 100.0 * k / block);

    /* --- primitives ------------------------------------------------------------- */
    uint8_t seed[32] = { 1 };
    struct crypto_key *key;
    if (crypto_key_from_seed("fpt", seed, &key) != 0)
        return 1;
    struct crypto_public_key pk;
    crypto_key_public(key, &pk);
    uint8_t digest[32] = { 7 }, sig[64];
    volatile int sink = 0;
    double sign_rate = RATE(seconds, {
        digest[0]++;
        sink += crypto_signature_create(key, digest, 32, sig);
    });
    (void)crypto_signature_create(key, digest, 32, sig);
    double verify_rate = RATE(seconds, { sink += crypto_signature_verify(pk.key, digest, 32, sig); });
    if (crypto_signature_verify(pk.key, digest, 32, sig) != 0)
        printf("  (the signature under test does not verify!)\n");
    printf("Ed25519 signatures/s          %12.0f   (%.1f us each)\n", sign_rate, 1e6 / sign_rate);
    printf("Ed25519 verifications/s       %12.0f   (%.1f us each)\n", verify_rate,
           1e6 / verify_rate);

    uint8_t body[256];
    randombytes_buf(body, sizeof body);
    struct request_statement rs;
    double req_sign = RATE(seconds, {
        sink += request_sign_new(key, "/aulac.v1.Federation/SubmitUpdate", body, sizeof body,
                                 1767225600000, &rs, sig);
    });
    double req_verify = RATE(seconds, { sink += request_verify(&rs, pk.key, sig); });
    printf("request sign / verify         %12.0f / %.0f per s (statement + body digest)\n",
           req_sign, req_verify);

    size_t big = 64u << 20;
    uint8_t *buf = malloc(big);
    if (!buf)
        return 1;
    randombytes_buf(buf, big);
    uint8_t h[32];
    double t0 = now_s();
    int reps = 0;
    do {
        crypto_blake2b256(buf, big, h);
        reps++;
    } while (now_s() - t0 < seconds);
    double gbs = (double)big * reps / (now_s() - t0) / 1e9;
    printf("BLAKE2b-256 digest            %12.2f GB/s\n\n", gbs);
    free(buf);

    /* --- one round's updates ----------------------------------------------------- */
    float *delta = malloc(n * sizeof(float));
    float *acc = calloc(n, sizeof(float));
    if (!delta || !acc) {
        fprintf(stderr, "bench/crypto: cannot allocate 2 x %zu floats\n", n);
        return 1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {   /* a heavy-tailed pseudo-gradient */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
        delta[i] = (float)(1e-3 * tan(M_PI * (u - 0.5)) * 0.05);
    }
    struct codec_params cp;
    codec_params_default(&cp);
    cp.block_size = block;
    cp.k_per_block = k;
    cp.error_feedback = 0;
    uint8_t *payload;
    size_t len;
    t0 = now_s();
    if (codec_encode(delta, n, &cp, NULL, &payload, &len) != 0) {
        fprintf(stderr, "bench/crypto: codec_encode failed\n");
        return 1;
    }
    double encode_s = now_s() - t0;
    printf("a member's update: %.2f MB compressed (%.1fx smaller than fp32), encoded in %.2f s "
           "by the worker\n", (double)len / 1e6, (double)n * 4 / (double)len, encode_s);

    struct update_envelope env = { 0 };
    strcpy(env.experiment, "gpt2-124m");
    env.round = 7;
    strcpy(env.member, "fpt");
    crypto_blake2b256(payload, len, env.payload_hash);
    env.payload_bytes = len;
    env.samples = 2048;
    env.tokens = 2048 * 1024;
    env.codec = (struct envelope_codec){ cp.format_version, cp.block_size, cp.k_per_block,
                                         (uint32_t)cp.quant, cp.zstd_level, 0 };
    uint8_t env_sig[64], req_sig[64];
    (void)envelope_sign(&env, key, env_sig);
    uint8_t header[512];
    randombytes_buf(header, sizeof header);   /* the packed first message, ~ this size */
    (void)request_sign_new(key, "/aulac.v1.Federation/SubmitUpdate", header, sizeof header,
                           1767225600000, &rs, req_sig);

    /* the coordinator's accumulator is in use all round: touch it first */
    memset(acc, 0, n * sizeof(float));
    double trust = 0, sigs = 0, decode = 0;
    char why[200];
    for (int m = 0; m < members; m++) {
        t0 = now_s();
        uint8_t got[32];
        struct request_statement check = rs;
        request_body_digest(header, sizeof header, check.body_digest);
        int bad = request_verify(&check, pk.key, req_sig) != 0;
        bad |= envelope_verify(&env, pk.key, env_sig) != 0;
        double ts = now_s();
        crypto_blake2b256(payload, len, got);
        bad |= !crypto_equal(got, env.payload_hash, 32);
        double t1 = now_s();
        sigs += ts - t0;
        int rc = codec_decode_accumulate(payload, len, n, 1.0f / members, acc, why, sizeof why);
        double t2 = now_s();
        if (bad || rc != 0) {
            fprintf(stderr, "bench/crypto: the update did not check or decode: %s\n",
                    rc ? why : "signature or hash");
            return 1;
        }
        trust += t1 - t0;
        decode += t2 - t1;
    }
    /* Closing the round, as coordinator/experiment.c does it. */
    double close_s = -1;
    float *params = malloc(n * sizeof(float));
    struct outer_opt outer;
    struct gpt2_config gcfg = cfg;
    int same_shape = gpt2_num_params(&gcfg) == n;
    char dir[] = "/tmp/aulac-bench-crypto-XXXXXX";
    if (params && same_shape && mkdtemp(dir) &&
        outer_init(&outer, OUTER_NESTEROV, n, 0.7f, 0.9f) == 0) {
        memcpy(params, delta, n * sizeof(float));
        t0 = now_s();
        for (size_t i = 0; i < n; i++)
            acc[i] *= 1.0f;                       /* the weight normalisation pass */
        outer_step(&outer, params, acc);
        model_hash(acc, n, h);                    /* the aggregate's hash */
        model_hash(params, n, h);                 /* the new model's hash */
        char path[128];
        snprintf(path, sizeof path, "%s/model", dir);
        int ok = gpt2_save(path, &gcfg, params) == 0;
        uint8_t *ost;
        size_t ost_len;
        snprintf(path, sizeof path, "%s/outer.bin", dir);
        ok &= outer_state_encode(&outer, &ost, &ost_len) == 0 &&
              file_write_atomic(path, ost, ost_len, 0644) == 0;
        close_s = now_s() - t0;
        if (ok)
            free(ost);
        else
            close_s = -1;
        outer_free(&outer);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench/crypto: could not remove %s\n", dir);
    }
    free(params);
    double share = trust / (trust + decode);
    printf("per update: trust %.2f ms (signatures %.2f ms, payload hash %.2f ms), decode + "
           "accumulate %.1f ms\n", 1e3 * trust / members, 1e3 * sigs / members,
           1e3 * (trust - sigs) / members, 1e3 * decode / members);
    printf("round of %d updates: trust %.1f ms of %.1f ms coordinator time\n", members,
           1e3 * trust, 1e3 * (trust + decode));
    printf("\nshare of the per-update work spent on trust   %.3f%%\n", 100 * share);
    printf("  of which signatures (request + envelope): %.3f%%; the payload hash (BLAKE2b-256\n"
           "  of every compressed byte, ARCHITECTURE §3) is the rest\n",
           100 * sigs / (trust + decode));
    if (close_s > 0) {
        double whole = trust / (trust + decode + close_s);
        printf("closing the round (outer step, 2 model hashes, checkpoint + outer state written "
               "and fsynced): %.0f ms\n", 1e3 * close_s);
        printf("share of the round's coordinator time spent on trust   %.3f%%   goal < %.0f%%   "
               "(%.2fx the goal: %s)\n", 100 * whole, 100 * GOAL_SHARE, whole / GOAL_SHARE,
               whole < GOAL_SHARE ? "met" : "missed");
    } else {
        printf("(the round close was not measured: --params must be the 124M GPT-2 size)\n");
    }
    (void)sink;
    free(payload);
    free(delta);
    free(acc);
    crypto_key_free(key);
    return 0;
}
