/* The round close's memory (issue 16): state kept in files and payload pages dropped.
 *
 *   - the outer optimizer state (fedadam: m and v) stepped in a file mapping
 *     (state_map_create, outer_step with state_map_release, state_map_commit) over
 *     several rounds gives the in-memory outer_step's model bit for bit, and its file is
 *     outer_state_encode's record byte for byte; the mapping's pages do not stay resident;
 *   - the downlink residual encoded in a file mapping (codec_encode_released) gives
 *     codec_encode's payload and residual bit for bit, its pages not resident either;
 *   - a payload that is a read-only file mapping (agg_update.mapped = 1) has its pages
 *     dropped as fedavg, clip and median consume it; a payload with mapped = 0 is never
 *     madvised (an anonymous mapping would read back zeros: the control shows it does
 *     when marked mapped).
 *   - the base model snapshot is a read-only mapping of an unnamed file (snapshot_map,
 *     snapshot_to_file): values round-trip, snapshot_drop gives its pages back and keeps
 *     them readable, snapshot_free unmaps; the new model made from it with the base hook
 *     (snapshot_drop_range) is bit for bit the in-memory one and leaves no base page
 *     resident; the close's work buffers (model_buf_*) read zeros after model_buf_drop.
 * Sizes are a few chunks (OUTER_CHUNK, CODEC_RELEASE_CHUNK: 4 Mi values), tens of MB. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aggregate/outer.h"
#include "aggregate/robust.h"
#include "aggregate/round.h"
#include "codec/codec.h"
#include "common/fileio.h"
#include "coordinator/round.h"

/* Resident-memory checks: not under AddressSanitizer, whose shadow memory and allocator
 * make RSS mean something else (the bit-for-bit and content checks still run there). */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKS 0
#else
#define RSS_CHECKS 1
#endif

