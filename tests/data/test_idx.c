/* Tests for the IDX reader: files built here byte by byte (raw and gzipped) read back exactly,
 * and every kind of broken file rejected with the right status and a message naming it. */
#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/status.h"
#include "data/idx.h"
#include "test_util.h"

#define MAX_FILE 65536

typedef struct byte_buf {
  uint8_t bytes[MAX_FILE];
  size_t size;
} byte_buf;

/* An IDX file: 00 00 <type> <rank>, big-endian uint32 dims, then `data_size` bytes of data. */
static void build_idx(byte_buf *b, uint8_t type, int rank, const uint32_t *dims,
                      const uint8_t *data, size_t data_size) {
  b->size = 0;
  b->bytes[b->size++] = 0;
  b->bytes[b->size++] = 0;
  b->bytes[b->size++] = type;
  b->bytes[b->size++] = (uint8_t)rank;
  for (int i = 0; i < rank; i++) {
    for (int shift = 24; shift >= 0; shift -= 8) b->bytes[b->size++] = (uint8_t)(dims[i] >> shift);
  }
  REQUIRE(b->size + data_size <= MAX_FILE, "test file too large");
  if (data_size) memcpy(b->bytes + b->size, data, data_size);
  b->size += data_size;
}

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

/* Writes `size` bytes as a gzip file with zlib's own gz writer, in `members` gzip members. */
static void write_gz(const char *path, const uint8_t *data, size_t size, int members) {
  size_t start = 0;
  for (int m = 0; m < members; m++) {
    size_t end = m == members - 1 ? size : size * (size_t)(m + 1) / (size_t)members;
    gzFile gz = gzopen(path, m == 0 ? "wb" : "ab");
    REQUIRE(gz != NULL, "gzopen %s", path);
    int written = end > start ? gzwrite(gz, data + start, (unsigned)(end - start)) : 1;
    int closed = gzclose(gz);
    REQUIRE(written > 0 && closed == Z_OK, "gzwrite/gzclose %s", path);
    start = end;
  }
}

static void check_zeroed(const hawq_idx *idx, const char *what) {
  CHECK(idx->data == NULL && idx->size == 0 && idx->rank == 0 && idx->dims[0] == 0,
        "%s: output not zeroed after a failure", what);
}

/* Reads `path` expecting `status`, a message starting with the path and containing `word`. */
static void expect_file_fail(const char *path, hawq_status status, const char *word) {
  hawq_idx idx;
  memset(&idx, 0xAB, sizeof idx); /* garbage: the reader must zero it */
  hawq_error err = {0};
  hawq_status s = hawq_idx_read_file(path, &idx, &err);
  CHECK(s == status, "%s: status %d, expected %d (%s)", path, s, status, err.msg);
  CHECK(err.status == status, "%s: err.status %d", path, err.status);
  CHECK(strncmp(err.msg, path, strlen(path)) == 0, "%s: message does not start with the path: %s",
        path, err.msg);
  CHECK(strstr(err.msg, word) != NULL, "%s: message lacks '%s': %s", path, word, err.msg);
  CHECK(strchr(err.msg, '\n') == NULL, "%s: message has a newline", path);
  check_zeroed(&idx, path);
  if (s == HAWQ_OK) hawq_idx_free(&idx);
}

/* The same through the buffer entry point, raw bytes written to a file too. */
static void expect_fail(const char *file, const byte_buf *b, hawq_status status, const char *word) {
  hawq_idx idx;
  memset(&idx, 0xAB, sizeof idx);
  hawq_error err = {0};
  hawq_status s = hawq_idx_read_buffer(b->bytes, b->size, file, &idx, &err);
  CHECK(s == status, "%s (buffer): status %d, expected %d (%s)", file, s, status, err.msg);
  CHECK(strncmp(err.msg, file, strlen(file)) == 0 && strstr(err.msg, word) != NULL,
        "%s (buffer): message should start with the name and contain '%s': %s", file, word,
        err.msg);
  check_zeroed(&idx, file);
  if (s == HAWQ_OK) hawq_idx_free(&idx);

  char path[512];
  tmp_path(path, sizeof path, file);
  int written = test_write_file(path, b->bytes, b->size);
  REQUIRE(written == 0, "write %s", path);
  expect_file_fail(path, status, word);
}

