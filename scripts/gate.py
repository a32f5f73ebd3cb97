#!/usr/bin/python3
"""Performance-regression gate: compares a current result file with a baseline.

Usage: gate.py BASELINE.json CURRENT.json [--min-change 0.05] [--alpha 0.05]
                [--min-repetitions 5] [--filter SUBSTRING] [--out FILE]
       gate.py --mode instructions BASELINE.json CURRENT.json [--tolerance 0.02] [--out FILE]

Deterministic mode (--mode instructions) compares instruction counts per
operation written by scripts/count-instructions (callgrind; they do not move
with machine load): a measurement regresses when it needs more than
`tolerance` (relative) more instructions than the baseline. Counts belong to
a compiler and its flags: the files record which, and a mismatch is reported.

Wall-clock mode (the default):

Both files are Google Benchmark JSON (any of the suite's outputs). For every
benchmark in both, and for each metric it has (real_time, lower is better;
items_per_second and bytes_per_second, higher is better; p50_ns and p99_ns,
lower is better), it compares the repetitions of the two sides with a
Mann-Whitney U test (scipy) and calls a difference a regression only when it
is both significant (p < alpha) and large (worse by more than min-change,
relative, on the medians). With fewer than min-repetitions on either side it
says "not enough repetitions" instead of guessing. Prints a Markdown table
(benchmark, metric, baseline, current, change, p-value, verdict) and exits 1
when anything regressed, 2 on bad input, 0 otherwise.

Why not Google Benchmark's compare.py (Debian's libbenchmark-tools): it runs
the same U test, but only on real_time and cpu_time, has no minimum relative
change (on a noisy shared runner every significant 1% wobble would fail), and
always exits 0; a gate needs counters such as p99_ns, a size threshold and an
exit code. Its report is still useful beside this one:
/usr/share/benchmark/compare.py benchmarks BASELINE.json CURRENT.json
"""
import json
import statistics
import sys

from scipy.stats import mannwhitneyu

# metric -> True when higher is better
METRICS = {"real_time": False, "items_per_second": True, "bytes_per_second": True, "p50_ns": False,
           "p99_ns": False}


def repetitions(rows):
    """{(benchmark, metric): [values over repetitions]} from iteration rows."""
    out = {}
    for row in rows:
        if row.get("run_type", "iteration") != "iteration" or row.get("error_occurred"):
            continue
        name = row.get("run_name", row.get("name"))
        for metric in METRICS:
            if metric in row:
                out.setdefault((name, metric), []).append(float(row[metric]))
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


def compare(baseline_rows, current_rows, min_change=0.05, alpha=0.05, min_repetitions=5, name_filter=""):
    """Rows of (benchmark, metric, baseline median, current median, change, p, verdict)."""
    base, cur = repetitions(baseline_rows), repetitions(current_rows)
    out = []
    for key in sorted(set(base) & set(cur)):
        name, metric = key
        if name_filter and name_filter not in name:
            continue
        change, p, v = verdict(base[key], cur[key], METRICS[metric], min_change, alpha, min_repetitions)
        out.append((name, metric, statistics.median(base[key]), statistics.median(cur[key]), change, p, v))
    return out


def markdown(rows):
    lines = ["| Benchmark | Metric | Baseline | Current | Change | p-value | Verdict |", "|---|---|---|---|---|---|---|"]
    for name, metric, b, c, change, p, v in rows:
        lines.append(f"| {name} | {metric} | {b:.4g} | {c:.4g} | {change:+.1%} | "
                     f"{'n/a' if p is None else f'{p:.3g}'} | {v} |")
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


def option(args, flag, default, kind=float):
    if flag in args:
        i = args.index(flag)
        value = kind(args[i + 1])
        del args[i:i + 2]
        return value
    return default


def read_results(paths):
    """The JSON documents at `paths`, or None (after saying why) if one cannot be read."""
    files = []
    for path in paths:
        try:
            with open(path) as f:
                files.append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"gate.py: cannot read {path}: {e}", file=sys.stderr)
            return None
    return files


def publish(text, out):
    """Prints the table, and writes it to `out` when given."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text, end="")


def main(argv):
    args = argv[1:]
    if args[:1] == ["--collect-instructions"] and len(args) == 3:
        with open(args[1]) as f:
            print(json.dumps(collect_instructions(f.read().splitlines(), args[2]), indent=1))
        return 0
    mode = option(args, "--mode", "wall-clock", str) if "--mode" in args else "wall-clock"
    if mode == "instructions":
        return main_instructions(args)
    try:
        min_change = option(args, "--min-change", 0.05)
        alpha = option(args, "--alpha", 0.05)
        min_repetitions = option(args, "--min-repetitions", 5, int)
        name_filter = option(args, "--filter", "", str)
        out = option(args, "--out", None, str)
    except (ValueError, IndexError):
        print(__doc__, file=sys.stderr)
        return 2
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    files = read_results(args)
    if files is None:
        return 2
    sides = [f.get("benchmarks", []) for f in files]
    rows = compare(sides[0], sides[1], min_change, alpha, min_repetitions, name_filter)
    if not rows:
        print("gate.py: the two files have no benchmark in common", file=sys.stderr)
        return 2
    publish(markdown(rows), out)
    regressions = [r for r in rows if r[-1] == "REGRESSION"]
    print(f"\n{len(regressions)} regression(s) in {len(rows)} comparisons", file=sys.stderr)
    return 1 if regressions else 0


def main_instructions(args):
    try:
        tolerance = option(args, "--tolerance", 0.02)
        out = option(args, "--out", None, str)
    except (ValueError, IndexError):
        print(__doc__, file=sys.stderr)
        return 2
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    files = read_results(args)
    if files is None:
        return 2
    for path, data in zip(args, files):
        if not any("instructions_per_op" in r for r in data.get("benchmarks", [])):
            print(f"gate.py: {path} has no instruction counts (instructions_per_op); "
                  "write them with scripts/count-instructions", file=sys.stderr)
            return 2
    rows = compare_instructions(files[0].get("benchmarks", []), files[1].get("benchmarks", []), tolerance)
    text = instructions_markdown(rows)
    toolchains = [f.get("context", {}).get("toolchain") for f in files]
    if toolchains[0] != toolchains[1]:
        text += f"\nNote: counted with different toolchains ({toolchains[0]} / {toolchains[1]}).\n"
    publish(text, out)
    regressions = [r for r in rows if r[-1] == "REGRESSION"]
    print(f"\n{len(regressions)} regression(s) in {len(rows)} measurements (tolerance {tolerance:.0%})",
          file=sys.stderr)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
