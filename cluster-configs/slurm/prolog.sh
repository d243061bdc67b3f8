#!/bin/bash
# prolog.sh - Slurm Prolog (with PrologFlags=Alloc) for pagemesh: makes sure
# the node peer daemon, pagemeshd, runs on this node before the job starts.
# If one already answers on the site's cache directory (started for an
# earlier job), it is reused with its warm cache. Otherwise it is started
# fully detached (setsid -f, every descriptor redirected: slurmd waits on
# the prolog's descriptors) with the cache directory, capacities and
# cluster key of the site configuration (/etc/pagemesh/slurm.conf, or
# $PAGEMESH_SLURM_CONF), joining the mesh through the other nodes of the
# job ($SLURM_NODELIST, mapped to the site's membership port).
#
# A cache problem never fails the prolog: a non-zero exit would drain the
# node. The prolog logs what went wrong ($SLURM_LOG) and records the job
# as "unavailable", so the task prolog tells the job to read the origin
# directly; the job runs either way.
set -u
# shellcheck disable=SC2034
PM_ROLE=prolog
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}
# shellcheck source=pagemesh-slurm-lib.sh
. "$(dirname "$(readlink -f "$0")")/pagemesh-slurm-lib.sh" || exit 0

# The first IPv4 address of a host name (numeric names pass through).
resolve() {
  getent ahostsv4 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }'
}

# This node's address for the mesh: its name's, unless that is a loopback
# address (Debian maps the host name to 127.0.1.1), which other nodes
# cannot reach: then its first non-loopback address. NODE_ADDR overrides.
self_address() {
  local addr other
  addr=$(resolve "$1")
  case "$addr" in
    127.*)
      other=$(hostname -I 2>/dev/null | tr ' ' '\n' |
              grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -v '^127\.' | head -n 1)
      if [ -n "$other" ]; then
        pm_log "node name $1 resolves to $addr (loopback): using $other" \
          "(set NODE_ADDR to choose)"
        addr=$other
      fi ;;
  esac
  printf '%s' "$addr"
}

# Whether the daemon's account can read the cluster key (root can read
# anything: the check is the daemon user's).
key_readable() {
  if [ -n "$DAEMON_USER" ]; then
    runuser -u "$DAEMON_USER" -- test -r "$CLUSTER_KEY_FILE" 2>/dev/null
  else
    [ -r "$CLUSTER_KEY_FILE" ]
  fi
}

# This node's membership address and the seeds: up to MAX_SEEDS other
# nodes of the job, as IP:PORT, comma-separated.
mesh_addresses() {
  local self_name host addr seeds="" count=0
  self_name=$(pm_node_name)
  SELF_ADDR=${NODE_ADDR:-$(self_address "$self_name")}
  [ -n "$SELF_ADDR" ] || return 1
  for host in $(scontrol show hostnames "${SLURM_NODELIST:-$self_name}" \
                2>/dev/null); do
    [ "$host" = "$self_name" ] && continue
    [ "$count" -ge "$MAX_SEEDS" ] && break
    addr=$(resolve "$host")
    if [ -z "$addr" ]; then
      pm_log "cannot resolve job node $host: not a seed"
      continue
    fi
    [ "$addr" = "$SELF_ADDR" ] && continue
    seeds="${seeds:+$seeds,}$addr:$LISTEN_PORT"
    count=$((count + 1))
  done
  SEEDS=$seeds
  return 0
}

# pagemeshd's command line in DAEMON_ARGS.
daemon_args() {
  DAEMON_ARGS=(--cache-dir "$CACHE_DIR" --log-file "$DAEMON_LOG")
  [ -n "$DISK_CAPACITY" ] && DAEMON_ARGS+=(--disk-capacity "$DISK_CAPACITY")
  [ -n "$RAM_CAPACITY" ] && DAEMON_ARGS+=(--ram-capacity "$RAM_CAPACITY")
  [ -n "$PAGE_SIZE" ] && DAEMON_ARGS+=(--page-size "$PAGE_SIZE")
  [ -n "$REPLICAS" ] && DAEMON_ARGS+=(--replicas "$REPLICAS")
  [ -n "$METRICS_LISTEN" ] && DAEMON_ARGS+=(--metrics-listen "$METRICS_LISTEN")
  [ -n "$NODE_GROUP" ] && DAEMON_ARGS+=(--node-group "$NODE_GROUP")
  if [ -z "$LISTEN_PORT" ]; then
    pm_log "LISTEN_PORT is empty: pagemeshd runs without the mesh"
  elif ! key_readable; then
    pm_log "cluster key $CLUSTER_KEY_FILE is not readable" \
      "${DAEMON_USER:+by $DAEMON_USER }(pagemeshd runs without the mesh:" \
      "local cache only)"
  elif ! mesh_addresses; then
    pm_log "no address for node $(pm_node_name) (set NODE_ADDR): pagemeshd" \
      "runs without the mesh"
  else
    DAEMON_ARGS+=(--listen "$SELF_ADDR:$LISTEN_PORT"
                  --cluster-key-file "$CLUSTER_KEY_FILE")
    [ -n "$SEEDS" ] && DAEMON_ARGS+=(--seeds "$SEEDS")
    [ -n "$TRANSPORT_PORT" ] &&
      DAEMON_ARGS+=(--transport-listen "$SELF_ADDR:$TRANSPORT_PORT")
    [ -n "$CLUSTER_ID" ] && DAEMON_ARGS+=(--cluster-id "$CLUSTER_ID")
  fi
  # EXTRA_ARGS is split on blanks on purpose.
  # shellcheck disable=SC2206
  [ -n "$EXTRA_ARGS" ] && DAEMON_ARGS+=($EXTRA_ARGS)
  return 0
}

