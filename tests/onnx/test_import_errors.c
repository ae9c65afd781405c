/* The ONNX importer on bad input. Models are built in memory with protobuf-c (no external files
 * except the committed fixture tests/onnx/fixtures/inception_opset13.onnx, which is truncated
 * and bit-flipped). Every bad model must be refused with the right status (PARSE for malformed
 * or inconsistent content, UNSUPPORTED for valid ONNX hawq does not handle, IO for files that
 * cannot be read), *out must stay NULL, and the message must be one non-empty line naming the
 * file or buffer and the node, value or field at fault. A tiny valid model is imported and run to
 * check the builder itself and the numbers, and external data is read from a temporary
 * directory. Mutations are seeded (HAWQ_TEST_SEED replays a run). */
#include <signal.h>

#include "core/graph.h"
#include "hawq/hawq.h"
#include "onnx/onnx.pb-c.h"
#include "test_util.h"

#define FIXTURE "tests/onnx/fixtures/inception_opset13.onnx"
#define BUFFER_NAME "mem.onnx"

enum { T_FLOAT = 1, T_INT64 = 7 };

/* ------------------------------------------------------------------------------------------ */
/* An in-memory ModelProto builder. Every allocation is recorded and freed by mb_free.        */

#define MB_MAX_ITEMS 256
#define MB_MAX_ATTRS 8

typedef struct model_builder {
  Onnx__ModelProto model;
  Onnx__GraphProto graph;
  Onnx__OperatorSetIdProto opset;
  Onnx__OperatorSetIdProto *opset_list[1];
  Onnx__NodeProto *nodes[MB_MAX_ITEMS];
  Onnx__TensorProto *initializers[MB_MAX_ITEMS];
  Onnx__ValueInfoProto *inputs[MB_MAX_ITEMS];
  Onnx__ValueInfoProto *outputs[MB_MAX_ITEMS];
  void **allocs;
  size_t n_allocs, cap_allocs;
} model_builder;

static void *mb_alloc(model_builder *mb, size_t size) {
  if (mb->n_allocs == mb->cap_allocs) {
    size_t cap = mb->cap_allocs ? 2 * mb->cap_allocs : 64;
    void **grown = realloc(mb->allocs, cap * sizeof *grown);
    REQUIRE(grown != NULL, "out of memory in the model builder");
    mb->allocs = grown;
    mb->cap_allocs = cap;
  }
  void *p = calloc(1, size ? size : 1);
  REQUIRE(p != NULL, "out of memory in the model builder");
  mb->allocs[mb->n_allocs++] = p;
  return p;
}

static char *mb_str(model_builder *mb, const char *s) {
  char *copy = mb_alloc(mb, strlen(s) + 1);
  memcpy(copy, s, strlen(s) + 1);
  return copy;
}

static model_builder *mb_new(int64_t opset) {
  model_builder *mb = calloc(1, sizeof *mb);
  REQUIRE(mb != NULL, "out of memory");
  onnx__model_proto__init(&mb->model);
  onnx__graph_proto__init(&mb->graph);
  onnx__operator_set_id_proto__init(&mb->opset);
  mb->model.has_ir_version = 1;
  mb->model.ir_version = 8;
  mb->model.producer_name = mb_str(mb, "test_import_errors");
  mb->opset.domain = mb_str(mb, "");
  mb->opset.has_version = 1;
  mb->opset.version = opset;
  mb->opset_list[0] = &mb->opset;
  mb->model.n_opset_import = 1;
  mb->model.opset_import = mb->opset_list;
  mb->graph.name = mb_str(mb, "g");
  mb->graph.node = mb->nodes;
  mb->graph.initializer = mb->initializers;
  mb->graph.input = mb->inputs;
  mb->graph.output = mb->outputs;
  mb->model.graph = &mb->graph;
  return mb;
}

static void mb_free(model_builder *mb) {
  if (!mb) return;
  for (size_t k = 0; k < mb->n_allocs; k++) free(mb->allocs[k]);
  free(mb->allocs);
  free(mb);
}

/* A tensor type: elem_type and shape; dims[k] is used unless params && params[k] (dim_param). */
static Onnx__TypeProto *mb_tensor_type(model_builder *mb, int elem_type, int rank,
                                       const int64_t *dims, const char *const *params) {
  Onnx__TypeProto *tp = mb_alloc(mb, sizeof *tp);
  onnx__type_proto__init(tp);
  Onnx__TypeProto__Tensor *tt = mb_alloc(mb, sizeof *tt);
  onnx__type_proto__tensor__init(tt);
  tt->has_elem_type = 1;
  tt->elem_type = elem_type;
  if (rank >= 0) {
    Onnx__TensorShapeProto *shape = mb_alloc(mb, sizeof *shape);
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = (size_t)rank;
    shape->dim = mb_alloc(mb, (size_t)(rank ? rank : 1) * sizeof *shape->dim);
    for (int k = 0; k < rank; k++) {
      Onnx__TensorShapeProto__Dimension *d = mb_alloc(mb, sizeof *d);
      onnx__tensor_shape_proto__dimension__init(d);
      if (params && params[k]) {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        d->dim_param = mb_str(mb, params[k]);
      } else {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = dims[k];
      }
      shape->dim[k] = d;
    }
    tt->shape = shape;
  }
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  return tp;
}

static void mb_input(model_builder *mb, const char *name, int elem_type, int rank,
                     const int64_t *dims, const char *const *params) {
  REQUIRE(mb->graph.n_input < MB_MAX_ITEMS, "too many inputs");
  Onnx__ValueInfoProto *vi = mb_alloc(mb, sizeof *vi);
  onnx__value_info_proto__init(vi);
  vi->name = mb_str(mb, name);
  vi->type = mb_tensor_type(mb, elem_type, rank, dims, params);
  mb->inputs[mb->graph.n_input++] = vi;
}

/* The usual image input: [N, c, h, w] with a symbolic batch "N". */
static void mb_image_input(model_builder *mb, const char *name, int64_t c, int64_t h, int64_t w) {
  const int64_t dims[4] = {0, c, h, w};
  const char *params[4] = {"N", NULL, NULL, NULL};
  mb_input(mb, name, T_FLOAT, 4, dims, params);
}

static void mb_output(model_builder *mb, const char *name) {
  REQUIRE(mb->graph.n_output < MB_MAX_ITEMS, "too many outputs");
  Onnx__ValueInfoProto *vi = mb_alloc(mb, sizeof *vi);
  onnx__value_info_proto__init(vi);
  vi->name = mb_str(mb, name);
  vi->type = mb_tensor_type(mb, T_FLOAT, -1, NULL, NULL);
  mb->outputs[mb->graph.n_output++] = vi;
}

static Onnx__TensorProto *mb_tensor(model_builder *mb, const char *name, int dtype, int rank,
                                    const int64_t *dims) {
  Onnx__TensorProto *t = mb_alloc(mb, sizeof *t);
  onnx__tensor_proto__init(t);
  t->name = mb_str(mb, name);
  t->has_data_type = 1;
  t->data_type = dtype;
  t->n_dims = (size_t)rank;
  t->dims = mb_alloc(mb, (size_t)(rank ? rank : 1) * sizeof *t->dims);
  for (int k = 0; k < rank; k++) t->dims[k] = dims[k];
  return t;
}

static Onnx__TensorProto *mb_add_initializer(model_builder *mb, Onnx__TensorProto *t) {
  REQUIRE(mb->graph.n_initializer < MB_MAX_ITEMS, "too many initializers");
  mb->initializers[mb->graph.n_initializer++] = t;
  return t;
}

/* A float initializer stored in float_data; n values (need not match the dims). */
static Onnx__TensorProto *mb_float_init(model_builder *mb, const char *name, int rank,
                                        const int64_t *dims, size_t n, const float *values) {
  Onnx__TensorProto *t = mb_tensor(mb, name, T_FLOAT, rank, dims);
  t->n_float_data = n;
  t->float_data = mb_alloc(mb, (n ? n : 1) * sizeof(float));
  if (n) memcpy(t->float_data, values, n * sizeof(float));
  return mb_add_initializer(mb, t);
}

static Onnx__TensorProto *mb_int64_init(model_builder *mb, const char *name, int rank,
                                        const int64_t *dims, size_t n, const int64_t *values) {
  Onnx__TensorProto *t = mb_tensor(mb, name, T_INT64, rank, dims);
  t->n_int64_data = n;
  t->int64_data = mb_alloc(mb, (n ? n : 1) * sizeof(int64_t));
  if (n) memcpy(t->int64_data, values, n * sizeof(int64_t));
  return mb_add_initializer(mb, t);
}

/* A float initializer stored in raw_data (little-endian bytes; the test hosts are). */
static Onnx__TensorProto *mb_raw_init(model_builder *mb, const char *name, int rank,
                                      const int64_t *dims, size_t n_bytes, const void *bytes) {
  Onnx__TensorProto *t = mb_tensor(mb, name, T_FLOAT, rank, dims);
  t->has_raw_data = 1;
  t->raw_data.len = n_bytes;
  t->raw_data.data = mb_alloc(mb, n_bytes);
  if (n_bytes) memcpy(t->raw_data.data, bytes, n_bytes);
  return mb_add_initializer(mb, t);
}

/* A float initializer whose data lives in an external file (keys: location, offset, length;
 * length < 0 leaves it out). */
