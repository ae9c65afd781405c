/* Tests for .npy: float32 arrays written and read back bit for bit, the written bytes checked
 * against the format as numpy lays it out, hand-built files of every accepted dtype, and broken
 * headers and data rejected with the right status and a message naming the file. */
#include <dirent.h>
#include <sys/stat.h>

#include "core/status.h"
#include "data/npy.h"
#include "test_util.h"

#define MAX_FILE 4096

typedef struct byte_buf {
  uint8_t bytes[MAX_FILE];
  size_t size;
} byte_buf;

static void tmp_path(char *out, size_t size, const char *file) {
  snprintf(out, size, "%s/%s", test_tmpdir(), file);
}

/* Removes the files this test left in its temp dir, then the dir. */
static void remove_tmpdir(void) {
  DIR *dir = opendir(test_tmpdir());
  if (!dir) return;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[512];
    tmp_path(path, sizeof path, e->d_name);
    remove(path);
  }
  closedir(dir);
  remove(test_tmpdir());
}

/* Counts temp-dir entries whose name contains ".tmp." (left-overs of an atomic write). */
static int count_temp_files(void) {
  DIR *dir = opendir(test_tmpdir());
  if (!dir) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
  closedir(dir);
  return n;
}

static void put_le(uint8_t *dst, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) dst[i] = (uint8_t)(v >> (8 * i));
}

/* A .npy file of the given major version with `dict` as the header text, unpadded. */
static void build_npy(byte_buf *b, int major, const char *dict, const void *data,
                      size_t data_size) {
  size_t dict_len = strlen(dict);
  size_t len_bytes = major == 1 ? 2 : 4;
  REQUIRE(10 + dict_len + data_size <= MAX_FILE, "test file too large");
  memcpy(b->bytes, "\x93NUMPY", 6);
  b->bytes[6] = (uint8_t)major;
  b->bytes[7] = 0;
  put_le(b->bytes + 8, dict_len, (int)len_bytes);
  memcpy(b->bytes + 8 + len_bytes, dict, dict_len);
  b->size = 8 + len_bytes + dict_len;
  if (data_size) memcpy(b->bytes + b->size, data, data_size);
  b->size += data_size;
}

static void check_zeroed(const hawq_npy *npy, const char *what) {
  CHECK(npy->data == NULL && npy->count == 0 && npy->rank == 0 && npy->dtype == 0,
        "%s: output not zeroed after a failure", what);
}

/* Reads the bytes as a buffer and as a file; both must fail with `status` and `word`. */
static void expect_fail(const char *file, const byte_buf *b, hawq_status status, const char *word) {
  hawq_npy npy;
  memset(&npy, 0xAB, sizeof npy);
  hawq_error err = {0};
  hawq_status s = hawq_npy_read_buffer(b->bytes, b->size, file, &npy, &err);
  CHECK(s == status, "%s: status %d, expected %d (%s)", file, s, status, err.msg);
  CHECK(strncmp(err.msg, file, strlen(file)) == 0 && strstr(err.msg, word) != NULL,
        "%s: message should start with the name and contain '%s': %s", file, word, err.msg);
  CHECK(strchr(err.msg, '\n') == NULL, "%s: message has a newline", file);
  check_zeroed(&npy, file);
  if (s == HAWQ_OK) hawq_npy_free(&npy);

  char path[512];
  tmp_path(path, sizeof path, file);
  int written = test_write_file(path, b->bytes, b->size);
  REQUIRE(written == 0, "write %s", path);
  memset(&npy, 0xAB, sizeof npy);
  s = hawq_npy_read_file(path, &npy, &err);
  CHECK(s == status, "%s: status %d, expected %d (%s)", path, s, status, err.msg);
  CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, word) != NULL,
        "%s: message should start with the path and contain '%s': %s", path, word, err.msg);
  check_zeroed(&npy, path);
  if (s == HAWQ_OK) hawq_npy_free(&npy);
}

