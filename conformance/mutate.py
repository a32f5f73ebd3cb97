#!/usr/bin/python3
"""Systematic mutation of the library: generates one-line defects by rule,
builds each into the conformance suite and runs it; reports the kill rate,
the survivors with their diffs, and the triaged ones.

Usage: mutate.py list [--rules R,...] [--files GLOB]
       mutate.py report --out DIR [--triage FILE]
       mutate.py run --build DIR [--tsan-build DIR] [--sample N] [--seed S|commit] [--only ID ...]
                     [--killed-in JSON] [--attempts N] [--resume]
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
which tests pass, how long each takes), then, for each mutant, writes the
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

Exit status: 1 when a mutant survives that the triage file does not list, or
the baseline fails to build; 2 for bad usage.
"""
import argparse
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIBRARY = os.path.join(ROOT, "impl", "include")
TRIAGE = os.path.join(HERE, "mutation", "triage.txt")
CATALOGUE = os.path.join(HERE, "spec", "catalogue.json")
WORKBENCH_TARGET = "shmconf_mutation-workbench"
LIBRARY_MANIFEST = "mutation-library-tests.json"

sys.path.insert(0, HERE)
import run  # noqa: E402  (the runner's test-in-its-own-process and manifests)


# ---- generating mutants (pure) -------------------------------------------------------------------

