#!/usr/bin/env bash
# ansible-test sanity on the built collection (build/pve2node-cluster-VERSION.tar.gz, from
# scripts/collection.sh), installed into a temp collections tree outside any git checkout (in a
# git tree ansible-test lists only tracked files, and build/ is not tracked).
#
# ansible-test makes one venv per test and bootstraps pip into it with a script it downloads
# from ci-files.testing.ansible.com; where only PyPI is reachable, tests/sanity/get_pip_offline.py
# stands in for it (ensurepip + PyPI). ansible-test's HOME (its venvs and cache) is
# $PVE2NODE_SANITY_HOME (default build/sanity-home), never the user's home.
#   PVE2NODE_SANITY_VENV  a venv with ansible-core (default: PVE2NODE_VENV, then .venv)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${PVE2NODE_SANITY_VENV:-${PVE2NODE_VENV:-$here/.venv}}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/Cargo.toml" | head -n1)
tarball=$here/build/pve2node-cluster-$version.tar.gz
[ -f "$tarball" ] || { echo "sanity: $tarball missing (run scripts/collection.sh)" >&2; exit 1; }
home=${PVE2NODE_SANITY_HOME:-$here/build/sanity-home}
pyver=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pip_version=$("$VENV/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", src).group(1))
PY
)
mkdir -p "$home/.ansible/test/cache"
cp "$here/tests/sanity/get_pip_offline.py" "$home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
tmp=$(mktemp -d /tmp/pve2node-sanity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ANSIBLE_HOME=$tmp/ah ANSIBLE_COLLECTIONS_PATH=$tmp/c "$VENV/bin/ansible-galaxy" collection install --offline -p "$tmp/c" "$tarball" >/dev/null
cd "$tmp/c/ansible_collections/pve2node/cluster"
echo "== ansible-test sanity ($("$VENV/bin/ansible-test" --version), Python $pyver) on $(basename "$tarball")"
HOME=$home ANSIBLE_HOME=$tmp/ah timeout 1200 "$VENV/bin/ansible-test" sanity --python "$pyver" --color no "$@" 2>&1 |
  grep -v -e '^WARNING: Retrying' -e 'Using locale "C.UTF-8"'
