#!/bin/sh
# run-all.sh - every side-by-side benchmark in one command, bounded in
# time, with the tables and the plots in docs/bench/:
#
#   tests/bench/run-all.sh [--size small|full] [--runs N]     (as root)
#
#   fs-bench.sh      cairnfs, the native disk, gocryptfs, passthrough_ll
#                    and rclone mount: untar, find, git status, rm -rf,
#                    fio, lookups, peak RSS        -> docs/bench/fs-SIZE.{md,csv,png}
#   peers-bench.sh   cairn, rclone and s3fs on one s3rver: upload, upload
#                    after 10 changes, mount, ls -R, first read, hydration,
#                    requests and bytes             -> docs/bench/peers-SIZE.{md,csv,png}
#   snapshot-bench.sh  cairn beside restic 0.14 (snapshot, restore), over TLS
#                                                   -> its section of docs/benchmarks.md
# Each is bounded by timeout (SIZE small: 60 minutes each, full: 180).
# Installs what it lacks from Debian (fio gocryptfs rclone s3fs restic
# gnuplot-nox bc).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
size=small runs=3
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	*) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 2 ;;
	esac
done
limit=$([ "$size" = full ] && echo 10800 || echo 3600)
missing=
for p in fio gocryptfs rclone s3fs restic gnuplot-nox bc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
mkdir -p "$top/docs/bench"
status=0
timeout "$limit" bash "$here/fs-bench.sh" --size "$size" --runs "$runs" --out "$top/docs/bench/fs-$size.md" || status=1
sh "$here/plot.sh" "$top/docs/bench/fs-$size.csv" "$top/docs/bench/fs-$size.png" \
	"filesystems, $size workspace: times worse than the native disk (log scale; 1 = as good)" || status=1
timeout "$limit" bash "$here/peers-bench.sh" --size "$size" --runs "$runs" --out "$top/docs/bench/peers-$size.md" || status=1
sh "$here/plot.sh" "$top/docs/bench/peers-$size.csv" "$top/docs/bench/peers-$size.png" \
	"from the store, $size workspace: times slower than the fastest tool (log scale; 1 = fastest)" || status=1
timeout "$limit" bash "$here/snapshot-bench.sh" --size "$size" --runs "$runs" || status=1
exit $status
