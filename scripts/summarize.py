#!/usr/bin/python3
"""Headline ratios of a benchmark run, each beside its target, per placement regime.

Reads RESULTS_DIR/micro.json and RESULTS_DIR/ipc.json (Google Benchmark JSON
written by scripts/run-benchmarks). Every multi-process ratio comes from
interleaved pairs: two runs of the same round of one of shmds_ipc_bench's
groups, whose cache-line limits (measured before and after each) agree
within a quarter; pairs that do not are discarded and counted. Runs are
sorted into placement regimes by their limit, and each ratio is reported per
regime as the median of its per-pair ratios with a 95% distribution-free
interval (order statistics; six pairs or more) and the number of pairs (see
pairs.py). Single-process ratios (shm_array against a raw pointer, lookup
against Boost) come from alternating blocks, a pair per repetition; the
lookup's from one process per round (paired/lookup/.../round:K), each round
counting once, as the median of its pairs. A run's instructions.json
(scripts/count-instructions), when it has one, adds the instruction counts
against their targets. Exits 0 whether or not targets are met: this is a
report, not a gate; 2 when a results file cannot be read.

This module owns the headlines (which ratios, their targets and verdicts),
the summary's tables and notes (summary.md, summary.json) and the comparison
of two runs' headlines; what a run and its names are is results.py's, how
ratios are paired and placed in regimes is pairs.py's.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairs  # noqa: E402
import results  # noqa: E402
from results import (INPROCESS_RINGS, PEERS, PROJECT, RINGS, SHARED_MPMC_RING, SHARED_RING, WAITS,  # noqa: E402
                     ping_pong_name, throughput_name)


def registered_name(row):
    """The plain name of a row's benchmark: Google Benchmark's suffixes
    dropped, and a round of an interleaved group named as the benchmark it
    is a run of (its rounds then count as repetitions)."""
    return results.row_name(row).plain


def medians(rows, field):
    """{registered name: median of `field` over its repetitions} (iteration rows only)."""
    values = {}
    for row in results.iterations(rows):
        if field in row:
            values.setdefault(registered_name(row), []).append(float(row[field]))
    return {name: statistics.median(v) for name, v in values.items()}


def flagged(rows, field):
    """Registered names with `field` set in any repetition (limit_moved, oversubscribed)."""
    return sorted({registered_name(r) for r in results.iterations(rows) if r.get(field)})


def wide_spread(rows, limit=0.2):
    """Registered names whose repetitions disagree: coefficient of variation of
    their main figure (elements/s, p50, or time) above `limit`. The rounds of
    interleaved groups are left out: their spread is mostly placement, and
    their ratios carry intervals per regime instead."""
    values = {}
    for row in results.iterations(rows):
        if results.row_name(row).group is not None:
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


# ---- headlines -------------------------------------------------------------------------------

THROUGHPUT, ROUND_TRIPS = "throughput_8B", "round_trips"  # the interleaved groups of shmds_ipc_bench
# Round trips are compared by the mean of their middle half, not by p50: the
# clock may tick coarsely (every 10 ns on AMD EPYC VMs, against round trips
# of about 100 ns), and a median then jumps between ticks from run to run
# while the mid-mean averages over them (see latency_histogram::mid_mean).
ROUND_TRIP_FIGURE = "mid_mean_ns"


def at_least(x):
    return lambda v: v >= x


def at_most(x):
    return lambda v: v <= x


def headline(measure, target, met_if, how, result):
    """One headline ratio: `result` is a pairs.pair_ratios/run_ratios result."""
    return {"measure": measure, "target": target, "met_if": met_if, "how": how, "result": result}


def best_wait(ipc_rows, transport, group=THROUGHPUT):
    """`transport`'s run with the highest median throughput over its ways of waiting."""
    return pairs.best_of(ipc_rows, group, [throughput_name(transport, w) for w in WAITS], "items_per_second")


def short(name):
    """'ipc/throughput/pipe/payload:8/senders:1/receivers:1/wait:sleep' -> 'pipe, sleep'."""
    parsed = results.parse_name(name)
    return f"{parsed.transport}, {parsed.wait}"


def measured(ipc_rows, name):
    """Whether the run has any iteration of the benchmark `name` (a yardstick
    is optional: a run may leave it out)."""
    return any(results.row_name(r).plain == name for r in results.iterations(ipc_rows))


# Issue 19's sleep-only throughput targets: (project queue, peer, at least).
SLEEP_ONLY_TARGETS = (("shmds_spsc", "boost_message_queue", 3), ("shmds_spsc", "pipe", 5),
                      ("shmds_mpmc", "boost_message_queue", 2))


