#!/usr/bin/env bash
# Runs a benchmark program briefly (a smoke test, not a measurement) and
# checks its result file, and histograms when it writes any, against what
# the scripts need.
#   smoke.sh BENCH PYTHON CHECKER [flags for BENCH...]
set -euo pipefail
bench=$1 python=$2 checker=$3
shift 3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/histograms"
histogram_flag=()
case $(basename "$bench") in *ipc*) histogram_flag=(--histograms="$dir/histograms") ;; esac
"$bench" "${histogram_flag[@]}" "$@" --benchmark_out="$dir/result.json" --benchmark_out_format=json \
    > "$dir/console.txt"
if [ ${#histogram_flag[@]} -gt 0 ]; then
    "$python" "$checker" "$dir/result.json" --histograms "$dir/histograms"
else
    "$python" "$checker" "$dir/result.json"
fi
