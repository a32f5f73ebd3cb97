#!/usr/bin/python3
"""Per-requirement conformance report.

Usage: report.py CATALOGUE.json NAME=RESULTS.json [NAME=RESULTS.json ...]
                 [--expect NAME=EXPECTATIONS.txt ...] [--markdown FILE] [--json FILE]

  --expect NAME=FILE  NAME's expectations file (below); repeatable (none)
  --markdown FILE     also write the table to FILE (stdout only)
  --json FILE         also write the verdicts as JSON to FILE (none)
  -h, --help          this text

Joins GoogleTest's JSON output (--gtest_output=json:FILE) of one or more
implementations with the requirement catalogue: every requirement gets, per
implementation, PASS (every test citing it passed), FAIL (one failed),
UNRESOLVED (could not be set up here, with the reason), UNSUPPORTED (the
capability is not claimed) or UNTESTED (no test cites it). An expectations
file lists requirements known to fail, one per line with its reason
("REQ-ID  reason"; # starts a comment): those that fail are XFAIL, those
that pass XPASS (the expectation is out of date). Prints a Markdown
table (implementations side by side) and a verdict per tier (core,
concurrent, robust: each requirement's tier is stated in requirements.md).
Exits 1 when any MUST requirement FAILs (not XFAIL) for any implementation.
"""
import json
import sys
import textwrap


def level_of(requirement):
    """The requirement's tier (core, concurrent or robust), as requirements.md states it."""
    return requirement.get("tier", "core")


def failure_summary(text):
    """`file:line: message` on one line, from GoogleTest's failure text,
    whole: which inputs failed is often at its end (the report folds it)."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if not lines:
        return "failed"
    message = " ".join(l for l in lines[1:] if l != "Failed")
    return f"{lines[0]}: {message}" if message else lines[0]


def folded(item, width=100):
    """A Markdown list item, its text folded over lines of at most `width`
    characters (continuation lines indented, so they stay in the item);
    nothing is cut."""
    wrapped = textwrap.wrap(item, width=width - 2, break_long_words=True, break_on_hyphens=False)
    return "- " + "\n  ".join(wrapped or [""])


def test_outcomes(gtest):
    """[(requirement ids, outcome, detail)] for every test in a GoogleTest JSON result."""
    out = []
    for suite in gtest.get("testsuites", []):
        for test in suite.get("testsuite", []):
            ids = test.get("requirements", "").split()
            if not ids:
                continue
            name = f"{test.get('classname', '')}.{test.get('name', '')}"
            recorded = test.get("outcome", "")
            if test.get("failures"):
                out.append((ids, "FAIL", f"{name}: {failure_summary(test['failures'][0].get('failure', ''))}"))
            elif test.get("result") == "SKIPPED" or recorded:
                kind = "UNRESOLVED" if recorded.startswith("UNRESOLVED") else "UNSUPPORTED"
                out.append((ids, kind, f"{name}: {recorded or 'skipped'}"))
            else:
                out.append((ids, "PASS", name))
    return out


def verdicts(catalogue, gtest):
    """{requirement id: (verdict, details)} for one implementation."""
    by_id = {r["id"]: [] for r in catalogue}
    for ids, outcome, detail in test_outcomes(gtest):
        for i in ids:
            by_id.setdefault(i, []).append((outcome, detail))
    result = {}
    for rid, outcomes in by_id.items():
        kinds = {o for o, _ in outcomes}
        for verdict in ("FAIL", "UNRESOLVED", "PASS", "UNSUPPORTED"):
            if verdict in kinds:
                result[rid] = (verdict, [d for o, d in outcomes if o == verdict])
                break
        else:
            result[rid] = ("UNTESTED", [])
    return result


def parse_expectations(text):
    """{requirement id: reason} from an expectations file's text."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        rid, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"expectations line {number}: '{rid}' has no reason")
        out[rid] = reason.strip()
    return out


def apply_expectations(per_requirement, expectations):
    """Known failures: FAIL becomes XFAIL, PASS becomes XPASS; the reason is
    added to the details. Unknown IDs are an error (a typo hides nothing)."""
    unknown = sorted(set(expectations) - set(per_requirement))
    if unknown:
        raise ValueError("expectations name unknown requirements: " + ", ".join(unknown))
    out = dict(per_requirement)
    for rid, reason in expectations.items():
        verdict, details = out[rid]
        if verdict in ("FAIL", "PASS"):
            out[rid] = ("XFAIL" if verdict == "FAIL" else "XPASS", [f"expected to fail: {reason}"] + details)
    return out


