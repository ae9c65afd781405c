/* Execution plans (plan.h): kernel choice and weight packing per node, and the static memory
 * plan. Built once per model, level and thread count; runs then only index into it. */
#include "qrt/plan.h"

#include <stdlib.h>
#include <string.h>

#include "qrt/convf.h"
#include "qrt/ops_fast.h"
#include "qrt/qrt_internal.h"

/* What runs a node. */
typedef enum node_kernel {
  RUN_REFERENCE,   /* the scalar reference kernel of its op */
  RUN_INPUT_TABLE, /* INPUT by its table (packed[i]) */
  RUN_CONVF,       /* the level's conv kernel on packed[i] */
  RUN_OPS_FAST,    /* the level's vectorised op */
  RUN_FUSED        /* a REQUANT computed by its producer's conv kernel (fused_into) */
} node_kernel;

struct hawq_qrt_plan {
  /* The model as the plan runs it: the caller's, with its own tensor array, where 4-bit
   * activations may be stored one value per byte and a fused REQUANT's output is produced by
   * its convolution (plan.h); the nodes and names are the caller's. */
  const hawq_qmodel *m;
  hawq_qmodel stored;
  hawq_qtensor *stored_tensors;
  int widened, fusions;
  int *fused_into; /* per node: the REQUANT node a fast conv also computes, or -1 */
  hawq_isa isa;
  int threads, max_batch;
  size_t *offset;     /* per tensor: its slot in the arena (SIZE_MAX: the pixels, read in place) */
  size_t arena_bytes; /* the scratch area follows the arena */
  size_t scratch_bytes, all_slots_bytes, packed_bytes;
  node_kernel *kernel; /* per node */
  void **packed;       /* per node: a CONV's packed form or an INPUT's table, else NULL */
  uint8_t *packed_mem; /* one 64-byte aligned block holding every node's packed form */
};

static size_t align64(size_t x) {
  return (x + 63) & ~(size_t)63;
}

static size_t slot_bytes(const hawq_qmodel *m, int t, int batch) {
  return align64((size_t)batch * (size_t)qrt_sample_bytes(&m->tensors[t]));
}

/* Whether every slot and their sum fit a size_t for this batch (validation bounds a sample's
 * bytes; a caller's max_batch is not bounded). */
static bool slots_fit(const hawq_qmodel *m, int batch) {
  size_t total = 0, bytes;
  for (int t = 0; t < m->n_tensors; t++) {
    if (__builtin_mul_overflow((size_t)batch, (size_t)qrt_sample_bytes(&m->tensors[t]), &bytes) ||
        bytes > SIZE_MAX / 4 || __builtin_add_overflow(total, align64(bytes), &total) ||
        total > SIZE_MAX / 4) {
      return false;
    }
  }
  return true;
}

/* Lifetimes in node order: tensor t is written by node first[t] (-1: the pixels) and read last
 * by node last[t] (n_nodes for the output, which the caller reads after the run). */
static void lifetimes(const hawq_qmodel *m, int *first, int *last) {
  for (int t = 0; t < m->n_tensors; t++) first[t] = last[t] = m->tensors[t].producer;
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *n = &m->nodes[i];
    for (int j = 0; j < n->n_inputs; j++) {
      if (n->inputs[j] >= 0 && last[n->inputs[j]] < i) last[n->inputs[j]] = i;
    }
  }
  last[m->output] = m->n_nodes;
}

/* Places every slot but the pixels' (see plan.h); returns the arena's size. */
static size_t place_slots(const hawq_qmodel *m, int batch, bool keep_all, size_t *offset) {
  int nt = m->n_tensors;
  int *first = malloc(sizeof(int) * (size_t)nt * 3);
  if (!first) return SIZE_MAX;
  int *last = first + nt, *order = last + nt;
  lifetimes(m, first, last);
  /* Largest first (insertion sort: a few hundred tensors, once per plan). */
  int count = 0;
  for (int t = 0; t < nt; t++) {
    offset[t] = SIZE_MAX;
    if (t == m->input) continue;
    int i = count++;
    while (i > 0 && slot_bytes(m, order[i - 1], batch) < slot_bytes(m, t, batch)) {
      order[i] = order[i - 1];
      i--;
    }
    order[i] = t;
  }
  size_t arena = 0;
  for (int i = 0; i < count; i++) {
    int t = order[i];
    size_t size = slot_bytes(m, t, batch), at = 0;
    if (keep_all) {
      at = arena;
    } else {
      /* The lowest offset clear of every placed slot alive at the same time: candidates are 0
       * and the end of each such slot. */
      for (int moved = 1; moved;) {
        moved = 0;
        for (int j = 0; j < i; j++) {
          int u = order[j];
          bool alive_together = first[u] <= last[t] && first[t] <= last[u];
          size_t us = slot_bytes(m, u, batch);
          if (alive_together && at < offset[u] + us && offset[u] < at + size) {
            at = offset[u] + us;
            moved = 1;
          }
        }
      }
    }
    offset[t] = at;
    if (at + size > arena) arena = at + size;
  }
  free(first);
  return arena;
}

