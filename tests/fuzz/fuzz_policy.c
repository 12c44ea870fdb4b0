/* libFuzzer target: the policy and site-policy parsers on hostile YAML. A policy that
 * parses must hash, encode canonically, show no difference with itself (policy_diff) and
 * round-trip through site_check(); nothing may crash, leak or read out of bounds.
 *
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_policy.c \
 *         policies/{policy,site,schema,yaml_tree}.c codec/codec.c common/fileio.c \
 *         -lfyaml -lsodium -lzstd -lm -o fuzz_policy            (scripts/fuzz.sh does this) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "policies/site.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy p;
    struct policy_error err;
    int rc = policy_load_buffer("fuzz.yaml", data, size, &p, &err);
    if (rc) {
        if (rc > -1200 || rc < -1299 || err.code != rc || strncmp(err.message, "fuzz.yaml", 9))
            abort();
    } else {
        uint8_t h1[POLICY_HASH_LEN], h2[POLICY_HASH_LEN];
        char *canon = NULL;
        size_t len = 0;
        if (policy_hash(&p, h1) || policy_hash(&p, h2) || memcmp(h1, h2, sizeof h1))
            abort();
        if (policy_canonical(&p, &canon, &len) || strlen(canon) != len)
            abort();
        free(canon);
        size_t n_diff = 1;
        if (policy_diff(&p, &p, NULL, NULL, &n_diff) || n_diff != 0)
            abort();
        struct site_policy s;
        site_policy_init(&s);
        char why[256];
        if (site_check(&s, &p, why, sizeof why) != 0)
            abort();
    }
    struct site_policy s;
    if (site_load_buffer("site.yaml", data, size, &s, &err) == 0) {
        char why[256];
        if (rc == 0) {
            int c = site_check(&s, &p, why, sizeof why);
            if (c != 0 && c != POLICY_ERR_SITE_REFUSED)
                abort();
        }
        site_policy_free(&s);
    }
    if (rc == 0)
        policy_free(&p);
    return 0;
}
