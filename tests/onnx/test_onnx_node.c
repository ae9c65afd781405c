/* ONNX's own backend test vectors (Debian package libonnx-testdata): for every case listed in
 * tests/onnx/node_cases.txt, import model.onnx with fixed shapes, run test_data_set_0's inputs
 * and compare with its outputs (|got - want| <= 1e-5 + 1e-3 |want|, ONNX's backend tolerance
 * order). A case marked `const=i,j` binds those inputs as constants (weights, shapes, clip
 * bounds that the test feeds as graph inputs); `skip` cases state why hawq does not run them.
 * The test also checks that the list covers every test vector of the ops hawq imports, so no
 * case is silently left out. Usage: test_onnx_node [case-substring] */
#include <dirent.h>
#include <math.h>

#include "core/graph.h"
#include "hawq/hawq.h"
#include "onnx/onnx_internal.h"
#include "test_util.h"

#define DATA_DIR "/usr/share/libonnx-testdata/data"
#define CASES_FILE "tests/onnx/node_cases.txt"
#define MAX_IO 8

/* Op-name prefixes of the test directories that must appear in the case list. */
static const char *covered_prefixes[] = {
    "node/test_conv",
    "node/test_basic_conv",
    "node/test_batchnorm",
    "node/test_relu",
    "node/test_clip",
    "node/test_leakyrelu",
    "node/test_add",
    "node/test_sub",
    "node/test_mul",
    "node/test_div",
    "node/test_maxpool",
    "node/test_averagepool",
    "node/test_globalaveragepool",
    "node/test_globalmaxpool",
    "node/test_gemm",
    "node/test_matmul_",
    "node/test_flatten",
    "node/test_reshape",
    "node/test_concat",
    "node/test_constant_pad",
    "node/test_identity",
    "node/test_dropout",
    "node/test_softmax",
    "node/test_transpose",
    "node/test_unsqueeze",
    "node/test_squeeze",
    "node/test_shape",
    "node/test_gather_",
    "node/test_cast_FLOAT_to_DOUBLE",
    "node/test_constantofshape",
    "node/test_slice",
    "node/test_constant",
    "pytorch-converted/test_Conv",
    "pytorch-converted/test_BatchNorm",
    "pytorch-converted/test_MaxPool",
    "pytorch-converted/test_AvgPool",
    "pytorch-converted/test_ReLU",
    "pytorch-converted/test_LeakyReLU",
    "pytorch-converted/test_Linear",
    "pytorch-converted/test_ConstantPad",
    "pytorch-converted/test_ZeroPad",
    "pytorch-converted/test_Softmax",
    "pytorch-operator/test_operator_",
};

typedef struct tensor_file {
  value v;
  char name[128];
} tensor_file;

static bool read_pb(const char *path, tensor_file *out) {
  size_t size;
  void *buf = test_read_file(path, &size);
  if (!buf) return false;
  Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, buf);
  free(buf);
  if (!t) return false;
  hawq_error err;
  snprintf(out->name, sizeof out->name, "%s", t->name ? t->name : "");
  bool ok = tensor_to_value(t, NULL, path, &out->v, &err) == HAWQ_OK;
  if (!ok) fprintf(stderr, "%s\n", err.msg);
  onnx__tensor_proto__free_unpacked(t, NULL);
  return ok;
}

/* Graph input names of model.onnx in order (the .pb files may not carry names). */
static int model_input_names(const char *path, char names[][128], int max) {
  size_t size;
  void *buf = test_read_file(path, &size);
  if (!buf) return -1;
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, buf);
  free(buf);
  if (!m || !m->graph) return -1;
  int n = 0;
  for (size_t k = 0; k < m->graph->n_input && n < max; k++) {
    bool is_init = false;
    for (size_t j = 0; j < m->graph->n_initializer; j++) {
      if (!strcmp(m->graph->initializer[j]->name, m->graph->input[k]->name)) is_init = true;
    }
    if (!is_init) snprintf(names[n++], 128, "%s", m->graph->input[k]->name);
  }
  onnx__model_proto__free_unpacked(m, NULL);
  return n;
}

