#!/bin/sh
# test_check.sh - `cairn check`, `cat`, `stats` and `diff` on a file://
# store: a clean repository first, then one kind of damage at a time (a
# flipped byte in a data pack, in a tree pack, a deleted pack, a truncated
# index object, an extra pack), each undone before the next.  Prints TAP.
set -u

cairn="${CAIRN_BUILDDIR:-.}/cairn"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-check-XXXXXX")
n=0
failed=0

cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

export CAIRN_STORE="file://$tmp/store" CAIRN_KEY="file:$tmp/key" CAIRN_STATE_DIR="$tmp/state"
unset CAIRN_TENANT CAIRN_WORKSPACE

check() {	# check DESCRIPTION COMMAND...: ok when the command succeeds
	desc=$1; shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		failed=$((failed + 1))
		cat "$tmp/out" "$tmp/err" 2>/dev/null | sed 's/^/# /'
	fi
}

run() {	# run CMD...: runs cairn, keeps stdout/stderr, sets $rc
	"$cairn" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

has() { grep -q -e "$1" "$tmp/out"; }	# has PATTERN: stdout has a matching line
has_line() { grep -qxF -e "$1" "$tmp/out"; }	# has_line TEXT: stdout has exactly this line

# json EXPR: evaluates a Python expression over the last JSON line of
# stdout (as `j`) and succeeds when it is true
json() {
	python3 -c '
import json, sys
try:
    lines = [l for l in open(sys.argv[1]) if l.strip()]
    j = json.loads(lines[-1])
    sys.exit(0 if eval(sys.argv[2]) else 1)
except Exception as e:
    print("# %s: %s" % (type(e).__name__, e))
    sys.exit(1)' "$tmp/out" "$1"
}

# json_all EXPR: the same over the whole of stdout as one JSON document
json_all() {
	python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    sys.exit(0 if eval(sys.argv[2]) else 1)
except Exception as e:
    print("# %s: %s" % (type(e).__name__, e))
    sys.exit(1)' "$tmp/out" "$1"
}

# flip FILE OFFSET: xors one byte of FILE
flip() {
	python3 -c '
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x40]))' "$1" "$2"
}

# ---- a small repository with two snapshots -----------------------------------
src=$tmp/src
mkdir -p "$src/sub"
printf 'hello\n' >"$src/a"
printf 'world\n' >"$src/sub/b"
printf 'unchanged\n' >"$src/sub/same"
printf 'a file that becomes a directory\n' >"$src/t"
head -c 200000 /dev/urandom >"$src/big"

run init --create-key
check "init --create-key exits 0" test "$rc" -eq 0
run snapshot -q "$src"
check "first snapshot exits 0" test "$rc" -eq 0

printf 'hello again\n' >"$src/a"	# content
chmod 600 "$src/sub/b"			# metadata only
printf 'new\n' >"$src/sub/c"		# added
rm "$src/big"				# removed
rm "$src/t" && mkdir "$src/t"		# type
run snapshot -q "$src"
check "second snapshot exits 0" test "$rc" -eq 0
if [ "$failed" -ne 0 ]; then
	echo "Bail out! no repository to check"
	exit 1
fi

