#!/bin/sh
# Build the libFuzzer harnesses with clang, ASan and UBSan, into build/fuzz/.
#   sh tests/fuzz/build.sh [TARGET...]      (default: all)
# The library is compiled into each harness directly (clang, not the cc of
# the main build); OpenMP is left out: the harnesses are single-threaded.
# KT_NO_JIT and a small CV_ARCHIVE_BLOCK keep per-run setup cheap (PCRE2's JIT
# compilation, libarchive's 1 MiB buffers): same code paths, more runs.
set -eu
cd "$(dirname "$0")/../.."
OUT=build/fuzz
mkdir -p "$OUT"
if [ "$(uname -s)" = Darwin ]; then
    CC=${FUZZ_CC:-$(brew --prefix llvm)/bin/clang} # Apple's clang has no libFuzzer
else
    CC=${FUZZ_CC:-clang}
fi
FLAGS="-std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -ffp-contract=off
       -D_DEFAULT_SOURCE -DKT_NO_JIT -DCV_ARCHIVE_BLOCK=16384 -Wno-unknown-pragmas $(pkg-config --cflags libcjson libarchive libpcre2-8)
       -Ilib -Iquantize -Iruntime -Iruntime/cpu -Iconvert"
LIBS="$(pkg-config --libs libcjson libarchive libpcre2-8 zlib) -lm"
LIB_SRC="lib/*.c"
targets=${*:-"safetensors json tokenizer chat archive config model choices"}
for t in $targets; do
    case $t in
    tokenizer|chat) extra="runtime/tokenizer.c runtime/chat.c" ;;
    archive) extra="convert/archive_source.c convert/source.c" ;;
    model) extra="runtime/model.c runtime/cpu/*.c quantize/*.c" ;;
    choices) extra="runtime/choices.c runtime/forward.c runtime/model.c runtime/tokenizer.c runtime/cpu/*.c quantize/*.c" ;;
    *) extra="" ;;
    esac
    # shellcheck disable=SC2086
    $CC $FLAGS -o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" $LIB_SRC $extra $LIBS
done
