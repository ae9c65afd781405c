/* hawq: trained fp32 CNNs (ONNX) to integer-only networks, and the engines that run them.
 *
 * This is the only public header. Handles are opaque; every call that can fail returns a
 * hawq_status and fills a caller-owned hawq_error with one line naming the file, node or field
 * and what was expected. The library never prints and never exits.
 *
 *   hawq_error err;
 *   hawq_graph *g = NULL;
 *   if (hawq_graph_load_onnx("model.onnx", NULL, &g, &err) != HAWQ_OK) {
 *     fprintf(stderr, "%s\n", err.msg);   // e.g. "model.onnx: node 'Conv_12' (Conv, opset 13):
 *     return 1;                          //  attribute 'group' is 0, expected >= 1"
 *   }
 *   hawq_float_plan *p = NULL;
 *   hawq_float_plan_create(g, &(hawq_float_plan_options){.batch = 8, .threads = 2}, &p, &err);
 *   hawq_float_plan_run(p, (const float *const[]){images_nhwc}, &err);
 *   const float *logits = hawq_float_plan_output(p, 0);
 *   hawq_float_plan_destroy(p);
 *   hawq_graph_destroy(g);
 *
 * Layout: a rank-4 tensor (logical ONNX shape N,C,H,W) is stored NHWC; every other rank is
 * stored in its logical row-major order. hawq_tensor_to_physical / hawq_tensor_to_logical
 * convert.
 */
#ifndef HAWQ_HAWQ_H
#define HAWQ_HAWQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hawq_status {
  HAWQ_OK = 0,
  HAWQ_ERR_INVALID_ARG, /* a bad argument or option from the caller */
  HAWQ_ERR_UNSUPPORTED, /* valid input that hawq does not handle (op, attribute, dtype) */
  HAWQ_ERR_PARSE,       /* malformed or inconsistent file contents */
  HAWQ_ERR_IO,          /* a file could not be opened, read or written */
  HAWQ_ERR_NO_MEMORY,   /* an allocation failed */
  HAWQ_ERR_INTERNAL,    /* a bug in hawq */
} hawq_status;

typedef struct hawq_error {
  hawq_status status;
  char msg[512]; /* one line, no trailing newline */
} hawq_error;

const char *hawq_status_string(hawq_status s);

/* ---- Graphs: a float network in hawq's NHWC IR, imported from ONNX ---- */

typedef struct hawq_graph hawq_graph;

#define HAWQ_MAX_RANK 6

typedef struct hawq_import_options {
  /* Dimension 0 of the graph inputs is the batch, chosen when a plan is made (default). When
   * false, every shape is exactly as the model declares it. */
  bool fixed_shapes;
  /* Bind graph inputs to constant values (e.g. a Reshape's shape input), by name. The data is
   * logical row-major, copied during import. */
  size_t n_bound;
  const struct hawq_bound_input {
    const char *name;
    int onnx_dtype; /* 1 = float, 7 = int64 */
    int rank;
    const int64_t *dims;
    const void *data;
  } * bound;
} hawq_import_options;

/* opt may be NULL (defaults). */
hawq_status hawq_graph_load_onnx(const char *path, const hawq_import_options *opt, hawq_graph **out,
                                 hawq_error *err);
/* name is used in messages in place of a file name (NULL: "<buffer>"). */
hawq_status hawq_graph_load_onnx_buffer(const void *data, size_t size, const char *name,
                                        const hawq_import_options *opt, hawq_graph **out,
                                        hawq_error *err);
void hawq_graph_destroy(hawq_graph *g); /* NULL is fine */

typedef struct hawq_tensor_info {
  const char *name;
  int rank;
  int64_t dims[HAWQ_MAX_RANK]; /* logical ONNX order; dims[0] is 1 per sample when batched */
  bool batched;                /* dims[0] is the plan's batch size */
} hawq_tensor_info;

size_t hawq_graph_num_inputs(const hawq_graph *g);
size_t hawq_graph_num_outputs(const hawq_graph *g);
hawq_tensor_info hawq_graph_input(const hawq_graph *g, size_t i);
hawq_tensor_info hawq_graph_output(const hawq_graph *g, size_t i);

