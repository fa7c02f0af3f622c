#!/bin/sh
# test_fs_posix.sh - POSIX behaviour of a cairnfs mount: tests/fs_posix (C,
# each call with its errno, as root and as user 65534) run on the mount with
# --cairnfs and a 20,000-entry directory.  Its TAP lines become this test's,
# renumbered; the same program passes on ext4 and tmpfs.
. "$CAIRN_SRCDIR/tests/lib.sh"

FS_POSIX=${CAIRN_BUILDDIR:-.}/tests/fs_posix
MNT=$TMP/mnt

if [ ! -x "$FS_POSIX" ]; then
	echo "Bail out! $FS_POSIX is not built (make tests/fs_posix)"
	exit 1
fi

fs_workspace "$TMP/ws"
chmod 755 "$TMP"	# the unprivileged user must reach the mount
if ! check "mount" fs_mount "$MNT" "$TMP/cache"; then
	echo "Bail out! cairnfs did not mount"
	exit 1
fi
chmod 755 "$MNT"

timeout 500 "$FS_POSIX" --cairnfs --big 20000 --user 65534:65534 "$MNT" >"$TMP/fs_posix.out" 2>&1
rc=$?
tap_relay "$TMP/fs_posix.out"
check "fs_posix ran to the end (exit status $rc, 1 when a check failed)" \
	test "$rc" -le 1 -a -n "$tap_plan"
check "and left nothing behind in the mount" test -z "$(ls -A "$MNT")"
check "unmount" fs_umount "$MNT"
finish
