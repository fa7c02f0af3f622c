#!/bin/sh
# test_crash.sh - crash points: each writing operation (snapshot, forget +
# prune, rewrap, reencrypt, a live snapshot of a mount, and init) is killed with
# SIGKILL right after its 1st, 2nd, ... write to the store
# (CAIRN_CRASH_AFTER_WRITES), from the same starting state every time, until
# a run gets through.  After each kill: `cairn check` is clean, the latest
# snapshot restores bit for bit to the last committed tree (the old one or
# the new one, nothing else), the operation run again finishes, and the end
# state is right.  The mount's case also throws the cache away (a lost VM):
# what comes back is exactly the last committed snapshot.  file:// store, so
# that the starting state is a directory copy.  Prints TAP.
#
# CRASH_STORE=s3 runs it on s3rver through the proxy instead, and
# CRASH_WORKSPACES=N gives the tenant N workspaces (default 3) for rewrap
# to work through: the long tier runs both, for over 200 kills.
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"
KEYADM=${CAIRN_BUILDDIR:-.}/cairn-keyadm

unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID CAIRN_CONTROL_PLANE \
	CAIRN_CRASH_AFTER_WRITES CAIRN_STORE CAIRN_KEY
CAIRN_CONFIG=$TMP/no-cairn.conf
export CAIRN_CONFIG

start=$(date +%s)
section() { diag "--- $1 ($(($(date +%s) - start)) s)"; }
eq() { [ "$1" = "$2" ] || { diag "'$1' != '$2'"; false; }; }

# tree_sum DIR: names, modes, sizes and contents, as one digest
tree_sum() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %m\n' | sort &&
		find . -type f -print0 | sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16
}

# A tree v1, and v2 = v1 with changes (so that a snapshot of v2 has new
# packs, and forgetting v1 leaves something for prune).
mk_tree() {	# mk_tree DIR SEED
	python3 - "$1" "$2" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
for d in range(4):
    p = os.path.join(root, "d%d" % d)
    os.makedirs(p, exist_ok=True)
    for f in range(15):
        with open(os.path.join(p, "f%02d" % f), "wb") as out:
            out.write(r.randbytes(r.randint(0, 40000)))
with open(os.path.join(root, "big.bin"), "wb") as out:
    out.write(r.randbytes(3 * 1024 * 1024))
EOF
}
V1=$TMP/v1
V2=$TMP/v2
mk_tree "$V1" 1
cp -a "$V1" "$V2"
mk_tree "$V2/new" 2
rm -f "$V2/d0/f00" "$V2/d1/f01"
echo "changed" >"$V2/d2/f02"
SUM1=$(tree_sum "$V1")
SUM2=$(tree_sum "$V2")

case ${CRASH_STORE:-file} in
s3)
	s3_start
	STORE_URL=s3://cairn-test/crash
	STORE_DIR=$TMP/s3/cairn-test/crash
	;;
*)
	STORE_URL=file://$TMP/store
	STORE_DIR=$TMP/store
	;;
esac
CAIRN_STORE=$STORE_URL
CAIRN_KEY=file:$TMP/k1
CAIRN_STATE_DIR=$TMP/state
CAIRN_TENANT=crash
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR CAIRN_TENANT
"$KEYADM" kek create --out "$TMP/k1" -q
"$KEYADM" kek create --out "$TMP/k2" -q

