#!/bin/sh
# kintsugi-run beside llama.cpp on the same Nano-9B-v2-shaped synthetic
# checkpoint, same machine, same run, alternating rounds: prompt processing
# (64 and 512 tokens) and decode tokens per second, their ratios, and decode
# against the measured memory-read bound: the bytes a token must move over
# it, the weights alone and the weights plus the Mamba-2 state read and
# written back (the same in both runtimes). Long (about an hour the first time:
# llama.cpp builds, the checkpoint converts); never part of check.
#
#   sh bench/peers.sh
#   KT_PEER_ROUNDS=5 KT_PEER_THREADS=2 KT_PEER_DECODE=32 KT_PEER_PROMPTS="64 512"
#
# llama.cpp comes from the llama-cpp-python sdist on PyPI, which vendors it. It
# is built and run in build/peers only; none of it enters this repository.
# Its converter needs PyTorch: a separate virtual environment in build/peers.
# Its pre-tokenizer check knows only published tokenizers by the hash of one
# encoded string; the synthetic tokenizer is none of them. In the scratch copy
# only, the converter's fallback becomes "tekken", the pre-tokenizer of the
# Mistral-Nemo tokenizer Nemotron-H's follows. Tokenization does not enter the
# figures: llama-bench feeds random token ids, kintsugi-run a text of the
# stated token count.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
version=${KT_PEER_VERSION:-0.3.36}
rounds=${KT_PEER_ROUNDS:-5}
threads=${KT_PEER_THREADS:-2}
decode=${KT_PEER_DECODE:-32}
prompts=${KT_PEER_PROMPTS:-64 512}
dir=${KT_BENCH_DIR:-build/bench-data}
peer=${KT_PEER_DIR:-build/peers}
py=$root/.venv/bin/python
make -s all build/release/bench/matvec-bench
[ -x "$py" ] || { echo "peers.sh: no .venv; run make check once (it builds the oracle environment)" >&2; exit 2; }
[ -f "$dir/out-kintsugi/config.json" ] || sh bench/convert_bench.sh --skip-peer
src=$dir/nano9b
ours=$dir/out-kintsugi
mkdir -p "$peer"

# 1. llama.cpp's sources, from the sdist, patched in the scratch copy only
tree=$peer/llama_cpp_python-$version/vendor/llama.cpp
if [ ! -d "$tree" ]; then
    "$py" -m pip download -q --no-deps --no-binary :all: -d "$peer" "llama-cpp-python==$version"
    tar xzf "$peer/llama_cpp_python-$version.tar.gz" -C "$peer"
    "$py" - "$tree/conversion/base.py" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = 'logger.debug(f"chkhsh: {chkhsh}")\n\n        res = None\n'
if old not in s:
    sys.exit(f"{p}: the pre-tokenizer check is not where it was; update bench/peers.sh")
open(p, "w").write(s.replace(old, old.replace("res = None", 'res = "tekken"'), 1))
PY
fi

# 2. the tools: native CPU build, no network, no server
bin=$tree/build/bin
if [ ! -x "$bin/llama-bench" ] || [ ! -x "$bin/llama-quantize" ]; then
    command -v cmake > /dev/null || { echo "peers.sh: cmake is needed" >&2; exit 2; }
    # x86-64 Linux: the instruction sets /proc/cpuinfo lists, but not AMX.
    # Machines of this project's kind report AMX and fault on its first tile
    # load (llama.cpp dies with SIGILL in its AMX matrix product); kintsugi
    # does not use AMX either. Elsewhere: -march=native.
    isa="-DGGML_NATIVE=ON"
    if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
        flags=$(grep -m 1 '^flags' /proc/cpuinfo)
        isa="-DGGML_NATIVE=OFF"
        for pair in avx:AVX avx2:AVX2 bmi2:BMI2 fma:FMA f16c:F16C avx_vnni:AVX_VNNI avx512f:AVX512 \
            avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
            case " $flags " in *" ${pair%%:*} "*) isa="$isa -DGGML_${pair#*:}=ON" ;; esac
        done
    fi
    cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release $isa -DLLAMA_CURL=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > "$peer/cmake.log"
    cmake --build "$tree/build" -j "$(nproc 2>/dev/null || echo 2)" \
        --target llama-bench llama-quantize llama-perplexity > "$peer/build.log"