static bool run_case(const char *rel, const int *const_idx, int n_const) {
  char dir[512], path[700];
  snprintf(dir, sizeof dir, DATA_DIR "/%s", rel);
  char names[MAX_IO][128];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  int n_names = model_input_names(path, names, MAX_IO);
  if (n_names < 0) {
    CHECK(0, "%s: cannot read model.onnx", rel);
    return false;
  }
  tensor_file ins[MAX_IO], outs[MAX_IO];
  int n_in = 0, n_out = 0;
  for (; n_in < MAX_IO; n_in++) {
    snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, n_in);
    if (access(path, R_OK) || !read_pb(path, &ins[n_in])) break;
  }
  for (; n_out < MAX_IO; n_out++) {
    snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, n_out);
    if (access(path, R_OK) || !read_pb(path, &outs[n_out])) break;
  }
  bool ok = n_in == n_names && n_out > 0;
  CHECK(ok, "%s: %d inputs for %d graph inputs, %d outputs", rel, n_in, n_names, n_out);
  struct hawq_bound_input bound[MAX_IO];
  int n_bound = 0;
  bool is_bound[MAX_IO] = {false};
  for (int k = 0; ok && k < n_const; k++) {
    int i = const_idx[k];
    value *v = &ins[i].v;
    bound[n_bound++] =
        (struct hawq_bound_input){names[i], v->type == CONST_FLOAT ? 1 : 7, v->rank, v->dims,
                                  v->type == CONST_FLOAT ? (const void *)v->f : NULL};
    if (v->type == CONST_INT) {
      int64_t *plain = malloc((size_t)(v->count ? v->count : 1) * sizeof *plain);
      for (int64_t j = 0; j < v->count; j++) plain[j] = v->i[j].c;
      bound[n_bound - 1].data = plain;
    }
    is_bound[i] = true;
  }
  hawq_graph *g = NULL;
  hawq_error err;
  if (ok) {
    hawq_import_options opt = {.fixed_shapes = true, .n_bound = (size_t)n_bound, .bound = bound};
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    ok = hawq_graph_load_onnx(path, &opt, &g, &err) == HAWQ_OK;
    CHECK(ok, "%s: import failed: %s", rel, err.msg);
  }
  hawq_float_plan *p = NULL;
  if (ok) {
    hawq_float_plan_options po = {.batch = 1, .threads = getenv("T") ? atoi(getenv("T")) : 2};
    ok = hawq_float_plan_create(g, &po, &p, &err) == HAWQ_OK;
    CHECK(ok, "%s: plan failed: %s", rel, err.msg);
  }
  const float *phys[MAX_IO] = {0};
  float *owned[MAX_IO] = {0};
  if (ok) {
    int r = 0;
    for (int i = 0; i < n_in; i++) {
      if (is_bound[i]) continue;
      value *v = &ins[i].v;
      hawq_tensor_info ti = hawq_graph_input(g, (size_t)r);
      ok = v->type == CONST_FLOAT && ti.rank == v->rank &&
           !memcmp(ti.dims, v->dims, (size_t)v->rank * sizeof(int64_t));
      CHECK(ok, "%s: input %d does not match the graph's input %d", rel, i, r);
      if (!ok) break;
      owned[r] = malloc((size_t)(v->count ? v->count : 1) * sizeof(float));
      hawq_tensor_to_physical(v->f, owned[r], v->rank, v->dims);
      phys[r] = owned[r];
      r++;
    }
  }
  if (ok) {
    ok = hawq_float_plan_run(p, phys, &err) == HAWQ_OK;
    CHECK(ok, "%s: run failed: %s", rel, err.msg);
  }
  for (int o = 0; ok && o < n_out; o++) {
    value *want = &outs[o].v;
    hawq_tensor_info ti = hawq_graph_output(g, (size_t)o);
    ok = want->type == CONST_FLOAT && ti.rank == want->rank &&
         !memcmp(ti.dims, want->dims, (size_t)want->rank * sizeof(int64_t));
    CHECK(ok, "%s: output %d shape differs from the expected one", rel, o);
    if (!ok) break;
    float *got = malloc((size_t)(want->count ? want->count : 1) * sizeof(float));
    hawq_tensor_to_logical(hawq_float_plan_output(p, (size_t)o), got, ti.rank, ti.dims);
    int64_t bad = -1;
    for (int64_t j = 0; j < want->count; j++) {
      double d = fabs((double)got[j] - want->f[j]);
      if (!(d <= 1e-5 + 1e-3 * fabs((double)want->f[j]))) {
        bad = j;
        break;
      }
    }
    ok = bad < 0;
    CHECK(ok, "%s: output %d element %lld is %g, expected %g", rel, o, (long long)bad,
          bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want->f[bad] : 0.0);
    free(got);
  }
  for (int i = 0; i < MAX_IO; i++) free(owned[i]);
  for (int k = 0; k < n_bound; k++) {
    if (bound[k].onnx_dtype == 7) free((void *)bound[k].data);
  }
  hawq_float_plan_destroy(p);
  hawq_graph_destroy(g);
  for (int i = 0; i < n_in; i++) value_free(&ins[i].v);
  for (int o = 0; o < n_out; o++) value_free(&outs[o].v);
  return ok;
}

