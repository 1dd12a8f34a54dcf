#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (Debian's slurm-wlm and munge), for the real
# SLURM test (tests/e2e/test_slurm.py). .ci/run calls it; it needs root or password-less sudo
# and is idempotent: with a running cluster it returns at once. Usage: bash env/ci_slurm.sh
set -euo pipefail
if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|allocated"; then
    echo "slurm: already running"; exit 0
fi
sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo -n"
export DEBIAN_FRONTEND=noninteractive
pkgs=(slurm-wlm munge)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq \
             && $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
dir=/tmp/ci-slurm
$sudo mkdir -p "$dir/state" "$dir/spool" "$dir/log"
$sudo tee /etc/slurm/slurm.conf >/dev/null <<CONF
ClusterName=ci
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
[[ -f /etc/munge/munge.key ]] || $sudo mungekey -c
$sudo mkdir -p /run/munge
$sudo chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
pgrep -x munged >/dev/null || $sudo su -s /bin/bash munge -c /usr/sbin/munged
pgrep -x slurmctld >/dev/null || $sudo slurmctld
pgrep -x slurmd >/dev/null || $sudo slurmd
for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && { echo "slurm: one node ($cpus CPUs) up"; exit 0; }
    sleep 1
done
echo "slurm: the node did not come up (see $dir/log/)" >&2
exit 1
