#include "coordinator/ledger_check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"

struct ledger_check {
    struct ledger *ledger;          /* the coordinator's; outlives the thread */
    struct checkpoint_key key;
    int64_t interval_ms;
    pthread_mutex_t mu;             /* guards everything below */
    pthread_cond_t wake;
    int stopping, kicked;
    struct ledger_check_result last;
    pthread_t thread;
};

static void *check_main(void *arg)
{
    struct ledger_check *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stopping) {
        k->kicked = 0;
        k->last.running = 1;
        pthread_mutex_unlock(&k->mu);

        struct ledger_audit a;
        memset(&a, 0, sizeof a);
        int64_t t0 = time_mono_ms();
        int rc = ledger_audit(k->ledger, &k->key, NULL, NULL, &a);
        double seconds = (double)(time_mono_ms() - t0) / 1000.0;
        if (rc != 0)
            log_error("ledger self-check FAILED: %s (%s)", a.why[0] ? a.why : "",
                      ledger_strerror(rc));

        pthread_mutex_lock(&k->mu);
        k->last.running = 0;
        k->last.state = rc == 0 ? LEDGER_CHECK_OK : LEDGER_CHECK_FAILED;
        k->last.checked_ms = time_now_unix_ms();
        k->last.seconds = seconds;
        k->last.size = a.size;
        memcpy(k->last.root, a.root, 32);
        k->last.checkpoints = a.checkpoints;
        k->last.runs++;
        if (rc == 0)
            k->last.why[0] = 0;
        else
            snprintf(k->last.why, sizeof k->last.why, "%s",
                     a.why[0] ? a.why : ledger_strerror(rc));
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(k->interval_ms / 1000);
        until.tv_nsec += (long)(k->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!k->stopping && !k->kicked &&
               pthread_cond_timedwait(&k->wake, &k->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int ledger_check_start(struct coord *c, int64_t interval_ms, struct ledger_check **out)
{
    *out = NULL;
    struct ledger_check *k = calloc(1, sizeof *k);
    if (!k)
        return COORD_ERR_NOMEM;
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    if (checkpoint_origin(c->roster.alliance, origin, sizeof origin) != 0 ||
        checkpoint_key_init(&k->key, origin, c->pub.key) != 0) {
        free(k);
        return COORD_ERR_CONFIG;
    }
    k->ledger = c->ledger;
    k->interval_ms = interval_ms > 0 ? interval_ms : LEDGER_CHECK_INTERVAL_MS;
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&k->thread, NULL, check_main, k) != 0) {
        pthread_cond_destroy(&k->wake);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return COORD_ERR_NOMEM;
    }
    *out = k;
    return 0;
}

void ledger_check_kick(struct ledger_check *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->kicked = 1;
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->mu);
}

void ledger_check_get(struct ledger_check *k, struct ledger_check_result *out)
{
    if (!k) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&k->mu);
    *out = k->last;
    pthread_mutex_unlock(&k->mu);
}

void ledger_check_stop(struct ledger_check *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stopping = 1;
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->wake);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
