#!/usr/bin/env bash
# Runs every test: the gates (rustfmt, clippy with warnings as errors, shellcheck on every
# shell script), unit and integration (cargo test, assert_cmd), end-to-end through the real
# ansible-playbook from the venv, real FUSE tests in private mount namespaces, and the lab
# (two network namespaces running real corosync). Installs what it needs first.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
start=$(date +%s)
bash scripts/setup.sh

# The shell scripts shellcheck reads: scripts/*.sh, tests/*.sh, tests/lab/*.sh and the lab's
# stand-ins that are shell scripts (by their #! line, or .sh for the sourced lab-lib.sh).
shell_scripts() {
  printf '%s\n' scripts/*.sh tests/*.sh tests/lab/*.sh
  for f in tests/lab/standins/*; do
    [ -f "$f" ] || continue
    case $f in
      *.sh) echo "$f" ;;
      *) if head -n 1 "$f" | grep -qE '^#!.*/(env )?(ba|da)?sh( |$)'; then echo "$f"; fi ;;
    esac
  done
}

echo "== gates: cargo fmt --check, cargo clippy -D warnings, shellcheck"
cargo fmt --check
cargo clippy --locked --quiet --all-targets -- -D warnings
mapfile -t scripts < <(shell_scripts)
shellcheck -x "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"
export PVE2NODE_VENV="$here/.venv"
bash scripts/collection.sh
export PVE2NODE_E2E=1
echo "== cargo test"
cargo test --locked --quiet -- --test-threads=2 2>&1
echo "== collection"
bash tests/collection.sh
echo "== QDevice on the real daemons"
bash tests/qdevice_real.sh
# The lab is part of every run: a missing or non-executable suite is a failure, not a skip.
echo "== lab end-to-end"
[ -x tests/lab/e2e.sh ] || { echo "tests/lab/e2e.sh is missing or not executable" >&2; exit 1; }
tests/lab/e2e.sh
echo "== all tests passed in $(( $(date +%s) - start )) s"
