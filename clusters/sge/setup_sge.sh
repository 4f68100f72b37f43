#!/usr/bin/env bash
# Install and start a single-node (Son of) Grid Engine 8.1.9 from Debian: sge_qmaster + sge_execd on
# this host, queues short.q (h_rt 30 min) and long.q, 4 slots each, for the cluster tests and for
# trying the sge profile. Needs root and apt (exit code 2 otherwise). Idempotent: a second run
# reconfigures and reuses the running daemons. Gated on a smoke job. The last lines are the
# environment the clients need, as KEY=VALUE. Stop with stop_sge.sh.
# Recipe and pitfalls: docs/clusters.md ("SGE").
#
# Knobs: SKIP_APT=1 skips the install; SGE_SLOTS=N sets the slots per queue (default max(4, nproc));
# SGE_SETUP_VERBOSE=1 prints the time each step took.
set -euo pipefail
T=$(mktemp -d); policy_tmp=
cleanup() { rm -rf "$T"; [ -z "$policy_tmp" ] || rm -f "$policy_tmp"; }
trap cleanup EXIT
T0=$EPOCHREALTIME
stamp() { [ "${SGE_SETUP_VERBOSE:-0}" != 1 ] || echo "setup_sge.sh: $(( (${EPOCHREALTIME/./} - ${T0/./}) / 1000 )) ms: $*" >&2; }
die() { echo "setup_sge.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "setup_sge.sh: needs root (to install and start sge_qmaster/sge_execd)" >&2; exit 2; }

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SPOOL=/var/spool/gridengine
HOST=$(hostname)
PKGS=(gridengine-master gridengine-exec gridengine-client)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ "${SKIP_APT:-0}" != 1 ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "setup_sge.sh: needs apt-get to install ${missing[*]}" >&2; exit 2; }
  if dpkg-query -W -f '${Status}' slurm-wlm-torque 2>/dev/null | grep -q 'install ok installed'; then
    die "slurm-wlm-torque is installed; it owns /usr/bin/qsub too and conflicts with gridengine-client"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # the master's postinst creates the cell (init_cluster) from these answers
  for p in gridengine-common gridengine-client gridengine-master; do
    echo "$p shared/gridenginemaster string $HOST" | debconf-set-selections
    echo "$p shared/gridenginecell string $SGE_CELL" | debconf-set-selections
    echo "$p shared/gridengineconfig boolean true" | debconf-set-selections
  done
  # never let the postinst scripts start daemons through invoke-rc.d: we start them ourselves
  # and track them by PID (without systemd the init scripts fail and abort the install)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy_tmp=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy_tmp"; chmod 755 "$policy_tmp"
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install ${missing[*]} failed"
  [ -z "$policy_tmp" ] || { rm -f "$policy_tmp"; policy_tmp=; }
elif [ "${#missing[@]}" -gt 0 ]; then
  die "SKIP_APT=1 but ${missing[*]} not installed"
fi

stamp packages installed
COMMON=$SGE_ROOT/$SGE_CELL/common
if [ ! -f "$COMMON/bootstrap" ]; then  # installed without the debconf answers: create the cell now
  install -d -o sgeadmin -g sgeadmin -m 0755 "$SPOOL/qmaster" "$SPOOL/qmaster/job_scripts" "$SPOOL/spooldb"
  su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL $SPOOL/spooldb sgeadmin" sgeadmin \
    >/dev/null || die "init_cluster failed"
fi
echo "$HOST" > "$COMMON/act_qmaster"
# 127.0.0.1 reverse-resolves to "localhost" (first in /etc/hosts) while the host calls itself $HOST:
# without aliases every client is refused ("client IP resolved to host name localhost ...")
aliases=$( { echo localhost; getent hosts 127.0.0.1 | awk '{for (i = 2; i <= NF; i++) print $i}';
             getent hosts "$HOST" | awk '{print $1}' | xargs -r -n1 getent hosts | awk '{for (i = 2; i <= NF; i++) print $i}'; } \
           | grep -vx "$HOST" | sort -u | tr '\n' ' ')
if [ -n "${aliases// /}" ]; then echo "$HOST $aliases" > "$COMMON/host_aliases"; else rm -f "$COMMON/host_aliases"; fi
chown sgeadmin:sgeadmin "$COMMON/act_qmaster" "$COMMON"/host_aliases 2>/dev/null || true
install -d -o sgeadmin -g sgeadmin -m 0755 /run/gridengine "$SPOOL/execd"

