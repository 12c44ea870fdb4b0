/* A plug-in trainer (worker/TRAINER.md): the round's files, the command's process
 * group, its timeout and the validation of everything it hands back. */
#define _GNU_SOURCE
#include "worker/plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/timeutil.h"
#include "common/why.h"

extern char **environ;

#define PLUGIN_LINE_MAX (64u << 10)         /* serve-mode stdout line, newline excluded */
#define PLUGIN_LOG_LINE_MAX 4096            /* stderr/oneshot stdout: logged in pieces */
#define PLUGIN_KILL_GRACE_MS 5000           /* SIGTERM, then SIGKILL this much later */
#define PLUGIN_POLL_MS 100
#define PLUGIN_METRICS_MAX (1u << 20)
#define PLUGIN_DRAIN_MS 2000                /* reading what is left after an exit */

/* Bytes of one of the command's output streams, cut into lines. */
struct linebuf {
    char *buf;          /* cap + 1 bytes */
    size_t len, cap;
    int overflow;       /* the current line ran past cap */
};

struct proc {
    pid_t pid;          /* 0: none; also its process group id */
    int in_fd;          /* serve: our end of its stdin (a socket: no SIGPIPE); else -1 */
    int out_fd, err_fd; /* its stdout and stderr; -1 once at EOF */
    struct linebuf out, err;
    int exited;         /* the leader has exited (not yet reaped) */
};

struct plugin {
    const struct site_trainer *t;
    char *workdir, *round_dir, *in_dir, *out_dir, *state_dir, *plan_path;
    struct proc serve;  /* serve mode: the running command */
};

/* What the serve-mode reader makes of the lines of one round. */
struct serve_round {
    uint64_t round;
    const struct plugin_round *r;
    int done;           /* a "done" for this round */
    int rc;             /* first error (PLUGIN_ERR_*), 0 */
    char *why;
    size_t cap;
};

const char *plugin_strerror(int rc)
{
    switch (rc) {
    case 0: return "ok";
    case PLUGIN_ERR_ARG: return "invalid argument";
    case PLUGIN_ERR_IO: return "cannot write or read the trainer's files";
    case PLUGIN_ERR_START: return "the trainer command cannot be started";
    case PLUGIN_ERR_EXIT: return "the trainer failed";
    case PLUGIN_ERR_TIMEOUT: return "the trainer ran past its timeout";
    case PLUGIN_ERR_OUTPUT: return "the trainer's output is not the model";
    case PLUGIN_ERR_NONFINITE: return "the trainer's output is not finite";
    case PLUGIN_ERR_METRICS: return "the trainer's metrics.json is refused";
    case PLUGIN_ERR_PROTOCOL: return "the trainer broke the serve protocol";
    case PLUGIN_ERR_NOMEM: return "out of memory";
    case PLUGIN_ERR_STOPPED: return "the worker is stopping";
    default: return "unknown plug-in error";
    }
}

/* --- files ------------------------------------------------------------------ */

static char *path_join(const char *a, const char *b)
{
    char *s;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    if (f->level == 0)
        return 0;   /* the directory itself stays */
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes everything inside dir (never following links); dir stays. */
static int empty_dir(const char *dir)
{
    if (!file_exists(dir))
        return file_mkdirs(dir, 0700);
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

/* --- plan.json ---------------------------------------------------------------- */

/* The shortest decimal text that reads back as v (the plan's float options). */
static void jw_float(struct jsonw *w, float v)
{
    if (!isfinite(v)) {
        jw_raw(w, "null");
        return;
    }
    char b[40];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)v);
        if (strtof(b, NULL) == v)
            break;
    }
    jw_raw(w, b);
}

/* The shortest decimal text that reads back as v. */
static void jw_double(struct jsonw *w, double v)
{
    if (!isfinite(v)) {
        jw_raw(w, "null");
        return;
    }
    char b[40];
    for (int p = 15; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strtod(b, NULL) == v)
            break;
    }
    jw_raw(w, b);
}

static void jw_path_or_null(struct jsonw *w, const char *path)
{
    if (path)
        jw_str(w, path);
    else
        jw_raw(w, "null");
}

