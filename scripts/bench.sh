#!/usr/bin/env bash
# The epoch benchmark, one command: installs what is missing, builds, and
# runs perf/epoch_bench.py (pagemesh side by side with reading the origin
# directly, fsspec's caches, JuiceFS CE and the local/loopback ceilings).
# Arguments go to it, e.g. --quick (a few minutes, for CI smoke runs).
# Results: perf/results/epoch_bench[-quick].md, .json and PNG plots.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec .venv/bin/python perf/epoch_bench.py "$@"
