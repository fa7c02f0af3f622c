#!/bin/sh
# test_lifecycle.sh - the hand-over between VMs, end to end, with real
# cairnd, cairnfs and agents on s3rver behind the R2-like proxy.  Each
# cycle starts "VM k" (its own state, cache, run dir, control socket,
# home and CAIRN_HOST_ID) whose cairnd mounts the workspace and starts an
# agent (tests/lifecycle.py) that appends acknowledged records to a file
# of the workspace and writes its ~/.claude, then stops VM k one way:
#   term      SIGTERM to cairnd (systemd's stop of cairnd.service)
#   umount    umount of the mountpoint, SIGTERM to cairnfs, then to cairnd
#             (what systemd does to an fstab fuse.cairnfs mount)
#   group     SIGTERM to every process of the VM at once (KillMode=control-group)
#   kill      kill -9 of every process of the VM at a random moment
#   killsnap  the same while a snapshot is under way
# and starts VM k+1 at once.  After a clean stop (term, umount, group):
# every process of VM k exits (cairnd with 0), its lease is released,
# VM k+1 gets in without a refusal or a wait (its cairnd stays up, its
# agent runs, no line says the lease is held), and every acknowledged
# record and the agent config are there.  After a kill: VM k+1 gets in
# within the lease's expiry plus a margin, without a person, with every
# record acknowledged before the last snapshot that completed, and that
# snapshot's agent config.  The head's generation never goes back; at
# the end a restore of the last snapshot has everything and `cairn check
# --read-data` is clean.  The agent acknowledges a record once its write
# and fsync have returned (cairn keeps every acknowledged fsync).
#
#   LIFECYCLE_STOPS     the stops, in order (default: each kind once), or
#                       "random" (LIFECYCLE_CYCLES of them, LIFECYCLE_SEED)
#   LIFECYCLE_MINUTES   no new cycle after this long (default: no limit)
#   LIFECYCLE_LEASE_TTL CAIRN_LEASE_TTL of every VM (default 6 s)
# tests/long/lifecycle-loop.sh runs hundreds of random cycles.
. "$CAIRN_SRCDIR/tests/lib.sh"

stops=${LIFECYCLE_STOPS:-term umount group kill killsnap}
cycles=${LIFECYCLE_CYCLES:-100}
seed=${LIFECYCLE_SEED:-$$}
minutes=${LIFECYCLE_MINUTES:-0}
CAIRN_LEASE_TTL=${LIFECYCLE_LEASE_TTL:-6}
export CAIRN_LEASE_TTL
ttl=$CAIRN_LEASE_TTL
grace=30		# "a few seconds", generously: a loaded CI machine
margin=30		# past the lease's expiry, for a lost VM
. "$SRCDIR/tests/vm.sh"
vm_setup

head_gen() { adm cat head --json 2>/dev/null | sed -n 's/.*"generation":\([0-9]*\).*/\1/p'; }

rnd() {	# rnd N: sets $r to the next number from 0 to N-1 of the seeded sequence
	_seed=$(((_seed * 1103515245 + 12345) % 2147483648))
	r=$((_seed / 65536 % $1))
}
_seed=$seed

msleep() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

snaps_done() { grep -c 'workspace main: snapshot [0-9a-f]\{8\} (generation' "$1" ; }
snaps_begun() { grep -c 'workspace main: snapshot (' "$1"; }

wait_log() {	# wait_log SECONDS COMMAND...: until the command succeeds (or cairnd is gone)
	_t=$(($1 * 20))
	shift
	while [ $_t -gt 0 ] && alive "$vmd"; do
		"$@" && return 0
		sleep 0.05
		_t=$((_t - 1))
	done
	return 1
}
at_least() { [ "$($1 "$2")" -ge "$3" ]; }
snapping() { [ "$(snaps_begun "$1")" -gt "$(snaps_done "$1")" ]; }
acked() { [ "$(cat "$1/ack" 2>/dev/null || echo 0)" -ge "$2" ]; }

# vm_stop K KIND: stops VM k; sets $clean (1 for a clean stop) and $t_stop
vm_stop() {
	_v=$D/vm$1
	pids=$(tree_pids $vmd)
	echo "$pids" >>"$D/pids"
	fspid=$(for p in $pids; do [ "$(cat /proc/$p/comm 2>/dev/null)" = cairnfs ] && echo $p; done | head -1)
	clean=1
	case $2 in
	term)
		kill -TERM $vmd 2>/dev/null ;;
	umount)
		# a umount fails (EBUSY) only while the agent is in a write: again
		_i=0
		until timeout 30 fusermount3 -u "$_v/mnt" 2>/dev/null; do
			_i=$((_i + 1))
			if [ $_i -ge 40 ]; then
				diag "cycle $k: $_v/mnt stays busy: detached lazily"
				fusermount3 -uz "$_v/mnt"
				break
			fi
			sleep 0.05
		done
		[ -n "$fspid" ] && kill -TERM "$fspid"
		kill -TERM $vmd 2>/dev/null ;;
	group)
		kill -TERM $pids 2>/dev/null ;;
	kill|killsnap)
		clean=0
		kill -9 $pids 2>/dev/null ;;
	esac
	t_stop=$(now)
	if ! wait_gone 60 $pids; then
		check "VM $1 ($2): every process exits within 60 s" false
		diag "still there: $(for p in $pids; do alive $p && ps -o pid=,args= -p $p; done)"
		kill -9 $pids 2>/dev/null
	fi
	bg_wait $vmd
	vmd_rc=$bg_rc
	[ $clean = 0 ] && fs_force_umount "$_v/mnt"	# the VM is gone, and its mount
	return 0
}

