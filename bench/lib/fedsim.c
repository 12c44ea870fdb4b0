/* bench/lib/fedsim.c: the member side of a simulated federation (fedsim.h). */
#include "bench/lib/fedsim.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "crypto/digest.h"
#include "model/gpt2.h"

double fedsim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- shards ------------------------------------------------------------------- */

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int keep_entry(const struct dirent *e) { return e->d_name[0] != '.'; }

int fedsim_read_corpus(const char *dir, uint8_t **buf, size_t *len, char *why, size_t cap)
{
    struct dirent **ents;
    int ne = scandir(dir, &ents, keep_entry, by_name);
    if (ne < 0) {
        snprintf(why, cap, "%.400s: %s", dir, strerror(errno));
        return -1;
    }
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = 0;
    for (int i = 0; i < ne; i++) {
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        struct stat st;
        FILE *f = NULL;
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode) && (f = fopen(path, "rb"))) {
            uint8_t *nb = realloc(b, n + (size_t)st.st_size + 1);
            if (!nb || fread(nb + n, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
                snprintf(why, cap, "%.400s: cannot read", path);
                rc = -1;
                if (nb)
                    b = nb;
            } else {
                b = nb;
                n += (size_t)st.st_size;
            }
        }
        if (f)
            fclose(f);
        free(ents[i]);
    }
    free(ents);
    if (rc == 0 && n == 0) {
        snprintf(why, cap, "%.400s: no text", dir);
        rc = -1;
    }
    if (rc != 0) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

int fedsim_write_text(const char *dir, const uint8_t *b, size_t n, char *why, size_t cap)
{
    char path[4200];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, cap, "mkdir %.400s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        snprintf(why, cap, "%.400s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return 0;
}

/* Start of piece k of K of b[0..n): k*n/K moved past the next newline (0 for k = 0,
 * n for k = K). */
static size_t cut(const uint8_t *b, size_t n, int k, int K)
{
    if (k <= 0)
        return 0;
    if (k >= K)
        return n;
    size_t at = (size_t)((unsigned __int128)n * (unsigned)k / (unsigned)K);
    while (at < n && b[at - 1] != '\n')
        at++;
    return at;
}

static const char *const corpora[3] = {"fpt", "vnpt", "hust"};

void fedsim_seed(struct fedsim_member *x)
{
    uint8_t h[32];
    crypto_blake2b256(x->id, strlen(x->id), h);
    memcpy(&x->seed, h, sizeof x->seed);
}

int fedsim_make_shards(const char *corpus, const char *base, int pieces,
                       struct fedsim_member *m, char *why, size_t cap)
{
    if (mkdir(base, 0700) != 0 && errno != EEXIST) {
        snprintf(why, cap, "mkdir %.400s: %s", base, strerror(errno));
        return -1;
    }
    int at = 0;
    for (int c = 0; c < 3; c++) {
        int own = pieces / 3 + (c < pieces % 3);
        if (own == 0)
            continue;
        char dir[4200];
        snprintf(dir, sizeof dir, "%.3000s/%s", corpus, corpora[c]);
        uint8_t *b;
        size_t len;
        if (fedsim_read_corpus(dir, &b, &len, why, cap) != 0)
            return -1;
        for (int k = 0; k < own; k++) {
            struct fedsim_member *x = &m[at++];
            memset(x, 0, sizeof *x);
            if (own == 1)
                snprintf(x->id, sizeof x->id, "%s", corpora[c]);
            else
                snprintf(x->id, sizeof x->id, "%s-%d", corpora[c], k + 1);
            snprintf(x->dir, sizeof x->dir, "%.3100s/%s", base, x->id);
            fedsim_seed(x);
            size_t a = cut(b, len, k, own), e = cut(b, len, k + 1, own);
            if (fedsim_write_text(x->dir, b + a, e - a, why, cap) != 0) {
                free(b);
                return -1;
            }
        }
        free(b);
    }
    return 0;
}

int fedsim_check_corpora(const char *corpus, const char *prog)
{
    for (int i = 0; i < 3; i++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%.3000s/%s", corpus, corpora[i]);
        if (access(dir, R_OK) != 0) {
            fprintf(stderr, "%s: no corpus %s; make the demo corpora with "
                    "scripts/demo-corpus.sh %s\n", prog, dir, corpus);
            return -1;
        }
    }
    return 0;
}

void fedsim_remove_shard(const struct fedsim_member *x)
{
    if (!x->dir[0])
        return;
    char path[4200];
    snprintf(path, sizeof path, "%s/text.txt", x->dir);
    unlink(path);
    rmdir(x->dir);
}

/* ---- members ------------------------------------------------------------------ */

void fedsim_trainer_options(const struct policy_round_plan *plan, struct trainer_opts *to)
{
    trainer_opts_default(to);
    to->batch = (int)plan->batch_size;
    to->seq_len = (int)plan->seq_len;
    to->lr = plan->lr;
    to->weight_decay = plan->weight_decay;
    to->beta1 = plan->beta1;
    to->beta2 = plan->beta2;
    to->eps = plan->eps;
    to->grad_clip = plan->grad_clip;
    to->threads = 1;
}

int fedsim_open(const struct policy *p, const struct policy_round_plan *first,
                struct fedsim_member *x, int with_data, char *why, size_t cap)
{
    const size_t n = first->n_params;
    x->local = malloc(n * sizeof(float));
    x->residual = calloc(n, sizeof(float));
    if (!x->local || !x->residual) {
        snprintf(why, cap, "%s: out of memory", x->id);
        return -1;
    }
    if (!with_data)
        return 0;
    struct trainer_opts to;
    fedsim_trainer_options(first, &to);
    struct data_opts dopt = {.val_fraction = p->data.validation_fraction,
                             .seq_len = to.seq_len, .seed = x->seed};
    int rc = trainer_create(&first->model, &to, &x->tr);
    if (rc != 0) {
        snprintf(why, cap, "%s: trainer_create: %s", x->id, model_strerror(rc));
        return rc;
    }
    char dwhy[400];
    if ((rc = data_open(x->dir, &dopt, &x->dt, dwhy, sizeof dwhy)) != 0) {
        snprintf(why, cap, "%s: %s", x->id, dwhy);
        return rc;
    }
    return 0;
}

