"""Tests of conformance/run.py's pure parts: listings, mutant headers, tests
that never finished, merging, and the mutants' table."""
import glob
import os
import sys
import time

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, ".."))

import pytest  # noqa: E402

import run  # noqa: E402

LISTING = """Container/0.  # TypeParam = kind<queue>
  RandomOperationsMatchTheModel
  FoundByName
Segment.
  CreateOnly
"""


def test_listing_gives_full_names_including_typed_suites():
    assert run.parse_test_list(LISTING) == [
        "Container/0.RandomOperationsMatchTheModel", "Container/0.FoundByName", "Segment.CreateOnly"]


def test_every_shipped_mutant_has_a_complete_header():
    folder = os.path.join(HERE, "..", "mutants")
    patches = [p for p in os.listdir(folder) if p.endswith(".patch")]
    assert len(patches) >= 20
    for p in patches:
        with open(os.path.join(folder, p)) as f:
            m = run.parse_mutant(f.read())
        assert m["name"] + ".patch" == p
        assert m["attempts"] >= 1 and m["defect"]


def test_a_mutant_header_without_its_requirement_is_refused():
    with pytest.raises(ValueError, match="rejected-by"):
        run.parse_mutant("Mutant: x\nAttempts: 1\nDefect: y\n--- a/f\n")


def test_a_test_that_never_finished_fails_the_requirements_it_announced():
    stderr = "[shmconf] requirements: CRASH-002 Q-005\nsomething\nbad things\n"
    e = run.unfinished_test("Crash.Holder", stderr, "crashed: SIGSEGV")
    assert (e["classname"], e["name"], e["requirements"]) == ("Crash", "Holder", "CRASH-002 Q-005")
    assert e["failures"][0]["failure"] == "crashed: SIGSEGV; last output: something | bad things"


def test_merged_results_are_found_by_requirement():
    merged = run.merge([{"classname": "A", "name": "x", "requirements": "Q-001 Q-002"},
                        {"classname": "B", "name": "y", "requirements": "Q-002"},
                        {"classname": "A", "name": "z", "requirements": "Q-003"}])
    assert [s["name"] for s in merged["testsuites"]] == ["A", "B"]
    assert run.tests_citing(merged, "Q-002") == ["A.x", "B.y"]
    assert run.entry_of(merged, "A.z")["requirements"] == "Q-003"


def test_the_mutants_table_gives_the_kill_rate_and_marks_survivors():
    rows = [dict(name="a", rejected_by="Q-001", rejected=True, attempt=1, attempts_run=1, attempts=1,
                 also_failed=["Q-002"], defect="d"),
            dict(name="b", rejected_by="Q-005", rejected=False, attempt=None, attempts_run=5, attempts=5,
                 also_failed=[], defect="e")]
    text = run.mutants_markdown(rows)
    assert "| a | Q-001 | rejected (attempt 1) | 1 of 1 | Q-002 | d |" in text
    assert "| b | Q-005 | **SURVIVED** | 5 of 5 | - | e |" in text
    assert "Kill rate: 1 of 2 mutants rejected by their named requirement (50%)." in text
    # The survivors are named on the table's last lines, which a CI log's tail shows.
    assert text.rstrip().splitlines()[-1] == "SURVIVED: b (must be rejected by Q-005; 5 attempts)"
    assert "SURVIVED: a" not in text


def test_the_element_probe_passes_only_when_the_compiler_refuses_it():
    refused = run.element_probe_entry(2, "probe.cpp:14: error: static assertion failed: trivially copyable\n")
    assert refused["requirements"] == "ELEM-001" and "failures" not in refused
    assert refused["result"] == "COMPLETED"
    accepted = run.element_probe_entry(0, "")
    assert "compiled" in accepted["failures"][0]["failure"]
    odd = run.element_probe_entry(2, "make: *** No rule to make target\n")
    assert odd["result"] == "SKIPPED" and odd["outcome"].startswith("UNRESOLVED")


def fake_test_program(tmp_path, body):
    """A stand-in for a suite program: a shell script that ignores its
    GoogleTest arguments and runs `body`; $MARKER names a file for pids."""
    program = tmp_path / "fake_suite"
    program.write_text("#!/bin/bash\n" + body + "\n")
    program.chmod(0o755)
    return str(program)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("ends", ["hangs", "exits"])
