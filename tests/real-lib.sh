# shellcheck shell=bash
# Helpers shared by the real-daemon scripts (tests/qdevice_real.sh, tests/lone_node_real.sh):
# sourced, not run.

# wait_for SECONDS CMD...: poll CMD every 0.2 s, bounded.
wait_for() {
  local end=$((${EPOCHREALTIME%.*} + $1))
  shift
  while ! "$@" >/dev/null 2>&1; do
    ((${EPOCHREALTIME%.*} < end)) || return 1
    sleep 0.2
  done
}
# j JSON KEY...: a value from a JSON result (python3; nested keys, list indexes as numbers).
j() {
  python3 -c 'import json,sys
v=json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v=v[int(k)] if isinstance(v,list) else v.get(k)
print("" if v is None else (json.dumps(v) if isinstance(v,(dict,list,bool)) else v))' "$@"
}
