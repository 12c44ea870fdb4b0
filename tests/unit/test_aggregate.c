/* The round close of a real in-process coordinator with the uplink's averaging keys:
 * a dense warm-up round is the members' weighted average; a sparse round with
 * `average: senders` divides each coordinate by the weight of the members whose
 * payload carried it (0 where none did) and multiplies by `sparse_scale`; a restart in
 * the middle of a sparse round rebuilds the accepted set from the stored payloads and
 * reaches the same model. Updates are hand-made deltas whose top-k sets are known,
 * signed and submitted over loopback like a worker's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>

#include "trust_fixture.h"

enum { N_MEMBERS = 3 };    /* fpt, vnpt, hust: the roster; every one must report */
static const uint64_t tokens_of[N_MEMBERS] = { 16, 32, 64 };   /* weighting: tokens */
#define SPARSE_SCALE 2.0

/* fx_policy with a dense first round and the senders' average scaled by 2. */
static void start_with(struct fx *f, const char *average)
{
    fx_prepare(f);
    const char *from = "error_feedback: false, dense_warmup_rounds: 0}";
    const char *at = strstr(fx_policy, from);
    assert_non_null(at);
    char to[160], text[sizeof fx_policy + 160];
    snprintf(to, sizeof to,
             "error_feedback: false, dense_warmup_rounds: 1, average: %s, sparse_scale: %g}",
             average, SPARSE_SCALE);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - fx_policy), fx_policy, to,
             at + strlen(from));
    fx_write(f->paths[3], text, 0644);
    fx_start(f);
}

/* Member m's delta. With block 256 and k 16 every block holds 16 nonzero values, so
 * top-k keeps exactly these: 8 at in-block positions 0, 16, .., 112 that every member
 * sends, and 8 in the upper half at positions no other member uses. */
static int carries(int m, size_t i)
{
    size_t j = i % 256;
    return j < 128 ? j % 16 == 0 : (j + 3 * (size_t)m) % 16 == 0;
}

static void delta_of(int m, size_t n, float *d)
{
    for (size_t i = 0; i < n; i++)
        d[i] = carries(m, i) ? 1e-3f * (float)(1 + m) * (float)(1 + i % 13) *
                                   ((i / 256) % 2 ? -1.0f : 1.0f)
                             : 0.0f;
}

/* Signs and submits member m's delta for the open round, encoded as the round asks;
 * decoded (n floats, may be NULL) receives what the coordinator will decode. */
static void submit(struct fx *f, int m, float *decoded)
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
    delta_of(m, n, d);
    assert_int_equal(codec_encode(d, n, &cp, NULL, &u.payload, &u.len), 0);
    free(d);
    if (decoded) {
        memset(decoded, 0, n * sizeof *decoded);
        assert_int_equal(codec_decode_accumulate(u.payload, u.len, n, 1.0f, decoded, NULL, 0),
                         0);
    }
    snprintf(u.e.member, sizeof u.e.member, "%s", fx_ids[m]);
    crypto_blake2b256(u.payload, u.len, u.e.payload_hash);
    u.e.payload_bytes = u.len;
    u.e.samples = 4;
    u.e.tokens = tokens_of[m];
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
    if (!r->accepted)
        fail_msg("%s's update was refused: %s", fx_ids[m], r->reason);
    aulac__v1__receipt__free_unpacked(r, NULL);
    fed_client_close(cl);
    upd_free(&u);
}

/* The coordinator's current model (n floats), its round and hash. */
static void model_now(struct fx *f, float *params, uint64_t *round, uint8_t hash[32])
{
    pthread_mutex_lock(&f->c->mu);
    memcpy(params, f->c->rnd.base->params, f->c->n_params * sizeof *params);
    if (round)
        *round = f->c->rnd.number;
    if (hash)
        memcpy(hash, f->c->rnd.base->hash, 32);
    pthread_mutex_unlock(&f->c->mu);
}

