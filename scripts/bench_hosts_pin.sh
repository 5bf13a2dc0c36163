#!/usr/bin/env bash
# Benchmark: the seed's /etc/hosts edit (pin tartanpion to 172.16.0.1) done through the real
# ansible-playbook (connection local), as one hosts_pin task and as the equivalent Python
# lineinfile tasks (two: strip the short name from the public line, add the private line), in
# the same run, alternating, ROUNDS times each. A small callback plugin times every task; the
# script prints per-task times (mean/median/min) and the ratios. Prints numbers, asserts nothing
# about time. Works on a throw-away file in a temp dir; ANSIBLE_HOME is in that temp dir too.
#
# Usage: scripts/bench_hosts_pin.sh            (ROUNDS=10 by default)
#   HOSTS_PIN_BIN=/path/to/hosts_pin  use that binary (default: build/modules/hosts_pin from
#   scripts/build.sh, else target/release/hosts_pin, built with cargo if missing)
#   PVE2NODE_VENV=/path/to/venv       the venv holding ansible-core (default: ./.venv)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${PVE2NODE_VENV:-$here/.venv}
rounds=${ROUNDS:-10}
[ -x "$venv/bin/ansible-playbook" ] || { echo "bench: no ansible-playbook in $venv (run scripts/setup.sh)" >&2; exit 1; }

bin=${HOSTS_PIN_BIN:-}
if [ -z "$bin" ]; then
  if [ -x "$here/build/modules/hosts_pin" ]; then
    bin=$here/build/modules/hosts_pin
  else
    bin=$here/target/release/hosts_pin
    [ -x "$bin" ] || (cd "$here" && cargo build --quiet --release --bin hosts_pin)
  fi
fi

