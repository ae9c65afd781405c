/* Writing ONNX files. For now: a model's input preprocessing in metadata_props (the training
 * issue adds whole-graph export). */
#ifndef HAWQ_ONNX_EXPORT_H
#define HAWQ_ONNX_EXPORT_H

#include "hawq/hawq.h"

/* Copies the ONNX model at in_path to out_path (which may be the same path) with the
 * hawq.input.* metadata_props set from pp, every other field unchanged. The output is written
 * atomically. */
hawq_status hawq_onnx_write_preprocess(const char *in_path, const char *out_path,
                                       const hawq_preprocess *pp, hawq_error *err);

#endif
