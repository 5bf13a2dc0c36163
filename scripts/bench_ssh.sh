#!/usr/bin/env bash
# Benchmark over real ssh on the two-node lab (root; prints numbers, asserts nothing about time):
#   1. per task, both nodes, warm ssh masters (ControlPersist), ROUNDS rounds interleaved (the
#      order rotates each round), pipelining on (it only changes the Python task):
#        raw        ansible.builtin.raw: /bin/true (the floor of an Ansible task)
#        cache      pve2node.cluster.hosts_pin, unchanged, with the binary cache (one command)
#        nocache    the same with pve2node_cache: false (Ansible's stock binary-module path)
#        python     ansible.builtin.lineinfile of the same line (unchanged), pipelined
#      a task's time: from its start to that host's result (callback), in ms;
#   2. the whole playbooks/two_node.yml, second (unchanged) run, REPS runs each, interleaved:
#      cache on, cache off (-e pve2node_cache=false), and the all-Python
#      playbooks/bench/two_node_python.yml with pipelining; playbook time (callback: start of
#      the playbook to its stats) and the process's wall time.
# Usage: scripts/bench_ssh.sh            ROUNDS=24 REPS=5
# Needs scripts/collection.sh done (the installed collection) and the lab's packages.
# Uses its own lab (PVE2NODE_LAB_DIR, PVE2NODE_LAB_NS as for the lab); takes it down at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PVE2NODE_LAB_DIR=${PVE2NODE_LAB_DIR:-$here/.lab}
L=$here/tests/lab/lab.sh
ROUNDS=${ROUNDS:-24}
REPS=${REPS:-5}
[[ -f build/collections/ansible_collections/pve2node/cluster/plugins/action/hosts_pin.py ]] ||
  { echo "bench: run scripts/collection.sh first" >&2; exit 1; }

tmp=$(mktemp -d /tmp/pve2node-bench-ssh.XXXXXX)
cleanup() {
  "$L" down >/dev/null 2>&1 || true
  if [[ -n ${BENCH_KEEP:-} ]]; then echo "bench: logs in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/cb"
cat >"$tmp/cb/bench_ssh.py" <<'EOF'
# Times each task per host (task start -> that host's result) and the playbook; appends JSON
# lines to $BENCH_OUT.
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_ssh'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.t_task = None
        self.name = None
        self.t_play = None
        self.out = open(os.environ['BENCH_OUT'], 'a')

    def v2_playbook_on_start(self, playbook):
        self.t_play = time.monotonic()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.t_task = time.monotonic()
        self.name = task.get_name()

    def _done(self, result, failed=False):
        self.out.write(json.dumps({'task': self.name, 'host': result._host.get_name(),
                                   'ms': (time.monotonic() - self.t_task) * 1000,
                                   'failed': failed, 'changed': bool(result._result.get('changed'))}) + '\n')

    def v2_runner_on_ok(self, result):
        self._done(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, True)

    def v2_playbook_on_stats(self, stats):
        self.out.write(json.dumps({'playbook_ms': (time.monotonic() - self.t_play) * 1000}) + '\n')
        self.out.close()
EOF
export ANSIBLE_CALLBACK_PLUGINS=$tmp/cb ANSIBLE_CALLBACKS_ENABLED=bench_ssh

echo "bench_ssh: machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), $(. /etc/os-release && echo "$PRETTY_NAME"), ansible-core $("${PVE2NODE_VENV:-$here/.venv}/bin/ansible" --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p'), lab relay ${PVE2NODE_LAB_RELAY:-socat}"
"$L" down >/dev/null 2>&1 || true
"$L" up >/dev/null

# ---------------------------------------------------------------- 1. per task
variants=(raw cache nocache python)
task_yaml() { # VARIANT N
  case $1 in
    raw) printf '    - name: "raw #%s"\n      ansible.builtin.raw: /bin/true\n' "$2" ;;
    cache) printf '    - name: "cache #%s"\n      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}\n' "$2" ;;
    nocache) printf '    - name: "nocache #%s"\n      pve2node.cluster.hosts_pin: {hostname: "{{ inventory_hostname }}", ip: "{{ private_ip }}"}\n      vars: {pve2node_cache: false}\n' "$2" ;;
    python) printf '    - name: "python #%s"\n      ansible.builtin.lineinfile: {path: /root/hosts.bench, line: "{{ private_ip }} {{ inventory_hostname }}"}\n' "$2" ;;
  esac
}
{
  printf -- '- hosts: pve\n  gather_facts: false\n  tasks:\n'
  # setup and warm-up (ssh masters, the cache, the Python module cache): not counted
  printf '    - name: "setup"\n      ansible.builtin.copy: {content: "{{ private_ip }} {{ inventory_hostname }}\\n", dest: /root/hosts.bench, mode: "0644"}\n'
  for v in "${variants[@]}"; do task_yaml "$v" 0 | sed 's/#0/warmup/'; done
  for ((i = 1; i <= ROUNDS; i++)); do
    for ((j = 0; j < ${#variants[@]}; j++)); do
      task_yaml "${variants[$(((i + j) % ${#variants[@]}))]}" "$i"
    done
  done
} >"$tmp/per_task.yml"
BENCH_OUT=$tmp/per_task.jsonl ANSIBLE_PIPELINING=True timeout 900 "$L" ansible-playbook "$tmp/per_task.yml" >"$tmp/per_task.log" 2>&1 ||
  { echo "bench: the per-task playbook failed:" >&2; tail -n 30 "$tmp/per_task.log" >&2; exit 1; }

# ---------------------------------------------------------------- 2. two_node.yml second runs
timeout 600 "$L" ansible-playbook playbooks/two_node.yml >"$tmp/first.log" 2>&1 ||
  { echo "bench: two_node.yml first run failed:" >&2; tail -n 30 "$tmp/first.log" >&2; exit 1; }
# one un-timed run of the Python playbook: its lineinfile adds its own form of the hosts line once
ANSIBLE_PIPELINING=True timeout 600 "$L" ansible-playbook playbooks/bench/two_node_python.yml >"$tmp/python_warmup.log" 2>&1 ||
  { echo "bench: two_node_python.yml failed:" >&2; tail -n 30 "$tmp/python_warmup.log" >&2; exit 1; }
for ((r = 1; r <= REPS; r++)); do
  for v in two_node_cache two_node_nocache python_pipelined; do
    case $v in
      two_node_cache) args=(playbooks/two_node.yml) ;;
      two_node_nocache) args=(playbooks/two_node.yml -e pve2node_cache=false) ;;
      python_pipelined) args=(playbooks/bench/two_node_python.yml) ;;
    esac
    t0=$EPOCHREALTIME
    rc=0
    BENCH_OUT=$tmp/$v.jsonl ANSIBLE_PIPELINING=True timeout 600 "$L" ansible-playbook "${args[@]}" >"$tmp/$v.$r.log" 2>&1 || rc=$?
    wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
    echo "{\"wall_ms\": $wall, \"rc\": $rc, \"recap\": \"$(awk '$2 == ":" { printf "%s %s ", $1, $4 }' "$tmp/$v.$r.log")\"}" >>"$tmp/$v.jsonl"
  done
