/* bench/codec: throughput of the update codec (issue 5). Prints figures, asserts nothing.
 *
 *   bench/codec [--n N] [--reps R] [--no-gpu]
 *
 * The vector: N fp32 values (default 16M = 64 MiB) shaped like a pseudo-gradient:
 * segments ("tensors") of 64K..2M values, each with its own scale (log-uniform over
 * two decades), Laplace-distributed values (heavier tails than Gaussian) and a few
 * outliers. Fixed seed.
 *
 * CPU, one thread: codec_encode() and codec_decode_accumulate() for each mode, best
 * and median of R runs (after one warm-up). GB/s are of fp32 input: 4N bytes over the
 * time, also for the decoder ("dense-equivalent": a 1 % payload touches 1 % of the
 * accumulator). The residual is in steady state (it has been through the warm-up
 * encodes). The same run's memcpy of 4N bytes is the ceiling: one core cannot move
 * the vector faster than it copies it, and the ratio says how close the codec comes.
 *
 * GPU (a CUDA build on a machine with a device): codec_cuda_encode() of the same vector
 * from device memory, timed twice: wall (the whole call, host zstd included) and device
 * (CUDA events on the context's stream around the call: kernels and copies, no host
 * zstd), and with zstd off. HBM share = bytes the encoder must move (read Δ, and with
 * error feedback read and write the residual: 12 bytes a value, else 4) / device time,
 * over the peak 2 x memoryClockRate x busWidth / 8 from the device's attributes.
 * Goals (issue 5): encode >= 1 GB/s per core, decode-accumulate >= 2 GB/s, GPU >= 50 %. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "codec/codec_cuda.h"

#ifdef AULAC_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

struct mode {
    const char *name;
    uint32_t block, k;
    enum codec_quant quant;
    int zstd, ef;
};

static const struct mode modes[] = {
    {"top-k 1% int8 zstd3 ef", 4096, 41, CODEC_QUANT_INT8, 3, 1},
    {"top-k 1% int8 zstd3", 4096, 41, CODEC_QUANT_INT8, 3, 0},
    {"top-k 0.3% int8 zstd3 ef", 4096, 12, CODEC_QUANT_INT8, 3, 1},
    {"dense int8 zstd3 ef", 4096, 4096, CODEC_QUANT_INT8, 3, 1},
    {"dense int8 ef", 4096, 4096, CODEC_QUANT_INT8, 0, 1},
};
#define N_MODES (sizeof modes / sizeof modes[0])

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)   /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53; }

static void make_vector(float *x, size_t n)
{
    uint64_t s = 20240501;
    size_t i = 0;
    while (i < n) {
        size_t len = (size_t)(65536 + rng_unit(&s) * (2097152 - 65536));
        if (len > n - i)
            len = n - i;
        const double scale = pow(10.0, -4.0 + 2.0 * rng_unit(&s));
        for (size_t j = 0; j < len; j++) {
            uint64_t r = rng_next(&s);
            double u = ((r >> 11) + 0.5) * 0x1.0p-53;
            double v = -log(u) * scale;              /* Laplace: |v| exponential */
            if ((r & 0x3ff) == 0)
                v *= 20;                             /* one outlier in 1024 */
            x[i + j] = (float)((r & 0x400) ? v : -v);
        }
        i += len;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct timing {
    double best, median;
};

static struct timing summarize(double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return (struct timing){t[0], reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2])};
}

static struct timing time_memcpy(float *dst, const float *src, size_t n, int reps)
{
    double t[64];
    memcpy(dst, src, n * sizeof(float));
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        memcpy(dst, src, n * sizeof(float));
        t[r] = now_s() - t0;
        __asm__ volatile("" ::"r"(dst) : "memory");
    }
    return summarize(t, reps);
}

