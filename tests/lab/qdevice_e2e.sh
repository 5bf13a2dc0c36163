#!/bin/bash
# The QDevice end-to-end on the lab's real daemons (corosync, corosync-qdevice on the nodes,
# corosync-qnetd on pve3), called by tests/lab/e2e.sh on the lab playbooks_e2e.sh leaves (a
# two-node cluster made by two_node.yml); also runs alone (then: a fresh lab and two_node.yml
# first). In order:
#  - with two_node (the contrast): every link between the nodes cut -> both stay quorate (split
#    brain); bismuth powered off -> tartanpion quorate; a lone cold start -> blocked (wait_for_all);
#  - playbooks/qdevice.yml --check: nothing changed on any host; then for real: both nodes
#    quorate with Qdevice and no 2Node, 3 expected votes; again: changed=0;
#  - with the QDevice: cut -> exactly one node quorate within 15 s, the other's /etc/pve refuses
#    writes; healed -> both quorate; bismuth powered off -> tartanpion stays quorate and
#    writable; a lone cold start with qnetd up -> quorate; qnetd powered off with both up ->
#    still quorate;
#  - qdevice_state=absent: back to two_node (quorate, 2Node, no device, no qdevice daemon);
#    again: changed=0; then `down` leaves nothing.
# Prints each transition's time with two_node and with the QDevice. Every wait is bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
cd "$repo"
LOGS=$(mktemp -d /tmp/pve2node-qdevice-e2e.XXXXXX)
ANSIBLE_TIMEOUT_S=${ANSIBLE_TIMEOUT_S:-240}
t_start=$EPOCHREALTIME
changed_tasks() {
  awk '/^TASK \[/ { t = $0; sub(/^TASK \[/, "", t); sub(/\] \**$/, "", t) }
       /^changed: \[/ { print t "@" substr($2, 2, length($2) - 2) }' <<<"$play_out" | sort | paste -sd, | sed 's/,/, /g'
}
quorate() { [[ $(qrc "$1") == 0 ]]; }
qfield() { "$L" exec "$1" timeout 5 corosync-quorumtool -s 2>/dev/null | sed -n "s/^$2: *//p" | awk '{ print $1 }'; }
try_write() { "$L" exec "$1" bash -c "echo qdevice-e2e >/etc/pve/qdevice-e2e.txt" 2>&1; }
# one_quorate: exactly one of the two nodes is quorate (prints which).
one_quorate() {
  local a b
  a=$(qrc pve1) b=$(qrc pve2)
  if [[ $a == 0 && $b != 0 ]]; then echo tartanpion; elif [[ $b == 0 && $a != 0 ]]; then echo bismuth; else return 1; fi
}
both_quorate() { quorate pve1 && quorate pve2; }
# stays_quorate NODE SECONDS: NODE is quorate at every probe (each ~0.2 s) for SECONDS.
stays_quorate() {
  local t0=$EPOCHREALTIME
  while awk -v a="$t0" -v b="$EPOCHREALTIME" -v t="$2" 'BEGIN { exit !(b - a < t) }'; do
    quorate "$1" || { echo "not quorate $(elapsed "$t0") s in"; return 1; }
    sleep 0.2
  done
}
# qnetd_clients: corosync-qnetd-tool -s's count of connected clients on pve3.
qnetd_clients() { "$L" exec pve3 corosync-qnetd-tool -s 2>/dev/null | awk -F: '/Connected clients/ { gsub(/[ \t]/, "", $2); print $2 }'; }
no_clients() { [[ $(qnetd_clients) == 0 ]]; }
sums() { n1 sha256sum /etc/pve/corosync.conf /etc/corosync/corosync.conf; n2 sha256sum /etc/corosync/corosync.conf; }
declare -A T

cleanup() {
  local rc=$?
  trap - EXIT
  "$L" down >/dev/null 2>&1 || true
  rm -rf "$LOGS"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== qdevice e2e ($LAB)"
if "$L" status >/dev/null 2>&1 && [[ $(qrc pve1) == 0 && " $(flags pve1) " == *" 2Node "* ]] && lab_wait pve1 members=2 1; then
  echo "-- on the lab left by playbooks_e2e.sh (a two_node cluster)"
else
  echo "-- a fresh lab, two_node.yml"
  "$L" down >/dev/null
  "$L" up >/dev/null
  play two_node pve2node.cluster.two_node
  check_eq "two_node.yml: exit 0" 0 "$play_rc"
fi
for n in pve1 pve2; do
  check "$n: quorate, 2 members, 2Node (<= 30 s)" bash -c "'$L' wait $n members=2 30 && '$L' wait $n flag=2Node 10 && '$L' wait $n quorate 10"
done
"$L" ssh-reset >/dev/null

echo "-- two_node (the contrast): every link cut"
t0=$EPOCHREALTIME
"$L" cut-link >/dev/null
if lab_wait pve1 members=1 30 && lab_wait pve2 members=1 30; then T[tn_cut]=$(elapsed "$t0"); else T[tn_cut]=timeout; fi
check_eq "two_node, cut: BOTH quorate (split brain), each alone (${T[tn_cut]} s)" "0 0" "$(qrc pve1) $(qrc pve2)"
sleep 1.5 # pmxcfs polls each second
check_eq "two_node, cut: BOTH /etc/pve accept writes" "|" "$(try_write pve1)|$(try_write pve2)"
t0=$EPOCHREALTIME
"$L" heal-link >/dev/null
if lab_wait pve1 members=2 30 && lab_wait pve2 members=2 30; then T[tn_heal]=$(elapsed "$t0"); else T[tn_heal]=timeout; fi
check "two_node, healed: one membership of 2, both quorate (${T[tn_heal]} s)" both_quorate

echo "-- two_node: bismuth powered off, then a lone cold start"
t0=$EPOCHREALTIME
"$L" power-off pve2 >/dev/null
if lab_wait pve1 members=1 30; then T[tn_off]=$(elapsed "$t0"); else T[tn_off]=timeout; fi
check "two_node, power-off bismuth: tartanpion quorate alone (${T[tn_off]} s)" quorate pve1
"$L" power-off pve1 >/dev/null
t0=$EPOCHREALTIME
"$L" power-on pve1 >/dev/null
T[tn_cold_on]=$(elapsed "$t0")
sleep 3
check_eq "two_node, tartanpion cold-starts alone: blocked (wait_for_all), 3 s after its boot" "2" "$(qrc pve1)"
check_has "two_node, lone cold start: WaitForAll, Activity blocked" "Activity blocked" "$("$L" exec pve1 corosync-quorumtool -s 2>&1 || true)"
t0=$EPOCHREALTIME
"$L" power-on pve2 >/dev/null
if lab_wait pve1 quorate 30 && lab_wait pve2 quorate 30 && lab_wait pve1 members=2 30; then T[tn_both]=$(elapsed "$t0"); else T[tn_both]=timeout; fi
check "two_node: bismuth back, both quorate (${T[tn_both]} s)" both_quorate
check "both /etc/pve writable again (<= 15 s)" bash -c "'$L' wait pve1 rw 15 && '$L' wait pve2 rw 15"
"$L" ssh-reset >/dev/null

echo "-- qdevice.yml --check --diff: the plan, nothing changed"
before=$(sums)
play check pve2node.cluster.qdevice --check --diff
check_eq "check mode: exit 0" 0 "$play_rc"
check "check mode: changes planned" test "$(recap_changed)" -gt 0
check_has "check mode: the device block in the diff" "+    model: net" "$play_out"
check_has "check mode: two_node removed in the same write" "-  two_node: 1" "$play_out"
check_eq "check mode: corosync.conf unchanged (both nodes)" "$before" "$(sums)"
check "check mode: no /etc/corosync/qdevice on either node" bash -c "'$L' exec pve1 test ! -e /etc/corosync/qdevice && '$L' exec pve2 test ! -e /etc/corosync/qdevice"
check "check mode: no cluster certificate on qnetd" "$L" exec pve3 test ! -e /etc/corosync/qnetd/nssdb/cluster-elao.crt
check "check mode: no corosync-qdevice running" bash -c "! '$L' exec pve1 /usr/local/sbin/lab-qdevice status && ! '$L' exec pve2 /usr/local/sbin/lab-qdevice status"
check_eq "check mode: flags still 2Node" "2Node Quorate WaitForAll" "$(flags pve1)"

echo "-- qdevice.yml: the real run"
t0=$EPOCHREALTIME
play run1 pve2node.cluster.qdevice --diff
T[setup]=$(elapsed "$t0")
check_eq "run: exit 0 (${T[setup]} s)" 0 "$play_rc"
[[ $play_rc == 0 ]] || tail -n 30 "$LOGS/run1.log"
check_has "run: the assert's summary" "elao: quorate, 2 nodes, flags Quorate Qdevice" "$play_out"
for n in pve1 pve2; do
  check "$n: quorate with Qdevice and no 2Node (<= 15 s)" bash -c "'$L' wait $n flag=Qdevice 15 && '$L' wait $n noflag=2Node 1 && '$L' wait $n quorate 1"
  check_eq "$n: expected votes 3, total votes 3" "3 3" "$(qfield "$n" 'Expected votes') $(qfield "$n" 'Total votes')"
  check_has "$n: corosync-qdevice runs (lab-qdevice)" "is running" "$("$L" exec "$n" /usr/local/sbin/lab-qdevice status 2>&1)"
done
conf=$(n1 cat /etc/pve/corosync.conf)
check_has "corosync.conf: the device block (net, ffsplit, qnetd's address, tls)" "    model: net
    net {
      algorithm: ffsplit
      host: 10.99.9.3
      tls: on
    }
    votes: 1" "$conf"
check_lacks "corosync.conf: no two_node" "two_node" "$conf"
check "both /etc/corosync copies equal /etc/pve's" bash -c "[[ \$('$L' exec pve1 sha256sum /etc/pve/corosync.conf | cut -d' ' -f1) == \$('$L' exec pve2 sha256sum /etc/corosync/corosync.conf | cut -d' ' -f1) ]]"
check_has "qnetd sees cluster elao with both nodes" "Cluster \"elao\":" "$("$L" exec pve3 corosync-qnetd-tool -l 2>&1)"
check_eq "qnetd: 2 connected clients" 2 "$(qnetd_clients)"
check "the .p12 (a secret) is not world-readable on bismuth" bash -c "[[ \$('$L' exec pve2 stat -c %a /etc/corosync/qdevice/net/nssdb/key4.db) != *[4-7] ]]"
check_lacks "no_log: the .p12 never shows in the output" '"p12": "' "$play_out"

echo "-- qdevice.yml again: changed=0"
before=$(sums)
play run2 pve2node.cluster.qdevice --diff
check_eq "again: exit 0" 0 "$play_rc"
check_eq "again: changed=0 on every host" "0" "$(recap_changed)"
check_eq "again: no task reported changed" "" "$(changed_tasks)"
check_eq "again: corosync.conf unchanged" "$before" "$(sums)"
play check2 pve2node.cluster.qdevice --check
check_eq "check mode on the configured cluster: exit 0, changed=0" "0 0" "$play_rc $(recap_changed)"

echo "-- QDevice: every link between the nodes cut"
t0=$EPOCHREALTIME
"$L" cut-link >/dev/null
if winner=$(wait_for 15 one_quorate >/dev/null && one_quorate); then
  T[qd_cut]=$(elapsed "$t0")
  ok "QDevice, cut: exactly one node quorate within 15 s (${T[qd_cut]} s: $winner)"
else
  T[qd_cut]=timeout
  bad "QDevice, cut: exactly one node quorate within 15 s" "tartanpion $(qrc pve1), bismuth $(qrc pve2)"
fi
loser=pve2
[[ $winner == bismuth ]] && loser=pve1
check "QDevice, cut: the other node's /etc/pve read-only (<= 10 s)" lab_wait "$loser" ro 10
check_has "QDevice, cut: the other node refuses writes (EACCES)" "Permission denied" "$(try_write "$loser")"
sleep 3
check_eq "QDevice, cut: still the same one quorate 3 s later" "${winner:-?}" "$(one_quorate || echo none)"
t0=$EPOCHREALTIME
"$L" heal-link >/dev/null
if wait_for 30 both_quorate && lab_wait pve1 members=2 30 && lab_wait pve2 members=2 30; then T[qd_heal]=$(elapsed "$t0"); else T[qd_heal]=timeout; fi
check "QDevice, healed: both quorate, 2 members (${T[qd_heal]} s)" both_quorate
check "QDevice, healed: both /etc/pve writable (<= 15 s)" bash -c "'$L' wait pve1 rw 15 && '$L' wait pve2 rw 15"

echo "-- QDevice: bismuth powered off"
t0=$EPOCHREALTIME
"$L" power-off pve2 >/dev/null
# probe for 15 s (qnetd drops a silent node after ~12 s): quorate at every probe, and when the
# membership shrinks
T[qd_off]=timeout
lost=""
while awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a < 15) }'; do
  out=$("$L" exec pve1 timeout 5 corosync-quorumtool -s 2>/dev/null) && rc=0 || rc=$?
  ((rc == 0)) || lost+="$(elapsed "$t0") "
  [[ ${T[qd_off]} == timeout && $out =~ Nodes:\ +1$'\n' ]] && T[qd_off]=$(elapsed "$t0")
  sleep 0.2
