"""Tests of scripts/results.py: loading runs, iteration rows, benchmark names, transports."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import results  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run")


# ---- names -----------------------------------------------------------------------------------

def test_a_round_of_a_group_is_a_run_of_its_plain_benchmark():
    name = results.parse_name("paired/throughput_8B/ipc/throughput/pipe/payload:8/senders:1/receivers:1/wait:spin/"
                              "round:12/iterations:1/repeats:1/manual_time")
    assert (name.plain, name.group, name.round) == (
        "ipc/throughput/pipe/payload:8/senders:1/receivers:1/wait:spin", "throughput_8B", 12)
    name = results.parse_name("paired/false_sharing/false_sharing/counters/layout:packed/processes:2/round:0/"
                              "iterations:1/manual_time")
    assert (name.plain, name.group, name.round) == ("false_sharing/counters/layout:packed/processes:2",
                                                    "false_sharing", 0)
    assert results.parse_name("array/random_read/vector/4096/manual_time")[:3] == (
        "array/random_read/vector/4096", None, None)
    assert results.parse_name("discovery/find/shm_table/65536")[:3] == ("discovery/find/shm_table/65536", None, None)


def test_a_throughput_name_carries_its_transport_payload_shape_and_wait():
    name = results.parse_name("ipc/throughput/shmds_mpmc/payload:4096/senders:2/receivers:1/wait:spin_then_sleep"
                              "/iterations:1/manual_time")
    assert (name.family, name.transport, name.payload, name.senders, name.receivers, name.wait) == (
        "ipc/throughput", "shmds_mpmc", 4096, 2, 1, "spin_then_sleep")
    assert name.argument is None


def test_latency_and_false_sharing_names_keep_their_other_parameters():
    latency = results.parse_name("ipc/latency/pipe/payload:8/load:50%/wait:sleep/iterations:1/manual_time")
    assert (latency.family, latency.transport, latency.parameter("load"), latency.wait) == (
        "ipc/latency", "pipe", "50%", "sleep")
    counters = results.parse_name("false_sharing/counters/layout:allocator/processes:2")
    assert (counters.family, counters.subject, counters.transport) == ("false_sharing/counters", None, None)
    assert counters.parameters == (("layout", "allocator"), ("processes", "2"))


def test_array_and_discovery_names_end_in_their_argument():
    array = results.parse_name("array/random_write/shm_array_vs_raw_pointer/262144/manual_time")
    assert (array.family, array.subject, array.argument, array.transport) == (
        "array/random_write", "shm_array_vs_raw_pointer", 262144, None)
    lookup = results.parse_name("paired/lookup/discovery/find/shm_table_vs_boost_named_objects/65536/round:3"
                                "/iterations:20/repeats:3/manual_time")
    assert (lookup.family, lookup.subject, lookup.argument, lookup.group, lookup.round) == (
        "discovery/find", "shm_table_vs_boost_named_objects", 65536, "lookup", 3)


def test_names_outside_the_grammar_still_parse():
    # BENCHMARK(push_pop<...>)->Arg(64): '::' is not a parameter's colon
    name = results.parse_name("push_pop<shmds::shm_queue<std::uint64_t>>/64")
    assert (name.plain, name.family, name.subject, name.parameters, name.argument) == (
        "push_pop<shmds::shm_queue<std::uint64_t>>/64", "push_pop<shmds::shm_queue<std::uint64_t>>", None, (), 64)
    assert results.parse_name("limits/memcpy_64MiB").family == "limits/memcpy_64MiB"
    assert results.parse_name("").plain == ""


def test_a_row_is_named_by_its_run_name_not_its_aggregate_name():
    row = {"name": "ipc/ping_pong/pipe/payload:8/wait:spin/repeats:3_mean",
           "run_name": "ipc/ping_pong/pipe/payload:8/wait:spin/repeats:3"}
    assert results.row_name(row).plain == "ipc/ping_pong/pipe/payload:8/wait:spin"
    assert results.row_name({"name": "array/random_read/vector/4096"}).argument == 4096


def test_built_names_parse_back_to_what_built_them():
    name = results.parse_name(results.throughput_name("pipe", "sleep", payload=4096))
    assert (name.transport, name.wait, name.payload, name.senders, name.receivers) == ("pipe", "sleep", 4096, 1, 1)
    assert results.ping_pong_name("shmds_spsc") == "ipc/ping_pong/shmds_spsc/payload:8/wait:spin"


def test_histogram_files_are_named_as_the_benchmark_writes_them():
    files = os.listdir(os.path.join(FIXTURE, "histograms"))
    prefix = results.histogram_file_prefix(results.ping_pong_name("shmds_spsc"))
    assert prefix == "ipc_ping_pong_shmds_spsc_payload_8_wait_spin"
    ping_pong = [f for f in files if f.startswith("ipc_ping_pong_")]
    assert ping_pong and all(f.startswith(prefix + "_repetition_") for f in ping_pong)
    latency = results.histogram_file_prefix("ipc/latency/shmds_spsc/payload:8/load:10%/wait:spin_then_sleep")
    assert latency + "_repetition_0.json" in files
    assert all(f.startswith(("ipc_ping_pong_", "ipc_latency_")) for f in files)
    assert results.histogram_file_prefix("ipc/latency/x/payload:8/load:50%/wait:spin", 2) == \
        "ipc_latency_x_payload_8_load_50__wait_spin_round_2"


# ---- rows ------------------------------------------------------------------------------------

def test_iterations_are_single_runs_without_errors():
    rows = [{"name": "a", "run_type": "iteration"}, {"name": "a_mean", "run_type": "aggregate"},
            {"name": "b"}, {"name": "c", "run_type": "iteration", "error_occurred": True}]
    assert [r["name"] for r in results.iterations(rows)] == ["a", "b"]
    assert [r["name"] for r in results.errors(rows)] == ["c"]


# ---- transports ------------------------------------------------------------------------------

def test_every_transport_has_one_role_and_the_roles_keep_their_order():
    assert results.PROJECT == ("shmds_spsc", "shmds_mpmc", "shmds_concurrent_stack", "shmds_message_queue")
    assert results.PEERS[0] == "boost_lockfree_spsc" and "pipe" in results.PEERS
    assert results.RINGS == ("inprocess_spsc_ring", "inprocess_spsc_sequence_ring", "shm_spsc_ring",
                             "shm_mpmc_ring")
    assert results.INPROCESS_RINGS == ("inprocess_spsc_ring", "inprocess_spsc_sequence_ring")
    assert set(results.PROJECT + results.PEERS + results.RINGS) == set(results.TRANSPORTS)
    assert set(results.TRANSPORTS.values()) == {"project", "peer", "ring"}


# ---- loading ---------------------------------------------------------------------------------

def write(path, document):
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_a_run_folder_is_its_micro_and_ipc_rows_with_their_contexts_merged(tmp_path):
    write(tmp_path / "micro.json", {"context": {"host_name": "h", "mode": "micro"}, "benchmarks": [{"name": "m"}]})
    write(tmp_path / "ipc.json", {"context": {"mode": "ipc"}, "benchmarks": [{"name": "i"}]})
    run = results.load_run(str(tmp_path))
    assert run["context"] == {"host_name": "h", "mode": "ipc"}
    assert [r["name"] for r in run["micro"]] == ["m"] and [r["name"] for r in run["ipc"]] == ["i"]
    joined = results.load_results(str(tmp_path))
    assert [r["name"] for r in joined["benchmarks"]] == ["m", "i"] and joined["context"]["mode"] == "ipc"


def test_a_missing_or_empty_file_adds_no_rows(tmp_path):
    # Google Benchmark leaves an empty --benchmark_out file when its filter matches nothing
    write(tmp_path / "ipc.json", "")
    run = results.load_run(str(tmp_path))
    assert (run["micro"], run["ipc"], run["context"]) == ([], [], {})
    assert results.read_result_file(str(tmp_path / "ipc.json")) == results.no_rows()
    assert results.load_run(str(tmp_path / "nowhere"))["ipc"] == []


def test_results_that_cannot_be_read_say_which_file_and_why(tmp_path):
    with pytest.raises(results.ResultsError, match="has none of micro.json, ipc.json"):
        results.load_results(str(tmp_path))
    broken = write(tmp_path / "broken.json", "{ not json")
    with pytest.raises(results.ResultsError, match="cannot read .*broken.json"):
        results.load_results(broken)
    with pytest.raises(results.ResultsError, match="cannot read .*missing.json"):
        results.load_results(str(tmp_path / "missing.json"))
    write(tmp_path / "instructions.json", {"benchmarks": [{"name": "instructions/x"}]})
    assert len(results.load_results(str(tmp_path), ("instructions.json",))["benchmarks"]) == 1


def test_histograms_of_repetitions_are_merged():
    h = results.load_histograms(os.path.join(FIXTURE, "histograms"))
    assert h["ipc/ping_pong/shmds_spsc/payload:8/wait:spin"] == [(100, 101, 10), (200, 201, 4), (300, 301, 5),
                                                                  (1000, 1007, 1)]
    assert results.load_histograms(os.path.join(FIXTURE, "nowhere")) == {}


def test_the_transports_a_run_names_are_read_and_checked_against_the_registry():
    assert results.transports_in_context({}) is None
    assert results.transport_mismatches({}) == []
    every = ",".join(f"{name}:{role}" for name, role in results.TRANSPORTS.items())
    assert results.transports_in_context({"transports": every}) == results.TRANSPORTS
    assert results.transport_mismatches({"transports": every}) == []
    # --no-compare: no peers, which is fine
    own = ",".join(f"{name}:{role}" for name, role in results.TRANSPORTS.items() if role != "peer")
    assert results.transport_mismatches({"transports": own}) == []
    problems = results.transport_mismatches({"transports": "shmds_spsc:peer,new_peer:peer"})
    assert any("new_peer" in p and "not in" in p for p in problems)
    assert any("shmds_spsc is a peer in the run, a project" in p for p in problems)
    assert any("shmds_mpmc" in p and "did not measure" in p for p in problems)


def test_the_copies_a_run_states_are_read_per_transport():
    assert results.copies_in_context({}) is None
    assert results.copies_in_context({"copies": "shmds_spsc:2,pipe:2,zeromq:4"}) == {
        "shmds_spsc": 2, "pipe": 2, "zeromq": 4}
    assert results.copies_in_context({"copies": ""}) == {}
