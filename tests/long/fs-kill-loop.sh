#!/bin/sh
# fs-kill-loop.sh - the long tier's crash loop for cairnfs: a writer works
# on the mount (appends with fsync, atomic replace by rename with a dir
# fsync, creates, unlinks, renames) while cairnfs is killed with SIGKILL at
# a random moment, ROUNDS times (default 200).  After each kill the same
# cache is mounted again and checked: every record the writer saw fsync'd
# is there, the replaced file holds a whole version at least as new as the
# last one made durable, and every file of the tree stats and reads to its
# size.  Bounded: each round has its own timeouts.  Prints TAP.
. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

rounds=${ROUNDS:-200}
fs_workspace "$TMP/ws"
MNT=$TMP/mnt
CACHE=$TMP/cache
mkdir -p "$MNT"

cat >"$TMP/writer.py" <<'PY'
import os, random, sys
d, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
os.makedirs(os.path.join(d, "log"), exist_ok=True)
fds = [os.open(os.path.join(d, "log", "w%d" % i), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
       for i in range(3)]
n = int(open(os.path.join(d, "next")).read()) if os.path.exists(os.path.join(d, "next")) else 0
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
while True:
    op = rnd.random()
    if op < 0.5:
        fd = rnd.choice(fds)
        os.write(fd, (b"record %08d " % n) + b"x" * rnd.randrange(0, 3000) + b"\n")
        os.fsync(fd)
        print("rec", fds.index(fd), n, flush=True)
    elif op < 0.7:
        tmp = os.path.join(d, "state.tmp")
        body = (b"state %08d\n" % n) * rnd.randrange(1, 400)
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(d, "state"))
        os.fsync(dfd)
        print("state", n, flush=True)
    elif op < 0.9:
        p = os.path.join(d, "junk%d" % rnd.randrange(50))
        with open(p, "wb") as f:
            f.write(os.urandom(rnd.randrange(0, 200000)))
    else:
        a, b = (os.path.join(d, "junk%d" % rnd.randrange(50)) for _ in range(2))
        try:
            if rnd.random() < 0.5:
                os.unlink(a)
            else:
                os.rename(a, b)
        except FileNotFoundError:
            pass
    n += 1
    with open(os.path.join(d, "next.tmp"), "w") as f:
        f.write(str(n))
    os.rename(os.path.join(d, "next.tmp"), os.path.join(d, "next"))
PY

cat >"$TMP/verify.py" <<'PY'
import os, sys
d, log = sys.argv[1], sys.argv[2]
recs, state = {}, -1
for line in open(log):
    w = line.split()
    if w and w[0] == "rec":
        recs.setdefault(int(w[1]), set()).add(int(w[2]))
    elif w and w[0] == "state":
        state = int(w[1])
bad = []
for i, want in recs.items():
    have = set()
    for line in open(os.path.join(d, "log", "w%d" % i), "rb"):
        if line.startswith(b"record "):
            have.add(int(line.split()[1]))
    lost = want - have
    if lost:
        bad.append("w%d lost fsync'd records %s" % (i, sorted(lost)[:5]))
if state >= 0:
    lines = open(os.path.join(d, "state"), "rb").read().splitlines()
    vals = {int(l.split()[1]) for l in lines if l.startswith(b"state ")}
    if len(vals) != 1 or len(lines) != sum(1 for l in lines if l.startswith(b"state ")):
        bad.append("state is torn: %d lines, versions %s" % (len(lines), sorted(vals)[:4]))
    elif min(vals) < state:
        bad.append("state went back: %d < %d" % (min(vals), state))
for root, dirs, files in os.walk(d):
    for f in files:
        p = os.path.join(root, f)
        size = os.lstat(p).st_size
        got = len(open(p, "rb").read())
        if got != size:
            bad.append("%s: stat says %d bytes, read gives %d" % (p, size, got))
print("; ".join(bad) if bad else "ok")
sys.exit(1 if bad else 0)
PY

i=0
: >"$TMP/journal"
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	if ! timeout 60 "$CAIRNFS" "$CAIRN_STORE" "$MNT" -o cache="$CACHE" 2>"$TMP/mount.err"; then
		check "round $i: remount after the kill" false
		diag "$(cat "$TMP/mount.err")"
		break
	fi
	echo "$MNT $CACHE" >>"$TMP/fs-mounts"
	_fs_mounts="$_fs_mounts $MNT"
	res=$(timeout 120 python3 "$TMP/verify.py" "$MNT" "$TMP/journal" 2>&1)
	check "round $i: every fsync'd byte is back and the tree reads whole" test "$res" = ok ||
		diag "$res"
	[ "$res" = ok ] || break
	pid=$(fs_pid "$MNT")
	timeout 30 python3 "$TMP/writer.py" "$MNT" "$i" >>"$TMP/journal" 2>/dev/null &
	wpid=$!
	bg_track "$wpid"
	sleep "$(python3 -c "import random; print(random.uniform(0.05, 1.5))")"
	kill -9 "$pid"
	bg_wait "$wpid"
	fs_force_umount "$MNT"
	while kill -0 "$pid" 2>/dev/null && ! grep -q '^[^ ]* [^ ]* Z' "/proc/$pid/stat" 2>/dev/null; do
		sleep 0.05
	done
done
timeout 60 "$CAIRNFS" "$CAIRN_STORE" "$MNT" -o cache="$CACHE" &&
	echo "$MNT $CACHE" >>"$TMP/fs-mounts" && _fs_mounts="$_fs_mounts $MNT"
check "the last remount verifies too" test "$(timeout 120 python3 "$TMP/verify.py" "$MNT" "$TMP/journal")" = ok
check "and unmounts cleanly" fs_umount "$MNT"
finish
