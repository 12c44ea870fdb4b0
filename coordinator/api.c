/* GET /api/v1/<what>: the coordinator's JSON API (coordinator/HTTP.md, "API"). Each
 * endpoint copies what it shows under c->mu (or reads LMDB/the ledger without it) and
 * renders after letting go. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/timeutil.h"
#include "coordinator/coord.h"
#include "coordinator/governance.h"
#include "coordinator/http.h"
#include "coordinator/ledger_check.h"
#include "coordinator/queue.h"
#include "coordinator/state.h"
#include "coordinator/status.h"
#include "credit/shares.h"
#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "privacy/rdp.h"
#include "proto/status_json.h"

#define API_PREFIX "/api/v1/"
#define API_QUERY_MAX 512

/* The query string's parameters, percent-decoded. */
struct api_query {
    char experiment[COORD_EXPERIMENT_MAX + 1];
    int has_experiment;
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated); '+' is a space. -1 when
 * malformed, too long, or holds a NUL or control byte. */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (ch < 0x20 || ch == 0x7f || o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

/* Parses query (NULL or "": none) against the keys the endpoint takes (allow_experiment);
 * why says what is wrong for a 400. */
static int parse_query(const char *query, int allow_experiment, struct api_query *q,
                       char *why, size_t cap)
{
    memset(q, 0, sizeof *q);
    if (!query || !query[0])
        return 0;
    if (strlen(query) > API_QUERY_MAX) {
        snprintf(why, cap, "the query is longer than %d bytes", API_QUERY_MAX);
        return -1;
    }
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (n == 0) {
            p += 1;
            continue;
        }
        size_t klen = eq ? (size_t)(eq - p) : n;
        if (allow_experiment && klen == 10 && memcmp(p, "experiment", 10) == 0) {
            if (!eq || url_decode(eq + 1, n - klen - 1, q->experiment,
                                  sizeof q->experiment) != 0 || !q->experiment[0]) {
                snprintf(why, cap, "experiment= takes an experiment id of 1 to %d bytes",
                         COORD_EXPERIMENT_MAX);
                return -1;
            }
            q->has_experiment = 1;
        } else {
            char key[40];
            snprintf(key, sizeof key, "%.*s", (int)(klen < 32 ? klen : 32), p);
            for (char *k = key; *k; k++)
                if ((unsigned char)*k < 0x20 || (unsigned char)*k >= 0x7f)
                    *k = '?';
            snprintf(why, cap, "unknown query parameter '%s'%s", key,
                     allow_experiment ? " (this endpoint takes experiment=ID)" :
                                        " (this endpoint takes none)");
            return -1;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

static int reply_json(struct http_reply *out, int status, struct jsonw *w)
{
    size_t len;
    char *body = jw_finish(w, &len);
    if (!body)
        return COORD_ERR_NOMEM;
    out->status = status;
    out->content_type = "application/json";
    out->body = body;
    out->len = len;
    return 0;
}

/* {"error":{"status":N,"message":"..."}} */
static int reply_error(struct http_reply *out, int status, const char *message)
{
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"error\":{\"status\":");
    jw_i64(&w, status);
    jw_raw(&w, ",\"message\":");
    jw_str(&w, message);
    jw_raw(&w, "}}\n");
    return reply_json(out, status, &w);
}

/* --- /api/v1/status --------------------------------------------------------- */

static int api_status(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    Aulac__V1__StatusReply *r;
    int rc = coord_status_reply(c, q->has_experiment ? q->experiment : NULL, &r);
    if (rc == COORD_ERR_NOT_FOUND) {
        char msg[200];
        snprintf(msg, sizeof msg, "no experiment '%s' was approved here (/api/v1/experiments "
                 "lists them)", q->experiment);
        return reply_error(out, 404, msg);
    }
    if (rc != 0)
        return rc;
    struct jsonw w;
    jw_init(&w);
    status_json_write(&w, r);
    jw_raw(&w, "\n");
    aulac__v1__status_reply__free_unpacked(r, NULL);
    return reply_json(out, 200, &w);
}

/* --- the experiment a query names ------------------------------------------- */

/* What /rounds and /credits need of the experiment ?experiment= names (default: the
 * loaded one), copied under c->mu or read from its queue record. */
struct api_experiment {
    char id[COORD_EXPERIMENT_MAX + 1];      /* "": none loaded (idle) */
    const char *state;                      /* static */
    int ended;                              /* finished, cancelled or failed */
    uint64_t closed;                        /* closed rounds */
    struct policy_privacy privacy;
    struct policy_contribution contribution;
    int has_policy;                         /* 0: its policy text does not load */
};

static int api_experiment_get(struct coord *c, const struct api_query *q,
                              struct api_experiment *x)
{
    memset(x, 0, sizeof *x);
    pthread_mutex_lock(&c->mu);
    if (!q->has_experiment || strcmp(q->experiment, c->experiment) == 0) {
        snprintf(x->id, sizeof x->id, "%s", c->experiment);
        x->state = coord_state_name(c->state);
        x->ended = c->state == EXP_FINISHED || c->state == EXP_CANCELLED ||
                   c->state == EXP_FAILED;
        x->closed = c->rnd.base ? c->rnd.base->round : 0;
        x->privacy = c->policy.privacy;
        x->contribution = c->policy.contribution;
        x->has_policy = c->experiment[0] != 0;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    pthread_mutex_unlock(&c->mu);
    struct experiment_info e = { 0 };
    int found = 0;
    int rc = queue_get(c, q->experiment, &e, &found);
    if (rc != 0)
        return rc == COORD_ERR_NOMEM ? rc : COORD_ERR_STATE;
    if (!found) {
        experiment_info_free(&e);
        return COORD_ERR_NOT_FOUND;
    }
    snprintf(x->id, sizeof x->id, "%s", e.experiment);
    x->state = queue_phase_name(e.phase);
    x->ended = queue_phase_ended(e.phase);
    x->closed = e.rounds_done;
    struct policy pol;
    struct policy_error perr;
    if (policy_load_buffer("policy", e.policy_yaml, e.policy_yaml_len, &pol, &perr) == 0) {
        x->privacy = pol.privacy;
        x->contribution = pol.contribution;
        x->has_policy = 1;
        policy_free(&pol);
    }
    experiment_info_free(&e);
    return 0;
}

/* The reply for an api_experiment_get failure. */
static int experiment_error(struct http_reply *out, int rc, const struct api_query *q)
{
    if (rc == COORD_ERR_NOMEM)
        return rc;
    if (rc == COORD_ERR_NOT_FOUND) {
        char msg[200];
        snprintf(msg, sizeof msg, "no experiment '%s' was approved here (/api/v1/experiments "
                 "lists them)", q->experiment);
        return reply_error(out, 404, msg);
    }
    return reply_error(out, 503, "the coordinator's experiment records cannot be read now "
                       "(its log says why)");
}

/* --- /api/v1/members -------------------------------------------------------- */

static int api_members(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->roster.n_members;
    struct member_stats *ms = calloc(n + 1, sizeof *ms);
    struct roster_member *rm = calloc(n + 1, sizeof *rm);
    if (ms && rm) {
        memcpy(ms, c->members, n * sizeof *ms);
        memcpy(rm, c->roster.members, n * sizeof *rm);
    }
    pthread_mutex_unlock(&c->mu);
    if (!ms || !rm) {
        free(ms);
        free(rm);
        return COORD_ERR_NOMEM;
    }
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"now_ms\":");
    jw_i64(&w, time_now_unix_ms());
    jw_raw(&w, ",\"members\":[");
    for (size_t i = 0; i < n; i++) {
        const struct member_stats *m = &ms[i];
        jw_raw(&w, i ? ",{\"member\":" : "{\"member\":");
        jw_str(&w, m->id);
        jw_raw(&w, ",\"organization\":");
        jw_str(&w, rm[i].organization);
        jw_raw(&w, ",\"last_seen_ms\":");
        if (m->last_seen_ms)
            jw_i64(&w, m->last_seen_ms);
        else
            jw_raw(&w, "null");
        jw_raw(&w, ",\"rounds_joined\":");
        jw_u64(&w, m->rounds_joined);
        jw_raw(&w, ",\"tokens\":");
        jw_u64(&w, m->tokens);
        jw_raw(&w, ",\"bytes_sent\":");
        jw_u64(&w, m->bytes_sent);
        jw_raw(&w, ",\"rejected\":");
        jw_u64(&w, m->rejected);
        jw_raw(&w, ",\"recent_rejections\":[");
        uint64_t shown = m->n_recent < COORD_RECENT_REJECTIONS ? m->n_recent
                                                                 : COORD_RECENT_REJECTIONS;
        for (uint64_t k = 0; k < shown; k++) {   /* newest first */
            const struct member_rejection *j =
                &m->recent[(m->n_recent - 1 - k) % COORD_RECENT_REJECTIONS];
            jw_raw(&w, k ? ",{\"round\":" : "{\"round\":");
            jw_u64(&w, j->round);
            jw_raw(&w, ",\"at_ms\":");
            jw_i64(&w, j->at_ms);
            jw_raw(&w, ",\"reason\":");
            jw_str(&w, j->reason);
            jw_raw(&w, "}");
        }
        jw_raw(&w, "],\"last_val_loss\":");
        if (m->has_val_loss) {
            jw_raw(&w, "{\"round\":");
            jw_u64(&w, m->last_val_round);
            jw_raw(&w, ",\"val_loss\":");
            jw_num(&w, m->last_val_loss);
            jw_raw(&w, "}");
        } else {
            jw_raw(&w, "null");
        }
        jw_raw(&w, "}");
    }
    jw_raw(&w, "]}\n");
    free(ms);
    free(rm);
    return reply_json(out, 200, &w);
}

/* --- /api/v1/rounds --------------------------------------------------------- */

static int api_rounds(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    struct api_experiment x;
    int rc = api_experiment_get(c, q, &x);
    if (rc != 0)
        return experiment_error(out, rc, q);
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"experiment\":");
    jw_str(&w, x.id);
    jw_raw(&w, ",\"state\":");
    jw_str(&w, x.state);
    jw_raw(&w, ",\"privacy\":");
    jw_raw(&w, x.privacy.enabled ? "true" : "false");
    jw_raw(&w, ",\"rounds\":[");
    int64_t prev_closed_ms = 0;
    for (uint64_t i = 0; x.id[0] && i < x.closed; i++) {
        struct round_summary s;
        int found = 0;
        memset(&s, 0, sizeof s);
        if (state_get_round(c, x.id, i + 1, &s, &found) != 0 || !found) {
            free(s.members);
            break;   /* as the status does: the list ends at a summary it cannot read */
        }
        jw_raw(&w, i ? ",{\"round\":" : "{\"round\":");
        jw_u64(&w, s.round);
        jw_raw(&w, ",\"closed_ms\":");
        jw_i64(&w, s.closed_ms);
        jw_raw(&w, ",\"duration_s\":");
        if (prev_closed_ms > 0 && s.closed_ms >= prev_closed_ms)
            jw_num(&w, (double)(s.closed_ms - prev_closed_ms) / 1000.0);
        else
            jw_raw(&w, "null");
        prev_closed_ms = s.closed_ms;
        jw_raw(&w, ",\"participants\":");
        jw_u64(&w, s.n_members);
        jw_raw(&w, ",\"tokens\":");
        jw_u64(&w, s.tokens);
        jw_raw(&w, ",\"upload_bytes\":");
        jw_u64(&w, s.bytes);
        jw_raw(&w, ",\"mean_train_loss\":");
        jw_num(&w, s.mean_train_loss);
        jw_raw(&w, ",\"model_hash\":");
        jw_hex(&w, s.model_hash, 32);
        if (x.privacy.enabled) {
            double eps;
            jw_raw(&w, ",\"epsilon\":");
            if (rdp_epsilon(1.0, x.privacy.noise_multiplier, s.round, x.privacy.delta,
                            &eps) == 0)
                jw_num(&w, eps);
            else
                jw_raw(&w, "null");
        }
        jw_raw(&w, ",\"members\":[");
        for (size_t k = 0; k < s.n_members; k++) {
            const struct round_member *m = &s.members[k];
            jw_raw(&w, k ? ",{\"member\":" : "{\"member\":");
            jw_str(&w, m->id);
            jw_raw(&w, ",\"val_loss\":");
            jw_num(&w, m->val_loss);
            jw_raw(&w, ",\"train_loss\":");
            jw_num(&w, m->train_loss);
            jw_raw(&w, ",\"tokens\":");
            jw_u64(&w, m->tokens);
            jw_raw(&w, ",\"upload_bytes\":");
            jw_u64(&w, m->bytes);
            jw_raw(&w, "}");
        }
        jw_raw(&w, "]}");
        free(s.members);
    }
    jw_raw(&w, "]}\n");
    return reply_json(out, 200, &w);
}

/* --- /api/v1/experiments ---------------------------------------------------- */

static int api_experiments(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    char loaded[COORD_EXPERIMENT_MAX + 1];
    pthread_mutex_lock(&c->mu);
    snprintf(loaded, sizeof loaded, "%s", c->experiment);
    const char *loaded_state = coord_state_name(c->state);
    uint64_t loaded_round = c->rnd.number;
    uint64_t loaded_closed = c->rnd.base ? c->rnd.base->round : 0;
    pthread_mutex_unlock(&c->mu);
    struct experiment_info *list = NULL;
    size_t n = 0;
    int rc = queue_list(c, &list, &n);
    if (rc == COORD_ERR_NOMEM)
        return rc;
    if (rc != 0)
        return reply_error(out, 503, "the coordinator's experiment records cannot be read "
                           "now (its log says why)");
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"loaded\":");
    if (loaded[0]) {
        jw_raw(&w, "{\"experiment\":");
        jw_str(&w, loaded);
        jw_raw(&w, ",\"state\":");
        jw_str(&w, loaded_state);
        jw_raw(&w, ",\"round\":");
        jw_u64(&w, loaded_round);
        jw_raw(&w, ",\"closed_rounds\":");
        jw_u64(&w, loaded_closed);
        jw_raw(&w, "}");
    } else {
        jw_raw(&w, "null");
    }
    jw_raw(&w, ",\"queue\":[");   /* those waiting, in the order they run */
    int first = 1;
    for (size_t i = 0; i < n; i++)
        if (list[i].phase == PHASE_QUEUED) {
            jw_raw(&w, first ? "" : ",");
            jw_str(&w, list[i].experiment);
            first = 0;
        }
    jw_raw(&w, "],\"experiments\":[");
    for (size_t i = 0; i < n; i++) {
        const struct experiment_info *e = &list[i];
        jw_raw(&w, i ? ",{\"experiment\":" : "{\"experiment\":");
        jw_str(&w, e->experiment);
        jw_raw(&w, ",\"phase\":");
        jw_str(&w, queue_phase_name(e->phase));
        jw_raw(&w, ",\"seq\":");
        jw_u64(&w, e->seq);
        jw_raw(&w, ",\"policy\":");
        struct policy pol;
        struct policy_error perr;
        int have = policy_load_buffer("policy", e->policy_yaml, e->policy_yaml_len, &pol,
                                      &perr) == 0;
        jw_str(&w, have ? pol.metadata.name : "");
        jw_raw(&w, ",\"total_rounds\":");
        if (have)
            jw_u64(&w, pol.training.rounds);
        else
            jw_raw(&w, "null");
        if (have)
            policy_free(&pol);
        jw_raw(&w, ",\"rounds_done\":");
        jw_u64(&w, e->rounds_done);
        jw_raw(&w, ",\"policy_hash\":");
        jw_hex(&w, e->policy_hash, 32);
        jw_raw(&w, ",\"proposal_hash\":");
        jw_hex(&w, e->proposal_hash, 32);
        jw_raw(&w, ",\"final_model_hash\":");
        if (queue_phase_ended(e->phase))
            jw_hex(&w, e->final_model_hash, 32);
        else
            jw_raw(&w, "null");
        jw_raw(&w, ",\"ended_ms\":");
        if (e->ended_ms)
            jw_i64(&w, e->ended_ms);
        else
            jw_raw(&w, "null");
        jw_raw(&w, "}");
    }
    jw_raw(&w, "]}\n");
    queue_list_free(list, n);
    return reply_json(out, 200, &w);
}

