"""Tests of scripts/summarize.py on the fixture run (fixtures/make_run.py says what it holds)."""
import json
import os
import shutil
import statistics
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import results  # noqa: E402
import summarize  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run")


def by_measure(lines):
    return {line["measure"]: line for line in lines}


def assert_headline(lines, measure, target, expected):
    """The headline `measure` has `target`, and its median is `expected` in both regimes; returns it."""
    h = lines[measure]
    assert h["target"] == target
    for regime in summarize.summary_of(h, 2):
        assert abs(regime[0] - expected) < 1e-9
    return h


def per_regime(analysis, measure):
    h = by_measure(analysis["headlines"])[measure]
    return summarize.summary_of(h, len(analysis["regimes"]))


def test_medians_treat_rounds_as_repetitions_and_ignore_aggregate_rows():
    rows = results.load_run(FIXTURE)["micro"]
    m = summarize.medians(rows, "shm_array_over_raw_pointer")
    # median of 1.0, 1.01, 1.02, 1.02, 1.03, 1.50 is 1.02; the aggregate row (9.0) is not a repetition
    assert m["array/sequential_read/shm_array_vs_raw_pointer/4096"] == 1.02
    ipc = results.load_run(FIXTURE)["ipc"]
    p50 = summarize.medians(ipc, "p50_ns")
    assert "ipc/ping_pong/shmds_spsc/payload:8/wait:spin" in p50  # fourteen rounds of one benchmark


def test_runs_fall_into_two_regimes_by_their_limit():
    a = summarize.analyse(results.load_run(FIXTURE))
    assert [(round(lo), round(hi)) for lo, hi, _ in a["regimes"]] == [(100, 103), (332, 355)]


def test_each_ratio_is_taken_within_a_regime_never_across():
    a = summarize.analyse(results.load_run(FIXTURE))
    # spin-then-sleep is 0.98 of spin in both regimes, although its regime-2
    # figure is a third of spin's regime-1 figure
    [near, far] = per_regime(a, "SPSC throughput, spin-then-sleep / spin (8 B)")
    assert abs(near[0] - 0.98) < 1e-9 and near[3] == 7
    assert abs(far[0] - 0.98) < 1e-9 and far[3] == 7
    [near, far] = per_regime(a, "SPSC throughput (8 B, spin) / best in-process SPSC ring")
    assert abs(near[0] - 100 / 120) < 1e-9 and abs(far[0] - 100 / 120) < 1e-9


def test_a_pair_whose_limits_disagree_is_discarded_and_counted():
    a = summarize.analyse(results.load_run(FIXTURE))
    h = by_measure(a["headlines"])["MPMC 1x1 throughput / SPSC (8 B, spin)"]
    assert h["result"]["discarded"]["limits more than a quarter apart"] == 1
    assert [s[3] for s in summarize.summary_of(h, 2)] == [6, 7]
    assert any(n.startswith("2 of ") and "2 limits more than a quarter apart" in n for n in a["notes"])  # (and its ring's pair)


def test_ratios_carry_an_interval_and_a_verdict():
    a = summarize.analyse(results.load_run(FIXTURE))
    [near, _] = per_regime(a, "shmds_spsc ping-pong round trip / cache-line round trip")
    median, low, high, n = near
    assert low <= median <= high and n == 7
    assert summarize.verdict(lambda v: v <= 1.3, near) == "met"
    assert summarize.verdict(lambda v: v <= 1.3, (1.2, 1.1, 1.4, 5)) == "met (median only)"
    assert summarize.verdict(lambda v: v <= 1.3, (1.4, 1.1, 1.5, 5)) == "NO"
    assert summarize.verdict(None, near) == ""
    assert summarize.verdict(lambda v: v <= 1.3, (1.2, None, None, 2)) == "too few pairs"
    assert summarize.cell((1.2, None, None, 2), lambda v: v <= 1.3) == "1.2, 2 pairs, too few pairs"


