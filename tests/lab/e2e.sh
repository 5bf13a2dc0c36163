#!/bin/bash
# The lab's end-to-end suite: brings the two-node lab up, proves Ansible reaches each node,
# checks that the stand-ins behave like PVE 8.1.3's pmxcfs and pvecm (shared/proxmox.md §8:
# the fresh-install /etc/hosts traps, pmxcfs's modes, errnos and limits, the readiness windows
# after create and after a corosync restart, the join refused in that window, the corosync.conf
# copy and reload, the authorized_keys symlink into /etc/pve, the dead mount with and without a
# holder), builds a cluster on real corosync, checks quorum, peer loss with and without
# two-node mode, runs infra_e2e.sh on that cluster (the third node, links, power-off/on,
# reinstall, the options), checks that `down` leaves nothing; then playbooks_e2e.sh (the
# playbooks on a fresh lab), qdevice_e2e.sh (the QDevice on the cluster it leaves) and
# cache_e2e.sh (the action plugin's binary cache, its own fresh lab), life_e2e.sh (lone node,
# removal, rejoin of a reinstall: its own fresh lab). Always tears down (trap).
# Every wait is bounded. Exit status: number of failed checks (capped), 0 when all pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
t_start=$EPOCHREALTIME
quorate() { [[ $(qrc "$1") == 0 ]]; }
blocked() { [[ $(qrc "$1") == 2 ]]; }
# shellcheck disable=SC2016 # awk programs
pve_mode() { "$L" exec "$1" bash -c '. /usr/local/sbin/lab-lib.sh; pmxcfs_mode /etc/pve'; }
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

echo "-- fresh nodes: the two /etc/hosts traps"
check_eq "tartanpion: the Proxmox installer's /etc/hosts" "127.0.0.1 localhost.localdomain localhost
192.0.2.1 tartanpion.elao.local tartanpion" "$(n1 head -n 2 /etc/hosts)"
check_eq "tartanpion: its name resolves to the public address" "192.0.2.1" "$(n1 getent hosts tartanpion | awk '{ print $1 }')"
check_eq "bismuth: Debian's /etc/hosts (the name only on 127.0.1.1)" "127.0.0.1	localhost
127.0.1.1	bismuth.elao.local	bismuth" "$(n2 head -n 2 /etc/hosts)"
check_eq "bismuth: its name resolves to 127.0.1.1" "127.0.1.1" "$(n2 getent hosts bismuth | awk '{ print $1 }')"
check "/etc/pve does not exist on the host" test ! -e /etc/pve
check_has "tartanpion: /etc/pve is a FUSE mount (pmxcfs)" "healthy" "$(n1 /usr/local/sbin/pve-cluster status 2>&1)"
# shellcheck disable=SC2016 # awk program
check_eq "tartanpion: mountinfo says fuse /dev/fuse like pmxcfs" "fuse /dev/fuse" "$(n1 awk '$5 == "/etc/pve" { for (i = 7; $i != "-"; i++) ; print $(i + 1), $(i + 2) }' /proc/self/mountinfo)"
check_has "bismuth: /etc/pve not mounted (pve-cluster refused at boot)" "unmounted" "$(n2 /usr/local/sbin/pve-cluster status 2>&1)"
run_rc out err rc pve2 /usr/local/sbin/pve-cluster start
check_eq "bismuth: pve-cluster start refuses, exit 255, pmxcfs's message" "255 [main] crit: Unable to resolve node name 'bismuth' to a non-loopback IP address - missing entry in '/etc/hosts' or DNS?" "$rc $err"
check_has "bismuth: nothing mounted after the refusal" "unmounted" "$(n2 /usr/local/sbin/pve-cluster status 2>&1)"
# the pin hosts_pin makes (here by hand: the module runs in playbooks_e2e.sh); the 127.0.1.1 line
# stays: pmxcfs skips loopback addresses and takes the real one
n2 bash -c 'echo "10.99.0.2 bismuth" >>/etc/hosts'
check "bismuth: pve-cluster starts once the name has a real address" n2 /usr/local/sbin/pve-cluster start
for c in status nodes; do
  run_rc out err rc pve2 pvecm "$c"
  check_eq "pvecm $c outside a cluster: exit 2, PVE 8 message on stderr" "2 Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?" "$rc $err"