/* --- /api/v1/proposals ------------------------------------------------------ */

static int api_proposals(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    const int64_t now = time_now_unix_ms();
    struct gov_open_proposal *list;
    size_t n;
    int rc = governance_open_proposals(c, now, &list, &n);
    if (rc != 0)
        return rc;
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"now_ms\":");
    jw_i64(&w, now);
    jw_raw(&w, ",\"proposals\":[");
    for (size_t i = 0; i < n; i++) {
        const struct gov_proposal *p = &list[i].p;
        const int motion = p->family == GOV_MOTION;
        jw_raw(&w, i ? ",{\"proposal_hash\":" : "{\"proposal_hash\":");
        jw_hex(&w, p->hash, 32);
        jw_raw(&w, ",\"family\":");
        jw_str(&w, motion ? "motion" : "roster");
        jw_raw(&w, ",\"kind\":");
        const char *kind = motion ? motion_kind_name(p->m.kind) : proposal_action_name(p->p.action);
        jw_str(&w, kind ? kind : "unknown");
        jw_raw(&w, ",\"subject\":");   /* the experiment of a motion, the member of a change */
        jw_str(&w, motion ? p->m.experiment : p->p.member);
        jw_raw(&w, ",\"proposer\":");
        jw_str(&w, gov_proposer(p));
        jw_raw(&w, ",\"reason\":");
        jw_str(&w, motion ? p->m.reason : p->p.reason);
        jw_raw(&w, ",\"created_ms\":");
        jw_i64(&w, motion ? p->m.created_unix_ms : p->p.created_unix_ms);
        jw_raw(&w, ",\"expires_ms\":");
        jw_i64(&w, gov_expires_ms(p));
        jw_raw(&w, ",\"state\":");
        jw_str(&w, gov_state_name(list[i].s));
        jw_raw(&w, ",\"ledger_index\":");
        jw_u64(&w, p->index);
        jw_raw(&w, ",\"yes\":");
        jw_u64(&w, list[i].t.yes);
        jw_raw(&w, ",\"no\":");
        jw_u64(&w, list[i].t.no);
        jw_raw(&w, ",\"needed\":");
        jw_u64(&w, list[i].t.needed);
        jw_raw(&w, ",\"voters\":");
        jw_u64(&w, list[i].t.voters);
        jw_raw(&w, ",\"votes\":[{\"member\":");   /* the proposer's approval is implicit */
        jw_str(&w, gov_proposer(p));
        jw_raw(&w, ",\"approve\":true,\"implicit\":true}");
        for (size_t k = 0; k < p->n_votes; k++) {
            jw_raw(&w, ",{\"member\":");
            jw_str(&w, p->votes[k].voter);
            jw_raw(&w, p->votes[k].approve ? ",\"approve\":true" : ",\"approve\":false");
            jw_raw(&w, ",\"implicit\":false,\"ledger_index\":");
            jw_u64(&w, p->votes[k].index);
            jw_raw(&w, "}");
        }
        jw_raw(&w, "]}");
    }
    jw_raw(&w, "]}\n");
    governance_open_free(list, n);
    return reply_json(out, 200, &w);
}

