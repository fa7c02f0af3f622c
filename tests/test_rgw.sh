#!/bin/sh
# test_rgw.sh - cairn against a second real S3 server: Ceph RGW 16.2 from
# Debian 12's packages, a one-node cluster started here on loopback
# (tests/rgw.sh).  The store conformance suite with the conditional-write
# probe and multipart uploads (tests/store_conform), then cairn end to end:
# selftest, two snapshots, restore, a lazy mount with a live snapshot,
# forget --prune, key rotation with cairn-keyadm, check --read-data.
# A TAP skip when the ceph packages are not installed.
. "$CAIRN_SRCDIR/tests/lib.sh"
. "$CAIRN_SRCDIR/tests/rgw.sh"

if missing=$(rgw_missing); then
	echo "1..0 # SKIP $missing is not installed (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw)"
	exit 0
fi
KEYADM=${CAIRN_BUILDDIR:-.}/cairn-keyadm
CONFORM=${CAIRN_BUILDDIR:-.}/tests/store_conform
if [ ! -x "$CONFORM" ]; then
	echo "Bail out! $CONFORM is not built (make tests/store_conform)"
	exit 1
fi

rgw_start
diag "Ceph RGW $(radosgw --version 2>/dev/null | awk '{print $3}') on $RGW_ENDPOINT, up in $RGW_START_SECONDS s"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION CAIRN_WORKSPACE CAIRN_TENANT
AWS_ENDPOINT_URL=$RGW_ENDPOINT
AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

start=$(date +%s)
section() { diag "--- $1 ($(($(date +%s) - start)) s)"; }
run() {	# run CMD...: output kept, $rc set
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
}
show() { cat "$TMP/out" "$TMP/err" | head -n 20 | sed 's/^/# /'; }
ran() { [ "$rc" -eq 0 ] || { diag "exit status $rc"; show; false; }; }
quiet() { ran && [ ! -s "$TMP/err" ] || { show; false; }; }	# no warning either

section "the store conformance suite"
CAIRN_TEST_STORE=s3://$RGW_BUCKET/conform CAIRN_TEST_MATCH=bare CAIRN_TEST_LABEL=rgw \
	timeout 400 "$CONFORM" >"$TMP/conform.tap" 2>&1
rc=$?
tap_relay "$TMP/conform.tap"
check "store_conform ran to the end (exit status $rc)" test "$rc" -le 1 -a -n "$tap_plan"

section "cairn end to end"
D=$TMP/e2e
mkdir -p "$D/src/sub" "$D/mnt"
head -c 3000000 /dev/urandom >"$D/src/big"
echo small >"$D/src/sub/f"
ln -s sub/f "$D/src/link"
CAIRN_STORE=s3://$RGW_BUCKET/cairn
CAIRN_KEY=file:$D/tenant.key
CAIRN_STATE_DIR=$D/state
CAIRN_LEASE_TTL=6	# renewed (If-Match) every 2 s while mounted, with room for a slow machine
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR CAIRN_LEASE_TTL

run "$CAIRN" selftest --store "s3://$RGW_BUCKET/selftest"
check "selftest passes" ran
check "and finds If-Match honoured without quotes" grep -q 'If-Match with the ETag without quotes' "$TMP/out" || show
run "$CAIRN" init --create-key --json
check "init" quiet
WS=$(sed -n 's/.*"workspace": *"\([^"]*\)".*/\1/p' "$TMP/out")
run "$CAIRN" snapshot "$D/src" --tag one
check "a first snapshot" quiet
echo changed >"$D/src/sub/f"
head -c 1000000 /dev/urandom >"$D/src/new"
run "$CAIRN" snapshot "$D/src" --tag two
check "a second snapshot (the lease and the head replaced with If-Match)" quiet
run "$CAIRN" restore latest "$D/restored"
check "restore latest" quiet
check "gives the tree back, bit for bit" diff -r "$D/src" "$D/restored"

_fs_mounts="$_fs_mounts $D/mnt"
echo "$D/mnt $D/cache" >>"$TMP/fs-mounts"
run "$CAIRN" mount "$D/mnt" --cache "$D/cache"
check "a lazy mount" ran
check "serves the tree" cmp -s "$D/src/big" "$D/mnt/big"
echo "written on the mount" >"$D/mnt/live"
sleep 5		# two renewals with If-Match
run "$CAIRN" snapshot --mount "$D/mnt"
check "a live snapshot of the mount" ran
check "the lease was renewed all along" sh -c "! grep -q 'lost the lease\|cannot renew' '$D/cache/cairnfs.log'" ||
	sed 's/^/# /' "$D/cache/cairnfs.log"
check "unmount" fs_umount "$D/mnt"
run "$CAIRN" restore latest "$D/restored2"
check "the live snapshot restores" sh -c "[ $rc -eq 0 ] && grep -q 'written on the mount' '$D/restored2/live'"

run "$CAIRN" forget --keep-last 1 --prune
check "forget --keep-last 1 --prune" ran
run "$CAIRN" ls
check "one snapshot is left" test "$(grep -c '^[0-9a-f]\{8\} ' "$TMP/out")" -eq 1 || show

run "$KEYADM" dek rotate --workspace "$WS" --key "$D/tenant.key"
check "cairn-keyadm dek rotate" ran
echo "after the rotation" >"$D/src/rotated"
run "$CAIRN" snapshot "$D/src"
check "a snapshot under the new data key" quiet
run "$KEYADM" reencrypt --workspace "$WS" --key "$D/tenant.key" --retire --json
check "cairn-keyadm reencrypt --retire" ran
"$KEYADM" kek create --out "$D/tenant2.key" -q
run "$KEYADM" rewrap --from "$D/tenant.key" --to "$D/tenant2.key" --json
check "cairn-keyadm rewrap to a new tenant key" ran
CAIRN_KEY=file:$D/tenant2.key
run "$CAIRN" check --read-data
check "check --read-data is clean" ran
run "$CAIRN" restore latest "$D/restored3"
check "the latest snapshot restores under the new keys" diff -r "$D/src" "$D/restored3"

section "stop"
check "the cluster stops at SIGTERM" rgw_stop
finish
