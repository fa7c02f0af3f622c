#!/bin/sh
# test_faults.sh - cairn through a misbehaving store: the proxy in front of
# s3rver injects, at random with a seed, 500s, 503 SlowDowns, resets before
# and after the request is served, answers cut short, delays, a flipped bit
# in a body, and stalls.  Each operation (snapshot, restore, lazy mount and
# a read of every file, forget + prune, check --read-data) runs
#   - at a 10% fault rate: it must succeed, with the right data;
#   - at a 30% fault rate: it must succeed with the right data or fail with
#     a one-line error;
# and afterwards, without faults, the repository must be check --read-data
# clean and the last snapshot must restore bit for bit.  A stall that
# outlasts the client's timeout is retried.  Prints TAP, and a table of
# requests, faults, retries (extra requests) and slowdown per operation.
#
# FAULT_SEEDS="1 2 3" runs each rate once per seed (default: one seed).
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID CAIRN_CONTROL_PLANE
CAIRN_CONFIG=$TMP/no-cairn.conf
CAIRN_STATE_DIR=$TMP/state
CAIRN_KEY=file:$TMP/key
# a stalled request is given up after retry_seconds / 3
CAIRN_S3_RETRY_SECONDS=30
export CAIRN_CONFIG CAIRN_STATE_DIR CAIRN_KEY CAIRN_S3_RETRY_SECONDS
seeds=${FAULT_SEEDS:-1}

s3_start
start=$(date +%s)
section() { diag "--- $1 ($(($(date +%s) - start)) s)"; }
now() { date +%s.%N; }
stat_of() { s3_stat "$1"; }
eq() { [ "$1" = "$2" ] || { diag "'$1' != '$2'"; false; }; }

# A tree of ~30 MB: 120 small files in directories, a few large ones.
WS=$TMP/ws
python3 - "$WS" <<'EOF'
import os, random, sys
root = sys.argv[1]
r = random.Random(5)
for d in range(6):
    p = os.path.join(root, "dir%02d" % d)
    os.makedirs(p)
    for f in range(20):
        with open(os.path.join(p, "f%03d.txt" % f), "wb") as out:
            out.write(r.randbytes(r.randint(0, 120000)))
for i in range(3):
    with open(os.path.join(root, "large%d.bin" % i), "wb") as out:
        out.write(r.randbytes(6 * 1024 * 1024 + i))
EOF

# run_op NAME CMD...: runs CMD; records time, requests, faults in $TMP/table
# and its stderr in $TMP/op.err; returns CMD's status
run_op() {
	_name=$1
	shift
	s3_ctl POST /__proxy/reset >/dev/null
	[ -n "$rate" ] && s3_ctl POST "/__proxy/fault?kind=any&prob=$rate&seed=$seed" >/dev/null
	_t0=$(now)
	"$@" >"$TMP/op.out" 2>"$TMP/op.err"
	_rc=$?
	_t1=$(now)
	_req=$(stat_of requests)
	_f=$(stat_of faults)
	s3_ctl POST /__proxy/reset >/dev/null
	echo "$_name ${rate:-0} $seed $_rc $_req $_f $_t0 $_t1" >>"$TMP/table"
	return $_rc
}

# one_line_error: the failed operation said why in one line
one_line_error() {
	_lines=$(grep -cv '^$' "$TMP/op.err")
	[ "$_lines" -ge 1 ] && [ "$_lines" -le 2 ] || { diag "stderr of the failed operation:"; sed 's/^/# /' "$TMP/op.err" | head -10; false; }
}

# read_all MOUNT: reads every file of the mount and compares with $WS;
# 0 all equal, 1 a read failed (EIO), 2 a file differs
read_all() {
	python3 - "$1" "$WS" <<'EOF'
import os, sys
mnt, ws = sys.argv[1], sys.argv[2]
failed = 0
for d, _, names in os.walk(ws):
    for n in names:
        p = os.path.join(d, n)
        q = os.path.join(mnt, os.path.relpath(p, ws))
        try:
            got = open(q, "rb").read()
        except OSError as e:
            print("read %s: %s" % (q, e), file=sys.stderr)
            failed = 1
            continue
        if got != open(p, "rb").read():
            print("DIFFERENT: %s" % q, file=sys.stderr)
            sys.exit(2)
sys.exit(failed)
EOF
}

