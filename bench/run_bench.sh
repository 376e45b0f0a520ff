#!/bin/sh
# kintsugi-run beside mlx-lm (MLX on the CPU) on the converted Nano-9B-v2-shaped
# model, same prompt and greedy decoding, in the same run: prompt and decode
# tokens per second, peak RSS, and decode speed against the memory bandwidth
# it implies (one pass over the weights per token). Long: never part of check.
#
#   sh bench/run_bench.sh        (runs bench/convert_bench.sh first if needed)
set -eu
cd "$(dirname "$0")/.."
make -s all
dir=${KT_BENCH_DIR:-build/bench-data}
model="$dir/out-kintsugi"
[ -f "$model/config.json" ] || sh bench/convert_bench.sh --skip-peer
py=.venv/bin/python
prompt="日本の首都について、短く説明してください。"
n=${KT_BENCH_TOKENS:-8}
echo "== kintsugi-run ($n tokens, greedy)"
/usr/bin/time -f "%e %M" -o "$dir/time.run" bin/kintsugi-run "$model" --raw --prompt "$prompt" --max-tokens "$n" --json \
    > "$dir/run.json" 2> "$dir/run.err"
tail -n 2 "$dir/run.err"
# mlx-lm's CPU path is slow on a model this size: give it a bounded time and
# say so when it does not finish.
timeout "${KT_PEER_TIMEOUT:-1800}" $py - "$model" "$prompt" "$n" "$dir" <<'PY' || echo "mlx-lm (CPU) did not finish $n tokens within ${KT_PEER_TIMEOUT:-1800} s"
import json, os, sys, time, resource
import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step
model_dir, prompt, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
mx.set_default_device(mx.cpu)
model, tok = load(model_dir)
ids = tok.encode(prompt)
t0 = time.perf_counter(); first = None; toks = []
for t, _ in generate_step(mx.array(ids), model, max_tokens=n, sampler=lambda lg: mx.argmax(lg, axis=-1)):
    if first is None: first = time.perf_counter()
    toks.append(int(t))
t1 = time.perf_counter()
ours = json.load(open(os.path.join(out, "run.json")))
weights = sum(os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir) if f.endswith(".safetensors"))
peer_decode = (len(toks) - 1) / (t1 - first)
print(json.dumps({"mlx_lm_cpu": {"prompt_tokens_per_s": len(ids) / (first - t0), "decode_tokens_per_s": peer_decode,
                                 "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
                  "kintsugi": ours["stats"], "same_tokens": toks == ours["generated_ids"],
                  "weights_GB": weights / 1e9}, indent=2))
k = ours["stats"]["generation_tokens_per_s"]
print(f"decode: kintsugi {k:.2f} tok/s vs mlx-lm CPU {peer_decode:.2f} tok/s = {k / peer_decode:.2f}x; "
      f"kintsugi reads {k * weights / 1e9:.2f} GB/s of weights")
PY