fi

# 3. the converter's environment (its requirements file names an index this
# machine may not reach: the same pins from PyPI)
venv=$peer/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check torch==2.11.0 numpy==2.2.6 \
        "sentencepiece>=0.1.98,<0.3.0" transformers==4.57.6 "protobuf>=4.21.0,<5.0.0" safetensors
fi

# 4. the same checkpoint in llama.cpp's format: bf16, then its Q4_0
gguf=$peer/nano9b-q4_0.gguf
if [ ! -f "$gguf" ]; then
    PYTHONPATH=$tree/gguf-py "$venv/bin/python" "$tree/convert_hf_to_gguf.py" "$src" \
        --outtype bf16 --outfile "$peer/nano9b-bf16.gguf" > "$peer/convert.log" 2>&1 ||
        { tail -n 20 "$peer/convert.log" >&2; exit 1; }
    "$bin/llama-quantize" "$peer/nano9b-bf16.gguf" "$gguf.tmp" Q4_0 "$threads" > "$peer/quantize.log" 2>&1 ||
        { tail -n 20 "$peer/quantize.log" >&2; exit 1; }
    mv "$gguf.tmp" "$gguf"
    rm -f "$peer/nano9b-bf16.gguf"
fi

# 5. prompts of exactly N tokens for kintsugi-run (llama-bench's are random ids)
for n in $prompts; do
    "$py" - "$ours" "$n" "$peer/prompt-$n.txt" <<'PY'
