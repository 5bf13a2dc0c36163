#!/usr/bin/env bash
# The pve2node.cluster collection as a user gets it (build/pve2node-cluster-VERSION.tar.gz from
# scripts/collection.sh, built first when missing):
#  - every binary in the tarball keeps its run bit, is an ELF of its architecture and fully
#    static (readelf: no interpreter, no NEEDED; file: statically linked);
#  - each binary runs with an empty environment in a chroot holding only itself and the file it
#    edits (aarch64 ones through qemu-aarch64-static copied into the chroot);
#  - `ansible-galaxy collection install` into a temp collections path; `ansible-doc` shows all
#    four modules, `ansible-doc -F pve2node.cluster` lists them (-l: see below); the collection's playbooks
#    parse by FQCN (`ansible-playbook pve2node.cluster.two_node --list-tasks`);
#  - a playbook using the FQCNs, connection local, ansible_python_interpreter a path that does
#    not exist: --check --diff changes nothing, the real run changes, the next run is changed=0;
#    on temp files only (hosts_pin on a temp hosts file, cman_two_node on a temp corosync.conf
#    with activation off, pvecm_cluster state=info through a stand-in pvecm);
#  - the action plugin: a target whose `uname -m` is aarch64 gets the aarch64 binary uploaded
#    (same sha256), one of another architecture gets one clear error naming it;
#  - ansible-lint (production profile) on the playbooks, when PVE2NODE_LINT_VENV has it;
#  - ansible-test sanity on the tarball (tests/collection_sanity.sh) unless PVE2NODE_SANITY=0.
# PVE2NODE_E2E=1 (CI) turns every "cannot run here" skip into a failure.
# (the single-quoted `bash -c` bodies get their values as arguments, on purpose)
# shellcheck disable=SC2016
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VENV=${PVE2NODE_VENV:-$here/.venv}
LINT_VENV=${PVE2NODE_LINT_VENV:-$here/.venv-lint}
E2E=${PVE2NODE_E2E:-0}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
tarball=$here/build/pve2node-cluster-$version.tar.gz
modules=()
for d in modules/*/; do modules+=("$(basename "$d")"); done
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "  ok   $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
skip() { if [[ $E2E == 1 ]]; then bad "$1 (cannot run here: $2)"; else echo "  skip $1 ($2)"; fi; }

[ -f "$tarball" ] || PVE2NODE_VENV=$VENV bash scripts/collection.sh >/dev/null
tmp=$(mktemp -d /tmp/pve2node-collection.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "== collection $(basename "$tarball") ($(stat -c %s "$tarball") bytes), ansible-core $("$VENV/bin/python" -c 'import ansible; print(ansible.__version__)')"

# --- the tarball's binaries -----------------------------------------------------------------
listing=$(tar -tvzf "$tarball")
mkdir "$tmp/x" && tar -xzf "$tarball" -C "$tmp/x"
for m in "${modules[@]}"; do
  for arch in x86_64 aarch64; do
    p=plugins/modules/$m machine='X86-64' ftype='x86-64'
    [[ $arch == aarch64 ]] && p=binaries/aarch64/$m machine='AArch64' ftype='ARM aarch64'
    check "$p is in the tarball with mode 0755" grep -qE "^-rwxr-xr-x .* $p\$" <<<"$listing"
    hdr=$(readelf -h -l -d "$tmp/x/$p" 2>&1 || true)
    check "$p: ELF for $machine, no interpreter, no NEEDED" \
      bash -c '[[ $1 == *"Machine:"*"$2"* && $1 != *INTERP* && $1 != *"(NEEDED)"* ]]' _ "$hdr" "$machine"
    check "$p: file says statically linked (or static-pie) $ftype" \
      bash -c 'o=$(file -b "$1"); [[ $o == *"$2"* && ( $o == *"statically linked"* || $o == *"static-pie linked"* ) ]]' _ "$tmp/x/$p" "$ftype"
  done
done

# --- each binary alone in a chroot, empty environment -----------------------------------------
# chroot_case ARCH MODULE BINARY ARGS-JSON FILE CONTENT EXPECT: run BINARY (through qemu for
# aarch64) in a chroot holding only it and FILE (with CONTENT), the JSON args on stdin and an
# empty environment; EXPECT is a Python expression over r (the result), rc and read(path).
chroot_case() {
  local arch=$1 m=$2 bin=$3 args=$4 file=$5 content=$6 expect=$7 root out rc=0
  root=$tmp/chroot-$arch-$m
  mkdir -p "$root"
  install -m 0755 "$bin" "$root/$m"
  local cmd=("/$m")
  if [[ $arch == aarch64 ]]; then
    install -m 0755 "$(command -v qemu-aarch64-static)" "$root/qemu"
    cmd=(/qemu "/$m")
  fi
  if [[ -n $file ]]; then mkdir -p "$root/$(dirname "$file")"; printf '%s' "$content" >"$root/$file"; fi
  out=$(printf '%s' "$args" | env -i "$CHROOT" "$root" "${cmd[@]}" 2>"$tmp/chroot.err") || rc=$?
  check "$arch $m runs alone in a chroot, empty environment (rc $rc): $expect" \
    "$VENV/bin/python" -c '
import json, sys
r = json.loads(sys.argv[1]); root = sys.argv[2]; rc = int(sys.argv[3])
ok = eval(sys.argv[4], {"r": r, "read": lambda p: open(root + p).read(), "rc": rc})
sys.exit(0 if ok else "unexpected: rc %d %s" % (rc, sys.argv[1][:400]))' "$out" "$root" "$rc" "$expect"
}
CHROOT=$(command -v chroot || echo /usr/sbin/chroot)
if [[ $(id -u) != 0 ]]; then
  skip "binaries in a chroot" "not root"
elif ! command -v qemu-aarch64-static >/dev/null; then
  skip "binaries in a chroot" "no qemu-aarch64-static (Debian package qemu-user-static)"
else
  hosts=$'127.0.0.1 localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n'
  for arch in x86_64 aarch64; do
    dir=plugins/modules; [[ $arch == aarch64 ]] && dir=binaries/aarch64
    chroot_case "$arch" hosts_pin "$tmp/x/$dir/hosts_pin" \
      '{"hostname": "tartanpion", "ip": "172.16.0.1"}' /etc/hosts "$hosts" \
      'r["changed"] and rc == 0 and read("/etc/hosts") == "127.0.0.1 localhost\n87.37.23.91 tartanpion.elao.local\n172.16.0.1 tartanpion\n"'
    chroot_case "$arch" cman_two_node "$tmp/x/$dir/cman_two_node" \
      '{"path": "/corosync.conf", "activate": false, "verify": false, "validate": false}' /corosync.conf "$(cat tests/fixtures/pve8/corosync.conf)" \
      'r["changed"] and rc == 0 and "two_node: 1" in read("/corosync.conf") and r["config_version_after"] == r["config_version_before"] + 1'
    chroot_case "$arch" pvecm_cluster "$tmp/x/$dir/pvecm_cluster" \
      '{"state": "info", "pvecm": "/usr/bin/pvecm"}' "" "" \
      'r["failed"] and rc == 1 and "pvecm" in r["msg"]'
    chroot_case "$arch" fuse_recover "$tmp/x/$dir/fuse_recover" \
      '{"path": "/mnt", "_ansible_check_mode": true}' /mnt/.keep "" \
      'isinstance(r.get("msg"), str) and rc in (0, 1) and r.get("changed") is False'
  done
fi

# --- installed with ansible-galaxy; ansible-doc ------------------------------------------------
export ANSIBLE_HOME=$tmp/ansible ANSIBLE_LOCAL_TEMP=$tmp/ansible/tmp ANSIBLE_REMOTE_TEMP=$tmp/ansible/remote
export ANSIBLE_COLLECTIONS_PATH=$tmp/collections ANSIBLE_CONFIG=$tmp/ansible.cfg ANSIBLE_NOCOLOR=1
printf '[defaults]\nretry_files_enabled = false\n' >"$ANSIBLE_CONFIG"
"$VENV/bin/ansible-galaxy" collection install --offline -p "$tmp/collections" "$tarball" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; }
check "ansible-galaxy collection install into a temp collections path" \
  test -x "$tmp/collections/ansible_collections/pve2node/cluster/plugins/modules/hosts_pin"
for m in "${modules[@]}"; do
  check "ansible-doc pve2node.cluster.$m" bash -c '"$1/bin/ansible-doc" "pve2node.cluster.$2" 2>&1 | grep -qi "pve2node.cluster.$2"' _ "$VENV" "$m"
done
# (`ansible-doc -l` itself cannot list binary modules in ansible-core 2.16 to 2.19: it reads the
# short description from the module file as text first, and the decode error of the binary
# wins over the sidecar doc it then finds. -F lists the same plugins with their files.)
list=$("$VENV/bin/ansible-doc" -F pve2node.cluster 2>&1 || true)
for m in "${modules[@]}"; do
  check "ansible-doc -F pve2node.cluster lists $m" grep -q "^pve2node.cluster.$m .*/plugins/modules/$m\$" <<<"$list"