# The starting state of every round: workspace W with snapshot v1, and
# more workspaces of the tenant (for rewrap).
W=$("$CAIRN" init --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace"])')
export CAIRN_WORKSPACE=$W
i=1
while [ $i -lt "${CRASH_WORKSPACES:-3}" ]; do
	"$CAIRN" init --workspace "ws-$i" -q >/dev/null
	i=$((i + 1))
done
"$CAIRN" snapshot "$V1" -q || { echo "Bail out! the first snapshot failed"; exit 1; }
save_base() {
	rm -rf "$TMP/base"
	mkdir -p "$TMP/base"
	cp -a "$STORE_DIR" "$TMP/base/store"
	cp -a "$TMP/state" "$TMP/base/state"
}
back_to_base() {
	rm -rf "$STORE_DIR" "$TMP/state"
	cp -a "$TMP/base/store" "$STORE_DIR"
	cp -a "$TMP/base/state" "$TMP/state"
}
save_base

# restores_to SUM...: the latest snapshot restores to one of these trees
restores_to() {
	rm -rf "$TMP/r"
	"$CAIRN" restore latest "$TMP/r" -q 2>"$TMP/r.err" || { sed 's/^/# /' "$TMP/r.err"; return 1; }
	_got=$(tree_sum "$TMP/r")
	for _s in "$@"; do
		[ "$_got" = "$_s" ] && return 0
	done
	diag "restored tree $_got is none of: $*"
	return 1
}

# crash_points NAME AFTER-SUMS FINAL-SUM CMD...: the loop described above.
# AFTER-SUMS: the trees the latest snapshot may restore to after a kill
# (space separated); FINAL-SUM: after the run that gets through.
crash_points() {
	_name=$1 _after=$2 _final=$3
	shift 3
	_k=0 _bad=0 _rounds=0
	while [ $_k -lt 200 ]; do
		_k=$((_k + 1))
		back_to_base
		CAIRN_CRASH_AFTER_WRITES=$_k "$@" >"$TMP/op.out" 2>&1
		_rc=$?
		[ $_rc -eq 137 ] || break
		_rounds=$((_rounds + 1))
		# after the kill (a rewrap killed half way opens with neither
		# tenant key alone: it is checked after its rerun only)
		if [ -n "${MIDCHECK_SKIP:-}" ]; then
			:
		elif ! "$CAIRN" check -q >"$TMP/c.out" 2>&1; then
			diag "$_name, killed after write $_k: check is not clean:"
			sed 's/^/# /' "$TMP/c.out" | head -5
			_bad=$((_bad + 1))
			continue
		fi
		# shellcheck disable=SC2086
		if [ -z "${MIDCHECK_SKIP:-}" ] && ! restores_to $_after; then
			diag "$_name, killed after write $_k: the latest snapshot is not a committed tree"
			_bad=$((_bad + 1))
			continue
		fi
		# a lost VM: a machine with no state dir sees the same
		rm -rf "$TMP/fresh-state"
		# shellcheck disable=SC2086
		if [ -z "${MIDCHECK_SKIP:-}" ] &&
			! (CAIRN_STATE_DIR=$TMP/fresh-state && export CAIRN_STATE_DIR && restores_to $_after); then
			diag "$_name, killed after write $_k: a machine with no state dir restores something else"
			_bad=$((_bad + 1))
			continue
		fi
		# the same operation again finishes
		rm -rf "$TMP/rf"
		if ! "$@" >"$TMP/op.out" 2>&1; then
			diag "$_name, killed after write $_k: the rerun failed:"
			sed 's/^/# /' "$TMP/op.out" | head -5
			_bad=$((_bad + 1))
			continue
		fi
		if ! CAIRN_KEY=${FINAL_KEY:-$CAIRN_KEY} "$CAIRN" check -q >"$TMP/c.out" 2>&1 ||
			! CAIRN_KEY=${FINAL_KEY:-$CAIRN_KEY} sh -c '"$1" restore latest "$2" -q' _ "$CAIRN" "$TMP/rf" ||
			[ "$(tree_sum "$TMP/rf")" != "$_final" ]; then
			diag "$_name, killed after write $_k: after the rerun the state is wrong"
			_bad=$((_bad + 1))
		fi
	done
	check "$_name: a run with no kill gets through (after $((_k - 1)) writes)" test $_rc -eq 0
	check "$_name: killed after each of its $_rounds writes, then run again: check clean, committed trees only (with and without the state dir), the rerun finishes right" \
		test $_bad -eq 0 -a $_rounds -gt 0
	total_rounds=$((total_rounds + _rounds))
}
total_rounds=0

section "snapshot"
crash_points snapshot "$SUM1 $SUM2" "$SUM2" "$CAIRN" snapshot "$V2" -q

section "forget + prune"
"$CAIRN" snapshot "$V2" -q && save_base
crash_points "forget + prune" "$SUM2" "$SUM2" sh -c '"$1" forget --keep-last 1 -q && "$1" prune -q' _ "$CAIRN"

section "rewrap"
MIDCHECK_SKIP=1 FINAL_KEY=file:$TMP/k2
crash_points rewrap "$SUM2" "$SUM2" env -u CAIRN_WORKSPACE "$KEYADM" rewrap --from "$TMP/k1" --to "$TMP/k2" -q
MIDCHECK_SKIP= FINAL_KEY=
check "rewrap: afterwards every key of the tenant opens with the new tenant key" env -u CAIRN_WORKSPACE "$KEYADM" verify --key "$TMP/k2" -q
check "rewrap: and none with the old one" sh -c '! env -u CAIRN_WORKSPACE "$1" verify --key "$2" -q 2>/dev/null' _ "$KEYADM" "$TMP/k1"

section "dek rotate + reencrypt --retire"
back_to_base
"$KEYADM" dek rotate --key "$TMP/k1" -q
echo "after the rotation" >"$V2/rotated.txt"
SUM3=$(tree_sum "$V2")
"$CAIRN" snapshot "$V2" -q && save_base
crash_points "reencrypt --retire" "$SUM3" "$SUM3" "$KEYADM" reencrypt --key "$TMP/k1" --retire -q
check "reencrypt: afterwards check --read-data is clean" "$CAIRN" check --read-data -q

# $1 is a running process, not a zombie
pid_alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
		! grep -q '^[^ ]* [^ ]* Z' "/proc/$1/stat" 2>/dev/null
}

