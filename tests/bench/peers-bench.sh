#!/bin/bash
# peers-bench.sh - a workspace in the store, read back on a new machine:
# cairn beside rclone mount (a crypt remote, --vfs-cache-mode full) and
# s3fs, on the same s3rver behind the project's proxy (plain HTTP,
# 127.0.0.1), the same generated workspace, in one run.  (restic 0.14 sends
# aws-chunked bodies over plain HTTP, which the proxy refuses: its figures
# come from tests/bench/snapshot-bench.sh, over TLS.)
#
#   tests/bench/peers-bench.sh [--size small|full] [--runs N] [--tools LIST]
#       [--out FILE.md]
#
# Per tool (LIST, default cairn,rclone,s3fs) and run, on a fresh server:
# the upload (cairn snapshot, rclone copy to the crypt remote, rclone copy
# to a plain prefix for s3fs) and an incremental one after 10 files
# changed; then on an empty cache: the mount, `ls -R` of the whole tree,
# the first read of one file of 1-8 MB, and reading every file (a full
# hydration).  Each step counts the store requests and bytes
# (the proxy's counters) and its time; the peak RSS of the mount daemon.
# Figures are medians of --runs (default 3); each row also gives the ratio
# to the best tool.  The table goes to stdout and --out; the ratios to
# FILE.csv for tests/bench/plot.sh.
#
# Needs root, fusermount3, rclone, s3fs (apt-get install rclone s3fs), node
# with tests/node_modules, python3, bc, and a built cairn.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cmdline="tests/bench/peers-bench.sh${*:+ $*}"
size=small runs=3 tools=cairn,rclone,s3fs out=
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--tools) tools=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) sed -n '2,24s/^# \{0,1\}//p' "$0"; exit 2 ;;
	esac
done
CAIRN=${CAIRN:-$top/cairn}
tmo=$([ "$size" = full ] && echo 1800 || echo 600)
cache=${BENCH_CACHE:-/var/tmp/cairn-bench}
work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-peers.XXXXXX")
mnt=$work/mnt
srv_pid=
AK=CAIRNTESTACCESSKEY01 SK=cairn/test/secret/key/0123456789abcdefghij

stop_server() {
	[ -n "$srv_pid" ] || return 0
	exec 9>&-
	kill "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
	srv_pid=
}
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && { fusermount3 -uz "$mnt" 2>/dev/null || fusermount -uz "$mnt" 2>/dev/null || true; }
	for p in $(pgrep -f "rclone mount cr:" || true) $(pgrep -x s3fs || true); do
		kill "$p" 2>/dev/null || true
	done
	stop_server
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
T() { timeout -k 5 "$tmo" "$@"; }

genver=$(sha256sum "$here/gen-workspace" | cut -c1-12)
ws=$cache/ws-$size-s1-$genver
if [ ! -d "$ws" ]; then
	mkdir -p "$cache"
	log "generating the $size workspace"
	python3 "$here/gen-workspace" --size "$size" --seed 1 "$ws.tmp" >/dev/null && mv "$ws.tmp" "$ws"
fi
# the file of the first read: the largest of 1-8 MB in the project (a file
# under .claude was not found on rclone's mount; not investigated)
probe=$(cd "$ws" && find project -type f -size +1M -size -8M -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)