static Onnx__TensorProto *mb_external_init(model_builder *mb, const char *name, int rank,
                                           const int64_t *dims, const char *location,
                                           int64_t offset, int64_t length) {
  Onnx__TensorProto *t = mb_tensor(mb, name, T_FLOAT, rank, dims);
  t->has_data_location = 1;
  t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  t->external_data = mb_alloc(mb, 3 * sizeof *t->external_data);
  const char *keys[3] = {"location", "offset", "length"};
  char values[3][64];
  snprintf(values[0], sizeof values[0], "%s", location);
  snprintf(values[1], sizeof values[1], "%lld", (long long)offset);
  snprintf(values[2], sizeof values[2], "%lld", (long long)length);
  for (int k = 0; k < 3; k++) {
    if (k == 2 && length < 0) break;
    Onnx__StringStringEntryProto *e = mb_alloc(mb, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = mb_str(mb, keys[k]);
    e->value = mb_str(mb, k == 0 ? location : values[k]);
    t->external_data[t->n_external_data++] = e;
  }
  return mb_add_initializer(mb, t);
}

/* inputs: NULL-terminated list ("" is an absent optional input). */
#define IN(...) ((const char *const[]){__VA_ARGS__, NULL})

static Onnx__NodeProto *mb_node(model_builder *mb, const char *op_type, const char *name,
                                const char *const *inputs, const char *output) {
  REQUIRE(mb->graph.n_node < MB_MAX_ITEMS, "too many nodes");
  Onnx__NodeProto *n = mb_alloc(mb, sizeof *n);
  onnx__node_proto__init(n);
  n->op_type = mb_str(mb, op_type);
  if (name) n->name = mb_str(mb, name);
  size_t n_in = 0;
  while (inputs[n_in]) n_in++;
  n->n_input = n_in;
  n->input = mb_alloc(mb, (n_in ? n_in : 1) * sizeof *n->input);
  for (size_t k = 0; k < n_in; k++) n->input[k] = mb_str(mb, inputs[k]);
  n->n_output = 1;
  n->output = mb_alloc(mb, sizeof *n->output);
  n->output[0] = mb_str(mb, output);
  n->attribute = mb_alloc(mb, MB_MAX_ATTRS * sizeof *n->attribute);
  mb->nodes[mb->graph.n_node++] = n;
  return n;
}

static Onnx__AttributeProto *mb_attr(model_builder *mb, Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type) {
  REQUIRE(n->n_attribute < MB_MAX_ATTRS, "too many attributes");
  Onnx__AttributeProto *a = mb_alloc(mb, sizeof *a);
  onnx__attribute_proto__init(a);
  a->name = mb_str(mb, name);
  a->has_type = 1;
  a->type = type;
  n->attribute[n->n_attribute++] = a;
  return a;
}

static void mb_attr_int(model_builder *mb, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = mb_attr(mb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  a->has_i = 1;
  a->i = v;
}

static void mb_attr_float(model_builder *mb, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = mb_attr(mb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  a->has_f = 1;
  a->f = v;
}

static void mb_attr_ints(model_builder *mb, Onnx__NodeProto *n, const char *name, size_t count,
                         const int64_t *values) {
  Onnx__AttributeProto *a = mb_attr(mb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  a->n_ints = count;
  a->ints = mb_alloc(mb, (count ? count : 1) * sizeof *a->ints);
  if (count) memcpy(a->ints, values, count * sizeof *a->ints);
}

static void mb_attr_string(model_builder *mb, Onnx__NodeProto *n, const char *name, const char *s) {
  Onnx__AttributeProto *a = mb_attr(mb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  a->has_s = 1;
  a->s.len = strlen(s);
  a->s.data = (uint8_t *)mb_str(mb, s);
}

static void mb_attr_tensor(model_builder *mb, Onnx__NodeProto *n, const char *name,
                           Onnx__TensorProto *t) {
  Onnx__AttributeProto *a = mb_attr(mb, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
  a->t = t;
}

/* Serialized model, malloc'd. */
static uint8_t *mb_pack(const model_builder *mb, size_t *size) {
  *size = onnx__model_proto__get_packed_size(&mb->model);
  uint8_t *buf = malloc(*size ? *size : 1);
  REQUIRE(buf != NULL, "out of memory");
  size_t packed = onnx__model_proto__pack(&mb->model, buf);
  REQUIRE(packed == *size, "packed %zu of %zu bytes", packed, *size);
  return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Checking imports                                                                           */

/* A pointer that is never a valid graph, to see that a failing import sets *out to NULL. */
static hawq_graph *const NOT_A_GRAPH = (hawq_graph *)&test_failures;

static hawq_status import_mb(const model_builder *mb, const hawq_import_options *opt,
                             hawq_graph **g, hawq_error *err) {
  size_t size;
  uint8_t *buf = mb_pack(mb, &size);
  *g = NOT_A_GRAPH;
  hawq_status st = hawq_graph_load_onnx_buffer(buf, size, BUFFER_NAME, opt, g, err);
  free(buf);
  return st;
}

static bool message_is_one_line(const char *msg) {
  return msg[0] && !strchr(msg, '\n') && !strchr(msg, '\r');
}

/* With HAWQ_TEST_VERBOSE set, prints what a case returned (for reviewing messages). */
static void note(const char *case_name, hawq_status st, const hawq_error *err) {
  if (getenv("HAWQ_TEST_VERBOSE")) {
    printf("%-32s %-16s %s\n", case_name, hawq_status_string(st), st ? err->msg : "");
  }
}

/* Checks a failed import: status, *out NULL, one non-empty line holding every part. A graph
 * returned anyway is freed. */
static void check_failure(const char *case_name, hawq_status st, hawq_status want, hawq_graph *g,
                          const hawq_error *err, const char *const *parts) {
  note(case_name, st, err);
  CHECK(st == want, "%s: status %s, expected %s (message: %s)", case_name, hawq_status_string(st),
        hawq_status_string(want), err->msg);
  CHECK(err->status == st, "%s: err.status %d differs from the returned %d", case_name,
        (int)err->status, (int)st);
  CHECK(g == NULL, "%s: *out was not set to NULL on failure", case_name);
  CHECK(message_is_one_line(err->msg), "%s: message is empty or not one line: '%s'", case_name,
        err->msg);
  for (size_t k = 0; parts && parts[k]; k++) {
    CHECK(strstr(err->msg, parts[k]) != NULL, "%s: message lacks '%s': %s", case_name, parts[k],
          err->msg);
  }
  if (st == HAWQ_OK && g != NOT_A_GRAPH) hawq_graph_destroy(g);
}

/* Imports mb (default options) and expects failure; frees mb. */
static void expect_failure(const char *case_name, model_builder *mb, hawq_status want,
                           const char *const *parts) {
  hawq_graph *g;
  hawq_error err;
  hawq_status st = import_mb(mb, NULL, &g, &err);
  check_failure(case_name, st, want, g, &err, parts);
  mb_free(mb);
}

static hawq_graph *expect_import(const char *case_name, const model_builder *mb,
                                 const hawq_import_options *opt) {
  hawq_graph *g;
  hawq_error err;
  hawq_status st = import_mb(mb, opt, &g, &err);
  CHECK(st == HAWQ_OK, "%s: import failed: %s", case_name, err.msg);
  CHECK(st != HAWQ_OK || (g != NULL && g != NOT_A_GRAPH), "%s: OK but no graph", case_name);
  return st == HAWQ_OK ? g : NULL;
}

#define PARTS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------------------------------------ */
/* A tiny valid model: x [N,1,4,4] -> Conv(2x1x3x3, bias) -> Relu -> Flatten -> Gemm(3x8^T + c) */

static float tiny_w(int k) {
  return (float)((k * 5) % 7 - 3) * 0.25f;
}
static float tiny_bconv(int k) {
  return k ? -0.5f : 0.25f;
}
static float tiny_b(int k) {
  return (float)((k * 3) % 5 - 2) * 0.125f;
}
static float tiny_c(int k) {
  return 0.1f * (float)(k + 1);
}
static float tiny_x(int b, int k) {
  return (float)((b * 7 + k * 3) % 11 - 5) * 0.2f;
}

static model_builder *tiny_model(void) {
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  float w[18], bc[2], b[24], c[3];
  for (int k = 0; k < 18; k++) w[k] = tiny_w(k);
  for (int k = 0; k < 2; k++) bc[k] = tiny_bconv(k);
  for (int k = 0; k < 24; k++) b[k] = tiny_b(k);
  for (int k = 0; k < 3; k++) c[k] = tiny_c(k);
  mb_float_init(mb, "conv.w", 4, (const int64_t[]){2, 1, 3, 3}, 18, w);
  mb_float_init(mb, "conv.b", 1, (const int64_t[]){2}, 2, bc);
  mb_float_init(mb, "fc.w", 2, (const int64_t[]){3, 8}, 24, b);
  mb_float_init(mb, "fc.b", 1, (const int64_t[]){3}, 3, c);
  Onnx__NodeProto *conv = mb_node(mb, "Conv", "conv1", IN("x", "conv.w", "conv.b"), "c1");
  mb_attr_ints(mb, conv, "kernel_shape", 2, (const int64_t[]){3, 3});
  mb_node(mb, "Relu", "relu1", IN("c1"), "r1");
  mb_node(mb, "Flatten", "flat", IN("r1"), "f1");
  Onnx__NodeProto *gemm = mb_node(mb, "Gemm", "fc", IN("f1", "fc.w", "fc.b"), "y");
  mb_attr_int(mb, gemm, "transB", 1);
  mb_output(mb, "y");
  return mb;
}

/* y[b][o] computed directly from the definitions (NCHW, C = 1, so NHWC input is the same). */
static void tiny_reference(int batch, const float *x, float *y) {
  for (int b = 0; b < batch; b++) {
    float flat[8];
    for (int k = 0; k < 2; k++) {
      for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
          float acc = tiny_bconv(k);
          for (int r = 0; r < 3; r++) {
            for (int s = 0; s < 3; s++)
              acc += tiny_w(k * 9 + r * 3 + s) * x[b * 16 + (i + r) * 4 + j + s];
          }
          flat[k * 4 + i * 2 + j] = acc > 0 ? acc : 0;
        }
      }
    }
    for (int o = 0; o < 3; o++) {
      float acc = tiny_c(o);
      for (int k = 0; k < 8; k++) acc += flat[k] * tiny_b(o * 8 + k);
      y[b * 3 + o] = acc;
    }
  }
}

static void test_tiny_model_runs(void) {
  model_builder *mb = tiny_model();
  hawq_graph *g = expect_import("tiny", mb, NULL);
  mb_free(mb);
  if (!g) return;
  CHECK(hawq_graph_num_inputs(g) == 1 && hawq_graph_num_outputs(g) == 1, "tiny: %zu in, %zu out",
        hawq_graph_num_inputs(g), hawq_graph_num_outputs(g));
  hawq_tensor_info in = hawq_graph_input(g, 0), out = hawq_graph_output(g, 0);
  CHECK(!strcmp(in.name, "x") && in.rank == 4 && in.batched && in.dims[0] == 1 && in.dims[1] == 1 &&
            in.dims[2] == 4 && in.dims[3] == 4,
        "tiny: input %s rank %d", in.name, in.rank);
  CHECK(out.rank == 2 && out.batched && out.dims[0] == 1 && out.dims[1] == 3,
        "tiny: output rank %d dims %lld x %lld", out.rank, (long long)out.dims[0],
        (long long)out.dims[1]);

  enum { BATCH = 2 };
  float x[BATCH * 16], want[BATCH * 3];
  for (int b = 0; b < BATCH; b++) {
    for (int k = 0; k < 16; k++) x[b * 16 + k] = tiny_x(b, k);
  }
  tiny_reference(BATCH, x, want);
  hawq_float_plan *p = NULL;
  hawq_error err;
  hawq_float_plan_options po = {.batch = BATCH, .threads = 1};
  hawq_status st = hawq_float_plan_create(g, &po, &p, &err);
  CHECK(st == HAWQ_OK, "tiny: plan: %s", err.msg);
  if (st == HAWQ_OK) {
    st = hawq_float_plan_run(p, (const float *const[]){x}, &err);
    CHECK(st == HAWQ_OK, "tiny: run: %s", err.msg);
    CHECK(hawq_float_plan_output_size(p, 0) == BATCH * 3, "tiny: output size %zu",
          hawq_float_plan_output_size(p, 0));
    const float *y = hawq_float_plan_output(p, 0);
    for (int k = 0; st == HAWQ_OK && k < BATCH * 3; k++) {
      CHECK(fabsf(y[k] - want[k]) <= 1e-5f + 1e-5f * fabsf(want[k]), "tiny: y[%d] = %g, want %g", k,
            y[k], want[k]);
    }
  }
  hawq_float_plan_destroy(p);
  hawq_graph_destroy(g);
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                      */

static void test_files(void) {
  hawq_graph *g = NOT_A_GRAPH;
  hawq_error err;
  char path[512];

  snprintf(path, sizeof path, "%s/does-not-exist.onnx", test_tmpdir());
  hawq_status st = hawq_graph_load_onnx(path, NULL, &g, &err);
  check_failure("missing file", st, HAWQ_ERR_IO, g, &err, PARTS(path));

  /* A directory opens with fopen on Linux; reading it must still be an I/O error. */
  g = NOT_A_GRAPH;
  st = hawq_graph_load_onnx(test_tmpdir(), NULL, &g, &err);
  check_failure("directory", st, HAWQ_ERR_IO, g, &err, PARTS(test_tmpdir()));

  snprintf(path, sizeof path, "%s/empty.onnx", test_tmpdir());
  REQUIRE(test_write_file(path, "", 0) == 0, "cannot write %s", path);
  g = NOT_A_GRAPH;
  st = hawq_graph_load_onnx(path, NULL, &g, &err);
  check_failure("empty file", st, HAWQ_ERR_PARSE, g, &err, PARTS(path, "empty"));
  remove(path);

  g = NOT_A_GRAPH;
  st = hawq_graph_load_onnx_buffer("", 0, "empty-buffer", NULL, &g, &err);
  check_failure("empty buffer", st, HAWQ_ERR_PARSE, g, &err, PARTS("empty-buffer", "empty"));

  g = NOT_A_GRAPH;
  st = hawq_graph_load_onnx_buffer("", 0, NULL, NULL, &g, &err);
  check_failure("empty unnamed buffer", st, HAWQ_ERR_PARSE, g, &err, PARTS("<buffer>"));

  /* Not protobuf at all: a field tag with wire type 7 does not exist. */
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x07};
  g = NOT_A_GRAPH;
  st = hawq_graph_load_onnx_buffer(garbage, sizeof garbage, "garbage.onnx", NULL, &g, &err);
  check_failure("garbage", st, HAWQ_ERR_PARSE, g, &err, PARTS("garbage.onnx", "protobuf"));

  /* A NULL error pointer is allowed. */
  g = NOT_A_GRAPH;
  st = hawq_graph_load_onnx_buffer(garbage, sizeof garbage, "garbage.onnx", NULL, &g, NULL);
  CHECK(st == HAWQ_ERR_PARSE && g == NULL, "garbage without err: status %d", (int)st);

  hawq_graph_destroy(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Mutations of a real exporter's file                                                        */

/* Largest tensor of g and the multiply-accumulates of one sample, for deciding to run it. */
static bool small_enough_to_run(const hawq_graph *g) {
  double work = 0;
  for (int t = 0; t < g->n_tensors; t++) {
    if (hawq_tensor_numel(&g->tensors[t]) > (1 << 20)) return false;
  }
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    double out = (double)hawq_tensor_numel(&g->tensors[n->output]), per = 1;
    if (n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM) {
      const hawq_tensor *w = &g->tensors[n->inputs[1]];
      for (int d = 1; d < w->rank; d++) per *= (double)w->dims[d];
    } else if (n->op == HAWQ_OP_MAXPOOL || n->op == HAWQ_OP_AVGPOOL) {
      per = (double)n->attr.pool.kernel[0] * n->attr.pool.kernel[1];
    } else if (n->op == HAWQ_OP_GLOBAL_AVGPOOL || n->op == HAWQ_OP_GLOBAL_MAXPOOL) {
      per = (double)hawq_tensor_numel(&g->tensors[n->inputs[0]]);
    }
    work += out * per;
  }
  return work < 5e7;
}

/* Runs a graph that imported from mutated bytes on zeros: it must not crash. */
static void run_on_zeros(const char *case_name, const hawq_graph *g) {
  if (!small_enough_to_run(g)) return;
  hawq_float_plan *p = NULL;
  hawq_error err;
  hawq_float_plan_options po = {.batch = 1, .threads = 1};
  if (hawq_float_plan_create(g, &po, &p, &err) != HAWQ_OK) {
    CHECK(message_is_one_line(err.msg), "%s: plan message '%s'", case_name, err.msg);
    return;
  }
  size_t n_in = hawq_graph_num_inputs(g);
  float **inputs = calloc(n_in ? n_in : 1, sizeof *inputs);
  REQUIRE(inputs != NULL, "out of memory");
  for (size_t i = 0; i < n_in; i++) {
    hawq_tensor_info ti = hawq_graph_input(g, i);
    int64_t n = 1;
    for (int d = 0; d < ti.rank; d++) n *= ti.dims[d];
    inputs[i] = calloc((size_t)n, sizeof(float));
    REQUIRE(inputs[i] != NULL, "out of memory");
  }
  hawq_status st = hawq_float_plan_run(p, (const float *const *)inputs, &err);
  CHECK(st == HAWQ_OK, "%s: a graph that imported does not run: %s", case_name, err.msg);
  for (size_t i = 0; i < n_in; i++) free(inputs[i]);
  free(inputs);
  hawq_float_plan_destroy(p);
}

/* Imports mutated bytes: OK (then the graph is freed, and run if `run`), or a clean refusal. */
static hawq_status check_mutant(const char *case_name, const uint8_t *data, size_t size, bool run) {
  hawq_graph *g = NOT_A_GRAPH;
  hawq_error err;
  hawq_status st = hawq_graph_load_onnx_buffer(data, size, "mutant.onnx", NULL, &g, &err);
  if (st == HAWQ_OK) {
    CHECK(g != NULL && g != NOT_A_GRAPH, "%s: OK without a graph", case_name);
    if (g == NOT_A_GRAPH) return st;
    if (run && g) run_on_zeros(case_name, g);
    hawq_graph_destroy(g);
    return st;
  }
  CHECK(st == HAWQ_ERR_PARSE || st == HAWQ_ERR_UNSUPPORTED, "%s: status %s: %s", case_name,
        hawq_status_string(st), err.msg);
  CHECK(g == NULL, "%s: *out not NULL on failure", case_name);
  CHECK(message_is_one_line(err.msg), "%s: message '%s'", case_name, err.msg);
  CHECK(strstr(err.msg, "mutant.onnx") != NULL, "%s: message lacks the buffer name: %s", case_name,
        err.msg);
  return st;
}

static void test_truncated_fixture(void) {
  size_t size = 0;
  uint8_t *full = test_read_file(FIXTURE, &size);
  REQUIRE(full != NULL, "cannot read %s (run from the repository root)", FIXTURE);
  hawq_graph *g = NULL;
  hawq_error err;
  REQUIRE(hawq_graph_load_onnx_buffer(full, size, "fixture", NULL, &g, &err) == HAWQ_OK, "%s",
          err.msg);
  hawq_graph_destroy(g);
  int refused = 0, tried = 0;
  for (size_t cut = 0; cut < size; cut = cut < 64 ? cut + 1 : cut + 997) {
    /* A copy of exactly `cut` bytes, so ASan sees any read past the end. */
    uint8_t *part = malloc(cut ? cut : 1);
    REQUIRE(part != NULL, "out of memory");
    memcpy(part, full, cut);
    char name[64];
    snprintf(name, sizeof name, "truncated at %zu", cut);
    /* A truncation that is still a complete model may import (and is freed). */
    if (check_mutant(name, part, cut, false) != HAWQ_OK) refused++;
    tried++;
    free(part);
  }
  printf("truncation: %d of %d cuts refused\n", refused, tried);
  free(full);
}

static void test_bit_flipped_fixture(test_rng *rng) {
  size_t size = 0;
  uint8_t *full = test_read_file(FIXTURE, &size);
  REQUIRE(full != NULL, "cannot read %s", FIXTURE);
  uint8_t *copy = malloc(size);
  REQUIRE(copy != NULL, "out of memory");
  int ok = 0;
  for (int iter = 0; iter < 300; iter++) {
    memcpy(copy, full, size);
    int flips = (int)test_rng_int(rng, 1, 4);
    char name[128];
    int used = snprintf(name, sizeof name, "bit flip %d:", iter);
    for (int f = 0; f < flips; f++) {
      size_t bit = (size_t)test_rng_int(rng, 0, (int64_t)size * 8 - 1);
      copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      if (used < (int)sizeof name)
        used += snprintf(name + used, sizeof name - (size_t)used, " %zu", bit);
    }
    if (check_mutant(name, copy, size, true) == HAWQ_OK) ok++;
  }
  printf("bit flips: %d of 300 mutants still imported\n", ok);
  free(copy);
  free(full);
}

/* ------------------------------------------------------------------------------------------ */
/* Ops, domains, opsets                                                                       */

static void test_unsupported_ops(void) {
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Tanh", "squash", IN("x"), "y");
  mb_output(mb, "y");
  expect_failure("Tanh", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS(BUFFER_NAME, "'squash'", "Tanh", "opset 13"));

  /* Without a node name the message names it by op and index. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", NULL, IN("x"), "r");
  mb_node(mb, "Tanh", NULL, IN("r"), "y");
  mb_output(mb, "y");
  expect_failure("unnamed Tanh", mb, HAWQ_ERR_UNSUPPORTED, PARTS(BUFFER_NAME, "Tanh_1", "opset"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  Onnx__NodeProto *n = mb_node(mb, "Gelu", "ms_gelu", IN("x"), "y");
  n->domain = mb_str(mb, "com.microsoft");
  mb_output(mb, "y");
  expect_failure("com.microsoft domain", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS(BUFFER_NAME, "ms_gelu", "com.microsoft"));

  mb = tiny_model();
  mb->opset.version = 99;
  expect_failure("opset 99", mb, HAWQ_ERR_UNSUPPORTED, PARTS(BUFFER_NAME, "opset 99"));

  mb = tiny_model();
  mb->opset.domain = mb_str(mb, "ai.onnx.ml");
  expect_failure("no default opset", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "opset"));

  mb = tiny_model();
  mb->model.graph = NULL;
  expect_failure("no graph", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "graph"));
}

/* ------------------------------------------------------------------------------------------ */
/* Conv and shapes                                                                            */

static model_builder *conv_model(int64_t in_channels, int64_t w_channels) {
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", in_channels, 8, 8);
  float w[4 * 3 * 3 * 3] = {0};
  mb_float_init(mb, "w", 4, (const int64_t[]){4, w_channels, 3, 3}, (size_t)(4 * w_channels * 9),
                w);
  mb_node(mb, "Conv", "conv_a", IN("x", "w"), "y");
  mb_output(mb, "y");
  return mb;
}

static void test_conv_errors(void) {
  expect_failure("conv channels", conv_model(3, 2), HAWQ_ERR_PARSE,
                 PARTS(BUFFER_NAME, "'conv_a'", "Conv", "channels"));

  model_builder *mb = conv_model(3, 3);
  mb_attr_int(mb, mb->nodes[0], "group", 0);
  expect_failure("conv group 0", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "'conv_a'", "'group'"));

  mb = conv_model(3, 3);
  mb_attr_float(mb, mb->nodes[0], "group", 1.0f);
  expect_failure("conv group float", mb, HAWQ_ERR_PARSE, PARTS("'conv_a'", "'group'", "integer"));

  mb = conv_model(3, 3);
  mb_attr_ints(mb, mb->nodes[0], "strides", 2, (const int64_t[]){0, 1});
  expect_failure("conv stride 0", mb, HAWQ_ERR_PARSE, PARTS("'conv_a'", "'strides'"));

  mb = conv_model(3, 3);
  mb_attr_ints(mb, mb->nodes[0], "kernel_shape", 2, (const int64_t[]){5, 5});
  expect_failure("conv kernel_shape", mb, HAWQ_ERR_PARSE, PARTS("'conv_a'", "kernel_shape"));

  mb = conv_model(3, 3);
  mb_attr_ints(mb, mb->nodes[0], "pads", 4, (const int64_t[]){-1, 0, 0, 0});
  expect_failure("conv negative pad", mb, HAWQ_ERR_PARSE, PARTS("'conv_a'", "'pads'"));

  mb = conv_model(3, 3);
  mb_attr_string(mb, mb->nodes[0], "auto_pad", "SAME_SIDEWAYS");
  expect_failure("conv auto_pad", mb, HAWQ_ERR_PARSE, PARTS("'conv_a'", "SAME_SIDEWAYS"));

  mb = conv_model(3, 3);
  mb->nodes[0]->n_input = 1; /* no weight */
  expect_failure("conv without weight", mb, HAWQ_ERR_PARSE, PARTS("'conv_a'", "W"));

  /* A weight computed at run time. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 3, 3);
  mb_node(mb, "Conv", "conv_b", IN("x", "x"), "y");
  mb_output(mb, "y");
  expect_failure("conv runtime weight", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'conv_b'", "constant"));

  /* Kernel larger than the input. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 2, 2);
  float w[9] = {0};
  mb_float_init(mb, "w", 4, (const int64_t[]){1, 1, 3, 3}, 9, w);
  mb_node(mb, "Conv", "conv_c", IN("x", "w"), "y");
  mb_output(mb, "y");
  expect_failure("conv kernel > input", mb, HAWQ_ERR_PARSE, PARTS("'conv_c'", "kernel"));
}

static void test_absurd_dimensions(void) {
  /* 2^50 elements declared, 4 values stored: refused before anything is allocated. */
  model_builder *mb = tiny_model();
  float four[4] = {1, 2, 3, 4};
  mb_float_init(mb, "huge", 3, (const int64_t[]){1 << 20, 1 << 20, 1 << 10}, 4, four);
  expect_failure("2^50-element initializer", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS(BUFFER_NAME, "'huge'", "2^32"));

  /* Dimensions whose product overflows int64. */
  mb = tiny_model();
  mb_float_init(mb, "overflow", 4,
                (const int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40, INT64_C(1) << 40, 3}, 4,
                four);
  expect_failure("int64-overflowing initializer", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'overflow'"));

  mb = tiny_model();
  mb_float_init(mb, "negative", 2, (const int64_t[]){2, -2}, 4, four);
  expect_failure("negative initializer dim", mb, HAWQ_ERR_PARSE, PARTS("'negative'", "-2"));

  mb = tiny_model();
  mb_float_init(mb, "rank7", 7, (const int64_t[]){1, 1, 1, 1, 1, 1, 4}, 4, four);
  expect_failure("rank-7 initializer", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'rank7'", "rank 7"));

  mb = mb_new(13);
  mb_input(mb, "big", T_FLOAT, 4, (const int64_t[]){0, 3, 1 << 20, 1 << 20},
           (const char *const[]){"N", NULL, NULL, NULL});
  mb_node(mb, "Relu", "r", IN("big"), "y");
  mb_output(mb, "y");
  expect_failure("huge input", mb, HAWQ_ERR_UNSUPPORTED, PARTS(BUFFER_NAME, "'big'", "2^32"));

  mb = mb_new(13);
  mb_input(mb, "zero", T_FLOAT, 2, (const int64_t[]){0, 0}, (const char *const[]){"N", NULL});
  mb_node(mb, "Relu", "r", IN("zero"), "y");
  mb_output(mb, "y");
  expect_failure("zero input dim", mb, HAWQ_ERR_PARSE, PARTS("'zero'", "dimension 1"));

  /* Reshape to [N, 2^40, ...]: the target holds more than any tensor may. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_int64_init(mb, "shape", 1, (const int64_t[]){3}, 3,
                (const int64_t[]){-1, INT64_C(1) << 40, 16});
  mb_node(mb, "Reshape", "reshape_big", IN("x", "shape"), "y");
  mb_output(mb, "y");
  expect_failure("2^40 reshape", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "'reshape_big'", "2^32"));

  /* The same on a constant (folded). */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_float_init(mb, "c", 1, (const int64_t[]){4}, 4, four);
  mb_int64_init(mb, "shape", 1, (const int64_t[]){3}, 3,
                (const int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40, 0});
  mb_node(mb, "Reshape", "reshape_const", IN("c", "shape"), "c2");
  mb_node(mb, "Add", "add", IN("x", "c2"), "y");
  mb_output(mb, "y");
  expect_failure("2^40 reshape of a constant", mb, HAWQ_ERR_PARSE, PARTS("'reshape_const'"));

  /* Conv padding that would make the output too large. */
  mb = conv_model(3, 3);
  mb_attr_ints(mb, mb->nodes[0], "pads", 4, (const int64_t[]){1 << 20, 1 << 20, 1 << 20, 1 << 20});
  expect_failure("conv huge pads", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'conv_a'", "2^32"));
}

static void test_initializer_errors(void) {
  model_builder *mb = tiny_model();
  float three[3] = {1, 2, 3};
  mb_raw_init(mb, "short_raw", 1, (const int64_t[]){4}, sizeof three, three);
  expect_failure("raw_data length", mb, HAWQ_ERR_PARSE,
                 PARTS(BUFFER_NAME, "'short_raw'", "raw_data"));

  mb = tiny_model();
  mb_float_init(mb, "few_floats", 1, (const int64_t[]){4}, 3, three);
  expect_failure("float_data count", mb, HAWQ_ERR_PARSE, PARTS("'few_floats'", "3 values"));

  mb = tiny_model();
  Onnx__TensorProto *t = mb_float_init(mb, "text", 1, (const int64_t[]){1}, 1, three);
  t->data_type = 8; /* string */
  expect_failure("string initializer", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'text'", "string"));

  mb = tiny_model();
  mb_float_init(mb, "", 1, (const int64_t[]){1}, 1, three);
  expect_failure("nameless initializer", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "no name"));

  mb = tiny_model();
  mb_float_init(mb, "conv.w", 1, (const int64_t[]){1}, 1, three);
  expect_failure("initializer twice", mb, HAWQ_ERR_PARSE, PARTS("'conv.w'", "twice"));

  /* A float weight given as int64. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 3, 3);
  int64_t ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  mb_int64_init(mb, "w", 4, (const int64_t[]){1, 1, 3, 3}, 9, ones);
  mb_node(mb, "Conv", "conv_i", IN("x", "w"), "y");
  mb_output(mb, "y");
  expect_failure("int64 weight", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'conv_i'", "int64"));
}

/* ------------------------------------------------------------------------------------------ */
/* Graph structure                                                                            */

static void test_graph_structure(void) {
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "uses_later", IN("later"), "a");
  mb_node(mb, "Relu", "defines_later", IN("x"), "later");
  mb_output(mb, "a");
  expect_failure("use before definition", mb, HAWQ_ERR_PARSE,
                 PARTS(BUFFER_NAME, "'uses_later'", "'later'"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Add", "add_ghost", IN("x", "ghost"), "y");
  mb_output(mb, "y");
  expect_failure("undefined input", mb, HAWQ_ERR_PARSE, PARTS("'add_ghost'", "'ghost'"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "first", IN("x"), "twice");
  mb_node(mb, "Relu", "second", IN("x"), "twice");
  mb_output(mb, "twice");
  expect_failure("value defined twice", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "'twice'"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "shadow", IN("x"), "x");
  mb_output(mb, "x");
  expect_failure("node output shadows the input", mb, HAWQ_ERR_PARSE, PARTS("'x'", "twice"));

  mb = mb_new(13);
  mb_output(mb, "y");
  expect_failure("no input", mb, HAWQ_ERR_UNSUPPORTED, PARTS(BUFFER_NAME, "input"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "r", IN("x"), "y");
  expect_failure("no output", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "no output"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "r", IN("x"), "y");
  mb_output(mb, "nobody_makes_this");
  expect_failure("output not produced", mb, HAWQ_ERR_PARSE,
                 PARTS(BUFFER_NAME, "'nobody_makes_this'", "not produced"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "r", IN("x"), "");
  mb_output(mb, "y");
  expect_failure("node without output", mb, HAWQ_ERR_PARSE, PARTS("'r'", "no output"));

  /* A second output of MaxPool (indices) that hawq does not compute, used as graph output. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  Onnx__NodeProto *pool = mb_node(mb, "MaxPool", "pool", IN("x"), "p");
  mb_attr_ints(mb, pool, "kernel_shape", 2, (const int64_t[]){2, 2});
  pool->n_output = 2;
  char **outs = mb_alloc(mb, 2 * sizeof *outs);
  outs[0] = pool->output[0];
  outs[1] = mb_str(mb, "indices");
  pool->output = outs;
  mb_output(mb, "indices");
  expect_failure("unavailable output", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'indices'", "'pool'"));

  /* A constant graph output. */
  mb = tiny_model();
  mb_output(mb, "fc.b");
  expect_failure("constant output", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'fc.b'", "constant"));
}

static void test_input_errors(void) {
  model_builder *mb = mb_new(13);
  mb_input(mb, "img", T_FLOAT, 4, (const int64_t[]){0, 3, 0, 32},
           (const char *const[]){"N", NULL, "height", NULL});
  mb_node(mb, "Relu", "r", IN("img"), "y");
  mb_output(mb, "y");
  expect_failure("symbolic height", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS(BUFFER_NAME, "'img'", "'height'", "dimension 2"));

  mb = mb_new(13);
  mb_input(mb, "ids", T_INT64, 2, (const int64_t[]){0, 8}, (const char *const[]){"N", NULL});
  mb_node(mb, "Relu", "r", IN("ids"), "y");
  mb_output(mb, "y");
  expect_failure("int64 input", mb, HAWQ_ERR_UNSUPPORTED, PARTS(BUFFER_NAME, "'ids'", "int64"));

  mb = mb_new(13);
  mb_input(mb, "shapeless", T_FLOAT, -1, NULL, NULL);
  mb_node(mb, "Relu", "r", IN("shapeless"), "y");
  mb_output(mb, "y");
  expect_failure("input without shape", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'shapeless'", "shape"));

  mb = mb_new(13);
  mb_input(mb, "r7", T_FLOAT, 7, (const int64_t[]){1, 1, 1, 1, 1, 1, 1}, NULL);
  mb_node(mb, "Relu", "r", IN("r7"), "y");
  mb_output(mb, "y");
  expect_failure("rank-7 input", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'r7'", "rank 7"));

  /* The batch is symbolic, so fixed shapes cannot import it. */
  mb = tiny_model();
  hawq_import_options fixed = {.fixed_shapes = true};
  hawq_graph *g;
  hawq_error err;
  hawq_status st = import_mb(mb, &fixed, &g, &err);
  check_failure("fixed shapes with symbolic batch", st, HAWQ_ERR_UNSUPPORTED, g, &err,
                PARTS("'x'", "'N'", "dimension 0"));
  mb_free(mb);
}

/* ------------------------------------------------------------------------------------------ */
/* External data                                                                              */

/* x [N,4] -> Gemm with B [4,2] stored externally (at byte offset 8 of the data file). */
static model_builder *external_model(const char *location, int64_t length) {
  model_builder *mb = mb_new(13);
  mb_input(mb, "x", T_FLOAT, 2, (const int64_t[]){0, 4}, (const char *const[]){"N", NULL});
  mb_external_init(mb, "fc.ext", 2, (const int64_t[]){4, 2}, location, 8, length);
  mb_node(mb, "Gemm", "fc", IN("x", "fc.ext"), "y");
  mb_output(mb, "y");
  return mb;
}

static hawq_status load_from_tmpdir(const model_builder *mb, const char *file, hawq_graph **g,
                                    hawq_error *err) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", test_tmpdir(), file);
  size_t size;
  uint8_t *buf = mb_pack(mb, &size);
  REQUIRE(test_write_file(path, buf, size) == 0, "cannot write %s", path);
  free(buf);
  *g = NOT_A_GRAPH;
  hawq_status st = hawq_graph_load_onnx(path, NULL, g, err);
  remove(path);
  return st;
}

static void test_external_data(void) {
  const float weights[8] = {1, -1, 2, 0.5f, -3, 0.25f, 4, 2};
  uint8_t file[8 + sizeof weights];
  memset(file, 0xee, 8);
  memcpy(file + 8, weights, sizeof weights);
  char data_path[512];
  snprintf(data_path, sizeof data_path, "%s/weights.bin", test_tmpdir());
  REQUIRE(test_write_file(data_path, file, sizeof file) == 0, "cannot write %s", data_path);
  hawq_graph *g;
  hawq_error err;

  /* From a file path: the data file is found next to the model and read at the offset. */
  model_builder *mb = external_model("weights.bin", (int64_t)sizeof weights);
  hawq_status st = load_from_tmpdir(mb, "ext.onnx", &g, &err);
  CHECK(st == HAWQ_OK, "external data: %s", err.msg);
  if (st == HAWQ_OK) {
    hawq_float_plan *p = NULL;
    hawq_float_plan_options po = {.batch = 1, .threads = 1};
    const float x[4] = {1, 2, 3, 4};
    if (hawq_float_plan_create(g, &po, &p, &err) == HAWQ_OK &&
        hawq_float_plan_run(p, (const float *const[]){x}, &err) == HAWQ_OK) {
      const float *y = hawq_float_plan_output(p, 0);
      /* y[o] = sum_k x[k] * B[k][o], B row-major (4, 2). */
      float want0 = 1 * 1 + 2 * 2 + 3 * -3 + 4 * 4, want1 = 1 * -1 + 2 * 0.5f + 3 * 0.25f + 4 * 2;
      CHECK(fabsf(y[0] - want0) < 1e-5f && fabsf(y[1] - want1) < 1e-5f,
            "external data: y = %g %g, want %g %g", y[0], y[1], want0, want1);
    } else {
      CHECK(false, "external data: plan or run: %s", err.msg);
    }
    hawq_float_plan_destroy(p);
    hawq_graph_destroy(g);
  }

  /* The same model from memory cannot find its data. */
  st = import_mb(mb, NULL, &g, &err);
  check_failure("external data from a buffer", st, HAWQ_ERR_UNSUPPORTED, g, &err,
                PARTS(BUFFER_NAME, "'fc.ext'", "weights.bin", "file"));
  mb_free(mb);

  /* Paths leaving the model's directory. */
  mb = external_model("../etc/passwd", -1);
  st = load_from_tmpdir(mb, "escape.onnx", &g, &err);
  check_failure("external ../", st, HAWQ_ERR_UNSUPPORTED, g, &err,
                PARTS("escape.onnx", "'fc.ext'", "../etc/passwd"));
  mb_free(mb);

  mb = external_model("/etc/passwd", -1);
  st = load_from_tmpdir(mb, "absolute.onnx", &g, &err);
  check_failure("external absolute", st, HAWQ_ERR_UNSUPPORTED, g, &err,
                PARTS("'fc.ext'", "/etc/passwd"));
  mb_free(mb);

  mb = external_model("", -1);
  st = load_from_tmpdir(mb, "nolocation.onnx", &g, &err);
  check_failure("external without location", st, HAWQ_ERR_PARSE, g, &err,
                PARTS("'fc.ext'", "location"));
  mb_free(mb);

  /* A declared length that is not the tensor's size. */
  mb = external_model("weights.bin", 12);
  st = load_from_tmpdir(mb, "badlength.onnx", &g, &err);
  check_failure("external length", st, HAWQ_ERR_PARSE, g, &err, PARTS("'fc.ext'", "length 12"));
  mb_free(mb);

  /* A data file shorter than offset + size. */
  char short_path[512];
  snprintf(short_path, sizeof short_path, "%s/short.bin", test_tmpdir());
  REQUIRE(test_write_file(short_path, file, 20) == 0, "cannot write %s", short_path);
  mb = external_model("short.bin", -1);
  st = load_from_tmpdir(mb, "short.onnx", &g, &err);
  check_failure("external too short", st, HAWQ_ERR_PARSE, g, &err,
                PARTS("short.onnx", "'fc.ext'", "short.bin", "too short"));
  mb_free(mb);
  remove(short_path);

  mb = external_model("absent.bin", -1);
  st = load_from_tmpdir(mb, "absent.onnx", &g, &err);
  check_failure("external file missing", st, HAWQ_ERR_IO, g, &err, PARTS("'fc.ext'", "absent.bin"));
  mb_free(mb);

  remove(data_path);
}

/* ------------------------------------------------------------------------------------------ */
/* Reshape and the batch                                                                      */

static model_builder *reshape_model(bool symbolic_batch) {
  model_builder *mb = mb_new(13);
  mb_input(mb, "x", T_FLOAT, 4, (const int64_t[]){2, 4, 2, 2},
           symbolic_batch ? (const char *const[]){"N", NULL, NULL, NULL} : NULL);
  mb_int64_init(mb, "target", 1, (const int64_t[]){2}, 2, (const int64_t[]){2, -1});
  mb_node(mb, "Reshape", "mix_batch", IN("x", "target"), "y");
  mb_output(mb, "y");
  return mb;
}

static void test_reshape_batch(void) {
  expect_failure("reshape mixes the batch", reshape_model(true), HAWQ_ERR_UNSUPPORTED,
                 PARTS(BUFFER_NAME, "'mix_batch'", "batch", "export with"));
  /* A declared batch of 2 is still the batch unless shapes are fixed. */
  expect_failure("reshape mixes a declared batch", reshape_model(false), HAWQ_ERR_UNSUPPORTED,
                 PARTS("'mix_batch'", "batch"));

  model_builder *mb = reshape_model(false);
  hawq_import_options fixed = {.fixed_shapes = true};
  hawq_graph *g = expect_import("reshape with fixed shapes", mb, &fixed);
  mb_free(mb);
  if (!g) return;
  hawq_tensor_info out = hawq_graph_output(g, 0);
  CHECK(out.rank == 2 && !out.batched && out.dims[0] == 2 && out.dims[1] == 16,
        "fixed reshape: output rank %d dims %lld x %lld batched %d", out.rank,
        (long long)out.dims[0], (long long)out.dims[1], (int)out.batched);
  float logical[32], physical[32];
  for (int k = 0; k < 32; k++) logical[k] = (float)k;
  const int64_t dims[4] = {2, 4, 2, 2};
  hawq_tensor_to_physical(logical, physical, 4, dims);
  hawq_float_plan *p = NULL;
  hawq_error err;
  hawq_float_plan_options po = {.batch = 1, .threads = 1};
  hawq_status st = hawq_float_plan_create(g, &po, &p, &err);
  CHECK(st == HAWQ_OK, "fixed reshape: plan: %s", err.msg);
  if (st == HAWQ_OK) {
    st = hawq_float_plan_run(p, (const float *const[]){physical}, &err);
    CHECK(st == HAWQ_OK, "fixed reshape: run: %s", err.msg);
    CHECK(hawq_float_plan_output_size(p, 0) == 32, "fixed reshape: %zu outputs",
          hawq_float_plan_output_size(p, 0));
    const float *y = hawq_float_plan_output(p, 0);
    for (int k = 0; st == HAWQ_OK && k < 32; k++) {
      CHECK(y[k] == logical[k], "fixed reshape: y[%d] = %g, want %g", k, y[k], logical[k]);
    }
  }
  hawq_float_plan_destroy(p);
  hawq_graph_destroy(g);

  /* A runtime shape input. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Reshape", "data_shape", IN("x", "x"), "y");
  mb_output(mb, "y");
  expect_failure("reshape with a data shape", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS("'data_shape'", "constant"));

  /* Element count mismatch. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_int64_init(mb, "t", 1, (const int64_t[]){2}, 2, (const int64_t[]){-1, 15});
  mb_node(mb, "Reshape", "bad_count", IN("x", "t"), "y");
  mb_output(mb, "y");
  expect_failure("reshape count", mb, HAWQ_ERR_PARSE, PARTS("'bad_count'", "15 elements"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_int64_init(mb, "t", 1, (const int64_t[]){3}, 3, (const int64_t[]){-1, -1, 4});
  mb_node(mb, "Reshape", "two_infer", IN("x", "t"), "y");
  mb_output(mb, "y");
  expect_failure("reshape two -1", mb, HAWQ_ERR_PARSE, PARTS("'two_infer'", "-1"));
}

/* ------------------------------------------------------------------------------------------ */
/* Softmax, Concat, Pad                                                                        */

/* x [N,1,4,4] -> Flatten -> f [N,16], then one node under test producing y. */
static model_builder *flat_model(void) {
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Flatten", "flat", IN("x"), "f");
  mb_output(mb, "y");
  return mb;
}

static void test_softmax_concat_pad(void) {
  model_builder *mb = flat_model();
  mb_attr_int(mb, mb_node(mb, "Softmax", "sm", IN("f"), "y"), "axis", 2);
  expect_failure("softmax axis 2 of rank 2", mb, HAWQ_ERR_PARSE, PARTS("'sm'", "Softmax", "axis"));

  mb = flat_model();
  mb_attr_int(mb, mb_node(mb, "Softmax", "sm", IN("f"), "y"), "axis", 0);
  expect_failure("softmax over the batch", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'sm'", "batch"));

  mb = flat_model();
  mb_attr_int(mb, mb_node(mb, "Softmax", "sm", IN("f"), "y"), "axis", 1);
  hawq_graph *g = expect_import("softmax axis 1", mb, NULL);
  hawq_graph_destroy(g);
  mb_free(mb);

  mb = flat_model();
  mb_attr_int(mb, mb_node(mb, "Concat", "cat", IN("x", "f"), "y"), "axis", 1);
  expect_failure("concat ranks differ", mb, HAWQ_ERR_PARSE, PARTS("'cat'", "'f'", "rank"));

  mb = flat_model();
  mb_attr_int(mb, mb_node(mb, "Concat", "cat", IN("f", "f"), "y"), "axis", 0);
  expect_failure("concat on the batch", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'cat'", "batch"));

  mb = flat_model();
  mb_attr_int(mb, mb_node(mb, "Concat", "cat", IN("f", "f"), "y"), "axis", 5);
  expect_failure("concat axis out of range", mb, HAWQ_ERR_PARSE, PARTS("'cat'", "axis 5"));

  mb = flat_model();
  mb_node(mb, "MaxPool", "pool", IN("x"), "p");
  mb_attr_ints(mb, mb->nodes[1], "kernel_shape", 2, (const int64_t[]){2, 2});
  mb_attr_int(mb, mb_node(mb, "Concat", "cat", IN("x", "p"), "y"), "axis", 1);
  expect_failure("concat sizes differ", mb, HAWQ_ERR_PARSE, PARTS("'cat'", "'p'", "size"));

  mb = flat_model();
  const char *many[66];
  for (int k = 0; k < 65; k++) many[k] = "f";
  many[65] = NULL;
  mb_attr_int(mb, mb_node(mb, "Concat", "cat65", many, "y"), "axis", 1);
  expect_failure("concat of 65 inputs", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'cat65'", "65"));

  mb = flat_model();
  mb_float_init(mb, "const_row", 2, (const int64_t[]){1, 2}, 2, (const float[]){1, 2});
  mb_attr_int(mb, mb_node(mb, "Concat", "cat_const", IN("f", "const_row"), "y"), "axis", 1);
  expect_failure("concat constant to batched", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS("'cat_const'", "'const_row'"));

  /* Pad (opset 13: pads is an input). */
  mb = flat_model();
  mb_int64_init(mb, "pads", 1, (const int64_t[]){4}, 4, (const int64_t[]){0, 1, 0, 1});
  mb_attr_string(mb, mb_node(mb, "Pad", "pad", IN("f", "pads"), "y"), "mode", "reflect");
  expect_failure("pad reflect", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'pad'", "'reflect'"));

  mb = flat_model();
  mb_int64_init(mb, "pads", 1, (const int64_t[]){3}, 3, (const int64_t[]){0, 1, 0});
  mb_node(mb, "Pad", "pad", IN("f", "pads"), "y");
  expect_failure("pad count", mb, HAWQ_ERR_PARSE, PARTS("'pad'", "3 entries"));

  mb = flat_model();
  mb_int64_init(mb, "pads", 1, (const int64_t[]){4}, 4, (const int64_t[]){1, 0, 0, 0});
  mb_node(mb, "Pad", "pad", IN("f", "pads"), "y");
  expect_failure("pad the batch", mb, HAWQ_ERR_UNSUPPORTED, PARTS("'pad'", "batch"));

  mb = flat_model();
  mb_int64_init(mb, "pads", 1, (const int64_t[]){4}, 4, (const int64_t[]){0, 1 << 21, 0, 0});
  mb_node(mb, "Pad", "pad", IN("f", "pads"), "y");
  expect_failure("pad too large", mb, HAWQ_ERR_PARSE, PARTS("'pad'", "too large"));

  mb = flat_model();
  mb_int64_init(mb, "pads", 1, (const int64_t[]){4}, 4, (const int64_t[]){0, INT64_MIN, 0, 0});
  mb_node(mb, "Pad", "pad", IN("f", "pads"), "y");
  expect_failure("pad INT64_MIN", mb, HAWQ_ERR_PARSE, PARTS("'pad'", "too large"));

  mb = flat_model();
  mb_int64_init(mb, "pads", 1, (const int64_t[]){4}, 4, (const int64_t[]){0, -16, 0, 0});
  mb_node(mb, "Pad", "pad", IN("f", "pads"), "y");
  expect_failure("pad crops everything", mb, HAWQ_ERR_PARSE, PARTS("'pad'", "dimension 1"));

  mb = flat_model();
  mb_node(mb, "Pad", "pad", IN("f"), "y");
  expect_failure("pad without pads", mb, HAWQ_ERR_PARSE, PARTS("'pad'", "pads"));
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata, bound inputs, malformed nodes                                                     */

static void mb_metadata(model_builder *mb, const char *key, const char *value) {
  Onnx__StringStringEntryProto **props =
      mb_alloc(mb, (mb->model.n_metadata_props + 1) * sizeof *props);
  for (size_t k = 0; k < mb->model.n_metadata_props; k++) props[k] = mb->model.metadata_props[k];
  Onnx__StringStringEntryProto *e = mb_alloc(mb, sizeof *e);
  onnx__string_string_entry_proto__init(e);
  e->key = mb_str(mb, key);
  e->value = mb_str(mb, value);
  props[mb->model.n_metadata_props++] = e;
  mb->model.metadata_props = props;
}

static void test_metadata(void) {
  model_builder *mb = tiny_model();
  mb_metadata(mb, "hawq.input.std", "0");
  expect_failure("metadata std 0", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "hawq.input.std"));

  mb = tiny_model();
  mb_metadata(mb, "hawq.input.mean", "half");
  expect_failure("metadata mean not a number", mb, HAWQ_ERR_PARSE,
                 PARTS(BUFFER_NAME, "hawq.input.mean"));

  mb = tiny_model();
  mb_metadata(mb, "hawq.input.mean", "0.1,0.2");
  mb_metadata(mb, "hawq.input.std", "0.1,0.2,0.3");
  expect_failure("metadata mean/std counts", mb, HAWQ_ERR_PARSE, PARTS(BUFFER_NAME, "mean", "std"));

  /* Accepted metadata is reported. */
  mb = tiny_model();
  mb_metadata(mb, "hawq.input.pixel_scale", "0.5");
  mb_metadata(mb, "hawq.input.mean", "0.25");
  hawq_graph *g = expect_import("metadata", mb, NULL);
  if (g) {
    hawq_preprocess pp = hawq_graph_preprocess(g);
    CHECK(pp.has_metadata && pp.pixel_scale == 0.5f && pp.channels == 1 && pp.mean[0] == 0.25f &&
              pp.std[0] == 1.0f,
          "metadata: scale %g mean %g std %g", pp.pixel_scale, pp.mean[0], pp.std[0]);
  }
  hawq_graph_destroy(g);
  mb_free(mb);
}

/* x [N,1,4,4] reshaped by the graph input "shape", which the options bind. */
static model_builder *bound_shape_model(void) {
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_input(mb, "shape", T_INT64, 1, (const int64_t[]){2}, NULL);
  mb_node(mb, "Reshape", "reshape", IN("x", "shape"), "y");
  mb_output(mb, "y");
  return mb;
}

static void test_bound_inputs(void) {
  model_builder *mb = bound_shape_model();
  const int64_t two = 2, target[2] = {-1, 16};
  struct hawq_bound_input bound = {"shape", T_INT64, 1, &two, target};
  hawq_import_options opt = {.n_bound = 1, .bound = &bound};
  hawq_graph *g = expect_import("bound shape", mb, &opt);
  if (g) {
    hawq_tensor_info out = hawq_graph_output(g, 0);
    CHECK(hawq_graph_num_inputs(g) == 1 && out.rank == 2 && out.batched && out.dims[1] == 16,
          "bound shape: %zu inputs, output rank %d", hawq_graph_num_inputs(g), out.rank);
  }
  hawq_graph_destroy(g);

  /* Without the binding the shape is a run-time int64 input. */
  hawq_error err;
  hawq_status st = import_mb(mb, NULL, &g, &err);
  check_failure("unbound int64 shape input", st, HAWQ_ERR_UNSUPPORTED, g, &err,
                PARTS("'shape'", "int64"));

  /* Bad bindings are the caller's error. */
  struct hawq_bound_input bad_rank = {"shape", T_INT64, 7, target, target};
  opt.bound = &bad_rank;
  st = import_mb(mb, &opt, &g, &err);
  check_failure("bound rank 7", st, HAWQ_ERR_INVALID_ARG, g, &err, PARTS("'shape'"));

  struct hawq_bound_input bad_type = {"shape", 3, 1, &two, target};
  opt.bound = &bad_type;
  st = import_mb(mb, &opt, &g, &err);
  check_failure("bound dtype int8", st, HAWQ_ERR_INVALID_ARG, g, &err, PARTS("'shape'"));

  const int64_t negative = -2;
  struct hawq_bound_input bad_dims = {"shape", T_INT64, 1, &negative, target};
  opt.bound = &bad_dims;
  st = import_mb(mb, &opt, &g, &err);
  check_failure("bound negative dim", st, HAWQ_ERR_INVALID_ARG, g, &err, PARTS("'shape'"));
  mb_free(mb);
}

static void test_malformed_nodes(void) {
  /* A compute op without inputs. */
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Relu", "no_inputs", IN(NULL), "y");
  mb_output(mb, "y");
  expect_failure("Relu without inputs", mb, HAWQ_ERR_PARSE, PARTS("'no_inputs'", "input"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Add", "add_one", IN("x"), "y");
  mb_output(mb, "y");
  expect_failure("Add with one input", mb, HAWQ_ERR_PARSE, PARTS("'add_one'", "2 inputs"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "Constant", "konst", IN(NULL), "k");
  mb_node(mb, "Add", "add", IN("x", "k"), "y");
  mb_output(mb, "y");
  expect_failure("Constant without value", mb, HAWQ_ERR_PARSE, PARTS("'konst'", "value"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_node(mb, "MaxPool", "pool", IN("x"), "y");
  mb_output(mb, "y");
  expect_failure("MaxPool without kernel", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS("'pool'", "kernel_shape"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  float one = 1;
  mb_float_init(mb, "s", 1, (const int64_t[]){1}, 1, &one);
  mb_float_init(mb, "v", 1, (const int64_t[]){1}, 1, (const float[]){-1});
  mb_node(mb, "BatchNormalization", "bn", IN("x", "s", "s", "s", "v"), "y");
  mb_output(mb, "y");
  expect_failure("BatchNorm negative variance", mb, HAWQ_ERR_PARSE, PARTS("'bn'", "variance"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_int64_init(mb, "idx", 1, (const int64_t[]){1}, 1, (const int64_t[]){7});
  mb_node(mb, "Shape", "shape", IN("x"), "s");
  mb_node(mb, "Gather", "gather", IN("s", "idx"), "g");
  mb_node(mb, "Reshape", "use", IN("x", "g"), "y");
  mb_output(mb, "y");
  expect_failure("Gather index out of range", mb, HAWQ_ERR_PARSE, PARTS("'gather'", "index 7"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_attr_ints(mb, mb_node(mb, "Transpose", "perm", IN("x"), "y"), "perm", 4,
               (const int64_t[]){0, 1, 1, 3});
  mb_output(mb, "y");
  expect_failure("Transpose bad perm", mb, HAWQ_ERR_PARSE, PARTS("'perm'", "permutation"));

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_attr_ints(mb, mb_node(mb, "Transpose", "swap_batch", IN("x"), "y"), "perm", 4,
               (const int64_t[]){1, 0, 2, 3});
  mb_output(mb, "y");
  expect_failure("Transpose moves the batch", mb, HAWQ_ERR_UNSUPPORTED,
                 PARTS("'swap_batch'", "batch"));
}

/* Wraps buf[0..*len) as length-delimited field `field` of a new message, in place (tmp is
 * scratch of the same capacity). */
static void wrap_field(uint8_t *buf, uint8_t *tmp, size_t *len, unsigned field) {
  size_t n = 0;
  uint64_t v = *len;
  tmp[n++] = (uint8_t)((field << 3) | 2);
  do {
    tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  memcpy(tmp + n, buf, *len);
  *len += n;
  memcpy(buf, tmp, *len);
}

/* A ModelProto whose graph holds a node whose attribute holds a graph ... `depth` times
 * (AttributeProto.g, NodeProto.attribute, GraphProto.node), written as raw protobuf. */
static uint8_t *nested_model(int depth, size_t *size) {
  size_t cap = (size_t)depth * 40 + 64, len = 0;
  uint8_t *buf = malloc(cap), *tmp = malloc(cap);
  REQUIRE(buf && tmp, "out of memory");
  for (int d = 0; d < depth; d++) {
    wrap_field(buf, tmp, &len, 6); /* AttributeProto.g */
    wrap_field(buf, tmp, &len, 5); /* NodeProto.attribute */
    wrap_field(buf, tmp, &len, 1); /* GraphProto.node */
  }
  wrap_field(buf, tmp, &len, 7); /* ModelProto.graph */
  free(tmp);
  *size = len;
  return buf;
}

/* A case that could loop forever runs under an alarm, so a hang fails the test quickly. */
static const char *volatile guarded_case = "";

static void on_alarm(int sig) {
  (void)sig;
  static const char prefix[] = "test_import_errors: hang (over 30 s) in case: ";
  if (write(STDERR_FILENO, prefix, sizeof prefix - 1) < 0) _exit(1);
  const char *name = (const char *)guarded_case;
  if (write(STDERR_FILENO, name, strlen(name)) < 0) _exit(1);
  if (write(STDERR_FILENO, "\n", 1) < 0) _exit(1);
  _exit(1);
}

/* Names longer than the importer's internal name buffers: distinct ONNX names that share a long
 * prefix, and one long initializer name used by two nodes (each use becomes a parameter). */
static void test_long_names(void) {
  char prefix[1001];
  memset(prefix, 'n', 1000);
  prefix[1000] = '\0';
  char out_a[1010], out_b[1010];
  snprintf(out_a, sizeof out_a, "%s_a", prefix);
  snprintf(out_b, sizeof out_b, "%s_b", prefix);
  signal(SIGALRM, on_alarm);

  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 3, 3);
  mb_node(mb, "Relu", "first", IN("x"), out_a);
  mb_node(mb, "Relu", "second", IN(out_a), out_b);
  mb_output(mb, out_b);
  guarded_case = "two outputs with a shared 1000-character prefix";
  alarm(30);
  hawq_graph *g = expect_import((const char *)guarded_case, mb, NULL);
  alarm(0);
  hawq_graph_destroy(g);
  mb_free(mb);

  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 3, 3);
  float one = 1;
  mb_float_init(mb, prefix, 4, (const int64_t[]){1, 1, 1, 1}, 1, &one);
  mb_node(mb, "Conv", "conv1", IN("x", prefix), "a");
  mb_node(mb, "Conv", "conv2", IN("a", prefix), "y");
  mb_output(mb, "y");
  guarded_case = "a weight with a 1000-character name used twice";
  alarm(30);
  g = expect_import((const char *)guarded_case, mb, NULL);
  alarm(0);
  hawq_graph_destroy(g);
  mb_free(mb);

  /* A 1000-character node name in a message: still one line, cut to the buffer. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 3, 3);
  mb_node(mb, "Tanh", prefix, IN("x"), "y");
  mb_output(mb, "y");
  expect_failure("1000-character node name", mb, HAWQ_ERR_UNSUPPORTED, PARTS(BUFFER_NAME, "nnnn"));
}

/* Protobuf nesting far deeper than any model: refused, not a stack overflow. */
static void test_deep_nesting(void) {
  for (int depth = 1000; depth <= 100000; depth *= 10) {
    size_t size;
    uint8_t *buf = nested_model(depth, &size);
    hawq_graph *g = NOT_A_GRAPH;
    hawq_error err;
    char name[64];
    snprintf(name, sizeof name, "subgraphs nested %d deep", depth);
    hawq_status st = hawq_graph_load_onnx_buffer(buf, size, BUFFER_NAME, NULL, &g, &err);
    note(name, st, &err);
    CHECK(st == HAWQ_ERR_PARSE || st == HAWQ_ERR_UNSUPPORTED, "%s: status %s", name,
          hawq_status_string(st));
    CHECK(g == NULL && message_is_one_line(err.msg), "%s: %s", name, err.msg);
    if (st == HAWQ_OK && g != NOT_A_GRAPH) hawq_graph_destroy(g);
    free(buf);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Importer internals under stress: each case imports or is refused cleanly, never crashes.    */

/* A Conv (then BatchNormalization, then Gemm) whose parameters are added just when the graph's
 * tensor array is full (64, 128 tensors): the importer must not keep a pointer into it. */
static void test_tensor_array_growth(void) {
  for (int relus = 60; relus <= 66; relus++) {
    model_builder *mb = mb_new(13);
    mb_image_input(mb, "x", 1, 3, 3);
    char prev[32] = "x", next[32];
    for (int k = 0; k < relus; k++) {
      snprintf(next, sizeof next, "r%d", k);
      mb_node(mb, "Relu", NULL, IN(prev), next);
      snprintf(prev, sizeof prev, "%s", next);
    }
    float w[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, one = 1, zero = 0;
    mb_float_init(mb, "w", 4, (const int64_t[]){1, 1, 3, 3}, 9, w);
    mb_float_init(mb, "b", 1, (const int64_t[]){1}, 1, &zero);
    mb_float_init(mb, "bn.s", 1, (const int64_t[]){1}, 1, &one);
    mb_float_init(mb, "bn.b", 1, (const int64_t[]){1}, 1, &zero);
    mb_float_init(mb, "bn.m", 1, (const int64_t[]){1}, 1, &zero);
    mb_float_init(mb, "bn.v", 1, (const int64_t[]){1}, 1, &one);
    mb_float_init(mb, "fc.w", 2, (const int64_t[]){1, 1}, 1, &one);
    mb_float_init(mb, "fc.b", 1, (const int64_t[]){1}, 1, &zero);
    mb_node(mb, "Conv", "conv", IN(prev, "w", "b"), "c");
    mb_node(mb, "BatchNormalization", "bn", IN("c", "bn.s", "bn.b", "bn.m", "bn.v"), "n");
    mb_node(mb, "Flatten", "flat", IN("n"), "f");
    mb_node(mb, "Gemm", "fc", IN("f", "fc.w", "fc.b"), "y");
    mb_output(mb, "y");
    char name[64];
    snprintf(name, sizeof name, "%d Relus then Conv/BN/Gemm", relus);
    hawq_graph *g = expect_import(name, mb, NULL);
    if (g) {
      hawq_tensor_info out = hawq_graph_output(g, 0);
      CHECK(out.batched && out.rank == 2 && out.dims[1] == 1, "%s: output shape", name);
    }
    hawq_graph_destroy(g);
    mb_free(mb);
  }
}

/* Identity-like ops whose first input is a constant and a later one is computed. */
static void test_alias_of_constant(void) {
  static const char *ops[] = {"Identity", "Dropout", "Cast", "Shape", "Relu", "MatMul"};
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    model_builder *mb = mb_new(13);
    mb_input(mb, "x", T_FLOAT, 2, (const int64_t[]){0, 2}, (const char *const[]){"N", NULL});
    mb_float_init(mb, "c", 2, (const int64_t[]){1, 2}, 2, (const float[]){1, 2});
    Onnx__NodeProto *n = mb_node(mb, ops[k], "odd", IN("c", "x"), "a");
    if (!strcmp(ops[k], "Cast")) mb_attr_int(mb, n, "to", T_FLOAT);
    mb_node(mb, "Add", "use", IN("x", "a"), "y");
    mb_output(mb, "y");
    hawq_graph *g;
    hawq_error err;
    char name[64];
    snprintf(name, sizeof name, "%s(constant, runtime)", ops[k]);
    hawq_status st = import_mb(mb, NULL, &g, &err);
    note(name, st, &err);
    /* Either refused as unsupported/malformed, or imported; never an internal error. */
    CHECK(st == HAWQ_OK || st == HAWQ_ERR_UNSUPPORTED || st == HAWQ_ERR_PARSE, "%s: status %s: %s",
          name, hawq_status_string(st), err.msg);
    if (st == HAWQ_OK)
      hawq_graph_destroy(g);
    else
      CHECK(message_is_one_line(err.msg) && strstr(err.msg, "'odd'"), "%s: %s", name, err.msg);
    mb_free(mb);
  }
}

/* A node whose first input is absent ("") and a later one is computed. */
static void test_absent_first_input(void) {
  static const char *ops[] = {"Identity", "Dropout", "Cast", "Shape", "Relu",  "Conv",
                              "Reshape",  "Softmax", "Pad",  "Gemm",  "Concat"};
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    model_builder *mb = mb_new(13);
    mb_input(mb, "x", T_FLOAT, 2, (const int64_t[]){0, 2}, (const char *const[]){"N", NULL});
    Onnx__NodeProto *n = mb_node(mb, ops[k], "hole", IN("", "x"), "y");
    if (!strcmp(ops[k], "Cast")) mb_attr_int(mb, n, "to", T_FLOAT);
    mb_output(mb, "y");
    char name[64];
    snprintf(name, sizeof name, "%s with input 0 absent", ops[k]);
    hawq_graph *g;
    hawq_error err;
    hawq_status st = import_mb(mb, NULL, &g, &err);
    note(name, st, &err);
    CHECK(st == HAWQ_ERR_PARSE || st == HAWQ_ERR_UNSUPPORTED, "%s: status %s: %s", name,
          hawq_status_string(st), err.msg);
    if (st == HAWQ_OK)
      hawq_graph_destroy(g);
    else
      CHECK(message_is_one_line(err.msg) && strstr(err.msg, "'hole'"), "%s: %s", name, err.msg);
    mb_free(mb);
  }
}

/* Imports mb and expects a clean refusal (PARSE or UNSUPPORTED, one line); frees mb. */
static void expect_refused(const char *case_name, model_builder *mb) {
  hawq_graph *g;
  hawq_error err;
  hawq_status st = import_mb(mb, NULL, &g, &err);
  note(case_name, st, &err);
  CHECK(st == HAWQ_ERR_PARSE || st == HAWQ_ERR_UNSUPPORTED, "%s: status %s: %s", case_name,
        hawq_status_string(st), err.msg);
  CHECK(st == HAWQ_OK || (g == NULL && message_is_one_line(err.msg)), "%s: %s", case_name, err.msg);
  if (st == HAWQ_OK) hawq_graph_destroy(g);
  mb_free(mb);
}

/* Integer shape arithmetic on extreme values: refused, no signed overflow or division trap. */
static void test_folding_overflow(void) {
  /* Slice with step INT64_MAX (the slice is fine, its result is not a valid shape). */
  model_builder *mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_int64_init(mb, "data", 1, (const int64_t[]){3}, 3, (const int64_t[]){1, 2, 3});
  mb_int64_init(mb, "starts", 1, (const int64_t[]){1}, 1, (const int64_t[]){0});
  mb_int64_init(mb, "ends", 1, (const int64_t[]){1}, 1, (const int64_t[]){3});
  mb_int64_init(mb, "axes", 1, (const int64_t[]){1}, 1, (const int64_t[]){0});
  mb_int64_init(mb, "steps", 1, (const int64_t[]){1}, 1, (const int64_t[]){INT64_MAX});
  mb_node(mb, "Slice", "slice_step", IN("data", "starts", "ends", "axes", "steps"), "s");
  mb_node(mb, "Reshape", "use", IN("x", "s"), "y");
  mb_output(mb, "y");
  expect_refused("Slice step INT64_MAX", mb);

  /* Sums, differences, products and quotients of shape values past the int64 range. */
  static const char *ops[] = {"Add", "Mul", "Sub", "Div"};
  static const int64_t lhs[] = {INT64_MAX, INT64_C(1) << 62, INT64_MIN, INT64_MIN};
  static const int64_t rhs[] = {1, 4, 1, -1};
  for (int k = 0; k < 4; k++) {
    mb = mb_new(13);
    mb_image_input(mb, "x", 1, 4, 4);
    mb_int64_init(mb, "a", 1, (const int64_t[]){1}, 1, &lhs[k]);
    mb_int64_init(mb, "b", 1, (const int64_t[]){1}, 1, &rhs[k]);
    mb_node(mb, ops[k], "arith", IN("a", "b"), "s");
    mb_node(mb, "Reshape", "use", IN("x", "s"), "y");
    mb_output(mb, "y");
    char name[64];
    snprintf(name, sizeof name, "int64 %s overflow", ops[k]);
    expect_refused(name, mb);
  }

  /* Concat of empty constants whose other axis sums past INT64_MAX. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  mb_float_init(mb, "empty", 2, (const int64_t[]){0, INT64_C(1) << 62}, 0, NULL);
  mb_attr_int(mb, mb_node(mb, "Concat", "cat_empty", IN("empty", "empty"), "e2"), "axis", 1);
  mb_node(mb, "Add", "use", IN("x", "e2"), "y");
  mb_output(mb, "y");
  expect_refused("Concat of huge empties", mb);

  /* A Constant node holding an empty tensor with 2^62-sized axes, then its Shape filled. */
  mb = mb_new(13);
  mb_image_input(mb, "x", 1, 4, 4);
  Onnx__TensorProto *t =
      mb_tensor(mb, "k", T_FLOAT, 3, (const int64_t[]){INT64_C(1) << 62, 0, INT64_C(1) << 62});
  mb_attr_tensor(mb, mb_node(mb, "Constant", "konst", IN(NULL), "k"), "value", t);
  mb_node(mb, "Shape", "shape_of_empty", IN("k"), "s");
  mb_node(mb, "ConstantOfShape", "fill", IN("s"), "big");
  mb_node(mb, "Add", "use", IN("x", "big"), "y");
  mb_output(mb, "y");
  expect_refused("ConstantOfShape of 2^124", mb);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep what was printed if a case crashes */
  test_rng rng = test_rng_seeded("test_import_errors");
  test_tiny_model_runs();
  test_files();
  test_unsupported_ops();
  test_conv_errors();
  test_absurd_dimensions();
  test_initializer_errors();
  test_graph_structure();
  test_input_errors();
  test_external_data();
  test_reshape_batch();
  test_softmax_concat_pad();
  test_metadata();
  test_bound_inputs();
  test_malformed_nodes();
  test_truncated_fixture();
  test_bit_flipped_fixture(&rng);
  test_alias_of_constant();
  test_absent_first_input();
  test_folding_overflow();
  test_tensor_array_growth();
  test_long_names();
  test_deep_nesting();
  rmdir(test_tmpdir());
  return test_report("test_import_errors");
}
