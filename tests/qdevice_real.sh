#!/usr/bin/env bash
# The qdevice and qnetd modules on the REAL daemons (corosync 3, corosync-qdevice,
# corosync-qnetd), in three network + mount + UTS namespaces made here:
#   qdn1, qdn2   cluster nodes n1/n2 (corosync link 10.98.12.0/24), started with two_node: 1
#   qdqnetd      the qnetd host, 10.98.0.3 (on its lo), reached by n1 over 10.98.13.0/24 and by
#                n2 over 10.98.23.0/24, so the link between the nodes can be cut alone.
# It drives the release binaries (build/modules, from scripts/build.sh) with JSON on stdin, as a
# playbook would: qnetd (CA) -> qdevice step ca on both -> step request on n1 -> qnetd signs ->
# step certificate on n1 -> step p12 on both -> step config on both; then checks a second run
# changes nothing, cuts the n1-n2 link (exactly one node must stay quorate within 15 s), heals
# it, and removes the QDevice (state absent, two_node back); corosync.conf is checked byte for
# byte after each write. Before the QDevice it measures the same cut under two_node (both halves
# stay quorate: split brain) and refusals (member as host, two_node with a device, a node
# offline, check mode) that leave the file untouched. Prints the timings.
#
# /etc/pve in each node is one plain shared directory bind-mounted over /etc/pve (inside an
# overlay of /etc private to the node); a small copier plays pmxcfs (copies corosync.conf to
# /etc/corosync when its config_version is higher). Nothing outside the namespaces is touched;
# every process is killed by PID and every namespace removed on exit, also on failure.
#
# Usage: bash tests/qdevice_real.sh   (root; packages corosync corosync-qnetd corosync-qdevice).
# Without the packages it skips (exit 0), except with PVE2NODE_E2E=1 where that is a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=real-lib.sh
. "$here/tests/real-lib.sh"
MOD=${PVE2NODE_MODULES:-$here/build/modules}
NSS=(qdn1 qdn2 qdqnetd)
CLUSTER=qdreal
QNETD_ADDR=10.98.0.3
NODE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

t0=$EPOCHREALTIME
log() { printf '%s qdevice_real: %s\n' "$(date +%T.%3N)" "$*"; }
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
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }

[[ $(id -u) == 0 ]] || skip "needs root"
for c in corosync corosync-keygen corosync-quorumtool corosync-cfgtool corosync-qnetd corosync-qnetd-certutil \
  corosync-qdevice corosync-qdevice-net-certutil certutil nsenter unshare ip python3 awk; do
  PATH=$NODE_PATH command -v "$c" >/dev/null || skip "missing $c (apt-get install corosync corosync-qnetd corosync-qdevice)"
done
for m in qdevice qnetd; do [[ -x $MOD/$m ]] || fail "$MOD/$m missing: run bash scripts/build.sh"; done
for n in "${NSS[@]}"; do
  [[ -e /run/netns/$n ]] && fail "network namespace $n exists (a previous run?); check 'ip netns pids $n' and remove it with 'ip netns del $n'"
done

mkdir -p "$here/target"
LAB=$(mktemp -d "$here/target/qdreal.XXXXXX")
declare -A ANCHOR
netns_made=0
mountpoint -q /run/netns 2>/dev/null || netns_made=1

