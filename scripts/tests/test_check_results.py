"""Tests of bench/tests/check_results.py, the contract between the benchmark
programs and the scripts, and of the fixture run against that contract: the
fixture stands for the programs' output in every script test, so it must keep
the contract they keep (else the two drift apart unseen)."""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "bench", "tests"))

import check_results  # noqa: E402

FIXTURE = os.path.join(HERE, "fixtures", "run")
INCOMPLETE = os.path.join(ROOT, "bench", "tests", "fixtures", "incomplete.json")


def read(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.parametrize("file", ["micro.json", "ipc.json"])
def test_the_fixture_run_keeps_the_contract(file):
    assert check_results.problems(read(os.path.join(FIXTURE, file)), os.path.join(FIXTURE, "histograms")) == []


def test_a_file_lacking_fields_is_refused_naming_each():
    found = check_results.problems(read(INCOMPLETE))
    assert "context lacks kernel" in found and "context lacks date" not in found
    name = "ipc/ping_pong/x/payload:8/wait:spin/iterations:1/manual_time"
    assert f"{name} lacks mid_mean_ns" in found and f"{name} lacks limit_two_line_rtt_ns" in found
    assert f"{name} lacks p50_ns" not in found


def contract_keeping(rows):
    """A result document with every context key the contract requires, and `rows`."""
    return {"context": {key: "x" for key in check_results.REQUIRED_CONTEXT}, "benchmarks": rows}


def measurement(name, **counters):
    return {"name": name, "run_name": name, "run_type": "iteration", "iterations": 1, "real_time": 1.0,
            "cpu_time": 1.0, "time_unit": "ms", **counters}


def test_the_counters_required_follow_the_family_of_the_name():
    throughput = "paired/throughput_8B/ipc/throughput/pipe/payload:8/senders:1/receivers:1/wait:spin/round:0"
    found = check_results.problems(contract_keeping([
        measurement(throughput), measurement("array/random_read/shm_array_vs_raw_pointer/4096/manual_time"),
        measurement("array/random_read/vector/4096/manual_time"), measurement("limits/cacheline_round_trip")]))
    assert sorted(found) == sorted(
        [f"{throughput} lacks {key}" for key in check_results.THROUGHPUT_COUNTERS] +
        [f"array/random_read/shm_array_vs_raw_pointer/4096/manual_time lacks {key}"
         for key in check_results.ARRAY_COUNTERS])


def test_only_a_benchmark_that_cannot_apply_may_end_in_an_error():
    rows = [measurement("ipc/throughput/x/payload:8/senders:1/receivers:1/wait:sleep", error_occurred=True,
                        error_message="not applicable: x cannot wait by sleep"),
            measurement("ipc/ping_pong/x/payload:8/wait:spin", error_occurred=True, error_message="crashed")]
    assert check_results.problems(contract_keeping(rows)) == ["ipc/ping_pong/x/payload:8/wait:spin failed: crashed"]


def test_a_latency_run_needs_its_histogram_file(tmp_path):
    counters = {key: 1.0 for key in check_results.LATENCY_COUNTERS + check_results.LOAD_COUNTERS}
    result = contract_keeping([measurement("ipc/latency/x/payload:8/load:50%/wait:spin/iterations:1/manual_time",
                                           **counters)])
    assert check_results.problems(result, str(tmp_path)) == [
        "ipc/latency/x/payload:8/load:50%/wait:spin/iterations:1/manual_time has no histogram file"]
    (tmp_path / "ipc_latency_x_payload_8_load_50__wait_spin_repetition_0.json").write_text("{}")
    assert check_results.problems(result, str(tmp_path)) == []
    assert check_results.problems(result) == []  # without a folder, histograms are not asked for


def test_the_command_line_exits_0_1_or_2(capsys):
    histograms = os.path.join(FIXTURE, "histograms")
    assert check_results.main(["check_results.py", os.path.join(FIXTURE, "ipc.json"), "--histograms", histograms]) == 0
    assert check_results.main(["check_results.py", INCOMPLETE]) == 1
    assert "context lacks kernel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        check_results.main(["check_results.py"])
    assert stopped.value.code == 2 and "usage: check_results.py" in capsys.readouterr().err


def test_an_empty_file_is_refused_as_one_without_benchmarks(tmp_path, capsys):
    # Google Benchmark leaves its output file empty when its filter matched nothing
    empty = tmp_path / "result.json"
    empty.write_text("")
    assert check_results.main(["check_results.py", str(empty)]) == 1
    assert "no benchmarks" in capsys.readouterr().err
