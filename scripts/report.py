#!/usr/bin/python3
"""Charts and a report from one or more benchmark result folders.

Each RESULTS_DIR is what scripts/run-benchmarks writes (micro.json, ipc.json,
histograms/). Writes PNG charts, report.md and a self-contained report.html
(charts embedded) into DIR (default: the first RESULTS_DIR). With several
folders (several hosts) the charts and headline tables are side by side.
Needs matplotlib and numpy (Debian: python3-matplotlib, python3-numpy).

This module owns the charts and the report: each chart is a pure function
from a run to a Chart (its series, as data: see Chart, Panel and Series),
and one function, plot(), draws any Chart; the report joins the charts with
summarize.py's tables.
"""
import argparse
import base64
import html
import math
import os
import sys
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairs  # noqa: E402
import results  # noqa: E402
import summarize  # noqa: E402
from results import ping_pong_name, throughput_name  # noqa: E402

PERCENTILES = [("p50_ns", "p50"), ("p90_ns", "p90"), ("p99_ns", "p99"), ("p99_9_ns", "p99.9"),
               ("p99_99_ns", "p99.99"), ("max_ns", "max")]
CHARTED = results.PROJECT + results.PEERS  # the transports the charts compare (the rings only pace the SPSC queue)


# ---- loading -------------------------------------------------------------------------------------

def load_run(results_dir):
    """One run, read once: its context and rows (results.load_run), its
    histograms (name -> merged buckets) and summarize.py's analysis of it."""
    run = results.load_run(results_dir)
    run["histograms"] = results.load_histograms(os.path.join(results_dir, "histograms"))
    run["analysis"] = summarize.analyse(run)
    return run


def machine_label(run):
    c = run["context"]
    return f"{c.get('host_name', '?')}: {c.get('cpu_model', '?')}, {c.get('num_cpus', '?')} CPUs, {c.get('kernel', '')}"


# ---- what a chart shows (data) -------------------------------------------------------------------

class Series(NamedTuple):
    """One thing a panel shows, in one of these styles:
    'line', 'dots' (a line with a dot on each point), 'dashed': lines through (xs, ys);
    'bars': a bar per category, xs naming the panel's xcategories;
    'points': a dot at each (x, y); 'median': a tick at (x, y); 'interval': a line from (x0, y0) to (x1, y1)."""
    label: str | None
    xs: list
    ys: list
    style: str = "line"
    colour: str | None = None  # None: the next of matplotlib's colours; 'C0', 'C1'...: the first, second...


class Panel(NamedTuple):
    """One set of axes: its series, labels and scales."""
    xlabel: str
    ylabel: str
    series: list
    title: str = ""  # a panel's own title, in a chart of several
    xcategories: tuple = ()  # names along x (bars)
    ycategories: tuple = ()  # names along y, the first at the top (points)
    xlog: int | None = None  # the base of a logarithmic x axis; None: linear
    ylog: int | None = None
    xticks: tuple | None = None  # (positions, labels) on a numeric x axis
    reference: tuple | None = None  # ('horizontal' or 'vertical', value, label): a dashed line across


class Chart(NamedTuple):
    """A whole figure: its title and panels, laid out `columns` to a row."""
    title: str
    panels: list
    size: tuple = (9, 4.5)  # inches
    columns: int = 1
    share_x: bool = False  # the panels measure the same thing along x


def percentile_curve(buckets):
    """(percentiles, values): the HDR percentile distribution of merged buckets."""
    total = sum(n for _, _, n in buckets)
    seen, xs, ys = 0, [], []
    for low, high, n in buckets:
        seen += n
        xs.append(100.0 * seen / total)
        ys.append(high)
    return xs, ys


def latency_percentile_chart(run, wait="spin"):
    """Ping-pong round-trip percentiles per transport, log scale."""
    values = {field: summarize.medians(run["ipc"], field) for field, _ in PERCENTILES}
    shown = [t for t in CHARTED if ping_pong_name(t, wait) in values["p50_ns"]]
    bars = [Series(label, shown, [values[field].get(ping_pong_name(t, wait), 0) for t in shown], "bars")
            for field, label in PERCENTILES]
    return Chart(f"Ping-pong round trip, 8 B, waiting by {wait}",
                 [Panel("transport", "round trip (ns, log)", bars, xcategories=tuple(shown), ylog=10)])


