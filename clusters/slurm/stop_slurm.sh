#!/usr/bin/env bash
# Stop the daemons started by setup_slurm.sh, by their PID files. First cancel the jobs we
# submitted and left behind: only this user's jobs whose names proxcompute gives them
# (dask-jobqueue workers "proxc-<profile>", clusters/slurm/pipeline.sbatch "proxcompute-pipeline"),
# never other jobs of the same user (on a single-node test SLURM that user is often root).
set -u
if command -v squeue >/dev/null 2>&1; then
  ours=$(squeue --noheader --user="$(id -un)" --format='%i %j' 2>/dev/null |
         awk '$2 ~ /^proxc-/ || $2 == "proxcompute-pipeline" { print $1 }')
  if [ -n "$ours" ]; then
    # shellcheck disable=SC2086  # one argument per job id
    scancel $ours >/dev/null 2>&1 || true
  fi
fi
[ "${STOP_SLURM_JOBS_ONLY:-0}" = 1 ] && exit 0  # cancel our jobs, leave the daemons running
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
  fi
done
