#!/usr/bin/env bash
# The README's test command: install what is missing, build, and run every
# test (criterion unit tests and the integration tests against a real
# S3-compatible server and real processes) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