/* Whether 4-bit tensor t is better stored one value per byte at level isa: a convolution on
 * the VNNI kernels reads it, and those multiply bytes, so it would unpack every value of every
 * tile (or of its padded image) before use. Measured per layer (docs/benchmarks.md), the unpack
 * costs more than the halved bytes save; the producer's nibble packing goes too. */
static bool store_as_bytes(const hawq_qmodel *m, int t, hawq_isa isa) {
  if (isa != HAWQ_ISA_AVX512VNNI || !qrt_is_packed(m->tensors[t].type)) return false;
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *n = &m->nodes[i];
    if (n->op == HAWQ_QOP_CONV && n->inputs[0] == t && qrt_convf_supported(m, n, isa)) return true;
  }
  return false;
}

/* The plan's stored model (see struct hawq_qrt_plan): U4 -> U8, I4 -> I8, same values and
 * bounds, so every kernel computes the same integers. A max pool's input and output share their
 * type (the model's contract), so either one's choice widens both. */
static bool make_stored(hawq_qrt_plan *p, const hawq_qmodel *m, hawq_isa isa, int flags) {
  p->stored = *m;
  p->m = &p->stored;
  size_t nt = (size_t)(m->n_tensors > 0 ? m->n_tensors : 1);
  p->stored_tensors = malloc(sizeof(hawq_qtensor) * nt);
  bool *wide = calloc(nt, sizeof(bool));
  if (!p->stored_tensors || !wide) {
    free(wide);
    return false;
  }
  memcpy(p->stored_tensors, m->tensors, sizeof(hawq_qtensor) * (size_t)m->n_tensors);
  p->stored.tensors = p->stored_tensors;
  bool any = false;
  for (int t = 0; t < m->n_tensors && !(flags & HAWQ_QRT_PLAN_PACKED_INT4); t++) {
    any |= wide[t] = store_as_bytes(m, t, isa);
  }
  for (bool changed = any; changed;) {
    changed = false;
    for (int i = 0; i < m->n_nodes; i++) {
      const hawq_qnode *n = &m->nodes[i];
      if (n->op != HAWQ_QOP_MAXPOOL || wide[n->inputs[0]] == wide[n->output]) continue;
      if (!qrt_is_packed(m->tensors[n->output].type)) continue;
      wide[n->inputs[0]] = wide[n->output] = true;
      changed = true;
    }
  }
  for (int t = 0; t < m->n_tensors; t++) {
    hawq_qtensor *st = &p->stored_tensors[t];
    if (!wide[t]) continue;
    st->type = st->type == HAWQ_QT_U4 ? HAWQ_QT_U8 : HAWQ_QT_I8;
    p->widened++;
  }
  free(wide);
  return true;
}

/* Fusions on the stored model: a REQUANT of a fast conv's 16-bit output (the residual stream
 * requantized for the next block) becomes a second output of that conv's kernel, which has the
 * clamped value in a register: one pass over the tensor fewer. The REQUANT's output is then
 * written by the conv, so its lifetime starts there (its producer in the stored model). */
