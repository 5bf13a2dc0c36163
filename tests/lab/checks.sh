# Setup and check helpers shared by the lab suites (sourced by e2e.sh and playbooks_e2e.sh
# after they set `here`): repo, L (lab.sh), LAB (the lab dir), the lab library, and checks
# counting into $passed and $failed.
# shellcheck shell=bash disable=SC2034,SC2154
repo=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=standins/lab-lib.sh
. "$here/standins/lab-lib.sh"
export PVE2NODE_LAB_DIR=${PVE2NODE_LAB_DIR:-$repo/.lab}
LAB=$PVE2NODE_LAB_DIR
L=$here/lab.sh
passed=0
failed=0
ok() { passed=$((passed + 1)); printf '  ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf '  FAIL %s\n' "$1"; [[ -n ${2:-} ]] && printf '%s\n' "$2" | sed 's/^/       | /'; return 0; }
# check DESC CMD...: CMD must succeed.
check() { local d=$1 out; shift; if out=$("$@" 2>&1); then ok "$d"; else bad "$d" "$out"; fi; }
# check_eq DESC EXPECTED ACTUAL
check_eq() { if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1" "expected: $(printf %q "$2")"$'\n'"actual:   $(printf %q "$3")"; fi; }
# check_has DESC NEEDLE HAYSTACK / check_lacks DESC NEEDLE HAYSTACK
check_has() { if [[ $3 == *"$2"* ]]; then ok "$1"; else bad "$1" "missing: $2"$'\n'"in: $3"; fi; }
check_lacks() { if [[ $3 != *"$2"* ]]; then ok "$1"; else bad "$1" "unexpected: $2"$'\n'"in: $3"; fi; }
n1() { "$L" exec pve1 "$@"; }
n2() { "$L" exec pve2 "$@"; }
# run_rc VAR_OUT VAR_ERR VAR_RC NODE CMD...: capture stdout, stderr, exit status inside NODE.
run_rc() {
  local -n _o=$1 _e=$2 _r=$3
  local node=$4 tmp
  shift 4
  tmp=$(mktemp)
  _r=0
  _o=$("$L" exec "$node" "$@" 2>"$tmp") || _r=$?
  _e=$(cat "$tmp")
  rm -f "$tmp"
}
# lab_pids: every PID the lab recorded (anchors, daemons, sshd), one per line.
lab_pids() { cat "$LAB"/nodes/*/anchor.pid "$LAB"/nodes/*/run/lab/*.pid "$LAB"/nodes/*/run/sshd.pid 2>/dev/null || true; }
# check_nothing_left SUFFIX PID...: after `lab.sh down`, no namespace, none of the PIDs alive,
# no process or mount mentioning the lab dir, and the lab dir gone.
check_nothing_left() {
  local sfx=$1 p f live="" strays=""
  shift
  check "no lab namespaces$sfx" bash -c "! ip netns list | grep -qE '^${PVE2NODE_LAB_NS:-}(pve[123]|wire)( |\$)'"
  for p in "$@"; do alive "$p" && live+="$p($(cat /proc/"$p"/comm 2>/dev/null)) "; done
  check_eq "no live lab process$sfx (of $# recorded)" "" "$live"
  for f in $(grep -l -F "$LAB/" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    p=${f#/proc/}
    p=${p%/cmdline}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    alive "$p" && strays+="$p($(tr '\0' ' ' <"$f" 2>/dev/null)) "
  done
  check_eq "no live process mentions the lab dir$sfx" "" "$strays"
  check_eq "no mount mentions the lab dir$sfx" "" "$(grep -F "$LAB" /proc/self/mountinfo || true)"
  check "lab dir removed$sfx" test ! -e "$LAB"
}

# --- helpers of the suites that run Ansible and read corosync (set LOGS first) ----------------
# play NAME ARGS...: ansible-playbook (or, for a NAME starting with adhoc-, ansible) against the
# lab, bounded by ANSIBLE_TIMEOUT_S (default 240 s); output in $LOGS/NAME.log and $play_out,
# exit status in $play_rc.
play() {
  local name=$1 tool=ansible-playbook
  shift
  [[ $name == adhoc-* ]] && tool=ansible
  play_rc=0
  timeout -k 10 "${ANSIBLE_TIMEOUT_S:-240}" "$L" "$tool" "$@" >"$LOGS/$name.log" 2>&1 || play_rc=$?
  play_out=$(cat "$LOGS/$name.log")
}
# recap_changed: the sum of changed= over the hosts of the last play's recap
recap_changed() { awk '$2 == ":" && $3 ~ /^ok=/ { sub(/changed=/, "", $4); s += $4 } END { print s + 0 }' <<<"$play_out"; }
lab_wait() { "$L" wait "$@" >/dev/null 2>&1; }
# qrc NODE: corosync-quorumtool -s's exit status in NODE (0 quorate, 2 blocked, 1 down)
qrc() { local rc=0; "$L" exec "$1" timeout 5 corosync-quorumtool -s >/dev/null 2>&1 || rc=$?; echo "$rc"; }
# flags NODE: the votequorum flags NODE shows
flags() { "$L" exec "$1" timeout 5 corosync-quorumtool -s 2>/dev/null | sed -n 's/^Flags: *//p' | sed 's/ *$//'; }
