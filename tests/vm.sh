# vm.sh - plays VMs on one machine for the hand-over tests and the
# benchmark (sourced after tests/lib.sh): VM k is a dir of its own under
# $D (state, cache, run dir, control socket, home, mountpoint), a cairn.conf
# and CAIRN_HOST_ID=vmK, with one agent (tests/lifecycle.py) that writes
# acknowledged records into the workspace and its ~/.claude.
#
#   vm_setup                 the S3 test server and the workspace; sets D, LC
#   vm_conf K; vm_start K    a new VM k (nothing but its config); sets $vmd
#   vm_wait_agent K SECONDS  0 once its agent runs (and its cairnd is up)
#   tree_pids PID; alive PID; wait_gone SECONDS PID...; adm CAIRN-ARGS
# VM_INTERVAL (default 2) is the snapshot interval of every VM, in seconds.

CAIRND=${CAIRN_BUILDDIR:-.}/cairnd
PY=$(${PYTHON:-python3} -c 'import sys; print(sys.executable)')
LC="$PY $SRCDIR/tests/lifecycle.py"
D=$TMP/life
VM_INTERVAL=${VM_INTERVAL:-2}

vm_setup() {
	mkdir -p "$D"
	s3_start
	# the processes of every VM, stopped by pid (their names checked, for a
	# pid used again) and their mounts detached, whatever happens
	_cleanup_cmd='for _p in $(cat "$D/pids" 2>/dev/null); do
	case $(cat /proc/$_p/comm 2>/dev/null) in cairnd|cairnfs|cairn|python3*) kill -9 $_p ;; esac
done 2>/dev/null
for _m in "$D"/vm*/mnt; do fs_force_umount "$_m"; done'
	printf '[workspace main]\nstore = s3://cairn-test/life\nworkspace = 11fe0000c0ffee01\nkey = file:%s/tenant.key\n' \
		"$D" >"$D/admin.conf"
	CAIRN_CONFIG=$D/admin.conf CAIRN_STATE_DIR=$D/admin-state "$CAIRN" init --create-key -q -w main >/dev/null ||
		{ echo "Bail out! cannot make the workspace"; exit 1; }
}

now() { date +%s.%N; }

tree_pids() {	# tree_pids PID: PID and every descendant of it
	ps -e -o pid= -o ppid= | awk -v root="$1" '{ up[$1] = $2 }
		END { keep[root] = 1
		      do { n = 0; for (p in up) if (!(p in keep) && (up[p] in keep)) { keep[p] = 1; n++ } } while (n)
		      for (p in keep) print p }'
}

alive() {	# alive PID: running (a zombie is not)
	kill -0 "$1" 2>/dev/null && ! grep -q '^[^ ]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

wait_gone() {	# wait_gone SECONDS PID...: 0 once none of them is alive
	_t=$(($1 * 10))
	shift
	while [ $_t -gt 0 ]; do
		_any=
		for _p; do alive "$_p" && _any=1; done
		[ -z "$_any" ] && return 0
		sleep 0.1
		_t=$((_t - 1))
	done
	return 1
}

adm() {	# adm ARGS: a cairn command of the operator's (state of its own, no lease)
	CAIRN_CONFIG=$D/admin.conf CAIRN_STATE_DIR=$D/admin-state CAIRN_HOST_ID=operator \
		timeout 60 "$CAIRN" "$@" -w main
}

# vm_conf K: VM k's cairn.conf; a new VM has nothing but its config
vm_conf() {
	_v=$D/vm$1
	rm -rf "$_v"
	mkdir -p "$_v/home" "$_v/mnt"
	echo "exec $LC agent $1 $_v $_v/mnt $_v/home" >"$_v/agent.sh"
	cat >"$_v/cairn.conf" <<EOF
[cairnd]
control_socket = $_v/run/cairnd.sock
log_dir = $_v/logs
cairnfs = $CAIRNFS
cairn = $CAIRN

[workspace main]
store = s3://cairn-test/life
workspace = 11fe0000c0ffee01
key = file:$D/tenant.key
mountpoint = $_v/mnt
cache_dir = $_v/cache
interval = ${VM_INTERVAL}s
idle_after = 1h
shutdown_deadline = 30s

[agent-config main]
home = $_v/home

[agent writer]
command = exec sh $_v/agent.sh
cwd = $_v
stop_grace = 5s
EOF
}

vm_start() {	# vm_start K: VM k's cairnd, in the background; sets $vmd and $t_start
	_v=$D/vm$1
	t_start=$(now)
	CAIRN_HOST_ID=vm$1 CAIRN_STATE_DIR=$_v/state CAIRN_RUN_DIR=$_v/run \
		"$CAIRND" -c "$_v/cairn.conf" >"$_v/cairnd.log" 2>&1 &
	vmd=$!
	bg_track $vmd
	echo $vmd >>"$D/pids"
}

vm_wait_agent() {	# vm_wait_agent K SECONDS: 0 once VM k's agent runs and its cairnd is up
	_v=$D/vm$1
	_t=$(($2 * 10))
	while [ $_t -gt 0 ] && alive "$vmd"; do
		if [ -s "$_v/started" ]; then
			tree_pids $vmd >>"$D/pids"
			return 0
		fi
		sleep 0.1
		_t=$((_t - 1))
	done
	return 1
}

