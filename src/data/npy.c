/* NumPy .npy reader and float32 writer. The header dictionary is parsed as the small Python
 * literal numpy writes, strictly, and the data size is checked against the file before any
 * allocation. Values are decoded byte by byte, so the host's byte order does not matter. */
#include "data/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/status.h"

/* Largest .npy file read: the header check bounds every allocation by the file size anyway. */
#define HAWQ_NPY_MAX_FILE_BYTES ((uint64_t)1 << 36)

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_BYTES 6
#define NPY_ALIGN 64      /* numpy pads the header so the data starts 64-byte aligned */
#define NPY_MAX_STRING 32 /* longest key or descr we accept */

/* ---- header dictionary parsing ---- */

typedef struct npy_parser {
  const char *p, *end;
  const char *name;
  hawq_error *err;
} npy_parser;

typedef struct npy_header {
  bool has_descr, has_fortran_order, has_shape;
  char descr[NPY_MAX_STRING + 1];
  bool fortran_order;
  int rank;
  int64_t dims[HAWQ_NPY_MAX_RANK];
} npy_header;

static void skip_space(npy_parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

/* Describes where the parser stands, for messages: the next few characters or "end". */
static const char *here(const npy_parser *ps, char *buf, size_t size) {
  if (ps->p >= ps->end) return "the end of the header";
  size_t n = 0;
  buf[n++] = '\'';
  for (const char *c = ps->p; c < ps->end && n + 2 < size && c < ps->p + 12; c++) {
    buf[n++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
  }
  buf[n++] = '\'';
  buf[n] = '\0';
  return buf;
}

static hawq_status expected(npy_parser *ps, const char *what) {
  char buf[24];
  return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header: expected %s at %s", ps->name, what,
                   here(ps, buf, sizeof buf));
}

static bool accept(npy_parser *ps, char c) {
  skip_space(ps);
  if (ps->p < ps->end && *ps->p == c) {
    ps->p++;
    return true;
  }
  return false;
}

/* A quoted Python string without escapes. */
static hawq_status parse_string(npy_parser *ps, char *out, const char *what) {
  skip_space(ps);
  if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"')) return expected(ps, what);
  char quote = *ps->p++;
  size_t n = 0;
  while (ps->p < ps->end && *ps->p != quote) {
    char c = *ps->p;
    if (c == '\\' || c < 0x20 || c >= 0x7f) {
      return hawq_fail(ps->err, HAWQ_ERR_PARSE,
                       "%s: header: %s holds an escape or a non-printable character", ps->name,
                       what);
    }
    if (n == NPY_MAX_STRING) {
      return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header: %s is longer than %d characters",
                       ps->name, what, NPY_MAX_STRING);
    }
    out[n++] = c;
    ps->p++;
  }
  if (ps->p >= ps->end) {
    return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header: %s has no closing quote", ps->name,
                     what);
  }
  ps->p++;
  out[n] = '\0';
  return HAWQ_OK;
}

static hawq_status parse_bool(npy_parser *ps, bool *out) {
  skip_space(ps);
  size_t left = (size_t)(ps->end - ps->p);
  if (left >= 4 && memcmp(ps->p, "True", 4) == 0) {
    ps->p += 4;
    *out = true;
  } else if (left >= 5 && memcmp(ps->p, "False", 5) == 0) {
    ps->p += 5;
    *out = false;
  } else {
    return expected(ps, "True or False for 'fortran_order'");
  }
  return HAWQ_OK;
}

/* A non-negative decimal integer; Python 2's numpy wrote a trailing 'L'. */
static hawq_status parse_dim(npy_parser *ps, int index, int64_t *out) {
  skip_space(ps);
  if (ps->p < ps->end && *ps->p == '-') {
    return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header: shape dimension %d is negative",
                     ps->name, index);
  }
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
    return expected(ps, "a non-negative integer in 'shape'");
  }
  int64_t value = 0;
  while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
    int digit = *ps->p++ - '0';
    if (value > (INT64_MAX - digit) / 10) {
      return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header: shape dimension %d is too large",
                       ps->name, index);
    }
    value = value * 10 + digit;
  }
  if (ps->p < ps->end && *ps->p == 'L') ps->p++;
  *out = value;
  return HAWQ_OK;
}

