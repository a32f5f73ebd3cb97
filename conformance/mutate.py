#!/usr/bin/python3
"""Systematic mutation of the library: generates one-line defects by rule,
builds each into the conformance suite and runs it; reports the kill rate,
the survivors with their diffs, and the triaged ones.

Usage: mutate.py list [--rules R,...] [--files GLOB]
       mutate.py report --out DIR [--triage FILE]
       mutate.py tce [--only ID ...] [--rules R,...] [--files GLOB]
       mutate.py run --build DIR [--tsan-build DIR] [--sample N] [--seed S|commit] [--only ID ...]
                     [--killed-in JSON] [--baseline-from JSON] [--attempts N] [--resume]
                     [--rules R,...] [--files GLOB] [--out DIR] [--timeout S]
                     [--profile quick|full] [--triage FILE] [--library [--library-only]]

Rules (each applied wherever it fits in impl/include/shmds, comments,
preprocessor lines, static_asserts and fault points left alone):
  relational      flip a comparison: < and <=, > and >=, == and !=
  off_by_one      drop a "+ 1" or "- 1"
  memory_order    weaken an acquire, release, acq_rel or seq_cst to relaxed
  drop_wake       delete a statement that wakes or notifies waiters
  drop_check      make the condition of an if that throws or fails false
  drop_recovery   delete a statement that recovers from a dead process
                  (repair, recover, make consistent, release a dead claim, unlink)
  drop_conjunct   delete one operand of an && or ||
  swap_stores     swap two adjacent statements of which one is an atomic store
  flip_return     return true where it returns false, and the reverse

Every mutant has a stable ID (rule, file, a hash of the original line, and
which of its identical lines and variants it is), so a triage entry keeps
naming the same mutant while the code around it changes.

`run` builds the suite once against the unchanged headers (the baseline:
which tests pass, how long each takes; with --baseline-from, read from a
run of the reference that has already happened instead of run again), then, for each mutant, writes the
headers with that one change into BUILD/mutation-workbench, builds the
suite's programs for it (target shmconf_mutation-workbench, unoptimised,
as the shipped mutants are) and runs the tests that passed on the baseline,
fastest first, each in a process of its own, until one fails: the mutant is
killed. Only tests that cite a MUST requirement kill (a SHOULD or MAY is
a quality the library may miss by chance); a test that failed once on the
baseline (and passed on a second or third try) must fail twice to kill. A
mutant that does not compile is stillborn (not counted). A survivor is
looked up in the triage file (mutation/triage.txt): "equivalent" (no
observable difference, with the reason; not counted) or "gap" (a known
weakness of the suite, with what would catch it; counted as a survivor but
known). Writes OUT/mutation.md and OUT/mutation.json after each mutant, so
that --resume can go on with an interrupted run; `report` writes them again
from OUT/mutation.json with the current triage file.

With --tsan-build DIR (a build of the suite with ThreadSanitizer), a mutant
that survives those tests is written into DIR's workbench as well, and the
hand-over tests with threads (Q-010, STK-005: test_threads.cpp) run there,
where a race report kills it: weakened memory orders that x86-64 would
never show.

With --library, a mutant that survives the suite meets the library's own
tests next (impl/tests, built against the same workbench: the programs
BUILD/mutation-library-tests.json lists, cheapest first; each runs whole,
stopping at its first failure; a failed test must fail again alone to kill,
a crash or hang must happen again). They reach code the adapter contract
does not (shmds-inspect's listing, create-only, full(), top(), the wording
of errors, options); the report gives the suite's kill rate alone beside
the combined one. With --library-only as well, the suite is not run (for
survivors an earlier sweep records; merge their rows into it).

`tce` (trivial compiler equivalence) compiles a probe that uses every
public operation (mutation/tce_probe.cpp) against the unchanged headers and
against each mutant, with g++ and clang++ at -O2 and -O3 and an aarch64 g++
at -O2, and prints for each mutant "identical" (every object is the
original's byte for byte, while the unoptimised one differs: no test of an
optimised build can tell it apart), "differs" (and with which), or
"unreached" (even the unoptimised object is the original's). Evidence for a
triage entry; it runs no test and changes no file.

Exit status: 1 when a mutant survives that the triage file does not list, or
the baseline fails to build; 2 for bad usage.
"""
# The command line only: the rules, the runs and the report are in the
# package mutator/ (its __init__ lists the modules).
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # for mutator/ and the runner it uses (run.py)
from mutator import results  # noqa: E402
from mutator.paths import ROOT, TRIAGE  # noqa: E402
from mutator.rules import generate_all, sample  # noqa: E402
from mutator.sweep import sweep  # noqa: E402


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("command", choices=("list", "run", "report", "tce"),
                    help="list the mutants, run them, report again on OUT/mutation.json with the "
                         "current triage file, or compare their object code with the original's")
    ap.add_argument("--build", help="the CMake build folder (required for run)")
    ap.add_argument("--tsan-build", default=None, metavar="DIR",
                    help="a ThreadSanitizer build of the suite, where survivors meet the hand-over tests "
                         "with threads (default: none)")
    ap.add_argument("--library", action="store_true",
                    help="survivors of the suite meet the library's own tests next, built against the "
                         "workbench (default: the conformance suite only)")
    ap.add_argument("--library-only", action="store_true",
                    help="with --library: the mutants meet only the library's tests (for survivors an earlier "
                         "run of the suite already let through; default: the suite first)")
    ap.add_argument("--rules", default="", help="only these rules, comma-separated (default: all)")
    ap.add_argument("--files", default="*", help="only files matching this pattern, relative to "
                                                  "impl/include (default: %(default)s)")
    ap.add_argument("--sample", type=int, default=0, metavar="N",
                    help="run N mutants spread over the rules (default: every mutant)")
    ap.add_argument("--seed", default="0", help="which sample: any text, or 'commit' for the checked-out "
                                                 "commit's hash (default: %(default)s)")
    ap.add_argument("--killed-in", default=None, metavar="JSON",
                    help="only mutants that this earlier result (mutation.json) records as killed: a "
                         "regression check of the suite (default: every mutant)")
    ap.add_argument("--baseline-from", default=None, metavar="JSON",
                    help="the suite's baseline from this run of the reference (run.py's OUT/shmds.json) "
                         "instead of a run of its own, when the file is there (default: run it)")
    ap.add_argument("--attempts", type=int, default=1, metavar="N",
                    help="runs of the suite before a mutant counts as survived (default: %(default)s)")
    ap.add_argument("--only", nargs="*", default=None, metavar="ID", help="run these mutants (default: all)")
    ap.add_argument("--out", default=None, help="where results go (default: BUILD/mutation-results)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the mutants OUT/mutation.json already has and run only the others "
                         "(default: run every mutant)")
    ap.add_argument("--timeout", type=float, default=300, metavar="S",
                    help="seconds one baseline test may take (default: %(default)s); a mutant's test "
                         "gets five times the baseline's time plus 10 s, at least 20 s")
    ap.add_argument("--profile", choices=("quick", "full"), default="quick", help="(default: %(default)s)")
    ap.add_argument("--triage", default=TRIAGE, help="the triage file (default: conformance/mutation/triage.txt)")
    return ap


