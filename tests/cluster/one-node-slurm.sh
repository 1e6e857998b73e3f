#!/usr/bin/env bash
# A one-node SLURM cluster with accounting: the fixture on which tests/test_slurm.py runs
# the workflow's SLURM profile (.ci/run brings it up and takes it down). Debian, as root,
# without systemd (daemons started directly).
#
#   tests/cluster/one-node-slurm.sh up [--replace-foreign-config]
#        install (apt-get), configure, start; wait until the node is idle and sacct
#        answers. A second `up` is a no-op; `up` after a crash restarts what is down.
#   tests/cluster/one-node-slurm.sh down
#        stop the daemons it started (configs and the accounting database stay)
#   tests/cluster/one-node-slurm.sh status
#        one line per daemon it runs, then sinfo
#   tests/cluster/one-node-slurm.sh configure [--replace-foreign-config]
#        write the configuration only (what `up` does before starting anything)
#
# What it touches, and nothing else:
# - /etc/slurm: it writes slurm.conf, gres.conf, slurmdbd.conf and cgroup.conf and
#   records their sha256 in $STATE/written. Where /etc/slurm holds any other file (or
#   one it wrote and someone changed since; a config file of a Debian package as the
#   package ships it does not count), it stops before doing anything,
#   unless given --replace-foreign-config: then it first moves every such file to
#   $STATE/backup/<time>/ (`cp -a` it back to restore).
# - Daemons of its own: a munged with its own key (an existing /etc/munge/munge.key is
#   neither read nor changed) on munge's default socket, unless a munged already answers
#   there (then that one is used, and left alone); a MariaDB server with its own data
#   folder listening on 127.0.0.1:$DB_PORT only; slurmdbd, slurmctld and slurmd. Each
#   has its pid file under $RUN, and `down` stops exactly those (checked by name, so a
#   reused pid is left alone); a daemon it did not start runs on.
# - The accounting database's password is generated at the first start into
#   $STATE/db-password (root only); the database user may use slurm_acct_db only.
#
# Partitions are named as profiles/slurm names them: `cpu` (default) and `gpu`. The node
# declares two GPUs (gres gpu:2) backed by placeholder device files (/dev/null, /dev/zero),
# so a `--gpus=1` job is scheduled and sees CUDA_VISIBLE_DEVICES=0 or 1; torch then finds
# no CUDA and the workflow's `device: auto` runs on the CPU.
#
# ONE_NODE_SLURM_ROOT (empty by default) puts every path above under another folder: for
# this script's own tests (tests/test_cluster_fixture.py), which use stand-in processes.
#
# Every failure is one line on stderr naming what did not start and its log.
set -uo pipefail

ROOT=${ONE_NODE_SLURM_ROOT:-}
CLUSTER=inputspace
NODE=$(hostname -s)
ETC=$ROOT/etc/slurm
STATE=$ROOT/var/lib/inputspace-slurm
LOGS=$ROOT/var/log/inputspace-slurm
SPOOL=$ROOT/var/spool/inputspace-slurm
RUN=$ROOT/run/inputspace-slurm
WRITTEN=$STATE/written
PASSWORD_FILE=$STATE/db-password
MUNGE_SOCKET=$ROOT/run/munge/munge.socket.2 # munge's default, where SLURM looks
DB_SOCKET=$RUN/mysqld/mysqld.sock
DB_PORT=${ONE_NODE_SLURM_DB_PORT:-16306}
CONFIGS=(slurm.conf gres.conf slurmdbd.conf cgroup.conf)
REPLACE_FLAG=--replace-foreign-config
GPUS=2 # placeholders: two GPU jobs may run side by side, as on a real GPU node
GPU_FILES=/dev/null,/dev/zero
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
ME=tests/cluster/one-node-slurm.sh

die() {
  echo "one-node-slurm: $*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
}

install_packages() {
  local missing=()
  for bin in slurmctld slurmd sbatch sacct slurmdbd munged mungekey mariadbd; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "one-node-slurm: installing ${PACKAGES[*]} (about a minute)" >&2
  local log=$LOGS/apt-get.log
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1 ||
    die "apt-get could not install ${PACKAGES[*]}; see $log"
}

# ------------------------------------------------------------------ whose configs

sha256() { sha256sum "$1" | cut -d' ' -f1; }

