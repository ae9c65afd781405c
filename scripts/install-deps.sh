#!/bin/sh
# Installs every Debian package hawq needs to build, test and run. Idempotent: packages already
# present are left alone, and nothing is downloaded when all are installed.
# Run as root, or as a user with sudo.
set -eu

PACKAGES="
  build-essential cmake pkg-config
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  libdnnl-dev
  zlib1g-dev libcjson-dev libglpk-dev libpng-dev
  clang clang-format libclang-rt-14-dev
  dataset-fashion-mnist libonnx-testdata
  python3
  chromium
"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to install:$missing" >&2
    exit 1
  fi
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
