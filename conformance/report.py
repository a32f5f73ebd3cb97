#!/usr/bin/python3
"""Per-requirement conformance report.

Usage: report.py CATALOGUE.json NAME=RESULTS.json [NAME=RESULTS.json ...]
                 [--markdown FILE] [--json FILE]

Joins GoogleTest's JSON output (--gtest_output=json:FILE) of one or more
implementations with the requirement catalogue: every requirement gets, per
implementation, PASS (every test citing it passed), FAIL (one failed),
UNRESOLVED (could not be set up here, with the reason), UNSUPPORTED (the
capability is not claimed) or UNTESTED (no test cites it). Prints a Markdown
table (implementations side by side) and a verdict per level: core (MUST
requirements outside the concurrent and robust ones), concurrent and robust.
Exits 1 when any MUST requirement FAILs for any implementation.
"""
import json
import sys

CONCURRENT = {"SEG-004", "TBL-003", "Q-005", "Q-006", "Q-007", "Q-008", "STK-003"}
ROBUST_GROUPS = {"crash", "resource exhaustion"}


def level_of(requirement):
    if requirement["id"] in CONCURRENT:
        return "concurrent"
    if requirement["group"] in ROBUST_GROUPS or requirement["id"] in {"REF-004", "REF-005"}:
        return "robust"
    return "core"


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
                out.append((ids, "FAIL", f"{name}: {test['failures'][0].get('failure', '').splitlines()[0]}"))
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


def level_verdicts(catalogue, per_requirement):
    """{level: verdict}: FAIL if a MUST fails, else PASS if every tested MUST passes."""
    out = {}
    for level in ("core", "concurrent", "robust"):
        musts = [r["id"] for r in catalogue if r["level"] == "MUST" and level_of(r) == level]
        states = [per_requirement[i][0] for i in musts]
        if "FAIL" in states:
            out[level] = "FAIL"
        elif states and all(s == "PASS" for s in states):
            out[level] = "PASS"
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
    failures = [(n, rid, d) for n in names for rid, (v, ds) in results[n]["requirements"].items() if v == "FAIL"
                for d in ds]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {n} {rid}: {d}" for n, rid, d in failures]
    return "\n".join(lines) + "\n"


def main(argv):
    args = argv[1:]
    outputs = {}
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
    results = {}
    for spec in args[1:]:
        name, path = spec.split("=", 1)
        with open(path) as f:
            per = verdicts(catalogue, json.load(f))
        results[name] = {"requirements": per, "levels": level_verdicts(catalogue, per)}
    text = markdown(catalogue, results)
    print(text, end="")
    if "--markdown" in outputs:
        with open(outputs["--markdown"], "w") as f:
            f.write(text)
    if "--json" in outputs:
        with open(outputs["--json"], "w") as f:
            json.dump({n: {"levels": r["levels"],
                           "requirements": {i: {"verdict": v, "details": d} for i, (v, d) in r["requirements"].items()}}
                       for n, r in results.items()}, f, indent=1)
    must = {r["id"] for r in catalogue if r["level"] == "MUST"}
    failed = any(v == "FAIL" and i in must for r in results.values() for i, (v, _) in r["requirements"].items())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
