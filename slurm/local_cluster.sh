#!/usr/bin/env bash
# local_cluster.sh -- a real, one-node SLURM cluster on localhost, built from
# Debian's packages (munge, slurmctld, slurmd, slurm-client).
#
#   sudo bash slurm/local_cluster.sh start    # install if needed, configure, start, wait for idle
#   sudo bash slurm/local_cluster.sh stop     # stop slurmd, slurmctld, munged
#   bash slurm/local_cluster.sh status        # exit 0 iff the node answers idle/mixed/allocated
#
# Meant for developers' machines and CI containers: runs as root, needs no
# systemd (daemons are started directly), no cgroups and no accounting
# database.  See slurm/README.md for what the configuration assumes.
#
# Tunables (environment):
#   LOCAL_SLURM_CPUS        CPUs to advertise for the node (default: nproc).
#                           More than the real count oversubscribes the
#                           machine on purpose (allowed by config_overrides).
#   LOCAL_SLURM_PARTITION   partition name (default: debug).
#   LOCAL_SLURM_WAIT_S      how long start waits for the node to be idle (default: 60).
#   LOCAL_SLURM_SACCT_SHIM  0 = do not install the sacct fallback (default: 1).
set -euo pipefail

SLURM_ETC=/etc/slurm
SLURM_CONF=$SLURM_ETC/slurm.conf
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld      # StateSaveLocation (job/node state, survives restarts)
SPOOL_DIR=/var/spool/slurmd         # SlurmdSpoolDir (batch scripts of running jobs)
RUN_DIR=/run/slurm                  # pid files
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
MUNGE_LOG=/var/log/munge/munged.log
JOBCOMP_LOG=$LOG_DIR/jobcomp.log
PARTITION=${LOCAL_SLURM_PARTITION:-debug}
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}
# Marker line so that we recognise (and may overwrite) files we wrote.
CONF_MARKER="# Written by lightsam slurm/local_cluster.sh"
# sacct fallback (see install_sacct_fallback); LOCAL_SLURM_SACCT_SHIM=0 skips it.
SACCT_SHIM=/usr/local/bin/sacct

log() { printf 'local_cluster: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "'$1' must run as root (try: sudo bash $0 $1)"
}

node_name() { hostname -s; }

# ----------------------------------------------------------------- install
install_packages() {
  local missing=()
  local pkg
  for pkg in munge slurmctld slurmd slurm-client; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  log "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for, rather than fail on, a dpkg lock held by another apt run.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # --no-install-recommends: the recommends pull in docs and mail tools that a
  # local test cluster does not need.  The packages' maintainer scripts may try
  # to start the services; without systemd that is a no-op or starts munged,
  # which start_munge() below copes with.
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
}

# ------------------------------------------------------------------- munge
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  install -d -m 0700 -o munge -g munge /etc/munge /var/lib/munge
  install -d -m 0755 -o munge -g munge "$MUNGE_RUN" /var/log/munge
  if [[ ! -s $MUNGE_KEY ]]; then
    log "creating munge key $MUNGE_KEY"
    # 1024 random bytes is what mungekey/create-munge-key produce.
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
  if munge_works; then
    return 0
  fi
  # A stale pid/socket from a killed munged makes a new one refuse to start.
  rm -f "$MUNGE_PID" "$MUNGE_RUN"/munge.socket.2*
  log "starting munged"
  # Run as the unprivileged munge user, as the packaged service does.
  # --force: container file systems often have ownership/permissions on
  # parent directories (/, /var, /etc) that munged's paranoid checks reject.
  runuser -u munge -- /usr/sbin/munged --force
  local i
  for ((i = 0; i < 20; i++)); do
    munge_works && return 0
    sleep 0.5
  done
  tail -n 20 "$MUNGE_LOG" >&2 2>/dev/null || true
  die "munged does not answer (log: $MUNGE_LOG)"
}

