#!/usr/bin/env bash
# Stops the dockerd that scripts/docker-up.sh started, by the pid it recorded.
# An engine that docker-up.sh did not start has no such record and is left alone.
set -euo pipefail

state=${MESH_INIT_CI_DIR:-/var/lib/mesh-init-ci}
pidfile=$state/dockerd.pid

log() { printf 'docker-down: %s\n' "$*" >&2; }

if [[ ! -s $pidfile ]]; then
  log "no dockerd started by docker-up.sh: nothing to stop"
  exit 0
fi

pid=$(cat "$pidfile")
if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != dockerd ]]; then
  log "dockerd $pid is already gone"
  rm -f "$pidfile"
  exit 0
fi

log "stopping dockerd $pid"
kill -TERM "$pid"
# dockerd stops its containers and its own containerd before it exits.
for _ in $(seq 1 60); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    log "dockerd $pid stopped"
    exit 0
  fi
  sleep 0.5
done

log "dockerd $pid did not stop in 30 s: sending SIGKILL"
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pidfile"
