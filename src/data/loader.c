/* The training batch loader: a producer thread fills one of two slots while the trainer uses
 * the other (double buffering). See loader.h. */
#include "data/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "core/rng.h"
#include "core/status.h"

/* Stream id for an epoch's permutation (images use their own index). */
#define PERMUTATION_STREAM UINT64_MAX

struct hawq_loader {
  hawq_loader_options opt;
  int64_t n, n_batches, epoch;
  int64_t *perm;
  float *images[2];
  int32_t *labels[2];
  int count[2];
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t next_fill, next_take; /* batch indices in the current epoch */
  bool ready[2];                /* slot holds batch next_take or next_take+1, filled */
  int in_use;                   /* slot the consumer holds, -1 none */
  bool busy;                    /* producer is filling a slot outside the lock */
  bool stop;
};

void hawq_loader_fill(const hawq_loader_options *opt, int64_t epoch, const int64_t *order, int n,
                      float *images, int32_t *labels) {
  const hawq_dataset *ds = opt->ds;
  const int H = ds->height, W = ds->width, C = ds->channels, pad = opt->crop_pad;
  float scale[HAWQ_MAX_CHANNELS], shift[HAWQ_MAX_CHANNELS];
  for (int c = 0; c < C; c++) {
    int m = opt->pp.channels == 1 ? 0 : c;
    scale[c] = opt->pp.pixel_scale / opt->pp.std[m];
    shift[c] = -opt->pp.mean[m] / opt->pp.std[m];
  }
  for (int i = 0; i < n; i++) {
    int64_t idx = order[i];
    hawq_rng rng = hawq_rng_stream(opt->seed, (uint64_t)epoch, (uint64_t)idx);
    int dy = pad ? (int)hawq_rng_below(&rng, (uint64_t)(2 * pad + 1)) - pad : 0;
    int dx = pad ? (int)hawq_rng_below(&rng, (uint64_t)(2 * pad + 1)) - pad : 0;
    bool flip = opt->flip && hawq_rng_uniform(&rng) < 0.5;
    const uint8_t *src = ds->images + idx * H * W * C;
    float *dst = images + (int64_t)i * H * W * C;
    for (int y = 0; y < H; y++) {
      int sy = y + dy;
      for (int x = 0; x < W; x++) {
        int sx = (flip ? W - 1 - x : x) + dx;
        float *o = dst + ((int64_t)y * W + x) * C;
        bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        const uint8_t *px = inside ? src + ((int64_t)sy * W + sx) * C : NULL;
        for (int c = 0; c < C; c++) o[c] = (float)(inside ? px[c] : 0) * scale[c] + shift[c];
      }
    }
    labels[i] = ds->labels[idx];
  }
}

