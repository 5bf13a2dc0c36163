#!/bin/bash
# Life after setup on the lab's real corosync (issue 17): a lone node guarded, a node removed for
# good, its reinstall rejoined. Called by tests/lab/e2e.sh (its own fresh lab); also runs alone.
#  - two_node.yml: a two-node cluster; both nodes powered off; tartanpion powered on alone ->
#    blocked (wait_for_all), /etc/pve read-only;
#  - bismuth powered on (its corosync stopped so the two never meet): lone_node.yml
#    -e peer_powered_off=bismuth refused (bismuth answers), nothing changed, still blocked;
#    bismuth powered off: lone_node.yml accepted -> quorate, /etc/pve writable;
#  - remove_node.yml -e node=bismuth -> one node in the nodelist, no two_node, still quorate;
#  - reinstall bismuth (new host key, no cluster) -> two_node.yml -> two members, quorate,
#    2Node on both; again: changed=0. Then `down` leaves nothing.
# Every wait is bounded; the trap takes the lab down. Exit status: failed checks (0: all pass).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
cd "$repo"
LOGS=$(mktemp -d /tmp/pve2node-life-e2e.XXXXXX)
ANSIBLE_TIMEOUT_S=${ANSIBLE_TIMEOUT_S:-240}
t_start=$EPOCHREALTIME
nodelist() { n1 grep -E '^ *name:' /etc/pve/corosync.conf | awk '{ print $2 }' | paste -sd' '; }
conf_sum() { n1 sha256sum /etc/pve/corosync.conf | awk '{ print $1 }'; }
# lone_start: both nodes off, tartanpion powered on alone; true once it is blocked (<= 15 s)
lone_start() {
  "$L" power-off pve2 >/dev/null
  "$L" power-off pve1 >/dev/null
  "$L" power-on pve1 >/dev/null
  lab_wait pve1 blocked 15
}
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

echo "== life e2e ($LAB)"
"$L" down >/dev/null
"$L" up >/dev/null
t0=$EPOCHREALTIME
play two_node pve2node.cluster.two_node
T[setup]=$(elapsed "$t0")
check_eq "two_node.yml: exit 0 (${T[setup]} s)" 0 "$play_rc"
for n in pve1 pve2; do
  check "$n: 2 members, 2Node, quorate (<= 30 s)" bash -c "'$L' wait $n members=2 30 && '$L' wait $n flag=2Node 10 && '$L' wait $n quorate 10"
done

echo "-- both powered off, tartanpion powered on alone"
check "tartanpion alone after a cold start: blocked (wait_for_all, <= 15 s)" lone_start
check_has "tartanpion: Activity blocked" "Activity blocked" "$(n1 timeout 5 corosync-quorumtool -s 2>&1 || true)"
check "tartanpion: /etc/pve read-only (<= 10 s)" lab_wait pve1 ro 10
run_rc out err rc pve1 bash -c 'echo x >/etc/pve/life-e2e.txt'
check_has "tartanpion: a write to /etc/pve is refused" "Permission denied" "$err"

echo "-- lone_node.yml while bismuth is up (powered on, its corosync stopped): refused"
# tartanpion's corosync stopped while bismuth boots, so the two never meet: tartanpion stays
# blocked with its peer powered on and answering on every link
"$L" stop-corosync pve1 >/dev/null
"$L" power-on pve2 >/dev/null
"$L" stop-corosync pve2 >/dev/null
"$L" start-corosync pve1 >/dev/null
check "tartanpion blocked, bismuth up (<= 15 s)" lab_wait pve1 blocked 15
"$L" ssh-reset >/dev/null
sum0=$(conf_sum)
play lone_up pve2node.cluster.lone_node -l tartanpion -e peer_powered_off=bismuth
check_eq "lone_node.yml with bismuth up: fails (exit 2)" "2" "$play_rc"
check_has "lone_node.yml with bismuth up: names bismuth in its refusal" "bismuth" "$(grep -E '^fatal' <<<"$play_out")"
check_eq "refused: changed=0" 0 "$(recap_changed)"
check_eq "refused: corosync.conf untouched" "$sum0" "$(conf_sum)"
check_eq "refused: tartanpion still blocked" 2 "$(qrc pve1)"
echo "   refusal: $(grep -E '^fatal' <<<"$play_out" | sed 's/.*"msg": //' | cut -c1-220)"