def test_comparison_ratios_use_each_transport_at_its_best_wait():
    a = summarize.analyse(results.load_run(FIXTURE))
    lines = by_measure(a["headlines"])
    bmq = lines["SPSC throughput / boost_message_queue (8 B, each at its best wait)"]
    assert "boost_message_queue, sleep" in bmq["how"]  # its best (sleep), not its spin figure
    assert all(abs(s[0] - 40) < 1e-9 for s in summarize.summary_of(bmq, 2))
    pipe = lines["SPSC throughput / pipe (8 B, each at its best wait)"]
    assert summarize.verdict(pipe["met_if"], summarize.summary_of(pipe, 2)[0]) == "NO"
    rt = lines["SPSC sleep-only round trip / pipe's"]
    assert abs(summarize.summary_of(rt, 2)[0][0] - 50000 / 80000) < 1e-4  # mid-means: 4 ns over p50


def test_round_trips_are_compared_by_their_mid_mean_not_p50():
    a = summarize.analyse(results.load_run(FIXTURE))
    # SPSC spin, rounds 0-6: p50 120 ns plus 0-3%, and the mid-mean 4 ns above it
    [near, _] = per_regime(a, "shmds_spsc ping-pong round trip / cache-line round trip")
    pairs_near = [p for p in by_measure(a["headlines"])["shmds_spsc ping-pong round trip / cache-line round trip"]
                  ["result"]["pairs"] if p["regime"] == 0]
    assert [round(p["a"], 6) for p in pairs_near] == [124.0, 125.2, 126.4, 127.6, 124.0, 125.2, 126.4]
    assert abs(near[0] - statistics.median(p["a"] / p["b"] for p in pairs_near)) < 1e-12


def test_the_spsc_queue_is_paired_with_the_cross_process_ring_and_the_best_in_process_one():
    a = summarize.analyse(results.load_run(FIXTURE))
    lines = by_measure(a["headlines"])
    assert_headline(lines, "SPSC throughput (8 B, spin) / cross-process textbook ring", ">= 0.9", 1.25)
    inprocess = lines["SPSC throughput (8 B, spin) / best in-process SPSC ring"]
    assert "inprocess_spsc_sequence_ring" in inprocess["how"]  # the cross-process ring is not a candidate
    assert abs(summarize.summary_of(inprocess, 2)[0][0] - 100 / 120) < 1e-9


def test_the_mpmc_queue_is_paired_with_its_cross_process_ring_and_that_ring_with_the_spsc_one():
    a = summarize.analyse(results.load_run(FIXTURE))
    lines = by_measure(a["headlines"])
    mpmc = assert_headline(lines, "MPMC 1x1 throughput (8 B, spin) / cross-process textbook MPMC ring", ">= 0.9",
                           60 / 75)
    assert summarize.verdict(mpmc["met_if"], summarize.summary_of(mpmc, 2)[0]) == "NO"
    rings = lines["textbook MPMC ring / textbook SPSC ring (8 B, spin, both across processes)"]
    assert rings["met_if"] is None
    assert abs(summarize.summary_of(rings, 2)[0][0] - 75 / 80) < 1e-9


