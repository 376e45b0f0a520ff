#!/bin/sh
# kintsugi-run's tok/s per backend and device on the trained tiny model and
# its 4-bit conversion: the CPU backend and the Vulkan backend on every device
# given (default: lavapipe, "llvmpipe", the CPU running the SPIR-V: a
# correctness device, its speed is not a target). Rounds alternate; medians.
#
#   sh bench/backends.sh [ROUNDS] [DEVICE...]
set -eu
cd "$(dirname "$0")/.."
make -s all
rounds=${1:-3}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- llvmpipe
dir=${KT_BENCH_DIR:-build/bench-data}
mkdir -p "$dir"
[ -d "$dir/trained-4" ] || bin/kintsugi-convert testdata/trained/model "$dir/trained-4" --quiet
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$dir}
prompt="フランスの首都はどこですか？東京は日本の首都です。大阪は日本で二番目に大きな都市です。 /no_think"
one() { # model backend device: "prompt_tok/s generation_tok/s"
    KINTSUGI_VULKAN_DEVICE=$3 bin/kintsugi-run "$1" --backend "$2" --prompt "$prompt" --max-tokens 64 --json \
        --context 512 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin)["stats"]; print(s["prompt_tokens_per_s"], s["generation_tokens_per_s"], s["backend"].replace(" ", "_"))'
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", a[int((NR+1)/2)]}'; }
for model in testdata/trained/model "$dir/trained-4"; do
    results=""
    i=0
    while [ $i -lt "$rounds" ]; do
        results="$results
cpu $(one "$model" cpu "")"
        for d in "$@"; do results="$results
vulkan:$d $(one "$model" vulkan "$d")"; done
        i=$((i + 1))
    done
    for b in cpu $(for d in "$@"; do echo "vulkan:$d"; done); do
        p=$(echo "$results" | awk -v b="$b" '$1 == b {print $2}' | tr '\n' ' ' | median)
        g=$(echo "$results" | awk -v b="$b" '$1 == b {print $3}' | tr '\n' ' ' | median)
        name=$(echo "$results" | awk -v b="$b" '$1 == b {print $4; exit}')
        echo "$(basename "$model"): $name: prompt $p tok/s, generation $g tok/s (medians of $rounds)"
    done
done
