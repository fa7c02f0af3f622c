#!/bin/sh
# test_lease.sh - a mount's stop and the lease between machines, on the
# file:// store with real cairnfs processes and short lease times:
# - every order of umount, SIGTERM, SIGINT, SIGHUP and a second signal ends
#   with the changes in a final snapshot, the lease released (a second
#   "machine" takes it at once) and exit 0; nothing is lost on a remount of
#   the same cache either;
# - SIGKILL leaves the lease held: another machine waits it out (expiry
#   plus the margin), or takes over at once when takeover_from names it;
# - a stop while waiting for the lease ends the wait;
# - a mount whose lease another writer took says so in status (text, JSON,
#   metrics), takes it back when the workspace did not move, and stays lost
#   when it did (its unmount then exits 3, the changes kept in its cache);
# - a non-empty mountpoint is refused unless -o nonempty.
. "$CAIRN_SRCDIR/tests/lib.sh"

D=$TMP/lease
mkdir -p "$D/store" "$D/src" "$D/mnt" "$D/mnt2"
CAIRN_STORE=file://$D/store
CAIRN_KEY=file:$D/tenant.key
CAIRN_STATE_DIR=$D/state
CAIRN_RUN_DIR=$D/run
CAIRN_LEASE_TTL=3
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR CAIRN_RUN_DIR CAIRN_LEASE_TTL
unset CAIRN_HOST_ID CAIRN_TAKEOVER_FROM CAIRN_LEASE_WAIT CAIRN_WORKSPACE CAIRN_CONFIG

check "init" sh -c '"$1" init --create-key -q >/dev/null' _ "$CAIRN"
echo base >"$D/src/base"
check "a first snapshot" "$CAIRN" snapshot -q "$D/src"

lease_field() {	# lease_field NAME: acquired or expires of the lease object
	"$CAIRN" cat lease 2>/dev/null | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p"
}
released() { [ -n "$(lease_field expires)" ] && [ "$(lease_field expires)" = "$(lease_field acquired)" ]; }
holder() { "$CAIRN" cat lease 2>/dev/null | sed -n 's/.*"host": *"\([^"]*\)".*/\1/p'; }
generation() { "$CAIRN" cat head 2>/dev/null | sed -n 's/.*"generation": *\([0-9]*\).*/\1/p'; }
exit_of() {	# exit_of PID: waits (30 s at most) for a child; its status in $rc
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 300 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	rc=$?
}

# ---- every stop order: each run writes a file, stops one way ------------
# the daemon runs in the foreground (-f), a child of this shell, so its exit
# status is seen; the mountpoint is checked empty again afterwards
n=0
for how in "umount term" "umount term term" "term" "term term int" "int" "hup" "term umount" \
	"umount int hup"; do
	n=$((n + 1))
	gen=$(generation)
	"$CAIRNFS" "$CAIRN_STORE" "$D/mnt" -f -o cache="$D/c1" 2>"$D/fs.err" &
	pid=$!
	bg_track $pid
	_fs_mounts="$_fs_mounts $D/mnt"
	i=0
	while [ ! -e "$D/mnt/base" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	echo "stop $n" >"$D/mnt/f$n"
	for step in $how; do
		case $step in
		umount) fusermount3 -u "$D/mnt" ;;
		term) kill -TERM $pid ;;
		int) kill -INT $pid ;;
		hup) kill -HUP $pid ;;
		esac
	done
	exit_of $pid
	check "stop by '$how': cairnfs exits 0" test "$rc" -eq 0 || diag "$(tail -5 "$D/fs.err")"
	check "stop by '$how': the lease is released" released
	check "stop by '$how': a final snapshot holds the new file" test "$(generation)" -eq $((gen + 1))
	check "stop by '$how': nothing is left mounted" sh -c '! mountpoint -q "$1"' _ "$D/mnt"
done
rm -rf "$D/new" && mkdir -p "$D/new"
check "a new machine sees every file written before each stop" \
	sh -c '"$1" restore -q latest "$2" && for i in 1 2 3 4 5 6 7 8; do test -f "$2/f$i" || exit 1; done' \
	_ "$CAIRN" "$D/new"
check "and the same cache mounts again with all of them" fs_mount "$D/mnt" "$D/c1"
check "(the remount sees f1 .. f8)" sh -c 'for i in 1 2 3 4 5 6 7 8; do test -f "$1/f$i" || exit 1; done' _ "$D/mnt"
# unmount, and mount the same cache again at once: the new mount waits for
# the old daemon's stop (its final snapshot) instead of being refused
fails=0
i=0
while [ $i -lt 50 ]; do
	# (never into the bare mountpoint: one failure must not cause the next)
	mountpoint -q "$D/mnt" && echo "again $i" >"$D/mnt/again"
	fusermount3 -u "$D/mnt" || fails=$((fails + 1))
	"$CAIRNFS" "$CAIRN_STORE" "$D/mnt" -o cache="$D/c1" 2>>"$D/again.err" || fails=$((fails + 1))
	i=$((i + 1))