done
check_eq "QDevice, power-off bismuth: tartanpion quorate at every probe for 15 s" "" "$lost"
check "QDevice, power-off bismuth: tartanpion alone in the membership (${T[qd_off]} s)" test "${T[qd_off]}" != timeout
check "QDevice, power-off bismuth: tartanpion writable" bash -c "'$L' wait pve1 rw 5 && '$L' exec pve1 bash -c 'echo alone >/etc/pve/qdevice-e2e.txt'"
t0=$EPOCHREALTIME
"$L" power-on pve2 >/dev/null
check_has "power-on: bismuth's corosync-qdevice started at boot" "is running" "$("$L" exec pve2 /usr/local/sbin/lab-qdevice status 2>&1)"
if wait_for 30 both_quorate && lab_wait pve1 members=2 30 && lab_wait pve2 flag=Qdevice 30; then T[qd_on]=$(elapsed "$t0"); else T[qd_on]=timeout; fi
check "QDevice, bismuth back: both quorate (${T[qd_on]} s)" both_quorate

echo "-- QDevice: a lone cold start with qnetd up"
"$L" power-off pve1 >/dev/null
"$L" power-off pve2 >/dev/null
# a cold start, not a quick reboot: qnetd drops the silent nodes' connections first (~12 s)
check "qnetd dropped both silent nodes (<= 30 s)" wait_for 30 no_clients
t0=$EPOCHREALTIME
"$L" power-on pve1 >/dev/null
if lab_wait pve1 quorate 30; then T[qd_cold]=$(elapsed "$t0"); else T[qd_cold]=timeout; fi
check "QDevice, tartanpion cold-starts alone: quorate (${T[qd_cold]} s after power-on)" quorate pve1
check "QDevice, lone cold start: /etc/pve writable (<= 15 s)" lab_wait pve1 rw 15
t0=$EPOCHREALTIME
"$L" power-on pve2 >/dev/null
if wait_for 30 both_quorate && lab_wait pve1 members=2 30 && lab_wait pve2 flag=Qdevice 30; then T[qd_both]=$(elapsed "$t0"); else T[qd_both]=timeout; fi
check "QDevice: bismuth joins, both quorate (${T[qd_both]} s)" both_quorate

