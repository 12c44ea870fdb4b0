#ifndef AULAC_COORDINATOR_REPLAY_H
#define AULAC_COORDINATOR_REPLAY_H
/* Replay cache for request nonces, in bounded memory.
 *
 * Requests carry a timestamp and a nonce; the coordinator accepts a timestamp
 * within +-window of its clock and each (member, nonce) once. The cache holds
 * every accepted key whose timestamp is still inside the window. When it is
 * full it evicts the key with the oldest timestamp and raises a floor: from
 * then on a request whose timestamp is not newer than the floor is refused
 * (REPLAY_TOO_OLD), because its nonce might have been evicted. So memory stays
 * bounded and no replay is ever accepted; under a flood the effective window
 * only shrinks. Not thread-safe: the caller locks. */
#include <stddef.h>
#include <stdint.h>

#define REPLAY_KEY_BYTES 16

enum replay_result {
    REPLAY_FRESH   = 0,   /* not seen: now remembered */
    REPLAY_SEEN    = 1,   /* the same key was accepted before: a replay */
    REPLAY_TOO_OLD = 2,   /* timestamp at or below the floor of evicted keys */
};

struct replay_cache;

/* capacity: keys held at most (>= 1). NULL when out of memory. */
struct replay_cache *replay_new(size_t capacity);
void replay_free(struct replay_cache *rc);

/* First drops keys whose timestamp is older than now_ms - window_ms (the
 * window check refuses those requests anyway), then looks key up and
 * remembers it. */
enum replay_result replay_check(struct replay_cache *rc, const uint8_t key[REPLAY_KEY_BYTES],
                                int64_t timestamp_ms, int64_t now_ms, int64_t window_ms);

size_t  replay_size(const struct replay_cache *rc);
int64_t replay_floor_ms(const struct replay_cache *rc);   /* INT64_MIN until the first eviction */

#endif
