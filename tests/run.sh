#!/bin/sh
# Run every test suite and end with one line "N passed, N failed".
#
#   1. build the tools, unit tests and test tool: release and ASan+UBSan
#   2. C unit tests, both builds (and on x86-64 Linux the quantizer's tests
#      built for arm64 and run under qemu, for the NEON kernel)
#      the GPU kernels and backend: on Linux through Vulkan on lavapipe, their
#      MSL translation, the Metal host compiled; on macOS on Metal
#   3. malformed safetensors corpus against kintsugi-verify, both builds
#   4. oracle tests (pytest) against the pinned Python peers, in .venv, with the
#      release tools and again with the sanitizer build (these include the
#      fault injection and resource-bound tests, tests/oracle/test_faults.py)
#   5. the tools' main paths under valgrind (Linux)
#   6. a short fuzz pass: every libFuzzer target for 10 seconds (the
#      seeds and what they reach; `make fuzz` runs ten minutes per target)
#
# An oracle that cannot be installed or run counts as a failure, never a skip.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${KT_VENV:-$ROOT/.venv}
PASSED=0
FAILED=0
SKIPPED=""
TABLES=""
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
export ASAN_OPTIONS="exitcode=86:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:exitcode=86:print_stacktrace=1"

# Count "N passed, N failed" from a suite's last such line; a suite that
# failed without one counts as one failure.
tally() {
    name=$1
    rc=$2
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG" | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    else
        p=0
        f=1
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    echo "== $name: $p passed, $f failed"
}

suite() {
    name=$1
    shift
    echo "== $name"
    t0=$(date +%s)
    "$@" > "$LOG" 2>&1
    rc=$?
    grep -v '^ok ' "$LOG" | grep -v -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 60
    tally "$name ($(($(date +%s) - t0)) s)" "$rc"
}

build() {
    make -s tests-build && make -s SAN=1 tests-build && echo "1 passed, 0 failed"
}
suite "build (release and sanitizer)" build
if [ "$FAILED" -ne 0 ]; then
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi

# 1,000,000 random groups per bits x group size (18 M in all) for the SIMD
# quantizer against the scalar reference: under a minute on 2 cores
# (KT_AGREE_GROUPS=N build/release/tests/unit-tests for a longer search)
suite "unit tests" env KT_AGREE_GROUPS=1000000 build/release/tests/unit-tests
# which kernel tables ran on this CPU and which it cannot run: repeated at the end
TABLES=$(grep -o 'kernel tables tested on this CPU: .*' "$LOG" | head -n 1)
suite "unit tests (ASan+UBSan)" build/asan/tests/unit-tests
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; then
    suite "NEON kernels: quantizer and matrix kernels (arm64 under qemu)" sh tests/cross/neon.sh
fi
if [ "$(uname -s)" = Linux ]; then
    # the GPU kernels: SPIR-V on Vulkan (Mesa's lavapipe unless
    # KINTSUGI_VULKAN_DEVICE names another device), then the Metal translation
    suite "GPU kernels on Vulkan (${KINTSUGI_VULKAN_DEVICE:-lavapipe}) against the CPU" sh tests/gpu/gpu.sh vulkan
    suite "GPU kernels translated to Metal Shading Language (spirv-cross)" python3 tests/gpu/check_msl.py build/release/gpu
    # no macOS SDK here: the Metal host is compiled, not linked or run
    suite "Metal host compiled against the declared Metal API (no SDK on Linux)" \
        sh tests/gpu/metal_syntax.sh build/release/gpu
fi
if [ "$(uname -s)" = Darwin ]; then
    # the same kernels as MSL on the Mac's GPU. A device the Metal host
    # refuses is a failure; only the person running the tests turns the Metal
    # tests off (KT_METAL_TESTS=off, for a virtual Mac's paravirtual GPU), and
    # the summary line then says so.
    if [ "${KT_METAL_TESTS:-on}" = off ]; then
        echo "== GPU kernels on Metal: turned off (KT_METAL_TESTS=off)"
        SKIPPED="the Metal GPU tests (KT_METAL_TESTS=off)"
    else
        suite "GPU kernels on Metal (${KINTSUGI_METAL_DEVICE:-the system's device}) against the CPU" sh tests/gpu/gpu.sh metal
    fi
fi
suite "malformed safetensors" python3 tests/malformed/check_malformed.py bin/kintsugi-verify
suite "malformed safetensors (ASan+UBSan)" python3 tests/malformed/check_malformed.py build/asan/bin/kintsugi-verify

setup_venv() {
    req=tests/oracle/requirements.txt
    stamp="$VENV/.requirements"
    if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
        echo "1 passed, 0 failed"
        return 0
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV" || return 1
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$req" || return 1
    cp "$req" "$stamp"
    echo "1 passed, 0 failed"
}
suite "oracle environment (.venv from tests/oracle/requirements.txt)" setup_venv

# oracles BINDIR TESTTOOL [SANITIZED]: the pytest suite against one build of
# the tools. With SANITIZED (1), tests that repeat one path over hundreds of
# prompts take a sample, and the tests of figures over whole data sets (marked
# "figures") and the tests whose C paths others take there (marked
# "release_only") are left out: the sanitizers look for memory errors, the release
# run checks the figures on everything.
oracles() {
    xml=$(mktemp)
    if [ "${3:-0}" = 1 ]; then set -- "$1" "$2" 1 -m "not figures and not release_only"; else set -- "$1" "$2" 0; fi
    # the Vulkan oracle runs Linux's Mesa lavapipe: on macOS it is not part of
    # the run (the Metal suite above tests the GPU kernels there)
    if [ "$(uname -s)" = Darwin ]; then set -- "$@" --ignore=test_gpu_oracle.py; fi
    (cd tests/oracle && export KT_BIN="$1" KT_TESTTOOL="$2" KT_SANITIZED="$3" && shift 3 &&
        "$VENV/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$xml" "$@")
    rc=$?
    python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 passed, 1 failed"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get(k, 0)) for s in suites for k in ("failures", "errors", "skipped"))
print(f"{t - bad} passed, {bad} failed")
PY
    rm -f "$xml"
    return $rc
}
if [ -x "$VENV/bin/python" ]; then
    suite "oracle tests (mlx, mlx-lm, lm-eval, safetensors, tokenizers, transformers)" \
        oracles "$ROOT/bin" "$ROOT/build/release/tests/testtool"
    suite "oracle tests with the ASan+UBSan tools" \
        oracles "$ROOT/build/asan/bin" "$ROOT/build/asan/tests/testtool" 1
else
    FAILED=$((FAILED + 1))
    echo "== oracle tests: cannot run, no virtual environment"
fi

if [ "$(uname -s)" = Linux ]; then
    suite "valgrind: the tools' main paths" sh tests/valgrind.sh
fi
suite "fuzz, short pass (${KT_FUZZ_SECONDS:-10} s per target, two at a time)" \
    sh tests/fuzz/run.sh --seconds "${KT_FUZZ_SECONDS:-10}"

[ -n "$TABLES" ] && echo "$TABLES"
if [ -n "$SKIPPED" ]; then
    echo "skipped: $SKIPPED"
    echo "$PASSED passed, $FAILED failed, 1 skipped"
else
    echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ]
