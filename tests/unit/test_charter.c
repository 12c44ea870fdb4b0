/* The alliance charter (policies/charter.h): defaults, the roster file's charter
 * section and charter documents, every refusal with file:line:col, the canonical
 * text and its hash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "policies/charter.h"
#include "policies/roster.h"

#define KEY_A "6bq3vRk5s0FyQd0N1pJ8sX3m5k4bQm8o3y5tqv8Ww0Q="

static const char roster_head[] =
    "alliance: au-lac\n"
    "members:\n"
    "  - id: fpt\n"
    "    public_key: " KEY_A "\n";

static void defaults_when_absent(void **state)
{
    (void)state;
    struct roster r;
    struct policy_error err;
    assert_int_equal(roster_load_buffer("roster.yaml", roster_head, strlen(roster_head), &r,
                                        &err), 0);
    struct charter def;
    charter_default(&def);
    assert_true(charter_equal(&r.charter, &def));
    assert_true(def.roster_quorum == 0.5 && def.experiment_quorum == 0.5);
    assert_true(def.charter_quorum == 0.67);
    assert_int_equal(def.proposer_roles, ROSTER_ROLE_RESEARCHER);
    assert_int_equal(def.proposal_expiry_days, 7);
    assert_int_equal(def.concurrent_experiments, 1);
    roster_free(&r);
    struct charter c;
    assert_int_equal(charter_load_buffer("empty.yaml", "", 0, &c, &err), 0);
    assert_true(charter_equal(&c, &def));
}

static void roster_section_is_read(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof text, "%scharter:\n  quorum: {roster: 0.66, charter: 0.75}\n"
             "  proposers: [researcher, secretariat]\n  proposal_expiry_days: 3\n"
             "  concurrent_experiments: 1\n", roster_head);
    struct roster r;
    struct policy_error err;
    if (roster_load_buffer("roster.yaml", text, strlen(text), &r, &err) != 0)
        fail_msg("%s", err.message);
    assert_true(r.charter.roster_quorum == 0.66);
    assert_true(r.charter.experiment_quorum == 0.5);     /* not given: default */
    assert_true(r.charter.charter_quorum == 0.75);
    assert_int_equal(r.charter.proposer_roles, ROSTER_ROLE_RESEARCHER | ROSTER_ROLE_SECRETARIAT);
    assert_int_equal(r.charter.proposal_expiry_days, 3);
    /* roster_format keeps it */
    char *out;
    size_t len;
    assert_int_equal(roster_format(&r, &out, &len), 0);
    struct roster back;
    if (roster_load_buffer("formatted.yaml", out, len, &back, &err) != 0)
        fail_msg("%s\n%s", err.message, out);
    assert_true(charter_equal(&back.charter, &r.charter));
    free(out);
    roster_free(&back);
    roster_free(&r);
}

struct bad_case {
    const char *section;   /* after "charter:\n" */
    int code;
    const char *message;
};

