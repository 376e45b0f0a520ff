#!/bin/sh
# Benchmarks (long; never part of `make check`). Each prints JSON figures with
# the peer measured in the same run.
set -eu
cd "$(dirname "$0")/.."
make -s build/release/bench/read-bench
dir=${KT_BENCH_DIR:-build/bench-data}
gib=${KT_BENCH_GIB:-4}
mkdir -p "$dir"
file="$dir/read-${gib}g.safetensors"
[ -f "$file" ] || build/release/bench/read-bench --make "$file" "$gib"
echo "== safetensors reader vs memory bandwidth ($gib GiB, page cache)"
build/release/bench/read-bench "$file"
if [ -x .venv/bin/python ]; then
    echo "== peers on the same file"
    .venv/bin/python bench/read_peers.py "$file"
fi
