#ifndef AULAC_MODEL_PARALLEL_H
#define AULAC_MODEL_PARALLEL_H
/* A small fork-join pool for the model's loops: parallel_for splits [0, n) into at
 * most one contiguous range ("chunk") per thread; the caller and the workers claim
 * chunks until none is left, so a descheduled worker delays nothing. The split
 * depends only on n, the grain and the thread count, so results that are computed per
 * chunk are reproducible for a given thread count whichever thread runs what.
 * Workers spin briefly after a job (jobs come in quick succession during a training
 * step), then sleep on a condition variable. Internal to model/. */
#include <stddef.h>

struct parallel;

/* threads >= 1 (the caller counts as one). MODEL_ERR_NOMEM. */
int parallel_create(int threads, struct parallel **out);
void parallel_destroy(struct parallel *p);
int parallel_threads(const struct parallel *p);

/* fn(ctx, begin, end, chunk) for each non-empty range; chunk in [0, threads) numbers
 * the range, and no two calls with the same chunk run at once, so it can index
 * per-range scratch memory and partial results. Ranges hold at least `grain` items
 * (fewer chunks for small n), so tiny loops run on the caller alone. Returns when
 * every range is done. One caller at a time. */
typedef void (*parallel_fn)(void *ctx, size_t begin, size_t end, int chunk);
void parallel_for(struct parallel *p, size_t n, size_t grain, parallel_fn fn, void *ctx);

#endif