done
printf '[pve]\ntartanpion private_ip=172.16.0.1\nbismuth private_ip=172.16.0.2\n[pve:vars]\ncluster_name=elao\n' >"$tmp/inventory.ini"
for pb in two_node recover; do
  check "ansible-playbook pve2node.cluster.$pb --list-tasks (collection playbook by FQCN)" \
    bash -c '"$1/bin/ansible-playbook" -i "$2" "pve2node.cluster.$3" --list-tasks >"$4" 2>&1 && grep -q "pve" "$4"' _ "$VENV" "$tmp/inventory.ini" "$pb" "$tmp/list-$pb.log"
done

# --- a playbook by FQCN, connection local, no Python --------------------------------------------
w=$tmp/work && mkdir -p "$w/bin"
printf '127.0.0.1   localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n' >"$w/hosts"
cp tests/fixtures/pve8/corosync.conf "$w/corosync.conf"
cp tests/fixtures/pve8/pvecm-status-2node.txt "$w/status.txt"
cp tests/fixtures/pve8/pvecm-nodes.txt "$w/nodes.txt"
printf '#!/bin/sh\ncase "$1" in status) cat %s/status.txt ;; nodes) cat %s/nodes.txt ;; *) echo "stand-in: $*" >&2; exit 2 ;; esac\n' "$w" "$w" >"$w/bin/pvecm"
chmod 755 "$w/bin/pvecm"
cat >"$w/play.yml" <<'YML'
- name: The collection's modules on this machine, temp files only
  hosts: local
  gather_facts: false
  tasks:
    - name: Pin tartanpion in a temp hosts file
      pve2node.cluster.hosts_pin:
        path: "{{ work }}/hosts"
        hostname: tartanpion
        ip: 172.16.0.1
    - name: Two-node quorum in a temp corosync.conf
      pve2node.cluster.cman_two_node:
        path: "{{ work }}/corosync.conf"
        activate: false
        verify: false
        validate: false
    - name: Cluster facts through a stand-in pvecm
      pve2node.cluster.pvecm_cluster:
        state: info
        pvecm: "{{ work }}/bin/pvecm"
      register: info
    - name: The facts are the stand-in's
      ansible.builtin.assert:
        that:
          - info.cluster.name == 'lab'
          - info.cluster.quorate
          - info.cluster.nodes | length == 2