/* Resident bytes of this process (/proc/self/statm). */
static size_t resident(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu", &size, &res), 2);
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Resident bytes of the mapping that starts at addr (/proc/self/smaps "Rss:"). */
static size_t mapping_resident(const void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    int in = 0;
    size_t kb = SIZE_MAX;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = lo == (unsigned long)(uintptr_t)addr;
        else if (in && sscanf(line, "Rss: %zu kB", &kb) == 1)
            break;
    }
    fclose(f);
    assert_true(kb != SIZE_MAX);
    return kb * 1024;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/aulac_close_memXXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void outer_state_in_a_file_is_the_in_memory_step(void **state)
{
    const size_t n = OUTER_CHUNK + 3333;   /* two chunks, the second short */
    struct outer_opt ram, file;
    assert_int_equal(outer_init(&ram, OUTER_FEDADAM, n, 0.01f, 0.0f), 0);
    assert_int_equal(outer_init(&file, OUTER_FEDADAM, n, 0.01f, 0.0f), 0);
    free(file.m);
    free(file.v);
    file.m = file.v = NULL;
    float *p_ram = malloc(n * 4), *p_file = malloc(n * 4), *delta = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        p_ram[i] = p_file[i] = uniform();
    char prev[128] = "", path[128], tmp[140];
    for (int round = 1; round <= 3; round++) {
        for (size_t i = 0; i < n; i++)
            delta[i] = uniform() * 0.01f;
        outer_step(&ram, p_ram, delta);

        snprintf(path, sizeof path, "%s/%d.bin", dir, round);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        uint8_t hdr[OUTER_STATE_HEADER];
        outer_state_header(&file, hdr);
        struct state_map sm;
        assert_int_equal(state_map_create(&sm, tmp, prev[0] ? prev : NULL, hdr, sizeof hdr, n, 2),
                         0);
        file.m = (float *)(void *)(sm.map + sm.at);
        file.v = file.m + n;
        file.release = state_map_release;
        file.release_arg = &sm;
        const size_t before = resident();
        outer_step(&file, p_file, delta);
        const size_t grown = resident() - before;
        /* Without the release the step leaves 2 * n floats (33 MB) resident. */
        assert_true(!RSS_CHECKS || grown < n * 4 / 4);
        outer_state_header(&file, hdr);
        assert_int_equal(state_map_commit(&sm, path, hdr, sizeof hdr), 0);
        assert_int_equal(sm.fd, -1);
        assert_int_equal(access(tmp, F_OK), -1);
        file.m = file.v = NULL;
        assert_memory_equal(p_ram, p_file, n * 4);
        snprintf(prev, sizeof prev, "%s", path);
    }
    /* The file is the in-memory state's record, byte for byte. */
    uint8_t *want, *got;
    size_t want_len, got_len;
    assert_int_equal(outer_state_encode(&ram, &want, &want_len), 0);
    assert_int_equal(file_read_all(path, want_len + 1, &got, &got_len), 0);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    uint64_t step;
    assert_int_equal(outer_state_header_check(&file, got, got_len, &step), 0);
    assert_int_equal(step, 3);
    assert_int_equal(outer_state_bytes(&file), want_len);
    free(want);
    free(got);
    /* A file of another size is not copied. */
    struct state_map sm;
    uint8_t hdr[OUTER_STATE_HEADER];
    outer_state_header(&file, hdr);
    snprintf(tmp, sizeof tmp, "%s/x.tmp", dir);
    assert_int_equal(state_map_create(&sm, tmp, path, hdr, sizeof hdr, n - 1, 2), -EINVAL);
    assert_int_equal(access(tmp, F_OK), -1);
    outer_free(&ram);
    free(p_ram);
    free(p_file);
    free(delta);
}

static void down_residual_in_a_file_is_the_in_memory_encode(void **state)
{
    const size_t n = 2 * CODEC_RELEASE_CHUNK + 1000;
    struct codec_params dl;
    codec_params_default(&dl);
    dl.block_size = 256;
    dl.k_per_block = 128;
    dl.quant = CODEC_QUANT_INT8;
    dl.zstd_level = 1;
    dl.error_feedback = 1;
    float *res_ram = calloc(n, 4), *delta = malloc(n * 4);
    char prev[128] = "", path[128], tmp[140];
    for (int round = 1; round <= 2; round++) {
        for (size_t i = 0; i < n; i++)
            delta[i] = uniform();
        uint8_t *want, *got;
        size_t want_len, got_len;
        assert_int_equal(codec_encode(delta, n, &dl, res_ram, &want, &want_len), 0);
        snprintf(path, sizeof path, "%s/%d.down", dir, round);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        struct state_map sm;
        assert_int_equal(state_map_create(&sm, tmp, prev[0] ? prev : NULL, NULL, 0, n, 1), 0);
        const size_t before = resident();
        assert_int_equal(codec_encode_released(delta, n, &dl, (float *)(void *)sm.map,
                                               state_map_release, &sm, &got, &got_len), 0);
        const size_t grown = resident() - before;
        /* The payload (~n bytes) is in memory; the residual's n * 4 bytes are not. */
        assert_true(!RSS_CHECKS || grown < n * 4 / 2);
        assert_int_equal(state_map_commit(&sm, path, NULL, 0), 0);
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
        free(want);
        free(got);
        uint8_t *res;
        size_t res_len;
        assert_int_equal(file_read_all(path, n * 4, &res, &res_len), 0);
        assert_int_equal(res_len, n * 4);
        assert_memory_equal(res, res_ram, n * 4);
        free(res);
        snprintf(prev, sizeof prev, "%s", path);
    }
    free(res_ram);
    free(delta);
}

/* A dense fp32 payload of n values (no zstd: its size is n * 4 + headers). */
static void make_payload(size_t n, uint8_t **out, size_t *len)
{
    struct codec_params p;
    codec_params_default(&p);
    p.block_size = 4096;
    p.k_per_block = 4096;
    p.quant = CODEC_QUANT_FP32;
    p.zstd_level = 0;
    p.error_feedback = 0;
    float *d = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        d[i] = uniform();
    assert_int_equal(codec_encode(d, n, &p, NULL, out, len), 0);
    free(d);
}

static void plan_dense(struct policy_round_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->round = 1;
    codec_params_default(&plan->uplink);
    plan->uplink.block_size = 4096;
    plan->uplink.k_per_block = 4096;
    plan->average = POLICY_AVERAGE_MEMBERS;
    plan->sparse_scale = 1.0f;
}

static void mapped_payload_pages_are_dropped(void **state)
{
    const size_t n = 2 * CODEC_RELEASE_CHUNK;   /* 32 MB payloads */
    enum { K = 3 };
    uint8_t *bytes;
    size_t len;
    make_payload(n, &bytes, &len);
    char path[128];
    snprintf(path, sizeof path, "%s/payload.bin", dir);
    assert_int_equal(file_write_atomic(path, bytes, len, 0644), 0);
    free(bytes);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct agg_update u[K];
    memset(u, 0, sizeof u);
    for (int i = 0; i < K; i++) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        assert_true(m != MAP_FAILED);
        snprintf(u[i].member, sizeof u[i].member, "m%d", i);
        u[i].payload = m;
        u[i].len = len;
        u[i].weight = 1.0 + i;
        u[i].mapped = 1;
    }
    close(fd);
    struct policy_round_plan plan;
    plan_dense(&plan);
    float *avg = calloc(n, 4);
    char why[300];
    static const enum policy_agg_rule rules[] = { POLICY_AGG_FEDAVG, POLICY_AGG_CLIP,
                                                  POLICY_AGG_MEDIAN };
    for (size_t r = 0; r < sizeof rules / sizeof *rules; r++) {
        struct policy p;
        memset(&p, 0, sizeof p);
        p.aggregation.rule = rules[r];
        p.aggregation.norm_bound = 1.0;
        const size_t before = resident();
        assert_int_equal(agg_combine(&p, &plan, n, u, K, NULL, avg, NULL, NULL, why, sizeof why),
                         0);
        /* Without dropping, K * 32 MB of payload pages stay resident. */
        const size_t grown = resident() - before;
        assert_true(!RSS_CHECKS || grown < len);
    }
    for (int i = 0; i < K; i++)
        munmap((void *)u[i].payload, len);
    free(avg);
}

