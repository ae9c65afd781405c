/* Embedding hawq's integer runtime: load an integer model (.hqm, made by `hawq calibrate`) and
 * classify the images of an IDX file, integer-only from raw pixels to class index.
 *
 *   classify MODEL.hqm IMAGES.idx[.gz] [LABELS.idx[.gz]] [--limit N]
 *
 * Prints one class per image, and the accuracy when labels are given. Uses only the public
 * header <hawq/hawq.h> (and zlib, which reads the files gzipped or not). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hawq/hawq.h"

/* Reads an IDX file's header (magic 0x0000080N: unsigned bytes, N dimensions) and its data. */
static unsigned char *read_idx(const char *path, int *ndim, long dims[4]) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    fprintf(stderr, "classify: %s: cannot open\n", path);
    return NULL;
  }
  unsigned char head[4];
  unsigned char *data = NULL;
  if (gzread(f, head, 4) != 4 || head[0] || head[1] || head[2] != 8 || head[3] < 1 || head[3] > 4) {
    fprintf(stderr, "classify: %s: not an IDX file of unsigned bytes\n", path);
    goto done;
  }
  *ndim = head[3];
  long total = 1;
  for (int i = 0; i < *ndim; i++) {
    unsigned char d[4];
    if (gzread(f, d, 4) != 4) {
      fprintf(stderr, "classify: %s: truncated header\n", path);
      goto done;
    }
    dims[i] = (long)d[0] << 24 | (long)d[1] << 16 | (long)d[2] << 8 | d[3];
    if (dims[i] < 1 || total > (1L << 34) / dims[i]) {
      fprintf(stderr, "classify: %s: bad dimension %ld\n", path, dims[i]);
      goto done;
    }
    total *= dims[i];
  }
  data = malloc((size_t)total);
  if (!data || gzread(f, data, (unsigned)total) != (int)total) {
    fprintf(stderr, "classify: %s: truncated data\n", path);
    free(data);
    data = NULL;
  }
done:
  gzclose(f);
  return data;
}

int main(int argc, char **argv) {
  const char *model = NULL, *images = NULL, *labels = NULL;
  long limit = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--limit") && i + 1 < argc)
      limit = atol(argv[++i]);
    else if (!model)
      model = argv[i];
    else if (!images)
      images = argv[i];
    else if (!labels)
      labels = argv[i];
  }
  if (!model || !images) {
    fprintf(stderr, "usage: classify MODEL.hqm IMAGES.idx[.gz] [LABELS.idx[.gz]] [--limit N]\n");
    return 1;
  }

  hawq_error err;
  hawq_qmodel *m = NULL;
  if (hawq_qmodel_load(model, &m, &err) != HAWQ_OK) {
    fprintf(stderr, "classify: %s\n", err.msg);
    return 1;
  }
  hawq_qmodel_shape s = hawq_qmodel_get_shape(m);
  int ndim = 0, nl = 0;
  long dims[4] = {0}, ldims[4] = {0};
  unsigned char *pix = read_idx(images, &ndim, dims);
  unsigned char *lab = labels ? read_idx(labels, &nl, ldims) : NULL;
  int rc = 1;
  if (!pix || (labels && !lab)) goto done;
  long channels = ndim == 4 ? dims[3] : 1;
  if (ndim < 3 || dims[1] != s.height || dims[2] != s.width || channels != s.channels) {
    fprintf(stderr, "classify: %s: images do not have the model's %lldx%lldx%lld shape\n", images,
            (long long)s.height, (long long)s.width, (long long)s.channels);
    goto done;
  }
  long n = limit >= 0 && limit < dims[0] ? limit : dims[0];
  if (lab && ldims[0] < n) {
    fprintf(stderr, "classify: %s: fewer labels than images\n", labels);
    goto done;
  }

  /* A runner at the best kernel level this CPU has, and one workspace reused for every image. */
  hawq_qrunner *runner = NULL;
  if (hawq_qrunner_create(m, NULL, &runner, &err)) {
    fprintf(stderr, "classify: %s\n", err.msg);
    goto done;
  }
  size_t ws_size = hawq_qrunner_workspace_size(runner);
  void *ws = aligned_alloc(64, (ws_size + 63) & ~(size_t)63);
  if (!ws) {
    hawq_qrunner_destroy(runner);
    goto done;
  }
  long correct = 0, per_image = s.height * s.width * s.channels;
  for (long i = 0; i < n; i++) {
    int32_t cls;
    if (hawq_qrunner_classify(runner, pix + i * per_image, 1, ws, ws_size, &cls, NULL, &err)) {
      fprintf(stderr, "classify: %s\n", err.msg);
      free(ws);
      hawq_qrunner_destroy(runner);
      goto done;
    }
    printf("%ld %d\n", i, cls);
    if (lab) correct += cls == lab[i];
  }
  free(ws);
  hawq_qrunner_destroy(runner);
  if (lab) fprintf(stderr, "accuracy %ld/%ld\n", correct, n);
  rc = 0;
done:
  free(pix);
  free(lab);
  hawq_qmodel_destroy(m);
  return rc;
}