/* plan.json's text (TRAINER.md, "plan.json"); NULL when out of memory. */
static char *plan_text(const struct plugin *p, const struct plugin_round *r, const char *config,
                       const char *tokenizer, size_t *len)
{
    const struct policy_round_plan *pl = r->plan;
    const struct model_layout *L = r->layout;
    const uint64_t max_tokens = (uint64_t)pl->local_steps * pl->batch_size * pl->seq_len;
    char *input = path_join(p->in_dir, "model.safetensors");
    char *om = path_join(p->out_dir, "model.safetensors");
    char *od = path_join(p->out_dir, "delta.safetensors");
    char *mj = path_join(p->out_dir, "metrics.json");
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\n  \"aulac_trainer\": 1,\n  ");
    jw_key(&w, "experiment"); jw_str(&w, r->experiment);
    jw_raw(&w, ",\n  "); jw_key(&w, "round"); jw_u64(&w, r->round);
    jw_raw(&w, ",\n  "); jw_key(&w, "total_rounds"); jw_u64(&w, r->total_rounds);
    jw_raw(&w, ",\n  "); jw_key(&w, "member"); jw_str(&w, r->member);
    jw_raw(&w, ",\n  \"model\": {"); jw_key(&w, "family");
    jw_str(&w, r->policy->model.family == POLICY_FAMILY_EXTERNAL ? "external" : "gpt2");
    jw_raw(&w, ", "); jw_key(&w, "n_params"); jw_u64(&w, L->n_params);
    jw_raw(&w, ", "); jw_key(&w, "gpt2");
    if (L->kind == MODEL_LAYOUT_GPT2)
        jw_printf(&w, "{\"vocab_size\": %d, \"n_positions\": %d, \"n_layer\": %d, "
                  "\"n_head\": %d, \"n_embd\": %d}", L->gpt2.vocab_size, L->gpt2.max_seq_len,
                  L->gpt2.n_layer, L->gpt2.n_head, L->gpt2.n_embd);
    else
        jw_raw(&w, "null");
    jw_raw(&w, ",\n            "); jw_key(&w, "input"); jw_str(&w, input);
    jw_raw(&w, ", "); jw_key(&w, "config"); jw_path_or_null(&w, config);
    jw_raw(&w, ", "); jw_key(&w, "tokenizer"); jw_path_or_null(&w, tokenizer);
    jw_raw(&w, "},\n  \"output\": {"); jw_key(&w, "dir"); jw_str(&w, p->out_dir);
    jw_raw(&w, ", "); jw_key(&w, "model"); jw_str(&w, om);
    jw_raw(&w, ", "); jw_key(&w, "delta"); jw_str(&w, od);
    jw_raw(&w, ", "); jw_key(&w, "metrics"); jw_str(&w, mj);
    jw_raw(&w, "},\n  "); jw_key(&w, "state_dir"); jw_str(&w, p->state_dir);
    jw_raw(&w, ",\n  \"training\": {");
    jw_printf(&w, "\"steps\": %u, \"batch_size\": %u, \"seq_len\": %u, \"lr\": ",
              pl->local_steps, pl->batch_size, pl->seq_len);
    jw_float(&w, pl->lr);
    jw_printf(&w, ", \"warmup_steps\": %u, \"optimizer_step\": %" PRIu64 ", \"weight_decay\": ",
              pl->warmup_steps, r->optimizer_step);
    jw_float(&w, pl->weight_decay);
    jw_raw(&w, ", \"beta1\": "); jw_float(&w, pl->beta1);
    jw_raw(&w, ", \"beta2\": "); jw_float(&w, pl->beta2);
    jw_raw(&w, ", \"eps\": "); jw_float(&w, pl->eps);
    jw_raw(&w, ", \"grad_clip\": "); jw_float(&w, pl->grad_clip);
    jw_raw(&w, "},\n  "); jw_key(&w, "seed"); jw_u64(&w, r->seed);
    jw_raw(&w, ",\n  \"data\": {"); jw_key(&w, "dir"); jw_str(&w, r->data_dir ? r->data_dir : "");
    jw_raw(&w, ", \"files\": [");
    for (size_t i = 0; i < r->n_data_files; i++) {
        if (i)
            jw_raw(&w, ", ");
        jw_str(&w, r->data_files[i]);
    }
    jw_raw(&w, "], \"validation_fraction\": ");
    jw_double(&w, r->policy->data.validation_fraction);
    jw_printf(&w, ", \"validation_windows\": %d},\n", r->validation_windows);
    jw_printf(&w, "  \"limits\": {\"max_tokens\": %" PRIu64 ", \"timeout_s\": %u}\n}\n",
              max_tokens, p->t->timeout_s);
    free(input);
    free(om);
    free(od);
    free(mj);
    return jw_finish(&w, len);
}

