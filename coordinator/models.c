/* Model checkpoints, named by hash and shared by every experiment, under
 * data_dir/models/<hex>/, written to a temporary directory, fsynced and renamed, so
 * that the directory loads with common Python tooling (transformers' from_pretrained):
 *   built-in GPT-2   model.safetensors + config.json (gpt2_save), and tokenizer.json, a
 *                    copy of the pinned one, when the policy pins model.tokenizer;
 *   external model   model.safetensors (F32, the layout's names, metadata aulac_layout
 *                    "named"), config.json and tokenizer.json: copies of the pinned
 *                    files from the artifact store, when pinned.
 * A checkpoint is read back only when it hashes to its name (model_layout_hash).
 * The loaded experiment's own files, under data_dir/experiments/<id>/: the outer
 * optimizer's state for each number of completed rounds (outer/<n>.bin, outer/<n>.down
 * for the downlink residual) and the downlink updates (downlink/<hex>.bin). Which of
 * them stay is checkpoint retention's (coordinator/retention.c). The outer
 * state and the residual live in these files, not in memory: a close maps the next
 * round's copy and drops its pages as it goes (see outer_state_open).
 * Checkpoints are written straight from the model's floats, tensor by tensor
 * (safetensors_write: no image of the file in memory). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "coordinator/artifacts.h"
#include "coordinator/coord.h"
#include "coordinator/queue.h"
#include "coordinator/state.h"
#include "model/errors.h"
#include "model/gpt2.h"
#include "model/layout.h"
#include "model/model_hash.h"

/* The metadata that marks a checkpoint of a named (external) model. */
#define NAMED_META_KEY "aulac_layout"
#define NAMED_META_VALUE "named"

static void model_dir(const struct coord *c, const uint8_t hash[32], char *out, size_t cap)
{
    char hex[65];
    hex_encode(hash, 32, hex);
    snprintf(out, cap, "%s/models/%s", c->opt.data_dir, hex);
}

/* Copies the pinned file f (from the artifact store) to dir/name: 0 or -errno. */
static int copy_pinned(struct coord *c, const struct policy_file *f, const char *dir,
                       const char *name)
{
    char src[PATH_MAX], dst[PATH_MAX + 64];
    if (artifacts_path(c, f->blake2b, src, sizeof src) != 0)
        return -ENOENT;
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    return file_copy_atomic(src, dst, 0644);
}

/* Removes dir's entries (plain files: what models_save writes there, with the leftovers
 * of an interrupted atomic write) and dir itself; what cannot be removed is logged. */
static void remove_partial_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            log_warn("cannot remove the partial checkpoint %s: %s", dir, strerror(errno));
        return;
    }
    struct dirent *e;
    char path[PATH_MAX + 300];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            log_warn("cannot remove %s of a partial checkpoint: %s", path, strerror(errno));
    }
    closedir(d);
    if (rmdir(dir) != 0)
        log_warn("cannot remove the partial checkpoint %s: %s", dir, strerror(errno));
}

/* Slack for what the formula below does not count exactly: the safetensors header
 * (tensor names, shapes, offsets: SAFETENSORS_PER_TENSOR per tensor) and config.json
 * of the built-in GPT-2, the downlink file's codec header, file system blocks. */
#define CLOSE_WRITE_SLACK (1u << 20)
#define SAFETENSORS_PER_TENSOR 512u

/* Size of the pinned file f as held in the artifact store (0 when absent). */
static uint64_t pinned_bytes(const struct coord *c, const struct policy_file *f)
{
    char path[PATH_MAX];
    struct stat st;
    if (!f->present || artifacts_path(c, f->blake2b, path, sizeof path) != 0 ||
        stat(path, &st) != 0)
        return 0;
    return (uint64_t)st.st_size;
}

/* With n = n_params and 4 bytes a float, one close writes at most:
 *   checkpoint       4n + SAFETENSORS_PER_TENSOR x tensors + pinned config + tokenizer
 *   outer state      outer_state_bytes: header + 0 (fedavg), 4n (nesterov), 8n (fedadam)
 *   down residual    4n with downlink error feedback, else 0
 *   downlink update  32 + 4n when downlink is on (an encoded update is at most dense
 *                    fp32 plus its header), else 0
 *   base model file  4n: the next round's base model (snapshot_map: an unnamed file in
 *                    the data directory, mapped), made while the current one's (4n,
 *                    already on the disk) is still held; that one goes once no download
 *                    reads it
 * An older model a download asks for (models_acquire) is not counted: its file is
 * written only while the free space exceeds this reserve plus its 4n, else it stays in
 * memory.
 * plus CLOSE_WRITE_SLACK. The LMDB transaction (entries, summaries) is not counted: it is
 * small beside these, and LMDB's map has its own bound. E.g. 1B parameters, fedadam,
 * downlink with error feedback: 4 + 8 + 4 + 4 + 4 = 24 GB. */