def current_commit():
    done = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "0"


def select(args):
    """(the mutants --rules, --files, --only and --killed-in choose, None),
    or ([], the exit status) when they choose none or name what is not there."""
    mutants = generate_all(files=args.files)
    if args.rules:
        wanted = set(args.rules.split(","))
        unknown = wanted - {m["rule"] for m in mutants}
        if unknown:
            print(f"mutate.py: no mutants of rule {', '.join(sorted(unknown))}", file=sys.stderr)
            return [], 2
        mutants = [m for m in mutants if m["rule"] in wanted]
    if args.only is not None:
        known = {m["id"]: m for m in mutants}
        missing = [i for i in args.only if i not in known]
        if missing:
            print(f"mutate.py: no mutant {', '.join(missing)}", file=sys.stderr)
            return [], 2
        mutants = [known[i] for i in args.only]
    if args.killed_in:
        with open(args.killed_in) as f:
            before = results.killed_ids(json.load(f), args.library)
        if not before:
            print(f"mutate.py: {args.killed_in} lists no killed mutant", file=sys.stderr)
            return [], 2
        mutants = [m for m in mutants if m["id"] in before]
        print(f"mutate.py: {len(mutants)} of the {len(before)} mutants {args.killed_in} records as killed "
              "still exist", file=sys.stderr)
        if not mutants:
            print("mutate.py: none is left (the code changed under them): run the sweep again", file=sys.stderr)
            return [], 1
    return mutants, None


def list_mutants(mutants):
    for m in mutants:
        print(f"{m['id']}\t{m['file']}:{m['line']}\t{m['detail']}")
    rules = {}
    for m in mutants:
        rules[m["rule"]] = rules.get(m["rule"], 0) + 1
    print(f"{len(mutants)} mutants: " + ", ".join(f"{rules[r]} {r}" for r in sorted(rules)), file=sys.stderr)
    return 0


def compiler_equivalence(mutants):
    """The `tce` command: each mutant's verdict, one line each."""
    from mutator.tce import check
    for m, kind, detail in check(mutants, lambda text: print(text, file=sys.stderr)):
        print(f"{m['id']}\t{kind}\t{detail}", flush=True)
    return 0


def report(out, triage):
    """Writes OUT/mutation.md and .json again from OUT/mutation.json with
    the current triage; the exit status."""
    if not out:
        print("mutate.py: report needs --out", file=sys.stderr)
        return 2
    with open(os.path.join(out, "mutation.json")) as f:
        earlier = json.load(f)
    rows = earlier["mutants"]
    text = results.write_results(out, earlier.get("header", "# Mutation"), earlier["baseline"], rows,
                                 earlier.get("planned", len(rows)), triage)
    return results.finish(text, rows, triage)


def main(argv):
    args = parser().parse_args(argv[1:])
    mutants, status = select(args)
    if status is not None:
        return status
    seed = current_commit() if args.seed == "commit" else args.seed
    if args.sample:
        mutants = sample(mutants, args.sample, seed)
    if args.command == "list":
        return list_mutants(mutants)
    if args.command == "tce":
        return compiler_equivalence(mutants)
    with open(args.triage) as f:
        triage = results.parse_triage(f.read())
    if args.command == "report":
        return report(args.out, triage)
    return sweep(args, mutants, seed, triage)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
