#!/bin/sh
# kintsugi-run beside mlx-lm (MLX on the CPU) on the converted Nano-9B-v2-shaped
# model, same prompt and greedy decoding, in the same run: prompt and decode
# tokens per second, peak RSS, and decode speed against the memory-bandwidth
# bound (bytes of weights read per token / measured read bandwidth). Long:
# never part of check.
#
#   sh bench/run_bench.sh        (runs bench/convert_bench.sh first if needed)
#   KT_BENCH_TOKENS=8 KT_BENCH_RUNS=3 KT_PEER_TIMEOUT=1800
set -eu
cd "$(dirname "$0")/.."
make -s all build/release/bench/matvec-bench
dir=${KT_BENCH_DIR:-build/bench-data}
model="$dir/out-kintsugi"
[ -f "$model/config.json" ] || sh bench/convert_bench.sh --skip-peer
py=.venv/bin/python
prompt="日本の首都について、短く説明してください。"
n=${KT_BENCH_TOKENS:-8}
runs=${KT_BENCH_RUNS:-3}

echo "== 4-bit matrix-vector kernel vs memory read bandwidth (one 9B MLP projection shape)"
build/release/bench/matvec-bench | tee "$dir/matvec.json"

echo "== kintsugi-run ($n tokens, greedy, $runs runs)"
i=0
while [ $i -lt "$runs" ]; do
    bin/kintsugi-run "$model" --raw --prompt "$prompt" --max-tokens "$n" --json > "$dir/run.$i.json" 2> "$dir/run.err"
    tail -n 1 "$dir/run.err"
    i=$((i + 1))
done

# mlx-lm's CPU path is slow on a model this size: give it a bounded time and
# say so when it does not finish.
rm -f "$dir/peer.json"
timeout "${KT_PEER_TIMEOUT:-1800}" $py - "$model" "$prompt" "$n" "$dir/peer.json" <<'PY' ||
import json, sys, time, resource
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
json.dump({"prompt_tokens_per_s": len(ids) / (first - t0), "decode_tokens_per_s": (len(toks) - 1) / (t1 - first),
           "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "generated_ids": toks},
          open(out, "w"))
PY
    echo "mlx-lm (CPU) did not finish $n tokens within ${KT_PEER_TIMEOUT:-1800} s"

$py - "$model" "$dir" "$runs" "${KT_PEER_TIMEOUT:-1800}" <<'PY'
import json, os, statistics, struct, sys
model_dir, d, runs, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ours = [json.load(open(os.path.join(d, f"run.{i}.json"))) for i in range(runs)]
med = lambda k: statistics.median(r["stats"][k] for r in ours)
# bytes read per generated token: every weight once, except the embedding
# table, of which one row is read
total = embed = 0
idx = json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))
for f in set(idx["weight_map"].values()):
    total += os.path.getsize(os.path.join(model_dir, f))
    with open(os.path.join(model_dir, f), "rb") as fh:
        hdr = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    embed += sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in hdr.items()
                 if k.startswith("backbone.embeddings."))
per_token = total - embed
bw = json.load(open(os.path.join(d, "matvec.json")))["memory_read_GBps"] * 1e9
bound = bw / per_token
gen, prompt = med("generation_tokens_per_s"), med("prompt_tokens_per_s")
res = {"kintsugi_prompt_tokens_per_s": prompt, "kintsugi_decode_tokens_per_s": gen,
       "kintsugi_peak_rss_MiB": med("peak_rss_mib"), "weights_read_per_token_GB": per_token / 1e9,
       "memory_read_GBps": bw / 1e9, "decode_bound_tokens_per_s": bound, "share_of_bound": gen / bound}
peer_file = os.path.join(d, "peer.json")
if os.path.exists(peer_file):
    p = json.load(open(peer_file))
    res.update({"mlx_lm_cpu": {k: v for k, v in p.items() if k != "generated_ids"},
                "decode_ratio": gen / p["decode_tokens_per_s"], "prompt_ratio": prompt / p["prompt_tokens_per_s"],
                "same_tokens": p["generated_ids"] == ours[0]["generated_ids"]})
else:
    res["mlx_lm_cpu"] = f"did not finish within {limit:.0f} s"
print(json.dumps(res, indent=2))
print(f"decode {gen:.2f} tok/s = {gen / bound:.2f} of the bandwidth bound ({bound:.2f} tok/s: "
      f"{per_token / 1e9:.2f} GB per token at {bw / 1e9:.1f} GB/s); prompt {prompt:.2f} tok/s")
PY

# mlx-lm's CPU path does not finish the full model in any reasonable time, so
# the ratio comes from a slice with the real dimensions: the Nano-9B-v2 shape
# with six layers (M-M*M-: every layer kind), converted by us, run by both.
slice="$dir/nano6-4bit"
if [ ! -f "$slice/config.json" ]; then
    bin/kintsugi-testdata --force --shape nano-9b-v2 --pattern "M-M*M-" "$dir/nano6" > /dev/null
    bin/kintsugi-convert --force --quiet "$dir/nano6" "$slice"
fi
echo "== six-layer slice of the 9B shape: kintsugi-run ($runs runs) and mlx-lm on the CPU, 4 tokens"
i=0
while [ $i -lt "$runs" ]; do
    bin/kintsugi-run "$slice" --raw --prompt "$prompt" --max-tokens 4 --json > "$dir/slice.$i.json" 2> "$dir/run.err"
    tail -n 1 "$dir/run.err"
    i=$((i + 1))
done
timeout "${KT_PEER_TIMEOUT:-1800}" $py - "$slice" "$prompt" "$dir" "$runs" <<'PY' || echo "mlx-lm (CPU) did not finish the slice"
import json, os, statistics, sys, time
import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step
path, prompt, d, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
mx.set_default_device(mx.cpu)
model, tok = load(path)
ids = tok.encode(prompt)
t0 = time.perf_counter(); first = None; toks = []
for t, _ in generate_step(mx.array(ids), model, max_tokens=4, sampler=lambda lg: mx.argmax(lg, axis=-1)):
    if first is None: first = time.perf_counter()
    toks.append(int(t))
t1 = time.perf_counter()
peer_prompt, peer_decode = len(ids) / (first - t0), (len(toks) - 1) / (t1 - first)
ours = [json.load(open(os.path.join(d, f"slice.{i}.json"))) for i in range(runs)]
op = statistics.median(r["stats"]["prompt_tokens_per_s"] for r in ours)
od = statistics.median(r["stats"]["generation_tokens_per_s"] for r in ours)
print(json.dumps({"kintsugi": {"prompt_tokens_per_s": op, "decode_tokens_per_s": od},
                  "mlx_lm_cpu": {"prompt_tokens_per_s": peer_prompt, "decode_tokens_per_s": peer_decode},
                  "prompt_ratio": op / peer_prompt, "decode_ratio": od / peer_decode,
                  "same_tokens": toks == ours[0]["generated_ids"]}, indent=2))
PY
