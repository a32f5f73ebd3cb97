#!/usr/bin/python3
"""Performance-regression gate: compares a current result file with a baseline.

It has three modes, each its own command line:

  gate.py [wall-clock options] BASELINE CURRENT
      wall-clock (the default): timings and counters of Google Benchmark runs
  gate.py --mode instructions [--tolerance X] [--out FILE] BASELINE CURRENT
      deterministic: instruction counts per operation
  gate.py --collect-instructions INDEX TOOLCHAIN
      no comparison: writes the instruction-count JSON that instructions mode
      reads (scripts/count-instructions calls it) to stdout

BASELINE and CURRENT are each a JSON file or a results folder written by
scripts/run-benchmarks (wall-clock mode reads its micro.json and ipc.json,
instructions mode its instructions.json). The comparing modes exit 1 when
anything regressed, 2 on bad input, 0 otherwise.

Collecting (--collect-instructions): INDEX is a file of lines 'NAME
OPERATIONS CALLGRIND_OUT', one per measurement: the measurement's name, how
many operations it ran, and the callgrind output file of its run (its
'totals:' or 'summary:' line is the instruction count). TOOLCHAIN is recorded
in the JSON's context as the compiler and flags the counts belong to.

Deterministic mode (--mode instructions) compares instruction counts per
operation written by scripts/count-instructions (callgrind; they do not move
with machine load): a measurement regresses when it needs more than
`tolerance` (relative) more instructions than the baseline. Counts belong to
a compiler and its flags: the files record which, and a mismatch is reported.

Wall-clock mode (the default):

Both sides are Google Benchmark JSON (any of the suite's outputs). For every
benchmark in both, and for each metric it has (real_time, lower is better;
items_per_second and bytes_per_second, higher is better; p50_ns and p99_ns,
lower is better), it compares the repetitions of the two sides with a
Mann-Whitney U test (scipy) and calls a difference a regression only when it
is both significant (p < alpha) and large (worse by more than min-change,
relative, on the medians). The rounds of an interleaved group count as
repetitions of their benchmark. Multi-process runs are compared only like
with like: the runs of both sides are sorted into placement regimes together
(by the cache-line limit measured around each run, see pairs.py), and a
benchmark's runs in one regime are compared only with its runs in the same
regime; runs whose limit moved while they ran are left out. With fewer than
min-repetitions on either side it says "not enough repetitions" instead of
guessing, and a benchmark the two sides measured only in different regimes
is "not compared". Prints a Markdown table (benchmark, regime, metric,
baseline, current, change, p-value, verdict) and exits 1 when anything
regressed, 2 on bad input, 0 otherwise.

Why not Google Benchmark's compare.py (Debian's libbenchmark-tools): it runs
the same U test, but only on real_time and cpu_time, has no minimum relative
change (on a noisy shared runner every significant 1% wobble would fail), and
always exits 0; a gate needs counters such as p99_ns, a size threshold and an
exit code. Its report is still useful beside this one:
/usr/share/benchmark/compare.py benchmarks BASELINE.json CURRENT.json
"""
import argparse
import json
import os
import statistics
import sys

from scipy.stats import mannwhitneyu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairs  # noqa: E402
import results  # noqa: E402

# metric -> True when higher is better
METRICS = {"real_time": False, "items_per_second": True, "bytes_per_second": True, "p50_ns": False,
           "p99_ns": False}


def repetitions(rows, regimes=()):
    """{(benchmark, regime, metric): [values over repetitions]} from iteration
    rows. The regime is the index of the run's placement regime among
    `regimes`, or None for a run with no limit (single process); a run whose
    limit moved while it ran belongs to no regime and is left out."""
    out = {}
    for row in results.iterations(rows):
        name = results.row_name(row).plain
        limit = pairs.run_limit(row)
        if limit is not None and pairs.limit_moved(row):
            continue
        regime = pairs.regime_of(limit, regimes)
        for metric in METRICS:
            if metric in row:
                out.setdefault((name, regime, metric), []).append(float(row[metric]))
    return out


def verdict(baseline, current, higher_is_better, min_change, alpha, min_repetitions):
    """(change, p, verdict) for two samples of one metric."""
    b, c = statistics.median(baseline), statistics.median(current)
    change = (c - b) / b if b else 0.0
    worse = -change if higher_is_better else change
    if len(baseline) < min_repetitions or len(current) < min_repetitions:
        return change, None, "not enough repetitions"
    if baseline == current or len(set(baseline + current)) == 1:
        return change, 1.0, "same"
    p = mannwhitneyu(baseline, current, alternative="two-sided").pvalue
    if p < alpha and worse > min_change:
        return change, p, "REGRESSION"
    if p < alpha and -worse > min_change:
        return change, p, "improvement"
    return change, p, "same"


