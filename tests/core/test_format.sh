#!/bin/sh
# Every C source and header follows .clang-format (Google style, 100 columns). Fix with:
#   clang-format -i $(git ls-files '*.c' '*.h')
command -v clang-format > /dev/null || { echo "skipped: clang-format not installed"; exit 77; }
files=$(git ls-files '*.c' '*.h' 2> /dev/null || find src tests bench fuzz include -name '*.[ch]')
clang-format --dry-run -Werror $files || { echo "test_format: run clang-format -i on the files above" >&2; exit 1; }
echo "test_format: $(echo "$files" | wc -w) files formatted"