YML
printf '[local]\nlocalhost ansible_connection=local ansible_python_interpreter=%s/no/such/python3\n' "$w" >"$w/inventory.ini"
# (the binary cache in a temp dir, not in the home of the user running the tests)
play() { "$VENV/bin/ansible-playbook" -i "$w/inventory.ini" -e "work=$w" -e "pve2node_cache_dir=$w/cache" "$w/play.yml" "$@" >"$tmp/play.log" 2>&1; }
recap() { grep -oE 'localhost +: ok=[0-9]+ +changed=[0-9]+ +unreachable=[0-9]+ +failed=[0-9]+' "$tmp/play.log" | tr -s ' '; }
sum_before=$(cat "$w/hosts" "$w/corosync.conf" | sha256sum)
play --check --diff || true
check "--check --diff: changed=2 ($(recap))" grep -qE 'localhost +: ok=4 +changed=2 +unreachable=0 +failed=0' "$tmp/play.log"
check "--check --diff: the diff shows the new hosts line" grep -q '^+172.16.0.1  tartanpion' "$tmp/play.log"
check "--check --diff: both files byte-identical" test "$(cat "$w/hosts" "$w/corosync.conf" | sha256sum)" == "$sum_before"
play --diff || true
check "real run: changed=2 ($(recap))" grep -qE 'localhost +: ok=4 +changed=2 +unreachable=0 +failed=0' "$tmp/play.log"
check "real run: hosts file pinned" grep -qx '172.16.0.1  tartanpion' "$w/hosts"
check "real run: corosync.conf has two_node" grep -q 'two_node: 1' "$w/corosync.conf"
play || true
check "second run: changed=0 ($(recap))" grep -qE 'localhost +: ok=4 +changed=0 +unreachable=0 +failed=0' "$tmp/play.log"
check "no Python was used (the interpreter path does not exist)" test ! -e "$w/no/such/python3"

# --- the binary cache (connection local; the lab suite tests it over ssh) -----------------------
cached=$w/cache/$(sha256sum <"$tmp/x/plugins/modules/hosts_pin" | cut -d' ' -f1)/hosts_pin
check "cache: hosts_pin kept under its sha256, 0700" bash -c '[[ $(stat -c %a "$1") == 700 && $(stat -c %a "${1%/*}") == 700 ]] && cmp -s "$1" "$2"' _ "$cached" "$tmp/x/plugins/modules/hosts_pin"
check "cache: one entry per module (3 modules used)" test "$(find "$w/cache" -mindepth 2 -maxdepth 2 -type f ! -name '.*' | wc -l)" -eq 3
play -vvv || true
check "cache: a warm run uploads nothing and is changed=0" bash -c '! grep -q "pve2node: uploading" "$1" && grep -qE "localhost +: ok=4 +changed=0 " "$1"' _ "$tmp/play.log"
play -e pve2node_cache=false -vvv || true
check "cache: pve2node_cache=false takes the stock path (AnsiballZ upload), same recap" bash -c 'grep -q "AnsiballZ_hosts_pin" "$1" && grep -qE "localhost +: ok=4 +changed=0 " "$1"' _ "$tmp/play.log"
chmod 0777 "$w/cache"
play || true
check "cache: a cache dir writable by others is refused, one warning, the run still works" bash -c '[[ $(grep -c "WARNING.*pve2node: the binary cache cannot be used on localhost.*writable by group or others" "$1") == 1 ]] && grep -qE "localhost +: ok=4 +changed=0 " "$1"' _ "$tmp/play.log"
chmod 0700 "$w/cache"

