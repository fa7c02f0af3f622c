#!/bin/bash
# snapshot-bench.sh - cairn beside restic 0.14 on the same generated agent
# workspace and the same s3rver, both over TLS on 127.0.0.1.
#
#   tests/bench/snapshot-bench.sh [--size small|full] [--seed N] [--runs N]
#       [--tools restic,cairn] [--mutate N] [--cache DIR] [--docs FILE|--no-docs]
#       [--timeout SECONDS] [--cold] [--keep]
#
# For each tool and run: a fresh s3rver (its own dir), a fresh copy of the
# workspace at one fixed path, then
#   init (untimed) -> full snapshot -> gen-workspace --mutate N ->
#   incremental snapshot -> restore into an empty dir -> verify (gen-workspace
#   --digest: paths, types, modes, sizes, contents, symlinks; mtimes reported)
# and the bytes and objects the store holds, and the requests each step made.
# The figures are the median of --runs runs (default 3; --runs 1 for a quick
# full-size pass).  The page cache is warm (the copy was just made) unless
# --cold, which drops it (sync; echo 3 >/proc/sys/vm/drop_caches: root, and
# felt by the whole machine) before each timed step.  A table goes to stdout and, unless --no-docs, into the
# size's section of docs/benchmarks.md with the machine, versions and command.
#
# The workspace is generated once per size, seed and generator version and
# kept in --cache (default $BENCH_CACHE or /var/tmp/cairn-bench).  cairn is
# $CAIRN or ./cairn at the top of the tree; its rows are skipped while it has
# no `snapshot` command.  restic comes from Debian (apt-get install restic).
#
# Needs: python3, git, node + tests/node_modules (cd tests && npm ci), openssl,
# curl, restic.  Everything listens on 127.0.0.1 and every process started
# here is stopped by its pid on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cmdline="tests/bench/snapshot-bench.sh${*:+ $*}"

size=small seed=1 runs=3 tools=restic,cairn mutate=10 keep=0 cold=0
cache=${BENCH_CACHE:-/var/tmp/cairn-bench}
docs=$top/docs/benchmarks.md
tmo=
usage() { sed -n '2,30s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--tools) tools=$2; shift 2 ;;
	--mutate) mutate=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--docs) docs=$2; shift 2 ;;
	--no-docs) docs=; shift ;;
	--timeout) tmo=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--cold) cold=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "snapshot-bench: unknown argument $1" >&2; usage ;;
	esac
done
case $size in small|full) ;; *) echo "snapshot-bench: --size small|full" >&2; exit 2 ;; esac
[ -n "$tmo" ] || { [ "$size" = full ] && tmo=900 || tmo=300; }
CAIRN=${CAIRN:-$top/cairn}

for t in python3 git node openssl curl; do
	command -v "$t" >/dev/null || { echo "snapshot-bench: $t is missing" >&2; exit 1; }
done

