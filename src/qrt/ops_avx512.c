/* ops_simd.h compiled for AVX-512 F/BW/DQ/VL (CMakeLists.txt sets this file's flags). */
#include <string.h>
#define QRT_OPS(name) qrt_ops_##name##_avx512
#include "qrt/ops_simd.h"
