#include "coordinator/coord.h"
#include "coordinator/ledger_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/artifacts.h"
#include "coordinator/auth.h"
#include "coordinator/governance.h"
#include "coordinator/http.h"
#include "coordinator/metrics.h"
#include "coordinator/queue.h"
#include "coordinator/record.h"
#include "coordinator/state.h"
#include "coordinator/spool.h"
#include "coordinator/witness.h"
#include "proto/rpc.h"

const char *coord_strerror(int rc)
{
    switch (rc) {
    case 0: return "ok";
    case COORD_ERR_CONFIG: return "configuration unusable (see the log above)";
    case COORD_ERR_STATE: return "stored state unreadable or inconsistent (see the log above)";
    case COORD_ERR_NOMEM: return "out of memory";
    case COORD_ERR_IO: return "I/O error (see the log above)";
    case COORD_ERR_SERVE: return "cannot serve (see the log above)";
    case COORD_ERR_NOT_FOUND: return "no checkpoint of that model is held";
    case COORD_ERR_BUSY: return "busy serving another older model; retry later";
    case COORD_ERR_WAITING: return "the experiment waits for pinned files the coordinator does not hold";
    case OUTER_ERR_NOMEM: return "out of memory (outer optimizer)";
    case OUTER_ERR_FORMAT: return "outer optimizer state malformed";
    case OUTER_ERR_SIZE: return "outer optimizer state does not match the model";
    }
    return "unknown coordinator error";
}

/* The genesis entry, once: the founding roster (and the coordinator's key) is the
 * ledger's first entry, before any experiment's. */
static int record_genesis_once(struct coord *c)
{
    uint64_t size;
    if (ledger_size(c->ledger, &size) != 0)
        return COORD_ERR_STATE;
    if (size > 0)
        return 0;
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    int rc = record_genesis(c, txn);
    if (rc != 0) {
        ledger_txn_abort(c->ledger, txn);
        return rc;
    }
    return ledger_txn_commit(c->ledger, txn) == 0 ? 0 : COORD_ERR_STATE;
}


int coord_open(struct coord *c, const struct coord_options *opt)
{
    memset(c, 0, sizeof *c);
    c->opt = *opt;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->changed, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->timer_wake, &ca);
    pthread_condattr_destroy(&ca);
    int rc;
    if (!(c->metrics = metrics_new()))
        return COORD_ERR_NOMEM;
    if (crypto_init() != 0)
        return COORD_ERR_CONFIG;
    if ((rc = crypto_key_load(opt->key_path, &c->key)) != 0) {
        log_error("cannot load the coordinator key %s: %s", opt->key_path, crypto_strerror(rc));
        return COORD_ERR_CONFIG;
    }
    crypto_key_public(c->key, &c->pub);
    struct policy_error err;
    if (roster_load_file(opt->roster_path, &c->roster, &err) != 0) {
        log_error("%s", err.message);
        return COORD_ERR_CONFIG;
    }
    c->members = calloc(c->roster.n_members, sizeof *c->members);
    if (c->opt.max_uploads <= 0)
        c->opt.max_uploads = COORD_DEFAULT_MAX_UPLOADS;
    if (c->opt.upload_free_margin_bytes == 0)
        c->opt.upload_free_margin_bytes = COORD_DEFAULT_UPLOAD_FREE_MARGIN_BYTES;
    c->uploading = calloc((size_t)c->opt.max_uploads, sizeof *c->uploading);
    /* governance may make any policy member eligible later */
    if (!c->members || !c->uploading || round_init_members(&c->rnd) != 0)
        return COORD_ERR_NOMEM;
    for (size_t i = 0; i < c->roster.n_members; i++)
        snprintf(c->members[i].id, sizeof c->members[i].id, "%s", c->roster.members[i].id);

    if (snprintf(c->eval_sets_dir, sizeof c->eval_sets_dir, "%s",
                 opt->eval_sets_dir ? opt->eval_sets_dir : opt->data_dir) >=
            (int)sizeof c->eval_sets_dir - 16) {
        log_error("the evaluation set directory path is too long");
        return COORD_ERR_CONFIG;
    }
    if (!opt->eval_sets_dir)
        strcat(c->eval_sets_dir, "/evalsets");
    char path[4096];
    if ((rc = file_mkdirs(opt->data_dir, 0700)) != 0) {
        log_error("cannot create the data directory %s: %s", opt->data_dir, strerror(-rc));
        return COORD_ERR_CONFIG;
    }
    snprintf(path, sizeof path, "%s/models", opt->data_dir);
    file_mkdirs(path, 0755);
    snprintf(path, sizeof path, "%s/experiments", opt->data_dir);
    file_mkdirs(path, 0755);
    if ((rc = artifacts_open(c)) != 0)
        return rc;
    struct ledger_options lo = { 0 };
    if ((rc = ledger_open(opt->data_dir, &lo, &c->ledger)) != 0) {
        log_error("cannot open the ledger in %s: %s", opt->data_dir, ledger_strerror(rc));
        return COORD_ERR_CONFIG;
    }
    /* Every commit from here on publishes a checkpoint signed with our key; a log
     * that does not end in one of ours (rewritten, entries or checkpoints deleted)
     * is refused before anything is signed or appended. */
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    if (checkpoint_origin(c->roster.alliance, origin, sizeof origin) != 0) {
        log_error("%s: alliance '%s' cannot name a ledger", opt->roster_path, c->roster.alliance);
        return COORD_ERR_CONFIG;
    }
    if ((rc = ledger_set_signer(c->ledger, origin, c->key)) != 0) {
        log_error("refusing to start on %s: %s (details above); nothing was signed or "
                  "written", opt->data_dir, ledger_strerror(rc));
        return COORD_ERR_STATE;
    }
    if ((rc = state_open_dbs(c)) != 0 || (rc = queue_open_dbs(c)) != 0 ||
        (rc = record_genesis_once(c)) != 0)
        return rc;
    /* Uploads a stop or crash cut off were never acknowledged; stored updates of an
     * earlier version move their bytes to the payload store before anything reads them. */
    spool_clean(c);
    size_t converted;
    if ((rc = state_convert_payload_rows(c, &converted)) != 0)
        return rc;
    /* The live roster before the experiment, whose members are counted in it; the
     * motions once the experiment runs again, which an approved cancel stops. */
    if ((rc = auth_open(c)) != 0 || (rc = governance_open(c)) != 0 ||
        (rc = experiment_open(c)) != 0 || (rc = coord_witness_open(c)) != 0 ||
        (rc = experiment_resume_or_start(c)) != 0 || (rc = governance_settle_motions(c)) != 0)
        return rc;
    /* --policy: each filed as a proposal signed by the operator's member key. */
    for (size_t i = 0; rc == 0 && i < opt->n_policy_paths; i++)
        rc = governance_propose_operator(c, opt->policy_paths[i]);
    return rc;
}

