#!/bin/bash
# The pve2node binary cache on the lab (called by tests/lab/e2e.sh, also runs alone): on a fresh
# lab, from the installed collection, counting the remote commands in Ansible's -vvv output
# (one "SSH: EXEC" line per command, uploads included, since they go through stdin):
#   - the first run uploads each module once per host (3 commands: check, upload, run), later
#     tasks and later runs are ONE remote command;
#   - a cached binary whose bytes changed (here: replaced by a script that would leave a trace)
#     is never run: detected, replaced by a fresh upload, the task succeeds;
#   - a noexec cache, a cache owned by another user, a cache writable by others: refused, one
#     warning per host and run, the tasks still work (stock path);
#   - registered results of check mode, diff mode, a change, an unchanged run, a failing task,
#     no_log and environment:, per task and for the whole play under --check --diff: identical
#     with the cache on and off (minus timing keys);
#   - become (sudo) from a non-root user made inside the node (home under the node's /run):
#     through a root-owned cache in /root/.cache/pve2node, one command per task; become_method
#     su falls back with the warning.
# Always tears down (trap). Every Ansible run is bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=checks.sh
. "$here/checks.sh"
cd "$repo"
LOGS=$(mktemp -d /tmp/pve2node-cache-e2e.XXXXXX)
ANSIBLE_TIMEOUT_S=${ANSIBLE_TIMEOUT_S:-120}
t_start=$EPOCHREALTIME
COLL=$repo/build/collections/ansible_collections/pve2node/cluster
[[ -f $COLL/plugins/plugin_utils/binary_module.py ]] || { echo "cache e2e: no installed collection (run scripts/collection.sh)" >&2; exit 1; }
cmp -s "$COLL/plugins/plugin_utils/binary_module.py" plugins/plugin_utils/binary_module.py ||
  { echo "cache e2e: the installed collection's action plugin is not this tree's (run scripts/collection.sh)" >&2; exit 1; }

cleanup() {
  local rc=$?
  trap - EXIT
  "$L" exec pve1 umount /run/c14noexec >/dev/null 2>&1 || true
  "$L" exec pve1 umount /run/c14ro >/dev/null 2>&1 || true
  "$L" down >/dev/null 2>&1 || true
  rm -rf "$LOGS"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# play NAME ARGS...: ansible-playbook -vvv against the lab, bounded; output in $LOGS/NAME.log.
play() {
  local name=$1
  shift
  play_rc=0
  timeout -k 10 "$ANSIBLE_TIMEOUT_S" "$L" ansible-playbook -vvv "$@" >"$LOGS/$name.log" 2>&1 || play_rc=$?
  play_out=$(cat "$LOGS/$name.log")
}
# execs NAME TASK ADDR: remote commands (ssh EXEC lines) of TASK for host ADDR in run NAME.
execs() {
  awk -v t="TASK [$2]" -v a="<$3> SSH: EXEC" '
    /^TASK \[/ { on = index($0, t) == 1 } on && index($0, a) == 1 { n++ } END { print n + 0 }' "$LOGS/$1.log"
}
# count NAME TEXT: lines of run NAME containing TEXT.
count() { grep -cF -- "$2" "$LOGS/$1.log" || true; }
# warns NAME TEXT: pve2node warnings of run NAME containing TEXT.
warns() { grep -F -- "[WARNING]: pve2node" "$LOGS/$1.log" | grep -cF -- "$2" || true; }
# recap NAME HOST: "ok=N changed=N failed=N" of HOST.
recap() { awk -v h="$2" '$1 == h && $2 == ":" { print $3, $4, $6 }' "$LOGS/$1.log"; }
P1=10.99.0.1
P2=10.99.0.2
CACHE=/root/.cache/pve2node

cat >"$LOGS/tasks.yml" <<'YML'
- name: Cache e2e
  hosts: "{{ target | default('pve') }}"
  gather_facts: false
  tasks:
    - name: pin1
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
    - name: pin2
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
    - name: cluster-check
      pve2node.cluster.pvecm_cluster: {name: elao, link0: "{{ private_ip }}"}
      check_mode: true
      tags: [cluster]
    - name: pin3
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
YML

cat >"$LOGS/results.yml" <<'YML'
- name: Results to compare
  hosts: pve
  gather_facts: false
  tasks:
    - name: check-diff
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
      check_mode: true
      diff: true
      register: r_check
    - name: change-diff
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
      diff: true
      register: r_change
    - name: unchanged
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
      register: r_same
    - name: unchanged-check-diff
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
      check_mode: true
      diff: true
      register: r_same_check
    - name: failing
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "not-an-ip"}
      register: r_fail
      ignore_errors: true
    - name: no-log
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
      no_log: true
      register: r_nolog
    - name: environment
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}", path: "{{ lookup('env', 'NOPE') | default('/etc/hosts', true) }}"}
      environment: {LC_ALL: C, PVE2NODE_E2E_ENV: "a b"}
      register: r_env
    - name: other-module-check
      pve2node.cluster.pvecm_cluster: {name: elao, link0: "{{ private_ip }}"}
      check_mode: true
      diff: true
      register: r_cluster
    - name: save
      ansible.builtin.copy:
        content: "{{ {'check': r_check, 'change': r_change, 'same': r_same, 'same_check': r_same_check, 'fail': r_fail, 'nolog': r_nolog, 'env': r_env, 'cluster': r_cluster} | to_nice_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
