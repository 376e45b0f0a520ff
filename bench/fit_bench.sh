#!/bin/sh
# kintsugi-convert --fit mse beside the default RTN on the full Nano-9B-v2
# shape with heavy-tailed weights (kintsugi-testdata --weights heavy, about
# 17.8 GB, generated once): rounds that alternate the two, wall time of each
# (the median is reported) and the ratio. Long: never part of check.
#
#   sh bench/fit_bench.sh [ROUNDS] [BITS]      (default 3 rounds, 4 bits)
set -eu
cd "$(dirname "$0")/.."
make -s all
rounds=${1:-3}
bits=${2:-4}
dir=${KT_BENCH_DIR:-build/bench-data}
src="$dir/nano9b-heavy"
[ -f "$src/config.json" ] || bin/kintsugi-testdata --shape nano-9b-v2 --weights heavy --force "$src"
cat "$src"/*.safetensors > /dev/null # the page cache, for both alike

once() { # fit: prints seconds
    rm -rf "$dir/out-fit-$1"
    t0=$(date +%s.%N)
    bin/kintsugi-convert "$src" "$dir/out-fit-$1" --bits "$bits" --fit "$1" --no-fsync --quiet
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}

rtn="" mse=""
i=0
while [ $i -lt "$rounds" ]; do
    rtn="$rtn $(once rtn)"
    mse="$mse $(once mse)"
    echo "round $((i + 1)): rtn $(echo $rtn | awk '{print $NF}') s, mse $(echo $mse | awk '{print $NF}') s"
    i=$((i + 1))
done
median() { echo "$@" | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_rtn=$(median $rtn)
m_mse=$(median $mse)
echo "median of $rounds: rtn $m_rtn s, mse $m_mse s: --fit mse takes $(echo "scale=2; $m_mse / $m_rtn" | bc)x the RTN time ($bits bits)"