def level_verdicts(catalogue, per_requirement):
    """{level: verdict}: FAIL if a MUST fails, PASS if every MUST passes,
    PASS with known failures if the only others are XFAIL."""
    out = {}
    for level in ("core", "concurrent", "robust"):
        musts = [r["id"] for r in catalogue if r["level"] == "MUST" and level_of(r) == level]
        states = [per_requirement[i][0] for i in musts]
        passing = [s for s in states if s in ("PASS", "XPASS")]
        if "FAIL" in states:
            out[level] = "FAIL"
        elif states and len(passing) == len(states):
            out[level] = "PASS"
        elif states and len(passing) + states.count("XFAIL") == len(states):
            out[level] = f"PASS with {states.count('XFAIL')} known failures (XFAIL)"
        else:
            counted = {s: states.count(s) for s in sorted(set(states))}
            out[level] = "INCOMPLETE (" + ", ".join(f"{n} {s}" for s, n in counted.items()) + ")"
    return out


def markdown(catalogue, results):
    names = list(results)
    lines = ["| Requirement | Level | Group | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for r in catalogue:
        cells = [results[n]["requirements"][r["id"]][0] for n in names]
        lines.append(f"| {r['id']} | {r['level']} | {r['group']} | " + " | ".join(cells) + " |")
    lines += ["", "| Level | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for level in ("core", "concurrent", "robust"):
        lines.append(f"| {level} | " + " | ".join(results[n]["levels"][level] for n in names) + " |")
    for title, kind in (("Failures", "FAIL"), ("Known failures", "XFAIL"),
                        ("Unexpected passes (expectation out of date)", "XPASS"), ("Unresolved", "UNRESOLVED")):
        found = [(n, rid, d) for n in names for rid, (v, ds) in results[n]["requirements"].items() if v == kind
                 for d in ds]
        if found:
            lines += ["", f"{title}:", ""] + [folded(f"{n} {rid}: {d}") for n, rid, d in found]
    return "\n".join(lines) + "\n"


def build(catalogue, gtest_by_name, expectations_by_name):
    """{implementation: {"requirements": ..., "levels": ...}}."""
    results = {}
    for name, gtest in gtest_by_name.items():
        per = apply_expectations(verdicts(catalogue, gtest), expectations_by_name.get(name, {}))
        results[name] = {"requirements": per, "levels": level_verdicts(catalogue, per)}
    return results


def must_failed(catalogue, results):
    must = {r["id"] for r in catalogue if r["level"] == "MUST"}
    return any(v == "FAIL" and i in must for r in results.values() for i, (v, _) in r["requirements"].items())


def write_json(results, path):
    with open(path, "w") as f:
        json.dump({n: {"levels": r["levels"],
                       "requirements": {i: {"verdict": v, "details": d} for i, (v, d) in r["requirements"].items()}}
                   for n, r in results.items()}, f, indent=1)


def main(argv):
    args = argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    outputs = {}
    expect = {}
    while "--expect" in args:
        i = args.index("--expect")
        name, _, path = args[i + 1].partition("=")
        with open(path) as f:
            expect[name] = parse_expectations(f.read())
        del args[i:i + 2]
    for flag in ("--markdown", "--json"):
        if flag in args:
            i = args.index(flag)
            outputs[flag] = args[i + 1]
            del args[i:i + 2]
    if len(args) < 2 or any("=" not in a for a in args[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0]) as f:
        catalogue = json.load(f)
    gtest = {}
    for spec in args[1:]:
        name, path = spec.split("=", 1)
        with open(path) as f:
            gtest[name] = json.load(f)
    results = build(catalogue, gtest, expect)
    text = markdown(catalogue, results)
    print(text, end="")
    if "--markdown" in outputs:
        with open(outputs["--markdown"], "w") as f:
            f.write(text)
    if "--json" in outputs:
        write_json(results, outputs["--json"])
    return 1 if must_failed(catalogue, results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