uint64_t models_close_write_bytes(const struct coord *c)
{
    if (!c->experiment[0] || c->n_params == 0)
        return 0;
    const uint64_t f4 = (uint64_t)c->n_params * sizeof(float);
    uint64_t b = f4 + (uint64_t)SAFETENSORS_PER_TENSOR * c->layout.n_tensors;
    b += pinned_bytes(c, &c->policy.model.config) + pinned_bytes(c, &c->policy.model.tokenizer);
    b += outer_state_bytes(&c->rnd.outer);
    if (c->down_ef)
        b += f4;
    if (c->down_on)
        b += 32 + f4;
    b += f4;   /* the next base model's file */
    return b + CLOSE_WRITE_SLACK;
}

int models_save(struct coord *c, const float *params, const uint8_t hash[32])
{
    char dir[PATH_MAX], tmp[PATH_MAX + 16], file[PATH_MAX + 40];
    model_dir(c, hash, dir, sizeof dir);
    if (file_exists(dir))
        return 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    int rc = file_mkdirs(tmp, 0755);
    const struct policy_model *pm = &c->policy.model;
    if (rc == 0 && c->layout.kind == MODEL_LAYOUT_GPT2) {
        rc = gpt2_save(tmp, &c->cfg, params);
    } else if (rc == 0) {
        static const struct st_meta meta = { NAMED_META_KEY, NAMED_META_VALUE };
        snprintf(file, sizeof file, "%s/model.safetensors", tmp);
        rc = model_write_safetensors(file, &c->layout, params, &meta, 1, 0644);
        if (rc == 0 && pm->config.present)
            rc = copy_pinned(c, &pm->config, tmp, "config.json");
    }
    if (rc == 0 && pm->tokenizer.present)
        rc = copy_pinned(c, &pm->tokenizer, tmp, "tokenizer.json");
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = -errno;
    if (rc == 0)
        rc = file_fsync_dir_of(dir);
    if (rc != 0) {
        log_error("cannot write the model checkpoint %s: %s", dir,
                  rc < -1000 ? model_strerror(rc) : strerror(-rc));
        remove_partial_dir(tmp);   /* nothing of it stays (no-op once renamed) */
        return COORD_ERR_IO;
    }
    return 0;
}

/* The checkpoint named hash, of whatever model (an ended experiment's too), read and
 * checked against its name: *flat (malloc'd) holds its L->n_params values, *L its
 * layout (the caller frees both). A GPT-2 checkpoint by gpt2_load, a named one (metadata
 * aulac_layout "named") by its own layout. */
static int load_checked(struct coord *c, const uint8_t hash[32], struct model_layout *L,
                        float **flat)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], why[300] = "";
    memset(L, 0, sizeof *L);
    *flat = NULL;
    model_dir(c, hash, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct safetensors *f = NULL;
    int rc = safetensors_open(path, &f);
    if (rc != 0) {
        log_error("cannot load the model checkpoint %s: %s", path, safetensors_strerror(rc));
        return COORD_ERR_STATE;
    }
    const char *kind = safetensors_meta(f, NAMED_META_KEY);
    if (kind && strcmp(kind, NAMED_META_VALUE) == 0) {
        rc = model_layout_from_safetensors(f, L, why, sizeof why);
        if (rc == 0 && !(*flat = malloc(L->n_params * sizeof(float))))
            rc = MODEL_ERR_NOMEM;
        if (rc == 0)
            rc = model_read_tensors(L, f, *flat, why, sizeof why);
        safetensors_close(f);
    } else {
        safetensors_close(f);
        struct gpt2_config cfg;
        rc = gpt2_load(dir, &cfg, flat);
        if (rc == 0)
            rc = model_layout_gpt2(&cfg, L);
    }
    if (rc != 0) {
        log_error("cannot load the model checkpoint %s: %s%s%s", dir, model_strerror(rc),
                  why[0] ? ": " : "", why);
        free(*flat);
        *flat = NULL;
        model_layout_free(L);
        return rc == MODEL_ERR_NOMEM ? COORD_ERR_NOMEM : COORD_ERR_STATE;
    }
    uint8_t got[32];
    model_layout_hash(L, *flat, got);
    if (memcmp(got, hash, 32) != 0) {
        log_error("the checkpoint %s does not hash to its name: the file was altered", dir);
        free(*flat);
        *flat = NULL;
        model_layout_free(L);
        return COORD_ERR_STATE;
    }
    return 0;
}

