#include "model/errors.h"

#include "common/safetensors.h"
#include "model/hf_config.h"

const char *model_strerror(int rc)
{
    /* worker/data.h owns -1460..-1479; model/ must not include a daemon's header. */
    if (rc <= -1460 && rc >= -1479)
        return "the corpus reader failed (worker/data.h data_strerror() has details)";
    if (rc <= ST_ERR_FIRST && rc >= ST_ERR_LAST)
        return safetensors_strerror(rc);
    switch (rc) {
    case MODEL_OK: return "success";
    case MODEL_ERR_CONFIG: return "invalid model configuration (sizes must be positive, "
                                  "n_embd divisible by n_head)";
    case MODEL_ERR_NOMEM: return "out of memory";
    case MODEL_ERR_ARG: return "invalid argument (batch/sequence size out of range or "
                               "buffer size mismatch)";
    case MODEL_ERR_TOKEN: return "token id outside the model's vocabulary";
    case MODEL_ERR_NONFINITE: return "a value is not finite (NaN or infinity): a loss or "
                                     "gradient (the update was skipped; lower the learning "
                                     "rate or enable gradient clipping) or a model file's tensor";
    case MODEL_ERR_NO_CUDA: return "CUDA backend requested but this build has no CUDA support "
                                   "(rebuild where nvcc is found, without NO_GPU=1)";
    case MODEL_ERR_BACKEND: return "the requested trainer backend is not available in this build";
    case MODEL_ERR_IO: return "file I/O failed (see the log for path and reason)";
    case MODEL_ERR_FORMAT: return "model/config/optimizer file is malformed or does not "
                                  "match the model";
    case MODEL_ERR_CANCELLED: return "training stopped by the progress callback";
    case MODEL_ERR_BATCH: return "the batch source failed";
    case MODEL_ERR_SHORT: return "evaluation data too short (need at least 2 tokens)";
    case MODEL_ERR_STATE: return "optimizer state does not match this model "
                                 "(different parameter count)";
    case MODEL_ERR_CUDA: return "a CUDA, cuBLAS or NCCL call failed (see the log for where "
                                "and why); recreate the trainer";
    case MODEL_ERR_NO_DEVICE: return "not enough usable CUDA devices for the requested GPU "
                                     "count (check nvidia-smi and CUDA_VISIBLE_DEVICES)";
    case MODEL_ERR_UNSUPPORTED_ARCH: return "the config's model_type is not one whose tensors "
                                            "are known (llama, mistral, qwen2, gpt2)";
    default: return "unknown model error";
    }
}