echo "-- bismuth powered off: lone_node.yml accepted"
"$L" power-off pve2 >/dev/null
"$L" ssh-reset >/dev/null
t0=$EPOCHREALTIME
play lone pve2node.cluster.lone_node -e peer_powered_off=bismuth
T[lone]=$(elapsed "$t0")
check_eq "lone_node.yml with bismuth off: exit 0 (${T[lone]} s)" 0 "$play_rc"
check_eq "lone_node.yml: changed=1" 1 "$(recap_changed)"
check_eq "tartanpion quorate" 0 "$(qrc pve1)"
check "tartanpion: /etc/pve writable (<= 10 s)" lab_wait pve1 rw 10
check "tartanpion: a write to /etc/pve works" n1 bash -c 'echo lone >/etc/pve/life-e2e.txt'

echo "-- remove_node.yml -e node=bismuth"
t0=$EPOCHREALTIME
play remove pve2node.cluster.remove_node -e node=bismuth
T[remove]=$(elapsed "$t0")
check_eq "remove_node.yml: exit 0 (${T[remove]} s)" 0 "$play_rc"
check_eq "one node in the nodelist" tartanpion "$(nodelist)"
check_eq "two_node gone from /etc/pve/corosync.conf" 0 "$(n1 grep -c two_node /etc/pve/corosync.conf || true)"
check "the copy in /etc/corosync matches (<= 10 s)" wait_for 10 n1 cmp /etc/pve/corosync.conf /etc/corosync/corosync.conf
check "tartanpion still quorate, /etc/pve writable" bash -c "'$L' wait pve1 quorate 10 && '$L' wait pve1 rw 10"
check "/etc/pve/nodes/bismuth removed" n1 test ! -e /etc/pve/nodes/bismuth
check_lacks "no 2Node flag any more" "2Node" " $(flags pve1) "

echo "-- reinstall bismuth, two_node.yml rejoins it"
"$L" reinstall pve2 >/dev/null
"$L" ssh-reset >/dev/null
t0=$EPOCHREALTIME
play rejoin pve2node.cluster.two_node
T[rejoin]=$(elapsed "$t0")
check_eq "two_node.yml with the reinstalled bismuth: exit 0 (${T[rejoin]} s)" 0 "$play_rc"
[[ $play_rc == 0 ]] || tail -n 30 <<<"$play_out" | sed 's/^/       | /'
for n in pve1 pve2; do
  check "$n: 2 members, 2Node, quorate (<= 30 s)" bash -c "'$L' wait $n members=2 30 && '$L' wait $n flag=2Node 10 && '$L' wait $n quorate 10"
done
check_eq "nodelist: both again" "bismuth tartanpion" "$(nodelist)"
check "bismuth: /etc/pve writable, the cluster's files (<= 15 s)" bash -c "'$L' wait pve2 rw 15 && [[ \$('$L' exec pve2 cat /etc/pve/life-e2e.txt) == lone ]]"
play again pve2node.cluster.two_node
check_eq "two_node.yml again: exit 0, changed=0" "0 0" "$play_rc $(recap_changed)"

echo "== life e2e: $passed passed, $failed failed in $(elapsed "$t_start") s"
echo "   measured: two_node.yml ${T[setup]} s, lone_node.yml ${T[lone]} s, remove_node.yml ${T[remove]} s, rejoin ${T[rejoin]} s"
((failed < 100)) && exit "$failed" || exit 100
