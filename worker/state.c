#include "worker/state.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "model/layout.h"
#include "worker/plugin.h"

static void path_of(const struct worker *w, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", w->opt.state_dir, name);
}

int worker_state_open(struct worker *w)
{
    int rc = file_mkdirs(w->opt.state_dir, 0700);
    if (rc != 0) {
        log_error("cannot create the state directory %s: %s", w->opt.state_dir, strerror(-rc));
        return WORKER_EXIT_ERROR;
    }
    return 0;
}

/* Reads a file of exactly n floats into dst; 0, or -1 when absent or of another size. */
static int load_floats(const struct worker *w, const char *name, float *dst, size_t n)
{
    char path[PATH_MAX];
    path_of(w, name, path, sizeof path);
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, n * sizeof(float), &buf, &len) != 0)
        return -1;
    int ok = len == n * sizeof(float);
    if (ok)
        memcpy(dst, buf, len);
    free(buf);
    return ok ? 0 : -1;
}

static int save_floats(const struct worker *w, const char *name, const float *src, size_t n)
{
    char path[PATH_MAX];
    path_of(w, name, path, sizeof path);
    int rc = file_write_atomic(path, src, n * sizeof(float), 0600);
    if (rc != 0)
        log_warn("cannot write %s: %s", path, strerror(-rc));
    return rc;
}

/* A new experiment (or none recorded): the plug-in's state_dir holds nothing of it. */
static int reset_plugin(struct worker *w)
{
    char why[512];
    if (w->plugin && plugin_reset(w->plugin, why, sizeof why) != 0)
        log_warn("%s", why);
    return 0;
}

int worker_state_load(struct worker *w)
{
    char path[PATH_MAX];
    /* Training state of a round whose acceptance never became known: not the state. */
    path_of(w, "residual.pending", path, sizeof path);
    unlink(path);
    path_of(w, "optimizer.pending", path, sizeof path);
    unlink(path);
    path_of(w, "progress", path, sizeof path);
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, 4096, &buf, &len) != 0)
        return reset_plugin(w);   /* a fresh member */
    char exp[CRYPTO_ID_MAX + 1] = "", model[65] = "";
    unsigned long long last = 0, opt_step = 0;
    int n = sscanf((const char *)buf, "aulac-worker-state v1\nexperiment: %64s\nlast_round: "
                   "%llu\nmodel: %64s\noptimizer_step: %llu", exp, &last, model, &opt_step);
    free(buf);
    if (n < 3) {
        log_warn("%s is unreadable; starting this member's state afresh", path);
        return reset_plugin(w);
    }
    if (strcmp(exp, w->experiment) != 0) {
        log_info("the state in %s belongs to experiment %s; starting afresh for %s",
                 w->opt.state_dir, exp, w->experiment);
        /* Another experiment's residual and moments must never be picked up later. */
        static const char *const stale[] = { "residual.f32", "optimizer.st", "model.f32" };
        for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
            path_of(w, stale[i], path, sizeof path);
            unlink(path);
        }
        return reset_plugin(w);
    }
    w->last_round = last;
    w->optimizer_step = n == 4 ? opt_step : 0;
    uint8_t want[32], got[32];
    if (hex_decode(model, want, 32) == 0 && load_floats(w, "model.f32", w->base, w->n) == 0) {
        model_layout_hash(&w->layout, w->base, got);
        if (memcmp(got, want, 32) == 0) {
            memcpy(w->base_hash, got, 32);
            w->have_base = 1;
        }
    }
    if (load_floats(w, "residual.f32", w->residual, w->n) != 0)
        memset(w->residual, 0, w->n * sizeof(float));
    path_of(w, "optimizer.st", path, sizeof path);
    if (w->trainer && file_exists(path) && trainer_load_state(w->trainer, path) != 0)
        log_warn("cannot restore the inner optimizer state from %s; starting it afresh", path);
    log_info("resuming from %s: last accepted round %llu%s", w->opt.state_dir, last,
             w->have_base ? ", replica intact" : "");
    return 0;
}

