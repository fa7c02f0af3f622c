#!/bin/sh
# test_repo.sh - the repository engine end to end, as a user runs it: a
# generated workspace (thousands of small files, a node_modules full of
# duplicates, large partly random files, hard links, symlinks, xattrs, odd
# names, modes and owners, a fifo) snapshotted and restored byte for byte on
# a file:// store and on S3 through the verifying proxy; incremental
# snapshots that upload and open only what changed; dedup; no name or
# content in the store's bytes; wrong keys, flipped bytes, a rolled-back
# store, a held lease, kill -9 during snapshot and prune, a store that is
# down.  Prints TAP.  Runs as root (owners are restored) or not (skipped).
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"
cairn=$CAIRN

# Nothing from the caller's environment or /etc/cairn may steer cairn here.
unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID \
	CAIRN_LEASE_TTL CAIRN_S3_RETRY_SECONDS CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR
CAIRN_CONFIG=$TMP/no-cairn.conf
export CAIRN_CONFIG

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root: the tree has files of other owners, and restore keeps owners only as root"
	exit 0
fi
if ! command -v python3 >/dev/null; then
	echo "1..0 # SKIP needs python3"
	exit 0
fi

start=$(date +%s)
section() {	# section NAME: a diagnostic with the time so far
	diag "--- $1 ($(($(date +%s) - start)) s)"
}

# run CMD...: cairn with its output kept; sets and returns $rc
run() {
	"$cairn" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	return $rc
}
show() { cat "$TMP/out" "$TMP/err" | head -n 20 | sed 's/^/# /'; }
rc_is() { [ "$rc" -eq "$1" ] || { diag "exit status $rc, expected $1"; show; false; }; }
err_has() { grep -q -- "$1" "$TMP/err" || { diag "stderr lacks '$1':"; show; false; }; }
py() { python3 "$SRCDIR/tests/repo_tool.py" "$@"; }
jget() { py jget "$1" <"$TMP/out"; }

# restored SNAPSHOT DIR MANIFEST [FLAGS]: restores into a new DIR and
# compares it with MANIFEST (type, mode, owner, size, content, mtime,
# xattrs, symlink target, hard-link group of every path); --privileged,
# since the tree has a setuid file (test_privileges.sh has the default)
restored() {
	rm -rf "$2"
	if ! run restore --privileged ${4:-} "$1" "$2"; then
		show
		return 1
	fi
	py manifest "$2" "$2.json" && py compare "$3" "$2.json"
}

# nothing_restored DIR: no regular file (nor temp file) in DIR
nothing_restored() {
	[ -z "$(find "$1" -type f 2>/dev/null | head -n 3)" ] ||
		{ diag "files in $1:"; find "$1" -type f | head -n 5 | sed 's/^/# /'; false; }
}

snapshots() { run ls --json && grep -c '^{' "$TMP/out"; }
lt() { [ "$1" -lt "$2" ] || { diag "$1 is not below $2"; false; }; }
eq() { [ "$1" = "$2" ] || { diag "'$1' != '$2'"; false; }; }

# a file:// store's packs (NAME: data or tree), one relative name per line
packs() { (cd "$WSDIR" && find "$1" -type f 2>/dev/null | sort); }
dir_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# S3: counting PUTs of packs by kind with two no-op fault rules (delay:0)
s3_count_start() {
	s3_ctl POST /__proxy/reset >/dev/null &&
	s3_ctl POST "/__proxy/fault?kind=delay:0&count=1000000&method=PUT&key=/data/" >/dev/null &&
	s3_ctl POST "/__proxy/fault?kind=delay:0&count=1000000&method=PUT&key=/tree/" >/dev/null
}
s3_puts() {	# s3_puts data|tree: PUTs under data/ (tree/) since s3_count_start
	_left=$(s3_ctl GET /__proxy/faults | py proxy-rule remaining "/$1/")
	echo $((1000000 - _left))
}

