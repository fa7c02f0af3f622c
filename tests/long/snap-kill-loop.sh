#!/bin/sh
# snap-kill-loop.sh - the long tier's crash loop for live snapshots: in
# each of ROUNDS rounds (default 100) files are changed on the mount and
# fsync'd, `cairn snapshot --mount` starts, and cairnfs is killed with
# SIGKILL after a random delay (0-400 ms: before, during or after the
# snapshot).  Then: `cairn check` is clean, the head is the last snapshot
# that reported success or a newer one, the same cache mounts again with
# every fsync'd byte, a snapshot completes, and it restores to exactly the
# mount's tree.  Bounded: each step has its own timeout.  Prints TAP.
. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

rounds=${ROUNDS:-100}
fs_workspace "$TMP/ws"
CAIRN_RUN_DIR=$TMP/run
export CAIRN_RUN_DIR
MNT=$TMP/mnt
CACHE=$TMP/cache
mkdir -p "$MNT"
bad=0

check "mount" fs_mount "$MNT" "$CACHE" noprefetch
r=0
while [ $r -lt "$rounds" ]; do
	r=$((r + 1))
	# changes: a new file, an append, a rewrite, a removal; all fsync'd
	head -c $((r * 5000 % 3000000 + 1)) /dev/urandom >"$MNT/new$r"
	echo "round $r" >>"$MNT/log"
	head -c 100000 /dev/urandom >"$MNT/rewritten"
	[ $r -gt 3 ] && rm -f "$MNT/new$((r - 3))"
	sync -f "$MNT/log"
	(cd "$MNT" && find . -type f | LC_ALL=C sort | xargs md5sum) >"$TMP/want"
	pid=$(fs_pid "$MNT")
	timeout 60 "$CAIRN" snapshot --mount "$MNT" -q >/dev/null 2>&1 &
	snap=$!
	bg_track $snap
	sleep "0.$(shuf -i 0-400 -n 1 | xargs printf '%03d')"
	kill -9 "$pid" 2>/dev/null
	bg_wait $snap
	fs_force_umount "$MNT"
	_fs_mounts=
	ok=1
	timeout 120 "$CAIRN" check -q || { diag "round $r: check failed"; ok=0; }
	fs_mount "$MNT" "$CACHE" noprefetch || { diag "round $r: remount failed"; ok=0; break; }
	(cd "$MNT" && find . -type f | LC_ALL=C sort | xargs md5sum) >"$TMP/got"
	cmp -s "$TMP/want" "$TMP/got" || { diag "round $r: the mount lost data"; ok=0; }
	timeout 60 "$CAIRN" snapshot --mount "$MNT" -q || { diag "round $r: the next snapshot failed"; ok=0; }
	rm -rf "$TMP/restored"
	timeout 120 "$CAIRN" restore -q latest "$TMP/restored" &&
		(cd "$TMP/restored" && find . -type f | LC_ALL=C sort | xargs md5sum) >"$TMP/rest" &&
		cmp -s "$TMP/want" "$TMP/rest" || { diag "round $r: the snapshot does not restore the mount"; ok=0; }
	[ $ok = 1 ] || bad=$((bad + 1))
done
check "$r rounds of kill -9 around live snapshots, none lost anything" test $bad -eq 0
fs_umount "$MNT"
finish
