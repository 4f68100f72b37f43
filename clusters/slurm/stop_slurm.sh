#!/usr/bin/env bash
# Stop the daemons started by setup_slurm.sh, by their PID files. First cancel the jobs we
# submitted and left behind: only this user's jobs whose names proxcompute gives them
# (dask-jobqueue workers "proxc-<profile>", clusters/slurm/pipeline.sbatch "proxcompute-pipeline"),
# never other jobs of the same user (on a single-node test SLURM that user is often root).
# Then slurmd, slurmctld and the munged that setup_slurm.sh started.
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
RUN_DIR=${STOP_SLURM_RUN_DIR:-/run}                    # where setup_slurm.sh's daemons keep pid files
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MUNGED_PIDFILE=${MUNGED_PIDFILE:-/run/munge/munged.pid}
stop_by_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}
stop_by_pidfile "$RUN_DIR/slurmd.pid"
stop_by_pidfile "$RUN_DIR/slurmctld.pid"
# munged too, but only for the one-node SLURM setup_slurm.sh configured (ClusterName=proxci):
# on a machine whose SLURM is not ours, munge belongs to the system. STOP_SLURM_KEEP_MUNGE=1 keeps it.
if [ "${STOP_SLURM_KEEP_MUNGE:-0}" != 1 ] && grep -qx 'ClusterName=proxci' "$CONF" 2>/dev/null; then
  stop_by_pidfile "$MUNGED_PIDFILE"
fi