static hawq_npy expect_ok(const char *file, const byte_buf *b) {
  hawq_npy npy;
  hawq_error err = {0};
  hawq_status s = hawq_npy_read_buffer(b->bytes, b->size, file, &npy, &err);
  CHECK(s == HAWQ_OK, "%s: %s", file, err.msg);
  return npy;
}

/* The shape as numpy's repr writes it: (), (5,), (2, 3). */
static void shape_repr(char *out, size_t size, int rank, const int64_t *dims) {
  size_t n = (size_t)snprintf(out, size, "(");
  for (int i = 0; i < rank; i++) {
    n += (size_t)snprintf(out + n, size - n, i ? ", %" PRId64 : "%" PRId64, dims[i]);
  }
  snprintf(out + n, size - n, rank == 1 ? ",)" : ")");
}

/* Ranks 0..3 with random shapes and values, plus the bit patterns a float can hold. */
static void test_round_trip(test_rng *rng) {
  static float data[4096];
  for (int trial = 0; trial < 16; trial++) {
    int rank = trial % 4;
    int64_t dims[3];
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
      dims[i] = test_rng_int(rng, 1, rank == 1 ? 2000 : 12);
      count *= (size_t)dims[i];
    }
    for (size_t i = 0; i < count; i++) {
      uint32_t bits = (uint32_t)test_rng_next(rng); /* every pattern: NaNs, denormals, -0 */
      memcpy(&data[i], &bits, sizeof bits);
    }
    if (count >= 4) {
      data[0] = -0.0f;
      data[1] = INFINITY;
      data[2] = 1e-45f;
      data[3] = NAN;
    }
    char path[512];
    tmp_path(path, sizeof path, "round.npy");
    hawq_error err = {0};
    CHECK(hawq_npy_write_f32(path, rank, dims, data, &err) == HAWQ_OK, "write rank %d: %s", rank,
          err.msg);

    /* The bytes as numpy lays them out: version 1.0, header padded to 64, little-endian data. */
    size_t size = 0;
    uint8_t *file = test_read_file(path, &size);
    REQUIRE(file != NULL && size >= 10, "read back %s", path);
    CHECK(memcmp(file, "\x93NUMPY\x01\x00", 8) == 0, "magic and version 1.0");
    size_t header_len = file[8] | (size_t)file[9] << 8;
    size_t data_start = 10 + header_len;
    CHECK(data_start % 64 == 0, "data starts at %zu, expected a multiple of 64", data_start);
    CHECK(data_start <= size && file[data_start - 1] == '\n', "header ends with a newline");
    char expected_dict[256], shape[128];
    shape_repr(shape, sizeof shape, rank, dims);
    snprintf(expected_dict, sizeof expected_dict,
             "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t dict_len = strlen(expected_dict);
    CHECK(header_len >= dict_len && memcmp(file + 10, expected_dict, dict_len) == 0,
          "header should start with %s", expected_dict);
    for (size_t i = 10 + dict_len; i + 1 < data_start && i < size; i++) {
      CHECK(file[i] == ' ', "padding byte %zu is 0x%02x, expected a space", i, file[i]);
    }
    CHECK(size == data_start + 4 * count, "file size %zu, expected %zu", size,
          data_start + 4 * count);
    for (size_t i = 0; i < count && data_start + 4 * i + 4 <= size; i++) {
      uint32_t bits;
      memcpy(&bits, &data[i], sizeof bits);
      const uint8_t *p = file + data_start + 4 * i;
      uint32_t stored = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      if (stored != bits) {
        CHECK(stored == bits, "element %zu stored as 0x%08x, expected 0x%08x", i, stored, bits);
        break;
      }
    }
    free(file);

    hawq_npy npy;
    CHECK(hawq_npy_read_file(path, &npy, &err) == HAWQ_OK, "read rank %d: %s", rank, err.msg);
    CHECK(npy.dtype == HAWQ_NPY_F32 && npy.rank == rank && npy.count == count,
          "dtype %d rank %d count %zu, expected f32 rank %d count %zu", npy.dtype, npy.rank,
          npy.count, rank, count);
    for (int i = 0; i < rank; i++) CHECK(npy.dims[i] == dims[i], "dims[%d]", i);
    CHECK(npy.data && memcmp(npy.data, data, 4 * count) == 0, "data differs (rank %d)", rank);
    hawq_npy_free(&npy);
    check_zeroed(&npy, "after hawq_npy_free");
  }
  CHECK(count_temp_files() == 0, "temporary files left behind");

  /* Overwriting an existing file replaces it. */
  char path[512];
  tmp_path(path, sizeof path, "round.npy");
  float one = 7.5f;
  hawq_error err = {0};
  CHECK(hawq_npy_write_f32(path, 0, NULL, &one, &err) == HAWQ_OK, "%s", err.msg);
  hawq_npy npy;
  CHECK(hawq_npy_read_file(path, &npy, &err) == HAWQ_OK, "%s", err.msg);
  CHECK(npy.rank == 0 && npy.count == 1 && npy.data && ((float *)npy.data)[0] == 7.5f,
        "scalar overwrite");
  hawq_npy_free(&npy);
  hawq_npy_free(NULL);
}

