/* A set of borrowed strings (open addressing, FNV-1a): which names are taken, in O(1). The
 * strings must outlive the set; a zeroed struct is an empty set. */
#ifndef HAWQ_CORE_STRSET_H
#define HAWQ_CORE_STRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hawq_strset {
  const char **keys;
  size_t cap, n;
} hawq_strset;

/* FNV-1a of a NUL-terminated string (also the importer's value map hash). */
uint64_t hawq_str_hash(const char *s);
bool hawq_strset_has(const hawq_strset *s, const char *name);
/* Adds name; false if out of memory. */
bool hawq_strset_add(hawq_strset *s, const char *name);
void hawq_strset_free(hawq_strset *s);

#endif
