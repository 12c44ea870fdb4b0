#include "proto/status_json.h"

static void hash_or_empty(struct jsonw *w, const ProtobufCBinaryData *h)
{
    if (h->len == 32)
        jw_hex(w, h->data, 32);
    else
        jw_str(w, "");
}

void status_json_write(struct jsonw *w, const Aulac__V1__StatusReply *r)
{
    jw_raw(w, "{\"experiment\":");
    jw_str(w, r->experiment_id);
    jw_raw(w, ",\"policy\":");
    jw_str(w, r->policy_name);
    jw_raw(w, ",\"state\":");
    jw_str(w, r->state);
    jw_raw(w, ",\"round\":");
    jw_u64(w, r->round);
    jw_raw(w, ",\"total_rounds\":");
    jw_u64(w, r->total_rounds);
    jw_raw(w, ",\"model_hash\":");
    hash_or_empty(w, &r->model_hash);
    jw_raw(w, ",\"ledger_size\":");
    jw_u64(w, r->ledger_size);
    jw_raw(w, ",\"ledger_root\":");
    hash_or_empty(w, &r->ledger_root);
    jw_raw(w, ",\"queue_length\":");
    jw_u64(w, r->queue_length);
    jw_raw(w, ",\"waiting\":");
    jw_str(w, r->waiting ? r->waiting : "");
    jw_raw(w, ",\"storage_error\":");
    jw_str(w, r->storage_error ? r->storage_error : "");
    if (r->disk) {   /* absent until the coordinator measured it */
        const Aulac__V1__DiskUsage *d = r->disk;
        jw_raw(w, ",\"disk\":{\"ledger_bytes\":");
        jw_u64(w, d->ledger_bytes);
        jw_raw(w, ",\"checkpoint_bytes\":");
        jw_u64(w, d->checkpoint_bytes);
        jw_raw(w, ",\"payload_bytes\":");
        jw_u64(w, d->payload_bytes);
        jw_raw(w, ",\"experiment_file_bytes\":");
        jw_u64(w, d->experiment_file_bytes);
        jw_raw(w, ",\"artifact_bytes\":");
        jw_u64(w, d->artifact_bytes);
        jw_raw(w, ",\"spool_bytes\":");
        jw_u64(w, d->spool_bytes);
        jw_raw(w, ",\"other_bytes\":");
        jw_u64(w, d->other_bytes);
        jw_raw(w, ",\"total_bytes\":");
        jw_u64(w, d->total_bytes);
        jw_raw(w, ",\"free_bytes\":");
        jw_u64(w, d->free_bytes);
        jw_raw(w, ",\"filesystem_bytes\":");
        jw_u64(w, d->filesystem_bytes);
        jw_raw(w, d->low_space ? ",\"low_space\":true" : ",\"low_space\":false");
        jw_raw(w, ",\"measured_unix_ms\":");
        jw_u64(w, (uint64_t)d->measured_unix_ms);
        jw_raw(w, "}");
    }
    jw_raw(w, ",\"rounds\":[");
    for (size_t i = 0; i < r->n_rounds; i++) {
        const Aulac__V1__RoundSummary *s = r->rounds[i];
        jw_raw(w, i ? ",{\"round\":" : "{\"round\":");
        jw_u64(w, s->round);
        jw_raw(w, ",\"mean_train_loss\":");
        jw_fixed(w, s->mean_train_loss);
        jw_raw(w, ",\"tokens\":");
        jw_u64(w, s->tokens);
        jw_raw(w, ",\"upload_bytes\":");
        jw_u64(w, s->upload_bytes);
        if (r->privacy) {   /* absent without privacy */
            jw_raw(w, ",\"epsilon\":");
            jw_num(w, s->epsilon);
        }
        jw_raw(w, ",\"members\":[");
        for (size_t k = 0; k < s->n_member_losses; k++) {
            const Aulac__V1__MemberLoss *m = s->member_losses[k];
            jw_raw(w, k ? ",{\"member\":" : "{\"member\":");
            jw_str(w, m->member_id);
            jw_raw(w, ",\"val_loss\":");
            jw_fixed(w, m->val_loss);
            jw_raw(w, ",\"train_loss\":");
            jw_fixed(w, m->train_loss);
            jw_raw(w, ",\"tokens\":");
            jw_u64(w, m->tokens);
            jw_raw(w, ",\"upload_bytes\":");
            jw_u64(w, m->upload_bytes);
            jw_raw(w, "}");
        }
        jw_raw(w, "]}");
    }
    jw_raw(w, "]");
    if (r->privacy) {
        jw_raw(w, ",\"privacy\":{\"epsilon\":");
        jw_num(w, r->epsilon);
        jw_raw(w, ",\"delta\":");
        jw_num(w, r->privacy_delta);
        jw_raw(w, ",\"noise_multiplier\":");
        jw_num(w, r->noise_multiplier);
        jw_raw(w, ",\"target_epsilon\":");
        if (r->target_epsilon > 0)
            jw_num(w, r->target_epsilon);
        else
            jw_raw(w, "null");
        jw_raw(w, "}");
    }
    jw_raw(w, ",\"members\":[");
    for (size_t i = 0; i < r->n_members; i++) {
        const Aulac__V1__MemberStatus *m = r->members[i];
        jw_raw(w, i ? ",{\"member\":" : "{\"member\":");
        jw_str(w, m->member_id);
        jw_raw(w, ",\"organization\":");
        jw_str(w, m->organization);
        jw_raw(w, ",\"rounds_joined\":");
        jw_u64(w, m->rounds_joined);
        jw_raw(w, ",\"tokens\":");
        jw_u64(w, m->tokens);
        jw_raw(w, ",\"bytes_sent\":");
        jw_u64(w, m->bytes_sent);
        jw_raw(w, ",\"rejected\":");
        jw_u64(w, m->rejected);
        jw_raw(w, "}");
    }
    jw_raw(w, "]}");
}
