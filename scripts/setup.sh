#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian bookworm machine (as root):
# Debian packages (corosync, bindfs, fuse3, openssh-server, netcat, iproute2) and a Python venv
# with a pinned ansible-core. Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ANSIBLE_CORE_VERSION=${ANSIBLE_CORE_VERSION:-2.19.14}
VENV=${PVE2NODE_VENV:-$here/.venv}

pkgs=(corosync bindfs fuse3 openssh-server openssh-client netcat-openbsd iproute2 procps util-linux psmisc)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
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

# (the output is captured first: `| grep -q` under pipefail failed at random on SIGPIPE)
have=$("$VENV/bin/ansible-playbook" --version 2>/dev/null || true)
if [[ $have != *"core $ANSIBLE_CORE_VERSION]"* ]]; then
  echo "setup: creating venv $VENV with ansible-core $ANSIBLE_CORE_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION"
fi
echo "setup: ok (ansible-core $ANSIBLE_CORE_VERSION in $VENV)"
