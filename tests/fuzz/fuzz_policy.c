/* libFuzzer target: the policy and site-policy parsers on hostile YAML. A policy that
 * parses must hash, encode canonically, show no difference with itself (policy_diff) and
 * round-trip through site_check() (refused by a builtin site only when it needs a plug-in
 * trainer); nothing may crash, leak or read out of bounds.
 * The every-error checks (policy_check_buffer, site_policy_check_buffer) must agree with
 * the loaders: valid exactly when they load, their first error the loader's, every error
 * in the range and named after the file, at most POLICY_ERRORS_MAX kept in file order.
 *
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_policy.c \
 *         policies/{policy,site,schema,yaml_tree}.c privacy/rdp.c codec/codec.c common/fileio.c \
 *         -lfyaml -lsodium -lzstd -lm -o fuzz_policy            (scripts/fuzz.sh does this) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "policies/site.h"

static struct policy_errors all;

/* all agrees with what a loader returned (rc, err). */
static void check_all(int all_rc, int rc, const struct policy_error *err, const char *file)
{
    if (all_rc != rc || (rc == 0) != (all.total == 0) || all.n > POLICY_ERRORS_MAX ||
        all.n > all.total || (all.total <= POLICY_ERRORS_MAX && all.n != all.total) ||
        (all.total > POLICY_ERRORS_MAX && all.n != POLICY_ERRORS_MAX))
        abort();
    if (rc && (all.item[0].code != err->code || strcmp(all.item[0].message, err->message)))
        abort();
    for (size_t i = 0; i < all.n; i++) {
        const struct policy_error *e = &all.item[i];
        if (e->code > -1200 || e->code < -1299 || strncmp(e->message, file, strlen(file)))
            abort();
        if (i && (e[-1].line > e->line || (e[-1].line == e->line && e[-1].column > e->column)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy p;
    struct policy_error err;
    int rc = policy_load_buffer("fuzz.yaml", data, size, &p, &err);
    check_all(policy_check_buffer("fuzz.yaml", data, size, NULL, &all), rc, &err, "fuzz.yaml");
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
        /* the allow-everything site trains with the built-in trainer: it takes every
         * policy but those that need a plug-in (family external, a tokenizer) */
        struct site_policy s;
        site_policy_init(&s);
        char why[256];
        int needs_plugin = p.model.family != POLICY_FAMILY_GPT2 || p.model.tokenizer.present;
        if (site_check(&s, &p, why, sizeof why) != (needs_plugin ? POLICY_ERR_SITE_REFUSED : 0))
            abort();
    }
    struct site_policy s;
    int site_rc = site_load_buffer("site.yaml", data, size, &s, &err);
    check_all(site_policy_check_buffer("site.yaml", data, size, NULL, &all), site_rc, &err,
              "site.yaml");
    if (site_rc == 0) {
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