# -------------------------------------------------------------- slurm.conf
write_conf() {
  # Prints "changed" on stdout if slurm.conf was (re)written.
  local node cpus mem_total_mb headroom_mb real_mem tmp
  node=$(node_name)
  cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
  mem_total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  # Leave the OS and the daemons some memory: 5 % or 1 GiB, whichever is larger.
  headroom_mb=$((mem_total_mb / 20))
  if ((headroom_mb < 1024)); then headroom_mb=1024; fi
  real_mem=$((mem_total_mb - headroom_mb))
  if ((real_mem < 256)); then real_mem=256; fi

  install -d -m 0755 "$SLURM_ETC"
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
$CONF_MARKER -- regenerated on every 'start'; edit the script, not this file.
ClusterName=localcluster
# The node talks to the controller over loopback: the short host name need
# not resolve, and nothing leaves the machine.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
# Root runs both daemons: start/stop need root anyway, and it spares chown'ing
# state, spool and log directories to the package's 'slurm' user.  Jobs still
# run as the user who submitted them.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire (default 120 s) is also how long a requeued job must wait before
# it may start again (it stays PENDING, reason BeginTime).  Tests requeue
# jobs, so keep it short; a local node launches steps in well under a second.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
# No mail on a test machine (the default /bin/mail is not installed).
MailProg=/bin/true
SwitchType=switch/none

# No cgroups: containers (Docker without --privileged, gVisor sandboxes) do
# not hand out a writable, delegated cgroup tree, and with proctrack/cgroup or
# task/cgroup slurmd refuses to start without one.  proctrack/linuxproc tracks a job's processes through
# /proc parent links instead (a daemonised grandchild can escape it, which is
# acceptable for tests); task/none does no CPU binding or memory fencing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none

# No accounting database (no slurmdbd): sacct has nothing to read.  Finished
# jobs are recorded, one line each, in a plain text job-completion log, and
# stay visible to squeue/scontrol for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
MinJobAge=3600
MaxJobCount=20000

# Scheduling: cons_tres with CR_CPU makes a CPU (not a whole core, not the
# whole node) the unit of allocation, so N one-CPU jobs run side by side on
# an N-CPU node.  Memory is deliberately not a consumable resource: with
# CR_*_Memory a job that gives no --mem gets the whole node's memory and
# jobs would run one at a time; without cgroups memory is not enforced anyway.
# --mem requests are still checked against RealMemory at submission.
SchedulerType=sched/backfill
# Run the scheduling loops every few seconds (defaults 60 s / 30 s) so that a
# requeued job whose BeginTime passed starts promptly.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MaxArraySize=1001
# Tests requeue running jobs (scontrol requeue) and expect them to run again.
JobRequeue=1
# A node that went DOWN (e.g. slurmd restarted) comes back by itself once
# slurmd registers with a valid configuration.
ReturnToService=2
# Short timeouts: a test cluster should notice restarts and kill jobs quickly.
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
# Trust the node line below instead of draining the node when the hardware
# slurmd detects differs (containers report the host's sockets/cores, and
# LOCAL_SLURM_CPUS may oversubscribe on purpose).
SlurmdParameters=config_overrides

NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ -f $SLURM_CONF ]] && cmp -s "$tmp" "$SLURM_CONF"; then
    rm -f "$tmp"
    return 0
  fi
  if [[ -f $SLURM_CONF ]] && ! grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
    local backup
    backup="$SLURM_CONF.bak.$(date +%Y%m%d%H%M%S)"
    log "keeping the existing foreign $SLURM_CONF as $backup"
    cp -p "$SLURM_CONF" "$backup"
  fi
  install -m 0644 "$tmp" "$SLURM_CONF"
  rm -f "$tmp"
  log "wrote $SLURM_CONF (node $node, CPUs=$cpus, RealMemory=${real_mem}MB)"
  echo changed
}

