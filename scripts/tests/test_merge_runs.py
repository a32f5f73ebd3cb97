"""Tests of scripts/merge_runs.py: one run's parts, one process per round, made one file."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import merge_runs  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "merge_runs.py")


def part(round_, seed="7", names=("a",)):
    return {"context": {"date": f"d{round_}", "only_round": str(round_), "pair_order_seed": seed},
            "benchmarks": [{"name": f"paired/g/{n}/round:{round_}", "real_time": round_} for n in names]}


def test_rows_keep_part_order_and_the_first_context_speaks_for_the_run():
    merged = merge_runs.merge([part(0, names=("a", "b")), part(1), part(2)])
    assert [r["name"] for r in merged["benchmarks"]] == [
        "paired/g/a/round:0", "paired/g/b/round:0", "paired/g/a/round:1", "paired/g/a/round:2"]
    assert merged["context"]["date"] == "d0"
    assert merged["context"]["processes"] == "3"
    assert "only_round" not in merged["context"]  # the merged file holds every round
    assert merged["context"]["pair_order_seed"] == "7"


def test_seeds_that_differ_are_all_recorded():
    merged = merge_runs.merge([part(0, seed="7"), part(1, seed="9")])
    assert merged["context"]["pair_order_seed"] == "7,9"


def test_nothing_to_merge_is_an_error():
    with pytest.raises(ValueError, match="no parts"):
        merge_runs.merge([])


def test_the_command_writes_the_merge_and_names_a_bad_part(tmp_path):
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"ipc-{k}.json")
        paths[-1].write_text(json.dumps(part(k)))
    out = tmp_path / "ipc.json"
    done = subprocess.run([sys.executable, SCRIPT, str(out), *map(str, paths)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["benchmarks"]) == 2

    broken = tmp_path / "ipc-9.json"
    broken.write_text("{ not json")
    done = subprocess.run([sys.executable, SCRIPT, str(out), str(paths[0]), str(broken)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "ipc-9.json" in done.stderr


def test_a_part_whose_process_matched_nothing_adds_no_rows(tmp_path):
    # --filter can leave a round's process without a benchmark; Google Benchmark then writes an empty file
    empty, full = tmp_path / "ipc-0.json", tmp_path / "ipc-1.json"
    empty.write_text("")
    full.write_text(json.dumps(part(1)))
    out = tmp_path / "ipc.json"
    done = subprocess.run([sys.executable, SCRIPT, str(out), str(empty), str(full)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    merged = json.loads(out.read_text())
    assert [r["name"] for r in merged["benchmarks"]] == ["paired/g/a/round:1"]
    assert merged["context"]["date"] == "d1" and merged["context"]["processes"] == "2"


@pytest.mark.parametrize("line", [[], ["out.json"], ["--out", "x", "a.json"]])
def test_a_malformed_command_line_exits_2_with_the_usage(line, capsys):
    with pytest.raises(SystemExit) as stopped:
        merge_runs.main(["merge_runs.py"] + line)
    assert stopped.value.code == 2
    assert "usage: merge_runs.py" in capsys.readouterr().err
