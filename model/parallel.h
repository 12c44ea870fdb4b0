#ifndef AULAC_MODEL_PARALLEL_H
#define AULAC_MODEL_PARALLEL_H
/* A small fork-join pool for the model's loops: parallel_for splits [0, n) into
 * contiguous ranges, one per thread, the caller running the first. The split depends
 * only on n, the grain and the thread count, so results are reproducible for a given
 * thread count. Workers spin briefly after a job (jobs come in quick succession
 * during a training step), then sleep on a condition variable. Internal to model/. */
#include <stddef.h>

struct parallel;

/* threads >= 1 (the caller counts as one). MODEL_ERR_NOMEM. */
int parallel_create(int threads, struct parallel **out);
void parallel_destroy(struct parallel *p);
int parallel_threads(const struct parallel *p);

/* fn(ctx, begin, end, tid) for each non-empty range; tid in [0, threads). Ranges hold
 * at least `grain` items (fewer threads are used for small n), so tiny loops run on
 * the caller alone. Returns when every range is done. Not reentrant. */
typedef void (*parallel_fn)(void *ctx, size_t begin, size_t end, int tid);
void parallel_for(struct parallel *p, size_t n, size_t grain, parallel_fn fn, void *ctx);

#endif
