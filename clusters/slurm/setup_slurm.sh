#!/usr/bin/env bash
# Install and start a single-node SLURM (munge + slurmctld + slurmd, partitions short/long) on
# this machine, for the cluster tests and for trying the slurm profile. Needs root and apt.
# Stop with stop_slurm.sh (cancels only the jobs proxcompute submitted, then the daemons).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "setup_slurm.sh: needs root" >&2; exit 2; }
if [ "${SKIP_APT:-0}" != 1 ] && ! command -v slurmctld >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
HOST=$(hostname -s)
# declare at least 4 CPUs (config_overrides allows it) so a scheduler slot and 2 workers fit
CPUS=${SLURM_NODE_CPUS:-$(( $(nproc) > 4 ? $(nproc) : 4 ))}
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
install -d -o munge -g munge -m 0755 /run/munge
if ! pgrep -x munged >/dev/null; then runuser -u munge -- /usr/sbin/munged; fi
munge -n | unmunge >/dev/null
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
install -d -m 0755 /var/spool/slurmd /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=proxci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
EnforcePartLimits=ALL
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=10
MessageTimeout=10
SchedulerParameters=sched_interval=5
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} Sockets=1 CoresPerSocket=${CPUS} ThreadsPerCore=1 RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=short Nodes=${HOST} Default=YES MaxTime=00:30:00 DefaultTime=00:10:00 State=UP
PartitionName=long  Nodes=${HOST} Default=NO  MaxTime=INFINITE DefaultTime=01:00:00 State=UP
CONF
echo "CgroupPlugin=autodetect" > /etc/slurm/cgroup.conf
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld -c
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
# wait for an idle node
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$state" = idle ] || { echo "setup_slurm.sh: node state is '$state', not idle" >&2; tail -5 /var/log/slurm/slurmctld.log >&2 || true; exit 1; }
# gate on a smoke job: an idle node can still refuse its first allocations
job=$(sbatch --parsable -p short -t 1 -o /dev/null --wrap true)
for _ in $(seq 1 150); do
  squeue -h -j "$job" 2>/dev/null | grep -q . || break
  sleep 0.2
done
if squeue -h -j "$job" 2>/dev/null | grep -q .; then
  echo "setup_slurm.sh: smoke job $job did not finish" >&2; squeue >&2; exit 1
fi
echo "slurm ready: node ${HOST}, ${CPUS} CPUs, ${MEM_MB} MB, partitions short (30 min) and long"
