#!/bin/sh
# test_fs_full.sh - a full cache disk never costs metadata: with the cache
# on a small tmpfs filled to 512 KiB free, operations that need space get
# ENOSPC (never EIO), those that free it (unlink, removexattr, truncate)
# go through, status says the disk is full, a remount shows every change
# that was answered, and once space is freed the same mount takes new
# writes again.  Reads go on: the atime they would move is dropped.
. "$CAIRN_SRCDIR/tests/lib.sh"

fs_workspace "$TMP/ws"
CAIRN_RUN_DIR=$TMP/run
export CAIRN_RUN_DIR
DISK=$TMP/disk
MNT=$TMP/mnt
CACHE=$DISK/cache
mkdir -p "$DISK"
if ! mount -t tmpfs -o size=48m cairn-test-full "$DISK"; then
	echo "1..0 # SKIP cannot mount a tmpfs here"
	exit 0
fi
# the mounts of cairnfs go first (lib.sh's cleanup would do them after
# this), then the tmpfs, lazily in case the daemon is not gone yet
_cleanup_cmd='fs_force_umount "$MNT"; umount -l "$DISK"'

# op.py OP PATH [ARG]: one system call, prints "ok" or the errno's name
cat >"$TMP/op.py" <<'EOF'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else None
try:
    if op == "setxattr":
        os.setxattr(path, "user.big", bytes([7]) * int(arg))
    elif op == "removexattr":
        os.removexattr(path, "user.big")
    elif op == "rm":
        os.unlink(path)
    elif op == "truncate":
        os.truncate(path, int(arg))
    elif op == "create":
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == "mkdir":
        os.mkdir(path)
    elif op == "write":	# arg bytes, then fsync: the error of either
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, os.urandom(int(arg)))
            os.fsync(fd)
        finally:
            os.close(fd)
    elif op == "read":	# all of it, past the kernel's page cache; prints its atime too
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)
        print("ok", os.stat(path).st_atime_ns)
        sys.exit(0)
    elif op == "fsyncdir":
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
op() { timeout 60 python3 "$TMP/op.py" "$@"; }

# each OP PATH... : the answers, one per path, counted ("12 ok 52 ENOSPC")
each() {
	_op=$1
	_arg=$2
	shift 2
	for _p in "$@"; do
		op "$_op" "$_p" $_arg
	done | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? " " : ""), $1, $2 }'
}

status_field() {	# status_field KEY.SUBKEY: one field of cairn status --json
	"$CAIRN" status --mount "$MNT" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print(json.dumps(v))' "$1"
}

# state: every name, size, mode and user xattr of the tree, and the data
state() {
	(cd "$MNT" && find . -mindepth 1 ! -name scratch | LC_ALL=C sort | while read -r p; do
		printf '%s %s %s %s\n' "$p" "$(stat -c '%F %a %s' "$p")" \
			"$( [ -f "$p" ] && md5sum <"$p" | cut -c1-32)" \
			"$(getfattr --absolute-names -d -e hex "$p" 2>/dev/null | grep -v '^#' | md5sum | cut -c1-8)"
	done)
}

check "mount with the cache on a 48 MiB tmpfs" fs_mount "$MNT" "$CACHE" final_snapshot=no
mkdir "$MNT/keep" "$MNT/del" "$MNT/xa" "$MNT/tr" "$MNT/empty1" "$MNT/empty2"
head -c 300000 /dev/urandom >"$MNT/keep/data"
: >"$MNT/scratch"
for i in $(seq 1 64); do : >"$MNT/del/f$i"; done
for i in $(seq 1 8); do
	: >"$MNT/xa/x$i"
	op setxattr "$MNT/xa/x$i" 65536 >/dev/null
done
for i in 1 2 3 4; do head -c 100000 /dev/urandom >"$MNT/tr/t$i"; done
sync -f "$MNT/keep/data"
check "the tree is committed before the disk fills" test "$(op fsyncdir "$MNT")" = ok

# --- fill the disk ---------------------------------------------------------
avail=$(df -B1 --output=avail "$DISK" | tail -1)
fallocate -l $((avail - 512 * 1024)) "$DISK/filler"
diag "$(df -h "$DISK" | tail -1)"

for i in $(seq 1 64); do
	echo "f$i $(op setxattr "$MNT/del/f$i" 65536)"
done >"$TMP/setxattr"
answers=$(cut -d' ' -f2 "$TMP/setxattr" | sort | uniq -c | tr -s ' \n' ' ')
diag "64 KiB xattrs on 64 files of a full disk:$answers"
check "setxattr on the full disk: ENOSPC once the disk is full, never EIO" \
	sh -c 'case "$1" in *EIO*|*EINTR*) exit 1 ;; *ENOSPC*) exit 0 ;; *) exit 1 ;; esac' _ "$answers"