# --- the action plugin picks the binary by uname -m --------------------------------------------
mkdir -p "$w/fake-aarch64" "$w/fake-ppc"
printf '#!/bin/sh\necho aarch64\n' >"$w/fake-aarch64/uname"
printf '#!/bin/sh\necho ppc64le\n' >"$w/fake-ppc/uname"
chmod 755 "$w/fake-aarch64/uname" "$w/fake-ppc/uname"
PATH=$w/fake-ppc:$PATH play || true
check "another architecture: one clear error naming it" \
  grep -q "pve2node.cluster.hosts_pin has no binary for this target's architecture 'ppc64le' (uname -m); the collection carries aarch64, x86_64" "$tmp/play.log"
play -e pve2node_arch=riscv64 || true
check "the host variable pve2node_arch replaces uname -m" \
  grep -q "pve2node.cluster.hosts_pin has no binary for this target's architecture 'riscv64'" "$tmp/play.log"
rm -rf "$ANSIBLE_REMOTE_TEMP"
PATH=$w/fake-aarch64:$PATH ANSIBLE_KEEP_REMOTE_FILES=1 play -vvv || true
sent=$(find "$ANSIBLE_REMOTE_TEMP" -name AnsiballZ_hosts_pin -print -quit 2>/dev/null || true)
check "aarch64 target: the aarch64 binary is the one uploaded" \
  bash -c '[[ -n $1 ]] && cmp -s "$1" "$2"' _ "$sent" "$tmp/x/binaries/aarch64/hosts_pin"
PATH=$w/fake-aarch64:$PATH play -e pve2node_cache_dir="$w/cache-arm" -e pve2node_arch= || true
check "aarch64 target through the cache: the aarch64 binary is the one cached (uname -m in the one command)" \
  test -f "$w/cache-arm/$(sha256sum <"$tmp/x/binaries/aarch64/hosts_pin" | cut -d' ' -f1)/hosts_pin"

# --- ansible-lint, production profile ----------------------------------------------------------
if [[ -x $LINT_VENV/bin/ansible-lint ]]; then
  check "ansible-lint --profile production playbooks/" \
    bash -c 'cd "$1" && ANSIBLE_COLLECTIONS_PATH=$2 "$3/bin/ansible-lint" --offline --nocolor --profile production -c /dev/null playbooks/*.yml >"$4" 2>&1 || { cat "$4"; false; }' \
    _ "$here" "$tmp/collections" "$LINT_VENV" "$tmp/lint.log"
  # the whole collection as staged by scripts/collection.sh (galaxy.yml, docs, meta); the one
  # rule skipped: validate-modules!skip for the binaries is not on ansible-lint's list of
  # permitted sanity ignores, but validate-modules cannot read a binary at all.
  check "ansible-lint --profile production on the collection (but sanity[cannot-ignore])" \
    bash -c 'cd "$1/build/collection/ansible_collections/pve2node/cluster" && ANSIBLE_COLLECTIONS_PATH=$2 "$3/bin/ansible-lint" --offline --nocolor --profile production --skip-list "sanity[cannot-ignore]" >"$4" 2>&1 || { cat "$4"; false; }' \
    _ "$here" "$tmp/collections" "$LINT_VENV" "$tmp/lint-collection.log"
else
  skip "ansible-lint" "no $LINT_VENV/bin/ansible-lint (scripts/setup.sh makes it)"
fi

# --- ansible-test sanity --------------------------------------------------------------------------
if [[ ${PVE2NODE_SANITY:-1} == 1 ]]; then
  check "ansible-test sanity on the tarball" bash -c 'bash "$1/tests/collection_sanity.sh" >"$2" 2>&1 || { cat "$2"; false; }' _ "$here" "$tmp/sanity.log"
  grep -c '^Running sanity test' "$tmp/sanity.log" | sed 's/^/       sanity tests run: /'
fi

echo "== collection: $passed passed, $failed failed"
((failed == 0))
