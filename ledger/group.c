/* Group commit over ledger.h: a queue of waiting appenders and one committer thread. */
#include "ledger/group.h"

#include <pthread.h>
#include <stdlib.h>

struct group_req {
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    int rc;
    int done;
    struct group_req *next;
};

struct ledger_group {
    struct ledger *l;
    pthread_mutex_t mu;
    pthread_cond_t work;       /* the committer waits for requests */
    pthread_cond_t done;       /* appenders wait for their commit */
    struct group_req *head, *tail;
    int stopping;
    uint64_t commits;
    pthread_t thread;
};

/* One commit of up to LEDGER_GROUP_MAX_BATCH requests taken off the queue. */
static void commit_batch(struct ledger_group *g, struct group_req *batch, size_t n)
{
    const uint8_t *entries[LEDGER_GROUP_MAX_BATCH];
    size_t lens[LEDGER_GROUP_MAX_BATCH];
    struct group_req *r = batch;
    for (size_t i = 0; i < n; i++, r = r->next) {
        entries[i] = r->entry;
        lens[i] = r->len;
    }
    MDB_txn *txn;
    uint64_t first = 0;
    int rc = ledger_txn_begin(g->l, &txn);
    if (rc == 0) {
        rc = ledger_append_batch(g->l, txn, entries, lens, n, &first);
        if (rc == 0)
            rc = ledger_txn_commit(g->l, txn);
        else
            ledger_txn_abort(g->l, txn);
    }
    pthread_mutex_lock(&g->mu);
    if (rc == 0)
        __atomic_add_fetch(&g->commits, 1, __ATOMIC_RELAXED);
    r = batch;
    for (size_t i = 0; i < n; i++) {
        struct group_req *next = r->next;   /* r belongs to its appender once done */
        r->rc = rc;
        r->index = first + i;
        r->done = 1;
        r = next;
    }
    pthread_cond_broadcast(&g->done);
    pthread_mutex_unlock(&g->mu);
}

static void *committer(void *arg)
{
    struct ledger_group *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->head && !g->stopping)
            pthread_cond_wait(&g->work, &g->mu);
        if (!g->head)
            break;
        struct group_req *batch = g->head, *last = batch;
        size_t n = 1;
        while (last->next && n < LEDGER_GROUP_MAX_BATCH) {
            last = last->next;
            n++;
        }
        g->head = last->next;
        if (!g->head)
            g->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&g->mu);
        commit_batch(g, batch, n);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int ledger_group_open(struct ledger *l, struct ledger_group **out)
{
    if (!l || !out)
        return LEDGER_ERR_ARG;
    *out = NULL;
    MDB_txn *probe;
    int rc = ledger_txn_begin(l, &probe);   /* refuses a read-only ledger */
    if (rc)
        return rc;
    ledger_txn_abort(l, probe);
    struct ledger_group *g = calloc(1, sizeof *g);
    if (!g)
        return LEDGER_ERR_NOMEM;
    g->l = l;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->work, NULL);
    pthread_cond_init(&g->done, NULL);
    if (pthread_create(&g->thread, NULL, committer, g) != 0) {
        pthread_cond_destroy(&g->done);
        pthread_cond_destroy(&g->work);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return LEDGER_ERR_NOMEM;
    }
    *out = g;
    return 0;
}

int ledger_group_append(struct ledger_group *g, const uint8_t *entry, size_t len,
                        uint64_t *index)
{
    if (!g || !entry || len == 0)
        return LEDGER_ERR_ARG;
    if (len > LEDGER_ENTRY_MAX)
        return LEDGER_ERR_TOO_LARGE;
    struct group_req r = { .entry = entry, .len = len };
    pthread_mutex_lock(&g->mu);
    if (g->stopping) {
        pthread_mutex_unlock(&g->mu);
        return LEDGER_ERR_ARG;
    }
    if (g->tail)
        g->tail->next = &r;
    else
        g->head = &r;
    g->tail = &r;
    pthread_cond_signal(&g->work);
    while (!r.done)
        pthread_cond_wait(&g->done, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (r.rc == 0 && index)
        *index = r.index;
    return r.rc;
}

void ledger_group_close(struct ledger_group *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_cond_signal(&g->work);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->done);
    pthread_cond_destroy(&g->work);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

uint64_t ledger_group_commits(const struct ledger_group *g)
{
    return g ? __atomic_load_n(&g->commits, __ATOMIC_RELAXED) : 0;
}