static bool plan_fusions(hawq_qrt_plan *p, hawq_isa isa, int flags) {
  const hawq_qmodel *m = p->m;
  p->fused_into = malloc(sizeof(int) * (size_t)(m->n_nodes > 0 ? m->n_nodes : 1));
  if (!p->fused_into) return false;
  for (int i = 0; i < m->n_nodes; i++) p->fused_into[i] = -1;
  if (flags & HAWQ_QRT_PLAN_NO_FUSION) return true;
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *rq = &m->nodes[i];
    if (rq->op != HAWQ_QOP_REQUANT) continue;
    int conv = m->tensors[rq->inputs[0]].producer;
    if (conv < 0 || p->fused_into[conv] >= 0) continue;
    if (!qrt_convf_can_fuse_requant(m, &m->nodes[conv], rq, isa)) continue;
    p->fused_into[conv] = i;
    p->stored_tensors[rq->output].producer = conv;
    p->fusions++;
  }
  return true;
}

hawq_qrt_plan *hawq_qrt_plan_create(const hawq_qmodel *m_in, hawq_isa isa, int threads,
                                    int max_batch, int flags) {
  hawq_qrt_plan *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  if (!make_stored(p, m_in, isa, flags) || !plan_fusions(p, isa, flags)) {
    hawq_qrt_plan_destroy(p);
    return NULL;
  }
  const hawq_qmodel *m = p->m;
  p->isa = isa;
  p->threads = threads < 1 ? 1 : threads;
  p->max_batch = max_batch < 1 ? 1 : max_batch;
  p->offset = malloc(sizeof(size_t) * (size_t)(m->n_tensors > 0 ? m->n_tensors : 1));
  p->packed = calloc((size_t)(m->n_nodes > 0 ? m->n_nodes : 1), sizeof(void *));
  p->kernel = calloc((size_t)(m->n_nodes > 0 ? m->n_nodes : 1), sizeof(node_kernel));
  if (!p->offset || !p->packed || !p->kernel || !slots_fit(m, p->max_batch)) goto fail;
  p->arena_bytes = place_slots(m, p->max_batch, (flags & HAWQ_QRT_PLAN_KEEP_ALL) != 0, p->offset);
  if (p->arena_bytes == SIZE_MAX) goto fail;
  for (int t = 0; t < m->n_tensors; t++) {
    if (t != m->input) p->all_slots_bytes += slot_bytes(m, t, p->max_batch);
  }

  /* Kernel choice, packed sizes and scratch. */
  size_t *packed_at = malloc(sizeof(size_t) * (size_t)(m->n_nodes > 0 ? m->n_nodes : 1));
  if (!packed_at) goto fail;
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *n = &m->nodes[i];
    packed_at[i] = SIZE_MAX;
    p->kernel[i] = RUN_REFERENCE;
    if (n->op == HAWQ_QOP_INPUT && isa != HAWQ_ISA_SCALAR) {
      p->kernel[i] = RUN_INPUT_TABLE;
      packed_at[i] = p->packed_bytes;
      p->packed_bytes += align64(qrt_input_table_size(m, n));
    } else if (n->op == HAWQ_QOP_REQUANT && m->tensors[n->output].producer != i) {
      p->kernel[i] = RUN_FUSED;
    } else if (qrt_ops_fast_supported(m, n, isa)) {
      p->kernel[i] = RUN_OPS_FAST;
    }
    if (n->op != HAWQ_QOP_CONV) continue;
    size_t scratch;
    if (isa != HAWQ_ISA_SCALAR && qrt_convf_supported(m, n, isa)) {
      p->kernel[i] = RUN_CONVF;
      packed_at[i] = p->packed_bytes;
      p->packed_bytes += align64(qrt_convf_packed_size(m, n, isa));
      scratch = qrt_convf_scratch_size(m, n, isa, p->max_batch, p->threads);
    } else {
      scratch = hawq_qrt_conv_scratch(m, n, p->threads);
    }
    if (align64(scratch) > p->scratch_bytes) p->scratch_bytes = align64(scratch);
  }
  if (p->packed_bytes && posix_memalign((void **)&p->packed_mem, 64, p->packed_bytes) != 0) {
    p->packed_mem = NULL;
    free(packed_at);
    goto fail;
  }
  for (int i = 0; i < m->n_nodes; i++) {
    if (packed_at[i] == SIZE_MAX) continue;
    p->packed[i] = p->packed_mem + packed_at[i];
    if (p->kernel[i] == RUN_INPUT_TABLE) {
      qrt_input_table_build(m, &m->nodes[i], p->packed[i]);
    } else {
      qrt_convf_pack(m, &m->nodes[i], isa, p->packed[i]);
      if (p->fused_into[i] >= 0) {
        qrt_convf_fuse_requant(m, &m->nodes[p->fused_into[i]], p->packed[i]);
      }
    }
  }
  free(packed_at);
  return p;
