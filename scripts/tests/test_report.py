"""Tests of scripts/report.py on fixture result files."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import report  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run")


def test_percentile_curve_ends_at_100_percent_and_the_maximum():
    xs, ys = report.percentile_curve([(100, 101, 10), (200, 201, 4), (300, 301, 5), (1000, 1007, 1)])
    assert xs[0] == 50.0 and xs[-1] == 100.0
    assert ys == [101, 201, 301, 1007]


def test_every_chart_has_a_title_labelled_axes_and_names_the_machine():
    run = report.load_run(FIXTURE)
    for name, chart in report.CHARTS:
        fig = report.plot(chart(run), report.machine_label(run))
        axes = fig.get_axes()
        assert axes, name
        assert any(ax.get_title() for ax in axes) or fig._suptitle is not None, name
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes), name
        assert any("fixture" in t.get_text() for t in fig.texts), f"{name} does not name the machine"
        report.plt.close(fig)


def test_the_latency_cpu_chart_has_a_point_per_transport_wait_and_load():
    chart = report.latency_cpu_chart(report.load_run(FIXTURE))
    p50, p99 = chart.panels
    points = {s.label: list(zip(s.xs, s.ys)) for s in p50.series}
    assert points["shmds_spsc"] == [(283, 70)]
    assert sorted(points) == sorted(["shmds_spsc", "shmds_mpmc", "boost_message_queue", "pipe"])
    assert {s.label: s.ys for s in p99.series}["pipe"] == [40000]
    assert p50.xlog == 10 and p50.ylog == 10


def test_the_pair_chart_shows_every_pair_of_every_headline_by_regime():
    run = report.load_run(FIXTURE)
    fig = report.plot(report.pair_ratio_chart(run), report.machine_label(run))
    [ax] = fig.get_axes()
    plotted = sum(len(c.get_offsets()) for c in ax.collections)
    analysis = run["analysis"]
    assert plotted == sum(len(h["result"]["pairs"]) for h in analysis["headlines"] + analysis["single_process"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("regime 1:") for t in labels) and any(t.startswith("regime 2:") for t in labels)
    report.plt.close(fig)


def test_report_writes_charts_markdown_and_self_contained_html(tmp_path):
    written = report.write_report([report.load_run(FIXTURE)], str(tmp_path))
    names = {os.path.basename(p) for p in written}
    assert {"report.md", "report.html", "latency_spin.png", "element_access.png"} <= names
    md = (tmp_path / "report.md").read_text()
    assert "| Measure |" in md and "![latency_spin](latency_spin.png)" in md
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "src='latency_spin.png'" not in page


def test_several_hosts_side_by_side(tmp_path):
    runs = [report.load_run(FIXTURE), report.load_run(FIXTURE)]
    written = report.write_report(runs, str(tmp_path))
    assert any(p.endswith("latency_spin-fixture-0.png") for p in written)
    assert any(p.endswith("latency_spin-fixture-1.png") for p in written)
    md = (tmp_path / "report.md").read_text()
    assert md.count("## Headlines: ") == 2
    assert "## Headlines, side by side" in md
    assert "| Measure | run | run | Target |" in md
    cell = "R1: 80 [80, 80], 7 pairs, NO; R2: 80 [80, 80], 7 pairs, NO"
    assert f"| SPSC throughput / pipe (8 B, each at its best wait) | {cell} | {cell} | >= 100 |" in md


def test_command_line_refuses_a_folder_without_results(tmp_path, capsys):
    assert report.main(["report.py", str(tmp_path)]) == 1
    assert "no micro.json or ipc.json" in capsys.readouterr().err


def test_a_malformed_command_line_exits_2_with_the_usage(capsys):
    for line in ([], ["--out"], ["--colour", FIXTURE]):
        with pytest.raises(SystemExit) as stopped:
            report.main(["report.py"] + line)
        assert stopped.value.code == 2
        assert "usage: report.py" in capsys.readouterr().err


# ---- each chart's data, on the fixture run (fixtures/make_run.py says what it holds) -------------

RUN = report.load_run(FIXTURE)


def series_of(panel):
    return {s.label: s for s in panel.series}


def close(xs, ys):
    return all(abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(xs, ys, strict=True))


def test_latency_percentiles_are_medians_per_transport_that_ran():
    [panel] = report.latency_percentile_chart(RUN, "spin").panels
    assert panel.xcategories == ("shmds_spsc", "shmds_mpmc", "pipe")  # the project's first, then the peers
    bars = series_of(panel)
    assert list(bars) == ["p50", "p90", "p99", "p99.9", "p99.99", "max"]
    # p50 of shmds_spsc: 120-123.6 ns in regime 1, 360-370.8 in regime 2: the median of 14 lies between
    assert close(bars["p50"].ys, [(123.6 + 360) / 2, (154.5 + 450) / 2, (1545 + 4500) / 2])
    assert close(bars["p99"].ys, [2 * v for v in bars["p50"].ys])
    assert [t for t in report.latency_percentile_chart(RUN, "sleep").panels[0].xcategories] == ["shmds_spsc", "pipe"]


def test_the_hdr_curve_runs_from_the_median_to_the_maximum():
    [panel] = report.hdr_chart(RUN, "spin").panels
    [curve] = panel.series
    assert curve.label == "shmds_spsc" and curve.ys == [101, 201, 301, 1007]
    assert close(curve.xs, [2.0, 1 / 0.3, 20.0, 1e7])  # 50%, 70%, 95%, 100% (capped)
    assert report.hdr_chart(RUN, "sleep").panels[0].series == []  # no histogram of a sleeping run


def test_throughput_against_payload_takes_the_one_by_one_runs_only():
    lines = series_of(report.throughput_chart(RUN, "spin").panels[0])
    assert list(lines) == ["shmds_spsc", "shmds_mpmc", "boost_lockfree_spsc", "boost_message_queue", "pipe"]
    assert lines["shmds_spsc"].xs == [8, 4096]
    assert close(lines["shmds_spsc"].ys, [8 * (34 + 2 / 3 + 100) / 2, 4096.0])  # MB/s
    assert lines["shmds_mpmc"].xs == [8]  # its 2 x 2 run is a shape, not a payload


def test_scaling_has_a_bar_per_shape_and_zero_where_a_transport_did_not_run_it():
    [panel] = report.scaling_chart(RUN, "spin").panels
    bars = series_of(panel)
    assert list(bars) == ["1 x 1", "2 x 2"]
    assert bars["2 x 2"].ys == [0, 1.0, 0, 0, 0] and panel.xcategories[1] == "shmds_mpmc"


def test_false_sharing_shows_each_layouts_median_against_no_false_sharing():
    [panel] = report.false_sharing_chart(RUN).panels
    assert panel.xcategories == ("counters/layout:allocator/processes:2", "counters/layout:packed/processes:2")
    assert close(panel.series[0].ys, [1.01, 3.45])
    assert panel.reference == ("horizontal", 1.0, "no false sharing")


def test_element_access_has_a_panel_per_pattern_and_leaves_out_aggregates():
    chart = report.element_access_chart(RUN)
    assert [p.title for p in chart.panels] == ["sequential read", "sequential write", "random read", "random write"]
    read = series_of(chart.panels[0])
    assert (read["shm_array"].xs, read["shm_array"].ys) == ([4096], [1.02])  # not the aggregate row's 9.0
    assert (read["raw pointer"].xs, read["raw pointer"].ys, read["raw pointer"].style) == ([4096], [1.0], "dashed")
    assert chart.panels[1].series == []


def test_lookup_takes_each_structure_alone_not_the_interleaved_pair():
    lines = series_of(report.lookup_chart(RUN).panels[0])
    assert {label: (s.xs, s.ys) for label, s in lines.items()} == {
        "shm_table: find": ([65536], [300.0]), "boost_named_objects: find": ([65536], [650.0])}


def test_efficiency_against_the_limits_and_memcpy():
    left, right = report.efficiency_chart(RUN).panels
    assert left.xcategories == ("shmds_spsc", "shmds_mpmc", "pipe")
    bars = series_of(left)
    # each run's limit over its p50, and the two-line limit (twice the line's) over it: twice as much
    assert close(bars["two-line round trip / p50"].ys, [2 * v for v in bars["bare line round trip / p50"].ys])
    assert right.series[0].xs == []  # no 64 KiB run in the fixture


def test_the_pair_ratio_chart_has_every_pair_once_per_regime():
    [panel] = report.pair_ratio_chart(RUN).panels
    analysis = RUN["analysis"]
    lines = analysis["headlines"] + analysis["single_process"]
    points = [s for s in panel.series if s.style == "points"]
    assert sum(len(s.xs) for s in points) == sum(len(h["result"]["pairs"]) for h in lines)
    assert panel.ycategories == tuple(h["measure"] for h in lines)
    assert {s.colour for s in points} == {"C0", "C1", "grey"}  # regime 1, regime 2, single process
    labels = [s.label for s in points if s.label]
    assert len(labels) == len(set(labels)) == 3  # each in the legend once


# ---- drawing ---------------------------------------------------------------------------------------

def test_plot_centres_bars_on_their_category_and_titles_a_chart_of_several_panels():
    bars = [report.Series("a", ["x", "y"], [1, 2], "bars"), report.Series("b", ["y"], [3], "bars")]
    chart = report.Chart("Two", [report.Panel("what", "how much", bars, title="left", xcategories=("x", "y")),
                                 report.Panel("size", "time", [report.Series("t", [1, 2], [3, 4], "dots")],
                                              title="right", xlog=2)], columns=2)
    fig = report.plot(chart, "machine")
    left, right = fig.get_axes()
    centres = sorted(round(p.get_x() + p.get_width() / 2, 6) for p in left.patches)
    assert centres == [-0.2, 0.8, 1.2]  # a: x and y, b: y, side by side around ticks 0 and 1
    assert [t.get_text() for t in left.get_xticklabels()] == ["x", "y"]
    assert fig._suptitle.get_text() == "Two" and (left.get_title(), right.get_title()) == ("left", "right")
    assert right.get_xscale() == "log" and any("machine" in t.get_text() for t in fig.texts)
    report.plt.close(fig)
