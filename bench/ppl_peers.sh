#!/bin/sh
# kintsugi-run --perplexity beside llama-perplexity on the same text and the
# same Nano-9B-v2-shaped synthetic checkpoint, same machine, alternating
# rounds: seconds per 1,000 tokens evaluated.
#
#   sh bench/ppl_peers.sh            (after bench/peers.sh, which builds llama.cpp
#                                     and converts the checkpoint)
#   KT_PPL_TOKENS=2048 KT_PPL_WINDOW=512 KT_PPL_ROUNDS=3 KT_PEER_THREADS=2 KT_PPL_KLD=1
#
# Per round:
#   - the MLX 4-bit conversion, float32 activations (the default for
#     measurements, what the oracle tests compare with mlx-lm);
#   - the same with 8-bit integer activations (KT_ACTIVATIONS=int8);
#   - llama-perplexity on its Q4_0 of the same weights, the same window;
# and once after the rounds, the 4-bit conversion against the bf16 original
# (--kld-against: both models evaluate every window; the original's seconds
# are that run's less the float32 run's).
# llama-perplexity scores the second half of each window and kintsugi-run
# every position, but both evaluate every token of every window: the figure
# is wall-clock seconds (model already in the page cache) per 1,000 tokens
# evaluated.
set -eu
cd "$(dirname "$0")/.."
tokens=${KT_PPL_TOKENS:-2048}
window=${KT_PPL_WINDOW:-512}
rounds=${KT_PPL_ROUNDS:-3}
threads=${KT_PEER_THREADS:-2}
dir=${KT_BENCH_DIR:-build/bench-data}
peer=${KT_PEER_DIR:-build/peers}
py=$(pwd)/.venv/bin/python
bin=$(ls -d "$peer"/llama_cpp_python-*/vendor/llama.cpp/build/bin 2> /dev/null | head -n 1)
gguf=$peer/nano9b-q4_0.gguf
ours=$dir/out-kintsugi
src=$dir/nano9b
[ -n "$bin" ] && [ -x "$bin/llama-perplexity" ] && [ -f "$gguf" ] ||
    { echo "ppl_peers.sh: run sh bench/peers.sh first (it builds llama.cpp and converts the checkpoint)" >&2; exit 2; }
make -s all

# a text of exactly TOKENS tokens for our tokenizer (llama.cpp's counts its own)
text=$peer/ppl-$tokens.txt
"$py" - "$ours" "$tokens" "$text" <<'PY'
import sys
from tokenizers import Tokenizer
model, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tok = Tokenizer.from_file(f"{model}/tokenizer.json")
base = ("日本の首都は東京です。富士山は日本で一番高い山で、標高は三千七百七十六メートルです。"
        "The quick brown fox jumps over the lazy dog, and the river runs to the sea. ")
ids = tok.encode(base * (n // 10 + 10), add_special_tokens=False).ids
count = lambda t: len(tok.encode(t, add_special_tokens=False).ids)
# a cut at a token boundary can re-encode to another count (merges across
# the cut, in either direction): then characters come off the end, one at a
# time, until the count is exact
for cut in range(n + 16, n - 16, -1):
    text = tok.decode(ids[:cut])
    for _ in range(64):
        if count(text) == n:
            open(out, "w", encoding="utf-8").write(text)
            sys.exit()
        text = text[:-1]
sys.exit(f"no text of {n} tokens")
PY

secs() { # command...: wall-clock seconds of it, output discarded
    t0=$(date +%s.%N)
    "$@" > "$peer/ppl.out" 2> "$peer/ppl.err" || { tail -n 5 "$peer/ppl.err" >&2; exit 1; }
    python3 -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$(date +%s.%N)" "$t0"
}
cat "$ours"/*.safetensors "$gguf" > /dev/null
r=1
: > "$peer/ppl.times"
while [ "$r" -le "$rounds" ]; do
    echo "f32 $(OMP_NUM_THREADS=$threads secs bin/kintsugi-run "$ours" --perplexity "$text" --window "$window" --json)" >> "$peer/ppl.times"
    echo "int8 $(OMP_NUM_THREADS=$threads KT_ACTIVATIONS=int8 secs bin/kintsugi-run "$ours" --perplexity "$text" --window "$window" --json)" >> "$peer/ppl.times"
    echo "llama $(secs "$bin/llama-perplexity" -m "$gguf" -f "$text" -c "$window" -b "$window" -t "$threads")" >> "$peer/ppl.times"
    # the tokens it evaluated: its chunks times the window
    chunks=$(grep -o "over [0-9]* chunks" "$peer/ppl.err" | tail -n 1 | tr -dc 0-9)
    echo $((${chunks:-0} * window)) > "$peer/ppl.llama-tokens"
    echo "round $r of $rounds done" >&2
    r=$((r + 1))
done
if [ "${KT_PPL_KLD:-1}" = 1 ]; then
    cat "$src"/*.safetensors > /dev/null
    echo "kld $(OMP_NUM_THREADS=$threads secs bin/kintsugi-run "$ours" --perplexity "$text" --window "$window" --kld-against "$src" --json)" >> "$peer/ppl.times"
fi
"$py" - "$peer/ppl.times" "$tokens" "$(cat "$peer/ppl.llama-tokens")" <<'PY'
import collections, json, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split()
    times[k].append(float(v))
n = int(sys.argv[2])
llama_tokens = int(sys.argv[3])
if llama_tokens <= 0:
    sys.exit("llama-perplexity evaluated no chunks (see build/peers/ppl.err)")
res = {"tokens": n, "llama_cpp_tokens": llama_tokens}
for k, v in times.items():
    tok = llama_tokens if k == "llama" else n
    res[k] = {"median_seconds": statistics.median(v), "runs": v,
              "seconds_per_1000_tokens": statistics.median(v) / tok * 1000}
if "kld" in res:  # both models evaluate every window: the original's share is the rest
    res["bf16_original_seconds_per_1000_tokens"] = res["kld"]["seconds_per_1000_tokens"] - res["f32"]["seconds_per_1000_tokens"]
res["ratio_f32_to_llama"] = res["llama"]["seconds_per_1000_tokens"] / res["f32"]["seconds_per_1000_tokens"]
res["ratio_int8_to_llama"] = res["llama"]["seconds_per_1000_tokens"] / res["int8"]["seconds_per_1000_tokens"]
print(json.dumps(res, indent=2))
PY
