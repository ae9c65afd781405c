/* Which ops have vectorised kernels, and the call into the level's compiled copy. */
#include "qrt/ops_fast.h"

bool qrt_ops_fast_supported(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa) {
  (void)m; /* every type is handled */
  if (isa != HAWQ_ISA_AVX2 && isa != HAWQ_ISA_AVX512VNNI) return false;
  switch (n->op) {
    case HAWQ_QOP_REQUANT:
    case HAWQ_QOP_CONCAT:
    case HAWQ_QOP_ADD:
    case HAWQ_QOP_AVGPOOL:
    case HAWQ_QOP_MAXPOOL:
      return true;
    default:
      return false;
  }
}

void qrt_ops_fast_run(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, const qrt_args *a) {
  if (isa == HAWQ_ISA_AVX512VNNI) {
    qrt_ops_run_avx512(m, n, a);
  } else {
    qrt_ops_run_avx2(m, n, a);
  }
}

size_t qrt_input_table_size(const hawq_qmodel *m, const hawq_qnode *n) {
  return (size_t)m->tensors[n->output].c * 256 * sizeof(int32_t);
}

void qrt_input_table_build(const hawq_qmodel *m, const hawq_qnode *n, int32_t *table) {
  const hawq_qtensor *y = &m->tensors[n->output];
  for (int64_t ch = 0; ch < y->c; ch++) {
    for (int64_t p = 0; p < 256; p++) {
      int64_t v = p * n->input_mul[ch] + n->input_add[ch];
      table[ch * 256 + p] = (int32_t)hawq_clamp64(hawq_rescale(v, n->dyadic[ch]), y->lo, y->hi);
    }
  }
}

void qrt_input_table_run(const hawq_qmodel *m, const hawq_qnode *n, const int32_t *table,
                         const qrt_args *a) {
  const hawq_qtensor *y = &m->tensors[n->output];
  int64_t rows = (int64_t)a->batch * y->h * y->w, c = y->c, yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    if ((y->type == HAWQ_QT_U8 || y->type == HAWQ_QT_I8) && c == 3) {
      /* RGB: the pixels' bytes are one run, three tables taking turns (no loop per pixel) */
      const uint8_t *x = a->in[0] + r0 * 3;
      uint8_t *yr = a->out + r0 * 3;
      for (int64_t r = r0; r < r1; r++, x += 3, yr += 3) {
        yr[0] = (uint8_t)table[x[0]];
        yr[1] = (uint8_t)table[256 + x[1]];
        yr[2] = (uint8_t)table[512 + x[2]];
      }
      r1 = r0; /* done */
    }
    for (int64_t r = r0; r < r1; r++) {
      const uint8_t *x = a->in[0] + r * c;
      uint8_t *yr = a->out + r * yrb;
      if (y->type == HAWQ_QT_U8 || y->type == HAWQ_QT_I8) {
        for (int64_t ch = 0; ch < c; ch++) yr[ch] = (uint8_t)table[ch * 256 + x[ch]];
      } else if (y->type == HAWQ_QT_U4 || y->type == HAWQ_QT_I4) {
        int64_t ch = 0; /* whole bytes, low nibble first; an odd row's last high nibble 0 */
        for (; ch + 1 < c; ch += 2) {
          yr[ch >> 1] = (uint8_t)((table[ch * 256 + x[ch]] & 15) |
                                  ((table[(ch + 1) * 256 + x[ch + 1]] & 15) << 4));
        }
        if (ch < c) yr[ch >> 1] = (uint8_t)(table[ch * 256 + x[ch]] & 15);
      } else {
        for (int64_t ch = 0; ch < c; ch++) hawq_qrow_set(y->type, yr, ch, table[ch * 256 + x[ch]]);
        qrt_row_finish(y->type, yr, c);
      }
    }
  }
}
