#ifndef AULAC_PROTO_SERVICE_NODE_H
#define AULAC_PROTO_SERVICE_NODE_H
/* The Node service of proto/aulac.proto: between the nodes of one member that trains
 * on several nodes (worker/node.h). */

#define NODE_METHOD_GET_NODE_TASK  "/aulac.v1.Node/GetNodeTask"   /* unary, long poll */

/* Longest GetNodeTask wait the leader honours. */
#define NODE_MAX_LONG_POLL_MS      30000u

#endif