def paired_headlines(ipc_rows, regimes):
    """Every headline ratio of the multi-process runs, each from interleaved
    pairs (or from each run against the limit measured beside it)."""
    def tp(a, b):
        return pairs.pair_ratios(ipc_rows, THROUGHPUT, a, b, "items_per_second", regimes)

    def rt(a, b):
        return pairs.pair_ratios(ipc_rows, ROUND_TRIPS, a, b, ROUND_TRIP_FIGURE, regimes)

    out = []
    spsc = throughput_name("shmds_spsc")
    shared = throughput_name(SHARED_RING)
    if measured(ipc_rows, shared):
        out.append(headline("SPSC throughput (8 B, spin) / cross-process textbook ring", ">= 0.9", at_least(0.9),
                            "elements/s, paired; the ring runs between two processes through the same harness, "
                            "copies and spinning: what is left is what the library adds", tp(spsc, shared)))
    ring = pairs.best_of(ipc_rows, THROUGHPUT, [throughput_name(r) for r in INPROCESS_RINGS], "items_per_second")
    if ring:
        out.append(headline("SPSC throughput (8 B, spin) / best in-process SPSC ring", ">= 0.7", at_least(0.7),
                            f"elements/s, paired with the better ring ({short(ring)}: threads, no copies)",
                            tp(spsc, ring)))
    mpmc = throughput_name("shmds_mpmc")
    out.append(headline("MPMC 1x1 throughput / SPSC (8 B, spin)", ">= 0.5", at_least(0.5), "elements/s",
                        tp(mpmc, spsc)))
    shared_mpmc = throughput_name(SHARED_MPMC_RING)
    if measured(ipc_rows, shared_mpmc):
        out.append(headline("MPMC 1x1 throughput (8 B, spin) / cross-process textbook MPMC ring", ">= 0.9",
                            at_least(0.9), "elements/s, paired; Vyukov's bounded queue between two processes "
                            "through the same harness: what is left is what the library adds", tp(mpmc, shared_mpmc)))
        out.append(headline("textbook MPMC ring / textbook SPSC ring (8 B, spin, both across processes)", "", None,
                            "elements/s, paired: what a locked read-modify-write on each side of every "
                            "element costs any MPMC queue here", tp(shared_mpmc, shared)))
    out.append(headline("SPSC throughput, spin-then-sleep / spin (8 B)", ">= 0.9", at_least(0.9),
                        "elements/s: the default way of waiting against spinning",
                        tp(throughput_name("shmds_spsc", "spin_then_sleep"), spsc)))
    for structure, peer, factor in SLEEP_ONLY_TARGETS:
        out.append(headline(f"{structure} sleep-only throughput / {peer}'s (8 B)", f">= {factor}",
                            at_least(factor), "elements/s, paired; both wait only by sleeping (what a service "
                            "that must not spend a core gets)",
                            tp(throughput_name(structure, "sleep"), throughput_name(peer, "sleep"))))
    for structure in ("shmds_spsc", "shmds_mpmc"):
        name = ping_pong_name(structure)
        out.append(headline(f"{structure} ping-pong round trip / cache-line round trip", "<= 1.3", at_most(1.3),
                            "mid-mean; each run against the bare line measured just before it",
                            pairs.run_ratios(ipc_rows, name, ROUND_TRIP_FIGURE, "limit_rtt_before_ns", regimes)))
        out.append(headline(f"{structure} ping-pong round trip / two-line round trip", "<= 1.3", at_most(1.3),
                            "mid-mean; each run against one line each way (the floor for two one-way "
                            "channels), measured just before it",
                            pairs.run_ratios(ipc_rows, name, ROUND_TRIP_FIGURE, "limit_two_line_rtt_ns", regimes)))
    for layout, target, met_if, what in (("packed", "> 1.5", lambda v: v > 1.5, "the detector detects"),
                                         ("allocator", "<= 1.1", at_most(1.1), "the library's allocator")):
        name = next((registered_name(r) for r in ipc_rows
                     if f"false_sharing/counters/layout:{layout}/" in r.get("name", "")), None)
        if name:
            out.append(headline(f"false sharing, {layout} counters ({what})", target, met_if,
                                "each round: slowdown against counters 128 bytes apart, timed right after it",
                                pairs.run_ratios(ipc_rows, name, "false_sharing_factor", None, regimes)))
    spsc_best = best_wait(ipc_rows, "shmds_spsc")
    for peer, factor in (("boost_message_queue", 40), ("pipe", 100), ("boost_lockfree_spsc", 1)):
        other = best_wait(ipc_rows, peer)
        if spsc_best and other:
            out.append(headline(f"SPSC throughput / {peer} (8 B, each at its best wait)", f">= {factor}",
                                at_least(factor), f"elements/s; {short(spsc_best)} paired with {short(other)}",
                                tp(spsc_best, other)))
    out.append(headline("SPSC sleep-only round trip / pipe's", "<= 1", at_most(1),
                        "mid-mean; both pay one kernel wake-up per hop",
                        rt(ping_pong_name("shmds_spsc", "sleep"), ping_pong_name("pipe", "sleep"))))
    out.append(headline("SPSC spin-then-sleep round trip / spin round trip", "<= 1.2", at_most(1.2),
                        "mid-mean; the peer answers within the spin window",
                        rt(ping_pong_name("shmds_spsc", "spin_then_sleep"), ping_pong_name("shmds_spsc"))))
    return [h for h in out if h["result"]["rounds"]]


