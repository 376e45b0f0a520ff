#!/bin/sh
# Build the vector kernels' unit tests (quantizer, fit, runtime matrix kernels) for
# arm64 and run them under qemu: the NEON kernels against the scalar
# references, on an x86-64 machine.
# (On an arm64 machine the ordinary unit tests already run the NEON kernel.)
set -eu
cd "$(dirname "$0")/../.."
OUT=build/aarch64
mkdir -p "$OUT"
# model.h reaches cJSON.h through the model-directory headers: declarations
# only, portable, so the host's copy serves the cross build.
CJSON_INC=$(pkg-config --cflags-only-I libcjson 2>/dev/null | sed 's/-I/-idirafter /g')
aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror -ffp-contract=off -O2 -D_DEFAULT_SOURCE -fopenmp \
    -Ilib -Iquantize -Iruntime -Iruntime/cpu -Itests/unit $CJSON_INC -static -o "$OUT/kernel-tests" \
    tests/cross/cross_main.c tests/unit/test_quantize.c tests/unit/test_matvec.c tests/unit/test_fit.c \
    quantize/affine_ref.c quantize/affine_simd.c quantize/affine_tensor.c quantize/fit_ref.c quantize/fit_simd.c \
    quantize/fit_tensor.c runtime/cpu/matvec*.c runtime/cpu/interleave.c lib/dtype.c lib/dtype_simd.c lib/error.c \
    lib/strbuf.c -lm 2>"$OUT/link.log" ||
    { cat "$OUT/link.log" >&2; exit 1; }
# -cpu max: every extension qemu emulates, dotprod among them, so both the
# sdot kernels and the plain NEON ones (always tested) run.
KT_AGREE_GROUPS=${KT_AGREE_GROUPS:-50000} qemu-aarch64 -cpu max "$OUT/kernel-tests"