# ------------------------------------------------------------ sacct fallback
# submitit (1.5.x) learns job states only from
#   sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID...]
# Without an accounting database the real sacct only says "Slurm accounting
# storage is disabled" and exits 1; submitit then logs a warning and keeps the
# state UNKNOWN, so job.result() still works for jobs that wrote their result
# but job.wait()/done() never end for a job killed before it wrote one
# (scancel, timeout, node failure).  The fallback below is put in front of
# the real sacct on PATH: it runs the real sacct first and, only when that
# reports that accounting is disabled, answers the common sacct options from
# slurmctld's memory (squeue -t all), which keeps finished jobs for MinJobAge.
install_sacct_fallback() {
  [[ ${LOCAL_SLURM_SACCT_SHIM:-1} != 0 ]] || return 0
  if [[ -e $SACCT_SHIM ]] && ! grep -qF "$CONF_MARKER" "$SACCT_SHIM"; then
    log "not touching foreign $SACCT_SHIM (sacct fallback not installed)"
    return 0
  fi
  local tmp
  tmp=$(mktemp)
  {
    echo '#!/usr/bin/env bash'
    echo "$CONF_MARKER (sacct fallback for a cluster without slurmdbd)."
    cat <<'SHIM'
# Runs the real sacct; if Slurm accounting storage is disabled, emulates
#   sacct [-P|-p] [-n] [-X] [-a] [-o FIELDS] [-j IDS] [-u USER] [-S T] [-E T]
# from `squeue -t all`, which knows pending, running and recently finished
# jobs (MinJobAge).  Field names are sacct's; states are the same words.
set -uo pipefail
real=/usr/bin/sacct
if [[ -x $real ]]; then
  out=$(mktemp) err=$(mktemp)
  trap 'rm -f "$out" "$err"' EXIT
  rc=0
  "$real" "$@" >"$out" 2>"$err" || rc=$?
  if ((rc == 0)); then cat "$out"; cat "$err" >&2; exit 0; fi
  if ! grep -qi 'accounting storage is disabled' "$err"; then
    cat "$out"; cat "$err" >&2; exit "$rc"
  fi
fi
fields="JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"
jobs="" sep="" trail="" header=1 users="" allusers=0
while (($#)); do
  case $1 in
    -P | --parsable2) sep="|" ;;
    -p | --parsable) sep="|" trail="|" ;;
    -n | --noheader) header=0 ;;
    -X | --allocations | -D | --duplicates | -L | --allclusters) ;;
    -a | --allusers) allusers=1 ;;
    -o | --format | -j | --jobs | -u | --user | -S | --starttime | -E | --endtime)
      (($# >= 2)) || { echo "sacct: option $1 needs a value" >&2; exit 1; }
      case $1 in
        -o | --format) fields=$2 ;;
        -j | --jobs) jobs+=",$2" ;;
        -u | --user) users=$2 ;;
      esac
      shift ;;
    --format=*) fields=${1#*=} ;;
    --jobs=*) jobs+=",${1#*=}" ;;
    --user=*) users=${1#*=} ;;
    --starttime=* | --endtime=*) ;;
    -o?*) fields=${1#-o} ;;
    -j?*) jobs+=",${1#-j}" ;;
    *) echo "sacct (local cluster fallback): unsupported argument '$1'" >&2; exit 1 ;;
  esac
  shift
done
declare -A map=(
  [jobid]="JobID JobArrayID" [jobidraw]="JobIDRaw JobID" [jobname]="JobName Name"
  [state]="State State" [nodelist]="NodeList NodeList" [exitcode]="ExitCode exit_code"
  [partition]="Partition Partition" [account]="Account Account"
  [alloccpus]="AllocCPUS NumCPUs" [ncpus]="NCPUS NumCPUs" [user]="User UserName"
  [elapsed]="Elapsed TimeUsed" [start]="Start StartTime" [end]="End EndTime"
  [submit]="Submit SubmitTime" [reason]="Reason Reason" [timelimit]="Timelimit TimeLimit"
  [nnodes]="NNodes NumNodes" [workdir]="WorkDir WorkDir"
  [arrayjobid]="ArrayJobID ArrayJobID" [arraytaskid]="ArrayTaskID ArrayTaskID"
)
names=() spec="" exitcol=0 i=0
IFS=, read -ra wanted <<<"$fields"
for f in "${wanted[@]}"; do
  key=${f%%%*}; key=${key,,}
  [[ -n $key ]] || continue
  [[ -n ${map[$key]:-} ]] || { echo "sacct (local cluster fallback): unsupported field '$f'" >&2; exit 1; }
  read -r name sq <<<"${map[$key]}"
  names+=("$name"); spec+="${spec:+,}$sq:|"; i=$((i + 1))
  [[ $key == exitcode ]] && exitcol=$i
