"""The `run` command of mutate.py: the baselines on the unchanged library
(the suite, its tests with threads under ThreadSanitizer, the library's own
tests), then each mutant written into the workbench, built and run through
them until one kills it, with the results written again after each mutant.
It must leave every workbench it wrote as the unchanged library, however the
sweep ends (an interrupt included): a later build would otherwise carry the
last mutant."""
import dataclasses
import json
import os
import subprocess
import sys
import time

import run  # the suite's runner: its test listing

from . import results, runs
from .paths import CATALOGUE
from .rules import diff_of
from .workbench import WORKBENCH_TARGET, build_workbench, workbench_program, write_workbench


@dataclasses.dataclass
class Baselines:
    """The programs a mutant runs through and their tests on the unchanged
    library (runs.run_baseline's and runs.library_baseline's lists)."""
    program: str
    suite: list
    tsan_program: str = None
    tsan: list = dataclasses.field(default_factory=list)
    library: list = dataclasses.field(default_factory=list)

    @property
    def tests(self):
        """The suite's tests in both builds, as the results list them."""
        return self.suite + self.tsan


def sweep(args, mutants, seed, triage):
    """Runs `mutants` as mutate.py's options `args` say; the exit status."""
    if not args.build:
        print("mutate.py: run needs --build", file=sys.stderr)
        return 2
    with open(CATALOGUE) as f:
        catalogue = json.load(f)
    out = args.out or os.path.join(args.build, "mutation-results")
    os.makedirs(out, exist_ok=True)

    if args.library_only and not args.library:
        print("mutate.py: --library-only needs --library", file=sys.stderr)
        return 2
    bases = baselines(args, catalogue)
    if bases is None:
        return 1
    passing = sum(t["kills"] for t in bases.tests)
    print(f"mutate.py: {passing} of {len(bases.tests)} tests pass on the baseline and cite a "
          f"MUST ({sum(t['seconds'] for t in bases.tests):.0f} s); {len(mutants)} mutants", flush=True)

    header = header_of(args, len(mutants), seed, bases.library)
    rows = resumed_rows(args.resume, out, mutants)
    done = {r["id"] for r in rows}
    try:
        for i, m in enumerate(mutants, 1):
            if m["id"] in done:
                continue
            row = run_one(args, m, bases)
            rows.append(row)
            results.write_results(out, header, bases.tests, rows, len(mutants), triage)
            where = f" by {row['test']}" if row["outcome"] == "killed" else ""
            print(f"  [{i}/{len(mutants)}] {m['id']} ({m['file']}:{m['line']}, {m['detail']}): "
                  f"{row['class']}{where} ({row['seconds']} s)", flush=True)
    finally:
        write_workbench(args.build)  # leave the workbench unchanged
        if args.tsan_build:
            write_workbench(args.tsan_build)
    text = results.write_results(out, header, bases.tests, rows, len(mutants), triage)
    return results.finish(text, rows, triage)


def baselines(args, catalogue):
    """Builds the unchanged library into the workbenches and runs every test
    program there once (Baselines); None when a baseline does not build."""
    print(f"mutate.py: baseline (the unchanged library, {args.profile} profile)", flush=True)
    write_workbench(args.build)
    ok, output = build_workbench(args.build)
    if not ok:
        print(output[-3000:], file=sys.stderr)
        print("mutate.py: the unchanged library does not build in the workbench", file=sys.stderr)
        return None
    program = workbench_program(args.build)
    suite = [] if args.library_only else suite_baseline(args, program, catalogue)
    bases = Baselines(program, suite)
    if args.tsan_build and not args.library_only:
        tsan = tsan_baseline(args, catalogue)
        if tsan is None:
            return None
        bases.tsan_program, bases.tsan = tsan
    if args.library:
        bases.library = runs.library_baseline(args.build, args.timeout * 4, print)
    return bases


