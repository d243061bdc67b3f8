#!/bin/bash
# epilog.sh - Slurm Epilog for pagemesh. By default it leaves pagemeshd and
# its warm cache running for the next job on the node, and only forgets
# the job's status file. With STOP_ON_EPILOG=yes in the site
# configuration it stops the daemon (SIGTERM: it leaves the mesh cleanly)
# once the last job using the node is over: never while another job runs
# on the node (squeue) or a process is still attached to the daemon
# (pagemesh status). Like the prolog, it always exits 0: a failing epilog
# would drain the node.
set -u
# shellcheck disable=SC2034
PM_ROLE=epilog
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}
# shellcheck source=pagemesh-slurm-lib.sh
. "$(dirname "$(readlink -f "$0")")/pagemesh-slurm-lib.sh" || exit 0

# Jobs other than this one that are running (or starting, or suspended)
# on this node, space-separated; non-zero if Slurm could not be asked.
other_jobs() {
  local node ids line id nodes
  node=$(pm_node_name)
  if ! ids=$(squeue -h -w "$node" -t CF,R,S -o %A 2>/dev/null); then
    # Some setups refuse -w for their node names: filter the list.
    ids=""
    line=$(squeue -h -t CF,R,S -o '%A %N' 2>/dev/null) || return 1
    while read -r id nodes; do
      [ -n "$id" ] || continue
      scontrol show hostnames "$nodes" 2>/dev/null | grep -qx "$node" &&
        ids="$ids $id"
    done <<<"$line"
  fi
  local others=""
  for id in $ids; do
    [ "$id" = "${SLURM_JOB_ID:-}" ] || others="$others $id"
  done
  printf '%s' "${others# }"
  return 0
}

# Attached pids that still exist.
live_attached() {
  local pid live=""
  for pid in $(pm_json_attached "$1"); do
    kill -0 "$pid" 2>/dev/null && live="$live $pid"
  done
  printf '%s' "${live# }"
}

stop_daemon() {
  local pid=$1 deadline=$((SECONDS + STOP_TIMEOUT))
  pm_log "stopping pagemeshd (pid $pid): no job uses it any more"
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -gt "$deadline" ]; then
      pm_log "pagemeshd (pid $pid) still runs after ${STOP_TIMEOUT}s:" \
        "SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      return 0
    fi
    sleep 0.2
  done
  pm_log "pagemeshd (pid $pid) stopped"
}

main() {
  pm_load_config || return 0
  rm -f "$STATE_DIR/job-${SLURM_JOB_ID:-unknown}"
  case "$STOP_ON_EPILOG" in
    yes|true|1) ;;
    *) return 0 ;; # the warm cache stays for the next job
  esac
  pm_lock
  local status pid others attached
  status=$(pm_status_json) || return 0 # nothing runs
  pid=$(pm_json_int "$status" node_pid)
  [ -n "$pid" ] || return 0
  if ! others=$(other_jobs); then
    pm_log "squeue failed: keeping pagemeshd (pid $pid) to be safe"
    return 0
  fi
  if [ -n "$others" ]; then
    pm_log "keeping pagemeshd (pid $pid): jobs $others still run here"
    return 0
  fi
  attached=$(live_attached "$status")
  if [ -n "$attached" ]; then
    pm_log "keeping pagemeshd (pid $pid): processes $attached still" \
      "read through it"
    return 0
  fi
  stop_daemon "$pid"
  return 0
}

( main "$@" )
rc=$?
[ "$rc" -eq 0 ] || pm_log "the epilog failed unexpectedly ($rc)"
exit 0
