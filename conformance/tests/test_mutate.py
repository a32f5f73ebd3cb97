"""Tests of conformance/mutate.py's pure parts (the package conformance/mutator/),
on a fixture header with one line for each rule and lines no rule may touch."""
import json
import os
import sys

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, ".."))

import pytest  # noqa: E402

import mutate  # noqa: E402
import mutator.paths  # noqa: E402
import mutator.results  # noqa: E402
import mutator.rules  # noqa: E402
import mutator.runs  # noqa: E402
import mutator.tce  # noqa: E402
import mutator.workbench  # noqa: E402

with open(os.path.join(HERE, "fixtures", "mutate_sample.hpp")) as f:
    SAMPLE = f.read()
MUTANTS = mutator.rules.generate("sample.hpp", SAMPLE)
LINES = SAMPLE.split("\n")


def of(rule):
    return [m for m in MUTANTS if m["rule"] == rule]


def changed_lines(rule):
    return sorted({(m["line"], m["after"][0].strip()) for m in of(rule)})


def test_comments_preprocessor_static_asserts_and_fault_points_are_never_mutated():
    touched = {m["line"] for m in MUTANTS}
    for number, line in enumerate(LINES, 1):
        if line.lstrip().startswith(("//", "#", "static_assert", '"spans', "SHMDS_FAULT_POINT", "/*", "if (a ==")):
            assert number not in touched, line
    # A comment after code keeps its text, slashes in strings included.
    for m in MUTANTS:
        if "quoted" in m["before"][0]:
            assert m["after"][0].endswith('// "quoted // text"')


def test_relational_flips_each_comparison_separately():
    flips = changed_lines("relational")
    assert (10, 'if (capacity < 0) throw_invalid("capacity");') in flips
    assert (11, "if (used > capacity)") in flips
    assert (13, "return used + 1 <= capacity && capacity != 7;  // \"quoted // text\"") in flips
    assert (13, "return used + 1 < capacity && capacity == 7;  // \"quoted // text\"") in flips


def test_off_by_one_drops_the_one():
    assert changed_lines("off_by_one") == [(13, "return used < capacity && capacity != 7;  // \"quoted // text\"")]


def test_memory_orders_are_weakened_to_relaxed_but_relaxed_is_left():
    assert changed_lines("memory_order") == [(17, "seq.store(v, std::memory_order_relaxed);")]


def test_wakes_and_recoveries_are_deleted_as_whole_statements():
    assert changed_lines("drop_wake") == [(19, ";")]
    assert changed_lines("drop_recovery") == [(20, ";")]


def test_a_check_that_throws_or_fails_gets_a_false_condition_on_one_line_or_two():
    assert changed_lines("drop_check") == [(10, 'if (false) throw_invalid("capacity");'), (11, "if (false)")]


def test_each_operand_of_a_conjunction_can_go_even_in_an_expression_over_several_lines():
    assert changed_lines("drop_conjunct") == [(13, "return used + 1 < capacity;  // \"quoted // text\""),
                                              (28, "||")]


def test_returns_flip_and_adjacent_stores_swap():
    assert (12, "return true;") in changed_lines("flip_return")
    swaps = of("swap_stores")
    assert [(m["line"], [l.strip() for l in m["after"]]) for m in swaps] == [
        (17, ["tail.store(v, std::memory_order_relaxed);", "seq.store(v, std::memory_order_release);"])]


def test_ids_are_unique_and_stable_when_lines_move():
    ids = [m["id"] for m in MUTANTS]
    assert len(ids) == len(set(ids))
    moved = mutator.rules.generate("sample.hpp", "\n\n\n" + SAMPLE)
    assert [m["id"] for m in moved] == ids
    assert all(a["line"] + 3 == b["line"] for a, b in zip(MUTANTS, moved))


def test_apply_changes_only_the_mutated_lines_and_refuses_a_changed_file():
    m = of("swap_stores")[0]
    after = mutator.rules.apply(SAMPLE, m).split("\n")
    assert len(after) == len(LINES)
    assert [i for i, (a, b) in enumerate(zip(LINES, after)) if a != b] == [m["line"] - 1, m["line"]]
    with pytest.raises(ValueError, match="no longer what it mutates"):
        mutator.rules.apply(SAMPLE.replace("tail.store", "head.store"), m)
    assert mutator.rules.diff_of(m).splitlines()[2] == "@@ -17,2 +17,2 @@"


def test_a_sample_spreads_over_the_rules_and_depends_only_on_its_seed():
    rules = {m["rule"] for m in MUTANTS}
    chosen = mutator.rules.sample(MUTANTS, len(rules), "abc")
    assert {m["rule"] for m in chosen} == rules
    assert [m["id"] for m in mutator.rules.sample(MUTANTS, 5, "abc")] == \
        [m["id"] for m in mutator.rules.sample(MUTANTS, 5, "abc")]
    assert len(mutator.rules.sample(MUTANTS, 10_000, "x")) == len(MUTANTS)


