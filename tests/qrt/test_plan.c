/* Execution plans (src/qrt/plan.h) on whole models: for every kernel level this CPU has, thread
 * counts 1-3 and batches 1 and 3, the logits of a memory-planned run and every tensor of a
 * KEEP_ALL run equal the reference runtime's (hawq_qrt_run) exactly, with 4-bit activations
 * stored and requantizations fused as the plan chooses (at the VNNI level: one value per byte
 * where a convolution reads them; the residual stream requantized by the conv that writes it)
 * and, where that differs, all packed and unfused. The memory plan is checked
 * independently: no two tensors alive at the same time share a byte, and the arena is no larger
 * than one slot per tensor. Models: the PyTorch fixture and the bundled model at 8, 4 and w4a8
 * bits, the Inception-style, conv-zoo and plain-CNN fixtures at 8 and 4 bits (all calibrated on
 * random images: exactness does not need trained weights), and the committed .hqm fixture. */
#include <stdlib.h>

#include "qrt/plan.h"
#include "qrt/qrt.h"
#include "quant/calib.h"
#include "quant/lower.h"
#include "quant/qmodel.h"
#include "test_util.h"

#define BATCH 3

static hawq_dataset *random_images(const hawq_graph *g, test_rng *rng, int count) {
  const hawq_tensor *in = &g->tensors[g->inputs[0]];
  hawq_dataset *ds = calloc(1, sizeof *ds);
  ds->count = count;
  ds->channels = (int)in->dims[1];
  ds->height = (int)in->dims[2];
  ds->width = (int)in->dims[3];
  int64_t n = (int64_t)count * ds->channels * ds->height * ds->width;
  ds->images = malloc((size_t)n);
  ds->labels = calloc((size_t)count, 1);
  for (int64_t i = 0; i < n; i++) ds->images[i] = (uint8_t)test_rng_int(rng, 0, 255);
  return ds;
}

static void *alloc64(size_t n) {
  void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
  REQUIRE(p, "out of memory");
  return p;
}

/* Bytes of tensor t as plan p stores it (4-bit tensors may be stored one value per byte). */
static int64_t tensor_bytes(const hawq_qmodel *m, const hawq_qrt_plan *p, int t, int batch) {
  hawq_qtensor st = m->tensors[t];
  st.type = hawq_qrt_plan_tensor_type(p, t);
  return batch * hawq_qtensor_bytes(&st);
}

/* Whether the plan's copy of tensor t (stored as type pt) holds the reference's values. */
static bool same_values(const hawq_qtensor *x, hawq_qtype pt, const uint8_t *got,
                        const uint8_t *exp, int batch) {
  if (pt == x->type) return !memcmp(got, exp, (size_t)(batch * hawq_qtensor_bytes(x)));
  hawq_qtensor st = *x;
  st.type = pt;
  int64_t pixels = batch * x->h * x->w;
  int64_t gb = hawq_qtensor_bytes(&st) / (x->h * x->w), eb = hawq_qtensor_bytes(x) / (x->h * x->w);
  for (int64_t px = 0; px < pixels; px++) {
    for (int64_t ch = 0; ch < x->c; ch++) {
      if (hawq_qrow_get(pt, got + px * gb, ch) != hawq_qrow_get(x->type, exp + px * eb, ch)) {
        return false;
      }
    }
  }
  return true;
}

/* No two tensors alive at once overlap (lifetimes restated: producer to last reader, the output
 * to the end), and each lies inside the arena. ws: the plan's workspace. */
static void check_memory_plan(const hawq_qmodel *m, const hawq_qrt_plan *p, uint8_t *ws,
                              const char *what) {
  hawq_qrt_plan_stats s = hawq_qrt_plan_get_stats(p);
  CHECK(s.arena_bytes <= s.all_slots_bytes, "%s: arena %zu > unplanned %zu", what, s.arena_bytes,
        s.all_slots_bytes);
  int *last = malloc(sizeof(int) * (size_t)m->n_tensors);
  for (int t = 0; t < m->n_tensors; t++) last[t] = m->tensors[t].producer;
  for (int i = 0; i < m->n_nodes; i++) {
    for (int j = 0; j < m->nodes[i].n_inputs; j++) {
      int t = m->nodes[i].inputs[j];
      if (t >= 0 && last[t] < i) last[t] = i;
    }
  }
  last[m->output] = m->n_nodes;
  for (int a = 0; a < m->n_tensors; a++) {
    if (a == m->input) continue;
    size_t ao = (size_t)((uint8_t *)hawq_qrt_plan_tensor(p, ws, a) - ws);
    size_t ae = ao + (size_t)tensor_bytes(m, p, a, s.max_batch);
    CHECK(ae <= s.arena_bytes, "%s: tensor %s ends at %zu, past the arena (%zu)", what,
          m->tensors[a].name, ae, s.arena_bytes);
    for (int b = a + 1; b < m->n_tensors; b++) {
      if (b == m->input) continue;
      bool together = m->tensors[a].producer <= last[b] && m->tensors[b].producer <= last[a];
      if (!together) continue;
      size_t bo = (size_t)((uint8_t *)hawq_qrt_plan_tensor(p, ws, b) - ws);
      size_t be = bo + (size_t)tensor_bytes(m, p, b, s.max_batch);
      CHECK(ae <= bo || be <= ao, "%s: tensors %s and %s are alive together and overlap", what,
            m->tensors[a].name, m->tensors[b].name);
    }
  }
  free(last);
}

