#!/bin/sh
# test_fs_differential.sh - thousands of random operations on the mount and
# on a plain local directory side by side (tests/fsrandom.py): every result
# and errno must agree, and the two trees must agree every 250 operations,
# at the end, and again after an unmount and a remount of the warm cache.
. "$CAIRN_SRCDIR/tests/lib.sh"

fs_workspace "$TMP/ws"
MNT=$TMP/mnt
SEEDS=${FS_RANDOM_SEEDS:-"11 12 13 14"}
OPS=${FS_RANDOM_OPS:-8000}

py_check() {	# py_check ARGS...: fsrandom.py's lines become checks
	timeout 300 python3 "$SRCDIR/tests/fsrandom.py" "$@" >"$TMP/rand.out" 2>&1
	rc=$?
	tap_relay "$TMP/rand.out"
	[ "$rc" -le 1 ] || check "fsrandom.py $* ran to the end (exit $rc)" false
}

check "mount" fs_mount "$MNT" "$TMP/cache"
for s in $SEEDS; do
	py_check --seed "$s" --ops "$OPS" "$MNT/r$s" "$TMP/ref/r$s"
done
check "unmount" fs_umount "$MNT"
check "remount of the warm cache" fs_mount "$MNT" "$TMP/cache"
for s in $SEEDS; do
	py_check --compare-only "$MNT/r$s" "$TMP/ref/r$s"
done
check "and the last unmount is clean" fs_umount "$MNT"
finish
