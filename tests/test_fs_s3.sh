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
check "another host told not to wait (lease_wait=0) cannot mount the workspace while it is mounted" \
	sh -c 'CAIRN_HOST_ID=$1 "$5" "$CAIRN_STORE" "$2" -o cache="$3",lease_wait=0 2>"$4"; test $? -ne 0' \
	_ "$HOLDER" "$D/mnt2" "$D/cache2" "$D/err" "$CAIRNFS"
check "and says who holds the lease" grep -q "in use by host $(cat /etc/machine-id)" "$D/err"
check "one that waits 3 s gives up while the holder renews it" \
	sh -c 'CAIRN_HOST_ID=$1 timeout 60 "$5" "$CAIRN_STORE" "$2" -o cache="$3",lease_wait=3s 2>"$4"; test $? -eq 1' \
	_ "$HOLDER" "$D/mnt2" "$D/cache2" "$D/err" "$CAIRNFS"
check "and says whom it waited for" grep -q "waiting for it to be released" "$D/err"
check "and the holder is not touched" test -f "$D/mnt/big"

echo written-on-mount >"$D/mnt/new"
rm "$D/mnt/big.link"
mkdir "$D/mnt/sub/deeper"
fs_tree_sum "$D/mnt" >"$D/want2"
# the next machine starts while this one is still mounted: it waits, and
# gets in once the unmount has taken the last snapshot and released the lease
CAIRN_HOST_ID=$HOLDER timeout 120 "$CAIRNFS" "$CAIRN_STORE" "$D/mnt2" -o cache="$D/cache2" \
	2>"$D/err2" &
next=$!
bg_track $next
echo "$D/mnt2 $D/cache2" >>"$TMP/fs-mounts"
_fs_mounts="$_fs_mounts $D/mnt2"
sleep 1
check "a clean unmount" fs_umount "$D/mnt"
bg_wait $next
check "the next host, waiting meanwhile, mounts once the lease is released" test "$bg_rc" -eq 0
check "it said whom it was waiting for" grep -q "waiting for it to be released" "$D/err2"
fs_tree_sum "$D/mnt2" >"$D/got2"
check "the unmount's last snapshot has every change made on the mount" cmp -s "$D/want2" "$D/got2" ||
	diag "$(diff "$D/want2" "$D/got2")"
check "its unmount is clean" fs_umount "$D/mnt2"

check "a remount of the warm cache" fs_mount "$D/mnt" "$D/cache"
fs_tree_sum "$D/mnt" >"$D/got3"
check "keeps what was written on the mount" cmp -s "$D/want2" "$D/got3" ||
	diag "$(diff "$D/want2" "$D/got3")"
check "and its unmount is clean" fs_umount "$D/mnt"
finish
