/* The round close of a real in-process coordinator under the policy's aggregation rule
 * and privacy section (coordinator/round.h, aggregate/robust.h, privacy/rdp.h):
 *   - the aggregate round_closed records is agg_combine's under the rule (clip, median),
 *     not fedavg's; clip scales an update above norm_bound and refuses one above
 *     norm_cap; fedavg refuses above norm_bound;
 *   - with privacy on, each round_closed carries the epsilon spent so far
 *     (rdp_epsilon(1, z, round, delta)) and the model is the noised one; before a round
 *     would pass privacy.target_epsilon the experiment finishes with the ledger reason
 *     "privacy budget: round N would spend epsilon X > Y", also before round 1;
 *   - round_min_updates: min_members and the rule's own minimum (multi_krum 2f + 3).
 * Updates are hand-made deltas, signed and submitted over loopback like a worker's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "aggregate/robust.h"
#include "model/model_hash.h"
#include "privacy/rdp.h"
#include "trust_fixture.h"

enum { N_MEMBERS = 3 };    /* fpt, vnpt, hust: the roster */

/* fx_policy with its aggregation line replaced and extra (a top-level section, or "")
 * appended, started. */
static void start_with(struct fx *f, const char *aggregation, const char *extra)
{
    fx_prepare(f);
    const char *from = "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n";
    const char *at = strstr(fx_policy, from);
    assert_non_null(at);
    char text[sizeof fx_policy + 1024];
    snprintf(text, sizeof text, "%.*saggregation: %s\n%s%s", (int)(at - fx_policy), fx_policy,
             aggregation, at + strlen(from), extra);
    fx_write(f->paths[3], text, 0644);
    fx_start(f);
}

/* Member m's delta: a pattern of its own, times scale. */
static void delta_of(int m, float scale, size_t n, float *d)
{
    for (size_t i = 0; i < n; i++)
        d[i] = scale * 1e-2f * (float)(1 + (i * (size_t)(m + 3)) % 17) *
               ((i + (size_t)m) % 3 ? 1.0f : -1.0f);
}

/* When set, submit() encodes without zstd (a raw body) and lets it change the payload
 * before hashing and signing (a hostile but well-signed update). */
static void (*mutate)(uint8_t *payload, size_t len, const struct codec_params *cp, size_t n);

/* What the test kept of an accepted update. */
struct kept {
    struct agg_update u;
    uint8_t *payload;
};

/* Signs and submits member m's delta (times scale) for the open round; 1 when accepted,
 * 0 when refused with reason (cap bytes). k (may be NULL) keeps the update. */
static int submit(struct fx *f, int m, float scale, struct kept *k, char *reason, size_t cap)
{
    struct coord *c = f->c;
    const size_t n = c->n_params;
    struct upd u;
    memset(&u, 0, sizeof u);
    struct policy_round_plan plan;
    pthread_mutex_lock(&c->mu);
    assert_int_equal(policy_round_plan(&c->policy, c->rnd.number, &plan, NULL, 0), 0);
    const struct codec_params cp = plan.uplink;
    snprintf(u.e.experiment, sizeof u.e.experiment, "%s", c->experiment);
    u.e.round = c->rnd.number;
    memcpy(u.e.base_model_hash, c->rnd.base->hash, 32);
    pthread_mutex_unlock(&c->mu);
    float *d = malloc(n * sizeof *d);
    assert_non_null(d);
    delta_of(m, scale, n, d);
    struct codec_params raw = cp;
    if (mutate)
        raw.zstd_level = 0;
    assert_int_equal(codec_encode(d, n, &raw, NULL, &u.payload, &u.len), 0);
    free(d);
    if (mutate)
        mutate(u.payload, u.len, &cp, n);
    snprintf(u.e.member, sizeof u.e.member, "%s", fx_ids[m]);
    crypto_blake2b256(u.payload, u.len, u.e.payload_hash);
    u.e.payload_bytes = u.len;
    u.e.samples = 4;
    u.e.tokens = 16 * (uint64_t)(m + 1);
    u.e.codec.format_version = cp.format_version;
    u.e.codec.block_size = cp.block_size;
    u.e.codec.k_per_block = cp.k_per_block;
    u.e.codec.quant = (uint32_t)cp.quant;
    u.e.codec.zstd_level = cp.zstd_level;
    u.e.codec.error_feedback = (uint8_t)cp.error_feedback;
    upd_sign(&u, f->keys[m]);
    struct signer s = { .key = f->keys[m] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &r, &st), 0);
    int accepted = r->accepted;
    if (reason)
        snprintf(reason, cap, "%s", r->reason ? r->reason : "");
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    if (accepted && k) {
        memset(k, 0, sizeof *k);
        snprintf(k->u.member, sizeof k->u.member, "%s", fx_ids[m]);
        k->u.tokens = u.e.tokens;
        k->u.samples = u.e.samples;
        pthread_mutex_lock(&c->mu);
        k->u.weight = agg_weight(c->policy.aggregation.weighting, u.e.tokens, u.e.samples);
        pthread_mutex_unlock(&c->mu);
        k->payload = malloc(u.len);
        assert_non_null(k->payload);
        memcpy(k->payload, u.payload, u.len);
        k->u.payload = k->payload;
        k->u.len = u.len;
        memcpy(k->u.payload_hash, u.e.payload_hash, 32);
    }
    upd_free(&u);
    return accepted;
}

