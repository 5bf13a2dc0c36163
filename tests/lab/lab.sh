#!/bin/bash
# The pve2node two-node lab: two "Proxmox nodes" on this machine, each a network namespace plus
# its own mount and UTS namespace, running real corosync 3, a pve-cluster/pmxcfs stand-in
# (/etc/pve as a FUSE filesystem with PVE 8.1.3 pmxcfs's semantics), a pvecm stand-in and sshd
# (for Ansible). Needs python3-fusepy and socat besides scripts/setup.sh's packages.
#
#   tests/lab/lab.sh up | down | status
#   tests/lab/lab.sh exec NODE CMD...        run CMD inside NODE (pve1|pve2|tartanpion|bismuth)
#   tests/lab/lab.sh shell NODE              interactive shell inside NODE
#   tests/lab/lab.sh kill-fuse NODE          SIGKILL the node's FUSE (pmxcfs) process: stale /etc/pve
#   tests/lab/lab.sh stop-corosync NODE | start-corosync NODE | kill-corosync NODE (SIGKILL)
#   tests/lab/lab.sh wait NODE COND [TIMEOUT_S]   COND: quorate | blocked | members=N | rw | ro |
#                                            healthy | stale | unmounted (default timeout 30 s;
#                                            rw/ro: pmxcfs's quorum, /etc/pve 0755 or 0555)
#   tests/lab/lab.sh ssh NODE CMD...         a fresh key login from the controller (no ControlPersist)
#   tests/lab/lab.sh ssh-reset               end the ssh masters Ansible keeps (ControlPersist)
#   tests/lab/lab.sh ansible ARGS... | ansible-playbook ARGS...   the venv's tools against the lab
#   tests/lab/lab.sh env                     print the exports for running Ansible against the lab
#
# Node pve1: hostname tartanpion, private (cluster) address 10.99.0.1/24, public 192.0.2.1/24,
#            Proxmox installer's /etc/hosts (the name resolves to the public address)
# Node pve2: hostname bismuth,    private (cluster) address 10.99.0.2/24, public 192.0.2.2/24,
#            Debian's /etc/hosts (127.0.1.1 only: its pve-cluster refuses to start until
#            hosts_pin ran)
# (both on one veth pair that exists only inside the two namespaces; domain elao.local).
# State lives in $PVE2NODE_LAB_DIR (default: <repo>/.lab); `down` removes it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=standins/lab-lib.sh
. "$here/standins/lab-lib.sh"

LAB=${PVE2NODE_LAB_DIR:-$repo/.lab}
VENV=${PVE2NODE_VENV:-$repo/.venv}
NODES=(pve1 pve2)
# Network namespace names: PVE2NODE_LAB_NS (default "") prefixes them, so several labs (each with
# its own PVE2NODE_LAB_DIR) can run on one machine; node names on the command line stay pve1/pve2.
NSP=${PVE2NODE_LAB_NS:-}
[[ $NSP =~ ^[a-z0-9-]{0,8}$ ]] || { echo "lab: PVE2NODE_LAB_NS must be up to 8 of [a-z0-9-]" >&2; exit 2; }
declare -A HOSTOF=([pve1]=tartanpion [pve2]=bismuth)
declare -A PRIV=([pve1]=10.99.0.1 [pve2]=10.99.0.2)
declare -A PUB=([pve1]=192.0.2.1 [pve2]=192.0.2.2)
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
    pve1 | tartanpion) echo pve1 ;;
    pve2 | bismuth) echo pve2 ;;
    *) fail "unknown node '${1:-}' (pve1|pve2|tartanpion|bismuth)" ;;
  esac
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
  for n in "${NODES[@]}"; do
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
  for n in "${NODES[@]}"; do
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
  if [[ ! -e $MARK ]] && ! netns_exists pve1 && ! netns_exists pve2; then
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
  for n in "${NODES[@]}"; do
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

