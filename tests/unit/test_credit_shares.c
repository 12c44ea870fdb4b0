/* credit/shares.h: totals over rounds (negative values count 0, an absent member adds
 * nothing), shares and the weighted credit worked by hand, all-zero measures, refused
 * entries that leave the totals alone, and the totals record (a byte vector, round
 * trips, every truncation refused). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "credit/evalset.h"
#include "credit/shares.h"

struct row {
    const char *member;
    double v[3];
};

static void scores_of(struct entry_contribution_scores *s, const char *exp, uint64_t round,
                      const char *const *measures, uint32_t n_measures, const struct row *rows,
                      uint32_t n, struct entry_member_score *buf)
{
    memset(s, 0, sizeof *s);
    snprintf(s->experiment, sizeof s->experiment, "%s", exp);
    s->round = round;
    s->n_measures = n_measures;
    for (uint32_t m = 0; m < n_measures; m++)
        snprintf(s->measures[m], sizeof s->measures[m], "%s", measures[m]);
    for (uint32_t i = 0; i < n; i++) {
        memset(&buf[i], 0, sizeof buf[i]);
        snprintf(buf[i].member, sizeof buf[i].member, "%s", rows[i].member);
        for (uint32_t m = 0; m < n_measures; m++)
            buf[i].values[m] = rows[i].v[m];
    }
    s->n = n;
    s->members = buf;
}

static const char *const two[] = { "tokens", "loo" };

/* Round 1: a (100 tokens, loo 0.3), b (300, -0.2); round 2: a (100, 0.1), c (200, 0.4).
 *   tokens: a 200, b 300, c 200 of 700      -> 2/7, 3/7, 2/7
 *   loo:    a 0.4, b 0 (negative), c 0.4     -> 1/2, 0, 1/2
 *   credit, weights tokens 1, loo 3: a = (2/7 + 3/2) / 4 = 25/56, b = (3/7) / 4 = 3/28,
 *   c = 25/56; they sum to 1. */
static void add_two_rounds(struct credit_totals *t)
{
    struct entry_member_score buf[2];
    struct entry_contribution_scores s;
    const struct row r1[] = { { "a", { 100, 0.3 } }, { "b", { 300, -0.2 } } };
    const struct row r2[] = { { "a", { 100, 0.1 } }, { "c", { 200, 0.4 } } };
    scores_of(&s, "demo-1234abcd", 1, two, 2, r1, 2, buf);
    assert_int_equal(credit_totals_add(t, &s), 0);
    scores_of(&s, "demo-1234abcd", 2, two, 2, r2, 2, buf);
    assert_int_equal(credit_totals_add(t, &s), 0);
}

static struct policy_contribution weights(double tokens, double loo)
{
    struct policy_contribution c;
    memset(&c, 0, sizeof c);
    c.measures = 1u << POLICY_MEASURE_TOKENS | 1u << POLICY_MEASURE_LOO;
    c.credit_weights[POLICY_MEASURE_TOKENS] = tokens;
    c.credit_weights[POLICY_MEASURE_LOO] = loo;
    return c;
}

