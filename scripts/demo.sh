#!/usr/bin/env bash
# The main command: on a fresh Debian machine (as root) installs what it needs, builds the
# modules, brings up the two-node lab (tests/lab/lab.sh: two network namespaces running real
# corosync), shows the trap hosts_pin removes (bismuth's name resolves to Debian's 127.0.1.1, so
# its cluster filesystem refuses to start), runs playbooks/two_node.yml with --diff and again
# (changed=0), then shows why:
# peer loss with two-node mode (survivor quorate, /etc/pve writable) and without it (Activity
# blocked, /etc/pve read-only), a dead /etc/pve FUSE mount healed by playbooks/recover.yml;
# then the QDevice act: the link between the nodes cut with two_node (both stay quorate: split
# brain), playbooks/qdevice.yml (a third vote from the lab's qnetd node), the same cut with the
# QDevice (exactly one node quorate, the other refuses writes); then life after setup: the
# QDevice removed, a lone cold start blocked and lone_node.yml refused while bismuth answers,
# accepted once it is off; remove_node.yml; bismuth reinstalled and rejoined by two_node.yml.
# Always takes the lab down at the end (also on failure or Ctrl-C).
#
# Output: one line per phase with its key facts and elapsed time; the full Ansible output and
# every command's output go to log files in $PVE2NODE_DEMO_LOGS (default <repo>/build/demo),
# which survive the lab. Exit status 0 when every phase did what it shows, 1 otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source-path=SCRIPTDIR source=../tests/lab/standins/lab-lib.sh
. tests/lab/standins/lab-lib.sh
export PVE2NODE_LAB_DIR=${PVE2NODE_LAB_DIR:-$here/.lab}
LOGS=${PVE2NODE_DEMO_LOGS:-$here/build/demo}
L=$here/tests/lab/lab.sh
TOTAL=19

[[ $(id -u) == 0 ]] || { echo "demo: must run as root (network namespaces, FUSE, corosync)" >&2; exit 1; }
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
t_start=$EPOCHREALTIME
phase=0
lab_started=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((lab_started)); then
    if ((rc != 0)); then printf '       taking the lab down (log: %s)\n' "$LOGS/down.log"; fi
    "$L" down >>"$LOGS/down.log" 2>&1 || true
  fi
  if ((rc == 0)); then
    printf 'demo: all %d phases passed in %s s (logs: %s)\n' "$TOTAL" "$(elapsed "$t_start")" "$LOGS"
  else
    printf 'demo: FAILED after %s s (logs: %s)\n' "$(elapsed "$t_start")" "$LOGS"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

# begin TITLE: start a phase; the title shows at once (progress), the facts when it ends.
begin() {
  phase=$((phase + 1))
  t_phase=$EPOCHREALTIME
  printf '[%2d/%d] %-26s ' "$phase" "$TOTAL" "$1"
}
# done_ FACTS: end the phase with its facts and elapsed time.
done_() { printf '%s (%s s)\n' "$1" "$(elapsed "$t_phase")"; }
# fail MSG [LOG]: the phase failed: say why, show the end of its log, stop (cleanup takes over).
fail() {
  printf 'FAILED\n       %s\n' "$1"
  if [[ -n ${2:-} && -s $2 ]]; then
    printf '       last lines of %s:\n' "$2"
    tail -n 15 "$2" | sed 's/^/       | /'
  fi
  exit 1
}
# indent: show lines (recaps) under the phase line.
indent() { sed 's/^/         /'; }

