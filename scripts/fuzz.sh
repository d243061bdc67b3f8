#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang and run each
# for SECONDS (default 20) on a copy of its seed corpus
# (tests/fuzz/corpus/<name without fuzz_>/). Fails if a target crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-20}
BUILD_DIR=build-fuzz
CC=clang cmake -S . -B "$BUILD_DIR" -G Ninja -DPM_FUZZ=ON -DPM_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c 2>/dev/null | sed 's/\.c$//' || true)
[ -n "$targets" ] || { echo "fuzz: no targets"; exit 0; }
ninja -C "$BUILD_DIR" $targets >/dev/null
status=0
for t in $targets; do
  corpus=tests/fuzz/corpus/${t#fuzz_}
  work=$BUILD_DIR/corpus-run/${t#fuzz_}
  mkdir -p "$work"
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  if "$BUILD_DIR/tests/$t" -max_total_time="$SECONDS_EACH" -max_len=65536 \
      -print_final_stats=0 "$work" >"$BUILD_DIR/$t.log" 2>&1; then
    echo "fuzz: $t ok ($(grep -c . "$BUILD_DIR/$t.log") log lines)"
  else
    echo "fuzz: $t FAILED"; tail -30 "$BUILD_DIR/$t.log"; status=1
  fi
done
exit $status
