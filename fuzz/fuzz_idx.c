/* libFuzzer target for the IDX reader (raw and gzipped): it must never crash, read out of
 * bounds or leak, and whatever it accepts must be consistent with its own header. */
#include <stddef.h>
#include <stdint.h>

#include "data/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hawq_idx idx;
  hawq_error err;
  if (hawq_idx_read_buffer(data, size, "fuzz.idx", &idx, &err) != HAWQ_OK) return 0;
  /* Accepted: the dims must multiply to the size, and every byte must be readable. */
  uint64_t product = 1;
  for (int i = 0; i < idx.rank; i++) product *= (uint64_t)idx.dims[i];
  if (idx.rank < 1 || idx.rank > HAWQ_IDX_MAX_RANK || product != idx.size) __builtin_trap();
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < idx.size; i++) sink ^= idx.data[i];
  (void)sink;
  hawq_idx_free(&idx);
  return 0;
}
