/* IDX reader (the MNIST file format), raw or gzipped. The header is validated before the data
 * buffer is allocated, and the buffer is never larger than the header promises. */
#define ZLIB_CONST
#include "data/idx.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/file.h"
#include "core/status.h"

#define IDX_PREFIX_BYTES 4
#define IDX_TYPE_UBYTE 0x08
/* Deflate spends at least 2 bits on a 258-byte match, so one compressed byte never inflates
 * to more than 1032 bytes: a header promising more than that is a lie we need not allocate for. */
#define DEFLATE_MAX_RATIO 1032
/* The largest gzip file that can hold a valid IDX file: stored blocks add 5 bytes per 64 KiB. */
#define IDX_MAX_FILE_BYTES (HAWQ_IDX_MAX_BYTES + HAWQ_IDX_MAX_BYTES / 1024 + 4096)

static const char *idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return NULL;
  }
}

/* Magic, type and rank: the first 4 bytes. */
static hawq_status check_prefix(const uint8_t *prefix, const char *name, int *rank,
                                hawq_error *err) {
  if (prefix[0] != 0 || prefix[1] != 0) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: bad magic %02x %02x, expected 00 00 (IDX) or 1f 8b (gzip)", name,
                     prefix[0], prefix[1]);
  }
  uint8_t type = prefix[2];
  if (type != IDX_TYPE_UBYTE) {
    const char *type_name = idx_type_name(type);
    if (type_name) {
      return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                       "%s: element type 0x%02X (%s) is not supported, expected 0x08 (unsigned "
                       "byte)",
                       name, type, type_name);
    }
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: type byte 0x%02X is not an IDX element type, expected 0x08 (unsigned "
                     "byte)",
                     name, type);
  }
  *rank = prefix[3];
  if (*rank < 1 || *rank > HAWQ_IDX_MAX_RANK) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: %d dimensions, expected 1 to %d", name, *rank,
                     HAWQ_IDX_MAX_RANK);
  }
  return HAWQ_OK;
}

/* The big-endian sizes that follow the prefix; *data_bytes is their product. */
static hawq_status check_dims(const uint8_t *dim_bytes, int rank, const char *name, int64_t *dims,
                              uint64_t *data_bytes, hawq_error *err) {
  uint64_t total = 1;
  bool over_limit = false;
  for (int i = 0; i < rank; i++) {
    const uint8_t *b = dim_bytes + 4 * i;
    uint32_t dim = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    if (dim == 0) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: dimension %d is 0, expected >= 1", name, i);
    }
    dims[i] = dim;
    /* total * dim > limit, without overflowing. */
    if (!over_limit && dim > HAWQ_IDX_MAX_BYTES / total) over_limit = true;
    if (!over_limit) total *= dim;
  }
  if (over_limit) {
    char shape[64] = "";
    size_t used = 0;
    for (int i = 0; i < rank; i++) {
      int n = snprintf(shape + used, sizeof shape - used, "%s%" PRId64, i ? "x" : "", dims[i]);
      if (n < 0 || (size_t)n >= sizeof shape - used) break;
      used += (size_t)n;
    }
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: dimensions %s exceed the limit of %" PRIu64 " data bytes", name, shape,
                     (uint64_t)HAWQ_IDX_MAX_BYTES);
  }
  if (total > SIZE_MAX) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: %" PRIu64 " data bytes do not fit this machine's address space", name,
                     total);
  }
  *data_bytes = total;
  return HAWQ_OK;
}

static hawq_status read_raw(const uint8_t *buf, size_t size, const char *name, hawq_idx *out,
                            hawq_error *err) {
  if (size < IDX_PREFIX_BYTES) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated header: %zu bytes, expected at least %d",
                     name, size, IDX_PREFIX_BYTES);
  }
  int rank = 0;
  hawq_status s = check_prefix(buf, name, &rank, err);
  if (s != HAWQ_OK) return s;
  size_t header_bytes = IDX_PREFIX_BYTES + 4 * (size_t)rank;
  if (size < header_bytes) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: truncated header: %zu bytes, expected %zu for %d dimensions", name, size,
                     header_bytes, rank);
  }
  int64_t dims[HAWQ_IDX_MAX_RANK] = {0};
  uint64_t data_bytes = 0;
  s = check_dims(buf + IDX_PREFIX_BYTES, rank, name, dims, &data_bytes, err);
  if (s != HAWQ_OK) return s;
  size_t have = size - header_bytes;
  if (have < data_bytes) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated: %zu of %" PRIu64 " data bytes", name,
                     have, data_bytes);
  }
  if (have > data_bytes) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: trailing data: %" PRIu64 " bytes after the %" PRIu64 " data bytes", name,
                     (uint64_t)(have - data_bytes), data_bytes);
  }
  uint8_t *data = malloc(data_bytes);
  if (!data) {
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: cannot allocate %" PRIu64 " bytes", name,
                     data_bytes);
  }
  memcpy(data, buf + header_bytes, data_bytes);
  out->rank = rank;
  memcpy(out->dims, dims, sizeof dims);
  out->data = data;
  out->size = data_bytes;
  return HAWQ_OK;
}

