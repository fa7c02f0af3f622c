#!/bin/sh
# snap-latency.sh - what a live snapshot costs the programs writing on the
# mount: a writer creates 4 KiB files in a loop (open, write, close) for a
# few seconds without a snapshot, then again while two snapshots of the
# mount run (the first reads FILES changed files); the latency of each
# create is reported (p50, p99, max) for both, side by side.
#
#   tests/bench/snap-latency.sh [FILES]      (default 2000 files of 10 kB)
#
# file:// store in a temp dir; everything it starts it stops; the mount is
# removed with fusermount3 -uz on exit.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
files=${1:-2000}
T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-lat.XXXXXX")
trap 'fusermount3 -uz "$T/m" 2>/dev/null; rm -rf "$T"' EXIT
export CAIRN_STORE=file://$T/ws/store CAIRN_KEY=file:$T/ws/key CAIRN_STATE_DIR=$T/ws/state \
	CAIRN_RUN_DIR=$T/run
mkdir -p "$T/m" "$T/ws"
"$top/cairn" init --create-key -q >/dev/null
"$top/cairnfs" "$CAIRN_STORE" "$T/m" -o "cache=$T/c,noprefetch"
cat >"$T/writer.py" <<'PY'
import os, sys, time
d, secs, label = sys.argv[1], float(sys.argv[2]), sys.argv[3]
os.makedirs(d, exist_ok=True)
lat, end, i = [], time.time() + secs, 0
while time.time() < end:
    t = time.perf_counter()
    fd = os.open(os.path.join(d, "f%d" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"x" * 4096)
    os.close(fd)
    lat.append(time.perf_counter() - t)
    i += 1
lat.sort()
print("%-18s %6d creates  p50 %.3f ms  p99 %.3f ms  max %.3f ms" % (label, len(lat),
      lat[len(lat) // 2] * 1e3, lat[int(len(lat) * .99)] * 1e3, lat[-1] * 1e3))
PY
mkdir "$T/m/bulk"
i=0
while [ $i -lt "$files" ]; do
	i=$((i + 1))
	head -c 10000 /dev/urandom >"$T/m/bulk/f$i"
done
python3 "$T/writer.py" "$T/m/w0" 3 "no snapshot"
(sleep 0.3; "$top/cairn" snapshot --mount "$T/m"; "$top/cairn" snapshot --mount "$T/m") >"$T/snaps" &
python3 "$T/writer.py" "$T/m/w1" 3 "during snapshots"
wait
sed 's/^/  /' "$T/snaps"
fusermount3 -u "$T/m"
