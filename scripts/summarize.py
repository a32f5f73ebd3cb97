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


def wide_spread(rows, limit=0.2):
    """Registered names whose repetitions disagree: coefficient of variation of
    their main figure (elements/s, p50, or time) above `limit`."""
    values = {}
    for row in rows:
        if row.get("run_type", "iteration") != "iteration" or row.get("error_occurred"):
            continue
        field = next((f for f in ("items_per_second", "p50_ns", "real_time") if f in row), None)
        if field is not None:
            values.setdefault(registered_name(row), []).append(float(row[field]))
    out = []
    for name, v in values.items():
        if len(v) >= 3 and statistics.mean(v) > 0:
            cv = statistics.stdev(v) / statistics.mean(v)
            if cv > limit:
                out.append((name, cv))
    return sorted(out)


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
    rings = [rate.get(f"ipc/throughput/{r}/{one_to_one}") for r in ("inprocess_spsc_ring", "inprocess_spsc_sequence_ring")]
    ring = max((r for r in rings if r is not None), default=None)
    mpmc = rate.get(f"ipc/throughput/shmds_mpmc/{one_to_one}")
    lines = []
    lines += ratio_line("SPSC throughput (8 B, spin) / best in-process SPSC ring", spsc, ring, ">= 1",
                        lambda v: v >= 1, "elements/s; the better of two textbook rings between two threads on the same CPUs")
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


PEERS = ["boost_lockfree_spsc", "boost_locked_ring", "boost_message_queue", "posix_mq", "pipe", "unix_stream_socket"]
WAITS = ["spin", "spin_then_sleep", "sleep"]


def best_throughput(rate, transport, payload=8):
    """(elements/s, wait) of `transport`'s fastest 1x1 run at `payload`, over the ways of waiting."""
    runs = [(rate[n], w) for w in WAITS
            if (n := f"ipc/throughput/{transport}/payload:{payload}/senders:1/receivers:1/wait:{w}") in rate]
    return max(runs, default=(None, None))


def comparison_headlines(ipc_rows, micro_rows):
    """The comparison's targets: the project against its peers, each measured in this run."""
    rate = medians(ipc_rows, "items_per_second")
    p50 = medians(ipc_rows, "p50_ns")
    lines = []
    spsc, _ = best_throughput(rate, "shmds_spsc")
    for peer, factor in (("boost_message_queue", 40), ("pipe", 100), ("boost_lockfree_spsc", 1)):
        other, wait = best_throughput(rate, peer)
        lines += ratio_line(f"SPSC throughput / {peer} (8 B, each at its best wait)", spsc, other, f">= {factor}",
                            lambda v, f=factor: v >= f, f"elements/s; the peer's best was waiting by {wait}")
    sleep = p50.get("ipc/ping_pong/shmds_spsc/payload:8/wait:sleep")
    lines += ratio_line("SPSC sleep-only round trip / pipe's", sleep, p50.get("ipc/ping_pong/pipe/payload:8/wait:sleep"),
                        "<= 1", lambda v: v <= 1, "p50; both pay one kernel wake-up per hop")
    lines += ratio_line("SPSC spin-then-sleep round trip / spin round trip",
                        p50.get("ipc/ping_pong/shmds_spsc/payload:8/wait:spin_then_sleep"),
                        p50.get("ipc/ping_pong/shmds_spsc/payload:8/wait:spin"), "<= 1.2", lambda v: v <= 1.2,
                        "p50; the peer answers within the spin window")
    find = medians(micro_rows, "real_time")
    lines += ratio_line("lookup among 65,536: shm_table / Boost named objects",
                        find.get("discovery/find/shm_table/65536"),
                        find.get("discovery/find/boost_named_objects/65536"), "< 1", lambda v: v < 1,
                        "time per find (lower is better for shm_table)")
    return lines


def peer_table(ipc_rows):
    """Rows of project / peer ratios for every peer in the results."""
    rate = medians(ipc_rows, "items_per_second")
    p50 = medians(ipc_rows, "p50_ns")
    present = [p for p in PEERS if any(f"/{p}/" in n for n in list(rate) + list(p50))]
    if not present:
        return ""
    def fmt(a, b):
        return f"{a / b:.3g}" if a is not None and b else "n/a"
    spsc, _ = best_throughput(rate, "shmds_spsc")
    mpmc, _ = best_throughput(rate, "shmds_mpmc")
    out = ["| Peer | SPSC / peer, throughput 8 B (> 1: project faster) | MPMC / peer, throughput 8 B | "
           "SPSC / peer, round trip p50, spin (< 1: project faster) | SPSC / peer, round trip p50, sleep |",
           "|---|---|---|---|---|"]
    for peer in present:
        other, _ = best_throughput(rate, peer)
        spin = p50.get(f"ipc/ping_pong/{peer}/payload:8/wait:spin")
        sleep = p50.get(f"ipc/ping_pong/{peer}/payload:8/wait:sleep")
        out.append(f"| {peer} | {fmt(spsc, other)} | {fmt(mpmc, other)} | "
                   f"{fmt(p50.get('ipc/ping_pong/shmds_spsc/payload:8/wait:spin'), spin)} | "
                   f"{fmt(p50.get('ipc/ping_pong/shmds_spsc/payload:8/wait:sleep'), sleep)} |")
    return "\n".join(out) + "\n"


def not_applicable(rows):
    """Benchmarks that said why they could not run (peers that cannot sleep, kernel limits, ...)."""
    return sorted({(registered_name(r), r.get("error_message", "")) for r in rows if r.get("error_occurred")})


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
    lines = array_overhead(micro) + ipc_headlines(ipc) + comparison_headlines(ipc, micro)
    notes = []
    skipped = not_applicable(micro + ipc)
    if skipped:
        notes.append(f"{len(skipped)} benchmarks did not run, each saying why: " +
                     "; ".join(f"{name}: {why}" for name, why in skipped[:4]) + (" ..." if len(skipped) > 4 else ""))
    moved = flagged(ipc, "limit_moved")
    if moved:
        notes.append(f"{len(moved)} runs saw the cache-line limit move by more than a quarter while they ran "
                     f"(the VM's CPUs moved): {', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''}")
    spread = wide_spread(micro + ipc)
    if spread:
        notes.append(f"{len(spread)} benchmarks had a wide spread between repetitions (coefficient of variation "
                     f"over 20%), so their medians are rough: " +
                     ", ".join(f"{n} ({cv:.0%})" for n, cv in spread[:5]) + (" ..." if len(spread) > 5 else ""))
    over = flagged(ipc, "oversubscribed")
    if over:
        notes.append(f"{len(over)} runs had more processes than CPUs (spinning figures there measure the scheduler)")
    table = peer_table(ipc)
    return markdown(lines, notes) + ("\n" + table if table else "")


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