/* A tuple of dimensions: (), (5,), (2, 3) or (2, 3,). */
static hawq_status parse_shape(npy_parser *ps, npy_header *h) {
  if (!accept(ps, '(')) return expected(ps, "a tuple '(' for 'shape'");
  h->rank = 0;
  if (accept(ps, ')')) return HAWQ_OK;
  for (;;) {
    if (h->rank == HAWQ_NPY_MAX_RANK) {
      return hawq_fail(ps->err, HAWQ_ERR_UNSUPPORTED,
                       "%s: header: shape has more than %d dimensions", ps->name,
                       HAWQ_NPY_MAX_RANK);
    }
    hawq_status s = parse_dim(ps, h->rank, &h->dims[h->rank]);
    if (s != HAWQ_OK) return s;
    h->rank++;
    if (accept(ps, ')')) {
      if (h->rank == 1) {
        return hawq_fail(ps->err, HAWQ_ERR_PARSE,
                         "%s: header: shape (%" PRId64 ") is not a tuple, expected (%" PRId64 ",)",
                         ps->name, h->dims[0], h->dims[0]);
      }
      return HAWQ_OK;
    }
    if (!accept(ps, ',')) return expected(ps, "',' or ')' in 'shape'");
    if (accept(ps, ')')) return HAWQ_OK;
  }
}

static hawq_status parse_dict(npy_parser *ps, npy_header *h) {
  if (!accept(ps, '{')) return expected(ps, "'{' opening the header dictionary");
  for (;;) {
    if (accept(ps, '}')) break;
    char key[NPY_MAX_STRING + 1];
    hawq_status s = parse_string(ps, key, "a quoted key");
    if (s != HAWQ_OK) return s;
    if (!accept(ps, ':')) return expected(ps, "':' after a key");
    bool *seen = NULL;
    if (strcmp(key, "descr") == 0) {
      seen = &h->has_descr;
      skip_space(ps);
      if (ps->p < ps->end && *ps->p == '[') {
        return hawq_fail(ps->err, HAWQ_ERR_UNSUPPORTED,
                         "%s: header: structured dtypes are not supported, expected '<f4', "
                         "'|u1', '<i8' or '<f8'",
                         ps->name);
      }
      s = parse_string(ps, h->descr, "a quoted 'descr'");
    } else if (strcmp(key, "fortran_order") == 0) {
      seen = &h->has_fortran_order;
      s = parse_bool(ps, &h->fortran_order);
    } else if (strcmp(key, "shape") == 0) {
      seen = &h->has_shape;
      s = parse_shape(ps, h);
    } else {
      return hawq_fail(ps->err, HAWQ_ERR_PARSE,
                       "%s: header: unknown key '%s', expected 'descr', 'fortran_order' and "
                       "'shape'",
                       ps->name, key);
    }
    if (s != HAWQ_OK) return s;
    if (*seen) {
      return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header: duplicate key '%s'", ps->name, key);
    }
    *seen = true;
    if (accept(ps, '}')) break;
    if (!accept(ps, ',')) return expected(ps, "',' or '}' after a value");
  }
  skip_space(ps); /* numpy pads with spaces and a final newline */
  if (ps->p != ps->end) return expected(ps, "only padding after the header dictionary");
  const char *missing = !h->has_descr           ? "descr"
                        : !h->has_fortran_order ? "fortran_order"
                        : !h->has_shape         ? "shape"
                                                : NULL;
  if (missing) {
    return hawq_fail(ps->err, HAWQ_ERR_PARSE, "%s: header has no '%s' key", ps->name, missing);
  }
  return HAWQ_OK;
}

/* Maps a descr to a dtype; *source_bytes is the size of one element in the file. */
static hawq_status resolve_descr(const npy_header *h, const char *name, hawq_npy_dtype *dtype,
                                 size_t *source_bytes, bool *from_f64, hawq_error *err) {
  const char *d = h->descr;
  char order = (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=') ? d[0] : '\0';
  const char *kind = order ? d + 1 : d;
  *from_f64 = false;
  if (strcmp(kind, "u1") == 0) {
    *dtype = HAWQ_NPY_U8;
    *source_bytes = 1;
    return HAWQ_OK; /* byte order means nothing for one byte */
  }
  if (strcmp(kind, "f4") == 0) {
    *dtype = HAWQ_NPY_F32;
    *source_bytes = 4;
  } else if (strcmp(kind, "i8") == 0) {
    *dtype = HAWQ_NPY_I64;
    *source_bytes = 8;
  } else if (strcmp(kind, "f8") == 0) {
    *dtype = HAWQ_NPY_F32;
    *source_bytes = 8;
    *from_f64 = true;
  } else {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: dtype '%s' is not supported, expected '<f4', '|u1', '<i8' or '<f8'", name,
                     d);
  }
  if (order == '>') {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: dtype '%s' is big-endian, only little-endian ('<') is supported", name,
                     d);
  }
  if (order != '<') {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: dtype '%s' does not say its byte order, expected '<%s'", name, d, kind);
  }
  return HAWQ_OK;
}