static double norm_of(struct fx *f, int m, float scale)
{
    /* the norm the coordinator sees: of the payload as encoded */
    const size_t n = f->c->n_params;
    struct policy_round_plan plan;
    assert_int_equal(policy_round_plan(&f->c->policy, 1, &plan, NULL, 0), 0);
    float *d = malloc(n * sizeof *d);
    assert_non_null(d);
    delta_of(m, scale, n, d);
    uint8_t *p;
    size_t len;
    assert_int_equal(codec_encode(d, n, &plan.uplink, NULL, &p, &len), 0);
    free(d);
    double norm;
    assert_int_equal(codec_payload_norm(p, len, n, &norm, NULL, 0), 0);
    free(p);
    return norm;
}

/* The ledger's entry of type `type` for round `round` (0: the last one of that type). */
static int find_entry(struct fx *f, enum entry_type type, uint64_t round, struct entry *out)
{
    uint64_t size = fx_ledger_size(f);
    for (uint64_t i = size; i-- > 0;) {
        uint8_t *bytes;
        size_t len;
        assert_int_equal(ledger_get(f->c->ledger, i, &bytes, &len), 0);
        struct entry e;
        assert_int_equal(entry_decode(bytes, len, &e), 0);
        free(bytes);
        if (e.type == type && (round == 0 || (type == ENTRY_ROUND_CLOSED &&
                                              e.u.round_closed.round == round))) {
            *out = e;
            return 1;
        }
        entry_free(&e);
    }
    return 0;
}

static int by_member(const void *a, const void *b)
{
    return strcmp(((const struct kept *)a)->u.member, ((const struct kept *)b)->u.member);
}

/* The hash of the round's average under the loaded policy's rule (agg_combine) and
 * under fedavg (agg_average), from the kept updates. */
static void expected_hashes(struct fx *f, struct kept *k, size_t n_kept, uint64_t round,
                            uint8_t rule_hash[32], uint8_t fedavg_hash[32],
                            struct agg_member_stat *stats)
{
    qsort(k, n_kept, sizeof *k, by_member);
    struct agg_update u[N_MEMBERS];
    for (size_t i = 0; i < n_kept; i++)
        u[i] = k[i].u;
    const size_t n = f->c->n_params;
    struct policy_round_plan plan;
    assert_int_equal(policy_round_plan(&f->c->policy, round, &plan, NULL, 0), 0);
    float *avg = calloc(n, sizeof *avg), *scratch = calloc(n, sizeof *scratch);
    assert_non_null(avg);
    assert_non_null(scratch);
    char why[300];
    if (agg_combine(&f->c->policy, &plan, n, u, n_kept, NULL, avg, scratch, stats, why,
                    sizeof why) != 0)
        fail_msg("agg_combine: %s", why);
    model_hash(avg, n, rule_hash);
    assert_int_equal(agg_average(&plan, n, u, n_kept, NULL, avg, scratch, why, sizeof why), 0);
    model_hash(avg, n, fedavg_hash);
    free(avg);
    free(scratch);
}

static void kept_free(struct kept *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(k[i].payload);
}

/* clip: an update above norm_bound is accepted and scaled down, one above norm_cap is
 * refused naming the cap; the round's aggregate is the clipped average. */
