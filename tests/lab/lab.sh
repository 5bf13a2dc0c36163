#!/bin/bash
# The pve2node two-node lab: two "Proxmox nodes" on this machine, each a network namespace plus
# its own mount and UTS namespace, running real corosync 3, a pve-cluster/pmxcfs stand-in
# (/etc/pve as a FUSE filesystem with PVE 8.1.3 pmxcfs's semantics), a pvecm stand-in and sshd
# (for Ansible); and a third namespace node, the QDevice's qnetd host, running real
# corosync-qnetd. Needs python3-fusepy, socat, corosync-qnetd and corosync-qdevice besides
# scripts/setup.sh's packages (scripts/setup-lab.sh installs them).
#
#   tests/lab/lab.sh up | down | status
#   tests/lab/lab.sh exec NODE CMD...        run CMD inside NODE (pve1|pve2|pve3, or its hostname)
#   tests/lab/lab.sh shell NODE              interactive shell inside NODE
#   tests/lab/lab.sh kill-fuse NODE          SIGKILL the node's FUSE (pmxcfs) process: stale /etc/pve
#   tests/lab/lab.sh stop-corosync NODE | start-corosync NODE | kill-corosync NODE (SIGKILL)
#   tests/lab/lab.sh cut-link [N] | heal-link [N]   cut / restore the wire between pve1 and pve2:
#                                            every link, or only corosync link N (0: 10.99.0.x,
#                                            1: 10.99.1.x); both nodes still reach qnetd
#   tests/lab/lab.sh power-off NODE          a silent loss: NODE's links down, every process in it
#                                            SIGKILLed (corosync, qdevice, qnetd, pmxcfs, sshd)
#   tests/lab/lab.sh power-on NODE           links up, daemons started as a booted node does:
#                                            pmxcfs + corosync (+ corosync-qdevice when
#                                            corosync.conf has a device), qnetd on pve3; sshd
#   tests/lab/lab.sh reinstall NODE          pve1|pve2 comes back as a fresh Proxmox install: no
#                                            cluster config, empty /etc/pve in local mode, new
#                                            ssh host key, the fresh-install /etc/hosts
#   tests/lab/lab.sh wait NODE COND [TIMEOUT_S]   COND: quorate | blocked | members=N | rw | ro |
#                                            healthy | stale | unmounted | flag=WORD (default
#                                            timeout 30 s; rw/ro: pmxcfs's quorum, /etc/pve 0755
#                                            or 0555; flag=: a word of corosync-quorumtool's Flags)
#   tests/lab/lab.sh ssh NODE CMD...         a fresh key login from the controller (no ControlPersist)
#   tests/lab/lab.sh ssh-reset               end the ssh masters Ansible keeps (ControlPersist)
#   tests/lab/lab.sh ansible ARGS... | ansible-playbook ARGS...   the venv's tools against the lab
#   tests/lab/lab.sh env                     print the exports for running Ansible against the lab
#
# Node pve1: hostname tartanpion, private (cluster, link0) address 10.99.0.1/24, link1 10.99.1.1/24,
#            public 192.0.2.1/24, Proxmox installer's /etc/hosts (the name resolves to the public
#            address)
# Node pve2: hostname bismuth,    link0 10.99.0.2/24, link1 10.99.1.2/24, public 192.0.2.2/24,
#            Debian's /etc/hosts (127.0.1.1 only: its pve-cluster refuses to start until
#            hosts_pin ran)
# Node pve3: hostname qnetd, 10.99.9.3 (on its lo), reached from pve1 over 10.99.31.0/24 and
#            from pve2 over 10.99.32.0/24 (one veth each); runs corosync-qnetd -f (CA made by
#            corosync-qnetd-certutil -i at up, as Debian's postinst does)
# (link0 and link1 each: a bridge in the lab's "wire" namespace, so a cut drops the carrier and
# the nodes keep their own addresses; domain elao.local).
# Options read at `up` (kept for reinstall): PVE2NODE_LAB_NO_TRUST=1 (no root ssh trust between
# the nodes: each has its own root key, authorized_keys holds only the controller's key, no
# known_hosts), PVE2NODE_LAB_INVENTORY_NAMES=alias (inventory hosts node-a, node-b with
# ansible_host instead of the host names).
# State lives in $PVE2NODE_LAB_DIR (default: <repo>/.lab); `down` removes it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=standins/lab-lib.sh
. "$here/standins/lab-lib.sh"

LAB=${PVE2NODE_LAB_DIR:-$repo/.lab}
VENV=${PVE2NODE_VENV:-$repo/.venv}
NODES=(pve1 pve2)       # the Proxmox nodes
ALLN=(pve1 pve2 pve3)   # every namespace node (pve3: the qnetd host)
NETNS=(pve1 pve2 pve3 wire)
# Network namespace names: PVE2NODE_LAB_NS (default "") prefixes them, so several labs (each with
# its own PVE2NODE_LAB_DIR) can run on one machine; node names on the command line stay pve1/pve2.
NSP=${PVE2NODE_LAB_NS:-}
[[ $NSP =~ ^[a-z0-9-]{0,8}$ ]] || { echo "lab: PVE2NODE_LAB_NS must be up to 8 of [a-z0-9-]" >&2; exit 2; }
declare -A HOSTOF=([pve1]=tartanpion [pve2]=bismuth [pve3]=qnetd)
declare -A PRIV=([pve1]=10.99.0.1 [pve2]=10.99.0.2 [pve3]=10.99.9.3)
declare -A LINK1=([pve1]=10.99.1.1 [pve2]=10.99.1.2)
declare -A PUB=([pve1]=192.0.2.1 [pve2]=192.0.2.2)
declare -A ALIAS=([pve1]=node-a [pve2]=node-b)
# each Proxmox node's own link to qnetd: its end, qnetd's end (qnetd's address sits on its lo)
declare -A QLINK=([pve1]=10.99.31.1 [pve2]=10.99.32.2)
declare -A QPEER=([pve1]=10.99.31.3 [pve2]=10.99.32.3)
QNETD_IP=${PRIV[pve3]}

