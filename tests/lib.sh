# lib.sh - shared by the shell tests: TAP output, a private temp dir removed
# on exit, and the S3 test server (s3rver behind the verifying proxy),
# started on free loopback ports and stopped by pid.
#
#   . "$CAIRN_SRCDIR/tests/lib.sh"
#   check "description" command args...     # ok/not ok
#   s3_start                                 # sets S3_ENDPOINT, S3_PORT, AWS_*
#   s3_ctl POST /__proxy/reset               # control request, prints body
#   s3_stat put.count                        # one counter
#   cmd & bg_track $!; ...; bg_wait $!       # background jobs the cleanup kills
#   tap_relay FILE                           # another TAP program's checks as ours
#   finish                                   # prints the plan, exit status

set -u

CAIRN=${CAIRN_BUILDDIR:-.}/cairn
SRCDIR=${CAIRN_SRCDIR:-.}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-XXXXXX")
_n=0
_failed=0
_s3_pid=
_bg_pids=
_fs_mounts=
_cleanup_files=	# files outside $TMP a test made, removed on exit
_cleanup_cmd=	# a test's own cleanup, run first
CAIRNFS=${CAIRN_BUILDDIR:-.}/cairnfs

_cleanup() {
	[ -n "${_cleanup_cmd:-}" ] && eval "$_cleanup_cmd"
	for _m in $_fs_mounts; do
		fs_force_umount "$_m"
	done
	[ -n "$_cleanup_files" ] && rm -f $_cleanup_files
	for _p in $_bg_pids; do
		kill -9 "$_p" 2>/dev/null
		wait "$_p" 2>/dev/null
	done
	if [ -n "$_s3_pid" ]; then
		kill "$_s3_pid" 2>/dev/null
		wait "$_s3_pid" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap _cleanup EXIT
trap 'exit 1' INT TERM

check() {	# check DESCRIPTION COMMAND...: ok when the command succeeds
	_desc=$1
	shift
	_n=$((_n + 1))
	if "$@"; then
		echo "ok $_n - $_desc"
		return 0
	fi
	echo "not ok $_n - $_desc"
	_failed=$((_failed + 1))
	return 1
}

bg_track() {	# bg_track PID: a background job the cleanup kills (-9) if still there
	_bg_pids="$_bg_pids $1"
}

bg_wait() {	# bg_wait PID: waits for a tracked job, sets $bg_rc, untracks it
	wait "$1" 2>/dev/null	# no "Killed" from the shell: the caller checks $bg_rc
	bg_rc=$?
	_bg_pids=$(for _p in $_bg_pids; do [ "$_p" = "$1" ] || printf ' %s' "$_p"; done)
}

diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

# tap_relay FILE: each check of another program's TAP output ("ok N - what"
# or "ok - what") becomes one of ours, renumbered (skips too); its
# diagnostics pass through, any other line as a diagnostic; its plan is
# kept in $tap_plan, not repeated; its "Bail out!" is ours.
tap_relay() {
	tap_plan=
	while IFS= read -r line; do
		case $line in
		"ok "*" # SKIP"*)
			_n=$((_n + 1))
			echo "ok $_n # SKIP ${line#*# SKIP }" ;;
		"ok - "*) check "${line#ok - }" true ;;
		"not ok - "*) check "${line#not ok - }" false ;;
		"ok "*) check "${line#ok * - }" true ;;
		"not ok "*) check "${line#not ok * - }" false ;;
		"1.."*) tap_plan=${line#1..} ;;
		"Bail out!"*) echo "$line"; exit 1 ;;
		"#"*) echo "$line" ;;
		*) echo "# $line" ;;
		esac
	done <"$1"
}

finish() {
	echo "1..$_n"
	[ "$_failed" -eq 0 ]
}

s3_start() {	# the server exits when its stdin (fd 9) closes, too
	mkfifo "$TMP/s3-ready" "$TMP/s3-stdin"
	# stdin first: each end of a fifo blocks in open() until the other end
	# opens, so both sides must open the two fifos in the same order
	"${NODE:-node}" "$SRCDIR/tests/s3/server.js" --dir "$TMP/s3" "$@" \
		<"$TMP/s3-stdin" >"$TMP/s3-ready" 2>"$TMP/s3.log" &
	_s3_pid=$!
	exec 9>"$TMP/s3-stdin"
	read -r _word S3_PORT _ <"$TMP/s3-ready"
	if [ "$_word" != READY ]; then
		echo "Bail out! the S3 test server did not start: $(cat "$TMP/s3.log")"
		exit 1
	fi
	S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
	AWS_ENDPOINT_URL=$S3_ENDPOINT
	AWS_REGION=auto
	AWS_ACCESS_KEY_ID=CAIRNTESTACCESSKEY01
	AWS_SECRET_ACCESS_KEY=cairn/test/secret/key/0123456789abcdefghij
	export AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}

