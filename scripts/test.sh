#!/bin/sh
# The test command: installs what hawq needs, builds it twice (Release, and ASan + UBSan), runs
# the whole ctest suite on both, then builds the libFuzzer targets and runs each for 30 s.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh release
(cd build/release && ctest --output-on-failure)
./scripts/build.sh asan
(cd build/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure)
./scripts/build.sh fuzz
./scripts/fuzz.sh "${HAWQ_FUZZ_SECONDS:-30}"
echo "test.sh: all tests passed"
