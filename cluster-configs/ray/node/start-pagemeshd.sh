#!/bin/bash
# start-pagemeshd.sh [SEED_IP] - start this Ray node's pagemeshd, or keep
# the one already running on the cache directory (and its warm cache). The
# head runs it without a seed; workers pass the head's IP. The daemon is
# detached (setsid -f, descriptors redirected) so that it outlives the
# shell of `ray up` and `ray stop`. A daemon that does not start is only
# reported: Ray starts anyway, and the pagemesh runtime_env plugin starts a
# local node peer when a job needs one. Settings come from the
# environment: PAGEMESH_CONFIG, PAGEMESH_CACHE_DIR, PAGEMESH_LISTEN_PORT,
# PAGEMESH_NODE_IP (default: the first of `hostname -I`),
# PAGEMESH_CLUSTER_KEY_FILE, PAGEMESH_METRICS_LISTEN, PAGEMESH_ORIGIN_ENV,
# PAGEMESH_LOG (defaults below).
set -u
CONFIG=${PAGEMESH_CONFIG:-/etc/pagemesh/pagemesh.ini}
CACHE_DIR=${PAGEMESH_CACHE_DIR:-/var/cache/pagemesh}
PORT=${PAGEMESH_LISTEN_PORT:-7946}
KEY=${PAGEMESH_CLUSTER_KEY_FILE:-/etc/pagemesh/cluster.key}
METRICS=${PAGEMESH_METRICS_LISTEN-0.0.0.0:9464}  # empty: off
ORIGIN_ENV=${PAGEMESH_ORIGIN_ENV:-/etc/pagemesh/origin.env}
LOG=${PAGEMESH_LOG:-/tmp/pagemeshd.log}
SEED=${1:-}

log() { echo "start-pagemeshd: $*" >&2; }

if pagemesh --cache-dir "$CACHE_DIR" status >/dev/null 2>&1; then
  log "a node peer already runs on $CACHE_DIR: keeping it"
  exit 0
fi
ip=${PAGEMESH_NODE_IP:-$(hostname -I 2>/dev/null | awk '{ print $1 }')}
if [ -z "$ip" ]; then
  log "no IP address for this node: not starting pagemeshd"
  exit 0
fi
args=(--cache-dir "$CACHE_DIR" --listen "$ip:$PORT"
      --cluster-key-file "$KEY" --log-file "$LOG")
[ -r "$CONFIG" ] && args=(--config "$CONFIG" "${args[@]}")
[ -n "$METRICS" ] && args+=(--metrics-listen "$METRICS")
[ -n "$SEED" ] && args+=(--seeds "$SEED:$PORT")
log "pagemeshd ${args[*]}"
(
  if [ -r "$ORIGIN_ENV" ]; then
    set -a
    # shellcheck disable=SC1090
    . "$ORIGIN_ENV"
    set +a
  fi
  exec setsid -f pagemeshd "${args[@]}" </dev/null >/dev/null 2>>"$LOG"
)
for _ in $(seq 1 100); do
  if pagemesh --cache-dir "$CACHE_DIR" status >/dev/null 2>&1; then
    log "pagemeshd answers on $CACHE_DIR"
    exit 0
  fi
  sleep 0.2
done
log "pagemeshd did not answer within 20 s; see $LOG"
exit 0