start_server() {
	mkfifo "$work/s3-in" "$work/s3-ready"
	NODE_PATH=${NODE_PATH:-$top/tests/node_modules} node "$top/tests/s3/server.js" --dir "$work/s3" \
		<"$work/s3-in" >"$work/s3-ready" 2>"$work/s3.log" &
	srv_pid=$!
	exec 9>"$work/s3-in"
	read -r word port _ <"$work/s3-ready"
	rm -f "$work/s3-in" "$work/s3-ready"
	[ "$word" = READY ] || { echo "the S3 test server did not start" >&2; exit 1; }
	EP=http://127.0.0.1:$port
	export AWS_ENDPOINT_URL=$EP AWS_REGION=auto AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK
	unset AWS_CA_BUNDLE	# plain HTTP here; rclone refuses a CA bundle on it
	export RCLONE_CONFIG_S3R_TYPE=s3 RCLONE_CONFIG_S3R_PROVIDER=Other RCLONE_CONFIG_S3R_REGION=auto \
		RCLONE_CONFIG_S3R_ENDPOINT=$EP RCLONE_CONFIG_S3R_ACCESS_KEY_ID=$AK \
		RCLONE_CONFIG_S3R_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_S3R_FORCE_PATH_STYLE=true \
		RCLONE_CONFIG_CR_TYPE=crypt RCLONE_CONFIG_CR_REMOTE=s3r:cairn-test/rclone \
		RCLONE_CONFIG_CR_PASSWORD="$(rclone obscure benchpass)"
}
reset_stats() { curl -sf -X POST "$EP/__proxy/reset" >/dev/null; }
stats() {	# stats: "requests bytes_in+bytes_out" since the last reset
	curl -sf "$EP/__proxy/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["requests"], d["bytes_in"] + d["bytes_out"])'
}
record() { echo "$1 $2 $3 $4 $5" >>"$work/results"; }	# TOOL STEP SECONDS REQUESTS BYTES
step() {	# step TOOL NAME CMD...: times CMD with the store's counters
	local t0 t1 s tool=$1 name=$2
	shift 2
	reset_stats
	t0=$(now)
	T "$@" >/dev/null 2>"$work/step.err" || { log "$tool $name failed: $(tail -n 2 "$work/step.err")"; record "$tool" "$name" failed 0 0; return 0; }
	t1=$(now)
	s=$(stats)
	record "$tool" "$name" "$(echo "$t1 - $t0" | bc -l)" $s
}
change_10() {	# change_10 DIR: appends to 10 source files
	# sed reads to the end (head would leave sort a SIGPIPE, fatal under pipefail)
	find "$1" -type f -name '*.ts' | sort | sed -n '1,10p' | while read -r f; do echo "// changed $(date +%s%N)" >>"$f"; done
}
wait_mount() { for _ in $(seq 1 200); do mountpoint -q "$mnt" && return 0; sleep 0.05; done; return 1; }
rss_of() { awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$1/status" 2>/dev/null || echo 0; }
umount_wait() {	# umount_wait PID
	fusermount3 -u "$mnt" 2>/dev/null || fusermount -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
	while [ -n "$1" ] && kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

one_run() {	# one_run TOOL
	local tool=$1 pid src=$work/src
	rm -rf "$work/s3" "$src" "$work"/cache-* "$work/restore"
	mkdir -p "$mnt"
	cp -a "$ws" "$src"
	start_server
	case $tool in
	cairn)
		export CAIRN_STORE=s3://cairn-test/cairn CAIRN_KEY=file:$work/key CAIRN_STATE_DIR=$work/state
		"$CAIRN" init --create-key -q >/dev/null
		step cairn upload "$CAIRN" snapshot "$src" -q
		change_10 "$src"
		step cairn upload-10 "$CAIRN" snapshot "$src" -q
		rm -rf "$work/state"
		step cairn mount "$CAIRN" mount "$mnt" --cache "$work/cache-c" --no-prefetch -q
		pid=$(cat "$work/cache-c/cairnfs.pid")
		;;
	rclone)
		step rclone upload rclone copy "$src" cr: --transfers 8
		change_10 "$src"
		step rclone upload-10 rclone copy "$src" cr: --transfers 8
		reset_stats
		step rclone mount rclone mount cr: "$mnt" --vfs-cache-mode full --cache-dir "$work/cache-r" \
			--daemon --daemon-timeout 30s --log-file "$work/rclone.log"
		wait_mount || log "rclone: the mount did not appear"
		pid=$(pgrep -n -f "rclone mount cr:" || true)
		;;
	s3fs)
		(umask 077 && echo "$AK:$SK" >"$work/s3fs.passwd")
		step s3fs upload rclone copy "$src" s3r:cairn-test/plain --transfers 8
		change_10 "$src"
		step s3fs upload-10 rclone copy "$src" s3r:cairn-test/plain --transfers 8
		step s3fs mount s3fs cairn-test:/plain "$mnt" -o url="$EP" -o use_path_request_style \
			-o passwd_file="$work/s3fs.passwd" -o endpoint=auto -o sigv4 -o use_cache="$work/cache-s"
		wait_mount || log "s3fs: the mount did not appear"
		pid=$(pgrep -n -x s3fs || true)
		;;
	esac
	step "$tool" ls-R ls -R "$mnt"
	step "$tool" first-read cat "$mnt/$probe"
	step "$tool" read-all sh -c 'find "$1" -type f -exec cat {} + >/dev/null' _ "$mnt"
	record "$tool" peak-rss "$( [ -n "$pid" ] && rss_of "$pid" || echo 0)" 0 0
	umount_wait "$pid" || true
	stop_server
}

