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

# relay FILE: each check of fs_posix's output becomes one of ours (skips
# too); its diagnostics pass through; its plan is checked, not repeated.
relay() {
	_plan=
	while IFS= read -r line; do
		case $line in
		"ok "*" # SKIP"*)
			_n=$((_n + 1))
			echo "ok $_n # SKIP ${line#*# SKIP }" ;;
		"ok "*) check "${line#ok * - }" true ;;
		"not ok "*) check "${line#not ok * - }" false ;;
		"1.."*) _plan=${line#1..} ;;
		"Bail out!"*) echo "$line"; exit 1 ;;
		*) echo "$line" ;;
		esac
	done <"$1"
}

fs_workspace "$TMP/ws"
chmod 755 "$TMP"	# the unprivileged user must reach the mount
if ! check "mount" fs_mount "$MNT" "$TMP/cache"; then
	echo "Bail out! cairnfs did not mount"
	exit 1
fi
chmod 755 "$MNT"

timeout 500 "$FS_POSIX" --cairnfs --big 20000 --user 65534:65534 "$MNT" >"$TMP/fs_posix.out" 2>&1
rc=$?
relay "$TMP/fs_posix.out"
check "fs_posix ran to the end (exit status $rc, 1 when a check failed)" \
	test "$rc" -le 1 -a -n "$_plan"
check "and left nothing behind in the mount" test -z "$(ls -A "$MNT")"
check "unmount" fs_umount "$MNT"
finish
