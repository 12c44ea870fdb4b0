/* The retention store of accepted payloads (issue 12): every accepted update, byte for
 * byte, under data_dir/experiments/<id>/payloads/<hex>.bin, <hex> its BLAKE2b-256 (the
 * payload_hash of its update_accepted and contribution_scores entries), so that `aulac
 * ledger export --payloads` and `aulac credits verify` can rebuild every model and score
 * of the experiment. Written by the acceptance itself (coordinator/spool.h: the upload's
 * spool file renamed there before the acceptance commits; the round close reads it
 * there); kept while the experiment runs and contribution.payload_retention_days after
 * it ended, then deleted by the timer (coord_prune_payloads), together with the
 * experiment's DP noise seed (dp-noise-seed): the seed is revealed only with the payloads
 * (PRIVACY.md, "Replaying the noise"), so it must not outlive them. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "coordinator/queue.h"
#include "coordinator/record.h"
#include "coordinator/state.h"

#define DAY_MS (24LL * 3600 * 1000)
#define RETENTION_DAYS_DEFAULT 30   /* contribution.payload_retention_days (policies/README.md) */

static void payloads_dir(const struct coord *c, const char *experiment, char *out, size_t cap)
{
    snprintf(out, cap, "%s/experiments/%s/payloads", c->opt.data_dir, experiment);
}

/* Removes every entry of dir (plain files: the payloads and any temporary file a crash
 * left) and dir itself. *files and *bytes get what was removed. 0 or -errno. */
static int remove_store(const char *dir, size_t *files, uint64_t *bytes)
{
    *files = 0;
    *bytes = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[4096 + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || unlink(path) != 0) {
            rc = -errno;
            log_warn("cannot remove %s: %s", path, strerror(errno));
            continue;
        }
        (*files)++;
        *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0)
        rc = -errno;
    return rc;
}

/* --- checkpoints ---------------------------------------------------------------- */

static int round_kept(uint64_t r, uint64_t last, uint64_t keep_n, int every)
{
    return r + keep_n > last || (every > 0 && r % (uint64_t)every == 0);
}

static void remove_checkpoint(const struct coord *c, const char *hex)
{
    static const char *const files[] = { "model.safetensors", "config.json", "tokenizer.json" };
    char path[4096 + 160];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/models/%s/%s", c->opt.data_dir, hex, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/models/%s", c->opt.data_dir, hex);
    rmdir(path);
}

size_t coord_retain_checkpoints(struct coord *c)
{
    if (!c->rnd.base || c->rnd.base->round == 0)
        return 0;
    const uint64_t last = c->rnd.base->round;
    const uint64_t keep_n = c->opt.keep_checkpoints > 0 ? (uint64_t)c->opt.keep_checkpoints
                                                       : COORD_KEEP_CHECKPOINTS;
    const int every = c->opt.checkpoint_every == 0 ? COORD_CHECKPOINT_EVERY
                                                   : c->opt.checkpoint_every;
    if (last < keep_n)
        return 0;   /* every round is among the last N */
    /* The hashes of rounds 1..last: kept or not. */
    uint8_t (*hash)[32] = calloc(last + 1, 32);
    uint8_t *have = calloc(last + 1, 1);
    struct experiment_info *ended = NULL;
    size_t n_ended = 0, removed = 0;
    if (!c->have_initial_hash) {
        uint8_t commit[32];
        int found = 0;
        int rc = record_experiment_started_find(c, c->experiment, c->initial_hash, commit,
                                                NULL, &found);
        if (rc != 0 || !found) {
            if (rc == 0)   /* else logged */
                log_warn("checkpoint retention: experiment %s has no experiment_started in "
                         "the ledger (its initial model is not known): nothing pruned",
                         c->experiment);
            free(hash);
            free(have);
            return 0;
        }
        c->have_initial_hash = 1;
    }
    if (!hash || !have || queue_list(c, &ended, &n_ended) != 0) {
        free(hash);
        free(have);
        return 0;   /* logged by queue_list, or no memory: nothing pruned now */
    }
    for (uint64_t r = 1; r <= last; r++) {
        struct round_summary s;
        int found = 0;
        if (state_get_round(c, c->experiment, r, &s, &found) != 0 || !found)
            continue;
        memcpy(hash[r], s.model_hash, 32);
        have[r] = 1;
        free(s.members);
    }
    char dir[4096], path[4096 + 200], hex[65];
    coord_experiment_dir(c, dir, sizeof dir);
    for (uint64_t r = 1; r <= last; r++) {
        if (round_kept(r, last, keep_n, every))
            continue;
        /* the round's own files: outer state and downlink residual after it */
        snprintf(path, sizeof path, "%s/outer/%llu.bin", dir, (unsigned long long)r);
        unlink(path);
        snprintf(path, sizeof path, "%s/outer/%llu.down", dir, (unsigned long long)r);
        unlink(path);
        if (!have[r])
            continue;
        int needed = memcmp(hash[r], c->initial_hash, 32) == 0 ||   /* round 0's model */
                     memcmp(hash[r], c->rnd.base->hash, 32) == 0 ||
                     (c->archived && memcmp(hash[r], c->archived->hash, 32) == 0);
        for (uint64_t k = 1; k <= last && !needed; k++)
            needed = have[k] && round_kept(k, last, keep_n, every) &&
                     memcmp(hash[k], hash[r], 32) == 0;
        for (size_t i = 0; i < n_ended && !needed; i++)
            needed = memcmp(ended[i].final_model_hash, hash[r], 32) == 0;
        if (needed)
            continue;
        hex_encode(hash[r], 32, hex);
        snprintf(path, sizeof path, "%s/downlink/%s.bin", dir, hex);
        unlink(path);
        snprintf(path, sizeof path, "%s/models/%s", c->opt.data_dir, hex);
        if (!file_exists(path))
            continue;
        remove_checkpoint(c, hex);
        removed++;
    }
    free(hash);
    free(have);
    queue_list_free(ended, n_ended);
    if (removed)
        log_info("checkpoint retention: removed %zu checkpoint(s) of experiment %s (kept: the "
                 "last %llu rounds%s)", removed, c->experiment, (unsigned long long)keep_n,
                 every > 0 ? " and every K-th round" : "");
    return removed;
}

