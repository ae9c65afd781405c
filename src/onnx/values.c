/* Importer helpers: constant values, TensorProto decoding (inline and external data), node
 * attributes and node-scoped error messages. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "onnx/onnx_internal.h"

#define S(x) ((x) ? (x) : "")

const char *onnx_dtype_name(int dtype) {
  switch (dtype) {
    case ONNX_FLOAT:
      return "float32";
    case ONNX_UINT8:
      return "uint8";
    case ONNX_INT8:
      return "int8";
    case ONNX_UINT16:
      return "uint16";
    case ONNX_INT16:
      return "int16";
    case ONNX_INT32:
      return "int32";
    case ONNX_INT64:
      return "int64";
    case ONNX_STRING:
      return "string";
    case ONNX_BOOL:
      return "bool";
    case ONNX_FLOAT16:
      return "float16";
    case ONNX_DOUBLE:
      return "float64";
    case ONNX_UINT32:
      return "uint32";
    case ONNX_UINT64:
      return "uint64";
    case 16:
      return "bfloat16";
    default:
      return "unknown type";
  }
}

hawq_status node_fail(const node_ctx *ctx, hawq_error *err, hawq_status st, const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return hawq_fail(err, st, "%s: node '%s' (%s, opset %lld): %s", ctx->file, ctx->node_name,
                   ctx->op_type, (long long)ctx->opset, what);
}

void value_free(value *v) {
  free(v->f);
  free(v->i);
  memset(v, 0, sizeof *v);
}

int64_t shape_numel(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    /* Each dimension is bounded too, so sums of dimensions (Concat) cannot overflow even when
     * another dimension is 0. */
    if (dims[i] < 0 || dims[i] > HAWQ_MAX_TENSOR_ELEMENTS) return -1;
    if (dims[i] != 0 && n > HAWQ_MAX_TENSOR_ELEMENTS / dims[i]) return -1;
    n *= dims[i];
  }
  return n <= HAWQ_MAX_TENSOR_ELEMENTS ? n : -1;
}

bool value_make_const(value *v, const_type type, int rank, const int64_t *dims) {
  memset(v, 0, sizeof *v);
  int64_t n = shape_numel(rank, dims);
  if (n < 0 || rank > HAWQ_MAX_RANK) return false;
  v->kind = VALUE_CONST;
  v->type = type;
  v->onnx_dtype = type == CONST_FLOAT ? ONNX_FLOAT : ONNX_INT64;
  v->rank = rank;
  for (int k = 0; k < rank; k++) v->dims[k] = dims[k];
  v->count = n;
  size_t alloc = (size_t)(n ? n : 1);
  if (type == CONST_FLOAT) {
    v->f = calloc(alloc, sizeof(float));
    return v->f != NULL;
  }
  v->i = calloc(alloc, sizeof(hawq_sym));
  return v->i != NULL;
}

bool value_copy(value *dst, const value *src) {
  if (src->kind != VALUE_CONST) {
    *dst = *src;
    return true;
  }
  if (!value_make_const(dst, src->type, src->rank, src->dims)) return false;
  dst->onnx_dtype = src->onnx_dtype;
  if (src->type == CONST_FLOAT) {
    memcpy(dst->f, src->f, (size_t)src->count * sizeof(float));
  } else {
    memcpy(dst->i, src->i, (size_t)src->count * sizeof(hawq_sym));
  }
  return true;
}

static size_t dtype_size(int dtype) {
  switch (dtype) {
    case ONNX_FLOAT:
    case ONNX_INT32:
    case ONNX_UINT32:
      return 4;
    case ONNX_INT64:
    case ONNX_UINT64:
    case ONNX_DOUBLE:
      return 8;
    case ONNX_INT16:
    case ONNX_UINT16:
      return 2;
    case ONNX_INT8:
    case ONNX_UINT8:
    case ONNX_BOOL:
      return 1;
    default:
      return 0;
  }
}

/* Little-endian element `k` of raw bytes as double / int64. */
static double raw_as_double(const uint8_t *p, int dtype, int64_t k) {
  switch (dtype) {
    case ONNX_FLOAT: {
      float v;
      memcpy(&v, p + 4 * k, 4);
      return v;
    }
    case ONNX_DOUBLE: {
      double v;
      memcpy(&v, p + 8 * k, 8);
      return v;
    }
    default:
      return 0;
  }
}

static int64_t raw_as_int(const uint8_t *p, int dtype, int64_t k) {
  switch (dtype) {
    case ONNX_INT64: {
      int64_t v;
      memcpy(&v, p + 8 * k, 8);
      return v;
    }
    case ONNX_UINT64: {
      uint64_t v;
      memcpy(&v, p + 8 * k, 8);
      return (int64_t)v;
    }
    case ONNX_INT32: {
      int32_t v;
      memcpy(&v, p + 4 * k, 4);
      return v;
    }
    case ONNX_UINT32: {
      uint32_t v;
      memcpy(&v, p + 4 * k, 4);
      return v;
    }
    case ONNX_INT16: {
      int16_t v;
      memcpy(&v, p + 2 * k, 2);
      return v;
    }
    case ONNX_UINT16: {
      uint16_t v;
      memcpy(&v, p + 2 * k, 2);
      return v;
    }
    case ONNX_INT8:
      return (int8_t)p[k];
    case ONNX_UINT8:
    case ONNX_BOOL:
      return p[k];
    default:
      return 0;
  }
}

