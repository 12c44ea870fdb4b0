#include "proto/rpc_admission.h"

#include <stdio.h>
#include <string.h>

void rpc_admission_init(struct rpc_admission *a, int max_calls, int max_unauthenticated,
                        int max_per_peer)
{
    memset(a, 0, sizeof *a);
    a->max_calls = max_calls;
    a->max_unauthenticated = max_unauthenticated;
    a->max_per_peer = max_per_peer;
}

void rpc_peer_address(const char *peer, char *out, size_t cap)
{
    size_t n = strlen(peer);
    const char *colon = strrchr(peer, ':');
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
        colon > strchr(peer, ':'))
        n = (size_t)(colon - peer);
    snprintf(out, cap, "%.*s", (int)n, peer);
}

static int unauthenticated_from(const struct rpc_admission *a, const char *peer)
{
    int n = 0;
    for (const struct rpc_admission_slot *s = a->unauthenticated; s; s = s->next)
        n += strcmp(s->peer, peer) == 0;
    return n;
}

/* The slot of peer, or NULL. */
static struct rpc_trusted_peer *trusted_find(struct rpc_admission *a, const char *peer)
{
    for (size_t i = 0; i < RPC_TRUSTED_PEERS; i++)
        if (a->trusted[i].at_ms && strcmp(a->trusted[i].peer, peer) == 0)
            return &a->trusted[i];
    return NULL;
}

static void trust(struct rpc_admission *a, const char *peer, int64_t now_ms)
{
    struct rpc_trusted_peer *t = trusted_find(a, peer);
    for (size_t i = 0; !t && i < RPC_TRUSTED_PEERS; i++)   /* else the oldest */
        if (!t || a->trusted[i].at_ms < t->at_ms)
            t = &a->trusted[i];
    snprintf(t->peer, sizeof t->peer, "%s", peer);
    t->at_ms = now_ms;
}

int rpc_admission_enter(struct rpc_admission *a, struct rpc_admission_slot *s,
                        const char *peer, int64_t now_ms, char *why, size_t cap)
{
    rpc_peer_address(peer, s->peer, sizeof s->peer);
    if (a->n_calls >= a->max_calls) {
        snprintf(why, cap, "server busy: %d calls already running; retry later", a->n_calls);
        return -1;
    }
    const struct rpc_trusted_peer *t = trusted_find(a, s->peer);
    int trusted = t && now_ms - t->at_ms < RPC_TRUSTED_PEER_MS;
    if (a->n_unauthenticated >= a->max_unauthenticated && !trusted) {
        snprintf(why, cap, "server busy: %d calls have not authenticated yet; retry later",
                 a->n_unauthenticated);
        return -1;
    }
    int mine = unauthenticated_from(a, s->peer);
    if (mine >= a->max_per_peer && !trusted) {
        snprintf(why, cap, "too many calls from %.80s: %d have not authenticated yet (limit "
                 "per client address); finish or cancel them first", s->peer, mine);
        return -1;
    }
    s->authenticated = 0;
    s->prev = NULL;
    s->next = a->unauthenticated;
    if (s->next)
        s->next->prev = s;
    a->unauthenticated = s;
    a->n_unauthenticated++;
    a->n_calls++;
    return 0;
}

static void leave_unauthenticated(struct rpc_admission *a, struct rpc_admission_slot *s)
{
    if (s->authenticated)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        a->unauthenticated = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->authenticated = 1;
    a->n_unauthenticated--;
}

void rpc_admission_authenticated(struct rpc_admission *a, struct rpc_admission_slot *s,
                                 int64_t now_ms)
{
    leave_unauthenticated(a, s);
    trust(a, s->peer, now_ms);
}

void rpc_admission_leave(struct rpc_admission *a, struct rpc_admission_slot *s)
{
    leave_unauthenticated(a, s);
    a->n_calls--;
}
