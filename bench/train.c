/* bench/train: training throughput of the built-in GPT-2 (issue 6). Prints figures,
 * asserts nothing.
 *
 *   bench/train [--config small|124m|all] [--threads N] [--warmup W] [--steps S]
 *               [--batch B] [--seq T] [--no-torch] [--no-gpu] [--gpus N]
 *
 * CPU: for each configuration, the CPU trainer (model/trainer.h: forward, backward,
 * global-norm clipping and the AdamW step, what a worker runs per local step) takes W
 * warm-up steps (1), then S timed steps (3 small, 2 124m) on random bytes. tokens/s is
 * B*T over the median step time; the best step and the process CPU time per step are
 * printed too (on a shared machine the median moves with the load, the CPU time
 * hardly). Then the same run in PyTorch (bench/torch_train.py: same model, B, T,
 * thread count, fp32, clipping and AdamW) when a Python with torch is found:
 * $AULAC_TORCH_PYTHON, else build/reference-venv/bin/python (scripts/reference.sh
 * makes it); and the ratio aulac / PyTorch (goal >= 1.0).
 *
 *   small   byte vocabulary, 256 positions, 6 layers, 6 heads, 384 wide (10.8M
 *           parameters); B 4, T 256
 *   124m    GPT-2 small exactly: vocab 50257, 1024 positions, 12 layers, 12 heads,
 *           768 wide (124.4M parameters); B 1, T 1024 on the CPU
 *
 * --batch/--seq override B and T of the 124m run (e.g. --seq 256 on a slow machine).
 *
 * GPU: in a CUDA build with a device present, the CUDA trainer on the same
 * configurations (B 32 x T 256 small, B 16 x T 1024 124m, per GPU; --gpus N for data
 * parallelism over N local GPUs; 2 warm-up and 10 timed steps unless --steps), and the
 * model FLOPs utilization: (6 N + 12 L C T) FLOPs per token (PaLM, appendix B; N counts
 * the tied embedding once) times tokens/s, over the GPUs' dense bf16 peak:
 * $AULAC_GPU_PEAK_TFLOPS, else looked up from the device name (H100 SXM 989, H100
 * PCIe 756, H200 989, A100 312 TFLOP/s). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/gpt2.h"
#include "model/trainer.h"

#ifdef AULAC_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

struct bench_config {
    const char *name;
    struct gpt2_config cfg;
    int B, T;         /* CPU run */
    int gpu_B, gpu_T; /* CUDA run */
};

static const struct bench_config configs[] = {
    {"small", {256, 256, 6, 6, 384}, 4, 256, 32, 256},
    {"124m", {50257, 1024, 12, 12, 768}, 1, 1024, 16, 1024},
};

struct result {
    int ok;
    double tokens_per_s;  /* B*T over the median step time */
    double median_s, best_s; /* step times */
    double cpu_s;         /* median process CPU seconds per step (all threads) */
    double loss;          /* of the last step */
    char version[64];     /* torch's */
};

#define MAX_STEPS 1000

static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Per-step wall times from the trainer's progress callback (cumulative seconds), and
 * the CPU time the process used in each step. */
struct step_times {
    int n;
    double last, last_cpu, t[MAX_STEPS], cpu[MAX_STEPS];
};

static int record_step(void *ctx, const struct trainer_progress *p)
{
    struct step_times *st = ctx;
    double c = process_cpu_s();
    if (st->n < MAX_STEPS) {
        st->cpu[st->n] = c - st->last_cpu;
        st->t[st->n++] = p->seconds - st->last;
    }
    st->last = p->seconds;
    st->last_cpu = c;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median (mean of the middle two for an even count) and minimum of t[n], n >= 1. */
static void median_best(double *t, int n, double *median, double *best)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    *best = t[0];
}

/* Random byte rows: the throughput does not depend on the data. */
struct batch_rng {
    uint64_t s;
};