/* Reads `len` bytes at `offset` of an external data file into a new buffer. */
static hawq_status read_external(const Onnx__TensorProto *t, const char *base_dir, const char *what,
                                 size_t expected, uint8_t **out, hawq_error *err) {
  const char *location = NULL;
  int64_t offset = 0, length = -1;
  for (size_t k = 0; k < t->n_external_data; k++) {
    const Onnx__StringStringEntryProto *e = t->external_data[k];
    const char *key = S(e->key), *val = S(e->value);
    if (strcmp(key, "location") == 0) {
      location = val;
    } else if (strcmp(key, "offset") == 0 || strcmp(key, "length") == 0) {
      char *end = NULL;
      errno = 0;
      long long v = strtoll(val, &end, 10);
      if (end == val || *end || errno || v < 0) {
        return hawq_fail(err, HAWQ_ERR_PARSE, "%s: external data %s '%s' is not a number >= 0",
                         what, key, val);
      }
      if (key[0] == 'o')
        offset = v;
      else
        length = v;
    }
  }
  if (!location || !*location) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: external data without a 'location'", what);
  }
  if (!base_dir) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: external data ('%s') needs the model loaded from a file, not memory",
                     what, location);
  }
  if (location[0] == '/' || strstr(location, "..")) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: external data location '%s' must be a relative path inside the "
                     "model's directory",
                     what, location);
  }
  if (length >= 0 && (uint64_t)length != expected) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: external data length %lld, expected %zu bytes", what,
                     (long long)length, expected);
  }
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", base_dir, location) >= sizeof path) {
    return hawq_fail(err, HAWQ_ERR_IO, "%s: external data path too long", what);
  }
  /* A symbolic link must not lead out of the model's directory either. */
  char *real_dir = realpath(base_dir, NULL), *real_file = realpath(path, NULL);
  bool inside = real_dir && real_file && !strncmp(real_file, real_dir, strlen(real_dir)) &&
                real_file[strlen(real_dir)] == '/';
  free(real_dir);
  free(real_file);
  if (!inside && access(path, F_OK) == 0) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: external data location '%s' leads outside the model's directory", what,
                     location);
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    return hawq_fail(err, HAWQ_ERR_IO, "%s: cannot open external data file %s: %s", what, path,
                     strerror(errno));
  }
  uint8_t *buf = malloc(expected ? expected : 1);
  if (!buf) {
    fclose(f);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory for %zu bytes", what, expected);
  }
  bool ok = fseeko(f, (off_t)offset, SEEK_SET) == 0 && fread(buf, 1, expected, f) == expected;
  fclose(f);
  if (!ok) {
    free(buf);
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: external data file %s is too short for %zu bytes at offset %lld", what,
                     path, expected, (long long)offset);
  }
  *out = buf;
  return HAWQ_OK;
}

hawq_status tensor_to_value(const Onnx__TensorProto *t, const char *base_dir, const char *what,
                            value *out, hawq_error *err) {
  memset(out, 0, sizeof *out);
  int dtype = t->has_data_type ? t->data_type : 0;
  if (t->n_dims > HAWQ_MAX_RANK) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: rank %zu, hawq supports up to %d", what,
                     t->n_dims, HAWQ_MAX_RANK);
  }
  int64_t dims[HAWQ_MAX_RANK];
  for (size_t k = 0; k < t->n_dims; k++) {
    dims[k] = t->dims[k];
    if (dims[k] < 0) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: dimension %zu is %lld, expected >= 0", what, k,
                       (long long)dims[k]);
    }
  }
  int rank = (int)t->n_dims;
  int64_t n = shape_numel(rank, dims);
  if (n < 0) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: more than 2^32 elements (the limit for one tensor)", what);
  }
  bool is_float = dtype == ONNX_FLOAT || dtype == ONNX_DOUBLE;
  size_t esize = dtype_size(dtype);
  if (esize == 0) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: element type %s (%d) is not supported", what,
                     onnx_dtype_name(dtype), dtype);
  }
  if (t->segment) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
  }

  const uint8_t *raw = NULL;
  uint8_t *external = NULL;
  size_t expected = (size_t)n * esize;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    hawq_status st = read_external(t, base_dir, what, expected, &external, err);
    if (st) return st;
    raw = external;
  } else if (t->has_raw_data) {
    if (t->raw_data.len != expected) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: raw_data has %zu bytes, expected %zu for %lld %s",
                       what, t->raw_data.len, expected, (long long)n, onnx_dtype_name(dtype));
    }
    raw = t->raw_data.data;
  } else {
    /* Typed fields: which one depends on the element type. */
    size_t have;
    switch (dtype) {
      case ONNX_FLOAT:
        have = t->n_float_data;
        break;
      case ONNX_DOUBLE:
        have = t->n_double_data;
        break;
      case ONNX_INT64:
        have = t->n_int64_data;
        break;
      case ONNX_UINT32:
      case ONNX_UINT64:
        have = t->n_uint64_data;
        break;
      default:
        have = t->n_int32_data;
        break;
    }
    if (have != (size_t)n) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: %zu values stored, expected %lld", what, have,
                       (long long)n);
    }
  }

  if (!value_make_const(out, is_float ? CONST_FLOAT : CONST_INT, rank, dims)) {
    free(external);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", what);
  }
  out->onnx_dtype = dtype;
  for (int64_t k = 0; k < n; k++) {
    if (is_float) {
      double v;
      if (raw)
        v = raw_as_double(raw, dtype, k);
      else
        v = dtype == ONNX_FLOAT ? t->float_data[k] : t->double_data[k];
      out->f[k] = (float)v;
    } else {
      int64_t v;
      if (raw) {
        v = raw_as_int(raw, dtype, k);
      } else {
        switch (dtype) {
          case ONNX_INT64:
            v = t->int64_data[k];
            break;
          case ONNX_UINT32:
          case ONNX_UINT64:
            v = (int64_t)t->uint64_data[k];
            break;
          default:
            v = t->int32_data[k];
            break;
        }
      }
      out->i[k] = (hawq_sym){v, 0};
    }
  }
  free(external);
  return HAWQ_OK;
}