static void shares_worked_by_hand(void **state)
{
    struct credit_totals t;
    credit_totals_init(&t);
    add_two_rounds(&t);
    assert_int_equal(t.rounds, 2);
    assert_int_equal(t.n, 3);
    struct policy_contribution c = weights(1, 3);
    struct entry_credits cr;
    assert_int_equal(credit_shares(&t, &c, &cr), 0);
    assert_string_equal(cr.experiment, "demo-1234abcd");
    assert_int_equal(cr.rounds, 2);
    assert_int_equal(cr.n_measures, 2);
    assert_string_equal(cr.measures[0], "tokens");
    assert_string_equal(cr.measures[1], "loo");
    assert_true(cr.weights[0] == 1 && cr.weights[1] == 3);
    assert_int_equal(cr.n, 3);
    assert_string_equal(cr.members[0].member, "a");
    assert_string_equal(cr.members[1].member, "b");
    assert_string_equal(cr.members[2].member, "c");
    assert_float_equal(cr.members[0].measure_share[0], 2.0 / 7, 1e-15);
    assert_float_equal(cr.members[1].measure_share[0], 3.0 / 7, 1e-15);
    assert_float_equal(cr.members[2].measure_share[0], 2.0 / 7, 1e-15);
    assert_float_equal(cr.members[0].measure_share[1], 0.5, 1e-15);
    assert_true(cr.members[1].measure_share[1] == 0);   /* negative counted as 0 */
    assert_float_equal(cr.members[2].measure_share[1], 0.5, 1e-15);
    assert_float_equal(cr.members[0].share, 25.0 / 56, 1e-15);
    assert_float_equal(cr.members[1].share, 3.0 / 28, 1e-15);
    assert_float_equal(cr.members[2].share, 25.0 / 56, 1e-15);
    assert_float_equal(cr.members[0].share + cr.members[1].share + cr.members[2].share, 1,
                       1e-15);
    assert_int_equal(cr.members[0].rounds, 2);
    assert_int_equal(cr.members[1].rounds, 1);   /* absent from round 2 */
    assert_int_equal(cr.members[2].rounds, 1);
    free(cr.members);
    credit_totals_free(&t);
}

/* A measure whose totals are all 0 (every value <= 0) gives 0 shares, not 0/0; with
 * every measure so, every credit is 0. */
static void all_zero_measures(void **state)
{
    struct credit_totals t;
    credit_totals_init(&t);
    struct entry_member_score buf[2];
    struct entry_contribution_scores s;
    const struct row r[] = { { "a", { 10, -1 } }, { "b", { 30, 0 } } };
    scores_of(&s, "demo", 1, two, 2, r, 2, buf);
    assert_int_equal(credit_totals_add(&t, &s), 0);
    struct policy_contribution c = weights(1, 1);
    struct entry_credits cr;
    assert_int_equal(credit_shares(&t, &c, &cr), 0);
    assert_true(cr.members[0].measure_share[1] == 0 && cr.members[1].measure_share[1] == 0);
    assert_float_equal(cr.members[0].share, 0.25 / 2, 1e-15);
    assert_float_equal(cr.members[1].share, 0.75 / 2, 1e-15);
    free(cr.members);
    credit_totals_free(&t);

    credit_totals_init(&t);
    const struct row z[] = { { "a", { 0, -1 } }, { "b", { 0, -2 } } };
    scores_of(&s, "demo", 1, two, 2, z, 2, buf);
    assert_int_equal(credit_totals_add(&t, &s), 0);
    assert_int_equal(credit_shares(&t, &c, &cr), 0);
    for (int i = 0; i < 2; i++) {
        assert_true(cr.members[i].share == 0);
        assert_true(cr.members[i].measure_share[0] == 0 && cr.members[i].measure_share[1] == 0);
    }
    free(cr.members);
    credit_totals_free(&t);

    /* No rounds at all: no members, nothing to share. */
    credit_totals_init(&t);
    assert_int_equal(credit_shares(&t, &c, &cr), 0);
    assert_int_equal(cr.n, 0);
    assert_null(cr.members);
}