def hdr_chart(run, wait="spin"):
    """Ping-pong latency distribution from the full histograms (HDR style):
    x is 1 / (1 - percentile), so that each further nine takes the same room."""
    lines = []
    for t in CHARTED:
        name = ping_pong_name(t, wait)
        if name in run["histograms"]:
            percentiles, values = percentile_curve(run["histograms"][name])
            lines.append(Series(t, [1.0 / max(1e-7, 1 - p / 100.0) for p in percentiles], values))
    ticks = ([1, 2, 10, 100, 1000, 10000, 100000], ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    return Chart(f"Latency distribution: ping-pong, 8 B, {wait}",
                 [Panel("percentile", "latency (ns, log)", lines, xlog=10, ylog=10, xticks=ticks)])


def throughput_chart(run, wait="spin"):
    """Throughput against payload size per transport (1 sender, 1 receiver)."""
    rate = summarize.medians(run["ipc"], "bytes_per_second")
    lines = []
    for t in CHARTED:
        points = sorted((name.payload, v) for name, v in parsed(rate)
                        if name.family == "ipc/throughput" and name.transport == t
                        and (name.senders, name.receivers, name.wait) == (1, 1, wait))
        if points:
            lines.append(Series(t, [p for p, _ in points], [v / 1e6 for _, v in points], "dots"))
    return Chart(f"Throughput against payload size, 1 x 1, {wait}",
                 [Panel("payload (bytes, log)", "throughput (MB/s, log)", lines, xlog=2, ylog=10)])


def scaling_chart(run, wait="spin"):
    """Messages/s for each senders x receivers shape, 8 B."""
    rate = summarize.medians(run["ipc"], "items_per_second")
    eight_bytes = [name for name, _ in parsed(rate) if name.family == "ipc/throughput" and name.payload == 8]
    shapes = sorted({(n.senders, n.receivers) for n in eight_bytes if n.wait == wait})
    shown = [t for t in CHARTED if any(n.transport == t for n in eight_bytes)]
    bars = [Series(f"{s} x {r}", shown, [rate.get(throughput_name(t, wait, 8, s, r), 0) / 1e6 for t in shown], "bars")
            for s, r in shapes]
    return Chart(f"Scaling with senders x receivers, 8 B, {wait}",
                 [Panel("transport", "messages per second (millions, log)", bars, xcategories=tuple(shown), ylog=10)])


def false_sharing_chart(run):
    """The slowdown of each counter layout against counters 128 bytes apart."""
    factor = summarize.medians(run["ipc"], "false_sharing_factor")
    layouts = [n.replace("false_sharing/", "") for n in sorted(factor)]
    bars = [Series(None, layouts, [factor[n] for n in sorted(factor)], "bars")]
    return Chart("False-sharing factor per layout",
                 [Panel("layout", "slowdown against 128 bytes apart (x)", bars, xcategories=tuple(layouts),
                        reference=("horizontal", 1.0, "no false sharing"))], size=(9, 4))


ARRAY_PATTERNS = ["sequential_read", "sequential_write", "random_read", "random_write"]
ARRAY_CONTAINERS = [("shm_array_vs_raw_pointer", "shm_array"), ("vector", "vector"),
                    ("boost_offset_ptr_vector", "boost_offset_ptr_vector")]


def element_access_chart(run):
    """ns per access against array size, a panel per access pattern (flat = O(1))."""
    per = summarize.medians(run["micro"], "ns_per_access")
    raw = summarize.medians(run["micro"], "raw_pointer_ns_per_access")
    panels = []
    for pattern in ARRAY_PATTERNS:
        lines = [by_argument(per, f"array/{pattern}", container, label, "dots")
                 for container, label in ARRAY_CONTAINERS]
        lines.append(by_argument(raw, f"array/{pattern}", None, "raw pointer", "dashed"))
        panels.append(Panel("array size (bytes, log)", "ns per access", [s for s in lines if s.xs],
                            title=pattern.replace("_", " "), xlog=2))
    return Chart("Element access against array size (flat = O(1) access)", panels, size=(10, 7), columns=2,
                 share_x=True)


def lookup_chart(run):
    """Time per lookup and per creation by name against the number of structures."""
    time = summarize.medians(run["micro"], "real_time")
    lines = [by_argument(time, f"discovery/{what}", who, f"{who}: {what}", "dots")
             for what in ("find", "create_destroy") for who in ("shm_table", "boost_named_objects")]
    return Chart("Lookup and creation by name against the number of structures",
                 [Panel("structures in the segment (log)", "time per operation (ns)", [s for s in lines if s.xs],
                        xlog=2)])


def efficiency_chart(run):
    """Each transport as a fraction of the hardware's limits: ping-pong
    against the line round trips, throughput at 64 KiB against memcpy."""
    one = summarize.medians(run["ipc"], "fraction_of_limit")
    two = summarize.medians(run["ipc"], "fraction_of_two_line_limit")
    memcpy = summarize.medians(run["ipc"], "fraction_of_memcpy")
    shown = [t for t in CHARTED if ping_pong_name(t) in one]
    round_trips = [Series("bare line round trip / p50", shown, [one[ping_pong_name(t)] for t in shown], "bars"),
                   Series("two-line round trip / p50", shown, [two.get(ping_pong_name(t), 0) for t in shown], "bars")]
    best = [(t, max((v for name, v in parsed(memcpy) if name.family == "ipc/throughput" and name.transport == t
                     and (name.payload, name.senders) == (65536, 1)), default=None)) for t in CHARTED]
    best = [(t, v) for t, v in best if v is not None]
    bandwidth = [Series(None, [t for t, _ in best], [v for _, v in best], "bars")]
    return Chart("Efficiency against the hardware's limits, measured in the same run", [
        Panel("transport", "fraction of the limit (1 = at the limit)", round_trips, title="Ping-pong, 8 B, spin",
              xcategories=tuple(shown)),
        Panel("transport", "fraction of memcpy bandwidth", bandwidth, title="Throughput, 64 KiB, 1 x 1, best wait",
              xcategories=tuple(t for t, _ in best))], size=(11, 4.5), columns=2)


def latency_cpu_chart(run):
    """Latency under load against the CPU it cost: one point per transport,
    way of waiting and load (p50 and p99 side by side), so a reader sees
    "p99 latency at what CPU per message"."""
    table = summarize.latency_under_load(run["ipc"])
    panels = []
    for field, title in (("p50_ns", "p50"), ("p99_ns", "p99")):
        shown = []
        for transport in CHARTED:
            points = [(v["cpu_ns_per_message"], v[field]) for (t, _, _), v in sorted(table.items())
                      if t == transport and v["cpu_ns_per_message"] and v[field]]
            if points:
                shown.append(Series(transport, [x for x, _ in points], [y for _, y in points], "points"))
        panels.append(Panel("CPU per message, sender + receiver (ns, log)", f"{title} latency (ns, log)", shown,
                            title=f"{title}; each point a way of waiting at 10%, 50% or 90% load", xlog=10, ylog=10))
    return Chart("Latency under load against CPU per message", panels, size=(11, 4.5), columns=2)


def pair_ratio_chart(run):
    """Every headline ratio's per-pair values (so a reader sees the spread),
    coloured by placement regime, with each regime's median and interval."""
    analysis = run["analysis"]
    lines = analysis["headlines"] + analysis["single_process"]
    regimes = analysis["regimes"]
    shown, labelled = [], set()
    for y, h in enumerate(lines):
        single = h in analysis["single_process"]
        for k in [None] if single else range(len(regimes)):
            values = [p["ratio"] for p in h["result"]["pairs"] if single or p["regime"] == k]
            if not values:
                continue
            at = y if single else y + (k - (len(regimes) - 1) / 2) * 0.25  # regimes side by side
            label = "single process" if single else f"regime {k + 1}: {pairs.regime_label(regimes[k])}"
            shown.append(Series(None if label in labelled else label, values, [at] * len(values), "points",
                                "grey" if single else f"C{k}"))
            labelled.add(label)
            median, low, high = pairs.interval(values)
            shown.append(Series(None, [median], [at], "median"))
            if low is not None:
                shown.append(Series(None, [low, high], [at, at], "interval"))
    return Chart("Headline ratios, pair by pair (bar: median; line: 95% interval)",
                 [Panel("ratio (log)", "headline", shown, ycategories=tuple(h["measure"] for h in lines), xlog=10,
                        reference=("vertical", 1.0, None))], size=(10, 0.42 * max(4, len(lines)) + 1.5))


def parsed(values):
    """(BenchmarkName, value) for each plain name of a {name: value} table."""
    return [(results.parse_name(n), v) for n, v in values.items()]


def by_argument(values, family, subject, label, style):
    """A Series of `values` (a {plain name: value} table) along the
    benchmarks' argument, for the benchmarks of `family` measuring `subject`
    (None: any subject)."""
    points = sorted((name.argument, v) for name, v in parsed(values)
                    if name.family == family and subject in (None, name.subject) and name.argument is not None)
    return Series(label, [a for a, _ in points], [v for _, v in points], style)


CHARTS = [  # (file name, the chart of a run)
    ("pair_ratios", pair_ratio_chart),
    ("latency_spin", lambda r: latency_percentile_chart(r, "spin")),
    ("latency_sleep", lambda r: latency_percentile_chart(r, "sleep")),
    ("hdr_ping_pong_spin", lambda r: hdr_chart(r, "spin")),
    ("hdr_ping_pong_sleep", lambda r: hdr_chart(r, "sleep")),
    ("throughput_spin", lambda r: throughput_chart(r, "spin")),
    ("throughput_sleep", lambda r: throughput_chart(r, "sleep")),
    ("scaling_spin", lambda r: scaling_chart(r, "spin")),
    ("scaling_sleep", lambda r: scaling_chart(r, "sleep")),
    ("false_sharing", false_sharing_chart),
    ("element_access", element_access_chart),
    ("lookup", lookup_chart),
    ("efficiency", efficiency_chart),
    ("latency_cpu", latency_cpu_chart),
]


# ---- drawing a chart -----------------------------------------------------------------------------

DRAW = {  # how each style of Series is drawn on a matplotlib Axes (bars: draw_bars)
    "line": lambda ax, s: ax.plot(s.xs, s.ys, label=s.label, color=s.colour),
    "dots": lambda ax, s: ax.plot(s.xs, s.ys, marker="o", label=s.label, color=s.colour),
    "dashed": lambda ax, s: ax.plot(s.xs, s.ys, linestyle="--", label=s.label, color=s.colour),
    "points": lambda ax, s: ax.scatter(s.xs, s.ys, s=12, alpha=0.6, color=s.colour, label=s.label),
    "median": lambda ax, s: ax.plot(s.xs, s.ys, marker="|", markersize=14, color="black"),
    "interval": lambda ax, s: ax.plot(s.xs, s.ys, color="black", linewidth=1),
}


def plot(chart, machine):
    """A matplotlib Figure of `chart`, its footnote naming the machine.
    A chart of several panels has the smaller type of a multi-panel figure."""
    rows = math.ceil(len(chart.panels) / chart.columns)
    fig, axes = plt.subplots(rows, chart.columns, figsize=chart.size, sharex=chart.share_x, squeeze=False)
    several = len(chart.panels) > 1
    for ax, panel in zip(axes.flat, chart.panels):
        draw_panel(ax, panel, panel.title if several else chart.title, small=several)
    top = 1.0
    if several:
        fig.suptitle(chart.title)
        top = 1 - 0.22 / chart.size[1]  # room for the title above the panels' own
    fig.text(0.01, 0.005, f"Measured on {machine}; medians of repetitions", fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, top))
    return fig