static void bad_values_name_file_line_column(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        { "  quorum: {roster: 0}\n", POLICY_ERR_RANGE, "roster.yaml:6:20: charter.quorum.roster: expected a number in (0, 1], got 0" },
        { "  quorum: {experiments: 1.5}\n", POLICY_ERR_RANGE,
          "roster.yaml:6:25: charter.quorum.experiments: expected a number in (0, 1], got 1.5" },
        { "  quorum: {roster: 0.8}\n", POLICY_ERR_INVALID,
          "roster.yaml:5:1: charter.quorum.charter: the charter quorum 0.67 is below the roster "
          "quorum 0.8" },
        { "  quorum: {roster: 0.8, charter: 0.7}\n", POLICY_ERR_INVALID,
          "roster.yaml:6:34: charter.quorum.charter: the charter quorum 0.7 is below" },
        { "  proposers: []\n", POLICY_ERR_RANGE,
          "roster.yaml:6:14: charter.proposers: at least one role" },
        { "  proposers: [king]\n", POLICY_ERR_RANGE, "roster.yaml:6:15: charter.proposers:" },
        { "  proposal_expiry_days: 31\n", POLICY_ERR_RANGE,
          "roster.yaml:6:25: charter.proposal_expiry_days:" },
        { "  proposal_expiry_days: 0\n", POLICY_ERR_RANGE, "charter.proposal_expiry_days:" },
        { "  concurrent_experiments: 2\n", POLICY_ERR_RANGE,
          "roster.yaml:6:27: charter.concurrent_experiments: 2 experiments at once is not "
          "implemented yet" },
        { "  quorums: {roster: 0.5}\n", POLICY_ERR_UNKNOWN_KEY,
          "roster.yaml:6:3: charter.quorums: unknown key (did you mean \"quorum\"?)" },
        { "  quorum: {roster: half}\n", POLICY_ERR_TYPE, "charter.quorum.roster:" },
        { "  - 1\n", POLICY_ERR_TYPE, "charter: expected a mapping" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%scharter:\n%s", roster_head, cases[i].section);
        struct roster r;
        struct policy_error err;
        int rc = roster_load_buffer("roster.yaml", text, strlen(text), &r, &err);
        if (rc != cases[i].code || !strstr(err.message, cases[i].message))
            fail_msg("case %zu: rc %d (want %d), message '%s' (want '%s')", i, rc,
                     cases[i].code, err.message, cases[i].message);
        assert_null(r.members);
    }
    /* a charter document: the same keys at the top level */
    struct charter c;
    struct policy_error err;
    const char doc[] = "quorum:\n  charter: 0.4\n";
    assert_int_equal(charter_load_buffer("amend.yaml", doc, strlen(doc), &c, &err),
                     POLICY_ERR_INVALID);
    assert_non_null(strstr(err.message, "amend.yaml:2:12: quorum.charter: the charter quorum"));
    const char notyet[] = "concurrent_experiments: 3\n";
    assert_int_equal(charter_load_buffer("amend.yaml", notyet, strlen(notyet), &c, &err),
                     POLICY_ERR_RANGE);
    assert_non_null(strstr(err.message, "amend.yaml:1:25: concurrent_experiments: 3 "
                                        "experiments at once is not implemented yet"));
}

static void canonical_text_and_hash(void **state)
{
    (void)state;
    struct charter c;
    charter_default(&c);
    char *text;
    size_t len;
    assert_int_equal(charter_format(&c, &text, &len), 0);
    assert_string_equal(text, "# aulac charter v1\n"
                              "quorum:\n  roster: 0.5\n  experiments: 0.5\n  charter: 0.67\n"
                              "proposers: [researcher]\nproposal_expiry_days: 7\n"
                              "concurrent_experiments: 1\n");
    assert_int_equal(len, strlen(text));
    /* it reads back, and a differently written document of the same rules hashes alike */
    struct charter back;
    struct policy_error err;
    assert_int_equal(charter_load_buffer("c.yaml", text, len, &back, &err), 0);
    assert_true(charter_equal(&back, &c));
    const char other[] = "# the founders' charter\nconcurrent_experiments: 1\n"
                         "quorum: {charter: 0.670, experiments: 0.50}\n";
    assert_int_equal(charter_load_buffer("o.yaml", other, strlen(other), &back, &err), 0);
    uint8_t h1[32], h2[32];
    assert_int_equal(charter_hash(&c, h1), 0);
    assert_int_equal(charter_hash(&back, h2), 0);
    assert_memory_equal(h1, h2, 32);
    char hex[65];
    hex_encode(h1, 32, hex);
    /* GOVERNANCE.md quotes this hash of the default charter */
    assert_string_equal(hex, "ce9e89984e5df5f018fd0326ab594be02c2487700ebae8c92f23d3518c192a72");
    c.experiment_quorum = 0.6;
    assert_int_equal(charter_hash(&c, h2), 0);
    assert_memory_not_equal(h1, h2, 32);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_when_absent),
        cmocka_unit_test(roster_section_is_read),
        cmocka_unit_test(bad_values_name_file_line_column),
        cmocka_unit_test(canonical_text_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
