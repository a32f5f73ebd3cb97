#!/usr/bin/python3
"""The requirement catalogue: parses requirements.md into JSON.

Usage: catalogue.py [requirements.md] [--check catalogue.json]

  requirements.md        the prose to parse (the one beside this script)
  --check catalogue.json exit 1 unless that file holds exactly this catalogue
                         (none: print the catalogue)
  -h, --help             this text

Each requirement is a line `- **ID** [LEVEL] {tier} (group) text` (no tier: core). Prints the
catalogue as JSON, or with --check exits 1 unless the given file holds
exactly that catalogue (so the committed JSON never drifts from the prose).
"""
import json
import os
import re
import sys

LINE = re.compile(r"^- \*\*(?P<id>[A-Z]+-\d{3})\*\* \[(?P<level>MUST|SHOULD|MAY|IMPL)\]"
                  r"(?: \{(?P<tier>concurrent|robust)\})? \((?P<group>[a-z ]+)\) (?P<text>.+)$")
GROUPS = {"segment lifecycle", "name table", "array", "queue", "loan", "messages", "stack", "reference counting", "crash",
          "resource exhaustion", "bad input", "permissions", "address independence"}


def parse(text):
    """The requirements in order; raises ValueError naming a malformed or duplicate line."""
    out, seen = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("- **"):
            continue
        m = LINE.match(line)
        if not m:
            raise ValueError(f"line {number}: not `- **ID** [LEVEL] {{tier}} (group) text`: {line[:60]}")
        if m["id"] in seen:
            raise ValueError(f"line {number}: {m['id']} is used twice")
        if m["group"] not in GROUPS:
            raise ValueError(f"line {number}: unknown group '{m['group']}'")
        seen.add(m["id"])
        out.append({"id": m["id"], "level": m["level"], "tier": m["tier"] or "core", "group": m["group"],
                    "text": m["text"]})
    return out


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    args = argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    check = None
    if "--check" in args:
        i = args.index("--check")
        check = args[i + 1]
        del args[i:i + 2]
    source = args[0] if args else os.path.join(here, "requirements.md")
    with open(source) as f:
        catalogue = parse(f.read())
    if check:
        with open(check) as f:
            if json.load(f) != catalogue:
                print(f"catalogue.py: {check} differs from {source}; regenerate it with catalogue.py > {check}",
                      file=sys.stderr)
                return 1
        return 0
    print(json.dumps(catalogue, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