# playbook NAME ARGS...: ansible-playbook against the lab, output to $LOGS/NAME.log.
playbook() {
  local name=$1
  shift
  "$L" ansible-playbook "$@" >"$LOGS/$name.log" 2>&1
}
# recap LOG: the PLAY RECAP lines, compact.
recap() { grep -E '^[^ ]+ +: ok=' "$1" | awk '{ printf "%-16s %s %s %s %s\n", $1, $3, $4, $6, $7 }'; }
# changed_sum LOG: total changed= of the recap.
changed_sum() { grep -E '^[^ ]+ +: ok=' "$1" | sed 's/.*changed=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }'; }
# changed_tasks LOG: the names of the tasks that reported changed, comma-separated.
changed_tasks() {
  awk '/^TASK \[/ { t = $0; sub(/^TASK \[/, "", t); sub(/\] \**$/, "", t) }
       /^changed: \[/ { if (!(t in seen)) { seen[t] = 1; l = l (l == "" ? "" : ", ") t } }
       END { print l }' "$1"
}

# quorum NODE: "quorate (quorumtool exit 0), nodes N, flags ..." from the node's corosync-quorumtool -s.
quorum() {
  local out rc=0 q
  out=$("$L" exec "$1" timeout 5 corosync-quorumtool -s 2>&1) || rc=$?
  q=$(awk -F': *' '/^Quorate:/ { print $2 }' <<<"$out")
  printf '%s (quorumtool exit %s), nodes %s, flags %s' "$([[ $q == Yes ]] && echo quorate || echo NOT quorate)" "$rc" \
    "$(awk -F': *' '/^Nodes:/ { print $2 }' <<<"$out")" \
    "$(sed -n 's/^Flags: *//p' <<<"$out" | sed 's/ *$//')"
}
# conf_version NODE: config_version of /etc/pve/corosync.conf seen from NODE.
# shellcheck disable=SC2016 # an awk program
conf_version() { "$L" exec "$1" awk '/config_version:/ { print $2; exit }' /etc/pve/corosync.conf 2>/dev/null; }
# try_write NODE: write a file into /etc/pve on NODE; prints "ok" or the error.
try_write() {
  local err
  if err=$("$L" exec "$1" bash -c "echo \"written on \$(hostname) at \$(date +%T)\" >/etc/pve/demo-write-test" 2>&1); then
    echo "write ok"
  else
    echo "write refused: ${err##*: }"
  fi
}
wait_cond() { "$L" wait "$1" "$2" "$3" >>"$LOGS/lab.log" 2>&1; }

echo "pve2node demo: two Proxmox-like nodes (tartanpion, bismuth) in network namespaces, real corosync"
echo "        logs: $LOGS"

begin "setup (packages, venv)"
bash scripts/setup.sh >"$LOGS/setup.log" 2>&1 || fail "scripts/setup.sh failed" "$LOGS/setup.log"
done_ "$(tail -n 1 "$LOGS/setup.log" | sed 's/^setup: //')"

begin "build (static modules)"
bash scripts/collection.sh >"$LOGS/build.log" 2>&1 || fail "scripts/collection.sh failed" "$LOGS/build.log"
sizes=$(for f in build/modules/*; do [[ $f == *.yml ]] || printf '%s %s KiB, ' "${f##*/}" $(($(stat -c %s "$f") / 1024)); done)
done_ "${sizes%, }"

begin "lab up"
lab_started=1
"$L" down >"$LOGS/lab.log" 2>&1 || fail "could not take a previous lab down" "$LOGS/lab.log"
t0=$EPOCHREALTIME
"$L" up >>"$LOGS/lab.log" 2>&1 || fail "lab up failed" "$LOGS/lab.log"
t_up=$(elapsed "$t0")
done_ "tartanpion (netns pve1, 10.99.0.1) + bismuth (pve2, 10.99.0.2) + qnetd (pve3, 10.99.9.3), up in ${t_up} s; $("$L" exec pve1 corosync -v 2>/dev/null | head -n 1 | sed 's/ *$//')"

begin "fresh nodes: the trap"
r1=$("$L" exec pve1 getent hosts tartanpion | awk '{ print $1 }')
r2=$("$L" exec pve2 getent hosts bismuth | awk '{ print $1 }')
[[ $r2 == 127.0.1.1 ]] || fail "bismuth should resolve to Debian's 127.0.1.1 on a fresh lab, got '$r2'"
refusal=$("$L" exec pve2 /usr/local/sbin/pve-cluster start 2>&1) && fail "bismuth's pve-cluster started although its name resolves only to loopback"
[[ $refusal == *"Unable to resolve node name 'bismuth' to a non-loopback IP address"* ]] || fail "unexpected refusal: $refusal"
done_ "tartanpion -> $r1 (public), bismuth -> $r2: its cluster filesystem refuses to start"
printf '         %s\n' "$refusal"

begin "two_node.yml --diff"
playbook 1-two_node pve2node.cluster.two_node --diff ||
  fail "ansible-playbook playbooks/two_node.yml failed" "$LOGS/1-two_node.log"
# the facts from the live nodes, not from Ansible
q1=$(quorum pve1)
[[ $q1 == "quorate (quorumtool exit 0), nodes 2, flags "*2Node* ]] || fail "tartanpion not quorate with 2 nodes in two-node mode: $q1"
hosts_pin=$("$L" exec pve1 getent hosts tartanpion | awk '{ print $1 }')/$("$L" exec pve2 getent hosts bismuth | awk '{ print $1 }')
[[ $hosts_pin == 10.99.0.1/10.99.0.2 ]] || fail "short names resolve to $hosts_pin, expected the private addresses"
[[ $("$L" exec pve2 /usr/local/sbin/pve-cluster status 2>&1) == *healthy* ]] || fail "bismuth's /etc/pve is not up after two_node.yml"
done_ "changed=$(changed_sum "$LOGS/1-two_node.log"); elao $q1, config_version $(conf_version pve1), short names -> $hosts_pin, bismuth's /etc/pve up"
recap "$LOGS/1-two_node.log" | indent

begin "two_node.yml again"
playbook 2-two_node-again pve2node.cluster.two_node --diff || fail "second run failed" "$LOGS/2-two_node-again.log"
c=$(changed_sum "$LOGS/2-two_node-again.log")
((c == 0)) || fail "second run changed $c task(s), expected 0" "$LOGS/2-two_node-again.log"
done_ "changed=0 on both hosts: nothing left to do"
recap "$LOGS/2-two_node-again.log" | indent

begin "peer lost, two-node on"
t0=$EPOCHREALTIME
"$L" kill-corosync pve2 >>"$LOGS/lab.log" 2>&1 || fail "kill-corosync pve2 failed" "$LOGS/lab.log"
wait_cond pve1 members=1 30 || fail "tartanpion did not notice bismuth's loss within 30 s: $(quorum pve1)"
t_detect=$(elapsed "$t0")
sleep 1.5 # the pve-cluster watcher polls every second: give it the chance to (wrongly) go read-only
q1=$(quorum pve1)
[[ $q1 == "quorate (quorumtool exit 0), nodes 1, flags "*2Node* ]] || fail "survivor not quorate: $q1"
wait_cond pve1 rw 1 || fail "/etc/pve read-only on the survivor"
w=$(try_write pve1)
[[ $w == "write ok" ]] || fail "/etc/pve on the survivor: $w"
done_ "bismuth's corosync killed; lost after ${t_detect} s; tartanpion: $q1, /etc/pve rw, $w"

begin "two-node off (contrast)"
"$L" start-corosync pve2 >>"$LOGS/lab.log" 2>&1 || fail "start-corosync pve2 failed" "$LOGS/lab.log"
wait_cond pve1 members=2 30 || fail "bismuth did not rejoin within 30 s: $(quorum pve1)"
v_before=$(conf_version pve1)
"$L" ansible tartanpion -m cman_two_node -a state=absent >"$LOGS/3-two_node-off.log" 2>&1 ||
  fail "cman_two_node state=absent failed" "$LOGS/3-two_node-off.log"
q1=$(quorum pve1)
[[ $q1 != *2Node* ]] || fail "2Node still set: $q1"
done_ "bismuth restarted; cman_two_node state=absent: config_version $v_before -> $(conf_version pve1), tartanpion: $q1"

begin "peer lost, two-node off"
t0=$EPOCHREALTIME
"$L" kill-corosync pve2 >>"$LOGS/lab.log" 2>&1 || fail "kill-corosync pve2 failed" "$LOGS/lab.log"
wait_cond pve1 blocked 30 || fail "tartanpion still quorate 30 s after the loss: $(quorum pve1)"
t_detect=$(elapsed "$t0")
st_rc=0
st=$("$L" exec pve1 pvecm status 2>&1) || st_rc=$?
[[ $st_rc == 2 && $st == *"Activity blocked"* ]] || fail "pvecm status: exit $st_rc, no 'Activity blocked'"
wait_cond pve1 ro 10 || fail "/etc/pve still writable on tartanpion 10 s after quorum loss"
t_ro=$(elapsed "$t0")
w=$(try_write pve1)
[[ $w == *"Permission denied"* ]] || fail "/etc/pve on tartanpion: $w (expected read-only: pmxcfs refuses with EACCES)"
done_ "not quorate after ${t_detect} s: pvecm status exit 2 '$(grep -o 'Quorum: .*Activity blocked' <<<"$st" | tr -s ' ')'; /etc/pve ro after ${t_ro} s, $w"

begin "two-node back on"
"$L" start-corosync pve2 >>"$LOGS/lab.log" 2>&1 || fail "start-corosync pve2 failed" "$LOGS/lab.log"
wait_cond pve1 quorate 30 || fail "tartanpion not quorate again within 30 s: $(quorum pve1)"
wait_cond pve2 quorate 30 || fail "bismuth not quorate again within 30 s: $(quorum pve2)"
playbook 4-two_node-on pve2node.cluster.two_node --diff || fail "two_node.yml failed" "$LOGS/4-two_node-on.log"
q1=$(quorum pve1)
[[ $q1 == "quorate (quorumtool exit 0), nodes 2, flags "*2Node* ]] || fail "not back in two-node mode: $q1"
done_ "bismuth restarted, two_node.yml: changed=$(changed_sum "$LOGS/4-two_node-on.log") ($(changed_tasks "$LOGS/4-two_node-on.log")), config_version $(conf_version pve1), tartanpion: $q1"

begin "/etc/pve FUSE killed"
"$L" kill-fuse pve2 >>"$LOGS/lab.log" 2>&1 || fail "kill-fuse pve2 failed" "$LOGS/lab.log"
st_rc=0
st=$("$L" exec pve2 stat /etc/pve 2>&1 >/dev/null) || st_rc=$?
[[ $st_rc != 0 && $st == *"Transport endpoint is not connected"* ]] || fail "expected a stale mount, stat said: $st"
done_ "bismuth: $st"

begin "recover.yml"
"$L" ssh-reset >>"$LOGS/lab.log" 2>&1 # a fresh login: root's authorized_keys is in the dead /etc/pve
playbook 5-recover pve2node.cluster.recover || fail "recover.yml failed" "$LOGS/5-recover.log"
states=$(grep -oE '"msg": "[a-z]+: [a-z]+ -> [a-z]+"' "$LOGS/5-recover.log" | sed 's/"msg": "\(.*\)"/\1/' | sort | paste -sd ';' | sed 's/;/; /g')
[[ $states == *"bismuth: stale -> healthy"* ]] || fail "bismuth not healed: '$states'" "$LOGS/5-recover.log"
"$L" exec pve2 stat /etc/pve >/dev/null 2>&1 || fail "stat /etc/pve still fails on bismuth"
"$L" exec pve2 test -r /etc/pve/.members || fail "/etc/pve/.members not readable on bismuth"
shared=$("$L" exec pve2 cat /etc/pve/demo-write-test 2>&1 || true)
done_ "$states; bismuth sees the cluster's files again ('$shared')"
recap "$LOGS/5-recover.log" | indent

begin "two_node: link cut"
"$L" ssh-reset >>"$LOGS/lab.log" 2>&1
t0=$EPOCHREALTIME
"$L" cut-link >>"$LOGS/lab.log" 2>&1 || fail "cut-link failed" "$LOGS/lab.log"
{ wait_cond pve1 members=1 30 && wait_cond pve2 members=1 30; } || fail "the nodes still see each other 30 s after the cut"
t_cut=$(elapsed "$t0")
sleep 1.5 # pmxcfs polls its quorum each second
q1=$(quorum pve1) q2=$(quorum pve2) w1=$(try_write pve1) w2=$(try_write pve2)
[[ $q1 == quorate* && $q2 == quorate* ]] || fail "expected both quorate with two_node: tartanpion $q1; bismuth $q2"
"$L" heal-link >>"$LOGS/lab.log" 2>&1 || fail "heal-link failed" "$LOGS/lab.log"
{ wait_cond pve1 members=2 30 && wait_cond pve2 members=2 30; } || fail "no common membership 30 s after heal-link"
done_ "every link between the nodes cut: after ${t_cut} s BOTH quorate (split brain): tartanpion $w1, bismuth $w2; healed"

begin "qdevice.yml --diff"
playbook 6-qdevice pve2node.cluster.qdevice --diff || fail "ansible-playbook playbooks/qdevice.yml failed" "$LOGS/6-qdevice.log"
{ wait_cond pve1 flag=Qdevice 15 && wait_cond pve2 flag=Qdevice 15; } || fail "no Qdevice flag after qdevice.yml: $(quorum pve1)"
q1=$(quorum pve1)
[[ $q1 != *2Node* ]] || fail "2Node still set with the QDevice: $q1"
done_ "changed=$(changed_sum "$LOGS/6-qdevice.log"); config_version $(conf_version pve1), tartanpion: $q1 (qnetd 10.99.9.3)"
recap "$LOGS/6-qdevice.log" | indent

begin "QDevice: link cut"
one_quorate() {
  local a b
  a=$(quorum pve1) b=$(quorum pve2)
  [[ ($a == quorate* && $b == NOT*) || ($a == NOT* && $b == quorate*) ]]
}
{ wait_cond pve1 rw 15 && wait_cond pve2 rw 15; } || fail "/etc/pve not writable on both before the cut"
t0=$EPOCHREALTIME
"$L" cut-link >>"$LOGS/lab.log" 2>&1 || fail "cut-link failed" "$LOGS/lab.log"
wait_for 15 one_quorate || fail "not exactly one node quorate 15 s after the cut: tartanpion $(quorum pve1); bismuth $(quorum pve2)"
t_cut=$(elapsed "$t0")
q1=$(quorum pve1)
loser=pve2 winner=tartanpion
[[ $q1 == NOT* ]] && loser=pve1 winner=bismuth
wait_cond "$loser" ro 10 || fail "/etc/pve still writable on the inquorate node"
w=$(try_write "$loser")
[[ $w == *"Permission denied"* ]] || fail "the inquorate node's /etc/pve: $w"
"$L" heal-link >>"$LOGS/lab.log" 2>&1 || fail "heal-link failed" "$LOGS/lab.log"
{ wait_cond pve1 quorate 30 && wait_cond pve2 quorate 30; } || fail "not both quorate 30 s after heal-link"
done_ "cut: after ${t_cut} s only $winner quorate (qnetd's vote), the other: $w; healed: both quorate"

begin "lone node, guarded"
playbook 7-qdevice-absent pve2node.cluster.qdevice -e qdevice_state=absent || fail "qdevice.yml qdevice_state=absent failed" "$LOGS/7-qdevice-absent.log"
{ wait_cond pve1 flag=2Node 15 && wait_cond pve2 rw 15; } || fail "not back to two_node after the QDevice's removal: $(quorum pve1)"
for n in pve2 pve1; do "$L" power-off "$n" >>"$LOGS/lab.log" 2>&1 || fail "power-off $n failed" "$LOGS/lab.log"; done
"$L" power-on pve1 >>"$LOGS/lab.log" 2>&1 || fail "power-on tartanpion failed" "$LOGS/lab.log"
wait_cond pve1 blocked 15 || fail "tartanpion alone after a cold start is not blocked: $(quorum pve1)"
wait_cond pve1 ro 10 || fail "tartanpion's /etc/pve writable while blocked"
w_blocked=$(try_write pve1)
# bismuth boots while tartanpion's corosync is stopped: it answers, yet the two never meet
{ "$L" stop-corosync pve1 && "$L" power-on pve2 && "$L" stop-corosync pve2 && "$L" start-corosync pve1; } >>"$LOGS/lab.log" 2>&1 || fail "could not boot bismuth apart" "$LOGS/lab.log"
wait_cond pve1 blocked 15 || fail "tartanpion not blocked again: $(quorum pve1)"
"$L" ssh-reset >>"$LOGS/lab.log" 2>&1 || true
playbook 8-lone-refused pve2node.cluster.lone_node -e peer_powered_off=bismuth && fail "lone_node.yml accepted while bismuth answers" "$LOGS/8-lone-refused.log"
refusal=$(grep -m1 '^fatal' "$LOGS/8-lone-refused.log" | sed -n 's/.*"msg": "\([^"]*\)".*/\1/p')
[[ $refusal == *bismuth* ]] || fail "lone_node.yml failed without naming bismuth" "$LOGS/8-lone-refused.log"
"$L" power-off pve2 >>"$LOGS/lab.log" 2>&1 || fail "power-off bismuth failed" "$LOGS/lab.log"
playbook 9-lone pve2node.cluster.lone_node -e peer_powered_off=bismuth || fail "lone_node.yml failed with bismuth off" "$LOGS/9-lone.log"
wait_cond pve1 rw 10 || fail "tartanpion's /etc/pve not writable after lone_node.yml"
done_ "cold start alone: blocked, $w_blocked; bismuth up: refused ($refusal); off: $(quorum pve1), $(try_write pve1)"

begin "remove_node.yml bismuth"
playbook 10-remove pve2node.cluster.remove_node -e node=bismuth || fail "remove_node.yml failed" "$LOGS/10-remove.log"
# shellcheck disable=SC2016 # an awk program
members=$("$L" exec pve1 awk '$1 == "name:" { printf "%s ", $2 }' /etc/pve/corosync.conf)
[[ $members == "tartanpion " ]] || fail "nodelist after the removal: $members"
! "$L" exec pve1 grep -q two_node /etc/pve/corosync.conf || fail "two_node left on a one-node cluster"
done_ "nodelist: ${members% }, no two_node, config_version $(conf_version pve1), $(quorum pve1)"

begin "reinstall, two_node.yml"
"$L" reinstall pve2 >>"$LOGS/lab.log" 2>&1 || fail "reinstall bismuth failed" "$LOGS/lab.log"
"$L" ssh-reset >>"$LOGS/lab.log" 2>&1 || true
playbook 11-rejoin pve2node.cluster.two_node || fail "two_node.yml with the reinstalled bismuth failed" "$LOGS/11-rejoin.log"
{ wait_cond pve1 members=2 30 && wait_cond pve2 flag=2Node 15 && wait_cond pve2 rw 15; } || fail "the reinstalled bismuth did not rejoin: $(quorum pve2)"
playbook 12-rejoin-again pve2node.cluster.two_node || fail "two_node.yml again failed" "$LOGS/12-rejoin-again.log"
c=$(changed_sum "$LOGS/12-rejoin-again.log")
((c == 0)) || fail "two_node.yml again changed $c task(s)" "$LOGS/12-rejoin-again.log"
done_ "fresh bismuth (new host key) joined: $(quorum pve2); again changed=0"

begin "lab down"
t0=$EPOCHREALTIME
lab_started=0
"$L" down >"$LOGS/down.log" 2>&1 || fail "lab down failed" "$LOGS/down.log"
t_down=$(elapsed "$t0")
left=$(ip netns list 2>/dev/null | grep -cE "^${PVE2NODE_LAB_NS:-}(pve[123]|wire)( |\$)" || true)
((left == 0)) || fail "namespaces left behind: $(ip netns list)"
! grep -qF "$PVE2NODE_LAB_DIR" /proc/self/mountinfo || fail "mounts of $PVE2NODE_LAB_DIR left behind"
strays=""
for f in $(grep -lF "$PVE2NODE_LAB_DIR/" /proc/[0-9]*/cmdline 2>/dev/null || true); do
  p=${f#/proc/}
  p=${p%/cmdline}
  [[ $p == "$$" || $p == "$BASHPID" ]] && continue
  alive "$p" && strays+="$p "
done
[[ -z $strays ]] || fail "lab processes left: $strays"
done_ "down in ${t_down} s: no namespace, no mount, no lab process left"