static void refused_entries_leave_the_totals_alone(void **state)
{
    struct credit_totals t;
    credit_totals_init(&t);
    add_two_rounds(&t);
    uint8_t *before, *after;
    size_t lb, la;
    assert_int_equal(credit_totals_encode(&t, &before, &lb), 0);

    struct entry_member_score buf[2];
    struct entry_contribution_scores s;
    const char *const swapped[] = { "loo", "tokens" };
    const struct row r[] = { { "a", { 1, 1 } }, { "d", { 1, 1 } } };
    scores_of(&s, "demo-1234abcd", 3, swapped, 2, r, 2, buf);
    assert_int_equal(credit_totals_add(&t, &s), CREDIT_ERR_FORMAT);
    scores_of(&s, "other", 3, two, 2, r, 2, buf);
    assert_int_equal(credit_totals_add(&t, &s), CREDIT_ERR_FORMAT);
    const struct row unsorted[] = { { "d", { 1, 1 } }, { "a", { 1, 1 } } };
    scores_of(&s, "demo-1234abcd", 3, two, 2, unsorted, 2, buf);
    assert_int_equal(credit_totals_add(&t, &s), CREDIT_ERR_FORMAT);
    const struct row nan[] = { { "a", { 1, 1 } }, { "d", { NAN, 1 } } };
    scores_of(&s, "demo-1234abcd", 3, two, 2, nan, 2, buf);
    assert_int_equal(credit_totals_add(&t, &s), CREDIT_ERR_FORMAT);

    assert_int_equal(credit_totals_encode(&t, &after, &la), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(after, before, lb);
    free(before);
    free(after);
    credit_totals_free(&t);
}

/* credit/README.md, "The totals record": experiment "demo", measure tokens, one round,
 * member a with 100. */
static const char vector_hex[] =
    "41554354" "00000001" "0004" "64656d6f" "00000001" "0006" "746f6b656e73"
    "0000000000000001" "00000001" "0001" "61" "0000000000000001" "4059000000000000";

static void totals_record_vector_and_round_trip(void **state)
{
    struct credit_totals t, d;
    credit_totals_init(&t);
    struct entry_member_score buf[1];
    struct entry_contribution_scores s;
    const char *const tok[] = { "tokens" };
    const struct row r[] = { { "a", { 100 } } };
    scores_of(&s, "demo", 1, tok, 1, r, 1, buf);
    assert_int_equal(credit_totals_add(&t, &s), 0);
    uint8_t *b;
    size_t len;
    assert_int_equal(credit_totals_encode(&t, &b, &len), 0);
    char hex[256];
    assert_true(len * 2 < sizeof hex);
    hex_encode(b, len, hex);
    assert_string_equal(hex, vector_hex);
    free(b);
    credit_totals_free(&t);

    /* Three members, two measures: decode(encode(t)) encodes to the same bytes. */
    credit_totals_init(&t);
    add_two_rounds(&t);
    assert_int_equal(credit_totals_encode(&t, &b, &len), 0);
    assert_int_equal(credit_totals_decode(&d, b, len), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.rounds, 2);
    assert_string_equal(d.experiment, "demo-1234abcd");
    uint8_t *b2;
    size_t len2;
    assert_int_equal(credit_totals_encode(&d, &b2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(b2, b, len);
    free(b2);
    /* The decoded totals go on taking rounds. */
    struct entry_member_score more[2];
    const struct row r3[] = { { "b", { 1, 1 } }, { "d", { 2, 2 } } };
    scores_of(&s, "demo-1234abcd", 3, two, 2, r3, 2, more);
    assert_int_equal(credit_totals_add(&d, &s), 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.rounds, 3);
    credit_totals_free(&d);

    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(credit_totals_decode(&d, b, cut), CREDIT_ERR_FORMAT);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    assert_int_equal(credit_totals_decode(&d, longer, len + 1), CREDIT_ERR_FORMAT);
    memcpy(longer, b, len);
    longer[0] = 'X';
    assert_int_equal(credit_totals_decode(&d, longer, len), CREDIT_ERR_FORMAT);
    free(longer);
    free(b);
    credit_totals_free(&t);

    /* Empty totals round trip too. */
    credit_totals_init(&t);
    assert_int_equal(credit_totals_encode(&t, &b, &len), 0);
    assert_int_equal(credit_totals_decode(&d, b, len), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(d.n_measures, 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shares_worked_by_hand),
        cmocka_unit_test(all_zero_measures),
        cmocka_unit_test(refused_entries_leave_the_totals_alone),
        cmocka_unit_test(totals_record_vector_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
