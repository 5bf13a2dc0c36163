#!/usr/bin/env bash
# What the lab, the demo and the tests need on a Debian bookworm machine, as root (never on a
# user's controller): Debian packages for the lab nodes (corosync, python3-fusepy for the pmxcfs
# stand-in, socat for the ssh relay, bindfs and fuse3 for the FUSE tests, sshd, netcat,
# iproute2 …), qemu-user-static (runs the aarch64 binaries in tests/collection.sh), and
# corosync-qnetd + corosync-qdevice for the QDevice tests. Package scripts are kept from starting
# corosync, sshd or qnetd here, and the QDevice packages are installed inside a private mount
# namespace with a copy of /etc/corosync bound over it (their postinst writes
# /etc/corosync/qnetd and /etc/corosync/qdevice): this machine's /etc/corosync stays as it was.
# Idempotent.
set -euo pipefail
pkgs=(corosync bindfs fuse3 python3-fusepy socat openssh-server openssh-client netcat-openbsd iproute2 procps util-linux psmisc
  qemu-user-static file binutils iputils-ping shellcheck sudo corosync-qnetd corosync-qdevice)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || { echo "setup-lab: needs root to install: ${missing[*]}" >&2; exit 1; }
  echo "setup-lab: installing Debian packages: ${missing[*]}"
  # Package scripts must not start corosync or sshd on this machine: the lab runs its own.
  policy_made=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_made=1
  fi
  trap '[ "$policy_made" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || apt-get update
  plain=() nsonly=()
  for p in "${missing[@]}"; do
    case $p in corosync-qnetd | corosync-qdevice) nsonly+=("$p") ;; *) plain+=("$p") ;; esac
  done
  if ((${#plain[@]})); then apt-get install -y -qq --no-install-recommends "${plain[@]}" >/dev/null; fi
  if ((${#nsonly[@]})); then
    scratch=$(mktemp -d /tmp/pve2node-setup.XXXXXX)
    cp -a /etc/corosync "$scratch/etc-corosync"
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare -m --propagation private bash -c 'mount --bind "$1" /etc/corosync && shift && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
      _ "$scratch/etc-corosync" "${nsonly[@]}"
    rm -rf "$scratch"
  fi
fi
echo "setup-lab: ok (Debian packages)"
