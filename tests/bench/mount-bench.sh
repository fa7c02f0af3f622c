#!/bin/bash
# mount-bench.sh - cairnfs on a new machine: how soon a workspace in the
# store is usable, and what a live snapshot costs, on the generated agent
# workspace and s3rver over TLS on 127.0.0.1 (tests/bench/s3-tls.sh).
#
#   tests/bench/mount-bench.sh [--size small|full] [--runs N] [--seed N]
#       [--cache DIR] [--docs FILE|--no-docs] [--keep]
#
# For each run: a fresh s3rver, `cairn init` and `cairn snapshot` of the
# workspace (untimed), then on an EMPTY cache (-o noprefetch):
#   mount + ls -R    cairnfs started until `ls -R` of the whole tree is done
#   first read       `cat` of one source file (20-100 kB), then of one 1-8 MB
#   snapshot 10      append to 10 files, `cairn snapshot --mount` (the first
#                    live snapshot: every tree is new, see docs/benchmarks.md)
#   snapshot 10 again  the same with 10 other files (the steady state)
#   hydrate          `cairn hydrate --wait` until every file is local
# with the requests and bytes the server counted for each step, the
# writers' pause each snapshot reports, and cairnfs's peak RSS.  Figures
# are the median of --runs (default 3).  A table goes to stdout and, unless
# --no-docs, into docs/benchmarks.md between the markers of its size.
#
# The workspace is generated once per size, seed and generator version and
# kept in --cache (default $BENCH_CACHE or /var/tmp/cairn-bench), as
# snapshot-bench.sh does.  Every process started here is stopped by pid and
# the mount removed (fusermount3 -uz) on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cmdline="tests/bench/mount-bench.sh${*:+ $*}"
size=small seed=1 runs=3 keep=0
cache=${BENCH_CACHE:-/var/tmp/cairn-bench}
docs=$top/docs/benchmarks.md
usage() { sed -n '2,26s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--docs) docs=$2; shift 2 ;;
	--no-docs) docs=; shift ;;
	--keep) keep=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "mount-bench: unknown argument $1" >&2; usage ;;
	esac
done
case $size in small|full) ;; *) echo "mount-bench: --size small|full" >&2; exit 2 ;; esac
CAIRN=${CAIRN:-$top/cairn}
CAIRNFS=${CAIRNFS:-$top/cairnfs}
for t in python3 node openssl curl fusermount3; do
	command -v "$t" >/dev/null || { echo "mount-bench: $t is missing" >&2; exit 1; }
