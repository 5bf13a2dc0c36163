#!/usr/bin/env bash
# Builds the modules as small static binaries and gathers each binary with its sidecar doc
# (<name>.yml) in build/modules/, which ansible.cfg points at.
#
# Static so one binary runs on every Proxmox VE release (Debian 7 wheezy to 12 bookworm):
# musl when the Rust target is available (installed here by rustup if it can be: ~570 KB a
# module), else glibc linked statically (~1.3 MB; needs the build's glibc symbols only).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
triple=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  timeout 180 rustup target add "$triple" >/dev/null 2>&1 || triple=x86_64-unknown-linux-gnu
fi
# crt-static only for the target artifacts (passing --target keeps it off proc-macros).
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --quiet --release --locked --target "$triple" --bins
mkdir -p build/modules
count=0
for dir in modules/*/; do
  name=$(basename "$dir")
  if [ ! -f "target/$triple/release/$name" ] || [ ! -f "$dir/$name.yml" ]; then
    echo "build: modules/$name/ built no binary $name or has no $name.yml (see \"Adding a module\" in README.md)" >&2
    exit 1
  fi
  install -m 0755 "target/$triple/release/$name" "build/modules/$name"
  install -m 0644 "$dir/$name.yml" "build/modules/$name.yml"
  count=$((count + 1))
done
echo "build: $count static modules ($triple) in $here/build/modules"
