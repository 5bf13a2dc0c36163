#!/bin/bash
# The lab's end-to-end suite: brings the two-node lab up, proves Ansible reaches each node,
# builds a cluster with the pvecm stand-in on real corosync, checks quorum, the shared and
# quorum-guarded /etc/pve, config propagation (two_node), peer loss with and without two-node
# mode, a dead FUSE mount, and that `down` leaves nothing; then playbooks_e2e.sh (the playbooks
# on a fresh lab). Always tears down (trap).
# Every wait is bounded. Exit status: number of failed checks (capped), 0 when all pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
t_start=$EPOCHREALTIME
qrc() { local rc=0; "$L" exec "$1" timeout 5 corosync-quorumtool -s >/dev/null 2>&1 || rc=$?; echo "$rc"; }
quorate() { [[ $(qrc "$1") == 0 ]]; }
blocked() { [[ $(qrc "$1") == 2 ]]; }
# shellcheck disable=SC2016 # awk programs
pve_mode() { "$L" exec "$1" awk '$5 == "/etc/pve" { split($6, o, ","); m = o[1] } END { print m }' /proc/self/mountinfo; }
pve_rw() { [[ $(pve_mode "$1") == rw ]]; }
pve_ro() { [[ $(pve_mode "$1") == ro ]]; }