def draw_panel(ax, panel, title, small):
    """Draws `panel` on `ax`, titled `title`."""
    draw_bars(ax, [s for s in panel.series if s.style == "bars"], panel.xcategories)
    for series in panel.series:
        if series.style != "bars":
            DRAW[series.style](ax, series)
    if panel.xlog:
        ax.set_xscale("log", base=panel.xlog)
    if panel.ylog:
        ax.set_yscale("log", base=panel.ylog)
    if panel.xticks:
        ax.set_xticks(*panel.xticks)
    if panel.xcategories or any(s.style == "bars" for s in panel.series):
        ax.set_xticks(range(len(panel.xcategories)), panel.xcategories, rotation=30 if small else 20,
                      fontsize=6 if small else 7)
    if panel.ycategories:
        ax.set_yticks(range(len(panel.ycategories)), panel.ycategories, fontsize=6)
        ax.invert_yaxis()  # the first at the top, as in a table
    if panel.reference:
        orientation, value, label = panel.reference
        across = ax.axhline if orientation == "horizontal" else ax.axvline
        across(value, color="grey", linestyle="--", linewidth=0.8, label=label)
    ax.set_title(title, **({"fontsize": 9} if small else {}))
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6 if small else 7)
    ax.grid(True, which="both", alpha=0.3)


