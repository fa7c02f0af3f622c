#!/bin/sh
# test_cairnd.sh - cairnd with real processes, real mounts and s3rver behind
# the R2-like proxy, with short timers: the idle snapshot and the idle report
# (hook command and the HTTPS control plane), no idle snapshot while an agent
# is busy, SIGHUP, a crash loop, SIGTERM with a writer (every fsync'd record
# in the last snapshot), the next VM (a new cache: the workspace and the
# agent config back before its agent starts), a lease held by a live cairnd,
# kill -9 of cairnd and cairnfs, the notify protocol, and bad configs.
. "$CAIRN_SRCDIR/tests/lib.sh"

CAIRND=${CAIRN_BUILDDIR:-.}/cairnd
PY=${PYTHON:-python3}
s3_start
cp_start
D=$TMP/vmd
mkdir -p "$D/home/.claude/debug" "$D/home/.claude/projects"
CAIRN_STATE_DIR=$D/state
CAIRN_RUN_DIR=$D/run
export CAIRN_STATE_DIR CAIRN_RUN_DIR
SOCK=$D/run/cairnd.sock
MNT=$D/mnt

# what the agents leave running is stopped by its session, by pid
_cleanup_cmd='for _s in $(cat "$SOCK.agents" 2>/dev/null); do [ "$_s" -gt 1 ] && kill -9 -- -$_s 2>/dev/null; done'

# conf FILE CACHE [AGENT SECTIONS ON STDIN]: a cairn.conf for workspace main
conf() {
	cat >"$1" <<EOF
[cairnd]
control_socket = $SOCK
log_dir = $D/logs
cairnfs = $CAIRNFS
cairn = $CAIRN
idle_cpu = 20%
idle_hook = cat > $D/hook.json

[control-plane]
url = $CP_URL
token_file = $CP_TOKEN_FILE
ca_file = $CP_CA

[workspace main]
store = s3://cairn-test/vmd
workspace = c0ffee00c0ffee00
key = file:$D/tenant.key
mountpoint = $MNT
cache_dir = $2
idle_after = 2s
shutdown_after = 4s
shutdown_deadline = 30s

[agent-config main]
home = $D/home
EOF
	cat >>"$1"
}

vmd_get() {	# vmd_get KEY.PATH: one field of cairnd's status (-1: none)
	"$PY" - "$SOCK" "$1" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
    s.sendall(b'{"op":"status"}\n')
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    v = json.loads(data)
except Exception:
    print(-1)
    sys.exit(0)
for k in sys.argv[2].split("."):
    if isinstance(v, list):
        v = v[int(k)] if int(k) < len(v) else None
    elif isinstance(v, dict):
        v = v.get(k)
    else:
        v = None
print(-1 if v is None else (str(v).lower() if isinstance(v, bool) else v))
EOF
}

wait_for() {	# wait_for SECONDS COMMAND...: until the command succeeds
	_t=$(($1 * 5))
	shift
	while [ $_t -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.2
		_t=$((_t - 1))
	done
	return 1
}

is() { [ "$(vmd_get "$1")" = "$2" ]; }
snaps_at_least() { [ "$(n_snaps)" -ge "$1" ]; }
n_snaps() { CAIRN_CONFIG=$D/c1.conf "$CAIRN" ls --json -w main 2>/dev/null | grep -c '"id"'; }
latest_id() { CAIRN_CONFIG=$D/c1.conf "$CAIRN" ls --json -w main | tail -1 | sed 's/.*"id": *"\([0-9a-f]*\)".*/\1/'; }

start_cairnd() {	# start_cairnd CONF LOG: in the background; sets $vmd
	NOTIFY_SOCKET=$D/notify.sock WATCHDOG_USEC=1000000 "$CAIRND" -c "$1" >"$2" 2>&1 &
	vmd=$!
	bg_track $vmd
	case " $_fs_mounts " in *" $MNT "*) ;; *) _fs_mounts="$_fs_mounts $MNT" ;; esac
}

