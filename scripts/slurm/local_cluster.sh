#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for testing biomedquant's SLURM profile
# (tests/test_slurm.py) against the same daemons and the same executor plugin as a site's.
#
#   scripts/slurm/local_cluster.sh start    install what is missing, configure, start, wait idle
#   scripts/slurm/local_cluster.sh status   daemons (by recorded PID) and the node's state
#   scripts/slurm/local_cluster.sh stop     cancel jobs, stop the daemons this script started,
#                                           remove the configuration it wrote
#
# What it builds, and why each piece is there:
# * munged: Slurm's authentication; every daemon and client talks through it.
# * mariadb + slurmdbd: accounting, so that `sacct` answers. The executor plugin polls job
#   states with sacct (without a database its status checks never end), and the test reads
#   AllocTRES from it to see that GPU jobs were given a GPU.
# * slurmctld + slurmd: one node named `hostname -s` (Slurm requires NodeName to be the short
#   host name of the machine slurmd runs on). CPUs and memory are consumable resources, so
#   jobs' requests are checked and scheduled as on a real cluster. The node declares at least
#   2 CPUs per fake GPU and 64 GB (config_overrides: slurmd does not compare them with the
#   hardware, and without cgroups nothing enforces them), so that the profile's real requests
#   (cpus_per_gpu=2, the estimator's mem_mb) fit on a small CI machine and both GPUs are used.
# * Fake GPUs: a GRES `gpu` with one character device per GPU (clones of /dev/null, c 1 3).
#   Slurm 22.05 drops a GPU GRES without File=, and refuses two GPUs sharing one file; nothing
#   ever opens the devices (no cgroup device constraint), so jobs see CUDA_VISIBLE_DEVICES and
#   sacct records gres/gpu, while the work itself runs on the CPU.
# * Partition `main` (default) and account `biomedquant` with root as a user: the executor
#   plugin checks a given account with sacctmgr before it submits anything.
#
# Runs as root on Debian (12: Slurm 22.05) without systemd: daemons are started by hand and
# their PIDs recorded, so `stop` ends exactly those processes. Idempotent: `start` on a running
# cluster only checks it (and restarts slurmctld/slurmd if their configuration changed).
#
# Knobs (environment): BIOMEDQUANT_SLURM_DIR (state, logs, PIDs; default
# /tmp/biomedquant-slurm), BIOMEDQUANT_SLURM_GPUS (fake GPUs, default 2),
# BIOMEDQUANT_SLURM_CONF_DIR (default /etc/slurm, where every Slurm client looks; elsewhere,
# export SLURM_CONF=<dir>/slurm.conf for clients), BIOMEDQUANT_SLURM_MEMORY_MB (the node's
# memory; default the larger of 85% of this machine's and 65536), BIOMEDQUANT_SLURM_CPUS (the
# node's CPUs; default the larger of this machine's and 2 per GPU).
set -euo pipefail

BASE=${BIOMEDQUANT_SLURM_DIR:-/tmp/biomedquant-slurm}
NGPU=${BIOMEDQUANT_SLURM_GPUS:-2}
MEMORY_MB=${BIOMEDQUANT_SLURM_MEMORY_MB:-}
CPUS=${BIOMEDQUANT_SLURM_CPUS:-}
CONF_DIR=${BIOMEDQUANT_SLURM_CONF_DIR:-/etc/slurm}
PARTITION=main
ACCOUNT=biomedquant
CLUSTER=biomedquant
MARKER="# written by biomedquant scripts/slurm/local_cluster.sh"
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client procps)
DB_SOCKET=/run/mysqld/mysqld.sock # Debian's default: slurmdbd's client library finds it

# Daemons in start order; `stop` goes in reverse. name:pidfile
DAEMONS=(
  "munged:$BASE/run/munge/munged.pid"
  "mariadbd:$BASE/run/mysql/mariadbd.pid"
  "slurmdbd:$BASE/run/slurm/slurmdbd.pid"
  "slurmctld:$BASE/run/slurm/slurmctld.pid"
  "slurmd:$BASE/run/slurm/slurmd.pid"
)

