#!/bin/sh
# The main job on the embedded default: generate the tiny synthetic Nemotron-H
# checkpoint, convert it to a 4-bit MLX model, verify both, and generate with
# it. (The tiny model's weights are random: the text is noise, but every step
# of the real job runs.)
set -eu
cd "$(dirname "$0")/.."
out=${KT_DEMO_DIR:-demo-out}
mkdir -p "$out"
echo "== kintsugi-testdata: tiny Nemotron-H checkpoint (M, -, * layers) -> $out/hf-tiny"
bin/kintsugi-testdata --force "$out/hf-tiny"
echo "== kintsugi-verify $out/hf-tiny"
bin/kintsugi-verify --quiet "$out/hf-tiny"
echo "== kintsugi-convert $out/hf-tiny $out/mlx-tiny-4bit"
bin/kintsugi-convert --force "$out/hf-tiny" "$out/mlx-tiny-4bit"
echo "== kintsugi-verify $out/mlx-tiny-4bit --original $out/hf-tiny --generate"
bin/kintsugi-verify "$out/mlx-tiny-4bit" --original "$out/hf-tiny" --generate --max-tokens 8
echo "== kintsugi-run $out/mlx-tiny-4bit --prompt 'こんにちは /no_think'"
bin/kintsugi-run "$out/mlx-tiny-4bit" --prompt "こんにちは /no_think" --max-tokens 24
echo "demo: ok"
