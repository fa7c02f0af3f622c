#!/bin/sh
# run-tree.sh - builds the tree decoder's fuzz target with libFuzzer, ASan and
# UBSan (clang) and runs it for FUZZ_SECONDS (default 60).
#
#   FUZZ_SECONDS=300 sh tests/fuzz/run-tree.sh        (from the build dir)
#
# It starts from the committed corpus tests/fuzz/tree/ and grows a working
# copy in $FUZZ_WORK (default $TMPDIR/cairn-fuzz-tree), so the committed
# corpus stays small.  A crash leaves crash-* in $FUZZ_WORK: minimise it
# (-minimize_crash=1), fix the bug, and commit the input to tests/fuzz/tree/
# so that `make check` replays it.  Needs clang and libclang-rt-14-dev
# (apt-get install clang libclang-rt-14-dev).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=${CAIRN_BUILDDIR:-$(pwd)}
seconds=${FUZZ_SECONDS:-60}
work=${FUZZ_WORK:-${TMPDIR:-/tmp}/cairn-fuzz-tree}
cc=${FUZZ_CC:-clang}

if [ ! -f "$builddir/config.h" ]; then
	echo "run-tree.sh: no config.h in $builddir: run ./configure first, or set CAIRN_BUILDDIR" >&2
	exit 2
fi
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "run-tree.sh: $cc not found: apt-get install clang libclang-rt-14-dev" >&2
	exit 2
fi

mkdir -p "$work/corpus"
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$builddir" -I"$srcdir/lib" -I"$srcdir/keys" -I"$srcdir/sync" \
	"$srcdir/tests/fuzz_tree.c" "$srcdir/sync/tree.c" "$srcdir/lib/err.c" "$srcdir/lib/buf.c" \
	-o "$work/fuzz_tree"

cd "$work"
exec ./fuzz_tree -max_total_time="$seconds" -max_len=65536 -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 "$work/corpus" "$srcdir/tests/fuzz/tree"