. "$here/s3-tls.sh"

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/cairn-bench-run.XXXXXX")
failed=0
cleanup() {
	s3tls_stop
	if [ "$keep" = 1 ]; then
		echo "kept $work" >&2
	elif [ "$failed" != 0 ]; then
		rm -rf "$work/src" "$work/restore" "$work"/*/s3 "$work"/*/restic-cache
		echo "snapshot-bench: something failed; logs kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- the workspace (cached) -------------------------------------------------
genver=$(sha256sum "$here/gen-workspace" | cut -c1-12)
ws=$cache/ws-$size-s$seed-$genver
if [ ! -f "$ws.summary" ]; then
	mkdir -p "$cache"
	rm -rf "$ws" "$cache/ws-$size-s$seed-"*     # and those of older generators
	log "generating the $size workspace (seed $seed) in $ws"
	timeout -k 10 600 python3 "$here/gen-workspace" --size "$size" --seed "$seed" "$ws" >"$ws.summary.tmp"
	mv "$ws.summary.tmp" "$ws.summary"
fi
cat "$ws.summary" >&2
ws_files=$(sed -n 's/^summary: files=\([0-9]*\).*/\1/p' "$ws.summary")
ws_bytes=$(sed -n 's/^summary: .* bytes=\([0-9]*\).*/\1/p' "$ws.summary")

# ---- tools ------------------------------------------------------------------
have_restic=0 have_cairn=0
if [[ ",$tools," == *,restic,* ]]; then
	if command -v restic >/dev/null; then have_restic=1
	else echo "snapshot-bench: restic is not installed (apt-get install -y restic): skipping its rows" >&2; fi
fi
if [[ ",$tools," == *,cairn,* ]]; then
	if [ -x "$CAIRN" ] && "$CAIRN" help 2>&1 | grep -qw snapshot && "$CAIRN" help 2>&1 | grep -qw restore; then
		have_cairn=1
	else
		echo "snapshot-bench: $CAIRN is not built or has no snapshot/restore command yet: skipping the cairn rows" >&2
	fi
fi
[ $have_restic = 1 ] || [ $have_cairn = 1 ] || { echo "snapshot-bench: no tool to measure" >&2; exit 1; }

s3tls_cert "$work/cert"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=auto AWS_DEFAULT_REGION=auto
SRC=$work/src           # the same path for every tool and run
OUT=$work/restore
results=$work/results.jsonl
: >"$results"

# timed NAME CMD...: runs CMD under timeout, output to $run/NAME.log; sets
# T_WALL T_USER T_SYS T_RSS (KiB; empty without /usr/bin/time)
timed() {
	local name=$1 t0 t1 rc=0
	shift
	T_USER= T_SYS= T_RSS=
	t0=$EPOCHREALTIME
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S %M' -o "$run/$name.time" timeout -k 10 "$tmo" "$@" >"$run/$name.log" 2>&1 || rc=$?
	else
		timeout -k 10 "$tmo" "$@" >"$run/$name.log" 2>&1 || rc=$?
	fi
	t1=$EPOCHREALTIME
	T_WALL=$(python3 -c "print('%.2f' % ($t1 - $t0))")
	if [ -s "$run/$name.time" ]; then read -r T_USER T_SYS T_RSS < <(tail -1 "$run/$name.time"); fi
	if [ $rc != 0 ]; then
		echo "snapshot-bench: $name failed (exit $rc):" >&2
		tail -20 "$run/$name.log" >&2
		return 1
	fi
}

# step NAME CMD...: a timed step with the server's counters; appends a JSON member
step() {
	local name=$1
	shift
	if [ "$cold" = 1 ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches || { echo "snapshot-bench: --cold needs root" >&2; return 1; }
	fi
	s3tls_reset || return 1
	timed "$name" "$@" || return 1
	rec="$rec,\"$name\":{\"wall\":$T_WALL,\"user\":${T_USER:-null},\"sys\":${T_SYS:-null},\"rss_kb\":${T_RSS:-null},\"server\":$(s3tls_stats)}"
	log "  $name: ${T_WALL}s"
}

tool_init() {
	case $1 in
	restic) timed init restic -r "s3:$S3TLS_ENDPOINT/bench/restic" --cacert "$S3TLS_CA" init ;;
	cairn) timed init "$CAIRN" init --store s3://bench/cairn --key "file:$run/tenant.key" --create-key --state-dir "$run/state" ;;
	esac
}
tool_snapshot() {
	case $1 in
	restic) step "$2" restic -r "s3:$S3TLS_ENDPOINT/bench/restic" --cacert "$S3TLS_CA" backup "$SRC" ;;
	cairn) step "$2" "$CAIRN" snapshot --state-dir "$run/state" "$SRC" ;;
	esac
}
tool_restore() {
	case $1 in
	restic) step restore restic -r "s3:$S3TLS_ENDPOINT/bench/restic" --cacert "$S3TLS_CA" restore latest --target "$OUT" ;;
	cairn) step restore "$CAIRN" restore --state-dir "$run/state" latest "$OUT" ;;
	esac
}

