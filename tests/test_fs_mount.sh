#!/bin/sh
# test_fs_mount.sh - the ways a cairnfs mount is made and used: `cairn
# mount` (detached and --foreground), cairnfs called directly, mount.fuse3
# and an fstab line, umount; a warm cache resumes, an empty one is filled
# from the latest snapshot; git and an npm-style tree unpack inside the
# mount; the daemon under RLIMIT_NOFILE 256; kill -9 during fsync'd writes;
# atime under relatime, strictatime and noatime, through an unmount.
. "$CAIRN_SRCDIR/tests/lib.sh"

D=$TMP/m
fs_workspace "$D"
MNT=$D/mnt
mkdir -p "$MNT"

remember() {	# remember MOUNTPOINT CACHE: a mount made without fs_mount
	echo "$1 $2" >>"$TMP/fs-mounts"
	_fs_mounts="$_fs_mounts $1"
}

mounted() { mountpoint -q "$1"; }

# ---- cairn mount, detached and in the foreground ----
check "cairn mount returns once mounted" "$CAIRN" mount "$MNT" --cache "$D/c1"
remember "$MNT" "$D/c1"
check "the mount is there when it returns" mounted "$MNT"
check "its type is fuse.cairnfs" \
	sh -c 'awk -v m="$1" '\''$2 == m { print $3 }'\'' /proc/mounts | grep -qx fuse.cairnfs' _ "$MNT"
echo one >"$MNT/one"
mkdir "$MNT/dir"
ln -s one "$MNT/link"
ln "$MNT/one" "$MNT/dir/hard"
setfattr -n user.note -v kept "$MNT/one"
chmod 0640 "$MNT/one"
touch -d '2001-02-03 04:05:06.123456789' "$MNT/one"
stat -c '%n %a %h %s %y' "$MNT/one" "$MNT/dir/hard" >"$D/stat1"
pid=$(cat "$D/c1/cairnfs.pid")
check "umount unmounts cleanly" sh -c 'umount "$1"' _ "$MNT"
check "and the daemon exits" fs_wait_exit "$pid"
check "having committed and said so in its log" grep -q "metadata committed" "$D/c1/cairnfs.log"
_fs_mounts=

check "cairn mount --foreground runs until unmounted" sh -c '
	"$1" mount "$2" --cache "$3" --foreground 2>"$4" &
	pid=$!
	i=0
	until mountpoint -q "$2"; do
		i=$((i + 1)); [ $i -gt 100 ] && { kill $pid; exit 1; }
		sleep 0.1
	done
	fusermount3 -u "$2" && wait $pid' _ "$CAIRN" "$MNT" "$D/c1" "$D/fg.err"
check "a warm cache resumes: content, mode, times, links, xattrs" sh -c '
	"$1" mount "$2" --cache "$3" || exit 1
	stat -c "%n %a %h %s %y" "$2/one" "$2/dir/hard" | cmp -s - "$4" &&
	test "$(cat "$2/dir/hard")" = one && test "$(readlink "$2/link")" = one &&
	test "$(getfattr --only-values -n user.note "$2/one" 2>/dev/null)" = kept' \
	_ "$CAIRN" "$MNT" "$D/c1" "$D/stat1"
remember "$MNT" "$D/c1"
mkdir -p "$D/other"
check "a second cairnfs on the same cache is refused, even with force" \
	sh -c '! "$1" "$CAIRN_STORE" "$2" -o cache="$3",force 2>"$4" &&
		grep -q "cache dir .* is in use by another cairnfs" "$4"' \
	_ "$CAIRNFS" "$D/other" "$D/c1" "$D/err2"
check "and the first one still holds the lease" sh -c '! "$1" "$CAIRN_STORE" "$2" -o cache="$3" 2>"$4" &&
		grep -q "lease" "$4"' _ "$CAIRNFS" "$D/other" "$D/c9" "$D/err3"
check "fusermount3 -u unmounts cleanly" fs_umount "$MNT"