done
. "$here/s3-tls.sh"

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-mount-bench.XXXXXX")
mnt=$work/mnt
cleanup() {
	fusermount3 -uz "$mnt" 2>/dev/null || true
	s3tls_stop || true
	if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
stat_of() { s3tls_stats | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

genver=$(sha256sum "$here/gen-workspace" | cut -c1-12)
ws=$cache/ws-$size-s$seed-$genver
if [ ! -d "$ws" ]; then
	mkdir -p "$cache"
	log "generating the $size workspace (seed $seed) in $ws"
	timeout -k 10 900 python3 "$here/gen-workspace" --size "$size" --seed "$seed" "$ws.tmp" >/dev/null
	mv "$ws.tmp" "$ws"
fi
files=$(find "$ws" -type f | wc -l)
dirs=$(find "$ws" -type d | wc -l)
bytes=$(du -sb "$ws" | cut -f1)
small_file=$(find "$ws" -type f -size +20k -size -100k -path '*src*' | LC_ALL=C sort | sed -n 1p)
big_file=$(find "$ws" -type f -size +1M -size -8M | LC_ALL=C sort | sed -n 1p)
[ -n "$small_file" ] || small_file=$(find "$ws" -type f -size +1k | LC_ALL=C sort | sed -n 1p)
[ -n "$big_file" ] || big_file=$(find "$ws" -type f | LC_ALL=C sort | sed -n '$p')
mapfile -t touch_files < <(find "$ws" -type f -name '*.js' -path '*src*' | LC_ALL=C sort | sed -n 1,20p)
s3tls_cert "$work/cert"

# step NAME SECONDS REQUESTS BYTES: one figure of one run
step() { echo "$1 $2 $3 $4" >>"$work/figures"; }
: >"$work/figures"
for run in $(seq 1 "$runs"); do
	log "run $run of $runs"
	s3tls_start "$work/s3-$run" "$work/cert"
	export AWS_ENDPOINT_URL=$S3TLS_ENDPOINT AWS_CA_BUNDLE=$S3TLS_CA AWS_REGION=auto
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
	export CAIRN_STORE=s3://bench/cairn-$run CAIRN_KEY=file:$work/key-$run
	export CAIRN_STATE_DIR=$work/state-$run CAIRN_RUN_DIR=$work/run
	"$CAIRN" init --create-key -q >/dev/null
	src=$work/src
	rm -rf "$src" && cp -a "$ws" "$src"
	"$CAIRN" snapshot -q "$src"
	rm -rf "$src"
	mkdir -p "$mnt"

	s3tls_reset; t0=$(now)
	"$CAIRNFS" "$CAIRN_STORE" "$mnt" -o "cache=$work/cache-$run,noprefetch"
	t1=$(now); ls -R "$mnt" >/dev/null; t2=$(now)
	step mount "$(secs "$t0" "$t1")" 0 0
	step "mount+ls-R" "$(secs "$t0" "$t2")" "$(stat_of requests)" "$(stat_of bytes_out)"
	for f in "$small_file" "$big_file"; do
		rel=${f#"$ws"/}
		s3tls_reset; t0=$(now); cat "$mnt/$rel" >/dev/null; t1=$(now)
		step "first-read-$(stat -c %s "$f")B" "$(secs "$t0" "$t1")" "$(stat_of requests)" "$(stat_of bytes_out)"
	done
	for k in 0 1; do
		for f in "${touch_files[@]:$((k * 10)):10}"; do
			echo "// touched" >>"$mnt/${f#"$ws"/}"
		done
		s3tls_reset; t0=$(now)
		"$CAIRN" snapshot --mount "$mnt" --json >"$work/snap.json"; t1=$(now)
		pause=$(python3 -c "import json; print('%.2f' % json.load(open('$work/snap.json'))['pause_ms'])")
		name=$([ $k = 0 ] && echo "snapshot-10" || echo "snapshot-10-again")
		step "$name" "$(secs "$t0" "$t1")" "$(stat_of requests)" "$(stat_of bytes_in)"
		step "$name-pause-ms" "$pause" 0 0
	done
	s3tls_reset; t0=$(now)
	timeout 1800 "$CAIRN" hydrate --mount "$mnt" --wait -q; t1=$(now)
	step hydrate "$(secs "$t0" "$t1")" "$(stat_of requests)" "$(stat_of bytes_out)"
	pid=$(cat "$work/cache-$run/cairnfs.pid")
	step "peak-RSS-kB" "$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")" 0 0
	fusermount3 -u "$mnt"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	s3tls_stop || true	# the server's exit status is that of a SIGTERM
	rm -rf "$work/s3-$run" "$work/cache-$run"
done

table=$(python3 - "$work/figures" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, s, r, b = line.split()
    rows.setdefault(name, []).append((float(s), int(r), int(b)))
print("| step | seconds (median) | requests | bytes |")
print("| --- | ---: | ---: | ---: |")
for name, v in rows.items():
    med = statistics.median(x[0] for x in v)
    req = statistics.median(x[1] for x in v)
    by = statistics.median(x[2] for x in v)
    if name.endswith("-ms") or name.endswith("-kB"):
        print("| %s | %s | | |" % (name, ("%.2f" % med).rstrip("0").rstrip(".")))
    else:
        print("| %s | %.3f | %d | %d |" % (name, med, req, by))
PY
)
head="$size workspace: $files files, $dirs directories, $bytes bytes; median of $runs run(s);"
head="$head $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)."
printf '%s\n\n%s\n' "$head" "$table"
if [ -n "$docs" ]; then
	python3 - "$docs" "$size" "$cmdline" "$head" "$table" <<'PY'
import sys
path, size, cmd, head, table = sys.argv[1:6]
begin, end = "<!-- mount-bench %s -->" % size, "<!-- /mount-bench %s -->" % size
body = "%s\n`%s`\n\n%s\n\n%s\n%s" % (begin, cmd, head, table, end)
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
