# shellcheck shell=bash
# Shared helpers of the pve2node lab: sourced by tests/lab/lab.sh on the host and by the
# stand-ins inside the nodes (/usr/local/sbin there is a bind mount of the node's sbin dir).

# now: seconds since the epoch with microseconds (bash 5).
now() { printf '%s\n' "$EPOCHREALTIME"; }
# elapsed START: seconds since START, 2 decimals.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# proc_state PID: the one-letter state of PID from /proc (empty when it does not exist).
proc_state() {
  local s=""
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 0
  s=${s##*) }
  printf '%s\n' "${s%% *}"
}

# alive PID [COMM]: PID exists, is not a zombie (this sandbox's init reaps late) and, when
# given, its command name is COMM.
alive() {
  local pid=${1:-} comm=${2:-} st="" c=""
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  { read -r st <"/proc/$pid/stat"; } 2>/dev/null || return 1
  st=${st##*) }
  st=${st%% *}
  [[ -n $st && $st != Z && $st != X ]] || return 1
  if [[ -n $comm ]]; then
    { read -r c <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [[ $c == "$comm" ]] || return 1
  fi
}

# own_session PID: PID leads its own session (a `setsid CMD &` child has called setsid(2), so
# a kill of the starter's process group no longer reaches it).
own_session() {
  local st=""
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
  st=${st##*) }
  read -r _ _ _ st _ <<<"$st"
  [[ $st == "$1" ]]
}

# pid_from FILE: the PID stored in FILE (empty if none).
pid_from() { [[ -r $1 ]] && head -c 32 "$1" | tr -dc 0-9; return 0; }

# stop_pid PID [TIMEOUT_S]: SIGTERM, wait (bounded) until dead or zombie, then SIGKILL.
stop_pid() {
  local pid=$1 t=${2:-5} i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "lab: process $pid did not die" >&2
  return 1
}

# wait_for TIMEOUT_S CMD...: run CMD every 0.1 s until it succeeds; fail after TIMEOUT_S.
wait_for() {
  local t=$1 start=$EPOCHREALTIME
  shift
  while true; do
    "$@" && return 0
    if awk -v a="$start" -v b="$EPOCHREALTIME" -v t="$t" 'BEGIN { exit !(b - a > t) }'; then
      return 1
    fi
    sleep 0.1
  done
}

# fuse_mount_opts PATH: the per-mount options (rw/ro,...) of the FUSE mount at exactly PATH in
# this mount namespace, from /proc/self/mountinfo; empty when PATH is not a FUSE mount point.
fuse_mount_opts() {
  awk -v p="$1" '{
    for (i = 7; i <= NF && $i != "-"; i++) ;
    if ($5 == p && $(i + 1) ~ /^fuse/) o = $6
  } END { if (o != "") print o }' /proc/self/mountinfo
}

# pve_state [PATH]: healthy / stale / unmounted / other for /etc/pve as fuse_recover sees it.
pve_state() {
  local p=${1:-/etc/pve} err
  if [[ -z $(fuse_mount_opts "$p") ]]; then
    if awk -v p="$p" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; then
      echo other
    else
      echo unmounted
    fi
    return 0
  fi
  if err=$(stat -c %i "$p" 2>&1 >/dev/null); then
    echo healthy
  elif [[ $err == *"not connected"* ]]; then
    echo stale
  else
    echo other
  fi
}

# pmxcfs_mode [PATH]: rw when the cluster filesystem at PATH (default /etc/pve) is writable
# (pmxcfs has quorum: the root shows 0755), ro when not (0555), empty when it does not answer.
pmxcfs_mode() {
  case $(stat -c %a "${1:-/etc/pve}" 2>/dev/null) in
    755) echo rw ;;
    555) echo ro ;;
  esac
  return 0
}

# config_version FILE: the first config_version number in FILE, as pmxcfs reads it (empty if
# the file is missing or has none).
config_version() {
  [[ -r $1 ]] || return 0
  sed -n 's/^.*config_version[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*$/\1/p' "$1" 2>/dev/null | head -n 1
}