int models_load(struct coord *c, const uint8_t hash[32], float *params)
{
    struct model_layout L;
    float *flat = NULL;
    int rc = load_checked(c, hash, &L, &flat);
    if (rc != 0)
        return rc;
    char why[300] = "its GPT-2 sizes differ";
    if (model_layout_compare(&L, &c->layout, why, sizeof why) != 0 ||
        L.n_params != c->n_params ||
        (L.kind == MODEL_LAYOUT_GPT2 && memcmp(&L.gpt2, &c->cfg, sizeof c->cfg) != 0)) {
        char hex[65];
        hex_encode(hash, 32, hex);
        log_error("the checkpoint of model %.16s is another model than the policy's: %s", hex,
                  why);
        free(flat);
        model_layout_free(&L);
        return COORD_ERR_STATE;
    }
    memcpy(params, flat, L.n_params * sizeof(float));
    free(flat);
    model_layout_free(&L);
    return 0;
}

/* The checkpoint named hash, of whatever shape (an ended experiment's), into s. */
static int models_load_any(struct coord *c, const uint8_t hash[32], struct model_snapshot *s)
{
    struct model_layout L;
    int rc = load_checked(c, hash, &L, &s->params);
    if (rc == 0)
        s->n = L.n_params;
    model_layout_free(&L);
    return rc;
}

/* Rounds completed when model hash was made: the closed round whose summary names it,
 * searched from `upto` down, or 0 (the initial model). */
static uint64_t model_round(struct coord *c, const char *experiment, const uint8_t hash[32],
                            uint64_t upto)
{
    for (uint64_t r = upto; r >= 1; r--) {
        struct round_summary s;
        int found = 0;
        if (state_get_round(c, experiment, r, &s, &found) != 0 || !found)
            continue;
        free(s.members);
        if (memcmp(s.model_hash, hash, 32) == 0)
            return r;
    }
    return 0;
}