static uint64_t load_le(const uint8_t *b, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

static void decode(const uint8_t *src, size_t count, hawq_npy_dtype dtype, bool from_f64,
                   void *dst) {
  if (dtype == HAWQ_NPY_U8) {
    memcpy(dst, src, count);
  } else if (dtype == HAWQ_NPY_I64) {
    int64_t *out = dst;
    for (size_t i = 0; i < count; i++) out[i] = (int64_t)load_le(src + 8 * i, 8);
  } else if (from_f64) {
    float *out = dst;
    for (size_t i = 0; i < count; i++) {
      uint64_t bits = load_le(src + 8 * i, 8);
      double v;
      memcpy(&v, &bits, sizeof v);
      out[i] = (float)v;
    }
  } else {
    float *out = dst;
    for (size_t i = 0; i < count; i++) {
      uint32_t bits = (uint32_t)load_le(src + 4 * i, 4);
      memcpy(&out[i], &bits, sizeof bits);
    }
  }
}

hawq_status hawq_npy_read_buffer(const void *buf, size_t size, const char *name, hawq_npy *out,
                                 hawq_error *err) {
  if (!name) name = "<buffer>";
  if (!out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no output given", name);
  memset(out, 0, sizeof *out);
  if (!buf && size > 0) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no buffer given", name);
  const uint8_t *bytes = buf;
  if (size == 0) return hawq_fail(err, HAWQ_ERR_PARSE, "%s: empty, expected a .npy header", name);
  if (size < NPY_MAGIC_BYTES || memcmp(bytes, NPY_MAGIC, NPY_MAGIC_BYTES) != 0) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: bad magic, expected \\x93NUMPY (a .npy file)", name);
  }
  if (size < NPY_MAGIC_BYTES + 2) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated header: no format version", name);
  }
  int major = bytes[6], minor = bytes[7];
  size_t len_bytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
  if (len_bytes == 0) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: format version %d.%d is not supported, expected 1.0 to 3.0", name, major,
                     minor);
  }
  size_t prefix = NPY_MAGIC_BYTES + 2 + len_bytes;
  if (size < prefix) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated header: no header length", name);
  }
  uint64_t header_len = load_le(bytes + NPY_MAGIC_BYTES + 2, (int)len_bytes);
  if (header_len > size - prefix) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated header: %zu of %" PRIu64 " header bytes",
                     name, size - prefix, header_len);
  }

  npy_header h = {0};
  npy_parser ps = {(const char *)bytes + prefix, (const char *)bytes + prefix + header_len, name,
                   err};
  hawq_status s = parse_dict(&ps, &h);
  if (s != HAWQ_OK) return s;
  hawq_npy_dtype dtype = HAWQ_NPY_F32;
  size_t source_bytes = 0;
  bool from_f64 = false;
  s = resolve_descr(&h, name, &dtype, &source_bytes, &from_f64, err);
  if (s != HAWQ_OK) return s;
  if (h.fortran_order) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: fortran_order is True, only C order (False) is supported", name);
  }

  /* The product of the non-zero dims must fit too (as numpy requires), so that code using
   * the dims of an empty array cannot overflow either. */
  size_t have = size - prefix - (size_t)header_len;
  size_t nonzero_count = 1;
  bool has_zero = false, too_many = false;
  for (int i = 0; i < h.rank && !too_many; i++) {
    uint64_t dim = (uint64_t)h.dims[i];
    if (dim == 0) {
      has_zero = true;
    } else if (dim > SIZE_MAX / source_bytes / nonzero_count) {
      too_many = true;
    } else {
      nonzero_count *= (size_t)dim;
    }
  }
  size_t count = has_zero ? 0 : nonzero_count;
  if (too_many) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: shape is too large: its byte size overflows (%zu data bytes present)",
                     name, have);
  }
  if (count * source_bytes > have) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated: %zu of %zu data bytes", name, have,
                     count * source_bytes);
  }
  size_t data_bytes = count * source_bytes;
  if (have > data_bytes) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: trailing data: %zu bytes after the %zu data bytes",
                     name, have - data_bytes, data_bytes);
  }
  size_t elem_bytes = dtype == HAWQ_NPY_U8 ? 1 : dtype == HAWQ_NPY_I64 ? 8 : 4;
  void *data = malloc(count ? count * elem_bytes : 1);
  if (!data) {
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes", name,
                     count * elem_bytes);
  }
  decode(bytes + prefix + header_len, count, dtype, from_f64, data);
  out->dtype = dtype;
  out->rank = h.rank;
  memcpy(out->dims, h.dims, sizeof h.dims);
  out->count = count;
  out->data = data;
  return HAWQ_OK;
}