/* m against the reference at every level, thread count and batch, with 4-bit tensors stored
 * and requantizations fused as the plan chooses and (where that differs) all packed and unfused.
 * Returns how many 4-bit tensors the best level's plans store one value per byte, and sets
 * *best_fusions to how many requantizations they fuse. */
static int check_model(const hawq_qmodel *m, const uint8_t *pixels, const char *what, hawq_isa best,
                       int *best_fusions) {
  size_t ref_size = hawq_qrt_workspace_size(m, BATCH);
  void *ref = alloc64(ref_size);
  hawq_qrt_run(m, pixels, BATCH, ref, NULL);
  int64_t classes = m->tensors[m->output].c;
  int32_t *logits = malloc(sizeof(int32_t) * (size_t)(BATCH * classes));
  static const int batches[] = {1, BATCH};
  int as_bytes = 0, fusions = 0, best_as_bytes = 0;
  for (int isa = 0; isa <= (int)best; isa++) {
    for (int threads = 1; threads <= 3; threads++) {
      for (int bi = 0; bi < 4; bi++) {
        int batch = batches[bi & 1],
            storage = bi < 2 ? 0 : HAWQ_QRT_PLAN_PACKED_INT4 | HAWQ_QRT_PLAN_NO_FUSION;
        char tag[256];
        snprintf(tag, sizeof tag, "%s, %s, %d threads, batch %d%s", what,
                 hawq_isa_name((hawq_isa)isa), threads, batch,
                 storage ? ", 4-bit kept packed, no fusion" : "");
        /* The memory-planned plan: logits. */
        hawq_qrt_plan *p = hawq_qrt_plan_create(m, (hawq_isa)isa, threads, batch, storage);
        REQUIRE(p, "%s: plan", tag);
        hawq_qrt_plan_stats ps = hawq_qrt_plan_get_stats(p);
        if (!storage) as_bytes = ps.int4_as_bytes, fusions = ps.fused_requants;
        if (!storage && isa == (int)best) best_as_bytes = as_bytes, *best_fusions = fusions;
        if (storage && as_bytes == 0 && fusions == 0) { /* the same plan again */
          hawq_qrt_plan_destroy(p);
          continue;
        }
        CHECK(!storage || (ps.int4_as_bytes == 0 && ps.fused_requants == 0),
              "%s: %d tensors widened, %d fusions", tag, ps.int4_as_bytes, ps.fused_requants);
        void *ws = alloc64(hawq_qrt_plan_workspace_size(p));
        check_memory_plan(m, p, ws, tag);
        hawq_qrt_plan_run(p, pixels, batch, ws, logits);
        /* The reference ran BATCH images; its first `batch` samples are this run's. */
        const int32_t *want = hawq_qrt_tensor(m, ref, BATCH, m->output);
        int64_t bad = -1;
        for (int64_t i = 0; i < batch * classes && bad < 0; i++) {
          if (logits[i] != want[i]) bad = i;
        }
        CHECK(bad < 0, "%s: logit %lld is %d, the reference's %d", tag, (long long)bad,
              bad < 0 ? 0 : logits[bad], bad < 0 ? 0 : want[bad]);
        bool failed = bad >= 0;
        free(ws);
        hawq_qrt_plan_destroy(p);

        /* KEEP_ALL: every tensor, to name the first node that differs. */
        p = hawq_qrt_plan_create(m, (hawq_isa)isa, threads, batch,
                                 HAWQ_QRT_PLAN_KEEP_ALL | storage);
        REQUIRE(p, "%s: plan", tag);
        ws = alloc64(hawq_qrt_plan_workspace_size(p));
        hawq_qrt_plan_run(p, pixels, batch, ws, NULL);
        for (int i = 0; i < m->n_nodes; i++) {
          int t = m->nodes[i].output;
          const uint8_t *got = hawq_qrt_plan_tensor(p, ws, t);
          const uint8_t *exp = hawq_qrt_tensor(m, ref, BATCH, t);
          if (!same_values(&m->tensors[t], hawq_qrt_plan_tensor_type(p, t), got, exp, batch)) {
            CHECK(0, "%s: node %d (%s, %s%s) differs from the reference", tag, i, m->nodes[i].name,
                  hawq_qop_name(m->nodes[i].op),
                  hawq_qrt_plan_node_fast(p, i) ? ", level kernel" : "");
            failed = true;
            break;
          }
        }
        free(ws);
        hawq_qrt_plan_destroy(p);
        if (failed) goto done; /* the first failure of a model is enough to debug it */
      }
    }
  }
done:
  free(logits);
  free(ref);
  return best_as_bytes;
}

