#!/usr/bin/python3
"""Checks that a program's --help names every option its source parses.

Usage: check_help.py SOURCE -- COMMAND [ARG ...]

Runs COMMAND --help and COMMAND -h: each must exit 0 and print the same
text on stdout. Then takes the options SOURCE parses, found by pattern (so that an
option added without help fails, which a list kept in a test would miss):

  shell   case arms (--quick), -h|--help)), tests such as [ "$1" = --quick ],
          and the environment variables it reads with a default (${NAME:-x})
  C++     comparisons with an option literal (arg == "--quick")
  Python  every option literal ("--out" in args, add_argument("--build")),
          except those in a list or tuple that starts with something else:
          a command line for another program (["cmake", "--build", dir])

and checks that each appears in the --help text as a word. Prints what is
missing, naming the program; exit status 0 when nothing is, 1 otherwise.
"""
import ast
import os
import re
import subprocess
import sys

OPTION = re.compile(r"-{1,2}[A-Za-z][\w-]*")
SHELL_CASE_ARM = re.compile(r"^\s*\(?\s*(-{1,2}[A-Za-z][\w-]*(?:\s*\|\s*-{1,2}[A-Za-z][\w-]*)*)\s*\)", re.M)
SHELL_TEST = re.compile(r"\"\$[^\"\s]*\"\s*!?==?\s*[\"']?(-{1,2}[A-Za-z][\w-]*)")
SHELL_ENVIRONMENT = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?[-=?+]")
CXX_COMPARISON = re.compile(r"==\s*\"(-{1,2}[A-Za-z][\w-]*)\"|\"(-{1,2}[A-Za-z][\w-]*)\"\s*==")


def shell_options(text):
    found = set(SHELL_TEST.findall(text)) | set(SHELL_ENVIRONMENT.findall(text))
    for arm in SHELL_CASE_ARM.findall(text):
        found.update(name.strip() for name in arm.split("|"))
    return found


def cxx_options(text):
    return {a or b for a, b in CXX_COMPARISON.findall(text)}


def python_options(text):
    def is_option(node):
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and OPTION.fullmatch(node.value)

    tree = ast.parse(text)
    other_programs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts and not is_option(node.elts[0]):
            other_programs.update(id(e) for e in node.elts)
    return {n.value for n in ast.walk(tree) if is_option(n) and id(n) not in other_programs}


def options_in_source(path):
    """The options (and, for shell, environment variables) that the source at `path` parses."""
    with open(path) as f:
        text = f.read()
    if path.endswith((".cpp", ".hpp", ".cc", ".h")):
        return cxx_options(text)
    if path.endswith(".py") or text.startswith("#!") and "python" in text.splitlines()[0]:
        return python_options(text)
    return shell_options(text)


def missing_from(help_text, options):
    """The options that `help_text` does not name as a word, sorted."""
    return sorted(o for o in options if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", help_text))


def check(source, command):
    """Problems with COMMAND's help, each a line naming the program; [] when there are none."""
    program = os.path.basename(command[-1])  # "shmds-inspect", "gate.py" (after the interpreter)
    problems = []
    texts = []
    for flag in ("--help", "-h"):
        try:
            run = subprocess.run(command + [flag], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            return [f"{program}: {' '.join(command)} {flag}: {e}"]
        if run.returncode != 0:
            problems.append(f"{program}: {flag} exits with status {run.returncode}, not 0"
                            + (f" ({run.stderr.strip().splitlines()[-1]})" if run.stderr.strip() else ""))
        if not run.stdout.strip():
            problems.append(f"{program}: {flag} prints nothing on stdout")
        texts.append(run.stdout)
    if texts[0] != texts[1]:
        problems.append(f"{program}: -h prints something other than --help")
    options = options_in_source(source)
    if not options:
        problems.append(f"{program}: no options found in {source} (not even --help): is the pattern out of date?")
    for option in missing_from(texts[0], options):
        problems.append(f"{program}: --help does not mention {option}, which {source} parses")
    return problems


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[1], argv[3:])
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
