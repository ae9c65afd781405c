/* Vectorised versions of the per-pixel and pooling ops for the AVX2 and AVX-512 levels
 * (ops_simd.h, compiled once per level), bit-exact with the reference kernels. */
#ifndef HAWQ_QRT_OPS_FAST_H
#define HAWQ_QRT_OPS_FAST_H

#include <stdbool.h>

#include "qrt/qrt_internal.h"

/* Whether level isa has a vectorised kernel for node n (never for the scalar level). */
bool qrt_ops_fast_supported(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa);
/* Runs node n (supported at isa) with that level's kernel. */
void qrt_ops_fast_run(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, const qrt_args *a);

/* INPUT by table: the pixels are uint8, so each channel's map is 256 values, computed once at
 * plan time with the reference formula (exact by construction). The table holds c x 256 int32. */
size_t qrt_input_table_size(const hawq_qmodel *m, const hawq_qnode *n);
void qrt_input_table_build(const hawq_qmodel *m, const hawq_qnode *n, int32_t *table);
void qrt_input_table_run(const hawq_qmodel *m, const hawq_qnode *n, const int32_t *table,
                         const qrt_args *a);

void qrt_ops_run_avx2(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void qrt_ops_run_avx512(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);

#endif
