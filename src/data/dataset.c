/* Labelled image datasets: a pair of IDX files (images, labels) for a split, found by name in a
 * directory, validated against each other, and turned into normalized float batches. */
#include "data/dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "data/idx.h"

#define DATASET_PATH_MAX 4096
#define FASHION_MNIST_NAME "fashion-mnist"
#define FASHION_MNIST_HINT " (apt-get install dataset-fashion-mnist)"

static hawq_status join_path(char *out, const char *dir, const char *file, const char *suffix,
                             hawq_error *err) {
  size_t dir_len = strlen(dir);
  while (dir_len > 1 && dir[dir_len - 1] == '/') dir_len--; /* "dir/" + "/file" reads badly */
  int n = snprintf(out, DATASET_PATH_MAX, "%.*s/%s%s", (int)dir_len, dir, file, suffix);
  if (n < 0 || n >= DATASET_PATH_MAX) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: path longer than %d bytes", dir,
                     DATASET_PATH_MAX - 1);
  }
  return HAWQ_OK;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* "<dir>/<file>.gz" if it exists, else "<dir>/<file>", else an error naming both. */
static hawq_status find_file(const char *dir, const char *file, bool is_fashion_mnist, char *path,
                             hawq_error *err) {
  hawq_status s = join_path(path, dir, file, ".gz", err);
  if (s != HAWQ_OK || exists(path)) return s;
  s = join_path(path, dir, file, "", err);
  if (s != HAWQ_OK || exists(path)) return s;
  if (!is_fashion_mnist && !exists(dir)) {
    return hawq_fail(err, HAWQ_ERR_IO,
                     "%s: no such directory, expected '" FASHION_MNIST_NAME
                     "' or a directory holding %s.gz or %s",
                     dir, file, file);
  }
  return hawq_fail(err, HAWQ_ERR_IO, "%s: neither %s.gz nor %s is in this directory%s", dir, file,
                   file, is_fashion_mnist ? FASHION_MNIST_HINT : "");
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Checks the two files against each other and moves their data into a new dataset. */
static hawq_status build_dataset(hawq_idx *images, const char *images_path, hawq_idx *labels,
                                 const char *labels_path, hawq_dataset **out, hawq_error *err) {
  if (images->rank != 3 && images->rank != 4) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: images have %d dimensions, expected 3 (count, height, width) or 4 "
                     "(count, height, width, channels)",
                     images_path, images->rank);
  }
  int64_t height = images->dims[1], width = images->dims[2];
  int64_t channels = images->rank == 4 ? images->dims[3] : 1;
  if (height > INT_MAX || width > INT_MAX) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: images are %" PRId64 "x%" PRId64 ", expected sides up to %d", images_path,
                     height, width, INT_MAX);
  }
  if (channels > HAWQ_MAX_CHANNELS) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: images have %" PRId64 " channels, expected at most %d", images_path,
                     channels, HAWQ_MAX_CHANNELS);
  }
  if (labels->rank != 1) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: labels have %d dimensions, expected 1", labels_path,
                     labels->rank);
  }
  if (labels->dims[0] != images->dims[0]) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: %" PRId64 " labels but %" PRId64 " images in %s",
                     labels_path, labels->dims[0], images->dims[0], base_name(images_path));
  }
  int max_label = 0;
  for (size_t i = 0; i < labels->size; i++) {
    if (labels->data[i] > max_label) max_label = labels->data[i];
  }
  /* Labels are bytes, so this holds while HAWQ_DATASET_MAX_CLASSES is 256. */
  if (max_label >= HAWQ_DATASET_MAX_CLASSES) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: label %d, expected < %d", labels_path, max_label,
                     HAWQ_DATASET_MAX_CLASSES);
  }
  hawq_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", images_path);
  ds->count = images->dims[0];
  ds->height = (int)height;
  ds->width = (int)width;
  ds->channels = (int)channels;
  ds->num_classes = max_label + 1;
  ds->images = images->data;
  ds->labels = labels->data;
  images->data = NULL;
  labels->data = NULL;
  *out = ds;
  return HAWQ_OK;
}