import sys
from tokenizers import Tokenizer
model, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tok = Tokenizer.from_file(f"{model}/tokenizer.json")
base = "日本の首都は東京です。The quick brown fox jumps over the lazy dog. 富士山は日本で一番高い山です。"
ids = tok.encode(base * (n // 8 + 8), add_special_tokens=False).ids
for cut in range(n + 8, 0, -1):
    text = tok.decode(ids[:cut])
    got = len(tok.encode(text, add_special_tokens=False).ids)
    if got == n - 1:        # kintsugi-run --raw adds <s>
        open(out, "w", encoding="utf-8").write(text)
        sys.exit()
sys.exit(f"no text of {n} tokens")
PY
done

# 6. alternating rounds: the read bound, ours, the peer, each round.
# Both models are read once first, so no round pays for the disk.
cat "$ours"/*.safetensors "$gguf" > /dev/null
r=1
while [ $r -le "$rounds" ]; do
    build/release/bench/matvec-bench > "$peer/bound.$r.json"
    for n in $prompts; do
        OMP_NUM_THREADS=$threads bin/kintsugi-run "$ours" --raw --prompt - --max-tokens "$decode" --json \
            < "$peer/prompt-$n.txt" > "$peer/ours-$n.$r.json" 2> "$peer/ours.err" ||
            { cat "$peer/ours.err" >&2; exit 1; }
    done
    "$bin/llama-bench" -m "$gguf" -t "$threads" -p "$(echo $prompts | tr ' ' ',')" -n "$decode" -r 1 -o json \
        > "$peer/llama.$r.json" 2> "$peer/llama.err" || { tail -n 20 "$peer/llama.err" >&2; exit 1; }
    echo "round $r of $rounds done"
    r=$((r + 1))
done

# 7. the bf16 original (verify's reference), ours only: decode against its
# own bound. After the rounds: it fills the page cache and evicts the others.
orig_runs=${KT_PEER_ORIGINAL_RUNS:-3}
i=1
cat "$src"/*.safetensors > /dev/null
while [ $i -le "$orig_runs" ]; do
    OMP_NUM_THREADS=$threads bin/kintsugi-run "$src" --raw --prompt - --max-tokens 8 --json \
        < "$peer/prompt-64.txt" > "$peer/original.$i.json" 2> "$peer/ours.err" || { cat "$peer/ours.err" >&2; exit 1; }
    i=$((i + 1))
done

PYTHONPATH=$tree/gguf-py "$venv/bin/python" - "$peer" "$ours" "$rounds" "$prompts" "$src" "$orig_runs" <<'PY'
import json, os, statistics, struct, sys
from gguf import GGUFReader
peer, model_dir, rounds, prompts = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(p) for p in sys.argv[4].split()]
src, orig_runs = sys.argv[5], int(sys.argv[6])
med = statistics.median
ours = {n: [json.load(open(f"{peer}/ours-{n}.{r}.json"))["stats"] for r in range(1, rounds + 1)] for n in prompts}
llama = [json.load(open(f"{peer}/llama.{r}.json")) for r in range(1, rounds + 1)]
def peer_rate(n_prompt, n_gen):
    return [x["avg_ts"] for run in llama for x in run if x["n_prompt"] == n_prompt and x["n_gen"] == n_gen]
res = {"rounds": rounds, "threads": int(os.environ.get("KT_PEER_THREADS", "2"))}
for n in prompts:
    a, b = [s["prompt_tokens_per_s"] for s in ours[n]], peer_rate(n, 0)
    res[f"pp{n}"] = {"kintsugi_tok_s": med(a), "llama_cpp_tok_s": med(b), "ratio": med(a) / med(b),
                     "kintsugi_range": [min(a), max(a)], "llama_cpp_range": [min(b), max(b)]}
a = [s["generation_tokens_per_s"] for n in prompts[:1] for s in ours[n]]
b = [x["avg_ts"] for run in llama for x in run if x["n_prompt"] == 0 and x["n_gen"] > 0]
def bytes_per_token(d):
    """Bytes read per decoded token: every tensor but the embedding table (one row)."""
    total = embed = 0
    idx = json.load(open(f"{d}/model.safetensors.index.json"))
    for f in set(idx["weight_map"].values()):
        path = f"{d}/{f}"
        total += os.path.getsize(path)
        with open(path, "rb") as fh:
            hdr = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        embed += sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in hdr.items()
                     if k.startswith("backbone.embeddings."))
    return total - embed
per_token = bytes_per_token(model_dir)
def state_per_token(d):
    """Bytes of Mamba-2 state read and written back per decoded token: each
    M layer's heads x head_dim x state values, float32 in both runtimes
    (llama.cpp's recurrent state type is F32), read once and written once.
    At the 9B shape 0.28 GB: far more than the caches, so it crosses the
    memory bus every token, as the weights do."""
    c = json.load(open(f"{d}/config.json"))
    layers = c["hybrid_override_pattern"].count("M")
    return 2 * layers * c["mamba_num_heads"] * c["mamba_head_dim"] * c["ssm_state_size"] * 4
state = state_per_token(model_dir)
# the same for the peer's file (its embedding table is token_embd)
peer_bytes = sum(int(t.n_bytes) for t in GGUFReader(f"{peer}/nano9b-q4_0.gguf").tensors if not t.name.startswith("token_embd"))
bw = med([json.load(open(f"{peer}/bound.{r}.json"))["memory_read_GBps"] for r in range(1, rounds + 1)])
bound = bw * 1e9 / per_token
res["decode"] = {"kintsugi_tok_s": med(a), "llama_cpp_tok_s": med(b), "ratio": med(a) / med(b),
                 "kintsugi_range": [min(a), max(a)], "llama_cpp_range": [min(b), max(b)],
                 "memory_read_GBps": bw, "weights_read_per_token_GB": per_token / 1e9,
                 "bound_tok_s": bound, "kintsugi_share_of_bound": med(a) / bound,
                 "llama_cpp_share_of_bound": med(b) * peer_bytes / (bw * 1e9),
                 "state_read_and_written_per_token_GB": state / 1e9,
                 "kintsugi_share_of_bound_with_state": med(a) * (per_token + state) / (bw * 1e9),
                 "llama_cpp_share_of_bound_with_state": med(b) * (peer_bytes + state) / (bw * 1e9)}
if orig_runs:
    o = [json.load(open(f"{peer}/original.{i}.json"))["stats"]["generation_tokens_per_s"] for i in range(1, orig_runs + 1)]
    orig_bytes = bytes_per_token(src)
    ob = bw * 1e9 / orig_bytes
    res["bf16_original_decode"] = {"kintsugi_tok_s": med(o), "range": [min(o), max(o)],
                                   "weights_read_per_token_GB": orig_bytes / 1e9,
                                   "bound_tok_s": ob, "share_of_bound": med(o) / ob,
                                   "share_of_bound_with_state": med(o) * (orig_bytes + state) / (bw * 1e9)}
print(json.dumps(res, indent=2))
PY
