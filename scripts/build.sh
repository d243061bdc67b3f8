#!/usr/bin/env bash
# Configure and build pagemesh into build/ (or $BUILD_DIR) with Ninja.
# Extra arguments go to cmake, e.g. -DPM_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DPM_PYTHON="$PWD/.venv/bin/python" \
  "$@" >/dev/null
ninja -C "$BUILD_DIR" >/dev/null
echo "build: $BUILD_DIR ok"