static void test_write_errors(void) {
  hawq_error err = {0};
  float x[4] = {0};
  char path[512];
  tmp_path(path, sizeof path, "no-such-dir/out.npy");
  CHECK(hawq_npy_write_f32(path, 1, (int64_t[]){4}, x, &err) == HAWQ_ERR_IO, "missing dir");
  CHECK(strncmp(err.msg, path, strlen(path)) == 0, "message starts with the path: %s", err.msg);

  /* The path is a directory: the temp file is written, the rename fails and the temp file must
   * go. */
  tmp_path(path, sizeof path, "a-directory");
  int made = mkdir(path, 0700);
  REQUIRE(made == 0, "mkdir %s", path);
  CHECK(hawq_npy_write_f32(path, 1, (int64_t[]){4}, x, &err) == HAWQ_ERR_IO, "onto a directory");
  CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, "rename"),
        "message names the path and the rename: %s", err.msg);
  CHECK(count_temp_files() == 0, "temporary file left behind after a failed rename");
  rmdir(path);

  tmp_path(path, sizeof path, "bad.npy");
  CHECK(hawq_npy_write_f32(path, 9, (int64_t[9]){1}, x, &err) == HAWQ_ERR_INVALID_ARG, "rank 9");
  CHECK(hawq_npy_write_f32(path, 2, (int64_t[]){2, -1}, x, &err) == HAWQ_ERR_INVALID_ARG,
        "negative dimension");
  CHECK(strstr(err.msg, "dimension 1") != NULL, "%s", err.msg);
  CHECK(hawq_npy_write_f32(path, 1, (int64_t[]){3}, NULL, &err) == HAWQ_ERR_INVALID_ARG,
        "NULL data");
  CHECK(access(path, F_OK) != 0, "a failed write created %s", path);
}

