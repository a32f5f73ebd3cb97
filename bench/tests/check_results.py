#!/usr/bin/env python3
"""Checks that a benchmark result file has what the scripts rely on.

Owns the contract between the benchmark programs and scripts/: the context
keys every result file carries, the fields of every row, the counters of
each kind of benchmark (by the family of its name, see scripts/results.py),
and that the transports a run names in its context are the scripts' own.
Exits non-zero, naming every missing field, when the file lacks any; a
benchmark that cannot apply must say so ('not applicable: ...'), any other
error is a failure. The script tests' fixture run is held to the same
contract (scripts/tests/test_check_results.py).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import results  # noqa: E402

REQUIRED_CONTEXT = ["date", "host_name", "num_cpus", "caches", "cpu_model", "kernel", "compiler",
                    "compiler_flags", "git_commit", "transparent_hugepage", "cpufreq_governor",
                    "clock_cost_ns", "timestamp_clock", "mode"]
REQUIRED_ROW = ["name", "run_name", "run_type", "iterations", "real_time", "cpu_time", "time_unit"]
LATENCY_COUNTERS = ["p50_ns", "mid_mean_ns", "p90_ns", "p99_ns", "p99_9_ns", "p99_99_ns", "max_ns",
                    "limit_rtt_before_ns", "limit_rtt_after_ns", "limit_moved", "fraction_of_limit"]
PING_PONG_COUNTERS = ["limit_two_line_rtt_ns", "fraction_of_two_line_limit"]
LOAD_COUNTERS = ["offered_rate_per_second", "peak_rate_per_second", "sender_cpu_ns_per_message",
                 "receiver_cpu_ns_per_message", "cpu_ns_per_message"]
ARRAY_COUNTERS = ["ns_per_access", "raw_pointer_ns_per_access", "shm_array_over_raw_pointer"]
THROUGHPUT_COUNTERS = ["items_per_second", "bytes_per_second", "limit_rtt_before_ns",
                       "limit_rtt_after_ns", "fraction_of_memcpy", "oversubscribed"]


def counters_required(name):
    """The counters a measurement of the benchmark `name` (a BenchmarkName) must carry."""
    if name.family == "ipc/ping_pong":
        return LATENCY_COUNTERS + PING_PONG_COUNTERS
    if name.family == "ipc/latency":
        return LATENCY_COUNTERS + LOAD_COUNTERS
    if name.family == "ipc/throughput":
        return THROUGHPUT_COUNTERS
    if name.family.startswith("array/") and name.subject == "shm_array_vs_raw_pointer":
        return ARRAY_COUNTERS
    return []


def problems(result, histogram_dir=None):
    """Every way `result` (a Google Benchmark JSON document) breaks the
    contract, a line each; [] when it keeps it. With `histogram_dir`, every
    latency benchmark must also have written a histogram file there."""
    found = []
    context = result.get("context", {})
    found += [f"context lacks {key}" for key in REQUIRED_CONTEXT if key not in context]
    found += results.transport_mismatches(context)
    rows = result.get("benchmarks", [])
    if not rows:
        found.append("no benchmarks")
    for row in rows:
        found += [f"{row.get('name')} lacks {key}" for key in REQUIRED_ROW if key not in row]
    for row in results.errors(rows):
        # A benchmark that cannot apply says so (a peer that cannot sleep,
        # a kernel limit); any other error is a failure.
        if not row.get("error_message", "").startswith("not applicable:"):
            found.append(f"{row.get('name')} failed: {row.get('error_message')}")
    histograms = os.listdir(histogram_dir) if histogram_dir is not None else None
    # An explicit run_type: a row without one lacks it (above), it is not taken for a measurement.
    for row in results.iterations(r for r in rows if "run_type" in r):
        name = row.get("name", "")
        parsed = results.parse_name(name)
        found += [f"{name} lacks {key}" for key in counters_required(parsed) if key not in row]
        if histograms is not None and parsed.family == "ipc/latency":
            prefix = results.histogram_file_prefix(parsed.plain, parsed.round)
            if not any(f.startswith(prefix) for f in histograms):
                found.append(f"{name} has no histogram file")
    return found


def parse_arguments(args):
    """The command line (without the program's name), parsed; exits 2 with
    the usage on a malformed one."""
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="check_results.py", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", metavar="RESULT.json", help="a Google Benchmark JSON file of the suite")
    parser.add_argument("--histograms", metavar="DIR",
                        help="the folder of its histogram files (shmds_ipc_bench --histograms): each latency "
                             "benchmark must have one there")
    return parser.parse_args(args)


def main(argv):
    args = parse_arguments(argv[1:])
    found = problems(results.read_result_file(args.result), args.histograms)
    for p in found:
        print(p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