static void cpu_bench(const float *x, size_t n, int reps)
{
    float *residual = malloc(n * sizeof(float)), *acc = malloc(n * sizeof(float));
    float *copy = malloc(n * sizeof(float));
    if (!residual || !acc || !copy) {
        printf("out of memory\n");
        goto out;
    }
    const double gb = 4.0 * (double)n / 1e9;
    memset(acc, 0, n * sizeof(float));
    struct timing mc = time_memcpy(copy, x, n, reps);
    printf("CPU, one thread: memcpy of %.1f MB: %.2f GB/s best, %.2f median (the ceiling)\n\n",
           gb * 1e3, gb / mc.best, gb / mc.median);
    printf("%-26s %10s %7s | %22s %8s | %22s %8s\n", "mode", "bytes", "ratio",
           "encode GB/s best (med)", "/memcpy", "decode GB/s best (med)", "/memcpy");
    for (size_t m = 0; m < N_MODES; m++) {
        const struct mode *md = &modes[m];
        struct codec_params p = {CODEC_FORMAT_VERSION, md->block, md->k, md->quant, md->zstd,
                                 md->ef};
        memset(residual, 0, n * sizeof(float));
        double te[64], td[64];
        uint8_t *payload = NULL;
        size_t len = 0;
        int rc = 0;
        char why[200] = "";
        for (int r = -1; r < reps && rc == 0; r++) {   /* r = -1: warm-up */
            free(payload);
            double t0 = now_s();
            rc = codec_encode(x, n, &p, md->ef ? residual : NULL, &payload, &len);
            if (r >= 0)
                te[r] = now_s() - t0;
        }
        for (int r = -1; r < reps && rc == 0; r++) {
            double t0 = now_s();
            rc = codec_decode_accumulate(payload, len, n, 0.5f, acc, why, sizeof why);
            if (r >= 0)
                td[r] = now_s() - t0;
        }
        free(payload);
        if (rc) {
            printf("%-26s failed: %s %s\n", md->name, codec_strerror(rc), why);
            continue;
        }
        struct timing e = summarize(te, reps), d = summarize(td, reps);
        printf("%-26s %10zu %6.0fx | %14.2f (%5.2f) %7.0f%% | %14.2f (%5.2f) %7.0f%%\n",
               md->name, len, 4.0 * (double)n / (double)len, gb / e.best, gb / e.median,
               100.0 * mc.best / e.best, gb / d.best, gb / d.median, 100.0 * mc.best / d.best);
    }
    printf("\nratio: 4N bytes of fp32 over the payload; GB/s: 4N bytes of fp32 input over the "
           "time (decode: dense-equivalent); /memcpy: that speed as a share of memcpy's (best "
           "runs). Goals: encode >= 1 GB/s per core, decode-accumulate >= 2 GB/s.\n");
out:
    free(residual);
    free(acc);
    free(copy);
}