int models_acquire(struct coord *c, const uint8_t hash[32], struct model_snapshot **out)
{
    *out = NULL;
    struct model_snapshot *s = NULL;
    pthread_mutex_lock(&c->mu);
    if (!hash && !c->rnd.base) {
        pthread_mutex_unlock(&c->mu);
        return COORD_ERR_NOT_FOUND;   /* idle: no current model */
    }
    for (;;) {
        if (c->rnd.base && (!hash || memcmp(c->rnd.base->hash, hash, 32) == 0)) {
            s = c->rnd.base;
            break;
        }
        struct model_snapshot *a = c->archived;
        if (!a || memcmp(a->hash, hash, 32) != 0)
            break;
        if (!a->loading) {
            s = a;
            break;
        }
        pthread_cond_wait(&c->changed, &c->mu);   /* another download is reading it */
    }
    if (s) {
        s->refs++;
        pthread_mutex_unlock(&c->mu);
        *out = s;
        return 0;
    }
    if (c->archived) {
        pthread_mutex_unlock(&c->mu);
        return COORD_ERR_BUSY;
    }
    char path[PATH_MAX + 20];
    model_dir(c, hash, path, PATH_MAX);
    strcat(path, "/model.safetensors");
    const uint64_t upto = c->rnd.base ? c->rnd.base->round : 0;
    char experiment[COORD_EXPERIMENT_MAX + 1];   /* an older model of another: round 0 */
    snprintf(experiment, sizeof experiment, "%s", c->experiment);
    if (!file_exists(path)) {
        pthread_mutex_unlock(&c->mu);
        return COORD_ERR_NOT_FOUND;
    }
    s = calloc(1, sizeof *s);   /* params: models_load_any, of the checkpoint's size */
    if (!s) {
        pthread_mutex_unlock(&c->mu);
        return COORD_ERR_NOMEM;
    }
    s->refs = 1;
    memcpy(s->hash, hash, 32);
    s->loading = 1;
    c->archived = s;
    const uint64_t close_reserve = c->close_reserve_bytes;
    pthread_mutex_unlock(&c->mu);

    /* Reading and hashing the checkpoint takes a while: without mu. */
    int rc = models_load_any(c, hash, s);
    /* Its base file (4N) is not in the close reserve (models_close_write_bytes counts the
     * open round's files only), so it is written only while the data directory keeps the
     * close reserve free beside it: free space > close reserve + 4N. Else the older model
     * stays in memory for its downloads (logged), never taking the close's room. */
    if (rc == 0) {
        const uint64_t need = (uint64_t)s->n * sizeof(float);
        struct statvfs v;
        const uint64_t free_b = statvfs(c->opt.data_dir, &v) == 0
            ? (uint64_t)v.f_bavail * v.f_frsize : 0;
        if (free_b > close_reserve && free_b - close_reserve > need) {
            coord_snapshot_to_file(c, s);   /* else it stays in memory (logged) */
        } else {
            char hex[65];
            hex_encode(hash, 32, hex);
            log_info("older model %.16s stays in memory (%llu bytes): %llu bytes free in %s, "
                     "not more than the round close's reserve (%llu) plus its file",
                     hex, (unsigned long long)need, (unsigned long long)free_b,
                     c->opt.data_dir, (unsigned long long)close_reserve);
        }
    }
    const uint64_t round = rc == 0 ? model_round(c, experiment, hash, upto) : 0;

    pthread_mutex_lock(&c->mu);
    s->loading = 0;
    s->round = round;
    if (rc != 0) {
        snapshot_release(c, s);
        s = NULL;
    }
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    *out = s;
    return rc;
}

void models_prune(struct coord *c, const uint8_t keep[][32], size_t n_keep)
{
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s/models", c->opt.data_dir);
    /* The last models of earlier experiments stay, whatever the current one prunes. */
    struct experiment_info *ended = NULL;
    size_t n_ended = 0;
    if (queue_list(c, &ended, &n_ended) != 0)
        return;   /* logged; nothing pruned */
    DIR *d = opendir(root);
    if (!d) {
        queue_list_free(ended, n_ended);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint8_t h[32];
        if (hex_decode(e->d_name, h, 32) != 0)
            continue;
        int kept = 0;
        for (size_t i = 0; i < n_keep; i++)
            kept |= memcmp(keep[i], h, 32) == 0;
        for (size_t i = 0; i < n_ended; i++)
            kept |= memcmp(ended[i].final_model_hash, h, 32) == 0;
        if (kept)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s/model.safetensors", root, e->d_name);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s/config.json", root, e->d_name);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", root, e->d_name);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        rmdir(path);
    }
    closedir(d);
    queue_list_free(ended, n_ended);
}

static void outer_path(const struct coord *c, uint64_t completed, char *out, size_t cap)
{
    char dir[PATH_MAX / 2];
    coord_experiment_dir(c, dir, sizeof dir);
    snprintf(out, cap, "%s/outer/%llu.bin", dir, (unsigned long long)completed);
}

/* The outer state of `completed` rounds: outer/<completed>.bin, the record of
 * aggregate/outer.h ("AUOS" header, then m and v). It is never held in memory whole:
 * outer_state_load checks its header and size and takes the step; a close's
 * outer_state_open creates outer/<completed+1>.bin.tmp as a kernel-side copy of it (zeros
 * at round 0), maps it, and points the optimizer's m and v there, with
 * state_map_release as the step's release hook, so the step's pages are written back and
 * dropped chunk by chunk (OUTER_CHUNK); outer_state_save writes the header with the new
 * step and renames the file durable. The previous round's file is not touched, so a crash
 * at any point resumes from the last committed round's state. */
