/* libFuzzer target for the .npy reader: it must never crash, read out of bounds or leak, and
 * whatever it accepts must be consistent with its own header. */
#include <stddef.h>
#include <stdint.h>

#include "data/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hawq_npy npy;
  hawq_error err;
  if (hawq_npy_read_buffer(data, size, "fuzz.npy", &npy, &err) != HAWQ_OK) return 0;
  /* Accepted: the dims must multiply to the count, and every element must be readable. */
  uint64_t product = 1;
  for (int i = 0; i < npy.rank; i++) product *= (uint64_t)npy.dims[i];
  size_t elem = npy.dtype == HAWQ_NPY_U8 ? 1 : npy.dtype == HAWQ_NPY_I64 ? 8 : 4;
  if (npy.rank < 0 || npy.rank > HAWQ_NPY_MAX_RANK || product != npy.count ||
      npy.count * elem > size) {
    __builtin_trap();
  }
  volatile uint8_t sink = 0;
  const uint8_t *bytes = npy.data;
  for (size_t i = 0; i < npy.count * elem; i++) sink ^= bytes[i];
  (void)sink;
  hawq_npy_free(&npy);
  return 0;
}
