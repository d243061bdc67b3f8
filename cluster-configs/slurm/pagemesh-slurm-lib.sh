# shellcheck shell=bash
# pagemesh-slurm-lib.sh - what the Slurm prolog, epilog and task prolog of
# pagemesh share: the site configuration (defaults, then the shell file
# /etc/pagemesh/slurm.conf or $PAGEMESH_SLURM_CONF), logging to a file
# that operators can read, asking the node peer for its status, the
# per-job status files the task prolog reads, and the node-wide lock that
# keeps a prolog starting the daemon and an epilog stopping it apart.
# Sourced, never run; every function returns instead of exiting.

# Defaults; the site configuration overrides any of them. The scripts
# that source this file use them.
# shellcheck disable=SC2034
pm_defaults() {
  PAGEMESH_BIN=/usr/local/bin       # directory holding pagemesh, pagemeshd
  CACHE_DIR=/var/cache/pagemesh     # node-local disk for the pages
  DISK_CAPACITY=""                  # e.g. 500G (empty: pagemeshd's 8G)
  RAM_CAPACITY=""                   # e.g. 8G (empty: pagemeshd's 256M)
  PAGE_SIZE=""                      # e.g. 4M (empty: 1M)
  LISTEN_PORT=7946                  # membership port, the same on all nodes
  TRANSPORT_PORT=""                 # page transport port (empty: any)
  NODE_ADDR=""                      # this node's IP (empty: resolve its name)
  CLUSTER_KEY_FILE=/etc/pagemesh/cluster.key
  CLUSTER_ID=""
  REPLICAS=""
  METRICS_LISTEN=""                 # e.g. 0.0.0.0:9464
  EXTRA_ARGS=""                     # more pagemeshd flags, split on spaces
  ORIGIN_ENV_FILE=""                # KEY=VALUE lines (AWS_*...) for pagemeshd
  DAEMON_USER=""                    # run pagemeshd as this user (empty: root)
  NODE_GROUP=""                     # its members may attach (--node-group)
  DAEMON_LOG=/var/log/pagemesh/pagemeshd.log
  SLURM_LOG=/var/log/pagemesh/slurm.log
  STATE_DIR=/run/pagemesh           # per-job status files, the lock
  STOP_ON_EPILOG=no                 # yes: stop pagemeshd after the last job
  START_TIMEOUT=20                  # seconds for pagemeshd to answer
  STOP_TIMEOUT=30                   # seconds for pagemeshd to leave
  MAX_SEEDS=8                       # job nodes given to --seeds
}

# Log one line to $SLURM_LOG (and stderr, which slurmd may keep).
pm_log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) pagemesh-${PM_ROLE:-slurm}[$$]"
  line="$line job ${SLURM_JOB_ID:-?}: $*"
  printf '%s\n' "$line" >&2
  if [ -n "${SLURM_LOG:-}" ]; then
    mkdir -p "$(dirname "$SLURM_LOG")" 2>/dev/null
    printf '%s\n' "$line" >>"$SLURM_LOG" 2>/dev/null
  fi
  return 0
}

# Load the site configuration; non-zero (after logging) if there is none
# or it does not parse.
pm_load_config() {
  pm_defaults
  PM_CONF=${PAGEMESH_SLURM_CONF:-/etc/pagemesh/slurm.conf}
  if [ ! -r "$PM_CONF" ]; then
    pm_log "no site configuration at $PM_CONF: pagemesh is not used"
    return 1
  fi
  if ! bash -n "$PM_CONF" 2>/dev/null; then
    pm_log "$PM_CONF: shell syntax error: pagemesh is not used"
    return 1
  fi
  # shellcheck disable=SC1090
  . "$PM_CONF" || {
    pm_log "$PM_CONF: failed while reading it: pagemesh is not used"
    return 1
  }
  PATH="$PAGEMESH_BIN:$PATH"
  return 0
}

# The node peer's status JSON on stdout, blanks removed (one line, for
# the two extractors below); non-zero if no node peer answers.
pm_status_json() {
  local json
  json=$(timeout 10 "$PAGEMESH_BIN/pagemesh" --cache-dir "$CACHE_DIR" \
         status --json 2>/dev/null) || return 1
  printf '%s' "$json" | tr -d '[:space:]'
}

# A top-level integer field of a compact status JSON ("node_pid").
pm_json_int() {
  printf '%s' "$1" | sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p"
}

# The attached pids of a status JSON, space-separated.
pm_json_attached() {
  printf '%s' "$1" | sed -n 's/.*"attached":\[\([0-9,]*\)\].*/\1/p' |
    tr ',' ' '
}

# The node's name as Slurm knows it.
pm_node_name() {
  printf '%s' "${SLURMD_NODENAME:-$(hostname -s)}"
}

# Hold the node-wide lock on fd 9 (released when the script exits).
pm_lock() {
  mkdir -p "$STATE_DIR" 2>/dev/null && chmod 755 "$STATE_DIR" 2>/dev/null
  exec 9>>"$STATE_DIR/lock" 2>/dev/null || {
    pm_log "cannot open $STATE_DIR/lock: going on without the lock"
    return 0
  }
  flock -w 60 9 || pm_log "waited 60 s for $STATE_DIR/lock: going on"
  return 0
}

# Record what the prolog decided for this job, for the task prolog:
# pm_job_state ok CACHE_DIR NODE_PID | pm_job_state unavailable REASON.
pm_job_state() {
  local file="$STATE_DIR/job-${SLURM_JOB_ID:-unknown}"
  mkdir -p "$STATE_DIR" 2>/dev/null
  {
    printf 'state=%s\n' "$1"
    if [ "$1" = ok ]; then
      printf 'cache_dir=%s\nnode_pid=%s\n' "$2" "$3"
    else
      printf 'reason=%s\n' "$2"
    fi
  } >"$file.tmp" 2>/dev/null
  if ! chmod 644 "$file.tmp" 2>/dev/null ||
     ! mv -f "$file.tmp" "$file" 2>/dev/null; then
    pm_log "cannot write $file"
  fi
  return 0
}