const Onnx__AttributeProto *attr_find(const Onnx__NodeProto *n, const char *name) {
  for (size_t k = 0; k < n->n_attribute; k++) {
    if (strcmp(S(n->attribute[k]->name), name) == 0) return n->attribute[k];
  }
  return NULL;
}

static hawq_status attr_type_fail(const node_ctx *c, const char *name, const char *expected,
                                  hawq_error *err) {
  return node_fail(c, err, HAWQ_ERR_PARSE, "attribute '%s' is not %s", name, expected);
}

hawq_status attr_int(const node_ctx *c, const Onnx__NodeProto *n, const char *name, int64_t def,
                     int64_t *out, hawq_error *err) {
  const Onnx__AttributeProto *a = attr_find(n, name);
  if (!a) {
    *out = def;
    return HAWQ_OK;
  }
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) {
    return attr_type_fail(c, name, "an integer", err);
  }
  *out = a->i;
  return HAWQ_OK;
}

hawq_status attr_float(const node_ctx *c, const Onnx__NodeProto *n, const char *name, float def,
                       float *out, hawq_error *err) {
  const Onnx__AttributeProto *a = attr_find(n, name);
  if (!a) {
    *out = def;
    return HAWQ_OK;
  }
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) {
    return attr_type_fail(c, name, "a float", err);
  }
  *out = a->f;
  return HAWQ_OK;
}

hawq_status attr_ints(const node_ctx *c, const Onnx__NodeProto *n, const char *name, int max,
                      int64_t *out, int *count, hawq_error *err) {
  const Onnx__AttributeProto *a = attr_find(n, name);
  if (!a) {
    *count = -1;
    return HAWQ_OK;
  }
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) {
    return attr_type_fail(c, name, "a list of integers", err);
  }
  if (a->n_ints > (size_t)max) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "attribute '%s' has %zu values, at most %d",
                     name, a->n_ints, max);
  }
  for (size_t k = 0; k < a->n_ints; k++) out[k] = a->ints[k];
  *count = (int)a->n_ints;
  return HAWQ_OK;
}

hawq_status attr_string(const node_ctx *c, const Onnx__NodeProto *n, const char *name,
                        const char *def, char *buf, size_t size, hawq_error *err) {
  const Onnx__AttributeProto *a = attr_find(n, name);
  if (!a) {
    snprintf(buf, size, "%s", def);
    return HAWQ_OK;
  }
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING) {
    return attr_type_fail(c, name, "a string", err);
  }
  size_t len = a->s.len < size - 1 ? a->s.len : size - 1;
  if (len) memcpy(buf, a->s.data, len);
  buf[len] = '\0';
  return HAWQ_OK;
}

hawq_status const_ints(const node_ctx *c, const value *v, const char *what, int max, int64_t *out,
                       int *count, hawq_error *err) {
  if (v->kind != VALUE_CONST || v->type != CONST_INT) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "%s must be a constant integer tensor", what);
  }
  if (v->count > max) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "%s has %lld values, at most %d", what,
                     (long long)v->count, max);
  }
  for (int64_t k = 0; k < v->count; k++) {
    if (v->i[k].n != 0) {
      return node_fail(c, err, HAWQ_ERR_UNSUPPORTED,
                       "%s depends on the batch size; hawq needs it constant", what);
    }
    out[k] = v->i[k].c;
  }
  *count = (int)v->count;
  return HAWQ_OK;
}

bool broadcast_shape(int ra, const int64_t *a, int rb, const int64_t *b, int *rout, int64_t *out) {
  int r = ra > rb ? ra : rb;
  for (int k = 0; k < r; k++) {
    int ia = k - (r - ra), ib = k - (r - rb);
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) return false;
    out[k] = da == 1 ? db : da;
  }
  *rout = r;
  return true;
}