def test_triage_lines_and_their_errors():
    t = mutator.results.parse_triage("# comment\nrelational:a.hpp:1234:1 equivalent both sides are equal here\n\n"
                            "drop_wake:b.hpp:99:2 gap needs a test of X  # trailing\n")
    assert t == {"relational:a.hpp:1234:1": ("equivalent", "both sides are equal here"),
                 "drop_wake:b.hpp:99:2": ("gap", "needs a test of X")}
    with pytest.raises(ValueError, match="line 1"):
        mutator.results.parse_triage("relational:a.hpp:1:1 dunno why\n")


def test_classes_and_the_kill_rate_leave_out_stillborn_and_equivalent():
    triage = {"b": ("equivalent", "r"), "c": ("gap", "r")}
    rows = [{"id": i, "outcome": o, "rule": "relational"} for i, o in
            (("a", "killed"), ("b", "survived"), ("c", "survived"), ("d", "survived"), ("e", "stillborn"))]
    for r in rows:
        r["class"] = mutator.results.classify(r, triage)
    assert [r["class"] for r in rows] == ["killed", "equivalent", "gap", "survived", "stillborn"]
    counts, counted, rate = mutator.results.totals(rows)
    assert counted == 3 and rate == pytest.approx(1 / 3)
    assert "1 of 3 counted mutants (33.3%)" in mutator.results.markdown(
        [dict(r, file="f", line=1, detail="d", diff="-a\n+b") for r in rows], "# t")


def test_the_workbench_gets_fresh_modification_times_so_a_restored_header_is_rebuilt(tmp_path):
    import time
    before = time.time() - 1
    m = next(x for x in mutator.rules.generate_all() if x["rule"] == "flip_return")
    mutator.workbench.write_workbench(str(tmp_path), m)
    root = tmp_path / "mutation-workbench" / "impl" / "include"
    headers = list(root.rglob("*.hpp"))
    assert len(headers) >= 20
    assert all(h.stat().st_mtime >= before for h in headers)
    mutated = (root / m["file"]).read_text().split("\n")
    assert mutated[m["line"] - 1] == m["after"][0]
    mutator.workbench.write_workbench(str(tmp_path))  # put back: the original text, again with a fresh time
    with open(os.path.join(mutator.paths.LIBRARY, m["file"])) as f:
        assert (root / m["file"]).read_text() == f.read()


def test_the_committed_triage_names_only_mutants_that_exist_and_covers_the_sweeps_survivors():
    with open(mutator.paths.TRIAGE) as f:
        triage = mutator.results.parse_triage(f.read())
    existing = {m["id"] for m in mutator.rules.generate_all()}
    stale = sorted(set(triage) - existing)
    assert not stale, "triage entries whose line changed (triage them again under their new IDs): " + ", ".join(stale)
    sweep = os.path.join(os.path.dirname(mutator.paths.TRIAGE), "sweep.json")
    with open(sweep) as f:
        rows = json.load(f)["mutants"]
    untriaged = [r["id"] for r in rows if r["outcome"] == "survived" and r["id"] not in triage]
    assert not untriaged, "survivors of the committed sweep without a triage entry: " + ", ".join(untriaged)


def test_report_applies_the_current_triage_to_an_earlier_run(tmp_path, capsys):
    rows = [{"id": i, "file": "f.hpp", "line": 1, "rule": "relational", "detail": "d", "diff": "-a\n+b",
             "outcome": o} for i, o in (("k", "killed"), ("s", "survived"))]
    (tmp_path / "mutation.json").write_text(json.dumps({"header": "# Mutation: 3 mutants", "baseline": [],
                                                        "planned": 3, "mutants": rows}))
    triage = tmp_path / "triage.txt"
    triage.write_text("")
    assert mutate.main(["mutate.py", "report", "--out", str(tmp_path), "--triage", str(triage)]) == 1
    assert "survivors not in the triage file: s" in capsys.readouterr().err
    triage.write_text("s equivalent both branches do the same\n")
    assert mutate.main(["mutate.py", "report", "--out", str(tmp_path), "--triage", str(triage)]) == 0
    text = (tmp_path / "mutation.md").read_text()
    assert "Interrupted: 2 of the 3 mutants ran" in text and "both branches do the same" in text
    assert "Kill rate: 1 of 1 counted mutants (100.0%)" in text


def test_library_kills_are_counted_and_reported_apart_from_the_suites():
    rows = [{"id": i, "outcome": o, "rule": "relational", "file": "f", "line": 1, "detail": "d", "diff": "-a\n+b",
             "class": o, **extra} for i, o, extra in
            (("a", "killed", {"requirements": ["SEG-001"], "test": "Seg.x"}),
             ("b", "killed", {"stage": "library", "requirements": [], "test": "shmds_mutation_unit_tests: T.y"}),
             ("c", "killed", {"stage": "library", "requirements": [], "test": "shmds_mutation_unit_tests: T.z"}),
             ("d", "gap", {}))]
    text = mutator.results.markdown(rows, "# t")
    assert "Kill rate: 3 of 4 counted mutants (75.0%)" in text
    assert "By the conformance suite alone: 1 of 4 (25.0%)" in text and "killed the other 2" in text
    assert "| relational | 4 | 1 | 2 | 1 | 0 | 0 | 0 |" in text
    assert "| `b` | f:1 | d | the library's tests | shmds_mutation_unit_tests: T.y |" in text
    assert "| `a` | f:1 | d | SEG-001 | Seg.x |" in text
    assert "suite alone" not in mutator.results.markdown(rows[:1] + rows[3:], "# t")