def shared_regimes(baseline_rows, current_rows):
    """Placement regimes of both sides' runs, found together, so that a regime
    means the same placement on both sides."""
    return pairs.find_regimes([pairs.run_limit(r) for r in results.iterations(baseline_rows + current_rows)
                               if not pairs.limit_moved(r)])


def compare(baseline_rows, current_rows, min_change=0.05, alpha=0.05, min_repetitions=5, name_filter=""):
    """Rows of (benchmark, regime label, metric, baseline median, current median,
    change, p, verdict): one per benchmark, metric and regime both sides
    measured in; a benchmark both measured, but never in the same regime,
    gets a 'not compared' row."""
    regimes = shared_regimes(baseline_rows, current_rows)
    base, cur = repetitions(baseline_rows, regimes), repetitions(current_rows, regimes)
    label = (lambda r: "-" if r is None else f"R{r + 1}: {pairs.regime_label(regimes[r]).split(' (')[0]}")
    out = []
    for key in sorted(set(base) & set(cur), key=str):
        name, regime, metric = key
        if name_filter and name_filter not in name:
            continue
        change, p, v = verdict(base[key], cur[key], METRICS[metric], min_change, alpha, min_repetitions)
        out.append((name, label(regime), metric, statistics.median(base[key]), statistics.median(cur[key]),
                    change, p, v))
    judged = {(n, m) for n, _, m in set(base) & set(cur)}
    for name, metric in sorted({(n, m) for n, _, m in base} & {(n, m) for n, _, m in cur} - judged):
        if name_filter and name_filter not in name:
            continue
        seen = [", ".join(sorted(label(r) for n, r, m in side if (n, m) == (name, metric)))
                for side in (base, cur)]
        out.append((name, f"baseline {seen[0]}; current {seen[1]}", metric, None, None, None, None,
                    "not compared: different regimes"))
    return out


