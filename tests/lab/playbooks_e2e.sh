#!/bin/bash
# The playbooks end-to-end on the lab (called by tests/lab/e2e.sh, also runs alone): on a fresh
# lab, playbooks/two_node.yml in check mode (plan shown, nothing changed), for real, and again
# (changed=0 for every task), with the real readiness window after create (the join waits);
# bismuth starts with Debian's /etc/hosts, so its cluster filesystem can start only after
# hosts_pin; peer loss with and without two-node mode; a dead /etc/pve FUSE mount healed by
# playbooks/recover.yml over a fresh ssh connection (root's authorized_keys is then in the dead
# /etc/pve: the playbooks' key in ~/.ssh/authorized_keys2 lets it in); teardown leaving nothing. Every check reads the real
# state of the nodes (files, corosync-quorumtool, mount table), not only Ansible's recap.
# Always tears down (trap), but with PVE2NODE_LAB_KEEP=1 (e2e.sh) a lab that passed every check
# stays up, a two-node cluster, for qdevice_e2e.sh (which then checks the teardown).
# Every wait and every Ansible run is bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
cd "$repo"
LOGS=$(mktemp -d /tmp/pve2node-playbooks-e2e.XXXXXX)
ANSIBLE_TIMEOUT_S=${ANSIBLE_TIMEOUT_S:-240}
t_start=$EPOCHREALTIME
# play NAME ARGS...: ansible-playbook (or `ansible` when NAME starts with adhoc-) against the
# lab, bounded; output in $LOGS/NAME.log; sets $play_rc and $play_out.
# recap_of HOST: the PLAY RECAP line of HOST in $play_out, compact ("ok=N changed=N ... failed=N").
recap_of() { awk -v h="$1" '$1 == h && $2 == ":" { print $3, $4, $6 }' <<<"$play_out"; }
# changed_tasks: "task@host" of every result reported changed in $play_out, sorted, comma-separated.
changed_tasks() {
  awk '/^TASK \[/ { t = $0; sub(/^TASK \[/, "", t); sub(/\] \**$/, "", t) }
       /^changed: \[/ { print t "@" substr($2, 2, length($2) - 2) }' <<<"$play_out" | sort | paste -sd, | sed 's/,/, /g'
}
# corosync_running NODE: a corosync process lives in NODE's network namespace.
corosync_running() {
  local p c
  for p in $(ip netns pids "${PVE2NODE_LAB_NS:-}$1" 2>/dev/null); do
    c=""
    { read -r c <"/proc/$p/comm"; } 2>/dev/null || continue
    [[ $c == corosync ]] && return 0
  done
  return 1
}
conf_version() { "$L" exec "$1" bash -c ". /usr/local/sbin/lab-lib.sh; config_version $2"; }
# mount_type NODE PATH: the filesystem type mounted at exactly PATH in NODE (empty if none).
# shellcheck disable=SC2016 # awk program
mount_type() { "$L" exec "$1" awk -v p="$2" '$5 == p { for (i = 7; $i != "-"; i++) ; t = $(i + 1) } END { print t }' /proc/self/mountinfo; }

KEEP=${PVE2NODE_LAB_KEEP:-0}
cleanup() {
  local rc=$?
  trap - EXIT
  [[ $KEEP == 1 && $rc == 0 ]] || "$L" down >/dev/null 2>&1 || true
  rm -rf "$LOGS"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== playbooks e2e ($LAB)"
"$L" down >/dev/null
"$L" up >/dev/null

echo "-- two_node.yml --check --diff on a fresh lab: the plan, nothing changed"
hosts1=$(n1 cat /etc/hosts)
hosts2=$(n2 cat /etc/hosts)
stat_before=$(n1 stat -c '%i %s %Y' /etc/hosts; n2 stat -c '%i %s %Y' /etc/hosts)
play check pve2node.cluster.two_node --check --diff
check_eq "check mode: exit 0" 0 "$play_rc"
check_eq "check mode recap tartanpion (create and its hosts change planned)" "ok=17 changed=2 failed=0" "$(recap_of tartanpion)"
check_eq "check mode recap bismuth (hosts change, pve-cluster start and join planned)" "ok=14 changed=3 failed=0" "$(recap_of bismuth)"
check_has "check mode: bismuth's /etc/pve start planned (its pmxcfs refused to start)" "/etc/pve mounted and healthy@bismuth" "$(changed_tasks)"
check_lacks "check mode: tartanpion's healthy /etc/pve left alone" "/etc/pve mounted and healthy@tartanpion" "$(changed_tasks)"
check_has "check mode: hosts diff shown for tartanpion" "-192.0.2.1 tartanpion.elao.local tartanpion
+192.0.2.1 tartanpion.elao.local" "$play_out"
check_has "check mode: the pinned line shown" "+10.99.0.1 tartanpion" "$play_out"
check_has "check mode: planned create argv shown" '"would create cluster '"'elao'"'",
        "argv: pvecm create elao --link0 10.99.0.1 --link1 10.99.1.1"' "$play_out"
check_has "check mode: planned join argv shown" '"argv: pvecm add 10.99.0.1 --link0 10.99.0.2 --link1 10.99.1.2 --use_ssh 1"' "$play_out"
check_has "check mode: two_node step announced" "two_node in /etc/pve/corosync.conf" "$play_out"
check_eq "check mode: tartanpion's /etc/hosts byte-identical" "$hosts1" "$(n1 cat /etc/hosts)"
check_eq "check mode: bismuth's /etc/hosts byte-identical" "$hosts2" "$(n2 cat /etc/hosts)"
check_eq "check mode: /etc/hosts not rewritten (inode, size, mtime)" "$stat_before" "$(n1 stat -c '%i %s %Y' /etc/hosts; n2 stat -c '%i %s %Y' /etc/hosts)"
check_eq "check mode: no backup of /etc/hosts made" "" "$(n1 find /etc -maxdepth 1 -name 'hosts.*~'; n2 find /etc -maxdepth 1 -name 'hosts.*~')"
check "check mode: no /etc/pve/corosync.conf on either node" bash -c "'$L' exec pve1 test ! -e /etc/pve/corosync.conf && '$L' exec pve2 test ! -e /etc/pve/corosync.conf"
check "check mode: no /etc/corosync/corosync.conf nor authkey on either node" bash -c "'$L' exec pve1 test ! -e /etc/corosync/corosync.conf -a ! -e /etc/corosync/authkey && '$L' exec pve2 test ! -e /etc/corosync/corosync.conf -a ! -e /etc/corosync/authkey"
check_eq "check mode: bismuth's /etc/pve still not mounted" unmounted "$(n2 bash -c '. /usr/local/sbin/lab-lib.sh; pve_state /etc/pve')"
check "check mode: no ~/.ssh/authorized_keys2 written" bash -c "'$L' exec pve1 test ! -e /root/.ssh/authorized_keys2 && '$L' exec pve2 test ! -e /root/.ssh/authorized_keys2"
check "check mode: corosync not running on either node" bash -c "! '$L' exec pve1 /usr/local/sbin/lab-corosync status && ! '$L' exec pve2 /usr/local/sbin/lab-corosync status"
if corosync_running pve1 || corosync_running pve2; then bad "check mode: no corosync process in the nodes' namespaces"; else ok "check mode: no corosync process in the nodes' namespaces"; fi

echo "-- two_node.yml --diff: the real run"
check_has "before: bismuth's pve-cluster refuses to start (name only on 127.0.1.1)" "Unable to resolve node name 'bismuth' to a non-loopback IP address" "$(n2 /usr/local/sbin/pve-cluster start 2>&1)"
t0=$EPOCHREALTIME
play run1 pve2node.cluster.two_node --diff
t_run1=$(elapsed "$t0")
check_eq "run: exit 0" 0 "$play_rc"
check_eq "run: recap tartanpion" "ok=20 changed=4 failed=0" "$(recap_of tartanpion)"
check_eq "run: recap bismuth" "ok=15 changed=4 failed=0" "$(recap_of bismuth)"
check_eq "run: changed tasks" "/etc/pve mounted and healthy@bismuth, Create cluster elao@tartanpion, Join cluster elao through 10.99.0.1@bismuth, Short hostname -> private IP in /etc/hosts@bismuth, Short hostname -> private IP in /etc/hosts@tartanpion, The controller's login key also in ~/.ssh/authorized_keys2 (outside /etc/pve)@bismuth, The controller's login key also in ~/.ssh/authorized_keys2 (outside /etc/pve)@tartanpion, two_node in the cluster configuration@tartanpion" "$(changed_tasks)"
check_has "run: create argv shown" '"argv: pvecm create elao --link0 10.99.0.1 --link1 10.99.1.1"' "$play_out"
check_has "run: join argv shown" '"argv: pvecm add 10.99.0.1 --link0 10.99.0.2 --link1 10.99.1.2 --use_ssh 1"' "$play_out"
check_eq "run: tartanpion's /etc/hosts: public line keeps the FQDN, short name pinned" "127.0.0.1 localhost.localdomain localhost
192.0.2.1 tartanpion.elao.local
10.99.0.1 tartanpion" "$(n1 grep -vE '^(#|$|::1|f[ef]0)' /etc/hosts)"
check_eq "run: bismuth's /etc/hosts: Debian's 127.0.1.1 line gone (neither name on loopback), short name pinned" "127.0.0.1	localhost
10.99.0.2	bismuth" "$(n2 grep -vE '^(#|$|::1|f[ef]0)' /etc/hosts)"
check_has "run: bismuth's /etc/pve came up after hosts_pin" "healthy" "$(n2 /usr/local/sbin/pve-cluster status 2>&1)"
check_has "run: bismuth's pmxcfs resolved its private address" '"ip": "10.99.0.2"' "$(n2 cat /etc/pve/.members)"
check "run: the join waited for the readiness window (bismuth in the cluster, /etc/pve writable)" bash -c "[[ \$('$L' exec pve2 cat /etc/pve/.members) == *'\"quorate\": 1'* ]]"
key=$(cat "$LAB/ssh/id_ed25519.pub")
for n in pve1 pve2; do
  check_eq "run: $n: root's authorized_keys is a symlink into /etc/pve/priv" /etc/pve/priv/authorized_keys "$("$L" exec "$n" readlink /root/.ssh/authorized_keys)"
  check_eq "run: $n: the controller's key in ~/.ssh/authorized_keys2 (once)" "$key" "$("$L" exec "$n" cat /root/.ssh/authorized_keys2)"
done
check_eq "run: the resolver: tartanpion -> 10.99.0.1 on tartanpion, bismuth -> 10.99.0.2 on bismuth" "10.99.0.1 10.99.0.2" \
  "$(n1 getent hosts tartanpion | awk '{ print $1 }') $(n2 getent hosts bismuth | awk '{ print $1 }')"
check "run: a backup of /etc/hosts kept on each node" bash -c "[[ -n \$('$L' exec pve1 find /etc -maxdepth 1 -name 'hosts.*~') && -n \$('$L' exec pve2 find /etc -maxdepth 1 -name 'hosts.*~') ]]"
conf=$(n1 cat /etc/pve/corosync.conf)
check_eq "run: /etc/pve/corosync.conf the same on both nodes" "$conf" "$(n2 cat /etc/pve/corosync.conf)"
check_has "run: corosync.conf quorum section has two_node: 1" "quorum {
  provider: corosync_votequorum
  two_node: 1
}" "$conf"
check_eq "run: config_version 3 (create 1, join 2, two_node 3) in /etc/pve and both /etc/corosync" "3 3 3" \
  "$(conf_version pve1 /etc/pve/corosync.conf) $(conf_version pve1 /etc/corosync/corosync.conf) $(conf_version pve2 /etc/corosync/corosync.conf)"
for n in pve1 pve2; do
  run_rc out err rc "$n" timeout 5 corosync-quorumtool -s
  check_eq "run: $n corosync-quorumtool -s exit 0" 0 "$rc"
  check_has "run: $n quorate with 2 nodes" "Nodes:            2" "$out"
  check_has "run: $n flags 2Node Quorate WaitForAll" "Flags:            2Node Quorate WaitForAll " "$out"
done
check_has "run: the assert's summary" "elao: quorate, 2 nodes, flags 2Node Quorate WaitForAll, config_version 3" "$play_out"

echo "-- two_node.yml again: changed=0 for every task"
sums=$(n1 sha256sum /etc/hosts /etc/pve/corosync.conf /etc/corosync/corosync.conf; n2 sha256sum /etc/hosts /etc/corosync/corosync.conf)
t0=$EPOCHREALTIME
play run2 pve2node.cluster.two_node --diff
t_run2=$(elapsed "$t0")
check_eq "again: exit 0" 0 "$play_rc"
check_eq "again: recap tartanpion changed=0" "ok=20 changed=0 failed=0" "$(recap_of tartanpion)"
check_eq "again: recap bismuth changed=0" "ok=15 changed=0 failed=0" "$(recap_of bismuth)"
check_eq "again: no task reported changed" "" "$(changed_tasks)"
check_has "again: create says why not" "this node is already a member of cluster 'elao'" "$play_out"
check_eq "again: /etc/hosts and corosync.conf files unchanged on both nodes" "$sums" "$(n1 sha256sum /etc/hosts /etc/pve/corosync.conf /etc/corosync/corosync.conf; n2 sha256sum /etc/hosts /etc/corosync/corosync.conf)"

echo "-- peer loss with two-node mode"
"$L" kill-corosync pve2 >/dev/null
check "two-node: tartanpion sees bismuth gone (members=1, <= 30 s)" lab_wait pve1 members=1 30
sleep 1.5 # the pve-cluster watcher polls every second: let it act on the loss
check_eq "two-node: survivor corosync-quorumtool -s exit 0" 0 "$(qrc pve1)"
check_eq "two-node: survivor flags" "2Node Quorate WaitForAll" "$(flags pve1)"
check_eq "two-node: /etc/pve mounted rw on the survivor" fuse "$(mount_type pve1 /etc/pve)"
check "two-node: /etc/pve rw on the survivor" lab_wait pve1 rw 1
check "two-node: write works on the survivor" n1 bash -c 'echo survivor >/etc/pve/playbooks-e2e.txt'
"$L" start-corosync pve2 >/dev/null
check "bismuth back (members=2, <= 30 s)" lab_wait pve1 members=2 30

echo "-- two-node mode off (cman_two_node state=absent), then peer loss"
play adhoc-off tartanpion -m cman_two_node -a state=absent
check_eq "off: ad-hoc cman_two_node exit 0" 0 "$play_rc"
check_has "off: reported changed" "tartanpion | CHANGED" "$play_out"
check_lacks "off: no two_node line left" "two_node" "$(n1 cat /etc/pve/corosync.conf)"
check "off: config_version 4 on both nodes' /etc/corosync (<= 15 s)" wait_for 15 bash -c "[[ \$('$L' exec pve1 grep -c 'config_version: 4' /etc/corosync/corosync.conf) == 1 && \$('$L' exec pve2 grep -c 'config_version: 4' /etc/corosync/corosync.conf) == 1 ]]"
check_eq "off: flags without 2Node" "Quorate" "$(flags pve1)"
"$L" kill-corosync pve2 >/dev/null
check "off: tartanpion blocked (<= 30 s)" lab_wait pve1 blocked 30
run_rc out err rc pve1 timeout 5 corosync-quorumtool -s
check_eq "off: corosync-quorumtool -s exit 2" 2 "$rc"
check_has "off: Activity blocked" "Quorum:           2 Activity blocked" "$out"
run_rc out err rc pve1 pvecm status
check_eq "off: pvecm status exit 2" 2 "$rc"
check "off: /etc/pve read-only on tartanpion (<= 10 s)" lab_wait pve1 ro 10
run_rc out err rc pve1 bash -c 'echo x >/etc/pve/playbooks-e2e.txt'
check_has "off: write refused (EACCES, like pmxcfs)" "Permission denied" "$err"
check_eq "off: file kept" survivor "$(n1 cat /etc/pve/playbooks-e2e.txt)"

echo "-- two-node mode back on through two_node.yml"
"$L" start-corosync pve2 >/dev/null
check "bismuth back, tartanpion quorate (<= 30 s)" lab_wait pve1 quorate 30
check "bismuth quorate (<= 30 s)" lab_wait pve2 quorate 30
sum_before=$(n1 sha256sum /etc/pve/corosync.conf)
play check2 pve2node.cluster.two_node --check --diff
check_eq "check mode, cluster without two_node: exit 0 (the assert knows it is only planned)" 0 "$play_rc"
check_eq "check mode, cluster without two_node: only the two_node task would change" "two_node in the cluster configuration@tartanpion" "$(changed_tasks)"
check_has "check mode, cluster without two_node: its diff shown" "+  two_node: 1" "$play_out"
check_has "check mode, cluster without two_node: the assert says so" "(two_node planned, check mode)" "$play_out"
check_eq "check mode, cluster without two_node: corosync.conf unchanged" "$sum_before" "$(n1 sha256sum /etc/pve/corosync.conf)"
play run3 pve2node.cluster.two_node
check_eq "on: exit 0" 0 "$play_rc"
check_eq "on: only the two_node task changed" "two_node in the cluster configuration@tartanpion" "$(changed_tasks)"
check_eq "on: config_version 5 in /etc/pve" 5 "$(conf_version pve1 /etc/pve/corosync.conf)"
# bismuth's corosync applies the reload a moment after tartanpion's: poll (bounded)
both_flags() { [[ "$(flags pve1)|$(flags pve2)" == "2Node Quorate WaitForAll|2Node Quorate WaitForAll" ]]; }
wait_for 10 both_flags || true
check_eq "on: flags on both (<= 10 s)" "2Node Quorate WaitForAll|2Node Quorate WaitForAll" "$(flags pve1)|$(flags pve2)"

echo "-- dead /etc/pve FUSE mount healed by recover.yml"
"$L" kill-fuse pve2 >/dev/null
run_rc out err rc pve2 stat /etc/pve
check_has "stale: stat /etc/pve: Transport endpoint is not connected" "Transport endpoint is not connected" "$err"
# a fresh ssh connection, as a new controller run would make: no ControlPersist master left
"$L" ssh-reset >/dev/null
check_eq "stale: no ssh master left to reuse" "" "$(for p in /proc/[0-9]*; do c=""; { read -r c <"$p/comm"; } 2>/dev/null; [[ $c == ssh ]] && grep -qF "$LAB/" "$p/cmdline" 2>/dev/null && echo "${p#/proc/}"; done)"
check "stale: bismuth's authorized_keys is unreadable (in the dead /etc/pve)" n2 bash -c '! cat /root/.ssh/authorized_keys >/dev/null 2>&1'
play recover pve2node.cluster.recover
check_eq "recover: exit 0" 0 "$play_rc"
check_has "recover: bismuth stale -> healthy" '"msg": "bismuth: stale -> healthy"' "$play_out"
check_has "recover: tartanpion left alone" '"msg": "tartanpion: healthy -> healthy"' "$play_out"
check_lacks "recover: no host unreachable" "UNREACHABLE" "$play_out"
check_eq "recover: recap bismuth" "ok=3 changed=1 failed=0" "$(recap_of bismuth)"
check_eq "recover: recap tartanpion" "ok=3 changed=0 failed=0" "$(recap_of tartanpion)"
check_eq "recover: the mount table shows a fuse mount on /etc/pve" fuse "$(mount_type pve2 /etc/pve)"
check "recover: stat /etc/pve works" n2 stat /etc/pve
check "recover: .members readable" n2 test -r /etc/pve/.members
check_eq "recover: the cluster's files are back" survivor "$(n2 cat /etc/pve/playbooks-e2e.txt 2>&1)"
play recover2 pve2node.cluster.recover
check_eq "recover again: nothing to do (changed=0 on both)" "ok=3 changed=0 failed=0|ok=3 changed=0 failed=0" "$(recap_of tartanpion)|$(recap_of bismuth)"

if [[ $KEEP != 1 ]]; then
  echo "-- down leaves nothing"
  mapfile -t pids < <(lab_pids)
  "$L" down >/dev/null
  check_nothing_left "" "${pids[@]}"
fi

echo "== playbooks e2e: $passed passed, $failed failed in $(elapsed "$t_start") s (two_node.yml first run ${t_run1} s, second ${t_run2} s)"
((failed == 0))
