#ifndef AULAC_COORDINATOR_METRICS_H
#define AULAC_COORDINATOR_METRICS_H
/* The coordinator's Prometheus metrics (coordinator/HTTP.md lists every name): counters
 * and histograms updated where the events happen, under their own mutex (never c->mu),
 * rendered by metrics_reply (coordinator/http.h). Names follow the ecosystem's
 * conventions: prefix aulac_, base units (seconds, bytes), _total for counters. */
#include <stddef.h>
#include <stdint.h>

struct coord_metrics;
struct coord;

/* Label cardinality stays bounded: member labels are roster members, at most
 * METRICS_MAX_MEMBERS of them (any more are counted under METRICS_MEMBER_OTHER); an
 * upload from anyone not in the roster is counted under METRICS_MEMBER_UNKNOWN (neither
 * is a valid member id). */
#define METRICS_MAX_MEMBERS       1024
#define METRICS_MEMBER_LABEL_MAX  64
#define METRICS_MEMBER_UNKNOWN    "(unknown)"
#define METRICS_MEMBER_OTHER      "(other)"

struct coord_metrics *metrics_new(void);            /* NULL: no memory */
void metrics_free(struct coord_metrics *m);

/* An upload of `bytes` from member: accepted (reason NULL) or rejected with a short
 * reason label (a fixed vocabulary: "signature", "replay", "round", "norm", "payload",
 * "duplicate", "not_eligible", ... as HTTP.md lists). */
void metrics_upload(struct coord_metrics *m, const char *member, uint64_t bytes,
                    const char *rejected_reason);
/* reason as given when it is one of the vocabulary, else "other" (static). */
const char *metrics_reason_label(const char *reason);
/* A round closed after `seconds` from its opening, with n updates. */
void metrics_round_closed(struct coord_metrics *m, double seconds, size_t n);
/* A round close abandoned on a storage failure (retried by the timer). */
void metrics_close_failed(struct coord_metrics *m);
/* Any authenticated request of member (last seen). */
void metrics_member_seen(struct coord_metrics *m, const char *member, int64_t unix_ms);


/* The text exposition (HTTP.md's "Metrics"): c's state copied under c->mu, m's counters
 * under m's own mutex (m may be NULL: no events), rendered without a lock. *out
 * malloc'd (*len bytes, NUL-terminated). 0 or COORD_ERR_NOMEM. metrics_reply is this
 * with c->metrics. */
int metrics_render(struct coord *c, struct coord_metrics *m, char **out, size_t *len);

#endif
