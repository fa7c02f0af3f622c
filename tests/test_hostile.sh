#!/bin/sh
# test_hostile.sh - the command line, the environment and cairn.conf with
# hostile values: absurd sizes, negative numbers, paths with "..", very long
# names, missing and unreadable files, a store URL with a bad scheme.  Each
# must give a one-line error (what, where, what to do), a non-zero exit
# below 128 (no crash; under the sanitizer build no report either), and
# leave the store and the target untouched (a usage line may follow the
# error on a bad command line).  Prints TAP.
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"
KEYADM=${CAIRN_BUILDDIR:-.}/cairn-keyadm
CAIRND=${CAIRN_BUILDDIR:-.}/cairnd

unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID CAIRN_CONTROL_PLANE \
	CAIRN_STORE CAIRN_KEY CAIRN_CRASH_AFTER_WRITES
CAIRN_CONFIG=$TMP/no-cairn.conf
CAIRN_STATE_DIR=$TMP/state
export CAIRN_CONFIG CAIRN_STATE_DIR

S=file://$TMP/store
K=file:$TMP/key
mkdir -p "$TMP/ws/sub" "$TMP/target" "$TMP/mnt"
echo hello >"$TMP/ws/sub/a.txt"
"$CAIRN" init --store "$S" --key "$K" --create-key -q >/dev/null
"$CAIRN" snapshot "$TMP/ws" --store "$S" --key "$K" -q
echo "kept" >"$TMP/target/kept.txt"

digest() {	# digest: the store and the target dir, names and bytes (the lease,
	# which a command that fails may take and give back, aside)
	(cd "$TMP" && find store target ! -name lease -printf '%p %s %m\n' | sort &&
		find store target -type f ! -name lease -exec cat {} + | sha256sum)
}
listing() { (cd "$TMP" && find store target -printf '%p %s %m\n' | sort); }
before=$(digest)
listing >"$TMP/listing.before"

long=$(python3 -c 'print("w" * 5000)')
n=0
# refuse WHAT CMD...: the command fails cleanly
refuse() {
	_what=$1
	shift
	"$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	_rc=$?
	# a usage line may follow the error on a bad command line
	_lines=$(grep -v '^usage: ' "$TMP/err" | grep -c .)
	if [ $_rc -ge 1 ] && [ $_rc -lt 128 ] && [ "$_lines" -eq 1 ] &&
		! grep -q -e 'Sanitizer' -e 'runtime error' "$TMP/err" && [ "$(digest)" = "$before" ]; then
		check "$_what: $(head -n 1 "$TMP/err" | cut -c1-150)" true
	else
		check "$_what: exit $_rc, $_lines line(s) of error, store and target untouched" false
		sed 's/^/# /' "$TMP/err" | head -5
		[ "$(digest)" = "$before" ] || { diag "the store or the target changed:"; listing | diff "$TMP/listing.before" - | head -5 | sed 's/^/# /'; }
	fi
}

