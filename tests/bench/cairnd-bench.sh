#!/bin/sh
# cairnd-bench.sh - cairnd on a new VM and at shutdown, with the generated
# workspace on s3rver behind the project's proxy (plain HTTP, 127.0.0.1):
#
#   tests/bench/cairnd-bench.sh [--size small|full] [--runs N]
#
# Setup, untimed: the workspace (tests/bench/gen-workspace, cached in
# $BENCH_CACHE or /var/tmp/cairn-bench) and an agent config of 300 files
# (1.5 MB) are snapshotted.  Then, each run on a new, empty cache and an
# empty home, timed with date +%s.%N:
#   ready        cairnd start until READY=1 on its NOTIFY_SOCKET (mounted,
#                agent config restored, agent started)
#   agent        cairnd start until the agent's first line (it lists the
#                restored agent config)
#   idle-cpu     cairnd's own CPU (utime+stime) over 20 s with one sleeping
#                agent, as a share of one CPU
#   shutdown     SIGTERM with 10 changed files until cairnd has exited
#                (agents stopped, last snapshot, unmount)
# Prints one table: the median of --runs (default 3).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
size=small
runs=3
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	*) echo "usage: $0 [--size small|full] [--runs N]" >&2; exit 2 ;;
	esac
done
CAIRN_SRCDIR=$top
CAIRN_BUILDDIR=${CAIRN_BUILDDIR:-$top}
NODE_PATH=${NODE_PATH:-$CAIRN_BUILDDIR/tests/node_modules}
export CAIRN_SRCDIR CAIRN_BUILDDIR NODE_PATH
. "$top/tests/lib.sh"

cache=${BENCH_CACHE:-/var/tmp/cairn-bench}
genver=$(sha256sum "$here/gen-workspace" | cut -c1-12)
ws=$cache/ws-$size-s1-$genver
if [ ! -d "$ws" ]; then
	mkdir -p "$cache"
	timeout 1800 python3 "$here/gen-workspace" --size "$size" --seed 1 "$ws.tmp" >/dev/null &&
		mv "$ws.tmp" "$ws" || { echo "cannot generate the workspace" >&2; exit 1; }
fi
CAIRND=$CAIRN_BUILDDIR/cairnd
s3_start
D=$TMP/b
mkdir -p "$D/home/.claude/projects"
CAIRN_STATE_DIR=$D/state
CAIRN_RUN_DIR=$D/run
export CAIRN_STATE_DIR CAIRN_RUN_DIR
SOCK=$D/run/cairnd.sock
MNT=$D/mnt
_cleanup_cmd='for _s in $(cat "$SOCK.agents" 2>/dev/null); do [ "$_s" -gt 1 ] && kill -9 -- -$_s 2>/dev/null; done'
for i in $(seq 1 300); do head -c 5000 /dev/urandom >"$D/home/.claude/projects/s$i.jsonl"; done
printf '{}\n' >"$D/home/.claude.json"
cat >"$D/agent.sh" <<EOF
ls -R $D/home/.claude | wc -l > $D/agent-started
exec sleep 600
EOF
conf() {	# conf CACHE
	cat >"$D/c.conf" <<EOF
[cairnd]
control_socket = $SOCK
log_dir = $D/logs
cairnfs = $CAIRNFS
cairn = $CAIRN
[workspace main]
store = s3://cairn-test/bench
workspace = b0b0b0b0b0b0b0b0
key = file:$D/tenant.key
mountpoint = $MNT
cache_dir = $1
idle_after = 1h
shutdown_deadline = 120s
[agent-config main]
home = $D/home
[agent a]
command = exec sh $D/agent.sh
EOF
}
now() { date +%s.%N; }
wait_for() {	# wait_for CONDITION: polls every 10 ms, gives up after 60 s
	_n=0
	until eval "$1"; do
		sleep 0.01
		_n=$((_n + 1))
		[ $_n -lt 6000 ] || { echo "cairnd-bench: timed out waiting for: $1" >&2; exit 1; }
	done
}
conf "$D/cache0"
CAIRN_CONFIG=$D/c.conf "$CAIRN" init --create-key -q -w main >/dev/null
CAIRN_CONFIG=$D/c.conf "$CAIRN" snapshot -q -w main "$ws" >/dev/null ||
	{ echo "the setup snapshot failed" >&2; exit 1; }
_fs_mounts="$MNT"
# a first cairnd puts the agent config in the snapshot (its last one)
"$CAIRND" -c "$D/c.conf" >"$D/log0" 2>&1 &
vmd=$!
bg_track $vmd
wait_for '[ -s "$D/agent-started" ]'
kill -TERM $vmd
bg_wait $vmd
[ "$bg_rc" = 0 ] || { echo "the setup cairnd failed: $(cat "$D/log0")" >&2; exit 1; }
hz=$(getconf CLK_TCK)
: >"$D/results"
r=0
while [ $r -lt "$runs" ]; do
	r=$((r + 1))
	rm -rf "$D/home" "$D/agent-started" "$D/notify.log" "$D/state"
	conf "$D/cache$r"
	# the listener runs until its stdin (a FIFO held by fd 7) closes
	mkfifo "$D/nl$r"
	python3 "$top/tests/notify-listen.py" "$D/notify.sock$r" "$D/notify.log" <"$D/nl$r" >"$D/nl$r.out" &
	nl=$!
	bg_track $nl
	exec 7>"$D/nl$r"
	wait_for 'grep -q READY "$D/nl$r.out" 2>/dev/null'
	t0=$(now)
	NOTIFY_SOCKET=$D/notify.sock$r "$CAIRND" -c "$D/c.conf" >"$D/log$r" 2>&1 &
	vmd=$!
	bg_track $vmd
	wait_for 'grep -q "^READY=1" "$D/notify.log" 2>/dev/null'
	t1=$(now)
	wait_for '[ -s "$D/agent-started" ]'
	t2=$(now)
	c0=$(awk '{print $14 + $15}' /proc/$vmd/stat)
	sleep 20
	c1=$(awk '{print $14 + $15}' /proc/$vmd/stat)
	for i in $(seq 1 10); do echo "change $r" >>"$MNT/change$i.txt"; done
	t3=$(now)
	kill -TERM $vmd
	bg_wait $vmd
	t4=$(now)
	exec 7>&-
	bg_wait $nl
	echo "$t0 $t1 $t2 $c0 $c1 $t3 $t4 $bg_rc" >>"$D/results"
done
python3 - "$D/results" "$hz" "$size" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
hz = float(sys.argv[2])
med = lambda xs: statistics.median(xs)
print("cairnd, %s workspace, median of %d run(s)" % (sys.argv[3], len(rows)))
print("| step | value |")
print("| --- | ---: |")
print("| ready (s) | %.3f |" % med([r[1] - r[0] for r in rows]))
print("| agent started (s) | %.3f |" % med([r[2] - r[0] for r in rows]))
print("| idle CPU of cairnd (%% of one CPU) | %.2f |" % med([(r[4] - r[3]) / hz / 20 * 100 for r in rows]))
print("| shutdown, 10 changed files (s) | %.3f |" % med([r[6] - r[5] for r in rows]))
print("| exit status | %s |" % " ".join(str(int(r[7])) for r in rows))
EOF
finish >/dev/null
