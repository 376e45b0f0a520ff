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
       -Ilib -Iquantize -Iruntime -Iruntime/cpu -Ieval -Iconvert"
LIBS="$(pkg-config --libs libcjson libarchive libpcre2-8 zlib) -lm"
LIB_SRC="lib/*.c"
targets=${*:-"safetensors json tokenizer chat archive config model choices"}
extra_for() {
    case $1 in
    tokenizer|chat) echo "runtime/tokenizer.c runtime/chat.c" ;;
    archive) echo "convert/archive_source.c convert/source.c" ;;
    model) echo "runtime/model.c runtime/cpu/*.c quantize/*.c" ;;
    choices) echo "eval/choices.c eval/documents.c runtime/forward.c runtime/model.c runtime/tokenizer.c runtime/cpu/*.c quantize/*.c" ;;
    *) echo "" ;;
    esac
}
# two targets at a time (each compiles the library with the sanitizers)
pids=""
status=0
for t in $targets; do
    # shellcheck disable=SC2086,SC2046
    $CC $FLAGS -o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" $LIB_SRC $(extra_for "$t") $LIBS &
    pids="$pids $!"
    if [ "$(echo $pids | wc -w)" -ge 2 ]; then
        for p in $pids; do wait "$p" || status=1; done
        pids=""
    fi
done
for p in $pids; do wait "$p" || status=1; done
exit $status