done
check "50 times unmount then mount at once: never refused ($fails failures)" test "$fails" -eq 0 ||
	diag "$(sort "$D/again.err" | uniq -c | head -5)"
check "the last write before each unmount is kept" grep -q "again 49" "$D/mnt/again"
gen=$(generation)
check "an unmount with nothing changed" fs_umount "$D/mnt"
check "takes no snapshot" test "$(generation)" -eq "$gen"
check "and releases the lease" released

# ---- SIGKILL: the lease is waited out, or taken over --------------------
check "host A mounts" sh -c 'CAIRN_HOST_ID=vm-a "$1" "$CAIRN_STORE" "$2" -o cache="$3"' \
	_ "$CAIRNFS" "$D/mnt" "$D/ca"
_fs_mounts="$_fs_mounts $D/mnt"
echo "$D/mnt $D/ca" >>"$TMP/fs-mounts"
kill -9 "$(cat "$D/ca/cairnfs.pid")"
fs_force_umount "$D/mnt"
check "after a SIGKILL host A still holds the lease" test "$(holder)" = vm-a
start=$(date +%s)
check "host B waits it out and mounts" sh -c 'CAIRN_HOST_ID=vm-b timeout 60 "$1" "$CAIRN_STORE" "$2" -o cache="$3" 2>"$4"' \
	_ "$CAIRNFS" "$D/mnt2" "$D/cb" "$D/wait.err"
_fs_mounts="$_fs_mounts $D/mnt2"
echo "$D/mnt2 $D/cb" >>"$TMP/fs-mounts"
waited=$(($(date +%s) - start))
check "after saying whom it waits for" grep -q "held by host vm-a .*waiting for it to be released, or to expire" "$D/wait.err"
check "no sooner than the lease's expiry (waited $waited s)" test "$waited" -ge 2
check "and no later than the expiry and the margin, with room (waited $waited s)" test "$waited" -le 30
check "host B holds it now" test "$(holder)" = vm-b
kill -9 "$(cat "$D/cb/cairnfs.pid")"
fs_force_umount "$D/mnt2"
start=$(date +%s)
check "host C told host B is gone (takeover_from) mounts at once" \
	sh -c 'CAIRN_HOST_ID=vm-c timeout 60 "$1" "$CAIRN_STORE" "$2" -o cache="$3",takeover_from=vm-b,lease_wait=0 2>"$4"' \
	_ "$CAIRNFS" "$D/mnt2" "$D/cc" "$D/take.err"
echo "$D/mnt2 $D/cc" >>"$TMP/fs-mounts"
check "and says so" grep -q "taking over the lease .* from host vm-b" "$D/take.err"
check "host C holds it" test "$(holder)" = vm-c
check "takeover_from names one host only: host D is refused at once" \
	sh -c 'CAIRN_HOST_ID=vm-d "$1" "$CAIRN_STORE" "$2" -o cache="$3",takeover_from=vm-b,lease_wait=0 2>/dev/null; test $? -eq 1' \
	_ "$CAIRNFS" "$D/mnt" "$D/cd"

