#ifndef AULAC_WORKER_DATA_H
#define AULAC_WORKER_DATA_H
/* A member's private corpus as training batches of bytes.
 *
 * The corpus is a directory tree of text files. Regular files are taken in
 * byte-wise sorted order of their relative paths ("a.txt" < "a/b.txt" < "b.txt");
 * entries whose name starts with '.' (files and directories: .git, .DS_Store),
 * symbolic links and other non-regular files are skipped. Their bytes, concatenated
 * without separators, are the corpus stream. Files of DATA_MMAP_MIN bytes or more
 * are mapped read-only; smaller ones are read into memory. The files must not be
 * truncated while open.
 *
 * Train/validation split: the stream is cut into DATA_CHUNK (4 KiB) chunks; with
 * val_fraction f (rounded to parts per million), chunk i is validation exactly when
 * floor((i+1) f + 1/2) > floor(i f + 1/2) -- for f = 0.1 the chunks 4, 14, 24, ...
 * -- so validation text is spread over the whole corpus, the split is the same on
 * every machine (integer arithmetic), and a corpus of 5 chunks already has one.
 * The training stream is the remaining chunks in order.
 *
 * Batches: B windows of T+1 bytes at uniformly random offsets of the training
 * stream (a window may span a removed validation chunk), drawn from xoshiro256**
 * seeded with the per-member seed: the same corpus and seed give the same batches.
 *
 * Errors: DATA_ERR_* in -1460..-1479 (inside model/errors.h's range), with
 * data_strerror(); data_open also writes a sentence naming the directory, file and
 * sizes into `why`. */
#include <stddef.h>
#include <stdint.h>

#define DATA_CHUNK 4096
#define DATA_MMAP_MIN (256u << 10)

enum data_error {
    DATA_ERR_FIRST = -1460,
    DATA_ERR_NO_DIR = -1460,    /* the corpus directory is missing or not a directory */
    DATA_ERR_IO = -1461,        /* a file or directory could not be read, or its name
                                 * is not valid UTF-8 */
    DATA_ERR_EMPTY = -1462,     /* no non-empty regular file in the tree */
    DATA_ERR_TOO_SMALL = -1463, /* fewer training bytes than one window (T+1) */
    DATA_ERR_ARG = -1464,       /* invalid argument (fraction, sizes) */
    DATA_ERR_NOMEM = -1465,
    DATA_ERR_LAST = -1479,
};

struct data_opts {
    double val_fraction; /* in [0, 0.5]; 0.1 is typical */
    int seq_len;         /* T: the corpus must hold one training window of T+1 bytes */
    uint64_t seed;       /* per-member seed of the window sampler */
};

struct data;

/* Opens the corpus under dir. why (may be NULL) receives a one-line explanation of
 * a failure, e.g. "corpus /srv/corpus holds 812 training bytes in 3 files; one
 * window needs 1025 (seq_len 1024 + 1)". DATA_ERR_NO_DIR, DATA_ERR_IO, DATA_ERR_EMPTY,
 * DATA_ERR_TOO_SMALL, DATA_ERR_ARG, DATA_ERR_NOMEM; *out NULL on error. */
int data_open(const char *dir, const struct data_opts *opts, struct data **out, char *why,
              size_t why_len);
void data_close(struct data *d);

size_t data_num_files(const struct data *d);
const char *data_file_path(const struct data *d, size_t i); /* relative; NULL past end */
uint64_t data_total_bytes(const struct data *d);
uint64_t data_train_bytes(const struct data *d);
uint64_t data_val_bytes(const struct data *d);

/* Restarts the window sampler from seed (e.g. a hash of member and round). */
void data_reseed(struct data *d, uint64_t seed);

/* trainer_batch_fn (model/trainer.h) with ctx = struct data *: fills tokens[B*(T+1)]
 * with B random training windows. DATA_ERR_TOO_SMALL when T+1 exceeds the training
 * stream, DATA_ERR_ARG for B or T < 1. */
int data_next_batch(void *ctx, uint8_t *tokens, int B, int T);

/* Copies n bytes of the training stream starting at offset. DATA_ERR_ARG past end. */
int data_read_train(const struct data *d, uint64_t offset, uint8_t *dst, size_t n);

/* The first min(max_bytes, data_val_bytes) validation bytes (max_bytes 0: all) as one
 * contiguous buffer, e.g. for trainer_evaluate. Built on the first call and kept
 * (a later call with a larger max_bytes rebuilds it); owned by d, valid until the
 * next data_validation or data_close. DATA_ERR_NOMEM. */
int data_validation(struct data *d, size_t max_bytes, const uint8_t **out, size_t *len);

const char *data_strerror(int rc);

#endif