ws=$(ls "$tmp/store/tenants/default/workspaces")
W=$tmp/store/tenants/default/workspaces/$ws
data_pack=$(cd "$W" && ls data/*/* | head -n 1)
tree_pack=$(cd "$W" && ls tree/*/* | head -n 1)
index_obj=$(cd "$W" && ls index/* | head -n 1)

# ---- a clean repository ---------------------------------------------------------
run check
check "check on a clean repository exits 0" test "$rc" -eq 0
check "and says so in a one-line summary" sh -c "[ \$(wc -l <'$tmp/out') -eq 1 ] && grep -q '^no damage: 2 snapshots' '$tmp/out'"
run check --read-data
check "check --read-data on a clean repository exits 0" test "$rc" -eq 0
check "and counts the blobs it read" has "blobs read"
run check --json --read-data
check "check --json ends with a summary: ok, 2 snapshots, blobs read" \
	json 'j["ok"] and j["snapshots"] == 2 and j["blobs_read"] > 0 and j["damage"] == 0'
run check extra-argument
check "check with an argument is a usage error (exit 2)" test "$rc" -eq 2

# ---- cat ------------------------------------------------------------------------
run cat head
check "cat head exits 0" test "$rc" -eq 0
check "cat head is the head record as JSON, generation 2" json_all 'j["generation"] == 2 and len(j["snapshot"]) == 32'
run cat --json snapshot latest
check "cat snapshot latest is the head's snapshot record" \
	json 'j["generation"] == 2 and "workspace" in j["roots"] and j["stats"]["files"] == 4'
latest_root=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read())["roots"]["workspace"])' "$tmp/out")
first=$("$cairn" ls --json | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin][0]["id"])')
second=$("$cairn" ls --json | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin][-1]["id"])')
run cat --json snapshot "$(echo "$first" | cut -c1-8)"
check "cat snapshot takes an id prefix" json 'j["generation"] == 1 and j["parent"] is None'
run cat config
check "cat config shows the workspace id" has "\"workspace\":\"$ws\""
run cat --json tree "$latest_root"
check "cat tree lists the root's entries and a summary" json 'j["entries"] == 3'
check "cat tree names the file a with its blobs" has '"name":"a"'
blob=$(grep '"name":"a"' "$tmp/out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"][0])')
run cat blob "$(echo "$blob" | cut -c1-12)"
check "cat blob writes the file's bytes" sh -c "printf 'hello again\n' | cmp -s - '$tmp/out'"
run cat pack "$data_pack"
check "cat pack lists its header entries" sh -c "grep -q '^pack $data_pack: ' '$tmp/out' && grep -q ' raw ' '$tmp/out'"
run cat --json index "$index_obj"
check "cat index gives its packs and entry counts" json 'j["packs"] >= 2 and j["entries"] >= 2'
key=$(cd "$W" && ls keys | head -n 1)
run cat key "keys/$key"
check "cat key shows the wrapped key's header" sh -c "grep -q '\"kek_id\"' '$tmp/out' && ! grep -q 'cairn-kek' '$tmp/out'"
run cat nonsense
check "cat of an unknown kind is a usage error (exit 2)" test "$rc" -eq 2

# ---- stats ----------------------------------------------------------------------
run stats --json
check "stats --json counts 2 snapshots" json 'j["snapshots"] == 2'
check "stats --json counts packs of both kinds and their bytes" \
	json 'j["data_packs"] >= 1 and j["tree_packs"] >= 1 and j["packs"] == j["data_packs"] + j["tree_packs"] and j["stored_bytes"] > 200000'
check "stats --json: blobs, raw bytes and ratios" \
	json 'j["blobs"] == j["data_blobs"] + j["tree_blobs"] and j["raw_bytes"] >= 200000 and j["dedup_ratio"] > 0 and j["compression_ratio"] > 0'
check "stats --json: the latest snapshot's files" \
	json 'j["latest"]["generation"] == 2 and j["latest"]["files"] == 4'
run stats
check "stats prints a table" sh -c "grep -q '^snapshots  *2$' '$tmp/out'"

# ---- diff -----------------------------------------------------------------------
run diff "$first" "$second"
check "diff exits 0" test "$rc" -eq 0
check "diff: content change is M" has_line "M /a"
check "diff: removed file is -" has_line "- /big"
check "diff: added file is +" has_line "+ /sub/c"
check "diff: chmod only is m" has_line "m /sub/b"
check "diff: file to directory is T" has_line "T /t/"
check "diff: an unchanged file is not listed" sh -c "! grep -q ' /sub/same$' '$tmp/out'"
check "diff: summary counts" has ": 1 added, 1 removed, 1 modified, [0-9]* metadata only, 1 type changed$"
run diff --json "$first" "$second"
check "diff --json summary" json 'j["added"] == 1 and j["removed"] == 1 and j["modified"] == 1 and j["type_changed"] == 1 and j["metadata"] >= 1'
run diff latest latest
check "diff of a snapshot with itself lists nothing" sh -c "[ \$(wc -l <'$tmp/out') -eq 1 ] && grep -q ': 0 added, 0 removed, 0 modified, 0 metadata only, 0 type changed' '$tmp/out'"

# ---- damage, one at a time ----------------------------------------------------------
cp "$W/$data_pack" "$tmp/saved"
flip "$W/$data_pack" 30		# inside the first sealed blob
run check
check "a flipped byte in a data pack's blobs: check (no data read) exits 0" test "$rc" -eq 0
run check --read-data
check "check --read-data exits 1" test "$rc" -eq 1
check "and names the pack" has "^damaged $data_pack: "
cp "$tmp/saved" "$W/$data_pack"

cp "$W/$tree_pack" "$tmp/saved"
flip "$W/$tree_pack" 30
run check
check "a flipped byte in a tree pack's blobs: check exits 1" test "$rc" -eq 1
check "and names the pack" has "$tree_pack"
cp "$tmp/saved" "$W/$tree_pack"

size=$(wc -c <"$W/$tree_pack")
flip "$W/$tree_pack" $((size - 20))	# inside the sealed header
run check
check "a flipped byte in a tree pack's header: check exits 1" test "$rc" -eq 1
check "and names the pack as damaged" has "^damaged $tree_pack: "
cp "$tmp/saved" "$W/$tree_pack"

mv "$W/$data_pack" "$tmp/saved"
run check
check "a deleted data pack: check exits 1" test "$rc" -eq 1
check "and names it as missing" has "^missing $data_pack: "
mv "$tmp/saved" "$W/$data_pack"

cp "$W/$index_obj" "$tmp/saved"
head -c 40 "$tmp/saved" >"$W/$index_obj"
run check
check "a truncated index object: check exits 1" test "$rc" -eq 1
check "and names it" has "^damaged $index_obj: "
cp "$tmp/saved" "$W/$index_obj"

run check
check "the repository is clean again" test "$rc" -eq 0

extra=data/ee/ee0123456789abcdef0123456789abcd
mkdir -p "$W/data/ee"
cp "$W/$data_pack" "$W/$extra"
run check
check "an extra pack no index lists: check exits 0" test "$rc" -eq 0
check "and reports it as unreferenced" has "^unreferenced $extra: "
check "the summary counts one warning" has "; 1 warning$"
run check --json
check "check --json reports it as a warning, not damage" \
	sh -c "grep -q '\"problem\":\"unreferenced\"' '$tmp/out' && grep -q '\"damage\":false' '$tmp/out'"
rm "$W/$extra"	# only it: a real pack may live in data/ee too

snap=$(cd "$W" && ls snapshots | head -n 1)
cp "$W/snapshots/$snap" "$tmp/saved"
flip "$W/snapshots/$snap" 50
run ls
check "a damaged snapshot record: ls still lists the others" sh -c "[ \$(grep -c '^[0-9a-f]\{8\} ' '$tmp/out') -eq 1 ]"
check "and exits 1, saying to run check" sh -c "[ $rc -eq 1 ] && grep -q \"run 'cairn check'\" '$tmp/err'"
check "and warns about the one it skips" grep -q "skipping snapshot ${snap%"${snap#????????}"}" "$tmp/err"
run check
check "check names the damaged record" has "snapshots/$snap"
cp "$tmp/saved" "$W/snapshots/$snap"

# a symlink planted in the restore target must not lead the restore outside
mkdir -p "$tmp/target" "$tmp/outside"
ln -s "$tmp/outside" "$tmp/target/sub"
run restore latest "$tmp/target"
check "restore over a planted symlink exits 0" test "$rc" -eq 0
check "and writes nothing where the symlink pointed" sh -c "[ -z \"\$(ls -A '$tmp/outside')\" ]"
check "the directory takes the symlink's place" sh -c "[ -d '$tmp/target/sub' ] && [ ! -L '$tmp/target/sub' ]"

# an agent-config root from cairn snapshot DIR: one entry per named path,
# as a live snapshot (and cairnd's restore) has it
H=$tmp/home
mkdir -p "$H/.claude/projects" "$H/.claude/debug" "$tmp/ws-ac"
echo '{"theme": "dark"}' >"$H/.claude/settings.json"
echo 'a session' >"$H/.claude/projects/s1.jsonl"
echo 'churn' >"$H/.claude/debug/log.txt"
echo '{"onboarded": true}' >"$H/.claude.json"
echo 'work' >"$tmp/ws-ac/file"
run snapshot "$tmp/ws-ac" --agent-config "$H/.claude" --agent-config "$H/.claude.json" \
	--agent-config-exclude '.claude/debug'
check "snapshot DIR with two --agent-config paths and an exclude" test "$rc" -eq 0
rm -rf "$tmp/ac"
run restore --root agent-config latest "$tmp/ac"
check "its agent-config root holds .claude and .claude.json by name" sh -c '
	cmp -s "$1/.claude/settings.json" "$2/.claude/settings.json" &&
	cmp -s "$1/.claude/projects/s1.jsonl" "$2/.claude/projects/s1.jsonl" &&
	cmp -s "$1/.claude.json" "$2/.claude.json"' _ "$H" "$tmp/ac"
check "without what the exclude names" test ! -e "$tmp/ac/.claude/debug"
run snapshot "$tmp/ws-ac" --agent-config "$H/.claude-typo"
check "a missing --agent-config path: exit 1, one line naming it" sh -c '
	[ "$1" -eq 1 ] && [ "$(wc -l <"$2")" -eq 1 ] && grep -q "claude-typo: No such file" "$2"' _ "$rc" "$tmp/err"

echo "1..$n"
[ "$failed" -eq 0 ]