# the node's own interfaces (power-off takes them down): the two corosync links, its qnetd link
declare -A IFACES=([pve1]="eth0 eth1 qnetd" [pve2]="eth0 eth1 qnetd" [pve3]="pve1 pve2")
DOMAIN=elao.local
MARK=$LAB/.pve2node-lab
NODE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The ssh transport into the nodes: socat with TCP_NODELAY (default), or nc (the old relay,
# ~40 ms of Nagle stall on most exchanges; kept to measure the difference).
RELAY=${PVE2NODE_LAB_RELAY:-socat}

say() { printf 'lab: %s\n' "$*"; }
fail() { printf 'lab: %s\n' "$*" >&2; exit 1; }

node_of() {
  case ${1:-} in
    pve1 | tartanpion | node-a) echo pve1 ;;
    pve2 | bismuth | node-b) echo pve2 ;;
    pve3 | qnetd | qnetd.elao.local) echo pve3 ;;
    *) fail "unknown node '${1:-}' (pve1|pve2|pve3|tartanpion|bismuth|qnetd)" ;;
  esac
}
# pve_node_of NAME: like node_of, but only the Proxmox nodes pve1, pve2.
pve_node_of() {
  local n
  n=$(node_of "$@")
  [[ $n != pve3 ]] || fail "'${1:-}' is the qnetd host, not a Proxmox node (pve1|pve2)"
  echo "$n"
}
# opt NAME: an option recorded at `up` (before that: the environment's PVE2NODE_LAB_NAME).
opt() {
  if [[ -r $LAB/options ]]; then
    sed -n "s/^$1=//p" "$LAB/options"
  else
    printenv "PVE2NODE_LAB_$1" || true
  fi
}
# anchor_ready PID HOSTMNT: PID is the node's anchor (`sleep`) in its own mount namespace.
anchor_ready() { alive "$1" sleep && [[ $(readlink "/proc/$1/ns/mnt" 2>/dev/null) != "$2" ]]; }
anchor_of() { pid_from "$LAB/nodes/$1/anchor.pid"; }
ns() { printf '%s%s' "$NSP" "$1"; }
netns_exists() { [[ -e /run/netns/$NSP$1 ]]; }