/* --- /api/v1/ledger --------------------------------------------------------- */

static int api_ledger(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    uint64_t size = 0;
    uint8_t root[32];
    if (ledger_size(c->ledger, &size) != 0 || ledger_root(c->ledger, size, root) != 0)
        return reply_error(out, 503, "the ledger cannot be read now (the coordinator's log "
                           "says why)");
    char *note = NULL;
    size_t note_len = 0;
    uint64_t cp_size = 0;
    int have_cp = ledger_checkpoint_get(c->ledger, LEDGER_LATEST, 0, &note, &note_len,
                                        &cp_size) == 0;
    struct ledger_check_result v;
    ledger_check_get(c->ledger_check, &v);
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"size\":");
    jw_u64(&w, size);
    jw_raw(&w, ",\"root\":");
    jw_hex(&w, root, 32);
    jw_raw(&w, ",\"checkpoint\":");
    if (have_cp) {
        jw_raw(&w, "{\"size\":");
        jw_u64(&w, cp_size);
        jw_raw(&w, ",\"note\":");
        jw_str(&w, note);
        jw_raw(&w, "}");
    } else {
        jw_raw(&w, "null");
    }
    free(note);
    jw_raw(&w, ",\"verify\":{\"status\":");
    jw_str(&w, v.state == LEDGER_CHECK_OK ? "ok" : v.state == LEDGER_CHECK_FAILED ? "failed"
                                                                                : "pending");
    jw_raw(&w, v.running ? ",\"running\":true" : ",\"running\":false");
    jw_raw(&w, ",\"checked_ms\":");
    if (v.checked_ms)
        jw_i64(&w, v.checked_ms);
    else
        jw_raw(&w, "null");
    jw_raw(&w, ",\"seconds\":");
    jw_num(&w, v.seconds);
    jw_raw(&w, ",\"size\":");
    jw_u64(&w, v.size);
    jw_raw(&w, ",\"root\":");
    if (v.state == LEDGER_CHECK_OK)
        jw_hex(&w, v.root, 32);
    else
        jw_raw(&w, "null");
    jw_raw(&w, ",\"checkpoints\":");
    jw_u64(&w, v.checkpoints);
    jw_raw(&w, ",\"runs\":");
    jw_u64(&w, v.runs);
    jw_raw(&w, ",\"why\":");
    if (v.state == LEDGER_CHECK_FAILED)
        jw_str(&w, v.why);
    else
        jw_raw(&w, "null");
    jw_raw(&w, "}}\n");
    return reply_json(out, 200, &w);
}