/* want = base - scale * avg, avg over the members' weight or over the weight of the
 * members that carried each coordinate (0 where none did). */
static void expected(size_t n, const float *base, float *const dec[N_MEMBERS], int senders,
                     double scale, float *want)
{
    double all = 0;
    for (int m = 0; m < N_MEMBERS; m++)
        all += (double)tokens_of[m];
    for (size_t i = 0; i < n; i++) {
        double sum = 0, weight = 0;
        for (int m = 0; m < N_MEMBERS; m++) {
            sum += (double)tokens_of[m] * dec[m][i];
            if (carries(m, i))
                weight += (double)tokens_of[m];
        }
        double avg = senders ? (weight > 0 ? sum / weight : 0) : sum / all;
        want[i] = (float)(base[i] - scale * avg);
    }
}

/* max |a - b| / (1e-3 + |b|) */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1e-3 + fabs((double)b[i]));
        if (d > worst)
            worst = d;
    }
    return worst;
}

struct run {
    size_t n;
    float *model[3];            /* after 0, 1 and 2 rounds */
    float *dec[2][N_MEMBERS];   /* decoded updates of rounds 1 and 2 */
    uint8_t hash[32];           /* after round 2 */
};

static void run_alloc(struct run *r, size_t n)
{
    r->n = n;
    for (int k = 0; k < 3; k++)
        assert_non_null(r->model[k] = malloc(n * sizeof(float)));
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < N_MEMBERS; m++)
            assert_non_null(r->dec[k][m] = malloc(n * sizeof(float)));
}

static void run_free(struct run *r)
{
    for (int k = 0; k < 3; k++)
        free(r->model[k]);
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < N_MEMBERS; m++)
            free(r->dec[k][m]);
}

/* Two rounds, dense then sparse; with restart, the coordinator is stopped and started
 * on the same data directory after two of the three sparse updates. */
static void two_rounds(const char *average, int restart, struct run *r)
{
    struct fx f;
    start_with(&f, average);
    run_alloc(r, f.c->n_params);
    const size_t n = r->n;
    uint64_t round;
    model_now(&f, r->model[0], &round, NULL);
    assert_int_equal(round, 1);
    for (int m = 0; m < N_MEMBERS; m++)
        submit(&f, m, r->dec[0][m]);
    assert_int_equal(fx_wait_round(&f, 2), 2);   /* the timer thread closes it */
    model_now(&f, r->model[1], &round, NULL);
    assert_int_equal(round, 2);

    submit(&f, 0, r->dec[1][0]);
    submit(&f, 1, r->dec[1][1]);
    (void)n;
    if (restart) {
        size_t before;
        double weight = fx_accepted_weight(&f, &before);
        fx_stop(&f);
        fx_start(&f);
        pthread_mutex_lock(&f.c->mu);
        assert_int_equal(f.c->rnd.number, 2);
        assert_int_equal(f.c->rnd.n_accepted, before);
        assert_true(f.c->rnd.weight_sum == weight);
        assert_true(round_has(&f.c->rnd, fx_ids[0]) && round_has(&f.c->rnd, fx_ids[1]));
        /* The resumed base model is an unnamed file mapping, not heap (snapshot_to_file). */
        assert_true(f.c->rnd.base->map_len >= f.c->n_params * sizeof(float));
        pthread_mutex_unlock(&f.c->mu);
    }
    submit(&f, 2, r->dec[1][2]);
    assert_int_equal(fx_wait_round(&f, 3), 3);
    model_now(&f, r->model[2], &round, r->hash);
    assert_int_equal(round, 3);
    fx_free(&f);
}

/* The dense round is the members' average, unscaled, whatever `average` says. */
static void check_dense_round(const struct run *r)
{
    float *want = malloc(r->n * sizeof *want);
    assert_non_null(want);
    expected(r->n, r->model[0], r->dec[0], 0, 1.0, want);
    double d = max_rel_diff(r->model[1], want, r->n);
    if (d > 1e-5)
        fail_msg("round 1 (dense) is off the members' average by %g", d);
    free(want);
}