recorded_sha256() { # path -> the sha256 this script recorded writing there, if any
  [ -f "$WRITTEN" ] && awk -v path="$1" '$2 == path { sha = $1 } END { print sha }' "$WRITTEN"
}

package_default() { # path -> is it an installed package's config file, as shipped?
  local shipped
  shipped=$(dpkg-query -W -f='${Conffiles}\n' 2>/dev/null | awk -v path="$1" '$1 == path { print $2 }')
  [ -n "$shipped" ] && [ "$(md5sum "$1" | cut -d' ' -f1)" = "$shipped" ]
}

foreign_files() { # every file under $ETC that neither this script nor a package wrote
  [ -d "$ETC" ] || return 0
  local file
  while IFS= read -r -d '' file; do
    [ "$(recorded_sha256 "$file")" = "$(sha256 "$file")" ] || package_default "$file" ||
      echo "$file"
  done < <(find "$ETC" -type f -print0 | sort -z)
}

claim_etc() { # replace: 0 or 1
  local foreign
  foreign=$(foreign_files)
  [ -z "$foreign" ] && return 0
  if [ "$1" != 1 ]; then
    die "$ETC holds configuration this script did not write ($(echo $foreign)); it may be" \
      "a real cluster's, so nothing was changed. To replace it (it is moved to" \
      "$STATE/backup/ first), run: $ME ${ACTION:-up} $REPLACE_FLAG"
  fi
  local backup
  backup=$STATE/backup/$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$backup" && chmod 700 "$STATE/backup" || die "could not create $backup"
  while IFS= read -r file; do
    local relative=${file#"$ETC"/}
    mkdir -p "$backup/$(dirname "$relative")" &&
      cp -a "$file" "$backup/$relative" && rm -f "$file" ||
      die "could not move $file to $backup"
  done <<<"$foreign"
  echo "one-node-slurm: moved the configuration it did not write to $backup" \
    "(restore: cp -a $backup/. $ETC/)" >&2
}

# ------------------------------------------------------------------ configuration

db_password() { # generated once, readable by root only
  if [ ! -s "$PASSWORD_FILE" ]; then
    mkdir -p "$STATE" && chmod 755 "$STATE"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$PASSWORD_FILE.new") &&
      mv "$PASSWORD_FILE.new" "$PASSWORD_FILE" || die "could not write $PASSWORD_FILE"
  fi
  cat "$PASSWORD_FILE"
}

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
# Written by $ME: a one-node test cluster.
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
# sacct's Comment: the rule of each job (the executor plugin puts it there)
AccountingStoreFlags=job_comment
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
# Written by $ME: accounting for a one-node test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(db_password)
StorageLoc=slurm_acct_db
EOF
}

# Writes $2 (content) to $1 with mode $3 when it differs, and records its sha256;
# returns 0 when it changed the file.
write_config() {
  local path=$1 content=$2 mode=$3
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 1
  fi
  printf '%s\n' "$content" >"$path.new" && chmod "$mode" "$path.new" && mv "$path.new" "$path" ||
    die "could not write $path"
  local others
  others=$(awk -v path="$path" '$2 != path' "$WRITTEN" 2>/dev/null)
  printf '%s\n%s  %s\n' "$others" "$(sha256 "$path")" "$path" | sed '/^$/d' >"$WRITTEN"
}

