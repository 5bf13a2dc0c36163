#!/bin/sh
# Measures cman_two_node: release binary size, and the time of one edit (force, no activation,
# no corosync -t) of a cluster.conf / corosync.conf with N nodes, for N = 2, 10000, 20000, so
# linear growth is visible. Prints numbers only; asserts nothing.
# Usage: scripts/bench_cman_two_node.sh [--no-build]
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-build" ]; then
    cargo build --release --bin cman_two_node >/dev/null 2>&1
fi
BIN=${BIN:-$PWD/target/release/cman_two_node}
echo "binary: $BIN $(stat -c %s "$BIN") bytes"

DIR=$(mktemp -d /tmp/pve2node-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT INT TERM

gen_cluster() { # N FILE
    awk -v n="$1" 'BEGIN {
        print "<?xml version=\"1.0\"?>"
        print "<cluster name=\"lab\" config_version=\"2\">"
        print ""
        print "  <cman keyfile=\"/var/lib/pve-cluster/corosync.authkey\">"
        print "  </cman>"
        print ""
        print "  <clusternodes>"
        for (i = 1; i <= n; i++) printf "  <clusternode name=\"node%d\" votes=\"1\" nodeid=\"%d\"/>\n", i, i
        print "  </clusternodes>"
        print ""
        print "</cluster>"
    }' > "$2"
}

gen_corosync() { # N FILE
    awk -v n="$1" 'BEGIN {
        print "logging {\n  debug: off\n  to_syslog: yes\n}\n\nnodelist {"
        for (i = 1; i <= n; i++)
            printf "  node {\n    name: node%d\n    nodeid: %d\n    quorum_votes: 1\n    ring0_addr: 10.%d.%d.%d\n  }\n", i, i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
        print "}\n\nquorum {\n  provider: corosync_votequorum\n}\n"
        print "totem {\n  cluster_name: lab\n  config_version: 2\n  interface {\n    linknumber: 0\n  }\n  ip_version: ipv4-6\n  link_mode: passive\n  secauth: on\n  version: 2\n}\n"
    }' > "$2"
}

now_ns() { date +%s%N; }

bench() { # KIND N
    best=""
    for _ in 1 2 3; do
        f=$DIR/$1.$2.conf
        if [ "$1" = cman ]; then gen_cluster "$2" "$f"; else gen_corosync "$2" "$f"; fi
        size=$(stat -c %s "$f")
        printf '{"path": "%s", "force": true, "activate": false, "validate": false}' "$f" > "$DIR/args"
        t0=$(now_ns)
        PATH=/usr/bin:/bin "$BIN" "$DIR/args" > "$DIR/out"
        t1=$(now_ns)
        grep -q '"changed": *true' "$DIR/out" || { echo "edit failed: $(cat "$DIR/out")"; exit 1; }
        us=$(( (t1 - t0) / 1000 ))
        if [ -z "$best" ] || [ "$us" -lt "$best" ]; then best=$us; fi
    done
    echo "$1 nodes=$2 size=${size}B best-of-3=${best} us"
}

for n in 2 10000 20000; do bench cman "$n"; done
for n in 2 10000 20000; do bench corosync "$n"; done
