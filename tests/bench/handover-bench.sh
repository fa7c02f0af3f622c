#!/bin/sh
# handover-bench.sh - the hand-over between VMs, timed (a benchmark, not a
# test), with s3rver behind the project's proxy on 127.0.0.1:
#
#   tests/bench/handover-bench.sh [--runs N]         (as root)
#
# VMs are played as tests/test_lifecycle.sh plays them (tests/vm.sh): each
# its own state, cache, run dir, home and CAIRN_HOST_ID, its cairnd with
# one workspace and one agent that appends fsync'd records and writes its
# ~/.claude.  Each run lets VM k work for 3 s (and, before a kill, a
# random part of the lease's renewal period more), then
#   clean   SIGTERM to VM k's cairnd; VM k+1 started the moment it exits
#   lost    kill -9 of every process of VM k; VM k+1 started at once
# and times, with date +%s.%N, the moment VM k+1's agent runs (its first
# act writes the time down).  A VM k+1 whose cairnd exits (a refused
# lease) is started again 5 s later, as Restart=on-failure with
# RestartSec=5s of cairnd.service would do; those restarts are counted.
# The lease TTL is CAIRN_LEASE_TTL (default: cairn's own), renewed every
# third of it; the table names the TTL read from the first VM's lease.
# Prints one table: the median of --runs (default 5) of each, with every
# run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
runs=5
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	*) echo "usage: $0 [--runs N]" >&2; exit 2 ;;
	esac
done
CAIRN_SRCDIR=$top
CAIRN_BUILDDIR=${CAIRN_BUILDDIR:-$top}
NODE_PATH=${NODE_PATH:-$CAIRN_BUILDDIR/tests/node_modules}
export CAIRN_SRCDIR CAIRN_BUILDDIR NODE_PATH
. "$top/tests/lib.sh"
VM_INTERVAL=60
. "$top/tests/vm.sh"
vm_setup

# up K: VM k started until its agent runs, again after 5 s each time its
# cairnd exits first (10 minutes at most); sets $restarts
up() {
	restarts=0
	vm_conf "$1"
	vm_start "$1"
	until vm_wait_agent "$1" 600; do
		alive $vmd && { echo "handover-bench: VM $1 does not come up" >&2; exit 1; }
		bg_wait $vmd
		restarts=$((restarts + 1))
		[ $restarts -lt 120 ] || { echo "handover-bench: VM $1 is refused again and again" >&2; exit 1; }
		fs_force_umount "$D/vm$1/mnt"
		sleep 5
		vm_start "$1"
	done
}

k=1
up 1
# the TTL in use, from the lease VM 1 took (expires - acquired, before its
# first renewal a third of the TTL later)
ttl=$(adm cat lease --json | python3 -c 'import json, sys
l = json.load(sys.stdin); print("%g" % round((l["expires"] - l["acquired"]) / 1e9, 1))')
: >"$D/results"
for kind in clean lost; do
	r=0
	while [ $r -lt "$runs" ]; do
		r=$((r + 1))
		# a VM is lost at any point of its lease's renewal period
		if [ $kind = clean ]; then
			sleep 3
		else
			sleep "$(python3 -c "import random; print(3 + random.uniform(0, $ttl / 3))")"
		fi
		pids=$(tree_pids $vmd)
		echo "$pids" >>"$D/pids"
		t0=$(now)
		if [ $kind = clean ]; then
			kill -TERM $vmd
			wait_gone 120 $pids || { echo "handover-bench: VM $k does not stop" >&2; exit 1; }
		else
			kill -9 $pids
		fi
		t1=$(now)
		bg_wait $vmd
		fs_force_umount "$D/vm$k/mnt"
		k=$((k + 1))
		up $k
		echo "$kind $t0 $t1 $(cat "$D/vm$k/started") $restarts" >>"$D/results"
		rm -rf "$D/vm$((k - 2))"
	done
done
kill -TERM $vmd
bg_wait $vmd
python3 - "$D/results" "$ttl" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ttl = float(sys.argv[2])
print("hand-over between VMs, lease TTL %g s (renewed every %g s), median of %d run(s)"
      % (ttl, ttl / 3, len(rows) // 2))
print("| from | to VM k+1's agent running (s) | of which VM k's stop (s) | each run (s) | restarts of VM k+1's cairnd |")
print("| --- | ---: | ---: | --- | --- |")
for kind, what in (("clean", "SIGTERM to VM k's cairnd"), ("lost", "kill -9 of VM k")):
    rs = [(float(t0), float(t1), float(t2), int(n)) for k, t0, t1, t2, n in rows if k == kind]
    total = [t2 - t0 for t0, t1, t2, n in rs]
    stop = [t1 - t0 for t0, t1, t2, n in rs]
    print("| %s | %.2f | %.2f | %s | %s |" % (what, statistics.median(total), statistics.median(stop),
          " ".join("%.1f" % t for t in total), " ".join(str(n) for *_, n in rs)))
EOF
finish >/dev/null
