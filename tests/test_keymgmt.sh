#!/bin/sh
# test_keymgmt.sh - key management end to end: the exec: and https:// key
# providers (the reference control plane unwrapping over TLS with a private
# CA, and refusing a wrong token, a server that is down, a malformed answer,
# a certificate from another CA), anti-rollback through the control plane
# for a VM with no state dir, and cairn-keyadm: kek create/list, rewrap of
# 50 workspaces killed half way and run again, verify, dek rotate,
# reencrypt killed half way, then --retire.  Stores: file:// and s3rver
# through the verifying proxy.  Prints TAP.
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"
KEYADM=${CAIRN_BUILDDIR:-.}/cairn-keyadm

unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID CAIRN_STORE CAIRN_KEY \
	CAIRN_CONTROL_PLANE CAIRN_CONTROL_PLANE_TOKEN_FILE CAIRN_CONTROL_PLANE_CA_FILE
CAIRN_CONFIG=$TMP/no-cairn.conf
CAIRN_STATE_DIR=$TMP/state
export CAIRN_CONFIG CAIRN_STATE_DIR

start=$(date +%s)
section() { diag "--- $1 ($(($(date +%s) - start)) s)"; }

run() {	# run CMD...: output kept in $TMP/out and $TMP/err; sets $rc
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	return $rc
}
show() { cat "$TMP/out" "$TMP/err" | head -n 20 | sed 's/^/# /'; }
rc_is() { [ "$rc" -eq "$1" ] || { diag "exit status $rc, expected $1"; show; false; }; }
err_has() { grep -q -- "$1" "$TMP/err" || { diag "stderr lacks '$1':"; show; false; }; }
err_lacks() { ! grep -q -- "$1" "$TMP/err" || { diag "stderr holds '$1':"; show; false; }; }
out_has() { grep -q -- "$1" "$TMP/out" || { diag "stdout lacks '$1':"; show; false; }; }
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || { diag "stderr is not one line:"; show; false; }; }
eq() { [ "$1" = "$2" ] || { diag "'$1' != '$2'"; false; }; }
jget() { json_get "$1" <"$TMP/out"; }

# same A B: the two trees have the same names, bytes and modes
same() {
	diff -r "$1" "$2" >/dev/null &&
		[ "$(cd "$1" && find . -mindepth 1 -printf '%p %m %y\n' | sort)" = "$(cd "$2" && find . -mindepth 1 -printf '%p %m %y\n' | sort)" ] ||
		{ diag "$1 and $2 differ"; false; }
}

# killed_after SECONDS FAULT KEY CMD...: runs CMD with every store request
# for a key containing KEY slowed by FAULT (delay:MS), kill -9s it after
# SECONDS, then lifts the fault; $bg_rc is its status (137: killed)
killed_after() {
	_secs=$1 _fault=$2 _key=$3
	shift 3
	s3_ctl POST "/__proxy/fault?kind=$_fault&count=100000&key=$_key" >/dev/null
	"$@" >"$TMP/killed.out" 2>&1 &
	_pid=$!
	bg_track $_pid
	sleep "$_secs"
	[ "$_pid" -gt 1 ] && kill -9 "$_pid"
	bg_wait $_pid
	s3_ctl POST /__proxy/reset >/dev/null
}

WS=$TMP/ws
mkdir -p "$WS/sub/deeper"
head -c 3000000 /dev/urandom >"$WS/big.bin"
head -c 70000 /dev/urandom >"$WS/sub/mid.bin"
echo "hello keys" >"$WS/sub/deeper/note.txt"
chmod 640 "$WS/sub/deeper/note.txt"

# ---- providers on a file:// store ---------------------------------------
section "exec: provider"
FS=file://$TMP/store
run "$CAIRN" init --store "$FS" --key "file:$TMP/k1" --create-key --tenant t1 --json
check "init a workspace with a new tenant key" rc_is 0
W1=$(jget workspace)
set -- --store "$FS" --tenant t1 --workspace "$W1"
run "$CAIRN" snapshot "$WS" "$@" --key "file:$TMP/k1" -q
check "a snapshot with the file: provider" rc_is 0

run "$CAIRN" restore latest "$TMP/r-exec" "$@" --key "exec:echo fetching >&2; cat $TMP/k1"
check "exec: a command that prints the tenant key: restore exits 0" rc_is 0
check "exec: the restored tree is bit for bit the snapshot's" same "$WS" "$TMP/r-exec"

AWS_SECRET_ACCESS_KEY=exec-env-sentinel CAIRN_CONTROL_PLANE_TOKEN=exec-env-sentinel \
	run "$CAIRN" restore latest "$TMP/r-exec-env" "$@" --key "exec:env >$TMP/exec.env; cat $TMP/k1"
check "exec: a command run with secrets in cairn's environment: restore exits 0" rc_is 0
check "exec: the command gets none of them" sh -c '! grep -q exec-env-sentinel "$1"' _ "$TMP/exec.env"
check "exec: but a PATH and a HOME" sh -c 'grep -q "^PATH=" "$1" && grep -q "^HOME=" "$1"' _ "$TMP/exec.env"

