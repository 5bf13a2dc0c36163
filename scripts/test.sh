#!/usr/bin/env bash
# Runs every test: unit and integration (cargo test, assert_cmd), end-to-end through the real
# ansible-playbook from the venv, real FUSE tests in private mount namespaces, and the lab
# (two network namespaces running real corosync). Installs what it needs first.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
start=$(date +%s)
bash scripts/setup.sh
export PVE2NODE_VENV="$here/.venv"
bash scripts/collection.sh
export PVE2NODE_E2E=1
echo "== cargo test"
cargo test --locked --quiet -- --test-threads=2 2>&1
echo "== collection"
bash tests/collection.sh
echo "== QDevice on the real daemons"
bash tests/qdevice_real.sh
if [ -x tests/lab/e2e.sh ]; then
  echo "== lab end-to-end"
  tests/lab/e2e.sh
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