static void lowered(const char *path, const char *const *bits, int n_bits, test_rng *rng,
                    hawq_isa best) {
  hawq_error err;
  hawq_graph *g = NULL;
  REQUIRE(hawq_graph_load_onnx(path, NULL, &g, &err) == HAWQ_OK, "%s", err.msg);
  hawq_dataset *ds = random_images(g, rng, 16);
  hawq_calib_range *ranges = calloc((size_t)g->n_tensors, sizeof *ranges);
  hawq_calib_options co = hawq_calib_defaults();
  co.images = 16;
  co.batch = 8;
  REQUIRE(hawq_calibrate(g, ds, &g->preprocess, &co, ranges, NULL, NULL, &err) == HAWQ_OK, "%s",
          err.msg);
  for (int i = 0; i < n_bits; i++) {
    hawq_bit_config cfg;
    REQUIRE(hawq_bit_config_parse(bits[i], &cfg, &err) == HAWQ_OK, "%s", err.msg);
    hawq_qmodel *m = NULL;
    REQUIRE(hawq_lower(g, ranges, &cfg, &g->preprocess, &m, NULL, &err) == HAWQ_OK, "%s: %s", path,
            err.msg);
    char what[512];
    snprintf(what, sizeof what, "%s at --bits %s", path, bits[i]);
    int fusions = 0;
    int as_bytes = check_model(m, ds->images, what, best, &fusions);
    /* at the VNNI level, every 4-bit activation a convolution reads is stored as bytes */
    bool conv_reads_4bit = false;
    for (int j = 0; j < m->n_nodes; j++) {
      const hawq_qnode *n = &m->nodes[j];
      int in_bits = hawq_qtype_bits(m->tensors[n->inputs[0] < 0 ? m->input : n->inputs[0]].type);
      conv_reads_4bit |= n->op == HAWQ_QOP_CONV && in_bits == 4;
    }
    if (best == HAWQ_ISA_AVX512VNNI) {
      CHECK((as_bytes > 0) == conv_reads_4bit, "%s: %d 4-bit tensors stored as bytes", what,
            as_bytes);
      /* the residual networks' 16-bit streams are requantized by their convolutions */
      CHECK(fusions > 0 || !strstr(path, "resnet"), "%s: no requantization fused", what);
    }
    hawq_qmodel_destroy(m);
    hawq_bit_config_free(&cfg);
  }
  free(ranges);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
}

int main(void) {
  hawq_isa best = hawq_isa_best();
  printf("test_plan: this CPU's best level is %s\n", hawq_isa_name(best));
  for (int isa = (int)best + 1; isa < HAWQ_ISA_COUNT; isa++) {
    printf("test_plan: skipped %s: this CPU lacks it\n", hawq_isa_name((hawq_isa)isa));
  }
  test_rng rng = test_rng_seeded("test_plan");
  const char *const all[] = {"8", "4", "w4a8", "w8a4"};
  const char *const two[] = {"8", "4"};
  lowered("tests/models/torch/fmnist_resnet14.onnx", all, 4, &rng, best);
  lowered("models/fmnist_resnet20.onnx", all, 3, &rng, best);
  lowered("tests/onnx/fixtures/inception_opset17.onnx", two, 2, &rng, best);
  lowered("tests/onnx/fixtures/convzoo_opset17.onnx", two, 2, &rng, best);
  lowered("tests/quant/fixtures/plainnet.onnx", two, 2, &rng, best);

  hawq_error err;
  hawq_qmodel *m = NULL;
  REQUIRE(hawq_qmodel_load("tests/quant/fixtures/tiny_v1.hqm", &m, &err) == HAWQ_OK, "%s", err.msg);
  const hawq_qtensor *in = &m->tensors[m->input];
  int64_t n = BATCH * in->h * in->w * in->c;
  uint8_t *pixels = malloc((size_t)n);
  for (int64_t i = 0; i < n; i++) pixels[i] = (uint8_t)test_rng_int(&rng, 0, 255);
  int fusions = 0;
  check_model(m, pixels, "tiny_v1.hqm", best, &fusions);
  free(pixels);
  hawq_qmodel_destroy(m);
  return test_report("test_plan");
}
