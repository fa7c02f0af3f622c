#!/bin/bash
# fs-bench.sh - cairnfs beside the native disk, gocryptfs, libfuse's
# passthrough_ll example and rclone mount (a crypt remote over S3, with
# --vfs-cache-mode full), the same work in one run.  (s3fs is compared in
# tests/bench/peers-bench.sh: here its fio files and remounts failed.)
#
#   tests/bench/fs-bench.sh [--size small|full] [--runs N] [--fs LIST]
#       [--scratch DIR] [--out FILE]   (FILE.md; the ratios go to FILE.csv)
#
# For each filesystem (LIST, default
# native,cairnfs,gocryptfs,passthrough_ll,rclone)
# and run: untar of the generated agent workspace (tests/bench/gen-workspace:
# small ~3,500 files, full ~33,000 files and ~1 GB), `find`, `git status` in
# its repository and `rm -rf`, each timed; fio with the job files in
# tests/bench/fio/ (1 MiB sequential write with a final fsync, 1 MiB
# sequential read right after a remount with the page cache dropped and
# again cached, 4 KiB random reads); the per-operation round trip (stat of
# names that do not exist, a lookup each) and the daemon's peak RSS.
# Figures are medians of --runs runs (default 3) and ratios to native.
# The table goes to stdout and to --out (default: none).
#
# Everything is under --scratch (default /var/tmp/cairn-fsbench), on the
# same disk for every filesystem; every mount is unmounted and every daemon
# stopped on exit.  rclone stores in s3rver behind the project's
# proxy on 127.0.0.1 (plain HTTP), started here; cairnfs's store is a
# file:// directory on the same disk (its data path is its local cache;
# its store traffic is measured by tests/bench/lazy-bench.sh).  Needs root
# (mounts, drop_caches), fio, gocryptfs, rclone (apt-get install fio
# gocryptfs rclone), node with tests/node_modules, python3, git, a C
# compiler and libfuse3-dev for passthrough_ll.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cmdline="tests/bench/fs-bench.sh${*:+ $*}"
size=small runs=3 fslist=native,cairnfs,gocryptfs,passthrough_ll,rclone out=
S=/var/tmp/cairn-fsbench
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--fs) fslist=$2; shift 2 ;;
	--scratch) S=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) sed -n '2,24s/^# \{0,1\}//p' "$0"; exit 2 ;;
	esac
done
CAIRN=${CAIRN:-$top/cairn}
CAIRNFS=${CAIRNFS:-$top/cairnfs}
fio_size=$([ "$size" = full ] && echo 1g || echo 256m)

mounts=()
s3_pid=
cleanup() {
	for m in "${mounts[@]}"; do fusermount3 -uz "$m" 2>/dev/null || fusermount -uz "$m" 2>/dev/null || true; done
	[ -n "$s3_pid" ] && { exec 9>&-; kill "$s3_pid" 2>/dev/null; wait "$s3_pid" 2>/dev/null; }
	rm -rf "$S"
}
trap cleanup EXIT
rm -rf "$S"
mkdir -p "$S"

# ---- the tree and the tools ----
python3 "$here/gen-workspace" --size "$size" --seed 1 "$S/tree" >/dev/null
tar -C "$S/tree" -cf "$S/tree.tar" .
nfiles=$(find "$S/tree" | wc -l)
cc -O2 -o "$S/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
	$(pkg-config --cflags --libs fuse3) 2>/dev/null || echo "passthrough_ll did not build" >&2

# ---- s3rver behind the proxy, for rclone ----
case ",$fslist," in
*,rclone,*)
	mkfifo "$S/s3-in" "$S/s3-ready"
	NODE_PATH=${NODE_PATH:-$top/tests/node_modules} node "$top/tests/s3/server.js" --dir "$S/s3" \
		<"$S/s3-in" >"$S/s3-ready" 2>"$S/s3.log" &
	s3_pid=$!
	exec 9>"$S/s3-in"
	read -r word s3_port _ <"$S/s3-ready"
	[ "$word" = READY ] || { echo "the S3 test server did not start: $(cat "$S/s3.log")" >&2; exit 1; }
	AK=CAIRNTESTACCESSKEY01 SK=cairn/test/secret/key/0123456789abcdefghij
	unset AWS_CA_BUNDLE	# plain HTTP here; rclone refuses a CA bundle on it
	export RCLONE_CONFIG_S3R_TYPE=s3 RCLONE_CONFIG_S3R_PROVIDER=Other RCLONE_CONFIG_S3R_REGION=auto \
		RCLONE_CONFIG_S3R_ENDPOINT=http://127.0.0.1:$s3_port RCLONE_CONFIG_S3R_ACCESS_KEY_ID=$AK \
		RCLONE_CONFIG_S3R_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_S3R_FORCE_PATH_STYLE=true \
		RCLONE_CONFIG_CR_TYPE=crypt RCLONE_CONFIG_CR_REMOTE=s3r:cairn-test/rclone \
		RCLONE_CONFIG_CR_PASSWORD="$(rclone obscure benchpass)"
	;;
