#!/usr/bin/env bash
# Runs one benchmark of each multi-process kind in quick mode and checks the
# result file and histograms against what the scripts need.
#   ipc_smoke.sh IPC_BENCH PYTHON CHECKER
set -euo pipefail
bench=$1 python=$2 checker=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/histograms"
"$bench" --quick --histograms="$dir/histograms" \
    --benchmark_filter='limits|throughput/shmds_spsc/payload:8/.*wait:spin|ping_pong/shmds_mpmc.*sleep|latency/shmds_spsc' \
    --benchmark_out="$dir/result.json" --benchmark_out_format=json > "$dir/console.txt"
"$python" "$checker" "$dir/result.json" --histograms "$dir/histograms"