# ---- an empty cache is filled from the latest snapshot ----
SRC=$D/src
mkdir -p "$SRC/sub/deep"
head -c 5000000 /dev/urandom >"$SRC/random.bin"
printf 'hello\n' >"$SRC/sub/deep/f"
ln "$SRC/random.bin" "$SRC/sub/random.link"
ln -s ../random.bin "$SRC/sub/sym"
setfattr -n user.x -v y "$SRC/sub/deep/f"
chmod 0750 "$SRC/sub"
touch -d '2010-01-01 00:00:00' "$SRC/sub/deep/f"
mkfifo "$SRC/fifo"
check "a snapshot of a plain dir" "$CAIRN" snapshot -q "$SRC"
check "a mount with a new, empty cache" fs_mount "$MNT" "$D/c2"
check "shows the snapshot's files, bit for bit" \
	diff -r --no-dereference -x fifo "$SRC" "$MNT"
tree_stat() {	# names, types, modes, link counts, sizes of files, mtimes
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
		if [ -f "$p" ] && ! [ -L "$p" ]; then
			stat -c "%n %F %a %h %s %Y" "$p"
		else
			stat -c "%n %F %a %Y" "$p"
		fi
	done)
}
tree_stat "$SRC" >"$D/src.stat"
tree_stat "$MNT" >"$D/mnt.stat"
check "with modes, times, link counts and types (a fifo too)" cmp -s "$D/src.stat" "$D/mnt.stat" ||
	diag "$(diff "$D/src.stat" "$D/mnt.stat")"
check "and xattrs" test "$(getfattr --only-values -n user.x "$MNT/sub/deep/f" 2>/dev/null)" = y

# ---- git inside the mount ----
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t \
	GIT_COMMITTER_EMAIL=t@example.com GIT_CONFIG_NOSYSTEM=1 HOME=$D
G=$MNT/repo
mkdir "$G"
(cd "$G" && git init -q && for i in $(seq 1 200); do
	mkdir -p "d$((i % 7))" && echo "line $i" >"d$((i % 7))/f$i.txt"
done && git add -A && git commit -qm first) >/dev/null 2>&1
check "git init, add, commit in the mount" sh -c 'git -C "$1" rev-parse -q --verify HEAD >/dev/null' _ "$G"
check "git status is clean after the commit" test -z "$(git -C "$G" status --porcelain)"
echo changed >>"$G/d1/f1.txt"
check "git status sees a change" test "$(git -C "$G" status --porcelain)" = " M d1/f1.txt"
(cd "$G" && git commit -qam second) >/dev/null 2>&1
check "git clone inside the mount" git clone -q "$G" "$MNT/clone"
check "the clone has the second commit" test "$(git -C "$MNT/clone" log --oneline | wc -l)" -eq 2
check "git fsck is clean on both" sh -c 'git -C "$1" fsck --strict 2>/dev/null && git -C "$2" fsck --strict 2>/dev/null' \
	_ "$G" "$MNT/clone"
check "git gc (packs, renames, deletes) keeps the repo whole" \
	sh -c 'git -C "$1" gc -q && git -C "$1" fsck --strict 2>/dev/null' _ "$MNT/clone"

# ---- an npm-style tree: many small files, nested node_modules, symlinks ----
python3 - "$D/npm" <<'PY'
import os, random, sys
root, rnd = sys.argv[1], random.Random(4)
for p in range(150):
    pkg = os.path.join(root, "node_modules", "@s%d" % (p % 9) if p % 3 == 0 else "", "pkg%d" % p)
    for f in range(rnd.randrange(5, 25)):
        d = os.path.join(pkg, *["lib%d" % rnd.randrange(3) for _ in range(rnd.randrange(0, 3))])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%d.js" % f), "wb") as fh:
            fh.write(rnd.randbytes(rnd.randrange(0, 9000)))
    with open(os.path.join(pkg, "package.json"), "w") as fh:
        fh.write('{"name": "pkg%d", "version": "1.0.%d"}\n' % (p, p))
    os.makedirs(os.path.join(root, "node_modules", ".bin"), exist_ok=True)
    os.symlink(os.path.join("..", os.path.relpath(pkg, os.path.join(root, "node_modules")), "package.json"),
               os.path.join(root, "node_modules", ".bin", "pkg%d" % p))
PY
tar -C "$D/npm" -cf "$D/npm.tar" .
check "an npm-style tarball unpacks into the mount" sh -c 'mkdir "$2/app" && tar -C "$2/app" -xf "$1"' \
	_ "$D/npm.tar" "$MNT"