def suite_baseline(args, program, catalogue):
    """The suite's baseline: read from --baseline-from when that file is
    there (a run of the reference that has already happened), else run."""
    if args.baseline_from and os.path.exists(args.baseline_from):
        with open(args.baseline_from) as f:
            gtest = json.load(f)
        listing = subprocess.run([program, "--gtest_list_tests"], capture_output=True, text=True,
                                 check=True).stdout
        suite = runs.baseline_from_results(gtest, run.parse_test_list(listing), catalogue)
        print(f"mutate.py: the suite's baseline from {args.baseline_from} ({len(suite)} tests)", flush=True)
        return suite
    if args.baseline_from:
        print(f"mutate.py: no {args.baseline_from}: the suite's baseline is run here", flush=True)
    return runs.run_baseline(program, args.profile, args.timeout, catalogue, print)


def tsan_baseline(args, catalogue):
    """(program, baseline) of the hand-over tests with threads in the
    ThreadSanitizer build; None when they do not build."""
    write_workbench(args.tsan_build)
    ok, output = build_workbench(args.tsan_build, WORKBENCH_TARGET + "_threads")
    if not ok:
        print(output[-3000:], file=sys.stderr)
        print("mutate.py: the unchanged library's tests with threads do not build in the ThreadSanitizer "
              "workbench", file=sys.stderr)
        return None
    program = workbench_program(args.tsan_build, "threads_program")
    baseline = runs.run_baseline(program, args.profile, args.timeout, catalogue, print)
    for t in baseline:
        t["build"] = "ThreadSanitizer"
    return program, baseline


def header_of(args, count, seed, library):
    """The results' title line: what was run, and how."""
    return (f"# Mutation: {count} mutants of impl/include"
            + (f" (a sample of {args.sample}, seed {seed})" if args.sample else "")
            + (", the library's own tests only" if args.library_only else
               f", {args.profile} profile" + (", then the library's own tests" if library else "")))


def resumed_rows(resume, out, mutants):
    """With --resume, the rows OUT/mutation.json already has for `mutants`
    (in their order), which are not run again; else none."""
    if not (resume and os.path.exists(os.path.join(out, "mutation.json"))):
        return []
    with open(os.path.join(out, "mutation.json")) as f:
        earlier = {r["id"]: r for r in json.load(f)["mutants"]}
    rows = [earlier[m["id"]] for m in mutants if m["id"] in earlier]
    print(f"mutate.py: {len(rows)} mutants already run in {out}/mutation.json, not run again", flush=True)
    return rows


def run_one(args, m, bases):
    """Writes mutant `m` into the workbench, builds it and runs it through
    the baselines' tests: its row for the results."""
    started = time.monotonic()
    write_workbench(args.build, m)
    built, output = build_workbench(args.build)
    row = {k: m[k] for k in ("id", "file", "line", "rule", "detail")}
    row["diff"] = diff_of(m)
    if not built:
        errors = [l for l in output.splitlines() if "error" in l]
        row.update(outcome="stillborn", how=(errors[0] if errors else "build failed")[:300])
    else:
        run_built(args, m, bases, row)
    row["seconds"] = round(time.monotonic() - started, 1)
    return row


def run_built(args, m, bases, row):
    """Runs a mutant that compiled into the suite: the suite (--attempts
    times), then, while it survives, the tests with threads under
    ThreadSanitizer and the library's own tests. Updates `row`."""
    row["outcome"] = "survived"
    for attempt in range(1, 0 if args.library_only else args.attempts + 1):
        row.update(runs.run_mutant(bases.program, bases.suite, args.profile, print), attempts_run=attempt)
        if row["outcome"] == "killed":
            break
    if row["outcome"] != "killed" and bases.tsan_program:  # (none with --library-only)
        write_workbench(args.tsan_build, m)
        built, output = build_workbench(args.tsan_build, WORKBENCH_TARGET + "_threads")
        if built:
            row.update(runs.run_mutant(bases.tsan_program, bases.tsan, args.profile, print))
        else:  # it compiled in the main build: the ThreadSanitizer build itself is broken
            print(f"mutate.py: {m['id']} does not build in {args.tsan_build}; its tests with "
                  "threads did not run", file=sys.stderr)
    if row["outcome"] != "killed" and bases.library:
        row.update(runs.run_library_tests(args.build, bases.library, print))