def single_process_headlines(micro_rows):
    """Headlines of one process (no second CPU, so no placement regime), each
    a ratio of two things timed in alternating blocks by one benchmark, one
    pair per repetition."""
    out = []
    ratios = {}
    for row in results.iterations(micro_rows):
        if "shm_array_over_raw_pointer" in row:
            ratios.setdefault(registered_name(row), []).append(float(row["shm_array_over_raw_pointer"]))
    if ratios:
        worst = max(ratios, key=lambda n: statistics.median(ratios[n]))
        out.append(headline("shm_array / raw pointer, worst pattern and size", "<= 1.05", at_most(1.05),
                            f"{worst} (the worst median of {len(ratios)} interleaved comparisons)",
                            values_result(ratios[worst])))
    for count, (ratios, per_process) in sorted(lookup_ratios(micro_rows).items()):
        how = ("time per find, alternating blocks, each from cold caches; one value per process: the median "
               "of its pairs" if per_process else "time per find, alternating blocks")
        out.append(headline(f"lookup among {count:,}: shm_table / Boost named objects", "<= 1", at_most(1.0),
                            how + " (shm_table's locate, the like of Boost's find; lower is better for shm_table)",
                            values_result(ratios)))
    for count, (ratios, per_process) in sorted(lookup_ratios(micro_rows, FIND_OVER_BOOST).items()):
        out.append(headline(f"lookup among {count:,}: shm_table find (names too) / Boost named objects", None, None,
                            "as above, for find, which also builds the structure's names as strings",
                            values_result(ratios)))
    return out


LOCATE_OVER_BOOST = "shm_table_over_boost"
FIND_OVER_BOOST = "shm_table_find_over_boost"


def lookup_ratios(micro_rows, counter=LOCATE_OVER_BOOST):
    """{count of names: (ratios, whether any came from rounds)}: the lookup
    pair's ratios (`counter`: locate's or find's), one per process. Rows of a
    round (paired/lookup/.../round:K, a process each) give the median of that
    round's pairs, because where a process's pages land moves all its pairs
    together; rows without a round (the pair run alone, or results from
    before the rounds) count one each. Rows from before locate existed
    (no find counter) timed find under the locate counter's name, so they
    count as find's."""
    by_count = {}
    for row in results.iterations(micro_rows):
        legacy = FIND_OVER_BOOST not in row
        key = LOCATE_OVER_BOOST if legacy and counter == FIND_OVER_BOOST else counter
        if key not in row or (legacy and counter == LOCATE_OVER_BOOST):
            continue
        name = results.row_name(row)
        by_round, single = by_count.setdefault(name.argument, ({}, []))
        if name.group == "lookup":
            by_round.setdefault(name.round, []).append(float(row[key]))
        else:
            single.append(float(row[key]))
    return {count: ([statistics.median(v) for _, v in sorted(by_round.items())] + single, bool(by_round))
            for count, (by_round, single) in by_count.items()}


def values_result(values):
    """A pairs-shaped result for ratios with no regime (single process)."""
    return {"pairs": [{"round": i, "ratio": v, "regime": None} for i, v in enumerate(values)],
            "rounds": len(values), "discarded": {}}


def verdict(met_if, summary):
    """'met' when the whole interval meets the target, 'met (median only)'
    when only the median does, 'NO' otherwise; '' without a target or data,
    and 'too few pairs' with fewer than six (no interval: no verdict)."""
    median, low, high, n = summary
    if met_if is None or median is None:
        return ""
    if low is None:
        return "too few pairs"
    if not met_if(median):
        return "NO"
    if met_if(low) and met_if(high):
        return "met"
    return "met (median only)"


def cell(summary, met_if=None, unit="pairs"):
    median, low, high, n = summary
    if median is None:
        return f"no {unit}"
    ci = "" if low is None else f" [{low:.3g}, {high:.3g}]"
    v = verdict(met_if, summary) if met_if else ("too few pairs" if low is None else "")
    return f"{median:.3g}{ci}, {n} {unit}" + (f", {v}" if v else "")


def summary_of(h, regime_count):
    """[(median, low, high, n)] of a headline: per regime, or one for single-process ones."""
    if regime_count == 0 or all(p["regime"] is None for p in h["result"]["pairs"]):
        values = [p["ratio"] for p in h["result"]["pairs"]]
        return [pairs.interval(values) + (len(values),)]
    return pairs.by_regime(h["result"], regime_count)


