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

Usage: merge_runs.py OUT PART.json...   (-h, --help: this text)
"""
import json
import sys


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


def main(argv):
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) < 3:
        print("usage: merge_runs.py OUT PART.json... (see --help)", file=sys.stderr)
        return 2
    parts = []
    for path in argv[2:]:
        try:
            with open(path) as f:
                text = f.read()
            # Google Benchmark writes nothing when no benchmark of that
            # process matched the filter: a part without rows.
            parts.append(json.loads(text) if text.strip() else {"context": {}, "benchmarks": []})
        except (OSError, json.JSONDecodeError) as e:
            print(f"merge_runs.py: {path}: {e}", file=sys.stderr)
            return 2
    with open(argv[1], "w") as f:
        json.dump(merge(parts), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
