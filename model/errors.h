#ifndef AULAC_MODEL_ERRORS_H
#define AULAC_MODEL_ERRORS_H
/* Error codes of model/ (GPT-2, AdamW, trainers, checkpoints): -1400..-1499.
 *
 * The range is shared by three parts of the model stack:
 *   -1400..-1459  model/ itself (MODEL_ERR_*)
 *   -1460..-1479  worker/data.h (DATA_ERR_*), the corpus reader that feeds trainers
 *   -1480..-1499  common/safetensors.h (ST_ERR_*), the checkpoint file format
 * Trainers pass the codes of their batch source and of safetensors through.
 * model_strerror() describes model and safetensors codes and names data_strerror()
 * for the data range (model/ does not include worker headers). */

enum model_error {
    MODEL_OK = 0,
    MODEL_ERR_CONFIG = -1400,    /* invalid gpt2_config (sizes, n_embd % n_head) */
    MODEL_ERR_NOMEM = -1401,     /* allocation failed */
    MODEL_ERR_ARG = -1402,       /* invalid argument: B/T out of range, size mismatch */
    MODEL_ERR_TOKEN = -1403,     /* a token id is outside the vocabulary */
    MODEL_ERR_NONFINITE = -1404, /* loss or gradient is NaN/Inf (the update was skipped), or a
                                    model file holds NaN/Inf (model/layout.h) */
    MODEL_ERR_NO_CUDA = -1405,   /* CUDA backend requested; this build has no CUDA */
    MODEL_ERR_BACKEND = -1406,   /* backend unknown or not available in this build */
    MODEL_ERR_IO = -1407,        /* reading or writing a file failed (logged with errno) */
    MODEL_ERR_FORMAT = -1408,    /* checkpoint/config/state file malformed or mismatched */
    MODEL_ERR_CANCELLED = -1409, /* the progress callback asked to stop */
    MODEL_ERR_BATCH = -1410,     /* the batch callback failed with a non-negative code */
    MODEL_ERR_SHORT = -1411,     /* evaluation data shorter than 2 tokens */
    MODEL_ERR_STATE = -1412,     /* optimizer state does not match this model */
    MODEL_ERR_CUDA = -1413,      /* the CUDA runtime, cuBLAS, NCCL or a kernel failed (logged
                                    with file:line); the trainer may only be destroyed */
    MODEL_ERR_NO_DEVICE = -1414, /* CUDA build, but fewer usable devices than asked for */
};

/* Words for any code of -1400..-1499 (and 0). Static string; never NULL. */
const char *model_strerror(int rc);

#endif
