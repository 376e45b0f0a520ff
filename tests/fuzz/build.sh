#!/bin/sh
# Build the libFuzzer harnesses with clang, ASan and UBSan, into build/fuzz/.
#   sh tests/fuzz/build.sh [TARGET...]      (default: all)
# The library is compiled with clang (not the cc of the main build), once,
# into build/fuzz/obj; OpenMP is left out: the harnesses are single-threaded.
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
# Each source file is compiled once (instrumented for the fuzzer without its
# main, two at a time), then every harness is linked from the objects it
# needs: the library is not compiled again for each target.
OBJ=$OUT/obj
mkdir -p "$OBJ"
OBJ_FLAGS=$(echo "$FLAGS" | sed 's/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,/')
obj_of() { echo "$OBJ/$(echo "$1" | tr '/' '_' | sed 's/\.c$/.o/')"; }
sources=""
for t in $targets; do sources="$sources $LIB_SRC $(extra_for "$t")"; done
# shellcheck disable=SC2086
printf '%s\n' $sources | sort -u | while read -r src; do
    printf '%s %s\n' "$src" "$(obj_of "$src")"
done > "$OBJ/list"
export CC OBJ_FLAGS
# shellcheck disable=SC2016
xargs -P 2 -L 1 sh -c '$CC $OBJ_FLAGS -c "$0" -o "$1"' < "$OBJ/list" || exit 1
status=0
for t in $targets; do
    objs=""
    for src in $LIB_SRC $(extra_for "$t"); do objs="$objs $(obj_of "$src")"; done
    # shellcheck disable=SC2086
    $CC $FLAGS -o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" $objs $LIBS || status=1
done
exit $status
