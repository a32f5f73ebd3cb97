#!/usr/bin/env python3
"""Checks that a benchmark result file has what the scripts rely on.

Usage: check_results.py RESULT.json [--histograms DIR]
Exits non-zero, naming every missing field, when it does not.
"""
import json
import os
import sys

REQUIRED_CONTEXT = ["date", "host_name", "num_cpus", "caches", "cpu_model", "kernel", "compiler",
                    "compiler_flags", "git_commit", "transparent_hugepage", "cpufreq_governor",
                    "clock_cost_ns", "timestamp_clock", "mode"]
REQUIRED_ROW = ["name", "run_name", "run_type", "iterations", "real_time", "cpu_time", "time_unit"]
LATENCY_COUNTERS = ["p50_ns", "mid_mean_ns", "p90_ns", "p99_ns", "p99_9_ns", "p99_99_ns", "max_ns",
                    "limit_rtt_before_ns", "limit_rtt_after_ns", "limit_moved", "fraction_of_limit"]
PING_PONG_COUNTERS = ["limit_two_line_rtt_ns", "fraction_of_two_line_limit"]
LOAD_COUNTERS = ["offered_rate_per_second", "peak_rate_per_second"]
ARRAY_COUNTERS = ["ns_per_access", "raw_pointer_ns_per_access", "shm_array_over_raw_pointer"]
THROUGHPUT_COUNTERS = ["items_per_second", "bytes_per_second", "limit_rtt_before_ns",
                       "limit_rtt_after_ns", "fraction_of_memcpy", "oversubscribed"]


def problems(result, histogram_dir=None):
    found = []
    context = result.get("context", {})
    found += [f"context lacks {key}" for key in REQUIRED_CONTEXT if key not in context]
    rows = result.get("benchmarks", [])
    if not rows:
        found.append("no benchmarks")
    for row in rows:
        found += [f"{row.get('name')} lacks {key}" for key in REQUIRED_ROW if key not in row]
        if row.get("error_occurred"):
            # A benchmark that cannot apply says so (a peer that cannot sleep,
            # a kernel limit); any other error is a failure.
            if not row.get("error_message", "").startswith("not applicable:"):
                found.append(f"{row.get('name')} failed: {row.get('error_message')}")
            continue
        if row.get("run_type") != "iteration":
            continue
        name = row.get("name", "")
        if "/ping_pong/" in name or "/latency/" in name:
            found += [f"{name} lacks {key}" for key in LATENCY_COUNTERS if key not in row]
        if "/ping_pong/" in name:
            found += [f"{name} lacks {key}" for key in PING_PONG_COUNTERS if key not in row]
        if "/latency/" in name:
            found += [f"{name} lacks {key}" for key in LOAD_COUNTERS if key not in row]
            if histogram_dir is not None:
                registered = row["run_name"].split("/iterations:")[0]
                prefix = registered.replace("/", "_").replace(":", "_").replace("%", "_")
                if not any(f.startswith(prefix) for f in os.listdir(histogram_dir)):
                    found.append(f"{name} has no histogram file")
        if "/shm_array_vs_raw_pointer/" in name:
            found += [f"{name} lacks {key}" for key in ARRAY_COUNTERS if key not in row]
        if "/throughput/" in name:
            found += [f"{name} lacks {key}" for key in THROUGHPUT_COUNTERS if key not in row]
    return found


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    histogram_dir = argv[argv.index("--histograms") + 1] if "--histograms" in argv else None
    with open(argv[1]) as f:
        result = json.load(f)
    found = problems(result, histogram_dir)
    for p in found:
        print(p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