static int random_batch(void *ctx, uint8_t *tokens, int B, int T)
{
    struct batch_rng *r = ctx;
    size_t n = (size_t)B * ((size_t)T + 1);
    for (size_t i = 0; i < n; i++) {
        r->s ^= r->s << 13, r->s ^= r->s >> 7, r->s ^= r->s << 17;
        tokens[i] = (uint8_t)(r->s >> 24);
    }
    return 0;
}

static double flops_per_token(const struct gpt2_config *c, int T)
{
    double N = (double)gpt2_num_params(c);
    return 6.0 * N + 12.0 * c->n_layer * (double)c->n_embd * T;
}

/* gpus: CUDA data parallelism (each GPU trains on its own B x T batch per step). */
static struct result run_aulac(const struct bench_config *bc, enum trainer_backend backend,
                               int B, int T, int threads, int gpus, int warmup, int steps)
{
    struct result res = {0};
    struct trainer_opts o;
    trainer_opts_default(&o);
    o.batch = B, o.seq_len = T, o.threads = threads, o.backend = backend;
    if (backend == TRAINER_BACKEND_CUDA)
        o.gpus = gpus;
    else
        gpus = 1;
    struct trainer *t;
    int rc = trainer_create(&bc->cfg, &o, &t);
    if (rc) {
        printf("  aulac %-5s %s: %s\n", backend == TRAINER_BACKEND_CPU ? "cpu" : "cuda",
               bc->name, model_strerror(rc));
        return res;
    }
    size_t n = trainer_num_params(t);
    float *p = malloc(n * sizeof(float));
    if (!p || gpt2_init_params(&bc->cfg, 1, p) != 0 || trainer_set_params(t, p, n) != 0) {
        printf("  aulac %s: cannot initialize the parameters\n", bc->name);
        free(p);
        trainer_destroy(t);
        return res;
    }
    free(p);
    struct batch_rng rng = {0x9e3779b97f4a7c15ull};
    struct trainer_stats st = {0};
    rc = warmup > 0 ? trainer_train_steps(t, warmup, random_batch, &rng, NULL, NULL, &st) : 0;
    static struct step_times times;
    memset(&times, 0, sizeof times);
    if (!rc) {
        memset(&st, 0, sizeof st);
        times.last_cpu = process_cpu_s();
        rc = trainer_train_steps(t, steps, random_batch, &rng, record_step, &times, &st);
    }
    if (rc || times.n < 1) {
        printf("  aulac %s: training failed: %s\n", bc->name, model_strerror(rc));
    } else {
        res.ok = 1, res.loss = st.last_loss;
        median_best(times.t, times.n, &res.median_s, &res.best_s);
        double unused;
        median_best(times.cpu, times.n, &res.cpu_s, &unused);
        res.tokens_per_s = (double)gpus * B * T / res.median_s;
    }
    trainer_destroy(t);
    return res;
}

/* ---- PyTorch ------------------------------------------------------------------ */

/* The repository root: this file is bench/train.c relative to it when built by the
 * Makefile (run from the root); else the program's own path BUILD/bench/train with
 * BUILD inside the repository. */
