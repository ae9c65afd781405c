/* Tests for datasets: Fashion-MNIST (when installed) checked against values read here with
 * zlib directly, small datasets written to a temp dir, the errors for mismatched or missing
 * files, and fill_batch against the normalization formula computed by hand. */
#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/status.h"
#include "data/dataset.h"
#include "test_util.h"

/* Removes the temp dir and what the test put in it (files and one level of dirs). */
static void remove_tree(const char *path, int depth) {
  DIR *dir = opendir(path);
  if (dir) {
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char child[1024];
      snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      struct stat st;
      if (depth > 0 && stat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
        remove_tree(child, depth - 1);
      } else {
        remove(child);
      }
    }
    closedir(dir);
  }
  remove(path);
}

/* Creates the directory <temp dir>/<name>; its path goes to out. */
static void make_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", test_tmpdir(), name);
  int made = mkdir(out, 0700);
  REQUIRE(made == 0, "mkdir %s", out);
}

/* Writes an IDX file (gzipped when the name ends in .gz) with the given header and data. */
static void write_idx(const char *dir, const char *file, int rank, const uint32_t *dims,
                      const uint8_t *data, size_t data_size) {
  size_t size = 4 + 4 * (size_t)rank + data_size;
  uint8_t *bytes = malloc(size);
  REQUIRE(bytes != NULL, "malloc");
  bytes[0] = bytes[1] = 0;
  bytes[2] = 0x08;
  bytes[3] = (uint8_t)rank;
  for (int i = 0; i < rank; i++) {
    for (int b = 0; b < 4; b++) bytes[4 + 4 * i + b] = (uint8_t)(dims[i] >> (24 - 8 * b));
  }
  memcpy(bytes + 4 + 4 * rank, data, data_size);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  size_t len = strlen(file);
  int ok;
  if (len > 3 && strcmp(file + len - 3, ".gz") == 0) {
    gzFile gz = gzopen(path, "wb");
    int written = gz ? gzwrite(gz, bytes, (unsigned)size) : 0;
    ok = gz && written == (int)size && gzclose(gz) == Z_OK;
  } else {
    ok = test_write_file(path, bytes, size) == 0;
  }
  free(bytes);
  REQUIRE(ok, "write %s", path);
}

static void expect_load_fail(const char *spec, const char *split, hawq_status status,
                             const char *word1, const char *word2) {
  static hawq_dataset sentinel;
  hawq_dataset *ds = &sentinel; /* the loader must set it to NULL */
  hawq_error err = {0};
  hawq_status s = hawq_dataset_load(spec, split, &ds, &err);
  CHECK(s == status, "%s %s: status %d, expected %d (%s)", spec, split, s, status, err.msg);
  CHECK(ds == NULL, "%s %s: *out not NULL after a failure", spec, split);
  CHECK(strstr(err.msg, word1) != NULL, "%s: message lacks '%s': %s", spec, word1, err.msg);
  CHECK(!word2 || strstr(err.msg, word2) != NULL, "%s: message lacks '%s': %s", spec, word2,
        err.msg);
  CHECK(strchr(err.msg, '\n') == NULL, "%s: message has a newline", spec);
  if (s == HAWQ_OK) hawq_dataset_destroy(ds);
}

/* Reads `count` bytes after `skip` bytes of a gzip file with zlib's gzread. */
static int gz_read_bytes(const char *path, size_t skip, uint8_t *out, size_t count) {
  gzFile gz = gzopen(path, "rb");
  if (!gz) return -1;
  uint8_t header[16];
  int ok = skip <= sizeof header && gzread(gz, header, (unsigned)skip) == (int)skip &&
           gzread(gz, out, (unsigned)count) == (int)count;
  gzclose(gz);
  return ok ? 0 : -1;
}