static void senders_average_is_scaled_per_coordinate(void **state)
{
    (void)state;
    struct run r;
    two_rounds("senders", 0, &r);
    check_dense_round(&r);
    float *want = malloc(r.n * sizeof *want);
    assert_non_null(want);
    expected(r.n, r.model[1], r.dec[1], 1, SPARSE_SCALE, want);
    double d = max_rel_diff(r.model[2], want, r.n);
    if (d > 1e-5)
        fail_msg("round 2 is off base - %g * senders' average by %g", SPARSE_SCALE, d);
    /* coordinates nobody sent did not move */
    size_t untouched = 0;
    for (size_t i = 0; i < r.n; i++)
        if (!carries(0, i) && !carries(1, i) && !carries(2, i)) {
            assert_true(r.model[2][i] == r.model[1][i]);
            untouched++;
        }
    assert_true(untouched > r.n / 2);
    /* and it is neither the members' average nor the unscaled one */
    expected(r.n, r.model[1], r.dec[1], 0, SPARSE_SCALE, want);
    assert_true(max_rel_diff(r.model[2], want, r.n) > 0.1);
    expected(r.n, r.model[1], r.dec[1], 1, 1.0, want);
    assert_true(max_rel_diff(r.model[2], want, r.n) > 0.1);
    free(want);
    run_free(&r);
}

static void members_average_is_scaled_by_the_round_weight(void **state)
{
    (void)state;
    struct run r;
    two_rounds("members", 0, &r);
    check_dense_round(&r);
    float *want = malloc(r.n * sizeof *want);
    assert_non_null(want);
    expected(r.n, r.model[1], r.dec[1], 0, SPARSE_SCALE, want);
    double d = max_rel_diff(r.model[2], want, r.n);
    if (d > 1e-5)
        fail_msg("round 2 is off base - %g * members' average by %g", SPARSE_SCALE, d);
    expected(r.n, r.model[1], r.dec[1], 1, SPARSE_SCALE, want);
    assert_true(max_rel_diff(r.model[2], want, r.n) > 0.1);
    free(want);
    run_free(&r);
}

/* Stopped after two of three sparse updates and started again: the accepted set is
 * rebuilt from the stored payloads and the round closes on the same model, bit for bit
 * (the close sums the stored updates in member-id order). */
static void restart_mid_round_reaches_the_same_model(void **state)
{
    (void)state;
    struct run straight, restarted;
    two_rounds("senders", 0, &straight);
    two_rounds("senders", 1, &restarted);
    assert_memory_equal(straight.model[1], restarted.model[1], straight.n * sizeof(float));
    assert_memory_equal(straight.model[2], restarted.model[2], straight.n * sizeof(float));
    assert_memory_equal(straight.hash, restarted.hash, 32);
    run_free(&straight);
    run_free(&restarted);
}

/* The test's hold on a round close: the close calls hold_close() while it computes
 * outside the coordinator's mutex and waits there until the test says go. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside, go;
    pthread_t closer;           /* the thread that ran the close */
};