IFS=, read -ra TOOLS <<<"$tools"
for run in $(seq 1 "$runs"); do
	for tool in "${TOOLS[@]}"; do
		log "run $run: $tool"
		one_run "$tool"
	done
done

python3 - "$work/results" "$runs" "$size" "$probe" "$cmdline" "$work/ratios.csv" "${TOOLS[@]}" >"$work/table.md" <<'PY'
import statistics, sys
res, runs, size, probe, cmdline, csv = sys.argv[1:7]
tools = sys.argv[7:]
R = {}
for line in open(res):
    t, s, secs, req, b = line.split()
    R.setdefault((t, s), []).append((secs, int(req), int(b)))
steps = [("upload", "upload, full"), ("upload-10", "upload after 10 changes"), ("mount", "mount, empty cache"),
         ("ls-R", "ls -R of the tree"), ("first-read", "first read of a %s file" % "1-8 MB"),
         ("read-all", "read every file (hydrate / restore)")]
def med(t, s, i):
    v = R.get((t, s))
    if not v or any(x[0] in ("failed", "n/a") for x in v):
        return v[0][0] if v else None
    return statistics.median(float(x[i]) for x in v)
ratios = open(csv, "w")
print("| step | %s |" % " | ".join(tools))
print("|%s|" % "|".join([" --- "] * (len(tools) + 1)))
for s, label in steps:
    vals = {t: med(t, s, 0) for t in tools}
    nums = [v for v in vals.values() if isinstance(v, float) and v > 0]
    best = min(nums) if nums else None
    row = []
    for t in tools:
        v = vals[t]
        if v is None:
            row.append("-")
        elif isinstance(v, str):
            row.append(v)
        else:
            req, by = med(t, s, 1), med(t, s, 2)
            row.append("%.2f s (%.1fx), %d req, %.1f MB" % (v, v / best if best else 1, req, by / 1e6))
            if best:
                ratios.write("%s,%s,%s,%.4f\n" % (s, label.replace(",", ";"), t, v / best))
    print("| %s | %s |" % (label, " | ".join(row)))
rss = []
for t in tools:
    v = med(t, "peak-rss", 0)
    rss.append("-" if v is None or isinstance(v, str) else "%d MB" % v)
print("| peak RSS of the mount daemon | %s |" % " | ".join(rss))
print()
print("%s workspace; first read: %s; median of %s runs; ratio to the fastest tool of the row; requests and bytes from the proxy's counters." % (size, probe, runs))
print("Command: `%s`" % cmdline)
PY
{
	echo "Versions: $("$CAIRN" version), $(rclone version 2>/dev/null | head -1), $(s3fs --version 2>/dev/null | head -1 | cut -d' ' -f1-7)."
	echo
	cat "$work/table.md"
} | tee "${out:-/dev/null}"
[ -n "$out" ] && cp "$work/ratios.csv" "${out%.*}.csv"
exit 0