# --- bad configs: one line with file:line, non-zero, nothing started -----
# bad_conf NAME DESCRIPTION PATTERN: cairnd --check on $D/NAME.conf fails,
# saying PATTERN
bad_conf() {
	"$CAIRND" -c "$D/$1.conf" --check >"$D/out" 2>&1
	check "$2" sh -c '[ $1 -ne 0 ] && grep -q "$2" "$3"' _ $? "$3" "$D/out"
}
BAD_WS='[workspace main]\nstore = s3://x\nkey = file:/k\nmountpoint = /m\ncache_dir = /c\n'
printf "$BAD_WS"'[agent a]\ncommand = true\ncolour = blue\n' >"$D/bad1.conf"
bad_conf bad1 "an unknown key stops cairnd with file:line" "bad1.conf:8: unknown key .colour. in \[agent a\]"
printf '[cairnd]\nidle_cpu = lots\n' >"$D/bad2.conf"
bad_conf bad2 "a bad value says what is expected" "bad2.conf:2: .idle_cpu = lots. is not a percentage"
printf "$BAD_WS"'[agent a]\ncommand = true\nuser = no-such-user-here\n' >"$D/bad3.conf"
bad_conf bad3 "an agent user that does not exist is refused" "user .no-such-user-here. does not exist"
printf '[agents x]\ncommand = true\n' >"$D/bad4.conf"
bad_conf bad4 "an unknown section is refused" "bad4.conf:2: unknown section"
printf '[cairnd]\nidle_hook = %0250d\n' 0 >"$D/bad5.conf"
bad_conf bad5 "a line too long for the parser is named, not cut" "bad5.conf:2: a line of more than 198 bytes"
printf "$BAD_WS"'init = yes\n' >"$D/bad6.conf"
bad_conf bad6 "init = yes without a pinned workspace id is refused" "init = yes needs .workspace = ID."
printf "$BAD_WS"'workspace = w1\ninit = maybe\n' >"$D/bad7.conf"
bad_conf bad7 "init = maybe is not yes or no" "bad7.conf:7: .init = maybe. is not yes or no"
sed -e 's/^init = maybe$/init = yes/' -e 's|^key = file:/k$|key = https://cp.example|' "$D/bad7.conf" >"$D/bad8.conf"
bad_conf bad8 "init = yes with the control plane as the key is refused" "init = yes needs a tenant key this machine loads"

# --- a workspace, its agent config, a NOTIFY_SOCKET of our own -----------
printf '{"theme":"dark"}\n' >"$D/home/.claude/settings.json"
printf 'token\n' >"$D/home/.claude/.credentials.json"
chmod 600 "$D/home/.claude/.credentials.json"
printf 'a session\n' >"$D/home/.claude/projects/s1.jsonl"
printf 'churn\n' >"$D/home/.claude/debug/log.txt"
printf '{"hasCompletedOnboarding":true}\n' >"$D/home/.claude.json"
conf "$D/c1.conf" "$D/cache1" <<EOF

[agent writer]
command = printf hello > hello.txt; mkdir -p sub; seq 1 1000 > sub/n.txt; exec sleep 600
EOF
check "init the workspace" sh -c 'CAIRN_CONFIG=$1 "$2" init --create-key -q -w main >/dev/null' _ "$D/c1.conf" "$CAIRN"
mkfifo "$D/notify-in" "$D/notify-ready"
"$PY" "$SRCDIR/tests/notify-listen.py" "$D/notify.sock" "$D/notify.log" <"$D/notify-in" >"$D/notify-ready" &
bg_track $!
exec 7>"$D/notify-in"
read -r _ <"$D/notify-ready"

start_cairnd "$D/c1.conf" "$D/log1"
check "cairnd mounts the workspace and tells systemd READY=1" wait_for 30 grep -q '^READY=1' "$D/notify.log"
check "the agent runs in the mount" wait_for 10 test -f "$MNT/sub/n.txt"
check "STATUS= lines say what it does" grep -q '^STATUS=.*mounted' "$D/notify.log"
check "and the watchdog hears from it (WATCHDOG_USEC)" wait_for 5 grep -q '^WATCHDOG=1' "$D/notify.log"
check "cairn agents lists it running" sh -c \
	'"$1" agents --socket "$2" | grep -q "^writer .*running"' _ "$CAIRN" "$SOCK"

