#!/bin/sh
# usage: sh tests/gpu/metal_syntax.sh MSL_DIR   (the .metal files check_msl.py wrote)
# The Metal host as far as Linux can take it: there is no macOS SDK and no
# Metal compiler here, so runtime/gpu/metal.m is compiled to an object file
# (GNUstep's Objective-C ABI, never linked or run) against declarations of
# the Metal and Foundation API it uses (tests/gpu/metal_api/, written from
# Apple's documentation), with the project's warnings as errors: its
# syntax, types and every message it sends are checked, availability and
# behaviour are not. Then the kernels' MSL embedded as scripts/embed.sh
# does for the Metal build, compiled, and checked to be the files' text.
set -eu
cd "$(dirname "$0")/../.."
msl=$1
out=build/gpu/metal-syntax
mkdir -p "$out"
cc=${KT_OBJC_CC:-clang}
flags="-Wall -Wextra -Werror -ffp-contract=off -O2 -fno-objc-arc -fblocks"
p=0 f=0
n=0
check() { # name command...
    name=$1
    n=$((n + 1))
    shift
    if "$@" > "$out/check-$n.log" 2>&1; then echo "ok   $name"; p=$((p + 1)); else
        echo "FAIL $name"; sed 's/^/    /' "$out/check-$n.log" | head -n 20; f=$((f + 1)); fi
}
# shellcheck disable=SC2086
check "metal.m compiles (Objective-C, against the declared Metal API of the macOS 15 SDK)" \
    "$cc" -c -x objective-c -fobjc-runtime=gnustep-2.0 $flags -Ilib -Iruntime/gpu -Itests/gpu/metal_api \
    runtime/gpu/metal.m -o "$out/metal.o"
# the macOS 14 SDK (the macos-14 runners) has no MTLCompileOptions.mathMode
# shellcheck disable=SC2086
check "metal.m compiles against the macOS 14 SDK's Metal API (no mathMode)" \
    "$cc" -c -x objective-c -fobjc-runtime=gnustep-2.0 $flags -DKT_STUB_MACOS_SDK=140000 -Ilib -Iruntime/gpu \
    -Itests/gpu/metal_api runtime/gpu/metal.m -o "$out/metal-sdk14.o"
kernels=$(cd runtime/gpu/kernels && ls ./*.comp | sed 's|^\./||; s|\.comp$||' | sort | tr '\n' ' ')
taken=$(nm "$out/metal.o" 2>/dev/null | awk '$1 == "U" && $2 ~ /^kt_msl_/ {sub(/^kt_msl_/, "", $2); print $2}' | sort | tr '\n' ' ')
check "metal.m takes the MSL of every kernel and no other" \
    sh -c '[ "$1" = "$2" ] || { echo "metal.m takes: $2"; echo "the kernels:   $1"; exit 1; }' - "$kernels" "$taken"
pairs=""
for k in $kernels; do pairs="$pairs $k=$msl/$k.metal"; done
# shellcheck disable=SC2086
sh scripts/embed.sh msl "$out/kernels_msl.c" $pairs
{
    echo '#include <stdio.h>'
    echo '#include <string.h>'
    for k in $kernels; do echo "extern const unsigned char kt_msl_$k[];"; done
    echo 'static int same(const unsigned char *s, const char *path) {'
    echo '    FILE *f = fopen(path, "rb"); size_t i = 0; int c, ok = f != NULL;'
    echo '    while (ok && (c = getc(f)) != EOF) ok = s[i++] == (unsigned char)c;'
    echo '    if (f) fclose(f);'
    printf '%s\n' '    if (!ok || s[i]) printf("%s: the embedded text differs\n", path);'
    echo '    return ok && !s[i];'
    echo '}'
    echo 'int main(void) { int ok = 1;'
    for k in $kernels; do echo "    ok &= same(kt_msl_$k, \"$msl/$k.metal\");"; done
    echo '    return !ok; }'
} > "$out/embedded.c"
check "scripts/embed.sh embeds each kernel's MSL as it is" \
    sh -c "${CC:-cc} -std=c11 -Wall -Wextra -Werror -o '$out/embedded' '$out/embedded.c' '$out/kernels_msl.c' && '$out/embedded'"
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
