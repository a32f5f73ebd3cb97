#!/usr/bin/python3
"""Checks the benchmark tree's layering (docs/benchmarks.md, "Format and
extension"): the harness knows no transport and no workload, workloads know
no transport, peers and the project's adapters never include each other,
and only the project's adapters include the library.

Usage: check_layering.py ROOT    (exit 1, naming each include that breaks a rule)
"""
import argparse
import os
import re
import sys

# (folder, include prefixes its files must not use, why)
RULES = [
    ("bench/harness", ("<shmds/", '"adapters/', '"peers/', '"workloads/'),
     "the harness knows no transport and no workload"),
    ("bench/workloads", ("<shmds/", '"adapters/', '"peers/'),
     "a workload is a template over a transport adapter"),
    ("compare/peers", ("<shmds/", '"adapters/'), "peers include nothing from the library or its adapters"),
    ("bench/adapters", ('"peers/',), "the project's adapters never include the peers"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"][^>"]+[>"])')


def includes(text):
    """The include targets of a C++ source, as written (with <> or "")."""
    return [m.group(1) for line in text.splitlines() if (m := INCLUDE.match(line))]


def violations(root):
    """Every include under ROOT that breaks a rule, as 'file: include (why)'."""
    found = []
    for folder, forbidden, why in RULES:
        top = os.path.join(root, folder)
        for directory, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith((".hpp", ".h", ".cpp")):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    for target in includes(f.read()):
                        if target.startswith(forbidden):
                            found.append(f"{os.path.relpath(path, root)}: {target} ({why})")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="the repository's root")
    args = parser.parse_args(argv)
    found = violations(args.root)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