# Create the cache and log directories, owned by DAEMON_USER if set.
prepare_dirs() {
  local dir
  for dir in "$CACHE_DIR" "$(dirname "$DAEMON_LOG")"; do
    if ! mkdir -p "$dir" 2>/dev/null || [ ! -d "$dir" ]; then
      REASON="cannot create $dir"
      return 1
    fi
    if [ -n "$DAEMON_USER" ] && ! chown "$DAEMON_USER" "$dir" 2>/dev/null
    then
      REASON="cannot give $dir to $DAEMON_USER"
      return 1
    fi
  done
  if [ -z "$DAEMON_USER" ] && [ ! -w "$CACHE_DIR" ]; then
    REASON="$CACHE_DIR is not writable"
    return 1
  fi
  # The log exists before pagemeshd opens it, and is the daemon user's:
  # the launch's redirection (as root) would otherwise create it root's,
  # and pagemeshd could not open it.
  if ! touch "$DAEMON_LOG" 2>/dev/null ||
     { [ -n "$DAEMON_USER" ] && ! chown "$DAEMON_USER" "$DAEMON_LOG" \
         2>/dev/null; }; then
    REASON="cannot prepare $DAEMON_LOG${DAEMON_USER:+ for $DAEMON_USER}"
    return 1
  fi
  return 0
}

# Start pagemeshd detached; its environment gets ORIGIN_ENV_FILE.
launch() {
  local run=()
  [ -n "$DAEMON_USER" ] && run=(runuser -u "$DAEMON_USER" --)
  pm_log "starting: ${run[*]} $PAGEMESH_BIN/pagemeshd ${DAEMON_ARGS[*]}"
  (
    if [ -n "$ORIGIN_ENV_FILE" ]; then
      set -a
      # shellcheck disable=SC1090
      . "$ORIGIN_ENV_FILE" || pm_log "cannot read $ORIGIN_ENV_FILE"
      set +a
    fi
    exec setsid -f "${run[@]}" "$PAGEMESH_BIN/pagemeshd" "${DAEMON_ARGS[@]}" \
      </dev/null >/dev/null 2>>"$DAEMON_LOG"
  ) 9>&-
}

# Poll until a node peer answers on CACHE_DIR; its pid in NODE_PID.
wait_for_daemon() {
  local deadline=$((SECONDS + START_TIMEOUT)) status
  while [ "$SECONDS" -le "$deadline" ]; do
    if status=$(pm_status_json); then
      NODE_PID=$(pm_json_int "$status" node_pid)
      return 0
    fi
    sleep 0.2
  done
  return 1
}

main() {
  pm_load_config || return 0 # no state file: the task prolog says so
  pm_lock
  local status
  if status=$(pm_status_json); then
    NODE_PID=$(pm_json_int "$status" node_pid)
    pm_log "reusing the running node peer (pid $NODE_PID) on $CACHE_DIR"
    pm_job_state ok "$CACHE_DIR" "$NODE_PID"
    return 0
  fi
  if [ ! -x "$PAGEMESH_BIN/pagemeshd" ]; then
    pm_log "no pagemeshd in $PAGEMESH_BIN: jobs read the origin directly"
    pm_job_state unavailable "pagemeshd not installed"
    return 0
  fi
  REASON=""
  if ! prepare_dirs; then
    pm_log "$REASON: jobs read the origin directly"
    pm_job_state unavailable "$REASON"
    return 0
  fi
  daemon_args
  launch
  if wait_for_daemon; then
    pm_log "pagemeshd answers (pid $NODE_PID) on $CACHE_DIR"
    pm_job_state ok "$CACHE_DIR" "$NODE_PID"
  else
    pm_log "pagemeshd did not answer within ${START_TIMEOUT}s; its log" \
      "($DAEMON_LOG) ends with: $(tail -n 3 "$DAEMON_LOG" 2>/dev/null |
      tr '\n' ' ')- jobs read the origin directly"
    pm_job_state unavailable "pagemeshd did not start"
  fi
  return 0
}

# The body runs in a subshell, so that nothing in it (set -u, a bad site
# file) can make the prolog exit non-zero and drain the node.
( main "$@" )
rc=$?
[ "$rc" -eq 0 ] || pm_log "the prolog failed unexpectedly ($rc); the job" \
  "runs without pagemesh"
exit 0