static void test_dtypes(void) {
  static byte_buf b;
  uint8_t raw[64];

  for (int i = 0; i < 6; i++) raw[i] = (uint8_t)(250 + i);
  build_npy(&b, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }\n", raw, 6);
  hawq_npy npy = expect_ok("u1.npy", &b);
  CHECK(npy.dtype == HAWQ_NPY_U8 && npy.rank == 2 && npy.dims[0] == 2 && npy.dims[1] == 3 &&
            npy.count == 6,
        "u1 shape");
  CHECK(npy.data && memcmp(npy.data, raw, 6) == 0, "u1 data");
  hawq_npy_free(&npy);

  const int64_t ints[3] = {-1, 0, ((int64_t)1 << 40) + 5};
  for (int i = 0; i < 3; i++) put_le(raw + 8 * i, (uint64_t)ints[i], 8);
  build_npy(&b, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", raw, 24);
  npy = expect_ok("i8.npy", &b);
  CHECK(npy.dtype == HAWQ_NPY_I64 && npy.rank == 1 && npy.count == 3, "i8 shape");
  for (int i = 0; i < 3 && npy.data; i++) {
    CHECK(((int64_t *)npy.data)[i] == ints[i], "i8[%d] = %" PRId64, i, ((int64_t *)npy.data)[i]);
  }
  hawq_npy_free(&npy);

  const double doubles[4] = {1.5, -2.25, 1e300, 0.1};
  for (int i = 0; i < 4; i++) {
    uint64_t bits;
    memcpy(&bits, &doubles[i], sizeof bits);
    put_le(raw + 8 * i, bits, 8);
  }
  /* Version 2.0 (4-byte header length), keys in another order, double quotes, no spaces. */
  build_npy(&b, 2, "{\"shape\":(2,2),\"fortran_order\":False,\"descr\":\"<f8\"}", raw, 32);
  npy = expect_ok("f8.npy", &b);
  CHECK(npy.dtype == HAWQ_NPY_F32 && npy.rank == 2 && npy.count == 4, "f8 read as f32");
  for (int i = 0; i < 4 && npy.data; i++) {
    CHECK(((float *)npy.data)[i] == (float)doubles[i], "f8[%d] = %g, expected %g", i,
          ((float *)npy.data)[i], (double)(float)doubles[i]);
  }
  hawq_npy_free(&npy);

  /* Version 3.0, a Python 2 style long, a scalar, an empty array. */
  put_le(raw, 0x40490fdb, 4); /* pi as float32 */
  build_npy(&b, 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1L,), }", raw, 4);
  npy = expect_ok("v3.npy", &b);
  CHECK(npy.rank == 1 && npy.dims[0] == 1 && npy.data && ((float *)npy.data)[0] == 3.14159274f,
        "v3 / 1L");
  hawq_npy_free(&npy);
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", raw, 4);
  npy = expect_ok("scalar.npy", &b);
  CHECK(npy.rank == 0 && npy.count == 1 && npy.data && ((float *)npy.data)[0] == 3.14159274f,
        "scalar");
  hawq_npy_free(&npy);
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", raw, 0);
  npy = expect_ok("empty-array.npy", &b);
  CHECK(npy.rank == 2 && npy.count == 0 && npy.dims[1] == 5, "shape (0, 5)");
  hawq_npy_free(&npy);
}