/* --- /api/v1/credits -------------------------------------------------------- */

static int api_credits(struct coord *c, const struct api_query *q, struct http_reply *out)
{
    struct api_experiment x;
    int rc = api_experiment_get(c, q, &x);
    if (rc != 0)
        return experiment_error(out, rc, q);
    struct credit_totals t;
    credit_totals_init(&t);
    int found = 0;
    if (x.id[0] && state_get_credit(c, NULL, x.id, &t, &found) != 0) {
        credit_totals_free(&t);
        return reply_error(out, 503, "the credit records cannot be read now (the "
                           "coordinator's log says why)");
    }
    struct entry_credits cr;
    memset(&cr, 0, sizeof cr);
    int have = found && x.has_policy && credit_shares(&t, &x.contribution, &cr) == 0;
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"experiment\":");
    jw_str(&w, x.id);
    jw_raw(&w, ",\"state\":");
    jw_str(&w, x.state);
    /* final: the experiment ended, so these are the credits its credits entry records */
    jw_raw(&w, have && x.ended ? ",\"final\":true" : ",\"final\":false");
    jw_raw(&w, ",\"credits\":");
    if (have) {
        jw_raw(&w, "{\"rounds\":");
        jw_u64(&w, cr.rounds);
        jw_raw(&w, ",\"measures\":[");
        for (uint32_t k = 0; k < cr.n_measures; k++) {
            jw_raw(&w, k ? ",{\"name\":" : "{\"name\":");
            jw_str(&w, cr.measures[k]);
            jw_raw(&w, ",\"weight\":");
            jw_num(&w, cr.weights[k]);
            jw_raw(&w, "}");
        }
        jw_raw(&w, "],\"members\":[");
        for (uint32_t i = 0; i < cr.n; i++) {
            const struct entry_credit_share *m = &cr.members[i];
            jw_raw(&w, i ? ",{\"member\":" : "{\"member\":");
            jw_str(&w, m->member);
            jw_raw(&w, ",\"share\":");
            jw_num(&w, m->share);
            jw_raw(&w, ",\"rounds\":");
            jw_u64(&w, m->rounds);
            jw_raw(&w, ",\"measure_shares\":{");
            for (uint32_t k = 0; k < cr.n_measures; k++) {
                jw_raw(&w, k ? "," : "");
                jw_key(&w, cr.measures[k]);
                jw_num(&w, m->measure_share[k]);
            }
            jw_raw(&w, "}}");
        }
        jw_raw(&w, "]}");
    } else {
        jw_raw(&w, "null");   /* no round scored yet, or no experiment */
    }
    jw_raw(&w, "}\n");
    free(cr.members);
    credit_totals_free(&t);
    return reply_json(out, 200, &w);
}