YML

# same_results DIR_A DIR_B: the registered results of both runs, minus timing keys, equal.
same_results() {
  python3 - "$1" "$2" <<'PY'
import json, sys, os
TIMING = {"elapsed", "duration", "start", "end", "delta", "took"}
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
bad = 0
for host in ("tartanpion", "bismuth"):
    a, b = (clean(json.load(open(os.path.join(d, host + ".json")))) for d in sys.argv[1:3])
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            bad += 1
            print("%s %s differs:\n  on:  %s\n  off: %s" % (host, k, json.dumps(a.get(k), sort_keys=True), json.dumps(b.get(k), sort_keys=True)))
    if not a:
        bad += 1; print("%s: no results" % host)
sys.exit(1 if bad else 0)
PY
}
restore_hosts() { for n in pve1 pve2; do "$L" exec "$n" cp /run/c14-hosts.orig /etc/hosts; done; }

echo "== cache e2e ($LAB)"
"$L" down >/dev/null
"$L" up >/dev/null
for n in pve1 pve2; do "$L" exec "$n" cp /etc/hosts /run/c14-hosts.orig; done

echo "-- first run: each module uploaded once per host; later tasks one remote command"
play first "$LOGS/tasks.yml"
check_eq "first run succeeds" "0" "$play_rc"
for a in $P1 $P2; do
  check_eq "$a: hosts_pin uploaded once" 1 "$(count first "<$a> pve2node: uploading hosts_pin ")"
  check_eq "$a: pvecm_cluster uploaded once" 1 "$(count first "<$a> pve2node: uploading pvecm_cluster ")"
  check_eq "$a: first task: check, upload, run (3 commands)" 3 "$(execs first pin1 "$a")"
  check_eq "$a: second task of the same module: 1 command" 1 "$(execs first pin2 "$a")"
  check_eq "$a: another module, first use: 3 commands" 3 "$(execs first cluster-check "$a")"
  check_eq "$a: then 1 command" 1 "$(execs first pin3 "$a")"
done
check_lacks "no fallback warning" "[WARNING]: pve2node" "$play_out"
# shellcheck disable=SC2016 # runs in the node
check_eq "pve1: cache tree 0700 root, one hash per module, the file named by its sha256" "drwx------ root
2 modules
ok" "$("$L" exec pve1 sh -c 'stat -c "%A %U" '$CACHE'; ls '$CACHE' | wc -l | sed "s/$/ modules/"; for f in '$CACHE'/*/*; do [ "$(sha256sum <"$f" | cut -d" " -f1)" = "$(basename "$(dirname "$f")")" ] || echo "bad $f"; done; echo ok')"

