#ifndef AULAC_PROTO_RPC_ADMISSION_H
#define AULAC_PROTO_RPC_ADMISSION_H
/* Which calls the server lets run (rpc_server.c; limits in rpc.h): at most
 * max_calls in all; of those, at most max_unauthenticated that the handler has
 * not yet marked authenticated, and at most max_per_peer of those from one client
 * address. Authenticated calls count only against max_calls, so anonymous
 * clients can never take more than max_unauthenticated slots from the members.
 * An address from which a call authenticated within RPC_TRUSTED_PEER_MS is
 * exempt from max_unauthenticated and max_per_peer (not from max_calls), so
 * that anonymous clients on other addresses filling that budget do not keep
 * members' new calls out, and a member's bursts of new calls are not refused.
 *
 * Not thread-safe: the server holds its mutex around every function here. */
#include <stddef.h>
#include <stdint.h>

#define RPC_PEER_ADDRESS_MAX 96
#define RPC_TRUSTED_PEERS    256                 /* addresses remembered at most */
#define RPC_TRUSTED_PEER_MS  (10 * 60 * 1000)

/* One admitted call; embedded in the call, zeroed before rpc_admission_enter. */
struct rpc_admission_slot {
    char peer[RPC_PEER_ADDRESS_MAX];   /* client address without the port */
    int  authenticated;
    struct rpc_admission_slot *prev, *next;   /* list of unauthenticated slots */
};

struct rpc_trusted_peer {
    char    peer[RPC_PEER_ADDRESS_MAX];
    int64_t at_ms;                       /* last authentication; 0: free */
};

struct rpc_admission {
    int max_calls, max_unauthenticated, max_per_peer;
    int n_calls, n_unauthenticated;
    struct rpc_admission_slot *unauthenticated;
    struct rpc_trusted_peer trusted[RPC_TRUSTED_PEERS];
};

void rpc_admission_init(struct rpc_admission *a, int max_calls, int max_unauthenticated,
                        int max_per_peer);

/* Counts the call in, unauthenticated. peer is gRPC's peer string
 * ("ipv4:10.0.0.7:51234"); now_ms any monotonic clock in ms. 0, or -1 with the
 * refusal (for the client) in why. */
int rpc_admission_enter(struct rpc_admission *a, struct rpc_admission_slot *s,
                        const char *peer, int64_t now_ms, char *why, size_t cap);

/* Moves an admitted call out of the unauthenticated budget and trusts its
 * address from now_ms on; idempotent. */
void rpc_admission_authenticated(struct rpc_admission *a, struct rpc_admission_slot *s,
                                 int64_t now_ms);

/* Counts an admitted call out. */
void rpc_admission_leave(struct rpc_admission *a, struct rpc_admission_slot *s);

/* The client address of a gRPC peer string: the port dropped, so that every
 * connection from one host counts together ("ipv4:10.0.0.7:51234" ->
 * "ipv4:10.0.0.7", "ipv6:[::1]:443" -> "ipv6:[::1]"). Truncated to fit cap. */
void rpc_peer_address(const char *peer, char *out, size_t cap);

#endif
