#!/usr/bin/env bash
# Proof that the regression gate works, in both modes: two runs of unchanged
# code pass it; a build with work injected into push (SHMDS_INJECT_SLOWDOWN)
# fails it. The wall-clock half uses a slowdown of several times and a
# threshold of 2x, so that machine noise cannot decide the outcome.
#   gate_proof.sh PYTHON GATE PROBE PROBE_SLOWED INSTRUCTIONS INSTRUCTIONS_SLOWED
set -euo pipefail
python=$1 gate=$2 probe=$3 probe_slowed=$4 instructions=$5 instructions_slowed=$6
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

expect() {  # expect CODE WHAT COMMAND...
    local code=$1 what=$2
    shift 2
    set +e
    "$@" > "$dir/out.txt" 2>&1
    local got=$?
    set -e
    if [ "$got" -ne "$code" ]; then
        echo "gate_proof: $what: exit $got, expected $code" >&2
        cat "$dir/out.txt" >&2
        exit 1
    fi
    echo "gate_proof: $what: exit $got as expected" >&2
}

# Deterministic mode.
count() {  # count PROGRAM OUT.json
    : > "$dir/index"
    for name in spsc_push_pop mpmc_push_pop stack_push_pop; do
        valgrind --tool=callgrind --collect-atstart=no --toggle-collect=shmds_measure \
            --callgrind-out-file="$dir/$name.out" "$1" --run "$name" 2>/dev/null
        echo "$name $("$1" --ops "$name") $dir/$name.out" >> "$dir/index"
    done
    "$python" "$gate" --collect-instructions "$dir/index" test > "$2"
}
count "$instructions" "$dir/a.json"
count "$instructions" "$dir/b.json"
count "$instructions_slowed" "$dir/slow.json"
expect 0 "instructions: unchanged code, two runs" "$python" "$gate" --mode instructions "$dir/a.json" "$dir/b.json"
expect 1 "instructions: slowdown injected into push" "$python" "$gate" --mode instructions "$dir/a.json" "$dir/slow.json"

# Wall-clock mode.
run() {  # run PROGRAM OUT.json
    "$1" --benchmark_repetitions=7 --benchmark_min_time=0.05 --benchmark_out="$2" --benchmark_out_format=json > /dev/null
}
run "$probe" "$dir/wa.json"
run "$probe" "$dir/wb.json"
run "$probe_slowed" "$dir/wslow.json"
expect 0 "wall clock: unchanged code, two runs" "$python" "$gate" --min-change 1.0 --filter spsc "$dir/wa.json" "$dir/wb.json"
expect 1 "wall clock: slowdown injected into push" "$python" "$gate" --min-change 1.0 --filter spsc "$dir/wa.json" "$dir/wslow.json"

# Bad input.
echo "{ not json" > "$dir/broken.json"
expect 2 "a malformed file" "$python" "$gate" "$dir/wa.json" "$dir/broken.json"
expect 2 "a wall-clock file in instructions mode" "$python" "$gate" --mode instructions "$dir/wa.json" "$dir/wa.json"