section "a live snapshot of a mount, and a lost VM"
back_to_base
BT=$TMP/base-tree
"$CAIRN" restore latest "$BT" -q || diag "cannot restore the starting tree"
MNT=$TMP/mnt
mkdir -p "$MNT"
_fs_mounts=$MNT
n=0 bad=0 rounds=0
while [ $n -lt 100 ]; do
	n=$((n + 1))
	back_to_base
	rm -rf "$TMP/cache"
	# the mount's own writes: its lease (1), then the live snapshot's
	CAIRN_CRASH_AFTER_WRITES=$((n + 1)) "$CAIRN" mount "$MNT" --cache "$TMP/cache" --no-prefetch -q ||
		{ diag "mount failed"; bad=$((bad + 1)); break; }
	pid=$(cat "$TMP/cache/cairnfs.pid" 2>/dev/null)
	echo "written on the mount, round $n" >"$MNT/live.txt"
	sync "$MNT/live.txt"
	"$CAIRN" snapshot --mount "$MNT" -q >"$TMP/op.out" 2>&1
	src=$?
	# A killed cairnfs closes the control socket before it is gone from
	# /proc: when the snapshot failed, give its death a moment to show.
	w=0
	while [ $src -ne 0 ] && [ $w -lt 50 ] && pid_alive "$pid"; do
		sleep 0.1
		w=$((w + 1))
	done
	if pid_alive "$pid"; then
		# the snapshot got through without a kill: done
		fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
		check "live snapshot: a run with no kill gets through (after $((n - 1)) writes)" test $src -eq 0 ||
			sed 's/^/# /' "$TMP/op.out"
		break
	fi
	rounds=$((rounds + 1))
	fusermount3 -uz "$MNT" 2>/dev/null
	# the same VM back, its cache kept: it mounts again with its write,
	# whether or not the killed snapshot's head write had landed
	if ! "$CAIRN" mount "$MNT" --cache "$TMP/cache" -q -o final_snapshot=no 2>"$TMP/re.err" ||
		! grep -q "round $n\$" "$MNT/live.txt" 2>/dev/null; then
		diag "live snapshot killed after write $n: the same cache does not mount again with its write: $(cat "$TMP/re.err")"
		bad=$((bad + 1))
	fi
	fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
	# a lost VM: the cache is gone; a new one mounts the last committed state
	rm -rf "$TMP/cache"
	if ! "$CAIRN" check -q >"$TMP/c.out" 2>&1; then
		diag "live snapshot killed after write $n: check is not clean"
		bad=$((bad + 1))
		continue
	fi
	"$CAIRN" mount "$MNT" --cache "$TMP/cache2" -q || { bad=$((bad + 1)); continue; }
	got=$(tree_sum "$MNT")
	want=$(tree_sum "$BT")
	if [ -e "$MNT/live.txt" ]; then	# the snapshot was committed
		cp -a "$BT" "$TMP/bt-live"
		cp -p "$MNT/live.txt" "$TMP/bt-live/"
		want=$(tree_sum "$TMP/bt-live")
		rm -rf "$TMP/bt-live"
	fi
	if [ "$got" != "$want" ] || { [ -e "$MNT/live.txt" ] && ! grep -q "round $n\$" "$MNT/live.txt"; }; then
		diag "live snapshot killed after write $n: the new VM sees neither the starting tree nor it + this round's file:"
		diff -r "$BT" "$MNT" 2>&1 | head -5 | sed 's/^/# /'
		(cd "$BT" && find . -mindepth 1 -printf '%p %y %m %s\n' | sort) >"$TMP/l1"
		(cd "$MNT" && find . -mindepth 1 -printf '%p %y %m %s\n' | sort) >"$TMP/l2"
		diff "$TMP/l1" "$TMP/l2" | head -5 | sed 's/^/# /'
		bad=$((bad + 1))
	fi
	fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
	rm -rf "$TMP/cache2"
