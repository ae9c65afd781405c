/* CPU feature detection for the integer kernels: run once when a plan is made, never inside
 * the runtime (whose objects may call nothing outside themselves). gcc's and clang's
 * __builtin_cpu_supports also check that the operating system saves the AVX/AVX-512 state. */
#include <string.h>

#include "hawq/hawq.h"

static const char *const isa_names[HAWQ_ISA_COUNT] = {"scalar", "avx2", "avx512vnni"};

hawq_isa hawq_isa_best(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
    return HAWQ_ISA_AVX512VNNI;
  }
  if (__builtin_cpu_supports("avx2")) return HAWQ_ISA_AVX2;
#endif
  return HAWQ_ISA_SCALAR;
}

const char *hawq_isa_name(hawq_isa isa) {
  return isa >= 0 && isa < HAWQ_ISA_COUNT ? isa_names[isa] : "?";
}

hawq_isa hawq_isa_parse(const char *s) {
  for (int i = 0; i < HAWQ_ISA_COUNT; i++) {
    if (s && strcmp(s, isa_names[i]) == 0) return (hawq_isa)i;
  }
  return HAWQ_ISA_COUNT;
}
