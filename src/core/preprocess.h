/* Input preprocessing: the per-channel affine map from raw pixels to the network's input, kept
 * in ONNX metadata_props under these keys (values are decimal numbers, comma-separated per
 * channel):
 *   hawq.input.pixel_scale   e.g. "0.00392156862745098" (1/255)
 *   hawq.input.mean          e.g. "0.2860" or "0.485,0.456,0.406"
 *   hawq.input.std           e.g. "0.3530"
 */
#ifndef HAWQ_CORE_PREPROCESS_H
#define HAWQ_CORE_PREPROCESS_H

#include "hawq/hawq.h"

#define HAWQ_META_PIXEL_SCALE "hawq.input.pixel_scale"
#define HAWQ_META_MEAN "hawq.input.mean"
#define HAWQ_META_STD "hawq.input.std"

/* Defaults: scale 1/255, one channel entry with mean 0 and std 1. */
hawq_preprocess hawq_preprocess_default(void);

/* Parses "a,b,c" into out[0..max); *count gets the number of values. what names the source in
 * messages (e.g. "--mean" or "model.onnx: metadata 'hawq.input.mean'"). Values must be finite;
 * positive when require_positive. */
hawq_status hawq_parse_float_list(const char *s, const char *what, bool require_positive,
                                  float *out, int max, int *count, hawq_error *err);

/* Checks pp against an input with `channels` channels: mean and std have 1 or `channels`
 * entries. */
hawq_status hawq_preprocess_check(const hawq_preprocess *pp, int channels, const char *what,
                                  hawq_error *err);

#endif
