/* The CUDA codec against the CPU codec: same kept set, values within one quantization
 * step, same residual up to rounding, decode-accumulate equal up to rounding, and
 * hostile payloads refused with the device accumulator untouched. Skipped (not failed)
 * when the build has no CUDA or the machine no device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "codec/codec_cuda.h"
#include "codec/codec_internal.h"

#ifdef AULAC_HAVE_CUDA
#include <cuda_runtime_api.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float gauss(void)
{
    double u = (double)(rng() >> 11) / 9007199254740992.0 + 1e-12;
    double v = (double)(rng() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static void fill(float *x, size_t n)
{
    float s = 1e-3f;
    for (size_t i = 0; i < n; i++) {
        if (i % 97 == 0)
            s = (float)(1e-4 * pow(10, 3 * (double)(rng() % 1000) / 1000));
        x[i] = (rng() % 40 == 0) ? 0.0f : gauss() * s;
    }
    /* ties: a run of equal magnitudes */
    for (size_t i = 0; i + 300 < n && i < 600; i++)
        x[i + 300] = (i & 1) ? 2e-3f : -2e-3f;
}

#define CUDA_OK(call)                                                               \
    do {                                                                            \
        cudaError_t e_ = (call);                                                    \
        if (e_ != cudaSuccess)                                                      \
            fail_msg("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)

static struct codec_cuda *ctx;

static int setup(void **state)
{
    (void)state;
    if (codec_cuda_device_count() <= 0)
        return 0;
    return codec_cuda_create(0, NULL, &ctx) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    codec_cuda_destroy(ctx);
    ctx = NULL;
    return 0;
}

static void kept_set(const uint8_t *pl, size_t len, size_t n, uint8_t *kept)
{
    struct codec_view v;
    char why[200];
    int rc = codec_view_open(pl, len, n, &v, why, sizeof why);
    if (rc)
        fail_msg("payload does not validate: %s", why);
    memset(kept, 0, n);
    uint32_t B = v.h.block_size;
    uint64_t j = 0;
    for (uint64_t b = 0; b < v.nb; b++) {
        if (v.dense) {
            for (uint64_t i = b * B; i < n && i < (b + 1) * B; i++)
                kept[i] = 1;
            continue;
        }
        uint16_t c;
        memcpy(&c, v.counts + 2 * b, 2);
        uint32_t at = 0;
        for (uint32_t e = 0; e < c; e++, j++) {
            uint16_t g;
            memcpy(&g, v.gaps + 2 * j, 2);
            at = e ? at + 1 + g : g;
            kept[b * B + at] = 1;
        }
    }
    codec_view_close(&v);
}

/* One quantization step for v in a block whose largest magnitude is amax. */
static float one_step(int q, float v, float amax)
{
    switch (q) {
    case CODEC_QUANT_INT8: return amax / 127 * 1.001f;
    case CODEC_QUANT_INT4: return amax / 7 * 1.001f;
    case CODEC_QUANT_FP16: return fabsf(v) / 1024 + amax * 1e-9f;
    case CODEC_QUANT_FP8_E4M3: return fabsf(v) / 8 + amax / 448 / 256;
    default: return 4 * FLT_EPSILON * fabsf(v);
    }
}

static void test_gpu_matches_cpu(void **state)
{
    (void)state;
    if (!ctx)
        skip();
    const size_t n = 200003;
    float *d = malloc(n * 4), *r_cpu = malloc(n * 4), *r_gpu = malloc(n * 4);
    float *acc_c = malloc(n * 4), *acc_g = malloc(n * 4), *v = malloc(n * 4);
    float *amax = malloc(n * 4);
    uint8_t *kc = malloc(n), *kg = malloc(n);
    float *dd, *dr, *dacc;
    CUDA_OK(cudaMalloc((void **)&dd, n * 4));
    CUDA_OK(cudaMalloc((void **)&dr, n * 4));
    CUDA_OK(cudaMalloc((void **)&dacc, n * 4));
    struct { uint32_t B, K; } shapes[] = {{4096, 41}, {256, 16}, {1000, 1000}, {65536, 655},
                                          {128, 1}, {333, 500}};
    for (int q = 0; q < CODEC_QUANT_COUNT; q++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int ef = 0; ef <= 1; ef++) {
                fill(d, n);
                for (size_t i = 0; i < n; i++)
                    r_cpu[i] = ef ? gauss() * 1e-4f : 0.0f;
                memcpy(r_gpu, r_cpu, n * 4);
                for (size_t i = 0; i < n; i++)
                    v[i] = d[i] + r_cpu[i];
                for (size_t base = 0; base < n; base += shapes[s].B) {
                    size_t end = base + shapes[s].B < n ? base + shapes[s].B : n;
                    float m = 0;
                    for (size_t i = base; i < end; i++)
                        m = fmaxf(m, fabsf(v[i]));
                    for (size_t i = base; i < end; i++)
                        amax[i] = m;
                }
                CUDA_OK(cudaMemcpy(dd, d, n * 4, cudaMemcpyHostToDevice));
                CUDA_OK(cudaMemcpy(dr, r_gpu, n * 4, cudaMemcpyHostToDevice));
                struct codec_params p;
                codec_params_default(&p);
                p.block_size = shapes[s].B;
                p.k_per_block = shapes[s].K;
                p.quant = (enum codec_quant)q;
                p.error_feedback = ef;
                uint8_t *pc, *pg;
                size_t lc, lg;
                assert_int_equal(codec_encode(d, n, &p, r_cpu, &pc, &lc), 0);
                int rc = codec_cuda_encode(ctx, dd, n, &p, dr, &pg, &lg);
                if (rc)
                    fail_msg("gpu encode: %s: %s", codec_strerror(rc), codec_cuda_last_error(ctx));
                CUDA_OK(cudaMemcpy(r_gpu, dr, n * 4, cudaMemcpyDeviceToHost));

                kept_set(pc, lc, n, kc);
                kept_set(pg, lg, n, kg);
                if (memcmp(kc, kg, n) != 0)
                    fail_msg("q %d B %u K %u ef %d: kept sets differ", q, shapes[s].B,
                             shapes[s].K, ef);
                memset(acc_c, 0, n * 4);
                memset(acc_g, 0, n * 4);
                assert_int_equal(codec_decode_accumulate(pc, lc, n, 1.0f, acc_c, NULL, 0), 0);
                assert_int_equal(codec_decode_accumulate(pg, lg, n, 1.0f, acc_g, NULL, 0), 0);
                for (size_t i = 0; i < n; i++) {
                    /* the same quantizer code: equal up to one step; in practice bit-equal */
                    float step = one_step(q, v[i], amax[i]) + 1e-30f;
                    if (fabsf(acc_c[i] - acc_g[i]) > step)
                        fail_msg("q %d B %u: value %zu: cpu %g gpu %g", q, shapes[s].B, i,
                                 (double)acc_c[i], (double)acc_g[i]);
                    float rt = 4 * FLT_EPSILON * (fabsf(v[i]) + fabsf(acc_c[i])) + 1e-30f;
                    if (fabsf(r_cpu[i] - r_gpu[i]) > rt + step)
                        fail_msg("q %d: residual %zu: cpu %g gpu %g", q, i, (double)r_cpu[i],
                                 (double)r_gpu[i]);
                }
                if (lc == lg && memcmp(pc, pg, lc) == 0)
                    print_message("q %d B %u K %u ef %d: identical payloads (%zu bytes)\n", q,
                                  shapes[s].B, shapes[s].K, ef, lc);

                /* GPU decode-accumulate of the CPU payload, with a weight, onto a base */
                for (size_t i = 0; i < n; i++)
                    acc_g[i] = (float)(i % 13) * 0.25f;
                CUDA_OK(cudaMemcpy(dacc, acc_g, n * 4, cudaMemcpyHostToDevice));
                char why[200];
                rc = codec_cuda_decode_accumulate(ctx, pc, lc, n, 0.5f, dacc, why, sizeof why);
                if (rc)
                    fail_msg("gpu decode: %s: %s", codec_strerror(rc), why);
                CUDA_OK(cudaMemcpy(acc_g, dacc, n * 4, cudaMemcpyDeviceToHost));
                for (size_t i = 0; i < n; i++) {
                    float want = (float)(i % 13) * 0.25f + 0.5f * acc_c[i];
                    assert_true(fabsf(acc_g[i] - want) <= 4 * FLT_EPSILON * (fabsf(want) + 4) );
                }
                free(pc);
                free(pg);
            }
    CUDA_OK(cudaFree(dd));
    CUDA_OK(cudaFree(dr));
    CUDA_OK(cudaFree(dacc));
    free(d);
    free(r_cpu);
    free(r_gpu);
    free(acc_c);
    free(acc_g);
    free(v);
    free(amax);
    free(kc);
    free(kg);
}

static void test_gpu_refuses(void **state)
{
    (void)state;
    if (!ctx)
        skip();
    const size_t n = 5000;
    float *d = malloc(n * 4), *acc = malloc(n * 4), *back = malloc(n * 4), *dd, *dacc;
    fill(d, n);
    CUDA_OK(cudaMalloc((void **)&dd, n * 4));
    CUDA_OK(cudaMalloc((void **)&dacc, n * 4));
    struct codec_params p;
    codec_params_default(&p);
    p.block_size = 512;
    p.k_per_block = 20;
    p.zstd_level = 0;
    p.error_feedback = 0;
    uint8_t *pl;
    size_t len;
    assert_int_equal(codec_encode(d, n, &p, NULL, &pl, &len), 0);
    for (size_t i = 0; i < n; i++)
        acc[i] = (float)i;
    for (int it = 0; it < 200; it++) {
        uint8_t *b = malloc(len);
        memcpy(b, pl, len);
        b[rng() % (len < 300 ? len : 300)] ^= (uint8_t)(1u << (rng() % 8));
        CUDA_OK(cudaMemcpy(dacc, acc, n * 4, cudaMemcpyHostToDevice));
        char why[200];
        int rc = codec_cuda_decode_accumulate(ctx, b, len, n, 1.0f, dacc, why, sizeof why);
        CUDA_OK(cudaMemcpy(back, dacc, n * 4, cudaMemcpyDeviceToHost));
        if (rc) {
            assert_true(rc != CODEC_ERR_CUDA);
            assert_memory_equal(back, acc, n * 4);
        }
        free(b);
    }
    /* NaN in the delta: refused before the residual is touched */
    d[4321] = NAN;
    float *r = calloc(n, 4), *dr;
    CUDA_OK(cudaMalloc((void **)&dr, n * 4));
    CUDA_OK(cudaMemcpy(dd, d, n * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dr, r, n * 4, cudaMemcpyHostToDevice));
    p.error_feedback = 1;
    uint8_t *pg;
    size_t lg;
    assert_int_equal(codec_cuda_encode(ctx, dd, n, &p, dr, &pg, &lg), CODEC_ERR_NONFINITE);
    CUDA_OK(cudaMemcpy(back, dr, n * 4, cudaMemcpyDeviceToHost));
    assert_memory_equal(back, r, n * 4);
    CUDA_OK(cudaFree(dr));
    CUDA_OK(cudaFree(dd));
    CUDA_OK(cudaFree(dacc));
    free(r);
    free(pl);
    free(d);
    free(acc);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_matches_cpu),
        cmocka_unit_test(test_gpu_refuses),
    };
    if (codec_cuda_device_count() <= 0)
        print_message("codec_cuda: no CUDA device: GPU tests skipped\n");
    return cmocka_run_group_tests_name("codec_cuda", tests, setup, teardown);
}

#else /* !AULAC_HAVE_CUDA */

static void test_no_cuda(void **state)
{
    (void)state;
    struct codec_cuda *c = (struct codec_cuda *)1;
    assert_int_equal(codec_cuda_device_count(), 0);
    assert_int_equal(codec_cuda_create(0, NULL, &c), CODEC_ERR_NO_CUDA);
    assert_null(c);
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_cuda)};
    print_message("codec_cuda: built without CUDA: GPU tests skipped\n");
    return cmocka_run_group_tests_name("codec_cuda", tests, NULL, NULL);
}

#endif