#ifdef AULAC_HAVE_CUDA
static void gpu_bench(const float *x, size_t n, int reps)
{
    int dev = 0;
    struct cudaDeviceProp prop;
    int clock_khz = 0, bus_bits = 0;
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
        printf("GPU: cannot read the device's properties\n");
        return;
    }
    const double peak = 2.0 * clock_khz * 1e3 * bus_bits / 8.0;   /* bytes/s */
    printf("\nGPU %d: %s, HBM peak %.0f GB/s (%d kHz x %d bits x 2)\n", dev, prop.name,
           peak / 1e9, clock_khz, bus_bits);
    cudaStream_t stream;
    cudaEvent_t ev0, ev1;
    float *d_x = NULL, *d_r = NULL;
    struct codec_cuda *cc = NULL;
    if (cudaSetDevice(dev) != cudaSuccess || cudaStreamCreate(&stream) != cudaSuccess ||
        cudaEventCreate(&ev0) != cudaSuccess || cudaEventCreate(&ev1) != cudaSuccess ||
        cudaMalloc((void **)&d_x, n * sizeof(float)) != cudaSuccess ||
        cudaMalloc((void **)&d_r, n * sizeof(float)) != cudaSuccess ||
        cudaMemcpy(d_x, x, n * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
        printf("GPU: setup failed: %s\n", cudaGetErrorString(cudaGetLastError()));
        goto out;
    }
    int rc = codec_cuda_create(dev, stream, &cc);
    if (rc) {
        printf("GPU: codec_cuda_create: %s\n", codec_strerror(rc));
        goto out;
    }
    /* Device-to-device copy of the vector: what the HBM gives a plain stream here. */
    {
        float ms = 0, best = 1e30f;
        for (int r = 0; r < reps + 1; r++) {
            cudaEventRecord(ev0, stream);
            cudaMemcpyAsync(d_r, d_x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream);
            cudaEventRecord(ev1, stream);
            cudaEventSynchronize(ev1);
            cudaEventElapsedTime(&ms, ev0, ev1);
            if (r > 0 && ms < best)
                best = ms;
        }
        printf("cudaMemcpy device to device of %.1f MB: %.0f GB/s moved (read + write), "
               "%.0f%% of peak\n\n", 4e-6 * n, 8.0 * n / (best * 1e-3) / 1e9,
               100.0 * 8.0 * n / (best * 1e-3) / peak);
    }
    printf("%-26s %5s %10s | %-12s | %-12s %12s\n", "mode", "zstd", "bytes", "wall GB/s",
           "device GB/s", "HBM share");
    for (size_t m = 0; m < N_MODES; m++) {
        const struct mode *md = &modes[m];
        for (int z = 0; z < 2; z++) {
            struct codec_params p = {CODEC_FORMAT_VERSION, md->block, md->k, md->quant,
                                     z ? 0 : md->zstd, md->ef};
            if (z && md->zstd == 0)
                continue;
            cudaMemset(d_r, 0, n * sizeof(float));
            double tw[64], td[64];
            uint8_t *payload = NULL;
            size_t len = 0;
            rc = 0;
            for (int r = -1; r < reps && rc == 0; r++) {
                free(payload);
                payload = NULL;
                cudaEventRecord(ev0, stream);
                double t0 = now_s();
                rc = codec_cuda_encode(cc, d_x, n, &p, md->ef ? d_r : NULL, &payload, &len);
                double t1 = now_s();
                cudaEventRecord(ev1, stream);
                cudaEventSynchronize(ev1);
                float ms = 0;
                cudaEventElapsedTime(&ms, ev0, ev1);
                if (r >= 0) {
                    tw[r] = t1 - t0;
                    td[r] = ms * 1e-3;
                }
            }
            free(payload);
            if (rc) {
                printf("%-26s failed: %s (%s)\n", md->name, codec_strerror(rc),
                       codec_cuda_last_error(cc));
                continue;
            }
            struct timing w = summarize(tw, reps), d = summarize(td, reps);
            const double gb = 4.0 * n / 1e9, moved = (md->ef ? 12.0 : 4.0) * n;
            printf("%-26s %5d %10zu | %6.1f (%4.1f) | %6.1f (%4.1f) %11.0f%%\n", md->name,
                   p.zstd_level, len, gb / w.best, gb / w.median, gb / d.best, gb / d.median,
                   100.0 * moved / d.best / peak);
        }
    }
    printf("\nwall: the whole codec_cuda_encode() call, host zstd included; device: CUDA events "
           "around it on its stream (kernels, copies to the host, idle gaps while the host "
           "waits); GB/s of fp32 input, best (median); HBM share: %s over the best device "
           "time, over the peak (goal >= 50%%).\n",
           "read delta + read and write the residual (12 bytes/value; 4 without feedback)");
out:
    codec_cuda_destroy(cc);
    cudaFree(d_x);
    cudaFree(d_r);
}
#endif

int main(int argc, char **argv)
{
    size_t n = (size_t)16 << 20;
    int reps = 7, no_gpu = 0;
    static const struct option opts[] = {{"n", required_argument, 0, 'n'},
                                         {"reps", required_argument, 0, 'r'},
                                         {"no-gpu", no_argument, 0, 'g'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n = (size_t)strtoull(optarg, NULL, 10); break;
        case 'r': reps = atoi(optarg); break;
        case 'g': no_gpu = 1; break;
        case 'h':
            printf("usage: codec [--n VALUES] [--reps R] [--no-gpu]\n");
            return 0;
        default:
            fprintf(stderr, "usage: codec [--n VALUES] [--reps R] [--no-gpu]\n");
            return 2;
        }
    }
    if (n < 1 || n > ((size_t)1 << 32) || reps < 1 || reps > 64) {
        fprintf(stderr, "codec: --n 1..2^32, --reps 1..64\n");
        return 2;
    }
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "codec: cannot allocate %zu values\n", n);
        return 1;
    }
    make_vector(x, n);
    double load[1] = {0};
    if (getloadavg(load, 1) != 1)
        load[0] = -1;
    printf("bench/codec: %zu fp32 values (%.1f MB), gradient-like (per-segment scales, "
           "Laplace, outliers), best and median of %d runs; load average %.2f on %ld CPUs\n",
           n, 4e-6 * n, reps, load[0], sysconf(_SC_NPROCESSORS_ONLN));
    cpu_bench(x, n, reps);
    int devices = codec_cuda_device_count();
    if (no_gpu)
        printf("\nGPU: skipped (--no-gpu)\n");
    else if (devices <= 0)
        printf("\nGPU: none (codec_cuda_device_count() = %d): the CUDA encoder was not "
               "measured\n", devices);
#ifdef AULAC_HAVE_CUDA
    else
        gpu_bench(x, n, reps);
#endif
    free(x);
    return 0;
}