/* Empties round/ and writes plan.json and in/. */
static int write_round(struct plugin *p, const struct plugin_round *r, char *why, size_t cap)
{
    const uint64_t R = r->round;
    int e = empty_dir(p->round_dir);
    if (e == 0)
        e = file_mkdirs(p->in_dir, 0700);
    if (e == 0)
        e = file_mkdirs(p->out_dir, 0700);
    if (e != 0)
        return why_fail(why, cap, PLUGIN_ERR_IO, "round %" PRIu64 ": cannot prepare the "
                        "trainer's directory %s: %s", R, p->round_dir, strerror(-e));
    char *model = path_join(p->in_dir, "model.safetensors");
    char *config = path_join(p->in_dir, "config.json");
    char *tok = path_join(p->in_dir, "tokenizer.json");
    int rc = 0;
    if (!model || !config || !tok) {
        rc = why_fail(why, cap, PLUGIN_ERR_NOMEM, "round %" PRIu64 ": out of memory", R);
        goto out;
    }
    int st = model_write_safetensors(model, r->layout, r->base, NULL, 0, 0600);
    if (st != 0) {
        rc = why_fail(why, cap, PLUGIN_ERR_IO, "round %" PRIu64 ": cannot write the base "
                      "model %s for the trainer: %s", R, model, model_strerror(st));
        goto out;
    }
    int have_config = 0, have_tok = 0;
    if (r->config_path) {
        if ((e = file_copy_atomic(r->config_path, config, 0600)) != 0) {
            rc = why_fail(why, cap, PLUGIN_ERR_IO, "round %" PRIu64 ": cannot copy the "
                          "model's config %s to %s: %s", R, r->config_path, config, strerror(-e));
            goto out;
        }
        have_config = 1;
    } else if (r->layout->kind == MODEL_LAYOUT_GPT2) {
        if ((st = gpt2_save_config(config, &r->layout->gpt2)) != 0) {
            rc = why_fail(why, cap, PLUGIN_ERR_IO, "round %" PRIu64 ": cannot write %s: %s",
                          R, config, model_strerror(st));
            goto out;
        }
        have_config = 1;
    }
    if (r->tokenizer_path) {
        if ((e = file_copy_atomic(r->tokenizer_path, tok, 0600)) != 0) {
            rc = why_fail(why, cap, PLUGIN_ERR_IO, "round %" PRIu64 ": cannot copy the "
                          "tokenizer %s to %s: %s", R, r->tokenizer_path, tok, strerror(-e));
            goto out;
        }
        have_tok = 1;
    }
    size_t len;
    char *text = plan_text(p, r, have_config ? config : NULL, have_tok ? tok : NULL, &len);
    if (!text) {
        rc = why_fail(why, cap, PLUGIN_ERR_NOMEM, "round %" PRIu64 ": out of memory", R);
        goto out;
    }
    e = file_write_atomic(p->plan_path, text, len, 0600);
    free(text);
    if (e != 0)
        rc = why_fail(why, cap, PLUGIN_ERR_IO, "round %" PRIu64 ": cannot write %s: %s", R,
                      p->plan_path, strerror(-e));
out:
    free(model);
    free(config);
    free(tok);
    return rc;
}

/* --- the command's process ------------------------------------------------------- */

static int linebuf_init(struct linebuf *b, size_t cap)
{
    b->buf = malloc(cap + 1);
    b->len = 0;
    b->cap = cap;
    b->overflow = 0;
    return b->buf ? 0 : -1;
}

static void proc_clear(struct proc *c)
{
    free(c->out.buf);
    free(c->err.buf);
    memset(c, 0, sizeof *c);
    c->pid = 0;
    c->in_fd = c->out_fd = c->err_fd = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* argv[0] as execve needs it: as given when it holds a '/', else found on PATH. */
static char *resolve_program(const char *prog, const char *path_env)
{
    if (strchr(prog, '/'))
        return strdup(prog);
    const char *dirs = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    while (*dirs) {
        const char *end = strchr(dirs, ':');
        size_t n = end ? (size_t)(end - dirs) : strlen(dirs);
        char *cand;
        if (asprintf(&cand, "%.*s/%s", (int)n, n ? dirs : ".", prog) < 0)
            return NULL;
        if (access(cand, X_OK) == 0)
            return cand;
        free(cand);
        dirs += n;
        if (*dirs == ':')
            dirs++;
    }
    return strdup(prog);   /* execve says ENOENT */
}

/* The command's environment: the worker's, minus AULAC_PLAN and the keys the site sets,
 * plus the site's env, plus AULAC_PLAN=plan when plan is not NULL. Strings are borrowed
 * except the AULAC_PLAN one (*owned). */
static char **build_env(const struct site_trainer *t, const char *plan, char **owned)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + t->n_env + 2, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int drop = kl == 10 && strncmp(environ[i], "AULAC_PLAN", 10) == 0;
        for (size_t j = 0; j < t->n_env && !drop; j++)
            drop = strncmp(t->env[j], environ[i], kl) == 0 && t->env[j][kl] == '=';
        if (!drop)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < t->n_env; j++)
        env[k++] = t->env[j];
    *owned = NULL;
    if (plan) {
        if (asprintf(owned, "AULAC_PLAN=%s", plan) < 0) {
            free(env);
            return NULL;
        }
        env[k++] = *owned;
    }
    env[k] = NULL;
    return env;
}

static const char *env_lookup(char **env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
            return env[i] + kl + 1;
    return NULL;
}

/* Starts the command in workdir, in a process group of its own: oneshot with the plan
 * path as its last argument and AULAC_PLAN (stdin /dev/null), serve without either
 * (stdin a socket the worker writes lines to). */