C="--store $S --key $K"
# shellcheck disable=SC2086
{
refuse "a store URL with a bad scheme" "$CAIRN" ls --store ftp://example.com/x --key "$K"
refuse "a store URL with no scheme" "$CAIRN" ls --store /var/lib/cairn --key "$K"
refuse "an s3 URL without a bucket" "$CAIRN" ls --store s3:// --key "$K"
refuse "a missing key file" "$CAIRN" ls --store "$S" --key file:$TMP/no-such-key
refuse "a key file that is a directory" "$CAIRN" ls --store "$S" --key file:$TMP/ws
cp "$TMP/key" "$TMP/key-open" && chmod 644 "$TMP/key-open"
refuse "a key file others can read" "$CAIRN" ls --store "$S" --key file:$TMP/key-open
refuse "a key file path of 5000 bytes" "$CAIRN" ls --store "$S" --key "file:$TMP/$long"
if [ "$(id -u)" -eq 0 ]; then
	cp "$TMP/key" "$TMP/key-theirs" && chmod 600 "$TMP/key-theirs" && chown 4321 "$TMP/key-theirs"
	refuse "a key file another user owns (and could replace)" "$CAIRN" ls --store "$S" --key file:$TMP/key-theirs
	printf '[workspace main]\nstore = %s\nkey = exec:cat %s/key\n' "$S" "$TMP" >"$TMP/exec.conf"
	chmod 666 "$TMP/exec.conf"
	refuse "a cairn.conf others may write, with key = exec:" "$CAIRN" ls -c "$TMP/exec.conf" -w main
	check "saying why" grep -q "exec: key provider, a command run as uid 0, but others may write it" "$TMP/err"
	chmod 644 "$TMP/exec.conf"
	check "the same cairn.conf at 0644 works" "$CAIRN" ls -c "$TMP/exec.conf" -w main -q
fi
refuse "an unknown key provider" "$CAIRN" ls --store "$S" --key vault:secret/x
refuse "a workspace id of 5000 bytes" "$CAIRN" ls $C --workspace "$long"
refuse "a workspace id with .." "$CAIRN" ls $C --workspace ../../etc
refuse "a tenant with a slash" "$CAIRN" ls $C --tenant a/../b
refuse "a tenant of 5000 bytes" "$CAIRN" ls $C --tenant "$long"
refuse "a missing config file" "$CAIRN" ls -c "$TMP/no-such.conf" -w main
refuse "a snapshot of a missing directory" "$CAIRN" snapshot "$TMP/no-such-dir" $C
refuse "a snapshot id that does not exist" "$CAIRN" restore deadbeefdeadbeef "$TMP/target/r" $C
refuse "a snapshot id that is not hex" "$CAIRN" restore '../../x' "$TMP/target/r" $C
refuse "restore --include with .." "$CAIRN" restore latest "$TMP/target/r2" $C --include ../../etc/passwd
refuse "restore --include of a path not in the snapshot" "$CAIRN" restore latest "$TMP/target/r3" $C --include no/such/path
refuse "forget --keep-last -3" "$CAIRN" forget --keep-last -3 $C
refuse "forget --keep-last 1e999" "$CAIRN" forget --keep-last 1e999 $C
refuse "mount --cache-size -5G" "$CAIRN" mount "$TMP/mnt" $C --cache-size -5G --cache "$TMP/c1"
refuse "mount --cache-size 99999999999999999999T" "$CAIRN" mount "$TMP/mnt" $C --cache-size 99999999999999999999T --cache "$TMP/c2"
refuse "mount --cache-size 10Q" "$CAIRN" mount "$TMP/mnt" $C --cache-size 10Q --cache "$TMP/c3"
refuse "CAIRN_LEASE_TTL=-5" env CAIRN_LEASE_TTL=-5 "$CAIRN" prune $C
refuse "CAIRN_S3_RETRY_SECONDS=abc" env CAIRN_S3_RETRY_SECONDS=abc "$CAIRN" ls --store s3://b/p --key "$K"
refuse "an unknown option" "$CAIRN" ls --frobnicate
refuse "cairn-keyadm kek create into a missing directory" "$KEYADM" kek create --out "$TMP/no/such/dir/k"
refuse "cairn-keyadm rewrap from a missing key" "$KEYADM" rewrap --store "$S" --from "$TMP/missing.key" --to "$TMP/key"
refuse "cairn-keyadm reencrypt with a bad store" "$KEYADM" reencrypt --store nope://x --key "$K"
}

# cairn.conf with hostile values: cairn and cairnd name file:line
conf_case() {	# conf_case WHAT SECTION-LINES...
	_what=$1
	shift
	printf '%s\n' "[workspace main]" "store = $S" "key = $K" "mountpoint = $TMP/mnt" "$@" >"$TMP/h.conf"
	refuse "cairn.conf: $_what" "$CAIRN" ls -c "$TMP/h.conf" -w main
	check "cairnd --check: $_what: the error names file:line" grep -q "h.conf:[0-9]" "$TMP/err"
	refuse "cairnd --check: $_what" "$CAIRND" -c "$TMP/h.conf" --check
}
conf_case "cache_size = -1" "cache_size = -1"
conf_case "cache_size = 1e400G" "cache_size = 1e400G"
conf_case "idle_after = -5m" "idle_after = -5m"
conf_case "interval = 99999999999999999999d" "interval = 99999999999999999999d"
conf_case "keep_last = -2" "keep_last = -2"
conf_case "a line of 5000 bytes" "store = $long"
conf_case "an unknown key" "frobnicate = 1"
conf_case "a key outside any section" "[]" "store = x"

check "after all of it the store and the target are as they were" test "$(digest)" = "$before"
check "and the workspace still restores" "$CAIRN" restore latest "$TMP/r-final" $C -q
finish