static void clip_rule_scales_and_caps(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_with(f, "{rule: clip, weighting: tokens, norm_bound: 1.0, norm_cap: 50.0}", "");
    const double small = norm_of(f, 0, 1.0f);
    const float big = (float)(10.0 / norm_of(f, 1, 1.0f));     /* norm ~10: clipped */
    const float huge = (float)(100.0 / norm_of(f, 2, 1.0f));   /* norm ~100: over the cap */
    assert_true(small < 1.0 || small > 0);   /* whatever: fpt's may be clipped too */
    struct kept k[N_MEMBERS];
    char why[400];
    assert_true(submit(f, 0, 1.0f, &k[0], why, sizeof why));
    assert_true(submit(f, 1, big, &k[1], why, sizeof why));
    assert_false(submit(f, 2, huge, NULL, why, sizeof why));
    if (!strstr(why, "aggregation.norm_cap 50"))
        fail_msg("refusal \"%s\" does not name the cap", why);
    fx_expect_rejection(f, "hust", "norm_cap");
    assert_true(submit(f, 2, big / 2, &k[2], why, sizeof why));   /* ~5: clipped, accepted */
    assert_int_equal(fx_wait_round(f, 2), 2);
    fx_wait_closed(f);
    struct agg_member_stat stats[N_MEMBERS];
    uint8_t rule_hash[32], fedavg_hash[32];
    expected_hashes(f, k, N_MEMBERS, 1, rule_hash, fedavg_hash, stats);
    struct entry e;
    assert_true(find_entry(f, ENTRY_ROUND_CLOSED, 1, &e));
    assert_memory_equal(e.u.round_closed.aggregate_hash, rule_hash, 32);
    assert_memory_not_equal(e.u.round_closed.aggregate_hash, fedavg_hash, 32);
    assert_false(e.u.round_closed.has_epsilon);   /* no privacy */
    entry_free(&e);
    /* hust and vnpt (sorted: fpt, hust, vnpt) were scaled to norm 1 */
    assert_true(stats[1].scale < 1.0f && stats[2].scale < 1.0f);
    fx_free(f);
    kept_free(k, N_MEMBERS);
}

/* fedavg with norm_bound: an update above the bound is refused (not clipped). */
static void fedavg_norm_bound_refuses(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_with(f, "{rule: fedavg, weighting: tokens, norm_bound: 1.0}", "");
    const float big = (float)(10.0 / norm_of(f, 1, 1.0f));
    char why[400];
    assert_false(submit(f, 1, big, NULL, why, sizeof why));
    if (!strstr(why, "exceeds the policy's aggregation.norm_bound 1"))
        fail_msg("refusal \"%s\" does not name norm_bound", why);
    fx_expect_nothing_aggregated(f);
    const float ok = (float)(0.5 / norm_of(f, 1, 1.0f));
    assert_true(submit(f, 1, ok, NULL, why, sizeof why));
    fx_free(f);
}

/* Under privacy a refusal for the norm does not publish the norm (a statistic of the
 * member's data the noise does not cover): the reason goes to the ledger and the API. */
static void privacy_refusal_hides_the_norm(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_with(f, "{rule: fedavg, weighting: uniform, norm_bound: 1.0}",
               "privacy: {clip: 1.0, noise_multiplier: 1.0}\n"
               "contribution: {measures: [tokens]}\n");
    const float big = (float)(10.0 / norm_of(f, 1, 1.0f));
    char why[400];
    assert_false(submit(f, 1, big, NULL, why, sizeof why));
    if (!strstr(why, "its L2 norm exceeds the policy's aggregation.norm_bound 1"))
        fail_msg("refusal \"%s\" under privacy", why);
    fx_free(f);
}

/* median: the round's aggregate is the coordinate-wise median, not the average. */
static void median_rule_aggregates(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_with(f, "{rule: median, weighting: uniform}", "");
    struct kept k[N_MEMBERS];
    char why[400];
    for (int m = 0; m < N_MEMBERS; m++)
        if (!submit(f, m, m == 2 ? -50.0f : 1.0f, &k[m], why, sizeof why))   /* hust attacks */
            fail_msg("%s refused: %s", fx_ids[m], why);
    assert_int_equal(fx_wait_round(f, 2), 2);
    fx_wait_closed(f);
    uint8_t rule_hash[32], fedavg_hash[32];
    expected_hashes(f, k, N_MEMBERS, 1, rule_hash, fedavg_hash, NULL);
    struct entry e;
    assert_true(find_entry(f, ENTRY_ROUND_CLOSED, 1, &e));
    assert_memory_equal(e.u.round_closed.aggregate_hash, rule_hash, 32);
    assert_memory_not_equal(e.u.round_closed.aggregate_hash, fedavg_hash, 32);
    entry_free(&e);
    fx_free(f);
    kept_free(k, N_MEMBERS);
}

