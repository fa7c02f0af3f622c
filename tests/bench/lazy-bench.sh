#!/bin/bash
# lazy-bench.sh - cairnfs part 2 against the issue's targets: a lazy mount on
# an empty cache, first reads, a live snapshot and full hydration, with the
# S3 requests and bytes of each step counted by the project's own proxy
# (tests/s3/server.js: s3rver behind the SigV4-verifying proxy, plain HTTP on
# 127.0.0.1).
#
#   tests/bench/lazy-bench.sh [--size small|full] [--runs N] [--seed N]
#       [--cache DIR] [--timeout SECONDS] [--docs FILE|--no-docs] [--keep]
#
# Setup, untimed, once per run on a fresh server: `cairn init --create-key`
# and `cairn snapshot` of the generated workspace (tests/bench/gen-workspace).
# Then, each step timed with date +%s.%N and the proxy's counters
# (POST /__proxy/reset before, GET /__proxy/stats after):
#   mount          cairnfs STORE MNT -o cache=EMPTY,noprefetch until it returns
#   mount+ls-R     the same, until `ls -R MNT` is done (target <= 1 s; no
#                  data object may be fetched: objects.get_data.count 0)
#   first-read-*   `cat` of the largest file under 1 MiB, then of the largest
#                  of 2-10 MiB (target: each <= 0.5 s)
#   touch-10       append a line to 10 source files on the mount
#   snapshot-10    `cairn snapshot --mount MNT --json` (target <= 0.75 s);
#                  and its pause_ms
#   hydrate        `cairn hydrate --mount MNT --wait -q`
#   peak-RSS-kB    VmHWM of cairnfs before the unmount
#   umount         fusermount3 -u until the cairnfs pid has exited
# Figures are the median of --runs (default 3).  The table goes to stdout
# and, unless --no-docs, into FILE (default docs/benchmarks.md) between the
# markers <!-- lazy-bench SIZE --> (appended at the end when absent).
#
# The workspace is generated once per size, seed and generator version and
# kept in --cache (default $BENCH_CACHE or /var/tmp/cairn-bench), as
# snapshot-bench.sh and mount-bench.sh do.  Every step is bounded by
# timeout (--timeout, default 300 s small, 1200 s full); every process
# started here is stopped by its pid and the mount removed with
# fusermount3 -uz on exit, failed or not.
#
# Needs: python3, node + tests/node_modules (cd tests && npm ci), curl,
# fusermount3, a built ./cairn and ./cairnfs ($CAIRN, $CAIRNFS).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cmdline="tests/bench/lazy-bench.sh${*:+ $*}"
size=small seed=1 runs=3 keep=0 tmo=
cache=${BENCH_CACHE:-/var/tmp/cairn-bench}
docs=$top/docs/benchmarks.md
usage() { sed -n '2,38s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--docs) docs=$2; shift 2 ;;
	--no-docs) docs=; shift ;;
	--keep) keep=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "lazy-bench: unknown argument $1" >&2; usage ;;
	esac
done
case $size in small|full) ;; *) echo "lazy-bench: --size small|full" >&2; exit 2 ;; esac
case $runs in ''|*[!0-9]*|0) echo "lazy-bench: --runs N (N >= 1)" >&2; exit 2 ;; esac
[ -n "$tmo" ] || { [ "$size" = full ] && tmo=1200 || tmo=300; }
CAIRN=${CAIRN:-$top/cairn}
CAIRNFS=${CAIRNFS:-$top/cairnfs}
for t in python3 node curl fusermount3 timeout; do
	command -v "$t" >/dev/null || { echo "lazy-bench: $t is missing" >&2; exit 1; }
done
for b in "$CAIRN" "$CAIRNFS"; do
	[ -x "$b" ] || { echo "lazy-bench: $b is not built (make -j2)" >&2; exit 1; }
done
[ -d "$top/tests/node_modules/s3rver" ] ||
	{ echo "lazy-bench: tests/node_modules is missing: run 'cd tests && npm ci'" >&2; exit 1; }

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-lazy-bench.XXXXXX")
mnt=$work/mnt
srv_pid= fs_pid= failed=1

