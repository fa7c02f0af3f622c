#!/bin/sh
# test_fs_s3.sh - cairnfs on an S3 store (s3rver behind the verifying
# proxy): an empty cache is filled from the head snapshot, the workspace
# lease is held while mounted and released at unmount, and what is written
# on the mount survives an unmount and a remount of the same cache.
. "$CAIRN_SRCDIR/tests/lib.sh"

s3_start
D=$TMP/fs3
mkdir -p "$D/src/sub" "$D/mnt"
CAIRN_STORE=s3://cairn-test/fs
CAIRN_KEY=file:$D/tenant.key
CAIRN_STATE_DIR=$D/state
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR

check "init on S3" sh -c '"$1" init --create-key -q >/dev/null' _ "$CAIRN"
head -c 3000000 /dev/urandom >"$D/src/big"
echo small >"$D/src/sub/f"
ln "$D/src/big" "$D/src/big.link"
ln -s sub/f "$D/src/l"
chmod 0750 "$D/src/sub"
check "a snapshot of a plain dir" "$CAIRN" snapshot -q "$D/src"
fs_tree_sum "$D/src" >"$D/want"

check "cairnfs mounts with an empty cache" fs_mount "$D/mnt" "$D/cache"
fs_tree_sum "$D/mnt" >"$D/got"
check "the mount shows the head snapshot" cmp -s "$D/want" "$D/got" ||
	diag "$(diff "$D/want" "$D/got")"
check "hard links come back as one inode" \
	test "$(stat -c %i "$D/mnt/big")" = "$(stat -c %i "$D/mnt/big.link")"

HOLDER=other-vm
mkdir -p "$D/mnt2"
check "another host cannot mount the workspace while it is mounted" \
	sh -c 'CAIRN_HOST_ID=$1 "$5" "$CAIRN_STORE" "$2" -o cache="$3" 2>"$4"; test $? -ne 0' \
	_ "$HOLDER" "$D/mnt2" "$D/cache2" "$D/err" "$CAIRNFS"
check "and says the lease is held" grep -q lease "$D/err"

echo written-on-mount >"$D/mnt/new"
rm "$D/mnt/big.link"
mkdir "$D/mnt/sub/deeper"
fs_tree_sum "$D/mnt" >"$D/want2"
check "a clean unmount" fs_umount "$D/mnt"
check "the lease is released at unmount: another host mounts" \
	sh -c 'CAIRN_HOST_ID=$1 "$4" "$CAIRN_STORE" "$2" -o cache="$3"' \
	_ "$HOLDER" "$D/mnt2" "$D/cache2" "$CAIRNFS"
echo "$D/mnt2 $D/cache2" >>"$TMP/fs-mounts"
_fs_mounts="$_fs_mounts $D/mnt2"
fs_tree_sum "$D/mnt2" >"$D/got2"
check "a second cache is filled from the store too" cmp -s "$D/want" "$D/got2"
check "its unmount is clean" fs_umount "$D/mnt2"

check "a remount of the warm cache" fs_mount "$D/mnt" "$D/cache"
fs_tree_sum "$D/mnt" >"$D/got3"
check "keeps what was written on the mount" cmp -s "$D/want2" "$D/got3" ||
	diag "$(diff "$D/want2" "$D/got3")"
check "and its unmount is clean" fs_umount "$D/mnt"
finish