/* Block 0's int8 scale (sparse raw body: 40-byte header, u16 counts, then the fp32
 * scales) set to NaN, or to +Inf. */
static float poison;
static void poison_scale(uint8_t *payload, size_t len, const struct codec_params *cp, size_t n)
{
    assert_int_equal(payload[7] & 1, 0);                 /* raw body */
    assert_true(cp->k_per_block < cp->block_size);       /* sparse */
    const size_t nb = (n + cp->block_size - 1) / cp->block_size;
    const size_t at = 40 + 2 * nb;
    assert_true(at + 4 <= len);
    memcpy(payload + at, &poison, 4);                    /* little-endian host */
}

/* NaN and Inf are refused at acceptance, before anything is recorded for the round. */
static void nonfinite_refused_at_acceptance(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_with(f, "{rule: clip, weighting: tokens, norm_bound: 1.0}", "");
    const float bad[2] = { NAN, INFINITY };
    char why[400];
    for (int i = 0; i < 2; i++) {
        poison = bad[i];
        mutate = poison_scale;
        int accepted = submit(f, 0, 1.0f, NULL, why, sizeof why);
        mutate = NULL;
        assert_false(accepted);
        if (!strstr(why, "not finite"))
            fail_msg("refusal \"%s\" does not say the value is not finite", why);
        fx_expect_rejection(f, "fpt", "not finite");
        fx_expect_nothing_aggregated(f);
    }
    assert_true(submit(f, 0, 1.0f, NULL, why, sizeof why));   /* the clean one goes in */
    fx_free(f);
}

static double eps_after(double z, uint64_t r)
{
    double e;
    assert_int_equal(rdp_epsilon(1.0, z, r, 1e-5, &e), 0);
    return e;
}

/* privacy: every round_closed carries the epsilon spent so far; the model is noised (not
 * base + the outer step along the clean average); before round 3 would pass the target
 * the experiment finishes, its experiment_finished saying why. */
static void privacy_epsilon_and_budget(void **state)
{
    (void)state;
    const double z = 1.0;
    const double target = (eps_after(z, 2) + eps_after(z, 3)) / 2;
    char privacy[300];
    snprintf(privacy, sizeof privacy,
             "privacy: {clip: 1.0, noise_multiplier: %g, delta: 1.0e-5, target_epsilon: %.6f}\n"
             "contribution: {measures: [tokens]}\n",
             z, target);
    struct fx fx, *f = &fx;
    start_with(f, "{rule: fedavg, weighting: uniform}", privacy);
    char why[400];
    for (uint64_t r = 1; r <= 2; r++) {
        float *base = malloc(f->c->n_params * sizeof *base);
        assert_non_null(base);
        pthread_mutex_lock(&f->c->mu);
        memcpy(base, f->c->rnd.base->params, f->c->n_params * sizeof *base);
        pthread_mutex_unlock(&f->c->mu);
        struct kept k[N_MEMBERS];
        for (int m = 0; m < N_MEMBERS; m++)
            if (!submit(f, m, 1.0f, &k[m], why, sizeof why))
                fail_msg("%s refused: %s", fx_ids[m], why);
        fx_wait_closed(f);
        struct entry e;
        assert_true(find_entry(f, ENTRY_ROUND_CLOSED, r, &e));
        assert_true(e.u.round_closed.has_epsilon);
        if (fabs(e.u.round_closed.epsilon - eps_after(z, r)) > 1e-12 * eps_after(z, r))
            fail_msg("round %llu: epsilon %.17g, want %.17g", (unsigned long long)r,
                     e.u.round_closed.epsilon, eps_after(z, r));
        /* round_closed hashes the noised average, never the clean one (whose hash would
         * let the other members test guesses of one member's update); the model is not the
         * clean average's step either */
        uint8_t rule_hash[32], fedavg_hash[32];
        expected_hashes(f, k, N_MEMBERS, r, rule_hash, fedavg_hash, NULL);
        assert_memory_not_equal(e.u.round_closed.aggregate_hash, rule_hash, 32);
        const size_t n = f->c->n_params;
        struct policy_round_plan plan;
        assert_int_equal(policy_round_plan(&f->c->policy, r, &plan, NULL, 0), 0);
        struct agg_update u[N_MEMBERS];
        for (int m = 0; m < N_MEMBERS; m++)
            u[m] = k[m].u;
        float *avg = calloc(n, sizeof *avg), *scratch = calloc(n, sizeof *scratch);
        float *next = malloc(n * sizeof *next);
        assert_true(avg && scratch && next);
        assert_int_equal(agg_combine(&f->c->policy, &plan, n, u, N_MEMBERS, NULL, avg, scratch,
                                     NULL, why, sizeof why), 0);
        struct outer_opt o;
        assert_int_equal(agg_outer_init(&f->c->policy, n, &o), 0);   /* fedavg: stateless */
        assert_int_equal(agg_next_model(&plan, &o, NULL, base, avg, n, next, NULL, NULL, why,
                                        sizeof why), 0);
        uint8_t clean[32];
        model_hash(next, n, clean);
        assert_memory_not_equal(e.u.round_closed.model_hash, clean, 32);
        outer_free(&o);
        free(avg);
        free(scratch);
        free(next);
        free(base);
        entry_free(&e);
        kept_free(k, N_MEMBERS);
    }
    pthread_mutex_lock(&f->c->mu);
    const int finished = f->c->state == EXP_FINISHED;
    const uint64_t closed = f->c->rnd.base->round;
    pthread_mutex_unlock(&f->c->mu);
    assert_true(finished);
    assert_int_equal(closed, 2);
    struct entry e;
    assert_true(find_entry(f, ENTRY_EXPERIMENT_FINISHED, 0, &e));
    char want[200];
    snprintf(want, sizeof want, "privacy budget: round 3 would spend epsilon %.3g > %g",
             eps_after(z, 3), target);
    assert_non_null(e.u.experiment.reason);
    assert_string_equal(e.u.experiment.reason, want);
    assert_int_equal(e.u.experiment.rounds, 2);
    entry_free(&e);
    /* no round 3: an update for it is refused, the experiment has ended */
    assert_false(submit(f, 0, 1.0f, NULL, why, sizeof why));
    fx_free(f);
}

