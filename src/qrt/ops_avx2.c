/* ops_simd.h compiled for AVX2 (CMakeLists.txt sets this file's flags). */
#include <string.h>
#define QRT_OPS(name) qrt_ops_##name##_avx2
#include "qrt/ops_simd.h"