static void expect_gz_fail(const char *file, const byte_buf *raw, hawq_status status,
                           const char *word) {
  char path[512];
  tmp_path(path, sizeof path, file);
  write_gz(path, raw->bytes, raw->size, 1);
  expect_file_fail(path, status, word);
}

static void check_same(const hawq_idx *idx, int rank, const uint32_t *dims, const uint8_t *data,
                       size_t data_size, const char *what) {
  CHECK(idx->rank == rank, "%s: rank %d, expected %d", what, idx->rank, rank);
  for (int i = 0; i < rank && i < HAWQ_IDX_MAX_RANK; i++) {
    CHECK(idx->dims[i] == (int64_t)dims[i], "%s: dims[%d] = %" PRId64 ", expected %u", what, i,
          idx->dims[i], dims[i]);
  }
  for (int i = rank; i < HAWQ_IDX_MAX_RANK; i++) {
    CHECK(idx->dims[i] == 0, "%s: unused dims[%d] = %" PRId64, what, i, idx->dims[i]);
  }
  CHECK(idx->size == data_size, "%s: size %zu, expected %zu", what, idx->size, data_size);
  CHECK(idx->data && memcmp(idx->data, data, data_size) == 0, "%s: data differs", what);
}

/* Random shapes of every rank, raw and gzipped (one and three gzip members), file and buffer. */
static void test_round_trip(test_rng *rng) {
  static uint8_t data[32768];
  for (int trial = 0; trial < 24; trial++) {
    int rank = 1 + trial % HAWQ_IDX_MAX_RANK;
    uint32_t dims[HAWQ_IDX_MAX_RANK];
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
      dims[i] = (uint32_t)test_rng_int(rng, 1, rank == 1 ? 3000 : rank == 2 ? 60 : 12);
      n *= dims[i];
    }
    for (size_t i = 0; i < n; i++) {
      /* Half the trials compress well (repetitive), half are noise. */
      data[i] = trial % 2 ? (uint8_t)test_rng_next(rng) : (uint8_t)(i % 7);
    }
    byte_buf *b = malloc(sizeof *b);
    REQUIRE(b != NULL, "malloc");
    build_idx(b, 0x08, rank, dims, data, n);

    char raw_path[512], gz_path[512];
    tmp_path(raw_path, sizeof raw_path, "round.idx");
    tmp_path(gz_path, sizeof gz_path, "round.idx.gz");
    int written = test_write_file(raw_path, b->bytes, b->size);
    REQUIRE(written == 0, "write %s", raw_path);
    write_gz(gz_path, b->bytes, b->size, trial % 3 == 0 ? 3 : 1);

    hawq_error err = {0};
    hawq_idx idx;
    CHECK(hawq_idx_read_file(raw_path, &idx, &err) == HAWQ_OK, "raw trial %d: %s", trial, err.msg);
    check_same(&idx, rank, dims, data, n, "raw file");
    hawq_idx_free(&idx);
    check_zeroed(&idx, "after hawq_idx_free");
    hawq_idx_free(&idx); /* twice is harmless */

    CHECK(hawq_idx_read_file(gz_path, &idx, &err) == HAWQ_OK, "gz trial %d: %s", trial, err.msg);
    check_same(&idx, rank, dims, data, n, "gz file");
    hawq_idx_free(&idx);

    CHECK(hawq_idx_read_buffer(b->bytes, b->size, "mem", &idx, &err) == HAWQ_OK, "raw buffer: %s",
          err.msg);
    check_same(&idx, rank, dims, data, n, "raw buffer");
    hawq_idx_free(&idx);

    size_t gz_size = 0;
    uint8_t *gz = test_read_file(gz_path, &gz_size);
    REQUIRE(gz != NULL, "read %s", gz_path);
    CHECK(gz_size >= 2 && gz[0] == 0x1f && gz[1] == 0x8b, "gzopen wrote no gzip magic");
    CHECK(hawq_idx_read_buffer(gz, gz_size, "mem.gz", &idx, &err) == HAWQ_OK, "gz buffer: %s",
          err.msg);
    check_same(&idx, rank, dims, data, n, "gz buffer");
    hawq_idx_free(&idx);
    free(gz);
    free(b);
  }
  hawq_idx_free(NULL);
}