static void *producer(void *arg) {
  hawq_loader *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    /* Fill the next batch when its slot is free (not ready and not held by the consumer). */
    int slot = (int)(l->next_fill & 1);
    while (!l->stop && (l->next_fill >= l->n_batches || l->ready[slot] || l->in_use == slot)) {
      pthread_cond_wait(&l->cv, &l->mu);
      slot = (int)(l->next_fill & 1);
    }
    if (l->stop) break;
    int64_t b = l->next_fill, epoch = l->epoch;
    int64_t first = b * l->opt.batch;
    int n = (int)(l->n - first < l->opt.batch ? l->n - first : l->opt.batch);
    l->busy = true;
    pthread_mutex_unlock(&l->mu);
    hawq_loader_fill(&l->opt, epoch, l->perm + first, n, l->images[slot], l->labels[slot]);
    pthread_mutex_lock(&l->mu);
    l->busy = false;
    /* An epoch restart while filling discards the batch. */
    if (l->epoch == epoch && l->next_fill == b) {
      l->count[slot] = n;
      l->ready[slot] = true;
      l->next_fill++;
    }
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

hawq_status hawq_loader_create(const hawq_loader_options *opt, hawq_loader **out, hawq_error *err) {
  *out = NULL;
  int64_t n = opt->count > 0 && opt->count < opt->ds->count ? opt->count : opt->ds->count;
  if (opt->batch < 1) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch must be >= 1");
  if (n < 1 || (opt->drop_last && n < opt->batch)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: %lld images are fewer than one batch of %d",
                     opt->ds->source, (long long)n, opt->batch);
  }
  if (opt->crop_pad < 0 || opt->crop_pad > opt->ds->height || opt->crop_pad > opt->ds->width) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "crop padding %d is out of range for %dx%d images",
                     opt->crop_pad, opt->ds->height, opt->ds->width);
  }
  hawq_loader *l = calloc(1, sizeof *l);
  if (!l) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  l->opt = *opt;
  l->n = n;
  l->n_batches = opt->drop_last ? n / opt->batch : (n + opt->batch - 1) / opt->batch;
  l->next_fill = l->n_batches; /* idle until an epoch starts */
  l->in_use = -1;
  size_t per = (size_t)opt->ds->height * opt->ds->width * opt->ds->channels;
  l->perm = malloc((size_t)n * sizeof *l->perm);
  for (int s = 0; s < 2; s++) {
    l->images[s] = hawq_alloc_floats(per * (size_t)opt->batch);
    l->labels[s] = malloc((size_t)opt->batch * sizeof(int32_t));
  }
  if (!l->perm || !l->images[0] || !l->images[1] || !l->labels[0] || !l->labels[1]) {
    hawq_loader_destroy(l);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory for batches of %d", opt->batch);
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->thread, NULL, producer, l) != 0) {
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    l->thread_started = false;
    hawq_loader_destroy(l);
    return hawq_fail(err, HAWQ_ERR_INTERNAL, "could not start the data loader thread");
  }
  l->thread_started = true;
  *out = l;
  return HAWQ_OK;
}

void hawq_loader_destroy(hawq_loader *l) {
  if (!l) return;
  if (l->thread_started) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
  }
  free(l->perm);
  for (int s = 0; s < 2; s++) {
    hawq_free(l->images[s]);
    free(l->labels[s]);
  }
  free(l);
}

const int64_t *hawq_loader_order(const hawq_loader *l) {
  return l->perm;
}

int64_t hawq_loader_batches(const hawq_loader *l) {
  return l->n_batches;
}

void hawq_loader_start_epoch(hawq_loader *l, int64_t epoch) {
  pthread_mutex_lock(&l->mu);
  while (l->busy) pthread_cond_wait(&l->cv, &l->mu);
  for (int64_t i = 0; i < l->n; i++) l->perm[i] = i;
  if (l->opt.shuffle) {
    hawq_rng rng = hawq_rng_stream(l->opt.seed, (uint64_t)epoch, PERMUTATION_STREAM);
    for (int64_t i = l->n - 1; i > 0; i--) {
      int64_t j = (int64_t)hawq_rng_below(&rng, (uint64_t)(i + 1));
      int64_t t = l->perm[i];
      l->perm[i] = l->perm[j];
      l->perm[j] = t;
    }
  }
  l->epoch = epoch;
  l->next_fill = 0;
  l->next_take = 0;
  l->ready[0] = l->ready[1] = false;
  l->in_use = -1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

bool hawq_loader_next(hawq_loader *l, const float **images, const int32_t **labels, int *n) {
  pthread_mutex_lock(&l->mu);
  if (l->in_use >= 0) { /* the caller is done with the previous batch */
    l->ready[l->in_use] = false;
    l->in_use = -1;
    pthread_cond_broadcast(&l->cv);
  }
  if (l->next_take >= l->n_batches) {
    pthread_mutex_unlock(&l->mu);
    return false;
  }
  int slot = (int)(l->next_take & 1);
  while (!l->ready[slot]) pthread_cond_wait(&l->cv, &l->mu);
  l->in_use = slot;
  l->next_take++;
  *images = l->images[slot];
  *labels = l->labels[slot];
  *n = l->count[slot];
  pthread_mutex_unlock(&l->mu);
  return true;
}
