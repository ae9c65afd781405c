/* The fast convolution kernels: one family per instruction-set level, each bit-exact with the
 * scalar reference (conv.c, hawq_qrt_conv). A plan (plan.c) asks once per CONV node whether the
 * chosen level handles it, packs the node's weights for that level at plan time, and then calls
 * the kernel on every run; nodes a level does not handle run on the reference.
 *
 * Every function here takes the level explicitly and must only be called with a level the CPU
 * has (the plan checks once). Kernels may use up to `threads` OpenMP threads inside. */
#ifndef HAWQ_QRT_CONVF_H
#define HAWQ_QRT_CONVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qrt/qrt.h"

/* Whether level isa has a fast kernel for CONV node n of m. Always false for HAWQ_ISA_SCALAR. */
bool qrt_convf_supported(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa);

/* Bytes of node n's packed form for isa (weights, bias with any folded corrections, dyadics,
 * whatever the kernel reads at run time). */
size_t qrt_convf_packed_size(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa);

/* Writes node n's packed form into dst (64-byte aligned, qrt_convf_packed_size bytes). */
void qrt_convf_pack(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, void *dst);

/* Whether REQUANT node rq, which reads CONV node n's output, can be computed by n's kernel at
 * level isa as a second output (from each 16-bit output value as it is stored), saving its
 * own pass over the tensor: VNNI, a 16-bit output, an 8-bit requantized one, 17 <= c <= 62. */
bool qrt_convf_can_fuse_requant(const hawq_qmodel *m, const hawq_qnode *n, const hawq_qnode *rq,
                                hawq_isa isa);
/* Makes node n's packed form (qrt_convf_pack) also compute rq's output: qrt_convf_run's y2. */
void qrt_convf_fuse_requant(const hawq_qmodel *m, const hawq_qnode *rq, void *packed);

/* Scratch bytes one run over `batch` samples with up to `threads` threads needs. */
size_t qrt_convf_scratch_size(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, int batch,
                              int threads);

/* Node n over `batch` samples: x is the input tensor's data (batch samples back to back, as in a
 * workspace slot), res the residual input's data or NULL, y the output's, y2 the fused
 * requantization's output (NULL unless qrt_convf_fuse_requant). scratch is 64-byte aligned and
 * qrt_convf_scratch_size bytes. Writes exactly what hawq_qrt_conv (and hawq_qrt_requant)
 * write (packed rows' unused high nibble zero). */
void qrt_convf_run(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, const void *packed,
                   const uint8_t *x, const uint8_t *res, uint8_t *y, uint8_t *y2, void *scratch,
                   int batch, int threads);

#endif