# netns_owner NODE: the lab dir whose anchor lives in network namespace NODE (empty if none).
netns_owner() {
  local p cmd
  netns_exists "$1" || return 0
  for p in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
    cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    if [[ $cmd == lab-anchor:* ]]; then
      cmd=${cmd#lab-anchor:}
      printf '%s\n' "${cmd% infinity }"
      return 0
    fi
  done
}

# check_not_foreign: refuse to touch namespaces pve1/pve2 that belong to another live lab dir.
check_not_foreign() {
  local n o
  for n in "${ALLN[@]}"; do
    o=$(netns_owner "$n")
    if [[ -n $o && $o != "$LAB" && -e $o/.pve2node-lab ]]; then
      fail "namespace $n belongs to the lab in $o; take it down first: PVE2NODE_LAB_DIR=$o $0 down"
    fi
  done
}

# in_node NODE CMD...: run CMD in NODE's network, mount and UTS namespaces, clean environment.
in_node() {
  local n=$1 a
  shift
  a=$(anchor_of "$n")
  alive "$a" || fail "node $n is not up (run: $0 up)"
  nsenter -t "$a" -m -u -n --wdns=/root env -i PATH="$NODE_PATH" HOME=/root USER=root LOGNAME=root \
    LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

# lab_pids: every live process in a lab node's network namespace or in an anchor's mount
# namespace, and the ssh client masters Ansible leaves behind (ControlPersist) with their
# sockets in the lab dir. One pass over /proc.
lab_pids() {
  local n a want=() line pid c cmd
  for n in "${NETNS[@]}"; do

    a=$(anchor_of "$n")
    if alive "$a"; then want+=("$(readlink "/proc/$a/ns/mnt" 2>/dev/null || true)"); fi
    if netns_exists "$n"; then want+=("net:[$(stat -L -c %i "/run/netns/$NSP$n" 2>/dev/null || true)]"); fi
  done
  if ((${#want[@]})); then
    # lines: '/proc/PID/ns/net' -> 'net:[INODE]'
    stat -c %N /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt 2>/dev/null | while read -r line; do
      pid=${line#\'/proc/}
      pid=${pid%%/*}
      line=${line##* -> }
      line=${line//\'/}
      for a in "${want[@]}"; do
        if [[ $line == "$a" && $pid != "$$" ]]; then alive "$pid" && echo "$pid"; break; fi
      done
    done | sort -u
  fi
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    c=""
    { read -r c <"/proc/$pid/comm"; } 2>/dev/null || continue
    [[ $c == ssh ]] || continue
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    [[ $cmd == *"$LAB/"* ]] && alive "$pid" && echo "$pid"
  done
  return 0
}

cmd_down() {
  local t0=$EPOCHREALTIME n pids=() p i left made=0
  # /run/netns: unmount it if our `ip netns add` made it a mount point (recorded in the lab dir;
  # when the lab dir itself was lost, an empty one is assumed to be ours)
  [[ -e $LAB/run-netns-made || ! -e $MARK ]] && made=1
  if [[ ! -e $MARK ]] && ! netns_exists pve1 && ! netns_exists pve2 && ! netns_exists pve3 && ! netns_exists wire; then
    say "down: nothing to do"
    return 0
  fi
  check_not_foreign
  # 1. the services, gently (corosync leaves the membership, bindfs unmounts), nodes in parallel
  for n in "${NODES[@]}"; do
    if alive "$(anchor_of "$n")"; then
      (
        in_node "$n" /usr/local/sbin/pve-cluster stop >/dev/null 2>&1 || true
        in_node "$n" /usr/local/sbin/lab-corosync stop >/dev/null 2>&1 || true
      ) &
    fi
  done
  wait
  # 2. every process left in the nodes' namespaces (sshd, sessions, anchors), and ssh masters
  mapfile -t pids < <(lab_pids)
  if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; fi
  for ((i = 0; i < 50; i++)); do
    left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  for ((i = 0; i < 30; i++)); do
    left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  ((left == 0)) || say "down: warning: processes still alive: $(for p in "${pids[@]}"; do alive "$p" && printf '%s ' "$p"; done)"
  # 3. namespaces, and /run/netns if we made it a mount point
  for n in "${NETNS[@]}"; do

    if netns_exists "$n"; then ip netns del "$(ns "$n")" 2>/dev/null || { umount -l "/run/netns/$NSP$n" 2>/dev/null; rm -f "/run/netns/$NSP$n"; }; fi
  done
  if ((made)) && mountpoint -q /run/netns && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
    umount /run/netns 2>/dev/null || umount -l /run/netns
    rmdir /run/netns 2>/dev/null || true
  fi
  # 4. mounts of the lab dir in this namespace (none expected), then the lab dir itself
  while read -r p; do umount -l "$p" 2>/dev/null || true; done < <(awk -v d="$LAB/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  if [[ -e $MARK ]]; then rm -rf --one-file-system "$LAB"; fi
  say "down in $(elapsed "$t0") s"
}

# fresh_hosts NODE: the /etc/hosts of a fresh install of NODE.
fresh_hosts() {
  local n=$1 h=${HOSTOF[$1]}
  if [[ $n == pve1 ]]; then
    # a fresh Proxmox VE install: the installer's /etc/hosts (the name on the public address)
    cat <<HOSTS
127.0.0.1 localhost.localdomain localhost
${PUB[$n]} $h.$DOMAIN $h

# The following lines are desirable for IPv6 capable hosts

::1     ip6-localhost ip6-loopback
fe00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
ff02::3 ip6-allhosts
HOSTS
  else
    # Proxmox VE installed over Debian (pve2), or plain Debian (pve3, the qnetd host):
    # Debian's /etc/hosts (the name only on 127.0.1.1)
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s.%s\t%s\n\n%s\n%s\n%s\n%s\n' "$h" "$DOMAIN" "$h" \
      "# The following lines are desirable for IPv6 capable hosts" "::1     localhost ip6-localhost ip6-loopback" \
      "ff02::1 ip6-allnodes" "ff02::2 ip6-allrouters"
  fi
}

# write_node_files NODE: the node's lab dirs, /etc/hostname and /etc/hosts (fresh install),
# stand-ins, root's ssh files and sshd's config. Root's key is the lab key (also the
# controller's, authorised everywhere, known_hosts of both nodes) unless the option NO_TRUST:
# then the node's own key, authorized_keys with only the controller's key, no known_hosts.
write_node_files() {
  local n=$1 d=$LAB/nodes/$1 h=${HOSTOF[$1]} o rootkey=$LAB/ssh/id_ed25519
  mkdir -p "$d"/{etc.upper/pve,etc.work,varlib.upper,varlib.work,corosync,varlib,varlog,run/lab,run/sshd,run/lock,root/.ssh,sbin,pmxcfs-local,log,state}
  chmod 0755 "$d/run/sshd"
  chmod 0700 "$d/root" "$d/root/.ssh"
  echo "$h" >"$d/etc.upper/hostname"
  fresh_hosts "$n" >"$d/etc.upper/hosts"
  cp "$here"/standins/{pvecm,pve-cluster,pmxcfs,pveversion,lab-corosync,lab-corosync-conf,lab-qdevice,lab-qnetd,lab-lib.sh} "$d/sbin/"
  cat >"$d/sbin/lab.conf" <<CONF
LAB=$LAB
NODE=$n
NODE_DIR=$d
HOST=$h
PRIVATE_IP=${PRIV[$n]}
PUBLIC_IP=${PUB[$n]:-}
CONF
  if [[ $(opt NO_TRUST) == 1 && $n != pve3 ]]; then
    rootkey=$LAB/ssh/root_$n
    [[ -e $rootkey ]] || ssh-keygen -q -t ed25519 -N '' -C "root@$h" -f "$rootkey"
  fi
  cp "$rootkey" "$d/root/.ssh/id_ed25519"
  cp "$rootkey.pub" "$d/root/.ssh/id_ed25519.pub"
  cp "$LAB/ssh/id_ed25519.pub" "$d/root/.ssh/authorized_keys"
  if [[ $(opt NO_TRUST) != 1 && $n != pve3 ]]; then
    for o in "${NODES[@]}"; do
      printf '%s,%s,%s,%s %s\n' "${HOSTOF[$o]}" "${HOSTOF[$o]}.$DOMAIN" "${PRIV[$o]}" "${PUB[$o]}" \
        "$(cut -d' ' -f1-2 "$LAB/ssh/host_$o.pub")"
    done >"$d/root/.ssh/known_hosts"
  fi
  chmod 0600 "$d/root/.ssh/"*
  cat >"$LAB/ssh/sshd_config.$n" <<SSHD
ListenAddress ${PRIV[$n]}:22
HostKey $LAB/ssh/host_$n
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
AcceptEnv LANG LC_*
PrintMotd no
SSHD
}

# setup_node_mounts NODE: runs inside the node (mount + UTS namespace already private).
node_setup_script() {
  local d=$LAB/nodes/$1
  cat <<SCRIPT
set -euo pipefail
hostname ${HOSTOF[$1]}
mount -t overlay lab-etc -o lowerdir=/etc,upperdir=$d/etc.upper,workdir=$d/etc.work /etc
mount --bind $d/corosync /etc/corosync
# /var/lib of the node: its own writes (pve2node's backups in /var/lib/pve2node, ...) stay in the lab
mount -t overlay lab-varlib -o lowerdir=/var/lib,upperdir=$d/varlib.upper,workdir=$d/varlib.work /var/lib
mount --bind $d/varlib /var/lib/corosync
mount --bind $d/varlog /var/log/corosync
mount --bind $d/run /run
mount --bind $d/root /root
mount --bind $d/sbin /usr/local/sbin
mount -t tmpfs -o mode=1777,size=256m lab-shm /dev/shm
SCRIPT
}

# make_network: the namespaces and links. pve1 and pve2: link0 (eth0: 10.99.0.x + the public
# 192.0.2.x) and link1 (eth1: 10.99.1.x), each through a bridge in the "wire" namespace (cut-link
# takes the wire's ports down: the nodes' interfaces lose their carrier but keep their
# addresses, so the controller still reaches each node); each node's own veth to pve3 (qnetd),
# whose address 10.99.9.3 sits on its lo.
make_network() {
  local n k w
  for n in "${NETNS[@]}"; do
    ip netns add "$(ns "$n")"
    ip -n "$(ns "$n")" link set lo up
  done
  w=$(ns wire)
  for k in 0 1; do
    ip -n "$w" link add "br$k" type bridge
    for n in "${NODES[@]}"; do
      ip link add "eth$k" netns "$(ns "$n")" type veth peer name "l$k${n#pve}" netns "$w"
      ip -n "$w" link set "l$k${n#pve}" master "br$k" up
    done
    ip -n "$w" link set "br$k" up
  done
  ip -n "$(ns pve3)" addr add "$QNETD_IP/32" dev lo
  for n in "${NODES[@]}"; do
    ip -n "$(ns "$n")" addr add "${PRIV[$n]}/24" dev eth0
    ip -n "$(ns "$n")" addr add "${PUB[$n]}/24" dev eth0
    ip -n "$(ns "$n")" addr add "${LINK1[$n]}/24" dev eth1
    ip link add qnetd netns "$(ns "$n")" type veth peer name "$n" netns "$(ns pve3)"
    ip -n "$(ns "$n")" addr add "${QLINK[$n]}/24" dev qnetd
    ip -n "$(ns pve3)" addr add "${QPEER[$n]}/24" dev "$n"
  done
  # (up: also the routes to qnetd)
  for n in "${ALLN[@]}"; do links_set "$n" up; done
}

# links_set NODE up|down: NODE's own interfaces (not lo); up also puts back the route to qnetd
# (the kernel drops a route through an interface taken down, and puts back only the prefix ones).
links_set() {
  local i
  for i in ${IFACES[$1]}; do ip -n "$(ns "$1")" link set "$i" "$2"; done
  if [[ $2 == up && -n ${QPEER[$1]:-} ]]; then
    ip -n "$(ns "$1")" route replace "$QNETD_IP/32" via "${QPEER[$1]}" dev qnetd onlink ||
      say "$1: warning: no route to qnetd ($QNETD_IP via ${QPEER[$1]})"
  fi
}

# start_anchor NODE: the node's mount + UTS namespace, anchored by a long-lived process in its
# network namespace, with the node's mounts; returns once they are made.
start_anchor() {
  local n=$1 a hostmnt
  hostmnt=$(readlink /proc/self/ns/mnt)
  # argv[0] names the owning lab dir (see netns_owner); the command is still `sleep`
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash
  setsid ip netns exec "$(ns "$n")" unshare -m -u --propagation private \
    bash -c 'exec -a "$0" sleep infinity' "lab-anchor:$LAB" </dev/null >/dev/null 2>&1 &
  echo $! >"$LAB/nodes/$n/anchor.pid"
  a=$(anchor_of "$n")
  wait_for 5 anchor_ready "$a" "$hostmnt" || fail "node $n: anchor process did not start"
  nsenter -t "$a" -m -u -n bash -c "$(node_setup_script "$n")" || fail "node $n: mount setup failed"
}

# start_sshd NODE: sshd on the node's address; returns once it answers.
start_sshd() {
  local n=$1
  in_node "$n" /usr/sbin/sshd -f "$LAB/ssh/sshd_config.$n" -E "$LAB/nodes/$n/log/sshd.log" ||
    fail "node $n: sshd failed (see $LAB/nodes/$n/log/sshd.log)"
  wait_for 10 in_node "$n" nc -z -w 1 "${PRIV[$n]}" 22 || fail "node $n: sshd not answering on ${PRIV[$n]}:22"
}

# qnetd_first_boot: on pve3, the qnetd CA as Debian's postinst makes it, then the daemon.
qnetd_first_boot() {
  in_node pve3 corosync-qnetd-certutil -i >"$LAB/nodes/pve3/log/qnetd-certutil.log" 2>&1 ||
    fail "pve3: corosync-qnetd-certutil -i failed (see $LAB/nodes/pve3/log/qnetd-certutil.log)"
  in_node pve3 /usr/local/sbin/lab-qnetd start >/dev/null || fail "pve3: corosync-qnetd did not start"
}

cmd_up() {
  local t0=$EPOCHREALTIME n qpid c
  [[ $(id -u) == 0 ]] || fail "must run as root"
  for c in corosync corosync-keygen corosync-qnetd corosync-qnetd-certutil corosync-qdevice nsenter unshare ip sshd nc socat ssh-keygen /usr/bin/python3; do
    command -v "$c" >/dev/null || fail "missing $c (run scripts/setup-lab.sh)"
  done
  /usr/bin/python3 -c 'import fusepy' 2>/dev/null || fail "missing python3-fusepy (run scripts/setup.sh)"
  if [[ -e $MARK ]] || netns_exists pve1 || netns_exists pve2 || netns_exists pve3 || netns_exists wire; then
    check_not_foreign
    if [[ -e $MARK && -e $LAB/up-done ]] && cmd_status >/dev/null 2>&1; then
      say "up: already up ($LAB)"
      return 0
    fi
    say "up: cleaning a previous (failed or half-up) lab first"
    cmd_down
  fi
  [[ -e $LAB && -n $(ls -A "$LAB" 2>/dev/null) ]] && fail "$LAB exists and is not a lab dir; remove it or set PVE2NODE_LAB_DIR"
  mkdir -p "$LAB/ssh" "$LAB/clusters" "$LAB/ansible/tmp"
  touch "$MARK"
  printf 'NO_TRUST=%s\nINVENTORY_NAMES=%s\n' "${PVE2NODE_LAB_NO_TRUST:-0}" "${PVE2NODE_LAB_INVENTORY_NAMES:-hostname}" >"$LAB/options"
  # keys: the Ansible/peer client key, one host key per node
  ssh-keygen -q -t ed25519 -N '' -C pve2node-lab -f "$LAB/ssh/id_ed25519"
  for n in "${ALLN[@]}"; do ssh-keygen -q -t ed25519 -N '' -C "lab-$n" -f "$LAB/ssh/host_$n"; done
  # sshd's host key as ssh_trust reads it (ssh_host_key_dir in the inventory; a symlink, so a
  # reinstall's new key shows there too)
  for n in "${ALLN[@]}"; do
    mkdir -p "$LAB/ssh/hostkeys-$n"
    ln -sfn "../host_$n.pub" "$LAB/ssh/hostkeys-$n/ssh_host_ed25519_key.pub"
  done
  for n in "${ALLN[@]}"; do write_node_files "$n"; done
  mountpoint -q /run/netns 2>/dev/null || touch "$LAB/run-netns-made"
  make_network
  for n in "${ALLN[@]}"; do start_anchor "$n"; done
  # pve3: the qnetd CA (~1.3 s) and daemon, meanwhile the Proxmox nodes
  qnetd_first_boot &
  qpid=$!
  # services: pve-cluster (local mode: no cluster yet) and sshd. bismuth's pve-cluster refuses
  # to start, as on a fresh Debian-based install: its name resolves only to 127.0.1.1.
  for n in "${NODES[@]}"; do
    if [[ $n == pve1 ]]; then
      in_node "$n" /usr/local/sbin/pve-cluster start || fail "node $n: pve-cluster start failed"
    elif in_node "$n" /usr/local/sbin/pve-cluster start 2>"$LAB/nodes/$n/log/first-start.err"; then
      fail "node $n: pve-cluster started although ${HOSTOF[$n]} resolves only to loopback"
    else
      say "$n: pve-cluster refused to start, as expected before hosts_pin: $(cat "$LAB/nodes/$n/log/first-start.err")"
    fi
  done
  wait "$qpid" || fail "node pve3: qnetd setup failed"
  for n in "${ALLN[@]}"; do start_sshd "$n"; done
  write_inventory
  touch "$LAB/up-done"
  say "up in $(elapsed "$t0") s: nodes pve1 (tartanpion ${PRIV[pve1]}), pve2 (bismuth ${PRIV[pve2]}), pve3 (qnetd $QNETD_IP); inventory $LAB/inventory.ini"
}

# relay_cmd NODE: the ssh ProxyCommand into NODE's network namespace (%h %p left to ssh).
relay_cmd() {
  case $RELAY in
    nc) printf 'ip netns exec %s nc %%h %%p' "$(ns "$1")" ;;
    *) printf 'ip netns exec %s socat - TCP:%%h:%%p,nodelay' "$(ns "$1")" ;;
  esac
}

# ssh_args NODE: the inventory's ansible_ssh_common_args of NODE.
ssh_args() {
  printf '%s' "ansible_ssh_common_args='-F /dev/null -o ProxyCommand=\"$(relay_cmd "$1")\" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i $LAB/ssh/id_ed25519'"
}

# inv_name NODE: the node's inventory host name (its hostname, or node-a/node-b with the
# option INVENTORY_NAMES=alias; the qnetd host: its FQDN, as a host may not share the name of
# its group `qnetd`).
inv_name() {
  if [[ $1 == pve3 ]]; then
    echo "${HOSTOF[pve3]}.$DOMAIN"
  elif [[ $(opt INVENTORY_NAMES) == alias ]]; then
    echo "${ALIAS[$1]}"
  else
    echo "${HOSTOF[$1]}"
  fi
}

write_inventory() {
  local n
  {
    echo "# Generated by tests/lab/lab.sh up: the two lab nodes and the qnetd host, reached over ssh inside their namespaces."
    echo "[pve]"
    for n in "${NODES[@]}"; do
      printf '%s ansible_host=%s lab_node=%s private_ip=%s link1_ip=%s public_ip=%s fqdn=%s ssh_host_key_dir=%s %s\n' \
        "$(inv_name "$n")" "${PRIV[$n]}" "$n" "${PRIV[$n]}" "${LINK1[$n]}" "${PUB[$n]}" "${HOSTOF[$n]}.$DOMAIN" "$LAB/ssh/hostkeys-$n" "$(ssh_args "$n")"
    done
    echo
    echo "[pve:vars]"
    echo "ansible_user=root"
    echo "ansible_ssh_private_key_file=$LAB/ssh/id_ed25519"
    echo "ansible_python_interpreter=/usr/bin/python3"
    echo "cluster_name=elao"
    echo "domain=$DOMAIN"
    echo "lab_dir=$LAB"
    echo "# the pve-cluster stand-in (for playbooks/recover.yml: fuse_recover's start_command)"
    echo 'pve_cluster_start=["/usr/local/sbin/pve-cluster", "start"]'
    echo "# no systemd in the lab: corosync-qdevice is started and stopped by the lab's service script"
    echo 'qdevice_start_command=["/usr/local/sbin/lab-qdevice", "start"]'
    echo 'qdevice_stop_command=["/usr/local/sbin/lab-qdevice", "stop"]'
    echo
    echo "# the QDevice's qnetd host (corosync-qnetd), outside the cluster"
    echo "[qnetd]"
    printf '%s ansible_host=%s lab_node=pve3 fqdn=%s.%s %s\n' "$(inv_name pve3)" "$QNETD_IP" "${HOSTOF[pve3]}" "$DOMAIN" "$(ssh_args pve3)"
    echo
    echo "[qnetd:vars]"
    echo "ansible_user=root"
    echo "ansible_ssh_private_key_file=$LAB/ssh/id_ed25519"
    echo "ansible_python_interpreter=/usr/bin/python3"
  } >"$LAB/inventory.ini"
  cat >"$LAB/env.sh" <<ENV
# source this to run Ansible against the lab: . $LAB/env.sh
export ANSIBLE_CONFIG=$repo/ansible.cfg
export ANSIBLE_INVENTORY=$LAB/inventory.ini
export ANSIBLE_HOME=$LAB/ansible
export ANSIBLE_LOCAL_TEMP=$LAB/ansible/tmp
export ANSIBLE_SSH_CONTROL_PATH_DIR=$LAB/ansible/cp
ENV
}

cmd_status() {
  local n a rc=0 up=0 k
  if [[ ! -e $MARK ]]; then
    echo "lab: down ($LAB)"
    netns_exists pve1 || netns_exists pve2 || netns_exists pve3 || netns_exists wire && echo "lab: but namespaces exist (run down)"
    return 3
  fi
  echo "lab: dir $LAB"
  for n in "${ALLN[@]}"; do
    a=$(anchor_of "$n")
    if ! alive "$a" || ! netns_exists "$n"; then
      echo "$n: DOWN (anchor ${a:-none})"
      rc=1
      continue
    fi
    up=$((up + 1))
    if [[ -e $LAB/nodes/$n/powered-off ]]; then
      echo "$n: POWERED OFF (power-on $n)"
      rc=1
      continue
    fi
    echo "$n: up, anchor $a, hostname $(in_node "$n" hostname), ${PRIV[$n]}${PUB[$n]:+ / ${PUB[$n]}}"
    if [[ $n == pve3 ]]; then
      echo "  $(in_node "$n" /usr/local/sbin/lab-qnetd status 2>&1 || true)"
    else
      echo "  $(in_node "$n" /usr/local/sbin/pve-cluster status 2>&1 || true)"
      echo "  $(in_node "$n" /usr/local/sbin/lab-corosync status 2>&1 || true)"
      echo "  $(in_node "$n" /usr/local/sbin/lab-qdevice status 2>&1 || true)"
      echo "  quorum: $(in_node "$n" bash -c 'corosync-quorumtool -s 2>&1 | grep -E "^(Quorate|Nodes|Flags):" | tr -s " " | paste -sd " "' || true)"
    fi
    echo "  sshd: $(alive "$(pid_from "$LAB/nodes/$n/run/sshd.pid")" && echo "running (pid $(pid_from "$LAB/nodes/$n/run/sshd.pid"))" || echo stopped)"
    alive "$(pid_from "$LAB/nodes/$n/run/sshd.pid")" sshd || rc=1
  done
  for k in 0 1; do [[ -e $LAB/cut-$k ]] && echo "link$k between pve1 and pve2: CUT (heal-link $k)"; done
  ((up == ${#ALLN[@]})) || rc=1
  if [[ ! -e $LAB/up-done ]]; then echo "lab: incomplete: 'up' did not finish (run: $0 down, or up again)"; rc=1; fi
  return $rc
}

# cond_holds NODE COND: one check of a `wait` condition inside NODE.
cond_holds() {
  local n=$1 c=$2 rc=0 out
  case $c in
    quorate | blocked | members=* | flag=* | noflag=*)
      out=$(in_node "$n" timeout 5 corosync-quorumtool -s 2>/dev/null) || rc=$?
      case $c in
        quorate) ((rc == 0)) ;;
        blocked) ((rc == 2)) ;;
        members=*) [[ $out =~ Nodes:\ +${c#members=}$'\n' ]] ;;
        flag=*) [[ $out =~ Flags:\ +([^$'\n']*) && " ${BASH_REMATCH[1]} " == *" ${c#flag=} "* ]] ;;
        noflag=*) [[ $out =~ Flags:\ +([^$'\n']*) && " ${BASH_REMATCH[1]} " != *" ${c#noflag=} "* ]] ;;
      esac ;;
    rw | ro) [[ $(in_node "$n" bash -c ". /usr/local/sbin/lab-lib.sh; pmxcfs_mode /etc/pve") == "$c" ]] ;;
    healthy | stale | unmounted) [[ $(in_node "$n" bash -c ". /usr/local/sbin/lab-lib.sh; pve_state /etc/pve") == "$c" ]] ;;
    *) fail "unknown condition '$c' (quorate|blocked|members=N|flag=WORD|noflag=WORD|rw|ro|healthy|stale|unmounted)" ;;
  esac
}

# node_pids NODE: every live process in NODE's network namespace or its anchor's mount
# namespace, but the anchor itself (the relays of ssh sessions into it included).
node_pids() {
  local n=$1 a want=() line pid w
  a=$(anchor_of "$n")
  if alive "$a"; then want+=("$(readlink "/proc/$a/ns/mnt" 2>/dev/null || true)"); fi
  if netns_exists "$n"; then want+=("net:[$(stat -L -c %i "/run/netns/$NSP$n" 2>/dev/null || true)]"); fi
  ((${#want[@]})) || return 0
  stat -c %N /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt 2>/dev/null | while read -r line; do
    pid=${line#\'/proc/}
    pid=${pid%%/*}
    line=${line##* -> }
    line=${line//\'/}
    for w in "${want[@]}"; do
      if [[ $line == "$w" && $pid != "$$" && $pid != "$a" ]]; then alive "$pid" && echo "$pid"; break; fi
    done
  done | sort -u
}

# kill_node NODE [anchor]: SIGKILL every process in NODE (and its anchor when asked); returns
# once they are gone (bounded).
kill_node() {
  local n=$1 pids=() p i left=0
  mapfile -t pids < <(node_pids "$n")
  [[ ${2:-} == anchor ]] && pids+=("$(anchor_of "$n")")
  ((${#pids[@]})) || return 0
  kill -KILL "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  say "$n: warning: processes still alive after SIGKILL: $(for p in "${pids[@]}"; do alive "$p" && printf '%s ' "$p"; done)"
}

# boot_services NODE: the daemons of a booted node. A Proxmox node: pve-cluster (pmxcfs; it
# refuses, as on boot, while the name resolves only to loopback), corosync when
# /etc/corosync/corosync.conf exists, corosync-qdevice when that file has a quorum device and
# the node has its certificate database; pve3: corosync-qnetd. Then sshd.
boot_services() {
  local n=$1 d=$LAB/nodes/$1
  if [[ $n == pve3 ]]; then
    in_node "$n" /usr/local/sbin/lab-qnetd start >>"$d/log/boot.log" 2>&1 || say "$n: corosync-qnetd did not start (see $d/log/boot.log)"
  else
    in_node "$n" /usr/local/sbin/pve-cluster start >>"$d/log/boot.log" 2>&1 || say "$n: pve-cluster did not start (see $d/log/boot.log)"
    if in_node "$n" test -e /etc/corosync/corosync.conf; then
      in_node "$n" /usr/local/sbin/lab-corosync start >>"$d/log/boot.log" 2>&1 || say "$n: corosync did not start (see $d/log/boot.log)"
      if in_node "$n" grep -qE '^[[:space:]]*model:[[:space:]]*net' /etc/corosync/corosync.conf &&
        in_node "$n" test -d /etc/corosync/qdevice/net/nssdb; then
        in_node "$n" /usr/local/sbin/lab-qdevice start >>"$d/log/boot.log" 2>&1 || say "$n: corosync-qdevice did not start (see $d/log/boot.log)"
      fi
    fi
  fi
  start_sshd "$n"
}

cmd_power_off() {
  local n=$1 t0=$EPOCHREALTIME
  [[ -e $LAB/nodes/$n/powered-off ]] && { say "$n: already powered off"; return 0; }
  links_set "$n" down
  kill_node "$n"
  touch "$LAB/nodes/$n/powered-off"
  say "$n (${HOSTOF[$n]}) powered off in $(elapsed "$t0") s: links down, every process SIGKILLed"
}

cmd_power_on() {
  local n=$1 t0=$EPOCHREALTIME
  [[ -e $LAB/nodes/$n/powered-off ]] || { say "$n: not powered off"; return 0; }
  alive "$(anchor_of "$n")" || fail "node $n: its anchor is gone (run: $0 down; $0 up)"
  # what a reboot clears: the dead /etc/pve mount, /dev/shm (a tmpfs), /run's pid files
  # shellcheck disable=SC2016 # runs in the node
  in_node "$n" bash -c '. /usr/local/sbin/lab-lib.sh; [[ -z $(fuse_mount_opts /etc/pve) ]] || umount -l /etc/pve; find /dev/shm -mindepth 1 -delete; rm -f /run/lab/*.pid /run/sshd.pid' || true
  links_set "$n" up
  rm -f "$LAB/nodes/$n/powered-off"
  boot_services "$n"
  say "$n (${HOSTOF[$n]}) powered on in $(elapsed "$t0") s"
}

cmd_reinstall() {
  local n=$1 d=$LAB/nodes/$1 t0=$EPOCHREALTIME
  links_set "$n" down
  kill_node "$n" anchor
  wait_for 5 bash -c "! kill -0 $(anchor_of "$n") 2>/dev/null" || true
  # the node's disk, as the installer leaves it: nothing of the old node but its logs
  rm -rf --one-file-system "$d"/{etc.upper,etc.work,varlib.upper,varlib.work,corosync,varlib,varlog,run,root,sbin,pmxcfs-local,state,powered-off}
  rm -f "$LAB/ssh/host_$n" "$LAB/ssh/host_$n.pub" "$LAB/ssh/root_$n" "$LAB/ssh/root_$n.pub"
  ssh-keygen -q -t ed25519 -N '' -C "lab-$n-reinstalled" -f "$LAB/ssh/host_$n"
  write_node_files "$n"
  echo "reinstalled at $(date '+%F %T')" >>"$d/log/boot.log"
  start_anchor "$n"
  links_set "$n" up
  boot_services "$n"
  say "$n (${HOSTOF[$n]}) reinstalled in $(elapsed "$t0") s: fresh /etc/hosts, no cluster, /etc/pve $(in_node "$n" /usr/local/sbin/pve-cluster status >/dev/null 2>&1 && echo "in local mode" || echo "not mounted (pve-cluster refused)"), new host key $(ssh-keygen -l -f "$LAB/ssh/host_$n.pub" | awk '{ print $2 }')"
}

# link_ports [N]: the wire's ports of corosync link N (both nodes' ends), or of every link.
link_ports() {
  case ${1:-} in
    "") echo l01 l02 l11 l12 ;;
    0 | 1) echo "l${1}1 l${1}2" ;;
    *) fail "unknown link '${1}' (0: 10.99.0.x, 1: 10.99.1.x; none: every link)" ;;
  esac
}

cmd_link() {
  local how=$1 k=${2:-} p
  if [[ ! -e $MARK ]] || ! netns_exists wire; then fail "lab is not up"; fi
  for p in $(link_ports "$k"); do ip -n "$(ns wire)" link set "$p" "$how"; done
  for p in ${k:-0 1}; do
    if [[ $how == down ]]; then touch "$LAB/cut-$p"; else rm -f "$LAB/cut-$p"; fi
  done
  say "$([[ $how == down ]] && echo cut || echo healed) $([[ -n $k ]] && echo "link$k" || echo "every link") between pve1 and pve2"
}


cmd=${1:-}
(($#)) && shift
case $cmd in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  exec) n=$(node_of "${1:-}"); shift; (($#)) || fail "usage: exec NODE CMD..."; in_node "$n" "$@" ;;
  shell) n=$(node_of "${1:-}"); in_node "$n" bash -i ;;
  cut-link) cmd_link down "${1:-}" ;;
  heal-link) cmd_link up "${1:-}" ;;
  power-off) n=$(node_of "${1:-}"); alive "$(anchor_of "$n")" || fail "node $n is not up (run: $0 up)"; cmd_power_off "$n" ;;
  power-on) n=$(node_of "${1:-}"); cmd_power_on "$n" ;;
  reinstall) n=$(pve_node_of "${1:-}"); alive "$(anchor_of "$n")" || fail "node $n is not up (run: $0 up)"; cmd_reinstall "$n" ;;
  kill-fuse)
    n=$(pve_node_of "${1:-}")
    p=$(pid_from "$LAB/nodes/$n/run/lab/pmxcfs.pid")
    alive "$p" pmxcfs || fail "node $n: no live pmxcfs process"
    kill -KILL "$p"
    wait_for 5 bash -c "! kill -0 $p 2>/dev/null || [[ \$(awk '{print \$3}' /proc/$p/stat 2>/dev/null) == Z ]]" || true
    say "killed pmxcfs $p of $n" ;;
  ssh)
    n=$(node_of "${1:-}")
    shift
    [[ -e $LAB/ssh/id_ed25519 ]] || fail "lab is not up"
    # shellcheck disable=SC2046 # the relay's words
    exec ssh -F /dev/null -o BatchMode=yes -o ControlMaster=no -o ControlPath=none -o ConnectTimeout=10 \
      -o ProxyCommand="$(relay_cmd "$n")" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o IdentitiesOnly=yes -o LogLevel=ERROR -i "$LAB/ssh/id_ed25519" "root@${PRIV[$n]}" "$@" ;;
  ssh-reset)
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      c=""
      { read -r c <"/proc/$p/comm"; } 2>/dev/null || continue
      [[ $c == ssh ]] || continue
      cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
      # a master renames itself "ssh: CONTROL_PATH [mux]", the path in the lab dir
      [[ $cmd == *"$LAB/"* ]] && kill -TERM "$p" 2>/dev/null
    done
    say "ssh masters ended" ;;
  stop-corosync) n=$(pve_node_of "${1:-}"); in_node "$n" /usr/local/sbin/lab-corosync stop ;;
  kill-corosync)
    n=$(pve_node_of "${1:-}")
    p=$(pid_from "$LAB/nodes/$n/run/lab/corosync.pid")
    alive "$p" corosync || fail "node $n: corosync is not running"
    kill -KILL "$p"
    say "killed corosync $p of $n (SIGKILL: a crash, the peer notices after the token timeout)" ;;
  start-corosync) n=$(pve_node_of "${1:-}"); in_node "$n" /usr/local/sbin/lab-corosync start ;;

  env) cat "$LAB/env.sh" ;;
  wait)
    n=$(node_of "${1:-}")
    c=${2:?usage: wait NODE COND [TIMEOUT_S]}
    t=${3:-30}
    t0=$EPOCHREALTIME
    if wait_for "$t" cond_holds "$n" "$c"; then
      say "$n: $c after $(elapsed "$t0") s"
    else
      fail "$n: not $c after $t s"
    fi ;;
  ansible | ansible-playbook | ansible-inventory)
    [[ -e $LAB/env.sh ]] || fail "lab is not up"
    # shellcheck source=/dev/null
    . "$LAB/env.sh"
    exec "$VENV/bin/$cmd" "$@" ;;
  *) sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