write_node_files() {
  local n=$1 d=$LAB/nodes/$1 h=${HOSTOF[$1]} o
  mkdir -p "$d"/{etc.upper/pve,etc.work,varlib.upper,varlib.work,corosync,varlib,varlog,run/lab,run/sshd,run/lock,root/.ssh,sbin,pmxcfs-local,log,state}
  chmod 0755 "$d/run/sshd"
  chmod 0700 "$d/root" "$d/root/.ssh"
  echo "$h" >"$d/etc.upper/hostname"
  if [[ $n == pve1 ]]; then
    # a fresh Proxmox VE install: the installer's /etc/hosts (the name on the public address)
    cat >"$d/etc.upper/hosts" <<HOSTS
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
    # Proxmox VE installed over Debian: Debian's /etc/hosts (the name only on 127.0.1.1)
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s.%s\t%s\n\n%s\n%s\n%s\n%s\n' "$h" "$DOMAIN" "$h" \
      "# The following lines are desirable for IPv6 capable hosts" "::1     localhost ip6-localhost ip6-loopback" \
      "ff02::1 ip6-allnodes" "ff02::2 ip6-allrouters" >"$d/etc.upper/hosts"
  fi
  cp "$here"/standins/{pvecm,pve-cluster,pmxcfs,pveversion,lab-corosync,lab-corosync-conf,lab-lib.sh} "$d/sbin/"
  cat >"$d/sbin/lab.conf" <<CONF
LAB=$LAB
NODE=$n
NODE_DIR=$d
HOST=$h
PRIVATE_IP=${PRIV[$n]}
PUBLIC_IP=${PUB[$n]}
CONF
  cp "$LAB/ssh/id_ed25519" "$d/root/.ssh/id_ed25519"
  cp "$LAB/ssh/id_ed25519.pub" "$d/root/.ssh/id_ed25519.pub"
  cp "$LAB/ssh/id_ed25519.pub" "$d/root/.ssh/authorized_keys"
  for o in "${NODES[@]}"; do
    printf '%s,%s,%s,%s %s\n' "${HOSTOF[$o]}" "${HOSTOF[$o]}.$DOMAIN" "${PRIV[$o]}" "${PUB[$o]}" \
      "$(cut -d' ' -f1-2 "$LAB/ssh/host_$o.pub")"
  done >"$d/root/.ssh/known_hosts"
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

cmd_up() {
  local t0=$EPOCHREALTIME n a hostmnt
  [[ $(id -u) == 0 ]] || fail "must run as root"
  for c in corosync corosync-keygen nsenter unshare ip sshd nc socat ssh-keygen /usr/bin/python3; do
    command -v "$c" >/dev/null || fail "missing $c (run scripts/setup.sh)"
  done
  /usr/bin/python3 -c 'import fusepy' 2>/dev/null || fail "missing python3-fusepy (run scripts/setup.sh)"
  if [[ -e $MARK ]] || netns_exists pve1 || netns_exists pve2; then
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
  # keys: the Ansible/peer client key, one host key per node
  ssh-keygen -q -t ed25519 -N '' -C pve2node-lab -f "$LAB/ssh/id_ed25519"
  for n in "${NODES[@]}"; do ssh-keygen -q -t ed25519 -N '' -C "lab-$n" -f "$LAB/ssh/host_$n"; done
  for n in "${NODES[@]}"; do write_node_files "$n"; done
  # network: one veth pair created directly inside the two namespaces
  mountpoint -q /run/netns 2>/dev/null || touch "$LAB/run-netns-made"
  for n in "${NODES[@]}"; do ip netns add "$(ns "$n")"; done
  ip link add eth0 netns "$(ns pve1)" type veth peer name eth0 netns "$(ns pve2)"
  for n in "${NODES[@]}"; do
    ip -n "$(ns "$n")" link set lo up
    ip -n "$(ns "$n")" addr add "${PRIV[$n]}/24" dev eth0
    ip -n "$(ns "$n")" addr add "${PUB[$n]}/24" dev eth0
    ip -n "$(ns "$n")" link set eth0 up
  done
  # nodes: mount + UTS namespace anchored by a long-lived process
  hostmnt=$(readlink /proc/self/ns/mnt)
  for n in "${NODES[@]}"; do
    # argv[0] names the owning lab dir (see netns_owner); the command is still `sleep`
    # shellcheck disable=SC2016 # $0 is expanded by the inner bash
    setsid ip netns exec "$(ns "$n")" unshare -m -u --propagation private \
      bash -c 'exec -a "$0" sleep infinity' "lab-anchor:$LAB" </dev/null >/dev/null 2>&1 &
    echo $! >"$LAB/nodes/$n/anchor.pid"
  done
  for n in "${NODES[@]}"; do
    a=$(anchor_of "$n")
    wait_for 5 anchor_ready "$a" "$hostmnt" ||
      fail "node $n: anchor process did not start"
    nsenter -t "$a" -m -u -n bash -c "$(node_setup_script "$n")" || fail "node $n: mount setup failed"
  done
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
    in_node "$n" /usr/sbin/sshd -f "$LAB/ssh/sshd_config.$n" -E "$LAB/nodes/$n/log/sshd.log" ||
      fail "node $n: sshd failed (see $LAB/nodes/$n/log/sshd.log)"
  done
  for n in "${NODES[@]}"; do
    wait_for 10 in_node "$n" nc -z -w 1 "${PRIV[$n]}" 22 || fail "node $n: sshd not answering on ${PRIV[$n]}:22"
  done
  write_inventory
  touch "$LAB/up-done"
  say "up in $(elapsed "$t0") s: nodes pve1 (tartanpion ${PRIV[pve1]}) and pve2 (bismuth ${PRIV[pve2]}); inventory $LAB/inventory.ini"
}

# relay_cmd NODE: the ssh ProxyCommand into NODE's network namespace (%h %p left to ssh).
relay_cmd() {
  case $RELAY in
    nc) printf 'ip netns exec %s nc %%h %%p' "$(ns "$1")" ;;
    *) printf 'ip netns exec %s socat - TCP:%%h:%%p,nodelay' "$(ns "$1")" ;;
  esac
}

