#!/bin/sh
# test_fs_random.sh - tests/fs_random on a cairnfs mount beside a local
# directory: the same random operations on both with every result, errno
# and byte read compared, the whole trees compared every 200 operations and
# at the end, and again after an unmount and a remount of the same cache
# (data and metadata survive); one run fsyncs every change, one drops the
# kernel's caches as it goes.  FS_RANDOM_SEEDS and FS_RANDOM_OPS override
# the seeds and the length of the main runs.
. "$CAIRN_SRCDIR/tests/lib.sh"

FS_RANDOM=${CAIRN_BUILDDIR:-.}/tests/fs_random
SEEDS=${FS_RANDOM_SEEDS:-"1 2 3 4"}
OPS=${FS_RANDOM_OPS:-6000}
MNT=$TMP/mnt

if [ ! -x "$FS_RANDOM" ]; then
	echo "Bail out! $FS_RANDOM is not built (make tests/fs_random)"
	exit 1
fi

# run_random ARGS...: runs fs_random; its TAP lines become checks here, its
# diagnostics pass through, and its exit status is one more check.
run_random() {
	"$FS_RANDOM" "$@" >"$TMP/rand.out" 2>"$TMP/rand.err"
	rc=$?
	tap_relay "$TMP/rand.out"
	[ -s "$TMP/rand.err" ] && head -20 "$TMP/rand.err" | sed 's/^/# /'
	check "fs_random $* exits 0" test "$rc" -eq 0
}

# The reference must do everything asked of the mount: a $TMPDIR on tmpfs
# has no FALLOC_FL_ZERO_RANGE, so those calls are left out there.
SKIP=
mkdir -p "$TMP/ref"
: >"$TMP/ref/probe"
if ! fallocate -z -l 4096 "$TMP/ref/probe" 2>/dev/null; then
	diag "the reference dir ($TMP/ref) has no fallocate ZERO_RANGE: not tested"
	SKIP="--skip zero_range"
fi
rm -f "$TMP/ref/probe"

fs_workspace "$TMP/ws"
if ! check "mount" fs_mount "$MNT" "$TMP/cache"; then
	finish
	exit 1
fi
for s in $SEEDS; do
	run_random $SKIP --seed "$s" --ops "$OPS" "$MNT/x$s" "$TMP/ref/x$s"
done
# with an fsync after every change: the same agreement, and the daemon's
# fsync and fsyncdir paths on every kind of change
run_random $SKIP --seed 100 --ops 1000 --fsync "$MNT/fsync" "$TMP/ref/fsync"
# with the kernel's caches dropped every 25 operations, so that lookups,
# attributes and data come from the daemon, not from the kernel's copy
run_random $SKIP --seed 200 --ops 2000 --drop-caches 25 "$MNT/drop" "$TMP/ref/drop"
check "unmount" fs_umount "$MNT"
check "remount of the same cache" fs_mount "$MNT" "$TMP/cache"
for s in $SEEDS; do
	run_random --compare-only "$MNT/x$s" "$TMP/ref/x$s"
done
run_random --compare-only "$MNT/fsync" "$TMP/ref/fsync"
run_random --compare-only "$MNT/drop" "$TMP/ref/drop"
check "and the last unmount is clean" fs_umount "$MNT"
finish