configure() { # replace: 0 or 1
  claim_etc "$1"
  mkdir -p "$ETC" "$STATE" "$LOGS" "$SPOOL/ctld" "$SPOOL/d" "$RUN" || die "could not create $STATE"
  chmod 755 "$STATE"
  local slurm gres
  slurm=$(slurm_conf) || exit 1
  gres="NodeName=$NODE Name=gpu File=$GPU_FILES"
  CHANGED=0
  write_config "$ETC/slurm.conf" "$slurm" 644 && CHANGED=1
  write_config "$ETC/gres.conf" "$gres" 644 && CHANGED=1
  write_config "$ETC/slurmdbd.conf" "$(slurmdbd_conf)" 600 && CHANGED=1
  write_config "$ETC/cgroup.conf" "CgroupPlugin=autodetect" 644 && CHANGED=1
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

munge_works() { munge -n | unmunge; }

start_munge() { # its own key, pid file and log; the socket where SLURM looks for it
  local keys=$STATE/munge pidfile=$RUN/munge/munged.pid log=$LOGS/munge/munged.log
  if ! alive "$pidfile" munged && munge_works >/dev/null 2>&1; then
    echo "one-node-slurm: using the munged that is running (not started here: down leaves it)" >&2
    return 0
  fi
  mkdir -p "$keys" "$RUN/munge" "$LOGS/munge" &&
    chown munge:munge "$keys" "$RUN/munge" "$LOGS/munge" && chmod 700 "$keys" ||
    die "could not create munge's folders under $STATE, $RUN and $LOGS"
  if [ ! -d "$(dirname "$MUNGE_SOCKET")" ]; then
    mkdir -p "$(dirname "$MUNGE_SOCKET")" && chown munge:munge "$(dirname "$MUNGE_SOCKET")" ||
      die "could not create $(dirname "$MUNGE_SOCKET")"
  fi
  if [ ! -s "$keys/munge.key" ]; then
    mungekey --create --keyfile="$keys/munge.key" >/dev/null 2>&1 &&
      chown munge:munge "$keys/munge.key" && chmod 600 "$keys/munge.key" ||
      die "munge could not create its key $keys/munge.key"
  fi
  if ! alive "$pidfile" munged; then
    runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$keys/munge.key" \
      --pid-file="$pidfile" --log-file="$log" --seed-file="$keys/munged.seed" >/dev/null 2>&1 ||
      die "munged did not start; see $log"
  fi
  wait_for 20 munged "$log" munge_works
}

database() { mariadb --no-defaults --socket="$DB_SOCKET" -u root "$@"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_mariadb() { # a server of its own: its data folder, socket and port
  local data=$STATE/mysql pidfile=$RUN/mysqld/mariadbd.pid log=$LOGS/mariadb.log
  mkdir -p "$RUN/mysqld" && chown mysql:mysql "$RUN/mysqld" || die "could not create $RUN/mysqld"
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data" && chown mysql:mysql "$data" && chmod 700 "$data" &&
      mariadb-install-db --no-defaults --user=mysql --datadir="$data" \
        --auth-root-authentication-method=socket --skip-test-db >"$log" 2>&1 ||
      die "mariadb-install-db could not create the database in $data; see $log"
  fi
  if ! alive "$pidfile" mariadbd; then
    port_in_use "$DB_PORT" &&
      die "port $DB_PORT is taken by another program; set ONE_NODE_SLURM_DB_PORT to a free one"
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$data" \
      --socket="$DB_SOCKET" --pid-file="$pidfile" --port="$DB_PORT" --bind-address=127.0.0.1 \
      --skip-name-resolve --log-error="$log" >>"$log" 2>&1 </dev/null &
  fi
  wait_for 60 mariadbd "$log" database -e "SELECT 1"
  local password
  password=$(db_password)
  database -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" >>"$log" 2>&1 ||
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

up() { # replace: 0 or 1
  claim_etc "$1" # before anything else: a refusal changes nothing
  [ -z "$ROOT" ] || die "ONE_NODE_SLURM_ROOT is for this script's tests; up starts daemons on /"
  need_root
  mkdir -p "$LOGS"
  install_packages
  configure "$1"
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

# The daemons it starts, by name and pid file, in the order `down` stops them.
DAEMONS=(
  "slurmd $RUN/slurmd.pid"
  "slurmctld $RUN/slurmctld.pid"
  "slurmdbd $RUN/slurmdbd.pid"
  "mariadbd $RUN/mysqld/mariadbd.pid"
  "munged $RUN/munge/munged.pid"
)

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
  local daemon
  for daemon in "${DAEMONS[@]}"; do
    # shellcheck disable=SC2086 # a name and a path without spaces
    stop $daemon
  done
  echo "one-node-slurm: cluster '$CLUSTER' is down"
}

status() {
  local daemon
  for daemon in "${DAEMONS[@]}"; do
    set -- $daemon
    if alive "$2" "$1"; then echo "$1: running"; else echo "$1: stopped"; fi
  done
  command -v sinfo >/dev/null && sinfo 2>&1
}

ACTION=${1:-}
REPLACE=0
case "${2:-}" in
  "") ;;
  "$REPLACE_FLAG") REPLACE=1 ;;
  *) die "unknown option '$2'; usage: $0 up|configure [$REPLACE_FLAG] | down | status" ;;
esac
case "$ACTION" in
  up) up "$REPLACE" ;;
  configure) configure "$REPLACE" ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|configure [$REPLACE_FLAG] | down | status" ;;
esac