# ---- tables ----------------------------------------------------------------------------------

def regime_header(regimes):
    return [f"Regime {i + 1}: {pairs.regime_label(r)}" for i, r in enumerate(regimes)] or ["All runs"]


def headline_table(lines, regimes):
    cols = regime_header(regimes)
    out = ["| Measure | " + " | ".join(cols) + " | Target | How |", "|---|" + "---|" * (len(cols) + 2)]
    for h in lines:
        cells = [cell(s, h["met_if"]) for s in summary_of(h, len(regimes))]
        out.append(f"| {h['measure']} | " + " | ".join(cells) + f" | {h['target'] or '-'} | {h['how']} |")
    if not lines:
        out.append("| (no headline benchmarks in these results) |" + " |" * (len(cols) + 2))
    return out


def single_process_table(lines):
    out = ["| Measure | Median [95% CI], pairs | Target | How |", "|---|---|---|---|"]
    for h in lines:
        out.append(f"| {h['measure']} | {cell(summary_of(h, 0)[0], h['met_if'])} | {h['target'] or '-'} | {h['how']} |")
    return out


def peer_table(ipc_rows, regimes):
    """Project / peer ratios for every peer in the results, from interleaved pairs, per regime."""
    paired = {name.transport for name in map(results.row_name, results.iterations(ipc_rows)) if name.group}
    present = [p for p in PEERS if p in paired]
    if not present:
        return []
    spsc, mpmc = best_wait(ipc_rows, "shmds_spsc"), best_wait(ipc_rows, "shmds_mpmc")

    def per_regime(result):
        """The four cells' summaries, one per regime, or None when the pair never ran."""
        if result is None or not result["rounds"]:
            return None
        return pairs.by_regime(result, max(1, len(regimes)))

    rows = []  # (peer, [per-regime summaries of each column]), computed once for all regimes
    for peer in present:
        other = best_wait(ipc_rows, peer)
        rows.append((peer, [per_regime(r) for r in (
            pairs.pair_ratios(ipc_rows, THROUGHPUT, spsc, other, "items_per_second", regimes) if other else None,
            pairs.pair_ratios(ipc_rows, THROUGHPUT, mpmc, other, "items_per_second", regimes) if other else None,
            pairs.pair_ratios(ipc_rows, ROUND_TRIPS, ping_pong_name("shmds_spsc"), ping_pong_name(peer),
                              ROUND_TRIP_FIGURE, regimes),
            pairs.pair_ratios(ipc_rows, ROUND_TRIPS, ping_pong_name("shmds_spsc", "sleep"),
                              ping_pong_name(peer, "sleep"), ROUND_TRIP_FIGURE, regimes))]))
    out = []
    for i, label in enumerate(regime_header(regimes)):
        out += ["", f"Project / peer, {label} (median [95% CI], pairs):", "",
                "| Peer | SPSC / peer, throughput 8 B (> 1: project faster) | MPMC / peer, throughput 8 B | "
                "SPSC / peer, round trip, spin (< 1: project faster) | SPSC / peer, round trip, sleep |",
                "|---|---|---|---|---|"]
        for peer, columns in rows:
            cells = ["n/a" if c is None else cell(c[i]) for c in columns]
            out.append(f"| {peer} | " + " | ".join(cells) + " |")
    return out


def copies_table(context):
    """The copies each transport makes of a message, as the run says (none for
    a run that does not say)."""
    copies = results.copies_in_context(context)
    if not copies:
        return []
    roles = results.transports_in_context(context) or {}
    out = ["", "Copies of a message's bytes on their way from the sender's buffer to the receiver's "
               "(every copy the transport makes: into and out of the kernel, a slot, a library's message; "
               "the shmds queues write into and read from lent slots):", "",
           "| Transport | Role | Copies |", "|---|---|---|"]
    out += [f"| {name} | {roles.get(name, results.TRANSPORTS.get(name, '?'))} | {n} |" for name, n in copies.items()]
    return out


