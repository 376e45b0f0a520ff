#!/bin/sh
# Benchmarks (long; never part of `make check`). Each prints JSON figures with
# the peer measured in the same run.
set -eu
cd "$(dirname "$0")/.."
make -s build/release/bench/read-bench build/release/bench/quant-bench
py=.venv/bin/python

echo "== quantization: our kernels vs memory bandwidth (bf16 8192 x 8192, 4-bit, group 64)"
build/release/bench/quant-bench --rows 8192 --cols 8192 --bits 4 --group-size 64 | tee build/quant-bench.json
if [ -x $py ]; then
    echo "== peer: mx.quantize on the CPU, same shape"
    $py bench/quant_peers.py 8192 8192 4 64 | tee build/quant-peers.json
    $py - <<'PY'
import json
ours, peer = json.load(open("build/quant-bench.json")), json.load(open("build/quant-peers.json"))
best = {t: max(v for k, v in ours.items() if k.endswith(f"_metal_GBps_{t}t") and not k.startswith("scalar"))
        for t in (1, 2) if f"memory_read_GBps_{t}t" in ours}
for t, v in best.items():
    print(f"{t} thread(s): {v:.2f} GB/s = {v / peer['mx_quantize_cpu_GBps']:.1f}x mx.quantize, "
          f"{v / ours[f'memory_read_GBps_{t}t']:.2f} of memory read bandwidth")
PY
fi

dir=${KT_BENCH_DIR:-build/bench-data}
gib=${KT_BENCH_GIB:-4}
mkdir -p "$dir"
file="$dir/read-${gib}g.safetensors"
[ -f "$file" ] || build/release/bench/read-bench --make "$file" "$gib"
echo "== safetensors reader vs memory bandwidth ($gib GiB, page cache)"
build/release/bench/read-bench "$file"
if [ -x $py ]; then
    echo "== peers on the same file"
    $py bench/read_peers.py "$file"
fi