static void hold_close(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->inside = 1;
    g->closer = pthread_self();
    pthread_cond_broadcast(&g->cv);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

struct submitter {
    struct fx *f;
    int m;
    struct gate *g;             /* done is set under g->mu */
    int done;
};

static void *submit_main(void *arg)
{
    struct submitter *s = arg;
    submit(s->f, s->m, NULL);
    if (s->g) {
        pthread_mutex_lock(&s->g->mu);
        s->done = 1;
        pthread_cond_broadcast(&s->g->cv);
        pthread_mutex_unlock(&s->g->mu);
    }
    return NULL;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->go = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* The last member's upload completes the round: its receipt (accepted) comes back while
 * the close is held inside, so the receipt never waits for the close; the close runs on
 * the coordinator's timer thread, not on the RPC thread that accepted the update. */
static void last_receipt_returns_before_the_close_on_the_timer_thread(void **state)
{
    (void)state;
    struct fx fx;
    struct fx *f = &fx;
    start_with(f, "members");
    struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
    pthread_mutex_lock(&f->c->mu);
    f->c->opt.close_hook = hold_close;
    f->c->opt.close_hook_arg = &g;
    pthread_mutex_unlock(&f->c->mu);
    for (int m = 0; m < N_MEMBERS - 1; m++)
        submit(f, m, NULL);
    struct submitter last = { f, N_MEMBERS - 1, &g, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, submit_main, &last), 0);
    /* Wait (10 s at most) for both: the close inside the hook, the receipt back. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g.mu);
    while (!(g.inside && last.done) &&
           pthread_cond_timedwait(&g.cv, &g.mu, &until) == 0)
        ;
    const int receipt_while_held = last.done && !g.go;
    const int inside = g.inside;
    pthread_mutex_unlock(&g.mu);
    gate_open(&g);   /* whatever happened: let the close (and a blocked receipt) finish */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(inside);
    assert_true(receipt_while_held);
    assert_true(f->c->timer_running && pthread_equal(g.closer, f->c->timer));
    assert_false(pthread_equal(g.closer, th));
    assert_int_equal(fx_wait_round(f, 2), 2);
    fx_free(f);
}

/* While a round closes (outer step, hashes, checkpoint fsyncs: seconds for a large
 * model), the coordinator's mutex is free: Status answers with the closing round, and
 * the new round opens once the close finishes. */
static void status_is_served_while_a_round_closes(void **state)
{
    (void)state;
    struct fx fx;
    struct fx *f = &fx;
    start_with(f, "senders");
    struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
    pthread_mutex_lock(&f->c->mu);
    f->c->opt.close_hook = hold_close;
    f->c->opt.close_hook_arg = &g;
    pthread_mutex_unlock(&f->c->mu);
    for (int m = 0; m < N_MEMBERS - 1; m++)
        submit(f, m, NULL);
    struct submitter last = { f, N_MEMBERS - 1, NULL, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, submit_main, &last), 0);   /* closes round 1 */
    pthread_mutex_lock(&g.mu);
    while (!g.inside)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    int free_now = pthread_mutex_trylock(&f->c->mu) == 0;
    if (free_now)
        pthread_mutex_unlock(&f->c->mu);
    struct signer s = { .key = f->keys[0] };
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__StatusRequest req = AULAC__V1__STATUS_REQUEST__INIT;
    Aulac__V1__StatusReply *r = NULL;
    struct rpc_status st;
    int rc = fed_status(cl, &req, &r, &st);
    uint64_t status_round = r ? r->round : 0;
    if (r)
        aulac__v1__status_reply__free_unpacked(r, NULL);

    gate_open(&g);
    assert_int_equal(pthread_join(th, NULL), 0);
    fed_client_close(cl);
    assert_true(free_now);
    assert_int_equal(rc, 0);
    assert_int_equal(status_round, 1);
    assert_int_equal(fx_wait_round(f, 2), 2);
    uint64_t round;
    float *params = malloc(f->c->n_params * sizeof *params);
    assert_non_null(params);
    model_now(f, params, &round, NULL);
    free(params);
    fx_free(f);
    assert_int_equal(round, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(senders_average_is_scaled_per_coordinate),
        cmocka_unit_test(members_average_is_scaled_by_the_round_weight),
        cmocka_unit_test(restart_mid_round_reaches_the_same_model),
        cmocka_unit_test(status_is_served_while_a_round_closes),
        cmocka_unit_test(last_receipt_returns_before_the_close_on_the_timer_thread),
    };
    return cmocka_run_group_tests_name("aggregate", tests, NULL, NULL);
}