echo "-- QDevice: qnetd powered off with both nodes up"
t0=$EPOCHREALTIME
"$L" power-off pve3 >/dev/null
# probe both nodes until the device's vote is gone (corosync-qdevice notices the silent qnetd
# by its heartbeat), at most 30 s: quorate at every probe
T[qd_qnetd_off]="kept 30 s"
lost=""
while awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a < 30) }'; do
  quorate pve1 || lost+="tartanpion@$(elapsed "$t0") "
  quorate pve2 || lost+="bismuth@$(elapsed "$t0") "
  if [[ $(qfield pve1 'Total votes') == 2 ]]; then T[qd_qnetd_off]=$(elapsed "$t0"); break; fi
  sleep 0.2
done
check_eq "QDevice, qnetd off: both stay quorate at every probe (the vote dropped after ${T[qd_qnetd_off]} s)" "" "$lost"
check "QDevice, qnetd off: both still quorate now" both_quorate
"$L" power-on pve3 >/dev/null
t0=$EPOCHREALTIME
if wait_for 30 bash -c "[[ \$('$L' exec pve1 timeout 5 corosync-quorumtool -s 2>/dev/null | sed -n 's/^Total votes: *//p' | tr -d ' ') == 3 ]]"; then T[qd_qnetd_back]=$(elapsed "$t0"); else T[qd_qnetd_back]=timeout; fi
check "QDevice, qnetd back: its vote counted again, 3 votes (${T[qd_qnetd_back]} s)" test "${T[qd_qnetd_back]}" != timeout

