#!/bin/sh
# The integer runtime is integer-only, proven on its machine code: every object file of src/qrt
# (HAWQ_QRT_OBJECTS, ':'-separated, set by tests/CMakeLists.txt) is disassembled and must hold
#   - no x87 instruction (fld, fstp, fadd, fmul, fild, ...),
#   - no SSE/AVX/AVX-512 floating-point arithmetic, compare, conversion or FMA (addss, mulpd,
#     sqrtsd, minps, cmpltpd, ucomisd, cvtsi2sd, any cvt*, vfmadd*, vdpbf16ps, ...); moves,
#     shuffles, bitwise ops and integer SIMD are fine,
#   - no integer division (div, idiv),
# and may call nothing outside itself but memcpy/memset/memmove, the allocator (malloc, calloc,
# posix_memalign, free: a plan allocates its packed weights), OpenMP's runtime (GOMP_*, omp_*:
# threads) and compiler, sanitizer or profiling runtime symbols. None of these compute on the
# data. A self-check first shows the scanner catching a double multiply,
# an integer division and a foreign call in a tiny compiled file. Exit 77: skipped.
set -u

if [ -z "${HAWQ_QRT_OBJECTS:-}" ]; then
  echo "test_no_float: HAWQ_QRT_OBJECTS is not set: skipped"
  exit 77
fi
for tool in objdump nm awk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_no_float: $tool is missing: skipped"
    exit 77
  fi
done

# Prints "file: function: instruction" for every forbidden instruction in the given objects.
scan_instructions() {
  for obj in "$@"; do
    objdump -d --no-show-raw-insn "$obj" | awk -v file="$obj" '
      function forbidden(m) {
        if (m ~ /^f/) return 1                       # x87 (AT&T and Intel mnemonics alike)
        if (m ~ /^v?cvt/) return 1                   # every conversion (cvtsi2sd, vcvtne2ps2bf16, ...)
        if (m ~ /^v?u?comis/) return 1               # ucomiss, comisd, vucomish, ...
        if (m ~ /^vf/) return 1                      # FMA (vfmadd231ps, vfnmsub...), vfpclass, vfixupimm
        if (m ~ /^v?4?fn?m(add|sub)/) return 1      # v4fmaddps and the like
        if (m ~ /^v?dpbf16ps$/ || m ~ /^vdpph$/) return 1
        if (m ~ /^v?(add|sub|mul|div|sqrt|min|max|round|rcp|rsqrt|rcp14|rsqrt14|rcp28|rsqrt28|andn|hadd|hsub|addsub|dp|getexp|getmant|scalef|range|reduce|rndscale|exp2|cmp[a-z_]*)(ss|sd|ps|pd|ph|sh)$/) return 1
        if (m ~ /^i?div[bwlq]?$/) return 1           # integer division
        return 0
      }
      /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn); next }
      /^ *[0-9a-f]+:\t/ {
        text = $0
        sub(/^ *[0-9a-f]+:\t/, "", text)
        n = split(text, w, /[ \t]+/)
        for (i = 1; i <= n; i++) {
          m = w[i]
          # prefixes are not the instruction (note "fs" would otherwise look like x87)
          if (m ~ /^(cs|ds|es|fs|gs|ss|rep|repz|repe|repnz|repne|lock|notrack|bnd|data16|data32|addr16|addr32|xacquire|xrelease|rex.*|\{.*\})$/) continue
          if (forbidden(m)) print file ": " fn ": " text
          break
        }
      }'
  done
}

# Prints "file: symbol" for every undefined symbol that is neither defined by another of the
# given objects nor allowed.
scan_symbols() {
  defined=$(nm --defined-only "$@" 2>/dev/null | awk 'NF >= 3 { print $3 }' | sort -u)
  for obj in "$@"; do
    nm -u "$obj" | awk -v file="$obj" -v defined="$defined" '
      BEGIN { n = split(defined, d, "\n"); for (i = 1; i <= n; i++) ok[d[i]] = 1 }
      {
        s = $NF
        sub(/@.*/, "", s)
        if (s in ok) next
        if (s ~ /^(memcpy|memset|memmove|__memcpy_chk|__memset_chk|__memmove_chk)$/) next
        if (s ~ /^(malloc|calloc|posix_memalign|free)$/) next
        if (s ~ /^(GOMP_|omp_)/) next
        if (s ~ /^(__stack_chk_fail|__stack_chk_guard|_GLOBAL_OFFSET_TABLE_|mcount|_mcount|__fentry__|__gmon_start__)$/) next
        if (s ~ /^(__asan_|__ubsan_|__sanitizer_|__tsan_|__msan_|__hwasan_|__lsan_|__gcov_|__llvm_|__cyg_profile_)/) next
        print file ": calls " s
      }'
  done
}