static int find_repo_file(const char *rel, char *out, size_t cap)
{
    char here[PATH_MAX];
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash) {
        *slash = 0;
        int n = snprintf(out, cap, "%s/../%s", here, rel);
        if (n > 0 && (size_t)n < cap && access(out, R_OK) == 0)
            return 0;
    }
    ssize_t len = readlink("/proc/self/exe", here, sizeof here - 1);
    if (len > 0 && (here[len] = 0, slash = strrchr(here, '/')) != NULL) {
        *slash = 0;
        int n = snprintf(out, cap, "%s/../../%s", here, rel); /* BUILD/bench/train */
        if (n > 0 && (size_t)n < cap && access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}

static int find_torch_python(char *out, size_t cap)
{
    const char *env = getenv("AULAC_TORCH_PYTHON");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    if (find_repo_file("build/reference-venv/bin/python", out, cap) == 0 &&
        access(out, X_OK) == 0)
        return 0;
    return -1;
}

static struct result run_torch(const char *python, const char *script,
                               const struct gpt2_config *c, int B, int T, int threads,
                               int warmup, int steps)
{
    struct result res = {0};
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --vocab %d --positions %d --layers %d --heads %d --embd %d "
             "--batch %d --seq %d --threads %d --warmup %d --steps %d 2>&1",
             python, script, c->vocab_size, c->max_seq_len, c->n_layer, c->n_head, c->n_embd,
             B, T, threads, warmup, steps);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) {
        printf("  torch: cannot run %s: %s\n", python, strerror(errno));
        return res;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        double tps, med, best, cpu, loss;
        if (sscanf(line,
                   "torch tokens_per_s=%lf median_s=%lf best_s=%lf cpu_s=%lf steps=%*d loss=%lf",
                   &tps, &med, &best, &cpu, &loss) == 5) {
            res = (struct result){1, tps, med, best, cpu, loss, ""};
            const char *ver = strstr(line, "version=");
            if (ver)
                sscanf(ver + 8, "%63s", res.version);
        } else {
            printf("  torch: %s", line); /* errors, warnings */
        }
    }
    int st = pclose(f);
    if (st != 0 && !res.ok)
        printf("  torch: %s exited with status %d\n", script, st);
    return res;
}

/* ---- GPU ---------------------------------------------------------------------- */

/* Dense bf16 peak in TFLOP/s; 0 when unknown. */
static double gpu_peak_tflops(char *name, size_t cap)
{
    snprintf(name, cap, "none");
#ifdef AULAC_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1)
        return -1.0;
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
        return -1.0;
    snprintf(name, cap, "%s", prop.name);
    const char *env = getenv("AULAC_GPU_PEAK_TFLOPS");
    if (env && atof(env) > 0)
        return atof(env);
    static const struct {
        const char *pat;
        double tflops;
    } table[] = {
        {"H100 PCIe", 756}, {"H100 NVL", 835}, {"H100", 989}, {"H200", 989}, {"GH200", 989},
        {"B200", 2250},     {"A100", 312},     {"L40S", 362}, {"L4", 121},   {"A10", 125},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(prop.name, table[i].pat))
            return table[i].tflops;
    return 0.0;
#else
    return -1.0;
#endif
}