run "$CAIRN" restore latest "$TMP/r-exec2" "$@" --key "exec:exit 3"
check "exec: a command that exits 3 fails the restore" rc_is 1
check "exec: the error names the provider and the status" err_has "key provider exec:exit 3: the command exited with status 3"
check "exec: one line" one_line
check "exec: nothing was restored" test ! -e "$TMP/r-exec2/big.bin"

printf 'echo cairn-kek-v1:SECRETSECRETSECRET\n' >"$TMP/printbad.sh"
run "$CAIRN" restore latest "$TMP/r-exec3" "$@" --key "exec:sh $TMP/printbad.sh"
check "exec: output that is not a tenant key fails" rc_is 1
check "exec: the error says so" err_has "its output is not a tenant key"
check "exec: and does not repeat the output" err_lacks SECRETSECRET

run "$CAIRN" restore latest "$TMP/r-exec4" "$@" --key "exec:"
check "exec: an empty command is a usage error of the provider" err_has "needs a command"

# ---- the https:// provider: the control plane unwraps -------------------
section "https:// provider"
"$KEYADM" kek create --out "$TMP/kbad" -q
cp_start --keks "$TMP/k1,$TMP/kbad" --bad-reply-tenant tbad --record-keys "$TMP/handed-out" \
	--decrypt-only-tenant tdec
CAIRN_CONTROL_PLANE_TOKEN_FILE=$CP_TOKEN_FILE
CAIRN_CONTROL_PLANE_CA_FILE=$CP_CA
export CAIRN_CONTROL_PLANE_TOKEN_FILE CAIRN_CONTROL_PLANE_CA_FILE

run "$CAIRN" restore latest "$TMP/r-https" "$@" --key "$CP_URL" --state-dir "$TMP/state-https"
check "https: restore with the control plane unwrapping exits 0" rc_is 0
check "https: the restored tree is bit for bit the snapshot's" same "$WS" "$TMP/r-https"
check "https: the control plane unwrapped both workspace keys" \
	eq "$(grep -c '"path":"/v1/unwrap"' "$CP_LOG")" 2
check "https: and was told the head's generation (anti-rollback)" \
	grep -q '"path":"/v1/generation".*"generation":1' "$CP_LOG"

# a mount with the https provider: the VM's disk (cache, state dir) must
# hold no workspace key, in any encoding, and there is no tenant key on it
MNT=$TMP/mnt
mkdir -p "$MNT"
_fs_mounts=$MNT
run "$CAIRN" mount "$MNT" "$@" --key "$CP_URL" --cache "$TMP/vm-cache" --state-dir "$TMP/vm-state"
check "https: cairn mount with the control plane unwrapping" rc_is 0
check "https: the mounted tree reads bit for bit" same "$WS" "$MNT"
echo "written on the mount" >"$MNT/sub/mounted.txt"
run "$CAIRN" snapshot --mount "$MNT" -q
check "https: a live snapshot of that mount" rc_is 0
fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
check "https: the control plane handed out the workspace keys" test -s "$TMP/handed-out"
check "https: no workspace key is on the VM's disk (raw, hex or base64)" python3 - "$TMP/handed-out" "$TMP/vm-cache" "$TMP/vm-state" <<'EOF2'
import base64, os, sys
keys = [bytes.fromhex(l.strip()) for l in open(sys.argv[1]) if l.strip()]
needles = []
for k in keys:
    needles += [k, k.hex().encode(), base64.b64encode(k), base64.b64encode(k).rstrip(b"=")]
files = 0
for top in sys.argv[2:]:
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            data = open(p, "rb").read()
            files += 1
            for x in needles:
                if x in data:
                    sys.exit("a workspace key is in " + p)
if files == 0:
    sys.exit("no file was searched")
EOF2

(umask 077 && echo wrong-token-value >"$TMP/badtoken")
run env CAIRN_CONTROL_PLANE_TOKEN_FILE="$TMP/badtoken" "$CAIRN" restore latest "$TMP/r-h2" "$@" --key "$CP_URL"
check "https: a wrong token fails" rc_is 1
check "https: with HTTP 401 named" err_has "HTTP 401"
check "https: and without the token in the message" err_lacks wrong-token-value
check "https: nothing was restored" test ! -e "$TMP/r-h2/big.bin"

chmod 644 "$TMP/badtoken"
run env CAIRN_CONTROL_PLANE_TOKEN_FILE="$TMP/badtoken" "$CAIRN" restore latest "$TMP/r-h3" "$@" --key "$CP_URL"
check "https: a token file others can read is refused" err_has "readable by others: chmod 600"
cp "$CP_TOKEN_FILE" "$TMP/theirtoken" && chmod 600 "$TMP/theirtoken" && chown 4321 "$TMP/theirtoken"
run env CAIRN_CONTROL_PLANE_TOKEN_FILE="$TMP/theirtoken" "$CAIRN" restore latest "$TMP/r-h3b" "$@" --key "$CP_URL"
check "https: a token file another user owns is refused" err_has "belongs to uid 4321, who could change it"