/* The experiment's contribution.payload_retention_days, from its approved text; the
 * default when the text no longer loads (said in the log). */
static uint32_t retention_days(const struct experiment_info *e)
{
    struct policy p;
    struct policy_error err;
    if (policy_load_buffer(e->experiment, e->policy_yaml, e->policy_yaml_len, &p, &err) != 0) {
        log_warn("experiment %s: its policy no longer loads (%s); its payloads are kept the "
                 "default %d days", e->experiment, err.message, RETENTION_DAYS_DEFAULT);
        return RETENTION_DAYS_DEFAULT;
    }
    uint32_t days = p.contribution.payload_retention_days;
    policy_free(&p);
    return days;
}

size_t coord_prune_payloads(struct coord *c, int64_t now_ms)
{
    struct experiment_info *all;
    size_t n, removed = 0;
    if (queue_list(c, &all, &n) != 0) {
        log_warn("payload retention: cannot read the experiment records; trying later");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const struct experiment_info *e = &all[i];
        if (!queue_phase_ended(e->phase) || e->ended_ms <= 0)
            continue;   /* running, queued, or ended before end times were kept */
        char dir[4096];
        payloads_dir(c, e->experiment, dir, sizeof dir);
        const uint32_t days = retention_days(e);
        if (now_ms - e->ended_ms <= (int64_t)days * DAY_MS)
            continue;
        /* the seed first: a seed left behind without its payloads could later be exported
         * alone (a failure keeps the store, so that the next pass tries both again) */
        char seed[4096 + 32];
        snprintf(seed, sizeof seed, "%s/experiments/%s/dp-noise-seed", c->opt.data_dir,
                 e->experiment);
        if (unlink(seed) != 0 && errno != ENOENT) {
            log_warn("payload retention: cannot remove %s: %s; the payloads of experiment %s "
                     "are kept until it can be", seed, strerror(errno), e->experiment);
            continue;
        }
        struct stat st;
        if (stat(dir, &st) != 0)
            continue;   /* nothing kept (or pruned before) */
        size_t files;
        uint64_t bytes;
        int rc = remove_store(dir, &files, &bytes);
        char size[32];
        file_size_words(bytes, size, sizeof size);
        if (rc != 0)
            log_warn("payload retention: experiment %s %s more than %u day(s) ago; removed %zu "
                     "payload file(s) (%s) from %s, but not all: %s", e->experiment,
                     queue_phase_name(e->phase), days, files, size, dir, strerror(-rc));
        else
            log_info("payload retention: experiment %s %s more than %u day(s) ago "
                     "(contribution.payload_retention_days); removed %zu payload file(s) "
                     "(%s) and %s", e->experiment, queue_phase_name(e->phase), days, files,
                     size, dir);
        removed += files;
    }
    queue_list_free(all, n);
    return removed;
}