def test_failed_tests_reads_a_googletest_json_report():
    report = {"testsuites": [
        {"name": "Seg", "testsuite": [{"name": "ok"}, {"name": "bad", "failures": [{"failure": "x"}]}]},
        {"name": "Tab", "testsuite": [{"name": "worse", "failures": [{"failure": "y"}]}]}]}
    assert mutator.runs.failed_tests(report) == ["Seg.bad", "Tab.worse"]
    assert mutator.runs.failed_tests({"testsuites": []}) == []


def test_a_regression_check_of_the_suite_leaves_out_what_only_the_librarys_tests_killed():
    result = {"mutants": [{"id": "a", "class": "killed"}, {"id": "b", "class": "killed", "stage": "library"},
                          {"id": "c", "class": "gap"}]}
    assert mutator.results.killed_ids(result) == {"a"}
    assert mutator.results.killed_ids(result, library=True) == {"a", "b"}


# ---- trivial compiler equivalence (mutator/tce.py) ----


def test_tce_calls_a_mutant_identical_only_when_every_optimised_object_is_the_originals():
    kind, detail = mutator.tce.verdict(True, {"g++ -O2": False, "clang++ -O2": False})
    assert kind == "identical"
    assert "g++ -O2" in detail and "clang++ -O2" in detail


def test_tce_names_every_configuration_that_differs_and_none_that_does_not():
    kind, detail = mutator.tce.verdict(True, {"g++ -O2": False, "clang++ -O3": True, "aarch64 -O2": True})
    assert kind == "differs"
    assert "clang++ -O3" in detail and "aarch64 -O2" in detail
    assert "g++ -O2" not in detail


def test_tce_never_calls_identical_what_the_unoptimised_witness_does_not_reach():
    # Same objects everywhere, the witness included: the probe never
    # compiled the line, which proves nothing.
    kind, _ = mutator.tce.verdict(False, {"g++ -O2": False})
    assert kind == "unreached"
    kind, _ = mutator.tce.verdict(False, {"g++ -O2": True})
    assert kind == "unreached"


def test_tce_tries_only_the_compilers_that_are_installed(monkeypatch):
    monkeypatch.setattr(mutator.tce.shutil, "which", lambda name: "/bin/" + name if name == "g++" else None)
    assert mutator.tce.available([("g++", "-O2"), ("clang++", "-O2")]) == [("g++", "-O2")]


def test_tce_probe_exists_and_uses_every_process_safe_structure():
    with open(mutator.tce.PROBE) as f:
        probe = f.read()
    for structure in ("shm_spsc_queue", "shm_mpmc_queue", "shm_concurrent_stack", "shm_array", "shm_queue",
                      "shm_stack", "destroy", "try_push_n", "try_pop_n"):
        assert structure in probe, structure


def test_a_baseline_read_from_an_earlier_run_keeps_its_passing_tests_fastest_first():
    catalogue = [{"id": "Q-001", "level": "MUST"}, {"id": "Q-100", "level": "SHOULD"}]
    report = {"testsuites": [
        {"name": "Seg", "testsuite": [
            {"name": "slow", "time": "2.5s", "requirements": "Q-001"},
            {"name": "fast", "time": "0.1s", "requirements": "Q-001"},
            {"name": "bad", "time": "0.2s", "requirements": "Q-001", "failures": [{"failure": "x"}]},
            {"name": "skipped", "time": "0s", "requirements": "Q-001", "result": "SKIPPED"},
            {"name": "quality", "time": "0.3s", "requirements": "Q-100"}]},
        {"name": "Compile", "testsuite": [{"name": "ElementProbe", "time": "1s", "requirements": "Q-001"}]}]}
    listed = ["Seg.slow", "Seg.fast", "Seg.bad", "Seg.skipped", "Seg.quality", "Seg.not_in_the_run"]
    baseline = mutator.runs.baseline_from_results(report, listed, catalogue)
    assert [t["test"] for t in baseline] == ["Seg.skipped", "Seg.fast", "Seg.bad", "Seg.quality", "Seg.slow"]
    by = {t["test"]: t for t in baseline}
    assert by["Seg.fast"]["kills"] and by["Seg.slow"]["kills"] and by["Seg.fast"]["seconds"] == 0.1
    assert not by["Seg.bad"]["passed"] and not by["Seg.bad"]["kills"]
    assert not by["Seg.skipped"]["passed"]
    assert by["Seg.quality"]["passed"] and not by["Seg.quality"]["kills"], "only a MUST kills"
