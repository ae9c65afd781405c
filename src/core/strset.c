/* The string set of strset.h. */
#include "core/strset.h"

#include <stdlib.h>
#include <string.h>

uint64_t hawq_str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

bool hawq_strset_has(const hawq_strset *s, const char *name) {
  if (!s->cap) return false;
  for (size_t k = hawq_str_hash(name) & (s->cap - 1); s->keys[k]; k = (k + 1) & (s->cap - 1)) {
    if (!strcmp(s->keys[k], name)) return true;
  }
  return false;
}

bool hawq_strset_add(hawq_strset *s, const char *name) {
  if (2 * (s->n + 1) > s->cap) { /* keep the load under one half */
    size_t cap = s->cap ? 2 * s->cap : 256;
    const char **keys = calloc(cap, sizeof *keys);
    if (!keys) return false;
    for (size_t k = 0; k < s->cap; k++) {
      if (!s->keys[k]) continue;
      size_t j = hawq_str_hash(s->keys[k]) & (cap - 1);
      while (keys[j]) j = (j + 1) & (cap - 1);
      keys[j] = s->keys[k];
    }
    free(s->keys);
    s->keys = keys;
    s->cap = cap;
  }
  size_t j = hawq_str_hash(name) & (s->cap - 1);
  while (s->keys[j]) j = (j + 1) & (s->cap - 1);
  s->keys[j] = name;
  s->n++;
  return true;
}

void hawq_strset_free(hawq_strset *s) {
  free(s->keys);
  s->keys = NULL;
  s->cap = s->n = 0;
}