# ---- cleanup: every mount and every process started here, by pid ------------
stop_pid() {	# stop_pid PID: TERM, 5 s, KILL
	local p=$1 i
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
cleanup() {
	if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then
		fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	stop_pid "$fs_pid"; fs_pid=
	stop_pid "$srv_pid"; srv_pid=
	if [ "$keep" = 1 ]; then
		echo "kept $work" >&2
	elif [ "$failed" != 0 ]; then
		rm -rf "$work/src" "$work"/s3-* "$work"/cache-*
		echo "lazy-bench: something failed; logs kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
die() { echo "lazy-bench: $*" >&2; exit 1; }
T() { timeout -k 5 "$tmo" "$@"; }	# every step is bounded

# ---- the workspace (cached, shared with snapshot-bench / mount-bench) -------
genver=$(sha256sum "$here/gen-workspace" | cut -c1-12)
ws=$cache/ws-$size-s$seed-$genver
if [ ! -d "$ws" ]; then
	mkdir -p "$cache"
	log "generating the $size workspace (seed $seed) in $ws"
	rm -rf "$ws.tmp"
	timeout -k 10 1800 python3 "$here/gen-workspace" --size "$size" --seed "$seed" "$ws.tmp" >/dev/null
	mv "$ws.tmp" "$ws"
fi
files=$(find "$ws" -type f | wc -l)
dirs=$(find "$ws" -type d | wc -l)
bytes=$(du -sb "$ws" | cut -f1)
# largest file under 1 MiB, largest of 2-10 MiB (ties: the first path)
pick() { find "$ws" -type f -size +"$1"c -size -"$2"c -printf '%s %P\n' | LC_ALL=C sort -k1,1nr -k2 | sed -n '1s/^[0-9]* //p'; }
mid_file=$(pick 0 1048576)
big_file=$(pick 2097151 10485760)
[ -n "$mid_file" ] || die "no file under 1 MiB in $ws"
read_files=("$mid_file")
[ -n "$big_file" ] && read_files+=("$big_file")
mapfile -t touch_files < <(find "$ws" -type f -name '*.js' -path '*src*' -printf '%P\n' | LC_ALL=C sort | sed -n 1,10p)
[ "${#touch_files[@]}" = 10 ] || die "fewer than 10 .js files under src in $ws"
log "$size workspace: $files files, $dirs dirs, $bytes bytes"
log "first reads: ${read_files[*]}"

# ---- the S3 server: s3rver behind the counting proxy, as tests/lib.sh -------
srv_start() {	# srv_start DIR: sets srv_pid, srv_url
	local dir=$1 i port=
	mkdir -p "$dir"
	NODE_PATH="$top/tests/node_modules" node "$top/tests/s3/server.js" \
		--dir "$dir/data" --bucket bench --ignore-stdin \
		</dev/null >"$dir/ready" 2>"$dir/log" &
	srv_pid=$!
	for i in $(seq 1 200); do
		port=$(sed -n 's/^READY \([0-9][0-9]*\) .*/\1/p' "$dir/ready")
		[ -n "$port" ] && break
		kill -0 "$srv_pid" 2>/dev/null || { cat "$dir/log" >&2; srv_pid=; die "server.js exited"; }
		sleep 0.05
	done
	[ -n "$port" ] || die "server.js did not become ready in 10 s"
	srv_url=http://127.0.0.1:$port
}
srv_reset() { curl -sSf --max-time 10 -X POST "$srv_url/__proxy/reset" >/dev/null; }
srv_stats() { curl -sSf --max-time 10 "$srv_url/__proxy/stats"; }

export AWS_ACCESS_KEY_ID=CAIRNTESTACCESSKEY01
export AWS_SECRET_ACCESS_KEY=cairn/test/secret/key/0123456789abcdefghij
export AWS_REGION=auto AWS_DEFAULT_REGION=auto
unset AWS_CA_BUNDLE AWS_PROFILE AWS_SESSION_TOKEN 2>/dev/null || true

figures=$work/figures.jsonl
: >"$figures"
# record NAME SECONDS [STATS_JSON]: one figure of one run
record() {
	python3 - "$1" "$2" "${3:-}" "$run" >>"$figures" <<'PY'
import json, sys
name, secs, stats, run = sys.argv[1:5]
rec = {"run": int(run), "step": name, "value": float(secs)}
if stats:
    s = json.loads(stats)
    rec.update(requests=s["requests"], bytes_out=s["bytes_out"], bytes_in=s["bytes_in"],
               get_data=s.get("objects", {}).get("get_data", {}).get("count", 0),
               get_tree=s.get("objects", {}).get("get_tree", {}).get("count", 0))
print(json.dumps(rec))
PY
}

log "copying the workspace to $work/src"
cp -a "$ws" "$work/src"

for run in $(seq 1 "$runs"); do
	log "run $run of $runs"
	srv_start "$work/s3-$run"
	export AWS_ENDPOINT_URL=$srv_url
	export CAIRN_STORE=s3://bench/lazy-$run CAIRN_KEY=file:$work/key-$run
	export CAIRN_STATE_DIR=$work/state-$run CAIRN_RUN_DIR=$work/run
	mkdir -p "$CAIRN_RUN_DIR"
	T "$CAIRN" init --create-key -q >/dev/null
	t0=$(now)
	T "$CAIRN" snapshot -q "$work/src"
	log "  setup snapshot: $(secs "$t0" "$(now)") s"
	cachedir=$work/cache-$run
	rm -rf "$cachedir" "$mnt"
	mkdir -p "$mnt"

	# b. mount on an empty cache, then ls -R
	srv_reset; t0=$(now)
	T "$CAIRNFS" "$CAIRN_STORE" "$mnt" -o "cache=$cachedir,noprefetch" 2>"$work/cairnfs-$run.err" ||
		{ cat "$work/cairnfs-$run.err" >&2; die "cairnfs did not mount"; }
	t1=$(now)
	fs_pid=$(cat "$cachedir/cairnfs.pid" 2>/dev/null || true)
	[ -n "$fs_pid" ] || die "no $cachedir/cairnfs.pid"
	st_mount=$(srv_stats)	# no reset: mount+ls-R counts both
	t1b=$(now)
	T ls -R "$mnt" >/dev/null
	t2=$(now)
	st=$(srv_stats)
	mount_s=$(secs "$t0" "$t1")
	ls_s=$(secs "$t1b" "$t2")	# the stats request between is not counted
	record mount "$mount_s" "$st_mount"
	record mount+ls-R "$(python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) + float(sys.argv[2])))" "$mount_s" "$ls_s")" "$st"
	log "  mount $mount_s s, then ls -R $ls_s s"

	# c. first reads
	for f in "${read_files[@]}"; do
		srv_reset; t0=$(now)
		T cat "$mnt/$f" >/dev/null
		t1=$(now)
		record "first-read-$(stat -c %s "$ws/$f")B" "$(secs "$t0" "$t1")" "$(srv_stats)"
		log "  first read of $f: $(secs "$t0" "$t1") s"
		cmp -s "$mnt/$f" "$ws/$f" || die "$f reads differently on the mount"
	done

	# d. touch 10 files, then a live snapshot
	srv_reset; t0=$(now)
	for f in "${touch_files[@]}"; do
		T sh -c 'echo "// touched by lazy-bench run $2" >>"$1"' _ "$mnt/$f" "$run"
	done
	t1=$(now)
	record touch-10 "$(secs "$t0" "$t1")" "$(srv_stats)"
	srv_reset; t0=$(now)
	T "$CAIRN" snapshot --mount "$mnt" --json >"$work/snap-$run.json"
	t1=$(now)
	record snapshot-10 "$(secs "$t0" "$t1")" "$(srv_stats)"
	pause=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pause_ms'])" "$work/snap-$run.json")
	record snapshot-10-pause-ms "$pause"
	log "  snapshot after 10 touches: $(secs "$t0" "$t1") s, pause $pause ms"

	# e. full hydration
	srv_reset; t0=$(now)
	T "$CAIRN" hydrate --mount "$mnt" --wait -q
	t1=$(now)
	record hydrate "$(secs "$t0" "$t1")" "$(srv_stats)"
	log "  hydrate: $(secs "$t0" "$t1") s"

	# f. peak RSS, g. unmount
	record peak-RSS-kB "$(awk '/^VmHWM:/ {print $2}' "/proc/$fs_pid/status")"
	srv_reset; t0=$(now)
	T fusermount3 -u "$mnt"
	for i in $(seq 1 $((tmo * 10))); do
		kill -0 "$fs_pid" 2>/dev/null || break
		grep -q '^[^ ]* [^ ]* Z' "/proc/$fs_pid/stat" 2>/dev/null && break
		sleep 0.1
	done
	kill -0 "$fs_pid" 2>/dev/null && ! grep -q '^[^ ]* [^ ]* Z' "/proc/$fs_pid/stat" 2>/dev/null &&
		die "cairnfs (pid $fs_pid) still runs ${tmo} s after the unmount"
	t1=$(now)
	record umount "$(secs "$t0" "$t1")" "$(srv_stats)"
	fs_pid=
	if grep -q 'Sanitizer\|runtime error:' "$cachedir/cairnfs.log" 2>/dev/null; then
		die "cairnfs's log has a sanitizer report ($cachedir/cairnfs.log)"
	fi
	stop_pid "$srv_pid"; srv_pid=
	[ "$keep" = 1 ] || rm -rf "$work/s3-$run" "$cachedir"
done
rm -rf "$work/src"

# ---- report -----------------------------------------------------------------
head="$size workspace: $files files, $dirs directories, $bytes bytes; median of $runs run(s);"
head="$head $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r);"
head="$head cairn $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown);"
head="$head tests/s3/server.js (s3rver $(sed -n 's/^ *"version": "\(.*\)",/\1/p' "$top/tests/node_modules/s3rver/package.json" | head -1) behind the proxy, plain HTTP on 127.0.0.1) on node $(node --version)."
report=$(python3 - "$figures" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["step"], []).append(r)
med = lambda v: statistics.median(v)
def fmt(x):
    return ("%.2f" % x).rstrip("0").rstrip(".")
print("| step | seconds (median) | requests | bytes out | bytes in | data GETs |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
m = {}
for name, v in rows.items():
    val = med([x["value"] for x in v])
    m[name] = (val, v)
    if "requests" not in v[0]:
        print("| %s | %s | | | | |" % (name, fmt(val)))
    else:
        print("| %s | %.3f | %d | %d | %d | %d |" % (name, val,
              med([x["requests"] for x in v]), med([x["bytes_out"] for x in v]),
              med([x["bytes_in"] for x in v]), med([x["get_data"] for x in v])))
print()
verdict = []
def target(label, ok, detail):
    verdict.append("%s %s (%s)" % (label, "met" if ok else "NOT met", detail))
t, v = m["mount+ls-R"]
target("empty cache -> ls -R <= 1 s:", t <= 1.0, "%.3f s" % t)
gd = max(x["get_data"] for x in v)
target("no data GET before the first read:", gd == 0, "objects.get_data.count %d" % gd)
for name in rows:
    if name.startswith("first-read-"):
        t = m[name][0]
        target("%s <= 0.5 s:" % name, t <= 0.5, "%.3f s" % t)
t = m["snapshot-10"][0]
target("snapshot after 10 touched files <= 0.75 s:", t <= 0.75, "%.3f s" % t)
print("Targets: " + "; ".join(verdict) + ".")
PY
)
printf '%s\n\n%s\n' "$head" "$report"
if [ -n "$docs" ]; then
	python3 - "$docs" "$size" "$cmdline" "$head" "$report" <<'PY'
import sys
path, size, cmd, head, report = sys.argv[1:6]
begin, end = "<!-- lazy-bench %s -->" % size, "<!-- /lazy-bench %s -->" % size
body = "%s\n`%s`\n\n%s\n\n%s\n%s" % (begin, cmd, head, report, end)
text = open(path).read()
if begin in text:
    a = text.index(begin); b = text.index(end) + len(end)
    text = text[:a] + body + text[b:]
else:
    text = text.rstrip("\n") + "\n\n" + body + "\n"
open(path, "w").write(text)
PY
	log "wrote the $size table into $docs"
fi
failed=0