tmp=$(mktemp -d /tmp/pve2node-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/library" "$tmp/callback_plugins" "$tmp/home"
install -m 0755 "$bin" "$tmp/library/hosts_pin"
: >"$tmp/ansible.cfg"
printf 'localhost ansible_connection=local ansible_python_interpreter=%s\n' "$venv/bin/python" >"$tmp/inventory.ini"

cat >"$tmp/callback_plugins/bench_timer.py" <<'EOF'
# Times every task whose name starts with "bench " and prints a summary as JSON lines.
import json, time, statistics
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.start = {}
        self.times = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.start[task._uuid] = time.monotonic()

    def _done(self, result):
        name = result._task.get_name()
        t0 = self.start.get(result._task._uuid)
        if t0 is not None and name.startswith('bench '):
            self.times.setdefault(name, []).append(time.monotonic() - t0)

    v2_runner_on_ok = _done
    v2_runner_on_failed = lambda self, result, ignore_errors=False: self._done(result)

    def v2_playbook_on_stats(self, stats):
        for name, ts in self.times.items():
            print('BENCH ' + json.dumps({'task': name, 'n': len(ts), 'mean': statistics.mean(ts),
                                         'median': statistics.median(ts), 'min': min(ts)}))
EOF

seed='127.0.0.1   localhost.localdomain localhost
87.37.23.91 tartanpion.elao.local tartanpion
'
printf '%s' "$seed" >"$tmp/seed"
printf '127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local\n172.16.0.1  tartanpion\n' >"$tmp/expected"

cat >"$tmp/round.yml" <<'EOF'
- name: reset for hosts_pin
  copy: {src: "{{ dir }}/seed", dest: "{{ dir }}/hosts"}
- name: bench hosts_pin
  hosts_pin: {path: "{{ dir }}/hosts", hostname: tartanpion, ip: 172.16.0.1}
- name: reset for lineinfile
  copy: {src: "{{ dir }}/seed", dest: "{{ dir }}/hosts"}
- name: bench lineinfile 1/2 (strip the short name from the public line)
  lineinfile:
    path: "{{ dir }}/hosts"
    regexp: '^(87\.37\.23\.91\s+tartanpion\.elao\.local)\s+tartanpion\s*$'
    line: '\1'
    backrefs: true
- name: bench lineinfile 2/2 (the private line)
  lineinfile:
    path: "{{ dir }}/hosts"
    regexp: '^172\.16\.0\.1\s'
    line: '172.16.0.1  tartanpion'
EOF

cat >"$tmp/bench.yml" <<'EOF'
- hosts: localhost
  gather_facts: false
  tasks:
    - name: both ways give the same bytes (hosts_pin)
      hosts_pin: {path: "{{ dir }}/check-a", hostname: tartanpion, ip: 172.16.0.1}
    - name: both ways give the same bytes (lineinfile)
      lineinfile:
        path: "{{ dir }}/check-b"
        regexp: '^(87\.37\.23\.91\s+tartanpion\.elao\.local)\s+tartanpion\s*$'
        line: '\1'
        backrefs: true
    - name: both ways give the same bytes (lineinfile 2)
      lineinfile: {path: "{{ dir }}/check-b", regexp: '^172\.16\.0\.1\s', line: '172.16.0.1  tartanpion'}
    - name: rounds
      include_tasks: "{{ dir }}/round.yml"
      loop: "{{ range(rounds | int) | list }}"
EOF
cp "$tmp/seed" "$tmp/check-a"
cp "$tmp/seed" "$tmp/check-b"

export ANSIBLE_HOME="$tmp/home" ANSIBLE_LOCAL_TEMP="$tmp/home/tmp" ANSIBLE_REMOTE_TEMP="$tmp/home/remote-tmp"
export ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_LIBRARY="$tmp/library" ANSIBLE_NOCOLOR=1
export ANSIBLE_CALLBACK_PLUGINS="$tmp/callback_plugins" ANSIBLE_CALLBACKS_ENABLED=bench_timer
export ANSIBLE_RETRY_FILES_ENABLED=0

start=$(date +%s.%N)
"$venv/bin/ansible-playbook" -i "$tmp/inventory.ini" -e "dir=$tmp rounds=$rounds" "$tmp/bench.yml" >"$tmp/out.txt" 2>&1 || {
  cat "$tmp/out.txt"; echo "bench: ansible-playbook failed" >&2; exit 1; }
end=$(date +%s.%N)
cmp -s "$tmp/check-a" "$tmp/expected" || { echo "bench: hosts_pin result differs from the seed's expected text" >&2; exit 1; }
cmp -s "$tmp/check-b" "$tmp/expected" || { echo "bench: lineinfile result differs from the seed's expected text" >&2; exit 1; }
cmp -s "$tmp/hosts" "$tmp/expected" || { echo "bench: last round's result differs" >&2; exit 1; }

size=$(stat -c %s "$bin")
version=$("$venv/bin/ansible-playbook" --version 2>/dev/null | sed -n 1p)
"$venv/bin/python" - "$tmp/out.txt" "$bin" "$size" "$rounds" "$start" "$end" \
  "$version" <<'EOF'
import json, sys
out, binpath, size, rounds, start, end, version = sys.argv[1:8]
rows = [json.loads(l[6:]) for l in open(out) if l.startswith('BENCH ')]
by = {r['task']: r for r in rows}
hp = by['bench hosts_pin']
li = [r for n, r in sorted(by.items()) if n.startswith('bench lineinfile')]
print(f"bench_hosts_pin: {version}, connection local, {rounds} rounds, same run, alternating")
print(f"hosts_pin binary: {binpath} ({int(size)} bytes)")
print(f"{'task':64} {'n':>3} {'mean ms':>8} {'median':>8} {'min':>8}")
for r in [hp] + li:
    print(f"{r['task']:64} {r['n']:>3} {r['mean']*1000:8.1f} {r['median']*1000:8.1f} {r['min']*1000:8.1f}")
li_task_mean = sum(r['mean'] for r in li) / len(li)
li_edit_mean = sum(r['mean'] for r in li)
print(f"per task: lineinfile / hosts_pin = {li_task_mean / hp['mean']:.2f}x (median {sum(r['median'] for r in li) / len(li) / hp['median']:.2f}x)")
print(f"per edit: {len(li)} lineinfile tasks / 1 hosts_pin task = {li_edit_mean / hp['mean']:.2f}x "
      f"({li_edit_mean*1000:.1f} ms vs {hp['mean']*1000:.1f} ms)")
print(f"whole playbook: {float(end) - float(start):.1f} s")
EOF