done

python3 - "$tmp" "$ROUNDS" <<'PY'
import json, statistics, sys, os
tmp, rounds = sys.argv[1], int(sys.argv[2])
def q(xs, p):
    xs = sorted(xs); k = (len(xs) - 1) * p; f = int(k); c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)
rows = [json.loads(l) for l in open(os.path.join(tmp, "per_task.jsonl")) if '"task"' in l]
per = {}
for r in rows:
    name = r["task"]
    if "#" not in name or name.endswith("warmup") or "#warmup" in name:
        continue
    v = name.split(" #")[0]
    if r["failed"]:
        print("bench: a %s task failed on %s" % (v, r["host"]))
    per.setdefault(v, {}).setdefault(r["host"], []).append(r["ms"])
floor = statistics.median([x for h in per["raw"].values() for x in h])
print("\nper task (ms; %d rounds, interleaved; both nodes in parallel; median [p10-p90] per host, then both)" % rounds)
print("%-9s %-28s %-28s %-10s %s" % ("variant", "tartanpion", "bismuth", "median", "vs raw"))
meds = {}
for v in ("raw", "cache", "nocache", "python"):
    cells = []
    allx = []
    for h in ("tartanpion", "bismuth"):
        xs = per.get(v, {}).get(h, [])
        allx += xs
        cells.append("%.1f [%.1f-%.1f] n=%d" % (statistics.median(xs), q(xs, .1), q(xs, .9), len(xs)) if xs else "-")
    meds[v] = statistics.median(allx)
    print("%-9s %-28s %-28s %-10.1f %.2fx" % (v, cells[0], cells[1], meds[v], meds[v] / floor))
print("cache vs raw floor: %.2fx (goal <= 1.25x); python/cache: %.2fx (goal >= 4x); nocache/cache: %.2fx"
      % (meds["cache"] / meds["raw"], meds["python"] / meds["cache"], meds["nocache"] / meds["cache"]))
print("\ntwo_node.yml second run (unchanged) and the all-Python playbook, pipelined (ms; median [min-max])")
for v in ("two_node_cache", "two_node_nocache", "python_pipelined"):
    lines = [json.loads(l) for l in open(os.path.join(tmp, v + ".jsonl"))]
    pb = [l["playbook_ms"] for l in lines if "playbook_ms" in l]
    wall = [l["wall_ms"] for l in lines if "wall_ms" in l]
    rcs = sorted({l["rc"] for l in lines if "rc" in l})
    ch = sorted({l["recap"].strip() for l in lines if "recap" in l})
    print("%-17s playbook %.0f [%.0f-%.0f]  process %.0f [%.0f-%.0f]  rc %s  recap %s"
          % (v, statistics.median(pb), min(pb), max(pb), statistics.median(wall), min(wall), max(wall), rcs, "; ".join(ch)))
PY
