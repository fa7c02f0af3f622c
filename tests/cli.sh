#!/bin/sh
# cli.sh - the `cairn` command as a user runs it: help, usage errors, and
# `cairn selftest` on the embedded file store and on S3 through the
# verifying proxy.  Prints TAP.
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"
cairn=$CAIRN
srcdir=$SRCDIR
tmp=$TMP

out() { cat "$tmp/out" "$tmp/err" | sed 's/^/# /'; }

run() {	# run CMD...: runs cairn, keeps stdout/stderr, sets $rc
	"$cairn" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

run help
check "help lists selftest" grep -q '^  selftest ' "$tmp/out"
check "help exits 0" test "$rc" -eq 0
for cmd in $(awk '/^  [a-z]/ {print $1}' "$tmp/out"); do
	check "cairn(1) documents '$cmd'" grep -q "^\.Cm $cmd" "$srcdir/man/cairn.1"
	check "README documents '$cmd'" grep -q "cairn $cmd" "$srcdir/README.md"
done

run frobnicate
check "an unknown command exits 2" test "$rc" -eq 2
check "and says so in one line" test "$(wc -l <"$tmp/err")" -eq 1

run selftest --no-such-flag
check "a bad flag exits 2 with the usage" sh -c "[ $rc -eq 2 ] && grep -q 'usage: cairn selftest' '$tmp/err'"

TMPDIR=$tmp run selftest
check "selftest on the embedded file store passes" test "$rc" -eq 0 || out
check "selftest reports every step" grep -q 'all [0-9]* steps passed' "$tmp/out"
check "selftest leaves nothing behind" test -z "$(ls "$tmp" | grep cairn-selftest)"

run selftest --store "file://$tmp/user-store"
check "selftest on a given file store passes" test "$rc" -eq 0 || out
check "and removes what it wrote" test -z "$(find "$tmp/user-store" -type f ! -name .cairn-lock)"

# a command that only reads never makes a store: a wrong URL is one line
for cmd in "ls" "check" "cat head" "stats" "restore latest $tmp/nowhere"; do
	run $cmd --store "file://$tmp/no-such-store"
	check "cairn $cmd on a file store that does not exist exits 1 and creates nothing" \
		sh -c "[ $rc -eq 1 ] && [ ! -e '$tmp/no-such-store' ]" || out
	check "saying so in one line that names the store" sh -c \
		"[ \$(wc -l <'$tmp/err') -eq 1 ] && grep -q 'file://$tmp/no-such-store.*does not exist' '$tmp/err'" || out
	rm -rf "$tmp/no-such-store"
done

run selftest --store "ftp://example/x"
check "a bad store URL exits 1" test "$rc" -eq 1
check "with one line that names the URL" sh -c "[ \$(wc -l <'$tmp/err') -eq 1 ] && grep -q 'ftp://example/x' '$tmp/err'"

# cairn.conf: sections picked with -w, bad lines named by file:line
cat >"$tmp/good.conf" <<EOF
# a comment
[workspace main]
store = file://$tmp/conf-store
key = file:$tmp/conf-key
keep_last = 3

[agent claude]
command = claude
EOF
CAIRN_STATE_DIR=$tmp/state run init --create-key -c "$tmp/good.conf" -w main
check "init takes store and key from the [workspace main] section" test "$rc" -eq 0 || out
check "and wrote the key the section names" test -f "$tmp/conf-key"
CAIRN_STATE_DIR=$tmp/state run ls -c "$tmp/good.conf"
check "the only workspace section is used without -w; other sections are skipped" test "$rc" -eq 0 || out
CAIRN_STATE_DIR=$tmp/state run ls -c "$tmp/good.conf" -w nosuch
check "-w with a missing section exits 1" test "$rc" -eq 1
check "and names the section" grep -q "no \[workspace nosuch\] section" "$tmp/err"
printf '[workspace main]\nstore = file:///x\nstorage_class = cold\n' >"$tmp/bad.conf"
run ls -c "$tmp/bad.conf"
check "an unknown key exits 1" test "$rc" -eq 1
check "with file:line and the key" grep -q "bad.conf:3: unknown key 'storage_class'" "$tmp/err" || out
printf '[workspace main]\ninterval = soon\n' >"$tmp/bad2.conf"
run ls -c "$tmp/bad2.conf"
check "a bad duration exits 1 naming file:line" sh -c "[ $rc -eq 1 ] && grep -q 'bad2.conf:2:.*not a duration' '$tmp/err'" || out
CAIRN_STATE_DIR=$tmp/state run ls -c "$tmp/good.conf" --key "file:$tmp/nokey"
check "a flag beats the config file (the missing key file given by --key)" sh -c "[ $rc -eq 1 ] && grep -q nokey '$tmp/err'" || out
chmod 644 "$tmp/conf-key"
CAIRN_STATE_DIR=$tmp/state run ls -c "$tmp/good.conf"
check "a key file readable by others is refused" sh -c "[ $rc -eq 1 ] && grep -q 'too open' '$tmp/err'" || out

# S3 through the R2-like proxy: the real signer against a real verifier.
s3_start
run selftest --store s3://cairn-test/ci
check "selftest on S3 through the verifying proxy passes" test "$rc" -eq 0 || out
check "selftest names the S3 store" grep -q 's3://cairn-test/ci' "$tmp/out"

AWS_SECRET_ACCESS_KEY=wrong-secret run selftest --store s3://cairn-test/ci
check "a wrong secret key fails with exit 1" test "$rc" -eq 1
check "and the error says the store refused the signature" grep -qi 'signature\|access' "$tmp/err" || out
check "and never prints the secret" sh -c "! grep -q wrong-secret '$tmp/out' '$tmp/err'"

finish