echo "-- qdevice_state=absent: back to two_node"
t0=$EPOCHREALTIME
play absent pve2node.cluster.qdevice -e qdevice_state=absent --diff
T[removal]=$(elapsed "$t0")
check_eq "absent: exit 0 (${T[removal]} s)" 0 "$play_rc"
[[ $play_rc == 0 ]] || tail -n 30 "$LOGS/absent.log"
for n in pve1 pve2; do
  check "$n: quorate, 2Node, no Qdevice (<= 15 s)" bash -c "'$L' wait $n flag=2Node 15 && '$L' wait $n noflag=Qdevice 1 && '$L' wait $n quorate 1"
  check "$n: corosync-qdevice stopped" bash -c "! '$L' exec $n /usr/local/sbin/lab-qdevice status"
  check "$n: /etc/corosync/qdevice removed" "$L" exec "$n" test ! -e /etc/corosync/qdevice
done
conf=$(n1 cat /etc/pve/corosync.conf)
check_lacks "absent: no device block" "device {" "$conf"
check_has "absent: two_node: 1 back" "  two_node: 1" "$conf"
play absent2 pve2node.cluster.qdevice -e qdevice_state=absent
check_eq "absent again: exit 0, changed=0" "0 0" "$play_rc $(recap_changed)"

echo "-- down leaves nothing"
mapfile -t pids < <(lab_pids)
"$L" down >/dev/null
check_nothing_left "" "${pids[@]}"

echo "== qdevice e2e: $passed passed, $failed failed in $(elapsed "$t_start") s"
echo "   setup (qdevice.yml) ${T[setup]} s, removal (qdevice_state=absent) ${T[removal]} s"
echo "   two_node: every link cut -> each alone ${T[tn_cut]} s, BOTH quorate (split brain); healed -> merged ${T[tn_heal]} s;"
echo "             bismuth powered off -> tartanpion alone and quorate ${T[tn_off]} s; lone cold start -> blocked (power-on ${T[tn_cold_on]} s); peer back -> quorate ${T[tn_both]} s"
echo "   QDevice:  every link cut -> exactly one quorate ${T[qd_cut]} s (${winner:-?}); healed -> both quorate ${T[qd_heal]} s;"
echo "             bismuth powered off -> tartanpion alone ${T[qd_off]} s, quorate throughout; back -> ${T[qd_on]} s;"
echo "             lone cold start -> quorate ${T[qd_cold]} s after power-on; peer joins ${T[qd_both]} s;"
echo "             qnetd powered off -> both quorate throughout, the device's vote dropped after ${T[qd_qnetd_off]} s; back -> vote again ${T[qd_qnetd_back]} s"
((failed == 0))
