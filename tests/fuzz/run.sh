#!/bin/sh
# run.sh - builds every fuzz target with libFuzzer, ASan and UBSan (clang)
# and runs each for FUZZ_SECONDS (default 10):
#
#   tests/fuzz/run.sh [TARGET...]          (from a configured build dir)
#   FUZZ_SECONDS=600 tests/fuzz/run.sh pack
#
# Targets: tree (tests/fuzz_tree.c) and those of tests/fuzz_decoders.c:
# snapshot head lease pack index wrapped sealed keyset conf ctl s3xml.
# Each starts from the seeds the replay driver writes and the committed
# corpus tests/fuzz/NAME/, and grows a working copy in $FUZZ_WORK (default
# $TMPDIR/cairn-fuzz), so the committed corpus stays small (the seeds, and a
# few inputs libFuzzer found, found-*).  A crash leaves
# $FUZZ_WORK/NAME/crash-*: minimise it (-minimize_crash=1), fix the bug, and
# commit the input to tests/fuzz/NAME/ so that `make check` replays it.
# Prints one line per target, "fuzz NAME: ok (N runs)" or "fuzz NAME:
# FAILED ...", and exits 1 if any failed.  Needs clang and
# libclang-rt-14-dev (scripts/install-deps installs them).
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=${CAIRN_BUILDDIR:-$(pwd)}
seconds=${FUZZ_SECONDS:-10}
work=${FUZZ_WORK:-${TMPDIR:-/tmp}/cairn-fuzz}
cc=${FUZZ_CC:-clang}
all="tree snapshot head lease pack index wrapped sealed keyset conf ctl s3xml"
targets=${*:-$all}

if [ ! -f "$builddir/config.h" ] || [ ! -x "$builddir/tests/fuzz_decoders" ]; then
	echo "run.sh: $builddir has no config.h or tests/fuzz_decoders: run ./configure and make check first, or set CAIRN_BUILDDIR" >&2
	exit 2
fi
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "run.sh: $cc not found: apt-get install clang libclang-rt-14-dev" >&2
	exit 2
fi
mkdir -p "$work"

# The libraries, compiled once with coverage for libFuzzer (no main).
flags="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -pthread"
incs="-I$builddir -I$srcdir/lib -I$srcdir/keys -I$srcdir/sync -I$srcdir/fs -I$srcdir/tests $(pkg-config --cflags fuse3)"
libs="$(pkg-config --libs fuse3 libsodium libcurl expat libzstd sqlite3 jansson inih) -lm"
srcs=$(ls "$srcdir"/lib/*.c "$srcdir"/keys/*.c "$srcdir"/sync/*.c "$srcdir"/fs/*.c |
	grep -v -e '/keys/cairn-keyadm.c$' -e '/sync/cairn.c$' -e '/sync/cmd-[^/]*\.c$' -e '/fs/cairnfs.c$')
stamp=$work/build.stamp
newest=$(ls -t $srcs "$srcdir/tests/fuzz_decoders.c" "$srcdir/tests/fuzz_tree.c" "$builddir/config.h" | head -n 1)
if [ ! -f "$stamp" ] || [ "$newest" -nt "$stamp" ]; then
	echo "run.sh: building the fuzz targets in $work (about a minute)"
	rm -rf "$work/obj" && mkdir -p "$work/obj"
	for f in $srcs; do
		o=$work/obj/$(echo "${f#$srcdir/}" | tr / _).o
		# shellcheck disable=SC2086
		"$cc" $flags -fsanitize=fuzzer-no-link $incs -c "$f" -o "$o" || exit 2
	done
	# shellcheck disable=SC2086
	"$cc" $flags -fsanitize=fuzzer $incs "$srcdir/tests/fuzz_decoders.c" "$work"/obj/*.o $libs \
		-o "$work/fuzz_decoders" || exit 2
	# shellcheck disable=SC2086
	"$cc" $flags -fsanitize=fuzzer $incs "$srcdir/tests/fuzz_tree.c" "$work"/obj/*.o $libs \
		-o "$work/fuzz_tree" || exit 2
	touch "$stamp"
fi
rm -rf "$work/seeds" && mkdir -p "$work/seeds"
"$builddir/tests/fuzz_decoders" --seeds "$work/seeds" || exit 2

failed=0
for t in $targets; do
	mkdir -p "$work/$t/corpus"
	bin=$work/fuzz_decoders
	[ "$t" = tree ] && bin=$work/fuzz_tree
	dirs="$work/$t/corpus"
	[ -d "$work/seeds/$t" ] && dirs="$dirs $work/seeds/$t"
	[ -d "$srcdir/tests/fuzz/$t" ] && dirs="$dirs $srcdir/tests/fuzz/$t"
	# shellcheck disable=SC2086
	(cd "$work/$t" && CAIRN_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -max_len=65536 \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $dirs) >"$work/$t/log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log")
	if [ $rc -eq 0 ]; then
		echo "fuzz $t: ok (${runs:-?} runs in ${seconds} s)"
	else
		failed=$((failed + 1))
		echo "fuzz $t: FAILED (exit $rc; $work/$t/log, crash inputs in $work/$t):"
		grep -m 5 -e 'ERROR' -e 'SUMMARY' -e "^$t:" "$work/$t/log" | sed 's/^/  /'
	fi
done
[ $failed -eq 0 ]
