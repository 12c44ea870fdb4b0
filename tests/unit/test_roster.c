#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/roster.h"

#define KEY_A "6bq3vRk5s0FyQd0N1pJ8sX3m5k4bQm8o3y5tqv8Ww0Q="
#define KEY_B "Z3q9b1l2m5n8p0r4s6t8v0x2z4B6D8F0H2J4L6N8P0Q="

static const char good[] =
    "alliance: au-lac\n"
    "members:\n"
    "  - id: fpt\n"
    "    organization: FPT Corporation\n"
    "    roles: [member, researcher]\n"
    "    public_key: " KEY_A "\n"
    "  - id: hust\n"
    "    public_key: " KEY_B "\n";

static void parses_members_roles_and_defaults(void **state)
{
    struct roster r;
    struct policy_error err;
    assert_int_equal(roster_load_buffer("roster.yaml", good, strlen(good), &r, &err), 0);
    assert_string_equal(r.alliance, "au-lac");
    assert_int_equal(r.n_members, 2);
    const struct roster_member *f = roster_find(&r, "fpt");
    assert_non_null(f);
    assert_string_equal(f->organization, "FPT Corporation");
    assert_int_equal(f->roles, ROSTER_ROLE_MEMBER | ROSTER_ROLE_RESEARCHER);
    const struct roster_member *h = roster_find(&r, "hust");
    assert_int_equal(h->roles, ROSTER_ROLE_MEMBER);          /* default role */
    assert_string_equal(h->organization, "hust");            /* default organization */
    assert_null(roster_find(&r, "vnpt"));
    char roles[40];
    roster_roles_format(f->roles, roles, sizeof roles);
    assert_string_equal(roles, "member,researcher");
    roster_free(&r);
}

struct bad_case {
    const char *yaml;
    int code;
    const char *message;   /* substring of err.message */
};

static void bad_rosters_name_file_line_column(void **state)
{
    static const struct bad_case cases[] = {
        { "alliance: x\nmembers: []\n", POLICY_ERR_TYPE, "roster.yaml:2:10: members: expected a non-empty list" },
        { "alliance: x\n", POLICY_ERR_MISSING, "members: expected a non-empty list" },
        { "alliance: x\nmembers:\n  - id: Bad!\n    public_key: " KEY_A "\n", POLICY_ERR_TYPE,
          "roster.yaml:3:9: members[0].id: expected an id" },
        { "members:\n  - id: a\n    public_key: nope\n", POLICY_ERR_TYPE,
          "roster.yaml:3:17: members[0].public_key: expected the base64" },
        { "members:\n  - id: a\n    public_key: " KEY_A "\n    roles: [king]\n", POLICY_ERR_RANGE,
          "members[0].roles: unknown role \"king\"" },
        { "members:\n  - id: a\n    public_key: " KEY_A "\n    colour: red\n", POLICY_ERR_UNKNOWN_KEY,
          "roster.yaml:4:5: members[0].colour: unknown key" },
        { "members:\n  - id: a\n    organization: A\n", POLICY_ERR_MISSING,
          "members[0]: required key 'public_key' is missing" },
        { "members:\n  - id: a\n    public_key: " KEY_A "\n  - id: a\n    public_key: " KEY_B "\n",
          POLICY_ERR_DUPLICATE, "member 'a' has the same id as member 'a'" },
        { "members:\n  - id: a\n    public_key: " KEY_A "\n  - id: b\n    public_key: " KEY_A "\n",
          POLICY_ERR_DUPLICATE, "member 'b' has the same public key as member 'a'" },
        { "members: [\n", POLICY_ERR_SYNTAX, "roster.yaml:" },
        { "surprise: 1\n", POLICY_ERR_UNKNOWN_KEY, "roster.yaml:1:1: surprise: unknown key" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct roster r;
        struct policy_error err;
        int rc = roster_load_buffer("roster.yaml", cases[i].yaml, strlen(cases[i].yaml), &r, &err);
        if (rc != cases[i].code || !strstr(err.message, cases[i].message))
            fail_msg("case %zu: rc %d (want %d), message '%s' (want '%s')", i, rc, cases[i].code,
                     err.message, cases[i].message);
        assert_int_equal(r.n_members, 0);
        assert_null(r.members);
    }
}

static void missing_file_is_an_io_error(void **state)
{
    struct roster r;
    struct policy_error err;
    assert_int_equal(roster_load_file("/nonexistent/roster.yaml", &r, &err), POLICY_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/roster.yaml"));
}

static void format_reads_back_and_add_refuses_duplicates(void **state)
{
    struct roster r;
    struct policy_error err;
    assert_int_equal(roster_load_buffer("roster.yaml", good, strlen(good), &r, &err), 0);
    struct roster_member m = { .id = "vnpt", .roles = ROSTER_ROLE_SECRETARIAT };
    snprintf(m.organization, sizeof m.organization, "VNPT \"Group\" \\ Hà Nội");
    memset(m.public_key, 7, 32);
    char why[200];
    assert_int_equal(roster_add(&r, &m, why, sizeof why), 0);
    assert_int_equal(roster_add(&r, &m, why, sizeof why), POLICY_ERR_DUPLICATE);
    assert_non_null(strstr(why, "same id"));
    struct roster_member same_key = m;
    snprintf(same_key.id, sizeof same_key.id, "other");
    assert_int_equal(roster_add(&r, &same_key, why, sizeof why), POLICY_ERR_DUPLICATE);
    assert_non_null(strstr(why, "same public key"));

    char *text;
    size_t len;
    assert_int_equal(roster_format(&r, &text, &len), 0);
    struct roster back;
    if (roster_load_buffer("formatted.yaml", text, len, &back, &err) != 0)
        fail_msg("%s\n%s", err.message, text);
    assert_string_equal(back.alliance, r.alliance);
    assert_int_equal(back.n_members, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(back.members[i].id, r.members[i].id);
        assert_string_equal(back.members[i].organization, r.members[i].organization);
        assert_int_equal(back.members[i].roles, r.members[i].roles);
        assert_memory_equal(back.members[i].public_key, r.members[i].public_key, 32);
    }
    free(text);
    roster_free(&back);
    roster_free(&r);

    uint32_t roles;
    assert_int_equal(roster_roles_parse("member,secretariat", &roles), 0);
    assert_int_equal(roles, ROSTER_ROLE_MEMBER | ROSTER_ROLE_SECRETARIAT);
    assert_int_equal(roster_roles_parse("member,,", &roles), -1);
    assert_int_equal(roster_roles_parse("", &roles), -1);
    assert_int_equal(roster_roles_parse("admin", &roles), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_members_roles_and_defaults),
        cmocka_unit_test(bad_rosters_name_file_line_column),
        cmocka_unit_test(missing_file_is_an_io_error),
        cmocka_unit_test(format_reads_back_and_add_refuses_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