if [ "$stops" = random ]; then
	diag "random stops, seed $seed (LIFECYCLE_SEED=$seed repeats them)"
	stops=
	i=0
	while [ $i -lt "$cycles" ]; do
		rnd 5
		set -- term umount group kill killsnap
		shift $r
		stops="$stops $1"
		i=$((i + 1))
	done
fi
diag "lease TTL ${ttl} s, snapshot interval ${VM_INTERVAL} s"

t_begin=$(date +%s)
gen=0		# the head's generation after the last VM
k=1
vm_conf 1
vm_start 1
if ! check "VM 1 mounts the new workspace and its agent runs" vm_wait_agent 1 $grace; then
	echo "Bail out! VM 1 does not start: $(tail -n 5 "$D/vm1/cairnd.log")"
	exit 1
fi
lost=0		# cycles where VM k+1 did not get in by itself
san=0		# VMs whose log has a sanitizer report (the sanitizer build runs this too)
san_check() {	# san_check LOG: counts and shows a sanitizer report in it
	grep -q 'Sanitizer\|runtime error:' "$1" 2>/dev/null || return 0
	san=$((san + 1))
	diag "$(grep -A20 'Sanitizer\|runtime error:' "$1" | head -40)"
}
ran=0
for stop in $stops; do
	if [ "$minutes" -gt 0 ] && [ $(($(date +%s) - t_begin)) -ge $((minutes * 60)) ]; then
		diag "$minutes minutes are up: $ran cycles"
		break
	fi
	V=$D/vm$k
	N=$D/vm$((k + 1))
	# VM k works: a record at least, then a while; a kill waits for a
	# snapshot of VM k, so that it can lose only what came after one
	wait_log $grace acked "$V" 1 || check "cycle $((ran + 1)): VM $k's agent acknowledges records" false
	case $stop in
	kill*)
		wait_log 60 at_least snaps_done "$V/cairnd.log" 1 ||
			check "cycle $((ran + 1)): VM $k snapshots every ${VM_INTERVAL} s while its agent writes" false ;;
	esac
	case $stop in
	kill)
		rnd 3000; msleep $r ;;
	killsnap)
		wait_log 60 snapping "$V/cairnd.log"
		rnd 400; msleep $r ;;
	*)
		rnd 3000; msleep $((r + 500)) ;;
	esac
	gens_k=$(sed -n 's/.*workspace main: snapshot [0-9a-f]\{8\} (generation \([0-9]*\),.*/\1/p' "$V/cairnd.log" | tr '\n' ' ')
	vm_stop $k $stop
	ack=$(cat "$V/ack" 2>/dev/null || echo 0)

	# what VM k left in the store: the head, and (after a clean stop) a released lease
	newgen=$(head_gen)
	lease_ok=0
	if [ $clean = 1 ]; then
		adm cat lease --json >"$V/lease.json" 2>&1
		# released: expires == acquired (cairn-format(5)), not merely run out
		"$PY" -c 'import json, sys
