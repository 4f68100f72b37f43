#!/usr/bin/env bash
# Stop the daemons started by setup_slurm.sh, by their PID files; cancel leftover jobs first.
set -u
scancel --user="$(id -un)" >/dev/null 2>&1 || true
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
  fi
done
