#!/bin/sh
# Run the libFuzzer harnesses: each target for SECONDS (default 60) from its
# seed corpus (tests/fuzz/corpus/TARGET, which also holds every input that
# once crashed, so each run replays them first), two targets at a time.
#   sh tests/fuzz/run.sh [--seconds N] [TARGET...]
# A crash leaves its input in build/fuzz/crashes/ and fails the run; the
# executions of each target are added up in build/fuzz/executions.txt.
# Ends with the line "N passed, N failed" (one per target).
set -eu
cd "$(dirname "$0")/../.."
seconds=60
[ "${1:-}" = "--seconds" ] && { seconds=$2; shift 2; }
targets=${*:-"safetensors json tokenizer chat archive config model choices"}
sh tests/fuzz/build.sh $targets
mkdir -p build/fuzz/crashes build/fuzz/logs
for t in $targets; do
    mkdir -p "build/fuzz/grown/$t"
    cp tests/fuzz/corpus/"$t"/* "build/fuzz/grown/$t/"
done
# shellcheck disable=SC2016
printf '%s\n' $targets | xargs -P 2 -I{} sh -c '
    t={}
    ASAN_OPTIONS=detect_leaks=1 build/fuzz/fuzz_$t build/fuzz/grown/$t tests/fuzz/corpus/$t \
        -max_total_time='"$seconds"' -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix=build/fuzz/crashes/$t- > build/fuzz/logs/$t.log 2>&1
    echo $? > build/fuzz/logs/$t.rc' || true
passed=0 failed=0
for t in $targets; do
    rc=$(cat "build/fuzz/logs/$t.rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build/fuzz/logs/$t.log" | tail -n 1)
    echo "$t ${runs:-0}" >> build/fuzz/executions.txt
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        echo "ok   fuzz_$t: ${runs:-0} executions in ${seconds} s, no crash"
    else
        failed=$((failed + 1))
        echo "FAIL fuzz_$t (see build/fuzz/logs/$t.log):"
        grep -E "ERROR|SUMMARY|Test unit written" "build/fuzz/logs/$t.log" | head -n 5
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
