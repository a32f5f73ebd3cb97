#!/usr/bin/python3
"""Charts and a report from one or more benchmark result folders.

Usage: report.py RESULTS_DIR [RESULTS_DIR ...] [--out DIR]

  --out DIR   where the charts and reports go (the first RESULTS_DIR)
  -h, --help  this text

Each RESULTS_DIR is what scripts/run-benchmarks writes (micro.json, ipc.json,
histograms/). Writes PNG charts, report.md and a self-contained report.html
(charts embedded) into DIR (default: the first RESULTS_DIR). With several
folders (several hosts) the charts and headline tables are side by side.
Needs matplotlib and numpy (Debian: python3-matplotlib, python3-numpy).
"""
import base64
import html
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairs  # noqa: E402
import summarize  # noqa: E402

PERCENTILES = [("p50_ns", "p50"), ("p90_ns", "p90"), ("p99_ns", "p99"), ("p99_9_ns", "p99.9"),
               ("p99_99_ns", "p99.99"), ("max_ns", "max")]
TRANSPORTS = summarize.PROJECT + summarize.PEERS


# ---- loading (pure) ------------------------------------------------------------------------------

def load_run(results_dir):
    """One run: its context, rows and histograms (name -> merged buckets)."""
    def read(name):
        path = os.path.join(results_dir, name)
        if not os.path.exists(path):
            return {}, []
        with open(path) as f:
            text = f.read()
        data = json.loads(text) if text.strip() else {}  # empty: the filter matched nothing
        return data.get("context", {}), data.get("benchmarks", [])
    micro_context, micro = read("micro.json")
    ipc_context, ipc = read("ipc.json")
    context = dict(micro_context)
    context.update(ipc_context)
    return {"dir": results_dir, "context": context, "micro": micro, "ipc": ipc,
            "histograms": load_histograms(os.path.join(results_dir, "histograms")),
            "analysis": summarize.analyse({"micro": micro, "ipc": ipc})}


def load_histograms(folder):
    """{benchmark name: [(low, high, count), ...]} with repetitions merged."""
    merged = {}
    if not os.path.isdir(folder):
        return merged
    for file in sorted(os.listdir(folder)):
        if not file.endswith(".json"):
            continue
        with open(os.path.join(folder, file)) as f:
            h = json.load(f)
        buckets = merged.setdefault(h["name"], {})
        for low, high, count in h["buckets"]:
            buckets[(low, high)] = buckets.get((low, high), 0) + count
    return {name: sorted((lo, hi, n) for (lo, hi), n in b.items()) for name, b in merged.items()}


def percentile_curve(buckets):
    """(percentiles, values): the HDR percentile distribution of merged buckets."""
    total = sum(n for _, _, n in buckets)
    seen, xs, ys = 0, [], []
    for low, high, n in buckets:
        seen += n
        xs.append(100.0 * seen / total)
        ys.append(high)
    return xs, ys


def machine_label(run):
    c = run["context"]
    return f"{c.get('host_name', '?')}: {c.get('cpu_model', '?')}, {c.get('num_cpus', '?')} CPUs, {c.get('kernel', '')}"


# ---- charts (each returns a matplotlib Figure) ---------------------------------------------------

def _finish(fig, ax, title, xlabel, ylabel, run):
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.text(0.01, 0.005, f"Measured on {machine_label(run)}; medians of repetitions", fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def latency_percentiles_chart(run, wait="spin"):
    """Ping-pong round-trip percentiles per transport, log scale."""
    rows = run["ipc"]
    values = {field: summarize.medians(rows, field) for field, _ in PERCENTILES}
    transports = [t for t in TRANSPORTS if f"ipc/ping_pong/{t}/payload:8/wait:{wait}" in values["p50_ns"]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(PERCENTILES))
    for i, (field, label) in enumerate(PERCENTILES):
        ys = [values[field].get(f"ipc/ping_pong/{t}/payload:8/wait:{wait}", 0) for t in transports]
        ax.bar([x + i * width for x in range(len(transports))], ys, width, label=label)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(transports))], transports, rotation=20, fontsize=7)
    ax.set_yscale("log")
    return _finish(fig, ax, f"Ping-pong round trip, 8 B, waiting by {wait}", "transport", "round trip (ns, log)", run)