write_inventory() {
  local n
  {
    echo "# Generated by tests/lab/lab.sh up: the two lab nodes, reached over ssh inside their namespaces."
    echo "[pve]"
    for n in "${NODES[@]}"; do
      printf '%s ansible_host=%s lab_node=%s private_ip=%s public_ip=%s fqdn=%s ' \
        "${HOSTOF[$n]}" "${PRIV[$n]}" "$n" "${PRIV[$n]}" "${PUB[$n]}" "${HOSTOF[$n]}.$DOMAIN"
      printf '%s\n' "ansible_ssh_common_args='-F /dev/null -o ProxyCommand=\"$(relay_cmd "$n")\" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i $LAB/ssh/id_ed25519'"
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
  local n a rc=0 up=0
  if [[ ! -e $MARK ]]; then echo "lab: down ($LAB)"; netns_exists pve1 || netns_exists pve2 && echo "lab: but namespaces exist (run down)"; return 3; fi
  echo "lab: dir $LAB"
  for n in "${NODES[@]}"; do
    a=$(anchor_of "$n")
    if ! alive "$a" || ! netns_exists "$n"; then
      echo "$n: DOWN (anchor ${a:-none})"
      rc=1
      continue
    fi
    up=$((up + 1))
    echo "$n: up, anchor $a, hostname $(in_node "$n" hostname), ${PRIV[$n]} / ${PUB[$n]}"
    echo "  $(in_node "$n" /usr/local/sbin/pve-cluster status 2>&1 || true)"
    echo "  $(in_node "$n" /usr/local/sbin/lab-corosync status 2>&1 || true)"
    echo "  quorum: $(in_node "$n" bash -c 'corosync-quorumtool -s 2>&1 | grep -E "^(Quorate|Nodes):" | tr -s " " | paste -sd " "' || true)"
    echo "  sshd: $(alive "$(pid_from "$LAB/nodes/$n/run/sshd.pid")" && echo "running (pid $(pid_from "$LAB/nodes/$n/run/sshd.pid"))" || echo stopped)"
  done
  ((up == 2)) || rc=1
  for n in "${NODES[@]}"; do
    alive "$(pid_from "$LAB/nodes/$n/run/sshd.pid")" sshd || rc=1
  done
  if [[ ! -e $LAB/up-done ]]; then echo "lab: incomplete: 'up' did not finish (run: $0 down, or up again)"; rc=1; fi
  return $rc
}

# cond_holds NODE COND: one check of a `wait` condition inside NODE.
cond_holds() {
  local n=$1 c=$2 rc=0 out
  case $c in
    quorate | blocked | members=*)
      out=$(in_node "$n" timeout 5 corosync-quorumtool -s 2>/dev/null) || rc=$?
      case $c in
        quorate) ((rc == 0)) ;;
        blocked) ((rc == 2)) ;;
        members=*) [[ $out =~ Nodes:\ +${c#members=}$'\n' ]] ;;
      esac ;;
    rw | ro) [[ $(in_node "$n" bash -c ". /usr/local/sbin/lab-lib.sh; pmxcfs_mode /etc/pve") == "$c" ]] ;;
    healthy | stale | unmounted) [[ $(in_node "$n" bash -c ". /usr/local/sbin/lab-lib.sh; pve_state /etc/pve") == "$c" ]] ;;
    *) fail "unknown condition '$c' (quorate|blocked|members=N|rw|ro|healthy|stale|unmounted)" ;;
  esac
}

cmd=${1:-}
(($#)) && shift
case $cmd in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  exec) n=$(node_of "${1:-}"); shift; (($#)) || fail "usage: exec NODE CMD..."; in_node "$n" "$@" ;;
  shell) n=$(node_of "${1:-}"); in_node "$n" bash -i ;;
  kill-fuse)
    n=$(node_of "${1:-}")
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
  stop-corosync) n=$(node_of "${1:-}"); in_node "$n" /usr/local/sbin/lab-corosync stop ;;
  kill-corosync)
    n=$(node_of "${1:-}")
    p=$(pid_from "$LAB/nodes/$n/run/lab/corosync.pid")
    alive "$p" corosync || fail "node $n: corosync is not running"
    kill -KILL "$p"
    say "killed corosync $p of $n (SIGKILL: a crash, the peer notices after the token timeout)" ;;
  start-corosync) n=$(node_of "${1:-}"); in_node "$n" /usr/local/sbin/lab-corosync start ;;
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