def figures_by_regime(ipc_rows, regimes):
    """Medians of the headline groups' own figures, per regime: what each
    transport measured while the CPUs sat in that placement."""
    if not regimes:
        return []
    per = {}  # (plain name, field, regime) -> values
    for row in results.iterations(ipc_rows):
        name = registered_name(row)
        if pairs.run_limit(row) is None or pairs.limit_moved(row):
            continue
        regime = pairs.regime_of(pairs.run_limit(row), regimes)
        for field in ("items_per_second", "p50_ns", "bytes_per_second"):
            if field in row:
                per.setdefault((name, field, regime), []).append(float(row[field]))

    def fig(name, field, regime, scale, unit):
        v = per.get((name, field, regime))
        return f"{statistics.median(v) / scale:.3g} {unit} ({len(v)})" if v else "-"

    out = ["", "Figures per regime (medians; runs in brackets; throughput at the way of waiting that was best "
           "over the whole run):", "",
           "| Transport | " + " | ".join(f"{col}: throughput 8 B | 4 KiB, spin | round trip p50, spin | round trip p50, sleep"
                                        for col in (f"R{i + 1}" for i in range(len(regimes)))) + " |",
           "|---|" + "---|" * (4 * len(regimes))]
    for transport in RINGS + PROJECT + PEERS:
        best = best_wait(ipc_rows, transport) if transport not in RINGS else throughput_name(transport)
        if best is None and not any(k[0] == ping_pong_name(transport) for k in per):
            continue
        cells = []
        for i in range(len(regimes)):
            cells += [fig(best, "items_per_second", i, 1e6, "M/s") if best else "-",
                      fig(throughput_name(transport, payload=4096),
                          "bytes_per_second", i, 1e9, "GB/s"),
                      fig(ping_pong_name(transport), "p50_ns", i, 1e3, "us"),
                      fig(ping_pong_name(transport, "sleep"), "p50_ns", i, 1e3, "us")]
        out.append(f"| {transport} | " + " | ".join(cells) + " |")
    return out


def not_applicable(rows):
    """Benchmarks that said why they could not run (peers that cannot sleep, kernel limits, ...)."""
    return sorted({(registered_name(r), r.get("error_message", "")) for r in results.errors(rows)})


