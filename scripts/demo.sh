#!/usr/bin/env bash
# The README's main-job command: install what is missing, build, and run
# the end-to-end demo (perf/demo.py) on an embedded default: a local
# S3-compatible server with a generated dataset, read for several epochs
# through pagemesh, printing throughput and origin traffic per epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec .venv/bin/python perf/demo.py "$@"
