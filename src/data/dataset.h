/* Labelled image datasets for evaluation, calibration and training.
 *
 * A dataset spec is either the name "fashion-mnist" (the Debian package dataset-fashion-mnist,
 * /usr/share/datasets/fashion-mnist/) or a directory holding files with the same names:
 *   train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
 *   t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
 * The split is "test" (t10k-*) or "train" (train-*). Images are stored as uint8 NHWC; IDX image
 * files of rank 3 (count, H, W) have one channel, rank 4 (count, H, W, C) have C. Labels must
 * be rank 1, one per image, each < HAWQ_DATASET_MAX_CLASSES. */
#ifndef HAWQ_DATA_DATASET_H
#define HAWQ_DATA_DATASET_H

#include <stdint.h>

#include "hawq/hawq.h"

#define HAWQ_DATASET_MAX_CLASSES 256
#define HAWQ_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct hawq_dataset {
  int64_t count;
  int height, width, channels;
  uint8_t *images;  /* count * height * width * channels, NHWC */
  uint8_t *labels;  /* count */
  int num_classes;  /* 1 + the largest label */
  char source[512]; /* e.g. "fashion-mnist test split (/usr/share/datasets/fashion-mnist)" */
} hawq_dataset;

/* spec: "fashion-mnist" or a directory; split: "test" or "train". */
hawq_status hawq_dataset_load(const char *spec, const char *split, hawq_dataset **out,
                              hawq_error *err);
void hawq_dataset_destroy(hawq_dataset *ds); /* NULL is fine */

/* Images [first, first+count) as float NHWC, normalized: (pixel * pixel_scale - mean[c]) /
 * std[c] (one mean/std entry applies to every channel). */
void hawq_dataset_fill_batch(const hawq_dataset *ds, int64_t first, int64_t count,
                             const hawq_preprocess *pp, float *out);

#endif