def discard_note(lines):
    considered = sum(h["result"]["rounds"] for h in lines)
    by_reason = {}
    for h in lines:
        for reason, n in h["result"]["discarded"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    dropped = sum(by_reason.values())
    if not considered:
        return None
    reasons = ", ".join(f"{n} {reason}" for reason, n in by_reason.items() if n) or "none"
    return (f"{dropped} of {considered} pairs behind the headline ratios were discarded ({reasons}); "
            "a ratio is the median of the remaining per-pair ratios, with a 95% distribution-free interval "
            "(two of the ratios, picked by rank; six pairs or more)")


def notes(micro, ipc, lines):
    out = []
    if (note := discard_note(lines)):
        out.append(note)
    skipped = not_applicable(micro + ipc)
    if skipped:
        out.append(f"{len(skipped)} benchmarks did not run, each saying why: " +
                   "; ".join(f"{name}: {why}" for name, why in skipped[:4]) + (" ..." if len(skipped) > 4 else ""))
    moved = flagged(ipc, "limit_moved")
    if moved:
        out.append(f"{len(moved)} runs saw the cache-line limit move by more than a quarter while they ran "
                   f"(the VM's CPUs moved): {', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''}")
    spread = wide_spread(micro + ipc)
    if spread:
        out.append(f"{len(spread)} benchmarks had a wide spread between repetitions (coefficient of variation "
                   f"over 20%), so their medians are rough: " +
                   ", ".join(f"{n} ({cv:.0%})" for n, cv in spread[:5]) + (" ..." if len(spread) > 5 else ""))
    over = flagged(ipc, "oversubscribed")
    if over:
        out.append(f"{len(over)} runs had more processes than CPUs (spinning figures there measure the scheduler)")
    return out


# ---- against the peers users pick instead (ZeroMQ, NNG) ---------------------------------------

AHEAD_OF = ("zeromq", "nng")  # issue 19: every project queue ahead of these, in every way of waiting
AHEAD_FIGURES = ("throughput 8 B", "throughput 4 KiB", "round trip p50", "round trip p99")


def pooled(result):
    """(median, low, high, pairs) over every pair of a pair_ratios result
    (each pair lies within one regime), or None when no pair ran."""
    values = [p["ratio"] for p in result["pairs"]]
    return pairs.interval(values) + (len(values),) if values else None


def ahead_of_peers(ipc_rows, regimes):
    """[(structure, peer, wait, {figure: (median, low, high, n), a ratio or None})]
    for each project queue against ZeroMQ and NNG at the same way of waiting:
    throughput of 8 B (paired, > 1: the project faster), of 4 KiB (the
    ratio of the two medians: those runs are not interleaved) and the 8 B
    round trip's p50 and p99 (paired, < 1: the project faster). Only peers
    the run measured."""
    present = {results.row_name(r).transport for r in results.iterations(ipc_rows)}
    by_payload = medians(ipc_rows, "bytes_per_second")
    out = []
    for peer in (p for p in AHEAD_OF if p in present):
        for structure in ("shmds_spsc", "shmds_mpmc"):
            for wait in WAITS:
                figures = {"throughput 8 B": pooled(pairs.pair_ratios(
                    ipc_rows, THROUGHPUT, throughput_name(structure, wait), throughput_name(peer, wait),
                    "items_per_second", regimes))}
                own, other = (by_payload.get(throughput_name(t, wait, 4096)) for t in (structure, peer))
                figures["throughput 4 KiB"] = own / other if own and other else None
                for field, figure in (("p50_ns", "round trip p50"), ("p99_ns", "round trip p99")):
                    figures[figure] = pooled(pairs.pair_ratios(
                        ipc_rows, ROUND_TRIPS, ping_pong_name(structure, wait), ping_pong_name(peer, wait), field,
                        regimes))
                out.append((structure, peer, wait, figures))
    return out


def ahead_verdict(figures):
    """'ahead' when every figure measured has the project faster (by its
    median), 'NO: ...' naming the ones that do not, '' when none was measured."""
    def median(v):
        return v if isinstance(v, float) else v[0]
    behind = [f for f, v in figures.items()
              if v is not None and not (median(v) > 1 if f.startswith("throughput") else median(v) < 1)]
    if all(v is None for v in figures.values()):
        return ""
    return "NO: " + ", ".join(behind) if behind else "ahead"


def ahead_table(ipc_rows, regimes):
    rows = [r for r in ahead_of_peers(ipc_rows, regimes) if any(v is not None for v in r[3].values())]
    if not rows:
        return []
    out = ["", "Against ZeroMQ and NNG, each at the same way of waiting (target: every project queue ahead on "
           "throughput, > 1, and on round-trip p50 and p99, < 1; medians [95% CI], pairs, over both regimes; "
           "4 KiB: the ratio of the two medians, not interleaved; round trips are measured at 8 B only):", "",
           "| Queue / peer | Wait | " + " | ".join(AHEAD_FIGURES) + " | Verdict |", "|---|---|" + "---|" * 5]
    for structure, peer, wait, figures in rows:
        cells = ["-" if v is None else f"{v:.3g}" if isinstance(v, float) else cell(v) for v in figures.values()]
        out.append(f"| {structure} / {peer} | {wait} | " + " | ".join(cells) + f" | {ahead_verdict(figures)} |")
    return out


# ---- instructions per operation (callgrind) ----------------------------------------------------

# Issue 19's instruction targets: (measurement of bench/instructions.cpp, what,
# at most, whether one pass of the measuring loop is in each operation's count).
INSTRUCTION_TARGETS = (("spsc_push_pop", "SPSC push+pop", 40, True),
                       ("spsc_batch_of_64", "SPSC, per element in batches of 64", 12, False),
                       ("mpmc_push_pop", "MPMC push+pop", 70, True),
                       ("queue_push_pop", "plain shm_queue push+pop", 30, True),
                       ("concurrent_stack_push_pop", "concurrent stack push+pop", 200, True))

# The loop around each per-operation measurement, counted with nothing in it.
MEASURING_LOOP = "measuring_loop"


def instruction_counts(folder):
    """{measurement: instructions per operation} of the run's instructions.json
    (scripts/count-instructions), {} when the run has none."""
    path = os.path.join(folder, "instructions.json")
    if not os.path.exists(path):
        return {}
    rows = results.load_results(path)["benchmarks"]  # ResultsError, naming the file, if unreadable
    return {r["name"].split("/", 1)[-1]: float(r["instructions_per_op"]) for r in rows if "instructions_per_op" in r}


def operation_count(counts, name, in_loop):
    """The instructions of the operation itself: the measurement's count, less
    the measuring loop's own where the run counted that loop and a pass of it
    is in each operation's count (a batch's per-element count shares one
    pass among 64 elements)."""
    return counts[name] - (counts.get(MEASURING_LOOP, 0.0) if in_loop else 0.0)


def instruction_table(counts):
    targets = [(what, counts[name], operation_count(counts, name, in_loop), limit)
               for name, what, limit, in_loop in INSTRUCTION_TARGETS if name in counts]
    if not targets:
        return []
    loop = counts.get(MEASURING_LOOP)
    out = ["", "Instructions per operation (callgrind, single process; deterministic, so no interval)"
           + (f"; the operation's own are the count less the measuring loop's {loop:.3g} "
              "(the per-element batch count shares one pass among 64):" if loop is not None else ":"), "",
           "| Measure | Counted | The operation's own | Target | Verdict |", "|---|---|---|---|---|"]
    out += [f"| {what} | {value:.3g} | {own:.3g} | <= {limit} | {'met' if own <= limit else 'NO'} |"
            for what, value, own, limit in targets]
    return out


# ---- latency under load, with CPU per message -------------------------------------------------

LATENCY_CPU_FIELDS = ("p50_ns", "p99_ns", "sender_cpu_ns_per_message", "receiver_cpu_ns_per_message",
                      "cpu_ns_per_message")


def latency_under_load(ipc_rows):
    """{(transport, wait, load %): {field: median over repetitions}} for the
    latency-under-load runs that measured CPU per message (ipc/latency/...)."""
    columns = {field: medians(ipc_rows, field) for field in LATENCY_CPU_FIELDS}
    out = {}
    for name in columns["cpu_ns_per_message"]:
        parsed = results.parse_name(name)
        if parsed.family != "ipc/latency" or parsed.parameter("load") is None:
            continue
        key = (parsed.transport, parsed.wait, int(parsed.parameter("load").rstrip("%")))
        out[key] = {field: columns[field].get(name) for field in LATENCY_CPU_FIELDS}
    return out


def cpu_targets(table, peer="boost_message_queue", load=10, wait="spin_then_sleep"):
    """Issue 19's CPU targets, from the medians of latency_under_load: for each
    project queue at `load` % with `wait`, (measure, value, target, met) for
    its CPU per message over `peer`'s (within 2x) and its p50 over `peer`'s
    (below 1). Not paired: each side at its own share of its own peak."""
    other = table.get((peer, wait, load))
    out = []
    for structure in PROJECT:
        own = table.get((structure, wait, load))
        if not own or not other:
            continue
        cpu = own["cpu_ns_per_message"] / other["cpu_ns_per_message"] if other["cpu_ns_per_message"] else None
        p50 = own["p50_ns"] / other["p50_ns"] if other["p50_ns"] else None
        where = f"{structure} / {peer}, {load}% load, {wait}"
        out.append((f"CPU per message, {where}", cpu, "<= 2", cpu is not None and cpu <= 2))
        out.append((f"p50 latency, {where}", p50, "< 1", p50 is not None and p50 < 1))
    return out


def latency_cpu_table(ipc_rows):
    """Markdown: latency under load with the CPU each side spent per message,
    one row per transport, way of waiting and load; then the CPU targets."""
    table = latency_under_load(ipc_rows)
    if not table:
        return []
    order = {t: i for i, t in enumerate(PROJECT + RINGS + PEERS)}
    out = ["", "Latency under load and CPU per message (medians over repetitions; the load is a share of each "
           "transport's own peak; the receiver's CPU includes its waiting, the sender's leaves out the time it "
           "spun pacing the load):", "",
           "| Transport | Wait | Load | p50 | p99 | CPU/msg, sender | CPU/msg, receiver | CPU/msg, both |",
           "|---|---|---|---|---|---|---|---|"]
    for (transport, wait, load), v in sorted(table.items(), key=lambda kv: (order.get(kv[0][0], 99),
                                                                           WAITS.index(kv[0][1]), kv[0][2])):
        out.append(f"| {transport} | {wait} | {load}% | {ns(v['p50_ns'])} | {ns(v['p99_ns'])} | "
                   f"{ns(v['sender_cpu_ns_per_message'])} | {ns(v['receiver_cpu_ns_per_message'])} | "
                   f"{ns(v['cpu_ns_per_message'])} |")
    targets = cpu_targets(table)
    if targets:
        out += ["", "| Measure | Median ratio | Target | Verdict |", "|---|---|---|---|"]
        out += [f"| {m} | {'-' if v is None else f'{v:.3g}'} | {t} | {'met' if met else 'NO'} |"
                for m, v, t, met in targets]
    return out


def ns(value):
    """A duration in ns for a table: '-' when missing, else ns, us or ms."""
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.3g} ms"
    if value >= 1e3:
        return f"{value / 1e3:.3g} us"
    return f"{value:.3g} ns"


