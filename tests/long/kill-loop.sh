#!/bin/sh
# kill-loop.sh - the long tier's crash loop: snapshots and prunes killed
# with SIGKILL at random moments, ROUNDS times (default 30), each followed
# by a bit-for-bit restore of the last committed snapshot and a clean
# `cairn check`.  Bounded: every round has its own timeout.  Prints TAP.
. "${CAIRN_SRCDIR:-.}/tests/lib.sh"

rounds=${ROUNDS:-30}
export CAIRN_STORE=file://$TMP/store CAIRN_KEY=file:$TMP/key CAIRN_STATE_DIR=$TMP/state
"$CAIRN" init --create-key -q >/dev/null || { echo "Bail out! init failed"; exit 1; }

python3 - "$TMP/src" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(7)
for d in range(40):
    p = os.path.join(root, "d%02d" % d)
    os.makedirs(p, exist_ok=True)
    for f in range(40):
        with open(os.path.join(p, "f%02d" % f), "wb") as fh:
            fh.write(rnd.randbytes(rnd.randint(0, 60000)))
with open(os.path.join(root, "big"), "wb") as fh:
    fh.write(rnd.randbytes(40 << 20))
PY

digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }

"$CAIRN" snapshot -q "$TMP/src"
good=$(digest "$TMP/src")
i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	# change something, then kill a snapshot or a prune part-way
	python3 -c "import os,random; p='$TMP/src/d%02d/f%02d'%(random.randrange(40),random.randrange(40)); open(p,'ab').write(os.urandom(5000))"
	if [ $((i % 3)) -eq 0 ]; then
		"$CAIRN" forget -q --keep-last 2 >/dev/null 2>&1
		timeout 60 "$CAIRN" prune -q >/dev/null 2>&1 &
	else
		timeout 60 "$CAIRN" snapshot -q "$TMP/src" >/dev/null 2>&1 &
	fi
	pid=$!
	bg_track "$pid"
	sleep "0.$(shuf -i 0-9 -n 1)$(shuf -i 0-9 -n 1)"
	kill -9 "$pid" 2>/dev/null
	bg_wait "$pid"
	rm -rf "$TMP/out"
	"$CAIRN" restore -q latest "$TMP/out" >/dev/null 2>"$TMP/err"
	now=$(digest "$TMP/out")
	cur=$(digest "$TMP/src")
	# the killed snapshot either committed whole or not at all
	check "round $i: latest restores to the last committed tree, whole" \
		sh -c "[ '$now' = '$good' ] || [ '$now' = '$cur' ]"
	check "round $i: check is clean" sh -c "'$CAIRN' check -q >/dev/null 2>&1"
	"$CAIRN" snapshot -q "$TMP/src" >/dev/null 2>&1
	rm -rf "$TMP/out2"
	"$CAIRN" restore -q latest "$TMP/out2" >/dev/null 2>&1
	check "round $i: a new snapshot restores bit for bit" test "$(digest "$TMP/out2")" = "$(digest "$TMP/src")"
	good=$(digest "$TMP/src")
done
"$CAIRN" prune -q >/dev/null 2>&1
check "a final prune and check are clean" "$CAIRN" check -q
finish