# scenario RATE SEED: every operation at that fault rate ("" for none)
scenario() {
	rate=$1 seed=$2
	_tag="${rate:-no faults}${rate:+ faults, seed $seed}"
	_must=1	# 0.1 and none: every operation must succeed
	[ "$rate" = 0.3 ] && _must=0
	CAIRN_STORE=s3://cairn-test/f-${rate:-0}-$seed
	export CAIRN_STORE
	section "$_tag"
	"$CAIRN" init --create-key -q >/dev/null 2>&1 || "$CAIRN" init -q >/dev/null 2>&1
	# a first snapshot and a second one after a change, so that there is
	# something for prune
	run_op snapshot "$CAIRN" snapshot "$WS" -q
	_snap=$?
	echo "changed" >"$WS/dir00/f000.txt.new"
	[ $_snap -eq 0 ] && { run_op snapshot2 "$CAIRN" snapshot "$WS" -q; _snap=$?; }
	if [ $_must = 1 ]; then
		check "$_tag: snapshot succeeds" test $_snap -eq 0
	elif [ $_snap -ne 0 ]; then
		check "$_tag: a failed snapshot says why in one line" one_line_error
		# without faults, so that the rest has a snapshot to work on
		"$CAIRN" snapshot "$WS" -q || diag "the snapshot without faults failed too"
	fi

	rm -rf "$TMP/r"
	run_op restore "$CAIRN" restore latest "$TMP/r" -q
	_r=$?
	if [ $_must = 1 ] || [ $_r -eq 0 ]; then
		check "$_tag: restore succeeds" test $_r -eq 0
		check "$_tag: and restores bit for bit" diff -r "$WS" "$TMP/r"
	else
		check "$_tag: a failed restore says why in one line" one_line_error
	fi

	MNT=$TMP/mnt-${rate:-0}-$seed
	mkdir -p "$MNT"
	_fs_mounts="$_fs_mounts $MNT"
	run_op mount "$CAIRN" mount "$MNT" --cache "$TMP/cache-${rate:-0}-$seed" --no-prefetch -q
	_m=$?
	if [ $_m -eq 0 ]; then
		[ -n "$rate" ] && s3_ctl POST "/__proxy/fault?kind=any&prob=$rate&seed=$seed" >/dev/null
		_t0=$(now)
		read_all "$MNT" 2>"$TMP/op.err"
		_rd=$?
		_t1=$(now)
		echo "lazy-read ${rate:-0} $seed $_rd $(stat_of requests) $(stat_of faults) $_t0 $_t1" >>"$TMP/table"
		s3_ctl POST /__proxy/reset >/dev/null
		check "$_tag: no read of the lazy mount returned wrong data" test $_rd -ne 2
		[ $_must = 1 ] && check "$_tag: every file of the lazy mount reads back" test $_rd -eq 0
		[ $_rd -eq 1 ] && check "$_tag: the failed reads were EIO" grep -q "Input/output error" "$TMP/op.err"
		check "$_tag: the mount is still up" mountpoint -q "$MNT"
		fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
	else
		check "$_tag: mount succeeds at this rate" test $_must = 0
		check "$_tag: a failed mount says why" one_line_error
	fi

	run_op prune sh -c '"$1" forget --keep-last 1 -q && "$1" prune -q' _ "$CAIRN"
	_p=$?
	if [ $_must = 1 ]; then
		check "$_tag: forget + prune succeed" test $_p -eq 0
	elif [ $_p -ne 0 ]; then
		check "$_tag: a failed prune says why in one line" one_line_error
	fi

	run_op check "$CAIRN" check --read-data -q
	_c=$?
	if [ $_must = 1 ] || [ $_c -eq 0 ]; then
		check "$_tag: check --read-data through the faults is clean" test $_c -eq 0
	else
		check "$_tag: a failed check says why in one line" one_line_error
	fi

	# no faults: what is in the store is whole
	rate=
	check "$_tag: afterwards, without faults, check --read-data is clean" "$CAIRN" check --read-data -q
	rm -rf "$TMP/r2"
	check "$_tag: and the last snapshot restores bit for bit" sh -c '"$1" restore latest "$2" -q && diff -r "$3" "$2"' _ "$CAIRN" "$TMP/r2" "$WS"
	rm -f "$WS/dir00/f000.txt.new"
}

scenario "" 1
for s in $seeds; do
	scenario 0.1 "$s"
	scenario 0.3 "$s"
done

section "a stall longer than the client's timeout"
CAIRN_STORE=s3://cairn-test/f-0-1
rm -rf "$TMP/r3" "$TMP/r4"
"$CAIRN" restore latest "$TMP/r4" -q || diag "the restore without faults failed"
s3_ctl POST "/__proxy/fault?kind=stall&method=GET&key=/data/" >/dev/null
_t0=$(date +%s)
CAIRN_S3_RETRY_SECONDS=9 "$CAIRN" restore latest "$TMP/r3" -q 2>"$TMP/op.err"
_rc=$?
_t1=$(date +%s)
check "a stalled GET is given up and retried: restore succeeds" test $_rc -eq 0
check "bit for bit" diff -r "$TMP/r4" "$TMP/r3"
check "after about the low-speed timeout (3 s here), not the stall's 120 s" test $((_t1 - _t0)) -lt 60
check "the stall was applied" eq "$(stat_of fault_kinds.stall)" 1
s3_ctl POST /__proxy/reset >/dev/null

# The table: per operation and rate, requests and faults (sums), extra
# requests over the fault-free run (retries), and the slowdown.
diag "operation  rate  runs  ok  requests  faults  retries  time  slowdown"
python3 - "$TMP/table" <<'EOF' | sed 's/^/# /'
import collections, sys
rows = [l.split() for l in open(sys.argv[1])]
base = {}
agg = collections.OrderedDict()
for name, rate, seed, rc, req, faults, t0, t1 in rows:
    key = (name, rate)
    a = agg.setdefault(key, [0, 0, 0, 0, 0.0])
    a[0] += 1; a[1] += rc == "0"; a[2] += int(req); a[3] += int(faults); a[4] += float(t1) - float(t0)
    if rate == "0":
        base[name] = (int(req), float(t1) - float(t0))
for (name, rate), (n, ok, req, faults, t) in agg.items():
    breq, bt = base.get(name, (0, 0))
    extra = req - n * breq if rate != "0" else 0
    slow = (t / n) / bt if bt else 0
    print("%-10s %4s %5d %3d %9d %7d %8d %6.2f %8.2fx" % (name, rate, n, ok, req, faults, extra, t / n, slow))
EOF
finish