def hdr_chart(run, kind="ping_pong", wait="spin"):
    """Percentile distribution from the full histograms (HDR style)."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for t in TRANSPORTS:
        name = f"ipc/{kind}/{t}/payload:8/wait:{wait}"
        if name in run["histograms"]:
            xs, ys = percentile_curve(run["histograms"][name])
            ax.plot([1.0 / max(1e-7, 1 - x / 100.0) for x in xs], ys, label=t)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    return _finish(fig, ax, f"Latency distribution: {kind.replace('_', '-')}, 8 B, {wait}", "percentile",
                   "latency (ns, log)", run)


def throughput_chart(run, wait="spin"):
    """Throughput against payload size per transport (1 sender, 1 receiver)."""
    rate = summarize.medians(run["ipc"], "bytes_per_second")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for t in TRANSPORTS:
        points = sorted((int(n.split("/payload:")[1].split("/")[0]), v) for n, v in rate.items()
                        if n.startswith(f"ipc/throughput/{t}/") and "/senders:1/receivers:1/" in n
                        and n.endswith(f"/wait:{wait}"))
        if points:
            ax.plot([p for p, _ in points], [v / 1e6 for _, v in points], marker="o", label=t)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return _finish(fig, ax, f"Throughput against payload size, 1 x 1, {wait}", "payload (bytes, log)",
                   "throughput (MB/s, log)", run)


def scaling_chart(run, wait="spin"):
    """Messages/s for each senders x receivers shape, 8 B."""
    rate = summarize.medians(run["ipc"], "items_per_second")
    shapes = sorted({n.split("/payload:8/")[1].split("/wait:")[0] for n in rate
                     if n.startswith("ipc/throughput/") and "/payload:8/" in n and n.endswith(f"/wait:{wait}")})
    transports = [t for t in TRANSPORTS if any(n.startswith(f"ipc/throughput/{t}/payload:8/") for n in rate)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(shapes))
    for i, shape in enumerate(shapes):
        ys = [rate.get(f"ipc/throughput/{t}/payload:8/{shape}/wait:{wait}", 0) / 1e6 for t in transports]
        ax.bar([x + i * width for x in range(len(transports))], ys, width,
               label=shape.replace("senders:", "").replace("/receivers:", " x "))
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(transports))], transports, rotation=20, fontsize=7)
    ax.set_yscale("log")
    return _finish(fig, ax, f"Scaling with senders x receivers, 8 B, {wait}", "transport",
                   "messages per second (millions, log)", run)


def false_sharing_chart(run):
    factor = summarize.medians(run["ipc"], "false_sharing_factor")
    names = sorted(factor)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(range(len(names)), [factor[n] for n in names])
    ax.axhline(1.0, color="grey", linestyle="--", label="no false sharing")
    ax.set_xticks(range(len(names)), [n.replace("false_sharing/", "") for n in names], rotation=20, fontsize=7)
    return _finish(fig, ax, "False-sharing factor per layout", "layout",
                   "slowdown against 128 bytes apart (x)", run)


def element_access_chart(run):
    per = summarize.medians(run["micro"], "ns_per_access")
    raw = summarize.medians(run["micro"], "raw_pointer_ns_per_access")
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, pattern in zip(axes.flat, ["sequential_read", "sequential_write", "random_read", "random_write"]):
        for who, source in (("shm_array_vs_raw_pointer", per), ("vector", per),
                            ("boost_offset_ptr_vector", per)):
            points = sorted((int(n.split("/")[-2 if n.endswith("manual_time") else -1]), v) for n, v in source.items()
                            if n.startswith(f"array/{pattern}/{who}/"))
            label = "shm_array" if who == "shm_array_vs_raw_pointer" else who
            if points:
                ax.plot([p for p, _ in points], [v for _, v in points], marker="o", label=label)
        points = sorted((int(n.split("/")[-2 if n.endswith("manual_time") else -1]), v) for n, v in raw.items()
                        if n.startswith(f"array/{pattern}/"))
        if points:
            ax.plot([p for p, _ in points], [v for _, v in points], linestyle="--", label="raw pointer")
        ax.set_xscale("log", base=2)
        ax.set_title(pattern.replace("_", " "), fontsize=9)
        ax.set_xlabel("array size (bytes, log)")
        ax.set_ylabel("ns per access")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("Element access against array size (flat = O(1) access)")
    fig.text(0.01, 0.005, f"Measured on {machine_label(run)}; medians of repetitions", fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig


def lookup_chart(run):
    time = summarize.medians(run["micro"], "real_time")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for what in ("find", "create_destroy"):
        for who in ("shm_table", "boost_named_objects"):
            points = sorted((int(n.split("/")[-1]), v) for n, v in time.items()
                            if n.startswith(f"discovery/{what}/{who}/"))
            if points:
                ax.plot([p for p, _ in points], [v for _, v in points], marker="o", label=f"{who}: {what}")
    ax.set_xscale("log", base=2)
    return _finish(fig, ax, "Lookup and creation by name against the number of structures",
                   "structures in the segment (log)", "time per operation (ns)", run)


def efficiency_chart(run):
    """Each transport as a fraction of the hardware's limits: ping-pong
    against the line round trips, throughput at 64 KiB against memcpy."""
    one = summarize.medians(run["ipc"], "fraction_of_limit")
    two = summarize.medians(run["ipc"], "fraction_of_two_line_limit")
    memcpy = summarize.medians(run["ipc"], "fraction_of_memcpy")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    transports = [t for t in TRANSPORTS if f"ipc/ping_pong/{t}/payload:8/wait:spin" in one]
    xs = range(len(transports))
    left.bar([x - 0.2 for x in xs], [one[f"ipc/ping_pong/{t}/payload:8/wait:spin"] for t in transports], 0.4,
             label="bare line round trip / p50")
    left.bar([x + 0.2 for x in xs], [two.get(f"ipc/ping_pong/{t}/payload:8/wait:spin", 0) for t in transports],
             0.4, label="two-line round trip / p50")
    left.set_xticks(list(xs), transports, rotation=30, fontsize=6)
    left.set_title("Ping-pong, 8 B, spin", fontsize=9)
    left.set_xlabel("transport")
    left.set_ylabel("fraction of the limit (1 = at the limit)")
    left.legend(fontsize=6)
    big = [(t, max((v for n, v in memcpy.items() if n.startswith(f"ipc/throughput/{t}/payload:65536/senders:1/")),
                   default=None)) for t in TRANSPORTS]
    big = [(t, v) for t, v in big if v is not None]
    right.bar(range(len(big)), [v for _, v in big])
    right.set_xticks(range(len(big)), [t for t, _ in big], rotation=30, fontsize=6)
    right.set_title("Throughput, 64 KiB, 1 x 1, best wait", fontsize=9)
    right.set_xlabel("transport")
    right.set_ylabel("fraction of memcpy bandwidth")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.suptitle("Efficiency against the hardware's limits, measured in the same run")
    fig.text(0.01, 0.005, f"Measured on {machine_label(run)}; medians of repetitions", fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def pair_ratio_chart(run):
    """Every headline ratio's per-pair values (so a reader sees the spread),
    coloured by placement regime, with each regime's median and interval."""
    analysis = run["analysis"]
    lines = analysis["headlines"] + analysis["single_process"]
    regimes = analysis["regimes"]
    fig, ax = plt.subplots(figsize=(10, 0.42 * max(4, len(lines)) + 1.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labelled = set()
    for y, h in enumerate(lines):
        single = h in analysis["single_process"]
        groups = [None] if single else range(len(regimes))
        for k, regime in enumerate(groups):
            values = [p["ratio"] for p in h["result"]["pairs"] if single or p["regime"] == regime]
            if not values:
                continue
            offset = 0 if single else (k - (len(regimes) - 1) / 2) * 0.25
            colour = "grey" if single else colours[k % len(colours)]
            label = "single process" if single else f"regime {k + 1}: {pairs.regime_label(regimes[k])}"
            ax.scatter(values, [y + offset] * len(values), s=12, alpha=0.6, color=colour,
                       label=None if label in labelled else label)
            labelled.add(label)
            median, low, high = pairs.interval(values)
            ax.plot([median], [y + offset], marker="|", markersize=14, color="black")
            if low is not None:
                ax.plot([low, high], [y + offset] * 2, color="black", linewidth=1)
    ax.set_yticks(range(len(lines)), [h["measure"] for h in lines], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=0.8)
    return _finish(fig, ax, "Headline ratios, pair by pair (bar: median; line: 95% interval)",
                   "ratio (log)", "headline", run)


CHARTS = [
    ("pair_ratios", pair_ratio_chart),
    ("latency_spin", lambda r: latency_percentiles_chart(r, "spin")),
    ("latency_sleep", lambda r: latency_percentiles_chart(r, "sleep")),
    ("hdr_ping_pong_spin", lambda r: hdr_chart(r, "ping_pong", "spin")),
    ("hdr_ping_pong_sleep", lambda r: hdr_chart(r, "ping_pong", "sleep")),
    ("throughput_spin", lambda r: throughput_chart(r, "spin")),
    ("throughput_sleep", lambda r: throughput_chart(r, "sleep")),
    ("scaling_spin", lambda r: scaling_chart(r, "spin")),
    ("scaling_sleep", lambda r: scaling_chart(r, "sleep")),
    ("false_sharing", false_sharing_chart),
    ("element_access", element_access_chart),
    ("lookup", lookup_chart),
    ("efficiency", efficiency_chart),
]


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
        for name, make in CHARTS:
            fig = make(run)
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


def main(argv):
    args = argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        del args[i:i + 2]
    if not args or any(a.startswith("-") for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    runs = [load_run(d) for d in args]
    missing = [r["dir"] for r in runs if not r["micro"] and not r["ipc"]]
    if missing:
        print(f"report.py: no micro.json or ipc.json in {', '.join(missing)}", file=sys.stderr)
        return 1
    for path in write_report(runs, out or args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