# --- idle: a snapshot, then the report -------------------------------------
check "idle: a snapshot lands after idle_after" wait_for 20 snaps_at_least 1
id=$(latest_id)
check "idle: the hook gets the report on stdin" wait_for 15 grep -q "\"snapshot\":\"$id\"" "$D/hook.json"
check "idle: and the control plane, over TLS with the token" \
	wait_for 15 grep -q "\"path\":\"/v1/idle\".*\"snapshot\":\"$id\"" "$CP_LOG"
check "the report names the workspace, its generation and since when" sh -c \
	'grep -q "\"workspace\":\"main\"" "$1" && grep -q "\"generation\":1" "$1" && grep -q "\"idle_since\":\"20" "$1"' \
	_ "$CP_LOG"
check "cairnd told the control plane the generation itself before the idle report (the VM may go on receipt)" \
	python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
idle = next(i for i, l in enumerate(lines) if l["path"] == "/v1/idle")
gen = lines[idle]["body"]["generation"]
sys.exit(0 if any(l["path"] == "/v1/generation" and l["body"].get("reporter") == "cairnd" and
                  l["body"]["generation"] == gen for l in lines[:idle]) else 1)' "$CP_LOG"
rm -rf "$D/r1"
CAIRN_CONFIG=$D/c1.conf "$CAIRN" restore -q -w main latest "$D/r1"
check "the idle snapshot holds what the agent wrote" cmp -s "$D/r1/sub/n.txt" "$MNT/sub/n.txt"
rm -rf "$D/ra"
CAIRN_CONFIG=$D/c1.conf "$CAIRN" restore -q -w main --root agent-config latest "$D/ra"
check "and the agent config: ~/.claude and ~/.claude.json" sh -c \
	'cmp -s "$1/.claude/settings.json" "$2/.claude/settings.json" && cmp -s "$1/.claude.json" "$2/.claude.json"' \
	_ "$D/ra" "$D/home"
check "the credentials keep mode 0600" test "$(stat -c %a "$D/ra/.claude/.credentials.json")" = 600
check "debug/ is left out by default" test ! -e "$D/ra/.claude/debug"

# --- SIGHUP: a busy agent; no idle snapshot while it works ----------------
conf "$D/c1.conf" "$D/cache1" <<EOF

[agent writer]
command = echo busy > busy.txt; while :; do :; done
EOF
before=$(n_snaps)
kill -HUP $vmd
check "SIGHUP restarts the changed agent" wait_for 15 test -f "$MNT/busy.txt"
sleep 6
check "a busy agent (a CPU loop) gets no idle snapshot" test "$(n_snaps)" -eq "$before"
check "status shows its CPU" sh -c 'test "$(printf "%.0f" "$1")" -gt 20' _ "$(vmd_get agents.0.cpu_percent)"

