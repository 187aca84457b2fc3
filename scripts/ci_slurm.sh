#!/usr/bin/env bash
# A real single-node Slurm cluster on this host, on CPU, for the Slurm launcher's tests
# (tests/test_slurm_launcher.py): Debian's slurm-wlm and munge; no GPU, no accounting database.
# Idempotent: every step is skipped when its result is already there.
#
#   1. install slurm-wlm and munge (apt) when slurmctld, slurmd or munged is missing
#   2. make a munge key when there is none; start munged when munge does not answer
#   3. write /etc/slurm/slurm.conf for this host: one node (this host) declaring CPUS CPUs
#      (default 4: several array tasks at once even on a 2-core machine; `config_overrides` lets
#      slurmd declare more than it has), one default partition `ci`, linuxproc process tracking
#      (no cgroups needed, so it also runs in a container); daemons of an older version of this
#      file are restarted
#   4. start slurmctld and slurmd, resume the node if an earlier run left it down
#
# A cluster whose slurm.conf this script did not write is never touched. Exit status 0 even when
# no cluster can run here (the tests then skip with the reason): the reason is printed.
# Logs: /var/log/slurm/slurmctld.log, /var/log/slurm/slurmd.log, /var/log/munge/munged.log.
set -uo pipefail
started=$(date +%s)
cpus="${CPUS:-4}"
conf=/etc/slurm/slurm.conf
marker="# Written by scripts/ci_slurm.sh"
host="$(hostname -s)"

note() { echo "ci_slurm: $*"; }
give_up() { note "$*; Slurm tests will skip"; exit 0; }
node_ready() { sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
ready() { note "cluster up ($(sinfo -h -o '%P %D node(s) %c cpus' | head -n1)), ready in $(( $(date +%s) - started )) s"; }

wanted="$(cat <<EOF
${marker}: a one-node CPU cluster for tests.
ClusterName=collapsebench-ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# Look at pending jobs every 2 s (default 60 s), so a requeued task starts as soon as it may.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
# A requeued task may start again after cred_expire seconds (default 120): short, so tests can requeue.
AuthInfo=cred_expire=10
MinJobAge=600
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)"

if [ -f "$conf" ] && ! grep -q "^$marker" "$conf"; then
    if node_ready; then note "a cluster this script did not make answers; leaving it as it is"; ready; exit 0; fi
    give_up "$conf was not written by this script; leaving it alone"
fi
if node_ready && [ "$(cat "$conf")" = "$wanted" ]; then ready; exit 0; fi
[ "$(id -u)" = 0 ] || give_up "not root: cannot install or start the Slurm daemons"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    note "installing slurm-wlm and munge"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 \
        apt-get install -y -qq slurm-wlm munge >/dev/null) || give_up "apt-get could not install slurm-wlm/munge"
fi

# munge: the key Slurm's daemons and clients authenticate with.
if [ ! -s /etc/munge/munge.key ]; then
    note "making a munge key"
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! munge_ok; then
    note "starting munged"
    install -d -o munge -g munge -m 755 /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged || give_up "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 1 20); do munge_ok && break; sleep 0.5; done
fi
munge_ok || give_up "munge does not answer"

install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
    note "writing $conf (node $host, $cpus CPUs)"
    install -d /etc/slurm && printf '%s\n' "$wanted" >"$conf"
    for pidfile in /run/slurmctld.pid /run/slurmd.pid; do  # daemons of an older version of the file
        if [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
            for _ in $(seq 1 20); do kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || break; sleep 0.5; done
        fi
    done
fi

if ! scontrol ping 2>/dev/null | grep -q UP; then
    note "starting slurmctld"
    slurmctld || give_up "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
if ! { [ -s /run/slurmd.pid ] && kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null; }; then
    note "starting slurmd"
    slurmd || give_up "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi
for _ in $(seq 1 30); do
    node_ready && break
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(down|drain|drng|fail)'; then
        scontrol update nodename="$host" state=resume 2>/dev/null
    fi
    sleep 1
done
node_ready || give_up "the node did not become idle: $(sinfo -N 2>&1 | tail -n1)"
ready
