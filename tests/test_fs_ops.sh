#!/bin/sh
# test_fs_ops.sh - POSIX behaviour of a cairnfs mount, each call with its
# error cases, as root and as an unprivileged user (tests/posix.py, which
# passes on ext4 the same way), then once more after a remount: what the
# checks left behind reads the same from the warm cache.
. "$CAIRN_SRCDIR/tests/lib.sh"

fs_workspace "$TMP/ws"
MNT=$TMP/mnt
chmod 755 "$TMP"

run_posix() {	# run_posix ARGS...: each line of posix.py becomes a check
	timeout 400 python3 "$SRCDIR/tests/posix.py" "$@" >"$TMP/posix.out" 2>&1
	rc=$?
	tap_relay "$TMP/posix.out"
	check "posix.py ran to the end" test "$rc" -le 1
}

check "mount" fs_mount "$MNT" "$TMP/cache"
chmod 755 "$MNT"
run_posix --cairnfs --big 20000 "$MNT/p"
(cd "$MNT" && find . -path ./p/root/bigdir -prune -o -print | LC_ALL=C sort |
	xargs stat -c '%n %f %u %g %h %s %Y' 2>/dev/null) >"$TMP/before"
check "unmount" fs_umount "$MNT"
check "remount of the warm cache" fs_mount "$MNT" "$TMP/cache"
(cd "$MNT" && find . -path ./p/root/bigdir -prune -o -print | LC_ALL=C sort |
	xargs stat -c '%n %f %u %g %h %s %Y' 2>/dev/null) >"$TMP/after"
check "every name, type, mode, owner, link count, size and mtime survives it" \
	cmp -s "$TMP/before" "$TMP/after" || diag "$(diff "$TMP/before" "$TMP/after" | head -20)"
check "and the last unmount is clean" fs_umount "$MNT"
finish
