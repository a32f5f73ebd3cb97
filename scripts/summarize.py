#!/usr/bin/python3
"""Headline figures of a benchmark run, each beside its target.

Usage: summarize.py RESULTS_DIR [--out FILE]

Reads RESULTS_DIR/micro.json and RESULTS_DIR/ipc.json (Google Benchmark JSON
written by scripts/run-benchmarks), prints a Markdown table of the headline
ratios (every ratio is between two figures measured side by side in the same
run, medians over repetitions) and writes it to FILE (default
RESULTS_DIR/summary.md). Exits 0 whether or not targets are met: this is a
report, not a gate.
"""
import json
import os
import statistics
import sys


def load(path):
    """The benchmark rows of a result file, or [] when it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f).get("benchmarks", [])


def registered_name(row):
    """The name a benchmark was registered under, without Google Benchmark's suffixes."""
    name = row.get("run_name", row.get("name", ""))
    for suffix in ("/manual_time", "/iterations:1"):
        name = name.split(suffix)[0]
    return name


def medians(rows, field):
    """{registered name: median of `field` over its repetitions} (iteration rows only)."""
    values = {}
    for row in rows:
        if row.get("run_type", "iteration") != "iteration" or field not in row:
            continue
        values.setdefault(registered_name(row), []).append(float(row[field]))
    return {name: statistics.median(v) for name, v in values.items()}


def flagged(rows, field):
    """Registered names with `field` set in any repetition (limit_moved, oversubscribed)."""
    return sorted({registered_name(r) for r in rows if r.get("run_type", "iteration") == "iteration" and r.get(field)})


def headline(measure, value, target, met, how):
    return {"measure": measure, "value": value, "target": target, "met": met, "how": how}


def array_overhead(micro_rows):
    """The worst shm_array / raw pointer ratio over every access pattern and size."""
    ratios = medians(micro_rows, "shm_array_over_raw_pointer")
    if not ratios:
        return []
    worst = max(ratios, key=ratios.get)
    return [headline("shm_array / raw pointer, worst pattern and size", ratios[worst], "<= 1.05",
                     ratios[worst] <= 1.05, f"{worst} (of {len(ratios)} interleaved comparisons)")]


def ratio_line(measure, numerator, denominator, target, met_if, how):
    if numerator is None or denominator is None or denominator == 0:
        return []
    value = numerator / denominator
    return [headline(measure, value, target, met_if(value), how)]


def ipc_headlines(ipc_rows):
    rate = medians(ipc_rows, "items_per_second")
    p50 = medians(ipc_rows, "p50_ns")
    limit = medians(ipc_rows, "limit_rtt_before_ns")
    factor = medians(ipc_rows, "false_sharing_factor")
    one_to_one = "payload:8/senders:1/receivers:1/wait:spin"
    spsc = rate.get(f"ipc/throughput/shmds_spsc/{one_to_one}")
    ring = rate.get(f"ipc/throughput/inprocess_spsc_ring/{one_to_one}")
    mpmc = rate.get(f"ipc/throughput/shmds_mpmc/{one_to_one}")
    lines = []
    lines += ratio_line("SPSC throughput (8 B, spin) / in-process SPSC ring", spsc, ring, ">= 1",
                        lambda v: v >= 1, "elements/s, the ring between two threads on the same CPUs")
    lines += ratio_line("MPMC 1x1 throughput / SPSC (8 B, spin)", mpmc, spsc, ">= 0.5", lambda v: v >= 0.5,
                        "elements/s")
    two_lines = medians(ipc_rows, "limit_two_line_rtt_ns")
    for structure in ("shmds_spsc", "shmds_mpmc"):
        name = f"ipc/ping_pong/{structure}/payload:8/wait:spin"
        lines += ratio_line(f"{structure} ping-pong p50 / cache-line round trip", p50.get(name), limit.get(name),
                            "<= 1.3", lambda v: v <= 1.3, "round trip against the bare line measured just before")
        lines += ratio_line(f"{structure} ping-pong p50 / two-line round trip", p50.get(name),
                            two_lines.get(name), "<= 1.3", lambda v: v <= 1.3,
                            "against one line each way (the floor for two one-way channels), measured just before")
    packed = factor.get(next((n for n in factor if "layout:packed" in n), ""), None)
    allocator = factor.get(next((n for n in factor if "layout:allocator" in n), ""), None)
    if packed is not None:
        lines.append(headline("false sharing, packed counters (the detector detects)", packed, "> 1.5",
                              packed > 1.5, "slowdown against counters 128 bytes apart"))
    if allocator is not None:
        lines.append(headline("false sharing, the library's allocator", allocator, "<= 1.1", allocator <= 1.1,
                              "slowdown against counters 128 bytes apart"))
    return lines


def markdown(lines, notes):
    out = ["| Measure | Value | Target | Met | How |", "|---|---|---|---|---|"]
    for h in lines:
        out.append(f"| {h['measure']} | {h['value']:.3g} | {h['target']} | {'yes' if h['met'] else 'NO'} | {h['how']} |")
    if not lines:
        out.append("| (no headline benchmarks in these results) | | | | |")
    out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def summarize(results_dir):
    micro = load(os.path.join(results_dir, "micro.json"))
    ipc = load(os.path.join(results_dir, "ipc.json"))
    lines = array_overhead(micro) + ipc_headlines(ipc)
    notes = []
    moved = flagged(ipc, "limit_moved")
    if moved:
        notes.append(f"{len(moved)} runs saw the cache-line limit move by more than a quarter while they ran "
                     f"(the VM's CPUs moved): {', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''}")
    over = flagged(ipc, "oversubscribed")
    if over:
        notes.append(f"{len(over)} runs had more processes than CPUs (spinning figures there measure the scheduler)")
    return markdown(lines, notes)


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    results_dir = argv[1]
    out = argv[argv.index("--out") + 1] if "--out" in argv else os.path.join(results_dir, "summary.md")
    text = summarize(results_dir)
    with open(out, "w") as f:
        f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
