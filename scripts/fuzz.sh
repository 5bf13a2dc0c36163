#!/usr/bin/env bash
# A longer fuzz run of every parser in library/ (tests/fuzz.rs, release build): N inputs per
# parser (default 100000), a new seed each run unless given, huge repeats of 4 MiB.
# Prints one line of counts per parser; a failing input is saved in target/fuzz-failures/
# and replays with the seed printed here:  PVE2NODE_FUZZ_SEED=S PVE2NODE_FUZZ_N=N ...
#
#   bash scripts/fuzz.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
seed=${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
case $n$seed in *[!0-9]*) echo "usage: $0 [N] [SEED] (numbers)" >&2; exit 2 ;; esac
echo "fuzz: $n inputs per parser, seed $seed"
start=$(date +%s)
PVE2NODE_FUZZ_N=$n PVE2NODE_FUZZ_SEED=$seed PVE2NODE_FUZZ_HUGE=${PVE2NODE_FUZZ_HUGE:-4194304} \
  cargo test --release --locked --quiet --test fuzz -- --nocapture --test-threads=2 2>&1 |
  grep -oE 'fuzz [a-z_]+: .*|panicked at .*|input [0-9]+ .*saved as .*|[a-z_]+ --- FAILED|test result: .*'
status=${PIPESTATUS[0]}
echo "fuzz: done in $(( $(date +%s) - start )) s (seed $seed), exit $status"
exit "$status"