hawq_status hawq_dataset_load(const char *spec, const char *split, hawq_dataset **out,
                              hawq_error *err) {
  if (out) *out = NULL;
  if (!spec || !split || !out) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_dataset_load: spec, split and out are "
                     "required");
  }
  const char *prefix = NULL;
  if (strcmp(split, "test") == 0) {
    prefix = "t10k";
  } else if (strcmp(split, "train") == 0) {
    prefix = "train";
  } else {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: split '%s', expected 'test' or 'train'", spec,
                     split);
  }
  bool is_fashion_mnist = strcmp(spec, FASHION_MNIST_NAME) == 0;
  const char *dir = is_fashion_mnist ? HAWQ_FASHION_MNIST_DIR : spec;

  char images_file[64], labels_file[64];
  snprintf(images_file, sizeof images_file, "%s-images-idx3-ubyte", prefix);
  snprintf(labels_file, sizeof labels_file, "%s-labels-idx1-ubyte", prefix);
  char *images_path = malloc(DATASET_PATH_MAX);
  char *labels_path = malloc(DATASET_PATH_MAX);
  hawq_idx images = {0}, labels = {0};
  hawq_status s = HAWQ_OK;
  if (!images_path || !labels_path)
    s = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", dir);
  if (s == HAWQ_OK) s = find_file(dir, images_file, is_fashion_mnist, images_path, err);
  if (s == HAWQ_OK) s = find_file(dir, labels_file, is_fashion_mnist, labels_path, err);
  if (s == HAWQ_OK) s = hawq_idx_read_file(images_path, &images, err);
  if (s == HAWQ_OK) s = hawq_idx_read_file(labels_path, &labels, err);
  if (s == HAWQ_OK) s = build_dataset(&images, images_path, &labels, labels_path, out, err);
  if (s == HAWQ_OK) {
    if (is_fashion_mnist) {
      snprintf((*out)->source, sizeof(*out)->source, "%s %s split (%s)", spec, split, dir);
    } else {
      snprintf((*out)->source, sizeof(*out)->source, "%s split of %s", split, dir);
    }
  }
  hawq_idx_free(&images);
  hawq_idx_free(&labels);
  free(images_path);
  free(labels_path);
  return s;
}

void hawq_dataset_destroy(hawq_dataset *ds) {
  if (!ds) return;
  free(ds->images);
  free(ds->labels);
  free(ds);
}

void hawq_dataset_fill_batch(const hawq_dataset *ds, int64_t first, int64_t count,
                             const hawq_preprocess *pp, float *out) {
  /* No status to return: a range outside the dataset writes nothing rather than reading past
   * it. */
  if (!ds || !out || first < 0 || count < 0 || first > ds->count - count) return;
  hawq_preprocess defaults = {.pixel_scale = 1.0f / 255.0f, .channels = 1, .std = {1.0f}};
  if (!pp) pp = &defaults;
  int channels = ds->channels;
  /* Every pixel value maps to one float per channel: a table is exact and cheap. */
  float table[HAWQ_MAX_CHANNELS][256];
  for (int c = 0; c < channels; c++) {
    int norm_c = pp->channels == 1 ? 0 : c;
    for (int v = 0; v < 256; v++) {
      table[c][v] = ((float)v * pp->pixel_scale - pp->mean[norm_c]) / pp->std[norm_c];
    }
  }
  size_t per_image = (size_t)ds->height * (size_t)ds->width * (size_t)channels;
  const uint8_t *pixels = ds->images + (size_t)first * per_image;
  size_t pixel_count = (size_t)count * (size_t)ds->height * (size_t)ds->width;
  for (size_t p = 0; p < pixel_count; p++) {
    for (int c = 0; c < channels; c++) {
      size_t k = p * (size_t)channels + (size_t)c;
      out[k] = table[c][pixels[k]];
    }
  }
}
