#!/bin/sh
# The GPU kernels on Vulkan: compile runtime/gpu/kernels/*.comp to SPIR-V
# (glslangValidator), embed it, build the kernel tests and run them on the
# device KINTSUGI_VULKAN_DEVICE names (default: Mesa's lavapipe, "llvmpipe",
# which executes the SPIR-V on the CPU), then translate every kernel to Metal
# Shading Language with spirv-cross and check its entry point and buffer
# indices against runtime/gpu/gpu_abi.h (tests/gpu/check_msl.sh).
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
# the loader complains about a missing XDG_RUNTIME_DIR; lavapipe does not need one
XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$OUT} KINTSUGI_VULKAN_DEVICE=${KINTSUGI_VULKAN_DEVICE:-llvmpipe} "$OUT/vulkan-tests"
