#!/usr/bin/env bash
# A one-node SLURM cluster with accounting, for testing the workflow's SLURM profile on a
# real scheduler. Debian, as root, without systemd (daemons started directly).
#
#   cluster/one-node-slurm.sh up      install (apt-get), configure, start; wait until the
#                                     node is idle and sacct answers. A second `up` is a
#                                     no-op; `up` after a crash restarts what is down.
#   cluster/one-node-slurm.sh down    stop every daemon it started (configs and the
#                                     accounting database stay, so the next `up` is quick)
#   cluster/one-node-slurm.sh status  one line per daemon, then sinfo
#
# Partitions are named as profiles/slurm names them: `cpu` (default) and `gpu`. The node
# declares two GPUs (gres gpu:2) backed by placeholder device files (/dev/null, /dev/zero),
# so a `--gpus=1` job is scheduled and sees CUDA_VISIBLE_DEVICES=0 or 1; torch then finds
# no CUDA and the workflow's `device: auto` runs on the CPU.
#
# Every failure is one line on stderr naming what did not start and its log.
set -uo pipefail

CLUSTER=inputspace
NODE=$(hostname -s)
ETC=/etc/slurm
LOGS=/var/log/inputspace-slurm
SPOOL=/var/spool/inputspace-slurm
RUN=/run/inputspace-slurm
DB_PASS=inputspace-local-test-cluster # a loopback-only database of a throwaway test cluster
GPUS=2 # placeholders: two GPU jobs may run side by side, as on a real GPU node
GPU_FILES=/dev/null,/dev/zero
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

die() {
  echo "one-node-slurm: $*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
}

install_packages() {
  local missing=()
  for bin in slurmctld slurmd sbatch sacct slurmdbd munged mariadbd; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "one-node-slurm: installing ${PACKAGES[*]} (about a minute)" >&2
  local log=$LOGS/apt-get.log
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1 ||
    die "apt-get could not install ${PACKAGES[*]}; see $log"
}

# ------------------------------------------------------------------ configuration

node_line() {
  # The node as slurmd sees it, with a little memory kept back for the system: slurmd
  # drains a node that declares more memory than it has.
  local hardware memory
  hardware=$(slurmd -C 2>/dev/null | head -n 1) || true
  [ -n "$hardware" ] || die "slurmd -C could not read this machine's hardware"
  memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
  echo "$hardware" | sed "s/RealMemory=[0-9]*/RealMemory=$((memory * 95 / 100))/" |
    sed "s/^NodeName=[^ ]*/NodeName=$NODE/" | tr -d '\n'
  echo " Gres=gpu:$GPUS State=UNKNOWN"
}

slurm_conf() {
  cat <<EOF
# Written by cluster/one-node-slurm.sh: a one-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
# Quick turnarounds for tests: a job over its time limit is signalled at once and killed
# 5 s later; finished jobs leave slurmctld's memory after 5 minutes (sacct keeps them).
OverTimeLimit=0
KillWait=5
MinJobAge=300
InactiveLimit=0
SlurmdTimeout=120
$(node_line)
# Two jobs may share a core: short jobs mostly wait (for Python's imports, for
# Snakemake's status checks), and a test node has few cores.
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
EOF
}

slurmdbd_conf() {
  cat <<EOF
# Written by cluster/one-node-slurm.sh: accounting for a one-node test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
}

# Writes $2 (content) to $1 when it differs; returns 0 when it changed the file.
write_if_changed() {
  local path=$1 content=$2 mode=$3
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 1
  fi
  printf '%s\n' "$content" >"$path.new" && chmod "$mode" "$path.new" && mv "$path.new" "$path"
}

configure() {
  mkdir -p "$ETC" "$LOGS" "$SPOOL/ctld" "$SPOOL/d" "$RUN"
  CHANGED=0
  write_if_changed "$ETC/slurm.conf" "$(slurm_conf)" 644 && CHANGED=1
  write_if_changed "$ETC/gres.conf" "NodeName=$NODE Name=gpu File=$GPU_FILES" 644 && CHANGED=1
  write_if_changed "$ETC/slurmdbd.conf" "$(slurmdbd_conf)" 600 && CHANGED=1
  [ -f "$ETC/cgroup.conf" ] || echo "CgroupPlugin=autodetect" >"$ETC/cgroup.conf"
  return 0
}

# ------------------------------------------------------------------ daemons

