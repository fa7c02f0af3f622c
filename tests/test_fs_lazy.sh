#!/bin/sh
# test_fs_lazy.sh - cairnfs part 2 on S3 (s3rver behind the R2-like proxy):
# a lazy mount shows the tree without fetching data and fetches only what is
# read; live snapshots through the control socket read only the changed
# files and never tear a file being written; status and hydrate; a warm
# cache behind the head; the cache limit; the store down during reads.
. "$CAIRN_SRCDIR/tests/lib.sh"

s3_start
D=$TMP/lazy
mkdir -p "$D/src/dir/sub" "$D/src/pkg" "$D/mnt"
CAIRN_STORE=s3://cairn-test/lazy
CAIRN_KEY=file:$D/tenant.key
CAIRN_STATE_DIR=$D/state
CAIRN_RUN_DIR=$TMP/run
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR CAIRN_RUN_DIR
PY=${PYTHON:-python3}
W="$PY $SRCDIR/tests/snapwriters.py"

meta_sum() {	# meta_sum DIR: what ls -lR shows, without reading any file
	(cd "$1" && find . -mindepth 1 \( -type d -printf '%p %y %m %n %T@\n' \) -o -printf '%p %y %m %s %n %T@ %l\n' | LC_ALL=C sort)
}
get_data() { s3_stat "objects.get_data.$1"; }

# --- a workspace with a snapshot ------------------------------------------
check "init on S3" sh -c '"$1" init --create-key -q >/dev/null' _ "$CAIRN"
head -c 6000000 /dev/urandom >"$D/src/big"
ln "$D/src/big" "$D/src/big.link"
for i in $(seq 1 60); do
	head -c $((i * 97)) /dev/urandom >"$D/src/dir/f$i"
done
echo '{"name": "pkg"}' >"$D/src/pkg/package.json"
head -c 20000 /dev/urandom >"$D/src/dir/sub/small"
ln -s ../big "$D/src/dir/up"
setfattr -n user.colour -v blue "$D/src/dir/f1"
chmod 0640 "$D/src/dir/f2"
check "a snapshot of a plain dir" "$CAIRN" snapshot -q "$D/src"
fs_tree_sum "$D/src" >"$D/want"
meta_sum "$D/src" >"$D/want-meta"