done

echo "-- pmxcfs semantics, quorate (tartanpion, local mode)"
n1 bash -c 'echo x >/etc/pve/sem.txt; : >/etc/pve/priv/sem.key'
check_eq "modes: file 0640, dir 0755, priv/ 0700, priv file 0600, owner root:www-data" "640 root www-data|755|700|600" \
  "$(n1 stat -c '%a %U %G' /etc/pve/sem.txt)|$(n1 stat -c %a /etc/pve/nodes)|$(n1 stat -c %a /etc/pve/priv)|$(n1 stat -c %a /etc/pve/priv/sem.key)"
check "chmod 0640 on a file works" n1 chmod 0640 /etc/pve/sem.txt
run_rc out err rc pve1 chmod 0644 /etc/pve/sem.txt
check_has "chmod 0644: EPERM" "Operation not permitted" "$rc $err"
run_rc out err rc pve1 chmod 0755 /etc/pve/nodes
check_has "chmod 0755 on a dir that shows 0755: EPERM" "Operation not permitted" "$rc $err"
check "chmod 0600 under priv/ works" n1 chmod 0600 /etc/pve/priv/sem.key
run_rc out err rc pve1 chmod 0640 /etc/pve/priv/sem.key
check_has "chmod 0640 under priv/: EPERM" "Operation not permitted" "$rc $err"
check "chown root:www-data works" n1 chown root:www-data /etc/pve/sem.txt
run_rc out err rc pve1 chown nobody /etc/pve/sem.txt
check_has "chown nobody: EPERM" "Operation not permitted" "$rc $err"
run_rc out err rc pve1 ln -s sem.txt /etc/pve/sem.lnk
check_has "symlink: ENOSYS" "Function not implemented" "$err"
run_rc out err rc pve1 mkfifo /etc/pve/sem.fifo
check_has "mkfifo: ENOSYS" "Function not implemented" "$err"
run_rc out err rc pve1 ln /etc/pve/sem.txt /etc/pve/sem.hard
check_has "hard link: EPERM" "Operation not permitted" "$err"
run_rc out err rc pve1 bash -c 'head -c 2097152 /dev/zero >/etc/pve/sem.big'
check_has "a write past 1 MiB: EFBIG" "File too large" "$err"
check_eq "the file stays at 1 MiB" 1048576 "$(n1 stat -c %s /etc/pve/sem.big)"
run_rc out err rc pve1 install -m 0640 /etc/hostname /etc/pve/sem.inst
check_has "install -m 0640 fails (its fchmod 0600 first)" "Operation not permitted" "$err"
check "sed -i works (mkstemp, fchmod 0640, rename)" n1 sed -i 's/x/y/' /etc/pve/sem.txt
run_rc out err rc pve1 cp -p /etc/hostname /etc/pve/sem.cpp
check_has "cp -p fails (ownership)" "failed to preserve ownership" "$err"
check "plain cp works" n1 cp /etc/hostname /etc/pve/sem.cp
check_eq "setxattr: EOPNOTSUPP" EOPNOTSUPP "$(n1 /usr/bin/python3 -c '
import errno, os
try:
    os.setxattr("/etc/pve/sem.txt", "user.lab", b"1"); print("ok")
