#!/usr/bin/python3
"""Runs the conformance suite and writes the per-requirement report.

Usage: run.py --build DIR [--tsan-build DIR] [--profile quick|full] [--out DIR]
              [--timeout S] [--all | IMPLEMENTATION ...] [--mutants [NAME ...]]
              [--reference NAME] [--min-mutants N]

Implementations are found through the manifests that shmconf_add_implementation
writes into DIR/shmconf/. Each test runs in a process of its own (so a test
that crashes or hangs is one FAIL, with the signal or the timeout, and the
others still run); a test's requirements come from GoogleTest's JSON, or,
for a test that never finished, from the "[shmconf] requirements:" line it
printed first. Writes OUT/<name>.json (GoogleTest's format, merged) and
OUT/report.md / report.json (report.py, implementations side by side, with
their expectations files applied).

The hand-over tests with threads (Q-010, STK-005; each implementation's
shmconf_<name>_threads program) run from --tsan-build, a build of the suite
with ThreadSanitizer (its same-named manifests), where a race report fails
the test with the report as its failure text; without --tsan-build they run
from --build, check every value, and end UNRESOLVED.

--mutants runs the shipped mutants (manifests with a patch): each must be
rejected by the requirement its patch names, within the number of attempts
it states (stress-dependent defects may need several); only the tests that
cite that requirement (in the reference implementation's results) run.
Writes OUT/mutants.md / mutants.json with the attempts each took and the
kill rate (mutants rejected / mutants run).

Exit status: 1 when an implementation fails a MUST requirement it does not
expect to fail, when a mutant survives, or when the reference fails; 2 for
bad usage or missing programs.
"""
import argparse
import ctypes
import glob
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

CATALOGUE = os.path.join(HERE, "spec", "catalogue.json")
REQUIREMENTS_LINE = re.compile(r"^\[shmconf\] requirements: (.*)$", re.M)


# ---- pure parts ----------------------------------------------------------------------------------

def parse_test_list(text):
    """Full test names from --gtest_list_tests output."""
    names, suite = [], None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            suite = line.split("#")[0].strip()
        else:
            names.append(suite + line.split("#")[0].strip())
    return names


def parse_mutant(text):
    """The header fields of a mutant patch: name, rejected_by, attempts, defect."""
    fields = {}
    for line in text.splitlines():
        if line.startswith("--- ") or line.startswith("diff "):
            break
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    missing = [k for k in ("mutant", "rejected-by", "attempts", "defect") if not fields.get(k)]
    if missing:
        raise ValueError("mutant patch header lacks " + ", ".join(missing))
    return {"name": fields["mutant"], "rejected_by": fields["rejected-by"],
            "attempts": int(fields["attempts"]), "defect": fields["defect"]}


def unfinished_test(full_name, stderr, why):
    """A GoogleTest JSON entry for a test whose process ended without one."""
    found = REQUIREMENTS_LINE.findall(stderr)
    suite, _, name = full_name.partition(".")
    tail = [l for l in stderr.splitlines() if not l.startswith("[shmconf]")][-3:]
    return {"name": name, "classname": suite, "result": "COMPLETED",
            "requirements": found[-1] if found else "",
            "failures": [{"failure": why + ("; last output: " + " | ".join(tail) if tail else "")}]}


def sanitizer_report(stderr, lines=24):
    """The first ThreadSanitizer (or other sanitizer) warning in `stderr`,
    its first `lines` lines joined, or None when there is none."""
    text = stderr.splitlines()
    for i, line in enumerate(text):
        if re.search(r"WARNING: (Thread|Address|Memory|UndefinedBehavior)Sanitizer:", line):
            block = []
            for l in text[i:i + lines]:
                if l.startswith("=================") and block:
                    break
                block.append(l.rstrip())
            return "\n".join(block)
    return None


def entry_of(gtest, full_name):
    suite, _, name = full_name.partition(".")
    for s in gtest.get("testsuites", []):
        for t in s.get("testsuite", []):
            if t.get("name") == name and t.get("classname", s.get("name")) == suite:
                return t
    return None


def merge(entries):
    """One GoogleTest-format document from per-test entries."""
    suites = {}
    for e in entries:
        suites.setdefault(e["classname"], []).append(e)
    return {"testsuites": [{"name": n, "testsuite": ts} for n, ts in suites.items()]}


def tests_citing(gtest, requirement):
    """Full names of the tests that cite `requirement`."""
    return [f"{t['classname']}.{t['name']}" for s in gtest["testsuites"] for t in s["testsuite"]
            if requirement in t.get("requirements", "").split()]