esac

# ---- mounting each filesystem; $dir is where the work happens ----
setup() {	# setup FS: makes it, sets $dir
	case $1 in
	native) mkdir -p "$S/native"; dir=$S/native ;;
	cairnfs)
		export CAIRN_STORE=file://$S/cairn-store CAIRN_KEY=file:$S/cairn.key CAIRN_STATE_DIR=$S/cairn-state
		[ -e "$S/cairn.key" ] || "$CAIRN" init --create-key -q >/dev/null
		mkdir -p "$S/mnt-cairnfs"
		"$CAIRNFS" "$CAIRN_STORE" "$S/mnt-cairnfs" -o "cache=$S/cairn-cache"
		mounts+=("$S/mnt-cairnfs"); dir=$S/mnt-cairnfs ;;
	gocryptfs)
		mkdir -p "$S/gc-cipher" "$S/mnt-gocryptfs"
		[ -e "$S/gc-cipher/gocryptfs.conf" ] ||
			gocryptfs -q -init -extpass "echo benchpass" "$S/gc-cipher" >/dev/null
		gocryptfs -q -nosyslog -extpass "echo benchpass" "$S/gc-cipher" "$S/mnt-gocryptfs"
		mounts+=("$S/mnt-gocryptfs"); dir=$S/mnt-gocryptfs ;;
	passthrough_ll)
		mkdir -p "$S/pt-src" "$S/mnt-passthrough_ll"
		"$S/passthrough_ll" -o "source=$S/pt-src" "$S/mnt-passthrough_ll"
		mounts+=("$S/mnt-passthrough_ll"); dir=$S/mnt-passthrough_ll ;;
	rclone)
		mkdir -p "$S/mnt-rclone"
		rclone mount cr: "$S/mnt-rclone" --vfs-cache-mode full --cache-dir "$S/rclone-cache" \
			--daemon --daemon-timeout 30s --log-file "$S/rclone.log"
		for _ in $(seq 1 100); do mountpoint -q "$S/mnt-rclone" && break; sleep 0.1; done
		mounts+=("$S/mnt-rclone"); dir=$S/mnt-rclone ;;
	esac
}
teardown() {	# teardown FS: unmounts and waits for the daemon to be gone
	local pid
	[ "$1" = native ] && return 0
	pid=$(daemon_pid "$1")
	fusermount3 -u "$S/mnt-$1" 2>/dev/null || fusermount -u "$S/mnt-$1"
	while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
remount() {	# remount FS: setup, and make sure it is the mount we measure
	setup "$1"
	[ "$1" = native ] || mountpoint -q "$dir" || { echo "$1 did not mount again" >&2; exit 1; }
}
daemon_pid() {
	case $1 in
	cairnfs) cat "$S/cairn-cache/cairnfs.pid" ;;
	gocryptfs) pgrep -n -f "gocryptfs .*$S/gc-cipher" ;;
	passthrough_ll) pgrep -n -f "$S/passthrough_ll" ;;
	rclone) pgrep -n -f "rclone mount cr: $S/mnt-rclone" ;;
	*) echo "" ;;
	esac
}