measure() {
	local tool=$1 i=$2 root digest_src digest_out meta_src meta_out verify meta stored objects
	run=$work/$tool-$i
	mkdir -p "$run"
	log "$tool run $i/$runs"
	rm -rf "$SRC" "$OUT"
	cp -a "$ws" "$SRC" || return 1
	s3tls_start "$run/s3" "$work/cert" || return 1
	export AWS_ENDPOINT_URL=$S3TLS_ENDPOINT AWS_CA_BUNDLE=$S3TLS_CA
	export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$run/restic-cache
	export CAIRN_STORE=s3://bench/cairn CAIRN_KEY=file:$run/tenant.key CAIRN_STATE_DIR=$run/state
	rec="{\"tool\":\"$tool\",\"run\":$i"
	tool_init "$tool" || { s3tls_stop; return 1; }
	tool_snapshot "$tool" full || { s3tls_stop; return 1; }
	python3 "$here/gen-workspace" --mutate "$mutate" --seed $((seed + 1000)) "$SRC" >"$run/mutate.log" ||
		{ s3tls_stop; return 1; }
	tool_snapshot "$tool" incremental || { s3tls_stop; return 1; }
	mkdir -p "$OUT"
	tool_restore "$tool" || { s3tls_stop; return 1; }
	root=$OUT
	[ -d "$OUT/project" ] || root=$OUT$SRC
	read -r digest_src meta_src < <(python3 "$here/gen-workspace" --digest "$SRC")
	read -r digest_out meta_out < <(python3 "$here/gen-workspace" --digest "$root" 2>/dev/null || echo none none)
	verify=ok meta=same
	[ "$digest_src" = "$digest_out" ] || verify=FAILED
	[ "$meta_src" = "$meta_out" ] || meta=differ
	[ $verify = ok ] || echo "snapshot-bench: $tool restore differs from the source (logs in $run)" >&2
	stored=$(find "$run/s3/data/bench" -type f -name '*._S3rver_object' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
	objects=$(find "$run/s3/data/bench" -type f -name '*._S3rver_object' | wc -l)
	rec="$rec,\"verify\":\"$verify\",\"mtimes\":\"$meta\",\"stored\":$stored,\"objects\":$objects,\"changed\":$(grep -c '^changed:' "$run/mutate.log")}"
	echo "$rec" >>"$results"
	log "  stored $stored bytes in $objects objects; restore $verify (mtimes $meta)"
	s3tls_stop
	if [ $verify = ok ] && [ "$keep" != 1 ]; then rm -rf "$run/s3" "$run/restic-cache" "$run/state"; fi
	rm -rf "$SRC" "$OUT"
	[ $verify = ok ]
}

for tool in restic cairn; do
	[ "$tool" = restic ] && [ $have_restic = 0 ] && continue
	[ "$tool" = cairn ] && [ $have_cairn = 0 ] && continue
	for i in $(seq 1 "$runs"); do
		measure "$tool" "$i" || failed=1
	done
done

# ---- report -----------------------------------------------------------------
versions="restic: $(restic version 2>/dev/null | head -1 || echo none)"
if [ $have_cairn = 1 ]; then
	versions="$versions; cairn: $("$CAIRN" --version 2>/dev/null | head -1) ($(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown))"
elif [[ ",$tools," == *,cairn,* ]]; then
	versions="$versions; cairn: not measured (no snapshot command in this build)"
else
	versions="$versions; cairn: not measured (--tools $tools)"
fi
versions="$versions; s3rver $(sed -n 's/^ *"version": "\(.*\)",/\1/p' "$top/tests/node_modules/s3rver/package.json" | head -1) on node $(node --version)"
python3 "$here/bench-report.py" --results "$results" --size "$size" --seed "$seed" --runs "$runs" \
	--mutate "$mutate" --cache-state "$([ "$cold" = 1 ] && echo cold || echo warm)" --files "$ws_files" --bytes "$ws_bytes" --versions "$versions" \
	--command "$cmdline" ${docs:+--docs "$docs"}
exit $failed