run env CAIRN_CONTROL_PLANE_CA_FILE="$CP_OTHER_CA" "$CAIRN" restore latest "$TMP/r-h4" "$@" --key "$CP_URL"
check "https: a server whose certificate is not from the configured CA is refused" rc_is 1
check "https: the error is about the certificate" err_has "certificate"
check "https: one line" one_line
# the CA that signed the server in the system's CA dir too: the configured
# CA file is still the only trust
_hash=$(openssl x509 -hash -noout -in "$CP_CA")
_k=0
while [ -e "/etc/ssl/certs/$_hash.$_k" ]; do _k=$((_k + 1)); done
ln -s "$CP_CA" "/etc/ssl/certs/$_hash.$_k" && _cleanup_files="$_cleanup_files /etc/ssl/certs/$_hash.$_k"
run env CAIRN_CONTROL_PLANE_CA_FILE="$CP_OTHER_CA" "$CAIRN" restore latest "$TMP/r-h4b" "$@" --key "$CP_URL"
check "https: a server signed by a CA of the system's CA dir, not the configured one, is refused" rc_is 1
check "https: the error is about the certificate, again" err_has "certificate"
rm -f "/etc/ssl/certs/$_hash.$_k"
for u in "http://127.0.0.1@example.com/" "http://127.0.0.1.example.com/" "http://localhost.example/"; do
	run env CAIRN_CONTROL_PLANE="$u" "$CAIRN" restore latest "$TMP/r-h6" "$@" --key "$CP_URL"
	check "https: plain http to $u is refused as not loopback" err_has "is not an https:// URL"
done

run "$CAIRN" restore latest "$TMP/r-h5" "$@" --key "https://127.0.0.1:1"
check "https: a control plane that is down fails" rc_is 1
check "https: the error names it" err_has "control plane https://127.0.0.1:1"

