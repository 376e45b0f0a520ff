#!/bin/sh
# kintsugi-convert beside mlx_lm.convert on a full Nano-9B-v2-shaped synthetic
# checkpoint (about 17.8 GB of bf16, generated once), in the same run: wall
# time and peak RSS of each (GNU time), and the time to simply read the
# source (cat), as the disk/page-cache read speed. Long: never part of check.
#
#   sh bench/convert_bench.sh [--skip-peer]
set -eu
cd "$(dirname "$0")/.."
make -s all
dir=${KT_BENCH_DIR:-build/bench-data}
src="$dir/nano9b"
py=.venv/bin/python
[ -f "$src/config.json" ] || bin/kintsugi-testdata --shape nano-9b-v2 --ssm-dtype bf16 --shards 4 --force "$src"
bytes=$(cat "$src"/*.safetensors | wc -c)

measure() { # label command...: prints "label seconds peak_rss_kib exit"
    label=$1
    shift
    /usr/bin/time -f "%e %M" -o "$dir/time.$label" "$@" > "$dir/log.$label" 2>&1 && rc=0 || rc=$?
    set -- $(tail -n 1 "$dir/time.$label")
    echo "$label $1 $2 $rc"
}

echo "== source: $src ($bytes bytes of safetensors)"
r_read=$(measure read sh -c "cat '$src'/*.safetensors > /dev/null")
rm -rf "$dir/out-kintsugi" "$dir/out-mlx"
# ours three times (the median is reported), then once without fsync
runs=""
for i in 1 2 3; do
    rm -rf "$dir/out-kintsugi"
    runs="$runs
$(measure kintsugi bin/kintsugi-convert "$src" "$dir/out-kintsugi" --mode cpu --quiet)"
done
echo "== kintsugi runs:$runs"
r_ours=$(echo "$runs" | grep kintsugi | sort -k2 -n | sed -n 2p)
rm -rf "$dir/out-nofsync"
r_nofsync=$(measure kintsugi_nofsync bin/kintsugi-convert "$src" "$dir/out-nofsync" --mode cpu --quiet --no-fsync)
rm -rf "$dir/out-nofsync"
if [ "${1:-}" != "--skip-peer" ]; then
    r_peer=$(measure mlx_lm timeout 3600 $py -m mlx_lm convert --hf-path "$src" --mlx-path "$dir/out-mlx" -q)
else
    r_peer="mlx_lm 0 0 skipped"
fi
$py - "$bytes" "$r_read" "$r_ours" "$r_nofsync" "$r_peer" <<'PY'
import json, sys
size = int(sys.argv[1])
rows = {}
for arg in sys.argv[2:]:
    label, secs, rss, rc = arg.split()
    rows[label] = {"seconds": float(secs), "peak_rss_GiB": round(int(rss) / 2**20, 2), "exit": rc,
                   "GBps": round(size / 1e9 / float(secs), 2) if float(secs) > 0 else None}
print(json.dumps(rows, indent=2))
o, p = rows["kintsugi"], rows["mlx_lm"]
if p["exit"] == "0" and o["exit"] == "0":
    n = rows["kintsugi_nofsync"]
    print(f"without fsync (mlx_lm.convert does not sync either): {p['seconds'] / n['seconds']:.1f}x faster")
    print(f"kintsugi-convert (median of 3, durable): {p['seconds'] / o['seconds']:.1f}x faster than mlx_lm.convert, "
          f"{o['peak_rss_GiB'] / p['peak_rss_GiB']:.3f} of its peak RSS; "
          f"{o['GBps'] / rows['read']['GBps']:.2f} of the plain read speed")
else:
    print(f"mlx_lm.convert exit status {p['exit']} (see {sys.argv[0]} logs in the bench directory)")
PY
if [ -d "$dir/out-kintsugi" ] && [ -d "$dir/out-mlx" ]; then
    echo "== identical tensors?"
    $py - "$dir/out-kintsugi" "$dir/out-mlx" <<'PY'
import sys, mlx.core as mx, glob, os
a = {}
b = {}
for f in glob.glob(os.path.join(sys.argv[1], "model*.safetensors")): a.update(mx.load(f))
for f in glob.glob(os.path.join(sys.argv[2], "model*.safetensors")): b.update(mx.load(f))
same = sorted(a) == sorted(b) and all(mx.array_equal(a[k], b[k]).item() and a[k].dtype == b[k].dtype for k in a)
print("all", len(a), "tensors identical" if same else "DIFFER")
PY
fi