static int spawn(struct plugin *p, int serve, uint64_t round, struct proc *c, char *why,
                 size_t cap)
{
    const struct site_trainer *t = p->t;
    proc_clear(c);
    int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 }, exe[2] = { -1, -1 };
    char *owned = NULL, *prog = NULL;
    char **env = NULL;
    const char **argv = calloc(t->n_args + 2, sizeof *argv);
    int rc = PLUGIN_ERR_NOMEM;
    if (!argv || linebuf_init(&c->out, serve ? PLUGIN_LINE_MAX : PLUGIN_LOG_LINE_MAX) != 0 ||
        linebuf_init(&c->err, PLUGIN_LOG_LINE_MAX) != 0)
        goto fail_why;
    for (size_t i = 0; i < t->n_args; i++)
        argv[i] = t->argv[i];
    if (!serve)
        argv[t->n_args] = p->plan_path;
    env = build_env(t, serve ? NULL : p->plan_path, &owned);
    if (!env || !(prog = resolve_program(t->argv[0], env_lookup(env, "PATH"))))
        goto fail_why;
    rc = PLUGIN_ERR_START;
    if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 || pipe2(exe, O_CLOEXEC) != 0 ||
        (serve && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inp) != 0)) {
        why_fail(why, cap, rc, "round %" PRIu64 ": cannot start the trainer %s: %s", round,
                 t->argv[0], strerror(errno));
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        why_fail(why, cap, rc, "round %" PRIu64 ": cannot start the trainer %s: fork: %s",
                 round, t->argv[0], strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* the child: async-signal-safe calls only (the worker has threads) */
        setpgid(0, 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        int in = serve ? inp[1] : open("/dev/null", O_RDONLY);
        int err = 0;
        if (in < 0 || dup2(in, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
            err = errno;
        if (!err && chdir(p->workdir) != 0)
            err = errno;
        if (!err) {
            execve(prog, (char *const *)argv, env);
            err = errno;
        }
        ssize_t wr = write(exe[1], &err, sizeof err);
        (void)wr;
        _exit(127);
    }
    setpgid(pid, pid);   /* (either side may win the race; both set the same) */
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    close_fd(&exe[1]);
    close_fd(&inp[1]);
    int child_err = 0;
    ssize_t n;
    do
        n = read(exe[0], &child_err, sizeof child_err);
    while (n < 0 && errno == EINTR);
    close_fd(&exe[0]);
    if (n == (ssize_t)sizeof child_err) {
        waitpid(pid, NULL, 0);
        why_fail(why, cap, rc, "round %" PRIu64 ": the trainer command %s cannot be started "
                 "in %s: %s", round, t->argv[0], p->workdir, strerror(child_err));
        goto fail;
    }
    c->pid = pid;
    c->out_fd = outp[0];
    c->err_fd = errp[0];
    c->in_fd = inp[0];
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
    free(argv);
    free(env);
    free(owned);
    free(prog);
    return 0;
fail_why:
    why_fail(why, cap, rc, "round %" PRIu64 ": out of memory starting the trainer", round);
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&outp[i]);
        close_fd(&errp[i]);
        close_fd(&inp[i]);
        close_fd(&exe[i]);
    }
    free(argv);
    free(env);
    free(owned);
    free(prog);
    proc_clear(c);
    return rc;
}

/* 1 when the leader has exited (left a zombie: its pid and group id stay ours until
 * reaped), 0 while it runs. */
static int proc_exited(struct proc *c)
{
    if (c->exited)
        return 1;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD ? (c->exited = 1) : 0;
    if (si.si_pid == c->pid)
        c->exited = 1;
    return c->exited;
}

/* Hands each complete line of the stream to fn; a line over the buffer goes as a piece
 * with overflow set (and the rest of that line is dropped). */
typedef void (*line_fn)(void *arg, const char *line, size_t len, int overflow);

static void feed(struct linebuf *b, const char *data, size_t n, line_fn fn, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n') {
            if (!b->overflow) {
                b->buf[b->len] = 0;
                fn(arg, b->buf, b->len, 0);
            }
            b->len = 0;
            b->overflow = 0;
        } else if (b->overflow) {
            continue;
        } else if (b->len == b->cap) {
            b->buf[b->len] = 0;
            fn(arg, b->buf, b->len, 1);
            b->len = 0;
            b->overflow = 1;
        } else {
            b->buf[b->len++] = ch;
        }
    }
}

/* Reads what fd has (non-blocking) into b's lines; closes it at EOF. */
static void pump(int *fd, struct linebuf *b, line_fn fn, void *arg)
{
    char chunk[8192];
    while (*fd >= 0) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0) {
            feed(b, chunk, (size_t)n, fn, arg);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF (or an error): a last line without its newline still counts */
        if (b->len && !b->overflow) {
            b->buf[b->len] = 0;
            fn(arg, b->buf, b->len, 0);
        }
        b->len = 0;
        close_fd(fd);
    }
}

static void log_line(void *arg, const char *line, size_t len, int overflow)
{
    (void)arg;
    log_info("trainer: %.*s%s", (int)len, line, overflow ? " [...]" : "");
}

/* Waits up to ms for activity on the command's streams. */
static void wait_streams(struct proc *c, int ms)
{
    struct pollfd pf[2];
    int n = 0;
    if (c->out_fd >= 0)
        pf[n++] = (struct pollfd){ .fd = c->out_fd, .events = POLLIN };
    if (c->err_fd >= 0)
        pf[n++] = (struct pollfd){ .fd = c->err_fd, .events = POLLIN };
    if (n == 0) {
        time_sleep_ms(ms);
        return;
    }
    (void)poll(pf, (nfds_t)n, ms);
}

/* Ends the command's whole process group (SIGTERM; SIGKILL PLUGIN_KILL_GRACE_MS later),
 * reaps it and closes its streams. Its stderr is logged meanwhile; its stdout is not
 * read as protocol any more. Returns the leader's wait status. */
