#!/usr/bin/env bash
# Start a one-machine SLURM cluster for PoX tests and benchmarks: munged, slurmctld and two slurmd
# (node names pox-node1, pox-node2) on 127.0.0.1, every file under STATE_DIR (default
# .slurm-cluster). Idempotent: daemons already running are left alone, the configuration and
# ports chosen on first start are kept. Needs root and Debian's slurm-wlm and munge.
# Prints the line to use it:  export SLURM_CONF=STATE_DIR/slurm.conf
# Stop it with scripts/slurm-down.sh STATE_DIR.
set -euo pipefail
STATE="$(realpath -m "${1:-.slurm-cluster}")"
NODES=(pox-node1 pox-node2)
CPUS_PER_NODE="${POX_SLURM_CPUS:-8}"
for tool in munged slurmctld slurmd sinfo; do
  command -v "$tool" >/dev/null || { echo "slurm-up: $tool not found: install Debian's slurm-wlm and munge (scripts/apt-packages.txt)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "slurm-up: run as root (slurmd starts jobs as their submitting user)" >&2; exit 1; }
mkdir -p "$STATE"/{munge,ctld,log,run}
chmod 0700 "$STATE/munge"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# munge: a key of its own and a socket under STATE (the system's munged is not touched)
if [ ! -f "$STATE/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$STATE/munge/munge.key"
  chmod 0400 "$STATE/munge/munge.key"
fi
if ! alive "$STATE/run/munged.pid"; then
  munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
fi

CONF="$STATE/slurm.conf"
if [ ! -f "$CONF" ]; then
  {
    echo "# written by scripts/slurm-up.sh for a one-machine test cluster"
    echo "ClusterName=pox"
    echo "SlurmctldHost=localhost(127.0.0.1)"
    echo "SlurmctldPort=$(free_port)"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$STATE/munge/munge.socket"
    echo "StateSaveLocation=$STATE/ctld"
    echo "SlurmdSpoolDir=$STATE/slurmd-%n"
    echo "SlurmctldPidFile=$STATE/run/slurmctld.pid"
    echo "SlurmdPidFile=$STATE/run/slurmd-%n.pid"
    echo "SlurmctldLogFile=$STATE/log/slurmctld.log"
    echo "SlurmdLogFile=$STATE/log/slurmd-%n.log"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"
    echo "SchedulerType=sched/backfill"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "MpiDefault=none"
    echo "ReturnToService=2"
    echo "SlurmdTimeout=300"
    echo "MinJobAge=600"
    echo "KillWait=5"
    echo "SlurmdParameters=config_overrides"
    for node in "${NODES[@]}"; do
      echo "NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(free_port) CPUs=$CPUS_PER_NODE RealMemory=4000 State=UNKNOWN"
    done
    echo "PartitionName=pox Nodes=ALL Default=YES MaxTime=INFINITE State=UP LLN=YES"
  } > "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
fi
export SLURM_CONF="$CONF"

if ! alive "$STATE/run/slurmctld.pid"; then
  slurmctld -f "$CONF"
fi
for node in "${NODES[@]}"; do
  if ! alive "$STATE/run/slurmd-$node.pid"; then
    slurmd -f "$CONF" -N "$node"
  fi
done

# ready when both nodes answer (idle, mixed or allocated); a node left down by an earlier stop
# is resumed
for _ in $(seq 1 60); do
  states="$(sinfo --noheader --Node --format='%N %t' 2>/dev/null || true)"
  ready=0
  for node in "${NODES[@]}"; do
    state="$(awk -v n="$node" '$1 == n {print $2}' <<<"$states")"
    case "$state" in
      idle|mix|alloc|comp) ready=$((ready + 1)) ;;
      down*|drain*|drng*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
  done
  if [ "$ready" = "${#NODES[@]}" ]; then
    echo "export SLURM_CONF=$CONF"
    exit 0
  fi
  sleep 0.5
done
echo "slurm-up: the nodes did not become ready within 30 s; sinfo says:" >&2
sinfo --Node >&2 || true
echo "logs: $STATE/log" >&2
exit 1