int outer_state_open(struct coord *c, uint64_t completed_rounds)
{
    struct outer_opt *o = &c->rnd.outer;
    const size_t vectors = o->kind == OUTER_FEDADAM ? 2 : o->kind == OUTER_NESTEROV ? 1 : 0;
    if (vectors == 0)
        return 0;
    char from[PATH_MAX], tmp[PATH_MAX + 8];
    outer_path(c, completed_rounds + 1, tmp, sizeof tmp - 8);
    strcat(tmp, ".tmp");
    outer_path(c, completed_rounds, from, sizeof from);
    uint8_t hdr[OUTER_STATE_HEADER];
    outer_state_header(o, hdr);
    state_map_close(&c->rnd.outer_map, 1);
    int rc = state_map_create(&c->rnd.outer_map, tmp, completed_rounds ? from : NULL, hdr,
                              sizeof hdr, o->n, vectors);
    if (rc != 0) {
        log_error("cannot set up the outer optimizer state %s from %s: %s", tmp,
                  completed_rounds ? from : "zeros", strerror(-rc));
        return COORD_ERR_IO;
    }
    float *m = (float *)(void *)(c->rnd.outer_map.map + c->rnd.outer_map.at);
    o->m = m;
    o->v = vectors == 2 ? m + o->n : NULL;
    o->release = state_map_release;
    o->release_arg = &c->rnd.outer_map;
    return 0;
}

int outer_state_save(struct coord *c, uint64_t completed_rounds)
{
    char path[PATH_MAX];
    outer_path(c, completed_rounds, path, sizeof path);
    struct outer_opt *o = &c->rnd.outer;
    uint8_t hdr[OUTER_STATE_HEADER];
    outer_state_header(o, hdr);
    int rc;
    if (c->rnd.outer_map.fd >= 0) {
        rc = state_map_commit(&c->rnd.outer_map, path, hdr, sizeof hdr);
    } else if (o->kind == OUTER_FEDAVG) {
        rc = file_write_atomic(path, hdr, sizeof hdr, 0644);   /* stateless: the header */
    } else {
        log_error("the outer optimizer state %s was not set up by the close", path);
        return COORD_ERR_STATE;
    }
    o->m = o->v = NULL;
    o->release = NULL;
    o->release_arg = NULL;
    if (rc != 0) {
        log_error("cannot write the outer optimizer state %s: %s", path, strerror(-rc));
        return COORD_ERR_IO;
    }
    return 0;   /* older ones: checkpoint retention (coord_retain_checkpoints) */
}

int outer_state_load(struct coord *c, uint64_t completed_rounds)
{
    c->rnd.outer.step = 0;
    if (completed_rounds == 0)
        return 0;   /* a fresh optimizer */
    char path[PATH_MAX];
    outer_path(c, completed_rounds, path, sizeof path);
    uint8_t hdr[OUTER_STATE_HEADER];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && fstat(fd, &st) == 0 && pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        log_error("cannot read the outer optimizer state %s: %s", path, strerror(e));
        return COORD_ERR_STATE;
    }
    uint64_t step;
    if (outer_state_header_check(&c->rnd.outer, hdr, sizeof hdr, &step) != 0 ||
        (size_t)st.st_size != outer_state_bytes(&c->rnd.outer)) {
        log_error("the outer optimizer state %s does not match the policy", path);
        return COORD_ERR_STATE;
    }
    c->rnd.outer.step = step;
    return 0;
}

static void downlink_path(const struct coord *c, const uint8_t to[32], char *out, size_t cap)
{
    char hex[65], dir[PATH_MAX / 2];
    hex_encode(to, 32, hex);
    coord_experiment_dir(c, dir, sizeof dir);
    snprintf(out, cap, "%s/downlink/%s.bin", dir, hex);
}

static void downlink_tmp_path(const struct coord *c, char *out, size_t cap)
{
    char dir[PATH_MAX / 2];
    coord_experiment_dir(c, dir, sizeof dir);
    snprintf(out, cap, "%s/downlink/close.tmp", dir);
}

int downlink_begin(struct coord *c, const uint8_t from[32], int *fd)
{
    char path[PATH_MAX];
    coord_experiment_dir(c, path, sizeof path - 16);
    strcat(path, "/downlink");
    file_mkdirs(path, 0755);
    downlink_tmp_path(c, path, sizeof path);
    *fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ssize_t w = *fd >= 0 ? pwrite(*fd, from, 32, 0) : -1;
    if (w != 32) {
        int e = *fd < 0 || w < 0 ? errno : EIO;
        log_error("cannot write the downlink update %s: %s", path, strerror(e));
        downlink_abandon(c, fd);
        return COORD_ERR_IO;
    }
    return 0;
}

