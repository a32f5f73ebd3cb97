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
