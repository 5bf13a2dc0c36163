#!/usr/bin/env bash
# Everything the demo and the tests need on a fresh Debian bookworm machine (as root):
#  1. scripts/setup-lab.sh         Debian packages for the lab and the tests (root)
#  2. scripts/setup-controller.sh  the venv with ansible-core (.venv, or PVE2NODE_VENV)
#  3. ansible-lint for the playbook lint test, in its own venv (.venv-lint, or
#     PVE2NODE_LINT_VENV), so its dependencies never change the ansible-core under test
# A user of the collection needs only step 2 (README.md, "Use").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ANSIBLE_LINT_VERSION=${ANSIBLE_LINT_VERSION:-26.10.1}
LINT_VENV=${PVE2NODE_LINT_VENV:-$here/.venv-lint}
bash "$here/scripts/setup-lab.sh"
bash "$here/scripts/setup-controller.sh"
have=$("$LINT_VENV/bin/ansible-lint" --version 2>/dev/null || true)
if [[ $have != *"ansible-lint"*"$ANSIBLE_LINT_VERSION"* ]]; then
  echo "setup: creating venv $LINT_VENV with ansible-lint $ANSIBLE_LINT_VERSION"
  python3 -m venv "$LINT_VENV"
  "$LINT_VENV/bin/pip" install -q --disable-pip-version-check "ansible-lint==$ANSIBLE_LINT_VERSION"
fi
echo "setup: ok"