/* --- routing ---------------------------------------------------------------- */

struct api_endpoint {
    const char *name;
    int takes_experiment;
    int (*fn)(struct coord *c, const struct api_query *q, struct http_reply *out);
};

static const struct api_endpoint endpoints[] = {
    { "status", 1, api_status },
    { "members", 0, api_members },
    { "rounds", 1, api_rounds },
    { "experiments", 0, api_experiments },
    { "proposals", 0, api_proposals },
    { "ledger", 0, api_ledger },
    { "credits", 1, api_credits },
};

int api_reply(struct coord *c, const char *path, const char *query, struct http_reply *out)
{
    memset(out, 0, sizeof *out);
    const size_t plen = strlen(API_PREFIX);
    const struct api_endpoint *e = NULL;
    if (path && strncmp(path, API_PREFIX, plen) == 0)
        for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
            if (strcmp(path + plen, endpoints[i].name) == 0)
                e = &endpoints[i];
    if (!e)
        return reply_error(out, 404, "no such API endpoint (coordinator/HTTP.md lists them: "
                           "/api/v1/status, members, rounds, experiments, proposals, ledger, "
                           "credits)");
    struct api_query q;
    char why[160];
    if (parse_query(query, e->takes_experiment, &q, why, sizeof why) != 0)
        return reply_error(out, 400, why);
    return e->fn(c, &q, out);
}
