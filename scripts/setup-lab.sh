#!/usr/bin/env bash
# What the lab, the demo and the tests need on a Debian bookworm machine, as root (never on a
# user's controller): Debian packages for the lab nodes (corosync, bindfs, fuse3, sshd, netcat,
# iproute2 …) and qemu-user-static (runs the aarch64 binaries in tests/collection.sh).
# Package scripts are kept from starting corosync or sshd here. Idempotent.
set -euo pipefail
pkgs=(corosync bindfs fuse3 openssh-server openssh-client netcat-openbsd iproute2 procps util-linux psmisc
  qemu-user-static file binutils)
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
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup-lab: ok (Debian packages)"
