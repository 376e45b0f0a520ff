#!/bin/sh
# The main job on the embedded default, the small trained Nemotron-H in
# testdata/trained/model (M, -, * layers; it learned a chat format and a few
# hundred facts in Japanese and English, docs/TRAINED-MODEL.md): check the
# original, convert it to a 4-bit MLX model, verify the conversion against
# the original (tensors, generation, KL divergence on held-out prose,
# multiple-choice accuracy), then ask it a question it was not trained on,
# without and with reasoning.
set -eu
cd "$(dirname "$0")/.."
out=${KT_DEMO_DIR:-demo-out}
model=testdata/trained/model
data=testdata/trained/data
mkdir -p "$out"
echo "== kintsugi-verify $model (the original, bf16)"
bin/kintsugi-verify --quiet "$model"
echo "== kintsugi-convert $model $out/mlx-trained-4bit"
bin/kintsugi-convert --force "$model" "$out/mlx-trained-4bit"
echo "== kintsugi-verify $out/mlx-trained-4bit --original $model --generate --kld --choices"
bin/kintsugi-verify "$out/mlx-trained-4bit" --original "$model" --generate --max-tokens 64 \
    --kld "$data/prose-heldout.txt" --choices "$data/choices.jsonl"
question="フランスの首都はどこですか？"  # held out: the model saw the fact, never these words
echo "== kintsugi-run $out/mlx-trained-4bit --prompt '$question /no_think'"
bin/kintsugi-run "$out/mlx-trained-4bit" --prompt "$question /no_think" --max-tokens 48
echo "== kintsugi-run $out/mlx-trained-4bit --prompt '$question /think'"
bin/kintsugi-run "$out/mlx-trained-4bit" --prompt "$question /think" --max-tokens 48
echo "demo: ok"