int worker_state_save_model(struct worker *w)
{
    return save_floats(w, "model.f32", w->base, w->n) == 0 ? worker_state_save_progress(w) : 0;
}

/* The residual and moments after a round's training are first written as *.pending and
 * become the state only when the coordinator has accepted that round's update
 * (worker_state_commit_training): a crash in between restarts from the state of the last
 * accepted round, consistent with `progress`, instead of training the round again on top
 * of state that already includes it. */
int worker_state_save_training(struct worker *w)
{
    save_floats(w, "residual.pending", w->residual, w->n);
    if (!w->trainer)
        return 0;   /* a plug-in keeps its own optimizer state (its state_dir) */
    char path[PATH_MAX];
    path_of(w, "optimizer.pending", path, sizeof path);
    int rc = trainer_save_state(w->trainer, path);
    if (rc != 0)
        log_warn("cannot save the inner optimizer state to %s: %s", path, model_strerror(rc));
    return 0;
}

int worker_state_commit_training(struct worker *w)
{
    static const char *const names[][2] = { { "residual.pending", "residual.f32" },
                                            { "optimizer.pending", "optimizer.st" } };
    for (size_t i = 0; i < 2; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        path_of(w, names[i][0], from, sizeof from);
        path_of(w, names[i][1], to, sizeof to);
        if (rename(from, to) != 0 && (errno != ENOENT || w->trainer))
            log_warn("cannot move %s to %s: %s", from, to, strerror(errno));
    }
    return worker_state_save_progress(w);   /* its directory fsync makes the renames durable */
}

int worker_state_save_progress(struct worker *w)
{
    char hex[65] = "none";
    if (w->have_base)
        hex_encode(w->base_hash, 32, hex);
    char text[320];
    int n = snprintf(text, sizeof text,
                     "aulac-worker-state v1\nexperiment: %s\nlast_round: %" PRIu64 "\nmodel: %s\n"
                     "optimizer_step: %" PRIu64 "\n", w->experiment, w->last_round, hex,
                     w->optimizer_step);
    char path[PATH_MAX];
    path_of(w, "progress", path, sizeof path);
    int rc = file_write_atomic(path, text, (size_t)n, 0600);
    if (rc != 0)
        log_warn("cannot write %s: %s", path, strerror(-rc));
    return 0;
}

/* Copies the pinned file src into dir/name (a checkpoint that loads with
 * from_pretrained needs the config and tokenizer next to the tensors). */
static int copy_into(const char *src, const char *dir, const char *name)
{
    uint8_t *buf;
    size_t len;
    int rc = file_read_all(src, (size_t)1 << 30, &buf, &len);
    if (rc != 0)
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = file_write_atomic(path, buf, len, 0644);
    free(buf);
    return rc;
}

int worker_state_save_final(struct worker *w)
{
    char path[PATH_MAX];
    path_of(w, "final", path, sizeof path);
    int rc;
    if (w->layout.kind == MODEL_LAYOUT_GPT2) {
        rc = gpt2_save(path, &w->layout.gpt2, w->base);
        if (rc == 0 && w->tokenizer_path)
            rc = copy_into(w->tokenizer_path, path, "tokenizer.json");
    } else {
        char file[PATH_MAX + 32];
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        rc = file_mkdirs(path, 0755);
        if (rc == 0)
            rc = model_write_safetensors(file, &w->layout, w->base, NULL, 0, 0644);
        if (rc == 0 && w->config_path)
            rc = copy_into(w->config_path, path, "config.json");
        if (rc == 0 && w->tokenizer_path)
            rc = copy_into(w->tokenizer_path, path, "tokenizer.json");
    }
    if (rc != 0)
        log_warn("cannot save the final model to %s: %s", path,
                 rc < 0 && rc > -1000 ? strerror(-rc) : model_strerror(rc));
    else
        log_info("final model saved to %s (model.safetensors%s%s)", path,
                 w->layout.kind == MODEL_LAYOUT_GPT2 || w->config_path ? " + config.json" : "",
                 w->tokenizer_path ? " + tokenizer.json" : "");
    return rc;
}
