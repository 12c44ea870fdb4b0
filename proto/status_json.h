#ifndef AULAC_PROTO_STATUS_JSON_H
#define AULAC_PROTO_STATUS_JSON_H
/* The JSON form of a StatusReply: what `aulac status --json` prints and what the
 * coordinator's GET /api/v1/status answers (coordinator/HTTP.md lists the fields), from
 * this one function so the two cannot drift apart. */
#include "common/jsonw.h"
#include "proto/aulac.pb-c.h"

/* Appends the reply's JSON object (no newline) to w. */
void status_json_write(struct jsonw *w, const Aulac__V1__StatusReply *r);

#endif
