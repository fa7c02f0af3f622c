#!/bin/sh
# plot.sh - draws the ratios a benchmark wrote (CSV: metric,label,fs,ratio,
# where ratio is how many times worse than native, 1 = as good) as one PNG
# of grouped bars on a log scale, with gnuplot (apt-get install gnuplot-nox):
#
#   tests/bench/plot.sh docs/bench/fs-small.csv docs/bench/fs-small.png "title"
set -eu
csv=$1 png=$2 title=${3:-"times worse than the native disk (log scale; 1 = as good)"}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found: apt-get install gnuplot-nox" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one row per measure, one column per filesystem
python3 - "$csv" "$tmp/data" <<'PY'
import sys
rows = [l.rstrip("\n").split(",") for l in open(sys.argv[1]) if l.strip()]
fss, labels, v = [], [], {}
for m, label, fs, r in rows:
    if fs not in fss: fss.append(fs)
    if label not in labels: labels.append(label)
    v[(label, fs)] = float(r)
with open(sys.argv[2], "w") as f:
    f.write("measure " + " ".join(fss) + "\n")
    for label in labels:
        f.write('"%s" ' % label + " ".join("%g" % max(v.get((label, fs), 0.0001), 0.0001) for fs in fss) + "\n")
PY
ncol=$(head -n 1 "$tmp/data" | wc -w)
gnuplot <<GP
set terminal pngcairo size 1200,560 font ",10" noenhanced
set output "$png"
set title "$title"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y 10
set yrange [0.1:*]
set grid ytics
set key top left
set xtics rotate by -25
set ylabel "ratio (lower is better)"
plot for [i=2:$ncol] "$tmp/data" using i:xtic(1) title columnheader(i)
GP
echo "wrote $png"
