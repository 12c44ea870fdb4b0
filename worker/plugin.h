#ifndef AULAC_WORKER_PLUGIN_H
#define AULAC_WORKER_PLUGIN_H
/* A plug-in trainer (worker/TRAINER.md, the contract): the member's own command trains
 * the round from the base model; this module writes the round's files, runs or talks to
 * the command, enforces its timeout and validates everything it hands back. The rest of
 * the round (delta, codec, signature, upload) stays in worker.c.
 *
 *   plugin_open(&site->trainer, state_dir, &p)            once per experiment
 *   plugin_train_round(p, &req, local, &metrics, why)      each round
 *   plugin_close(p)                                        experiment ends (serve: "exit")
 *
 * Errors: PLUGIN_ERR_* with one sentence in why saying what the plug-in did wrong and
 * where ("round 3: the trainer's metrics.json claims 20480 tokens; the plan allows at
 * most 10240"). After any error the round uploads nothing; the next round starts clean
 * (a serve-mode process that misbehaved is killed and started again).
 *
 * Guarantees (TRAINER.md): each round gets a fresh directory <workdir>/round-<R>-<hex>/
 * (older ones removed); outputs are read into private memory (never mapped; links,
 * FIFOs and devices refused without blocking); plugin_open locks <workdir>/lock (a
 * second plugin on the same workdir is refused, naming the holder's pid) and makes the
 * calling process the child subreaper: descendants that escaped the command's process
 * group are killed and reaped at the end of each round, and so are every child of the
 * process other than the serve-mode command itself, so the caller must start no other
 * children it expects to keep. The command gets PR_SET_PDEATHSIG SIGKILL, which follows
 * the thread that forked it: call plugin_* from one long-lived thread (the worker's
 * main thread). */
#include <stddef.h>
#include <stdint.h>

#include "model/layout.h"
#include "policies/plan.h"
#include "policies/site.h"

enum plugin_error {
    PLUGIN_ERR_ARG = -1700,
    PLUGIN_ERR_IO = -1701,        /* the workdir or a round file cannot be written/read */
    PLUGIN_ERR_START = -1702,     /* the command cannot be started */
    PLUGIN_ERR_EXIT = -1703,      /* it exited non-zero / by a signal, or said "error" */
    PLUGIN_ERR_TIMEOUT = -1704,   /* still running at timeout_s: killed */
    PLUGIN_ERR_OUTPUT = -1705,    /* outputs missing, both, or not the model's tensors */
    PLUGIN_ERR_NONFINITE = -1706, /* a NaN or infinity in its tensors or losses */
    PLUGIN_ERR_METRICS = -1707,   /* metrics.json missing, malformed or over the plan */
    PLUGIN_ERR_PROTOCOL = -1708,  /* serve mode: garbage or a wrong line on stdout */
    PLUGIN_ERR_NOMEM = -1709,
    PLUGIN_ERR_STOPPED = -1710,   /* the worker is stopping (signal): the command was ended */
};

struct plugin;

/* What one round gives the plug-in: everything plan.json holds (TRAINER.md). */
struct plugin_round {
    const char *experiment;
    const char *member;
    uint64_t round, total_rounds;
    const struct policy_round_plan *plan;
    const struct policy *policy;        /* model family, gpt2 sizes, validation fraction */
    const struct model_layout *layout;
    const float *base;                  /* layout->n_params values */
    const char *config_path;            /* pinned config.json, or NULL (gpt2: written) */
    const char *tokenizer_path;         /* pinned tokenizer.json, or NULL */
    const char *data_dir;               /* the member's corpus */
    const char *const *data_files;      /* relative paths, in corpus order */
    size_t n_data_files;
    uint64_t optimizer_step;            /* steps this replica took in earlier rounds */
    uint64_t seed;                      /* this member's data seed for the round */
    int validation_windows;
    /* Serve mode: called for each valid "progress" line of this round (may be NULL). */
    void (*on_progress)(void *arg, uint64_t step, uint64_t steps, double loss);
    void *progress_arg;
};

struct plugin_metrics {
    uint64_t tokens, steps;
    double train_loss;
    double validation_loss;             /* NaN when the plug-in wrote null */
    double seconds;                     /* wall time of the plug-in's part */
};

/* t: the site's trainer (kind command), which must outlive the plugin; state_dir: the
 * worker's, for the default workdir. Creates workdir/state and locks workdir/lock.
 * PLUGIN_ERR_ARG, PLUGIN_ERR_IO (also: the workdir is another worker's), PLUGIN_ERR_NOMEM. */
int plugin_open(const struct site_trainer *t, const char *state_dir, struct plugin **out,
                char *why, size_t cap);
/* Ends a serve-mode process ({"type":"exit"}, then SIGTERM/SIGKILL after 5 s). */
void plugin_close(struct plugin *p);
/* A new experiment: empties workdir/state (and restarts a serve-mode process). */
int plugin_reset(struct plugin *p, char *why, size_t cap);

/* Runs one round: the trained model into local[layout->n_params] (from model.safetensors,
 * or base + delta.safetensors) and its metrics. stop (may be NULL) is polled; when it
 * returns nonzero the command is ended and PLUGIN_ERR_STOPPED returned. */
int plugin_train_round(struct plugin *p, const struct plugin_round *r, float *local,
                       struct plugin_metrics *m, int (*stop)(void), char *why, size_t cap);

const char *plugin_strerror(int rc);

#endif