static void heap_payloads_are_never_madvised(void **state)
{
    const size_t n = CODEC_RELEASE_CHUNK + 4096;
    uint8_t *bytes;
    size_t len;
    make_payload(n, &bytes, &len);
    /* Anonymous private memory: MADV_DONTNEED would make it read back as zeros. */
    uint8_t *anon = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(anon != MAP_FAILED);
    memcpy(anon, bytes, len);
    struct agg_update u[2];
    memset(u, 0, sizeof u);
    for (int i = 0; i < 2; i++) {
        snprintf(u[i].member, sizeof u[i].member, "m%d", i);
        u[i].payload = anon;
        u[i].len = len;
        u[i].weight = 1.0;
        u[i].mapped = 0;
    }
    struct policy_round_plan plan;
    plan_dense(&plan);
    float *avg = calloc(n, 4);
    char why[300];
    static const enum policy_agg_rule rules[] = { POLICY_AGG_FEDAVG, POLICY_AGG_CLIP,
                                                  POLICY_AGG_MEDIAN };
    for (size_t r = 0; r < sizeof rules / sizeof *rules; r++) {
        struct policy p;
        memset(&p, 0, sizeof p);
        p.aggregation.rule = rules[r];
        p.aggregation.norm_bound = 1.0;
        assert_int_equal(agg_combine(&p, &plan, n, u, 2, NULL, avg, NULL, NULL, why, sizeof why),
                         0);
        assert_memory_equal(anon, bytes, len);
    }
    agg_payload_consumed(&u[0], 0, len);
    assert_memory_equal(anon, bytes, len);
    /* The control: marked mapped, the same memory is dropped (reads back zeros). */
    u[0].mapped = 1;
    agg_payload_consumed(&u[0], 0, len);
    assert_int_equal(anon[len / 2], 0);
    assert_memory_not_equal(anon, bytes, len);
    munmap(anon, len);
    free(bytes);
    free(avg);
}

/* The base model snapshot (snapshot_map): its file has no name in the directory, its
 * values round-trip, dropping its pages keeps them readable and gives the memory back,
 * and freeing it unmaps it. A malloc'd snapshot made mapped in place (snapshot_to_file)
 * keeps its fields. */