done
check "live snapshot: killed after each of its $rounds writes: the same cache mounts again with its write; the VM lost: check clean, a new VM gets the last committed tree exactly" \
	test $bad -eq 0 -a $rounds -gt 0
total_rounds=$((total_rounds + rounds))
section "init of a given workspace id"
# init writes its keys, then its config, then the tenant's catalog entry;
# killed after any of them and run again, it finishes: one identity key
# (a second one would leave the workspace unopenable), listed, usable.
WI=ws-init
n=0 bad=0 rounds=0
while [ $n -lt 20 ]; do
	n=$((n + 1))
	rm -rf "$STORE_DIR/tenants/crash/workspaces/$WI" "$TMP/state"
	find "$STORE_DIR/tenants/crash/catalog" -name "$WI*" -exec rm -f {} + 2>/dev/null
	CAIRN_CRASH_AFTER_WRITES=$n "$CAIRN" init --workspace $WI -q >"$TMP/op.out" 2>&1
	src=$?
	if [ $src -ne 137 ]; then
		check "init: a run with no kill gets through (after $((n - 1)) writes)" test $src -eq 0 ||
			sed 's/^/# /' "$TMP/op.out"
		break
	fi
	rounds=$((rounds + 1))
	"$CAIRN" init --workspace $WI -q >"$TMP/op.out" 2>&1 ||
		grep -q "already exists" "$TMP/op.out" ||
		{ diag "init killed after write $n: the rerun failed:"; sed 's/^/# /' "$TMP/op.out"; bad=$((bad + 1)); continue; }
	if ! "$CAIRN" snapshot "$V1" --workspace $WI -q >"$TMP/op.out" 2>&1 ||
		! "$CAIRN" check --workspace $WI -q >>"$TMP/op.out" 2>&1; then
		diag "init killed after write $n: the workspace is not usable after the rerun:"
		sed 's/^/# /' "$TMP/op.out"
		bad=$((bad + 1))
	elif [ -z "$(find "$STORE_DIR/tenants/crash/catalog" -name "$WI*")" ]; then
		diag "init killed after write $n: the workspace is missing from the tenant's catalog"
		bad=$((bad + 1))
	fi
done
check "init: killed after each of its $rounds writes, then run again: the workspace opens, takes a snapshot, checks clean, is listed" \
	test $bad -eq 0 -a $rounds -gt 0
# two machines making the same new workspace at once (init = yes on two
# VMs): whichever order their writes land in, one identity key, and the
# workspace opens
bad=0
for i in $(seq 1 20); do
	rm -rf "$STORE_DIR/tenants/crash/workspaces/ws-race"
	"$CAIRN" init --workspace ws-race -q >/dev/null 2>"$TMP/i1" & p1=$!
	"$CAIRN" init --workspace ws-race -q >/dev/null 2>"$TMP/i2"
	wait $p1
	"$CAIRN" ls --workspace ws-race -q >/dev/null 2>"$TMP/op.out" ||
		{ bad=$((bad + 1)); sed 's/^/# /' "$TMP/op.out" | head -2; }
done
check "init: two at once of one new workspace id, 20 times: it opens every time" test $bad -eq 0
CAIRN_CRASH_AFTER_WRITES=1 "$CAIRN" init --workspace ws-other -q >/dev/null 2>&1
"$CAIRN" init --workspace ws-other --key "file:$TMP/k2" -q >"$TMP/op.out" 2>&1
src=$?
check "init: rerun under another tenant key than the interrupted one: one line naming both, exit 1" \
	sh -c '[ $1 -eq 1 ] && [ $(wc -l <"$2") -eq 1 ] && grep -q "wrapped by tenant key .*, not " "$2"' _ $src "$TMP/op.out"
check "and it wrote nothing" \
	test "$(find "$STORE_DIR/tenants/crash/workspaces/ws-other" -type f ! -name '*.md5' ! -name '*metadata*' | wc -l)" -eq 1
total_rounds=$((total_rounds + rounds))

diag "crash points: $total_rounds kills in all"
finish