def markdown(rows):
    lines = ["| Benchmark | Regime | Metric | Baseline | Current | Change | p-value | Verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for name, regime, metric, b, c, change, p, v in rows:
        num = (lambda x, f: "n/a" if x is None else format(x, f))
        lines.append(f"| {name} | {regime} | {metric} | {num(b, '.4g')} | {num(c, '.4g')} | {num(change, '+.1%')} | "
                     f"{num(p, '.3g')} | {v} |")
    return "\n".join(lines) + "\n"


# ---- deterministic mode: instruction counts ----------------------------------------------------

def callgrind_total(text):
    """The instruction count of a callgrind output file (its 'totals:' or 'summary:' line)."""
    for line in text.splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError("no totals in the callgrind output")


def collect_instructions(index_lines, toolchain):
    """Instruction-count JSON from lines 'NAME OPERATIONS CALLGRIND_OUT'."""
    rows = []
    for line in index_lines:
        if not line.strip():
            continue
        name, operations, path = line.split()
        with open(path) as f:
            total = callgrind_total(f.read())
        rows.append({"name": f"instructions/{name}", "run_name": f"instructions/{name}", "run_type": "iteration",
                     "instructions": total, "operations": int(operations),
                     "instructions_per_op": total / int(operations)})
    return {"context": {"toolchain": toolchain, "counted_with": "valgrind --tool=callgrind"}, "benchmarks": rows}


def compare_instructions(baseline_rows, current_rows, tolerance=0.02):
    """Rows of (measurement, baseline, current, change, verdict)."""
    base = {r["name"]: r["instructions_per_op"] for r in baseline_rows if "instructions_per_op" in r}
    cur = {r["name"]: r["instructions_per_op"] for r in current_rows if "instructions_per_op" in r}
    out = []
    for name in sorted(set(base) | set(cur)):
        if name not in base or name not in cur:
            out.append((name, base.get(name), cur.get(name), None, "new" if name in cur else "gone"))
            continue
        change = (cur[name] - base[name]) / base[name]
        v = "REGRESSION" if change > tolerance else "improvement" if change < -tolerance else "same"
        out.append((name, base[name], cur[name], change, v))
    return out


def instructions_markdown(rows):
    lines = ["| Measurement | Baseline (instructions/op) | Current | Change | Verdict |", "|---|---|---|---|---|"]
    for name, b, c, change, v in rows:
        fmt = lambda x: "n/a" if x is None else f"{x:.1f}"  # noqa: E731
        lines.append(f"| {name} | {fmt(b)} | {fmt(c)} | {'n/a' if change is None else f'{change:+.1%}'} | {v} |")
    return "\n".join(lines) + "\n"


def read_results(paths, files=results.RUN_FILES):
    """The results at `paths` (a JSON file, or a folder standing for the
    `files` in it, joined), or None after saying why one cannot be read."""
    try:
        return [results.load_results(path, files) for path in paths]
    except results.ResultsError as e:
        print(f"gate.py: {e}", file=sys.stderr)
        return None


def publish(text, out):
    """Prints the table, and writes it to `out` when given."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text, end="")


USAGE = """gate.py [--min-change X] [--alpha P] [--min-repetitions N] [--filter SUBSTRING] [--out FILE] BASELINE CURRENT
       gate.py --mode instructions [--tolerance X] [--out FILE] BASELINE CURRENT
       gate.py --collect-instructions INDEX TOOLCHAIN"""  # the three modes, as the docstring says


def parse_arguments(args):
    """The command line (without the program's name), parsed; raises
    SystemExit (2, after printing the usage) when it is malformed."""
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="gate.py", description=summary, epilog=details, usage=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", nargs="?", metavar="BASELINE", help="the baseline run (file or folder)")
    parser.add_argument("current", nargs="?", metavar="CURRENT", help="the run to judge (file or folder)")
    parser.add_argument("--mode", choices=("wall-clock", "instructions"), default="wall-clock",
                        help="what is compared (default: wall-clock)")
    parser.add_argument("--out", metavar="FILE", help="also write the table to FILE (default: none)")
    wall_clock = parser.add_argument_group("wall-clock mode")
    wall_clock.add_argument("--min-change", type=float, default=0.05, metavar="X",
                            help="smallest relative change of the medians that counts (default: 0.05)")
    wall_clock.add_argument("--alpha", type=float, default=0.05, metavar="P",
                            help="significance level of the U test (default: 0.05)")
    wall_clock.add_argument("--min-repetitions", type=int, default=5, metavar="N",
                            help="fewest repetitions on each side to judge (default: 5)")
    wall_clock.add_argument("--filter", default="", metavar="SUBSTRING",
                            help="only benchmarks whose names contain it (default: all)")
    instructions = parser.add_argument_group("instructions mode (--mode instructions)")
    instructions.add_argument("--tolerance", type=float, default=0.02, metavar="X",
                              help="relative increase allowed (default: 0.02)")
    collecting = parser.add_argument_group("collecting instruction counts (for scripts/count-instructions)")
    collecting.add_argument("--collect-instructions", nargs=2, metavar=("INDEX", "TOOLCHAIN"),
                            help="prints the instruction-count JSON of the callgrind outputs INDEX lists, "
                                 "TOOLCHAIN recorded in its context, and compares nothing")
    parsed = parser.parse_args(args)
    if parsed.collect_instructions:
        if parsed.baseline or parsed.current:
            parser.error("--collect-instructions takes an index and a toolchain and nothing else")
    elif not parsed.current:
        parser.error("a BASELINE and a CURRENT are required")
    return parsed


def main(argv):
    try:
        args = parse_arguments(argv[1:])
    except SystemExit as stop:  # --help (0) or a malformed command line (2)
        return stop.code
    if args.collect_instructions:
        index, toolchain = args.collect_instructions
        with open(index) as f:
            print(json.dumps(collect_instructions(f.read().splitlines(), toolchain), indent=1))
        return 0
    if args.mode == "instructions":
        return main_instructions(args)
    paths = [args.baseline, args.current]
    files = read_results(paths)
    if files is None:
        return 2
    sides = [f.get("benchmarks", []) for f in files]
    rows = compare(sides[0], sides[1], args.min_change, args.alpha, args.min_repetitions, args.filter)
    if not rows:
        print("gate.py: the two files have no benchmark in common", file=sys.stderr)
        return 2
    publish(markdown(rows), args.out)
    regressions = [r for r in rows if r[-1] == "REGRESSION"]
    print(f"\n{len(regressions)} regression(s) in {len(rows)} comparisons", file=sys.stderr)
    return 1 if regressions else 0


def main_instructions(args):
    paths = [args.baseline, args.current]
    files = read_results(paths, ("instructions.json",))
    if files is None:
        return 2
    for path, data in zip(paths, files):
        if not any("instructions_per_op" in r for r in data.get("benchmarks", [])):
            print(f"gate.py: {path} has no instruction counts (instructions_per_op); "
                  "write them with scripts/count-instructions", file=sys.stderr)
            return 2
    rows = compare_instructions(files[0].get("benchmarks", []), files[1].get("benchmarks", []), args.tolerance)
    text = instructions_markdown(rows)
    toolchains = [f.get("context", {}).get("toolchain") for f in files]
    if toolchains[0] != toolchains[1]:
        text += f"\nNote: counted with different toolchains ({toolchains[0]} / {toolchains[1]}).\n"
    publish(text, args.out)
    regressions = [r for r in rows if r[-1] == "REGRESSION"]
    print(f"\n{len(regressions)} regression(s) in {len(rows)} measurements (tolerance {args.tolerance:.0%})",
          file=sys.stderr)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
