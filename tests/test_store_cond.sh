#!/bin/sh
# test_store_cond.sh - cairn on S3 servers that honour conditional writes
# their own way, or not at all, played by the test proxy's modes
# (tests/s3/README.md): with Ceph RGW's rules init, snapshots, restore, a
# mount with a live snapshot, forget --prune and check all work; a store
# that ignores conditions is refused by init, snapshot and mount with one
# line, before anything is written; the override lets them through with a
# warning; selftest gives the real reason; the probe's result is kept.
. "$CAIRN_SRCDIR/tests/lib.sh"

s3_start --mode s3rver
D=$TMP/cond
mkdir -p "$D/src/sub" "$D/mnt"
echo hello >"$D/src/f"
head -c 300000 /dev/urandom >"$D/src/sub/r"
CAIRN_KEY=file:$D/tenant.key
CAIRN_LEASE_TTL=6	# renewed (If-Match) every 2 s while mounted, with room for a slow machine
export CAIRN_KEY CAIRN_LEASE_TTL

mode() { s3_ctl POST "/__proxy/mode?$1" >/dev/null; }
run() {	# run CMD...: cairn with stdout/stderr kept, $rc set
	"$CAIRN" "$@" >"$D/out" 2>"$D/err"
	rc=$?
}
show() { cat "$D/out" "$D/err" | sed 's/^/# /'; }
objects() {	# objects PREFIX: how many objects the server holds under PREFIX
	find "$TMP/s3/cairn-test/$1" -name '*._S3rver_object' 2>/dev/null | wc -l
}
one_line() { test "$(wc -l <"$D/err")" -eq 1; }
refused() {	# the one line that refuses a store ignoring conditional writes
	one_line && grep -q 'does not honour conditional writes (it ignores If-None-Match: \*, and it ignores If-Match)' "$D/err" &&
		grep -q "$S3_ENDPOINT" "$D/err" && grep -q 'unsafe_no_conditional_writes = yes' "$D/err" &&
		grep -q 'CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1' "$D/err"
}
warned() {	# the command went on, with the override's warning
	[ "$rc" -eq 0 ] && one_line &&
		grep -q 'warning: .* does not honour conditional writes .*going on because unsafe_no_conditional_writes.*overwrite each other' "$D/err"
}
failed_refused() { [ "$rc" -eq 1 ] && refused; }

# --- a server that ignores conditional writes (plain s3rver) ---------------
CAIRN_STORE=s3://cairn-test/plain
CAIRN_STATE_DIR=$D/state-plain
export CAIRN_STORE CAIRN_STATE_DIR

run init --create-key
check "s3rver: init is refused (exit 1)" test "$rc" -eq 1 || show
check "with one line: what it ignores, where, what to do" refused || show
check "and nothing was written" test "$(objects plain)" -eq 0
check "and no probe result kept" test ! -e "$D/state-plain/store-probes" -o -z "$(ls "$D/state-plain/store-probes" 2>/dev/null)"

run selftest --store s3://cairn-test/st
check "s3rver: selftest fails" test "$rc" -eq 1 || show
check "and says why: the server ignores conditional writes" \
	grep -q 'failed: conditional writes: .*it ignores If-None-Match: \*, and it ignores If-Match' "$D/err" || show
check "not a stale, unrelated message" sh -c "! grep -qi 'authentication\|altered' '$D/err'" || show
check "and selftest leaves nothing behind" test "$(objects st)" -eq 0

CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1 run init --create-key
check "s3rver: init with CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1 goes on" test "$rc" -eq 0 || show
check "with one warning that names the risk" warned || show
CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1 run snapshot "$D/src"
check "s3rver: a snapshot with the override goes on, warning" warned || show
run snapshot "$D/src"
check "s3rver: a snapshot without it is refused" test "$rc" -eq 1 || show
check "with the same one line" refused || show
printf '[workspace w]\nstore = %s\nkey = %s\nunsafe_no_conditional_writes = yes\n' \
	"$CAIRN_STORE" "$CAIRN_KEY" >"$D/unsafe.conf"