void fedsim_close(struct fedsim_member *x)
{
    trainer_destroy(x->tr);
    data_close(x->dt);
    free(x->residual);
    free(x->local);
    free(x->payload);
    x->tr = NULL;
    x->dt = NULL;
    x->residual = x->local = NULL;
    x->payload = NULL;
}

uint64_t fedsim_round_seed(const struct policy_round_plan *plan,
                           const struct fedsim_member *x, uint32_t r)
{
    return plan->seed ^ x->seed ^ ((uint64_t)r * 0x9e3779b97f4a7c15ULL);   /* worker.c */
}

/* Round r's plan; x->why says why not. */
static int round_plan(const struct policy *p, struct fedsim_member *x, uint32_t r,
                      struct policy_round_plan *plan)
{
    char why[200];
    int rc = policy_round_plan(p, r, plan, why, sizeof why);
    if (rc != 0)
        snprintf(x->why, sizeof x->why, "%s", why);
    return rc;
}

int fedsim_train(const struct policy *p, uint32_t steps, struct fedsim_member *x,
                 const float *theta, size_t n, uint32_t r)
{
    struct policy_round_plan plan;
    int rc = round_plan(p, x, r, &plan);
    if (rc != 0)
        return rc;
    const double t0 = fedsim_now();
    struct trainer_stats st;
    if ((rc = trainer_set_params(x->tr, theta, n)) != 0)
        goto model_fail;
    data_reseed(x->dt, fedsim_round_seed(&plan, x, r));
    if ((rc = trainer_train_steps(x->tr, (int)steps, data_next_batch, x->dt, NULL, NULL,
                                  &st)) != 0 ||
        (rc = trainer_get_params(x->tr, x->local, n)) != 0)
        goto model_fail;
    for (size_t i = 0; i < n; i++)
        x->local[i] = theta[i] - x->local[i];   /* pseudo-gradient */
    x->seconds = fedsim_now() - t0;
    x->tokens = st.tokens;
    x->samples = (uint64_t)st.steps * plan.batch_size;
    return 0;
model_fail:
    snprintf(x->why, sizeof x->why, "%s: %s", x->id, model_strerror(rc));
    return rc;
}

int fedsim_encode(const struct policy *p, struct fedsim_member *x, size_t n, uint32_t r)
{
    struct policy_round_plan plan;
    char why[200];
    int rc = round_plan(p, x, r, &plan);
    if (rc != 0)
        return rc;
    const double t0 = fedsim_now();
    const struct codec_params *cp = &plan.uplink;
    codec_residual_decay(cp, x->residual, n, plan.error_feedback_decay);
    free(x->payload);
    x->payload = NULL;
    if ((rc = codec_encode(x->local, n, cp, cp->error_feedback ? x->residual : NULL,
                           &x->payload, &x->len)) != 0) {
        snprintf(x->why, sizeof x->why, "codec_encode: %s", codec_strerror(rc));
        return rc;
    }
    x->seconds += fedsim_now() - t0;
    if ((rc = codec_payload_norm(x->payload, x->len, n, &x->norm, why, sizeof why)) != 0) {
        snprintf(x->why, sizeof x->why, "codec_payload_norm: %s", why);
        return rc;
    }
    return 0;
}

int fedsim_round(const struct policy *p, uint32_t steps, struct fedsim_member *x,
                 const float *theta, size_t n, uint32_t r)
{
    int rc = fedsim_train(p, steps, x, theta, n, r);
    return rc != 0 ? rc : fedsim_encode(p, x, n, r);
}

int fedsim_val_loss(struct fedsim_member *x, const float *params, size_t n, double *loss)
{
    const uint8_t *val;
    size_t len;
    float l;
    int rc;
    if ((rc = trainer_set_params(x->tr, params, n)) != 0 ||
        (rc = data_validation(x->dt, 0, &val, &len)) != 0 ||
        (rc = trainer_evaluate(x->tr, val, len, 0, &l)) != 0) {
        snprintf(x->why, sizeof x->why, "%s: evaluate: %s", x->id, model_strerror(rc));
        return rc;
    }
    *loss = l;
    return 0;
}

/* ---- randomness, threads ------------------------------------------------------ */

uint64_t fedsim_mix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double fedsim_normal(uint64_t *x)
{
    double u1 = ((double)(fedsim_mix64(x) >> 11) + 0.5) * 0x1p-53;
    double u2 = (double)(fedsim_mix64(x) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

struct pool {
    void (*fn)(void *, int);
    void *arg;
    int count;
    atomic_int next;
};

static void *pool_main(void *arg)
{
    struct pool *pl = arg;
    for (;;) {
        int i = atomic_fetch_add(&pl->next, 1);
        if (i >= pl->count)
            return NULL;
        pl->fn(pl->arg, i);
    }
}

void fedsim_parallel(int count, int jobs, void (*fn)(void *arg, int i), void *arg)
{
    struct pool pl = {.fn = fn, .arg = arg, .count = count};
    atomic_init(&pl.next, 0);
    int nt = jobs < count ? jobs : count;
    pthread_t th[64];
    if (nt > 64)
        nt = 64;
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, pool_main, &pl) != 0)
            nt = i;
    if (nt <= 0)
        pool_main(&pl);
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
}