# --- SIGHUP: a writer that fsyncs, and an agent in a crash loop -----------
cat >"$D/appender.py" <<'EOF'
import os, sys, time
fd = os.open("log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
while True:
    n += 1
    os.write(fd, b"record %d\n" % n)
    os.fsync(fd)
    # acknowledged, outside the mount; renamed into place, so that a stop
    # between truncating and writing never leaves it empty
    with open(sys.argv[1] + ".tmp", "w") as a:
        a.write("%d\n" % n)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(0.01)
EOF
conf "$D/c1.conf" "$D/cache1" <<EOF

[agent writer]
command = exec $PY $D/appender.py $D/ack
stop_grace = 5s

[agent crasher]
command = date +%s.%N >> $D/crash.times; exit 3
restart_delay = 1s
restart_max_delay = 8s
crash_loop_restarts = 3
crash_loop_window = 60s
EOF
kill -HUP $vmd
check "the new writer is under way" wait_for 15 test -s "$D/ack"
check "a crashing agent is restarted and its crash loop reported" wait_for 20 is agents.1.crash_loop true
check "with backoff: each wait longer than the one before" "$PY" -c '
import sys
t = [float(l) for l in open(sys.argv[1])]
gaps = [b - a for a, b in zip(t, t[1:])]
sys.exit(0 if len(gaps) >= 2 and all(g2 > g1 * 1.5 for g1, g2 in zip(gaps, gaps[1:])) else 1)' "$D/crash.times"
check "cairn agents says so" sh -c '"$1" agents --socket "$2" | grep -q "^crasher .*CRASH LOOP"' _ "$CAIRN" "$SOCK"

# --- SIGTERM while the writer writes --------------------------------------
sleep 1
kill -TERM $vmd
bg_wait $vmd
check "SIGTERM: cairnd exits 0" test $bg_rc -eq 0
check "STOPPING=1 was sent" grep -q '^STOPPING=1' "$D/notify.log"
check "and before it exited, it told the control plane the last generation" \
	sh -c 'tail -3 "$1" | grep -q "\"path\":\"/v1/generation\",\"body\":{.*\"reporter\":\"cairnd\""' _ "$CP_LOG"
check "the mount is gone" sh -c '! grep -q " $1 " /proc/self/mountinfo' _ "$MNT"
rm -rf "$D/r2"
CAIRN_CONFIG=$D/c1.conf "$CAIRN" restore -q -w main latest "$D/r2"
acked=$(cat "$D/ack")
last=$(tail -1 "$D/r2/log.txt" | sed 's/record //')
diag "acknowledged $acked records; the last snapshot holds $last"
check "the last snapshot holds every fsync'd record" test "$last" -ge "$acked"
check "as whole lines, in order" "$PY" -c '
import sys
lines = open(sys.argv[1]).read().split("\n")
sys.exit(0 if lines[-1] == "" and all(l == "record %d" % (i + 1) for i, l in enumerate(lines[:-1])) else 1)' "$D/r2/log.txt"

# --- the next VM: a new, empty cache; no agent config on disk -------------
cp -a "$D/home" "$D/home-was"
rm -rf "$D/home-was/.claude/debug" "$D/home"
cat >"$D/checker.sh" <<EOF
env > $D/agent-env
cat $D/home/.claude/settings.json > $D/seen
stat -c %a $D/home/.claude/.credentials.json >> $D/seen
exec sleep 600
EOF
cat >"$D/ticker.sh" <<EOF
i=0
while [ \$i -lt 24 ]; do date >> tick.txt; sleep 0.5; i=\$((i + 1)); done
exec sleep 600
EOF
conf "$D/c2.conf" "$D/cache2" <<EOF

[agent checker]
command = exec sh $D/checker.sh

[agent ticker]
command = exec sh $D/ticker.sh
EOF
sed -i "s#^idle_after = .*#&\\ninterval = 4s#" "$D/c2.conf"	# and a writer that is never idle
gens=$(grep -c '"path":"/v1/generation"' "$CP_LOG")
CAIRN_STATE_DIR=$D/state2	# a new VM has nothing of the old one's
start_cairnd "$D/c2.conf" "$D/log2"
check "the next VM: cairnd comes up on an empty cache" wait_for 30 is state running ||
	diag "$(cat "$D/log2")"
(cd "$MNT" && find . -type f ! -name tick.txt | LC_ALL=C sort | xargs md5sum) >"$D/sum-mnt"
(cd "$D/r2" && find . -type f | LC_ALL=C sort | xargs md5sum) >"$D/sum-r2"
check "the workspace is there, lazily, bytes equal" cmp -s "$D/sum-mnt" "$D/sum-r2" ||
	diag "$(diff "$D/sum-mnt" "$D/sum-r2")"
check "the agent config was in place before the agent started" wait_for 10 sh -c \
	'[ "$(cat "$1")" = "$(printf "%s\n600" "$(cat "$2")")" ]' _ "$D/seen" "$D/home-was/.claude/settings.json"
(cd "$D/home" && find . -mindepth 1 -printf "%p %m %s\n" | LC_ALL=C sort) >"$D/acfg-now"
(cd "$D/home-was" && find . -mindepth 1 -printf "%p %m %s\n" | LC_ALL=C sort) >"$D/acfg-was"
check "the agent's environment has none of cairnd's secrets" sh -c \
	'grep -q "^HOME=" "$1" && grep -q "^CAIRN_AGENT=checker" "$1" && ! grep -Eq "^(AWS_|CAIRN_KEY|CAIRN_STORE|CAIRN_CONFIG|NOTIFY_SOCKET)" "$1"' \
	_ "$D/agent-env"
check "the agent config: bytes and modes equal" sh -c 'cmp -s "$1" "$2" && diff -r "$3" "$4" >/dev/null' \
	_ "$D/acfg-now" "$D/acfg-was" "$D/home" "$D/home-was" || diag "$(diff "$D/acfg-now" "$D/acfg-was")"

check "busy writing: a snapshot every interval" wait_for 15 grep -q "snapshot .*(generation .*, interval)" "$D/log2"
check "the next VM checked the head against the control plane (anti-rollback)" \
	test "$(grep -c '"path":"/v1/generation"' "$CP_LOG")" -gt "$gens"

# --- a lease held by a live cairnd ----------------------------------------
sed -e "s#^mountpoint = .*#mountpoint = $D/mnt3#" -e "s#^control_socket = .*#control_socket = $D/run3/cairnd.sock#" \
	"$D/c2.conf" | sed "s#^cache_dir = .*#cache_dir = $D/cache3#" >"$D/c3.conf"
timeout 120 "$CAIRND" -c "$D/c3.conf" >"$D/log3" 2>&1
rc=$?
check "a second cairnd on the same workspace refuses" test $rc -ne 0 -a $rc -ne 124
check "saying the lease is held, by whom" grep -q "cannot take the lease: workspace .* is in use on this host by pid" "$D/log3" ||
	diag "$(cat "$D/log3")"
fusermount3 -uz "$D/mnt3" 2>/dev/null

# --- the next VM while this one holds the lease: it waits, and says so ---
sed -e "s#^control_socket = .*#control_socket = $D/run4/cairnd.sock#" \
	-e "s#^cache_dir = .*#cache_dir = $D/cache4#" -e "s#^mountpoint = .*#mountpoint = $D/mnt4#" \
	"$D/c3.conf" >"$D/c4.conf"
CAIRN_HOST_ID=next-vm CAIRN_RUN_DIR=$D/run4b "$CAIRND" -c "$D/c4.conf" >"$D/log4" 2>&1 &
vmd4=$!
bg_track $vmd4
_fs_mounts="$_fs_mounts $D/mnt4"
vmd4_get() { _s=$SOCK; SOCK=$D/run4/cairnd.sock; vmd_get "$1"; SOCK=$_s; }
vmd4_waits() { [ "$(vmd4_get workspaces.0.lease)" = waiting ]; }
check "a cairnd on another host waits for the lease instead of exiting" wait_for 30 vmd4_waits
check "its status names the holder" sh -c 'echo "$1" | grep -q "held by host "' _ "$(vmd4_get workspaces.0.lease_wait)"
check "its log says so" grep -q "waiting for the lease\|waiting for it to be released" "$D/log4"
check "the control plane hears it (POST /v1/lease, waiting)" \
	wait_for 15 grep -q '"path":"/v1/lease","body":{.*"event":"waiting"' "$CP_LOG"
check "it is still there, not mounted" sh -c 'kill -0 $1 && ! mountpoint -q "$2"' _ $vmd4 "$D/mnt4"
kill -TERM $vmd4
bg_wait $vmd4
check "SIGTERM stops the waiting cairnd" test "$bg_rc" -ne 124
check "and the first VM keeps its workspace" is workspaces.0.state up

# --- its cairnfs dies: remounted on the same cache, agents restarted -----
printf 'before\n' >"$MNT/before-crash.txt"
sync -f "$MNT/before-crash.txt"
fspid=$(vmd_get workspaces.0.cairnfs_pid)
agentpid=$(vmd_get agents.0.pid)
[ "$fspid" -gt 1 ] 2>/dev/null && kill -9 "$fspid"
check "cairnfs killed: cairnd mounts the workspace again" wait_for 30 is workspaces.0.cairnfs_restarts 1
check "and it is up" wait_for 30 is workspaces.0.state up
check "the agents were stopped and started again" wait_for 20 sh -c \
	'p=$("$1" agents --socket "$2" --json | sed "s/.*\"name\":\"checker\"[^}]*\"pid\":\([0-9]*\).*/\1/"); [ "$p" -gt 1 ] && [ "$p" != "$3" ] && ! kill -0 "$3"' \
	_ "$CAIRN" "$SOCK" "$agentpid"
check "what was fsync'd before is there" sh -c 'printf "before\n" | cmp -s "$1" -' _ "$MNT/before-crash.txt"

# --- kill -9 of cairnd and of its cairnfs ---------------------------------
printf 'kept\n' >"$MNT/after-kill.txt"
sync -f "$MNT/after-kill.txt"
fspid=$(vmd_get workspaces.0.cairnfs_pid)
agentpid=$(vmd_get agents.0.pid)
kill -9 $vmd
bg_wait $vmd
# never kill -1: a pid that status could not give is not a pid
[ "$fspid" -gt 1 ] 2>/dev/null && kill -9 "$fspid"
check "the agent outlived its cairnd" sh -c '[ "$1" -gt 1 ] && kill -0 "$1"' _ "$agentpid"
check "the store's head is a whole snapshot (check is clean)" sh -c \
	'CAIRN_CONFIG=$1 "$2" check -q -w main' _ "$D/c2.conf" "$CAIRN"
start_cairnd "$D/c2.conf" "$D/log4"
check "a new cairnd comes up over the dead mount" wait_for 60 is state running
check "and stopped the agent the killed one left" wait_for 10 sh -c '[ "$1" -gt 1 ] && ! kill -0 "$1"' _ "$agentpid"
check "the fsync'd file is there (the cache was kept)" sh -c 'printf "kept\n" | cmp -s "$1" -' _ "$MNT/after-kill.txt"
kill -TERM $vmd
bg_wait $vmd
check "the restarted cairnd stops cleanly" test $bg_rc -eq 0
rm -rf "$D/r4"
CAIRN_CONFIG=$D/c2.conf "$CAIRN" restore -q -w main latest "$D/r4"
check "its last snapshot has the file written before the kill" sh -c 'printf "kept\n" | cmp -s "$1" -' _ "$D/r4/after-kill.txt"

# --- the shutdown deadline passes: the last committed snapshot stands -----
sed "s#^shutdown_deadline = .*#shutdown_deadline = 2s#" "$D/c2.conf" >"$D/c5.conf"
start_cairnd "$D/c5.conf" "$D/log5"
wait_for 30 is state running
head=$(latest_id)
head -c 3000000 /dev/urandom >"$MNT/late.bin"
s3_ctl POST "/__proxy/fault?kind=delay:8000&count=50&method=PUT" >/dev/null
kill -TERM $vmd
bg_wait $vmd
s3_ctl POST /__proxy/reset >/dev/null
check "past the deadline cairnd exits 2" test $bg_rc -eq 2
check "and says the last committed snapshot is intact" grep -q "deadline.*last committed snapshot" "$D/log5"
check "the mount is gone" sh -c '! grep -q " $1 " /proc/self/mountinfo' _ "$MNT"
sleep 9	# the held-back PUTs land or fail; the head moves only by If-Match
check "the head is a whole snapshot (check is clean)" sh -c \
	'CAIRN_CONFIG=$1 "$2" check -q -w main' _ "$D/c5.conf" "$CAIRN"
check "the unit file is valid (systemd-analyze verify)" sh -c \
	'command -v systemd-analyze >/dev/null || { echo "# no systemd-analyze"; exit 0; }
	 sed "s#/usr/sbin/cairnd#$2#" "$1/vmd/cairnd.service" >"$3/cairnd.service" &&
	 systemd-analyze verify --man=no "$3/cairnd.service" 2>&1 | grep -v "^$" | grep -v "not executable\|No such file" >"$3/verify.out"; ! [ -s "$3/verify.out" ]' \
	_ "$SRCDIR" "$(cd "$(dirname "$CAIRND")" && pwd)/cairnd" "$D" || diag "$(cat "$D/verify.out")"
exec 7>&-
finish