alive() { # pid file, daemon name -> running? (the name guards against a reused pid)
  [ -f "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]
}

wait_for() { # seconds, description, log, command...
  local seconds=$1 what=$2 log=$3
  shift 3
  for _ in $(seq "$((seconds * 2))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "$what did not start within ${seconds} s; see $log"
}

start_munge() {
  local pidfile=/run/munge/munged.pid log=/var/log/munge/munged.log
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 ||
      die "munge could not create its key /etc/munge/munge.key"
  fi
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  if ! alive "$pidfile" munged; then
    rm -f /run/munge/munge.socket.2 "$pidfile"
    runuser -u munge -- /usr/sbin/munged >/dev/null 2>&1 ||
      die "munged did not start; see $log"
  fi
  wait_for 20 munged "$log" bash -c 'munge -n | unmunge'
}

start_mariadb() {
  local log=$LOGS/mariadb.log
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$log" 2>&1 ||
      die "mariadb-install-db could not create the database; see $log"
  fi
  if ! mariadb-admin ping >/dev/null 2>&1; then
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      >>"$log" 2>&1 </dev/null &
  fi
  wait_for 60 mariadbd "$log" mariadb-admin ping
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" >>"$log" 2>&1 ||
    die "mariadbd would not create the accounting user; see $log"
}

start_daemon() { # name, pid file, log, ready-check command...
  local name=$1 pidfile=$2 log=$3
  shift 3
  if ! alive "$pidfile" "$name"; then
    rm -f "$pidfile"
    "/usr/sbin/$name" >>"$log" 2>&1 </dev/null || die "$name did not start; see $log"
  elif [ "$CHANGED" = 1 ]; then
    kill "$(cat "$pidfile")" && sleep 1
    "/usr/sbin/$name" >>"$log" 2>&1 </dev/null || die "$name did not restart; see $log"
  fi
  wait_for 60 "$name" "$log" "$@"
}

register_cluster() {
  sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER" && return 0
  sacctmgr -i add cluster "$CLUSTER" >>"$LOGS/slurmdbd.log" 2>&1 ||
    die "slurmdbd would not register cluster $CLUSTER; see $LOGS/slurmdbd.log"
}

node_state() {
  sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1
}

wait_until_idle() {
  local state
  for _ in $(seq 120); do
    state=$(node_state)
    case "$state" in
      idle | mixed | allocated) return 0 ;;
      down* | drain* | drained*)
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1
        ;;
    esac
    sleep 0.5
  done
  die "node $NODE is '${state:-unknown}', not idle, after 60 s; see $LOGS/slurmd.log and $LOGS/slurmctld.log"
}

up() {
  need_root
  mkdir -p "$LOGS"
  install_packages
  configure
  start_munge
  start_mariadb
  start_daemon slurmdbd "$RUN/slurmdbd.pid" "$LOGS/slurmdbd.log" sacctmgr -n list cluster
  register_cluster
  start_daemon slurmctld "$RUN/slurmctld.pid" "$LOGS/slurmctld.log" scontrol ping
  start_daemon slurmd "$RUN/slurmd.pid" "$LOGS/slurmd.log" \
    bash -c "sinfo -h -N -n '$NODE' -o %T | grep -qv '^$'"
  wait_until_idle
  wait_for 30 "sacct (accounting)" "$LOGS/slurmdbd.log" sacct -n -X -S now
  echo "one-node-slurm: cluster '$CLUSTER' is up: node $NODE $(node_state), partitions cpu and gpu"
}

stop() { # name, pid file
  alive "$2" "$1" || return 0
  local pid
  pid=$(cat "$2")
  kill "$pid" 2>/dev/null
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null
}

down() {
  need_root
  stop slurmd "$RUN/slurmd.pid"
  stop slurmctld "$RUN/slurmctld.pid"
  stop slurmdbd "$RUN/slurmdbd.pid"
  [ -f /run/mysqld/mysqld.pid ] && stop mariadbd /run/mysqld/mysqld.pid
  stop munged /run/munge/munged.pid
  echo "one-node-slurm: cluster '$CLUSTER' is down"
}

status() {
  for daemon in "munged /run/munge/munged.pid" "mariadbd /run/mysqld/mysqld.pid" \
    "slurmdbd $RUN/slurmdbd.pid" "slurmctld $RUN/slurmctld.pid" "slurmd $RUN/slurmd.pid"; do
    set -- $daemon
    if alive "$2" "$1"; then echo "$1: running"; else echo "$1: stopped"; fi
  done
  command -v sinfo >/dev/null && sinfo 2>&1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
