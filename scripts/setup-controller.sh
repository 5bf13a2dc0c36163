#!/usr/bin/env bash
# What an Ansible controller needs to use pve2node: a Python venv with ansible-core (no root,
# no Debian packages, no Rust). Idempotent: a second run only checks.
#   PVE2NODE_VENV         where (default: <repo>/.venv)
#   ANSIBLE_CORE_VERSION  which (default 2.19.14; 2.16.x also works, see README.md)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ANSIBLE_CORE_VERSION=${ANSIBLE_CORE_VERSION:-2.19.14}
VENV=${PVE2NODE_VENV:-$here/.venv}
# (the output is captured first: `| grep -q` under pipefail failed at random on SIGPIPE)
have=$("$VENV/bin/ansible-playbook" --version 2>/dev/null || true)
if [[ $have != *"core $ANSIBLE_CORE_VERSION]"* ]]; then
  echo "setup-controller: creating venv $VENV with ansible-core $ANSIBLE_CORE_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION"
fi
echo "setup-controller: ok (ansible-core $ANSIBLE_CORE_VERSION in $VENV)"