# two first reads of one lazy file: one fetches chunk 0 (its GET held back
# 1.5 s by the proxy); the other reads the page across the end of chunk 0,
# so it needs chunk 0 too and must wait for it rather than serve a hole
fs_mount "$D/mnt2" "$D/cpar" noprefetch
ino=$(stat -c %i "$D/mnt2/big")
le=$(sqlite3 "$D/cpar/meta.db" "SELECT hex(substr(sizes, 1, 4)) FROM content WHERE ino = $ino")
be=$(echo "$le" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/')
pg=$((0x$be / 4096))	# the page holding the end of chunk 0 (sizes: LE32 each)
s3_ctl POST "/__proxy/fault?kind=delay:1500&count=1&method=GET&key=data/" >/dev/null
dd if="$D/mnt2/big" of=/dev/null bs=4096 count=1 2>/dev/null &
first=$!
sleep 0.4
dd if="$D/mnt2/big" of="$D/page-got" bs=4096 skip=$pg count=1 2>/dev/null
dd if="$D/src/big" of="$D/page-want" bs=4096 skip=$pg count=1 2>/dev/null
wait $first	# by pid: the S3 server is a background job too
check "a read across a chunk another read is fetching waits for it" cmp -s "$D/page-got" "$D/page-want"
check "then the whole file reads right" cmp -s "$D/mnt2/big" "$D/src/big"
fs_umount "$D/mnt2"
s3_ctl POST /__proxy/reset >/dev/null

# --- lazy mount: the tree first, data on read ------------------------------
s3_ctl POST /__proxy/reset >/dev/null
check "an empty cache mounts lazily" fs_mount "$D/mnt" "$D/c1" noprefetch
meta_sum "$D/mnt" >"$D/got-meta"
check "ls -lR shows the whole tree at once" cmp -s "$D/want-meta" "$D/got-meta" ||
	diag "$(diff "$D/want-meta" "$D/got-meta" | head -20)"
check "without any GET of a data pack" test "$(get_data count)" -le 0
check "status: nothing local yet" test "$(status_field "$D/mnt" files.local)" -eq 0

s3_ctl POST /__proxy/reset >/dev/null
cmp -s "$D/src/dir/sub/small" "$D/mnt/dir/sub/small"
check "reading one small file gives its bytes" test $? -eq 0
n=$(get_data count) b=$(get_data bytes_out)
check "with one range GET ($n)" test "$n" -eq 1
check "of no more than the file plus its 256 KiB window ($b bytes)" test "$b" -le $((20000 + 262144))

# the files of a directory sit side by side in their pack: reading them one
# after the other is served by a few windows, not a GET each
s3_ctl POST /__proxy/reset >/dev/null
ok=0
for i in $(seq 1 60); do
	cmp -s "$D/src/dir/f$i" "$D/mnt/dir/f$i" && ok=$((ok + 1))
done
n=$(get_data count)
check "60 small files of a directory read one by one give their bytes" test $ok -eq 60
check "with a few range GETs, not one per file ($n)" test "$n" -le 6

s3_ctl POST /__proxy/reset >/dev/null
dd if="$D/mnt/big" of="$D/part" bs=4096 skip=732 count=1 2>/dev/null
dd if="$D/src/big" of="$D/part.want" bs=4096 skip=732 count=1 2>/dev/null
check "reading 4 KiB in the middle of a 6 MB file" cmp -s "$D/part" "$D/part.want"
b=$(get_data bytes_out)
check "fetches the chunks around it, not the file ($b bytes)" test "$b" -lt 6000000
check "status: the 61 small files read are local, the big file is not yet" \
	test "$(status_field "$D/mnt" files.local)" -eq 61
fs_tree_sum "$D/mnt" >"$D/got"
check "every file reads back bit for bit" cmp -s "$D/want" "$D/got" ||
	diag "$(diff "$D/want" "$D/got" | head -20)"
check "status: all local now" \
	test "$(status_field "$D/mnt" files.local)" -eq "$(status_field "$D/mnt" files.total)"

# --- live snapshots ------------------------------------------------------
echo new >"$D/mnt/new.txt"
echo more >>"$D/mnt/dir/f3"
mv "$D/mnt/dir/f4" "$D/mnt/pkg/f4"
rm "$D/mnt/dir/f5"
mkdir "$D/mnt/made"
check "status: the changed files are dirty" test "$(status_field "$D/mnt" dirty.files)" -eq 2
s3_ctl POST /__proxy/reset >/dev/null
"$CAIRN" snapshot --mount "$D/mnt" --json >"$D/snap1"
check "cairn snapshot --mount" test $? -eq 0
check "reads only the changed files" grep -q '"files_read": *2' "$D/snap1" || diag "$(cat "$D/snap1")"
check "with no GET of data" test "$(get_data count)" -le 0
check "status: nothing dirty after it" test "$(status_field "$D/mnt" dirty.files)" -eq 0
"$CAIRN" snapshot --mount "$D/mnt" --json >"$D/snap2"
check "a snapshot with no change reads nothing" grep -q '"files_read": *0' "$D/snap2"
check "cairn status without --mount lists the mount" sh -c '"$1" status | grep -q "^$2: workspace"' \
	_ "$CAIRN" "$D/mnt"
echo "dirty again" >"$D/mnt/dirty-for-metrics.txt"
"$CAIRN" status --mount "$D/mnt" --prometheus >"$D/metrics"
check "status --prometheus: the mount is up, with its labels" \
	grep -q "^cairn_up{workspace=\"[0-9a-f]*\",mountpoint=\"$D/mnt\"} 1\$" "$D/metrics"
check "status --prometheus: one dirty file, its bytes, the generation of the last snapshot" sh -c '
	grep -q "^cairn_dirty_files{.*} 1\$" "$1" && grep -q "^cairn_dirty_bytes{.*} 12\$" "$1" &&
	grep -q "^cairn_snapshot_generation{.*} $2\$" "$1"' _ "$D/metrics" "$(status_field "$D/mnt" generation)"
check "status --prometheus: counters and help for each metric" sh -c '
	grep -q "^# TYPE cairn_store_upload_bytes_total counter\$" "$1" &&
	test "$(grep -c "^# HELP" "$1")" -eq 24 && grep -q "^cairn_store_upload_bytes_total{.*} [1-9]" "$1"' _ "$D/metrics"
check "status --prometheus: the lease is held" grep -q "^cairn_lease_lost{.*} 0\$" "$D/metrics"
"$CAIRN" status --textfile "$D/cairn.prom"
check "status --textfile writes the same metrics, and no temporary file is left" sh -c '
	grep -q "^cairn_up{.*} 1\$" "$1/cairn.prom" && ! test -e "$1/cairn.prom.tmp"' _ "$D"
"$CAIRN" status --textfile "$D/cairn.txt" 2>"$D/err"
check "status --textfile refuses a name node_exporter would not read" grep -q "only files named \*.prom" "$D/err"
rm "$D/mnt/dirty-for-metrics.txt"
mkfifo "$D/mnt/made/fifo"
mknod "$D/mnt/made/null" c 1 3
ln "$D/mnt/new.txt" "$D/mnt/made/new.link"
setfattr -n user.k -v v "$D/mnt/made"
chmod 1777 "$D/mnt/made"
"$CAIRN" snapshot --mount "$D/mnt" -q
rm -rf "$D/rsp"
"$CAIRN" restore -q --privileged latest "$D/rsp"
check "a live snapshot keeps fifos, devices, hard links, dir modes and xattrs" sh -c '
	test -p "$1/made/fifo" && test -c "$1/made/null" &&
	test "$(stat -c %h "$1/new.txt")" = 2 && test "$(stat -c %a "$1/made")" = 1777 &&
	test "$(getfattr --only-values -n user.k "$1/made" 2>/dev/null)" = v' _ "$D/rsp"
fs_tree_sum "$D/mnt" >"$D/want2"

# the agent-config root: named paths, kept when a snapshot names none
mkdir -p "$D/home/.claude/projects"
echo '{"token": "x"}' >"$D/home/.claude/.credentials.json"
chmod 600 "$D/home/.claude/.credentials.json"
echo '{"onboarded": true}' >"$D/home/.claude.json"
check "a snapshot with an agent-config file set" "$CAIRN" snapshot --mount "$D/mnt" -q \
	--agent-config "$D/home/.claude" --agent-config "$D/home/.claude.json"
"$CAIRN" snapshot --mount "$D/mnt" -q
rm -rf "$D/ac"
"$CAIRN" restore -q --root agent-config latest "$D/ac"
check "the next snapshot keeps it, modes included" sh -c '
	cmp -s "$1/.claude.json" "$2/.claude.json" &&
	test "$(stat -c %a "$2/.claude/.credentials.json")" = 600 && test -d "$2/.claude/projects"' \
	_ "$D/home" "$D/ac"

# a writer appends records, another rewrites a file in place, while
# snapshots are taken; each snapshot holds whole records and one version
rm -f "$D/stop"
$W append "$D/mnt/log" "$D/stop" >"$D/app.out" & app=$!; bg_track $app
$W rewrite "$D/mnt/flip" "$D/stop" >"$D/rw.out" & rw=$!; bg_track $rw
i=0
while [ $i -lt 100 ] && ! { grep -q started "$D/app.out" && grep -q started "$D/rw.out"; }; do
	sleep 0.1; i=$((i + 1))
done
ok=0
for k in 1 2 3; do
	sleep 0.3
	"$CAIRN" snapshot --mount "$D/mnt" --json >"$D/live$k" && ok=$((ok + 1))
done
touch "$D/stop"
bg_wait $app
bg_wait $rw
check "three snapshots while two writers write" test $ok -eq 3
pauses=$(sed 's/.*"pause_ms": *\([0-9.]*\).*/\1/' "$D/live1" "$D/live2" "$D/live3" | tr '\n' ' ')
diag "metadata pauses (ms): $pauses"
torn=0
for k in 1 2 3; do
	id=$(sed 's/.*"snapshot": *"\([0-9a-f]*\)".*/\1/' "$D/live$k")
	rm -rf "$D/r$k"
	"$CAIRN" restore -q "$id" "$D/r$k" || torn=1
	if [ -f "$D/r$k/log" ]; then $W check-append "$D/r$k/log" >>"$D/torn" || torn=1; fi
	if [ -f "$D/r$k/flip" ]; then $W check-rewrite "$D/r$k/flip" >>"$D/torn" || torn=1; fi
done
diag "$(cat "$D/torn")" "$(cat "$D/live1" "$D/live2" "$D/live3" | cut -c1-300)"
check "every snapshot holds whole records and one version of the rewritten file" test $torn -eq 0
"$CAIRN" snapshot --mount "$D/mnt" -q
rm -rf "$D/rlast"
"$CAIRN" restore -q latest "$D/rlast"
check "once the writers stop, the next snapshot has all records" \
	cmp -s "$D/rlast/log" "$D/mnt/log"
check "a clean unmount" fs_umount "$D/mnt"

# --- kill -9 during a live snapshot ----------------------------------------
check "remount for the kill" fs_mount "$D/mnt" "$D/c1" noprefetch
before=$("$CAIRN" ls --json | wc -l)
head -c 40000000 /dev/urandom >"$D/mnt/bulk" && sync -f "$D/mnt/bulk"
md5_bulk=$(md5sum <"$D/mnt/bulk")
pid=$(fs_pid "$D/mnt")
"$CAIRN" snapshot --mount "$D/mnt" -q 2>/dev/null & snap=$!; bg_track $snap
i=0
while [ $i -lt 50 ] && [ "$(status_field "$D/mnt" snapshot_running)" != true ]; do
	sleep 0.02; i=$((i + 1))
done
kill -9 "$pid"
bg_wait $snap
check "the snapshot killed under way fails" test "$bg_rc" -ne 0
fs_force_umount "$D/mnt"
# the kill may land before the head write or after it (the snapshot then
# committed whole, and the cache takes it as its base when it mounts)
check "the head is the previous snapshot or the whole killed one" \
	test "$("$CAIRN" ls --json | wc -l)" -le $((before + 1))
check "check is clean" "$CAIRN" check -q
check "the cache mounts again" fs_mount "$D/mnt" "$D/c1" noprefetch
check "with the changed data still there" test "$(md5sum <"$D/mnt/bulk")" = "$md5_bulk"
check "and still dirty" test "$(status_field "$D/mnt" dirty.files)" -ge 1
check "the next snapshot completes" "$CAIRN" snapshot --mount "$D/mnt" -q
rm -rf "$D/rk9"
"$CAIRN" restore -q latest "$D/rk9"
check "and restores it" test "$(md5sum <"$D/rk9/bulk")" = "$md5_bulk"
# SIGTERM while a snapshot runs: the daemon exits, the snapshot ends whole
head -c 40000000 /dev/urandom >"$D/mnt/bulk2"
pid=$(fs_pid "$D/mnt")
"$CAIRN" snapshot --mount "$D/mnt" -q >/dev/null 2>&1 & snap=$!; bg_track $snap
i=0
while [ $i -lt 50 ] && [ "$(status_field "$D/mnt" snapshot_running)" != true ]; do
	sleep 0.02; i=$((i + 1))
done
kill -TERM "$pid"
i=0
while [ $i -lt 300 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "SIGTERM during a snapshot: cairnfs exits" sh -c '! kill -0 "$1" 2>/dev/null' _ "$pid"
bg_wait $snap
fs_force_umount "$D/mnt"
check "and the repository is clean" "$CAIRN" check -q
check "the cache mounts again after it" fs_mount "$D/mnt" "$D/c1" noprefetch
rm "$D/mnt/bulk" "$D/mnt/bulk2"
"$CAIRN" snapshot --mount "$D/mnt" -q
fs_tree_sum "$D/mnt" >"$D/want3"
check "unmount after the kill" fs_umount "$D/mnt"

# --- a new machine: lazy remount of the last snapshot ----------------------
check "a new empty cache mounts the last snapshot" fs_mount "$D/mnt" "$D/c2" noprefetch
fs_tree_sum "$D/mnt" >"$D/got3"
check "identical tree and bytes" cmp -s "$D/want3" "$D/got3" ||
	diag "$(diff "$D/want3" "$D/got3" | head -20)"
check "hydrate --wait" "$CAIRN" hydrate --mount "$D/mnt" --wait -q
check "its unmount is clean" fs_umount "$D/mnt"
first=$("$CAIRN" ls --json | head -1 | sed 's/.*"id": *"\([0-9a-f]\{8\}\).*/\1/')
check "--snapshot PREFIX mounts an older snapshot on a new cache" \
	fs_mount "$D/mnt" "$D/c-old" "noprefetch,snapshot=$first"
fs_tree_sum "$D/mnt" >"$D/got-old"
check "showing that snapshot's tree" cmp -s "$D/want" "$D/got-old" ||
	diag "$(diff "$D/want" "$D/got-old" | head)"
check "c-old: unmount" fs_umount "$D/mnt"

# --- a warm cache behind the head ----------------------------------------
check "cache 1 resumes" fs_mount "$D/mnt" "$D/c1" noprefetch
check "c1: its unmount is clean" fs_umount "$D/mnt"
check "cache 2 mounts and snapshots a change" sh -c '
	. "$1/tests/lib.sh"; "$2" "$CAIRN_STORE" "$3" -o cache="$4",noprefetch &&
	echo from-c2 >"$3/c2.txt" && "$5" snapshot --mount "$3" -q && fusermount3 -u "$3"' \
	_ "$SRCDIR" "$CAIRNFS" "$D/mnt" "$D/c2" "$CAIRN"
sleep 1
# final_snapshot=no: the local changes stay local, as after a stop whose
# last snapshot could not be taken
check "cache 1, unchanged, is refreshed from the new head" fs_mount "$D/mnt" "$D/c1" noprefetch,final_snapshot=no
check "and shows the change" grep -q from-c2 "$D/mnt/c2.txt"
echo local-c1 >"$D/mnt/c1.txt"
check "c1: unmount with a local change" fs_umount "$D/mnt"
check "cache 2 moves the head on again" sh -c '
	"$1" "$CAIRN_STORE" "$2" -o cache="$3",noprefetch && echo again >"$2/c2b.txt" &&
	"$4" snapshot --mount "$2" -q && fusermount3 -u "$2"' _ "$CAIRNFS" "$D/mnt" "$D/c2" "$CAIRN"
sleep 1
check "cache 1 with a local change is refused" \
	sh -c '! "$1" "$CAIRN_STORE" "$2" -o cache="$3" 2>"$4"' _ "$CAIRNFS" "$D/mnt" "$D/c1" "$D/err"
check "naming both ways on" grep -q 'discard_local.*keep_local_as_snapshot\|keep_local_as_snapshot.*discard_local' "$D/err" ||
	diag "$(cat "$D/err")"
check "the refusal left the local change" sh -c 'sqlite3 "$1/meta.db" "select 1" >/dev/null' _ "$D/c1"
nsnap=$("$CAIRN" ls --json | wc -l)
check "keep_local_as_snapshot mounts" fs_mount "$D/mnt" "$D/c1" noprefetch,keep_local_as_snapshot,final_snapshot=no
check "showing the head" grep -q again "$D/mnt/c2b.txt"
check "without the local change" test ! -e "$D/mnt/c1.txt"
check "which is a snapshot of its own" test "$("$CAIRN" ls --json | wc -l)" -eq $((nsnap + 1))
kept=$("$CAIRN" ls --json | grep -v "\"$(status_field "$D/mnt" snapshot)\"" | tail -1 |
	sed 's/.*"id": *"\([0-9a-f]*\)".*/\1/')
rm -rf "$D/rk"
"$CAIRN" restore -q "$kept" "$D/rk" 2>/dev/null
check "that restores with the change" grep -q local-c1 "$D/rk/c1.txt"
echo doomed >"$D/mnt/doomed.txt"
check "c1: unmount" fs_umount "$D/mnt"
check "cache 2 moves the head on a third time" sh -c '
	"$1" "$CAIRN_STORE" "$2" -o cache="$3",noprefetch && echo third >"$2/c2c.txt" &&
	"$4" snapshot --mount "$2" -q && fusermount3 -u "$2"' _ "$CAIRNFS" "$D/mnt" "$D/c2" "$CAIRN"
sleep 1
check "discard_local mounts" fs_mount "$D/mnt" "$D/c1" noprefetch,discard_local
check "with the head's files and not the dropped one" \
	sh -c 'test -e "$1/c2c.txt" && test ! -e "$1/doomed.txt"' _ "$D/mnt"
check "c1: unmount after discard" fs_umount "$D/mnt"

# --- the cache limit -----------------------------------------------------
check "a mount with cache_size=3M" fs_mount "$D/mnt" "$D/c3" noprefetch,cache_size=3M
cat "$D/mnt/big" "$D/mnt/dir/"* >/dev/null 2>&1
cmp -s "$D/src/big" "$D/mnt/big"
check "a file larger than the limit reads whole" test $? -eq 0
used=$(status_field "$D/mnt" cache.used_bytes)
check "and the cache stays near the limit ($used bytes)" test "$used" -le $((3 * 1048576 + 4 * 1048576))
head -c 1500000 /dev/urandom >"$D/dirty1"
cp "$D/dirty1" "$D/mnt/dirty1" && sync -f "$D/mnt/dirty1"
cat "$D/mnt/big" >/dev/null
check "changed data is never evicted" cmp -s "$D/dirty1" "$D/mnt/dirty1"
check "a write past the limit with nothing to evict fails at fsync" \
	sh -c '! dd if=/dev/urandom of="$1/too-big" bs=1M count=4 conv=fsync 2>/dev/null' _ "$D/mnt"
check "the earlier files are intact" cmp -s "$D/dirty1" "$D/mnt/dirty1"
rm -f "$D/mnt/too-big"
check "c3: unmount" fs_umount "$D/mnt"

# --- the store down during lazy reads --------------------------------------
CAIRN_S3_RETRY_SECONDS=1; export CAIRN_S3_RETRY_SECONDS
check "a lazy mount with a short retry budget" fs_mount "$D/mnt" "$D/c4" noprefetch
unset CAIRN_S3_RETRY_SECONDS
s3_ctl POST "/__proxy/fault?kind=status:500&count=1000&key=/data/" >/dev/null
check "a read while the store fails is EIO" sh -c '! cat "$1" >/dev/null 2>"$2"' _ "$D/mnt/dir/f7" "$D/eio"
check "said as an I/O error" grep -qi "input/output" "$D/eio"
check "the mount stays up" test -f "$D/mnt/dir/f8"
check "the log names the object" grep -q 'cannot fetch.*data/' "$D/c4/cairnfs.log"
fe=$(status_field "$D/mnt" fetch_errors)
check "status counts the failed read ($fe)" test "$fe" -ge 1
s3_ctl POST /__proxy/reset >/dev/null
check "once the store is back, the read succeeds" cmp -s "$D/src/dir/f7" "$D/mnt/dir/f7"
check "c4: unmount" fs_umount "$D/mnt"
check "check --read-data is clean" "$CAIRN" check --read-data -q
finish