cleanup() {
  local rc=$? n p pids=()
  set +e
  trap - EXIT INT TERM
  # every process in our network namespaces (daemons, copiers, anchors), by PID
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
    for f in "$LAB"/*/corosync.out "$LAB"/*/qnetd.out "$LAB"/*/qdevice.out; do
      [[ -s $f ]] && { echo "--- $f (tail)"; tail -n 15 "$f"; }
    done
  fi
  rm -rf "$LAB"
  for n in "${NSS[@]}"; do [[ -e /run/netns/$n ]] && echo "qdevice_real: namespace $n left behind" >&2 && rc=1; done
  log "teardown done (rc $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# on NODE CMD...: run CMD inside node NODE (network, mount and UTS namespaces), clean env.
on() {
  local n=$1
  shift
  nsenter -t "${ANCHOR[$n]}" -m -u -n env -i PATH="$NODE_PATH" HOME=/root LANG=C.UTF-8 "$@"
}
# mod NODE MODULE JSON: runs a release module inside NODE with JSON on stdin; prints its result.
mod() {
  local out
  out=$(printf '%s' "$3" | on "$1" "$MOD/$2") || true
  printf '%s' "$out"
}
# ok NODE MODULE JSON [changed]: runs the module, fails unless it succeeded (and, if given,
# unless changed is that value); the result is left in $R.
ok() {
  R=$(mod "$1" "$2" "$3")
  [[ $(j "$R" failed) != true && -n $R ]] || fail "$1 $2 $3 failed: $R"
  if [[ -n ${4:-} && $(j "$R" changed) != "$4" ]]; then fail "$1 $2: changed is $(j "$R" changed), want $4: $(j "$R" msg)"; fi
}
qt() { on "$1" corosync-quorumtool -s 2>&1 || true; }
quorate() { [[ $(qt "$1") == *"Quorate:          Yes"* ]]; }
flags_of() { qt "$1" | awk -F': *' '/^Flags:/ {print $2}'; }

# ---------------------------------------------------------------- network
for n in "${NSS[@]}"; do ip netns add "$n"; done
ip link add qd12 netns qdn1 type veth peer name qd21 netns qdn2
ip link add qd13 netns qdn1 type veth peer name qd31 netns qdqnetd
ip link add qd23 netns qdn2 type veth peer name qd32 netns qdqnetd
ip -n qdn1 addr add 10.98.12.1/24 dev qd12
ip -n qdn2 addr add 10.98.12.2/24 dev qd21
ip -n qdn1 addr add 10.98.13.1/24 dev qd13
ip -n qdqnetd addr add 10.98.13.3/24 dev qd31
ip -n qdn2 addr add 10.98.23.2/24 dev qd23
ip -n qdqnetd addr add 10.98.23.3/24 dev qd32
ip -n qdqnetd addr add $QNETD_ADDR/32 dev lo
for n in "${NSS[@]}"; do ip -n "$n" link set lo up; done
for l in qdn1:qd12 qdn1:qd13 qdn2:qd21 qdn2:qd23 qdqnetd:qd31 qdqnetd:qd32; do ip -n "${l%%:*}" link set "${l#*:}" up; done
ip -n qdn1 route add $QNETD_ADDR/32 via 10.98.13.3
ip -n qdn2 route add $QNETD_ADDR/32 via 10.98.23.3

# ---------------------------------------------------------------- nodes (mount + UTS namespaces)
hostmnt=$(readlink /proc/self/ns/mnt)
mkdir -p "$LAB/pve" "$LAB/bin"
for h in n1 n2 q; do
  d=$LAB/$h
  mkdir -p "$d"/{etc.upper,etc.work,corosync,varlib,varlog,run,root,tmp}
  case $h in n1) net=qdn1 ;; n2) net=qdn2 ;; q) net=qdqnetd ;; esac
  # (started from a subshell, so they are not jobs of this script: no "Killed" notices)
  (setsid ip netns exec "$net" unshare -m -u --propagation private sleep infinity </dev/null >/dev/null 2>&1 & echo $! >"$d/anchor.pid")
  ANCHOR[$h]=$(cat "$d/anchor.pid")
done
anchor_ready() { [[ $(cat "/proc/$1/comm" 2>/dev/null) == sleep && $(readlink "/proc/$1/ns/mnt") != "$hostmnt" ]]; }
for h in n1 n2 q; do
  wait_for 5 anchor_ready "${ANCHOR[$h]}" || fail "anchor of $h did not start"
  d=$LAB/$h
  nsenter -t "${ANCHOR[$h]}" -m -u -n bash -euc "
    hostname $h
    mount -t overlay qd-etc -o lowerdir=/etc,upperdir=$d/etc.upper,workdir=$d/etc.work /etc
    mount --bind $d/corosync /etc/corosync
    mount --bind $d/varlib /var/lib/corosync
    mount --bind $d/varlog /var/log/corosync
    mount --bind $d/run /run
    mount --bind $d/root /root
    mount --bind $d/tmp /tmp
    mount -t tmpfs -o mode=1777,size=256m qd-shm /dev/shm
    mkdir -p /etc/pve /run/corosync-qdevice /run/corosync-qnetd
    [ $h = q ] || mount --bind $LAB/pve /etc/pve
    printf '127.0.0.1 localhost\n10.98.12.1 n1\n10.98.12.2 n2\n$QNETD_ADDR qnetd\n' > /etc/hosts
  " || fail "mount setup of $h failed"
done

# ---------------------------------------------------------------- cluster files, corosync
corosync-keygen -k "$LAB/authkey" >/dev/null 2>&1 || fail "corosync-keygen failed"
cat >"$LAB/pve/corosync.conf" <<EOF
logging {
  debug: off
  to_syslog: no
  to_logfile: yes
  logfile: /var/log/corosync/corosync.log
}

nodelist {
  node {
    name: n1
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 10.98.12.1
  }
  node {
    name: n2
    nodeid: 2
    quorum_votes: 1
    ring0_addr: 10.98.12.2
  }
}

quorum {
  provider: corosync_votequorum
  two_node: 1
}

totem {
  cluster_name: $CLUSTER
  config_version: 2
  interface {
    linknumber: 0
  }
  ip_version: ipv4
  link_mode: passive
  secauth: on
  version: 2
}
EOF
cp "$LAB/pve/corosync.conf" "$LAB/corosync.conf.orig"
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
# The node's corosync-qdevice stop command (the module's stop_command; systemctl on PVE).
cat >"$LAB/bin/qdstop" <<'EOF'
#!/bin/bash
p=$(cat /run/corosync-qdevice/corosync-qdevice.pid 2>/dev/null) || exit 0
[[ -n $p ]] && kill "$p" 2>/dev/null || exit 0
for _ in $(seq 50); do [[ -e /proc/$p && $(awk '{print $3}' /proc/$p/stat) != Z ]] || exit 0; sleep 0.1; done
kill -9 "$p"
EOF
chmod 755 "$LAB/bin/copier" "$LAB/bin/qdstop"
for h in n1 n2; do
  install -m 0400 "$LAB/authkey" "$LAB/$h/corosync/authkey"
  cp "$LAB/pve/corosync.conf" "$LAB/$h/corosync/corosync.conf"
  (on $h "$LAB/bin/copier" </dev/null >/dev/null 2>&1 &)
  (on $h corosync -f </dev/null >"$LAB/$h/corosync.out" 2>&1 &)
done
for h in n1 n2; do
  wait_for 30 quorate $h || fail "corosync on $h not quorate: $(qt $h)"
done
[[ $(flags_of n1) == *2Node* ]] || fail "two_node cluster should show 2Node: $(flags_of n1)"
t_setup_lab=$(since "$t0")
log "lab up in ${t_setup_lab} s: two_node cluster quorate ($(flags_of n1))"

# ---------------------------------------------------------------- qnetd host
ok q qnetd '{}' true
CA=$(j "$R" ca_certificate)
[[ $CA == *"BEGIN CERTIFICATE"* ]] || fail "qnetd returned no CA certificate: $R"
[[ -f $LAB/q/corosync/qnetd/nssdb/qnetd-cacert.crt ]] || fail "the qnetd CA is not in the qnetd host's /etc/corosync"
ok q qnetd '{}' false
[[ $(j "$R" qnetd running) == false ]] || fail "qnetd should report not running yet: $R"
(on q corosync-qnetd -f </dev/null >"$LAB/q/qnetd.out" 2>&1 &)
wait_for 10 on q corosync-qnetd-tool -s || fail "corosync-qnetd does not answer"

# ---------------------------------------------------------------- QDevice setup, as a playbook would
jq_args() { python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@"; }
CFG=$(python3 -c 'import json,sys; print(json.dumps({"step":"config","host":sys.argv[1],"start_command":["corosync-qdevice"],"stop_command":[sys.argv[2]],"timeout":60}))' $QNETD_ADDR "$LAB/bin/qdstop")
ABS=$(python3 -c 'import json,sys; print(json.dumps({"state":"absent","two_node":True,"stop_command":[sys.argv[1]],"timeout":60}))' "$LAB/bin/qdstop")

# refusals first, file untouched
sum0=$(sha256sum <"$LAB/pve/corosync.conf")
R=$(mod n1 qdevice "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["host"]="10.98.12.2"; print(json.dumps(d))' "$CFG")")
[[ $(j "$R" failed) == true && $(j "$R" msg) == *"is a member of this cluster"* ]] || fail "a member as qnetd host was not refused: $R"
R=$(mod n1 qdevice "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["two_node"]=True; print(json.dumps(d))' "$CFG")")
[[ $(j "$R" failed) == true && $(j "$R" msg) == *"exclude each other"* ]] || fail "two_node with a device was not refused: $R"
# check mode: the diff and the planned commands, nothing written
R=$(mod n1 qdevice "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["_ansible_check_mode"]=True; d["_ansible_diff"]=True; print(json.dumps(d))' "$CFG")")
[[ $(j "$R" changed) == true && $(j "$R" diff after) == *"host: $QNETD_ADDR"* && $(j "$R" commands) == *corosync-qdevice* ]] ||
  fail "check mode should plan the change: $R"
[[ $(sha256sum <"$LAB/pve/corosync.conf") == "$sum0" ]] || fail "a refusal or check mode changed corosync.conf"
log "refusals (member as host, two_node with a device) and check mode left corosync.conf untouched"

t1=$EPOCHREALTIME
CAJ=$(jq_args step ca ca_certificate "$CA")
ok n1 qdevice "$CAJ" true
ok n2 qdevice "$CAJ" true
ok n1 qdevice '{"step":"request"}' true
REQ=$(j "$R" request)
[[ $(j "$R" cluster_name) == "$CLUSTER" ]] || fail "request: cluster name from corosync.conf expected: $R"
ok q qnetd "$(jq_args cluster_name $CLUSTER request "$REQ")" true
CRT=$(j "$R" certificate)
[[ $(j "$R" certificate_info subject_cn) == "$CLUSTER" ]] || fail "qnetd: certificate CN: $R"
ok n1 qdevice "$(jq_args step certificate certificate "$CRT")" true
P12=$(j "$R" p12)
[[ -n $P12 ]] || fail "step certificate returned no p12"
ok n1 qdevice "$(jq_args step p12 p12 "$P12")" false
ok n2 qdevice "$(jq_args step p12 p12 "$P12")" true
t_certs=$(since "$t1")
# a node offline (the link cut under two_node: n1 stays quorate alone, n2 is not a member)
ip -n qdn1 link set qd12 down
ip -n qdn2 link set qd21 down
alone() { [[ $(qt n1) == *"Nodes:            1"* && $(qt n2) == *"Nodes:            1"* ]]; }
tc2=$EPOCHREALTIME
wait_for 30 alone || fail "the nodes did not lose each other after the link cut"
t_cut_two_node=$(since "$tc2")
# the contrast (proxmox.md 9): with two_node both halves stay quorate, a split brain
if ! { quorate n1 && quorate n2; }; then fail "two_node link cut: expected both nodes quorate (split brain): $(qt n2)"; fi
log "two_node link cut: both nodes alone and BOTH quorate after ${t_cut_two_node} s (split brain)"
R=$(mod n1 qdevice "$CFG")
[[ $(j "$R" failed) == true && $(j "$R" msg) == *"node n2 (nodeid 2) is offline"* ]] || fail "an offline node was not refused: $R"
ip -n qdn1 link set qd12 up
ip -n qdn2 link set qd21 up
both2() { quorate n1 && quorate n2 && [[ $(qt n1) == *"Nodes:            2"* && $(qt n2) == *"Nodes:            2"* ]]; }
wait_for 30 both2 || fail "the nodes did not rejoin after the link came back"
[[ $(sha256sum <"$LAB/pve/corosync.conf") == "$sum0" ]] || fail "the offline refusal changed corosync.conf"
log "a node offline (link cut under two_node) was refused, corosync.conf untouched; link back"
t2=$EPOCHREALTIME
ok n1 qdevice "$CFG" true
log "n1 config: $(j "$R" msg) (verify $(j "$R" verify_seconds) s)"
ok n2 qdevice "$CFG" true
log "n2 config: $(j "$R" msg) (verify $(j "$R" verify_seconds) s)"
t_config=$(since "$t2")
t_setup=$(add "$t_certs" "$t_config")  # without the offline-refusal check between them
for h in n1 n2; do
  out=$(qt $h)
  [[ $out == *"Flags:            Quorate Qdevice"* && $out != *2Node* ]] || fail "$h: want Qdevice and no 2Node: $out"
  [[ $out == *"Expected votes:   3"* ]] || fail "$h: want expected votes 3: $out"
  grep -q 'A,V,NMW .*(local)' <<<"$out" || fail "$h: the local node should hold the vote: $out"
done
# byte-exact: the device block in, two_node out, config_version + 1, nothing else
want=$(sed -e '/^  two_node: 1$/d' -e 's/config_version: 2/config_version: 3/' \
  -e "s/^quorum {\$/quorum {\n  device {\n    model: net\n    net {\n      algorithm: ffsplit\n      host: $QNETD_ADDR\n      tls: on\n    }\n    votes: 1\n  }/" "$LAB/corosync.conf.orig")
[[ $(cat "$LAB/pve/corosync.conf") == "$want" ]] || fail "corosync.conf after setup is not the expected edit: $(diff <(echo "$want") "$LAB/pve/corosync.conf")"
grep -q "host: $QNETD_ADDR" "$LAB/n2/corosync/corosync.conf" || fail "n2's /etc/corosync/corosync.conf has no device"
log "QDevice set up in ${t_setup} s (certificates ${t_certs} s, config+start+verify on both ${t_config} s): Qdevice, no 2Node, expected votes 3, V on both"

# idempotent: every step again changes nothing
t3=$EPOCHREALTIME
ok q qnetd '{}' false
ok n1 qdevice "$CAJ" false
ok n2 qdevice "$CAJ" false
ok n1 qdevice '{"step":"request"}' false
[[ $(j "$R" request) == "$REQ" ]] || fail "the request changed on a second run"
ok q qnetd "$(jq_args cluster_name $CLUSTER request "$REQ")" false
[[ $(j "$R" certificate) == "$CRT" && $(j "$R" certificate_reused) == true ]] || fail "qnetd did not reuse the certificate: $R"
ok n1 qdevice "$(jq_args step certificate certificate "$CRT")" false
ok n2 qdevice "$(jq_args step p12 p12 "$P12")" false
ok n1 qdevice "$CFG" false
ok n2 qdevice "$CFG" false
t_second=$(since "$t3")
ok q qnetd '{"state":"info"}' false
[[ $(j "$R" qnetd running) == true && $(j "$R" qnetd status connected_clients) == 2 && $(j "$R" qnetd clusters 0 name) == "$CLUSTER" ]] ||
  fail "qnetd state: $R"
log "second run of every step: changed=false (${t_second} s); qnetd reports 2 clients of cluster $CLUSTER"

# ---------------------------------------------------------------- link cut between the nodes
ip -n qdn1 link set qd12 down
ip -n qdn2 link set qd21 down
tc=$EPOCHREALTIME
t_cut=""
while :; do
  a=0 b=0
  quorate n1 && a=1
  quorate n2 && b=1
  if ((a + b == 1)); then
    t_cut=$(since "$tc")
    break
  fi
  (($(since "$tc" | cut -d. -f1) >= 15)) && fail "link cut: not exactly one node quorate after 15 s (n1 $a, n2 $b)"
  sleep 0.2
done
sleep 3
a=0 b=0
quorate n1 && a=1
quorate n2 && b=1
((a + b == 1)) || fail "link cut: the split did not hold 3 s later (n1 $a, n2 $b)"
((a)) || fail "link cut: ffsplit's tie-breaker is the lowest node id, so n1 should keep quorum, n2 did"
[[ $(qt n2) == *"Quorate:          No"* ]] || fail "link cut: n2 should say Quorate: No: $(qt n2)"
log "link cut: exactly one node quorate (n1, the lowest node id) after ${t_cut} s, still so 3 s later"
ip -n qdn1 link set qd12 up
ip -n qdn2 link set qd21 up
th=$EPOCHREALTIME
both() { quorate n1 && quorate n2 && [[ $(qt n1) == *"Nodes:            2"* ]]; }
wait_for 30 both || fail "heal: both nodes not quorate within 30 s"
t_heal=$(since "$th")
log "link healed: both quorate after ${t_heal} s"

# ---------------------------------------------------------------- removal, back to two_node
t4=$EPOCHREALTIME
ok n1 qdevice "$ABS" true
log "n1 absent: $(j "$R" msg)"
ok n2 qdevice "$ABS" true
log "n2 absent: $(j "$R" msg)"
t_remove=$(since "$t4")
for h in n1 n2; do
  out=$(qt $h)
  [[ $out == *"Quorate:          Yes"* && $out == *2Node* && $out != *Qdevice* ]] || fail "$h after removal: want quorate with 2Node, no Qdevice: $out"
  [[ -e $LAB/$h/corosync/qdevice ]] && fail "$h: /etc/corosync/qdevice still there"
  [[ -s $LAB/$h/run/corosync-qdevice/corosync-qdevice.pid ]] && on $h corosync-qdevice-tool -s >/dev/null 2>&1 && fail "$h: corosync-qdevice still runs"
done
# byte-exact: back to the original file, config_version 4
want=$(sed -e 's/config_version: 2/config_version: 4/' "$LAB/corosync.conf.orig")
[[ $(cat "$LAB/pve/corosync.conf") == "$want" ]] || fail "corosync.conf after removal is not the original with config_version 4: $(diff <(echo "$want") "$LAB/pve/corosync.conf")"
ok n1 qdevice "$ABS" false
ok n2 qdevice "$ABS" false
log "QDevice removed in ${t_remove} s: both quorate with 2Node; second run changed=false"

log "timings: lab ${t_setup_lab} s | setup ${t_setup} s (certs ${t_certs}, config ${t_config}) | second run ${t_second} s | link cut -> one quorate ${t_cut} s (two_node: both quorate, split at ${t_cut_two_node} s) | heal ${t_heal} s | removal ${t_remove} s | total $(since "$t0") s"
log "ok"
