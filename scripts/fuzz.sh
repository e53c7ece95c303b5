#!/usr/bin/env bash
# Fuzzes Collie's parsers of untrusted input with libFuzzer and AddressSanitizer (docs/FUZZING.md).
#
#   scripts/fuzz.sh [--seconds N] [--keep-going] [TARGET...]
#
# Builds `collie-fuzz` with -sanitize=fuzzer,address (C: -fsanitize=address) in .build-fuzz (release, so it fuzzes at
# speed; lld, as gold fails on the sanitized objects), then runs each TARGET (default: every target
# `collie-fuzz --list` prints) for N seconds (default 60) from its committed seed
# corpus Tests/Fuzz/Corpus/<target>, with libFuzzer's limits: an input running over 5 s is a hang, a process over
# 1024 MB is out of memory. New interesting inputs go to build/fuzz/corpus/<target> (the committed seeds are never
# written); a crash, hang or OOM input goes to build/fuzz/crashes/<target>/ and makes the script exit non-zero after
# every target has run. Prints executions per second for each target. --keep-going fuzzes on after a crash (libFuzzer's
# fork mode, ignoring crashes, hangs and OOMs) to collect every distinct crash of a long run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
keep_going=()
targets=()
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --keep-going) keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1); shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

scratch=.build-fuzz
swift build -c release --scratch-path "$scratch" --product collie-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DCOLLIE_LIBFUZZER -Xswiftc -use-ld=lld \
    -Xcc -fsanitize=address -Xcc -fsanitize-address-use-after-scope
fuzzer="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/collie-fuzz"
if ((${#targets[@]} == 0)); then mapfile -t targets < <("$fuzzer" --list); fi

# Swift's backtracer would symbolicate every crash for minutes; AddressSanitizer prints the stack instead.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
out=build/fuzz
failed=()
summary=()
for target in "${targets[@]}"; do
    seeds="Tests/Fuzz/Corpus/$target"
    [[ -d "$seeds" ]] || { echo "fuzz.sh: no seed corpus $seeds for target $target" >&2; exit 2; }
    mkdir -p "$out/corpus/$target" "$out/crashes/$target"
    log="$out/$target.log"
    echo "== $target: ${seconds}s from $seeds (log $log)"
    status=0
    before=$(ls "$out/crashes/$target" | wc -l)
    "$fuzzer" "$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -malloc_limit_mb=1024 \
        -max_len=65536 -print_final_stats=1 ${keep_going[@]+"${keep_going[@]}"} -artifact_prefix="$out/crashes/$target/" \
        "$out/corpus/$target" "$seeds" > "$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    line="$target: ${runs:-?} runs, ${speed:-?} exec/s, ${coverage:-cov: ?}"
    found=$(( $(ls "$out/crashes/$target" | wc -l) - before ))
    if ((status == 0 && found > 0)); then status=1; fi  # --keep-going records crashes and goes on
    if ((status != 0)); then
        line+=", FAILED (exit $status): $found new input(s) in $out/crashes/$target: $(ls -t "$out/crashes/$target" | head -n "$found" | tr '\n' ' ')"
        failed+=("$target")
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*Fatal error)|#[0-9]+ .* in .*/Sources/' "$log" | grep -v -e /Sources/CollieFuzzing/ -e /Sources/collie-fuzz/ | head -8 || true
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s per target, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz.sh: crashes, hangs or out-of-memory in: ${failed[*]} (inputs in $out/crashes/)" >&2
    exit 1
fi
