#!/bin/sh
# soak.sh - a bounded soak of a mount, off by default (make soak):
#
#   SOAK_MINUTES=20 tests/long/soak.sh        (from the build dir)
#
# For SOAK_MINUTES (default 20) three agent-like writers (SOAK_WRITERS,
# default "git npm log"; "npm" alone keeps the tree's size constant) work on a cairnfs
# mount -- git commits in a repository, npm-style unpacking of a few
# hundred small files and deletion of the older copy, and appends with
# fsync to a log -- while `cairn snapshot --mount` runs every
# SOAK_SNAP_SECONDS (default 30) through the proxy injecting faults at
# SOAK_FAULT_RATE (default 0.05).  The mount's RSS and open files are
# sampled every 10 s.  At the end: a last snapshot without faults, a full
# restore that compares equal to the mount, check --read-data clean, and
# the bounds: RSS at the end at most the RSS after the first 2 minutes plus
# SOAK_RSS_GROWTH_MB (default 64); open files at most the bound of
# cairnfs's cache of open files (min(1024, RLIMIT_NOFILE / 4)) plus 64.
# Prints TAP and a summary; the samples stay in $SOAK_OUT (default
# /tmp/cairn-soak.csv).
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

minutes=${SOAK_MINUTES:-20}
snap_every=${SOAK_SNAP_SECONDS:-30}
rate=${SOAK_FAULT_RATE:-0.05}
growth_mb=${SOAK_RSS_GROWTH_MB:-64}
out=${SOAK_OUT:-/tmp/cairn-soak.csv}

unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_CONTROL_PLANE CAIRN_CRASH_AFTER_WRITES
CAIRN_CONFIG=$TMP/no-cairn.conf
CAIRN_STATE_DIR=$TMP/state
CAIRN_KEY=file:$TMP/key
CAIRN_STORE=s3://cairn-test/soak
export CAIRN_CONFIG CAIRN_STATE_DIR CAIRN_KEY CAIRN_STORE
GIT_AUTHOR_NAME=soak GIT_AUTHOR_EMAIL=soak@localhost GIT_COMMITTER_NAME=soak GIT_COMMITTER_EMAIL=soak@localhost
export GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL

s3_start
"$CAIRN" init --create-key -q >/dev/null || { echo "Bail out! init failed"; exit 1; }
MNT=$TMP/mnt
mkdir -p "$MNT"
_fs_mounts=$MNT
"$CAIRN" mount "$MNT" --cache "$TMP/cache" -q || { echo "Bail out! mount failed"; exit 1; }
pid=$(cat "$TMP/cache/cairnfs.pid")
start=$(date +%s)
deadline=$((start + minutes * 60))
stop=$TMP/stop

# a package tarball of 300 small files, unpacked again and again
mkdir -p "$TMP/pkg/package/lib"
i=0
while [ $i -lt 300 ]; do
	head -c $((200 + i * 37 % 4000)) /dev/urandom | base64 >"$TMP/pkg/package/lib/m$i.js"
	i=$((i + 1))
done
tar -C "$TMP/pkg" -czf "$TMP/pkg.tgz" package

writer_git() {
	cd "$MNT" && mkdir -p repo && cd repo && git init -q . || return 1
	n=0
	while [ ! -e "$stop" ]; do
		n=$((n + 1))
		echo "change $n $(date +%s%N)" >>"src-$((n % 20)).txt"
		head -c 2000 /dev/urandom | base64 >"blob-$((n % 7)).txt"
		git add -A && git commit -qm "commit $n" || return 1
		sleep 1
	done
}

writer_npm() {
	n=0
	while [ ! -e "$stop" ]; do
		n=$((n + 1))
		mkdir -p "$MNT/node_modules/p$n" && tar -C "$MNT/node_modules/p$n" -xzf "$TMP/pkg.tgz" || return 1
		[ $n -gt 2 ] && rm -rf "$MNT/node_modules/p$((n - 2))"
		sleep 2
	done
}

writer_log() {
	python3 - "$MNT/agent.log" "$stop" <<'EOF'
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
while not os.path.exists(stop):
    n += 1
    os.write(fd, ("record %d %s\n" % (n, "x" * (n % 200))).encode())
    if n % 10 == 0:
        os.fsync(fd)
    time.sleep(0.05)
os.fsync(fd)
os.close(fd)
EOF
}