done
args=(-h -r -t all -O "$spec")
ids=$(tr ',' '\n' <<<"$jobs" | sed -e 's/\..*//' -e '/^$/d' | sort -u | paste -sd, -)
if [[ -n $ids ]]; then
  args+=(-j "$ids")
elif ((!allusers)); then
  args+=(-u "${users:-$(id -un)}")
fi
[[ -n $users && -n $ids ]] && args+=(-u "$users")
if ! rows=$(squeue "${args[@]}" 2>&1); then
  # A single id slurmctld has forgotten (or never knew): no rows, like sacct.
  if grep -q 'Invalid job id' <<<"$rows"; then rows=""; else echo "$rows" >&2; exit 1; fi
fi
{
  if ((header)); then (IFS="|"; echo "${names[*]}|"); fi
  if [[ -n $rows ]]; then printf '%s\n' "$rows"; fi
} | awk -F'|' -v OFS='|' -v sep="$sep" -v trail="$trail" -v ec="$exitcol" -v hdr="$header" '
  { NF = NF - 1                                  # squeue -O leaves a trailing "|"
    for (i = 1; i <= NF; i++) if ($i == "(null)") $i = ""
    if (ec && !(hdr && NR == 1) && $ec !~ /:/) $ec = $ec ":0"
    if (sep != "") { print $0 trail; next }
    line = ""; for (i = 1; i <= NF; i++) line = line sprintf("%-20s ", $i); print line }'
SHIM
  } >"$tmp"
  if [[ -f $SACCT_SHIM ]] && cmp -s "$tmp" "$SACCT_SHIM"; then
    rm -f "$tmp"
    return 0
  fi
  install -m 0755 "$tmp" "$SACCT_SHIM"
  rm -f "$tmp"
  log "installed sacct fallback $SACCT_SHIM (real sacct: /usr/bin/sacct)"
}

# ------------------------------------------------------------------ daemons
# True if process $1 exists and is not a zombie.  In containers PID 1 is
# often not an init that reaps orphans, so the parent left behind when a
# daemon forks into the background, or a killed daemon, can linger as a
# zombie under its old name.
alive() {
  local st
  st=$(awk '{print $3}' /proc/"$1"/stat 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

# pid of a running daemon from its pid file, checked against the process name.
running_pid() {
  local pidfile=$1 name=$2 pid
  [[ -r $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]] || return 1
  alive "$pid" || return 1
  echo "$pid"
}

# Live pids of processes named exactly $1 (fallback when the pid file is gone).
pids_named() {
  local pid
  for pid in $(pgrep -x "$1" || true); do
    if alive "$pid"; then echo "$pid"; fi
  done
}

stop_daemon() {
  local pidfile=$1 name=$2 pids pid i
  pids=$(
    running_pid "$pidfile" "$name" || true
    pids_named "$name"
  )
  pids=$(sort -un <<<"$pids" | xargs)
  if [[ -z $pids ]]; then
    rm -f "$pidfile"
    return 0
  fi
  log "stopping $name ($pids)"
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 30; i++)); do
    local any=0
    for pid in $pids; do alive "$pid" && any=1; done
    ((any)) || break
    sleep 0.5
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$pidfile"
}

show_logs() {
  local f
  for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" "$MUNGE_LOG"; do
    if [[ -r $f ]]; then
      printf '\n==== tail %s ====\n' "$f" >&2
      tail -n 25 "$f" >&2
    fi
  done
}

start_slurm() {
  local restart=$1
  install -d -m 0755 "$LOG_DIR" "$RUN_DIR" "$SPOOL_DIR"
  install -d -m 0700 "$STATE_DIR"
  if [[ $restart == yes ]]; then
    # The configuration changed under running daemons: restart both rather
    # than 'scontrol reconfigure', which cannot change node definitions.
    stop_daemon "$SLURMD_PID" slurmd
    stop_daemon "$CTLD_PID" slurmctld
  fi
  # Both daemons fork into the background themselves (no -D) and write their
  # pid files, so they outlive this script and the shell that ran it.
  # slurmctld recovers the saved job state (job ids keep counting up);
  # -i ignores a state file that an older/incompatible run left behind.
  if ! running_pid "$CTLD_PID" slurmctld >/dev/null; then
    log "starting slurmctld"
    slurmctld -i -f "$SLURM_CONF" || { show_logs; die "slurmctld failed to start"; }
  fi
  if ! running_pid "$SLURMD_PID" slurmd >/dev/null; then
    log "starting slurmd"
    SLURMD_LAUNCHED_AT=$(date +%s)
    slurmd -f "$SLURM_CONF" || { show_logs; die "slurmd failed to start"; }
  fi
}