static void test_bad_headers(void) {
  static byte_buf b;
  uint8_t data[64] = {1, 2, 3, 4, 5, 6};
  uint32_t dims3[3] = {2, 2, 1};

  build_idx(&b, 0x08, 3, dims3, data, 4);
  b.bytes[0] = 0x01;
  expect_fail("magic.idx", &b, HAWQ_ERR_PARSE, "magic");

  build_idx(&b, 0x0D, 3, dims3, data, 16); /* float32: valid IDX, not for us */
  expect_fail("float.idx", &b, HAWQ_ERR_UNSUPPORTED, "0x0D");
  expect_gz_fail("float.idx.gz", &b, HAWQ_ERR_UNSUPPORTED, "not supported");

  build_idx(&b, 0x42, 3, dims3, data, 4);
  expect_fail("type.idx", &b, HAWQ_ERR_PARSE, "type");

  build_idx(&b, 0x08, 0, NULL, NULL, 0);
  expect_fail("rank0.idx", &b, HAWQ_ERR_PARSE, "0 dimensions");

  uint32_t dims5[5] = {1, 1, 1, 1, 2};
  build_idx(&b, 0x08, 5, dims5, data, 2);
  expect_fail("rank5.idx", &b, HAWQ_ERR_PARSE, "5 dimensions");
  expect_gz_fail("rank5.idx.gz", &b, HAWQ_ERR_PARSE, "5 dimensions");

  uint32_t zero_dim[3] = {2, 0, 3};
  build_idx(&b, 0x08, 3, zero_dim, data, 0);
  expect_fail("zerodim.idx", &b, HAWQ_ERR_PARSE, "dimension 1 is 0");

  /* 65536^4 = 2^64: a naive product wraps to 0. The reader must refuse from the 20-byte header
   * alone. */
  uint32_t huge[4] = {65536, 65536, 65536, 65536};
  build_idx(&b, 0x08, 4, huge, NULL, 0);
  expect_fail("huge.idx", &b, HAWQ_ERR_PARSE, "limit");
  expect_gz_fail("huge.idx.gz", &b, HAWQ_ERR_PARSE, "limit");
  /* Exactly one byte over the limit. */
  uint32_t just_over[2] = {65536, 65537};
  build_idx(&b, 0x08, 2, just_over, NULL, 0);
  expect_fail("over.idx", &b, HAWQ_ERR_PARSE, "limit");

  /* Under the limit (almost 4 GiB) but with 3 data bytes: the raw reader sees the file is short,
   * the gzip reader sees that a tiny stream cannot inflate to that much. Neither may allocate. */
  uint32_t big[2] = {65535, 65535};
  build_idx(&b, 0x08, 2, big, data, 3);
  expect_fail("big.idx", &b, HAWQ_ERR_PARSE, "truncated: 3 of 4294836225 data bytes");
  expect_gz_fail("big.idx.gz", &b, HAWQ_ERR_PARSE, "truncated");

  /* Header shorter than its own rank says. */
  build_idx(&b, 0x08, 3, dims3, NULL, 0);
  b.size = 9;
  expect_fail("shorthdr.idx", &b, HAWQ_ERR_PARSE, "truncated header");
  expect_gz_fail("shorthdr.idx.gz", &b, HAWQ_ERR_PARSE, "truncated header");
  b.size = 3;
  expect_fail("tiny.idx", &b, HAWQ_ERR_PARSE, "truncated header");

  b.size = 0;
  expect_fail("empty.idx", &b, HAWQ_ERR_PARSE, "empty");
  /* A gzip stream that inflates to nothing. */
  expect_gz_fail("empty.idx.gz", &b, HAWQ_ERR_PARSE, "truncated header");
}

static void test_bad_data(void) {
  static byte_buf b;
  uint8_t data[64];
  for (int i = 0; i < 64; i++) data[i] = (uint8_t)(3 * i);
  uint32_t dims[2] = {4, 8}; /* 32 data bytes */

  build_idx(&b, 0x08, 2, dims, data, 31);
  expect_fail("short.idx", &b, HAWQ_ERR_PARSE, "truncated: 31 of 32 data bytes");
  expect_gz_fail("short.idx.gz", &b, HAWQ_ERR_PARSE, "truncated: 31 of 32 data bytes");

  build_idx(&b, 0x08, 2, dims, data, 35);
  expect_fail("long.idx", &b, HAWQ_ERR_PARSE, "trailing data: 3 bytes");
  expect_gz_fail("long.idx.gz", &b, HAWQ_ERR_PARSE, "trailing data: 3 bytes");
}