def analyse(run):
    """Everything the summary says about a run (results.load_run), as data:
    regimes, headlines (multi-process, per regime; single-process), notes."""
    micro, ipc = run["micro"], run["ipc"]
    regimes = pairs.regimes_of_run(ipc)
    lines = paired_headlines(ipc, regimes)
    single = single_process_headlines(micro)
    return {"micro": micro, "ipc": ipc, "regimes": regimes, "headlines": lines, "single_process": single,
            "instructions": instruction_counts(run["dir"]), "notes": notes(micro, ipc, lines + single),
            "copies": copies_table(run.get("context", {}))}


def as_json(analysis):
    """The summary as JSON-ready data (summary.json): per headline and regime
    the median, interval, pair count and verdict, and every pair's ratio."""
    def one(h, regime_count):
        return {"measure": h["measure"], "target": h["target"], "how": h["how"],
                "discarded": h["result"]["discarded"], "rounds": h["result"]["rounds"],
                "per_regime": [{"median": m, "low": lo, "high": hi, "pairs": n, "verdict": verdict(h["met_if"], s)}
                               for s in summary_of(h, regime_count) for (m, lo, hi, n) in [s]],
                "pairs": [{k: p[k] for k in ("round", "ratio", "regime")} for p in h["result"]["pairs"]]}
    regimes = analysis["regimes"]
    return {"regimes": [{"low_ns": lo, "high_ns": hi, "runs": n} for lo, hi, n in regimes],
            "headlines": [one(h, len(regimes)) for h in analysis["headlines"]],
            "single_process": [one(h, 0) for h in analysis["single_process"]],
            "notes": analysis["notes"]}