/* Input preprocessing read from the model's metadata_props (hawq.input.pixel_scale,
 * hawq.input.mean, hawq.input.std): x = (pixel * pixel_scale - mean[c]) / std[c]. A model
 * without them gets scale 1/255, mean 0, std 1 and has_metadata false. */
#define HAWQ_MAX_CHANNELS 16
typedef struct hawq_preprocess {
  float pixel_scale;
  int channels; /* entries in mean/std: 1 (all channels) or the input's channel count */
  float mean[HAWQ_MAX_CHANNELS];
  float std[HAWQ_MAX_CHANNELS];
  bool has_metadata;
} hawq_preprocess;
hawq_preprocess hawq_graph_preprocess(const hawq_graph *g);

/* Writes g as an ONNX model (opset 13, any batch) with its preprocessing in metadata_props,
 * atomically. Fails with one line naming the node if a construct cannot be written. */
hawq_status hawq_graph_save_onnx(const hawq_graph *g, const char *path, hawq_error *err);

/* ---- Float inference ---- */

typedef struct hawq_float_plan hawq_float_plan;

typedef struct hawq_float_plan_options {
  int batch;     /* samples per run; >= 1 */
  int threads;   /* worker threads; 0 means 1 */
  bool keep_all; /* keep every intermediate tensor (no buffer reuse), for inspection */
  bool profile;  /* time every node (hawq_float_plan_node_seconds) */
} hawq_float_plan_options;

hawq_status hawq_float_plan_create(const hawq_graph *g, const hawq_float_plan_options *opt,
                                   hawq_float_plan **out, hawq_error *err);
/* inputs[i]: graph input i in physical layout (NHWC for rank 4), batch samples. */
hawq_status hawq_float_plan_run(hawq_float_plan *p, const float *const *inputs, hawq_error *err);
/* Physical layout, valid until the next run or destroy. */
const float *hawq_float_plan_output(const hawq_float_plan *p, size_t i);
/* Elements of output i for the plan's batch. */
size_t hawq_float_plan_output_size(const hawq_float_plan *p, size_t i);
/* Bytes of activation memory the plan holds (after buffer reuse). */
size_t hawq_float_plan_activation_bytes(const hawq_float_plan *p);
void hawq_float_plan_destroy(hawq_float_plan *p);
/* With options.profile: seconds spent in graph node `node` over all runs so far (0 for nodes
 * fused into an earlier one, whose time is counted there). */
double hawq_float_plan_node_seconds(const hawq_float_plan *p, size_t node);

/* ---- Integer models (.hqm): the integer-only program made by `hawq calibrate` ----
 *
 * Classifying is integer-only from raw pixels to class index; the caller owns the workspace, so
 * one loaded model serves any number of threads, each with its own workspace:
 *
 *   hawq_qmodel *m = NULL;
 *   if (hawq_qmodel_load("model.hqm", &m, &err) != HAWQ_OK) { fprintf(stderr, "%s\n", err.msg); ...
 * } hawq_qmodel_shape s = hawq_qmodel_get_shape(m); size_t ws_size = hawq_qmodel_workspace_size(m,
 * 1); void *ws = aligned_alloc(64, ws_size);                   // a multiple of 64 bytes int32_t
 * cls; hawq_qmodel_classify(m, pixels, 1, ws, ws_size, &cls, NULL, &err);   // pixels: h*w*c uint8
 */
typedef struct hawq_qmodel hawq_qmodel;

/* Instruction-set levels of the integer kernels, lowest first. The scalar level is the
 * reference and runs anywhere; AVX2 needs AVX2; AVX512VNNI needs AVX-512 F, BW, VL and VNNI.
 * Every level computes the same bits. */
typedef enum hawq_isa {
  HAWQ_ISA_SCALAR,
  HAWQ_ISA_AVX2,
  HAWQ_ISA_AVX512VNNI,
  HAWQ_ISA_COUNT
} hawq_isa;
/* The highest level this CPU (and its operating system) supports. */
hawq_isa hawq_isa_best(void);
/* "scalar", "avx2", "avx512vnni". */
const char *hawq_isa_name(hawq_isa isa);
/* The level named s; HAWQ_ISA_COUNT when s names none. */
hawq_isa hawq_isa_parse(const char *s);