# ---- a stop while waiting for the lease --------------------------------
CAIRN_HOST_ID=vm-e "$CAIRNFS" "$CAIRN_STORE" "$D/mnt" -f -o cache="$D/ce",lease_wait=forever 2>"$D/e.err" &
pid=$!
bg_track $pid
i=0
while [ ! -s "$D/ce/cairnfs.waiting" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "a mount waiting for the lease says so in cairnfs.waiting" grep -q "held by host vm-c" "$D/ce/cairnfs.waiting"
kill -TERM $pid
exit_of $pid
check "SIGTERM ends the wait: exit 1" test "$rc" -eq 1
check "saying it was stopped" grep -q "stopped by SIGTERM while waiting for the lease" "$D/e.err"
check "and the holder keeps its lease" test "$(holder)" = vm-c
check "host C unmounts" fs_umount "$D/mnt2"

# ---- a lost lease, taken back -------------------------------------------
CAIRN_HOST_ID=vm-a "$CAIRNFS" "$CAIRN_STORE" "$D/mnt" -f -o cache="$D/ca2",noprefetch 2>"$D/a2.err" &
a2=$!
bg_track $a2
echo "$D/mnt $D/ca2" >>"$TMP/fs-mounts"
i=0
while [ ! -e "$D/mnt/base" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "a mount on host A" test -e "$D/mnt/base"
check "status: the lease is held" test "$(status_field "$D/mnt" lease.state)" = held
check "the daemon that holds the keys never dumps core" \
	grep -q "^Max core file size *0 *0 " "/proc/$a2/limits"
echo lost-and-found >"$D/mnt/during"
# another writer takes the lease by force and lets it go, the head unmoved
check "another host takes the lease by force (prune --force)" \
	sh -c 'CAIRN_HOST_ID=vm-x "$1" prune --force -q' _ "$CAIRN"
i=0
while [ "$(status_field "$D/mnt" lease.retakes)" != 1 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
check "the mount noticed the loss and took the lease back" test "$(status_field "$D/mnt" lease.retakes)" -eq 1
check "it holds it again" test "$(status_field "$D/mnt" lease.state)" = held
check "its log says both" sh -c 'grep -q "lost the lease" "$1" && grep -q "took the lease of workspace .* back" "$1"' \
	_ "$D/a2.err"
check "a snapshot of the mount works" "$CAIRN" snapshot --mount "$D/mnt" -q

# ---- a lost lease, the workspace moved on: it stays lost ----------------
echo lost-for-good >"$D/mnt/after"
rm -rf "$D/other" && mkdir -p "$D/other" && echo other >"$D/other/x"
check "another host takes the lease by force and commits a snapshot" \
	sh -c 'CAIRN_HOST_ID=vm-x "$1" snapshot --force -q "$2"' _ "$CAIRN" "$D/other"
i=0
while [ "$(status_field "$D/mnt" lease.state)" != lost ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
check "status --json: the lease is lost" test "$(status_field "$D/mnt" lease.state)" = lost
sleep 3	# a few retake rounds: none may succeed
check "and stays lost (the head moved)" test "$(status_field "$D/mnt" lease.state)" = lost
check "status says it in words" sh -c '"$1" status --mount "$2" | grep -q "lease: *LOST"' _ "$CAIRN" "$D/mnt"
check "the metrics say it" sh -c '"$1" status --mount "$2" --prometheus | grep -q "^cairn_lease_lost{.*} 1$"' \
	_ "$CAIRN" "$D/mnt"
check "a snapshot of the mount is refused" sh -c '! "$1" snapshot --mount "$2" -q 2>/dev/null' _ "$CAIRN" "$D/mnt"
fusermount3 -u "$D/mnt"
exit_of $a2
check "its unmount exits 3" test "$rc" -eq 3
check "saying the last changes stay in the cache" \
	grep -q "no final snapshot: .*lease was lost.*cache dir $D/ca2" "$D/a2.err"
check "and the other host's snapshot is the head" sh -c '"$1" restore -q latest "$2/r" && test -f "$2/r/x"' \
	_ "$CAIRN" "$D"
check "the cache with the lost changes is refused until told what to do" \
	sh -c 'CAIRN_HOST_ID=vm-a "$1" "$CAIRN_STORE" "$2" -o cache="$3",lease_wait=0 2>"$4"; test $? -eq 1 && grep -q keep_local_as_snapshot "$4"' \
	_ "$CAIRNFS" "$D/mnt" "$D/ca2" "$D/a.err"

# ---- a command holding the lease: a signal stops it cleanly -------------
mkdir -p "$D/many"
i=0
while [ $i -lt 60 ]; do
	head -c 2000000 /dev/urandom >"$D/many/f$i"
	i=$((i + 1))
done
gen=$(generation)
for sigs in "TERM TERM" "INT"; do
	"$CAIRN" snapshot --force "$D/many" 2>"$D/snap.err" &
	pid=$!
	bg_track $pid
	i=0
	while [ "$(holder)" = "" ] || released; do
		i=$((i + 1))
		[ $i -gt 200 ] && break
		sleep 0.05
	done
	for sig in $sigs; do kill -$sig $pid; done
	exit_of $pid
	check "cairn snapshot stopped by '$sigs' fails" test "$rc" -ne 0 -a "$rc" -lt 128
	check "saying so" grep -q "interrupted by SIG$sig" "$D/snap.err" || diag "$(cat "$D/snap.err")"
	check "having released the lease" released
	check "and committed nothing" test "$(generation)" -eq "$gen"
done
check "the repository is whole" "$CAIRN" check -q

# ---- a mountpoint with files of its own ---------------------------------
mkdir -p "$D/full" && echo mine >"$D/full/mine"
check "a non-empty mountpoint is refused" \
	sh -c '"$1" "$CAIRN_STORE" "$2" -o cache="$3" 2>"$4"; test $? -eq 1' _ "$CAIRNFS" "$D/full" "$D/cf" "$D/full.err"
check "saying why and how to go on" grep -q "is not empty: .*-o nonempty" "$D/full.err"
check "and nothing was taken: the lease is free" released
check "-o nonempty mounts over it" fs_mount "$D/full" "$D/cf" nonempty
check "showing the workspace" test -f "$D/full/x"
check "its unmount" fs_umount "$D/full"
check "and the files of the mountpoint are there again" test -f "$D/full/mine"
finish
