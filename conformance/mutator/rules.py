"""The mutation rules (pure): which lines of a header a rule may touch, the
one-line defects each rule makes there, and each mutant's stable ID; applying
a mutant to a file's text, its diff, and a sample spread over the rules.

The ID (rule, file, a hash of the original line, which of its identical lines
and variants it is) is what the triage file and earlier sweeps name a mutant
by: any change here that alters an ID orphans their entries (compare
`mutate.py list` before and after).
"""
import fnmatch
import hashlib
import os
import random
import re

from .paths import LIBRARY


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