# the xattrs answered ok on f1..f8 (which are kept) must survive, among
# them those of the commit that found the disk full and was rolled back
grep -E '^f[1-8] ok$' "$TMP/setxattr" | cut -d' ' -f1 >"$TMP/xattrs-set"
check "a new file and a new dir get ENOSPC" \
	test "$(op create "$MNT/keep/new") $(op mkdir "$MNT/keep/newdir")" = "ENOSPC ENOSPC"
# (the kernel's writeback cache took the bytes: until the mount goes it
# shows the file as written, which is why it is left out of the state)
check "a 1 MiB write gets ENOSPC (at write or fsync)" \
	test "$(op write "$MNT/scratch" 1048576)" = ENOSPC
AT_K=$(python3 -c 'import os, sys; print(os.stat(sys.argv[1]).st_atime_ns)' "$MNT/keep/data")
READ_FULL=$(op read "$MNT/keep/data")
check "a read on the full disk succeeds; its atime, with no room to store it, stays" \
	test "$READ_FULL" = "ok $AT_K"
check "status --json: the cache disk is full" test "$(status_field cache.disk_full)" = true
check "status: says so in words" sh -c '"$1" status --mount "$2" | grep -q "^  disk: *FULL"' \
	_ "$CAIRN" "$MNT"
check "status --prometheus: cairn_cache_disk_full 1, and the refusals are counted" sh -c '
	"$1" status --mount "$2" --prometheus >"$3" &&
	grep -q "^cairn_cache_disk_full{.*} 1\$" "$3" &&
	grep -q "^cairn_cache_enospc_total{.*} [1-9]" "$3"' _ "$CAIRN" "$MNT" "$TMP/metrics"

# --- what frees space goes through -----------------------------------------
check "every unlink of the full disk succeeds" \
	test "$(each rm - $(for i in $(seq 9 64); do echo "$MNT/del/f$i"; done))" = "56 ok"
check "every removexattr succeeds" \
	test "$(each removexattr - $(for i in $(seq 1 8); do echo "$MNT/xa/x$i"; done))" = "8 ok"
check "every truncate down succeeds" \
	test "$(each truncate 1000 "$MNT/tr/t1" "$MNT/tr/t2" "$MNT/tr/t3" "$MNT/tr/t4")" = "4 ok"
check "rmdir succeeds" sh -c 'rmdir "$1/empty1" "$1/empty2"' _ "$MNT"
check "and they are committed: fsync of a dir succeeds" test "$(op fsyncdir "$MNT")" = ok
state >"$TMP/before"

check "unmount with the disk still full" fs_umount "$MNT"
check "the log has no lost transaction and no I/O error" \
	sh -c '! grep -E "no transaction is active|Input/output error" "$1"' _ "$CACHE/cairnfs.log" ||
	diag "$(grep -E "error" "$CACHE/cairnfs.log" | head -5)"
check "remount with the disk still full" fs_mount "$MNT" "$CACHE" final_snapshot=no
state >"$TMP/after"
check "the remount shows every change that was answered" cmp -s "$TMP/before" "$TMP/after" ||
	diag "$(diff "$TMP/before" "$TMP/after" | head -10)"
check "status: the disk is still full after the remount" test "$(status_field cache.disk_full)" = true
check "no xattr that was answered ok is lost" sh -c '
	test -s "$1" && while read -r f; do getfattr --absolute-names -n user.big "$2/del/$f" >/dev/null || exit 1; done <"$1"
	' _ "$TMP/xattrs-set" "$MNT"

# --- room again: the same mount takes writes --------------------------------
rm -f "$DISK/filler"
i=0
while [ "$(status_field cache.disk_full)" = true ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
check "once space is freed, status says the disk is not full" \
	test "$(status_field cache.disk_full)" = false
check "and new files, dirs, xattrs and writes work without a remount" \
	test "$(op create "$MNT/keep/new") $(op mkdir "$MNT/keep/newdir") $(op setxattr "$MNT/keep/new" 65536) $(op write "$MNT/keep/new" 4194304)" = "ok ok ok ok"
READ_ROOM=$(op read "$MNT/keep/data")
check "and a read moves the atime again" test "${READ_ROOM#ok }" -gt "${READ_FULL#ok }"
check "status --prometheus: cairn_cache_disk_full 0" sh -c '
	"$1" status --mount "$2" --prometheus | grep -q "^cairn_cache_disk_full{.*} 0\$"' _ "$CAIRN" "$MNT"
check "unmount" fs_umount "$MNT"
finish