def test_a_child_left_in_its_own_session_neither_holds_the_runner_up_nor_survives(tmp_path, monkeypatch, ends):
    marker = tmp_path / "orphan.pid"
    monkeypatch.setenv("MARKER", str(marker))
    # The orphan keeps the test's standard error open and would run for ever.
    body = 'setsid sleep 1000 & echo $! > "$MARKER"\n' + ("sleep 1000" if ends == "hangs" else "exit 3")
    started = time.monotonic()
    entry = run.run_test(fake_test_program(tmp_path, body), "Suite.Test", "quick", timeout=2)
    assert time.monotonic() - started < 10
    why = entry["failures"][0]["failure"]
    assert ("did not finish within 2 s" in why) if ends == "hangs" else ("exited with status 3" in why)
    orphan = int(marker.read_text())
    assert not alive(orphan), "the test's orphan is still running"


def test_segment_names_a_test_left_behind_are_removed_whichever_process_made_them(tmp_path):
    # A forked checker (another pid) leaves a name with the test's tag; a name
    # without the tag (another run's) is left alone.
    other = "/dev/shm/shmconf-not-this-run-0"
    with open(other, "w"):
        pass
    try:
        body = ('( touch "/dev/shm/shmconf-$SHMCONF_NAME_TAG-$BASHPID-0" ) &\nwait\n'
                'echo "$SHMCONF_NAME_TAG" > "$(dirname "$0")/tag"\nexit 1')
        program = fake_test_program(tmp_path, body)
        run.run_test(program, "Suite.Test", "quick", timeout=10)
        tag = (tmp_path / "tag").read_text().strip()
        assert tag, "the runner gave the test no name tag"
        assert glob.glob(f"/dev/shm/shmconf-{tag}-*") == []
        assert os.path.exists(other)
    finally:
        os.unlink(other)


TSAN_REPORT = """[shmconf] requirements: Q-010
==================
WARNING: ThreadSanitizer: data race (pid=4242)
  Read of size 8 at 0x7b0400000010 by thread T2:
    #0 pop_one test_threads.cpp:80
  Previous write of size 8 at 0x7b0400000010 by thread T1:
    #0 push_one test_threads.cpp:60
==================
ThreadSanitizer: reported 1 warnings
"""


def test_a_sanitizer_report_is_found_and_cut_at_its_end():
    found = run.sanitizer_report(TSAN_REPORT)
    assert found.startswith("WARNING: ThreadSanitizer: data race")
    assert "Previous write of size 8" in found and "reported 1 warnings" not in found
    assert run.sanitizer_report("[shmconf] requirements: Q-010\nall fine\n") is None
    assert len(run.sanitizer_report(TSAN_REPORT, lines=2).splitlines()) == 2


def test_a_test_that_passed_with_a_race_reported_fails_with_the_report(tmp_path):
    # What a ThreadSanitizer build does: the test passes, the report goes to
    # standard error, and the program exits with TSan's status (66).
    (tmp_path / "report.txt").write_text(TSAN_REPORT)
    body = ('out=${2#--gtest_output=json:}\n'
            'cat "$(dirname "$0")/report.txt" >&2\n'
            'echo \'{"testsuites": [{"name": "Threads", "testsuite": [{"name": "T", "classname": "Threads", '
            '"result": "COMPLETED", "requirements": "Q-010"}]}]}\' > "$out"\n'
            'exit 66')
    entry = run.run_test(fake_test_program(tmp_path, body), "Threads.T", "quick", timeout=10)
    why = entry["failures"][0]["failure"]
    assert why.startswith("WARNING: ThreadSanitizer: data race") and "status, 66" in why
    assert entry["requirements"] == "Q-010"
    # Without a report, a nonzero status after a pass is still a failure, as before.
    (tmp_path / "report.txt").write_text("nothing to see\n")
    entry = run.run_test(fake_test_program(tmp_path, body), "Threads.T", "quick", timeout=10)
    assert "passed, then the program exited with status 66" in entry["failures"][0]["failure"]
