#ifndef AULAC_WORKER_STATE_H
#define AULAC_WORKER_STATE_H
/* The worker's state directory, so that it resumes after a restart of either side:
 *
 *   progress        text: experiment id, last accepted round, replica model hash
 *                   (model_layout_hash), and the plug-in's optimizer_step
 *   model.f32       the replica: the last base model (flat little-endian fp32, in the
 *                   order of the experiment's model layout)
 *   residual.f32    error-feedback residual      } as of the last accepted round;
 *   optimizer.st    the inner AdamW state        } *.pending until the coordinator
 *                   (model/trainer.h format;     } accepts the round's update
 *                   built-in trainer only)       }
 *   final/          the experiment's final model: model.safetensors (F32, the layout's
 *                   names) + config.json (GPT-2's, or the pinned one) + tokenizer.json
 *                   (when pinned): loads with from_pretrained
 *   artifacts/<hex> the experiment's pinned files (worker/artifacts.h)
 *   trainer/        a command trainer's workdir by default (worker/TRAINER.md)
 *
 * Every file is written atomically (temp file, fsync, rename). State of another
 * experiment is ignored (and replaced as the new one proceeds). */
#include "worker/worker.h"

int worker_state_open(struct worker *w);            /* creates the directory (0700) */
int worker_state_load(struct worker *w);            /* after the trainer exists */
int worker_state_save_model(struct worker *w);
int worker_state_save_training(struct worker *w);   /* residual + optimizer, as pending */
int worker_state_commit_training(struct worker *w); /* the round was accepted: pending → state */
int worker_state_save_progress(struct worker *w);
int worker_state_save_final(struct worker *w);

#endif
