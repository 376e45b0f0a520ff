#!/bin/sh
# kintsugi-run's tok/s per backend and device on the trained tiny model and
# its 4-bit conversion: the CPU backend, then each GPU device given as
# vulkan:NAME (KINTSUGI_VULKAN_DEVICE) or metal[:NAME] (KINTSUGI_METAL_DEVICE).
# Default: vulkan:llvmpipe (lavapipe, the CPU running the SPIR-V: a
# correctness device, its speed is not a target), and metal on macOS.
# Rounds alternate between the backends; medians.
#
#   sh bench/backends.sh [ROUNDS] [vulkan:NAME | metal[:NAME]]...
set -eu
cd "$(dirname "$0")/.."
make -s all
rounds=${1:-3}
[ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
    set -- vulkan:llvmpipe
    [ "$(uname -s)" = Darwin ] && set -- metal
fi
dir=${KT_BENCH_DIR:-build/bench-data}
mkdir -p "$dir"
[ -d "$dir/trained-4" ] || bin/kintsugi-convert testdata/trained/model "$dir/trained-4" --quiet
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$dir}
prompt="フランスの首都はどこですか？東京は日本の首都です。大阪は日本で二番目に大きな都市です。 /no_think"
one() { # model backend[:device]: "prompt_tok/s generation_tok/s backend_name"
    api=${2%%:*}
    dev=""
    case $2 in *:*) dev=${2#*:} ;; esac
    KINTSUGI_VULKAN_DEVICE=$dev KINTSUGI_METAL_DEVICE=$dev bin/kintsugi-run "$1" --backend "$api" --prompt "$prompt" \
        --max-tokens 64 --json --context 512 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin)["stats"]; print(s["prompt_tokens_per_s"], s["generation_tokens_per_s"], s["backend"].replace(" ", "_"))'
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", a[int((NR+1)/2)]}'; }
for model in testdata/trained/model "$dir/trained-4"; do
    results=""
    i=0
    while [ $i -lt "$rounds" ]; do
        results="$results
cpu $(one "$model" cpu)"
        for d in "$@"; do results="$results
$d $(one "$model" "$d")"; done
        i=$((i + 1))
    done
    for b in cpu "$@"; do
        p=$(echo "$results" | awk -v b="$b" '$1 == b {print $2}' | tr '\n' ' ' | median)
        g=$(echo "$results" | awk -v b="$b" '$1 == b {print $3}' | tr '\n' ' ' | median)
        name=$(echo "$results" | awk -v b="$b" '$1 == b {print $4; exit}')
        echo "$(basename "$model"): $name: prompt $p tok/s, generation $g tok/s (medians of $rounds)"
    done
done