static void base_snapshot_is_an_unnamed_file_mapping(void **state)
{
    const size_t n = 2 * OUTER_CHUNK + 777;   /* 32 MB */
    float *params = malloc(n * 4);
    assert_non_null(params);
    for (size_t i = 0; i < n; i++)
        params[i] = uniform();
    struct model_snapshot *s;
    assert_int_equal(snapshot_map(dir, params, n, &s), 0);
    assert_int_equal(s->refs, 1);
    assert_int_equal(s->n, n);
    assert_true(s->map_len >= n * 4);
    /* No name left in the directory: nothing to clean after a crash. */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
    assert_int_equal(system(cmd), 0);
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t pages = (s->map_len + pg - 1) / pg * pg;
    volatile float sum = 0;
    for (size_t i = 0; i < n; i++)   /* touches every page */
        sum += s->params[i];
    assert_int_equal(mapping_resident(s->params), pages);
    snapshot_drop(s, 0, n);
    /* Without the drop the 32 MB stay resident. */
    assert_int_equal(mapping_resident(s->params), 0);
    assert_memory_equal(s->params, params, n * 4);   /* back from the file */
    /* A range drop, as a download sender's behind a chunk: at least the whole pages
     * around it go (the kernel may unmap a whole huge page holding them), everything
     * stays readable. */
    snapshot_drop(s, 1000, 3 * 1024 + 1);   /* floats [1000, 4073): bytes [4000, 16292) */
    assert_true(mapping_resident(s->params) <= pages - (16292 + pg - 1) / pg * pg);
    assert_memory_equal(s->params, params, n * 4);
    /* Freed: the mapping is gone (mincore refuses an unmapped range). */
    void *addr = s->params;
    unsigned char vec[1];
    snapshot_free(s);
    assert_int_equal(mincore(addr, 1, vec), -1);
    assert_int_equal(errno, ENOMEM);

    /* In place, for a malloc'd snapshot (round 0, resume, an older model). */
    s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->params = malloc(n * 4);
    assert_non_null(s->params);
    memcpy(s->params, params, n * 4);
    s->n = n;
    s->refs = 3;
    s->round = 7;
    memset(s->hash, 0xab, 32);
    assert_int_equal(snapshot_to_file(dir, s), 0);
    assert_true(s->map_len >= n * 4);
    assert_int_equal(s->refs, 3);
    assert_int_equal(s->round, 7);
    assert_int_equal(s->hash[31], 0xab);
    assert_memory_equal(s->params, params, n * 4);
    assert_int_equal(system(cmd), 0);
    snapshot_free(s);
    /* A directory that cannot take the file: -errno, nothing made. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    assert_true(snapshot_map(missing, params, n, &s) < 0);
    assert_null(s);
    free(params);
}

/* The close's work buffers (model_buf_*) read as zeros after model_buf_drop, with their
 * memory given back; the new model made from a mapped base with the base hook
 * (snapshot_drop_range) is the in-memory one bit for bit and leaves no base page
 * resident. */
static void work_buffers_and_base_pages_are_given_back(void **state)
{
    const size_t n = 2 * OUTER_CHUNK + 4096;   /* 32 MB */
    float *b = model_buf_alloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        assert_true(b[i] == 0.0f);
    const size_t before = resident();
    for (size_t i = 0; i < n; i++)
        b[i] = 1.0f + (float)i;
    assert_true(!RSS_CHECKS || resident() - before >= n * 4 / 2);
    model_buf_drop(b, n);
    assert_true(!RSS_CHECKS || resident() < before + n * 4 / 4);
    for (size_t i = 0; i < n; i += 1024)
        assert_true(b[i] == 0.0f);

    float *base = malloc(n * 4), *avg1 = malloc(n * 4), *avg2 = malloc(n * 4);
    float *next1 = malloc(n * 4), *next2 = malloc(n * 4), *res1 = calloc(n, 4),
          *res2 = calloc(n, 4);
    assert_true(base && avg1 && avg2 && next1 && next2 && res1 && res2);
    for (size_t i = 0; i < n; i++) {
        base[i] = uniform();
        avg1[i] = avg2[i] = uniform() * 0.01f;
    }
    struct model_snapshot *s;
    assert_int_equal(snapshot_map(dir, base, n, &s), 0);
    struct policy_round_plan plan;
    plan_dense(&plan);
    plan.downlink_on = 1;
    codec_params_default(&plan.downlink);
    plan.downlink.error_feedback = 1;
    struct outer_opt o1, o2;
    assert_int_equal(outer_init(&o1, OUTER_NESTEROV, n, 0.7f, 0.9f), 0);
    assert_int_equal(outer_init(&o2, OUTER_NESTEROV, n, 0.7f, 0.9f), 0);
    uint8_t *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    char why[300];
    assert_int_equal(agg_next_model(&plan, &o1, res1, base, avg1, n, next1, &d1, &l1, why,
                                    sizeof why), 0);
    assert_int_equal(mapping_resident(s->params), 0);
    assert_int_equal(agg_next_model_released(&plan, &o2, res2, NULL, NULL, s->params,
                                             snapshot_drop_range, s, avg2, n, next2, &d2, &l2,
                                             why, sizeof why), 0);
    /* Without the hook the base's 32 MB stay resident after its three passes. */
    assert_int_equal(mapping_resident(s->params), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    assert_memory_equal(next1, next2, n * 4);
    snapshot_free(s);
    outer_free(&o1);
    outer_free(&o2);
    free(d1);
    free(d2);
    free(base);
    free(avg1);
    free(avg2);
    free(next1);
    free(next2);
    free(res1);
    free(res2);
    model_buf_free(b, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(outer_state_in_a_file_is_the_in_memory_step, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(down_residual_in_a_file_is_the_in_memory_encode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mapped_payload_pages_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(heap_payloads_are_never_madvised, setup, teardown),
        cmocka_unit_test_setup_teardown(base_snapshot_is_an_unnamed_file_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(work_buffers_and_base_pages_are_given_back, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
