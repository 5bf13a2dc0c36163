#!/bin/bash
# Issue 15 on the lab (called by tests/lab/e2e.sh, also runs alone): two fresh nodes with nothing
# prepared by hand (PVE2NODE_LAB_NO_TRUST=1: no root ssh trust between them;
# PVE2NODE_LAB_INVENTORY_NAMES=alias: inventory names node-a/node-b, not the host names).
# The checks of playbooks/two_node.yml fail, changing nothing on any node, for a three-host
# group, a missing variable and a non-Proxmox host (the qnetd host, no pvecm); check mode
# changes nothing; the run makes a quorate two-node cluster with two corosync links (the ssh
# trust set up by the playbook), the rerun changes nothing; link0 cut: still quorate, two
# members. Always tears its lab down. Every Ansible run and wait is bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
cd "$repo"
LOGS=$(mktemp -d /tmp/pve2node-setup-e2e.XXXXXX)
ANSIBLE_TIMEOUT_S=${ANSIBLE_TIMEOUT_S:-240}
t_start=$EPOCHREALTIME
recap_of() { awk -v h="$1" '$1 == h && $2 == ":" { print $3, $4, $6 }' <<<"$play_out"; }
# state NODE: what a run could change on NODE (hosts, root's ssh files, cluster config, /etc/pve)
state() {
  # shellcheck disable=SC2016 # expanded by the node's bash
  "$L" exec "$1" bash -c 'cat /etc/hosts; for f in /root/.ssh/* /etc/corosync/corosync.conf; do [[ -e $f ]] && { echo "$f"; cat "$f"; }; done; find /etc/pve /root/.ssh /etc/corosync -printf "%p %s %m\n" 2>/dev/null | sort' 2>&1 | sha256sum | cut -c1-16
}
both() { echo "$(state pve1) $(state pve2)"; }
cleanup() {
  trap - EXIT
  "$L" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== setup e2e (issue 15): fresh pair, no ssh trust, inventory aliases"
"$L" down >/dev/null 2>&1 || true
PVE2NODE_LAB_NO_TRUST=1 PVE2NODE_LAB_INVENTORY_NAMES=alias "$L" up >/dev/null
INV=$LAB/inventory.ini
check_has "inventory names node-a, node-b" "node-b ansible_host=10.99.0.2" "$(cat "$INV")"
fresh=$(both)

echo "-- checks before any change"
qline=$(awk '/^\[qnetd\]/ { getline; print; exit }' "$INV")
awk -v q="$qline" '{ print } /^\[pve\]$/ { print q " private_ip=10.99.9.3" }' "$INV" >"$LOGS/three.ini"
play three -i "$LOGS/three.ini" playbooks/two_node.yml
check_eq "three hosts: the run fails" 2 "$play_rc"
check_has "three hosts: one sentence" "group pve has 3 hosts" "$play_out"
check_eq "three hosts: nothing changed on either node" "$fresh" "$(both)"

sed 's/^\(node-b .*\) private_ip=[^ ]*/\1/' "$INV" >"$LOGS/novar.ini"
play novar -i "$LOGS/novar.ini" playbooks/two_node.yml
check_eq "missing private_ip: the run fails" 2 "$play_rc"
check_has "missing private_ip: one sentence" "node-b: private_ip is not set" "$play_out"
check_eq "missing private_ip: nothing changed on either node" "$fresh" "$(both)"

awk -v q="$qline" '/^node-b / { print q " private_ip=10.99.9.3 link1_ip=10.99.9.3"; next } { print }' "$INV" >"$LOGS/unreach.ini"
play unreach -i "$LOGS/unreach.ini" playbooks/two_node.yml
check_eq "a host off the private networks: the run fails" 2 "$play_rc"
check_has "a host off the private networks: one sentence" "cannot reach 10.99.0.1, 10.99.1.1 (ping)" "$play_out"
check_eq "a host off the private networks: nothing changed on either node" "$fresh" "$(both)"

# a node without Proxmox VE: its pvecm is missing
sed 's|^\(node-b .*\)$|\1 pvecm_path=/usr/sbin/pvecm-not-installed|' "$INV" >"$LOGS/nopve.ini"
play nopve -i "$LOGS/nopve.ini" playbooks/two_node.yml
check_eq "non-Proxmox host: the run fails" 2 "$play_rc"
check_has "non-Proxmox host: one sentence" "node-b has no /usr/sbin/pvecm-not-installed: it is not a Proxmox VE node" "$play_out"
check_eq "non-Proxmox host: nothing changed on either node" "$fresh" "$(both)"

echo "-- check mode on the fresh pair"
play check playbooks/two_node.yml --check --diff
check_eq "check mode: rc 0" 0 "$play_rc"
check_eq "check mode: nothing changed on either node" "$fresh" "$(both)"

echo "-- the run"
play run playbooks/two_node.yml --diff
check_eq "run: rc 0" 0 "$play_rc"
check_has "run: node-a ok, failed=0" "failed=0" "$(recap_of node-a)"
check_has "run: node-b ok, failed=0" "failed=0" "$(recap_of node-b)"
check "tartanpion quorate with 2 members" "$L" wait pve1 members=2 30
check "bismuth quorate" "$L" wait pve2 quorate 30
check_has "cluster nodes are the host names (not the aliases)" "bismuth" "$("$L" exec pve1 pvecm nodes 2>&1)"
check_has "bismuth's /etc/hosts: its short name on the private line" "10.99.0.2	bismuth" "$("$L" exec pve2 cat /etc/hosts)$("$L" exec pve2 cat /etc/hosts | tr -s ' ' '\t')"
check_lacks "bismuth's /etc/hosts: no loopback line names it" "127.0.1.1" "$("$L" exec pve2 cat /etc/hosts)"
check_has "bismuth's known_hosts pins tartanpion's real host key" "$(cut -d' ' -f2 "$LAB/ssh/host_pve1.pub" 2>/dev/null || echo no-key-file)" "$("$L" exec pve2 cat /root/.ssh/known_hosts 2>&1)"
check_has "two links: link 1 in corosync.conf" "ring1_addr: 10.99.1.2" "$("$L" exec pve1 cat /etc/corosync/corosync.conf)"
check_has "two links: corosync-cfgtool -s shows LINK ID 1" "LINK ID 1" "$("$L" exec pve1 corosync-cfgtool -s 2>&1)"
facts=$(timeout 60 "$L" ansible node-a -m pve2node.cluster.pvecm_cluster -a state=info 2>&1 || true)
check_has "pvecm_cluster info facts: link 1's state" '"link": 1' "$facts"
check_has "pvecm_cluster info facts: a link's node connected" '"connected": true' "$facts"

echo "-- rerun"
play rerun playbooks/two_node.yml
check_eq "rerun: rc 0" 0 "$play_rc"
check_has "rerun: node-a changed=0" "changed=0" "$(recap_of node-a)"
check_has "rerun: node-b changed=0" "changed=0" "$(recap_of node-b)"

echo "-- link0 cut with two links"
"$L" cut-link 0 >/dev/null
sleep 8
check "link0 cut: tartanpion still quorate with 2 members" "$L" wait pve1 members=2 5
check "link0 cut: bismuth still quorate with 2 members" "$L" wait pve2 members=2 5
"$L" heal-link 0 >/dev/null

echo "-- add_link.yml on a one-link cluster (the same pair, rebuilt with link0 only)"
"$L" reinstall pve1 >/dev/null
"$L" reinstall pve2 >/dev/null
sed 's/ link1_ip=[^ ]*//' "$INV" >"$LOGS/onelink.ini"
sed 's/ private_ip=\([^ ]*\)/ private_ip=\1 link1_ip=\1/; s/link1_ip=10.99.0/link1_ip=10.99.1/' "$LOGS/onelink.ini" >"$LOGS/addlink.ini"
play onelink -i "$LOGS/onelink.ini" playbooks/two_node.yml
check_eq "one-link cluster: rc 0" 0 "$play_rc"
check_lacks "one-link cluster: no link 1" "ring1_addr" "$("$L" exec pve1 cat /etc/corosync/corosync.conf 2>&1)"
play addlink -i "$LOGS/addlink.ini" playbooks/add_link.yml
check_eq "add_link.yml: rc 0" 0 "$play_rc"
check_has "add_link.yml: link 1 in both nodes' corosync.conf" "ring1_addr: 10.99.1.2" "$("$L" exec pve2 cat /etc/corosync/corosync.conf 2>&1)"
check_has "add_link.yml: corosync-cfgtool -s shows LINK ID 1 on bismuth" "LINK ID 1" "$("$L" exec pve2 corosync-cfgtool -s 2>&1)"
play addlink2 -i "$LOGS/addlink.ini" playbooks/add_link.yml
check_eq "add_link.yml again: rc 0" 0 "$play_rc"
check_has "add_link.yml again: changed=0" "changed=0" "$(recap_of node-a)"
"$L" cut-link 0 >/dev/null
sleep 8
check "added link: link0 cut, tartanpion still quorate with 2 members" "$L" wait pve1 members=2 5
"$L" heal-link 0 >/dev/null

echo "== setup e2e: $passed passed, $failed failed in $(elapsed "$t_start") s (logs $LOGS)"
((failed == 0))
