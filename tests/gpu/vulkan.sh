#!/bin/sh
# The GPU kernels and the Vulkan backend: compile runtime/gpu/kernels/*.comp to SPIR-V
# (glslangValidator), embed it, build the kernel tests and run them on the
# device KINTSUGI_VULKAN_DEVICE names (default: Mesa's lavapipe, "llvmpipe",
# which executes the SPIR-V on the CPU), then whole models on the backend
# against the CPU backend (tests/gpu/test_vulkan_model.c). tests/run.sh then
# translates every kernel to Metal
# Shading Language with spirv-cross and check its entry point and buffer
# indices against runtime/gpu/gpu_abi.h (tests/gpu/check_msl.py).
set -eu
cd "$(dirname "$0")/../.."
OUT=build/gpu
mkdir -p "$OUT"
pairs=""
for k in runtime/gpu/kernels/*.comp; do
    name=$(basename "$k" .comp)
    glslangValidator --target-env vulkan1.1 -V -o "$OUT/$name.spv" "$k" > "$OUT/$name.log" ||
        { cat "$OUT/$name.log" >&2; exit 1; }
    pairs="$pairs $name=$OUT/$name.spv"
done
sh scripts/embed_spirv.sh "$OUT/kernels_spv.c" $pairs
LIBDIR=${KT_LIBDIR:-build/release}
make -s "$LIBDIR/libkintsugi.a" OUT="$LIBDIR"
${CC:-cc} -std=c11 -Wall -Wextra -Werror -ffp-contract=off -O2 -D_DEFAULT_SOURCE -fopenmp \
    -Ilib -Iquantize -Iruntime -Iruntime/cpu -Iruntime/gpu -Itests/unit $(pkg-config --cflags libcjson) \
    -o "$OUT/vulkan-tests" tests/gpu/test_vulkan_kernels.c runtime/gpu/vulkan.c "$OUT/kernels_spv.c" \
    "$LIBDIR/libkintsugi.a" $(pkg-config --libs libcjson vulkan) -lm
${CC:-cc} -std=c11 -Wall -Wextra -Werror -ffp-contract=off -O2 -D_DEFAULT_SOURCE -fopenmp \
    -Ilib -Iquantize -Iruntime -Iruntime/cpu -Iruntime/gpu $(pkg-config --cflags libcjson) \
    -o "$OUT/vulkan-model-tests" tests/gpu/test_vulkan_model.c runtime/gpu/backend_vulkan.c runtime/gpu/vulkan.c \
    "$OUT/kernels_spv.c" "$LIBDIR/libkintsugi.a" $(pkg-config --libs libcjson vulkan) -lm
# whole models: the trained tiny model (bf16) and its 4-bit and 8-bit conversions
BIN=${KT_BIN:-bin}
for bits in 4 8; do
    [ -d "$OUT/trained-$bits" ] || "$BIN/kintsugi-convert" testdata/trained/model "$OUT/trained-$bits" --bits "$bits" --quiet
done
# the loader complains about a missing XDG_RUNTIME_DIR; lavapipe does not need one
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$OUT} KINTSUGI_VULKAN_DEVICE=${KINTSUGI_VULKAN_DEVICE:-llvmpipe}
# both test programs; one total at the end for tests/run.sh
rc=0
"$OUT/vulkan-tests" > "$OUT/kernels.log" 2>&1 || rc=1
"$OUT/vulkan-model-tests" testdata/trained/model "$OUT/trained-4" "$OUT/trained-8" > "$OUT/models.log" 2>&1 || rc=1
cat "$OUT/kernels.log" "$OUT/models.log" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
p=0 f=0
for log in "$OUT/kernels.log" "$OUT/models.log"; do
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    [ -n "$line" ] || { f=$((f + 1)); continue; }
    p=$((p + $(echo "$line" | cut -d' ' -f1)))
    f=$((f + $(echo "$line" | cut -d' ' -f3)))
done
echo "$p passed, $f failed"
exit $rc