static int proc_kill(struct proc *c, int term_first)
{
    if (c->pid <= 0) {
        proc_clear(c);
        return 0;
    }
    close_fd(&c->in_fd);
    if (term_first && !proc_exited(c)) {
        kill(-c->pid, SIGTERM);
        int64_t until = time_mono_ms() + PLUGIN_KILL_GRACE_MS;
        while (!proc_exited(c) && time_mono_ms() < until) {
            wait_streams(c, 50);
            pump(&c->err_fd, &c->err, log_line, NULL);
            pump(&c->out_fd, &c->out, log_line, NULL);
        }
    }
    kill(-c->pid, SIGKILL);   /* the group: whatever it left behind */
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* the group is gone: its pipes reach EOF unless a member escaped the group */
    int64_t until = time_mono_ms() + PLUGIN_DRAIN_MS;
    while ((c->err_fd >= 0 || c->out_fd >= 0) && time_mono_ms() < until) {
        wait_streams(c, 50);
        pump(&c->err_fd, &c->err, log_line, NULL);
        pump(&c->out_fd, &c->out, log_line, NULL);
    }
    proc_clear(c);
    return status;
}

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "ended (wait status %d)", status);
}

/* --- outputs ------------------------------------------------------------------- */

/* Reads the trained model (model.safetensors, or base + delta.safetensors) into local. */
static int read_outputs(struct plugin *p, const struct plugin_round *r, float *local, char *why,
                        size_t cap)
{
    const uint64_t R = r->round;
    char *mp = path_join(p->out_dir, "model.safetensors");
    char *dp = path_join(p->out_dir, "delta.safetensors");
    int rc = 0;
    if (!mp || !dp) {
        rc = why_fail(why, cap, PLUGIN_ERR_NOMEM, "round %" PRIu64 ": out of memory", R);
        goto out;
    }
    struct stat sm, sd;
    int has_m = lstat(mp, &sm) == 0, has_d = lstat(dp, &sd) == 0;
    if (has_m && has_d) {
        rc = why_fail(why, cap, PLUGIN_ERR_OUTPUT, "round %" PRIu64 ": the trainer wrote both "
                      "model.safetensors and delta.safetensors; exactly one is allowed", R);
        goto out;
    }
    if (!has_m && !has_d) {
        rc = why_fail(why, cap, PLUGIN_ERR_OUTPUT, "round %" PRIu64 ": the trainer wrote "
                      "neither model.safetensors nor delta.safetensors in %s", R, p->out_dir);
        goto out;
    }
    const char *name = has_m ? "model.safetensors" : "delta.safetensors";
    const char *path = has_m ? mp : dp;
    const struct stat *st = has_m ? &sm : &sd;
    if (!S_ISREG(st->st_mode)) {
        rc = why_fail(why, cap, PLUGIN_ERR_OUTPUT, "round %" PRIu64 ": the trainer's %s is "
                      "not a regular file", R, name);
        goto out;
    }
    if (st->st_size == 0) {
        rc = why_fail(why, cap, PLUGIN_ERR_OUTPUT, "round %" PRIu64 ": the trainer's %s is "
                      "empty (0 bytes)", R, name);
        goto out;
    }
    struct safetensors *f = NULL;
    int e = safetensors_open(path, &f);
    if (e != 0) {
        rc = why_fail(why, cap, PLUGIN_ERR_OUTPUT, "round %" PRIu64 ": the trainer's %s "
                      "(%lld bytes) is %s: %s", R, name, (long long)st->st_size,
                      e == ST_ERR_TRUNCATED || e == ST_ERR_OFFSETS ? "truncated or malformed"
                                                                   : "no valid safetensors file",
                      safetensors_strerror(e));
        goto out;
    }
    char w[400];
    w[0] = 0;
    e = model_read_tensors(r->layout, f, local, w, sizeof w);
    safetensors_close(f);
    if (e != 0) {
        rc = why_fail(why, cap, e == MODEL_ERR_NONFINITE ? PLUGIN_ERR_NONFINITE : PLUGIN_ERR_OUTPUT,
                      "round %" PRIu64 ": the trainer's %s: %s", R, name,
                      w[0] ? w : model_strerror(e));
        goto out;
    }
    if (has_d) {
        /* delta.safetensors = trained - base (TRAINER.md) */
        const uint64_t n = r->layout->n_params;
        for (uint64_t i = 0; i < n; i++) {
            local[i] += r->base[i];
            if (!isfinite(local[i])) {
                size_t t = 0;
                while (t + 1 < r->layout->n_tensors && r->layout->tensors[t + 1].offset <= i)
                    t++;
                rc = why_fail(why, cap, PLUGIN_ERR_NONFINITE, "round %" PRIu64 ": base + the "
                              "trainer's delta.safetensors overflows to infinity in tensor %s "
                              "at index %" PRIu64, R, r->layout->tensors[t].name,
                              i - r->layout->tensors[t].offset);
                goto out;
            }
        }
    }
out:
    free(mp);
    free(dp);
    return rc;
}