echo "-- second run: every task one remote command (the architecture asked inside the first)"
play second "$LOGS/tasks.yml"
check_eq "second run succeeds" "0" "$play_rc"
for a in $P1 $P2; do
  for t in pin1 pin2 cluster-check pin3; do
    check_eq "$a: $t: 1 command" 1 "$(execs second "$t" "$a")"
  done
done
check_eq "second run: nothing uploaded" 0 "$(count second "pve2node: uploading")"

echo "-- a cached binary with other bytes is never run: detected and replaced"
# shellcheck disable=SC2016 # runs in the node
"$L" exec pve1 sh -c 'f=$(ls '$CACHE'/*/hosts_pin); printf "#!/bin/sh\ntouch /run/c14-corrupt-ran\necho {}\n" >"$f"'
play corrupt -e target=tartanpion "$LOGS/tasks.yml"
check_eq "corrupt: run succeeds" "0" "$play_rc"
check_eq "corrupt: the changed binary did not run" absent "$("$L" exec pve1 sh -c 'test -e /run/c14-corrupt-ran && echo ran || echo absent')"
check_eq "corrupt: hosts_pin uploaded again, once" 1 "$(count corrupt "<$P1> pve2node: uploading hosts_pin ")"
# shellcheck disable=SC2016 # runs in the node
check_eq "corrupt: the cached file has its sha256 again" ok "$("$L" exec pve1 sh -c 'f=$(ls '$CACHE'/*/hosts_pin); [ "$(sha256sum <"$f" | cut -d" " -f1)" = "$(basename "$(dirname "$f")")" ] && echo ok')"
# a single byte flipped in place (dd conv=notrunc); and an older hash of hosts_pin lying around
old=$CACHE/$(printf '0%.0s' {1..64})
"$L" exec pve1 sh -c "printf Z | dd of=\$(ls $CACHE/*/hosts_pin) bs=1 seek=4000 conv=notrunc status=none; mkdir -p $old && echo old >$old/hosts_pin && : >$old/.installed"
play corrupt2 -e target=tartanpion "$LOGS/tasks.yml"
check_eq "one byte flipped: run succeeds" "0" "$play_rc"
check_eq "one byte flipped: uploaded again, once" 1 "$(count corrupt2 "<$P1> pve2node: uploading hosts_pin ")"
check_eq "the upload removed the older hash of hosts_pin, kept pvecm_cluster's" "gone|1" "$("$L" exec pve1 sh -c "test -e $old && echo kept || echo gone")|$("$L" exec pve1 sh -c "ls $CACHE/*/pvecm_cluster | wc -l")"

echo "-- async: the stock path, silently"
cat >"$LOGS/async.yml" <<'YML'
- name: Async
  hosts: tartanpion
  gather_facts: false
  tasks:
    - name: async-pin
      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}
      async: 30
      poll: 1
      register: r
    - name: async-result
      ansible.builtin.assert: {that: [r is not changed, r is finished]}
YML
play async "$LOGS/async.yml"
check_eq "async: run succeeds" "0" "$play_rc"
check_eq "async: the stock path (no cache), no warning" "1|0" "$(count async "pve2node: stock binary-module path (async task)")|$(warns async "")"

echo "-- registered results identical with the cache on and off"
for mode in plain checkdiff; do
  extra=()
  [[ $mode == checkdiff ]] && extra=(--check --diff)
  for c in true false; do
    restore_hosts
    mkdir -p "$LOGS/res-$mode-$c"
    play "res-$mode-$c" "${extra[@]}" -e pve2node_cache=$c -e out="$LOGS/res-$mode-$c" "$LOGS/results.yml"
    check_eq "$mode, pve2node_cache=$c: run succeeds" "0" "$play_rc"
  done
  check "$mode: registered results equal (cache on vs off)" same_results "$LOGS/res-$mode-true" "$LOGS/res-$mode-false"
  check_eq "$mode: cache off: the stock path (7 commands for a task)" 7 "$(execs "res-$mode-false" unchanged "$P1")"
  check_eq "$mode: cache on: 1 command for a task" 1 "$(execs "res-$mode-true" unchanged "$P1")"
done
check_has "the failing task failed (its message in the result)" '"failed": true' "$(cat "$LOGS/res-plain-true/tartanpion.json")"
check_has "diff mode gave a diff" '"after"' "$(cat "$LOGS/res-plain-true/tartanpion.json")"
restore_hosts

echo "-- a cache that cannot be used: refused, one warning per host and run, the tasks still work"
"$L" exec pve1 sh -c 'mkdir -p /run/c14noexec && mount -t tmpfs -o noexec,mode=0700 c14noexec /run/c14noexec'
play noexec -e target=tartanpion -e pve2node_cache_dir=/run/c14noexec/pve2node "$LOGS/tasks.yml"
check_eq "noexec: run succeeds (stock path)" "0" "$play_rc"
check_eq "noexec: one warning" 1 "$(warns noexec "cannot run programs in /run/c14noexec/pve2node (noexec?)")"
check_eq "noexec: no upload into the cache" 0 "$(count noexec "pve2node: uploading")"
check_eq "noexec: later tasks: the stock path (7 commands)" 7 "$(execs noexec pin3 "$P1")"
"$L" exec pve1 umount /run/c14noexec
for n in pve1 pve2; do "$L" exec "$n" sh -c 'mkdir -p /run/c14foreign/pve2node && chown -R nobody /run/c14foreign'; done
play foreign -e pve2node_cache_dir=/run/c14foreign/pve2node "$LOGS/tasks.yml"
check_eq "foreign-owned: run succeeds" "0" "$play_rc"
check_eq "foreign-owned: one warning per host (2 hosts, 4 tasks each)" 2 "$(warns foreign "/run/c14foreign/pve2node is not owned by root")"
"$L" exec pve1 chmod 0777 "$CACHE"
play widecache "$LOGS/tasks.yml"
check_eq "cache writable by others: run succeeds" "0" "$play_rc"
check_eq "cache writable by others: refused on pve1 (one warning)" 1 "$(warns widecache "$CACHE is writable by group or others")"
check_eq "cache writable by others: nothing run from it on pve1 (stock path)" 7 "$(execs widecache pin2 "$P1")"
check_eq "pve2's cache is fine: 1 command" 1 "$(execs widecache pin2 "$P2")"
"$L" exec pve1 chmod 0700 "$CACHE"
"$L" exec pve1 sh -c 'mkdir -p /run/c14ro && mount -t tmpfs -o ro,mode=0700 c14ro /run/c14ro'
play readonly -e target=tartanpion "$LOGS/tasks.yml" -e pve2node_cache_dir=/run/c14ro/pve2node
"$L" exec pve1 umount /run/c14ro
check_eq "read-only cache dir: run succeeds" "0" "$play_rc"
check_eq "read-only cache dir: one warning" 1 "$(warns readonly "cannot create /run/c14ro/pve2node/")"
play off -e pve2node_cache=false "$LOGS/tasks.yml"
check_eq "pve2node_cache=false: run succeeds, no warning" "0|0" "$play_rc|$(count off "[WARNING]: pve2node")"
check_eq "pve2node_cache=false: the stock path (7 commands)" 7 "$(execs off pin2 "$P1")"

echo "-- become (sudo) from a non-root user made inside the node"
if ! command -v sudo >/dev/null; then
  # sudo comes from the host (the node's /etc and /usr are the host's); scripts/setup-lab.sh installs it
  if [[ ${PVE2NODE_E2E:-} == 1 ]]; then bad "become: sudo is not installed (apt-get install sudo; scripts/setup-lab.sh)"; else echo "  SKIP become: sudo is not installed (apt-get install sudo)"; fi
else
  # shellcheck disable=SC2016 # runs in the node
  "$L" exec pve1 sh -c '
    id c14u >/dev/null 2>&1 || useradd -M -d /run/c14u -s /bin/sh c14u
    usermod -p "*" c14u
    mkdir -p /run/c14u/.ssh && cp "$1" /run/c14u/.ssh/authorized_keys
    chown -R c14u: /run/c14u && chmod 0700 /run/c14u /run/c14u/.ssh && chmod 0600 /run/c14u/.ssh/authorized_keys
    mkdir -p /etc/sudoers.d && echo "c14u ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/c14u && chmod 0440 /etc/sudoers.d/c14u
    rm -rf /root/.cache/pve2node' _ "$LAB/ssh/id_ed25519.pub"
  play become -e target=tartanpion -e ansible_user=c14u -b "$LOGS/tasks.yml"
  check_eq "become: run succeeds" "0" "$play_rc"
  check_eq "become: uploaded once through sudo" 1 "$(count become "<$P1> pve2node: uploading hosts_pin ")"
  check_eq "become: later tasks 1 command" 1 "$(execs become pin2 "$P1")"
  check_eq "become: a root-owned cache in root's home" "drwx------ root" "$("$L" exec pve1 stat -c '%A %U' "$CACHE")"
  check_eq "become: nothing in the user's home" absent "$("$L" exec pve1 sh -c 'test -e /run/c14u/.cache && echo present || echo absent')"
  check_lacks "become: no warning" "[WARNING]: pve2node" "$play_out"
  play become-user -e target=tartanpion -e ansible_user=c14u --check "$LOGS/tasks.yml"
  check_eq "no become: the user's cache 0700 c14u" "drwx------ c14u" "$("$L" exec pve1 stat -c '%A %U' /run/c14u/.cache/pve2node)"
  "$L" exec pve1 sh -c 'mkdir -p /run/c14shared && chown c14u /run/c14shared && chmod 0777 /run/c14shared'
  play become-wide -e target=tartanpion -e ansible_user=c14u -b -e pve2node_cache_dir=/run/c14shared "$LOGS/tasks.yml"
  check_eq "become, a cache another user can write to: run succeeds" "0" "$play_rc"
  check_eq "become, a cache another user can write to: refused (one warning)" 1 "$(warns become-wide "the binary cache cannot be used")"
  "$L" exec pve1 sh -c 'echo root:c14-lab-only | chpasswd'
  play su -e target=tartanpion -e ansible_user=c14u -b -e ansible_become_method=su -e ansible_become_password=c14-lab-only --skip-tags cluster "$LOGS/tasks.yml"
  check_eq "become_method su: run succeeds (stock path)" "0" "$play_rc"
  check_eq "become_method su: one warning naming su" 1 "$(warns su "become_method su cannot pass stdin")"
fi

echo "-- clearing the cache (README's ad-hoc command)"
timeout 60 "$L" ansible pve -m ansible.builtin.raw -a 'rm -rf ~/.cache/pve2node' >"$LOGS/clear.log" 2>&1 || true
check_eq "cleared on both" "absent|absent" "$("$L" exec pve1 sh -c "test -e $CACHE && echo present || echo absent")|$("$L" exec pve2 sh -c "test -e $CACHE && echo present || echo absent")"

"$L" down >/dev/null
echo "== cache e2e: $passed passed, $failed failed in $(elapsed "$t_start") s"
if ((failed)); then
  echo "   logs kept in ${LOGS}.kept"
  cp -a "$LOGS" "${LOGS}.kept"
fi
((failed == 0))