# a control plane that only decrypts: the VM compares the wrap's ids itself
run "$CAIRN" init --store "$FS" --key "file:$TMP/k1" --tenant tdec --json
WDA=$(jget workspace)
run "$CAIRN" init --store "$FS" --key "file:$TMP/k1" --tenant tdec --json
WDB=$(jget workspace)
KDA=${FS#file://}/tenants/tdec/workspaces/$WDA/keys
KDB=${FS#file://}/tenants/tdec/workspaces/$WDB/keys
K1ID=$(cut -d: -f2 "$TMP/k1")
run "$CAIRN" cat keyset --json --store "$FS" --tenant tdec --workspace "$WDA" --key "file:$TMP/k1"
ADK=$(jget current)
run "$CAIRN" cat keyset --json --store "$FS" --tenant tdec --workspace "$WDB" --key "file:$TMP/k1"
BDK=$(jget current)
cp -a "$KDA" "$TMP/kda.saved"
cp "$KDB/"* "$KDA/"
unwraps=$(grep -c '"path":"/v1/unwrap"' "$CP_LOG")
run "$CAIRN" ls --store "$FS" --tenant tdec --workspace "$WDA" --key "$CP_URL"
check "https: another workspace's wrapped keys put among this one's, which its key set does not list: ignored" rc_is 0
check "https: and never sent to the control plane (only this workspace's two keys are)" \
	eq "$(($(grep -c '"path":"/v1/unwrap"' "$CP_LOG") - unwraps))" 2
cp "$KDB/$BDK.$K1ID" "$KDA/$ADK.$K1ID"
run "$CAIRN" ls --store "$FS" --tenant tdec --workspace "$WDA" --key "$CP_URL"
check "https: another workspace's wrapped key under the name of this one's data key is refused before it is sent" rc_is 1
check "https: naming the workspace it belongs to" err_has "belongs to workspace $WDB, not $WDA"
rm -rf "$KDA" && cp -a "$TMP/kda.saved" "$KDA"
run "$CAIRN" init --store "$FS" --key "file:$TMP/kbad" --tenant tbad --json
WB=$(jget workspace)
run "$CAIRN" ls latest --store "$FS" --tenant tbad --workspace "$WB" --key "$CP_URL"
check "https: an answer without a key fails" rc_is 1
check "https: the error says the answer had no key" err_has "answered without a key"
run "$CAIRN" init --store "$FS" --key "file:$TMP/kother" --create-key --tenant tother --json
WO=$(jget workspace)
run "$CAIRN" ls latest --store "$FS" --tenant tother --workspace "$WO" --key "$CP_URL"
check "https: a tenant key the control plane lacks fails" rc_is 1
check "https: naming the HTTP 404 and the key" err_has "HTTP 404: no tenant key"
run "$CAIRN" init --store "$FS" --key "$CP_URL" --tenant t9
check "https: init refuses (it needs the tenant key itself)" err_has "yields no tenant key"

# ---- anti-rollback through the control plane ------------------------------
section "anti-rollback"
CAIRN_CONTROL_PLANE=$CP_URL
export CAIRN_CONTROL_PLANE
HEAD=$TMP/store/tenants/t1/workspaces/$W1/head
echo "two" >"$WS/sub/two.txt"
run "$CAIRN" snapshot "$WS" "$@" --key "file:$TMP/k1" --json
check "a snapshot with the control plane told" rc_is 0
G1=$(jget generation)
cp "$HEAD" "$TMP/head.old"
echo "three" >"$WS/sub/three.txt"
run "$CAIRN" snapshot "$WS" "$@" --key "file:$TMP/k1" --json
check "and the next one" rc_is 0
G2=$(jget generation)
check "the control plane was told of its generation" grep -q "\"generation\":$G2" "$CP_LOG"
cp "$TMP/head.old" "$HEAD"
run "$CAIRN" restore latest "$TMP/r-rb" "$@" --key "file:$TMP/k1" --state-dir "$TMP/state-new-vm"
check "a new VM (no state dir) refuses the rolled-back head" rc_is 1
check "naming both generations" err_has "head is generation $G1 but the control plane has seen generation $G2"
check "and the way on" err_has "allow-rollback"
check "nothing was restored" test ! -e "$TMP/r-rb/big.bin"
run "$CAIRN" restore latest "$TMP/r-rb2" "$@" --key "file:$TMP/k1" --state-dir "$TMP/state-new-vm2" --allow-rollback
check "--allow-rollback restores the older head" rc_is 0
check "which is the older tree" test -e "$TMP/r-rb2/sub/two.txt" -a ! -e "$TMP/r-rb2/sub/three.txt"
run "$CAIRN" mount "$MNT" "$@" --key "file:$TMP/k1" --cache "$TMP/rb-cache" --state-dir "$TMP/state-new-vm5"
check "a mount on a new VM refuses the rolled-back head too" err_has "head is generation $G1 but the control plane has seen generation $G2"
check "and nothing is mounted" sh -c '! mountpoint -q "$1"' _ "$MNT"
run "$CAIRN" mount "$MNT" "$@" --key "file:$TMP/k1" --cache "$TMP/rb-cache2" --state-dir "$TMP/state-new-vm6" --allow-rollback
check "cairn mount --allow-rollback mounts it" rc_is 0
check "the older tree" test -e "$MNT/sub/two.txt" -a ! -e "$MNT/sub/three.txt"
echo "after the rollback" >"$MNT/sub/after.txt"
run "$CAIRN" snapshot --mount "$MNT" --json
check "the next snapshot is numbered above every generation seen" test "$(jget generation)" -gt "$G2"
fs_umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"
run env -u CAIRN_CONTROL_PLANE "$CAIRN" restore latest "$TMP/r-rb3" "$@" --key "file:$TMP/k1" --state-dir "$TMP/state-new-vm3"
check "without a control plane a new VM cannot tell (what the control plane is for)" rc_is 0
run env CAIRN_CONTROL_PLANE=https://127.0.0.1:1 "$CAIRN" restore latest "$TMP/r-rb4" "$@" --key "file:$TMP/k1" --state-dir "$TMP/state-new-vm4"
check "a configured control plane that is down: the check fails closed" rc_is 1
check "saying why and the way on" err_has "cannot check the key set against the control plane"
unset CAIRN_CONTROL_PLANE

# ---- cairn-keyadm on S3 ---------------------------------------------------
section "cairn-keyadm: kek create, 50 workspaces"
s3_start
S3=s3://cairn-test/keyadm
WSROOT=$TMP/s3/cairn-test/keyadm/tenants/acme/workspaces
run "$KEYADM" kek create --tenant acme --out "$TMP/acme1.key"
check "kek create exits 0" rc_is 0
check "kek create names the new id" out_has "tenant key [0-9a-f]\{16\} for tenant acme"
check "the key file is 0600" eq "$(stat -c %a "$TMP/acme1.key")" 600
K1=$(cut -d: -f2 "$TMP/acme1.key")
cp "$TMP/acme1.key" "$TMP/acme1.copy"
run "$KEYADM" kek create --tenant acme --out "$TMP/acme1.key"
check "kek create never overwrites a key file" rc_is 1
check "the old key file is intact" cmp -s "$TMP/acme1.key" "$TMP/acme1.copy"
run "$KEYADM" kek create --tenant acme --out "$TMP/acme2.key" --json
K2=$(jget kek_id)

i=0
ok=1
while [ $i -lt 50 ]; do
	i=$((i + 1))
	"$CAIRN" init --store "$S3" --key "file:$TMP/acme1.key" --tenant acme --json >"$TMP/out" 2>"$TMP/err" || ok=0
	[ $i -eq 1 ] && A1=$(jget workspace)
done
check "50 workspaces of tenant acme" eq "$ok" 1
A=--store\ $S3\ --tenant\ acme
run "$CAIRN" snapshot "$WS" $A --workspace "$A1" --key "file:$TMP/acme1.key" -q
check "workspace 1 has a snapshot" rc_is 0
run "$KEYADM" kek list $A
check "kek list: one tenant key wraps 100 keys of 50 workspaces" eq "$(cat "$TMP/out")" "$K1  50 workspaces  100 wrapped keys"

section "rewrap, killed half way"
killed_after 3 delay:40 /keys/ "$KEYADM" rewrap $A --from "$TMP/acme1.key" --to "file:$TMP/acme2.key"
check "the first rewrap was killed" eq "$bg_rc" 137
run "$KEYADM" kek list $A
check "half way, both tenant keys wrap keys" eq "$(cut -c1-16 "$TMP/out" | sort | tr '\n' ' ')" "$(printf '%s\n%s\n' "$K1" "$K2" | sort | tr '\n' ' ')"
run "$KEYADM" rewrap $A --from "$TMP/acme1.key" --to "file:$TMP/acme2.key" --json
check "the rewrap run again exits 0" rc_is 0
check "it saw 50 workspaces and 100 keys" eq "$(jget workspaces) $(jget keys)" "50 100"
check "none failed" eq "$(jget failed)" 0
check "what the killed run did is skipped, the rest rewrapped" \
	test "$(jget skipped)" -gt 0 -a "$(($(jget rewrapped) + $(jget skipped)))" -eq 100
run "$KEYADM" kek list $A
check "afterwards only the new tenant key wraps anything" eq "$(cat "$TMP/out")" "$K2  50 workspaces  100 wrapped keys"
run "$KEYADM" rewrap $A --from "$TMP/acme1.key" --to "$TMP/acme2.key" --json
check "a third run changes nothing" eq "$(jget rewrapped) $(jget failed)" "0 0"
run "$KEYADM" verify $A --key "$TMP/acme2.key"
check "verify: the new tenant key opens all 100 keys" out_has "verify: 50 workspaces, 100 keys: 100 open, 0 skipped, 0 failed"
check "verify exits 0" rc_is 0
run "$KEYADM" verify $A --key "$TMP/acme1.key"
check "verify: the old tenant key opens none (exit 1)" rc_is 1
check "verify names the workspaces it does not open" out_has "workspace $A1: NOT opened by tenant key $K1"
run "$CAIRN" restore latest "$TMP/r-old" $A --workspace "$A1" --key "file:$TMP/acme1.key"
check "the old tenant key is refused by restore" err_has "wrong tenant key"
run "$CAIRN" restore latest "$TMP/r-new" $A --workspace "$A1" --key "file:$TMP/acme2.key"
check "the new tenant key restores workspace 1" rc_is 0
check "bit for bit" same "$WS" "$TMP/r-new"

section "dek rotate, reencrypt"
AK="$A --workspace $A1 --key file:$TMP/acme2.key"
run "$KEYADM" dek rotate $AK --json
check "dek rotate exits 0" rc_is 0
NEWDEK=$(jget data_key)
echo "after rotation" >"$WS/sub/rotated.txt"
head -c 500000 /dev/urandom >"$WS/new.bin"
run "$CAIRN" snapshot "$WS" $AK --json
check "a snapshot after dek rotate" rc_is 0
run "$CAIRN" check --read-data $AK
check "check --read-data is clean with two data keys" rc_is 0
# each data pack request takes 1.5 s: at 3.5 s the first pack has been
# read and its copy written, the second is being read
killed_after 3.5 delay:1500 /data/ "$KEYADM" reencrypt $AK
check "the first reencrypt was killed" eq "$bg_rc" 137
run "$CAIRN" check --read-data $AK
check "after the kill, check --read-data is clean" rc_is 0
run "$KEYADM" reencrypt $AK --retire --json
check "reencrypt --retire run again exits 0" rc_is 0
check "it rewrote packs" test "$(jget packs_rewritten)" -gt 0
check "it retired the old data key's wrap" test "$(jget keys_retired)" -ge 1
left=$(ls "$WSROOT/$A1/keys/" | sed -n 's/^\([0-9a-f]\{16\}\)\.[0-9a-f]\{16\}.*/\1/p' | sort -u | tr '\n' ' ')
check "keys/ now holds the identity key and the new data key only" \
	eq "$(echo $left | wc -w)" 2
check "and the new data key is one of them" eval 'echo "$left" | grep -q "$NEWDEK"'
run "$CAIRN" check --read-data $AK
check "check --read-data is clean without the old data key" rc_is 0
run "$CAIRN" restore latest "$TMP/r-re" $AK
check "the latest snapshot restores bit for bit" same "$WS" "$TMP/r-re"
run "$KEYADM" reencrypt $AK --retire --json
check "a second reencrypt finds nothing to do" eq "$(jget packs_rewritten) $(jget keys_retired)" "0 0"

section "cairn-keyadm on a file:// store"
F="--store $FS --tenant t2"
run "$CAIRN" init $F --key "file:$TMP/t2a.key" --create-key --json
F2=$(jget workspace)
run "$CAIRN" snapshot "$WS" $F --workspace "$F2" --key "file:$TMP/t2a.key" -q
check "file: a workspace with a snapshot" rc_is 0
"$KEYADM" kek create --out "$TMP/t2b.key" -q
run "$KEYADM" rewrap $F --from "$TMP/t2a.key" --to "$TMP/t2b.key" --json
check "file: rewrap exits 0, both keys rewrapped" eq "$rc $(jget rewrapped) $(jget failed)" "0 2 0"
run "$KEYADM" verify $F --key "$TMP/t2b.key"
check "file: verify with the new tenant key" rc_is 0
run "$CAIRN" ls $F --workspace "$F2" --key "file:$TMP/t2a.key"
check "file: the old tenant key is refused" err_has "wrong tenant key"
FK="$F --workspace $F2 --key $TMP/t2b.key"
run "$KEYADM" dek rotate $FK
check "file: dek rotate" rc_is 0
echo "file store, new key" >"$WS/sub/file-store.txt"
run "$CAIRN" snapshot "$WS" $F --workspace "$F2" --key "file:$TMP/t2b.key" -q
check "file: a snapshot under the new data key" rc_is 0
run "$KEYADM" reencrypt $FK --retire --json
check "file: reencrypt --retire rewrites packs and retires the old data key" \
	eq "$rc $(test "$(jget packs_rewritten)" -gt 0 && echo some) $(jget keys_retired)" "0 some 1"
run "$CAIRN" check --read-data $F --workspace "$F2" --key "file:$TMP/t2b.key"
check "file: check --read-data is clean" rc_is 0
run "$CAIRN" restore latest "$TMP/r-file" $F --workspace "$F2" --key "file:$TMP/t2b.key"
check "file: the latest snapshot restores bit for bit" same "$WS" "$TMP/r-file"
# a rotation with no snapshot after it: reencrypt seals the head again,
# naming the same snapshot at the same generation, so a mount's status
# (the snapshot's record) and the head agree
run "$KEYADM" dek rotate $FK -q
run "$KEYADM" reencrypt $FK --retire --json
check "file: reencrypt right after dek rotate seals the head again" eq "$rc $(jget head_rewritten)" "0 true"
run "$CAIRN" cat head --json $F --workspace "$F2" --key "file:$TMP/t2b.key"
hgen=$(jget generation)
mkdir -p "$TMP/m-re"
_fs_mounts="$_fs_mounts $TMP/m-re"
CAIRN_RUN_DIR=$TMP/run run "$CAIRN" mount "$TMP/m-re" --cache "$TMP/c-re" $F --workspace "$F2" \
	--key "file:$TMP/t2b.key" -q
CAIRN_RUN_DIR=$TMP/run run "$CAIRN" status --mount "$TMP/m-re" --json
check "file: after reencrypt, cairn status and cairn cat head give one generation" eq "$(jget generation)" "$hgen"
pid=$(cat "$TMP/c-re/cairnfs.pid")
fusermount3 -u "$TMP/m-re" && fs_wait_exit "$pid"

# ---- the key set: a retired data key put back, a current one removed ------
section "key set: a retired data key put back"
FORGE="python3 $SRCDIR/tests/forge.py"
digest() { (cd "$1" && find . -type f -printf '%p %s\n' | sort && find . -type f -exec cat {} + | sha256sum); }
# new_ws TENANT: a new workspace of TENANT on $FS under a new tenant key
# $TMP/TENANT.key; sets NW (its id), NWD (its dir in the store) and NA
# (the options that name it to cairn and cairn-keyadm)
new_ws() {
	run "$CAIRN" init --store "$FS" --tenant "$1" --key "file:$TMP/$1.key" --create-key --json
	check "$1: init" rc_is 0
	NW=$(jget workspace)
	NWD=${FS#file://}/tenants/$1/workspaces/$NW
	NA="--store $FS --tenant $1 --workspace $NW --key file:$TMP/$1.key"
}
# as_before_keysets DIR: the workspace in DIR as cairn wrote it before key
# sets (the same objects, no keyset, config format 1)
as_before_keysets() {
	rm "$1/keyset"
	sed 's/"format":2/"format":1/' "$1/config" >"$TMP/cfg" && cat "$TMP/cfg" >"$1/config"
}
new_ws t3
W3=$NW WD3=$NWD RK=$NA
check "t3: init wrote a key set" test -f "$WD3/keyset"
check "t3: and config format 2" grep -q '"format":2' "$WD3/config"
run "$CAIRN" cat keyset --json $RK
check "t3: key set serial 1, its one data key current" \
	eq "$(jget serial) $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["live"]), d["current"] in d["live"])' "$TMP/out")" "1 1 True"
run "$CAIRN" snapshot "$WS" $RK -q
check "t3: a snapshot under the first data key" rc_is 0
# what someone who once had the first data key keeps: its wrap, and the key set
cp -a "$WD3/keys" "$TMP/t3-keys.old"
run "$KEYADM" dek rotate $RK --json
check "t3: dek rotate" rc_is 0
NEW3=$(jget data_key)
cp "$WD3/keyset" "$TMP/t3-keyset.2"
run "$CAIRN" cat keyset --json $RK
check "t3: key set serial 2 lists both data keys, the new one current" \
	eq "$(jget serial) $(jget current) $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["live"]))' "$TMP/out")" "2 $NEW3 2"
echo "t3 after rotation" >"$WS/sub/t3.txt"
run "$CAIRN" snapshot "$WS" $RK -q
check "t3: a snapshot under the new data key" rc_is 0
run "$KEYADM" reencrypt $RK --retire --json
check "t3: reencrypt --retire retires the first data key" eq "$rc $(jget keys_retired)" "0 1"
run "$CAIRN" cat keyset --json $RK
check "t3: key set serial 3 lists the new data key alone" \
	eq "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["serial"], *d["live"])' "$TMP/out")" "3 $NEW3"
OLD3=$(cd "$TMP/t3-keys.old" && for f in *; do [ -e "$WD3/keys/$f" ] || echo "$f"; done)
OLDID=${OLD3%%.*}
run "$CAIRN" ls $RK --json
SNAP3=$(tail -n 1 "$TMP/out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cp "$WD3/head" "$TMP/t3-head.good"
# a new VM that asks the control plane: it learns key set 3 now
run env CAIRN_CONTROL_PLANE="$CP_URL" "$CAIRN" ls $RK --state-dir "$TMP/state-t3-vm0"
check "t3: a VM with the control plane opens the workspace (key set 3 reported)" rc_is 0

# the attack: the retired key's wrap put back, and a head sealed under it
# with any generation (a rollback that would also raise the control
# plane's highest generation)
cp "$TMP/t3-keys.old/$OLD3" "$WD3/keys/"
printf '{"version":1,"generation":1000,"snapshot":"%s"}' "$SNAP3" |
	$FORGE seal "$TMP/t3.key" "$WD3/keys/$OLD3" head head "$W3" >"$TMP/forged-head"
cp "$TMP/forged-head" "$WD3/head"
run env CAIRN_CONTROL_PLANE="$CP_URL" "$CAIRN" restore latest "$TMP/r-forged" $RK --state-dir "$TMP/state-t3-vm1"
check "retired key put back: a head sealed under it is refused (new VM)" rc_is 1
check "retired key put back: naming the key, not live" err_has "head: data key $OLDID is not a live key of workspace $W3"
check "retired key put back: one line" one_line
check "retired key put back: nothing restored" test ! -e "$TMP/r-forged/big.bin"
check "retired key put back: the control plane never heard of generation 1000" \
	sh -c '! grep -q "\"generation\":1000" "$1"' _ "$CP_LOG"
run "$CAIRN" snapshot "$WS" $RK
check "retired key put back: a snapshot on this machine is refused too" err_has "is not a live key"
cp "$TMP/t3-head.good" "$WD3/head"
now=$(date +%s)
printf '{"version":1,"host":"intruder","boot":"b","pid":7,"nonce":"00112233445566778899aabbccddeeff","program":"x","acquired":%s000000000,"expires":%s000000000}' \
	"$now" "$((now + 86400))" | $FORGE seal "$TMP/t3.key" "$WD3/keys/$OLD3" lease lease "$W3" >"$WD3/lease"
run "$CAIRN" snapshot "$WS" $RK
check "retired key put back: a lease sealed under it is refused" err_has "lease: data key $OLDID is not a live key"
rm -f "$WD3/lease"
run "$CAIRN" check $RK
check "retired key put back: check names the wrap the key set does not list" \
	out_has "keys/$OLD3 wraps data key $OLDID, which the key set does not list"
run "$CAIRN" restore latest "$TMP/r-t3" $RK
check "retired key put back: the genuine head still restores" rc_is 0

section "key set: an older key set put back"
cp "$WD3/keyset" "$TMP/t3-keyset.3"
cp "$TMP/t3-keyset.2" "$WD3/keyset"
run "$CAIRN" restore latest "$TMP/r-replay" $RK
check "an older key set (serial 2, both keys live) put back: refused here" rc_is 1
check "older key set: naming both serials" err_has "the store's key set is serial 2 but this machine has seen serial 3"
check "older key set: one line" one_line
run env CAIRN_CONTROL_PLANE="$CP_URL" "$CAIRN" restore latest "$TMP/r-replay" $RK --state-dir "$TMP/state-t3-vm2"
check "older key set: refused by a new VM that asks the control plane" \
	err_has "the store's key set is serial 2 but the control plane has seen serial 3"
run env -u CAIRN_CONTROL_PLANE "$CAIRN" ls $RK --state-dir "$TMP/state-t3-vm3"
check "older key set: without a control plane a new VM cannot tell" rc_is 0
as_before_keysets "$WD3"
run env CAIRN_CONTROL_PLANE="$CP_URL" "$CAIRN" restore latest "$TMP/r-replay" $RK --state-dir "$TMP/state-t3-vm4"
check "no key set at all, config back at format 1: refused by a new VM with a control plane" \
	err_has "has no key set in .* but the control plane has seen key set 3"
run "$CAIRN" ls $RK
check "no key set at all: refused here" err_has "but this machine has seen key set 3"
cp "$TMP/t3-keyset.3" "$WD3/keyset"
sed 's/"format":1/"format":2/' "$WD3/config" >"$TMP/cfg" && cat "$TMP/cfg" >"$WD3/config"
rm -f "$WD3/keys/$OLD3"
# a store put back from a copy on purpose: the older key set is accepted
# with --allow-rollback, and the next one is numbered above every serial
# seen, so that nobody needs --allow-rollback again
cp "$TMP/t3-keyset.2" "$WD3/keyset"
run env CAIRN_CONTROL_PLANE="$CP_URL" "$KEYADM" dek rotate $RK --allow-rollback --json
check "older key set accepted with --allow-rollback: dek rotate" rc_is 0
check "older key set accepted: with a warning naming both serials" err_has "key set 2 accepted (--allow-rollback)"
run "$CAIRN" cat keyset --json $RK
check "older key set accepted: the next key set is serial 4, above the 3 seen (not 3 again)" eq "$(jget serial)" 4
run env CAIRN_CONTROL_PLANE="$CP_URL" "$CAIRN" ls $RK --state-dir "$TMP/state-t3-vm5"
check "older key set accepted: a new VM that asks the control plane opens it without --allow-rollback" rc_is 0
cp "$TMP/t3-keyset.3" "$WD3/keyset"
run env CAIRN_CONTROL_PLANE="$CP_URL" "$KEYADM" reencrypt $RK --retire --allow-rollback --json
check "older key set accepted: reencrypt --retire" rc_is 0
run "$CAIRN" cat keyset --json $RK
check "older key set accepted: reencrypt --retire writes key set 5 even when the older one lists the current key alone" \
	eq "$(jget serial) $(jget live.0)" "5 $NEW3"
run env CAIRN_CONTROL_PLANE="$CP_URL" "$CAIRN" ls $RK --state-dir "$TMP/state-t3-vm6"
check "older key set accepted: then a new VM opens it without --allow-rollback" rc_is 0

section "key set: the new wrap deleted after dek rotate"
new_ws t6
WD6=$NWD N6=$NA
NK="$N6 --state-dir $TMP/state-t6"
run "$CAIRN" snapshot "$WS" $NK -q
check "t6: a snapshot" rc_is 0
run "$KEYADM" dek rotate $NK --json
check "t6: dek rotate" rc_is 0
NEW6=$(jget data_key)
rm "$WD6/keys/$NEW6".*
before=$(digest "$WD6")
echo "t6 after the rotation" >"$WS/sub/t6.txt"
run "$CAIRN" snapshot "$WS" $NK
check "the new wrap deleted: a snapshot is refused, not written under the older key" rc_is 1
check "the new wrap deleted: saying so" \
	err_has "its key set (serial 2) names data key $NEW6 as current, but keys/ holds no wrap of it"
check "the new wrap deleted: one line" one_line
check "the new wrap deleted: nothing was written" eq "$(digest "$WD6")" "$before"
run "$CAIRN" restore latest "$TMP/r-nowrap" $N6 --state-dir "$TMP/state-t6b"
check "the new wrap deleted: a restore on a new machine is refused too" rc_is 1
rm -f "$WS/sub/t3.txt" "$WS/sub/t6.txt"

section "key set: a workspace made before key sets"
new_ws t4
WD4=$NWD LK=$NA
run "$CAIRN" snapshot "$WS" $LK -q
as_before_keysets "$WD4"
run "$CAIRN" restore latest "$TMP/r-old-ws" $LK --state-dir "$TMP/state-t4"
check "old workspace: restores" rc_is 0
check "old workspace: bit for bit" same "$WS" "$TMP/r-old-ws"
run "$CAIRN" snapshot "$WS" $LK --state-dir "$TMP/state-t4" -q
check "old workspace: a snapshot works" rc_is 0
check "old workspace: a snapshot does not upgrade it (older cairn may still use it)" \
	sh -c '[ ! -e "$1/keyset" ] && grep -q "\"format\":1" "$1/config"' _ "$WD4"
run "$CAIRN" cat keyset --json $LK --state-dir "$TMP/state-t4"
check "old workspace: cat keyset says it has none yet" err_has "has no key set yet"
run "$KEYADM" dek rotate $LK --state-dir "$TMP/state-t4" --json
check "old workspace: dek rotate upgrades it" rc_is 0
NEW5=$(jget data_key)
check "old workspace: config format 2" grep -q '"format":2' "$WD4/config"
run "$CAIRN" cat keyset --json $LK --state-dir "$TMP/state-t4"
check "old workspace: its first key set (serial 1) lists the old and the new data key, the new one current" \
	eq "$(jget serial) $(jget current) $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["live"]))' "$TMP/out")" "1 $NEW5 2"
run "$CAIRN" restore latest "$TMP/r-old-ws2" $LK --state-dir "$TMP/state-t4b"
check "old workspace, upgraded: restores on a new machine" rc_is 0
check "old workspace, upgraded: bit for bit" same "$WS" "$TMP/r-old-ws2"
run "$KEYADM" reencrypt $LK --state-dir "$TMP/state-t4" --retire --json
check "old workspace, upgraded: reencrypt --retire" eq "$rc $(jget keys_retired)" "0 1"
run "$CAIRN" check --read-data $LK --state-dir "$TMP/state-t4"
check "old workspace, upgraded: check --read-data is clean" rc_is 0
new_ws t5
as_before_keysets "$NWD"
run "$KEYADM" reencrypt --store "$FS" --tenant t5 --workspace "$NW" --key "$TMP/t5.key" --state-dir "$TMP/state-t5" --retire --json
check "old workspace with one data key: reencrypt --retire upgrades it, retiring nothing" \
	eq "$rc $(jget keys_retired) $(test -f "$NWD/keyset" && echo keyset)" "0 0 keyset"

run "$KEYADM" rewrap $A --from "$TMP/acme2.key" --to "$TMP/acme2.key"
check "rewrap to the same tenant key is refused" err_has "are the same tenant key"
run "$KEYADM" frobnicate
check "an unknown command: exit 2" rc_is 2

finish