/* A loss member: 0 with *out (NaN for null/absent when null_ok), or a refusal. */
static int metrics_loss(const struct json_value *root, const char *key, int null_ok,
                        uint64_t R, double *out, char *why, size_t cap)
{
    const struct json_value *v = json_get(root, key);
    *out = NAN;
    if ((!v || json_type(v) == JSON_NULL) && null_ok)
        return 0;
    if (json_double(v, out) != 0)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                        "metrics.json has no number %s", R, key);
    if (!isfinite(*out))
        return why_fail(why, cap, PLUGIN_ERR_NONFINITE, "round %" PRIu64 ": the trainer's "
                        "metrics.json gives %s as %s; losses must be finite", R, key,
                        isnan(*out) ? "NaN" : "infinity");
    if (*out < 0)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                        "metrics.json gives %s as %g; losses are never negative", R, key, *out);
    return 0;
}

static int metrics_count(const struct json_value *root, const char *key, uint64_t max,
                         uint64_t R, uint64_t *out, char *why, size_t cap)
{
    const struct json_value *v = json_get(root, key);
    if (!v)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                        "metrics.json has no %s", R, key);
    if (json_u64(v, out) != 0)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                        "metrics.json gives %s as no non-negative integer", R, key);
    if (*out < 1 || *out > max)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                        "metrics.json claims %" PRIu64 " %s; the plan allows 1 to %" PRIu64,
                        R, *out, key, max);
    return 0;
}

static int read_metrics(struct plugin *p, const struct plugin_round *r, struct plugin_metrics *m,
                        char *why, size_t cap)
{
    const uint64_t R = r->round;
    const struct policy_round_plan *pl = r->plan;
    char *path = path_join(p->out_dir, "metrics.json");
    if (!path)
        return why_fail(why, cap, PLUGIN_ERR_NOMEM, "round %" PRIu64 ": out of memory", R);
    uint8_t *buf = NULL;
    size_t len = 0;
    int e = file_read_all(path, PLUGIN_METRICS_MAX, &buf, &len);
    free(path);
    if (e != 0)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer wrote no "
                        "readable metrics.json (%s)", R,
                        e == -ENOENT ? "no such file" : strerror(e < 0 ? -e : e));
    struct json_doc *d = NULL;
    char jw[200];
    e = json_parse((const char *)buf, len, &d, jw, sizeof jw);
    free(buf);
    if (e != 0)
        return why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                        "metrics.json is not JSON: %s", R, jw);
    const struct json_value *root = json_root(d);
    int rc = 0;
    const uint64_t max_tokens = (uint64_t)pl->local_steps * pl->batch_size * pl->seq_len;
    if (json_type(root) != JSON_OBJECT)
        rc = why_fail(why, cap, PLUGIN_ERR_METRICS, "round %" PRIu64 ": the trainer's "
                      "metrics.json is not a JSON object", R);
    if (!rc)
        rc = metrics_count(root, "tokens", max_tokens, R, &m->tokens, why, cap);
    if (!rc)
        rc = metrics_count(root, "steps", pl->local_steps, R, &m->steps, why, cap);
    if (!rc)
        rc = metrics_loss(root, "train_loss", 0, R, &m->train_loss, why, cap);
    if (!rc)
        rc = metrics_loss(root, "validation_loss", 1, R, &m->validation_loss, why, cap);
    json_free(d);
    return rc;
}

/* --- modes ---------------------------------------------------------------------- */

static int run_oneshot(struct plugin *p, const struct plugin_round *r, int (*stop)(void),
                       char *why, size_t cap)
{
    const uint64_t R = r->round;
    struct proc c;
    memset(&c, 0, sizeof c);
    int rc = spawn(p, 0, R, &c, why, cap);
    if (rc != 0)
        return rc;
    const int64_t deadline = time_mono_ms() + (int64_t)p->t->timeout_s * 1000;
    for (;;) {
        wait_streams(&c, PLUGIN_POLL_MS);
        pump(&c.out_fd, &c.out, log_line, NULL);
        pump(&c.err_fd, &c.err, log_line, NULL);
        if (proc_exited(&c))
            break;
        if (stop && stop()) {
            proc_kill(&c, 1);
            return why_fail(why, cap, PLUGIN_ERR_STOPPED, "round %" PRIu64 ": the worker is "
                            "stopping; the trainer was ended", R);
        }
        if (time_mono_ms() >= deadline) {
            proc_kill(&c, 1);
            return why_fail(why, cap, PLUGIN_ERR_TIMEOUT, "round %" PRIu64 ": the trainer "
                            "was still running after timeout_s %u s; it was killed and "
                            "nothing it wrote is used", R, p->t->timeout_s);
        }
    }
    int status = proc_kill(&c, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char s[96];
        describe_status(status, s, sizeof s);
        return why_fail(why, cap, PLUGIN_ERR_EXIT, "round %" PRIu64 ": the trainer %s", R, s);
    }
    return 0;
}

