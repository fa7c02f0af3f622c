#!/bin/sh
# test_fidelity.sh - what a snapshot keeps of a tree, checked through every
# way back: `cairn restore`, a lazy mount on a new cache, and a live
# snapshot of that mount restored elsewhere.  Hard links of every kind of
# non-directory (regular files, symlinks, fifos, devices), with names in
# several directories, come back as one inode with the right link count;
# a sparse file comes back as sparse (its allocated blocks within a few
# KiB of the original), restored, read lazily and hydrated; the workspace
# root keeps its own mode, owner, times and xattrs (a restore into a target
# that has entries keeps the target's).
. "$CAIRN_SRCDIR/tests/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root: device nodes and mounts"
	exit 0
fi
D=$TMP/fid
mkdir -p "$D/store" "$D/src/d" "$D/mnt"
CAIRN_STORE=file://$D/store
CAIRN_KEY=file:$D/tenant.key
CAIRN_STATE_DIR=$D/state
CAIRN_RUN_DIR=$D/run
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR CAIRN_RUN_DIR
unset CAIRN_WORKSPACE CAIRN_CONFIG CAIRN_HOST_ID

check "init" sh -c '"$1" init --create-key -q >/dev/null' _ "$CAIRN"
echo content >"$D/src/file"
ln "$D/src/file" "$D/src/d/file2"
ln -s somewhere "$D/src/sl"
ln "$D/src/sl" "$D/src/sl2"
ln "$D/src/sl" "$D/src/d/sl3"
mkfifo "$D/src/ff"
ln "$D/src/ff" "$D/src/d/ff2"
mknod "$D/src/dev" c 1 3
ln "$D/src/dev" "$D/src/dev2"
truncate -s 64M "$D/src/sparse.img"
printf 'x' | dd of="$D/src/sparse.img" bs=1 seek=33554432 conv=notrunc 2>/dev/null
printf 'tail' | dd of="$D/src/sparse.img" bs=1 seek=67108000 conv=notrunc 2>/dev/null
# allocated KiB of a file; "sparse" when within 64 KiB of the source's
kib() { du -k "$1" | cut -f1; }
sparse_like() { [ "$(kib "$1")" -le $(($(kib "$D/src/sparse.img") + 64)) ] ||
	{ diag "$1: $(kib "$1") KiB allocated, the source $(kib "$D/src/sparse.img") KiB"; false; }; }

cmp_text() {	# cmp_text FILE TEXT: FILE holds TEXT (and a diagnostic if not)
	printf '%s\n' "$2" | cmp -s "$1" - || { diag "want: $(cat "$1")" "got:  $2"; false; }
}

# links DIR: each name with its link count and the first name of its inode
links() {
	(cd "$1" && find . -mindepth 1 ! -type d -printf '%i %p %n\n' | LC_ALL=C sort -k2 |
		awk '{ if (!($1 in first)) first[$1] = $2; print $2, $3, first[$1] }')
}
links "$D/src" >"$D/want"
# the root's own metadata, set last (every entry made in it changes its times)
root_meta() { stat -c '%a %u:%g %y' "$1" && getfattr --only-values -n user.root "$1" 2>&1; echo; }
chown 1234:5678 "$D/src"
chmod 1777 "$D/src"
setfattr -n user.root -v "the root's own" "$D/src"
touch -d "2001-02-03 04:05:06.123456789" "$D/src"
root_meta "$D/src" >"$D/want-root"
mkdir -m 0700 "$D/full"
echo mine >"$D/full/mine"
chown 42:43 "$D/full"
stat -c '%a %u:%g' "$D/full" >"$D/want-full"
check "a snapshot of the tree" "$CAIRN" snapshot -q "$D/src"
check "cairn restore" "$CAIRN" restore -q --privileged latest "$D/r"
links "$D/r" >"$D/got-restore"
check "restore: every hard link of every kind, one inode each" cmp -s "$D/want" "$D/got-restore" ||
	diag "$(diff "$D/want" "$D/got-restore")"
check "restore: the root's mode, owner, times and xattrs" cmp_text "$D/want-root" "$(root_meta "$D/r")"
check "restore into a target with entries" "$CAIRN" restore -q latest "$D/full"
check "which keeps the target's own mode and owner" cmp_text "$D/want-full" "$(stat -c '%a %u:%g' "$D/full")"
check "restore: the sparse file's bytes" cmp -s "$D/src/sparse.img" "$D/r/sparse.img"
check "restore: and its holes" sparse_like "$D/r/sparse.img"
check "a lazy mount on a new cache" fs_mount "$D/mnt" "$D/cache" noprefetch
links "$D/mnt" >"$D/got-mount"
check "lazy mount: the same" cmp -s "$D/want" "$D/got-mount" || diag "$(diff "$D/want" "$D/got-mount")"
check "lazy mount: the root's mode, owner, times and xattrs" cmp_text "$D/want-root" "$(root_meta "$D/mnt")"
cache_file() {	# the cache file of a mounted file, by its inode number
	_ino=$(stat -c %i "$1")
	echo "$D/cache/data/$(printf '%02x' $((_ino & 255)))/$_ino"
}
check "lazy read: the sparse file's bytes" cmp -s "$D/src/sparse.img" "$D/mnt/sparse.img"
check "lazy read: its cache file keeps the holes" sparse_like "$(cache_file "$D/mnt/sparse.img")"
check "hydrate --wait" "$CAIRN" hydrate --mount "$D/mnt" --wait -q
check "hydrated: the cache file still keeps them" sparse_like "$(cache_file "$D/mnt/sparse.img")"
check "and the mount shows a sparse file" sparse_like "$D/mnt/sparse.img"
ln "$D/mnt/ff" "$D/mnt/ff3"
ln "$D/mnt/sl" "$D/mnt/d/sl4"
links "$D/mnt" >"$D/want2"
chown 4321:8765 "$D/mnt"
chmod 2750 "$D/mnt"
setfattr -n user.root -v "changed on the mount" "$D/mnt"
touch -d "2002-03-04 05:06:07.5" "$D/mnt"
root_meta "$D/mnt" >"$D/want2-root"
check "a live snapshot after new links on the mount" "$CAIRN" snapshot --mount "$D/mnt" -q
check "its unmount" fs_umount "$D/mnt"
check "restore of the live snapshot" "$CAIRN" restore -q --privileged latest "$D/r2"
links "$D/r2" >"$D/got-live"
check "live snapshot: the same as on the mount" cmp -s "$D/want2" "$D/got-live" ||
	diag "$(diff "$D/want2" "$D/got-live")"
check "live snapshot: the sparse file restores sparse" sparse_like "$D/r2/sparse.img"
check "live snapshot: the root's mode, owner, times and xattrs" cmp_text "$D/want2-root" "$(root_meta "$D/r2")"
check "cairn check: the top trees agree with their snapshots" "$CAIRN" check -q
finish