check "and matches the tree on local disk" diff -r --no-dereference "$D/npm" "$MNT/app"
check "rm -rf of it leaves nothing" sh -c 'rm -rf "$1/app" && ! test -e "$1/app"' _ "$MNT"
check "the mount unmounts cleanly" fs_umount "$MNT"

# ---- the daemon under RLIMIT_NOFILE 256, serving thousands of files ----
check "cairnfs starts under RLIMIT_NOFILE 256" \
	prlimit --nofile=256:256 "$CAIRNFS" "$CAIRN_STORE" "$MNT" -o cache="$D/c3"
remember "$MNT" "$D/c3"
check "its limit is 256" sh -c 'grep -q "^Max open files *256 *256" /proc/$(cat "$1/cairnfs.pid")/limits' \
	_ "$D/c3"
python3 - "$MNT/many" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(3000):
    d = os.path.join(root, "d%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % i), "w") as f:
        f.write("file %d\n" % i * (1 + i % 50))
PY
check "3000 files written under it" test "$(find "$MNT/many" -type f | wc -l)" -eq 3000
check "and every one reads back right" python3 -c '
import os, sys
root = sys.argv[1]
fds = []
for i in range(3000):
    p = os.path.join(root, "d%02d" % (i % 40), "f%04d" % i)
    if open(p).read() != "file %d\n" % i * (1 + i % 50):
        sys.exit("%s differs" % p)
# and 500 files held open at once by the reader: the daemon is not the limit
for i in range(500):
    fds.append(os.open(os.path.join(root, "d%02d" % (i % 40), "f%04d" % i), os.O_RDONLY))
for i, fd in enumerate(fds):
    if os.read(fd, 100)[:5] != b"file ":
        sys.exit("fd %d reads wrong" % i)
' "$MNT/many"
check "the daemon holds fewer than 128 fds" \
	test "$(ls /proc/$(cat "$D/c3/cairnfs.pid")/fd | wc -l)" -lt 128
check "and unmounts cleanly" fs_umount "$MNT"

# ---- kill -9 during fsync'd writes: every fsync'd byte is back ----
cat >"$D/writer.py" <<'PY'
import os, sys
d = sys.argv[1]
fds = [os.open(os.path.join(d, "w%d" % i), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) for i in range(4)]
n = 0
while True:
    for fd in fds:
        os.write(fd, b"%08d %s\n" % (n, b"r" * (n % 700)))
        os.fsync(fd)
    print(n, flush=True)
    n += 1
PY
cat >"$D/verify.py" <<'PY'
import os, sys
d, last = sys.argv[1], int(sys.argv[2])
for i in range(4):
    seen = [int(l.split()[0]) for l in open(os.path.join(d, "w%d" % i), "rb")]
    if seen[: last + 1] != list(range(last + 1)):
        sys.exit("w%d: records 0..%d are not all there (%d lines)" % (i, last, len(seen)))
PY
for round in 1 2 3; do
	fs_mount "$MNT" "$D/c4" || break
	mkdir -p "$MNT/k$round"
	pid=$(fs_pid "$MNT")
	: >"$D/wlog"	# empty before the writer starts: the wait below reads it
	timeout 20 python3 "$D/writer.py" "$MNT/k$round" >>"$D/wlog" 2>/dev/null &
	w=$!
	bg_track $w
	# kill it once the writer is under way (a loaded machine starts slowly)
	i=0
	while [ "$(wc -l <"$D/wlog")" -lt $((round * 3)) ] && [ $i -lt 200 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	sleep 0.$((round * 2))
	kill -9 "$pid"
	bg_wait $w
	fs_force_umount "$MNT"
	fs_wait_exit "$pid"
	last=$(tail -n 1 "$D/wlog")
	check "kill -9 round $round: the writer got going" test -n "$last"
	check "kill -9 round $round: the same cache mounts again" fs_mount "$MNT" "$D/c4"
	check "kill -9 round $round: records 0..$last fsync'd before the kill are all there" \
		python3 "$D/verify.py" "$MNT/k$round" "${last:-0}"
	check "kill -9 round $round: and it unmounts cleanly" fs_umount "$MNT"
done

# ---- bad input: one line, a non-zero exit, nothing mounted ----
one_line_err() {	# one_line_err WANT_RC PATTERN CMD...: fails as told, says so in one line
	_want=$1 _pat=$2
	shift 2
	"$@" >"$TMP/bad.out" 2>"$TMP/bad.err"
	_rc=$?
	[ "$_rc" -eq "$_want" ] && [ "$(wc -l <"$TMP/bad.err")" -ge 1 ] &&
		grep -q "$_pat" "$TMP/bad.err" && ! mounted "$MNT" ||
		{ diag "exit $_rc: $(cat "$TMP/bad.err")"; return 1; }
}
check "cairnfs without a mountpoint: usage, exit 2" one_line_err 2 usage "$CAIRNFS" "$CAIRN_STORE"
check "cairnfs on a missing mountpoint" one_line_err 1 "mountpoint .*No such file" \
	"$CAIRNFS" "$CAIRN_STORE" "$D/missing" -o cache="$D/c6"
check "cairn mount on a file" one_line_err 1 "not a directory" "$CAIRN" mount "$D/writer.py"
check "cairnfs with a wrong tenant key" one_line_err 1 "key" \
	sh -c '"$1" init --create-key -q --key "file:$3" --store "file://$4" >/dev/null &&
		exec "$2" "$CAIRN_STORE" "$5" -o key="file:$3",cache="$6"' \
	_ "$CAIRN" "$CAIRNFS" "$D/other.key" "$D/other-store" "$MNT" "$D/c6"
check "cairnfs with a store URL of an unknown scheme" one_line_err 1 "ftp" \
	"$CAIRNFS" "ftp://example/x" "$MNT" -o cache="$D/c6"
check "cairnfs with an unknown -o option" one_line_err 1 "unknown option" \
	"$CAIRNFS" "$CAIRN_STORE" "$MNT" -o cache="$D/c6",bogus_option
mkdir -p "$D/ws2"
check "a cache dir of another workspace is refused" sh -c '
	export CAIRN_STORE=file://$1/store2 CAIRN_STATE_DIR=$1/state2
	"$2" init -q >/dev/null || exit 1
	! "$3" "$CAIRN_STORE" "$4" -o cache="$5" 2>"$6" && grep -q "belongs to workspace" "$6"' \
	_ "$D/ws2" "$CAIRN" "$CAIRNFS" "$MNT" "$D/c4" "$D/err4"
check "and nothing is mounted after any of them" test "$(grep -c " $MNT " /proc/mounts)" -eq 0

# ---- atime: relatime by default, strictatime and noatime on request ----
ns() {	# ns FILE atime|mtime|ctime: that time in nanoseconds
	python3 -c 'import os, sys; print(getattr(os.stat(sys.argv[1]), "st_%s_ns" % sys.argv[2]))' "$1" "$2"
}
read_uncached() {	# read_uncached FILE: a read the kernel's page cache cannot serve
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.read(fd, 4096)
os.close(fd)' "$1"
}
reads_move_atime() {	# reads_move_atime FILE NS: cat FILE until its atime passes NS (5 s at most)
	_i=0
	while [ $_i -lt 25 ]; do
		cat "$1" >/dev/null || return 1
		[ "$(ns "$1" atime)" -gt "$2" ] && return 0
		_i=$((_i + 1))
		sleep 0.2
	done
	diag "atime $(ns "$1" atime), not past $2"
	return 1
}
atime_is() {	# atime_is MODE: cairn status says the mount's atime mode is MODE
	test "$(status_field "$MNT" atime)" = "$1" || { diag "atime: $(status_field "$MNT" atime)"; return 1; }
}
mount_noatime() {	# mounts with -o noatime; cairn status and the kernel's flags say so
	fs_mount "$MNT" "$D/ca" noatime && atime_is noatime &&
		awk -v m="$MNT" '$2 == m { print $4 }' /proc/mounts | grep -q noatime
}
atimes_left() {	# atimes_left MODE: under MODE, f and its dir keep $AT_F and $AT_DA
	atime_is "$1" && test "$(ns "$MNT/at/f" atime)" -eq "$AT_F" -a "$(ns "$MNT/at" atime)" -eq "$AT_DA"
}
atime_refusals() {	# two atime modes at once, and an unknown one, in one line each
	one_line_err 1 "exclude each other" \
		"$CAIRNFS" "$CAIRN_STORE" "$MNT" -o cache="$D/ca",noatime,strictatime &&
	one_line_err 1 "unknown option" "$CAIRNFS" "$CAIRN_STORE" "$MNT" -o cache="$D/ca",lazyatime
}
check "-o relatime (the default) is accepted" fs_mount "$MNT" "$D/ca" relatime
# (not on the mountpoint's own dir when the mount failed: later mounts need it empty)
mounted "$MNT" && mkdir "$MNT/at" && echo "read me" >"$MNT/at/f"
AT_0=$(ns "$MNT/at/f" atime)
sleep 1
# (the kernel's coarse clock may stamp the write's mtime before the create's
# atime: the times are compared with a margin, not with each other)
check "relatime: a file read a second after it was written gets a new atime" \
	reads_move_atime "$MNT/at/f" $((AT_0 + 500000000))
AT_1=$(ns "$MNT/at/f" atime)
read_uncached "$MNT/at/f"
cat "$MNT/at/f" >/dev/null
check "relatime: a second read right after leaves it" \
	test "$AT_1" -gt $((AT_0 + 500000000)) -a "$(ns "$MNT/at/f" atime)" -eq "$AT_1"
python3 -c 'import os, sys, time
old = time.time_ns() - 3 * 86400 * 10**9
os.utime(sys.argv[1], ns=(old, old))' "$MNT/at/f"
AT_C=$(ns "$MNT/at/f" ctime)
check "relatime: atime set back three days (so at or before ctime), a read moves it to now" \
	reads_move_atime "$MNT/at/f" "$AT_C"
touch "$MNT/at/new"
AT_D=$(ns "$MNT/at" mtime)
ls "$MNT/at" >/dev/null
check "relatime: listing a directory moves its atime" test "$(ns "$MNT/at" atime)" -gt "$AT_D"
AT_F=$(ns "$MNT/at/f" atime)
AT_DA=$(ns "$MNT/at" atime)
check "umount" fs_umount "$MNT"
check "-o noatime is accepted; cairn status and /proc/mounts say noatime" mount_noatime
check "the atimes reads set survive the unmount" \
	test "$AT_F" -gt "$(ns "$MNT/at/f" ctime)" -a "$(ns "$MNT/at/f" atime)" -eq "$AT_F" \
	-a "$(ns "$MNT/at" atime)" -eq "$AT_DA"
chmod 0644 "$MNT/at/f"	# its next read would move atime under relatime
AT_F=$(ns "$MNT/at/f" atime)
sleep 0.5
cat "$MNT/at/f" >/dev/null
read_uncached "$MNT/at/f"
ls "$MNT/at" >/dev/null
check "noatime: reads and listings leave atimes as they are" atimes_left noatime
check "umount" fs_umount "$MNT"
check "-o strictatime,nodiratime is accepted" fs_mount "$MNT" "$D/ca" strictatime,nodiratime
check "and cairn status says so" atime_is strictatime,nodiratime
check "strictatime: a read moves the atime" reads_move_atime "$MNT/at/f" "$(ns "$MNT/at/f" atime)"
check "strictatime: and a second read moves it again" \
	reads_move_atime "$MNT/at/f" "$(ns "$MNT/at/f" atime)"
AT_S=$(ns "$MNT/at/f" atime)
read_uncached "$MNT/at/f"
check "strictatime: a read past the kernel's page cache moves it at once" \
	test "$(ns "$MNT/at/f" atime)" -gt "$AT_S"
AT_DA=$(ns "$MNT/at" atime)
ls "$MNT/at" >/dev/null
check "nodiratime: listing a directory leaves its atime" test "$(ns "$MNT/at" atime)" -eq "$AT_DA"
check "umount" fs_umount "$MNT"
check "-o noatime,strictatime is refused in one line, as an unknown option still is" atime_refusals

# ---- init = yes: the first mount makes a workspace of a pinned id ----
cat >"$D/init.conf" <<EOF
[workspace auto]
store = file://$D/init-store
workspace = ws-made-on-mount
key = $CAIRN_KEY
EOF
cp "$D/init.conf" "$D/noinit.conf"
echo "init = yes" >>"$D/init.conf"
# the section names store and key: the environment's must not win
conf_mount() {	# conf_mount CONF CACHE: cairnfs of [workspace auto]
	remember "$MNT" "$2"
	env -u CAIRN_STORE -u CAIRN_KEY "$CAIRNFS" auto "$MNT" -o conf="$1",cache="$2"
}
check "without init, a workspace id that does not exist is refused" one_line_err 1 "does not exist" \
	conf_mount "$D/noinit.conf" "$D/c7"
check "with init = yes, the first mount makes it" conf_mount "$D/init.conf" "$D/c7"
check "and it is empty" test -z "$(ls -A "$MNT")"
echo "made on the first machine" >"$MNT/first.txt"
check "a snapshot of it" env -u CAIRN_STORE -u CAIRN_KEY "$CAIRN" snapshot --mount "$MNT" -q
check "umount" fs_umount "$MNT"
check "another machine (a new cache) opens the same workspace, not a new one" sh -c '
	env -u CAIRN_STORE -u CAIRN_KEY "$1" auto "$2" -o conf="$3",cache="$4" &&
		grep -q "first machine" "$2/first.txt"' _ "$CAIRNFS" "$MNT" "$D/init.conf" "$D/c8"
remember "$MNT" "$D/c8"
check "umount" fs_umount "$MNT"
check "the workspace has one identity and one data key" \
	test "$(find "$D/init-store/tenants/default/workspaces/ws-made-on-mount/keys" -type f | wc -l)" -eq 2
cp "$D/noinit.conf" "$D/strict.conf"
echo "atime = strictatime" >>"$D/strict.conf"
check "cairn.conf's atime = strictatime sets the mount's mode" conf_mount "$D/strict.conf" "$D/c8"
check "(cairn status says strictatime)" atime_is strictatime
check "umount" fs_umount "$MNT"
check "and an -o option wins over it" conf_mount "$D/strict.conf,noatime" "$D/c8"
check "(cairn status says noatime)" atime_is noatime
check "umount" fs_umount "$MNT"
cp "$D/noinit.conf" "$D/lazy.conf"
echo "atime = lazyatime" >>"$D/lazy.conf"
check "atime = lazyatime in cairn.conf is refused, in one line" one_line_err 1 "is not relatime, strictatime or noatime" \
	conf_mount "$D/lazy.conf" "$D/c8"
check "cairn-keyadm verify opens them" "${CAIRN_BUILDDIR:-.}/cairn-keyadm" verify \
	--store "file://$D/init-store" --key "$CAIRN_KEY" -q

# ---- mount.fuse3: mount -t fuse.cairnfs, and an fstab line ----
# mount(8) runs its helpers with a fixed PATH, so cairnfs must be in one of
# its dirs, as `make install` puts it; for the test, a link while it runs.
LINK=
for dir in /usr/local/sbin /usr/local/bin; do
	if [ ! -e "$dir/cairnfs" ] && [ -d "$dir" ]; then
		LINK=$dir/cairnfs
		_cleanup_files="$_cleanup_files $LINK"
		ln -s "$CAIRNFS" "$LINK" && break
	fi
done
KEYOPT=key=$CAIRN_KEY,cache=$D/c5
check "mount -t fuse.cairnfs SOURCE MOUNTPOINT -o key=...,cache=...,strictatime" \
	mount -t fuse.cairnfs "$CAIRN_STORE" "$MNT" -o "$KEYOPT,strictatime"
remember "$MNT" "$D/c5"
check "strictatime reaches cairnfs" atime_is strictatime
check "it is a cairnfs mount with the snapshot in it" cmp -s "$SRC/random.bin" "$MNT/random.bin"
check "umount" fs_umount "$MNT"
printf '%s %s fuse.cairnfs %s,noatime,_netdev,noauto 0 0\n' "$CAIRN_STORE" "$MNT" "$KEYOPT" >"$D/fstab"
check "the fstab line has the shape cairnfs(8) shows" \
	grep -q "^s3://my-bucket/cairn /workspace fuse.cairnfs key=file:.*,cache=.*,_netdev 0 0$" \
	"$CAIRN_SRCDIR/man/cairnfs.8"
check "mount MOUNTPOINT with that fstab line (mount -T)" mount -T "$D/fstab" "$MNT"
remember "$MNT" "$D/c5"
check "the fstab mount serves the workspace" cmp -s "$SRC/random.bin" "$MNT/random.bin"
check "with the fstab line's noatime" atime_is noatime
check "and unmounts cleanly" fs_umount "$MNT"
[ -n "$LINK" ] && rm -f "$LINK"
finish
