#!/usr/bin/env bash
# pvecm_node (state lone, absent, info) on the REAL corosync 3, in two network + mount + UTS
# namespaces made here: l7n1 = tartanpion, l7n2 = bismuth, two corosync links
# (10.96.17.0/24 link 0, 10.96.18.0/24 link 1), started with two_node: 1.
#   1. both up and quorate; info; lone on tartanpion: nothing to do (changed false);
#   2. both stopped, tartanpion cold-starts alone: `Activity blocked` (wait_for_all), held 3 s;
#   3. lone refused while bismuth's namespace answers (on both links, then on link 1 only),
#      nothing run, still blocked;
#   4. bismuth's corosync started: both quorate; lone changes nothing; absent node=bismuth is
#      refused (still a member); the raw `corosync-quorumtool -e 1` with both online is logged;
#   5. bismuth powered off (corosync SIGKILLed, both links down), tartanpion restarted alone:
#      blocked; absent refused (no quorum: run lone first); lone in check mode plans, then lone
#      accepted: quorate and /etc/pve writable; a second run changes nothing; bismuth returns
#      (rejoins, nothing to undo) and is powered off again (tartanpion stays quorate);
#   6. absent node=bismuth (pvecm delnode stand-in that edits the nodelist like the real one:
#      entry removed, config_version + 1): one node in the nodelist, no two_node, reloaded by
#      corosync (cmap), still quorate, /etc/pve/nodes/bismuth and its keys gone; second run
#      changed false.
# /etc/pve is one plain shared directory bind-mounted in each node; a copier plays pmxcfs
# (copies corosync.conf to /etc/corosync when its config_version is higher). Prints timings.
# Every process is killed by PID and every namespace removed on exit, also on failure.
#
# Usage: bash tests/lone_node_real.sh   (root; packages corosync, iputils-ping; release modules
# from scripts/build.sh, or PVE2NODE_MODULES=DIR). Without them it skips (exit 0), except with
# PVE2NODE_E2E=1 where that is a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=real-lib.sh
. "$here/tests/real-lib.sh"
MOD=${PVE2NODE_MODULES:-$here/build/modules}
NSS=(l7n1 l7n2)
NODE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

t0=$EPOCHREALTIME
log() { printf '%s lone_node_real: %s\n' "$(date +%T.%3N)" "$*"; }
fail() {
  log "FAIL: $*" >&2
  exit 1
}
skip() {
  if [[ ${PVE2NODE_E2E:-} == 1 ]]; then fail "$* (PVE2NODE_E2E=1: a skip is a failure)"; fi
  log "SKIP: $*"
  exit 0
}
since() { awk -v a="$EPOCHREALTIME" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }

[[ $(id -u) == 0 ]] || skip "needs root"
for c in corosync corosync-keygen corosync-quorumtool corosync-cfgtool corosync-cmapctl ping nsenter unshare ip awk; do
  PATH=$NODE_PATH command -v "$c" >/dev/null || skip "missing $c (apt-get install corosync iputils-ping)"
done
command -v python3 >/dev/null || skip "missing python3"
[[ -x $MOD/pvecm_node ]] || fail "$MOD/pvecm_node missing: run bash scripts/build.sh"
for n in "${NSS[@]}"; do
  [[ -e /run/netns/$n ]] && fail "network namespace $n exists (a previous run?); check 'ip netns pids $n' and remove it with 'ip netns del $n'"
done

mkdir -p "$here/target"
LAB=$(mktemp -d "$here/target/l7lone.XXXXXX")
declare -A ANCHOR NET
NET[tartanpion]=l7n1
NET[bismuth]=l7n2
netns_made=0
mountpoint -q /run/netns 2>/dev/null || netns_made=1

