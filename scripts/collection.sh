#!/usr/bin/env bash
# Builds the pve2node.cluster Ansible collection: build/pve2node-cluster-VERSION.tar.gz
# (VERSION from Cargo.toml), through `ansible-galaxy collection build`, with the release
# binaries for x86_64 (plugins/modules/, beside their docs) and aarch64 (binaries/aarch64/), the
# action plugin that picks one per target, the playbooks, README.md and LICENSE. Then installs
# it into build/collections (ansible.cfg's collections_path), so the playbooks of this tree, the
# demo and the lab run the modules by FQCN from the installed collection.
#
# Needs: Rust (rustup; the aarch64-unknown-linux-musl target is added here, linked with the
# rust-lld that rustup ships) and ansible-core (PVE2NODE_VENV, default .venv).
# Prints the tarball's path and size and each binary's size.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VENV=${PVE2NODE_VENV:-$here/.venv}
galaxy=$VENV/bin/ansible-galaxy
[ -x "$galaxy" ] || { echo "collection: no ansible-galaxy in $VENV (run scripts/setup-controller.sh or set PVE2NODE_VENV)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "collection: no version in Cargo.toml" >&2; exit 1; }
modules=()
for dir in modules/*/; do modules+=("$(basename "$dir")"); done

# x86_64: the same binaries as build/modules.
bash scripts/build.sh
# aarch64: musl, linked by rust-lld (no cross gcc needed).
arm=aarch64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$arm"; then
  timeout 300 rustup target add "$arm" >/dev/null 2>&1 ||
    { echo "collection: cannot add the Rust target $arm (rustup target add $arm)" >&2; exit 1; }
fi
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
  cargo build --quiet --release --locked --target "$arm" --bins

# The staging tree ansible-galaxy builds from (also where ansible-test sanity can run).
stage=build/collection/ansible_collections/pve2node/cluster
rm -rf build/collection
mkdir -p "$stage"/{meta,plugins/modules,plugins/action,plugins/plugin_utils,binaries/aarch64,playbooks,tests/sanity}
sed "s/^version: .*/version: $version/" galaxy.yml >"$stage/galaxy.yml"
install -m 0644 README.md LICENSE CHANGELOG.md "$stage/"
install -m 0644 plugins/plugin_utils/*.py "$stage/plugins/plugin_utils/"
for p in playbooks/*.yml; do install -m 0644 "$p" "$stage/playbooks/"; done
install -m 0644 playbooks/inventory.ini "$stage/playbooks/inventory.example.ini"
# Per module, generated from modules/*/ so a new module needs no hand-kept copies: its binaries
# and doc, its action plugin (plugins/action/MODULE.py when one is written by hand, else the
# shared one), its place in the action group, and the sanity ignores a binary needs.
cp meta/runtime.yml "$stage/meta/runtime.yml"
echo "action_groups:" >>"$stage/meta/runtime.yml"
echo "  cluster:" >>"$stage/meta/runtime.yml"
: >"$stage/tests/sanity/ignore-2.19.txt"
: >"$stage/tests/sanity/ignore-2.16.txt"
for m in "${modules[@]}"; do
  install -m 0755 "build/modules/$m" "$stage/plugins/modules/$m"
  install -m 0644 "modules/$m/$m.yml" "$stage/plugins/modules/$m.yml"
  install -m 0755 "target/$arm/release/$m" "$stage/binaries/aarch64/$m"
  if [ -f "plugins/action/$m.py" ]; then
    install -m 0644 "plugins/action/$m.py" "$stage/plugins/action/$m.py"
  else
    sed "s/MODULE/$m/g" plugins/action/module.py.in >"$stage/plugins/action/$m.py"
  fi
  echo "    - $m" >>"$stage/meta/runtime.yml"
  for v in 2.19 2.16; do
    {
      echo "plugins/modules/$m validate-modules!skip # a static binary: validate-modules reads Python source; its doc plugins/modules/$m.yml is checked"
      echo "plugins/modules/$m.yml validate-modules:missing-gplv3-license # the project is MIT (LICENSE); the doc carries an MIT header"
      if [[ $v == 2.16 ]]; then
        echo "plugins/action/$m.py action-plugin-docs # its module is the binary plugins/modules/$m (no extension), which ansible-test 2.16 does not look for (2.19 does)"
      fi
    } >>"$stage/tests/sanity/ignore-$v.txt"
  done
done

# Every binary fully static (no interpreter, no NEEDED), of the architecture it claims.
for f in "$stage"/plugins/modules/* "$stage"/binaries/*/*; do
  [[ $f == *.yml ]] && continue
  want=X86-64; [[ $f == */binaries/aarch64/* ]] && want=AArch64
  hdr=$(readelf -h -l -d "$f" 2>&1)
  grep -q "Machine: *.*$want" <<<"${hdr//Advanced Micro Devices /}" ||
    { echo "collection: $f is not an $want ELF binary" >&2; exit 1; }
  if grep -qE 'INTERP|\(NEEDED\)' <<<"$hdr"; then
    echo "collection: $f is not fully static (has an interpreter or NEEDED)" >&2; exit 1
  fi
done

tarball=build/pve2node-cluster-$version.tar.gz
rm -f "$tarball"
"$galaxy" collection build "$stage" --output-path build --force >/dev/null
[ -f "$tarball" ] || { echo "collection: ansible-galaxy did not write $tarball" >&2; exit 1; }
# The binaries must keep their run bit in the tarball (ansible-galaxy keeps 0755 for files
# that are executable in the tree).
for m in "${modules[@]}"; do
  for p in "plugins/modules/$m" "binaries/aarch64/$m"; do
    tar -tvzf "$tarball" "$p" 2>/dev/null | grep -q '^-rwxr-xr-x' ||
      { echo "collection: $p is missing from $tarball or not executable there" >&2; exit 1; }
  done
done

# Installed where ansible.cfg looks (collections_path = ./build/collections).
rm -rf build/collections/ansible_collections/pve2node/cluster
ANSIBLE_COLLECTIONS_PATH=$here/build/collections "$galaxy" collection install --offline --force -p build/collections "$tarball" >/dev/null

size() { stat -c %s "$1"; }
echo "collection: $tarball ($(size "$tarball") bytes), installed in build/collections"
for m in "${modules[@]}"; do
  echo "  $m: x86_64 $(size "$stage/plugins/modules/$m") bytes, aarch64 $(size "$stage/binaries/aarch64/$m") bytes"
done
