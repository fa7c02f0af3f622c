#!/bin/sh
# snap-tear-loop.sh - the long tier's check that a live snapshot never
# tears a file: while one writer appends checksummed records and another
# rewrites a 1 MiB file in place (all 'A', then all 'B', in one pwrite
# each), ROUNDS (default 40) snapshots are taken through the control
# socket; each is restored and must hold a whole-record prefix of the log
# and one version of the rewritten file.  Bounded: the writers stop after
# 120 s at the latest, every step has its own timeout.  Prints TAP.
. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

rounds=${ROUNDS:-40}
fs_workspace "$TMP/ws"
CAIRN_RUN_DIR=$TMP/run
export CAIRN_RUN_DIR
MNT=$TMP/mnt
W="${PYTHON:-python3} $SRCDIR/tests/snapwriters.py"
mkdir -p "$MNT"

check "mount" fs_mount "$MNT" "$TMP/cache" noprefetch
: >"$MNT/log"
: >"$MNT/flip"
$W append "$MNT/log" "$TMP/stop" >/dev/null & app=$!
bg_track $app
$W rewrite "$MNT/flip" "$TMP/stop" >/dev/null & rw=$!
bg_track $rw
bad=0
taken=0
r=0
while [ $r -lt "$rounds" ]; do
	r=$((r + 1))
	sleep "0.$(shuf -i 0-300 -n 1 | xargs printf '%03d')"
	timeout 60 "$CAIRN" snapshot --mount "$MNT" --json >"$TMP/snap" 2>"$TMP/err" ||
		{ diag "round $r: the snapshot failed: $(cat "$TMP/err")"; bad=$((bad + 1)); continue; }
	id=$(sed 's/.*"snapshot": *"\([0-9a-f]*\)".*/\1/' "$TMP/snap")
	rm -rf "$TMP/r"
	timeout 120 "$CAIRN" restore -q "$id" "$TMP/r" ||
		{ diag "round $r: restore failed"; bad=$((bad + 1)); continue; }
	taken=$((taken + 1))
	$W check-append "$TMP/r/log" >"$TMP/why" &&
		$W check-rewrite "$TMP/r/flip" >>"$TMP/why" ||
		{ diag "round $r: $(cat "$TMP/why") ($(cat "$TMP/snap"))"; bad=$((bad + 1)); }
done
touch "$TMP/stop"
bg_wait $app
bg_wait $rw
check "$taken of $r snapshots taken during two writers, none torn" test $bad -eq 0
fs_umount "$MNT"
finish