secs() {	# secs CMD...: wall seconds of CMD
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
fio_bw() {	# fio_bw JOB DIR: MB/s (or IOPS for the random job)
	fio --directory="$2" --size="$fio_size" --output-format=json "$here/fio/$1.fio" 2>/dev/null |
		python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"]
rw = "write" if sys.argv[1].endswith("write") else "read"
if sys.argv[1] == "randread":
    print(round(sum(x[rw]["iops"] for x in j)))
else:
    print(round(sum(x[rw]["bw_bytes"] for x in j) / 1e6))' "$1"
}
floor_us() {	# floor_us DIR: microseconds per stat of a name that is not there
	python3 -c '
import os, sys, time
d = sys.argv[1]
n = 20000
t = time.perf_counter()
for i in range(n):
    try:
        os.stat(os.path.join(d, "absent-%d" % i))
    except FileNotFoundError:
        pass
print(round((time.perf_counter() - t) / n * 1e6, 1))' "$1"
}

record() { echo "$1 $2 $3" >>"$S/results"; }	# record FS METRIC VALUE

IFS=, read -ra FSS <<<"$fslist"
for run in $(seq 1 "$runs"); do
	for fs in "${FSS[@]}"; do
		echo "run $run: $fs" >&2
		setup "$fs" || { echo "cannot mount $fs" >&2; continue; }
		[ "$fs" = native ] || mountpoint -q "$dir" || { echo "$fs is not mounted" >&2; exit 1; }
		mkdir -p "$dir/w"
		sync; echo 3 >/proc/sys/vm/drop_caches
		# rclone and s3fs cannot make every entry (hard links, fifos, ...):
		# the time counts all the same, and the entries made are a row
		t=$(secs tar -C "$dir/w" -xf "$S/tree.tar" 2>/dev/null)
		record "$fs" untar "$t"
		record "$fs" entries "$(find "$dir/w" | wc -l)"
		record "$fs" find "$(secs find "$dir/w")"
		record "$fs" git_status "$(secs git -C "$dir/w/project" status --porcelain)"
		record "$fs" floor_us "$(floor_us "$dir/w")"
		record "$fs" rm_rf "$(secs rm -rf "$dir/w")"
		record "$fs" seq_write "$(fio_bw seqwrite "$dir")"
		teardown "$fs"; sync; echo 3 >/proc/sys/vm/drop_caches; remount "$fs"
		record "$fs" seq_read_cold "$(fio_bw seqread "$dir")"
		record "$fs" seq_read_cached "$(fio_bw seqread "$dir")"
		# lay the random-read file out first, so the reads start cold
		fio --directory="$dir" --size="$fio_size" --create_only=1 "$here/fio/randread.fio" >/dev/null 2>&1
		teardown "$fs"; sync; echo 3 >/proc/sys/vm/drop_caches; remount "$fs"
		record "$fs" rand_read_iops "$(fio_bw randread "$dir")"
		pid=$(daemon_pid "$fs")
		[ -n "$pid" ] && record "$fs" rss_mb "$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$pid/status")"
		rm -f "$dir"/seq* "$dir"/rand*
		teardown "$fs"
	done
done

# ---- the table: medians, and ratios to native ----
python3 - "$S/results" "$runs" "$size" "$nfiles" "$fio_size" "$cmdline" "$S/ratios.csv" "${FSS[@]}" >"$S/table.md" <<'PY'
import statistics, sys
res, runs, size, nfiles, fio_size, cmdline, csv = sys.argv[1:8]
fss = sys.argv[8:]
ratios = open(csv, "w")
R = {}
for line in open(res):
    w = line.split()
    if len(w) == 3:
        R["%s,%s" % (w[0], w[1])] = R.get("%s,%s" % (w[0], w[1]), "") + " " + w[2]
metrics = [("untar", "untar (s)", "lower"), ("entries", "entries made (of %s)" % nfiles, "higher"),
           ("find", "find (s)", "lower"),
           ("git_status", "git status (s)", "lower"), ("rm_rf", "rm -rf (s)", "lower"),
           ("seq_write", "seq write 1 MiB (MB/s)", "higher"),
           ("seq_read_cold", "seq read, first (MB/s)", "higher"),
           ("seq_read_cached", "seq read, cached (MB/s)", "higher"),
           ("rand_read_iops", "4k random read (IOPS)", "higher"),
           ("floor_us", "lookup round trip (us)", "lower"), ("rss_mb", "daemon peak RSS (MB)", "lower")]
def med(fs, m):
    v = R.get("%s,%s" % (fs, m), "").split()
    if not v:
        return None
    if "failed" in v:
        return "failed"
    return statistics.median(float(x) for x in v)
print("| %s |" % " | ".join(["measure"] + fss))
print("|%s|" % "|".join([" --- "] * (len(fss) + 1)))
for m, label, better in metrics:
    row = [label]
    base = med("native", m)
    for fs in fss:
        v = med(fs, m)
        if v is None:
            row.append("-")
        elif v == "failed":
            row.append("failed")
        elif fs == "native" or not isinstance(base, float) or base == 0:
            row.append("%g" % round(v, 3))
        else:
            row.append("%g (%.2fx)" % (round(v, 3), v / base))
            # for the plots: how many times worse than native (>= 1 worse)
            worse = v / base if better == "lower" else base / v if v else float("inf")
            ratios.write("%s,%s,%s,%.4f\n" % (m, label.replace(",", ";"), fs, worse))
    print("| %s |" % " | ".join(row))
print()
print("%s workspace: %s entries; fio files %s; median of %s runs; ratios to native."
      % (size, nfiles, fio_size, runs))
print("Command: `%s`" % cmdline)
PY
{
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { print int($2 / 1048576) }' /proc/meminfo) GiB," \
		"kernel $(uname -r), scratch on $(df -T "$S" | awk 'NR == 2 { print $2 }')."
	echo "Versions: $("$CAIRNFS" --version | head -1), $(gocryptfs -version 2>/dev/null | head -1)," \
		"$(rclone version 2>/dev/null | head -1)," \
		"$(fio --version)."
	echo
	cat "$S/table.md"
} | tee "${out:-/dev/null}"
# the ratios, for tests/bench/plot.sh: beside --out, as .csv
[ -n "$out" ] && cp "$S/ratios.csv" "${out%.*}.csv"