# PID of a running daemon from its PID file, or nothing (a stale file is removed)
alive() {  # alive PIDFILE NAME
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then echo "$pid"; else rm -f "$1"; fi
}
QMASTER_PID=$SPOOL/qmaster/qmaster.pid
execd_pidfile() { local f; for f in "$SPOOL"/execd/*/execd.pid; do [ -f "$f" ] && echo "$f" && break; done; return 0; }
# qconf reports success on stderr: keep it quiet unless it fails
q() { local out; out=$("$@" 2>&1) || { echo "setup_sge.sh: $* failed: $out" >&2; return 1; }; }

if [ -z "$(alive "$QMASTER_PID" sge_qmaster)" ]; then
  # a qmaster still shutting down holds the port: "can't bind socket"
  for _ in $(seq 1 300); do (: < /dev/tcp/127.0.0.1/6444) 2>/dev/null || break; sleep 0.1; done
  /usr/sbin/sge_qmaster || die "sge_qmaster did not start: $(tail -3 "$SPOOL/qmaster/messages" 2>/dev/null)"
fi
for _ in $(seq 1 150); do qconf -sconf global >/dev/null 2>&1 && break; sleep 0.1; done
qconf -sconf global >/dev/null 2>&1 || die "qmaster does not answer: $(tail -3 "$SPOOL/qmaster/messages" 2>/dev/null)"

stamp qmaster answers
SLOTS=${SGE_SLOTS:-$(( $(nproc) > 4 ? $(nproc) : 4 ))}
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))  # leave 2 GiB to the system
# global config (the file name must be "global": qconf -Mconf takes the name from it). Debian's
# min_uid/min_gid 1000 rejects root's jobs; execd reads this at start, so set it before execd runs.
# ENABLE_ADDGRP_KILL: qdel kills every process of a job (tracked by an extra group id).
qconf -sconf global | sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
  -e 's/^load_report_time .*/load_report_time 00:00:05/' -e 's|^mailer .*|mailer /bin/true|' \
  -e 's/^execd_params .*/execd_params ENABLE_ADDGRP_KILL=true/' > "$T/global"
global_changed=0
if [ "$(qconf -sconf global | tr -s ' ')" != "$(tr -s ' ' < "$T/global")" ]; then q qconf -Mconf "$T/global"; global_changed=1; fi
qconf -ss 2>/dev/null | grep -qx "$HOST" || q qconf -as "$HOST"  # submit host
qconf -sh 2>/dev/null | grep -qx "$HOST" || q qconf -ah "$HOST"  # admin host
# h_vmem (what dask-jobqueue's memory becomes, via resource_spec) as a consumable the host has
# MEM of, like most sites: a job asking for more memory than the node has is refused at submission
qconf -sc | awk '$1 == "h_vmem" {$6 = "YES"} {print}' > "$T/complexes"
qconf -sc | awk '$1 == "h_vmem" && $6 == "YES" {f = 1} END {exit !f}' || q qconf -Mc "$T/complexes"
printf 'hostname %s\nload_scaling NONE\ncomplex_values h_vmem=%sM\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
  "$HOST" "$MEM_MB" > "$T/exechost"
if qconf -se "$HOST" >/dev/null 2>&1; then q qconf -Me "$T/exechost"; else q qconf -Ae "$T/exechost"; fi
printf 'group_name @allhosts\nhostlist %s\n' "$HOST" > "$T/hgrp"
if qconf -shgrp @allhosts >/dev/null 2>&1; then q qconf -Mhgrp "$T/hgrp"; else q qconf -Ahgrp "$T/hgrp"; fi
queue() {  # queue NAME H_RT
  cat > "$T/$1" <<Q
qname                 $1
hostlist              @allhosts
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               NONE
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  $2
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
Q
  if qconf -sq "$1" >/dev/null 2>&1; then q qconf -Mq "$T/$1"; else q qconf -Aq "$T/$1"; fi
}
queue short.q 00:30:00
queue long.q INFINITY
# the default 15 s scheduling interval makes 2 workers take 11 s; load thresholds off so a busy
# 2-core machine never puts the queues into alarm state
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
  -e 's/^flush_finish_sec .*/flush_finish_sec 1/' -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' > "$T/sched"
q qconf -Msconf "$T/sched"

stamp configured
pidfile=$(execd_pidfile)
execd=$( [ -z "$pidfile" ] || alive "$pidfile" sge_execd )
if [ -n "$execd" ] && [ "$global_changed" = 1 ]; then  # a running execd keeps the old min_uid: restart it
  kill "$execd" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$execd" 2>/dev/null || break; sleep 0.1; done
  execd=
fi
[ -n "$execd" ] || /usr/sbin/sge_execd || die "sge_execd did not start"
# wait for the execd's first load report: until then the queue instances are in state "u"
ready() { qstat -f -q short.q 2>/dev/null | awk -v h="short.q@$HOST" '$1 == h && $4 != "-NA-" {ok = 1} END {exit !ok}'; }
for _ in $(seq 1 200); do ready && break; sleep 0.1; done
ready || { qstat -f >&2; die "execd on $HOST did not report to the qmaster"; }
stamp execd reported
# a job that failed earlier (e.g. before min_uid was lowered) leaves a queue in error state E
qmod -cq "short.q@$HOST" "long.q@$HOST" >/dev/null 2>&1 || true

# gate on a smoke job: submitted, run by execd as root, its output written
out=$T/smoke.out
job=$(qsub -terse -q short.q -l h_rt=60,h_vmem=256M -b y -j y -o "$out" -N proxc-smoke /bin/echo sge-smoke-ok) \
  || die "qsub of the smoke job failed"
for _ in $(seq 1 300); do qstat -j "$job" >/dev/null 2>&1 || break; sleep 0.1; done
if qstat -j "$job" >/dev/null 2>&1; then
  qstat -f >&2; qstat -j "$job" >&2 || true; qdel -f "$job" >/dev/null 2>&1 || true
  die "smoke job $job did not finish in 30 s"
fi
grep -qx sge-smoke-ok "$out" 2>/dev/null || die "smoke job $job ran but wrote no output ($out: $(cat "$out" 2>&1))"

stamp "smoke job finished"
qbin=$(dirname "$(command -v qsub)")
case ":$PATH:" in *":$qbin:"*) path=$PATH ;; *) path=$qbin:$PATH ;; esac
echo "sge ready: qmaster $(alive "$QMASTER_PID" sge_qmaster) and execd $(alive "$(execd_pidfile)" sge_execd) on $HOST," \
  "queues short.q (30 min) and long.q, $SLOTS slots each, h_vmem ${MEM_MB}M"
echo "SGE_ROOT=$SGE_ROOT"
echo "SGE_CELL=$SGE_CELL"
echo "PATH=$path"
