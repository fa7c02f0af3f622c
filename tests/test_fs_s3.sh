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

# ---- deletes are fenced at the store: a prune whose lease another writer
# took while it ran deletes nothing (its own clock says the lease is fine)
mkdir -p "$D/p"
head -c 2000000 /dev/urandom >"$D/p/doomed"
"$CAIRN" snapshot -q "$D/p"
rm "$D/p/doomed" && echo small >"$D/p/small"
"$CAIRN" snapshot -q "$D/p"
"$CAIRN" forget -q --keep-last 1
s3_ctl POST /__proxy/reset >/dev/null
s3_ctl POST "/__proxy/fault?kind=delay:4000&method=PUT&key=/index/" >/dev/null
CAIRN_HOST_ID=vm-p "$CAIRN" prune 2>"$D/prune.err" &
prune=$!
bg_track $prune
sleep 2
check "another host takes the lease by force while the prune writes its index" \
	sh -c 'CAIRN_HOST_ID=vm-q "$1" forget -q --keep-last 100 --force' _ "$CAIRN"
bg_wait $prune
check "the prune fails" test "$bg_rc" -eq 1
check "saying the lease was taken over and nothing is deleted" grep -q "taken over by another writer: nothing is deleted" "$D/prune.err" ||
	diag "$(cat "$D/prune.err")"
check "and it deleted nothing" test "$(s3_stat ops.DeleteObjects)" -le 0 -a "$(s3_stat ops.DeleteObject)" -le 0
check "a prune now does its work" "$CAIRN" prune -q
check "the repository is whole" "$CAIRN" check -q

# ---- a restore raced by someone who can write in the target: a directory
# swapped for a symlink (and the temp file moved along) while the packs
# download leads no write outside the target
rm -rf "$D/race" && mkdir -p "$D/race/a" "$D/outside"
head -c 300000 /dev/urandom >"$D/race/a/payload"
chmod 777 "$D/race/a"
chmod 700 "$D/outside"
"$CAIRN" snapshot -q "$D/race"
s3_ctl POST /__proxy/reset >/dev/null
s3_ctl POST "/__proxy/fault?kind=delay:3000&method=GET&key=/data/&count=100" >/dev/null
"$CAIRN" restore latest "$D/target" 2>"$D/race.err" &
rst=$!
bg_track $rst
i=0
while ! ls "$D/target/a/".cairn-restore-* >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
mv "$D/target/a" "$D/target/a.moved"
ln -s "$D/outside" "$D/target/a"
mv "$D/target/a.moved/".cairn-restore-* "$D/outside/"
bg_wait $rst
s3_ctl POST /__proxy/reset >/dev/null
check "the raced restore fails" test "$bg_rc" -eq 1
check "naming the directory it could not reach" grep -q "target/a.*\(took its place\|Not a directory\|Too many levels\)" "$D/race.err" ||
	diag "$(cat "$D/race.err")"
check "nothing was written, chmod'ed or renamed outside the target" \
	sh -c 'test ! -e "$1/payload" && test "$(stat -c %a "$1")" = 700' _ "$D/outside"
finish