void downlink_abandon(struct coord *c, int *fd)
{
    if (*fd < 0)
        return;
    char path[PATH_MAX];
    downlink_tmp_path(c, path, sizeof path);
    close(*fd);
    *fd = -1;
    unlink(path);
}

int downlink_save(struct coord *c, const uint8_t to[32], int *fd, struct down_payload **out)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    downlink_tmp_path(c, tmp, sizeof tmp);
    downlink_path(c, to, path, sizeof path);
    *out = NULL;
    int rc = fsync(*fd) == 0 ? 0 : -errno;
    if (rc == 0 && close(*fd) != 0)
        rc = -errno;
    else if (rc != 0)
        close(*fd);
    *fd = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = file_fsync_dir_of(path);
    if (rc != 0) {
        unlink(tmp);
        log_error("cannot write the downlink update %s: %s", path, strerror(-rc));
        return COORD_ERR_IO;
    }
    /* Out of memory or maps for it: none; members fetch the whole model. */
    if ((rc = down_payload_map(path, out)) != 0)
        log_error("cannot map the downlink update %s: %s (members download the whole model)",
                  path, strerror(-rc));
    return 0;
}

int downlink_load(struct coord *c, const uint8_t to[32])
{
    char path[PATH_MAX];
    downlink_path(c, to, path, sizeof path);
    struct down_payload *d;
    if (down_payload_map(path, &d) != 0)
        return 0;   /* none: members download the whole model */
    down_payload_release(c->rnd.down);
    c->rnd.down = d;
    memcpy(c->rnd.down_from, d->from, 32);
    return 0;
}

static void down_residual_path(const struct coord *c, uint64_t completed, char *out, size_t cap)
{
    char dir[PATH_MAX / 2];
    coord_experiment_dir(c, dir, sizeof dir);
    snprintf(out, cap, "%s/outer/%llu.down", dir, (unsigned long long)completed);
}

/* The downlink residual of `completed` rounds: outer/<completed>.down, n_params LE
 * floats, held like the outer state: down_residual_open maps a kernel-side copy
 * (outer/<completed+1>.down.tmp; zeros at round 0) whose pages the encode drops as it
 * goes (codec_encode_released, state_map_release), down_residual_save makes it durable. */
int down_residual_open(struct coord *c, uint64_t completed_rounds)
{
    if (!c->down_ef)
        return 0;
    char from[PATH_MAX], tmp[PATH_MAX + 8];
    down_residual_path(c, completed_rounds + 1, tmp, sizeof tmp - 8);
    strcat(tmp, ".tmp");
    down_residual_path(c, completed_rounds, from, sizeof from);
    state_map_close(&c->rnd.down_map, 1);
    int rc = state_map_create(&c->rnd.down_map, tmp, completed_rounds ? from : NULL, NULL, 0,
                              c->n_params, 1);
    if (rc != 0) {
        log_error("cannot set up the downlink residual %s from %s: %s", tmp,
                  completed_rounds ? from : "zeros", strerror(-rc));
        return COORD_ERR_IO;
    }
    c->rnd.down_residual = (float *)(void *)c->rnd.down_map.map;
    return 0;
}

int down_residual_save(struct coord *c, uint64_t completed_rounds)
{
    if (!c->down_ef)
        return 0;
    char path[PATH_MAX];
    down_residual_path(c, completed_rounds, path, sizeof path);
    c->rnd.down_residual = NULL;
    int rc = c->rnd.down_map.fd >= 0 ? state_map_commit(&c->rnd.down_map, path, NULL, 0)
                                      : -EBADF;
    if (rc != 0) {
        log_error("cannot write the downlink residual %s: %s", path, strerror(-rc));
        return COORD_ERR_IO;
    }
    return 0;   /* older ones: checkpoint retention (coord_retain_checkpoints) */
}

int down_residual_load(struct coord *c, uint64_t completed_rounds)
{
    if (!c->down_ef || completed_rounds == 0)
        return 0;
    char path[PATH_MAX];
    down_residual_path(c, completed_rounds, path, sizeof path);
    struct stat st;
    if (stat(path, &st) != 0 || (size_t)st.st_size != c->n_params * sizeof(float)) {
        log_error("cannot read the downlink residual %s: %s", path,
                  errno ? strerror(errno) : "not the model's size");
        return COORD_ERR_STATE;
    }
    return 0;
}