run snapshot -c "$D/unsafe.conf" "$D/src"
check "s3rver: unsafe_no_conditional_writes = yes in cairn.conf does the same" warned || show
printf '[workspace w]\nstore = %s\nunsafe_no_conditional_writes = maybe\n' "$CAIRN_STORE" >"$D/bad.conf"
run ls -c "$D/bad.conf"
check "a bad value of it is refused, naming file:line" \
	sh -c "[ $rc -eq 1 ] && grep -q 'bad.conf:3:.*unsafe_no_conditional_writes = maybe.*yes or no' '$D/err'" || show

run mount "$D/mnt" --cache "$D/cache-plain"
check "s3rver: a mount is refused" test "$rc" -ne 0 || show
check "saying why" grep -q 'does not honour conditional writes' "$D/err" "$D/cache-plain/cairnfs.log" || show
check "and nothing is mounted" sh -c "! mountpoint -q '$D/mnt'"
_fs_mounts="$_fs_mounts $D/mnt"
echo "$D/mnt $D/cache-plain" >>"$TMP/fs-mounts"
CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1 run mount "$D/mnt" --cache "$D/cache-plain"
check "s3rver: with the override it mounts" test "$rc" -eq 0 || show
check "and warns" grep -q 'going on because unsafe_no_conditional_writes' "$D/err"
check "and unmounts cleanly" fs_umount "$D/mnt"

# --- Ceph RGW's rules: If-Match only without quotes --------------------------
mode preset=rgw
CAIRN_STORE=s3://cairn-test/rgw
CAIRN_STATE_DIR=$D/state-rgw
export CAIRN_STORE CAIRN_STATE_DIR
run selftest --store s3://cairn-test/st
check "rgw: selftest passes" test "$rc" -eq 0 || show
check "and says which form of If-Match works" grep -q 'If-Match with the ETag without quotes' "$D/out" || show
run init --create-key
check "rgw: init" test "$rc" -eq 0 || show
check "without a warning" test ! -s "$D/err" || show
check "rgw: the probe's result is kept for the machine" \
	grep -q '^if-match bare$' "$D/state-rgw/store-probes/"*
run snapshot "$D/src"
check "rgw: a first snapshot (lease taken with If-None-Match, released with If-Match)" \
	sh -c "[ $rc -eq 0 ] && [ ! -s '$D/err' ]" || show
echo more >"$D/src/g"
run snapshot "$D/src"
check "rgw: a second snapshot (the head replaced with If-Match)" \
	sh -c "[ $rc -eq 0 ] && [ ! -s '$D/err' ]" || show
run restore latest "$D/restored"
check "rgw: restore" test "$rc" -eq 0 || show
check "rgw: gives the tree back" diff -r "$D/src" "$D/restored"

_fs_mounts="$_fs_mounts $D/mnt"
echo "$D/mnt $D/cache-rgw" >>"$TMP/fs-mounts"
run mount "$D/mnt" --cache "$D/cache-rgw"
check "rgw: a lazy mount" test "$rc" -eq 0 || show
check "rgw: shows the tree" cmp -s "$D/src/sub/r" "$D/mnt/sub/r"
echo live >"$D/mnt/live"
sleep 5		# two renewals with If-Match
run snapshot --mount "$D/mnt"
check "rgw: a live snapshot of the mount" test "$rc" -eq 0 || show
check "rgw: the lease was renewed, never lost" sh -c "! grep -q 'lost the lease\|cannot renew' '$D/cache-rgw/cairnfs.log'" ||
	sed 's/^/# /' "$D/cache-rgw/cairnfs.log"
check "rgw: unmount" fs_umount "$D/mnt"
run forget --keep-last 1 --prune
check "rgw: forget --prune" test "$rc" -eq 0 || show
run check --read-data
check "rgw: check --read-data is clean" test "$rc" -eq 0 || show

# The result kept: a command that finds it does not probe again.  (With the
# server now ignoring conditions, a probe would refuse it.)
mode preset=s3rver
run snapshot "$D/src"
check "kept result: no probe, the snapshot goes on" test "$rc" -eq 0 || show
CAIRN_STATE_DIR=$D/state-fresh run snapshot "$D/src"
check "a machine without it probes, and refuses" failed_refused || show

# --- R2's rules ---------------------------------------------------------------
mode preset=r2
run selftest --store s3://cairn-test/st
check "r2: selftest names the quoted form" grep -q 'If-Match with the quoted ETag' "$D/out" || show
finish
