#!/usr/bin/env python3
"""Merges the JSON files of one benchmark run split over processes.

scripts/run-benchmarks runs each round of the interleaved groups in a
process of its own (shmds_ipc_bench --only-round=K, one seed for all), because
a process's address-space layout, drawn afresh by ASLR at every exec, can
decide a figure for the whole life of the process: the MPMC queue's 8-byte
throughput here is about 100 M/s in roughly one process in six and 20-45 M/s
in the others, for every run in that process. Rounds in one process would all
share one draw; rounds in separate processes sample it like any other
disturbance, so the pair ratios' intervals include it. The microbenchmarks
are merged the same way: the main run (shmds_micro_bench --no-lookup-pair)
first, then one process per round of the lookup pair (--lookup-round=K).

The merged file is what one process would have written: the first part's
context (with `processes`, the number of parts, and the seeds if they
differ), then every part's rows in part order. An empty part file (what
Google Benchmark leaves when the filter matched nothing in that process)
adds no rows.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402


def merge(parts):
    """Parts (Google Benchmark JSON dicts, in round order) -> one such dict."""
    if not parts:
        raise ValueError("nothing to merge: no parts")
    context = dict(next((p["context"] for p in parts if p.get("context")), {}))
    context.pop("only_round", None)
    context["processes"] = str(len(parts))
    seeds = [p["context"].get("pair_order_seed") for p in parts if p.get("context")]
    if len(set(seeds)) > 1:
        context["pair_order_seed"] = ",".join(str(s) for s in seeds)
    rows = [row for p in parts for row in p.get("benchmarks", [])]
    return {"context": context, "benchmarks": rows}


def parse_arguments(args):
    """The command line (without the program's name), parsed; exits 2 with
    the usage on a malformed one."""
    summary, _, details = __doc__.partition("\n\n")
    # -h and --help spelled out: a program without options of its own still
    # shows scripts/tests/check_help.py (ctest help.merge_runs.py) what it parses.
    parser = argparse.ArgumentParser(prog="merge_runs.py", description=summary, epilog=details, add_help=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-h", "--help", action="help", help="this text")
    parser.add_argument("out", metavar="OUT", help="the merged file to write")
    parser.add_argument("parts", nargs="+", metavar="PART.json", help="the parts, in round order")
    return parser.parse_args(args)


def main(argv):
    args = parse_arguments(argv[1:])
    parts = []
    for path in args.parts:
        try:
            parts.append(results.read_result_file(path))
        except (OSError, ValueError) as e:
            print(f"merge_runs.py: {path}: {e}", file=sys.stderr)
            return 2
    with open(args.out, "w") as f:
        json.dump(merge(parts), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