log() { echo "[local_cluster $(date +%H:%M:%S)] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
pidfile_of() {
  local d
  for d in "${DAEMONS[@]}"; do
    if [ "${d%%:*}" = "$1" ]; then
      echo "${d#*:}"
      return 0
    fi
  done
  die "no daemon $1"
}
alive() { # name
  local f
  f=$(pidfile_of "$1")
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}
wait_for() { # seconds description command...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq $((secs * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "timed out after ${secs}s waiting for $what"
}

wait_for_pidfile() { # name seconds: a daemon that forked writes its PID file late
  local f
  f=$(pidfile_of "$1")
  for _ in $(seq $(($2 * 5))); do
    alive "$1" && return 0
    if ! pgrep -x "$1" >/dev/null; then
      tail -5 "$BASE/log/$1.log" >&2 || true
      die "$1 exited before writing $f"
    fi
    sleep 0.2
  done
  die "$1 is running but wrote no PID file $f in $2 s"
}

stop_daemon() { # name
  local f p
  f=$(pidfile_of "$1")
  alive "$1" || {
    rm -f "$f"
    return 0
  }
  p=$(cat "$f")
  log "stopping $1 (pid $p)"
  kill "$p" 2>/dev/null || true
  for _ in $(seq 75); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$p" 2>/dev/null; then
    log "$1 (pid $p) ignored SIGTERM for 15 s: SIGKILL"
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

check_platform() {
  [ "$(uname -s)" = Linux ] || die "needs Linux (Debian); this is $(uname -s)"
  [ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts system daemons)"
  [ -r /etc/debian_version ] || die "needs Debian (apt packages slurmctld, slurmd, ...)"
  command -v apt-get >/dev/null || die "needs apt-get"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  # Package scripts may try to start the services (and fail without systemd): harmless, the
  # daemons are started below with this cluster's configuration.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >"$BASE/log/apt.log" 2>&1 || {
    tail -20 "$BASE/log/apt.log" >&2
    die "apt-get install failed"
  }
}

# Refuse to overwrite a Slurm configuration this script did not write: on a machine with a
# real Slurm installation, starting a toy cluster over it would be destructive.
guard_config() {
  local f
  for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -s "$CONF_DIR/$f" ] && ! grep -qF "$MARKER" "$CONF_DIR/$f"; then
      die "$CONF_DIR/$f exists and was not written by this script; not touching it" \
        "(set BIOMEDQUANT_SLURM_CONF_DIR to another folder and export SLURM_CONF)"
    fi
  done
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 700 /etc/munge
  chmod 600 /etc/munge/munge.key
  # Without systemd nobody creates munged's runtime folder (the socket lives there).
  mkdir -p /run/munge /var/log/munge /var/lib/munge "$BASE/run/munge"
  chown munge:munge /run/munge /var/log/munge /var/lib/munge "$BASE/run/munge"
  chmod 755 /run/munge
  if ! alive munged; then
    rm -f /run/munge/munge.socket.2*
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file="$(pidfile_of munged)"
  fi
  wait_for 10 munge sh -c 'munge -n </dev/null | unmunge'
}

start_database() {
  local db="$BASE/mysql"
  mkdir -p "$BASE/run/mysql" /run/mysqld
  chown mysql:mysql "$BASE/run/mysql" /run/mysqld
  if [ ! -d "$db/mysql" ]; then
    log "initialising the accounting database in $db"
    mkdir -p "$db"
    chown mysql:mysql "$db"
    mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket \
      --skip-test-db >"$BASE/log/mysql/install.log" 2>&1
  fi
  if ! alive mariadbd; then
    log "starting mariadbd"
    runuser -u mysql -- /usr/sbin/mariadbd --datadir="$db" --socket="$DB_SOCKET" \
      --pid-file="$(pidfile_of mariadbd)" --skip-networking \
      --log-error="$BASE/log/mysql/mariadb.err" --innodb-buffer-pool-size=64M </dev/null \
      >/dev/null 2>&1 &
  fi
  wait_for 30 mariadb mariadb --socket="$DB_SOCKET" -e "select 1"
  wait_for 10 "mariadbd's PID file" test -s "$(pidfile_of mariadbd)"
  mariadb --socket="$DB_SOCKET" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
LogFile=$BASE/log/slurmdbd.log
PidFile=$(pidfile_of slurmdbd)
EOF
  # slurmdbd refuses a configuration readable by others (it holds the database password).
  chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
  chmod 600 "$CONF_DIR/slurmdbd.conf"
  if ! alive slurmdbd; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd
  fi
  wait_for 30 slurmdbd sacctmgr -n list cluster
  if ! sacctmgr -nP list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  if ! sacctmgr -nP list account format=account | grep -qx "$ACCOUNT"; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
      description="biomedquant test account" >/dev/null
  fi
  if ! sacctmgr -nP list user root withassoc format=account | grep -qx "$ACCOUNT"; then
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
  fi
}

write_slurm_conf() {
  local node cpus mem gres_types="" node_gres=""
  node=$(hostname -s)
  cpus=$(nproc)
  [ "$cpus" -ge $((2 * NGPU)) ] || cpus=$((2 * NGPU))
  cpus=${CPUS:-$cpus}
  mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 85 / 100))
  [ "$mem" -ge 65536 ] || mem=65536
  mem=${MEMORY_MB:-$mem}
  if [ "$NGPU" -gt 0 ]; then
    gres_types="GresTypes=gpu"
    node_gres="Gres=gpu:$NGPU"
  fi
  cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