except OSError as e:
    print("EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode[e.errno])')"
check_eq "/etc/pve/local -> nodes/tartanpion" "nodes/tartanpion" "$(n1 readlink /etc/pve/local)"
check_eq "bismuth's /etc/pve/local -> nodes/bismuth" "nodes/bismuth" "$(n2 readlink /etc/pve/local)"
check "/etc/pve/local is a usable path" n1 bash -c 'echo l >/etc/pve/local/sem.txt && test -s /etc/pve/nodes/tartanpion/sem.txt'
check_has ".members: nodename" '"nodename": "tartanpion"' "$(n1 cat /etc/pve/.members)"
run_rc out err rc pve1 bash -c 'echo x >/etc/pve/.members'
check_has ".members is read-only" "Permission denied" "$err"
n1 rm -f /etc/pve/sem.big /etc/pve/sem.txt /etc/pve/local/sem.txt /etc/pve/priv/sem.key /etc/pve/sem.cp /etc/pve/sem.cpp /etc/pve/sem.inst

echo "-- pvecm create on tartanpion, and the readiness window after it"
t0=$EPOCHREALTIME
run_rc out err rc pve1 pvecm create elao --link0 10.99.0.1
t_create=$(elapsed "$t0")
t1=$EPOCHREALTIME
check_eq "create: exit 0" 0 "$rc"
check_has "create: prints like Proxmox" "Writing corosync config to /etc/pve/corosync.conf
Restart corosync and cluster filesystem" "$out"
# in the window: a join from bismuth is refused by tartanpion (PVE 8.1.3: exit 0)
jout="" jerr="" jrc=""
run_rc jout jerr jrc pve2 pvecm add 10.99.0.1 --link0 10.99.0.2 --use_ssh 1
# one pass in the node, fast: still in the window
# shellcheck disable=SC2016 # runs in the node
win=$(n1 bash -c 'q=0; timeout 5 corosync-quorumtool -s >/dev/null 2>&1 || q=$?; echo "corosync-quorumtool $q"
echo "modes $(stat -c %a /etc/pve) $(stat -c %a /etc/pve/corosync.conf) $(stat -c %a /etc/pve/priv)"
/usr/bin/python3 - <<PY
import errno, os
def t(name, f):
    try:
        f(); print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
fd = os.open("/etc/pve/corosync.conf", os.O_WRONLY)
print("open-for-write ok")
t("write", lambda: os.write(fd, b"x"))
os.close(fd)
t("create", lambda: os.close(os.open("/etc/pve/new.txt", os.O_WRONLY | os.O_CREAT, 0o640)))
t("truncate", lambda: os.truncate("/etc/pve/corosync.conf", 0))
t("mkdir", lambda: os.mkdir("/etc/pve/newdir"))
t("unlink", lambda: os.unlink("/etc/pve/corosync.conf"))
t("rename", lambda: os.rename("/etc/pve/corosync.conf", "/etc/pve/x.conf"))
t("utime", lambda: os.utime("/etc/pve/corosync.conf"))
t("chmod0640", lambda: os.chmod("/etc/pve/corosync.conf", 0o640))
PY
grep -o "\"quorate\": [01]" /etc/pve/.members' 2>&1)
check_eq "right after create: corosync quorate, /etc/pve read-only (0555/0440/0500), EACCES, chmod 0640 works" "corosync-quorumtool 0
modes 555 440 500
open-for-write ok
write EACCES
create EACCES
truncate EACCES
mkdir EACCES
unlink EACCES
rename EACCES
utime EACCES
chmod0640 ok
\"quorate\": 0" "$win"
check_eq "join in the window: exit 0 (PVE 8.1.3)" 0 "$jrc"
check_has "join in the window: the peer's answer on stdout" "cluster not ready - no quorum?" "$jout"
check_eq "join in the window: stderr" "unable to add node: command failed (ssh 10.99.0.1 -o BatchMode=yes pvecm addnode bismuth --force 1 --link0 10.99.0.2)" "$jerr"
if wait_for 10 pve_rw pve1; then
  t_window=$(elapsed "$t1")
  ok "create: /etc/pve writable ${t_window} s after create returned (create took ${t_create} s)"
else
  t_window=timeout
  bad "create: /etc/pve writable within 10 s after create"
fi
check "create: the window lasted 2.5-7 s (PVE 8.1.3: ~4.5 s)" awk -v w="$t_window" 'BEGIN { exit !(w >= 2.5 && w <= 7) }'
check "create took 4-9 s (PVE 8.1.3: 5.6-7.5 s)" awk -v w="$t_create" 'BEGIN { exit !(w >= 4 && w <= 9) }'
check_has ".members quorate once writable" '"quorate": 1' "$(n1 cat /etc/pve/.members)"
check "create: tartanpion quorate alone" wait_for 15 quorate pve1
log1=$LAB/nodes/pve1/log/pve-cluster.log
check_has "create: pmxcfs copied corosync.conf to /etc/corosync (version 1)" "[dcdb] notice: wrote new corosync config '/etc/corosync/corosync.conf' (version = 1)" "$(cat "$log1")"
check_lacks "create: the first copy without a reload" "corosync-cfgtool -R" "$(cat "$log1")"
check_eq "create: root's authorized_keys is a symlink into /etc/pve/priv" "/etc/pve/priv/authorized_keys" "$(n1 readlink /root/.ssh/authorized_keys)"
check_has "create: root's keys merged there" "pve2node-lab" "$(n1 cat /etc/pve/priv/authorized_keys)"
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
check_eq "bismuth still outside (its own /etc/pve)" 2 "$rc"

run_rc out err rc pve2 setsid pvecm add 10.99.0.1 --link0 10.99.0.2 </dev/null
check_eq "add without use_ssh, no tty: only 'EOF while reading password', exit 0" "|EOF while reading password|0" "$out|$err|$rc"
run_rc out err rc pve2 pvecm add 10.99.0.1 -ring0_addr 10.99.0.2
check_eq "add with PVE 4's -ring0_addr: Unknown option, usage, exit 255" "Unknown option: ring0_addr
400 unable to parse option
pvecm add <hostname> [OPTIONS]|255" "$err|$rc"
p_before=$(cat "$LAB/nodes/pve1/run/lab/pmxcfs.pid")
check "pve-cluster start on a healthy node: exit 0" n1 /usr/local/sbin/pve-cluster start
check_eq "pve-cluster start on a healthy node: same pmxcfs process" "$p_before" "$(cat "$LAB/nodes/pve1/run/lab/pmxcfs.pid")"
# pve2node's run kills the command's process group once it exits (pvecm create ends with a
# pve-cluster restart): pmxcfs must have left that group before `start` returns.
n1 setsid bash -c '/usr/local/sbin/pve-cluster restart >/dev/null; kill -KILL -$$' >/dev/null 2>&1 || true
sleep 0.3
check_has "pmxcfs survives a kill of the starter's process group" "alive" "$(n1 /usr/local/sbin/pve-cluster status 2>&1)"
check "/etc/pve writable again after that restart (corosync was running: ~1 s)" wait_for 10 pve_rw pve1

echo "-- pvecm add on bismuth (use_ssh: real ssh to tartanpion)"
t0=$EPOCHREALTIME
run_rc out err rc pve2 pvecm add 10.99.0.1 --link0 10.99.0.2 --use_ssh 1
t_join=$(elapsed "$t0")
check_eq "add: exit 0" 0 "$rc"
check_has "add: success line" "successfully added node 'bismuth' to cluster." "$out"
check_has "add: waited for pmxcfs's quorum" "waiting for quorum...OK" "$out"
check_eq "add: bismuth's /etc/pve writable when add returns" rw "$(pve_mode pve2)"
check_eq "join: bismuth's authorized_keys is a symlink into /etc/pve/priv" "/etc/pve/priv/authorized_keys" "$(n2 readlink /root/.ssh/authorized_keys)"
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
check_has "/etc/pve refuses chmod 0644 (EPERM, like pmxcfs)" "Operation not permitted" "$err"
check_has ".members: quorate, both online" '"quorate": 1' "$(n2 cat /etc/pve/.members)"
check_eq ".members: both nodes online" 2 "$(n2 grep -c '"online": 1' /etc/pve/.members)"
check_has "bismuth's .members: its own address as pmxcfs resolved it at start (10.99.0.2, not 127.0.1.1)" '"ip": "10.99.0.2"' "$(n2 cat /etc/pve/.members)"
run_rc out err rc pve2 pvecm add 10.99.0.1 --link0 10.99.0.2 --use_ssh 1
check_eq "add again: Proxmox's joinable checks (stdout)" "detected the following error(s):
* authentication key '/etc/corosync/authkey' already exists
* cluster config '/etc/pve/corosync.conf' already exists
* corosync is already running, is this node already in a cluster?!" "$out"
check_eq "add again: final line on stderr" "Check if node may join a cluster failed!" "$err"

echo "-- peer loss without two-node mode"
check_eq "/dev/shm in each node: 256 MiB" "256 256" "$(n1 df -m --output=size /dev/shm | tail -n 1 | tr -d ' ') $(n2 df -m --output=size /dev/shm | tail -n 1 | tr -d ' ')"
dead_cs=$(cat "$LAB/nodes/pve2/run/lab/corosync.pid")
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
check_has "write refused on tartanpion (EACCES, like pmxcfs)" "Permission denied" "$err"
check_eq "without quorum: modes 0555 / 0440" "555 440" "$(n1 stat -c %a /etc/pve /etc/pve/lab-test.txt | paste -sd ' ')"
# shellcheck disable=SC2012 # names only
shm_dead() { n2 ls /dev/shm | grep -cE -- "^qb-(corosync-)?$dead_cs-" || true; }
check "the killed corosync left its files in bismuth's /dev/shm (blackbox, rings)" test "$(shm_dead)" -gt 0
t0=$EPOCHREALTIME
"$L" start-corosync pve2 >/dev/null
check_eq "start-corosync removed the dead corosync's /dev/shm files" 0 "$(shm_dead)"
check "both quorate again after bismuth's corosync restart" wait_for 30 bash -c "[[ \$('$L' exec pve1 timeout 5 corosync-quorumtool -s 2>&1) == *'Nodes:            2'* ]]"
check_eq "bismuth: corosync quorate but /etc/pve still read-only after its corosync restarted" "0 ro" "$(qrc pve2) $(pve_mode pve2)"
if wait_for 15 pve_rw pve2; then
  t_restart=$(elapsed "$t0")
  ok "bismuth: /etc/pve writable ${t_restart} s after its corosync was started"
else
  t_restart=timeout
  bad "bismuth: /etc/pve writable within 15 s after its corosync restarted"
fi
check "bismuth: that window lasted 4-9 s (PVE 8.1.3: ~6.3 s)" awk -v w="$t_restart" 'BEGIN { exit !(w >= 4 && w <= 9) }'
check "/etc/pve writable again on tartanpion" wait_for 10 pve_rw pve1

echo "-- two_node through /etc/pve/corosync.conf (pmxcfs's copy, and corosync-cfgtool -R inside the write)"
log2=$LAB/nodes/pve2/log/pve-cluster.log
r1=$(grep -c 'corosync-cfgtool -R' "$log1" || true)
r2=$(grep -c 'corosync-cfgtool -R' "$log2" || true)
n1 bash -c 'sed -e "s/config_version: 2/config_version: 3/" -e "s/  provider: corosync_votequorum/&\n  two_node: 1/" /etc/pve/corosync.conf >/etc/pve/corosync.conf.new'
t0=$EPOCHREALTIME
n1 mv /etc/pve/corosync.conf.new /etc/pve/corosync.conf
t_mv=$(elapsed "$t0")
check_eq "right when the rename returned: both nodes' /etc/corosync at version 3" "3 3" "$(n1 bash -c '. /usr/local/sbin/lab-lib.sh; config_version /etc/corosync/corosync.conf') $(n2 bash -c '. /usr/local/sbin/lab-lib.sh; config_version /etc/corosync/corosync.conf')"
check "the writer's rename took ~1 s (the reload inside it: ${t_mv} s)" awk -v w="$t_mv" 'BEGIN { exit !(w >= 0.95 && w <= 5) }'
check_eq "corosync-cfgtool -R ran on the writer only (tartanpion +1, bismuth +0)" "$((r1 + 1)) $r2" "$(grep -c 'corosync-cfgtool -R' "$log1") $(grep -c 'corosync-cfgtool -R' "$log2")"
check_has "both pmxcfs logged the copy (version 3)" "wrote new corosync config '/etc/corosync/corosync.conf' (version = 3)" "$(grep -h 'version = 3' "$log1"; grep -h 'version = 3' "$log2")"
check_eq "the copy logged on bismuth too" 1 "$(grep -c "wrote new corosync config.*(version = 3)" "$log2")"
# an equal config_version with other bytes: copied and reloaded too
n1 bash -c 'sed "s/  debug: off/  debug: off\n  timestamp: on/" /etc/pve/corosync.conf >/etc/pve/corosync.conf.new && mv /etc/pve/corosync.conf.new /etc/pve/corosync.conf'
check_eq "equal version, other bytes: copied on both" "1 1" "$(n1 grep -c 'timestamp: on' /etc/corosync/corosync.conf) $(n2 grep -c 'timestamp: on' /etc/corosync/corosync.conf)"
check_eq "equal version, other bytes: reloaded on the writer" "$((r1 + 2))" "$(grep -c 'corosync-cfgtool -R' "$log1")"
# a lower one: refused
n1 bash -c 'sed "s/config_version: 3/config_version: 2/" /etc/pve/corosync.conf >/etc/pve/corosync.conf.new && mv /etc/pve/corosync.conf.new /etc/pve/corosync.conf'
check_eq "lower version: /etc/corosync keeps version 3 on both" "3 3" "$(n1 bash -c '. /usr/local/sbin/lab-lib.sh; config_version /etc/corosync/corosync.conf') $(n2 bash -c '. /usr/local/sbin/lab-lib.sh; config_version /etc/corosync/corosync.conf')"
check_has "lower version: [dcdb] crit: local corosync.conf is newer" "[dcdb] crit: local corosync.conf is newer" "$(cat "$log1")"
n1 bash -c 'sed "s/config_version: 2/config_version: 3/" /etc/pve/corosync.conf >/etc/pve/corosync.conf.new && mv /etc/pve/corosync.conf.new /etc/pve/corosync.conf'
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
check "a fresh key login to bismuth works while /etc/pve is healthy" "$L" ssh pve2 true
# a holder: a process whose cwd is inside /etc/pve
n2 bash -c 'cd /etc/pve && { setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! >/run/lab/holder.pid; }'
"$L" kill-fuse pve2 >/dev/null
run_rc out err rc pve2 stat /etc/pve
check_has "stat /etc/pve: Transport endpoint is not connected" "Transport endpoint is not connected" "$err"
# shellcheck disable=SC2016
check "the stale mount is still in the mount table (fuse)" n2 awk '$5 == "/etc/pve" { for (i = 7; $i != "-"; i++) ; if ($(i + 1) == "fuse") f = 1 } END { exit !f }' /proc/self/mountinfo
out=$("$L" ssh pve2 true 2>&1 | tr -d '\r'; exit "${PIPESTATUS[0]}") && rc=0 || rc=$?
check_eq "a fresh key login fails: authorized_keys is in the dead /etc/pve" "255 root@10.99.0.2: Permission denied (publickey)." "$rc $out"
n2 bash -c 'cat /root/.ssh/authorized_keys.org >>/root/.ssh/authorized_keys2 && chmod 0600 /root/.ssh/authorized_keys2'
check "with the key also in ~/.ssh/authorized_keys2 (sshd's default) the login works" "$L" ssh pve2 true
n2 rm -f /root/.ssh/authorized_keys2
sleep 1.1 # past the first second after the kill
run_rc out err rc pve2 /usr/local/sbin/pve-cluster start
check_eq "held: pve-cluster start fails with the seed's three lines, exit 255" "255 fuse: failed to access mountpoint /etc/pve: Transport endpoint is not connected
[main] crit: fuse_mount error: Transport endpoint is not connected
[main] notice: exit proxmox configuration filesystem (-1)" "$rc $err"
run_rc out err rc pve2 umount -f /etc/pve
check_eq "held: umount -f says target is busy (rc 32)" "32 umount: /etc/pve: target is busy." "$rc $err"
check "held: umount -l, then pve-cluster start heals it" n2 bash -c 'umount -l /etc/pve && /usr/local/sbin/pve-cluster start && stat /etc/pve >/dev/null && test -r /etc/pve/.members'
# shellcheck disable=SC2016 # runs in the node
n2 bash -c 'kill "$(cat /run/lab/holder.pid)"'
check_eq "healed /etc/pve is the cluster's again" survivor "$(n2 cat /etc/pve/lab-test.txt 2>&1)"
"$L" kill-fuse pve2 >/dev/null
check_eq "killed again, nothing holds it: stale" stale "$(n2 bash -c '. /usr/local/sbin/lab-lib.sh; pve_state /etc/pve')"
check "not held: a plain pve-cluster start heals it (pmxcfs's own MNT_FORCE)" n2 bash -c '/usr/local/sbin/pve-cluster start && stat /etc/pve >/dev/null && test -r /etc/pve/.members'
check_eq "healed again: the cluster's files" survivor "$(n2 cat /etc/pve/lab-test.txt 2>&1)"

# the lab's own commands (third node, links, power, reinstall, options) on this lab's cluster;
# it ends with a fresh lab of the options, which the checks below take down
infra_rc=0
"$here/infra_e2e.sh" || infra_rc=$?
if ((infra_rc == 0)); then ok "infra_e2e.sh: all passed"; else bad "infra_e2e.sh: failures (above)"; fi

echo "-- down leaves nothing"
mapfile -t pids < <(lab_pids)
netns_made=0
[[ -e $LAB/run-netns-made ]] && netns_made=1
t0=$EPOCHREALTIME
"$L" down
t_down=$(elapsed "$t0")
# (when /run/netns was already a mount point, e.g. another lab's, it is not ours to remove)
check "no /run/netns mount left by the lab" bash -c "((! $netns_made)) || ! mountpoint -q /run/netns || ls -A /run/netns | grep -q ."
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
echo "   measured: up ${t_up} s, ansible ad-hoc (2 nodes) ${t_ansible} s, create ${t_create} s (then read-only ${t_window} s), join ${t_join} s, read-only after a corosync restart ${t_restart} s, peer loss detected ${t_detect} s (read-only ${t_ro} s), with two_node ${t_detect2} s, down ${t_down} s"

# the playbooks on a fresh lab (their own up), then the QDevice on the cluster they leave (which
# takes the lab down and checks that nothing is left), then the binary cache of the collection's
# action plugin (its own fresh lab)
pb_rc=0 qd_rc=0 cache_rc=0 su_rc=0 life_rc=0
# issue 15's fresh pair (its own lab: no ssh trust, inventory aliases, two links)
"$here/setup_e2e.sh" || su_rc=$?
PVE2NODE_LAB_KEEP=1 "$here/playbooks_e2e.sh" || pb_rc=$?
"$here/qdevice_e2e.sh" || qd_rc=$?
"$here/cache_e2e.sh" || cache_rc=$?
"$here/life_e2e.sh" || life_rc=$?
verdict() { ((${1} == 0)) && echo passed || echo FAILED; }
echo "== lab suites: e2e $(verdict "$failed"), setup_e2e $(verdict "$su_rc"), playbooks_e2e $(verdict "$pb_rc"), qdevice_e2e $(verdict "$qd_rc"), cache_e2e $(verdict "$cache_rc"), life_e2e $(verdict "$life_rc") in $(elapsed "$t_start") s"
((failed == 0 && su_rc == 0 && pb_rc == 0 && qd_rc == 0 && cache_rc == 0 && life_rc == 0))
