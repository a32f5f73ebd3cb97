"""Tests of scripts/gate.py on generated result rows."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import gate  # noqa: E402


def rows(name, field, values):
    return [{"name": name, "run_name": name, "run_type": "iteration", field: v} for v in values] + \
           [{"name": name + "_mean", "run_name": name, "run_type": "aggregate", field: 0.0}]


def verdicts(base, cur, **kw):
    return {(r[0], r[2]): r[-1] for r in gate.compare(base, cur, **kw)}


def runs(name, field, values, limit):
    """Rounds of an interleaved group, each run under `limit` (ns)."""
    return [{"name": f"paired/g/{name}/round:{k}/iterations:1/repeats:1/manual_time", "run_type": "iteration",
             "limit_rtt_before_ns": limit, "limit_rtt_after_ns": limit, field: v} for k, v in enumerate(values)]


def test_a_large_significant_slowdown_is_a_regression():
    base = rows("b", "real_time", [100, 101, 99, 100, 102, 98])
    cur = rows("b", "real_time", [120, 121, 119, 122, 118, 120])
    assert verdicts(base, cur)[("b", "real_time")] == "REGRESSION"


def test_higher_is_better_metrics_regress_downwards():
    base = rows("t", "items_per_second", [10, 10.2, 9.9, 10.1, 10, 9.8])
    cur = rows("t", "items_per_second", [8, 8.1, 7.9, 8.2, 8, 7.8])
    assert verdicts(base, cur)[("t", "items_per_second")] == "REGRESSION"
    assert verdicts(cur, base)[("t", "items_per_second")] == "improvement"


def test_a_significant_but_small_change_passes():
    base = rows("b", "real_time", [100, 100.1, 100.2, 100.1, 100, 100.2])
    cur = rows("b", "real_time", [102, 102.1, 102.2, 102.1, 102, 102.2])  # 2% < 5%
    assert verdicts(base, cur)[("b", "real_time")] == "same"


def test_a_large_but_noisy_change_passes():
    base = rows("b", "real_time", [100, 150, 80, 200, 90, 120])
    cur = rows("b", "real_time", [130, 90, 210, 100, 160, 85])
    assert verdicts(base, cur)[("b", "real_time")] == "same"


def test_too_few_repetitions_are_reported_not_guessed():
    base = rows("b", "real_time", [100, 100, 100])
    cur = rows("b", "real_time", [200, 200, 200])
    assert verdicts(base, cur)[("b", "real_time")] == "not enough repetitions"


def test_command_line_exit_codes_and_table(tmp_path, capsys):
    base, cur, same = tmp_path / "base.json", tmp_path / "cur.json", tmp_path / "same.json"
    base.write_text(json.dumps({"benchmarks": rows("b", "p99_ns", [100, 101, 99, 100, 102])}))
    cur.write_text(json.dumps({"benchmarks": rows("b", "p99_ns", [150, 151, 149, 152, 148])}))
    same.write_text(json.dumps({"benchmarks": rows("b", "p99_ns", [100, 101, 99, 100, 102])}))
    assert gate.main(["gate.py", str(base), str(cur)]) == 1
    out = capsys.readouterr().out
    assert "| b | - | p99_ns | 100 | 150 | +50.0% |" in out and "REGRESSION" in out
    assert gate.main(["gate.py", str(base), str(same)]) == 0
    assert gate.main(["gate.py", str(base)]) == 2
    assert gate.main(["gate.py", str(base), str(tmp_path / "missing.json")]) == 2


# ---- deterministic mode --------------------------------------------------------------------------

def test_callgrind_totals_are_read_from_its_output():
    assert gate.callgrind_total("events: Ir\nsummary: 781892\ntotals: 781892\n") == 781892


def instruction_rows(**per_op):
    return [{"name": f"instructions/{k}", "instructions_per_op": v} for k, v in per_op.items()]


def test_instruction_counts_regress_beyond_the_tolerance_only():
    base = instruction_rows(spsc=78.0, find=949.0, gone=1.0)
    cur = instruction_rows(spsc=78.9, find=990.0, new=5.0)
    v = {r[0]: r[-1] for r in gate.compare_instructions(base, cur, tolerance=0.02)}
    assert v["instructions/spsc"] == "same"  # +1.2%
    assert v["instructions/find"] == "REGRESSION"  # +4.3%
    assert v["instructions/gone"] == "gone" and v["instructions/new"] == "new"


def test_instructions_command_line(tmp_path, capsys):
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"
    base.write_text(json.dumps({"context": {"toolchain": "g++ 12"}, "benchmarks": instruction_rows(spsc=78.0)}))
    cur.write_text(json.dumps({"context": {"toolchain": "g++ 13"}, "benchmarks": instruction_rows(spsc=90.0)}))
    assert gate.main(["gate.py", "--mode", "instructions", str(base), str(cur)]) == 1
    out = capsys.readouterr().out
    assert "| instructions/spsc | 78.0 | 90.0 | +15.4% | REGRESSION |" in out
    assert "different toolchains" in out
    assert gate.main(["gate.py", "--mode", "instructions", str(base), str(base)]) == 0


def test_mismatched_or_malformed_inputs_are_clear_errors(tmp_path, capsys):
    wall = tmp_path / "wall.json"
    wall.write_text(json.dumps({"benchmarks": rows("b", "real_time", [1, 2, 3, 4, 5])}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmarks": rows("c", "real_time", [1, 2, 3, 4, 5])}))
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    assert gate.main(["gate.py", "--mode", "instructions", str(wall), str(wall)]) == 2
    assert "has no instruction counts" in capsys.readouterr().err
    assert gate.main(["gate.py", str(wall), str(other)]) == 2
    assert "no benchmark in common" in capsys.readouterr().err
    assert gate.main(["gate.py", str(wall), str(broken)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_runs_are_compared_only_within_the_same_placement_regime():
    fast, slow = [100, 101, 99, 100, 102, 98], [34, 33, 35, 34, 33, 34]
    # the baseline ran near (100 ns) and far (350 ns); the current run only far, and just as fast there
    base = runs("ipc/throughput/x", "items_per_second", fast, 100.0) + runs("ipc/throughput/x", "items_per_second", slow, 350.0)
    cur = runs("ipc/throughput/x", "items_per_second", slow, 352.0)
    rows = gate.compare(base, cur)
    assert [(r[0], r[1].split(":")[0], r[-1]) for r in rows] == [("ipc/throughput/x", "R2", "same")]
    # a slowdown within the regime is still caught
    cur = runs("ipc/throughput/x", "items_per_second", [v * 0.7 for v in slow], 352.0)
    assert [r[-1] for r in gate.compare(base, cur)] == ["REGRESSION"]


def test_a_benchmark_measured_only_in_different_regimes_is_not_compared():
    base = runs("ipc/throughput/x", "items_per_second", [100, 101, 99, 100, 102], 100.0)
    cur = runs("ipc/throughput/x", "items_per_second", [34, 33, 35, 34, 33], 350.0)
    [row] = gate.compare(base, cur)
    assert row[-1] == "not compared: different regimes" and "baseline R1" in row[1] and "current R2" in row[1]


def test_runs_whose_limit_moved_are_left_out():
    base = runs("ipc/throughput/x", "items_per_second", [100, 101, 99, 100, 102], 100.0)
    cur = runs("ipc/throughput/x", "items_per_second", [50, 51, 49, 50, 52], 100.0)
    for row in cur:
        row["limit_rtt_after_ns"] = 300.0
    assert gate.compare(base, cur) == []


def test_a_results_folder_stands_for_its_micro_and_ipc_files(tmp_path, capsys):
    for side, value in (("base", 100), ("cur", 150)):
        folder = tmp_path / side
        folder.mkdir()
        (folder / "micro.json").write_text(json.dumps({"benchmarks": rows("m", "real_time", [value] * 5)}))
        (folder / "ipc.json").write_text(json.dumps({"benchmarks": rows("i", "p50_ns", [100, 101, 99, 100, 102])}))
    assert gate.main(["gate.py", str(tmp_path / "base"), str(tmp_path / "cur")]) == 1
    out = capsys.readouterr().out
    assert "| m | - | real_time | 100 | 150 |" in out and "| i | - | p50_ns |" in out
    assert gate.main(["gate.py", str(tmp_path / "base"), str(tmp_path / "nowhere")]) == 2


def test_malformed_command_lines_exit_2_and_help_exits_0(tmp_path, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"benchmarks": []}))
    for line in (["--out"], [str(base), str(base), "--min-change"], ["--mode", "cycles", str(base), str(base)],
                 ["--collect-instructions", "index"], ["--collect-instructions", "index", "gcc", str(base)]):
        assert gate.main(["gate.py"] + line) == 2, line
        assert "usage: gate.py" in capsys.readouterr().err
    assert gate.main(["gate.py", "--help"]) == 0
    assert "--collect-instructions INDEX TOOLCHAIN" in capsys.readouterr().out


def test_collect_instructions_writes_what_instructions_mode_reads(tmp_path, capsys):
    # as scripts/count-instructions and bench/tests/gate_proof.sh call it: an index of callgrind outputs
    for name, total in (("spsc_push_pop", 78000), ("find", 9490)):
        (tmp_path / f"{name}.out").write_text(f"events: Ir\nsummary: {total}\ntotals: {total}\n")
    index = tmp_path / "index"
    index.write_text(f"spsc_push_pop 1000 {tmp_path / 'spsc_push_pop.out'}\nfind 10 {tmp_path / 'find.out'}\n\n")
    assert gate.main(["gate.py", "--collect-instructions", str(index), "g++ 12, Release"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["context"]["toolchain"] == "g++ 12, Release"
    assert [(r["name"], r["instructions_per_op"]) for r in counts["benchmarks"]] == [
        ("instructions/spsc_push_pop", 78.0), ("instructions/find", 949.0)]
    (tmp_path / "counts.json").write_text(json.dumps(counts))
    assert gate.main(["gate.py", "--mode", "instructions", str(tmp_path / "counts.json"),
                      str(tmp_path / "counts.json")]) == 0


def test_the_help_shows_each_mode_as_its_own_command_line(capsys):
    assert gate.main(["gate.py", "--help"]) == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "gate.py --mode instructions [--tolerance X]" in usage
    assert "gate.py --collect-instructions INDEX TOOLCHAIN" in usage
