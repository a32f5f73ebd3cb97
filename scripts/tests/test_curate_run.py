"""Tests of scripts/curate_run.py: a finished run trimmed into a reference run."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import curate_run  # noqa: E402

NOT_APPLICABLE = "not applicable: shm_spsc_ring cannot wait by sleep"


def row(name, repetition=0, **fields):
    return {"name": name, "run_type": "iteration", "repetition_index": repetition, "real_time": 1.0, **fields}


def test_aggregates_go_and_a_not_applicable_benchmark_keeps_one_row():
    rows = [row("a", 0), row("a", 1), {"name": "a_median", "run_type": "aggregate", "real_time": 1.0},
            row("ring/sleep", 0, error_occurred=True, error_message=NOT_APPLICABLE),
            row("ring/sleep", 1, error_occurred=True, error_message=NOT_APPLICABLE),
            row("b", 0, error_occurred=True, error_message="crashed"),
            row("b", 1, error_occurred=True, error_message="crashed")]
    kept = curate_run.kept_rows(rows)
    assert [(r["name"], r["repetition_index"]) for r in kept] == [
        ("a", 0), ("a", 1), ("ring/sleep", 0), ("b", 0), ("b", 1)]  # real errors are all kept


def test_compact_text_is_one_row_per_line_and_reads_back_the_same():
    document = {"context": {"git_commit": "abc"}, "benchmarks": [row("a"), row("b", p50_ns=3.0)]}
    text = curate_run.compact_text(document)
    lines = text.splitlines()
    assert lines[0].startswith('{"context":') and lines[1] == '"benchmarks":['
    assert len(lines) == 5 and lines[-1] == "]}"
    assert json.loads(text) == document


def test_only_the_reference_files_and_the_first_five_rounds_histograms_are_kept():
    assert curate_run.is_kept("summary.md") and curate_run.is_kept("throughput_spin.png")
    assert curate_run.is_kept("histograms/ipc_ping_pong_pipe_payload_8_wait_spin_round_4_repetition_0.json")
    assert not curate_run.is_kept("histograms/ipc_ping_pong_pipe_payload_8_wait_spin_round_5_repetition_0.json")
    assert not curate_run.is_kept("histograms/ipc_ping_pong_pipe_payload_8_wait_spin_round_14_repetition_0.json")
    assert not curate_run.is_kept("report.html")
    assert not curate_run.is_kept("parts/ipc_round_0.json")
    assert not curate_run.is_kept("other/summary.md")


def test_curate_trims_a_run_folder_in_place(tmp_path):
    document = {"context": {}, "benchmarks": [row("a"), {"name": "a_mean", "run_type": "aggregate"}]}
    (tmp_path / "ipc.json").write_text(json.dumps(document, indent=2))
    (tmp_path / "report.html").write_text("<html/>")
    (tmp_path / "summary.md").write_text("# summary\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "round_0.json").write_text("{}")
    (tmp_path / "histograms").mkdir()
    (tmp_path / "histograms" / "x_round_0_repetition_0.json").write_text("{}")
    (tmp_path / "histograms" / "x_round_7_repetition_0.json").write_text("{}")
    deleted = curate_run.curate(str(tmp_path))
    assert deleted == ["histograms/x_round_7_repetition_0.json", "parts/round_0.json", "report.html"]
    assert not (tmp_path / "parts").exists()
    assert sorted(os.listdir(tmp_path)) == ["histograms", "ipc.json", "summary.md"]
    assert json.loads((tmp_path / "ipc.json").read_text())["benchmarks"] == [row("a")]


def test_the_command_refuses_what_is_not_a_folder(tmp_path, capsys):
    assert curate_run.main(["curate_run.py", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