static void test_bad_files(void) {
  static byte_buf b;
  uint8_t raw[64] = {0};
  const char *good_tail = "'fortran_order': False, 'shape': (2,), }";
  char dict[256];

  snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, }");
  build_npy(&b, 1, dict, raw, 8);
  expect_fail("no-shape.npy", &b, HAWQ_ERR_PARSE, "no 'shape' key");
  build_npy(&b, 1, "{'fortran_order': False, 'shape': (2,), }", raw, 8);
  expect_fail("no-descr.npy", &b, HAWQ_ERR_PARSE, "no 'descr' key");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", raw, 16);
  expect_fail("fortran.npy", &b, HAWQ_ERR_UNSUPPORTED, "fortran_order");
  snprintf(dict, sizeof dict, "{'descr': '>f4', %s", good_tail);
  build_npy(&b, 1, dict, raw, 8);
  expect_fail("big-endian.npy", &b, HAWQ_ERR_UNSUPPORTED, "big-endian");
  snprintf(dict, sizeof dict, "{'descr': '<i4', %s", good_tail);
  build_npy(&b, 1, dict, raw, 8);
  expect_fail("i4.npy", &b, HAWQ_ERR_UNSUPPORTED, "'<i4' is not supported");
  snprintf(dict, sizeof dict, "{'descr': 'f4', %s", good_tail);
  build_npy(&b, 1, dict, raw, 8);
  expect_fail("no-order.npy", &b, HAWQ_ERR_PARSE, "byte order");
  build_npy(&b, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", raw, 8);
  expect_fail("structured.npy", &b, HAWQ_ERR_UNSUPPORTED, "structured");

  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", raw, 8);
  expect_fail("unterminated.npy", &b, HAWQ_ERR_PARSE, "end of the header");
  build_npy(&b, 1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", raw, 8);
  expect_fail("quote.npy", &b, HAWQ_ERR_PARSE, "header");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) }", raw, 8);
  b.bytes[b.size - 8 - 10] = '\0'; /* a NUL inside the key 'shape' */
  expect_fail("nul.npy", &b, HAWQ_ERR_PARSE, "header");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }", raw, 8);
  expect_fail("negative.npy", &b, HAWQ_ERR_PARSE, "negative");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", raw, 8);
  expect_fail("not-tuple.npy", &b, HAWQ_ERR_PARSE, "not a tuple");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }", raw, 8);
  expect_fail("comma.npy", &b, HAWQ_ERR_PARSE, "shape");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", raw, 8);
  expect_fail("bool.npy", &b, HAWQ_ERR_PARSE, "True or False");
  build_npy(&b, 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", raw,
            8);
  expect_fail("duplicate.npy", &b, HAWQ_ERR_PARSE, "duplicate key 'descr'");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", raw, 8);
  expect_fail("extra-key.npy", &b, HAWQ_ERR_PARSE, "unknown key 'x'");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", raw, 8);
  expect_fail("after-dict.npy", &b, HAWQ_ERR_PARSE, "padding");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", raw,
            4);
  expect_fail("rank9.npy", &b, HAWQ_ERR_UNSUPPORTED, "more than 8 dimensions");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
            raw, 4);
  expect_fail("too-large.npy", &b, HAWQ_ERR_PARSE, "too large");
  /* 2^32 * 2^32 * 4 bytes overflows 64 bits: must be rejected, not allocated. */
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
            raw, 4);
  expect_fail("overflow.npy", &b, HAWQ_ERR_PARSE, "too large");
  /* Empty, but the other dims still may not overflow. */
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296)}",
            raw, 0);
  expect_fail("overflow-empty.npy", &b, HAWQ_ERR_PARSE, "too large");
  build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,)}", raw, 4);
  expect_fail("huge.npy", &b, HAWQ_ERR_PARSE, "truncated: 4 of 4000000000 data bytes");

  snprintf(dict, sizeof dict, "{'descr': '<f4', %s", good_tail);
  build_npy(&b, 1, dict, raw, 7);
  expect_fail("short.npy", &b, HAWQ_ERR_PARSE, "truncated: 7 of 8 data bytes");
  build_npy(&b, 1, dict, raw, 9);
  expect_fail("long.npy", &b, HAWQ_ERR_PARSE, "trailing data: 1 bytes");

  build_npy(&b, 1, dict, raw, 8);
  b.bytes[1] = 'X';
  expect_fail("magic.npy", &b, HAWQ_ERR_PARSE, "magic");
  build_npy(&b, 4, dict, raw, 8);
  expect_fail("version.npy", &b, HAWQ_ERR_UNSUPPORTED, "version 4.0");
  build_npy(&b, 1, dict, raw, 0);
  b.size = 20; /* the header length says more than there is */
  expect_fail("cut-header.npy", &b, HAWQ_ERR_PARSE, "truncated header");
  b.size = 9;
  expect_fail("cut-length.npy", &b, HAWQ_ERR_PARSE, "truncated header");
  b.size = 0;
  expect_fail("empty.npy", &b, HAWQ_ERR_PARSE, "empty");

  char path[512];
  tmp_path(path, sizeof path, "missing.npy");
  hawq_npy npy;
  hawq_error err = {0};
  CHECK(hawq_npy_read_file(path, &npy, &err) == HAWQ_ERR_IO, "missing file");
  CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, "cannot open"), "%s", err.msg);
  check_zeroed(&npy, "missing file");
}

int main(void) {
  test_rng rng = test_rng_seeded("test_npy");
  test_round_trip(&rng);
  test_write_errors();
  test_dtypes();
  test_bad_files();
  int result = test_report("test_npy");
  if (result == 0) remove_tmpdir(); /* kept for inspection on failure */
  return result;
}
