#!/bin/sh
# Install what the build (and, with --tests, the test suite) needs, when it is
# missing: Debian/Ubuntu through apt-get (sudo when not root), macOS through
# Homebrew. Does nothing when everything is already there.
set -eu

want_tests=0
[ "${1:-}" = "--tests" ] && want_tests=1

os=$(uname -s)
pc_path() {
    if [ "$os" = Darwin ] && command -v brew >/dev/null 2>&1; then
        # libarchive is keg-only in Homebrew: its .pc file is not linked.
        printf '%s/lib/pkgconfig' "$(brew --prefix libarchive 2>/dev/null)"
    fi
}
PKG_CONFIG_PATH="$(pc_path)${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH

have_build_deps() {
    command -v cc >/dev/null 2>&1 && command -v pkg-config >/dev/null 2>&1 &&
        pkg-config --exists libcjson libarchive libpcre2-8 zlib
}
cross_neon=0 # x86-64 Linux runs the NEON kernel's tests under qemu
[ "$os" = Linux ] && [ "$(uname -m)" = x86_64 ] && cross_neon=1
# libFuzzer: clang with its fuzzer runtime (tests/fuzz/build.sh links a probe)
fuzz_cc() {
    if [ "$os" = Darwin ]; then echo "$(brew --prefix llvm 2>/dev/null)/bin/clang"; else echo clang; fi
}
have_fuzzer() {
    cc=$(fuzz_cc)
    command -v "$cc" >/dev/null 2>&1 || return 1
    probe=$(mktemp -d)
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > "$probe/p.c"
    "$cc" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1
    ok=$?
    rm -rf "$probe"
    return $ok
}
have_test_deps() {
    command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1 &&
        command -v zstd >/dev/null 2>&1 && have_fuzzer &&
        { [ "$os" != Linux ] || command -v valgrind >/dev/null 2>&1; } &&
        { [ $cross_neon = 0 ] || { command -v aarch64-linux-gnu-gcc && command -v qemu-aarch64; } >/dev/null 2>&1; } &&
        { [ "$os" != Linux ] || have_gpu_test_deps; } && { [ "$os" != Darwin ] || have_metal_deps; }
}
# the GPU kernels' tests on Linux: GLSL -> SPIR-V, Vulkan with Mesa's lavapipe
# (the SPIR-V run on the CPU), SPIR-V -> MSL
have_gpu_test_deps() {
    command -v glslangValidator >/dev/null 2>&1 && command -v spirv-cross >/dev/null 2>&1 &&
        pkg-config --exists vulkan && ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1
}
# the Metal host on macOS: GLSL -> SPIR-V -> MSL at build time
have_metal_deps() {
    command -v glslangValidator >/dev/null 2>&1 && command -v spirv-cross >/dev/null 2>&1
}

missing=0
have_build_deps || missing=1
[ "$os" = Darwin ] && { have_metal_deps || missing=1; }
[ $want_tests = 1 ] && { have_test_deps || missing=1; }
[ $missing = 0 ] && exit 0

case "$os" in
Linux)
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: missing build dependencies and no apt-get; install a C compiler, pkg-config," >&2
        echo "bootstrap: and the development files of cJSON, libarchive, PCRE2 and zlib" >&2
        exit 1
    fi
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    pkgs="build-essential pkg-config libcjson-dev libarchive-dev libpcre2-dev zlib1g-dev"
    [ $want_tests = 1 ] && pkgs="$pkgs python3 python3-venv python3-pip zstd clang valgrind"
    [ $want_tests = 1 ] && pkgs="$pkgs glslang-tools spirv-cross libvulkan-dev mesa-vulkan-drivers"
    [ $want_tests = 1 ] && [ $cross_neon = 1 ] && pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
    echo "bootstrap: installing $pkgs" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $pkgs >&2
    # Debian 12 ships libFuzzer's runtime apart from clang, versioned with it
    if [ $want_tests = 1 ] && ! have_fuzzer; then
        v=$(clang -dumpversion | cut -d. -f1)
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "libclang-rt-$v-dev" >&2
    fi
    ;;
Darwin)
    if ! command -v brew >/dev/null 2>&1; then
        echo "bootstrap: Homebrew is needed on macOS (https://brew.sh)" >&2
        exit 1
    fi
    pkgs="pkg-config cjson libarchive pcre2 libomp glslang spirv-cross"
    [ $want_tests = 1 ] && pkgs="$pkgs python@3.12 zstd llvm"
    echo "bootstrap: installing $pkgs" >&2
    brew install $pkgs >&2
    ;;
*)
    echo "bootstrap: unsupported system $os" >&2
    exit 1
    ;;
esac
have_build_deps || { echo "bootstrap: dependencies still missing after install" >&2; exit 1; }
