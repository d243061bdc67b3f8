#!/usr/bin/env bash
# The README's test command: install what is missing, build, install the
# Python package, and run every test (criterion unit tests, integration
# tests against a real S3-compatible server and real processes, and the
# Python binding tests) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
build_dir=${BUILD_DIR:-build}
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"
# The Python package bundles the library just built: (re)install it.
PAGEMESH_BUILD_DIR="$build_dir" .venv/bin/pip install -q --no-deps \
  --no-build-isolation --force-reinstall ./bindings/python
cd "$build_dir"
ctest --output-on-failure --timeout 900 "$@"