hawq_status hawq_npy_read_file(const char *path, hawq_npy *out, hawq_error *err) {
  if (out) memset(out, 0, sizeof *out);
  if (!path) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "no .npy file path given");
  if (!out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no output given", path);
  uint8_t *bytes = NULL;
  size_t size = 0;
  hawq_status s = hawq_read_file(path, HAWQ_NPY_MAX_FILE_BYTES, NULL, (void **)&bytes, &size, err);
  if (s != HAWQ_OK) return s;
  s = hawq_npy_read_buffer(bytes, size, path, out, err);
  free(bytes);
  return s;
}

/* ---- writing ---- */

/* The version 1.0 header, padded with spaces and a newline to a multiple of NPY_ALIGN. */
static size_t format_header(char *buf, size_t size, int rank, const int64_t *dims) {
  char shape[HAWQ_NPY_MAX_RANK * 22 + 4];
  size_t n = 0;
  shape[n++] = '(';
  for (int i = 0; i < rank; i++) {
    n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%" PRId64, i ? ", " : "", dims[i]);
  }
  if (rank == 1) shape[n++] = ',';
  shape[n++] = ')';
  shape[n] = '\0';
  int dict_len = snprintf(buf + NPY_MAGIC_BYTES + 4, size - NPY_MAGIC_BYTES - 4,
                          "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
  size_t used = NPY_MAGIC_BYTES + 4 + (size_t)dict_len;
  size_t total = (used + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
  memset(buf + used, ' ', total - 1 - used);
  buf[total - 1] = '\n';
  memcpy(buf, NPY_MAGIC, NPY_MAGIC_BYTES);
  buf[6] = 1;
  buf[7] = 0;
  size_t header_len = total - NPY_MAGIC_BYTES - 4;
  buf[8] = (char)(header_len & 0xff);
  buf[9] = (char)(header_len >> 8);
  return total;
}

hawq_status hawq_npy_write_f32(const char *path, int rank, const int64_t *dims, const float *data,
                               hawq_error *err) {
  if (!path) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "no .npy output path given");
  if (rank < 0 || rank > HAWQ_NPY_MAX_RANK || (rank > 0 && !dims)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: rank %d, expected 0 to %d with dims", path,
                     rank, HAWQ_NPY_MAX_RANK);
  }
  size_t count = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: dimension %d is %" PRId64 ", expected >= 0",
                       path, i, dims[i]);
    }
    if (dims[i] > 0 && count > SIZE_MAX / 4 / (uint64_t)dims[i]) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: the shape has too many elements", path);
    }
    count *= (size_t)dims[i];
  }
  if (count > 0 && !data) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no data given", path);

  /* The whole file in memory (header, then little-endian floats), written atomically. */
  char header[4 * NPY_ALIGN + HAWQ_NPY_MAX_RANK * 22];
  size_t header_size = format_header(header, sizeof header, rank, dims);
  uint8_t *file = malloc(header_size + 4 * count);
  if (!file) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  memcpy(file, header, header_size);
  uint8_t *body = file + header_size;
  for (size_t i = 0; i < count; i++) {
    uint32_t bits;
    memcpy(&bits, &data[i], sizeof bits);
    for (int b = 0; b < 4; b++) body[4 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
  }
  hawq_status s = hawq_write_file_atomic(path, file, header_size + 4 * count, err);
  free(file);
  return s;
}

void hawq_npy_free(hawq_npy *npy) {
  if (!npy) return;
  free(npy->data);
  memset(npy, 0, sizeof *npy);
}