/* One stdout line of a serve-mode command. */
static void serve_line(void *arg, const char *line, size_t len, int overflow)
{
    struct serve_round *s = arg;
    if (s->rc || s->done)
        return;   /* after the answer or an error nothing more is read */
    if (overflow) {
        s->rc = why_fail(s->why, s->cap, PLUGIN_ERR_PROTOCOL, "round %" PRIu64 ": the trainer "
                         "wrote a line of more than %u bytes on stdout (the limit is 64 KiB)",
                         s->round, PLUGIN_LINE_MAX);
        return;
    }
    if (len == 0)
        return;   /* blank lines are allowed between messages */
    struct json_doc *d = NULL;
    char jw[200];
    if (json_parse(line, len, &d, jw, sizeof jw) != 0) {
        s->rc = why_fail(s->why, s->cap, PLUGIN_ERR_PROTOCOL, "round %" PRIu64 ": the trainer "
                         "wrote a line on stdout that is not JSON (%s): \"%.60s\"", s->round,
                         jw, line);
        return;
    }
    const struct json_value *root = json_root(d);
    const char *type = json_str(json_get(root, "type"));
    uint64_t round = 0;
    int has_round = json_u64(json_get(root, "round"), &round) == 0;
    if (!type || (strcmp(type, "done") && strcmp(type, "error") && strcmp(type, "progress"))) {
        s->rc = why_fail(s->why, s->cap, PLUGIN_ERR_PROTOCOL, "round %" PRIu64 ": the trainer "
                         "wrote a line on stdout of %s%s%s: \"%.60s\"", s->round,
                         type ? "unknown type \"" : "no type", type ? type : "",
                         type ? "\"" : "", line);
    } else if (!has_round) {
        s->rc = why_fail(s->why, s->cap, PLUGIN_ERR_PROTOCOL, "round %" PRIu64 ": the trainer's "
                         "\"%s\" line names no round: \"%.60s\"", s->round, type, line);
    } else if (round != s->round) {
        s->rc = why_fail(s->why, s->cap, PLUGIN_ERR_PROTOCOL, "round %" PRIu64 ": the trainer "
                         "answered \"%s\" for round %" PRIu64 "; this is round %" PRIu64,
                         s->round, type, round, s->round);
    } else if (strcmp(type, "done") == 0) {
        s->done = 1;
    } else if (strcmp(type, "error") == 0) {
        const char *msg = json_str(json_get(root, "message"));
        s->rc = why_fail(s->why, s->cap, PLUGIN_ERR_EXIT, "round %" PRIu64 ": the trainer "
                         "reports an error: %.300s", s->round, msg ? msg : "(no message)");
    } else {
        uint64_t step = 0, steps = 0;
        double loss = NAN;
        (void)json_u64(json_get(root, "step"), &step);
        (void)json_u64(json_get(root, "steps"), &steps);
        (void)json_double(json_get(root, "loss"), &loss);
        if (s->r->on_progress)
            s->r->on_progress(s->r->progress_arg, step, steps, loss);
    }
    json_free(d);
}

static int send_line(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        off += (size_t)n;
    }
    return 0;
}

static int run_serve(struct plugin *p, const struct plugin_round *r, int (*stop)(void),
                     char *why, size_t cap)
{
    const uint64_t R = r->round;
    struct proc *c = &p->serve;
    if (c->pid > 0 && proc_exited(c)) {
        char s[96];
        describe_status(proc_kill(c, 0), s, sizeof s);
        log_warn("the trainer (serve mode) %s between rounds; starting it again", s);
    }
    int rc;
    if (c->pid <= 0 && (rc = spawn(p, 1, R, c, why, cap)) != 0)
        return rc;
    struct jsonw w;
    jw_init(&w);
    jw_raw(&w, "{\"aulac_trainer\": 1, \"type\": \"round\", \"plan\": ");
    jw_str(&w, p->plan_path);
    jw_raw(&w, "}\n");
    char *line = jw_finish(&w, NULL);
    if (!line)
        return why_fail(why, cap, PLUGIN_ERR_NOMEM, "round %" PRIu64 ": out of memory", R);
    int e = send_line(c->in_fd, line);
    free(line);
    if (e != 0) {
        char s[96];
        describe_status(proc_kill(c, 1), s, sizeof s);
        return why_fail(why, cap, PLUGIN_ERR_EXIT, "round %" PRIu64 ": the trainer does not "
                        "read its stdin (%s); it %s", R, strerror(-e), s);
    }
    struct serve_round s = { .round = R, .r = r, .why = why, .cap = cap };
    const int64_t deadline = time_mono_ms() + (int64_t)p->t->timeout_s * 1000;
    for (;;) {
        wait_streams(c, PLUGIN_POLL_MS);
        pump(&c->out_fd, &c->out, serve_line, &s);
        pump(&c->err_fd, &c->err, log_line, NULL);
        if (s.done)
            return 0;
        if (s.rc == PLUGIN_ERR_EXIT)
            return s.rc;   /* it said "error": it keeps running and takes the next round */
        if (s.rc) {
            proc_kill(c, 1);
            return s.rc;
        }
        if (c->out_fd < 0 || proc_exited(c)) {
            char st[96];
            describe_status(proc_kill(c, 1), st, sizeof st);
            return why_fail(why, cap, PLUGIN_ERR_EXIT, "round %" PRIu64 ": the trainer %s "
                            "before answering the round", R, st);
        }
        if (stop && stop()) {
            proc_kill(c, 1);
            return why_fail(why, cap, PLUGIN_ERR_STOPPED, "round %" PRIu64 ": the worker is "
                            "stopping; the trainer was ended", R);
        }
        if (time_mono_ms() >= deadline) {
            proc_kill(c, 1);
            return why_fail(why, cap, PLUGIN_ERR_TIMEOUT, "round %" PRIu64 ": the trainer had "
                            "not answered after timeout_s %u s; it was killed and nothing it "
                            "wrote is used", R, p->t->timeout_s);
        }
    }
}

