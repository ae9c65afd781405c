/* Calibration: the range of every float tensor over a set of images, from which lowering takes
 * each activation's scale (ARCHITECTURE section 3, "Activations").
 *
 * Each batch gives a per-tensor (min, max): the batch's extremes, or with a percentile p the
 * batch's (100 - p)-th and p-th percentiles. The first batch sets the range; later ones move it
 * by an exponential moving average, range = momentum * range + (1 - momentum) * batch, as the
 * original HAWQ code does (its --act-range-momentum). momentum 0 instead keeps the running
 * extremes (min of mins, max of maxes). */
#ifndef HAWQ_QUANT_CALIB_H
#define HAWQ_QUANT_CALIB_H

#include <stdbool.h>
#include <stdint.h>

#include "core/graph.h"
#include "data/dataset.h"

typedef struct hawq_calib_options {
  int64_t images;    /* the first `images` images of the dataset, in file order (>= 1) */
  int batch;         /* images per forward pass (>= 1) */
  double momentum;   /* [0, 1): EMA weight of the old range; 0 = running extremes */
  double percentile; /* 0: batch min/max; else in (50, 100]: the batch percentiles */
  int threads;
} hawq_calib_options;

/* Defaults: 1024 images, batch 64, momentum 0.99, min/max, 1 thread. */
hawq_calib_options hawq_calib_defaults(void);

typedef struct hawq_calib_range {
  double min, max;
  bool seen; /* computed by some node (false for parameters) */
} hawq_calib_range;

typedef void (*hawq_calib_progress)(void *ctx, int64_t done, int64_t total);

/* The largest batch, at most `requested`, whose intermediate tensors (calibration keeps them all)
 * fit in max_bytes; at least 1. */
int hawq_calib_batch_limit(const hawq_graph *g, int requested, size_t max_bytes);

/* Runs g (one NCHW image input) on the dataset's first images, preprocessed with pp, and fills
 * ranges[t] for every tensor t of g (g->n_tensors entries). progress may be NULL. */
hawq_status hawq_calibrate(const hawq_graph *g, const hawq_dataset *ds, const hawq_preprocess *pp,
                           const hawq_calib_options *opt, hawq_calib_range *ranges,
                           hawq_calib_progress progress, void *ctx, hawq_error *err);

/* The calibration settings as a JSON object string (malloc'd), for the model's provenance. */
char *hawq_calib_json(const hawq_calib_options *opt, const char *data_source);

#endif
