#!/bin/bash
# task_prolog.sh - Slurm TaskProlog for pagemesh: runs as the job's user
# before each task and tells it, through the "export NAME=value" lines
# Slurm reads from a TaskProlog's output, where the node's cache is:
#   PAGEMESH_CACHE_DIR  the node peer's cache directory (when it runs)
#   PAGEMESH_SLURM      "ok", or "unavailable" when the prolog could not
#                       start the cache, or the job's user may not attach
#                       to it (NODE_GROUP): read the origin directly then
#                       (pagemesh --no-cache, or your loader's fallback).
# It prints nothing else, and always exits 0.
set -u
# shellcheck disable=SC2034
PM_ROLE=task-prolog
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}
# shellcheck source=pagemesh-slurm-lib.sh
. "$(dirname "$(readlink -f "$0")")/pagemesh-slurm-lib.sh" || exit 0

main() {
  if ! pm_load_config 2>/dev/null; then
    printf 'export PAGEMESH_SLURM=unavailable\n'
    return 0
  fi
  local file="$STATE_DIR/job-${SLURM_JOB_ID:-unknown}" key value
  local state=unavailable cache_dir=""
  if [ -r "$file" ]; then
    while IFS='=' read -r key value; do
      case "$key" in
        state) state=$value ;;
        cache_dir) cache_dir=$value ;;
      esac
    done <"$file"
  fi
  # The node peer answers root; this job's user may still be refused
  # (a daemon without NODE_GROUP lets only its own user attach): "ok" only
  # if this user gets an answer.
  if [ "$state" = ok ] && [ -n "$cache_dir" ] &&
     timeout 10 "$PAGEMESH_BIN/pagemesh" --cache-dir "$cache_dir" status \
       >/dev/null 2>&1; then
    printf 'export PAGEMESH_CACHE_DIR=%s\n' "$cache_dir"
    printf 'export PAGEMESH_SLURM=ok\n'
  else
    printf 'export PAGEMESH_SLURM=unavailable\n'
  fi
  return 0
}

( main "$@" ) 2>/dev/null
exit 0
