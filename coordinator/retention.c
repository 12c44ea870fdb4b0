/* The retention store of accepted payloads (issue 12): every accepted update, byte for
 * byte, under data_dir/experiments/<id>/payloads/<hex>.bin, <hex> its BLAKE2b-256 (the
 * payload_hash of its update_accepted and contribution_scores entries), so that `aulac
 * ledger export --payloads` and `aulac credits verify` can rebuild every model and score
 * of the experiment. Written by the acceptance itself (coordinator/spool.h: the upload's
 * spool file renamed there before the acceptance commits; the round close reads it
 * there); kept while the experiment runs and contribution.payload_retention_days after
 * it ended, then deleted by the timer (coord_prune_payloads). */
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
        struct stat st;
        if (stat(dir, &st) != 0)
            continue;   /* nothing kept (or pruned before) */
        const uint32_t days = retention_days(e);
        if (now_ms - e->ended_ms <= (int64_t)days * DAY_MS)
            continue;
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
