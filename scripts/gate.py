#!/usr/bin/python3
"""Performance-regression gate: compares a current result file with a baseline.

Usage: gate.py BASELINE CURRENT [--min-change 0.05] [--alpha 0.05]
                [--min-repetitions 5] [--filter SUBSTRING] [--out FILE]
       gate.py --mode instructions BASELINE CURRENT [--tolerance 0.02] [--out FILE]

BASELINE and CURRENT are each a JSON file or a results folder written by
scripts/run-benchmarks (wall-clock mode reads its micro.json and ipc.json,
instructions mode its instructions.json).

  --mode MODE              wall-clock or instructions (wall-clock)
  --min-change X           smallest relative change of the medians that counts (0.05)
  --alpha P                significance level of the U test (0.05)
  --min-repetitions N      fewest repetitions on each side to judge (5)
  --filter SUBSTRING       only benchmarks whose names contain it (all)
  --tolerance X            instructions mode: relative increase allowed (0.02)
  --out FILE               also write the table to FILE (none)
  --collect-instructions INDEX TOOLCHAIN
                           for scripts/count-instructions: prints its instruction-count
                           JSON from an index of callgrind outputs
  -h, --help               this text

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
import json
import os
import statistics
import sys

from scipy.stats import mannwhitneyu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairs  # noqa: E402

# metric -> True when higher is better
METRICS = {"real_time": False, "items_per_second": True, "bytes_per_second": True, "p50_ns": False,
           "p99_ns": False}


def repetitions(rows, regimes=()):
    """{(benchmark, regime, metric): [values over repetitions]} from iteration
    rows. The regime is the index of the run's placement regime among
    `regimes`, or None for a run with no limit (single process); a run whose
    limit moved while it ran belongs to no regime and is left out."""
    out = {}
    for row in pairs.iterations(rows):
        name = pairs.parse_name(row.get("run_name", row.get("name", "")))[0]
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
    return pairs.find_regimes([pairs.run_limit(r) for r in pairs.iterations(baseline_rows + current_rows)
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


def option(args, flag, default, kind=float):
    if flag in args:
        i = args.index(flag)
        value = kind(args[i + 1])
        del args[i:i + 2]
        return value
    return default


def read_results(paths, folder_files=("micro.json", "ipc.json")):
    """The JSON documents at `paths`, or None (after saying why) if one cannot
    be read. A folder stands for the `folder_files` in it, their rows joined
    and their contexts merged."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            members = [m for m in (os.path.join(path, f) for f in folder_files) if os.path.exists(m)]
        else:
            members = [path]
        if not members:
            print(f"gate.py: {path} has none of {', '.join(folder_files)}", file=sys.stderr)
            return None
        joined = {"context": {}, "benchmarks": []}
        for member in members:
            try:
                with open(member) as f:
                    data = json.load(f)
            except (OSError, ValueError) as e:
                print(f"gate.py: cannot read {member}: {e}", file=sys.stderr)
                return None
            joined["context"].update(data.get("context", {}))
            joined["benchmarks"] += data.get("benchmarks", [])
        files.append(joined)
    return files


def publish(text, out):
    """Prints the table, and writes it to `out` when given."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text, end="")


def main(argv):
    args = argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
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
    files = read_results(args, ("instructions.json",))
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
