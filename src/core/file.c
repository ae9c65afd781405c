/* File helpers shared by the readers and writers. */
#include "core/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"

hawq_status hawq_read_file(const char *path, uint64_t max_bytes, const char *too_large_hint,
                           void **data, size_t *size, hawq_error *err) {
  *data = NULL;
  *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return hawq_fail(err, HAWQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0) {
    hawq_status st = hawq_fail(err, HAWQ_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    return st;
  }
  if (!S_ISREG(sb.st_mode)) {
    fclose(f);
    return hawq_fail(err, HAWQ_ERR_IO, "%s: cannot read: %s", path,
                     S_ISDIR(sb.st_mode) ? "is a directory, not a file" : "not a regular file");
  }
  if ((uint64_t)sb.st_size > max_bytes) {
    fclose(f);
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: %lld bytes is over the limit of %llu%s", path,
                     (long long)sb.st_size, (unsigned long long)max_bytes,
                     too_large_hint ? too_large_hint : "");
  }
  size_t n = (size_t)sb.st_size;
  void *buf = malloc(n ? n : 1);
  if (!buf) {
    fclose(f);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory reading %zu bytes", path, n);
  }
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  if (got != n) {
    free(buf);
    return hawq_fail(err, HAWQ_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
  }
  *data = buf;
  *size = n;
  return HAWQ_OK;
}

hawq_status hawq_write_file_atomic(const char *path, const void *data, size_t size,
                                   hawq_error *err) {
  size_t len = strlen(path) + 32;
  char *tmp = malloc(len);
  if (!tmp) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    hawq_status st = hawq_fail(err, HAWQ_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    free(tmp);
    return st;
  }
  bool ok = fwrite(data, 1, size, f) == size;
  ok = (fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  ok = (fclose(f) == 0) && ok;
  int e = errno;
  bool renamed = ok && rename(tmp, path) == 0;
  if (!renamed) {
    if (ok) e = errno;
    remove(tmp);
    hawq_status st = hawq_fail(err, HAWQ_ERR_IO, "%s: cannot %s: %s", path,
                               ok ? "rename the temporary file over it" : "write", strerror(e));
    free(tmp);
    return st;
  }
  free(tmp);
  return HAWQ_OK;
}
