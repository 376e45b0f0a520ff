#!/bin/sh
# The tools' main paths under valgrind (memcheck): no invalid access, no use
# of uninitialised memory, no definite leak. The sanitizer build covers the
# whole suite; this covers the release binaries as users run them.
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# The converter re-executes itself to set OMP_WAIT_POLICY, which does not
# work under valgrind (/proc/self/exe is valgrind's tool): set it here.
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
passed=0 failed=0
check() {
    name=$1
    shift
    if $VG "$@" > "$dir/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        tail -n 30 "$dir/out"
    fi
}
bin/kintsugi-testdata --force --moe "$dir/hf" > /dev/null
check "kintsugi-convert" bin/kintsugi-convert --quiet "$dir/hf" "$dir/mlx"
cp -r "$dir/mlx" "$dir/broken"
sed 's/"time_step_limit"/"time_step_limit_gone"/' "$dir/mlx/config.json" > "$dir/broken/config.json"
check "kintsugi-fixup" bin/kintsugi-fixup "$dir/broken" --original "$dir/hf"
check "kintsugi-verify --original --generate" bin/kintsugi-verify "$dir/mlx" --original "$dir/hf" --generate --max-tokens 3 --quiet
check "kintsugi-run --prompt" bin/kintsugi-run "$dir/mlx" --prompt "こんにちは /no_think" --max-tokens 4
check "kintsugi-quantize" bin/kintsugi-quantize "$dir/hf/model-00001-of-00002.safetensors" "$dir/q.safetensors" --quiet
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