def split_comment(line):
    """(code, comment) of a C++ line: the comment is from the first // that
    is not inside a string or character literal."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif line.startswith("//", i):
            return line[:i], line[i:]
        i += 1
    return line, ""


def mutable_lines(text):
    """(index, code, comment) of each line a rule may touch: not blank, not
    a comment, not a preprocessor line, not inside a block comment or a
    static_assert, not a fault point."""
    out = []
    in_block = False
    assert_depth = 0
    for index, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if in_block:
            if "*/" in stripped:
                in_block = False
            continue
        if stripped.startswith("/*"):
            in_block = "*/" not in stripped
            continue
        code, comment = split_comment(line)
        if assert_depth > 0:
            assert_depth = max(0, assert_depth + code.count("(") - code.count(")"))
            continue
        if code.strip().startswith("static_assert"):
            assert_depth = max(0, code.count("(") - code.count(")"))
            continue
        if not code.strip() or code.strip().startswith("#") or "SHMDS_FAULT_POINT" in code \
                or "SHMDS_INJECTED_WORK" in code:
            continue
        out.append((index, code, comment))
    return out


RELATIONAL = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
RELATIONAL_RE = re.compile(r"(?<=\s)(<=|>=|==|!=|<|>)(?=\s)")
OFF_BY_ONE_RE = re.compile(r" [+-] 1\b(?!\.)")
ORDER_RE = re.compile(r"memory_order_(acquire|release|acq_rel|seq_cst)\b")
WAKE_RE = re.compile(r"\b\w*(wake|notify)\w*\s*\(")
RECOVERY_RE = re.compile(r"\b\w*(repair|recover|consistent|release_dead|reclaim|unlink|release_roles|"
                         r"release_attach_locks)\w*\s*\(")
FAILING_BODY_RE = re.compile(r"^\s*(throw\b|throw_\w+\(|return (false|std::nullopt|nullptr)\b|return;)")


def is_statement(code):
    """A whole statement on one line: ends with ';', parentheses balanced,
    not a declaration with an initialiser, not a return or a control line."""
    s = code.strip()
    return (s.endswith(";") and s.count("(") == s.count(")") and not re.match(r"(return|if|for|while|case)\b", s)
            and not re.match(r"^[\w:<>,\s&*]+\s+\w+\s*[={(]", s))


def blank_statement(code):
    indent = code[:len(code) - len(code.lstrip())]
    return indent + ";"


def condition_span(code):
    """(start, end) of the condition of an `if (` on this line, inside the
    parentheses, or None when the parentheses do not close on the line."""
    m = re.search(r"\bif (constexpr )?\(", code)
    if not m:
        return None
    depth = 0
    for i in range(m.end() - 1, len(code)):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return m.end(), i
    return None


def operand_removals(code):
    """Each way of deleting the right operand of one && or || on the line:
    (start, end) spans to cut."""
    spans = []
    depth = 0
    depth_at = []
    for i, c in enumerate(code):
        depth_at.append(depth)
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
    for m in re.finditer(r" (&&|\|\|) ", code):
        d = depth_at[m.start()]
        j = m.end()
        while j < len(code):
            c = code[j]
            if depth_at[j] == d and (c in ";,?" or code.startswith(" &&", j) or code.startswith(" ||", j)):
                break
            if depth_at[j] < d or (c in ")]}" and depth_at[j] == d):
                break
            j += 1
        if j > m.end():
            spans.append((m.start(), j))
    return spans


def _variants(code, next_code):
    """(rule, new code, detail) of every mutation of one line."""
    out = []
    for m in RELATIONAL_RE.finditer(code):
        op = m.group(1)
        out.append(("relational", code[:m.start()] + RELATIONAL[op] + code[m.end():], f"{op} -> {RELATIONAL[op]}"))
    for m in OFF_BY_ONE_RE.finditer(code):
        out.append(("off_by_one", code[:m.start()] + code[m.end():], f"drop '{m.group(0).strip()}'"))
    for m in ORDER_RE.finditer(code):
        out.append(("memory_order", code[:m.start()] + "memory_order_relaxed" + code[m.end():],
                    f"{m.group(0)} -> memory_order_relaxed"))
    if is_statement(code) and WAKE_RE.search(code):
        out.append(("drop_wake", blank_statement(code), "delete the statement"))
    if is_statement(code) and RECOVERY_RE.search(code) and not WAKE_RE.search(code):
        out.append(("drop_recovery", blank_statement(code), "delete the statement"))
    span = condition_span(code)
    if span and "constexpr" not in code[:span[0]]:
        body = code[span[1] + 1:]
        if FAILING_BODY_RE.match(body) or (not body.strip() and next_code is not None
                                           and FAILING_BODY_RE.match(next_code)):
            out.append(("drop_check", code[:span[0]] + "false" + code[span[1]:], "condition -> false"))
    if re.search(r"\b(if|while|return)\b", code) or "&&" in code or "||" in code:
        for start, end in operand_removals(code):
            out.append(("drop_conjunct", code[:start] + code[end:], f"delete '{code[start:end].strip()}'"))
    if re.search(r"\breturn true;", code):
        out.append(("flip_return", code.replace("return true;", "return false;", 1), "true -> false"))
    if re.search(r"\breturn false;", code):
        out.append(("flip_return", code.replace("return false;", "return true;", 1), "false -> true"))
    return out


def _is_store(code):
    return is_statement(code) and ".store(" in code


def _swappable(code):
    return is_statement(code) and (".store(" in code or "construct_at(" in code or "memcpy(" in code
                                   or re.match(r"^\s*[\w.\->\[\]*]+ (=|\+=|-=) ", code))


def generate(relpath, text):
    """Every mutant of one file: dicts with id, file, line (1-based), rule,
    detail, and the lines replaced (`before`) and their replacement (`after`)."""
    lines = text.split("\n")
    candidates = mutable_lines(text)
    seen = {}
    mutants = []

    def add(rule, index, before, after, detail):
        key = (rule, hashlib.sha1("\n".join(before).strip().encode()).hexdigest()[:8])
        seen[key] = seen.get(key, 0) + 1
        ident = f"{rule}:{relpath}:{key[1]}:{seen[key]}"
        mutants.append({"id": ident, "file": relpath, "line": index + 1, "rule": rule, "detail": detail,
                        "before": before, "after": after})

    by_index = {i: (code, comment) for i, code, comment in candidates}
    for pos, (index, code, comment) in enumerate(candidates):
        next_code = candidates[pos + 1][1] if pos + 1 < len(candidates) else None
        for rule, new_code, detail in _variants(code, next_code):
            add(rule, index, [lines[index]], [new_code + comment], detail)
        following = by_index.get(index + 1)
        if following and (_is_store(code) or _is_store(following[0])) and _swappable(code) \
                and _swappable(following[0]):
            add("swap_stores", index, [lines[index], lines[index + 1]], [lines[index + 1], lines[index]],
                "swap with the next line")
    return mutants


def generate_all(root=LIBRARY, files="*"):
    mutants = []
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if name.endswith(".hpp") and fnmatch.fnmatch(rel, files):
                with open(path) as f:
                    mutants += generate(rel, f.read())
    return mutants


def apply(text, mutant):
    """`text` with the mutant applied; ValueError when its lines are not
    where it says (the file changed since it was generated)."""
    lines = text.split("\n")
    i = mutant["line"] - 1
    if lines[i:i + len(mutant["before"])] != mutant["before"]:
        raise ValueError(f"{mutant['id']}: {mutant['file']}:{mutant['line']} is no longer what it mutates")
    lines[i:i + len(mutant["before"])] = mutant["after"]
    return "\n".join(lines)


def diff_of(mutant):
    """The mutant as a small unified diff."""
    out = [f"--- a/{mutant['file']}", f"+++ b/{mutant['file']}",
           f"@@ -{mutant['line']},{len(mutant['before'])} +{mutant['line']},{len(mutant['after'])} @@"]
    out += ["-" + l for l in mutant["before"]] + ["+" + l for l in mutant["after"]]
    return "\n".join(out)


def sample(mutants, count, seed):
    """`count` mutants, spread over the rules (round robin over rules, each
    rule's mutants in an order fixed by `seed`)."""
    rng = random.Random(str(seed))
    by_rule = {}
    for m in mutants:
        by_rule.setdefault(m["rule"], []).append(m)
    for rule in by_rule.values():
        rng.shuffle(rule)
    order = sorted(by_rule)
    rng.shuffle(order)
    chosen = []
    while len(chosen) < min(count, len(mutants)):
        for rule in order:
            if by_rule[rule] and len(chosen) < count:
                chosen.append(by_rule[rule].pop())
    return chosen


def parse_triage(text):
    """{id: (verdict, reason)} from triage lines '<id> equivalent|gap <reason>'
    (# starts a comment)."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] not in ("equivalent", "gap"):
            raise ValueError(f"triage line {number}: expected '<id> equivalent|gap <reason>', got '{line}'")
        out[parts[0]] = (parts[1], parts[2])
    return out


def classify(row, triage):
    """The outcome of one run mutant: killed, stillborn, equivalent, gap
    (a known survivor) or survived (unknown)."""
    if row["outcome"] in ("killed", "stillborn"):
        return row["outcome"]
    if row["id"] in triage:
        return triage[row["id"]][0]
    return "survived"


def totals(rows):
    """Counts per class, and the kill rate over the counted mutants (killed,
    gaps and survivors; not stillborn or equivalent)."""
    counts = {}
    for r in rows:
        counts[r["class"]] = counts.get(r["class"], 0) + 1
    counted = counts.get("killed", 0) + counts.get("gap", 0) + counts.get("survived", 0)
    rate = counts.get("killed", 0) / counted if counted else None
    return counts, counted, rate


def markdown(rows, header):
    counts, counted, rate = totals(rows)
    by_library = sum(r["class"] == "killed" and killed_by_library(r) for r in rows)
    lines = [header, "",
             f"{len(rows)} mutants: " + ", ".join(f"{counts[k]} {k}" for k in sorted(counts)) + ".",
             (f"Kill rate: {counts.get('killed', 0)} of {counted} counted mutants ({100 * rate:.1f}%); "
              "stillborn (does not compile) and equivalent mutants are not counted." if counted else
              "No counted mutants.")]
    if counted and by_library:
        suite = counts.get("killed", 0) - by_library
        lines.append(f"By the conformance suite alone: {suite} of {counted} ({100 * suite / counted:.1f}%); "
                     f"the library's own tests (run --library) killed the other {by_library}, in code the "
                     "adapter contract does not reach or that the suite's tests miss.")
    lines.append("")
    rules = sorted({r["rule"] for r in rows})
    lines += ["| Rule | Mutants | Killed (suite) | Killed (library's tests) | Survived (known gap) "
              "| Survived (untriaged) | Equivalent | Stillborn |",
              "|---|---|---|---|---|---|---|---|"]
    for rule in rules:
        rs = [r for r in rows if r["rule"] == rule]
        c = {k: sum(r["class"] == k for r in rs) for k in ("killed", "gap", "survived", "equivalent", "stillborn")}
        library = sum(r["class"] == "killed" and killed_by_library(r) for r in rs)
        lines.append(f"| {rule} | {len(rs)} | {c['killed'] - library} | {library} | {c['gap']} | {c['survived']} "
                     f"| {c['equivalent']} | {c['stillborn']} |")
    for title, wanted in (("Survivors not triaged", "survived"), ("Known gaps", "gap"),
                          ("Equivalent", "equivalent")):
        chosen = [r for r in rows if r["class"] == wanted]
        if not chosen:
            continue
        lines += ["", f"## {title}", ""]
        for r in chosen:
            lines.append(f"### `{r['id']}` ({r['file']}:{r['line']}, {r['detail']})")
            if r.get("reason"):
                lines.append("")
                lines.append(r["reason"])
            lines += ["", "```diff", r["diff"], "```"]
    killed = [r for r in rows if r["class"] == "killed"]
    if killed:
        lines += ["", "## Killed", "", "| Mutant | Where | Change | Killed by | Test |", "|---|---|---|---|---|"]
        for r in killed:
            by = "the library's tests" if killed_by_library(r) else ", ".join(r.get("requirements", [])) or "-"
            lines.append(f"| `{r['id']}` | {r['file']}:{r['line']} | {r['detail']} | {by} | {r.get('test', '')} |")
    return "\n".join(lines) + "\n"


def killed_by_library(row):
    """True when the library's own tests (run --library), not the
    conformance suite, killed the mutant."""
    return row.get("stage") == "library"


# ---- running -------------------------------------------------------------------------------------

def killed_ids(result, library=False):
    """IDs of the mutants an earlier mutation.json records as killed (by
    the library's own tests too only with `library`: the suite alone cannot
    be expected to kill those again)."""
    return {r["id"] for r in result.get("mutants", [])
            if r.get("class") == "killed" and (library or not killed_by_library(r))}


def current_commit():
    done = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "0"


def write_results(out, header, baseline, rows, planned, triage):
    """Writes OUT/mutation.md and .json for the rows so far (after each
    mutant, so that an interrupted sweep keeps what it did); returns the
    Markdown."""
    for r in rows:
        r["class"] = classify(r, triage)
        r.pop("reason", None)
        if r["id"] in triage:
            r["reason"] = triage[r["id"]][1]
    if len(rows) < planned:
        header += f"\n\nInterrupted: {len(rows)} of the {planned} mutants ran (run again with --resume)."
    text = markdown(rows, header)
    with open(os.path.join(out, "mutation.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "mutation.json"), "w") as f:
        json.dump({"header": header.split("\n\nInterrupted")[0], "baseline": baseline, "planned": planned,
                   "mutants": rows}, f, indent=1)
    return text


def finish(text, rows, triage):
    """Prints the summary; the exit status: 1 when a survivor is not triaged."""
    print(text.split("\n\n## ")[0])
    now_killed = [r["id"] for r in rows if r["class"] == "killed" and r["id"] in triage]
    if now_killed:
        print("mutate.py: now killed, remove from the triage file: " + ", ".join(now_killed))
    untriaged = [r["id"] for r in rows if r["class"] == "survived"]
    if untriaged:
        print("mutate.py: survivors not in the triage file: " + ", ".join(untriaged), file=sys.stderr)
        return 1
    return 0


def write_workbench(build, mutant=None):
    """The library's headers, with `mutant` applied, in BUILD/mutation-workbench."""
    target = os.path.join(build, "mutation-workbench", "impl", "include")
    if os.path.isdir(target):
        shutil.rmtree(target)
    # Fresh modification times (shutil.copy, not copy2): a header put back
    # with its old time would look older than the objects built from the
    # previous mutant, and the build would keep the mutant.
    shutil.copytree(LIBRARY, target, copy_function=shutil.copy)
    if mutant:
        path = os.path.join(target, mutant["file"])
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(apply(text, mutant))


def build_workbench(build, target=WORKBENCH_TARGET):
    done = subprocess.run(["cmake", "--build", build, "--target", target, "-j", str(os.cpu_count() or 2)],
                          capture_output=True, text=True)
    return done.returncode == 0, done.stdout + done.stderr


def workbench_program(build, key="program"):
    """The workbench's suite program (key "program") or its hand-over
    tests with threads ("threads_program")."""
    manifest = run.load_manifests(build).get("mutation-workbench")
    if not manifest or not manifest.get(key):
        raise SystemExit(f"mutate.py: no mutation-workbench manifest with a {key} in {build}/shmconf "
                         "(configure with SHMCONF_BUILD_MUTANTS=ON)")
    return manifest[key]


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


def library_programs(build):
    """The library's own test programs built against the workbench, cheapest
    first (BUILD/mutation-library-tests.json, written by conformance/mutants)."""
    path = os.path.join(build, LIBRARY_MANIFEST)
    if not os.path.exists(path):
        raise SystemExit(f"mutate.py: no {path}: --library needs a build with the library's tests and "
                         "the mutants (SHMDS_BUILD_TESTS and SHMCONF_BUILD_MUTANTS on)")
    with open(path) as f:
        return json.load(f)


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


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("command", choices=("list", "run", "report"),
                    help="list the mutants, run them, or report again on OUT/mutation.json with the "
                         "current triage file")
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
    args = ap.parse_args(argv[1:])

    mutants = generate_all(files=args.files)
    if args.rules:
        wanted = set(args.rules.split(","))
        unknown = wanted - {m["rule"] for m in mutants}
        if unknown:
            print(f"mutate.py: no mutants of rule {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m["rule"] in wanted]
    if args.only is not None:
        known = {m["id"]: m for m in mutants}
        missing = [i for i in args.only if i not in known]
        if missing:
            print(f"mutate.py: no mutant {', '.join(missing)}", file=sys.stderr)
            return 2
        mutants = [known[i] for i in args.only]
    if args.killed_in:
        with open(args.killed_in) as f:
            before = killed_ids(json.load(f), args.library)
        if not before:
            print(f"mutate.py: {args.killed_in} lists no killed mutant", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m["id"] in before]
        print(f"mutate.py: {len(mutants)} of the {len(before)} mutants {args.killed_in} records as killed "
              "still exist", file=sys.stderr)
        if not mutants:
            print("mutate.py: none is left (the code changed under them): run the sweep again", file=sys.stderr)
            return 1
    seed = current_commit() if args.seed == "commit" else args.seed
    if args.sample:
        mutants = sample(mutants, args.sample, seed)

    if args.command == "list":
        for m in mutants:
            print(f"{m['id']}\t{m['file']}:{m['line']}\t{m['detail']}")
        rules = {}
        for m in mutants:
            rules[m["rule"]] = rules.get(m["rule"], 0) + 1
        print(f"{len(mutants)} mutants: " + ", ".join(f"{rules[r]} {r}" for r in sorted(rules)), file=sys.stderr)
        return 0

    with open(args.triage) as f:
        triage = parse_triage(f.read())
    if args.command == "report":
        if not args.out:
            print("mutate.py: report needs --out", file=sys.stderr)
            return 2
        with open(os.path.join(args.out, "mutation.json")) as f:
            earlier = json.load(f)
        rows = earlier["mutants"]
        text = write_results(args.out, earlier.get("header", "# Mutation"), earlier["baseline"], rows,
                             earlier.get("planned", len(rows)), triage)
        return finish(text, rows, triage)
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
    print(f"mutate.py: baseline (the unchanged library, {args.profile} profile)", flush=True)
    write_workbench(args.build)
    ok, output = build_workbench(args.build)
    if not ok:
        print(output[-3000:], file=sys.stderr)
        print("mutate.py: the unchanged library does not build in the workbench", file=sys.stderr)
        return 1
    program = workbench_program(args.build)
    baseline = [] if args.library_only else run_baseline(program, args.profile, args.timeout, catalogue, print)
    tsan_program, tsan_baseline = None, []
    if args.tsan_build and not args.library_only:
        write_workbench(args.tsan_build)
        ok, output = build_workbench(args.tsan_build, WORKBENCH_TARGET + "_threads")
        if not ok:
            print(output[-3000:], file=sys.stderr)
            print("mutate.py: the unchanged library's tests with threads do not build in the ThreadSanitizer "
                  "workbench", file=sys.stderr)
            return 1
        tsan_program = workbench_program(args.tsan_build, "threads_program")
        tsan_baseline = run_baseline(tsan_program, args.profile, args.timeout, catalogue, print)
        for t in tsan_baseline:
            t["build"] = "ThreadSanitizer"
    library = library_baseline(args.build, args.timeout * 4, print) if args.library else []
    passing = sum(t["kills"] for t in baseline + tsan_baseline)
    print(f"mutate.py: {passing} of {len(baseline) + len(tsan_baseline)} tests pass on the baseline and cite a "
          f"MUST ({sum(t['seconds'] for t in baseline + tsan_baseline):.0f} s); {len(mutants)} mutants", flush=True)

    header = (f"# Mutation: {len(mutants)} mutants of impl/include"
              + (f" (a sample of {args.sample}, seed {seed})" if args.sample else "")
              + (", the library's own tests only" if args.library_only else
                 f", {args.profile} profile" + (", then the library's own tests" if library else "")))
    rows = []
    if args.resume and os.path.exists(os.path.join(out, "mutation.json")):
        with open(os.path.join(out, "mutation.json")) as f:
            earlier = {r["id"]: r for r in json.load(f)["mutants"]}
        rows = [earlier[m["id"]] for m in mutants if m["id"] in earlier]
        print(f"mutate.py: {len(rows)} mutants already run in {out}/mutation.json, not run again", flush=True)
    done = {r["id"] for r in rows}
    try:
        for i, m in enumerate(mutants, 1):
            if m["id"] in done:
                continue
            started = time.monotonic()
            write_workbench(args.build, m)
            built, output = build_workbench(args.build)
            row = {k: m[k] for k in ("id", "file", "line", "rule", "detail")}
            row["diff"] = diff_of(m)
            if not built:
                errors = [l for l in output.splitlines() if "error" in l]
                row.update(outcome="stillborn", how=(errors[0] if errors else "build failed")[:300])
            else:
                row["outcome"] = "survived"
                for attempt in range(1, 0 if args.library_only else args.attempts + 1):
                    row.update(run_mutant(program, baseline, args.profile, print), attempts_run=attempt)
                    if row["outcome"] == "killed":
                        break
                if row["outcome"] != "killed" and tsan_program:  # (none with --library-only)
                    write_workbench(args.tsan_build, m)
                    built, output = build_workbench(args.tsan_build, WORKBENCH_TARGET + "_threads")
                    if built:
                        row.update(run_mutant(tsan_program, tsan_baseline, args.profile, print))
                    else:  # it compiled in the main build: the ThreadSanitizer build itself is broken
                        print(f"mutate.py: {m['id']} does not build in {args.tsan_build}; its tests with "
                              "threads did not run", file=sys.stderr)
                if row["outcome"] != "killed" and library:
                    row.update(run_library_tests(args.build, library, print))
            row["seconds"] = round(time.monotonic() - started, 1)
            rows.append(row)
            write_results(out, header, baseline + tsan_baseline, rows, len(mutants), triage)
            where = f" by {row['test']}" if row["outcome"] == "killed" else ""
            print(f"  [{i}/{len(mutants)}] {m['id']} ({m['file']}:{m['line']}, {m['detail']}): "
                  f"{row['class']}{where} ({row['seconds']} s)", flush=True)
    finally:
        write_workbench(args.build)  # leave the workbench unchanged
        if args.tsan_build:
            write_workbench(args.tsan_build)
    text = write_results(out, header, baseline + tsan_baseline, rows, len(mutants), triage)
    return finish(text, rows, triage)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
