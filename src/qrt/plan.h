/* An execution plan: a validated QModel prepared once for fast repeated runs at one instruction
 * set level and thread count.
 *   - Kernels: each CONV node the level handles has its weights packed for that level's kernel
 *     (convf.h); INPUT becomes a per-channel table of its 256 pixel values; requantize, add,
 *     concat and the pools run vectorised (ops_fast.h); everything else, and everything at the
 *     scalar level, runs on the reference kernels. Every level computes the same bits as the
 *     reference runtime (qrt.h).
 *   - Memory: a static plan. Tensor slots share one arena wherever their lifetimes (producer to
 *     last reader, in execution order) do not overlap; slots are placed largest first at the
 *     lowest offset that overlaps no placed slot alive at the same time. The caller's pixels
 *     are read in place. HAWQ_QRT_PLAN_KEEP_ALL gives every tensor its own slot instead, so
 *     every intermediate can be read after a run and any node re-run alone (per-layer timing).
 *   - Storage: at the AVX-512 VNNI level, a 4-bit activation that a convolution reads is stored
 *     one value per byte (U8 / I8 holding the same values) rather than two per byte: that level
 *     multiplies bytes, and unpacking nibbles in every tile cost more than the halved bytes saved
 *     (docs/benchmarks.md). HAWQ_QRT_PLAN_PACKED_INT4 keeps every 4-bit tensor packed.
 *   - Fusion: at the VNNI level, a REQUANT of a convolution's 16-bit output (the residual
 *     stream requantized for the next block's convolutions) is computed by that convolution's
 *     kernel as a second output, from each value as it is stored; the REQUANT node then does
 *     nothing, and a per-node time counts it in the conv's. HAWQ_QRT_PLAN_NO_FUSION turns it off.
 * The level must be one this CPU has (hawq_isa_best); the plan does not check again. */
#ifndef HAWQ_QRT_PLAN_H
#define HAWQ_QRT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "qrt/qrt.h"

typedef struct hawq_qrt_plan hawq_qrt_plan;

enum { HAWQ_QRT_PLAN_KEEP_ALL = 1, HAWQ_QRT_PLAN_PACKED_INT4 = 2, HAWQ_QRT_PLAN_NO_FUSION = 4 };

/* A plan for m (borrowed: it must outlive the plan) for batches of 1..max_batch samples with up
 * to `threads` threads. NULL when out of memory, or when max_batch samples would not fit a
 * size_t. */
hawq_qrt_plan *hawq_qrt_plan_create(const hawq_qmodel *m, hawq_isa isa, int threads, int max_batch,
                                    int flags);
void hawq_qrt_plan_destroy(hawq_qrt_plan *p); /* NULL is fine */

typedef struct hawq_qrt_plan_stats {
  hawq_isa isa;
  int threads, max_batch;
  int fast_nodes, conv_nodes; /* CONV nodes on the level's kernels, of all CONV nodes */
  size_t arena_bytes;         /* activations, for max_batch samples */
  size_t all_slots_bytes;     /* what one slot per tensor would take */
  size_t scratch_bytes;       /* the largest op's scratch */
  size_t packed_bytes;        /* packed weights, biases, dyadics and tables held by the plan */
  int int4_as_bytes;          /* 4-bit tensors stored one value per byte (see Storage) */
  int fused_requants;         /* REQUANT nodes computed by their conv's kernel (see Fusion) */
} hawq_qrt_plan_stats;
hawq_qrt_plan_stats hawq_qrt_plan_get_stats(const hawq_qrt_plan *p);

/* Bytes of the caller's workspace (arena, then scratch); 64-byte aligned by the caller. */
size_t hawq_qrt_plan_workspace_size(const hawq_qrt_plan *p);

/* Runs batch (1..max_batch) images: pixels batch x h x w x c uint8; logits, when not NULL,
 * receives batch x classes int32. */
void hawq_qrt_plan_run(const hawq_qrt_plan *p, const uint8_t *pixels, int batch, void *ws,
                       int32_t *logits);

/* Runs node i alone on what the workspace holds (a KEEP_ALL plan after a full run of the same
 * batch: per-layer timing). */
void hawq_qrt_plan_run_node(const hawq_qrt_plan *p, int i, const uint8_t *pixels, int batch,
                            void *ws);

/* Tensor t's data in the workspace (batch samples back to back), or NULL for a tensor that has
 * no slot (the pixels). Meaningful after a run for the output, and for every tensor of a
 * KEEP_ALL plan. */
void *hawq_qrt_plan_tensor(const hawq_qrt_plan *p, void *ws, int t);

/* The type tensor t is stored in by this plan: the model's, or U8 / I8 for a 4-bit tensor
 * stored one value per byte (see Storage above). */
hawq_qtype hawq_qrt_plan_tensor_type(const hawq_qrt_plan *p, int t);

/* Whether node i runs on a kernel of the plan's level rather than the reference. */
int hawq_qrt_plan_node_fast(const hawq_qrt_plan *p, int i);

#endif
