#!/bin/sh
# test_oversize.sh - a store that serves objects larger than any cairn
# writes (a hostile store, or a damaged one): a head, a lease, an index
# object and a tree pack grown to 1 GiB, one at a time, on a file:// store
# and on S3 through the verifying proxy.  Each is refused with one line
# naming the object, its size and the bound, without being read: on
# file:// the command's peak memory stays far below the object's size, on
# S3 the proxy sends at most the bound.  The objects grow by appending a
# hole (truncate), so they cost no disk, and shrink back afterwards.
# Prints TAP.
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID CAIRN_STORE CAIRN_KEY \
	CAIRN_CONTROL_PLANE CAIRN_CRASH_AFTER_WRITES
CAIRN_CONFIG=$TMP/no-cairn.conf
export CAIRN_CONFIG

BIG=1073741824		# 1 GiB: above every bound but the index's, which is 1 GiB exactly
BIGGER=1073741825

run() {	# run CMD...: output kept in $TMP/out and $TMP/err; sets $rc
	"$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	rc=$?
	return $rc
}
show() { cat "$TMP/out" "$TMP/err" | head -n 10 | sed 's/^/# /'; }
rc_is() { [ "$rc" -eq "$1" ] || { diag "exit status $rc, expected $1"; show; false; }; }
err_has() { grep -q -- "$1" "$TMP/err" || { diag "stderr lacks '$1':"; show; false; }; }
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || { diag "stderr is not one line:"; show; false; }; }
below() { [ "$1" -lt "$2" ] || { diag "$1 is not below $2"; false; }; }

# peak CMD...: runs cairn CMD like run, and sets $peak_kib to its peak
# resident memory (what reading a 1 GiB object into memory would show)
peak() {
	peak_kib=$(python3 - "$TMP/out" "$TMP/err" "$@" <<'EOF'
import os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    p = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
print(ru.ru_maxrss, os.waitstatus_to_exitcode(status))
EOF
)
	rc=${peak_kib#* }
	peak_kib=${peak_kib% *}
}

mkdir -p "$TMP/ws/a/b"
echo "a file" >"$TMP/ws/a/b/f.txt"
head -c 100000 /dev/urandom >"$TMP/ws/a/data.bin"

# grow FILE SIZE: FILE (an object's bytes on disk) becomes SIZE bytes, its
# content followed by a hole; shrink FILE puts it back
grow() { stat -c %s "$1" >"$1.size" && truncate -s "$2" "$1"; }
shrink() { truncate -s "$(cat "$1.size")" "$1" && rm -f "$1.size"; }

# case_of KIND NAME FILE SIZE WHAT MAX CMD...: grows FILE (the object NAME
# of the workspace, a WHAT of at most MAX bytes) to SIZE, runs CMD with a
# fresh state dir (no index cache), and checks the refusal; then shrinks
# it back and checks CMD works again
case_of() {
	_kind=$1 _name=$2 _file=$3 _size=$4 _what=$5 _max=$6
	shift 6
	grow "$_file" "$_size"
	[ "$_kind" = s3 ] && s3_ctl POST /__proxy/reset >/dev/null
	rm -rf "$TMP/st" "$TMP/out-dir"
	if [ "$_kind" = file ]; then
		peak env CAIRN_STATE_DIR="$TMP/st" "$CAIRN" "$@"
	else
		run env CAIRN_STATE_DIR="$TMP/st" "$CAIRN" "$@"
	fi
	check "$_kind: $_what of $_size bytes ($_name): the command exits 1" rc_is 1
	check "$_kind: $_what: one line" one_line
	check "$_kind: $_what: naming it, its size and the bound" \
		err_has "$_name: $_size bytes, more than any $_what cairn writes (at most $_max): not read"
	diag "$(head -n 1 "$TMP/err")"
	if [ "$_kind" = file ]; then
		check "$_kind: $_what: not read into memory (peak $peak_kib KiB)" below "$peak_kib" 524288
	else
		# -1: no GET at all (an index object is refused from its listing)
		_sent=$(s3_stat "objects.get_$(echo "$_name" | cut -d/ -f1).bytes_out")
		check "$_kind: $_what: the store sent no more than the bound and a byte ($_sent bytes)" \
			below "$_sent" $((_max + 2))
	fi
	shrink "$_file"
	rm -rf "$TMP/st" "$TMP/out-dir"
	run env CAIRN_STATE_DIR="$TMP/st" "$CAIRN" "$@"
	check "$_kind: $_what back to its size: the command works again" rc_is 0
}

for KIND in file s3; do
	if [ "$KIND" = file ]; then
		S=file://$TMP/store
		DIR=$TMP/store
		SUFFIX=
	else
		s3_start
		S=s3://cairn-test/over
		DIR=$TMP/s3/cairn-test/over
		SUFFIX=._S3rver_object
	fi
	K=file:$TMP/key-$KIND
	export CAIRN_STATE_DIR=$TMP/state-$KIND
	run "$CAIRN" init --store "$S" --key "$K" --create-key -q
	check "$KIND: init" rc_is 0
	W=$(ls "$DIR/tenants/default/workspaces")
	WD=$DIR/tenants/default/workspaces/$W
	run "$CAIRN" snapshot "$TMP/ws" --store "$S" --key "$K" -q
	check "$KIND: a snapshot" rc_is 0
	C="--store $S --key $K"
	unset CAIRN_STATE_DIR

	# shellcheck disable=SC2086
	{
	case_of "$KIND" head "$WD/head$SUFFIX" $BIG head 65536 restore latest "$TMP/out-dir" $C
	case_of "$KIND" lease "$WD/lease$SUFFIX" $BIG lease 65536 snapshot "$TMP/ws" $C
	idx=$(cd "$WD/index" && ls | grep -v '\._S3rver_\(metadata\|object\.md5\)' | head -n 1)
	idx=${idx%$SUFFIX}
	case_of "$KIND" "index/$idx" "$WD/index/$idx$SUFFIX" $BIGGER "index object" $BIG restore latest "$TMP/out-dir" $C
	tp=$(cd "$WD" && find tree -type f -name "*$SUFFIX" | grep -v '\._S3rver_\(metadata\|object\.md5\)' | head -n 1)
	tp=${tp%$SUFFIX}
	case_of "$KIND" "$tp" "$WD/$tp$SUFFIX" $BIG pack 134217728 ls latest $C
	}
done

finish
