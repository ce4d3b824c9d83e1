#!/usr/bin/env bash
# Stop the test cluster scripts/slurm-up.sh started in STATE_DIR (default .slurm-cluster): only the
# daemons whose pid files are there. Its configuration and state stay for the next slurm-up.
set -euo pipefail
STATE="$(realpath -m "${1:-.slurm-cluster}")"
stop() {
  local pidfile="$1"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
for pidfile in "$STATE"/run/slurmd-*.pid; do [ -e "$pidfile" ] && stop "$pidfile"; done
stop "$STATE/run/slurmctld.pid"
stop "$STATE/run/munged.pid"
echo "slurm-down: stopped the cluster in $STATE"
