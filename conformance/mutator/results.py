"""A sweep's results: the triage file, each mutant's class, the kill rate,
and the report files (OUT/mutation.md and OUT/mutation.json), which `run`
writes after each mutant and `report` writes again with the current triage.
Runs nothing."""
import json
import os
import sys


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


def killed_ids(result, library=False):
    """IDs of the mutants an earlier mutation.json records as killed (by
    the library's own tests too only with `library`: the suite alone cannot
    be expected to kill those again)."""
    return {r["id"] for r in result.get("mutants", [])
            if r.get("class") == "killed" and (library or not killed_by_library(r))}


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
