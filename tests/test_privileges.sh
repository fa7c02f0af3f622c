#!/bin/sh
# test_privileges.sh - a restore does not hand out privilege: setuid and
# setgid bits of files, device nodes and security.*/trusted.* xattrs of a
# snapshot are left out (and counted, and said) unless --privileged, so a
# compromised tree (an agent's ~/.claude) cannot give a new VM root again;
# cairnd's agent-config restore is such a restore.  Ordinary modes, a
# setgid directory, owners, user.* xattrs and fifos are kept.
. "$CAIRN_SRCDIR/tests/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root: device nodes, trusted.* xattrs and other owners"
	exit 0
fi
D=$TMP/priv
mkdir -p "$D/store" "$D/src/.claude/bin" "$D/src/shared"
CAIRN_STORE=file://$D/store
CAIRN_KEY=file:$D/tenant.key
CAIRN_STATE_DIR=$D/state
export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR
unset CAIRN_WORKSPACE CAIRN_CONFIG

check "init" sh -c '"$1" init --create-key -q >/dev/null' _ "$CAIRN"
# what an agent that once had root could leave behind
cp /bin/true "$D/src/.claude/bin/sh"
chown 0:0 "$D/src/.claude/bin/sh"
chmod 6755 "$D/src/.claude/bin/sh"
mknod "$D/src/.claude/mem" c 1 1
setfattr -n trusted.planted -v yes "$D/src/.claude/bin/sh"
setfattr -n security.planted -v yes "$D/src/.claude/bin/sh" 2>/dev/null
# and what is ordinary
echo settings >"$D/src/.claude/settings.json"
chown 1234:1234 "$D/src/.claude/settings.json"
chmod 640 "$D/src/.claude/settings.json"
setfattr -n user.kept -v yes "$D/src/.claude/settings.json"
chmod 2775 "$D/src/shared"
mkfifo "$D/src/.claude/fifo"
check "a snapshot of it" "$CAIRN" snapshot -q "$D/src"

"$CAIRN" restore latest "$D/plain" --json >"$D/plain.json" 2>"$D/plain.err"
check "a restore without --privileged exits 0" test $? -eq 0
check "the setuid and setgid bits of a file are gone" test "$(stat -c %a "$D/plain/.claude/bin/sh")" = 755
check "the device node is not made" test ! -e "$D/plain/.claude/mem"
check "the trusted.* xattr is not set" sh -c '! getfattr -n trusted.planted "$1" >/dev/null 2>&1' \
	_ "$D/plain/.claude/bin/sh"
check "it says what it left out, and how to keep it" grep -q "left out .* (restore --privileged keeps them)" "$D/plain.err"
check "--json counts it" grep -q '"privileges_left_out": *[3-9]' "$D/plain.json"
check "ordinary modes and owners are kept" test "$(stat -c '%a %u:%g' "$D/plain/.claude/settings.json")" = "640 1234:1234"
check "user.* xattrs are kept" sh -c 'getfattr -n user.kept "$1" >/dev/null 2>&1' _ "$D/plain/.claude/settings.json"
check "a setgid directory is kept (it gives no privilege)" test "$(stat -c %a "$D/plain/shared")" = 2775
check "a fifo is kept" test -p "$D/plain/.claude/fifo"

check "restore --privileged" "$CAIRN" restore -q --privileged latest "$D/full"
check "keeps the setuid and setgid bits" test "$(stat -c %a "$D/full/.claude/bin/sh")" = 6755
check "makes the device node" test -c "$D/full/.claude/mem"
check "sets the trusted.* xattr" sh -c 'getfattr -n trusted.planted "$1" >/dev/null 2>&1' _ "$D/full/.claude/bin/sh"
finish
