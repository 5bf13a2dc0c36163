#!/usr/bin/env bash
# Builds the modules as small static binaries (release profile, glibc static) and gathers
# each binary with its sidecar doc (<name>.yml) in build/modules/, which ansible.cfg points at.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
triple=x86_64-unknown-linux-gnu
# crt-static only for the target artifacts (passing --target keeps it off proc-macros).
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --quiet --release --locked --target "$triple" --bins
mkdir -p build/modules
for dir in modules/*/; do
  name=$(basename "$dir")
  [ -f "target/$triple/release/$name" ] || continue
  install -m 0755 "target/$triple/release/$name" "build/modules/$name"
  [ -f "$dir/$name.yml" ] && install -m 0644 "$dir/$name.yml" "build/modules/$name.yml"
done
echo "build: $(ls build/modules | grep -vc '\.yml$') modules in $here/build/modules"