/* A coordinator reopened with a DP experiment running (its experiment_started commits
 * to the seed) resumes it only with the seed file that hashes to that commitment: none
 * (no new seed is drawn in its place) or another seed is refused, the right one resumes. */
static void open_fails(struct fx *f)
{
    struct coord *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(coord_open(c, &f->opt), COORD_ERR_STATE);
    coord_close(c);
    free(c);
}

static void privacy_resume_checks_the_seed(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    start_with(f, "{rule: fedavg, weighting: uniform, norm_bound: 1.0}",
               "privacy: {clip: 1.0, noise_multiplier: 1.0}\n"
               "contribution: {measures: [tokens]}\n");
    char path[1400];
    snprintf(path, sizeof path, "%s/experiments/%s/dp-noise-seed", f->paths[0],
             f->c->experiment);
    uint8_t *seed;
    size_t len;
    assert_int_equal(file_read_all(path, 64, &seed, &len), 0);
    assert_int_equal(len, AGG_DP_SEED_BYTES);
    struct entry e;
    assert_true(find_entry(f, ENTRY_EXPERIMENT_STARTED, 0, &e));
    uint8_t commit[32];
    agg_dp_seed_commitment(seed, commit);
    assert_memory_equal(e.u.experiment.dp_seed_commitment, commit, 32);
    assert_int_equal(e.u.experiment.dp_noise_scheme, AGG_DP_SCHEME);   /* recorded */
    entry_free(&e);
    fx_stop(f);

    assert_int_equal(unlink(path), 0);              /* deleted: refused, none drawn */
    open_fails(f);
    assert_false(file_exists(path));
    uint8_t other[AGG_DP_SEED_BYTES];
    memcpy(other, seed, sizeof other);
    other[0] ^= 1;                                  /* swapped: refused */
    assert_int_equal(file_write_atomic(path, other, sizeof other, 0600), 0);
    open_fails(f);
    assert_int_equal(file_write_atomic(path, seed, len, 0600), 0);   /* its own: resumes */
    fx_start(f);
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->state, EXP_RUNNING);
    assert_true(f->c->have_dp_seed);
    assert_memory_equal(f->c->dp_seed, seed, AGG_DP_SEED_BYTES);
    assert_int_equal(f->c->dp_scheme, AGG_DP_SCHEME);  /* the scheme it started with */
    pthread_mutex_unlock(&f->c->mu);
    free(seed);
    fx_free(f);
}