def test_latency_under_load_gives_each_run_its_cpu_per_message_and_the_targets_their_verdicts():
    run = results.load_run(FIXTURE)
    table = summarize.latency_under_load(run["ipc"])
    spsc = table[("shmds_spsc", "spin_then_sleep", 10)]
    assert abs(spsc["cpu_ns_per_message"] - 283) < 1e-9 and abs(spsc["p50_ns"] - 70) < 1e-9  # medians of 0.9x, 1.1x
    assert abs(spsc["sender_cpu_ns_per_message"] - 13) < 1e-9
    assert ("pipe", "sleep", 50) in table
    targets = {m: (v, met) for m, v, _, met in summarize.cpu_targets(table)}
    spsc_cpu = targets["CPU per message, shmds_spsc / boost_message_queue, 10% load, spin_then_sleep"]
    assert abs(spsc_cpu[0] - 283 / 2600) < 1e-9 and spsc_cpu[1]
    assert targets["p50 latency, shmds_spsc / boost_message_queue, 10% load, spin_then_sleep"][1]
    mpmc_cpu = targets["CPU per message, shmds_mpmc / boost_message_queue, 10% load, spin_then_sleep"]
    assert abs(mpmc_cpu[0] - 6000 / 2600) < 1e-9 and not mpmc_cpu[1]
    assert not targets["p50 latency, shmds_mpmc / boost_message_queue, 10% load, spin_then_sleep"][1]
    assert all("shmds_concurrent_stack" not in m for m in targets)  # no run, no row
    text = summarize.summarize(FIXTURE)
    assert "| shmds_spsc | spin_then_sleep | 10% | 70 ns | 50 us | 13 ns | 270 ns | 283 ns |" in text
    assert "| CPU per message, shmds_mpmc / boost_message_queue, 10% load, spin_then_sleep | 2.31 | <= 2 | NO |" in text


def test_sleep_only_throughput_and_the_default_wait_are_judged_against_their_targets():
    a = summarize.analyse(results.load_run(FIXTURE))
    lines = by_measure(a["headlines"])
    for measure, target, expected in (
            ("shmds_spsc sleep-only throughput / boost_message_queue's (8 B)", ">= 3", 10 / 2.5),
            ("shmds_spsc sleep-only throughput / pipe's (8 B)", ">= 5", 10 / 1.25),
            ("SPSC throughput, spin-then-sleep / spin (8 B)", ">= 0.9", 0.98)):
        h = assert_headline(lines, measure, target, expected)
        for regime in summarize.summary_of(h, 2):
            assert summarize.verdict(h["met_if"], regime) == "met"
    # the fixture has no sleeping MPMC run: no row rather than an empty one
    assert "shmds_mpmc sleep-only throughput / boost_message_queue's (8 B)" not in lines
    assert not lines["shmds_spsc sleep-only throughput / pipe's (8 B)"]["met_if"](4.99)