def element_probe_entry(returncode, output):
    """ELEM-001 as a test entry, from building the probe that makes an array
    of std::string (its control, with int, is part of the normal build)."""
    entry = {"name": "NonTriviallyCopyableElementsAreRefused", "classname": "Compile", "result": "COMPLETED",
             "requirements": "ELEM-001"}
    errors = [l.strip() for l in output.splitlines() if "error" in l]
    if returncode == 0:
        entry["failures"] = [{"failure": "element_probe.cpp\nan array of std::string (not trivially copyable) "
                                         "compiled"}]
    elif not errors:
        entry["result"] = "SKIPPED"
        entry["outcome"] = f"UNRESOLVED: the probe's build failed without a compile error (status {returncode})"
    return entry


def mutants_markdown(rows):
    lines = ["| Mutant | Must be rejected by | Result | Attempts | Also failed | Defect |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        result = f"rejected (attempt {r['attempt']})" if r["rejected"] else "**SURVIVED**"
        lines.append(f"| {r['name']} | {r['rejected_by']} | {result} | {r['attempts_run']} of {r['attempts']} | "
                     f"{', '.join(r['also_failed']) or '-'} | {r['defect']} |")
    killed = sum(r["rejected"] for r in rows)
    lines += ["", f"Kill rate: {killed} of {len(rows)} mutants rejected by their named requirement"
              f" ({100.0 * killed / len(rows):.0f}%)." if rows else "No mutants ran."]
    # Last, so that the tail of a CI log names them.
    lines += [f"SURVIVED: {r['name']} (must be rejected by {r['rejected_by']}; {r['attempts_run']} attempts)"
              for r in rows if not r["rejected"]]
    return "\n".join(lines) + "\n"


# ---- running -------------------------------------------------------------------------------------

def adopt_orphans():
    """Makes this process the one that orphans of its children re-parent to
    (PR_SET_CHILD_SUBREAPER), so what a test leaves behind can be found."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def kill_orphans():
    """Kills and reaps every process left below this one: a test's children
    in process groups of their own (the fault tests' isolated checkers),
    which outlive a test killed for its timeout and would run, or hang, on."""
    me = os.getpid()
    for _ in range(50):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == me:
                found = True
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not found:
            return
        time.sleep(0.02)


_test_serial = itertools.count()


def run_test(program, full_name, profile, timeout):
    """Runs one test in its own process group; returns its JSON entry.
    Its standard error goes to a file, not a pipe: a process the test left
    behind cannot hold the runner up by keeping a pipe open."""
    adopt_orphans()
    # Every segment name the test makes (support.hpp's fresh_segment), in
    # any of its processes, starts with this tag: what is left is removed.
    tag = f"r{os.getpid()}t{next(_test_serial)}"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        # A ThreadSanitizer build reports every race and goes on (the later
        # setting wins over the caller's): the report becomes the failure.
        tsan = (os.environ.get("TSAN_OPTIONS", "") + " halt_on_error=0 exitcode=66").strip()
        env = dict(os.environ, SHMCONF_PROFILE=profile, SHMCONF_NAME_TAG=tag, TSAN_OPTIONS=tsan)
        with open(os.path.join(tmp, "stderr"), "w") as err:
            proc = subprocess.Popen([program, f"--gtest_filter={full_name}", f"--gtest_output=json:{out}"],
                                    stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
                why = None
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                why = f"did not finish within {timeout} s (killed)"
        try:  # the test's actors, if any are left
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_orphans()
        with open(os.path.join(tmp, "stderr"), errors="replace") as f:
            stderr = f.read()
        for leftover in glob.glob(f"/dev/shm/shmconf-{tag}-*"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        if why is None and proc.returncode < 0:
            why = f"crashed: {signal.Signals(-proc.returncode).name}"
        entry = None
        if why is None and os.path.exists(out):
            with open(out) as f:
                entry = entry_of(json.load(f), full_name)
        if entry is None:
            return unfinished_test(full_name, stderr, why or f"exited with status {proc.returncode} and no result")
        if proc.returncode != 0 and not entry.get("failures"):
            found = sanitizer_report(stderr)
            if found:  # a report that does not stop the program (ThreadSanitizer's races): the test fails on it
                entry = dict(entry, failures=[{"failure": found + f"\n(the test passed; the program then exited "
                                                                  f"with the sanitizer's status, {proc.returncode})"}])
                entry.pop("outcome", None)
                entry["result"] = "COMPLETED"
                return entry
            return unfinished_test(full_name, stderr, f"passed, then the program exited with status {proc.returncode}")
        return entry


def run_suite(program, profile, timeout, only=None, log=print):
    listing = subprocess.run([program, "--gtest_list_tests"], capture_output=True, text=True, check=True).stdout
    names = parse_test_list(listing)
    if only is not None:
        names = [n for n in names if n in only]
    entries = []
    for i, name in enumerate(names, 1):
        started = time.monotonic()
        entry = run_test(program, name, profile, timeout)
        verdict = "FAIL" if entry.get("failures") else ("SKIP" if entry.get("result") == "SKIPPED" else "ok")
        log(f"  [{i}/{len(names)}] {name}: {verdict} ({time.monotonic() - started:.1f} s)")
        entries.append(entry)
    return merge(entries)


def probe_elements(manifest):
    """Builds the manifest's element probe (expected not to compile)."""
    built = subprocess.run(["cmake", "--build", manifest["build"], "--target", manifest["element_probe"]],
                           capture_output=True, text=True)
    return element_probe_entry(built.returncode, built.stdout + built.stderr)


def threads_program(manifest, tsan_manifest=None):
    """The hand-over tests' program: the ThreadSanitizer build's when there
    is one (built here if need be), else the main build's; None when the
    manifest has none (a build of an older suite)."""
    chosen = tsan_manifest or manifest
    program = chosen.get("threads_program")
    if not program:
        return None
    if not os.path.exists(program):
        target = os.path.basename(program)
        subprocess.run(["cmake", "--build", chosen["build"], "--target", target], capture_output=True, text=True)
    return program if os.path.exists(program) else None


def load_manifests(build):
    manifests = {}
    for path in sorted(glob.glob(os.path.join(build, "shmconf", "*.json"))):
        with open(path) as f:
            m = json.load(f)
        manifests[m["name"]] = m
    return manifests


def expectations_of(manifest):
    if not manifest.get("expectations"):
        return {}
    with open(manifest["expectations"]) as f:
        return report.parse_expectations(f.read())


def check_mutant(manifest, reference_gtest, profile, timeout, catalogue, log):
    with open(manifest["mutant"]) as f:
        m = parse_mutant(f.read())
    tests = tests_citing(reference_gtest, m["rejected_by"])
    row = dict(m, rejected=False, attempt=None, attempts_run=0, also_failed=[], tests=len(tests))
    if not tests:
        row["defect"] += f" (no test cites {m['rejected_by']})"
        return row
    # A mutant's program holds only the test files that cite its requirement
    # (shmconf.cmake): one that lacks a citing test was built from a stale list.
    listing = subprocess.run([manifest["program"], "--gtest_list_tests"], capture_output=True, text=True,
                             check=True).stdout
    absent = sorted(set(tests) - set(parse_test_list(listing)))
    if absent:
        row["defect"] += f" (its program lacks {', '.join(absent)}, which cite {m['rejected_by']}: reconfigure)"
        log(f"  {m['name']}: NOT RUN: its program lacks {', '.join(absent)}")
        return row
    for attempt in range(1, m["attempts"] + 1):
        row["attempts_run"] = attempt
        gtest = run_suite(manifest["program"], profile, timeout, only=set(tests), log=lambda *_: None)
        per = report.verdicts(catalogue, gtest)
        failed = sorted(i for i, (v, _) in per.items() if v == "FAIL")
        row["also_failed"] = [i for i in failed if i != m["rejected_by"]]
        if m["rejected_by"] in failed:
            row["rejected"], row["attempt"] = True, attempt
            row["how"] = per[m["rejected_by"]][1][0]
            break
    log(f"  {m['name']}: " + (f"rejected by {m['rejected_by']} on attempt {row['attempt']}: {row['how']}"
                              if row["rejected"] else f"SURVIVED {row['attempts_run']} attempts"))
    return row


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="the CMake build folder (required)")
    ap.add_argument("--tsan-build", default=None, metavar="DIR",
                    help="a build of the suite with ThreadSanitizer, for the hand-over tests with threads "
                         "(default: none; those tests then end UNRESOLVED)")
    ap.add_argument("--profile", choices=("quick", "full"), default="quick",
                    help="quick, or full: about ten times the rounds and kills (default: %(default)s)")
    ap.add_argument("--out", default=None, help="where results go (default: BUILD/conformance-results)")
    ap.add_argument("--timeout", type=float, default=300, metavar="S",
                    help="seconds one test may take (default: %(default)s)")
    ap.add_argument("--all", action="store_true", help="every implementation (not the mutants)")
    ap.add_argument("--mutants", nargs="*", default=None, metavar="NAME",
                    help="check the mutants (all, or those named) against the reference (default: none)")
    ap.add_argument("--reference", default="shmds",
                    help="the implementation every mutant derives from (default: %(default)s)")
    ap.add_argument("--min-mutants", type=int, default=0, metavar="N",
                    help="fail unless at least this many mutants ran (default: %(default)s)")
    ap.add_argument("implementations", nargs="*", help="the implementations to run, by name (default: the reference)")
    return ap.parse_args(argv[1:])


def run_implementation(name, manifest, tsan_manifest, args, out):
    """Runs the suite (and its threads program and element probe) for one
    implementation; writes its gtest results to OUT/<name>.json and returns them."""
    print(f"run.py: {name} ({args.profile} profile)", flush=True)
    gtest = run_suite(manifest["program"], args.profile, args.timeout)
    threads = threads_program(manifest, tsan_manifest)
    if threads:
        print(f"  threads ({'ThreadSanitizer build' if tsan_manifest else 'no ThreadSanitizer'})", flush=True)
        gtest["testsuites"] += run_suite(threads, args.profile, args.timeout)["testsuites"]
    if manifest.get("element_probe"):
        entry = probe_elements(manifest)
        verdict = "FAIL" if entry.get("failures") else entry.get("outcome", "PASS")
        print(f"  element probe (ELEM-001): {verdict}")
        gtest["testsuites"].append({"name": "Compile", "testsuite": [entry]})
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(gtest, f, indent=1)
    return gtest


def run_mutants(mutants, reference_gtest, args, out, catalogue):
    """Checks the mutants args.mutants names against the reference's results;
    writes OUT/mutants.md and mutants.json; returns 0, or 1 when one survived
    or fewer than --min-mutants ran."""
    wanted = [n for n in mutants if not args.mutants or n.removeprefix("mutant-") in args.mutants]
    print(f"run.py: {len(wanted)} mutants, each against the tests citing its requirement", flush=True)
    rows = [check_mutant(mutants[n], reference_gtest, args.profile, args.timeout, catalogue, print)
            for n in wanted]
    text = mutants_markdown(rows)
    with open(os.path.join(out, "mutants.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "mutants.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(text)
    status = 0
    if not rows or not all(r["rejected"] for r in rows):
        status = 1
    if len(rows) < args.min_mutants:
        print(f"run.py: only {len(rows)} mutants ran, fewer than the {args.min_mutants} required",
              file=sys.stderr)
        status = 1
    return status


def main(argv):
    args = parse_args(argv)
    manifests = {n: m for n, m in load_manifests(args.build).items() if not m.get("workbench")}
    tsan_manifests = load_manifests(args.tsan_build) if args.tsan_build else {}
    if args.tsan_build and not tsan_manifests:
        print(f"run.py: no manifests in {args.tsan_build}/shmconf (--tsan-build)", file=sys.stderr)
        return 2
    plain = {n: m for n, m in manifests.items() if not m.get("mutant")}
    mutants = {n: m for n, m in manifests.items() if m.get("mutant")}
    chosen = list(plain) if args.all else list(args.implementations)
    if args.mutants is not None and args.reference not in chosen:
        chosen.insert(0, args.reference)
    if not chosen:
        chosen = [args.reference]
    unknown = [n for n in chosen if n not in plain]
    if unknown:
        print(f"run.py: no implementation {', '.join(unknown)} in {args.build}/shmconf "
              f"(known: {', '.join(plain) or 'none'})", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.build, "conformance-results")
    os.makedirs(out, exist_ok=True)
    with open(CATALOGUE) as f:
        catalogue = json.load(f)

    gtest = {name: run_implementation(name, plain[name], tsan_manifests.get(name), args, out) for name in chosen}
    expectations = {name: expectations_of(plain[name]) for name in chosen}
    results = report.build(catalogue, gtest, expectations)
    text = report.markdown(catalogue, results)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text)
    report.write_json(results, os.path.join(out, "report.json"))
    print(text)
    status = 1 if report.must_failed(catalogue, results) else 0
    if args.mutants is not None:
        status = max(status, run_mutants(mutants, gtest[args.reference], args, out, catalogue))
    return status

if __name__ == "__main__":
    sys.exit(main(sys.argv))
