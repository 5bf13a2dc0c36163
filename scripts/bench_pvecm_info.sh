#!/usr/bin/env bash
# Benchmark: pvecm_cluster state=info against a stand-in pvecm printing a 64-node PVE 8
# membership (status + nodes). Prints the release binary size and the mean wall time per
# run, next to the time of the stand-in's own two calls (what the module cannot go below).
# Usage: scripts/bench_pvecm_info.sh [runs]   (builds the release binary first)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-50}
cd "$here"
cargo build --release --quiet --bin pvecm_cluster
bin="$here/target/release/pvecm_cluster"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

{
  printf 'Cluster information\n-------------------\nName:             big\nConfig Version:   64\nTransport:        knet\nSecure auth:      on\n\n'
  printf 'Quorum information\n------------------\nDate:             Wed Nov 20 14:03:11 2024\nQuorum provider:  corosync_votequorum\nNodes:            64\nNode ID:          0x00000001\nRing ID:          1.40\nQuorate:          Yes\n\n'
  printf 'Votequorum information\n----------------------\nExpected votes:   64\nHighest expected: 64\nTotal votes:      64\nQuorum:           33  \nFlags:            Quorate \n\n'
  printf 'Membership information\n----------------------\n    Nodeid      Votes Name\n'
  for i in $(seq 1 64); do
    l=""; [ "$i" = 1 ] && l=" (local)"
    printf '0x%08x %10d 10.99.%d.%d%s\n' "$i" 1 $((i / 200)) $((i % 200)) "$l"
  done
} > "$tmp/status.txt"
{
  printf '\nMembership information\n----------------------\n    Nodeid      Votes Name\n'
  for i in $(seq 1 64); do
    l=""; [ "$i" = 1 ] && l=" (local)"
    printf '%10d %10d node%d%s\n' "$i" 1 "$i" "$l"
  done
} > "$tmp/nodes.txt"
cat > "$tmp/pvecm" <<SH
#!/bin/sh
exec cat "$tmp/\$1.txt"
SH
chmod +x "$tmp/pvecm"
printf '{"state": "info", "pvecm": "%s"}' "$tmp/pvecm" > "$tmp/args.json"

n=$("$bin" "$tmp/args.json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["cluster"]["nodes"]))')
[ "$n" = 64 ] || { echo "expected 64 nodes, got $n" >&2; exit 1; }

t0=$(date +%s%N)
for _ in $(seq "$runs"); do "$bin" "$tmp/args.json" > /dev/null; done
t1=$(date +%s%N)
for _ in $(seq "$runs"); do "$tmp/pvecm" status > /dev/null; "$tmp/pvecm" nodes > /dev/null; done
t2=$(date +%s%N)

echo "binary: $(stat -c %s "$bin") bytes ($bin)"
echo "state=info, 64 nodes: $(( (t1 - t0) / runs / 1000 )) us per run (mean of $runs)"
echo "stand-in alone (status + nodes): $(( (t2 - t1) / runs / 1000 )) us per run"
