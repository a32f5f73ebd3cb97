#!/usr/bin/env python3
"""Checks the links between the repository's Markdown files: every relative
link must name a file or folder that exists, and every #anchor a heading of
the file it points into (GitHub's anchor rules). Links to the web are not
followed. Exit status 1, with one line per broken link, when any is broken.

Usage: check_links.py [ROOT]   (default: the repository this script is in)
"""
import argparse
import os
import re
import sys

SKIPPED_FOLDERS = {".git", "build", "node_modules"}
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose_lines(text):
    """The lines of `text` outside fenced code blocks, with inline code
    removed: (line number, line) pairs."""
    fenced = False
    for number, line in enumerate(text.split("\n"), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, re.sub(r"`[^`]*`", "", line)


def links_in(text):
    """(line number, target) of every Markdown link in the prose of `text`."""
    return [(number, m.group(1)) for number, line in prose_lines(text) for m in LINK.finditer(line)]


def slug(heading):
    """GitHub's anchor for a heading's text: lower case, punctuation dropped
    (hyphens and underscores kept), spaces made hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_in(text):
    """The anchors of the headings of `text` (a repeated heading gets -1, -2, ...)."""
    seen = {}
    anchors = set()
    for _, line in prose_lines(text):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def is_external(target):
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None


def broken_links(path, text, root, read=None):
    """The broken links of the Markdown file `path` (whose contents are
    `text`), as messages. Relative targets resolve against the file's
    folder, targets starting with '/' against `root`."""
    read = read or (lambda p: open(p, encoding="utf-8").read())
    problems = []
    for number, target in links_in(text):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        if file_part:
            base = root if file_part.startswith("/") else os.path.dirname(path)
            resolved = os.path.normpath(os.path.join(base, file_part.lstrip("/")))
        else:
            resolved = path
        where = f"{os.path.relpath(path, root)}:{number}"
        if not os.path.exists(resolved):
            problems.append(f"{where}: {target}: no such file")
            continue
        if anchor and resolved.endswith(".md"):
            anchors = anchors_in(text if resolved == path else read(resolved))
            if anchor not in anchors:
                problems.append(f"{where}: {target}: no heading with anchor #{anchor}")
    return problems


def markdown_files(root):
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDERS and not d.startswith("build"))
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(folder, name)


def main(argv):
    parser = argparse.ArgumentParser(description="Checks the links between the repository's Markdown files.")
    parser.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="the folder to check, recursively (default: this repository)")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    problems = []
    checked = 0
    for path in markdown_files(root):
        with open(path, encoding="utf-8") as f:
            problems += broken_links(path, f.read(), root)
        checked += 1
    for p in problems:
        print(p)
    print(f"check_links.py: {checked} Markdown files, {len(problems)} broken links")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
