#!/bin/sh
# usage: sh tests/gpu/gpu.sh vulkan|metal
# The GPU kernels and the GPU backend through one host: build the kernel
# tests (tests/gpu/test_gpu_kernels.c) and the whole-model tests
# (tests/gpu/test_gpu_model.c) with the Makefile's GPU objects (the kernels
# compiled to SPIR-V, and for Metal translated to MSL, embedded), then run
# every kernel against the CPU reference on the host's device and whole
# models against the CPU backend. The device is the host's variable's:
# KINTSUGI_VULKAN_DEVICE (default here: Mesa's lavapipe, "llvmpipe", which
# executes the SPIR-V on the CPU) or KINTSUGI_METAL_DEVICE (default: the
# system's Metal device). A device that cannot be opened is a failure.
set -eu
cd "$(dirname "$0")/../.."
api=${1:-vulkan}
LIBDIR=${KT_LIBDIR:-build/release}
OUT=build/gpu/$api
mkdir -p "$OUT"
case $api in
vulkan)
    objs="$LIBDIR/runtime/gpu/vulkan.o $LIBDIR/gpu/kernels_spv.o"
    libs=$(pkg-config --libs vulkan)
    # the loader complains about a missing XDG_RUNTIME_DIR; lavapipe does not need one
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$OUT} KINTSUGI_VULKAN_DEVICE=${KINTSUGI_VULKAN_DEVICE:-llvmpipe}
    ;;
metal)
    objs="$LIBDIR/runtime/gpu/metal.o $LIBDIR/gpu/kernels_msl.o"
    libs="-framework Metal -framework Foundation"
    ;;
*) echo "gpu.sh: unknown host '$api' (vulkan or metal)" >&2; exit 2 ;;
esac
objs="$LIBDIR/runtime/gpu/gpu_kernels.o $LIBDIR/runtime/gpu/backend_gpu.o $LIBDIR/runtime/gpu/gpu_selfcheck.o $objs"
# shellcheck disable=SC2086
make -s OUT="$LIBDIR" "$LIBDIR/libkintsugi.a" $objs
flags="-std=c11 -Wall -Wextra -Werror -ffp-contract=off -O2 -D_DEFAULT_SOURCE"
omp=$(sed -n 's/^OPENMP_CFLAGS *:*= *//p' build/config.mk)
ompl=$(sed -n 's/^OPENMP_LIBS *:*= *//p' build/config.mk)
inc="-Ilib -Iquantize -Iruntime -Iruntime/cpu -Iruntime/gpu -Itests/unit $(pkg-config --cflags libcjson)"
# shellcheck disable=SC2086
${CC:-cc} $flags $omp $inc -o "$OUT/gpu-kernel-tests" tests/gpu/test_gpu_kernels.c $objs "$LIBDIR/libkintsugi.a" \
    $(pkg-config --libs libcjson) $libs $ompl -lm
# shellcheck disable=SC2086
${CC:-cc} $flags $omp $inc -o "$OUT/gpu-model-tests" tests/gpu/test_gpu_model.c $objs "$LIBDIR/libkintsugi.a" \
    $(pkg-config --libs libcjson) $libs $ompl -lm
# whole models: the trained tiny model (bf16) and its 4-bit and 8-bit
# conversions; a tiny MoE checkpoint (one tensor per expert) and its 4-bit
# conversion (experts stacked), once with one expert group and once with
# two (n_group 2, topk_group 1: the router's group pruning)
BIN=${KT_BIN:-bin}
M=build/gpu/models
mkdir -p "$M"
for bits in 4 8; do
    [ -d "$M/trained-$bits" ] || "$BIN/kintsugi-convert" testdata/trained/model "$M/trained-$bits" --bits "$bits" --quiet
done
if [ ! -d "$M/moe-g2-4" ]; then
    rm -rf "$M/moe" "$M/moe-g2" "$M/moe-4"
    "$BIN/kintsugi-testdata" --moe "$M/moe" --quiet
    "$BIN/kintsugi-convert" "$M/moe" "$M/moe-4" --quiet
    cp -R "$M/moe" "$M/moe-g2"
    sed 's/"n_group": 1,/"n_group": 2,/' "$M/moe/config.json" > "$M/moe-g2/config.json"
    grep -q '"n_group": 2,' "$M/moe-g2/config.json" || { echo "gpu.sh: no n_group in the MoE config" >&2; exit 1; }
    "$BIN/kintsugi-convert" "$M/moe-g2" "$M/moe-g2-4" --quiet
fi
models="testdata/trained/model $M/trained-4 $M/trained-8 $M/moe $M/moe-4 $M/moe-g2 $M/moe-g2-4"
# both test programs; one total at the end for tests/run.sh
rc=0
"$OUT/gpu-kernel-tests" "$api" > "$OUT/kernels.log" 2>&1 || rc=1
# A Mac whose GPU is outside the families the Metal host accepts (the
# paravirtual device of a virtual Mac, say) is refused by the host with one
# line: a failure, never "0 passed, 0 failed". The person running the tests
# may turn the Metal tests off (KT_METAL_TESTS=off, tests/run.sh).
if [ "$api" = metal ] && grep -q "reports neither the Apple7 nor the Metal3" "$OUT/kernels.log"; then
    echo "the Metal device cannot run the kernels: $(grep -o 'metal: .*' "$OUT/kernels.log" | head -n 1)"
    echo "(KT_METAL_TESTS=off make check runs the rest without the Metal tests, and says so)"
    echo "0 passed, 1 failed"
    exit 1
fi
# shellcheck disable=SC2086
"$OUT/gpu-model-tests" "$api" $models > "$OUT/models.log" 2>&1 || rc=1
# weights split into row chunks of at most 64 KiB, as a 9B model's embedding
# and lm_head are within lavapipe's 128 MiB binding; then copied, not imported
"$OUT/gpu-model-tests" "$api" --max-binding 65536 testdata/trained/model "$M/trained-4" \
    > "$OUT/models-chunked.log" 2>&1 || rc=1
"$OUT/gpu-model-tests" "$api" --max-binding 65536 --copy testdata/trained/model "$M/trained-4" \
    > "$OUT/models-copied.log" 2>&1 || rc=1
logs="$OUT/kernels.log $OUT/models.log $OUT/models-chunked.log $OUT/models-copied.log"
# shellcheck disable=SC2086
cat $logs | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
p=0 f=0
for log in $logs; do
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    [ -n "$line" ] || { f=$((f + 1)); continue; }
    p=$((p + $(echo "$line" | cut -d' ' -f1)))
    f=$((f + $(echo "$line" | cut -d' ' -f3)))
done
echo "$p passed, $f failed"
exit $rc
