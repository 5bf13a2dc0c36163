#!/bin/bash
# The lab's own commands, checked on the real daemons (called by tests/lab/e2e.sh on its lab,
# a two-node cluster made by hand with two_node on; also runs alone: then it brings a lab up and
# makes that cluster itself, and takes its lab down at the end). Checks: the third node (pve3,
# hostname qnetd, real corosync-qnetd with its CA), link1 and the qnetd links, the inventory's
# group qnetd and link1_ip; cut-link N / heal-link N (only that link), cut-link / heal-link
# (every link between the nodes, both still reach qnetd; with two_node both stay quorate: split
# brain); power-off / power-on of a Proxmox node and of pve3 (links down, every process gone;
# back with its daemons); reinstall (a fresh install: no cluster, fresh /etc/hosts, new host
# key, empty local /etc/pve); the options PVE2NODE_LAB_NO_TRUST=1 and
# PVE2NODE_LAB_INVENTORY_NAMES=alias on a fresh lab (left up for the caller).
# Every wait is bounded. Exit status 0 when all checks pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
t_start=$EPOCHREALTIME
own_lab=0
# reach NODE ADDR: one ping from NODE to ADDR answers within 1 s.
reach() { "$L" exec "$1" ping -n -q -c 1 -W 1 "$2" >/dev/null 2>&1; }
unreach() { ! reach "$@"; }
# tcp_open NODE ADDR PORT
tcp_open() { "$L" exec "$1" nc -z -w 2 "$2" "$3" >/dev/null 2>&1; }
# link_state NODE IFACE: the interface's operstate inside NODE's network namespace.
link_state() { ip -n "${PVE2NODE_LAB_NS:-}$1" -o link show dev "$2" | grep -oE 'state [A-Z]+' | cut -d' ' -f2; }
# link_flags NODE IFACE: the interface's NO-CARRIER and UP flags ("NO-CARRIER,UP", "UP", ...).
link_flags() { ip -n "${PVE2NODE_LAB_NS:-}$1" -o link show dev "$2" | sed 's/^[^<]*<\([^>]*\)>.*/\1/' | tr ',' '\n' | grep -xE 'NO-CARRIER|UP' | paste -sd ,; }
# procs NODE: the command names of every process in NODE's network namespace, sorted.
procs() { for p in $(ip netns pids "${PVE2NODE_LAB_NS:-}$1" 2>/dev/null); do cat "/proc/$p/comm" 2>/dev/null; done | sort | paste -sd ' '; }