status=0

# ---- Self-check: the scanner must flag a float multiply, a division and a foreign call ----
cc_bin=""
for c in "${CC:-}" cc gcc clang; do
  if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then
    cc_bin=$c
    break
  fi
done
if [ -z "$cc_bin" ]; then
  echo "test_no_float: no C compiler: self-check skipped"
else
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/hawq-nofloat-XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/bad.c" <<'CEOF'
double scale(double a, double b) { return a * b; }
long quotient(long a, long b) { return a / b; }
extern int foreign(int);
int call(int x) { return foreign(x) + 1; }
CEOF
  cat >"$tmp/good.c" <<'CEOF'
#include <string.h>
long rescale(long x, long m, int c) { return (x * m + (1L << (c - 1))) >> c; }
void copy(void *d, const void *s, unsigned long n) { memcpy(d, s, n); }
CEOF
  if "$cc_bin" -O2 -c -o "$tmp/bad.o" "$tmp/bad.c" && "$cc_bin" -O2 -c -o "$tmp/good.o" "$tmp/good.c"; then
    bad_insns=$(scan_instructions "$tmp/bad.o")
    bad_syms=$(scan_symbols "$tmp/bad.o")
    if ! printf '%s\n' "$bad_insns" | grep -q 'scale: .*mulsd'; then
      echo "test_no_float: self-check FAILED: the double multiply was not flagged"; status=1
    fi
    if ! printf '%s\n' "$bad_insns" | grep -q 'quotient: .*div'; then
      echo "test_no_float: self-check FAILED: the integer division was not flagged"; status=1
    fi
    if ! printf '%s\n' "$bad_syms" | grep -q 'calls foreign'; then
      echo "test_no_float: self-check FAILED: the call to foreign() was not flagged"; status=1
    fi
    good=$(scan_instructions "$tmp/good.o"; scan_symbols "$tmp/good.o")
    if [ -n "$good" ]; then
      echo "test_no_float: self-check FAILED: integer-only code was flagged:"
      printf '%s\n' "$good"
      status=1
    fi
    [ $status -eq 0 ] && echo "test_no_float: self-check passed ($cc_bin: mulsd, div and a foreign call caught)"
  else
    echo "test_no_float: $cc_bin could not compile the self-check: skipped it"
  fi
fi

# ---- The runtime's objects ----
objects=""
old_ifs=$IFS
IFS=:
for obj in $HAWQ_QRT_OBJECTS; do
  IFS=$old_ifs
  if [ ! -f "$obj" ]; then
    echo "test_no_float: object $obj does not exist"
    exit 1
  fi
  objects="$objects $obj"
done
IFS=$old_ifs
count=0
for obj in $objects; do count=$((count + 1)); done
if [ $count -eq 0 ]; then
  echo "test_no_float: HAWQ_QRT_OBJECTS names no object: skipped"
  exit 77
fi

# shellcheck disable=SC2086 # object paths are space-free build paths
insns=$(scan_instructions $objects)
# shellcheck disable=SC2086
syms=$(scan_symbols $objects)
if [ -n "$insns" ]; then
  echo "test_no_float: floating-point or division instructions in the integer runtime:"
  printf '%s\n' "$insns"
  status=1
fi
if [ -n "$syms" ]; then
  echo "test_no_float: the integer runtime calls outside itself:"
  printf '%s\n' "$syms"
  status=1
fi
total=0
for obj in $objects; do
  total=$((total + $(objdump -d --no-show-raw-insn "$obj" | grep -c '^ *[0-9a-f]*:	')))
done
if [ $status -eq 0 ]; then
  echo "test_no_float: $count objects, $total instructions: integer-only, no foreign calls"
fi
exit $status
