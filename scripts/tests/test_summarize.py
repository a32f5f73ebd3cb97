"""Tests of scripts/summarize.py on fixture result files."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import summarize  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run")


def by_measure(lines):
    return {line["measure"]: line for line in lines}


def test_medians_use_repetitions_and_ignore_aggregate_rows():
    rows = summarize.load(os.path.join(FIXTURE, "micro.json"))
    m = summarize.medians(rows, "shm_array_over_raw_pointer")
    # median of 1.01, 1.50, 1.02 is 1.02; the aggregate row (9.0) is not a repetition
    assert m["array/sequential_read/shm_array_vs_raw_pointer/4096"] == 1.02


def test_array_overhead_reports_the_worst_comparison():
    rows = summarize.load(os.path.join(FIXTURE, "micro.json"))
    [line] = summarize.array_overhead(rows)
    assert line["value"] == 1.03
    assert line["met"]
    assert "random_write" in line["how"]


def test_ipc_headlines_are_ratios_of_figures_from_the_same_run():
    lines = by_measure(summarize.ipc_headlines(summarize.load(os.path.join(FIXTURE, "ipc.json"))))
    ring = lines["SPSC throughput (8 B, spin) / best in-process SPSC ring"]
    assert abs(ring["value"] - 1.2) < 1e-9 and ring["met"]
    mpmc = lines["MPMC 1x1 throughput / SPSC (8 B, spin)"]
    assert abs(mpmc["value"] - 0.4) < 1e-9 and not mpmc["met"]
    assert lines["shmds_spsc ping-pong p50 / cache-line round trip"]["value"] == 1.2
    assert not lines["shmds_mpmc ping-pong p50 / cache-line round trip"]["met"]
    assert lines["false sharing, packed counters (the detector detects)"]["met"]
    assert lines["false sharing, the library's allocator"]["met"]


def test_summary_names_unreliable_runs_and_marks_missed_targets():
    text = summarize.summarize(FIXTURE)
    assert "| NO |" in text
    assert "1 runs saw the cache-line limit move" in text and "shmds_spsc" in text
    assert "1 runs had more processes than CPUs" in text


def test_missing_results_give_an_empty_table_not_an_error(tmp_path):
    text = summarize.summarize(str(tmp_path))
    assert "no headline benchmarks" in text


def test_command_line_writes_summary_md(tmp_path):
    out = tmp_path / "summary.md"
    assert summarize.main(["summarize.py", FIXTURE, "--out", str(out)]) == 0
    assert out.read_text().startswith("| Measure |")


def test_comparison_targets_use_each_transport_at_its_best_wait():
    ipc = summarize.load(os.path.join(FIXTURE, "ipc.json"))
    micro = summarize.load(os.path.join(FIXTURE, "micro.json"))
    lines = by_measure(summarize.comparison_headlines(ipc, micro))
    bmq = lines["SPSC throughput / boost_message_queue (8 B, each at its best wait)"]
    assert bmq["value"] == 120e6 / 3e6 and bmq["met"]  # 40x its best (sleep), not its spin figure
    assert "sleep" in bmq["how"]
    pipe = lines["SPSC throughput / pipe (8 B, each at its best wait)"]
    assert pipe["value"] == 80 and not pipe["met"]
    assert lines["SPSC throughput / boost_lockfree_spsc (8 B, each at its best wait)"]["value"] == 0.8
    assert lines["SPSC sleep-only round trip / pipe's"]["value"] == 50000 / 80000
    assert lines["SPSC spin-then-sleep round trip / spin round trip"]["value"] == 130 / 120
    lookup = lines["lookup among 65,536: shm_table / Boost named objects"]
    assert lookup["value"] == 300 / 650 and lookup["met"]


def test_peer_table_and_not_applicable_runs_are_reported():
    text = summarize.summarize(FIXTURE)
    assert "| pipe | 80 |" in text
    assert "| boost_lockfree_spsc | 0.8 |" in text
    assert "cannot wait by sleep" in text


def test_wide_spread_between_repetitions_is_noted():
    noisy = [{"run_name": "x", "run_type": "iteration", "items_per_second": v} for v in (10, 20, 30)]
    calm = [{"run_name": "y", "run_type": "iteration", "items_per_second": v} for v in (10, 10.5, 10.2)]
    assert [n for n, _ in summarize.wide_spread(noisy + calm)] == ["x"]
