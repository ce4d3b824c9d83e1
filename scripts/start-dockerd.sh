#!/usr/bin/env bash
# Starts the Docker engine when it is not answering: PoX's `docker` backend and its tests need a
# real engine. Idempotent: does nothing when `docker info` already works. Logs to
# ${POX_DOCKERD_LOG:-/var/log/pox-dockerd.log}; waits up to ${POX_DOCKERD_WAIT:-60} s.
set -euo pipefail

log="${POX_DOCKERD_LOG:-/var/log/pox-dockerd.log}"
wait_s="${POX_DOCKERD_WAIT:-60}"

if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  echo "error: docker / dockerd not installed (Debian package docker.io)" >&2
  echo "hint: bash scripts/install-system-packages.sh" >&2
  exit 1
fi
if docker info >/dev/null 2>&1; then
  echo "dockerd: already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the Docker engine is not running and starting it needs root" >&2
  echo "hint: sudo bash scripts/start-dockerd.sh" >&2
  exit 1
fi
# A stale pid file from a dead daemon would stop a new one from starting.
pidfile=/var/run/docker.pid
if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  rm -f "$pidfile"
fi
if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
  mkdir -p "$(dirname "$log")"
  echo "dockerd: starting (log: $log)"
  # setsid + nohup: the daemon outlives this script and the shell that called it.
  setsid nohup dockerd --pidfile "$pidfile" >>"$log" 2>&1 </dev/null &
fi
for _ in $(seq 1 "$wait_s"); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd: ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
echo "error: dockerd did not become ready within ${wait_s} s; last log lines:" >&2
tail -n 20 "$log" >&2 || true
exit 1
