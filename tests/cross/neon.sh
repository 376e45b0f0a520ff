#!/bin/sh
# Build the quantizer and its unit tests for arm64 and run them under qemu:
# the NEON kernel against the scalar reference, on an x86-64 machine.
# (On an arm64 machine the ordinary unit tests already run the NEON kernel.)
set -eu
cd "$(dirname "$0")/../.."
OUT=build/aarch64
mkdir -p "$OUT"
aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror -ffp-contract=off -O2 -D_DEFAULT_SOURCE -fopenmp \
    -Ilib -Iquantize -Itests/unit -static -o "$OUT/quantize-tests" \
    tests/cross/quantize_main.c tests/unit/test_quantize.c quantize/affine_ref.c quantize/affine_simd.c \
    quantize/affine_tensor.c lib/dtype.c lib/dtype_simd.c lib/error.c lib/strbuf.c -lm 2>"$OUT/link.log" ||
    { cat "$OUT/link.log" >&2; exit 1; }
KT_AGREE_GROUPS=${KT_AGREE_GROUPS:-50000} qemu-aarch64 "$OUT/quantize-tests"