/* ---- main --------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: train [--config small|124m|all] [--threads N] [--warmup W] "
                    "[--steps S] [--batch B] [--seq T] [--no-torch] [--no-gpu] [--gpus N]\n");
}

int main(int argc, char **argv)
{
    const char *which = "all";
    int threads = 0, warmup = 1, steps = -1, batch = 0, seq = 0, no_torch = 0, no_gpu = 0;
    int gpus = 1;
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'}, {"threads", required_argument, 0, 'j'},
        {"warmup", required_argument, 0, 'w'}, {"steps", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'B'},  {"seq", required_argument, 0, 'T'},
        {"no-torch", no_argument, 0, 'n'},     {"no-gpu", no_argument, 0, 'g'},
        {"gpus", required_argument, 0, 'G'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:j:w:s:B:T:G:ngh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': which = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'B': batch = atoi(optarg); break;
        case 'T': seq = atoi(optarg); break;
        case 'n': no_torch = 1; break;
        case 'g': no_gpu = 1; break;
        case 'G': gpus = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        default: usage(); return ch == 'h' ? 0 : 2;
        }
    }
    if (strcmp(which, "all") && strcmp(which, "small") && strcmp(which, "124m")) {
        usage();
        return 2;
    }
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (warmup < 0)
        warmup = 0;

    char python[PATH_MAX], script[PATH_MAX];
    int have_python = find_torch_python(python, sizeof python) == 0;
    int have_script = find_repo_file("bench/torch_train.py", script, sizeof script) == 0;
    int have_torch = !no_torch && have_python && have_script;
    printf("bench/train: GPT-2 training step (forward, backward, clip, AdamW), fp32, "
           "%d threads\n", threads);
    if (!have_torch)
        printf("  PyTorch baseline: %s\n",
               no_torch      ? "off (--no-torch)"
               : !have_python ? "no Python with torch (set AULAC_TORCH_PYTHON or run "
                                "scripts/reference.sh)"
                              : "bench/torch_train.py not found (run from the repository root)");

    char gpu_name[256];
    double peak = no_gpu ? -1.0 : gpu_peak_tflops(gpu_name, sizeof gpu_name);

    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        struct bench_config bc = configs[i];
        if (strcmp(which, "all") && strcmp(which, bc.name))
            continue;
        int big = strcmp(bc.name, "124m") == 0;
        if (big && batch > 0)
            bc.B = batch;
        if (big && seq > 0)
            bc.T = seq > bc.cfg.max_seq_len ? bc.cfg.max_seq_len : seq;
        int n_steps = steps > 0 ? steps : (big ? 2 : 3);
        double fpt = flops_per_token(&bc.cfg, bc.T);
        printf("\n%s: vocab %d, positions %d, %d layers, %d heads, %d wide, %.1fM params; "
               "B %d, T %d; %d warm-up + %d timed steps\n",
               bc.name, bc.cfg.vocab_size, bc.cfg.max_seq_len, bc.cfg.n_layer, bc.cfg.n_head,
               bc.cfg.n_embd, gpt2_num_params(&bc.cfg) / 1e6, bc.B, bc.T, warmup, n_steps);
        struct result a = run_aulac(&bc, TRAINER_BACKEND_CPU, bc.B, bc.T, threads, 1, warmup,
                                    n_steps);
        if (a.ok)
            printf("  aulac cpu   %10.1f tokens/s  (median step %.3f s, best %.3f s, %.2f CPU-s; "
                   "%.1f GFLOP/s; loss %.3f)\n",
                   a.tokens_per_s, a.median_s, a.best_s, a.cpu_s, a.tokens_per_s * fpt / 1e9,
                   a.loss);
        if (have_torch) {
            struct result t = run_torch(python, script, &bc.cfg, bc.B, bc.T, threads, warmup,
                                        n_steps);
            if (t.ok) {
                printf("  torch cpu   %10.1f tokens/s  (median step %.3f s, best %.3f s, %.2f CPU-s; "
                       "%.1f GFLOP/s; loss %.3f; torch %s)\n",
                       t.tokens_per_s, t.median_s, t.best_s, t.cpu_s,
                       t.tokens_per_s * fpt / 1e9, t.loss, t.version);
                if (a.ok)
                    printf("  aulac/torch %10.2fx  (median steps; best steps %.2fx, CPU time per "
                           "step %.2fx; goal >= 1.0x)\n",
                           a.tokens_per_s / t.tokens_per_s, t.best_s / a.best_s,
                           t.cpu_s / a.cpu_s);
            }
        }
        if (peak >= 0.0) {
            int gB = big && batch > 0 ? batch : bc.gpu_B;
            int gT = big && seq > 0 ? bc.T : bc.gpu_T;
            struct result g = run_aulac(&bc, TRAINER_BACKEND_CUDA, gB, gT, threads, gpus, 2,
                                        steps > 0 ? steps : 10);
            if (g.ok) {
                double achieved = g.tokens_per_s * flops_per_token(&bc.cfg, gT);
                printf("  aulac cuda  %10.1f tokens/s  (B %d, T %d on %d x %s: %.1f TFLOP/s",
                       g.tokens_per_s, gB, gT, gpus, gpu_name, achieved / 1e12);
                if (peak > 0)
                    printf(", MFU %.1f%% of %d x %.0f TFLOP/s bf16; median step %.4f s)\n",
                           100.0 * achieved / (gpus * peak * 1e12), gpus, peak, g.median_s);
                else
                    printf("; peak unknown: set AULAC_GPU_PEAK_TFLOPS for the MFU)\n");
            }
        }
    }
    if (peak < 0.0 && !no_gpu)
        printf("\n(no GPU: CUDA figures and MFU skipped)\n");
    return 0;
}