/* Every test directory under the covered prefixes must appear in the case list. */
static void check_coverage(char (*listed)[256], int n_listed) {
  const char *folders[] = {"node", "pytorch-converted", "pytorch-operator"};
  for (size_t f = 0; f < 3; f++) {
    char dir[256];
    snprintf(dir, sizeof dir, DATA_DIR "/%s", folders[f]);
    DIR *d = opendir(dir);
    if (!d) continue;
    struct dirent *e;
    while ((e = readdir(d))) {
      char rel[300];
      snprintf(rel, sizeof rel, "%s/%s", folders[f], e->d_name);
      bool covered = false;
      for (size_t k = 0; k < sizeof covered_prefixes / sizeof covered_prefixes[0]; k++) {
        if (!strncmp(rel, covered_prefixes[k], strlen(covered_prefixes[k]))) covered = true;
      }
      if (!covered) continue;
      bool found = false;
      for (int k = 0; k < n_listed && !found; k++) found = !strcmp(listed[k], rel);
      CHECK(found, "%s is not in " CASES_FILE " (add it as run or skip with a reason)", rel);
    }
    closedir(d);
  }
}

int main(int argc, char **argv) {
  if (access(DATA_DIR "/node", R_OK)) {
    printf("skipped: %s not found (apt-get install libonnx-testdata)\n", DATA_DIR);
    return 77;
  }
  FILE *f = fopen(CASES_FILE, "r");
  REQUIRE(f, "cannot open " CASES_FILE);
  static char listed[2048][256];
  int n_listed = 0, n_run = 0, n_pass = 0, n_skip = 0;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char rel[256], what[16], extra[256] = "";
    if (line[0] == '#' || sscanf(line, "%255s %15s %255s", rel, what, extra) < 2) continue;
    REQUIRE(n_listed < 2048, "too many cases");
    snprintf(listed[n_listed++], 256, "%s", rel);
    if (!strcmp(what, "skip")) {
      n_skip++;
      continue;
    }
    REQUIRE(!strcmp(what, "run"), "%s: expected run or skip, got '%s'", rel, what);
    if (argc > 1 && !strstr(rel, argv[1])) continue;
    int idx[MAX_IO], n_idx = 0;
    if (!strncmp(extra, "const=", 6)) {
      for (char *s = extra + 6; *s && n_idx < MAX_IO; s++) {
        idx[n_idx++] = (int)strtol(s, &s, 10);
        if (*s != ',') break;
      }
    }
    n_run++;
    if (run_case(rel, idx, n_idx)) n_pass++;
  }
  fclose(f);
  if (argc <= 1) check_coverage(listed, n_listed);
  printf("test_onnx_node: %d of %d cases passed, %d skipped (reasons in " CASES_FILE ")\n", n_pass,
         n_run, n_skip);
  return test_report("test_onnx_node");
}