# No cgroups here (containers, CI runners): processes tracked through /proc, no binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# Record GPU allocations (sacct -o AllocTRES shows gres/gpu=N) and the job comment, where
# the executor plugin names each job's rule and wildcards (sacct -o Comment).
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$gres_types
ReturnToService=2
# Take CPUs and memory from NodeName below, not from the hardware (see the header).
SlurmdParameters=config_overrides
# Finished jobs stay visible to squeue for 5 minutes (a fallback status source).
MinJobAge=300
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$(pidfile_of slurmctld)
SlurmdPidFile=$(pidfile_of slurmd)
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  {
    echo "$MARKER"
    echo "AutoDetect=off"
    if [ "$NGPU" -gt 0 ]; then
      mkdir -p "$BASE/fakegpu"
      for i in $(seq 0 $((NGPU - 1))); do
        [ -c "$BASE/fakegpu/nvidia$i" ] || mknod "$BASE/fakegpu/nvidia$i" c 1 3
      done
      echo "NodeName=$node Name=gpu File=$BASE/fakegpu/nvidia[0-$((NGPU - 1))]"
    fi
  } >"$CONF_DIR/gres.conf"
  chmod 644 "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"
}

start_slurm() {
  local node sum state ok=0
  node=$(hostname -s)
  # GRES and accounting settings are read at daemon start only: restart on any change.
  sum=$(cat "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf" | sha1sum | cut -d" " -f1)
  if [ "$(cat "$BASE/run/slurm/conf.sha1" 2>/dev/null)" != "$sum" ]; then
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  if ! alive slurmctld; then
    log "starting slurmctld"
    /usr/sbin/slurmctld
  fi
  wait_for 20 slurmctld sh -c 'scontrol ping | grep -q "is UP"'
  if ! alive slurmd; then
    log "starting slurmd"
    /usr/sbin/slurmd
    # slurmd forks into the background and writes its PID file only after loading its
    # plugins, which takes seconds on a slow machine: until then `alive` cannot see it.
    wait_for_pidfile slurmd 30
  fi
  echo "$sum" >"$BASE/run/slurm/conf.sha1"

  # slurmctld restores the node's last state from StateSaveLocation, so "idle" can show before
  # this slurmd has registered: require slurmd alive, a responding node, then a real job.
  for _ in $(seq 150); do
    alive slurmd || {
      tail -5 "$BASE/log/slurmd.log" >&2
      die "slurmd exited"
    }
    state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
    case "$state" in
    idle | mix | alloc)
      ok=1
      break
      ;;
    drain | drng | inval | down) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  if [ "$ok" != 1 ] || ! timeout 60 srun -A "$ACCOUNT" -N1 -n1 --mem=100 -t 1 true; then
    sinfo -N -o "%N %t %G %E" >&2 || true
    tail -20 "$BASE/log/slurmctld.log" >&2 || true
    die "node $node not usable (state '${state:-?}')"
  fi
  log "cluster up: $(sinfo -h -N -o '%N %t, %c CPUs, %m MB, gres %G')," \
    "partition $PARTITION, account $ACCOUNT"
}

cmd_start() {
  check_platform
  mkdir -p "$BASE"/{log,state,spool,run/slurm} "$CONF_DIR"
  install_packages # creates the users slurm, munge and mysql
  mkdir -p "$BASE/log/mysql"
  chown slurm:slurm "$BASE/state" "$BASE/log" "$BASE/run/slurm"
  chown mysql:mysql "$BASE/log/mysql"
  chmod 755 "$BASE" "$BASE/run" "$BASE/log"
  guard_config
  write_slurm_conf # clients (sacctmgr too) need slurm.conf
  start_munge
  start_database
  start_slurm
}

cmd_stop() {
  local i name
  if alive slurmctld; then
    # Jobs first: their slurmstepd processes would otherwise outlive slurmd.
    scancel --full --user=root 2>/dev/null || true
    for _ in $(seq 25); do
      [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[$i]%%:*}
    stop_daemon "$name"
  done
  remove_config
}

# Remove the configuration `start` wrote (only files carrying its marker). Left behind, it
# points every Slurm client at a controller that is gone: the Snakemake SLURM plugin runs
# `scontrol show config` whenever Snakemake starts, even for a local run, and that waits 9 s
# for the dead controller. `start` writes the files again.
remove_config() {
  local f
  for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -f "$CONF_DIR/$f" ] && grep -qF "$MARKER" "$CONF_DIR/$f"; then
      rm -f "$CONF_DIR/$f"
    fi
  done
}

cmd_status() {
  local d name rc=0
  for d in "${DAEMONS[@]}"; do
    name=${d%%:*}
    if alive "$name"; then
      echo "$name: running (pid $(cat "${d#*:}"))"
    else
      echo "$name: stopped"
      rc=3
    fi
  done
  if [ "$rc" = 0 ]; then
    sinfo -N -o "%N %P %t %c %m %G" || rc=3
  fi
  return "$rc"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