cleanup() {
  local rc=$?
  trap - EXIT
  ((own_lab)) && "$L" down >/dev/null 2>&1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== lab infra e2e ($LAB)"
if ! "$L" status >/dev/null 2>&1 || [[ $(qrc pve1) != 0 ]]; then
  echo "-- no lab with a cluster: a fresh lab, a cluster by hand (pvecm create/add), two_node on"
  own_lab=1
  "$L" down >/dev/null
  "$L" up >/dev/null
  n2 bash -c 'echo "10.99.0.2 bismuth" >>/etc/hosts'
  n2 /usr/local/sbin/pve-cluster start
  n1 pvecm create elao --link0 10.99.0.1 >/dev/null
  wait_for 15 bash -c "[[ \$('$L' exec pve1 stat -c %a /etc/pve) == 755 ]]"
  n2 pvecm add 10.99.0.1 --link0 10.99.0.2 --use_ssh 1 >/dev/null
  n1 bash -c 'sed -e "s/config_version: 2/config_version: 3/" -e "s/  provider: corosync_votequorum/&\n  two_node: 1/" /etc/pve/corosync.conf >/etc/pve/corosync.conf.new && mv /etc/pve/corosync.conf.new /etc/pve/corosync.conf'
fi
check "the cluster: both nodes see 2 members, two_node on (<= 30 s)" bash -c "'$L' wait pve1 members=2 30 && '$L' wait pve2 members=2 30 && '$L' wait pve1 flag=2Node 15 && '$L' wait pve2 flag=2Node 15"

echo "-- the third node: qnetd (pve3), real corosync-qnetd"
check_eq "pve3's hostname is qnetd" qnetd "$("$L" exec pve3 hostname)"
check_eq "the name 'qnetd' also selects pve3" qnetd "$("$L" exec qnetd hostname)"
check_eq "pve3's address 10.99.9.3 (on its lo)" "10.99.9.3/32" "$("$L" exec pve3 ip -o -4 addr show dev lo | awk '$4 != "127.0.0.1/8" { print $4 }')"
check "10.99.9.3 exists only in the lab (not on the host)" bash -c "! ip -o addr show | grep -q '10\.99\.9\.3/'"
check_has "corosync-qnetd runs as a real daemon in pve3" "corosync-qnetd" "$(procs pve3)"
check_has "corosync-qnetd-tool -s answers on pve3 (TLS on)" "Supported (client certificate required)" "$("$L" exec pve3 corosync-qnetd-tool -s 2>&1)"
check "its CA exists (corosync-qnetd-certutil -i at up)" "$L" exec pve3 test -s /etc/corosync/qnetd/nssdb/qnetd-cacert.crt
check "its /etc/corosync is the lab's, not the host's" bash -c "test -s '$LAB/nodes/pve3/corosync/qnetd/nssdb/qnetd-cacert.crt' && test ! -e /etc/corosync/qnetd/nssdb/qnetd-cacert.crt"
for n in pve1 pve2; do
  check "$n reaches qnetd's port 5403 (its own link)" tcp_open "$n" 10.99.9.3 5403
done
check "corosync-qdevice is installed for the nodes" "$L" exec pve1 test -x /usr/sbin/corosync-qdevice
check "link1: tartanpion reaches bismuth's 10.99.1.2" reach pve1 10.99.1.2
check "link1: bismuth reaches tartanpion's 10.99.1.1" reach pve2 10.99.1.1
inv=$(cat "$LAB/inventory.ini")
check_has "inventory: group qnetd holds the qnetd host (ssh like the others)" "[qnetd]
qnetd.elao.local ansible_host=10.99.9.3 lab_node=pve3" "$inv"
check_has "inventory: link1_ip per node" "link1_ip=10.99.1.1" "$inv"
check_has "inventory: the lab's qdevice start command" 'qdevice_start_command=["/usr/local/sbin/lab-qdevice", "start"]' "$inv"
out=$("$L" ansible qnetd -m command -a hostname 2>&1) || true
check_has "Ansible reaches the qnetd host over ssh" "qnetd.elao.local | CHANGED | rc=0 >>
qnetd" "$out"

echo "-- cut-link N / heal-link N: only corosync link N"
"$L" cut-link 1 >/dev/null
check "cut-link 1: link1 gone (tartanpion -> 10.99.1.2)" unreach pve1 10.99.1.2
check "cut-link 1: link1 gone (bismuth -> 10.99.1.1)" unreach pve2 10.99.1.1
check "cut-link 1: link0 still there" reach pve1 10.99.0.2
check_eq "cut-link 1: the nodes keep their interface up, without carrier" "NO-CARRIER,UP" "$(link_flags pve1 eth1)"
check_has "status shows the cut" "link1 between pve1 and pve2: CUT" "$("$L" status 2>&1)"
"$L" heal-link 1 >/dev/null
check "heal-link 1: link1 back (<= 5 s)" wait_for 5 reach pve1 10.99.1.2
"$L" cut-link 0 >/dev/null
check "cut-link 0: link0 gone" unreach pve1 10.99.0.2
check "cut-link 0: link1 still there" reach pve1 10.99.1.2
check "cut-link 0: the controller still reaches tartanpion (its own address)" "$L" ssh pve1 true
"$L" heal-link 0 >/dev/null
check "heal-link 0: link0 back (<= 5 s)" wait_for 5 reach pve1 10.99.0.2
check "corosync kept 2 members through the short link0 cut (<= 30 s)" lab_wait pve1 members=2 30

echo "-- cut-link / heal-link: every link between the nodes (two_node: split brain)"
t0=$EPOCHREALTIME
"$L" cut-link >/dev/null
check "cut-link: link0 gone" unreach pve2 10.99.0.1
check "cut-link: link1 gone" unreach pve2 10.99.1.1
check "cut-link: tartanpion still reaches qnetd" tcp_open pve1 10.99.9.3 5403
check "cut-link: bismuth still reaches qnetd" tcp_open pve2 10.99.9.3 5403
if lab_wait pve1 members=1 30 && lab_wait pve2 members=1 30; then
  t_split=$(elapsed "$t0")
  ok "cut-link: each node sees only itself (${t_split} s)"
else
  t_split=timeout
  bad "cut-link: each node sees only itself (<= 30 s)"
fi
check_eq "cut-link with two_node: BOTH stay quorate (split brain)" "0 0" "$(qrc pve1) $(qrc pve2)"
check "cut-link: both nodes still reachable by ssh" bash -c "'$L' ssh pve1 true && '$L' ssh pve2 true"
t0=$EPOCHREALTIME
"$L" heal-link >/dev/null
if lab_wait pve1 members=2 30 && lab_wait pve2 members=2 30; then
  t_merge=$(elapsed "$t0")
  ok "heal-link: one membership of 2 again (${t_merge} s)"
else
  t_merge=timeout
  bad "heal-link: one membership of 2 again (<= 30 s)"
fi
check_eq "heal-link: no cut left" "" "$(find "$LAB" -maxdepth 1 -name 'cut-*')"

echo "-- power-off / power-on of a Proxmox node"
t0=$EPOCHREALTIME
"$L" power-off pve2 >/dev/null
check_eq "power-off: bismuth's links down" "DOWN DOWN DOWN" "$(link_state pve2 eth0) $(link_state pve2 eth1) $(link_state pve2 qnetd)"
check_eq "power-off: no process left in bismuth but its anchor" "sleep" "$(procs pve2)"
live=""
for f in "$LAB"/nodes/pve2/run/lab/corosync.pid "$LAB"/nodes/pve2/run/lab/pmxcfs.pid "$LAB"/nodes/pve2/run/sshd.pid; do
  p=$(pid_from "$f")
  alive "$p" && live+="$p "
done
check_eq "power-off: the recorded corosync, pmxcfs, sshd are dead" "" "$live"
rc=0; timeout 15 "$L" ssh pve2 true >/dev/null 2>&1 || rc=$?
check "power-off: bismuth's sshd gone (login fails)" test "$rc" != 0
if lab_wait pve1 members=1 30; then t_off=$(elapsed "$t0"); ok "power-off: tartanpion loses bismuth (${t_off} s)"; else t_off=timeout; bad "power-off: tartanpion loses bismuth (<= 30 s)"; fi
check_eq "power-off with two_node: tartanpion quorate" 0 "$(qrc pve1)"
rc=0; "$L" status >/dev/null 2>&1 || rc=$?
check_eq "status with a node powered off: exit 1" 1 "$rc"
check_has "status says so" "pve2: POWERED OFF" "$("$L" status 2>&1 || true)"
t0=$EPOCHREALTIME
"$L" power-on pve2 >/dev/null
t_on=$(elapsed "$t0")
check_has "power-on: corosync running again" "corosync is running" "$(n2 /usr/local/sbin/lab-corosync status 2>&1)"
check_has "power-on: pmxcfs running again (/etc/pve healthy)" "healthy" "$(n2 /usr/local/sbin/pve-cluster status 2>&1)"
check "power-on: sshd answers" "$L" ssh pve2 true
check_eq "power-on: links up" "UP UP UP" "$(link_state pve2 eth0) $(link_state pve2 eth1) $(link_state pve2 qnetd)"
check "power-on: back in the membership (<= 30 s)" lab_wait pve1 members=2 30
check "power-on: bismuth's /etc/pve writable again (<= 15 s)" lab_wait pve2 rw 15
check "status: exit 0 again" "$L" status

echo "-- power-off / power-on of the qnetd host"
"$L" power-off pve3 >/dev/null
check_eq "power-off pve3: no process left but its anchor" "sleep" "$(procs pve3)"
check "power-off pve3: qnetd's port unreachable from tartanpion" bash -c "! '$L' exec pve1 nc -z -w 1 10.99.9.3 5403"
"$L" power-on pve3 >/dev/null
check_has "power-on pve3: corosync-qnetd answers again" "Supported (client certificate required)" "$("$L" exec pve3 corosync-qnetd-tool -s 2>&1)"
check "power-on pve3: port 5403 open from bismuth (<= 5 s)" wait_for 5 tcp_open pve2 10.99.9.3 5403
check "power-on pve3: ssh works" "$L" ssh pve3 true

echo "-- reinstall: bismuth as a fresh Proxmox install"
key_before=$(ssh-keygen -l -f "$LAB/ssh/host_pve2.pub" | awk '{ print $2 }')
t0=$EPOCHREALTIME
"$L" reinstall pve2 >/dev/null
t_reinstall=$(elapsed "$t0")
check_eq "reinstall: bismuth's /etc/hosts is Debian's again" "127.0.0.1	localhost
127.0.1.1	bismuth.elao.local	bismuth" "$(n2 head -n 2 /etc/hosts)"
check_eq "reinstall: /etc/corosync empty" "" "$(n2 ls -A /etc/corosync)"
check "reinstall: no corosync running" bash -c "! '$L' exec pve2 /usr/local/sbin/lab-corosync status"
check_has "reinstall: pve-cluster refused at boot (the name only on 127.0.1.1)" "unmounted" "$(n2 /usr/local/sbin/pve-cluster status 2>&1)"
key_after=$(ssh-keygen -l -f "$LAB/ssh/host_pve2.pub" | awk '{ print $2 }')
check "reinstall: a new ssh host key" test "$key_before" != "$key_after"
check_has "reinstall: sshd serves the new host key" "$key_after" "$(n1 ssh-keyscan -t ed25519 10.99.0.2 2>/dev/null | ssh-keygen -l -f - 2>&1)"
check "reinstall: the controller logs in" "$L" ssh pve2 true
n2 bash -c 'echo "10.99.0.2 bismuth" >>/etc/hosts'
check "reinstall: pve-cluster starts once the name is pinned" n2 /usr/local/sbin/pve-cluster start
check_eq "reinstall: /etc/pve in local mode, empty (no corosync.conf)" "local nodes priv" "$(n2 ls /etc/pve | paste -sd ' ')"
check_eq "reinstall: nodes/ holds only bismuth" "bismuth" "$(n2 ls /etc/pve/nodes)"
check "reinstall: /etc/pve writable (local mode is quorate)" lab_wait pve2 rw 5
run_rc out err rc pve2 pvecm status
check_eq "reinstall: pvecm status: not in a cluster (exit 2)" 2 "$rc"
check_eq "reinstall: tartanpion still has bismuth in its nodelist (offline)" 2 "$(n1 grep -cE '^[[:space:]]+nodeid:' /etc/pve/corosync.conf)"
check_eq "reinstall: tartanpion quorate alone (two_node)" 0 "$(qrc pve1)"

echo "-- options: PVE2NODE_LAB_NO_TRUST=1 PVE2NODE_LAB_INVENTORY_NAMES=alias"
"$L" down >/dev/null
PVE2NODE_LAB_NO_TRUST=1 PVE2NODE_LAB_INVENTORY_NAMES=alias "$L" up >/dev/null
ctl=$(cut -d' ' -f1-2 "$LAB/ssh/id_ed25519.pub")
for n in pve1 pve2; do
  check_eq "no trust: $n's authorized_keys holds only the controller's key" "$ctl" "$("$L" exec "$n" cut -d' ' -f1-2 /root/.ssh/authorized_keys)"
  check "no trust: $n has no known_hosts" "$L" exec "$n" test ! -e /root/.ssh/known_hosts
  check "no trust: $n's root key is its own (not the controller's)" test "$("$L" exec "$n" cut -d' ' -f1-2 /root/.ssh/id_ed25519.pub)" != "$ctl"
done
run_rc out err rc pve2 timeout 15 ssh -o BatchMode=yes -o ConnectTimeout=5 root@10.99.0.1 true
check "no trust: bismuth cannot ssh to tartanpion as root" test "$rc" != 0
inv=$(cat "$LAB/inventory.ini")
check_has "alias: inventory host node-a with ansible_host" "node-a ansible_host=10.99.0.1 " "$inv"
check_has "alias: inventory host node-b with ansible_host" "node-b ansible_host=10.99.0.2 " "$inv"
check_lacks "alias: no host named tartanpion" "tartanpion ansible_host" "$inv"
out=$("$L" ansible pve -m command -a hostname 2>&1) || true
check_has "alias: node-a is tartanpion" "node-a | CHANGED | rc=0 >>
tartanpion" "$out"
check_has "alias: node-b is bismuth" "node-b | CHANGED | rc=0 >>
bismuth" "$out"
check_eq "the options are kept for reinstall" "NO_TRUST=1
INVENTORY_NAMES=alias" "$(cat "$LAB/options")"
check "no lab file outside the lab dir: the host's /etc/corosync has no qnetd dir" test ! -e /etc/corosync/qnetd

echo "== lab infra e2e: $passed passed, $failed failed in $(elapsed "$t_start") s"
echo "   measured (two_node): every link cut -> split seen ${t_split} s (both quorate), healed -> merged ${t_merge} s; power-off -> peer lost ${t_off} s; power-on ${t_on} s; reinstall ${t_reinstall} s"
((failed == 0))