cleanup() {
  local rc=$?
  trap - EXIT
  "$L" down >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== lab e2e ($LAB)"
"$L" down
t0=$EPOCHREALTIME
"$L" up
t_up=$(elapsed "$t0")
check_has "up again: idempotent" "already up" "$("$L" up 2>&1)"
check "status: exit 0 when up" "$L" status

echo "-- Ansible reaches each node for real (ssh inside its namespaces)"
t0=$EPOCHREALTIME
out=$("$L" ansible pve -m command -a hostname 2>&1) || true
t_ansible=$(elapsed "$t0")
check_has "tartanpion answers with its own hostname" "tartanpion | CHANGED | rc=0 >>
tartanpion" "$out"
check_has "bismuth answers with its own hostname" "bismuth | CHANGED | rc=0 >>
bismuth" "$out"
out=$("$L" ansible pve -m command -a "ip -o -4 addr show dev eth0" 2>&1) || true
check_has "tartanpion's task runs in its network namespace" "tartanpion | CHANGED | rc=0 >>
2: eth0    inet 10.99.0.1/24" "$out"
check_has "bismuth's task runs in its network namespace" "bismuth | CHANGED | rc=0 >>
2: eth0    inet 10.99.0.2/24" "$out"

echo "-- nodes before any cluster"
check_eq "seed-like /etc/hosts on tartanpion" "127.0.0.1 localhost.localdomain localhost
192.0.2.1 tartanpion.elao.local tartanpion
192.0.2.2 bismuth.elao.local bismuth" "$(n1 head -n 3 /etc/hosts)"
check "/etc/pve does not exist on the host" test ! -e /etc/pve
check "/etc/pve is a FUSE mount in each node" bash -c "[[ \$('$L' exec pve1 /usr/local/sbin/pve-cluster status) == *healthy* && \$('$L' exec pve2 /usr/local/sbin/pve-cluster status) == *healthy* ]]"
run_rc out err rc pve2 pvecm status
check_eq "pvecm status outside a cluster: exit 255" 255 "$rc"
check_eq "pvecm status outside a cluster: PVE 8 message" "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?" "$err"

echo "-- pvecm create on tartanpion"
run_rc out err rc pve1 pvecm create elao --link0 10.99.0.1
check_eq "create: exit 0" 0 "$rc"
check_has "create: prints like Proxmox" "Writing corosync config to /etc/pve/corosync.conf
Restart corosync and cluster filesystem" "$out"
check "create: tartanpion quorate alone" wait_for 15 quorate pve1
expected_conf=$(cat <<'CONF'
logging {
  debug: off
  to_syslog: yes
}

nodelist {
  node {
    name: tartanpion
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 10.99.0.1
  }
}

quorum {
  provider: corosync_votequorum
}

totem {
  cluster_name: elao
  config_version: 1
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  link_mode: passive
  secauth: on
  version: 2
}
CONF
)
check_eq "create: /etc/pve/corosync.conf in the PVE 8 writer layout" "$expected_conf" "$(n1 cat /etc/pve/corosync.conf)"
check "create: corosync.conf copied to /etc/corosync" n1 cmp /etc/pve/corosync.conf /etc/corosync/corosync.conf
run_rc out err rc pve1 pvecm create elao --link0 10.99.0.1
check_eq "create again: exit 255 and Proxmox's message" "255 cluster config '/etc/pve/corosync.conf' already exists" "$rc $err"
run_rc out err rc pve2 pvecm status
check_eq "bismuth still outside (its own /etc/pve)" 255 "$rc"

run_rc out err rc pve2 setsid pvecm add 10.99.0.1 --link0 10.99.0.2
check_eq "add without use_ssh: password prompt, fails fast without a tty" "Please enter superuser (root) password for '10.99.0.1': |255" "$out|$rc"
p_before=$(cat "$LAB/nodes/pve1/run/lab/bindfs.pid")
check "pve-cluster start on a healthy node: exit 0" n1 /usr/local/sbin/pve-cluster start
check_eq "pve-cluster start on a healthy node: same FUSE process" "$p_before" "$(cat "$LAB/nodes/pve1/run/lab/bindfs.pid")"
# pve2node's run kills the command's process group once it exits (pvecm create ends with a
# pve-cluster restart): the watcher must have left that group before `start` returns.
n1 setsid bash -c '/usr/local/sbin/pve-cluster restart >/dev/null; kill -KILL -$$' >/dev/null 2>&1 || true
sleep 0.3
check_has "pve-cluster watcher survives a kill of the starter's process group" "watcher running" "$(n1 /usr/local/sbin/pve-cluster status 2>&1)"

echo "-- pvecm add on bismuth (use_ssh: real ssh to tartanpion)"
t0=$EPOCHREALTIME
run_rc out err rc pve2 pvecm add 10.99.0.1 --link0 10.99.0.2 --use_ssh 1
t_join=$(elapsed "$t0")
check_eq "add: exit 0" 0 "$rc"
check_has "add: success line" "successfully added node 'bismuth' to cluster." "$out"
check "both quorate" wait_for 20 bash -c "[[ \$('$L' exec pve1 timeout 5 corosync-quorumtool -s 2>&1) == *'Nodes:            2'* ]] && [[ \$('$L' exec pve2 timeout 5 corosync-quorumtool -s 2>&1) == *'Nodes:            2'* ]]"
for n in pve1 pve2; do
  run_rc out err rc "$n" corosync-quorumtool -s
  check_eq "$n: corosync-quorumtool -s exit 0" 0 "$rc"
  check_has "$n: quorate with 2 members" "Nodes:            2" "$out"
  check_has "$n: Quorate: Yes" "Quorate:          Yes" "$out"
  check_has "$n: Total votes 2, quorum 2" "Total votes:      2
Quorum:           2  
Flags:            Quorate " "$out"
done
run_rc out err rc pve1 pvecm status
check_has "pvecm status: Cluster information block (printf %-17s)" "Cluster information
-------------------
Name:             elao
Config Version:   2
Transport:        knet
Secure auth:      on

Quorum information" "$out"
check_has "pvecm status: membership by address, local marked" "0x00000001          1 10.99.0.1 (local)
0x00000002          1 10.99.0.2" "$out"
run_rc out err rc pve2 pvecm nodes
check_eq "pvecm nodes on bismuth" "
Membership information
----------------------
    Nodeid      Votes Name
         1          1 tartanpion
         2          1 bismuth (local)" "$out"
check_has "corosync.conf: nodes sorted by name, version 2" "nodelist {
  node {
    name: bismuth
    nodeid: 2
    quorum_votes: 1
    ring0_addr: 10.99.0.2
  }
  node {
    name: tartanpion" "$(n1 cat /etc/pve/corosync.conf)"
check "tartanpion's /etc/corosync follows /etc/pve (version 2)" wait_for 10 bash -c "'$L' exec pve1 grep -q 'config_version: 2' /etc/corosync/corosync.conf"
check "/etc/pve writable on both" wait_for 10 bash -c "[[ \$('$L' exec pve1 awk '\$5 == \"/etc/pve\" { print \$6 }' /proc/self/mountinfo) == rw* && \$('$L' exec pve2 awk '\$5 == \"/etc/pve\" { print \$6 }' /proc/self/mountinfo) == rw* ]]"
n1 bash -c 'echo from-tartanpion >/etc/pve/lab-test.txt'
check_eq "/etc/pve shared: written on tartanpion, read on bismuth" from-tartanpion "$(n2 cat /etc/pve/lab-test.txt)"
n2 bash -c 'echo from-bismuth >/etc/pve/lab-test.txt'
check_eq "/etc/pve shared: and back" from-bismuth "$(n1 cat /etc/pve/lab-test.txt)"
run_rc out err rc pve2 chmod 0644 /etc/pve/lab-test.txt
check "/etc/pve refuses chmod (like pmxcfs)" test "$rc" != 0
run_rc out err rc pve2 pvecm add 10.99.0.1 --link0 10.99.0.2 --use_ssh 1
check_eq "add again: Proxmox's joinable checks (stdout)" "detected the following error(s):
* authentication key '/etc/corosync/authkey' already exists
* cluster config '/etc/pve/corosync.conf' already exists
* corosync is already running, is this node already in a cluster?!" "$out"
check_eq "add again: final line on stderr" "Check if node may join a cluster failed!" "$err"

echo "-- peer loss without two-node mode"
t0=$EPOCHREALTIME
"$L" kill-corosync pve2 >/dev/null
if wait_for 30 blocked pve1; then
  t_detect=$(elapsed "$t0")
  ok "tartanpion not quorate after bismuth's corosync crashed (${t_detect} s)"
else
  t_detect=timeout
  bad "tartanpion not quorate after bismuth's corosync crashed"
fi
run_rc out err rc pve1 pvecm status
check_eq "pvecm status exit 2 when not quorate" 2 "$rc"
check_has "Activity blocked" "Quorum:           2 Activity blocked
Flags:            " "$out"
if wait_for 10 pve_ro pve1; then t_ro=$(elapsed "$t0"); ok "/etc/pve read-only on tartanpion (${t_ro} s)"; else t_ro=timeout; bad "/etc/pve read-only on tartanpion"; fi
run_rc out err rc pve1 bash -c 'echo x >/etc/pve/lab-test.txt'
check_has "write refused on tartanpion" "Read-only file system" "$err"
"$L" start-corosync pve2 >/dev/null
check "both quorate again after bismuth's corosync restart" wait_for 30 bash -c "[[ \$('$L' exec pve1 timeout 5 corosync-quorumtool -s 2>&1) == *'Nodes:            2'* ]]"
check "/etc/pve writable again on tartanpion" wait_for 10 pve_rw pve1

echo "-- two_node through /etc/pve/corosync.conf (pmxcfs-like propagation + corosync-cfgtool -R)"
n1 bash -c 'sed -e "s/config_version: 2/config_version: 3/" -e "s/  provider: corosync_votequorum/&\n  two_node: 1/" /etc/pve/corosync.conf >/etc/pve/corosync.conf.new && mv /etc/pve/corosync.conf.new /etc/pve/corosync.conf'
check "both nodes' /etc/corosync at version 3" wait_for 15 bash -c "'$L' exec pve1 grep -q 'config_version: 3' /etc/corosync/corosync.conf && '$L' exec pve2 grep -q 'config_version: 3' /etc/corosync/corosync.conf"
check "two_node live on both (2Node Quorate WaitForAll)" wait_for 15 bash -c "[[ \$('$L' exec pve1 corosync-quorumtool -s 2>&1) == *'Flags:            2Node Quorate WaitForAll '* && \$('$L' exec pve2 corosync-quorumtool -s 2>&1) == *'Flags:            2Node Quorate WaitForAll '* ]]"
t0=$EPOCHREALTIME
"$L" kill-corosync pve2 >/dev/null
# the survivor must notice the loss (Nodes: 1) and stay quorate
if wait_for 30 bash -c "[[ \$('$L' exec pve1 corosync-quorumtool -s 2>&1) == *'Nodes:            1'* ]]"; then
  t_detect2=$(elapsed "$t0")
  ok "two_node: tartanpion sees bismuth gone (${t_detect2} s)"
else
  t_detect2=timeout
  bad "two_node: tartanpion sees bismuth gone"
fi
run_rc out err rc pve1 pvecm status
check_eq "two_node: survivor still quorate (exit 0)" 0 "$rc"
check_has "two_node: survivor flags" "Quorate:          Yes" "$out"
check_has "two_node: survivor quorum 1" "Quorum:           1  
Flags:            2Node Quorate WaitForAll " "$out"
sleep 1.5
check "two_node: /etc/pve still writable on the survivor" pve_rw pve1
check "two_node: write works on the survivor" n1 bash -c 'echo survivor >/etc/pve/lab-test.txt'
"$L" start-corosync pve2 >/dev/null
check "bismuth back" wait_for 30 bash -c "[[ \$('$L' exec pve2 timeout 5 corosync-quorumtool -s 2>&1) == *'Nodes:            2'* ]]"

echo "-- dead FUSE process: the seed's stale /etc/pve"
"$L" kill-fuse pve2 >/dev/null
run_rc out err rc pve2 stat /etc/pve
check_has "stat /etc/pve: Transport endpoint is not connected" "Transport endpoint is not connected" "$err"
# shellcheck disable=SC2016
check "the stale mount is still in the mount table (fuse)" n2 awk '$5 == "/etc/pve" { for (i = 7; $i != "-"; i++) ; if ($(i + 1) == "fuse") f = 1 } END { exit !f }' /proc/self/mountinfo
run_rc out err rc pve2 /usr/local/sbin/pve-cluster start
check_eq "pve-cluster start on the stale mount fails like the seed's" "1 fuse: failed to access mountpoint /etc/pve: Transport endpoint is not connected
[main] crit: fuse_mount error: Transport endpoint is not connected" "$rc $err"
check "umount -f then pve-cluster start heals it" n2 bash -c 'umount -f /etc/pve && /usr/local/sbin/pve-cluster start && /usr/local/sbin/pve-cluster start && stat /etc/pve >/dev/null && test -r /etc/pve/.members'
check_eq "healed /etc/pve is the cluster's again" survivor "$(n2 cat /etc/pve/lab-test.txt 2>&1)"

echo "-- down leaves nothing"
mapfile -t pids < <(lab_pids)
t0=$EPOCHREALTIME
"$L" down
t_down=$(elapsed "$t0")
check "no /run/netns left by the lab" bash -c '! mountpoint -q /run/netns || ls -A /run/netns | grep -q .'
check_nothing_left "" "${pids[@]}"

echo "-- a crashed lab: down still leaves nothing, and is idempotent"
"$L" up >/dev/null
mapfile -t pids < <(lab_pids)
# A failed run: pve2's anchor (its mount and UTS namespace) and pve1's sshd die uncleanly.
kill -KILL "$(cat "$LAB/nodes/pve2/anchor.pid")" "$(cat "$LAB/nodes/pve1/run/sshd.pid")" 2>/dev/null || true
rc=0; "$L" status >/dev/null 2>&1 || rc=$?
check_eq "status of a broken lab: exit 1" 1 "$rc"
"$L" down >/dev/null
check_nothing_left " after a crash" "${pids[@]}"
check "down again: idempotent" "$L" down
rc=0; "$L" status >/dev/null 2>&1 || rc=$?
check_eq "status when down: exit 3" 3 "$rc"

echo "== lab e2e: $passed passed, $failed failed in $(elapsed "$t_start") s"
echo "   measured: up ${t_up} s, ansible ad-hoc (2 nodes) ${t_ansible} s, join ${t_join} s, peer loss detected ${t_detect} s (read-only ${t_ro} s), with two_node ${t_detect2} s, down ${t_down} s"

# the playbooks on a fresh lab (their own up/down)
pb_rc=0
"$here/playbooks_e2e.sh" || pb_rc=$?
((failed == 0 && pb_rc == 0))
