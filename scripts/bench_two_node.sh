#!/usr/bin/env bash
# Benchmark on the two-node lab (root; prints numbers, asserts nothing about time):
#   1. lab up and down times (every fresh lab of this run);
#   2. the whole seed procedure on a fresh lab, first run and second (unchanged) run:
#      playbooks/two_node.yml (the pve2node binary modules) vs playbooks/bench/two_node_python.yml
#      (stock Python modules), interleaved in the same session, with ANSIBLE_PIPELINING off and on
#      (binary modules cannot be pipelined: Ansible always copies them over);
#   3. per-task times over ssh, one host, warm ssh connection (ControlPersist), ROUNDS tasks each,
#      interleaved: hosts_pin vs lineinfile (same /etc/hosts line, unchanged) and
#      pvecm_cluster state=info vs command `pvecm status` (both read the cluster), with
#      pipelining off and on.
# Usage: scripts/bench_two_node.sh     REPS=1 (fresh-lab runs per variant), ROUNDS=10
# Needs scripts/setup.sh and scripts/build.sh done. Takes the lab down at the end (trap).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source-path=SCRIPTDIR source=../tests/lab/standins/lab-lib.sh
. tests/lab/standins/lab-lib.sh
export PVE2NODE_LAB_DIR=${PVE2NODE_LAB_DIR:-$here/.lab}
L=$here/tests/lab/lab.sh
REPS=${REPS:-1}
ROUNDS=${ROUNDS:-10}
[[ -x build/modules/hosts_pin ]] || { echo "bench: run scripts/build.sh first" >&2; exit 1; }

