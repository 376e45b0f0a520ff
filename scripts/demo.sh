#!/bin/sh
# The main job on the embedded default: generate the tiny synthetic Nemotron-H
# checkpoint and verify it. (Convert and generate join as those tools land.)
set -eu
cd "$(dirname "$0")/.."
out=${KT_DEMO_DIR:-demo-out}
mkdir -p "$out"
echo "== kintsugi-testdata: tiny Nemotron-H checkpoint (M, -, * layers) -> $out/hf-tiny"
bin/kintsugi-testdata --force "$out/hf-tiny"
echo "== kintsugi-verify $out/hf-tiny"
bin/kintsugi-verify "$out/hf-tiny"
echo "demo: ok"
