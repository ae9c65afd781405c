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

/* "a,b,c": each value the shortest decimal that hawq_parse_float_list reads back as the same
 * float (the writers of hawq.input.* metadata). */
void hawq_format_float_list(const float *v, int n, char *buf, size_t size);

/* Replaces pp's mean and/or std (n = 0 keeps the current values). One value applies to every
 * channel; two lists longer than one must have the same length. what names the source. */
hawq_status hawq_preprocess_set_mean_std(hawq_preprocess *pp, const float *mean, int n_mean,
                                         const float *std, int n_std, const char *what,
                                         hawq_error *err);

/* The CLI's overrides: each of the strings may be NULL (keep), else a list as in
 * hawq_parse_float_list, named --mean, --std and --pixel-scale in messages. */
hawq_status hawq_preprocess_override(hawq_preprocess *pp, const char *mean, const char *std,
                                     const char *pixel_scale, hawq_error *err);

/* Checks pp against an input with `channels` channels: mean and std have 1 or `channels`
 * entries. */
hawq_status hawq_preprocess_check(const hawq_preprocess *pp, int channels, const char *what,
                                  hawq_error *err);

#endif