writers=${SOAK_WRITERS:-git npm log}
wg= wn= wl=
case " $writers " in *" git "*) writer_git >"$TMP/git.log" 2>&1 & wg=$!; bg_track $wg ;; esac
case " $writers " in *" npm "*) writer_npm >"$TMP/npm.log" 2>&1 & wn=$!; bg_track $wn ;; esac
case " $writers " in *" log "*) writer_log >"$TMP/log.log" 2>&1 & wl=$!; bg_track $wl ;; esac

s3_ctl POST "/__proxy/fault?kind=any&prob=$rate&seed=1" >/dev/null
echo "seconds,rss_kb,open_files" >"$out"
snaps=0 snap_fail=0 next_snap=$((start + snap_every)) warm_rss= warm_fd=
while [ "$(date +%s)" -lt $deadline ]; do
	now=$(date +%s)
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
	fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
	[ -n "$rss" ] || { diag "cairnfs (pid $pid) is gone"; break; }
	echo "$((now - start)),$rss,$fds" >>"$out"
	if [ -z "$warm_rss" ] && [ $((now - start)) -ge 120 ]; then
		warm_rss=$rss warm_fd=$fds
	fi
	if [ "$now" -ge $next_snap ]; then
		if timeout 300 "$CAIRN" snapshot --mount "$MNT" -q >"$TMP/snap.out" 2>&1; then
			snaps=$((snaps + 1))
		else
			snap_fail=$((snap_fail + 1))
			diag "snapshot failed: $(head -n 1 "$TMP/snap.out")"
		fi
		next_snap=$((next_snap + snap_every))
	fi
	sleep 10
done
[ -n "$warm_rss" ] || warm_rss=$(sed -n 2p "$out" | cut -d, -f2) warm_fd=$(sed -n 2p "$out" | cut -d, -f3)

touch "$stop"
for w in $wg $wn $wl; do
	bg_wait $w
	[ "$bg_rc" -eq 0 ] || diag "writer $w exited $bg_rc: $(tail -n 2 "$TMP/git.log" "$TMP/npm.log" "$TMP/log.log" | tr '\n' ' ')"
done
faults=$(s3_stat faults)
requests=$(s3_stat requests)
s3_ctl POST /__proxy/reset >/dev/null
check "the mount is up after $minutes minutes" mountpoint -q "$MNT"
check "snapshots every ${snap_every} s through ${rate} faults: $snaps succeeded, $snap_fail failed" test $snaps -gt 0
check "a last snapshot without faults" "$CAIRN" snapshot --mount "$MNT" -q
rss_end=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
fd_end=$(ls "/proc/$pid/fd" | wc -l)
check "a full restore compares equal to the mount" sh -c '"$1" restore latest "$2" -q && diff -r "$3" "$2"' _ "$CAIRN" "$TMP/restored" "$MNT"
check "check --read-data is clean" "$CAIRN" check --read-data -q
check "RSS ${rss_end} kB at the end <= ${warm_rss} kB after 2 minutes + ${growth_mb} MiB" \
	test "$rss_end" -le $((warm_rss + growth_mb * 1024))
# cairnfs keeps at most min(1024, RLIMIT_NOFILE / 4) cache files open (an
# LRU); beyond those, its database, sockets and FUSE take a few dozen
soft=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
fd_bound=$((soft / 4 < 1024 ? soft / 4 : 1024))
fd_bound=$((fd_bound < 16 ? 16 + 64 : fd_bound + 64))
check "open files ${fd_end} at the end <= ${fd_bound} (its cache of open files, bounded, + 64)" test "$fd_end" -le $fd_bound
commits=$(cd "$MNT/repo" 2>/dev/null && git rev-list --count HEAD 2>/dev/null)
records=$(wc -l <"$MNT/agent.log" 2>/dev/null)
max_rss=$(cut -d, -f2 "$out" | sort -n | tail -n 1)
diag "soak: $minutes min, $snaps snapshots ($snap_fail failed), $commits git commits, $records log records," \
	"RSS ${warm_rss} kB at 2 min, ${rss_end} kB at the end, ${max_rss} kB at most; open files $warm_fd -> $fd_end;" \
	"store requests $requests, faults injected $faults"
fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
finish
