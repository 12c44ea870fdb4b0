#include "coordinator/coord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/auth.h"
#include "coordinator/governance.h"
#include "coordinator/queue.h"
#include "coordinator/state.h"
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
    case OUTER_ERR_NOMEM: return "out of memory (outer optimizer)";
    case OUTER_ERR_FORMAT: return "outer optimizer state malformed";
    case OUTER_ERR_SIZE: return "outer optimizer state does not match the model";
    }
    return "unknown coordinator error";
}

_Static_assert(POLICY_MAX_PARAMETERS == GPT2_MAX_PARAMS,
               "policy check must refuse exactly the models the trainer refuses");

static int load_policy(struct coord *c)
{
    struct policy_error err;
    /* One read: the bytes kept (and recorded) are the ones parsed and hashed. */
    if (policy_read_file(c->opt.policy_path, &c->policy_yaml, &c->policy_yaml_len, &err) != 0 ||
        policy_load_buffer(c->opt.policy_path, c->policy_yaml, c->policy_yaml_len, &c->policy,
                           &err) != 0) {
        log_error("%s", err.message);
        return COORD_ERR_CONFIG;
    }
    if (policy_hash(&c->policy, c->policy_hash) != 0)
        return COORD_ERR_NOMEM;
    const struct policy_model *m = &c->policy.model;
    c->cfg.vocab_size = (int)m->vocab_size;
    c->cfg.max_seq_len = (int)m->n_positions;
    c->cfg.n_layer = (int)m->n_layer;
    c->cfg.n_head = (int)m->n_head;
    c->cfg.n_embd = (int)m->n_embd;
    if (gpt2_config_check(&c->cfg) != 0) {
        log_error("%s: the model section does not describe a valid GPT-2", c->opt.policy_path);
        return COORD_ERR_CONFIG;
    }
    c->n_params = gpt2_num_params(&c->cfg);
    policy_link_codec_params(&c->policy.compression.uplink, &c->uplink);
    char why[200];
    if (codec_params_validate(&c->uplink, why, sizeof why) != 0) {
        log_error("%s: compression.uplink: %s", c->opt.policy_path, why);
        return COORD_ERR_CONFIG;
    }
    if (c->policy.aggregation.rule != POLICY_AGG_FEDAVG) {
        log_error("%s: aggregation.rule %s is not supported by this coordinator yet (only "
                  "fedavg); refusing to run the experiment with another rule than the members "
                  "approved", c->opt.policy_path, policy_agg_rule_name(c->policy.aggregation.rule));
        return COORD_ERR_CONFIG;
    }
    const struct policy_link *down = &c->policy.compression.downlink;
    policy_link_codec_params(down, &c->downlink);
    c->down_on = down->method != POLICY_COMPRESS_NONE || down->quant != CODEC_QUANT_FP32;
    if (c->down_on && codec_params_validate(&c->downlink, why, sizeof why) != 0) {
        log_error("%s: compression.downlink: %s", c->opt.policy_path, why);
        return COORD_ERR_CONFIG;
    }
    /* Members that may report: in the policy (all when it lists none) and in the roster
     * (the founding one here; governance_open recounts with the live roster and names
     * the others). */
    c->n_eligible = coord_eligible_count_locked(c);
    if (c->n_eligible < c->policy.participation.min_members || c->n_eligible == 0) {
        log_error("%s: only %zu %s in the roster %s, fewer than participation.min_members %u",
                  c->opt.policy_path, c->n_eligible,
                  c->policy.participation.n_members ? "policy member(s) are" : "member(s)",
                  c->opt.roster_path, c->policy.participation.min_members);
        return COORD_ERR_CONFIG;
    }
    return 0;
}

static enum outer_kind outer_kind_of(enum policy_outer_kind k)
{
    switch (k) {
    case POLICY_OUTER_NESTEROV: return OUTER_NESTEROV;
    case POLICY_OUTER_FEDADAM: return OUTER_FEDADAM;
    default: return OUTER_FEDAVG;
    }
}

int coord_open(struct coord *c, const struct coord_options *opt)
{
    memset(c, 0, sizeof *c);
    c->opt = *opt;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->changed, NULL);
    int rc;
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
    if ((rc = load_policy(c)) != 0)
        return rc;
    c->members = calloc(c->roster.n_members, sizeof *c->members);
    /* governance may make any policy member eligible later */
    c->accepted = calloc(COORD_ROUND_MAX_UPDATES, sizeof *c->accepted);
    c->acc = calloc(c->n_params, sizeof(float));
    if (c->policy.compression.uplink.average == POLICY_AVERAGE_SENDERS)
        c->support = calloc(c->n_params, sizeof(float));
    if (c->down_on && c->downlink.error_feedback)
        c->down_residual = calloc(c->n_params, sizeof(float));
    if (!c->members || !c->accepted || !c->acc ||
        (c->policy.compression.uplink.average == POLICY_AVERAGE_SENDERS && !c->support) ||
        (c->down_on && c->downlink.error_feedback && !c->down_residual))
        return COORD_ERR_NOMEM;
    for (size_t i = 0; i < c->roster.n_members; i++)
        snprintf(c->members[i].id, sizeof c->members[i].id, "%s", c->roster.members[i].id);
    const struct policy_outer_optimizer *o = &c->policy.training.outer;
    if (outer_init(&c->outer, outer_kind_of(o->kind), c->n_params, (float)o->lr,
                   (float)o->momentum) != 0)
        return COORD_ERR_NOMEM;
    if (o->kind == POLICY_OUTER_FEDADAM) {
        c->outer.beta1 = (float)o->beta1;
        c->outer.beta2 = (float)o->beta2;
        c->outer.tau = (float)o->eps;
    }

    char path[4096];
    if ((rc = file_mkdirs(opt->data_dir, 0700)) != 0) {
        log_error("cannot create the data directory %s: %s", opt->data_dir, strerror(-rc));
        return COORD_ERR_CONFIG;
    }
    snprintf(path, sizeof path, "%s/models", opt->data_dir);
    file_mkdirs(path, 0755);
    snprintf(path, sizeof path, "%s/outer", opt->data_dir);
    file_mkdirs(path, 0755);
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
    if ((rc = state_open_dbs(c)) != 0 || (rc = queue_open(c)) != 0)
        return rc;
    if ((rc = auth_open(c)) != 0 || (rc = governance_open(c)) != 0 ||
        (rc = coord_witness_open(c)) != 0)
        return rc;
    return experiment_resume_or_start(c);
}

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
        time_sleep_ms(200);
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
    log_info("serving the Federation service on %s (port %d)%s", c->opt.listen_addr, c->port,
             c->opt.tls_cert ? " with TLS" : " WITHOUT TLS (plaintext)");
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
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    if (c->srv)
        rpc_server_stop(c->srv);
    c->srv = NULL;
    if (c->timer_running)
        pthread_join(c->timer, NULL);
    c->timer_running = 0;
    if (c->model)
        snapshot_release(c, c->model);
    c->model = NULL;
    coord_witness_close(c);
    ledger_close(c->ledger);
    c->ledger = NULL;
    governance_close(c);
    auth_close(c);
    outer_free(&c->outer);
    free(c->acc);
    free(c->support);
    free(c->down_residual);
    free(c->down_payload);
    free(c->accepted);
    free(c->members);
    free(c->policy_yaml);
    policy_free(&c->policy);
    roster_free(&c->roster);
    crypto_key_free(c->key);
    c->key = NULL;
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->mu);
}