# ---- the scenario both stores run ------------------------------------------
# scenario KIND STORE_URL: KIND is file or s3.  Leaves D, WS, WSID, WSDIR,
# LATEST (the manifest of the latest snapshot) and friends for the
# store-specific parts that follow.
scenario() {
	KIND=$1
	D=$TMP/$KIND-run
	WS=$D/ws
	mkdir -p "$D"
	CAIRN_STORE=$2
	CAIRN_KEY=file:$D/key
	CAIRN_STATE_DIR=$D/state
	export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR
	section "$KIND: $CAIRN_STORE"

	run init --create-key --json
	check "$KIND: init --create-key creates a workspace and a key" rc_is 0
	WSID=$(jget workspace)
	check "$KIND: the key file is 0600" eq "$(stat -c %a "$D/key")" 600
	if [ "$KIND" = file ]; then
		WSDIR=$D/store/tenants/default/workspaces/$WSID
		STOREDIR=$D/store
	else
		WSDIR=$TMP/s3/cairn-test/${2#s3://cairn-test/}/tenants/default/workspaces/$WSID
		STOREDIR=$TMP/s3
	fi

	# 1. a full snapshot, restored byte for byte
	py gen "$WS" 7 2000
	py manifest "$WS" "$D/m1.json"
	set -- $(py count "$D/m1.json")
	tree_files=$1 tree_bytes=$3
	diag "the tree: $1 files, $2 directories, $3 bytes"
	[ "$KIND" = s3 ] && s3_ctl POST /__proxy/reset >/dev/null
	run snapshot --json "$WS"
	check "$KIND: the first snapshot exits 0" rc_is 0
	check "$KIND: it counts every file" eq "$(jget stats.files)" "$tree_files"
	if [ "$KIND" = s3 ]; then
		full_put=$(s3_stat put.bytes_in)
		diag "first snapshot: $(s3_stat put.count) PUTs, $full_put bytes"
	else
		packs data >"$D/packs1-data"
		packs tree >"$D/packs1-tree"
	fi
	check "$KIND: the restore equals the tree: content, modes, owners, times, xattrs, links" \
		restored latest "$D/r1" "$D/m1.json"
	run ls --json
	first=$(head -n 1 "$TMP/out" | py jget id)

	# 2. an incremental snapshot: 3 files changed, 1 added, 1 deleted
	py modify "$WS" >"$D/changed"
	py manifest "$WS" "$D/m2.json"
	rm -f "$D/ready" "$D/stop"
	python3 "$SRCDIR/tests/repo_tool.py" watch "$WS" "$D/ready" "$D/stop" "$D/opened.json" &
	watcher=$!
	bg_track $watcher
	i=0
	while [ ! -s "$D/ready" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$KIND" = s3 ] && s3_count_start
	before=$(dir_bytes "$STOREDIR")
	run snapshot --json "$WS"
	check "$KIND: the incremental snapshot exits 0" rc_is 0
	touch "$D/stop"
	bg_wait $watcher
	check "$KIND: the inotify watcher ran" test "$bg_rc" -eq 0 -a -s "$D/opened.json"
	check "$KIND: unchanged files were never opened (inotify)" py check-opened "$D/opened.json" "$D/changed"
	check "$KIND: the changed and added files were opened" \
		py check-opened "$D/opened.json" "$D/changed" --all-of
	check "$KIND: the snapshot read exactly the 4 changed or added files" eq "$(jget stats.new_files)" 4
	grown=$(($(dir_bytes "$STOREDIR") - before))
	diag "incremental: ${grown} bytes more in the store, stored_bytes $(jget stats.stored_bytes), tree $tree_bytes bytes"
	check "$KIND: it stored a small part of the tree" lt "$grown" $((tree_bytes / 4))
	if [ "$KIND" = s3 ]; then
		inc_put=$(s3_stat put.bytes_in)
		diag "incremental: $(s3_stat put.count) PUTs ($(s3_puts data) data packs, $(s3_puts tree) tree packs), $inc_put bytes; full: $full_put"
		check "$KIND: the incremental uploaded a few packs" lt "$(s3_puts data)" 3
		check "$KIND: and well under the tree's size in bytes" lt "$inc_put" $((tree_bytes / 4))
	fi
	check "$KIND: the incremental restores to the changed tree" restored latest "$D/r2" "$D/m2.json"

	# 3. no change: no pack at all
	[ "$KIND" = s3 ] && s3_count_start
	[ "$KIND" = file ] && packs data >"$D/before-data" && packs tree >"$D/before-tree"
	run snapshot --json "$WS"
	check "$KIND: a snapshot of an unchanged tree exits 0" rc_is 0
	check "$KIND: and reads no file" eq "$(jget stats.new_files)/$(jget stats.new_bytes)" 0/0
	if [ "$KIND" = s3 ]; then
		diag "no change: $(s3_stat put.count) PUTs, $(s3_stat put.bytes_in) bytes"
		check "$KIND: and uploads no data pack" eq "$(s3_puts data)" 0
		check "$KIND: and no tree pack" eq "$(s3_puts tree)" 0
		check "$KIND: only a few KiB in all (index, record, head, lease)" lt "$(s3_stat put.bytes_in)" 65536
	else
		check "$KIND: and writes no data pack" eq "$(packs data | cmp - "$D/before-data" && echo same)" same
		check "$KIND: and no tree pack" eq "$(packs tree | cmp - "$D/before-tree" && echo same)" same
	fi
	check "$KIND: ls shows 3 snapshots" eq "$(snapshots)" 3
	check "$KIND: the first snapshot still restores to the first tree" \
		restored "$(echo "$first" | cut -c1-8)" "$D/r1b" "$D/m1.json"
	rm -rf "$D/r1" "$D/r1b" "$D/r2" "$D/r1.json" "$D/r1b.json" "$D/r2.json"
	run restore latest "$D/inc" --include misc/links --json
	check "$KIND: restore takes options after its arguments, as its usage says" rc_is 0
	check "$KIND: --include restores that path only" \
		eq "$(cd "$D/inc" && find . -type f | sort | tr '\n' ' ')" \
		"./misc/links/a/three ./misc/links/b/three-again ./misc/links/big-linked.bin ./misc/links/pair-1 ./misc/links/pair-2 ./misc/links/three-thrice "
	check "$KIND: and says how many files it wrote" eq "$(jget files)" 6
	rm -rf "$D/inc"

	# 4. dedup: a second copy of the tree in the same workspace
	cp -a "$WS" "$D/copy" && mv "$D/copy" "$WS/copy"
	[ "$KIND" = s3 ] && s3_count_start
	before=$(dir_bytes "$STOREDIR")
	run snapshot --json "$WS"
	check "$KIND: a snapshot with a copy of the tree exits 0" rc_is 0
	check "$KIND: the copy's files were read (new inodes)" lt $((tree_files / 2)) "$(jget stats.new_files)"
	check "$KIND: but made no new data blob" eq "$(jget stats.new_bytes)" 0
	grown=$(($(dir_bytes "$STOREDIR") - before))
	diag "dedup: ${grown} bytes more in the store for a $tree_bytes-byte copy"
	check "$KIND: and the store grew by under 2% of the copy" lt "$grown" $((tree_bytes / 50))
	if [ "$KIND" = s3 ]; then
		check "$KIND: no data pack was uploaded" eq "$(s3_puts data)" 0
	fi
	rm -rf "$WS/copy"
	run snapshot "$WS"
	check "$KIND: and without the copy again" rc_is 0
	py manifest "$WS" "$D/m5.json"
	LATEST=$D/m5.json

	# 5. privacy: no marker of a name or of content anywhere in the store
	grep -r -a -l -F -e CAIRN-PRIVACY-DATA-MARKER-5e1f0c77a9 -e cairn-privacy-name-marker-b84d2e \
		-e node_modules -e big12.bin "$STOREDIR" >"$D/found"
	check "$KIND: the markers are in the workspace (the grep works)" \
		grep -r -q -a -F CAIRN-PRIVACY-DATA-MARKER-5e1f0c77a9 "$WS/privacy"
	check "$KIND: no content marker and no file name in any object of the store" \
		eq "$(head -n 3 "$D/found")" ""

	check "$KIND: every object but config is sealed, under keys only our tenant key unwraps" \
		py sealed "$WSDIR" "$D/key"

	# 6. another tenant key: refused, nothing written anywhere
	CAIRN_STORE=file://$D/other CAIRN_STATE_DIR=$D/other-state run init --create-key --key "file:$D/key2"
	check "$KIND: a second tenant key (another store)" rc_is 0
	find "$STOREDIR" -type f | sort >"$D/objects-before"
	[ "$KIND" = s3 ] && s3_ctl POST /__proxy/reset >/dev/null
	CAIRN_KEY=file:$D/key2 run ls
	check "$KIND: ls with another tenant key exits 1" rc_is 1
	check "$KIND: saying: wrong tenant key" err_has "wrong tenant key"
	CAIRN_KEY=file:$D/key2 run restore latest "$D/wrong"
	check "$KIND: restore with another tenant key exits 1" rc_is 1
	check "$KIND: saying: wrong tenant key" err_has "wrong tenant key"
	check "$KIND: and writes nothing to the target" nothing_restored "$D/wrong"
	CAIRN_KEY=file:$D/key2 run snapshot "$WS"
	check "$KIND: snapshot with another tenant key exits 1" rc_is 1
	# the same kek id with other key bytes: the wrapped keys fail to open
	printf '%s:%s\n' "$(cut -d: -f1,2 "$D/key")" "$(cut -d: -f3 "$D/key2")" >"$D/key3"
	chmod 600 "$D/key3"
	CAIRN_KEY=file:$D/key3 run restore latest "$D/wrong"
	check "$KIND: a key with the right id but other bytes exits 1" rc_is 1
	check "$KIND: saying: cannot unwrap key ...: wrong tenant key?" err_has "cannot unwrap key .*wrong tenant key?"
	check "$KIND: and writes nothing to the target" nothing_restored "$D/wrong"
	find "$STOREDIR" -type f | sort >"$D/objects-after"
	check "$KIND: nothing was written to the store" cmp -s "$D/objects-before" "$D/objects-after"
	if [ "$KIND" = s3 ]; then
		check "$KIND: not one PUT reached S3" eq "$(s3_stat put.count)" 0
	fi
}

# ---- file:// only: flipped bytes, a rolled-back store, kill -9 ---------------

# tamper_reset NAME: puts the saved store back and gives a fresh state dir
# (no index cache: every index object is read), for one tamper case
tamper_reset() {
	rm -rf "$D/store" "$D/t-out"
	cp -a "$D/store.saved" "$D/store"
	tstate=$D/tstate-$1
	rm -rf "$tstate"
}
tamper_restore() {	# tamper_restore CASE SNAPSHOT: a restore that must fail
	CAIRN_STATE_DIR=$tstate run restore "$2" "$D/t-out"
	check "tamper $1: restore exits 1" rc_is 1
	check "tamper $1: and writes no file" nothing_restored "$D/t-out"
	diag "$(head -n 1 "$TMP/err")"
}

file_only() {
	section "file: tampering, one object at a time"
	cp -a "$D/store" "$D/store.saved"

	pack=$(head -n 1 "$D/packs1-data")
	tamper_reset data
	py flip "$WSDIR/$pack" 30
	tamper_restore "data pack" "$first"
	check "tamper data pack: the error names the pack" err_has "$pack"
	check "tamper data pack: no temp file is left behind" \
		eq "$(find "$D/t-out" -name '.cairn-restore-*' | head -n 1)" ""

	pack=$(head -n 1 "$D/packs1-tree")
	tamper_reset tree
	py flip "$WSDIR/$pack" 30
	CAIRN_STATE_DIR=$tstate run ls "$first"
	check "tamper tree pack: ls of the snapshot exits 1" rc_is 1
	check "tamper tree pack: naming the pack" err_has "$pack"
	tamper_restore "tree pack" "$first"
	check "tamper tree pack: restore names the pack" err_has "$pack"

	tamper_reset head
	py flip "$WSDIR/head" mid
	tamper_restore head latest
	check "tamper head: the error names the head" err_has "head"
	CAIRN_STATE_DIR=$tstate run snapshot "$WS"
	check "tamper head: snapshot exits 1" rc_is 1

	tamper_reset record
	rec=$(cd "$WSDIR" && ls snapshots | sort | head -n 1)
	py flip "$WSDIR/snapshots/$rec" -20
	CAIRN_STATE_DIR=$tstate run ls
	check "tamper snapshot record: ls exits 1" rc_is 1
	check "tamper snapshot record: naming the record" err_has "snapshots/$rec"
	tamper_restore "snapshot record" "$(echo "$rec" | cut -c1-8)"

	tamper_reset index
	idx=$(cd "$WSDIR" && ls index | sort | head -n 1)
	py flip "$WSDIR/index/$idx" mid
	tamper_restore index latest
	check "tamper index: the error names the index object" err_has "index/$idx"

	tamper_reset key
	key=$(cd "$WSDIR" && ls keys | sort | head -n 1)
	py flip "$WSDIR/keys/$key" -10
	tamper_restore "wrapped key" latest

	tamper_reset config
	sed 's/"format":2/"format":3/' "$WSDIR/config" >"$D/config" && cat "$D/config" >"$WSDIR/config"
	CAIRN_STATE_DIR=$tstate run ls
	check "config format 3: ls exits 1" rc_is 1
	check "config format 3: naming the version found" err_has "version 3"
	check "config format 3: and the versions supported" err_has "versions 1 to 2"
	tamper_restore "config format 3" latest

	tamper_reset keyset
	py flip "$WSDIR/keyset" -5
	tamper_restore "key set" latest
	check "tamper key set: the error names it" err_has "keyset"

	tamper_reset none
	check "tamper: the untouched copy restores (each case failed for its flip alone)" \
		env CAIRN_STATE_DIR="$tstate" "$cairn" restore -q latest "$D/t-out"
	rm -rf "$D/t-out" "$D/store.saved" "$D"/tstate-*

	section "file: rollback"
	run ls --json
	gen=$(tail -n 1 "$TMP/out" | py jget generation)
	cp -a "$D/store" "$D/store.old"
	run snapshot "$WS"
	check "rollback: snapshot $((gen + 1)) exits 0" rc_is 0
	mv "$D/store" "$D/store.new"
	cp -a "$D/store.old" "$D/store"
	run snapshot "$WS"
	check "rollback: snapshot on the old store exits 1" rc_is 1
	check "rollback: naming generation $gen" err_has "generation $gen"
	check "rollback: and generation $((gen + 1))" err_has "generation $((gen + 1))"
	run restore latest "$D/rb"
	check "rollback: restore latest exits 1" rc_is 1
	check "rollback: naming both generations" err_has "generation $gen.*generation $((gen + 1))"
	check "rollback: and restores nothing" nothing_restored "$D/rb"
	check "rollback: --allow-rollback restores the old head" \
		restored latest "$D/rb" "$LATEST" --allow-rollback
	rm -rf "$D/store" "$D/store.old" "$D/rb" "$D/rb.json"
	mv "$D/store.new" "$D/store"

	section "file: kill -9 during a snapshot"
	py big "$D/big" 160 11
	nsnap=$(snapshots)
	packs data >"$D/before-kill"
	ndata=$(wc -l <"$D/before-kill")
	"$cairn" snapshot "$D/big" >"$D/killed.out" 2>&1 &
	pid=$!
	bg_track $pid
	i=0
	while [ "$(packs data | wc -l)" -le "$ndata" ] && [ $i -lt 300 ]; do sleep 0.02; i=$((i + 1)); done
	kill -9 $pid
	bg_wait $pid
	check "kill -9: the snapshot was killed after it had uploaded a pack" \
		test "$bg_rc" -eq 137 -a "$(packs data | wc -l)" -gt "$ndata"
	diag "killed after $(($(packs data | wc -l) - ndata)) new data packs"
	packs data | comm -13 "$D/before-kill" - >"$D/orphans"
	check "kill -9: no snapshot was added" eq "$(snapshots)" "$nsnap"
	check "kill -9: the previous snapshot restores bit for bit" restored latest "$D/rk" "$LATEST"
	run check
	check "kill -9: cairn check exits 0 (unreferenced packs are a warning)" rc_is 0
	t0=$(date +%s)
	run snapshot "$WS"
	check "kill -9: the dead process's lease is taken over at once, and a snapshot works" rc_is 0
	check "kill -9: at once (no wait for the lease to expire)" lt $(($(date +%s) - t0)) 10
	run prune
	check "kill -9: prune exits 0" rc_is 0
	check "kill -9: and removes the packs the killed snapshot left" \
		eq "$(packs data | comm -12 - "$D/orphans" | head -n 3)" ""
	check "kill -9: the latest snapshot still restores bit for bit" restored latest "$D/rk" "$LATEST"
	rm -rf "$D/big" "$D/rk" "$D/rk.json"
}

# ---- S3 only: the lease, a store that fails, kill -9 during prune ------------
s3_only() {
	section "s3: the lease"
	py rand "$WS/lease-test/new.bin" 256 21
	s3_ctl POST /__proxy/reset >/dev/null
	s3_ctl POST "/__proxy/fault?kind=delay:3000&count=1&method=PUT&key=/data/" >/dev/null
	CAIRN_HOST_ID=hostA "$cairn" snapshot "$WS" >"$D/hostA.out" 2>&1 &
	pid=$!
	bg_track $pid
	i=0	# hostA holds the lease once its first pack upload is held up
	while [ "$(s3_faults)" -lt 1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	CAIRN_HOST_ID=hostB run snapshot "$WS"
	check "lease: a second writer (hostB) exits 1 while hostA snapshots" rc_is 1
	check "lease: naming the holder hostA" err_has "hostA"
	bg_wait $pid
	check "lease: hostA's snapshot exits 0" test "$bg_rc" -eq 0 || sed 's/^/# /' "$D/hostA.out"
	CAIRN_HOST_ID=hostB run snapshot "$WS"
	check "lease: once hostA is done, hostB's snapshot works" rc_is 0
	py manifest "$WS" "$D/m-lease.json"
	LATEST=$D/m-lease.json

	section "s3: the store down, then back"
	nsnap=$(snapshots)
	py rand "$WS/lease-test/while-down.bin" 512 22
	s3_ctl POST "/__proxy/outage?ms=6000" >/dev/null
	t0=$(date +%s)
	CAIRN_S3_RETRY_SECONDS=3 run snapshot "$WS"
	check "store down: snapshot exits 1" rc_is 1
	check "store down: with a message that says it gave up reaching the store" err_has "gave up after"
	check "store down: after retrying for the budget, not for ever" lt $(($(date +%s) - t0)) 20
	i=0
	while ! s3_ctl GET /__proxy/stats >/dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	check "store back: no snapshot was added" eq "$(snapshots)" "$nsnap"
	check "store back: the previous snapshot restores bit for bit" restored latest "$D/rd" "$LATEST"

	s3_ctl POST "/__proxy/fault?kind=status:503&count=100000&method=PUT&key=/data/" >/dev/null
	CAIRN_S3_RETRY_SECONDS=3 run snapshot "$WS"
	check "pack uploads failing (503): snapshot exits 1" rc_is 1
	check "pack uploads failing (503): naming the pack and the answer" err_has "data/.*503"
	s3_ctl POST /__proxy/reset >/dev/null
	check "503s over: no snapshot was added" eq "$(snapshots)" "$nsnap"
	check "503s over: the previous snapshot restores bit for bit" restored latest "$D/rd" "$LATEST"
	run snapshot "$WS"
	check "503s over: a snapshot works again" rc_is 0
	py manifest "$WS" "$D/m6.json"
	check "503s over: and restores bit for bit" restored latest "$D/rd" "$D/m6.json"
	rm -rf "$D/rd" "$D/rd.json"
}

# ---- kill -9 during prune (S3, every request slowed so kills land mid-way) ----
prune_kills() {
	section "prune: kill -9 at several moments"
	P=$TMP/prune
	mkdir -p "$P"
	CAIRN_STORE=s3://cairn-test/prune
	CAIRN_STATE_DIR=$P/state
	export CAIRN_STORE CAIRN_STATE_DIR
	run init --create-key
	check "prune: a workspace for prune" rc_is 0
	for i in 0 1 2 3 4 5 6 7; do py rand "$P/src/big$i" 3072 $((100 + i)); done
	for i in 0 1 2 3 4 5 6 7 8 9; do echo "small $i" >"$P/src/small$i"; done
	run snapshot "$P/src" && py manifest "$P/src" "$P/m1.json"
	rm "$P/src/big0" "$P/src/big1" "$P/src/big2" "$P/src/big3" "$P/src/big4" "$P/src/big5" "$P/src/big6"
	py rand "$P/src/new1" 3072 201
	py rand "$P/src/new2" 3072 202
	run snapshot "$P/src" && py manifest "$P/src" "$P/m2.json"
	echo changed >"$P/src/small1"
	py rand "$P/src/new3" 3072 203
	run snapshot "$P/src" && py manifest "$P/src" "$P/m3.json"
	echo added >"$P/src/small-added"
	run snapshot "$P/src" && py manifest "$P/src" "$P/m4.json"
	check "prune: 4 snapshots" eq "$(snapshots)" 4
	run ls --json
	keep3=$(sed -n 3p "$TMP/out" | py jget id | cut -c1-8)
	keep4=$(sed -n 4p "$TMP/out" | py jget id | cut -c1-8)
	run forget --keep-last 2
	check "prune: forget --keep-last 2 exits 0" rc_is 0
	check "prune: 2 snapshots left" eq "$(snapshots)" 2
	pdir=$TMP/s3/cairn-test/prune
	before=$(dir_bytes "$pdir")

	# Each run is killed at a point of its own: a rule holds one request
	# of that kind for 2.5 s, and the prune is killed while it waits.  The
	# proxy then carries the request out (a write that reached the store
	# after its writer died), so the next run starts once it has landed.
	# A run that no longer reaches its point (an earlier one did the work)
	# finishes, which is fine too.
	landed=0
	# A repacked pack is a data or a tree pack (which of them the run
	# rewrites depends on how the snapshots' uploads filled their packs),
	# so that point has a rule for each; the first to fire holds it.
	for phase in "at-once" "repacked-pack-put:method=PUT&key=/data/|method=PUT&key=/tree/" \
		"index-put:method=PUT&key=/index/" "first-delete:method=POST" \
		"lease-release:method=PUT&key=lease:2"; do
		name=${phase%%:*}
		rules=${phase#*:}
		nth=1
		case $rules in *:2) rules=${rules%:2}; nth=2 ;; esac
		s3_ctl POST /__proxy/reset >/dev/null
		if [ "$name" != at-once ]; then
			IFS='|'
			for rule in $rules; do
				[ $nth -eq 2 ] && s3_ctl POST "/__proxy/fault?kind=delay:0&count=1&$rule" >/dev/null
				s3_ctl POST "/__proxy/fault?kind=delay:2500&count=1&$rule" >/dev/null
			done
			unset IFS
		fi
		mark=$(($(wc -l <"$TMP/s3.log") + 1))
		"$cairn" prune >"$P/prune.out" 2>&1 &
		pid=$!
		bg_track $pid
		i=0
		while [ "$name" != at-once ] && [ "$(s3_faults)" -lt $nth ] && [ $i -lt 200 ] &&
			kill -0 $pid 2>/dev/null; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -9 $pid 2>/dev/null
		bg_wait $pid
		[ "$name" != at-once ] && sleep 2.6
		[ -n "${TEST_REPO_DEBUG:-}" ] && diag "$name: $(tail -n +"$mark" "$TMP/s3.log" | grep -aE "fault|POST|PUT")"
		s3_ctl POST /__proxy/reset >/dev/null
		if [ "$bg_rc" -eq 137 ]; then
			diag "prune killed: $name"
			landed=$((landed + 1))
		else
			diag "prune finished (status $bg_rc) before: $name: $(tail -n 3 "$P/prune.out" | tr '\n' ' ')"
		fi
		check "prune killed ($name): kept snapshot 3 restores bit for bit" \
			restored "$keep3" "$P/r" "$P/m3.json"
		check "prune killed ($name): kept snapshot 4 restores bit for bit" \
			restored "$keep4" "$P/r" "$P/m4.json"
	done
	check "prune: the kills landed at 4 or more different points" lt 3 "$landed"
	run prune --json
	check "prune: a prune run to completion exits 0" rc_is 0
	diag "prune: $(cat "$TMP/out")"
	check "prune: kept snapshot 3 restores bit for bit" restored "$keep3" "$P/r" "$P/m3.json"
	check "prune: kept snapshot 4 restores bit for bit" restored "$keep4" "$P/r" "$P/m4.json"
	after=$(dir_bytes "$pdir")
	diag "prune: the workspace went from $before to $after bytes"
	check "prune: the forgotten data is gone (7 files of 3 MiB)" lt "$after" $((before - 15 * 1048576))
	check "prune: and what is left is about the live data (4 files of 3 MiB)" lt "$after" $((13 * 1048576))
	run prune --json
	check "prune: a second prune finds nothing to do" \
		eq "$(jget packs_unreferenced)/$(jget blobs_dead)/$(jget packs_deleted)" 0/0/0
	run check
	check "prune: cairn check exits 0" rc_is 0

	# A prune killed while its index write is in flight, and the next prune
	# at once: the dead one's index lands after the live one has deleted
	# the packs that index lists.  A rerun must still finish the job, and
	# check stay clean.
	# one new pack of 1 MiB that stays and 5 MiB that go: a sure repack
	py rand "$P/src/late/stays" 1024 301
	py rand "$P/src/late/goes" 5120 302
	run snapshot "$P/src"
	rm "$P/src/late/goes"
	run snapshot "$P/src" && py manifest "$P/src" "$P/m5.json"
	run forget --keep-last 1
	s3_ctl POST /__proxy/reset >/dev/null
	s3_ctl POST "/__proxy/fault?kind=delay:3000&count=1&method=PUT&key=/index/" >/dev/null
	"$cairn" prune >"$P/prune.out" 2>&1 &
	pid=$!
	bg_track $pid
	i=0
	while [ "$(s3_faults)" -lt 1 ] && [ $i -lt 100 ] && kill -0 $pid 2>/dev/null; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -9 $pid 2>/dev/null
	bg_wait $pid
	check "late index: the first prune was killed while its index write was held" test "$bg_rc" -eq 137
	run prune
	check "late index: a second prune at once exits 0" rc_is 0
	sleep 3.2	# the dead prune's index lands
	s3_ctl POST /__proxy/reset >/dev/null
	check "late index: the kept snapshot restores bit for bit" restored latest "$P/r" "$P/m5.json"
	run prune
	check "late index: a third prune exits 0 (no index entry names a deleted pack)" rc_is 0
	run check
	check "late index: cairn check exits 0" rc_is 0
	rm -rf "$P/r" "$P/r.json"
}

# ---- main -------------------------------------------------------------------
# TEST_REPO_PARTS (for working on this test): a subset of "file s3 prune"
parts=${TEST_REPO_PARTS:-file s3 prune}
case " $parts " in *" file "*)
	scenario file "file://$TMP/file-run/store"
	file_only
esac
case " $parts " in *" s3 "* | *" prune "*) s3_start ${TEST_REPO_DEBUG:+--verbose} ;; esac
case " $parts " in *" s3 "*)
	scenario s3 s3://cairn-test/ws1
	s3_only
esac
case " $parts " in *" prune "*)
	CAIRN_KEY=file:$TMP/prune-key
	export CAIRN_KEY
	prune_kills
esac

section "done"
finish