def markdown(analysis):
    regimes = analysis["regimes"]
    out = []
    if regimes:
        out += [f"Placement regimes (the cache-line round trip measured around each run, grouped where the "
                f"values lie more than a quarter apart): " +
                "; ".join(f"regime {i + 1}: {pairs.regime_label(r)}" for i, r in enumerate(regimes)) +
                ". A ratio is taken only between two runs of the same round of an interleaved group, in the same "
                "regime, whose limits agree within a quarter.", ""]
    out += headline_table(analysis["headlines"], regimes)
    if analysis["single_process"]:
        out += ["", "Single process (no second CPU, so no placement regime):", ""]
        out += single_process_table(analysis["single_process"])
    out += [""] + [f"- {n}" for n in analysis["notes"]]
    out += peer_table(analysis["ipc"], regimes)
    out += latency_cpu_table(analysis["ipc"])
    out += ahead_table(analysis["ipc"], regimes)
    out += analysis.get("copies", [])
    out += instruction_table(analysis["instructions"])
    out += figures_by_regime(analysis["ipc"], regimes)
    return "\n".join(out) + "\n"


def summarize(results_dir):
    return markdown(analyse(results.load_run(results_dir)))


def compare_runs(first_dir, second_dir):
    """Whether two runs agree on every headline ratio: rows of (measure,
    regime, first summary, second summary, agree) for each headline and regime
    both runs saw. Regimes are matched by the limits they span."""
    a, b = (analyse(results.load_run(d)) for d in (first_dir, second_dir))
    out = []
    def matched(ra, rb):
        pairs_of = []
        for i, (lo1, hi1, _) in enumerate(ra):
            for j, (lo2, hi2, _) in enumerate(rb):
                if lo1 <= pairs.LIMITS_APART * hi2 and lo2 <= pairs.LIMITS_APART * hi1:
                    pairs_of.append((i, j))
        return pairs_of
    for kind, regimes_a, regimes_b in (("headlines", a["regimes"], b["regimes"]), ("single_process", [], [])):
        hb = {h["measure"]: h for h in b[kind]}
        for h in a[kind]:
            if h["measure"] not in hb:
                continue
            sa, sb = summary_of(h, len(regimes_a)), summary_of(hb[h["measure"]], len(regimes_b))
            for i, j in (matched(regimes_a, regimes_b) if kind == "headlines" and regimes_a and regimes_b
                         else [(0, 0)]):
                if sa[i][3] and sb[j][3]:
                    out.append((h["measure"], (i, j), sa[i], sb[j], pairs.intervals_agree(sa[i][:3], sb[j][:3])))
    return out


def parse_arguments(args):
    """The command line (without the program's name), parsed; exits 2 with
    the usage on a malformed one."""
    import argparse
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="summarize.py", description=summary,
                                     epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", nargs="?", metavar="RESULTS_DIR",
                        help="a run's folder (micro.json, ipc.json, and instructions.json if it has one)")
    parser.add_argument("--out", metavar="FILE",
                        help="where the table is written (default: RESULTS_DIR/summary.md; the same figures "
                             "as data go to summary.json beside it)")
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="whether two runs agree on every headline ratio (the intervals of each ratio, "
                             "regime by regime, overlap); exits 1 if not")
    parsed = parser.parse_args(args)
    if parsed.compare and (parsed.results_dir or parsed.out):
        parser.error("--compare takes two runs and nothing else")
    if not parsed.compare and not parsed.results_dir:
        parser.error("a RESULTS_DIR, or --compare RUN_A RUN_B, is required")
    return parsed


def main(argv):
    args = parse_arguments(argv[1:])
    if args.compare:
        return main_compare(*args.compare)
    out = args.out or os.path.join(args.results_dir, "summary.md")
    try:
        analysis = analyse(results.load_run(args.results_dir))
    except results.ResultsError as e:
        print(f"summarize.py: {e}", file=sys.stderr)
        return 2
    text = markdown(analysis)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(as_json(analysis), f, indent=1)
    print(text, end="")
    return 0


def main_compare(first, second):
    rows = compare_runs(first, second)
    print("| Measure | Regimes | First run | Second run | Agree |\n|---|---|---|---|---|")
    for measure, (i, j), a, b, agree in rows:
        said = "n/a: too few pairs" if agree is None else "yes" if agree else "NO"
        print(f"| {measure} | {i + 1} / {j + 1} | {cell(a)} | {cell(b)} | {said} |")
    judged = [r for r in rows if r[-1] is not None]
    disagree = [r for r in judged if r[-1] is False]
    print(f"\n{len(judged) - len(disagree)} of {len(judged)} headline ratios with intervals in both runs agree "
          f"({len(rows) - len(judged)} with fewer than six pairs in a run not judged)", file=sys.stderr)
    return 1 if disagree or not judged else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