/* Damaged gzip files: cut short, garbage after the stream, flipped bits. */
static void test_bad_gzip(void) {
  static uint8_t data[4096];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)((i * 2654435761u) >> 13);
  static byte_buf b;
  uint32_t dims[3] = {4, 32, 32};
  build_idx(&b, 0x08, 3, dims, data, sizeof data);
  char path[512];
  tmp_path(path, sizeof path, "good.idx.gz");
  write_gz(path, b.bytes, b.size, 1);
  size_t gz_size = 0;
  uint8_t *gz = test_read_file(path, &gz_size);
  REQUIRE(gz != NULL && gz_size > 100, "read %s", path);
  hawq_idx idx;
  hawq_error err = {0};
  CHECK(hawq_idx_read_file(path, &idx, &err) == HAWQ_OK, "%s", err.msg);
  hawq_idx_free(&idx);

  byte_buf *damaged = malloc(sizeof *damaged);
  REQUIRE(damaged != NULL, "malloc");

  /* Cut in the middle of the deflate data, and just before the last trailer byte. */
  memcpy(damaged->bytes, gz, gz_size);
  damaged->size = gz_size / 2;
  expect_fail("cut.idx.gz", damaged, HAWQ_ERR_PARSE, "truncated");
  damaged->size = gz_size - 1;
  expect_fail("cut-trailer.idx.gz", damaged, HAWQ_ERR_PARSE, "truncated gzip stream");
  damaged->size = 5; /* inside the gzip header itself */
  expect_fail("cut-header.idx.gz", damaged, HAWQ_ERR_PARSE, "truncated");

  /* Bytes that are not another gzip member after the stream. */
  memcpy(damaged->bytes + gz_size, "junk", 4);
  damaged->size = gz_size + 4;
  expect_fail("junk.idx.gz", damaged, HAWQ_ERR_PARSE, "trailing data: 4 bytes of garbage");

  /* A flipped CRC bit: the data inflates fine but the check must catch it. */
  memcpy(damaged->bytes, gz, gz_size);
  damaged->size = gz_size;
  damaged->bytes[gz_size - 8] ^= 0x01;
  expect_fail("crc.idx.gz", damaged, HAWQ_ERR_PARSE, "corrupt gzip stream");

  /* A flipped bit in the middle of the deflate body: however zlib notices (bad code, bad
   * distance, wrong length or CRC), it is a parse error naming the file. */
  for (size_t at = 20; at < gz_size - 8; at += (gz_size - 28) / 7) {
    memcpy(damaged->bytes, gz, gz_size);
    damaged->bytes[at] ^= 0x10;
    expect_fail("flip.idx.gz", damaged, HAWQ_ERR_PARSE, "flip.idx.gz");
  }
  /* Deflate block type 3 is reserved: a certain "invalid block type". */
  memcpy(damaged->bytes, gz, gz_size);
  damaged->bytes[10] |= 0x06;
  expect_fail("blocktype.idx.gz", damaged, HAWQ_ERR_PARSE, "corrupt gzip stream");
  free(damaged);
  free(gz);
}

static void test_files(void) {
  char path[512];
  tmp_path(path, sizeof path, "does-not-exist.idx");
  expect_file_fail(path, HAWQ_ERR_IO, "cannot open");
  expect_file_fail(test_tmpdir(), HAWQ_ERR_IO, "directory");

  hawq_error err = {0};
  CHECK(hawq_idx_read_buffer("x", 1, NULL, NULL, &err) == HAWQ_ERR_INVALID_ARG, "NULL out");
  hawq_idx idx;
  CHECK(hawq_idx_read_buffer(NULL, 0, NULL, &idx, &err) == HAWQ_ERR_PARSE, "NULL buffer");
  CHECK(strstr(err.msg, "<buffer>") != NULL, "default name: %s", err.msg);
  CHECK(hawq_idx_read_buffer("abc", 3, "x", &idx, NULL) == HAWQ_ERR_PARSE, "NULL err is fine");
}

int main(void) {
  test_rng rng = test_rng_seeded("test_idx");
  test_round_trip(&rng);
  test_bad_headers();
  test_bad_data();
  test_bad_gzip();
  test_files();
  int result = test_report("test_idx");
  if (result == 0) remove_tmpdir(); /* kept for inspection on failure */
  return result;
}
