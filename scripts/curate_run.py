#!/usr/bin/env python3
"""Trims a finished run of scripts/run-benchmarks into a reference run, in place.

    scripts/curate_run.py RUN_DIR
    scripts/curate_run.py -h | --help     this text

What a reference run keeps (results/README.md): micro.json and ipc.json
with the rows of single runs only (Google Benchmark's aggregate rows
dropped: every script reads the single runs), each "not applicable"
benchmark's row once, one compact row per line; the ping-pong histograms
of the first five rounds; instructions.json, summary.md, summary.json,
report.md and the charts. Everything else in RUN_DIR is deleted. The
summary and the report come out the same from the trimmed files
(scripts/summarize.py RUN_DIR, scripts/report.py RUN_DIR).
"""
import json
import os
import re
import sys

KEPT_FILES = {"micro.json", "ipc.json", "instructions.json", "summary.md", "summary.json", "report.md"}
FIRST_ROUNDS = re.compile(r"_round_[0-4]_")


def kept_rows(rows):
    """The rows worth keeping: single runs, and one row per benchmark that
    said it does not apply (it says so once per repetition)."""
    kept, not_applicable = [], set()
    for row in rows:
        if row.get("run_type") == "aggregate":
            continue
        if row.get("error_occurred") and str(row.get("error_message", "")).startswith("not applicable"):
            if row["name"] in not_applicable:
                continue
            not_applicable.add(row["name"])
        kept.append(row)
    return kept


def compact_text(document):
    """Google Benchmark's JSON with its rows trimmed, one compact row per line."""
    rows = ",\n".join(json.dumps(row, separators=(",", ":")) for row in kept_rows(document["benchmarks"]))
    context = json.dumps(document["context"], separators=(",", ":"))
    return '{"context":' + context + ',\n"benchmarks":[\n' + rows + "\n]}\n"


def is_kept(relative_path):
    """Whether a file of the run (its path inside RUN_DIR) belongs in a reference run."""
    folder, name = os.path.split(relative_path)
    if folder == "histograms":
        return FIRST_ROUNDS.search(name) is not None
    return folder == "" and (name in KEPT_FILES or name.endswith(".png"))


def curate(run_dir):
    """Trims run_dir in place; returns the paths (inside it) it deleted."""
    for name in ("micro.json", "ipc.json"):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            with open(path) as f:
                text = compact_text(json.load(f))
            with open(path, "w") as f:
                f.write(text)
    deleted = []
    for folder, dirs, files in os.walk(run_dir, topdown=False):
        for name in files:
            relative = os.path.relpath(os.path.join(folder, name), run_dir)
            if not is_kept(relative):
                os.remove(os.path.join(folder, name))
                deleted.append(relative)
        for name in dirs:
            if not os.listdir(os.path.join(folder, name)):
                os.rmdir(os.path.join(folder, name))
    return sorted(deleted)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    if not os.path.isdir(argv[1]):
        print(f"curate_run.py: {argv[1]} is not a folder", file=sys.stderr)
        return 2
    deleted = curate(argv[1])
    print(f"curate_run.py: {argv[1]}: kept the reference files, deleted {len(deleted)} others")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
