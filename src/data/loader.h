/* Training batches: shuffling, augmentation and normalisation on a prefetch thread, so the next
 * batch is ready when the compute asks for it.
 *
 * Every epoch has its own permutation and every (epoch, image) its own augmentation, both drawn
 * from the seed alone: a run is reproducible whatever the thread timing, and a run resumed at
 * epoch e sees exactly the batches the uninterrupted run would have.
 *
 *   hawq_loader *l;
 *   hawq_loader_create(&(hawq_loader_options){.ds = ds, .batch = 128, .shuffle = true,
 *                      .crop_pad = 2, .flip = true, .seed = 1, .pp = pp}, &l, &err);
 *   hawq_loader_start_epoch(l, epoch);
 *   const float *x; const int32_t *y; int n;
 *   while (hawq_loader_next(l, &x, &y, &n)) train_step(x, y, n);  // x valid until next call
 *   hawq_loader_destroy(l);
 */
#ifndef HAWQ_DATA_LOADER_H
#define HAWQ_DATA_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "data/dataset.h"

typedef struct hawq_loader_options {
  const hawq_dataset *ds; /* borrowed; must outlive the loader */
  int64_t count;          /* use images [0, count); 0 means all */
  int batch;
  bool shuffle;
  bool drop_last; /* skip a final partial batch */
  int crop_pad;   /* random crop after zero-padding by this many pixels (0: none) */
  bool flip;      /* random horizontal flip */
  uint64_t seed;
  hawq_preprocess pp; /* pixel -> network input */
} hawq_loader_options;

typedef struct hawq_loader hawq_loader;

hawq_status hawq_loader_create(const hawq_loader_options *opt, hawq_loader **out, hawq_error *err);
void hawq_loader_destroy(hawq_loader *l);
/* Batches in this epoch. */
int64_t hawq_loader_batches(const hawq_loader *l);
/* Starts (or restarts) an epoch; batches of an unfinished earlier epoch are dropped. */
void hawq_loader_start_epoch(hawq_loader *l, int64_t epoch);
/* The next batch as float NHWC images and int32 labels (*n of them, = batch except perhaps the
 * last); false at the end of the epoch. The arrays stay valid until the next call. */
bool hawq_loader_next(hawq_loader *l, const float **images, const int32_t **labels, int *n);
/* The current epoch's image order (hawq_loader_batches * batch entries are used). */
const int64_t *hawq_loader_order(const hawq_loader *l);
/* Fills one batch directly (no thread): images order[0..n) augmented as for `epoch`. Used by the
 * thread, and by tests to check what the thread delivered. */
void hawq_loader_fill(const hawq_loader_options *opt, int64_t epoch, const int64_t *order, int n,
                      float *images, int32_t *labels);

#endif