static void test_fashion_mnist(void) {
  const char *images_gz = HAWQ_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
  const char *labels_gz = HAWQ_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz";
  if (access(images_gz, R_OK) != 0 || access(labels_gz, R_OK) != 0) {
    printf(
        "test_dataset: skipping the Fashion-MNIST checks: %s is not installed "
        "(apt-get install dataset-fashion-mnist)\n",
        images_gz);
    return;
  }
  hawq_dataset *ds = NULL;
  hawq_error err = {0};
  CHECK(hawq_dataset_load("fashion-mnist", "test", &ds, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(ds != NULL, "no dataset");
  CHECK(ds->count == 10000, "count %" PRId64, ds->count);
  CHECK(ds->height == 28 && ds->width == 28 && ds->channels == 1, "%dx%dx%d", ds->height, ds->width,
        ds->channels);
  CHECK(ds->num_classes == 10, "num_classes %d", ds->num_classes);
  CHECK(ds->labels[0] == 9, "first test label %d, expected 9 (ankle boot)", ds->labels[0]);
  CHECK(strcmp(ds->source, "fashion-mnist test split (" HAWQ_FASHION_MNIST_DIR ")") == 0,
        "source '%s'", ds->source);

  /* The same bytes through zlib's own reader: the first image and the first 1000 labels. */
  uint8_t first_image[784], first_labels[1000];
  CHECK(gz_read_bytes(images_gz, 16, first_image, sizeof first_image) == 0, "gzread images");
  CHECK(gz_read_bytes(labels_gz, 8, first_labels, sizeof first_labels) == 0, "gzread labels");
  uint64_t expected_sum = 0, sum = 0;
  for (int i = 0; i < 784; i++) {
    expected_sum += first_image[i];
    sum += ds->images[i];
  }
  CHECK(expected_sum > 0 && sum == expected_sum,
        "first image pixel sum %" PRIu64 ", zlib says %" PRIu64, sum, expected_sum);
  CHECK(memcmp(ds->images, first_image, sizeof first_image) == 0, "first image differs");
  CHECK(memcmp(ds->labels, first_labels, sizeof first_labels) == 0, "first labels differ");
  /* The last image: the end of the buffer is where an off-by-one would show. */
  uint64_t last_sum = 0;
  for (int i = 0; i < 784; i++) last_sum += ds->images[(size_t)9999 * 784 + (size_t)i];
  CHECK(last_sum > 0, "last image is blank");
  int per_class[10] = {0};
  for (int64_t i = 0; i < ds->count; i++) per_class[ds->labels[i] % 10]++;
  for (int c = 0; c < 10; c++) CHECK(per_class[c] == 1000, "test class %d: %d", c, per_class[c]);
  hawq_dataset_destroy(ds);

  CHECK(hawq_dataset_load("fashion-mnist", "train", &ds, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(ds != NULL, "no train dataset");
  CHECK(ds->count == 60000 && ds->height == 28 && ds->width == 28 && ds->num_classes == 10,
        "train: count %" PRId64 ", %dx%d, %d classes", ds->count, ds->height, ds->width,
        ds->num_classes);
  int train_per_class[10] = {0};
  for (int64_t i = 0; i < ds->count; i++) train_per_class[ds->labels[i] % 10]++;
  for (int c = 0; c < 10; c++) {
    CHECK(train_per_class[c] == 6000, "train class %d: %d", c, train_per_class[c]);
  }
  hawq_dataset_destroy(ds);
}

/* x = (pixel * scale - mean[c']) / std[c'], with the NHWC index, straight from the definition. */
static void check_batch(const hawq_dataset *ds, int64_t first, int64_t count,
                        const hawq_preprocess *pp) {
  int h = ds->height, w = ds->width, ch = ds->channels;
  size_t n = (size_t)(count * h * w * ch);
  float *out = malloc((n + 1) * sizeof *out);
  REQUIRE(out != NULL, "malloc");
  out[n] = 12345.0f; /* must stay untouched */
  hawq_dataset_fill_batch(ds, first, count, pp, out);
  int wrong = 0;
  for (int64_t i = 0; i < count; i++) {
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        for (int c = 0; c < ch; c++) {
          size_t k = (size_t)(((i * h + y) * w + x) * ch + c);
          uint8_t pixel = ds->images[(size_t)((((first + i) * h + y) * w + x) * ch + c)];
          int pc = pp->channels == 1 ? 0 : c;
          float expected = ((float)pixel * pp->pixel_scale - pp->mean[pc]) / pp->std[pc];
          if (fabsf(out[k] - expected) > 1e-6f * (1.0f + fabsf(expected))) wrong++;
        }
      }
    }
  }
  CHECK(wrong == 0, "fill_batch(first %" PRId64 ", count %" PRId64 ", %d norm channels): %d wrong",
        first, count, pp->channels, wrong);
  CHECK(out[n] == 12345.0f, "fill_batch wrote past the batch");
  free(out);
}

static void test_directory_datasets(test_rng *rng) {
  char dir1[512], dir2[512], dir[512];

  /* Test split, raw files, rank-3 images. */
  make_dir(dir1, sizeof dir1, "ds-raw");
  uint8_t images1[5 * 4 * 3], labels1[5] = {0, 3, 1, 3, 2};
  for (size_t i = 0; i < sizeof images1; i++) images1[i] = (uint8_t)test_rng_next(rng);
  write_idx(dir1, "t10k-images-idx3-ubyte", 3, (uint32_t[]){5, 4, 3}, images1, sizeof images1);
  write_idx(dir1, "t10k-labels-idx1-ubyte", 1, (uint32_t[]){5}, labels1, sizeof labels1);
  hawq_dataset *ds = NULL;
  hawq_error err = {0};
  CHECK(hawq_dataset_load(dir1, "test", &ds, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(ds != NULL, "no dataset from %s", dir1);
  CHECK(ds->count == 5 && ds->height == 4 && ds->width == 3 && ds->channels == 1,
        "raw dataset shape %" PRId64 "x%dx%dx%d", ds->count, ds->height, ds->width, ds->channels);
  CHECK(ds->num_classes == 4, "num_classes %d, expected 4", ds->num_classes);
  CHECK(memcmp(ds->images, images1, sizeof images1) == 0, "images differ");
  CHECK(memcmp(ds->labels, labels1, sizeof labels1) == 0, "labels differ");
  CHECK(strstr(ds->source, dir1) && strstr(ds->source, "test"), "source '%s'", ds->source);
  hawq_preprocess mono = {
      .pixel_scale = 1.0f / 255.0f, .channels = 1, .mean = {0.2860f}, .std = {0.3530f}};
  check_batch(ds, 0, 5, &mono);
  check_batch(ds, 3, 2, &mono);
  hawq_dataset_destroy(ds);

  /* Train split, gzipped, rank-4 images with 3 channels; a raw file with other contents next to
   * the .gz must lose to it. */
  make_dir(dir2, sizeof dir2, "ds-gz");
  uint8_t images2[3 * 2 * 2 * 3], labels2[3] = {7, 0, 7}, other[3] = {1, 1, 1};
  for (size_t i = 0; i < sizeof images2; i++) images2[i] = (uint8_t)test_rng_next(rng);
  write_idx(dir2, "train-images-idx3-ubyte.gz", 4, (uint32_t[]){3, 2, 2, 3}, images2,
            sizeof images2);
  write_idx(dir2, "train-labels-idx1-ubyte.gz", 1, (uint32_t[]){3}, labels2, sizeof labels2);
  write_idx(dir2, "train-labels-idx1-ubyte", 1, (uint32_t[]){3}, other, sizeof other);
  char with_slash[600];
  snprintf(with_slash, sizeof with_slash, "%s/", dir2);
  CHECK(hawq_dataset_load(with_slash, "train", &ds, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(ds != NULL, "no dataset from %s", dir2);
  CHECK(ds->count == 3 && ds->height == 2 && ds->width == 2 && ds->channels == 3,
        "gz dataset shape %" PRId64 "x%dx%dx%d", ds->count, ds->height, ds->width, ds->channels);
  CHECK(ds->num_classes == 8, "num_classes %d, expected 8", ds->num_classes);
  CHECK(memcmp(ds->images, images2, sizeof images2) == 0, "images differ");
  CHECK(memcmp(ds->labels, labels2, sizeof labels2) == 0, "labels: the .gz file should win");
  hawq_preprocess rgb = {.pixel_scale = 1.0f / 255.0f,
                         .channels = 3,
                         .mean = {0.485f, 0.456f, 0.406f},
                         .std = {0.229f, 0.224f, 0.225f}};
  check_batch(ds, 0, 3, &rgb);
  check_batch(ds, 1, 2, &rgb);
  check_batch(ds, 2, 1, &mono);
  hawq_preprocess plain = {
      .pixel_scale = 1.0f, .channels = 3, .mean = {0, 128, 255}, .std = {1, 2, 4}};
  check_batch(ds, 0, 3, &plain);

  /* A few values worked out on paper: pixel 255 with scale 1/255, mean 0.5, std 0.25 is 2. */
  uint8_t saved = ds->images[0];
  ds->images[0] = 255;
  ds->images[1] = 0;
  float out[12];
  hawq_preprocess half = {
      .pixel_scale = 1.0f / 255.0f, .channels = 1, .mean = {0.5f}, .std = {0.25f}};
  hawq_dataset_fill_batch(ds, 0, 1, &half, out);
  CHECK(fabsf(out[0] - 2.0f) < 1e-6f && fabsf(out[1] + 2.0f) < 1e-6f,
        "255 -> %g (expected 2), 0 -> %g (expected -2)", out[0], out[1]);
  ds->images[0] = saved;

  /* Out of range: nothing is written. */
  for (int i = 0; i < 12; i++) out[i] = -7.0f;
  hawq_dataset_fill_batch(ds, 2, 2, &rgb, out);
  hawq_dataset_fill_batch(ds, -1, 1, &rgb, out);
  int touched = 0;
  for (int i = 0; i < 12; i++) touched += out[i] != -7.0f;
  CHECK(touched == 0, "an out-of-range fill_batch wrote %d values", touched);
  hawq_dataset_destroy(ds);
  hawq_dataset_destroy(NULL);

  /* 4 labels for 5 images. */
  make_dir(dir, sizeof dir, "ds-mismatch");
  write_idx(dir, "t10k-images-idx3-ubyte", 3, (uint32_t[]){5, 4, 3}, images1, sizeof images1);
  write_idx(dir, "t10k-labels-idx1-ubyte", 1, (uint32_t[]){4}, labels1, 4);
  expect_load_fail(dir, "test", HAWQ_ERR_PARSE, "t10k-labels-idx1-ubyte: 4 labels but 5 images",
                   "t10k-images-idx3-ubyte");

  make_dir(dir, sizeof dir, "ds-label-rank");
  write_idx(dir, "t10k-images-idx3-ubyte", 3, (uint32_t[]){5, 4, 3}, images1, sizeof images1);
  write_idx(dir, "t10k-labels-idx1-ubyte", 2, (uint32_t[]){5, 1}, labels1, 5);
  expect_load_fail(dir, "test", HAWQ_ERR_PARSE, "labels have 2 dimensions", dir);

  make_dir(dir, sizeof dir, "ds-image-rank");
  write_idx(dir, "t10k-images-idx3-ubyte", 2, (uint32_t[]){5, 12}, images1, sizeof images1);
  write_idx(dir, "t10k-labels-idx1-ubyte", 1, (uint32_t[]){5}, labels1, 5);
  expect_load_fail(dir, "test", HAWQ_ERR_PARSE, "images have 2 dimensions", dir);

  make_dir(dir, sizeof dir, "ds-channels");
  write_idx(dir, "t10k-images-idx3-ubyte", 4, (uint32_t[]){1, 1, 1, 20}, images1, 20);
  write_idx(dir, "t10k-labels-idx1-ubyte", 1, (uint32_t[]){1}, labels1, 1);
  expect_load_fail(dir, "test", HAWQ_ERR_UNSUPPORTED, "20 channels", dir);

  /* A broken images file: the IDX reader's message, naming the file. */
  make_dir(dir, sizeof dir, "ds-truncated");
  write_idx(dir, "t10k-images-idx3-ubyte", 3, (uint32_t[]){5, 4, 4}, images1, sizeof images1);
  write_idx(dir, "t10k-labels-idx1-ubyte", 1, (uint32_t[]){5}, labels1, 5);
  expect_load_fail(dir, "test", HAWQ_ERR_PARSE, "t10k-images-idx3-ubyte: truncated", dir);

  /* Images present, labels missing; then the train split of a test-only directory. */
  make_dir(dir, sizeof dir, "ds-no-labels");
  write_idx(dir, "t10k-images-idx3-ubyte", 3, (uint32_t[]){5, 4, 3}, images1, sizeof images1);
  expect_load_fail(dir, "test", HAWQ_ERR_IO, "t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte",
                   dir);
  expect_load_fail(dir1, "train", HAWQ_ERR_IO, "train-images-idx3-ubyte.gz", dir1);

  /* No such directory. */
  snprintf(dir, sizeof dir, "%s/no-such-dataset", test_tmpdir());
  expect_load_fail(dir, "test", HAWQ_ERR_IO, dir,
                   "t10k-images-idx3-ubyte.gz or t10k-images-idx3-ubyte");

  expect_load_fail(dir1, "validation", HAWQ_ERR_INVALID_ARG, "'validation'", "'test' or 'train'");
  expect_load_fail(NULL, "test", HAWQ_ERR_INVALID_ARG, "required", NULL);
}

int main(void) {
  test_rng rng = test_rng_seeded("test_dataset");
  test_fashion_mnist();
  test_directory_datasets(&rng);
  int result = test_report("test_dataset");
  if (result == 0) remove_tree(test_tmpdir(), 1); /* kept for inspection on failure */
  return result;
}