hawq_status hawq_qmodel_load(const char *path, hawq_qmodel **out, hawq_error *err);
/* name is used in messages in place of a file name (NULL: "<buffer>"). */
hawq_status hawq_qmodel_load_buffer(const void *data, size_t size, const char *name,
                                    hawq_qmodel **out, hawq_error *err);
/* Writes atomically (temporary file, then rename). */
hawq_status hawq_qmodel_save(const hawq_qmodel *m, const char *path, hawq_error *err);
void hawq_qmodel_destroy(hawq_qmodel *m); /* NULL is fine */

typedef struct hawq_qmodel_shape {
  int64_t height, width, channels; /* the uint8 input image, NHWC */
  int64_t classes;                 /* int32 logits per image */
} hawq_qmodel_shape;
hawq_qmodel_shape hawq_qmodel_get_shape(const hawq_qmodel *m);

/* Bytes of workspace hawq_qmodel_classify needs for `batch` images. */
size_t hawq_qmodel_workspace_size(const hawq_qmodel *m, int batch);
/* Classifies `batch` images (pixels: batch x height x width x channels uint8, NHWC) on the scalar
 * reference runtime, which keeps every intermediate tensor (hawq_qrunner below is the fast path
 * and gives the same results). classes
 * (batch entries) gets each image's class (the first largest logit), logits (batch x classes,
 * may be NULL) the integer logits, all at one common scale. workspace: 64-byte aligned, at
 * least hawq_qmodel_workspace_size(m, batch) bytes. */
hawq_status hawq_qmodel_classify(const hawq_qmodel *m, const uint8_t *pixels, int batch,
                                 void *workspace, size_t workspace_size, int32_t *classes,
                                 int32_t *logits, hawq_error *err);
/* The real value of one integer logit unit (logit = q * scale): float only here, at the boundary.
 */
double hawq_qmodel_logit_scale(const hawq_qmodel *m);

/* A runner: the model prepared once for fast repeated classification at one instruction-set
 * level (weights packed for its kernels, a static activation memory plan). Its results equal
 * hawq_qmodel_classify's bit for bit at every level and thread count. It borrows the model,
 * which must outlive it, and is read-only after creation: threads may share one runner, each
 * with its own workspace.
 *
 *   hawq_qrunner_options o = {.isa = HAWQ_ISA_COUNT, .threads = 2, .max_batch = 1};
 *   hawq_qrunner *r; hawq_qrunner_create(m, &o, &r, &err);
 *   size_t n = hawq_qrunner_workspace_size(r);  void *ws = aligned_alloc(64, (n + 63) & ~63);
 *   hawq_qrunner_classify(r, pixels, 1, ws, n, &cls, NULL, &err);
 */
typedef struct hawq_qrunner hawq_qrunner;
typedef struct hawq_qrunner_options {
  hawq_isa isa;  /* HAWQ_ISA_COUNT: the best level this CPU has */
  int threads;   /* threads inside each run (0: 1) */
  int max_batch; /* the largest batch a run takes (0: 1) */
} hawq_qrunner_options;
/* Fails when the CPU lacks the level asked for, or out of memory. o may be NULL (defaults). */
hawq_status hawq_qrunner_create(const hawq_qmodel *m, const hawq_qrunner_options *o,
                                hawq_qrunner **out, hawq_error *err);
void hawq_qrunner_destroy(hawq_qrunner *r); /* NULL is fine */
/* The level the runner uses. */
hawq_isa hawq_qrunner_isa(const hawq_qrunner *r);
/* Bytes of workspace one run needs (any batch up to max_batch). */
size_t hawq_qrunner_workspace_size(const hawq_qrunner *r);
/* As hawq_qmodel_classify, with batch <= max_batch. */
hawq_status hawq_qrunner_classify(const hawq_qrunner *r, const uint8_t *pixels, int batch,
                                  void *workspace, size_t workspace_size, int32_t *classes,
                                  int32_t *logits, hawq_error *err);

/* Layout conversion for a tensor of the given logical shape: identity unless rank is 4,
 * where physical is NHWC. src and dst must not overlap. */
void hawq_tensor_to_physical(const float *logical, float *physical, int rank, const int64_t *dims);
void hawq_tensor_to_logical(const float *physical, float *logical, int rank, const int64_t *dims);

#ifdef __cplusplus
}
#endif
#endif /* HAWQ_HAWQ_H */