def draw_bars(ax, bars, categories):
    """Bars side by side, a group per category, centred on its tick."""
    width = 0.8 / max(1, len(bars))
    for i, series in enumerate(bars):
        offset = (i - (len(bars) - 1) / 2) * width
        ax.bar([categories.index(x) + offset for x in series.xs], series.ys, width, label=series.label,
               color=series.colour)


# ---- the report ----------------------------------------------------------------------------------

CONTEXT_KEYS = ["host_name", "cpu_model", "num_cpus", "caches", "kernel", "compiler", "compiler_flags",
                "git_commit", "transparent_hugepage", "cpufreq_governor", "timestamp_clock", "date", "mode"]


def context_table(runs):
    lines = ["| | " + " | ".join(os.path.basename(os.path.normpath(r["dir"])) for r in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for key in CONTEXT_KEYS:
        lines.append(f"| {key} | " + " | ".join(str(r["context"].get(key, "")).replace("|", "/") for r in runs) + " |")
    return "\n".join(lines) + "\n"


def headlines_side_by_side(runs):
    """One table, a column per run: every headline measure with its target,
    per placement regime of that run (R1, R2, ... as in its own summary)."""
    per_run = []
    for run in runs:
        a = run["analysis"]
        table = {}
        for h in a["headlines"] + a["single_process"]:
            regime_count = 0 if h in a["single_process"] else len(a["regimes"])
            summaries = summarize.summary_of(h, regime_count)
            tag = (lambda i: "") if len(summaries) == 1 else (lambda i: f"R{i + 1}: ")
            table[h["measure"]] = (h, "; ".join(tag(i) + summarize.cell(s, h["met_if"])
                                                for i, s in enumerate(summaries)))
        per_run.append(table)
    measures = []
    for table in per_run:
        measures += [m for m in table if m not in measures]
    names = [os.path.basename(os.path.normpath(r["dir"])) for r in runs]
    out = ["| Measure | " + " | ".join(names) + " | Target |", "|---|" + "---|" * (len(runs) + 1)]
    for m in measures:
        cells = [table[m][1] if m in table else "n/a" for table in per_run]
        target = next(t[m][0]["target"] for t in per_run if m in t)
        out.append(f"| {m} | " + " | ".join(cells) + f" | {target or '-'} |")
    return "\n".join(out) + "\n"


def write_report(runs, out_dir):
    """Writes charts, report.md and report.html; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written, sections = [], []
    for i, run in enumerate(runs):
        host = f"{run['context'].get('host_name', 'host')}-{i}" if len(runs) > 1 else ""
        charts = []
        for name, chart in CHARTS:
            fig = plot(chart(run), machine_label(run))
            file = f"{name}{'-' + host if host else ''}.png"
            fig.savefig(os.path.join(out_dir, file), dpi=110)
            plt.close(fig)
            charts.append(file)
            written.append(os.path.join(out_dir, file))
        sections.append((run, charts))
    md = ["# shmds benchmark report", "", "## Machines", "", context_table(runs)]
    if len(runs) > 1:
        md += ["## Headlines, side by side", "", headlines_side_by_side(runs), ""]
    for run, _ in sections:
        md += [f"## Headlines: {os.path.basename(os.path.normpath(run['dir']))}", "",
               summarize.markdown(run["analysis"]), ""]
    md += ["## Charts", ""]
    for name, _ in CHARTS:
        md.append(f"### {name.replace('_', ' ')}")
        md.append("")
        md.append(" ".join(f"![{name}]({charts[[n for n, _ in CHARTS].index(name)]})" for _, charts in sections))
        md.append("")
    text = "\n".join(md)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text)
    written.append(os.path.join(out_dir, "report.md"))
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(markdown_to_html(text, out_dir))
    written.append(os.path.join(out_dir, "report.html"))
    return written


def markdown_to_html(text, image_dir):
    """The small Markdown subset this report uses (headings, tables, lists,
    images, paragraphs) as one HTML file with the images embedded."""
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>shmds benchmark report</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
           "font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style></head><body>"]
    in_table = False
    for line in text.split("\n"):
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-") for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            for part in line.split(" "):
                file = part[part.index("(") + 1:-1]
                with open(os.path.join(image_dir, file), "rb") as f:
                    data = base64.b64encode(f.read()).decode()
                out.append(f"<img alt='{html.escape(file)}' src='data:image/png;base64,{data}'>")
        elif line.startswith("- "):
            out.append(f"<p>&bull; {html.escape(line[2:])}</p>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def parse_arguments(args):
    """The command line (without the program's name), parsed; exits 2 with
    the usage on a malformed one."""
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="report.py", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR",
                        help="a run's folder (micro.json, ipc.json, histograms/); several: side by side")
    parser.add_argument("--out", metavar="DIR",
                        help="where the charts and reports go (default: the first RESULTS_DIR)")
    return parser.parse_args(args)


def main(argv):
    args = parse_arguments(argv[1:])
    runs = [load_run(d) for d in args.results_dirs]
    missing = [r["dir"] for r in runs if not r["micro"] and not r["ipc"]]
    if missing:
        print(f"report.py: no micro.json or ipc.json in {', '.join(missing)}", file=sys.stderr)
        return 1
    for path in write_report(runs, args.out or args.results_dirs[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
