/* Hash table (chained through a fixed pool) for lookups, and a binary min-heap by
 * timestamp for expiry and eviction; both sized once at creation. */
#include "coordinator/replay.h"

#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

struct slot {
    uint8_t  key[REPLAY_KEY_BYTES];
    int64_t  ts;
    uint32_t next;        /* chain, or free list */
    uint32_t heap_pos;
};

struct replay_cache {
    size_t    cap, n;
    uint32_t  n_buckets;  /* power of two */
    uint32_t *buckets;
    struct slot *slots;
    uint32_t *heap;       /* slot indices, min timestamp first */
    uint32_t  free_head;
    int64_t   floor;
};

struct replay_cache *replay_new(size_t capacity)
{
    if (capacity == 0 || capacity > (1u << 28))
        return NULL;
    struct replay_cache *rc = calloc(1, sizeof *rc);
    if (!rc)
        return NULL;
    uint32_t nb = 1;
    while (nb < capacity * 2)
        nb <<= 1;
    rc->cap = capacity;
    rc->n_buckets = nb;
    rc->buckets = malloc(nb * sizeof *rc->buckets);
    rc->slots = malloc(capacity * sizeof *rc->slots);
    rc->heap = malloc(capacity * sizeof *rc->heap);
    if (!rc->buckets || !rc->slots || !rc->heap) {
        replay_free(rc);
        return NULL;
    }
    for (uint32_t i = 0; i < nb; i++)
        rc->buckets[i] = NIL;
    for (size_t i = 0; i < capacity; i++)
        rc->slots[i].next = i + 1 < capacity ? (uint32_t)(i + 1) : NIL;
    rc->free_head = 0;
    rc->floor = INT64_MIN;
    return rc;
}

void replay_free(struct replay_cache *rc)
{
    if (!rc)
        return;
    free(rc->buckets);
    free(rc->slots);
    free(rc->heap);
    free(rc);
}

size_t replay_size(const struct replay_cache *rc) { return rc->n; }
int64_t replay_floor_ms(const struct replay_cache *rc) { return rc->floor; }

/* Keys are digests already (uniform), so their first bytes index the table. */
static uint32_t bucket_of(const struct replay_cache *rc, const uint8_t *key)
{
    uint32_t h;
    memcpy(&h, key, sizeof h);
    return h & (rc->n_buckets - 1);
}

static void heap_swap(struct replay_cache *rc, uint32_t a, uint32_t b)
{
    uint32_t t = rc->heap[a];
    rc->heap[a] = rc->heap[b];
    rc->heap[b] = t;
    rc->slots[rc->heap[a]].heap_pos = a;
    rc->slots[rc->heap[b]].heap_pos = b;
}

static void heap_up(struct replay_cache *rc, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (rc->slots[rc->heap[p]].ts <= rc->slots[rc->heap[i]].ts)
            break;
        heap_swap(rc, i, p);
        i = p;
    }
}

static void heap_down(struct replay_cache *rc, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < rc->n && rc->slots[rc->heap[l]].ts < rc->slots[rc->heap[m]].ts)
            m = l;
        if (r < rc->n && rc->slots[rc->heap[r]].ts < rc->slots[rc->heap[m]].ts)
            m = r;
        if (m == i)
            return;
        heap_swap(rc, i, m);
        i = m;
    }
}

/* Removes the oldest key (the heap's root). */
static int64_t pop_oldest(struct replay_cache *rc)
{
    uint32_t s = rc->heap[0];
    int64_t ts = rc->slots[s].ts;
    rc->n--;
    if (rc->n > 0) {
        rc->heap[0] = rc->heap[rc->n];
        rc->slots[rc->heap[0]].heap_pos = 0;
        heap_down(rc, 0);
    }
    uint32_t *link = &rc->buckets[bucket_of(rc, rc->slots[s].key)];
    while (*link != s)
        link = &rc->slots[*link].next;
    *link = rc->slots[s].next;
    rc->slots[s].next = rc->free_head;
    rc->free_head = s;
    return ts;
}

enum replay_result replay_check(struct replay_cache *rc, const uint8_t key[REPLAY_KEY_BYTES],
                                int64_t timestamp_ms, int64_t now_ms, int64_t window_ms)
{
    while (rc->n > 0 && rc->slots[rc->heap[0]].ts < now_ms - window_ms)
        pop_oldest(rc);
    if (timestamp_ms <= rc->floor)
        return REPLAY_TOO_OLD;
    uint32_t b = bucket_of(rc, key);
    for (uint32_t s = rc->buckets[b]; s != NIL; s = rc->slots[s].next)
        if (memcmp(rc->slots[s].key, key, REPLAY_KEY_BYTES) == 0)
            return REPLAY_SEEN;
    if (rc->n == rc->cap) {
        int64_t evicted = pop_oldest(rc);
        if (evicted > rc->floor)
            rc->floor = evicted;
        if (timestamp_ms <= rc->floor)
            return REPLAY_TOO_OLD;
    }
    uint32_t s = rc->free_head;
    rc->free_head = rc->slots[s].next;
    memcpy(rc->slots[s].key, key, REPLAY_KEY_BYTES);
    rc->slots[s].ts = timestamp_ms;
    rc->slots[s].next = rc->buckets[b];
    rc->buckets[b] = s;
    rc->slots[s].heap_pos = (uint32_t)rc->n;
    rc->heap[rc->n++] = s;
    heap_up(rc, (uint32_t)rc->n - 1);
    return REPLAY_FRESH;
}