fail:
  hawq_qrt_plan_destroy(p);
  return NULL;
}

void hawq_qrt_plan_destroy(hawq_qrt_plan *p) {
  if (!p) return;
  free(p->stored_tensors);
  free(p->fused_into);
  free(p->offset);
  free(p->kernel);
  free(p->packed);
  free(p->packed_mem);
  free(p);
}

hawq_qrt_plan_stats hawq_qrt_plan_get_stats(const hawq_qrt_plan *p) {
  hawq_qrt_plan_stats s = {.isa = p->isa,
                           .threads = p->threads,
                           .max_batch = p->max_batch,
                           .arena_bytes = p->arena_bytes,
                           .all_slots_bytes = p->all_slots_bytes,
                           .scratch_bytes = p->scratch_bytes,
                           .packed_bytes = p->packed_bytes,
                           .int4_as_bytes = p->widened,
                           .fused_requants = p->fusions};
  for (int i = 0; i < p->m->n_nodes; i++) {
    const hawq_qnode *n = &p->m->nodes[i];
    if (n->op != HAWQ_QOP_CONV) continue;
    s.conv_nodes++;
    s.fast_nodes += p->kernel[i] == RUN_CONVF;
  }
  return s;
}

size_t hawq_qrt_plan_workspace_size(const hawq_qrt_plan *p) {
  return p->arena_bytes + p->scratch_bytes;
}

void *hawq_qrt_plan_tensor(const hawq_qrt_plan *p, void *ws, int t) {
  return p->offset[t] == SIZE_MAX ? NULL : (uint8_t *)ws + p->offset[t];
}

hawq_qtype hawq_qrt_plan_tensor_type(const hawq_qrt_plan *p, int t) {
  return p->m->tensors[t].type;
}

int hawq_qrt_plan_node_fast(const hawq_qrt_plan *p, int i) {
  return p->kernel[i] != RUN_REFERENCE;
}

void hawq_qrt_plan_run_node(const hawq_qrt_plan *p, int i, const uint8_t *pixels, int batch,
                            void *ws) {
  const hawq_qmodel *m = p->m;
  const hawq_qnode *n = &m->nodes[i];
  qrt_args a = {.out = hawq_qrt_plan_tensor(p, ws, n->output),
                .scratch = (uint8_t *)ws + p->arena_bytes,
                .batch = batch,
                .threads = p->threads};
  for (int j = 0; j < n->n_inputs; j++) {
    int t = n->inputs[j];
    a.in[j] = t < 0 ? NULL : t == m->input ? pixels : hawq_qrt_plan_tensor(p, ws, t);
  }
  switch (p->kernel[i]) {
    case RUN_INPUT_TABLE:
      qrt_input_table_run(m, n, p->packed[i], &a);
      break;
    case RUN_CONVF:
      qrt_convf_run(m, n, p->isa, p->packed[i], a.in[0], n->n_inputs == 2 ? a.in[1] : NULL, a.out,
                    p->fused_into[i] >= 0
                        ? hawq_qrt_plan_tensor(p, ws, m->nodes[p->fused_into[i]].output)
                        : NULL,
                    a.scratch, batch, p->threads);
      break;
    case RUN_OPS_FAST:
      qrt_ops_fast_run(m, n, p->isa, &a);
      break;
    case RUN_REFERENCE:
      qrt_run_node_reference(m, n, &a);
      break;
    case RUN_FUSED: /* written by its producer's kernel */
      break;
  }
}

void hawq_qrt_plan_run(const hawq_qrt_plan *p, const uint8_t *pixels, int batch, void *ws,
                       int32_t *logits) {
  for (int i = 0; i < p->m->n_nodes; i++) hawq_qrt_plan_run_node(p, i, pixels, batch, ws);
  if (logits) {
    const hawq_qtensor *out = &p->m->tensors[p->m->output];
    memcpy(logits, hawq_qrt_plan_tensor(p, ws, p->m->output),
           (size_t)batch * (size_t)qrt_sample_bytes(out));
  }
}
