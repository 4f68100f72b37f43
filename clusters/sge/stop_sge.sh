#!/usr/bin/env bash
# Stop what setup_sge.sh started, by PID: delete leftover jobs, then stop sge_execd and sge_qmaster
# by their PID files and wait until they are gone (a qmaster still exiting keeps its port, and a new
# one then fails with "can't bind socket"). Idempotent: nothing running is not an error.
set -u
[ "$(id -u)" = 0 ] || { echo "stop_sge.sh: needs root (the daemons run as root/sgeadmin)" >&2; exit 2; }
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine} SGE_CELL=${SGE_CELL:-default}
SPOOL=/var/spool/gridengine

pid_of() {  # pid_of PIDFILE NAME: the PID in the file if that process is still NAME
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
  return 0
}
stop() {  # stop PID SECONDS: TERM, wait, then KILL
  local pid=$1 n=$(( $2 * 10 ))
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 "$n"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "stop_sge.sh: PID $pid did not exit in $2 s, killing it" >&2
  kill -9 "$pid" 2>/dev/null; sleep 0.2
}

qmaster=$(pid_of "$SPOOL/qmaster/qmaster.pid" sge_qmaster)
if [ -n "$qmaster" ] && command -v qdel >/dev/null 2>&1; then
  # jobs would outlive their execd (sge_shepherd keeps running): delete them while it is up
  if qstat -u '*' 2>/dev/null | grep -q .; then
    qdel -u '*' >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do qstat -u '*' 2>/dev/null | grep -q . || break; sleep 0.1; done
    qstat -u '*' 2>/dev/null | grep -q . && { qdel -f -u '*' >/dev/null 2>&1 || true; sleep 1; }
  fi
fi
# whatever is still running of a job: its shepherd and the job's process group, by their PID files
for d in "$SPOOL"/execd/*/active_jobs/*/; do
  [ -d "$d" ] || continue
  job=$(cat "$d/job_pid" 2>/dev/null || true)
  [ -n "$job" ] && kill -9 -- "-$job" 2>/dev/null
  shepherd=$(pid_of "$d/pid" sge_shepherd)
  [ -n "$shepherd" ] && stop "$shepherd" 5
done
for f in "$SPOOL"/execd/*/execd.pid; do
  [ -f "$f" ] || continue
  pid=$(pid_of "$f" sge_execd)
  [ -n "$pid" ] && stop "$pid" 15
  rm -f "$f"
done
if [ -n "$qmaster" ]; then stop "$qmaster" 30; fi
rm -f "$SPOOL/qmaster/qmaster.pid"
exit 0