/* A target below round 1's epsilon: the experiment finishes as it starts. */
static void privacy_budget_ends_before_round_one(void **state)
{
    (void)state;
    const double z = 1.0;
    char privacy[300];
    snprintf(privacy, sizeof privacy,
             "privacy: {clip: 1.0, noise_multiplier: %g, delta: 1.0e-5, target_epsilon: %.6f}\n"
             "contribution: {measures: [tokens]}\n",
             z, eps_after(z, 1) / 2);
    struct fx fx, *f = &fx;
    fx_prepare(f);
    const char *from = "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n";
    const char *at = strstr(fx_policy, from);
    char text[sizeof fx_policy + 1024];
    snprintf(text, sizeof text, "%.*saggregation: {rule: fedavg, weighting: uniform}\n%s%s",
             (int)(at - fx_policy), fx_policy, at + strlen(from), privacy);
    fx_write(f->paths[3], text, 0644);
    f->idle = 1;
    fx_start(f);
    uint8_t *t;
    size_t len;
    assert_int_equal(file_read_all(f->paths[3], 1 << 20, &t, &len), 0);
    fx_approve_policy(f, (const char *)t);
    free(t);
    struct entry e;
    int found = 0;
    for (int i = 0; i < 200 && !found; i++) {
        found = find_entry(f, ENTRY_EXPERIMENT_FINISHED, 0, &e);
        if (!found)
            time_sleep_ms(50);
    }
    assert_true(found);
    assert_non_null(e.u.experiment.reason);
    if (!strstr(e.u.experiment.reason, "privacy budget: round 1 would spend epsilon"))
        fail_msg("reason: %s", e.u.experiment.reason);
    assert_int_equal(e.u.experiment.rounds, 0);
    entry_free(&e);
    assert_true(find_entry(f, ENTRY_EXPERIMENT_STARTED, 0, &e));
    entry_free(&e);
    assert_false(find_entry(f, ENTRY_ROUND_CLOSED, 0, &e));
    fx_free(f);
}

/* The fewest updates a round closes with: min_members, and multi_krum's 2f + 3. */
static void min_updates_of_the_rule(void **state)
{
    (void)state;
    struct {
        const char *aggregation, *participation;
        size_t want;
    } cases[] = {
        { "{rule: fedavg}", "{min_members: 1, round_deadline_s: 600}", 1 },
        { "{rule: fedavg}", "{min_members: 4, round_deadline_s: 600}", 4 },
        { "{rule: multi_krum, byzantine: 1}", "{min_members: 5, round_deadline_s: 600}", 5 },
        { "{rule: multi_krum, byzantine: 2}", "{min_members: 7, round_deadline_s: 600}", 7 },
        { "{rule: multi_krum, byzantine: 1}", "{min_members: 6, round_deadline_s: 600}", 6 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *from = "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n";
        const char *at = strstr(fx_policy, from);
        const char *part = strstr(fx_policy, "participation:");
        assert_non_null(at);
        assert_non_null(part);
        char text[sizeof fx_policy + 512];
        snprintf(text, sizeof text, "%.*saggregation: %s\n%.*sparticipation: %s\n",
                 (int)(at - fx_policy), fx_policy, cases[i].aggregation,
                 (int)(part - (at + strlen(from))), at + strlen(from), cases[i].participation);
        struct policy p;
        struct policy_error err;
        if (policy_load_buffer("t", (const uint8_t *)text, strlen(text), &p, &err) != 0)
            fail_msg("case %zu: %s", i, err.message);
        assert_int_equal(round_min_updates(&p), cases[i].want);
        policy_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(min_updates_of_the_rule),
        cmocka_unit_test(clip_rule_scales_and_caps),
        cmocka_unit_test(fedavg_norm_bound_refuses),
        cmocka_unit_test(privacy_refusal_hides_the_norm),
        cmocka_unit_test(nonfinite_refused_at_acceptance),
        cmocka_unit_test(median_rule_aggregates),
        cmocka_unit_test(privacy_epsilon_and_budget),
        cmocka_unit_test(privacy_budget_ends_before_round_one),
        cmocka_unit_test(privacy_resume_checks_the_seed),
    };
    return cmocka_run_group_tests_name("coord_rules", tests, NULL, NULL);
}