# Set when this run launches slurmd: the node only counts as up once that
# slurmd has registered (a restarted slurmctld shows the node's saved state,
# e.g. idle, before any slurmd has talked to it).
SLURMD_LAUNCHED_AT=0

# Epoch seconds of the last slurmd registration of this host's node, or 0.
slurmd_registered_at() {
  local t
  t=$(timeout 15 scontrol show node "$(node_name)" -o 2>/dev/null |
    tr ' ' '\n' | sed -n 's/^SlurmdStartTime=//p')
  [[ $t == 20* ]] || { echo 0; return 0; }   # empty or "None": not registered
  date -d "$t" +%s 2>/dev/null || echo 0
}

# State of this host's node as sinfo prints it (%t: idle, mix, alloc, down*,
# drain, ...), or nothing when the controller does not answer.
node_state() {
  timeout 15 sinfo -h -N -n "$(node_name)" -o '%t' 2>/dev/null | head -n 1 || true
}

wait_for_node() {
  local node state deadline resumed=0
  node=$(node_name)
  deadline=$((SECONDS + WAIT_S))
  while ((SECONDS < deadline)); do
    state=$(node_state)
    case $state in
      idle | mix | alloc | comp)
        # SlurmdStartTime has 1 s resolution: allow for rounding.
        (($(slurmd_registered_at) >= SLURMD_LAUNCHED_AT - 1)) && return 0
        ;;
      # down/drained with slurmd responding (no '*'): left over from an
      # earlier run (e.g. killed slurmd); put it back in service once.
      down | drain | drng | fail)
        if ((!resumed)); then
          log "node $node is '$state': resuming it"
          scontrol update nodename="$node" state=resume 2>/dev/null || true
          resumed=1
        fi
        ;;
    esac
    # Not responding at all: check that the daemons have not died.
    running_pid "$CTLD_PID" slurmctld >/dev/null || { show_logs; die "slurmctld exited"; }
    running_pid "$SLURMD_PID" slurmd >/dev/null || { show_logs; die "slurmd exited"; }
    sleep 1
  done
  show_logs
  die "node $node not idle after ${WAIT_S}s (state: '${state:-no answer}')"
}

cmd_start() {
  need_root start
  local t0=$SECONDS changed restart=no
  install_packages
  start_munge
  changed=$(write_conf)
  if [[ $changed == changed ]] &&
    { running_pid "$CTLD_PID" slurmctld >/dev/null || running_pid "$SLURMD_PID" slurmd >/dev/null; }; then
    restart=yes
  fi
  start_slurm "$restart"
  install_sacct_fallback
  wait_for_node
  log "cluster up in $((SECONDS - t0))s; logs in $LOG_DIR"
  sinfo
}

cmd_stop() {
  need_root stop
  stop_daemon "$SLURMD_PID" slurmd
  stop_daemon "$CTLD_PID" slurmctld
  stop_daemon "$MUNGE_PID" munged
  log "stopped"
}

cmd_status() {
  local state node
  node=$(node_name)
  if ! command -v sinfo >/dev/null; then
    echo "local slurm cluster: not installed (run: sudo bash $0 start)"
    return 3
  fi
  # No local slurmctld: say so at once instead of letting sinfo retry (~10 s).
  if ! running_pid "$CTLD_PID" slurmctld >/dev/null; then
    echo "local slurm cluster: down (slurmctld is not running)"
    return 1
  fi
  state=$(node_state)
  case $state in
    idle | mix | alloc | comp)
      echo "local slurm cluster: up, node $node $state, partition $PARTITION"
      return 0
      ;;
    "")
      echo "local slurm cluster: down (slurmctld does not answer)"
      return 1
      ;;
    *)
      echo "local slurm cluster: node $node is '$state'"
      return 2
      ;;
  esac
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 {start|stop|status}" >&2
    exit 64
    ;;
esac