/* A gzip file inflated piece by piece; several concatenated members form one stream. */
typedef struct gz_source {
  z_stream zs;
  const uint8_t *rest; /* input not yet handed to zlib */
  size_t rest_size;
  bool ended;   /* the last member ended with nothing after it */
  bool cut_off; /* the input ran out inside a member */
  const char *name;
} gz_source;

/* Inflates up to `want` bytes; fewer only when the stream ended or was cut off. */
static hawq_status gz_inflate(gz_source *src, uint8_t *dst, size_t want, size_t *got,
                              hawq_error *err) {
  z_stream *zs = &src->zs;
  *got = 0;
  while (*got < want && !src->ended && !src->cut_off) {
    if (zs->avail_in == 0 && src->rest_size > 0) {
      uInt chunk = src->rest_size > UINT_MAX ? UINT_MAX : (uInt)src->rest_size;
      zs->next_in = src->rest;
      zs->avail_in = chunk;
      src->rest += chunk;
      src->rest_size -= chunk;
    }
    size_t room = want - *got;
    zs->next_out = dst + *got;
    zs->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    uInt room_before = zs->avail_out;
    int rc = inflate(zs, Z_NO_FLUSH);
    *got += room_before - zs->avail_out;
    switch (rc) {
      case Z_OK:
        break;
      case Z_STREAM_END:
        /* Take back what zlib did not read; it may be another gzip member. */
        src->rest_size += zs->avail_in;
        src->rest = zs->next_in;
        zs->avail_in = 0;
        if (src->rest_size == 0) {
          src->ended = true;
        } else if (src->rest_size >= 2 && src->rest[0] == 0x1f && src->rest[1] == 0x8b) {
          if (inflateReset(zs) != Z_OK) {
            return hawq_fail(err, HAWQ_ERR_INTERNAL, "%s: inflateReset failed", src->name);
          }
        } else {
          return hawq_fail(err, HAWQ_ERR_PARSE,
                           "%s: trailing data: %zu bytes of garbage after the gzip stream",
                           src->name, src->rest_size);
        }
        break;
      case Z_BUF_ERROR:
        /* No progress with output room left: the input is exhausted mid-member. */
        src->cut_off = true;
        break;
      case Z_DATA_ERROR:
        return hawq_fail(err, HAWQ_ERR_PARSE, "%s: corrupt gzip stream (%s)", src->name,
                         zs->msg ? zs->msg : "invalid data");
      case Z_NEED_DICT:
        return hawq_fail(err, HAWQ_ERR_PARSE,
                         "%s: corrupt gzip stream (asks for a preset dictionary)", src->name);
      case Z_MEM_ERROR:
        return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory in zlib inflate", src->name);
      default:
        return hawq_fail(err, HAWQ_ERR_INTERNAL, "%s: zlib inflate returned %d", src->name, rc);
    }
  }
  return HAWQ_OK;
}

/* Inflates exactly `want` header bytes or fails naming what was missing. */
static hawq_status gz_header_bytes(gz_source *src, uint8_t *dst, size_t want, size_t already,
                                   hawq_error *err) {
  size_t got = 0;
  hawq_status s = gz_inflate(src, dst, want, &got, err);
  if (s != HAWQ_OK) return s;
  if (got < want) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated header: %zu bytes, expected %zu%s",
                     src->name, already + got, already + want,
                     src->cut_off ? " (the gzip stream is cut off)" : "");
  }
  return HAWQ_OK;
}