tmp=$(mktemp -d /tmp/pve2node-bench-two-node.XXXXXX)
cleanup() { "$L" down >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/callback_plugins"
cat >"$tmp/callback_plugins/bench_times.py" <<'EOF'
# Appends one JSON line per task result (task name, host, status, changed, seconds since the
# task started) to $BENCH_TIMES_FILE.
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.start = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.start[task._uuid] = time.monotonic()

    def _done(self, result, status):
        t0 = self.start.get(result._task._uuid)
        if t0 is None:
            return
        with open(os.environ['BENCH_TIMES_FILE'], 'a') as f:
            f.write(json.dumps({'task': result._task.get_name(), 'host': result._host.get_name(),
                                'status': status, 'changed': bool(result._result.get('changed')),
                                's': time.monotonic() - t0}) + '\n')

    def v2_runner_on_ok(self, result):
        self._done(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._done(result, 'skipped')
EOF
export ANSIBLE_CALLBACK_PLUGINS=$tmp/callback_plugins ANSIBLE_CALLBACKS_ENABLED=bench_times

ups=()
downs=()
fresh_lab() {
  local t0 st=0
  "$L" status >/dev/null 2>&1 || st=$?
  t0=$EPOCHREALTIME
  "$L" down >/dev/null
  ((st == 3)) || downs+=("$(elapsed "$t0")")
  t0=$EPOCHREALTIME
  "$L" up >/dev/null
  ups+=("$(elapsed "$t0")")
}
# run_pb LOG PLAYBOOK: ansible-playbook, wall-clock seconds on stdout; fails on a failed run.
run_pb() {
  local log=$1 t0 rc=0
  shift
  t0=$EPOCHREALTIME
  timeout -k 10 300 "$L" ansible-playbook "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    echo "bench: ansible-playbook $* failed (rc $rc), see below" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  elapsed "$t0"
}
changed_sum() { grep -E '^[^ ]+ +: ok=' "$1" | sed 's/.*changed=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }'; }
stats() { sort -n | awk '{ a[NR] = $1; s += $1 } END { n = NR; if (n == 0) { print "-"; exit } printf "mean %.2f  min %.2f  max %.2f  (n=%d)", s / n, a[1], a[n], n }'; }

echo "pve2node bench: two_node on the lab ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)), REPS=$REPS ROUNDS=$ROUNDS"
echo "== whole playbook on a fresh lab: first run (builds the cluster) and second run (changes nothing)"
declare -A first second tasks
for ((r = 1; r <= REPS; r++)); do
  for pipe in False True; do
    for variant in binary python; do
      pb=playbooks/two_node.yml
      [[ $variant == python ]] && pb=playbooks/bench/two_node_python.yml
      fresh_lab
      export ANSIBLE_PIPELINING=$pipe BENCH_TIMES_FILE=$tmp/times-$variant-$pipe-$r.jsonl
      key=$variant/pipelining=$pipe
      first[$key]+="$(run_pb "$tmp/run1.log" "$pb") "
      tasks[$key]=$(grep -cE '^TASK \[' "$tmp/run1.log")
      mv "$BENCH_TIMES_FILE" "$tmp/times-first-$variant-$pipe-$r.jsonl"
      second[$key]+="$(run_pb "$tmp/run2.log" "$pb") "
      c=$(changed_sum "$tmp/run2.log")
      ((c == 0)) || echo "bench: warning: second run of $pb changed $c task(s)" >&2
      unset BENCH_TIMES_FILE
    done
  done
done
printf '%-28s %-8s %-44s %s\n' variant tasks "first run (s)" "second run (s)"
for key in binary/pipelining=False python/pipelining=False binary/pipelining=True python/pipelining=True; do
  printf '%-28s %-8s %-44s %s\n' "$key" "${tasks[$key]}" "$(tr ' ' '\n' <<<"${first[$key]}" | grep . | stats)" "$(tr ' ' '\n' <<<"${second[$key]}" | grep . | stats)"
done
echo "   (tasks: task headers in the first run; binary = two_node.yml, python = bench/two_node_python.yml)"
echo "== first run, per task (pipelining off, rep 1): seconds, both hosts"
for variant in binary python; do
  echo "-- $variant"
  python3 - "$tmp/times-first-$variant-False-1.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
seen = {}
for r in rows:
    seen.setdefault(r['task'], []).append(r)
for task, rs in seen.items():
    print('   %6.2f  %-9s %s' % (max(r['s'] for r in rs), ','.join(sorted({r['status'] + ('*' if r['changed'] else '') for r in rs})), task))
EOF
done
echo "   (* = changed; time = from task start to the last host's result)"

echo "== per task over ssh, warm connection, one host (tartanpion), unchanged runs, ROUNDS=$ROUNDS each"
# The lab still holds the cluster built by the last run above.
{
  echo "- hosts: tartanpion"
  echo "  gather_facts: false"
  echo "  tasks:"
  echo "    - name: warm-up (opens the ssh master connection)"
  echo "      ansible.builtin.command: 'true'"
  echo "      changed_when: false"
  for ((i = 1; i <= ROUNDS; i++)); do
    cat <<TASKS
    - name: bench hosts_pin $i
      hosts_pin: {hostname: tartanpion, ip: 10.99.0.1}
    - name: bench lineinfile $i
      ansible.builtin.lineinfile: {path: /etc/hosts, line: 10.99.0.1 tartanpion}
    - name: bench pvecm_cluster info $i
      pvecm_cluster: {state: info}
    - name: bench command pvecm status $i
      ansible.builtin.command: pvecm status
      changed_when: false
TASKS
  done
} >"$tmp/per_task.yml"
for pipe in False True; do
  export ANSIBLE_PIPELINING=$pipe BENCH_TIMES_FILE=$tmp/per-task-$pipe.jsonl
  run_pb "$tmp/per_task.log" "$tmp/per_task.yml" >/dev/null
  c=$(changed_sum "$tmp/per_task.log")
  ((c == 0)) || echo "bench: warning: per-task run changed $c task(s)" >&2
done
unset BENCH_TIMES_FILE
python3 - "$tmp/per-task-False.jsonl" "$tmp/per-task-True.jsonl" <<'EOF'
import json, re, statistics, sys
print('%-30s %-36s %s' % ('module (binary/Python)', 'pipelining off: mean / median / min', 'pipelining on: mean / median / min'))
res = {}
for path, pipe in zip(sys.argv[1:], ('off', 'on')):
    for line in open(path):
        r = json.loads(line)
        m = re.match(r'bench (.*) \d+$', r['task'])
        if m:
            res.setdefault(m.group(1), {}).setdefault(pipe, []).append(r['s'])
for name, kind in (('hosts_pin', 'binary'), ('lineinfile', 'Python'), ('pvecm_cluster info', 'binary'), ('command pvecm status', 'Python')):
    cells = []
    for pipe in ('off', 'on'):
        t = res.get(name, {}).get(pipe, [])
        cells.append('%.3f / %.3f / %.3f s (n=%d)' % (statistics.mean(t), statistics.median(t), min(t), len(t)) if t else '-')
    print('%-30s %-36s %s' % ('%s (%s)' % (name, kind), cells[0], cells[1]))
EOF
t0=$EPOCHREALTIME
"$L" down >/dev/null
downs+=("$(elapsed "$t0")")
echo "== lab: up $(printf '%s\n' "${ups[@]}" | stats) s; down $(printf '%s\n' "${downs[@]}" | stats) s"
