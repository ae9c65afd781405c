#!/bin/sh
# Configures and builds one flavour of hawq into build/<flavour>:
#   release  optimised (the default)
#   asan     AddressSanitizer + UndefinedBehaviorSanitizer, optimised with debug info
#   fuzz     clang libFuzzer targets (fuzz/)
set -eu
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=$(nproc 2>/dev/null || echo 2)
case "$flavour" in
  release) cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release ;;
  asan) cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAWQ_SANITIZE=ON ;;
  fuzz) CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAWQ_FUZZ=ON ;;
  *) echo "build.sh: unknown flavour '$flavour' (release, asan or fuzz)" >&2; exit 1 ;;
esac
cmake --build "build/$flavour" -j "$jobs"