static hawq_status read_gzip_stream(gz_source *src, size_t compressed_size, hawq_idx *out,
                                    hawq_error *err) {
  const char *name = src->name;
  uint8_t header[IDX_PREFIX_BYTES + 4 * HAWQ_IDX_MAX_RANK];
  hawq_status s = gz_header_bytes(src, header, IDX_PREFIX_BYTES, 0, err);
  if (s != HAWQ_OK) return s;
  int rank = 0;
  s = check_prefix(header, name, &rank, err);
  if (s != HAWQ_OK) return s;
  s = gz_header_bytes(src, header + IDX_PREFIX_BYTES, 4 * (size_t)rank, IDX_PREFIX_BYTES, err);
  if (s != HAWQ_OK) return s;
  int64_t dims[HAWQ_IDX_MAX_RANK] = {0};
  uint64_t data_bytes = 0;
  s = check_dims(header + IDX_PREFIX_BYTES, rank, name, dims, &data_bytes, err);
  if (s != HAWQ_OK) return s;
  if (compressed_size <= UINT64_MAX / DEFLATE_MAX_RATIO &&
      data_bytes > (uint64_t)compressed_size * DEFLATE_MAX_RATIO) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: truncated: the header promises %" PRIu64
                     " data bytes, more than a %zu-byte gzip stream can hold",
                     name, data_bytes, compressed_size);
  }

  uint8_t *data = malloc(data_bytes);
  if (!data) {
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: cannot allocate %" PRIu64 " bytes", name,
                     data_bytes);
  }
  size_t got = 0;
  s = gz_inflate(src, data, data_bytes, &got, err);
  if (s == HAWQ_OK && got < data_bytes) {
    s = hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated: %zu of %" PRIu64 " data bytes%s", name, got,
                  data_bytes, src->cut_off ? " (the gzip stream is cut off)" : "");
  }
  /* Inflate to the end: that counts any extra bytes and checks every member's CRC. */
  uint64_t extra = 0;
  while (s == HAWQ_OK && !src->ended && !src->cut_off) {
    uint8_t scratch[4096];
    s = gz_inflate(src, scratch, sizeof scratch, &got, err);
    extra += got;
  }
  if (s == HAWQ_OK && extra > 0) {
    s = hawq_fail(err, HAWQ_ERR_PARSE,
                  "%s: trailing data: %" PRIu64 " bytes after the %" PRIu64 " data bytes", name,
                  extra, data_bytes);
  }
  if (s == HAWQ_OK && src->cut_off) {
    s = hawq_fail(err, HAWQ_ERR_PARSE, "%s: truncated gzip stream: it ends before its CRC trailer",
                  name);
  }
  if (s != HAWQ_OK) {
    free(data);
    return s;
  }
  out->rank = rank;
  memcpy(out->dims, dims, sizeof dims);
  out->data = data;
  out->size = data_bytes;
  return HAWQ_OK;
}

static hawq_status read_gzip(const uint8_t *buf, size_t size, const char *name, hawq_idx *out,
                             hawq_error *err) {
  gz_source src = {.rest = buf, .rest_size = size, .name = name};
  /* 15 + 32: largest window, and detect the gzip (or zlib) wrapper. */
  int rc = inflateInit2(&src.zs, 15 + 32);
  if (rc != Z_OK) {
    return hawq_fail(err, rc == Z_MEM_ERROR ? HAWQ_ERR_NO_MEMORY : HAWQ_ERR_INTERNAL,
                     "%s: zlib inflateInit2 failed (%d)", name, rc);
  }
  hawq_status s = read_gzip_stream(&src, size, out, err);
  inflateEnd(&src.zs);
  return s;
}

hawq_status hawq_idx_read_buffer(const void *buf, size_t size, const char *name, hawq_idx *out,
                                 hawq_error *err) {
  if (!name) name = "<buffer>";
  if (!out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no output given", name);
  memset(out, 0, sizeof *out);
  if (!buf && size > 0) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no buffer given", name);
  if (size == 0) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: empty, expected an IDX header", name);
  }
  const uint8_t *bytes = buf;
  if (size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    return read_gzip(bytes, size, name, out, err);
  }
  return read_raw(bytes, size, name, out, err);
}

hawq_status hawq_idx_read_file(const char *path, hawq_idx *out, hawq_error *err) {
  if (out) memset(out, 0, sizeof *out);
  if (!path) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "no IDX file path given");
  if (!out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no output given", path);
  uint8_t *bytes = NULL;
  size_t size = 0;
  hawq_status s = hawq_read_file(path, IDX_MAX_FILE_BYTES, NULL, (void **)&bytes, &size, err);
  if (s != HAWQ_OK) return s;
  s = hawq_idx_read_buffer(bytes, size, path, out, err);
  free(bytes);
  return s;
}

void hawq_idx_free(hawq_idx *idx) {
  if (!idx) return;
  free(idx->data);
  memset(idx, 0, sizeof *idx);
}
