"""Running tests against the workbench: the baseline (which tests pass on
the unchanged library, how long each takes), then a mutant through the
suite's killing tests, and through the library's own test programs. Owns
what counts as a kill (a MUST cited, a flaky test failed twice, a crash
repeated); never writes the workbench (workbench.py does)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import run  # the suite's runner: a test in a process of its own

from .workbench import build_workbench, library_programs


def test_requirements(entry):
    return entry.get("requirements", "").split()


def must_cited(requirements, catalogue):
    """True when the test cites a MUST requirement: only those kill (a
    SHOULD or MAY is a quality the unchanged library may miss by chance)."""
    levels = {r["id"]: r["level"] for r in catalogue}
    return any(levels.get(r) == "MUST" for r in requirements)


def run_baseline(program, profile, timeout, catalogue, log):
    """Every test on the unchanged library, fastest first: passed (on the
    first try, or `flaky`: on one of two more), seconds, requirements."""
    listing = subprocess.run([program, "--gtest_list_tests"], capture_output=True, text=True, check=True).stdout
    baseline = []
    for name in run.parse_test_list(listing):
        started = time.monotonic()
        entry = run.run_test(program, name, profile, timeout)
        took = time.monotonic() - started
        requirements = test_requirements(entry)
        passed = not entry.get("failures") and entry.get("result") != "SKIPPED"
        flaky = False
        if not passed and entry.get("failures"):
            flaky = any(not run.run_test(program, name, profile, timeout).get("failures") for _ in range(2))
            passed = flaky
        usable = passed and must_cited(requirements, catalogue)
        baseline.append({"test": name, "passed": passed, "flaky": flaky, "kills": usable, "seconds": took,
                         "requirements": requirements})
        if not passed:
            log(f"  baseline: {name} does not pass on the unchanged library; left out")
        elif flaky:
            log(f"  baseline: {name} failed once on the unchanged library; a mutant must fail it twice")
    baseline.sort(key=lambda t: t["seconds"])
    return baseline


def baseline_from_results(gtest, listed, catalogue):
    """run_baseline's list from a run of the suite that has already happened
    (run.py's OUT/<implementation>.json, `gtest`) instead of a run of its
    own: the tests of `listed` (the workbench program's test names) as that
    run found them. No second try for a test that failed there: it is left
    out, as run_baseline leaves out one that fails three times."""
    found = {}
    for suite in gtest.get("testsuites", []):
        for t in suite.get("testsuite", []):
            found[f"{suite['name']}.{t['name']}"] = t
    baseline = []
    for name in listed:
        entry = found.get(name)
        if entry is None:
            continue
        requirements = test_requirements(entry)
        passed = not entry.get("failures") and entry.get("result") != "SKIPPED"
        seconds = float(str(entry.get("time", "0")).rstrip("s") or 0)
        baseline.append({"test": name, "passed": passed, "flaky": False,
                         "kills": passed and must_cited(requirements, catalogue), "seconds": seconds,
                         "requirements": requirements})
    baseline.sort(key=lambda t: t["seconds"])
    return baseline


def run_mutant(program, baseline, profile, log):
    """Runs the baseline's killing tests, fastest first, until one fails."""
    for t in baseline:
        if not t["kills"]:
            continue
        budget = max(20.0, 5 * t["seconds"] + 10)
        entry = run.run_test(program, t["test"], profile, budget)
        if entry.get("failures") and t["flaky"]:
            entry = run.run_test(program, t["test"], profile, budget)
        if entry.get("failures"):
            why = entry["failures"][0].get("failure", "").strip().splitlines()
            return {"outcome": "killed", "test": t["test"], "requirements": t["requirements"],
                    "how": why[0][:300] if why else ""}
    return {"outcome": "survived"}


def failed_tests(report):
    """Full names of the failed tests in a GoogleTest JSON report."""
    return [f"{suite['name']}.{test['name']}" for suite in report.get("testsuites", [])
            for test in suite.get("testsuite", []) if test.get("failures")]


def run_library_program(program, gtest_filter, timeout):
    """Runs a library test program (the tests `gtest_filter` selects) in its
    own process group until its first failure: (failed test names, seconds,
    why: a crash or timeout that left no report, else None)."""
    run.adopt_orphans()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.Popen([program, f"--gtest_filter={gtest_filter}", "--gtest_fail_fast",
                                 f"--gtest_output=json:{out}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        why = None
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            why = f"did not finish within {timeout:.0f} s (killed)"
        try:  # the test's children, if any are left
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        run.kill_orphans()
        took = time.monotonic() - started
        if why is None and os.path.exists(out):
            with open(out) as f:
                failed = failed_tests(json.load(f))
            if failed or proc.returncode == 0:
                return failed, took, None
        if why is None:
            why = (f"crashed: {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exited with status {proc.returncode} and no report")
        return [], took, why


def library_baseline(build, timeout, log):
    """Builds and runs each library test program on the unchanged headers:
    [{target, program, excluded (tests that failed), seconds}]."""
    baseline = []
    for entry in library_programs(build):
        ok, output = build_workbench(build, entry["target"])
        if not ok:
            print(output[-3000:], file=sys.stderr)
            raise SystemExit(f"mutate.py: {entry['target']} does not build on the unchanged library")
        excluded = []
        while True:
            gtest_filter = "*" + (("-" + ":".join(excluded)) if excluded else "")
            failed, took, why = run_library_program(entry["program"], gtest_filter, timeout)
            if why:
                raise SystemExit(f"mutate.py: {entry['target']} on the unchanged library: {why}")
            if not failed:
                break
            log(f"  library baseline: {failed[0]} fails on the unchanged library; left out")
            excluded += failed
        baseline.append(dict(entry, excluded=excluded, seconds=took))
        log(f"  library baseline: {entry['target']} passes ({took:.0f} s)")
    return baseline


def run_library_tests(build, baseline, log):
    """For a mutant the suite let through: builds each library test program
    against the workbench and runs it; a test that fails, and fails again
    alone, kills. Returns the row's update."""
    for entry in baseline:
        built, output = build_workbench(build, entry["target"])
        if not built:
            # It compiled into the suite, so only code the library's tests
            # instantiate breaks (or the build itself is broken): stillborn,
            # never a kill.
            errors = [l for l in output.splitlines() if "error" in l]
            log(f"  {entry['target']} does not build with this mutant: "
                + (errors[0] if errors else "build failed")[:300])
            return {"outcome": "stillborn", "stage": "library",
                    "how": f"compiles into the suite, not into {entry['target']}: "
                           + (errors[0] if errors else "build failed")[:300]}
        excluded = "-" + ":".join(entry["excluded"]) if entry["excluded"] else ""
        budget = 5 * entry["seconds"] + 30
        failed, _, why = run_library_program(entry["program"], "*" + excluded, budget)
        for name in failed:
            again, _, why_again = run_library_program(entry["program"], name, budget)
            if again or why_again:
                return {"outcome": "killed", "stage": "library", "test": f"{entry['target']}: {name}",
                        "requirements": [], "how": "failed twice (in the program's run and alone)"}
            log(f"  {name} failed once, then passed alone: not a kill")
        if why:  # a crash or a hang, not a failed test: it must happen again
            again, _, why_again = run_library_program(entry["program"], "*" + excluded, budget)
            if again or why_again:
                return {"outcome": "killed", "stage": "library", "test": entry["target"], "requirements": [],
                        "how": f"{why}; again: {why_again or 'failed ' + again[0]}"}
            log(f"  {entry['target']}: {why}, then passed: not a kill")
    return {"outcome": "survived"}
