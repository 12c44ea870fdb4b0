#include "model/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/errors.h"

/* Waiting: ~50 us of pause-polling (jobs of a training step come back to back), then
 * polling with sched_yield so that a thread sharing our core (a busy machine, more
 * threads than free cores) gets to run, then, for a worker, sleep. */
#define SPIN_ROUNDS 2000
#define YIELD_ROUNDS 200

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* How the work is handed out: one word holds the job's generation, its number of
 * chunks and the next unclaimed chunk, so a participant claims a chunk with one
 * compare-and-swap and can never take a chunk of a job it did not see published.
 * Chunks are claimed, not assigned: when a worker is descheduled (a busy machine),
 * the caller and the other workers take its share instead of waiting for it. */
#define CLAIM(gen, chunks, next) (((uint64_t)(gen) << 32) | ((uint64_t)(chunks) << 16) | (next))
#define CLAIM_CHUNKS(c) ((unsigned)(((c) >> 16) & 0xFFFF))
#define CLAIM_NEXT(c) ((unsigned)((c) & 0xFFFF))

struct parallel {
    int threads;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    /* the current job: written before its claim word is published, stable while any
     * of its chunks is unclaimed or running */
    parallel_fn fn;
    void *ctx;
    size_t n, per;
    atomic_uint_fast64_t claim;
    atomic_uint done;     /* chunks finished */
    atomic_int sleepers;  /* workers waiting on `wake` */
    atomic_int stop;
    uint32_t gen;
};

/* Claims and runs chunks of the current job until none is left. */
static void run_chunks(struct parallel *p)
{
    for (;;) {
        uint_fast64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
        unsigned chunks = CLAIM_CHUNKS(c), next = CLAIM_NEXT(c);
        if (next >= chunks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        size_t b = (size_t)next * p->per, e = b + p->per;
        if (e > p->n)
            e = p->n;
        if (b < e)
            p->fn(p->ctx, b, e, (int)next);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static int work_available(struct parallel *p)
{
    uint_fast64_t c = atomic_load(&p->claim);
    return CLAIM_NEXT(c) < CLAIM_CHUNKS(c);
}

static void *worker(void *arg)
{
    struct parallel *p = arg;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS + YIELD_ROUNDS && !work_available(p) &&
                        !atomic_load(&p->stop);
             i++) {
            if (i < SPIN_ROUNDS)
                cpu_relax();
            else
                sched_yield();
        }
        if (!work_available(p) && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            /* seq_cst pairs with parallel_for's publish-then-check-sleepers */
            while (!work_available(p) && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        run_chunks(p);
    }
}

int parallel_create(int threads, struct parallel **out)
{
    *out = NULL;
    if (threads < 1)
        threads = 1;
    if (threads > 1024)
        threads = 1024;
    struct parallel *p = calloc(1, sizeof *p);
    if (!p)
        return MODEL_ERR_NOMEM;
    p->threads = 1; /* grows as workers start; destroy joins only those */
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    p->th = calloc((size_t)threads, sizeof *p->th);
    if (!p->th) {
        parallel_destroy(p);
        return MODEL_ERR_NOMEM;
    }
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&p->th[i], NULL, worker, p) != 0) {
            parallel_destroy(p);
            return MODEL_ERR_NOMEM;
        }
        p->threads = i + 1;
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
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads && p->th; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
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
    size_t chunks = n / grain;
    if (chunks > (size_t)p->threads)
        chunks = (size_t)p->threads;
    if (chunks <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    /* the previous job is finished (done == its chunks), so nobody reads these now */
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->per = (n + chunks - 1) / chunks;
    chunks = (n + p->per - 1) / p->per;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    p->gen++;
    atomic_store(&p->claim, CLAIM(p->gen, chunks, 0)); /* seq_cst: publish */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_chunks(p);
    /* every chunk is claimed; wait for those still running elsewhere (yielding, in
     * case their thread waits for this core) */
    for (unsigned i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < chunks; i++) {
        if (i < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}