l = json.load(open(sys.argv[1]))
sys.exit(0 if l["expires"] == l["acquired"] else 1)' "$V/lease.json" 2>/dev/null && lease_ok=1
	else
		snap=$(adm cat head --json | sed -n 's/.*"snapshot":"\([0-9a-f]*\)".*/\1/p')
		adm cat snapshot "$snap" --json >"$V/head-snap.json" 2>/dev/null
		need=$($LC need "$V/acks" "$V/head-snap.json" 2>&1) ||
			{ check "cycle $((ran + 1)) ($stop): the head's snapshot can be read" false; diag "$need"; need=0; }
	fi

	# VM k+1, at once
	vm_conf $((k + 1))
	vm_start $((k + 1))
	k=$((k + 1))
	ran=$((ran + 1))
	if [ $clean = 1 ]; then
		need=$ack
		check "cycle $ran ($stop): VM $((k - 1)) stops (cairnd exit $vmd_rc), unmounted, and releases its lease" \
			sh -c '[ $1 = 1 ] && [ $3 = 0 ] && ! grep -q " $2 " /proc/self/mountinfo' _ $lease_ok "$V/mnt" "$vmd_rc" ||
			diag "the lease: $(cat "$V/lease.json")" "$(grep " $V/mnt " /proc/self/mountinfo | sed 's/^/still mounted: /')"
		vm_wait_agent $k $grace
		ok=$?
		# a refusal, or a wait for the lease (its start or its end), says so
		wait_words=$(grep -i 'in use by\|held by\|waiting for\|cannot take the lease\|the lease is taken' "$N/cairnd.log")
		check "cycle $ran ($stop): VM $k gets in without a refusal or a wait" \
			sh -c '[ $1 = 0 ] && [ -z "$2" ]' _ $ok "$wait_words"
	else
		vm_wait_agent $k $((ttl + margin))
		ok=$?
		[ $ok = 0 ] && diag "VM $k's agent runs $(awk -v a="$(cat "$N/started")" -v b="$t_stop" \
			'BEGIN { printf "%.1f", a - b }') s after the kill (lease TTL $ttl s)" \
			"$(grep -m1 'held by\|in use by' "$N/cairnd.log")"
		check "cycle $ran ($stop): VM $k gets in within the lease expiry + ${margin} s, without a person" test $ok = 0
	fi
	if [ $ok != 0 ]; then
		diag "VM $k's cairnd $(alive $vmd && echo "is up" || echo "has exited"); its log:" \
			"$(tail -n 15 "$N/cairnd.log")"
		# a person steps in: the lease waited out by hand, VM k+1 started again
		alive $vmd && { kill -9 $(tree_pids $vmd) 2>/dev/null; bg_wait $vmd; }
		fs_force_umount "$N/mnt"
		lost=$((lost + 1))
		sleep $((ttl + 1))
		vm_conf $k
		vm_start $k
		vm_wait_agent $k $((ttl + margin)) || {
			echo "Bail out! VM $k does not get in even after its lease was waited out: $(tail -n 5 "$N/cairnd.log")"
			exit 1
		}
	fi
	res=$(timeout 60 $LC records "$N/mnt/records.txt" $((k - 1)) "$need" 2>&1)
	check "cycle $ran ($stop): VM $((k - 1))'s records are there ($ack acknowledged, $need needed)" \
		test $? = 0 || diag "$res"
	res=$($LC config "$N/seen" "$V/home" $((k - 1)) "$need" 2>&1)
	check "cycle $ran ($stop): and its agent config, in place before VM $k's agent started" \
		test $? = 0 || diag "$res" "$(grep -i 'agent.config\|restor\|status' "$N/cairnd.log")"
	mgen=$(CAIRN_RUN_DIR=$N/run timeout 60 "$CAIRN" status --mount "$N/mnt" --json 2>/dev/null | sed -n 's/.*"generation": *\([0-9]*\).*/\1/p' | head -1)
	check "cycle $ran ($stop): generations do not go back (head $gen, VM $((k - 1)) ${gens_k:-none} head $newgen, VM $k mounted $mgen)" \
		"$PY" -c 'import sys
old, new, mount = int(sys.argv[1]), int(sys.argv[2] or -1), int(sys.argv[3] or -1)
g = [int(x) for x in sys.argv[4].split()]
sys.exit(0 if g == sorted(set(g)) and all(x > old for x in g) and new >= max(g + [old]) and mount >= new else 1)' \
		"$gen" "$newgen" "$mgen" "$gens_k"
	gen=$newgen
	san_check "$V/cairnd.log"
	rm -rf "$D/vm$((k - 2))"	# a VM long gone
done

# the last VM stops cleanly; what it had is the head
V=$D/vm$k
wait_log $grace acked "$V" 1
vm_stop $k term
check "the last VM stops with exit status 0" test "$vmd_rc" = 0 || diag "$(tail -n 15 "$V/cairnd.log")"
san_check "$V/cairnd.log"
check "no VM's cairnd, cairnfs or cairn logged a sanitizer report" test $san = 0
rm -rf "$D/restored"
adm restore -q latest "$D/restored" >/dev/null 2>&1
adm restore -q --root agent-config latest "$D/restored-config" >/dev/null 2>&1
res=$($LC records "$D/restored/records.txt" $k "$(cat "$V/ack" 2>/dev/null || echo 0)" 2>&1)
check "its last snapshot has every acknowledged record of all $k VMs, in order" test $? = 0 || diag "$res"
res=$($LC config "$D/restored-config" "$V/home" $k "$(cat "$V/ack" 2>/dev/null || echo 0)" 2>&1)
check "and its agent config" test $? = 0 || diag "$res"
adm check --read-data -q >"$D/check.out" 2>&1
check "cairn check --read-data is clean" test $? = 0 ||
	diag "$(tail -n 20 "$D/check.out")"
diag "$ran cycles; $lost times the next VM did not get in by itself"
finish