#define TIMER_PERIOD_MS 200

/* The timer thread: the only thread that closes rounds (round_timer_tick). It wakes every
 * TIMER_PERIOD_MS (deadlines, governance, retention, the next experiment) and at once
 * when an acceptance or a roster change asks for a close (timer_wake). */
static void *timer_main(void *arg)
{
    struct coord *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int stop = c->stopping;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        round_timer_tick(c);
        governance_tick(c);
        /* Payload retention, without mu (file deletions). */
        int64_t now = time_mono_ms();
        if (now >= c->next_prune_ms) {
            coord_prune_payloads(c, time_now_unix_ms());
            artifacts_prune(c, time_now_unix_ms());
            c->next_prune_ms = now + COORD_PRUNE_INTERVAL_MS;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)TIMER_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&c->mu);
        while (!c->stopping && !c->rnd.close_pending &&
               pthread_cond_timedwait(&c->timer_wake, &c->mu, &until) == 0)
            ;
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

int coord_serve(struct coord *c)
{
    int rc = service_start(c);
    if (rc != 0)
        return rc;
    if (pthread_create(&c->timer, NULL, timer_main, c) != 0)
        return COORD_ERR_NOMEM;
    c->timer_running = 1;
    if ((rc = ledger_check_start(c, c->opt.ledger_check_interval_ms, &c->ledger_check)) != 0)
        return rc;
    log_info("serving the Federation service on %s (port %d)%s", c->opt.listen_addr, c->port,
             c->opt.tls_cert ? " with TLS" : " WITHOUT TLS (plaintext)");
    if (c->opt.http_listen) {
        struct http_options ho = {
            .listen = c->opt.http_listen, .tls_cert = c->opt.tls_cert,
            .tls_key = c->opt.tls_key, .client_ca = c->opt.tls_client_ca,
            .token_file = c->opt.http_token_file, .chartjs_path = c->opt.http_chartjs,
        };
        char why[400] = "";
        rc = http_start(c, &ho, &c->http, why, sizeof why);
        if (rc != 0) {
            log_error("%s", why[0] ? why : coord_strerror(rc));
            return rc;
        }
    }
    if (c->opt.port_file) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", c->port);
        if (file_write_atomic(c->opt.port_file, buf, (size_t)n, 0644) != 0)
            log_warn("cannot write the port file %s", c->opt.port_file);
    }
    return 0;
}

void coord_close(struct coord *c)
{
    http_stop(c->http);             /* its handlers read everything below */
    c->http = NULL;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->changed);
    pthread_cond_signal(&c->timer_wake);
    pthread_mutex_unlock(&c->mu);
    if (c->srv)
        rpc_server_stop(c->srv);
    c->srv = NULL;
    if (c->timer_running)
        pthread_join(c->timer, NULL);
    c->timer_running = 0;
    ledger_check_stop(c->ledger_check);
    c->ledger_check = NULL;
    experiment_unload(c);
    experiment_prepared_free(c);
    coord_witness_close(c);
    ledger_close(c->ledger);
    c->ledger = NULL;
    governance_close(c);
    auth_close(c);
    round_free_members(&c->rnd);
    free(c->members);
    free(c->uploading);
    c->uploading = NULL;
    roster_free(&c->roster);
    crypto_key_free(c->key);
    c->key = NULL;
    metrics_free(c->metrics);
    c->metrics = NULL;
    pthread_cond_destroy(&c->changed);
    pthread_cond_destroy(&c->timer_wake);
    pthread_mutex_destroy(&c->mu);
}
