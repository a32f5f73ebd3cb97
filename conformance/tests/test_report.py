"""Tests of the conformance report and the catalogue, on fixture files."""
import json
import os
import sys

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "spec"))

import catalogue  # noqa: E402
import report  # noqa: E402

FIX = os.path.join(HERE, "fixtures")


def load(name):
    with open(os.path.join(FIX, name)) as f:
        return json.load(f)


def test_each_requirement_gets_its_verdict():
    v = report.verdicts(load("catalogue.json"), load("good.json"))
    assert v["Q-001"][0] == "PASS" and v["Q-005"][0] == "PASS"
    assert v["CRASH-001"][0] == "UNSUPPORTED"
    assert v["PERM-001"][0] == "UNRESOLVED" and "second user" in v["PERM-001"][1][0]
    assert v["ARR-003"][0] == "UNTESTED"


def test_one_failing_test_fails_the_requirement_and_its_level():
    cat = load("catalogue.json")
    v = report.verdicts(cat, load("bad.json"))
    assert v["Q-001"][0] == "FAIL"
    assert v["Q-001"][1][0] == "Container/0.Fifo: test_sequential.cpp:99: Expected equality"
    assert report.level_verdicts(cat, v)["core"] == "FAIL"


def test_failure_summaries_are_one_line_with_the_message():
    text = "t.cpp:290\nFailed\na full /dev/shm: creating succeeded\n"
    assert report.failure_summary(text) == "t.cpp:290: a full /dev/shm: creating succeeded"
    # nothing is cut: the inputs that failed are often named at the end
    long = "t.cpp:1\n" + "name 'a' refused; " * 40 + "name 'the-last-input' accepted"
    assert report.failure_summary(long).endswith("name 'the-last-input' accepted")


def test_the_markdown_folds_long_failures_without_cutting_them():
    detail = "T.x: t.cpp:1: " + " ".join(f"input{i}" for i in range(60)) + " " + "y" * 150
    item = report.folded(f"impl REQ-1: {detail}")
    lines = item.split("\n")
    assert len(lines) > 3 and all(len(l) <= 100 for l in lines)
    assert lines[0].startswith("- impl REQ-1: T.x:") and all(l.startswith("  ") for l in lines[1:])
    # every word is there, in order
    assert "".join(l[2:] for l in lines).replace(" ", "") == f"impl REQ-1: {detail}".replace(" ", "")


def test_levels_split_core_concurrent_and_robust():
    cat = load("catalogue.json")
    levels = report.level_verdicts(cat, report.verdicts(cat, load("good.json")))
    assert levels["concurrent"] == "PASS"
    assert levels["robust"].startswith("INCOMPLETE")  # CRASH-001 unsupported
    assert levels["core"].startswith("INCOMPLETE")  # PERM-001 unresolved


def test_side_by_side_table_and_exit_code(tmp_path, capsys):
    cat = os.path.join(FIX, "catalogue.json")
    md = tmp_path / "r.md"
    assert report.main(["report.py", cat, "good=" + os.path.join(FIX, "good.json"),
                        "bad=" + os.path.join(FIX, "bad.json"), "--markdown", str(md)]) == 1
    text = md.read_text()
    assert "| Requirement | Level | Group | good | bad |" in text
    assert "| Q-001 | MUST | queue | PASS | FAIL |" in text
    assert report.main(["report.py", cat, "good=" + os.path.join(FIX, "good.json")]) == 0


def test_the_catalogue_parser_refuses_malformed_and_duplicate_lines():
    good = "- **Q-001** [MUST] (queue) FIFO.\n- **Q-002** [MAY] {concurrent} (queue) Snapshots.\n"
    assert [(r["id"], r["tier"]) for r in catalogue.parse(good)] == [("Q-001", "core"), ("Q-002", "concurrent")]
    for bad in ("- **Q-1** [MUST] (queue) x\n", "- **Q-001** [MUSTNT] (queue) x\n",
                "- **Q-001** [MUST] (queues) x\n", good + "- **Q-001** [MUST] (queue) again\n",
                "- **Q-001** [MUST] {fast} (queue) x\n", "- **Q-001** [MUST] {core} (queue) x\n"):
        try:
            catalogue.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted: {bad!r}")


def test_the_specification_parses_with_unique_ids():
    with open(os.path.join(HERE, "..", "spec", "requirements.md")) as f:
        reqs = catalogue.parse(f.read())
    assert len(reqs) >= 50
    assert len({r["id"] for r in reqs}) == len(reqs)


def test_expectations_turn_fail_into_xfail_and_pass_into_xpass():
    cat = load("catalogue.json")
    expected = report.parse_expectations("# known\nQ-001  the ring is guarded by a lock\n\nQ-005 drops elements  # why\n")
    assert expected == {"Q-001": "the ring is guarded by a lock", "Q-005": "drops elements"}
    bad = report.apply_expectations(report.verdicts(cat, load("bad.json")), expected)
    assert bad["Q-001"][0] == "XFAIL" and "expected to fail: the ring" in bad["Q-001"][1][0]
    assert not report.must_failed(cat, {"x": {"requirements": bad}})
    good = report.apply_expectations(report.verdicts(cat, load("good.json")), expected)
    assert good["Q-001"][0] == "XPASS" and good["Q-005"][0] == "XPASS"


def test_xfail_keeps_a_level_passing_but_says_so():
    cat = load("catalogue.json")
    per = report.apply_expectations(report.verdicts(cat, load("bad.json")), {"Q-001": "known"})
    assert report.level_verdicts(cat, per)["core"] == "INCOMPLETE (1 UNTESTED, 1 XFAIL)"  # PERM-001 untested
    per["PERM-001"] = ("PASS", [])
    assert report.level_verdicts(cat, per)["core"] == "PASS with 1 known failures (XFAIL)"


def test_expectations_without_reason_or_with_unknown_ids_are_refused():
    import pytest
    with pytest.raises(ValueError, match="no reason"):
        report.parse_expectations("Q-001\n")
    with pytest.raises(ValueError, match="unknown requirements: NOPE-1"):
        report.apply_expectations(report.verdicts(load("catalogue.json"), load("good.json")), {"NOPE-1": "x"})