def with_zeromq_rows(rows):
    """The fixture's runs plus ZeroMQ: its 8 B throughput is half the SPSC
    queue's and 1.2 of the MPMC queue's at spin (paired, in every round), its
    4 KiB throughput at spin 8.2 GB/s against the SPSC queue's 4.1 GB/s (so
    the SPSC queue is behind there), its spin round trip 3x the SPSC queue's."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
    import make_run
    extra = []
    for k in make_run.ROUNDS:
        slower = 1 if k < 7 else 3
        value = 50e6 * (1 + 0.01 * (k % 5)) / slower
        extra.append(make_run.paired("throughput_8B", results.throughput_name("zeromq"), k,
                                     items_per_second=value, bytes_per_second=8 * value))
        extra.append(make_run.paired("round_trips", results.ping_pong_name("zeromq"), k,
                                     **make_run.round_trip_counters(360 * slower * (1 + 0.01 * (k % 4)),
                                                                    make_run.limit(k), 2 * make_run.limit(k))))
    extra.append(make_run.row(results.throughput_name("zeromq", payload=4096), items_per_second=2e6,
                              bytes_per_second=8192e6))
    return rows + extra


def test_each_project_queue_is_set_against_zeromq_and_nng_in_every_way_of_waiting():
    rows = with_zeromq_rows(results.load_run(FIXTURE)["ipc"])
    regimes = summarize.pairs.regimes_of_run(rows)
    table = {(s, p, w): f for s, p, w, f in summarize.ahead_of_peers(rows, regimes)}
    assert {p for _, p, _ in table} == {"zeromq"}  # NNG did not run: no rows for it
    assert len(table) == 2 * 3
    spsc = table[("shmds_spsc", "zeromq", "spin")]
    assert abs(spsc["throughput 8 B"][0] - 2.0) < 1e-9 and spsc["throughput 8 B"][3] == 14
    # the 4 KiB SPSC run's limit moved, but a plain run's median is still its figure
    assert abs(spsc["throughput 4 KiB"] - 0.5) < 1e-9
    assert spsc["round trip p50"][0] < 0.4 and spsc["round trip p99"][0] < 0.4
    assert summarize.ahead_verdict(spsc) == "NO: throughput 4 KiB"
    mpmc = table[("shmds_mpmc", "zeromq", "spin")]
    assert abs(mpmc["throughput 8 B"][0] - 1.2) < 1e-9 and mpmc["throughput 4 KiB"] is None
    assert summarize.ahead_verdict(mpmc) == "ahead"
    assert summarize.ahead_verdict(table[("shmds_spsc", "zeromq", "sleep")]) == ""  # zeromq never slept here
    assert summarize.ahead_verdict({"round trip p50": (1.0, None, None, 2)}) == "NO: round trip p50"


def summary_with_instruction_counts(folder, counts):
    """The summary of the fixture run with an instructions.json of `counts` added."""
    shutil.copy(os.path.join(FIXTURE, "ipc.json"), folder / "ipc.json")
    (folder / "instructions.json").write_text(json.dumps({"benchmarks": [
        {"name": f"instructions/{n}", "instructions_per_op": v} for n, v in counts.items()]}))
    return summarize.summarize(str(folder))


def test_instruction_counts_in_the_run_get_their_targets(tmp_path):
    text = summary_with_instruction_counts(
        tmp_path, {"spsc_push_pop": 60.3, "spsc_batch_of_64": 11.5, "queue_push_pop": 30.0, "array_at": 7.0})
    assert "| SPSC push+pop | 60.3 | 60.3 | <= 40 | NO |" in text  # no loop counted: nothing taken off
    assert "| SPSC, per element in batches of 64 | 11.5 | 11.5 | <= 12 | met |" in text
    assert "| plain shm_queue push+pop | 30 | 30 | <= 30 | met |" in text  # the edge meets it
    assert "MPMC push+pop" not in text  # not counted in this run
    assert "Instructions per operation" not in summarize.summarize(FIXTURE)


def test_the_measuring_loop_is_taken_off_each_operation_but_not_off_a_batch_element(tmp_path):
    text = summary_with_instruction_counts(
        tmp_path, {"spsc_push_pop": 43.0, "spsc_batch_of_64": 12.5, "queue_push_pop": 33.5, "measuring_loop": 3.0})
    assert "the measuring loop's 3" in text
    assert "| SPSC push+pop | 43 | 40 | <= 40 | met |" in text  # the edge, once the loop is off
    assert "| SPSC, per element in batches of 64 | 12.5 | 12.5 | <= 12 | NO |" in text
    assert "| plain shm_queue push+pop | 33.5 | 30.5 | <= 30 | NO |" in text


def test_an_unreadable_instructions_file_is_named_in_an_error_not_a_traceback(tmp_path, capsys):
    shutil.copy(os.path.join(FIXTURE, "ipc.json"), tmp_path / "ipc.json")
    (tmp_path / "instructions.json").write_text("{not json")
    assert summarize.main(["summarize.py", str(tmp_path), "--out", str(tmp_path / "s.md")]) == 2
    assert "instructions.json" in capsys.readouterr().err
    assert not (tmp_path / "s.md").exists()


def test_durations_are_written_in_the_unit_that_fits():
    assert [summarize.ns(v) for v in (None, 12.34, 1234.0, 2.5e6)] == ["-", "12.3 ns", "1.23 us", "2.5 ms"]


def test_single_process_ratios_come_from_alternating_blocks():
    a = summarize.analyse(results.load_run(FIXTURE))
    lines = by_measure(a["single_process"])
    array = lines["shm_array / raw pointer, worst pattern and size"]
    assert "random_write" in array["how"]  # worst median (1.03), not the worst single value (1.50)
    lookup = summarize.summary_of(lines["lookup among 65,536: shm_table / Boost named objects"], 0)[0]
    assert abs(lookup[0] - 0.445) < 1e-9 and lookup[3] == 10  # ten processes, each its median
    assert "one value per process" in lines["lookup among 65,536: shm_table / Boost named objects"]["how"]
    few = summarize.summary_of(lines["lookup among 16: shm_table / Boost named objects"], 0)[0]
    assert abs(few[0] - 0.945) < 1e-9 and few[3] == 10
    find = summarize.summary_of(lines["lookup among 65,536: shm_table find (names too) / Boost named objects"], 0)[0]
    assert abs(find[0] - 0.945) < 1e-9
    assert lines["lookup among 65,536: shm_table find (names too) / Boost named objects"]["met_if"] is None


def test_lookup_ratios_count_a_process_once_and_plain_pairs_each():
    def row(name, locate, find):
        return {"name": name, "run_name": name, "run_type": "iteration", "shm_table_over_boost": locate,
                "shm_table_find_over_boost": find}
    rounds = [row(f"paired/lookup/discovery/find/shm_table_vs_boost_named_objects/65536/round:{k}"
                  "/iterations:20/repeats:3/manual_time", ratio, ratio + 1)
              for k, ratio in ((1, 0.3), (1, 0.9), (1, 0.31), (0, 0.5))]
    plain = [row("discovery/find/shm_table_vs_boost_named_objects/65536/iterations:20/repeats:15/manual_time", r, 2 * r)
             for r in (0.7, 0.8)]
    few = [row("discovery/find/shm_table_vs_boost_named_objects/1/iterations:20/repeats:15/manual_time", 1.1, 1.9)]
    assert summarize.lookup_ratios(rounds + plain + few) == {65536: ([0.5, 0.31, 0.7, 0.8], True),
                                                             1: ([1.1], False)}
    assert summarize.lookup_ratios(plain) == {65536: ([0.7, 0.8], False)}
    assert summarize.lookup_ratios(rounds, summarize.FIND_OVER_BOOST) == {65536: ([1.5, 1.31], True)}
    failed = row("discovery/find/shm_table/65536", 1.0, 1.0) | {"error_occurred": True}
    assert summarize.lookup_ratios([failed]) == {}


def test_lookup_rows_from_before_locate_count_as_finds():
    # Until locate existed the pair timed find under the one counter.
    old = {"name": "discovery/find/shm_table_vs_boost_named_objects/65536/iterations:20/repeats:15/manual_time",
           "run_type": "iteration", "shm_table_over_boost": 0.4}
    old["run_name"] = old["name"]
    assert summarize.lookup_ratios([old]) == {}
    assert summarize.lookup_ratios([old], summarize.FIND_OVER_BOOST) == {65536: ([0.4], False)}


def test_summary_shows_a_column_per_regime_and_names_unreliable_runs():
    text = summarize.summarize(FIXTURE)
    assert "| Regime 1: limit 100-103 ns (145 runs) | Regime 2: limit 332-355 ns (134 runs) |" in text
    assert "| NO" in text or ", NO |" in text
    assert "5 runs saw the cache-line limit move" in text and "payload:4096" in text  # 1 + 4 latency
    assert "1 runs had more processes than CPUs" in text
    assert "cannot wait by sleep" in text
    assert "Project / peer, Regime 2" in text and "| pipe | 80 [80, 80], 7 pairs |" in text
    assert "Figures per regime" in text and "| shmds_spsc | 101 M/s (7) | - |" in text
    # a plain run is placed by its own limit; this one's limit moved, so it is in no regime
    assert "4.1 GB/s" not in text


def test_missing_results_give_an_empty_table_not_an_error(tmp_path):
    text = summarize.summarize(str(tmp_path))
    assert "no headline benchmarks" in text


def test_empty_result_files_mean_the_filter_matched_nothing_not_an_error(tmp_path):
    # Google Benchmark leaves an empty --benchmark_out file when its filter matches nothing
    (tmp_path / "micro.json").write_text("")
    (tmp_path / "ipc.json").write_text("")
    assert results.load_run(str(tmp_path))["micro"] == []
    assert "no headline benchmarks" in summarize.summarize(str(tmp_path))


def test_command_line_writes_summary_md_and_json(tmp_path):
    out = tmp_path / "summary.md"
    assert summarize.main(["summarize.py", FIXTURE, "--out", str(out)]) == 0
    assert "| Measure |" in out.read_text()
    data = json.loads((tmp_path / "summary.json").read_text())
    assert len(data["regimes"]) == 2
    mpmc = next(h for h in data["headlines"] if h["measure"].startswith("MPMC 1x1"))
    assert [r["pairs"] for r in mpmc["per_regime"]] == [6, 7] and len(mpmc["pairs"]) == 13


def test_two_runs_agree_or_not(tmp_path):
    assert summarize.main(["summarize.py", "--compare", FIXTURE, FIXTURE]) == 0
    other = tmp_path / "other"
    shutil.copytree(FIXTURE, other)
    with open(other / "ipc.json") as f:
        data = json.load(f)
    for row in data["benchmarks"]:  # the MPMC queue twice as fast, in every round
        if "/shmds_mpmc/payload:8/senders:1/" in row["name"]:
            row["items_per_second"] *= 2
    with open(other / "ipc.json", "w") as f:
        json.dump(data, f)
    rows = summarize.compare_runs(FIXTURE, str(other))
    disagree = {r[0] for r in rows if r[-1] is False}
    assert disagree == {"MPMC 1x1 throughput / SPSC (8 B, spin)",
                        "MPMC 1x1 throughput (8 B, spin) / cross-process textbook MPMC ring"}
    assert summarize.main(["summarize.py", "--compare", FIXTURE, str(other)]) == 1


def test_wide_spread_between_repetitions_is_noted_for_plain_benchmarks_only():
    noisy = [{"run_name": "x", "run_type": "iteration", "items_per_second": v} for v in (10, 20, 30)]
    calm = [{"run_name": "y", "run_type": "iteration", "items_per_second": v} for v in (10, 10.5, 10.2)]
    rounds = [{"run_name": f"paired/g/ipc/z/round:{k}", "run_type": "iteration", "items_per_second": v}
              for k, v in enumerate((10, 30, 50))]
    assert [n for n, _ in summarize.wide_spread(noisy + calm + rounds)] == ["x"]


@pytest.mark.parametrize("line", [["--out"], [FIXTURE, "--out"], [], ["--compare", FIXTURE],
                                  ["--compare", FIXTURE, FIXTURE, "--out", "x.md"]])
def test_a_malformed_command_line_exits_2_with_the_usage(line, capsys):
    with pytest.raises(SystemExit) as stopped:
        summarize.main(["summarize.py"] + line)
    assert stopped.value.code == 2
    assert "usage: summarize.py" in capsys.readouterr().err


def test_the_copies_table_lists_what_the_run_states_and_nothing_for_a_run_that_does_not():
    assert summarize.copies_table({}) == []
    lines = summarize.copies_table({"copies": "shmds_spsc:2,boost_lockfree_spsc:4",
                                    "transports": "shmds_spsc:project,boost_lockfree_spsc:peer"})
    assert "| shmds_spsc | project | 2 |" in lines
    assert "| boost_lockfree_spsc | peer | 4 |" in lines
    # a transport the context names no role for takes it from the registry
    assert "| pipe | peer | 2 |" in summarize.copies_table({"copies": "pipe:2"})
