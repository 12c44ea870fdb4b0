#include "model/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/errors.h"

/* ~0.2-1 ms of polling before a worker sleeps. */
#define SPIN_ROUNDS 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

struct parallel {
    int threads;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    /* the current job, published by incrementing gen */
    parallel_fn fn;
    void *ctx;
    size_t n, per;  /* items, items per range */
    int used;       /* ranges */
    atomic_uint_fast64_t gen;
    atomic_int pending; /* workers that have not finished the current gen */
    atomic_int stop;
};

struct worker_arg {
    struct parallel *p;
    int tid;
};

static void run_range(struct parallel *p, int tid)
{
    if (tid >= p->used)
        return;
    size_t b = (size_t)tid * p->per, e = b + p->per;
    if (e > p->n)
        e = p->n;
    if (b < e)
        p->fn(p->ctx, b, e, tid);
}

static void *worker(void *arg)
{
    struct worker_arg *wa = arg;
    struct parallel *p = wa->p;
    int tid = wa->tid;
    free(wa);
    uint_fast64_t seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS; i++) {
            if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen ||
                atomic_load_explicit(&p->stop, memory_order_relaxed))
                break;
            cpu_relax();
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
            pthread_cond_wait(&p->start, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load(&p->gen);
        run_range(p, tid);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int parallel_create(int threads, struct parallel **out)
{
    *out = NULL;
    if (threads < 1)
        threads = 1;
    struct parallel *p = calloc(1, sizeof *p);
    if (!p)
        return MODEL_ERR_NOMEM;
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    p->th = calloc((size_t)threads, sizeof *p->th);
    if (!p->th) {
        parallel_destroy(p);
        return MODEL_ERR_NOMEM;
    }
    for (int i = 1; i < threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->p = p, wa->tid = i, pthread_create(&p->th[i], NULL, worker, wa) != 0)) {
            free(wa);
            p->threads = i; /* join only those started */
            parallel_destroy(p);
            return MODEL_ERR_NOMEM;
        }
    }
    *out = p;
    return 0;
}

void parallel_destroy(struct parallel *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads && p->th; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int parallel_threads(const struct parallel *p) { return p->threads; }

void parallel_for(struct parallel *p, size_t n, size_t grain, parallel_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (grain < 1)
        grain = 1;
    size_t ranges = n / grain;
    if (ranges > (size_t)p->threads)
        ranges = (size_t)p->threads;
    if (ranges <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->per = (n + ranges - 1) / ranges;
    p->used = (int)ranges;
    atomic_store(&p->pending, p->threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    run_range(p, 0);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->pending) > 0; i++)
        cpu_relax();
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