/* --- the interface ------------------------------------------------------------------ */

int plugin_open(const struct site_trainer *t, const char *state_dir, struct plugin **out,
                char *why, size_t cap)
{
    if (out)
        *out = NULL;
    if (!t || !out || t->kind != SITE_TRAINER_COMMAND || t->n_args < 1 || !t->argv ||
        !t->argv[0] || (!t->workdir && !state_dir))
        return why_fail(why, cap, PLUGIN_ERR_ARG, "the site's trainer is no command trainer "
                        "(trainer.kind command with a command)");
    struct plugin *p = calloc(1, sizeof *p);
    if (!p)
        return why_fail(why, cap, PLUGIN_ERR_NOMEM, "out of memory");
    p->t = t;
    proc_clear(&p->serve);
    char *dir = t->workdir ? strdup(t->workdir) : path_join(state_dir, "trainer");
    int rc = PLUGIN_ERR_NOMEM;
    if (!dir)
        goto fail;
    int e = file_mkdirs(dir, 0700);
    if (e != 0) {
        rc = why_fail(why, cap, PLUGIN_ERR_IO, "cannot create the trainer's workdir %s: %s",
                      dir, strerror(-e));
        free(dir);
        goto fail_quiet;
    }
    p->workdir = realpath(dir, NULL);   /* plan.json names absolute paths */
    free(dir);
    if (!p->workdir || !(p->round_dir = path_join(p->workdir, "round")) ||
        !(p->in_dir = path_join(p->round_dir, "in")) ||
        !(p->out_dir = path_join(p->round_dir, "out")) ||
        !(p->state_dir = path_join(p->workdir, "state")) ||
        !(p->plan_path = path_join(p->round_dir, "plan.json")))
        goto fail;
    if ((e = file_mkdirs(p->round_dir, 0700)) != 0 || (e = file_mkdirs(p->state_dir, 0700)) != 0) {
        rc = why_fail(why, cap, PLUGIN_ERR_IO, "cannot create the trainer's directories in "
                      "%s: %s", p->workdir, strerror(-e));
        goto fail_quiet;
    }
    *out = p;
    return 0;
fail:
    why_fail(why, cap, rc, "out of memory setting up the trainer");
fail_quiet:
    plugin_close(p);
    return rc;
}

/* Ends a serve-mode process: {"type":"exit"}, its stdin closed, then the group ended
 * after PLUGIN_KILL_GRACE_MS if it is still there. */
static void serve_stop(struct plugin *p)
{
    struct proc *c = &p->serve;
    if (c->pid <= 0)
        return;
    if (c->in_fd >= 0) {
        (void)send_line(c->in_fd, "{\"aulac_trainer\": 1, \"type\": \"exit\"}\n");
        shutdown(c->in_fd, SHUT_WR);
    }
    int64_t until = time_mono_ms() + PLUGIN_KILL_GRACE_MS;
    while (!proc_exited(c) && time_mono_ms() < until) {
        wait_streams(c, 50);
        pump(&c->out_fd, &c->out, log_line, NULL);
        pump(&c->err_fd, &c->err, log_line, NULL);
    }
    proc_kill(c, 1);
}

void plugin_close(struct plugin *p)
{
    if (!p)
        return;
    serve_stop(p);
    proc_clear(&p->serve);
    free(p->workdir);
    free(p->round_dir);
    free(p->in_dir);
    free(p->out_dir);
    free(p->state_dir);
    free(p->plan_path);
    free(p);
}

int plugin_reset(struct plugin *p, char *why, size_t cap)
{
    if (!p)
        return why_fail(why, cap, PLUGIN_ERR_ARG, "no trainer");
    serve_stop(p);
    int e = empty_dir(p->state_dir);
    if (e == 0)
        e = empty_dir(p->round_dir);
    if (e != 0)
        return why_fail(why, cap, PLUGIN_ERR_IO, "cannot empty the trainer's directories in "
                        "%s: %s", p->workdir, strerror(-e));
    return 0;
}

int plugin_train_round(struct plugin *p, const struct plugin_round *r, float *local,
                       struct plugin_metrics *m, int (*stop)(void), char *why, size_t cap)
{
    if (!p || !r || !local || !m || !r->plan || !r->policy || !r->layout || !r->base ||
        !r->experiment || !r->member || (r->n_data_files && !r->data_files))
        return why_fail(why, cap, PLUGIN_ERR_ARG, "plugin_train_round: missing argument");
    memset(m, 0, sizeof *m);
    m->validation_loss = NAN;
    const double t0 = time_mono_s();
    int rc = write_round(p, r, why, cap);
    if (rc == 0)
        rc = p->t->mode == SITE_TRAINER_SERVE ? run_serve(p, r, stop, why, cap)
                                              : run_oneshot(p, r, stop, why, cap);
    if (rc == 0)
        rc = read_outputs(p, r, local, why, cap);
    if (rc == 0)
        rc = read_metrics(p, r, m, why, cap);
    m->seconds = time_mono_s() - t0;
    return rc;
}
