/* Witnessing RPCs: the coordinator keeps each member's latest cosigned checkpoint
 * beside its ledger and serves them all, so that members cross-check one another's
 * view of the log (ledger/witness.h). */
#include "coordinator/witness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/auth.h"
#include "coordinator/governance.h"
#include "ledger/witness.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"

int coord_witness_open(struct coord *c)
{
    int rc = witness_store_open(c->ledger, &c->witness);
    if (rc != 0) {
        log_error("cannot open the witness store: %s", ledger_strerror(rc));
        return COORD_ERR_STATE;
    }
    return 0;
}

void coord_witness_close(struct coord *c)
{
    witness_store_close(c->witness);
    c->witness = NULL;
}

/* Whether c's log holds the checkpoint k: its root at k's size. 1, 0, or < 0. */
static int in_own_log(struct coord *c, const struct checkpoint *k)
{
    uint64_t size;
    uint8_t root[32];
    int rc = ledger_size(c->ledger, &size);
    if (rc != 0)
        return rc;
    if (k->size > size)
        return 0;
    if ((rc = ledger_root(c->ledger, k->size, root)) != 0)
        return rc;
    return memcmp(root, k->root, 32) == 0;
}

/* Checks and stores one cosigned note of member; fills r. */
static void add_cosignature(struct coord *c, const char *member, const char *note,
                            Aulac__V1__CosignatureReply *r, char *reason, size_t cap)
{
    char origin[CHECKPOINT_ORIGIN_MAX + 1], why[400];
    struct checkpoint_key log;
    struct cosigner k;
    uint8_t key[32];
    struct checkpoint cp;
    uint64_t t;
    size_t len = strlen(note);
    r->reason = reason;
    if (checkpoint_origin(c->roster.alliance, origin, sizeof origin) != 0 ||
        checkpoint_key_init(&log, origin, c->pub.key) != 0) {
        snprintf(reason, cap, "this coordinator's alliance cannot name a log");
        return;
    }
    if (governance_member_key(c, member, key, why, sizeof why) != 0) {
        snprintf(reason, cap, "%s", why);
        return;
    }
    if (cosigner_init(&k, origin, member, key) != 0 ||
        cosignature_verify(note, len, &log, &k, &cp, &t, why, sizeof why) != 0) {
        snprintf(reason, cap, "the cosigned checkpoint does not verify: %s", why);
        return;
    }
    if (cosignature_count_lines(note, len) != 2) {
        snprintf(reason, cap, "the note has %zu signature lines: send the coordinator's "
                 "checkpoint with exactly one more line, this member's cosignature",
                 cosignature_count_lines(note, len));
        return;
    }
    const int64_t now_s = time_now_unix_ms() / 1000;
    if (t > (uint64_t)(now_s + AUTH_SKEW_MS / 1000)) {
        snprintf(reason, cap, "the cosignature's time %" PRIu64 " is %" PRIu64 " s ahead of the "
                 "coordinator's clock; check the member's clock (NTP)", t, t - (uint64_t)now_s);
        return;
    }
    int own = in_own_log(c, &cp);
    if (own < 0) {
        snprintf(reason, cap, "cannot read the ledger: %s", ledger_strerror(own));
        return;
    }
    r->consistent = own == 1;
    if (!own)
        log_error("witness: %s cosigned a checkpoint of size %" PRIu64 " signed by this "
                  "coordinator's key that this ledger does not hold: a split view (another "
                  "coordinator with this key, or a restored copy). Kept as evidence and "
                  "served to every member", member, cp.size);
    int stored = 0, rc = witness_store_put(c->witness, member, note, len, t, &stored);
    if (rc != 0) {
        snprintf(reason, cap, "cannot store the cosignature: %s", ledger_strerror(rc));
        return;
    }
    if (!stored) {
        snprintf(reason, cap, "a later cosignature by %s is kept; this one (time %" PRIu64
                 ") is older", member, t);
        return;
    }
    r->accepted = 1;
    log_debug("witness: %s cosigned the checkpoint of size %" PRIu64, member, cp.size);
}

void witness_on_add_cosignature(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    char member[CRYPTO_ID_MAX + 1];
    if (auth_call_recv(c, call, &aulac__v1__cosignature_request__descriptor, &in, member) != 0)
        return;
    Aulac__V1__CosignatureRequest *q = (Aulac__V1__CosignatureRequest *)in;
    Aulac__V1__CosignatureReply r = AULAC__V1__COSIGNATURE_REPLY__INIT;
    char reason[600] = "";
    if (!q->member_id || strcmp(q->member_id, member) != 0)
        snprintf(reason, sizeof reason, "the request is signed by '%s' but made for member "
                 "'%.64s'", member, q->member_id ? q->member_id : "");
    else
        add_cosignature(c, member, q->note ? q->note : "", &r, reason, sizeof reason);
    r.reason = reason;
    if (!r.accepted)
        log_warn("witness: refused a cosignature from %s: %s", member, reason);
    pb_call_finish(call, &r.base);
    protobuf_c_message_free_unpacked(in, NULL);
}

struct cosigned_list {
    Aulac__V1__CosignedCheckpoint *rows;
    size_t n, cap;
    int nomem;
};

static int add_row(const char *member, const char *note, size_t len, uint64_t t, void *arg)
{
    struct cosigned_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        void *p = realloc(l->rows, cap * sizeof *l->rows);
        if (!p)
            return l->nomem = 1;
        l->rows = p;
        l->cap = cap;
    }
    Aulac__V1__CosignedCheckpoint *row = &l->rows[l->n];
    aulac__v1__cosigned_checkpoint__init(row);
    row->member_id = strdup(member);
    row->note = strndup(note, len);
    row->timestamp = t > INT64_MAX ? INT64_MAX : (int64_t)t;
    l->n++;
    if (!row->member_id || !row->note)
        return l->nomem = 1;
    return 0;
}

void witness_on_get_cosignatures(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__cosignatures_request__descriptor, &in) != 0)
        return;
    protobuf_c_message_free_unpacked(in, NULL);
    struct cosigned_list l = { 0 };
    int rc = witness_store_each(c->witness, add_row, &l);
    Aulac__V1__CosignedCheckpoint **ptrs = calloc(l.n + 1, sizeof *ptrs);
    if (rc != 0 || l.nomem || !ptrs) {
        log_error("witness: cannot read the cosigned checkpoints: %s",
                  rc ? ledger_strerror(rc) : "out of memory");
        rpc_call_finish(call, GRPC_STATUS_INTERNAL, "cannot read the cosigned checkpoints",
                        NULL, 0);
    } else {
        for (size_t i = 0; i < l.n; i++)
            ptrs[i] = &l.rows[i];
        Aulac__V1__CosignaturesReply r = AULAC__V1__COSIGNATURES_REPLY__INIT;
        r.cosigned = ptrs;
        r.n_cosigned = l.n;
        pb_call_finish(call, &r.base);
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.rows[i].member_id);
        free(l.rows[i].note);
    }
    free(l.rows);
    free(ptrs);
}