# cp_start [ARGS]: the reference control plane (tests/cp/server.js) on
# HTTPS with a certificate from a private CA made here; sets CP_URL, CP_CA,
# CP_TOKEN_FILE, CP_LOG, and CP_OTHER_CA (a CA that did not sign it).
cp_start() {
	_cp=$TMP/cp
	mkdir -p "$_cp"
	for _ca in ca other; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
			-subj "/CN=cairn test $_ca" -keyout "$_cp/$_ca.key" -out "$_cp/$_ca.pem" 2>/dev/null
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
		-keyout "$_cp/srv.key" -out "$_cp/srv.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$_cp/ext"
	openssl x509 -req -in "$_cp/srv.csr" -CA "$_cp/ca.pem" -CAkey "$_cp/ca.key" -CAcreateserial \
		-days 2 -extfile "$_cp/ext" -out "$_cp/srv.pem" 2>/dev/null
	(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$_cp/token")
	mkfifo "$_cp/ready" "$_cp/stdin"
	"${NODE:-node}" "$SRCDIR/tests/cp/server.js" --cert "$_cp/srv.pem" --key "$_cp/srv.key" \
		--token-file "$_cp/token" --log "$_cp/log" "$@" \
		<"$_cp/stdin" >"$_cp/ready" 2>"$_cp/server.log" &
	bg_track $!
	exec 8>"$_cp/stdin"
	read -r _word _port _ <"$_cp/ready"
	if [ "$_word" != READY ]; then
		echo "Bail out! the control-plane test server did not start: $(cat "$_cp/server.log")"
		exit 1
	fi
	CP_URL=https://127.0.0.1:$_port
	CP_CA=$_cp/ca.pem
	CP_OTHER_CA=$_cp/other.pem
	CP_TOKEN_FILE=$_cp/token
	CP_LOG=$_cp/log
}

s3_ctl() {	# s3_ctl METHOD PATH: a control request to the proxy
	curl -sf -X "$1" "$S3_ENDPOINT$2"
}

s3_faults() {	# the proxy's count of faults fired: cheap enough to poll
	s3_ctl GET /__proxy/stats | sed -n 's/.*"faults":\([0-9]*\).*/\1/p'
}

s3_stat() {	# s3_stat NAME: one counter of /__proxy/stats ("put.count", "requests")
	s3_ctl GET /__proxy/stats | json_get "$1"
}

# json_get KEY.PATH: one field of the JSON object on stdin (of the last
# line, for commands that print one object per line), list items by
# number; -1 when it is absent or null, booleans as true/false.
json_get() {
	python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
v = json.loads(lines[-1]) if lines else None
for k in sys.argv[1].split("."):
    if isinstance(v, list) and k.isdigit():
        v = v[int(k)] if int(k) < len(v) else None
    else:
        v = v.get(k) if isinstance(v, dict) else None
print(-1 if v is None else str(v).lower() if isinstance(v, bool) else v)' "$1"
}

# status_field MOUNTPOINT KEY.PATH: one field of cairn status --json
status_field() {
	"$CAIRN" status --mount "$1" --json | json_get "$2"
}

# --- cairnfs mounts -------------------------------------------------------
# fs_workspace DIR: a fresh file:// workspace under DIR; exports CAIRN_STORE,
# CAIRN_KEY and CAIRN_STATE_DIR so that cairn and cairnfs both find it.
fs_workspace() {
	mkdir -p "$1"
	CAIRN_STORE=file://$1/store
	CAIRN_KEY=file:$1/tenant.key
	CAIRN_STATE_DIR=$1/state
	export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR
	"$CAIRN" init --create-key -q >/dev/null
}

# fs_mount MOUNTPOINT CACHE [OPT,...]: mounts the workspace of CAIRN_STORE
# with cairnfs (daemonized; its pid is in CACHE/cairnfs.pid) and remembers
# the mount for the cleanup.  Returns cairnfs's exit status.
fs_mount() {
	mkdir -p "$1"
	_fs_mounts="$_fs_mounts $1"
	echo "$1 $2" >>"$TMP/fs-mounts"
	"$CAIRNFS" "$CAIRN_STORE" "$1" -o "cache=$2${3:+,$3}"
}

# fs_umount MOUNTPOINT: a clean unmount; waits (10 s at most) until the
# daemon has exited, so its last commit is on disk.  0 when it has.
fs_umount() {
	_pid=$(fs_pid "$1")
	fusermount3 -u "$1" || return 1
	_fs_mounts=$(for _m in $_fs_mounts; do [ "$_m" = "$1" ] || printf ' %s' "$_m"; done)
	_i=0
	while [ -n "$_pid" ] && kill -0 "$_pid" 2>/dev/null &&
		! grep -q '^[^ ]* [^ ]* Z' "/proc/$_pid/stat" 2>/dev/null; do
		_i=$((_i + 1))
		[ $_i -gt 100 ] && return 1
		sleep 0.1
	done
	fs_log_clean "$1"
}

# fs_log_clean MOUNTPOINT: 0 unless the daemon's log has a sanitizer
# report (the sanitizer build runs every mount test too).
fs_log_clean() {
	_c=$(awk -v m="$1" '$1 == m { c = $2 } END { print c }' "$TMP/fs-mounts" 2>/dev/null)
	[ -n "$_c" ] && [ -f "$_c/cairnfs.log" ] || return 0
	if grep -q 'Sanitizer\|runtime error:' "$_c/cairnfs.log"; then
		grep -A20 'Sanitizer\|runtime error:' "$_c/cairnfs.log" | head -40 | sed 's/^/# /'
		return 1
	fi
	return 0
}

# fs_wait_exit PID: waits (10 s at most) until the process has exited.
fs_wait_exit() {
	_i=0
	while kill -0 "$1" 2>/dev/null && ! grep -q '^[^ ]* [^ ]* Z' "/proc/$1/stat" 2>/dev/null; do
		_i=$((_i + 1))
		[ $_i -gt 100 ] && return 1
		sleep 0.1
	done
	return 0
}

# fs_tree_sum DIR: paths, types, modes, link counts, mtimes, sizes, link
# targets, contents and xattrs of a tree, one line each, sorted.
fs_tree_sum() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
		if [ -L "$p" ]; then
			printf '%s l %s\n' "$p" "$(readlink "$p")"
		elif [ -d "$p" ]; then
			printf '%s d %s\n' "$p" "$(stat -c %a "$p")"
		elif [ ! -f "$p" ]; then	# fifo, device, socket: never opened
			printf '%s %s\n' "$p" "$(stat -c '%F %a %h %t:%T' "$p")"
		else
			printf '%s f %s %s %s %s\n' "$p" "$(stat -c '%a %h %Y' "$p")" \
				"$(stat -c %s "$p")" "$(md5sum <"$p" | cut -c1-32)" \
				"$(getfattr --absolute-names -d "$p" 2>/dev/null | grep -v '^#' | tr '\n' ' ')"
		fi
	done)
}

# fs_pid MOUNTPOINT: the pid of the cairnfs that fs_mount started on it.
fs_pid() {
	_c=$(awk -v m="$1" '$1 == m { c = $2 } END { print c }' "$TMP/fs-mounts" 2>/dev/null)
	[ -n "$_c" ] && cat "$_c/cairnfs.pid" 2>/dev/null
	return 0
}

# fs_force_umount MOUNTPOINT: for the cleanup and for a daemon that is gone
# or stuck: lazy unmount, and abort the FUSE connection if it is still up.
fs_force_umount() {
	_dev=$(awk -v m="$1" '$5 == m { print $3 }' /proc/self/mountinfo | head -1)
	fusermount3 -uz "$1" 2>/dev/null
	if [ -n "$_dev" ]; then
		mountpoint -q /sys/fs/fuse/connections 2>/dev/null ||
			mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
		_conn=/sys/fs/fuse/connections/${_dev#0:}
		[ -e "$_conn/abort" ] && echo 1 >"$_conn/abort" 2>/dev/null
	fi
	return 0
}