cleanup() {
  local rc=$? n p pids=()
  set +e
  trap - EXIT INT TERM
  for n in "${NSS[@]}"; do
    [[ -e /run/netns/$n ]] || continue
    for p in $(ip netns pids "$n" 2>/dev/null); do pids+=("$p"); done
  done
  for p in "${ANCHOR[@]}"; do pids+=("$p"); done
  ((${#pids[@]})) && kill -9 "${pids[@]}" 2>/dev/null
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do
      [[ -e /proc/$p && $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for n in "${NSS[@]}"; do [[ -e /run/netns/$n ]] && ip netns del "$n"; done
  if ((netns_made)) && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then umount /run/netns 2>/dev/null; fi
  if ((rc)) && [[ -d $LAB ]]; then
    for f in "$LAB"/*/corosync.out "$LAB"/*/varlog/corosync.log; do
      [[ -s $f ]] && { echo "--- $f (tail)"; tail -n 15 "$f"; }
    done
  fi
  rm -rf "$LAB"
  for n in "${NSS[@]}"; do [[ -e /run/netns/$n ]] && echo "lone_node_real: namespace $n left behind" >&2 && rc=1; done
  log "teardown done (rc $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

on() {
  local n=$1
  shift
  nsenter -t "${ANCHOR[$n]}" -m -u -n env -i PATH="$LAB/bin:$NODE_PATH" HOME=/root LANG=C.UTF-8 "$@"
}
mod() {
  local out
  out=$(printf '%s' "$2" | on "$1" "$MOD/pvecm_node") || true
  printf '%s' "$out"
}
# ok NODE JSON [changed]: runs pvecm_node, fails unless it succeeded (and changed matches).
ok() {
  R=$(mod "$1" "$2")
  [[ -n $R && $(j "$R" failed) != true ]] || fail "$1 pvecm_node $2 failed: $R"
  if [[ -n ${3:-} && $(j "$R" changed) != "$3" ]]; then fail "$1 $2: changed is $(j "$R" changed), want $3: $(j "$R" msg)"; fi
}
# refused NODE JSON TEXT: runs pvecm_node, fails unless it failed with TEXT in msg.
refused() {
  R=$(mod "$1" "$2")
  [[ $(j "$R" failed) == true && $(j "$R" msg) == *"$3"* ]] || fail "$1 $2: want a refusal with '$3': $R"
}
qt() { on "$1" corosync-quorumtool -s 2>&1 || true; }
quorate() { [[ $(qt "$1") == *"Quorate:          Yes"* ]]; }
members() { qt "$1" | awk '/^Membership information/ {m=1; next} m && $1 ~ /^[0-9]+$/ {n++} END {print n+0}'; }
coro_pid() {
  local p
  for p in $(ip netns pids "${NET[$1]}" 2>/dev/null); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == corosync && $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && echo "$p"
  done
  return 0
}
gone() { [[ -z $(coro_pid "$1") ]]; }
answers() { [[ $(qt "$1") == *"Quorate:"* ]]; }
start_coro() {
  on "$1" sh -c 'rm -f /dev/shm/qb-* 2>/dev/null; true'
  (on "$1" corosync -f </dev/null >>"$LAB/$1/corosync.out" 2>&1 &)
  wait_for 10 answers "$1" || fail "corosync on $1 does not answer: $(qt "$1")"
}
stop_coro() { # stop_coro NODE SIGNAL
  local ps
  mapfile -t ps < <(coro_pid "$1")
  ((${#ps[@]})) && kill "-$2" "${ps[@]}"
  wait_for 15 gone "$1" || fail "corosync on $1 did not stop"
}
links() { # links NODE up|down LINK...
  local n=$1 s=$2 l
  shift 2
  for l in "$@"; do
    case $n:$l in
    bismuth:0) ip -n l7n2 link set l7b0 "$s"; ip -n l7n1 link set l7a0 "$s" ;;
    bismuth:1) ip -n l7n2 link set l7b1 "$s"; ip -n l7n1 link set l7a1 "$s" ;;
    esac
  done
}

# ---------------------------------------------------------------- network
for n in "${NSS[@]}"; do ip netns add "$n"; done
ip link add l7a0 netns l7n1 type veth peer name l7b0 netns l7n2
ip link add l7a1 netns l7n1 type veth peer name l7b1 netns l7n2
ip -n l7n1 addr add 10.96.17.1/24 dev l7a0
ip -n l7n2 addr add 10.96.17.2/24 dev l7b0
ip -n l7n1 addr add 10.96.18.1/24 dev l7a1
ip -n l7n2 addr add 10.96.18.2/24 dev l7b1
for n in "${NSS[@]}"; do ip -n "$n" link set lo up; done
ip -n l7n1 link set l7a0 up
ip -n l7n1 link set l7a1 up
ip -n l7n2 link set l7b0 up
ip -n l7n2 link set l7b1 up

# ---------------------------------------------------------------- nodes
hostmnt=$(readlink /proc/self/ns/mnt)
mkdir -p "$LAB/pve/nodes/tartanpion" "$LAB/pve/nodes/bismuth/qemu-server" "$LAB/pve/priv" "$LAB/bin"
for h in tartanpion bismuth; do
  d=$LAB/$h
  mkdir -p "$d"/{etc.upper,etc.work,corosync,varlib,varlog,run,root,tmp}
  (setsid ip netns exec "${NET[$h]}" unshare -m -u --propagation private sleep infinity </dev/null >/dev/null 2>&1 & echo $! >"$d/anchor.pid")
  ANCHOR[$h]=$(cat "$d/anchor.pid")
done
anchor_ready() { [[ $(cat "/proc/$1/comm" 2>/dev/null) == sleep && $(readlink "/proc/$1/ns/mnt") != "$hostmnt" ]]; }
for h in tartanpion bismuth; do
  wait_for 5 anchor_ready "${ANCHOR[$h]}" || fail "anchor of $h did not start"
  d=$LAB/$h
  nsenter -t "${ANCHOR[$h]}" -m -u -n bash -euc "
    hostname $h
    mount -t overlay l7-etc -o lowerdir=/etc,upperdir=$d/etc.upper,workdir=$d/etc.work /etc
    mount --bind $d/corosync /etc/corosync
    mount --bind $d/varlib /var/lib/corosync
    mount --bind $d/varlog /var/log/corosync
    mount --bind $d/run /run
    mount --bind $d/root /root
    mount --bind $d/tmp /tmp
    mount -t tmpfs -o mode=1777,size=256m l7-shm /dev/shm
    mkdir -p /etc/pve
    mount --bind $LAB/pve /etc/pve
    printf '127.0.0.1 localhost\n10.96.17.1 tartanpion\n10.96.17.2 bismuth\n' > /etc/hosts
  " || fail "mount setup of $h failed"
done

# ---------------------------------------------------------------- cluster files
corosync-keygen -k "$LAB/authkey" >/dev/null 2>&1 || fail "corosync-keygen failed"
cat >"$LAB/pve/corosync.conf" <<'EOF'
logging {
  debug: off
  to_syslog: no
  to_logfile: yes
  logfile: /var/log/corosync/corosync.log
}

nodelist {
  node {
    name: bismuth
    nodeid: 2
    quorum_votes: 1
    ring0_addr: 10.96.17.2
    ring1_addr: 10.96.18.2
  }
  node {
    name: tartanpion
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 10.96.17.1
    ring1_addr: 10.96.18.1
  }
}

quorum {
  provider: corosync_votequorum
  two_node: 1
}

totem {
  cluster_name: l7lone
  config_version: 2
  interface {
    linknumber: 0
  }
  interface {
    linknumber: 1
  }
  ip_version: ipv4
  link_mode: passive
  secauth: on
  version: 2
}
EOF
cp "$LAB/pve/corosync.conf" "$LAB/corosync.conf.orig"
printf 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCl7tartanpion root@tartanpion\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCl7bismuth root@bismuth\n' >"$LAB/pve/priv/authorized_keys"
printf 'tartanpion ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIl7tartanpion\nbismuth ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIl7bismuth\n10.96.17.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIl7bismuth\n' >"$LAB/pve/priv/known_hosts"
# pmxcfs stand-in: copies /etc/pve/corosync.conf to /etc/corosync when its version is higher.
cat >"$LAB/bin/copier" <<'EOF'
#!/bin/bash
v() { sed -n 's/.*config_version *: *\([0-9]*\).*/\1/p' "$1" 2>/dev/null | head -n1; }
while :; do
  a=$(v /etc/pve/corosync.conf); b=$(v /etc/corosync/corosync.conf)
  if [[ -n $a && ( -z $b || $a -gt $b ) ]]; then
    cp /etc/pve/corosync.conf /etc/corosync/corosync.conf.tmp && mv /etc/corosync/corosync.conf.tmp /etc/corosync/corosync.conf
  fi
  sleep 0.1
done
EOF
# `pvecm delnode NAME` stand-in, as the real one edits the file: the nodelist entry out,
# config_version + 1, written as corosync.conf.new and renamed; unknown node: its message.
cat >"$LAB/bin/pvecm" <<'EOF'
#!/bin/bash
[[ $1 == delnode && -n ${2:-} ]] || { echo "pvecm stand-in: only 'delnode NAME'" >&2; exit 255; }
f=/etc/pve/corosync.conf
awk -v n="$2" '
  /^[ \t]*nodelist[ \t]*\{/ { innl=1 }
  innl && !blk && /^[ \t]*node[ \t]*\{/ { blk=1; buf=$0 "\n"; drop=0; next }
  blk { buf=buf $0 "\n"; if ($0 ~ "^[ \t]*name:[ \t]*" n "[ \t]*$") drop=1
        if ($0 ~ /^[ \t]*\}[ \t]*$/) { blk=0; if (drop) found=1; else printf "%s", buf }
        next }
  /^[ \t]*config_version:/ { sub(/[0-9]+/, $2 + 1) }
  { print }
  END { exit found ? 0 : 3 }' "$f" >"$f.new" || { rm -f "$f.new"; echo "Node/IP: $2 is not a known host of the cluster."; exit 255; }
mv "$f.new" "$f"
echo "Killing node $2"
EOF
chmod 755 "$LAB/bin/copier" "$LAB/bin/pvecm"
for h in tartanpion bismuth; do
  install -m 0400 "$LAB/authkey" "$LAB/$h/corosync/authkey"
  cp "$LAB/pve/corosync.conf" "$LAB/$h/corosync/corosync.conf"
  (on $h "$LAB/bin/copier" </dev/null >/dev/null 2>&1 &)
done

# ---------------------------------------------------------------- 1. both up
LONE='{"state":"lone","peer":"bismuth","confirm_peer_powered_off":"bismuth","timeout":30}'
ABSENT='{"state":"absent","node":"bismuth","timeout":30}'
start_coro tartanpion
start_coro bismuth
both() { quorate tartanpion && quorate bismuth && [[ $(members tartanpion) == 2 ]]; }
wait_for 30 both || fail "the two_node cluster did not become quorate: $(qt tartanpion)"
t_lab=$(since "$t0")
log "lab up in $t_lab s: two_node cluster quorate, 2 members"
ok tartanpion '{"state":"info"}' false
[[ $(j "$R" quorate) == true && $(j "$R" config_version drift) == false && $(j "$R" pve_writable) == true ]] || fail "info with both up: $R"
ok tartanpion "$LONE" false
[[ $(j "$R" msg) == *"already quorate"* ]] || fail "lone with both up should do nothing: $R"
log "both up: info quorate, no drift; lone changes nothing ($(j "$R" msg))"

# ---------------------------------------------------------------- 2. cold start alone
stop_coro bismuth TERM
stop_coro tartanpion TERM
tc=$EPOCHREALTIME
start_coro tartanpion
blocked() { [[ $(qt tartanpion) == *"Activity blocked"* ]]; }
wait_for 10 blocked || fail "tartanpion alone should be blocked: $(qt tartanpion)"
t_blocked=$(since "$tc")
sleep 3
blocked || fail "tartanpion alone should stay blocked: $(qt tartanpion)"
[[ $(qt tartanpion) == *WaitForAll* ]] || fail "want WaitForAll: $(qt tartanpion)"
log "tartanpion cold-started alone: Activity blocked after $t_blocked s and still 3 s later (2Node WaitForAll)"

# ---------------------------------------------------------------- 3. refused while bismuth answers
sum0=$(sha256sum <"$LAB/pve/corosync.conf")
refused tartanpion "$LONE" "peer bismuth answers on 10.96.17.2, 10.96.18.2"
links bismuth down 0
refused tartanpion "$LONE" "peer bismuth answers on 10.96.18.2, so it is not powered off"
links bismuth up 0
refused tartanpion '{"state":"lone","peer":"bismuth","confirm_peer_powered_off":"tartanpion"}' "confirm_peer_powered_off: bismuth"
blocked || fail "a refusal changed the quorum: $(qt tartanpion)"
[[ $(sha256sum <"$LAB/pve/corosync.conf") == "$sum0" ]] || fail "a refusal changed corosync.conf"
log "lone refused while bismuth's namespace answers (both links, then link 1 alone) and without the confirmation; still blocked"

# ---------------------------------------------------------------- 4. bismuth's corosync running
start_coro bismuth
wait_for 30 both || fail "bismuth did not join: $(qt tartanpion)"
ok tartanpion "$LONE" false
refused tartanpion "$ABSENT" "node bismuth is still a member"
raw=$(on tartanpion corosync-quorumtool -e 1 2>&1) && rawrc=0 || rawrc=$?
log "both running: lone changes nothing, absent refused (member); raw 'corosync-quorumtool -e 1' with both online: rc $rawrc '${raw//$'\n'/ }'"
# expected votes back to the nodelist's value, whatever the raw call did
on tartanpion corosync-quorumtool -e 2 >/dev/null 2>&1 || true

# ---------------------------------------------------------------- 5. bismuth powered off, tartanpion reboots alone
stop_coro bismuth KILL
links bismuth down 0 1
stop_coro tartanpion TERM
start_coro tartanpion
wait_for 10 blocked || fail "tartanpion alone (bismuth off) should be blocked: $(qt tartanpion)"
ok tartanpion '{"state":"info"}' false
[[ $(j "$R" quorate) == false && $(j "$R" runtime activity_blocked) == true ]] || fail "info when blocked: $R"
refused tartanpion "$ABSENT" "run state=lone"
refused tartanpion '{"state":"absent","node":"tartanpion"}' "the node this runs on"
R=$(mod tartanpion "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["_ansible_check_mode"]=True; print(json.dumps(d))' "$LONE")")
[[ $(j "$R" changed) == true && $(j "$R" msg) == *"would run"* ]] || fail "check mode should plan: $R"
blocked || fail "check mode changed the quorum"
log "bismuth powered off, tartanpion rebooted alone: blocked; absent refused (no quorum; this node); check mode: $(j "$R" msg)"
tl=$EPOCHREALTIME
ok tartanpion "$LONE" true
t_lone=$(since "$tl")
quorate tartanpion || fail "tartanpion not quorate after lone: $(qt tartanpion)"
[[ $(j "$R" pve_writable) == true ]] || fail "lone: /etc/pve should be writable: $R"
mech=$(j "$R" mechanism)
# corosync 3.1.7 acts on quorum.cancel_wait_for_all (the key does not exist before it is set)
[[ $mech == cancel_wait_for_all && $(j "$R" commands) != *'"-e"'* ]] || fail "want wait-for-all cancelled through cmap, without the fallback: $R"
[[ $(qt tartanpion) == *"Expected votes:   2"* ]] || fail "cancelling wait-for-all should keep expected votes 2: $(qt tartanpion)"
log "lone accepted in $t_lone s (mechanism $mech, verify $(j "$R" verify_seconds) s): $(j "$R" msg)"
log "after lone: $(qt tartanpion | awk -F': *' '/^(Expected votes|Quorum|Flags):/ {printf "%s=%s ", $1, $2}')"
ok tartanpion "$LONE" false
# the peer returns: it rejoins, nothing to undo; then it is lost again (two_node keeps quorum)
links bismuth up 0 1
tr=$EPOCHREALTIME
start_coro bismuth
wait_for 30 both || fail "bismuth did not rejoin after lone: $(qt tartanpion)"
t_rejoin=$(since "$tr")
[[ $(qt tartanpion) == *"Expected votes:   2"* && $(qt bismuth) == *"Quorate:          Yes"* ]] || fail "after the rejoin: $(qt tartanpion)"
log "bismuth returned: rejoined in $t_rejoin s, both quorate, expected votes 2 (nothing to undo)"
stop_coro bismuth KILL
links bismuth down 0 1
one() { [[ $(members tartanpion) == 1 ]]; }
tp=$EPOCHREALTIME
wait_for 30 one || fail "tartanpion did not notice bismuth's loss: $(qt tartanpion)"
quorate tartanpion || fail "tartanpion lost quorum with bismuth gone (two_node should keep it): $(qt tartanpion)"
log "bismuth powered off again: tartanpion alone after $(since "$tp") s, still quorate (two_node)"

# ---------------------------------------------------------------- 6. remove bismuth for good
ta=$EPOCHREALTIME
ok tartanpion "$ABSENT" true
t_absent=$(since "$ta")
log "absent in $t_absent s: $(j "$R" msg)"
[[ $(grep -c '^    name:' "$LAB/pve/corosync.conf") == 1 && $(grep -c '^    name: tartanpion$' "$LAB/pve/corosync.conf") == 1 ]] || fail "want one node in the nodelist: $(cat "$LAB/pve/corosync.conf")"
grep -q two_node "$LAB/pve/corosync.conf" && fail "two_node left on a one-node cluster"
want=$(awk '/^  node \{/ {b=1; buf=$0 "\n"; next} b {buf=buf $0 "\n"; if ($0 ~ /^  \}/) {b=0; if (buf !~ /name: bismuth/) printf "%s", buf}; next} {print}' "$LAB/corosync.conf.orig" |
  sed -e '/^  two_node: 1$/d' -e 's/config_version: 2/config_version: 4/')
[[ $(cat "$LAB/pve/corosync.conf") == "$want" ]] || fail "corosync.conf is not the expected edit: $(diff <(echo "$want") "$LAB/pve/corosync.conf")"
[[ $(cat "$LAB/tartanpion/corosync/corosync.conf") == "$want" ]] || fail "tartanpion's /etc/corosync copy is not the new file"
gone_node() { ! on tartanpion corosync-cmapctl -g nodelist.node.1.name >/dev/null 2>&1 && [[ $(qt tartanpion) != *2Node* ]]; }
wait_for 10 gone_node || fail "corosync did not reload the one-node config: $(on tartanpion corosync-cmapctl -b nodelist 2>&1) $(qt tartanpion)"
quorate tartanpion || fail "tartanpion not quorate after the removal: $(qt tartanpion)"
[[ -e $LAB/pve/nodes/bismuth ]] && fail "/etc/pve/nodes/bismuth left"
[[ -d $LAB/pve/nodes/tartanpion ]] || fail "/etc/pve/nodes/tartanpion removed"
grep -q bismuth "$LAB/pve/priv/authorized_keys" "$LAB/pve/priv/known_hosts" && fail "bismuth's keys left"
grep -q 'root@tartanpion' "$LAB/pve/priv/authorized_keys" || fail "tartanpion's key removed"
log "after absent: nodelist = tartanpion only, no two_node, config_version 4, reloaded: $(qt tartanpion | awk -F': *' '/^(Expected votes|Quorum|Flags):/ {printf "%s=%s ", $1, $2}')"
ok tartanpion "$ABSENT" false
ok tartanpion '{"state":"info"}' false
[[ $(j "$R" quorate) == true && $(j "$R" config_version drift) == false && $(j "$R" nodelist | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') == 1 ]] || fail "info after removal: $R"
log "second absent: changed false; info: $(j "$R" msg)"

log "timings: lab $t_lab s | cold start -> blocked $t_blocked s | lone accepted $t_lone s | peer rejoin $t_rejoin s | absent $t_absent s | total $(since "$t0") s"
log "ok"
