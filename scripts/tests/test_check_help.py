"""Tests of check_help.py: it finds the options a source parses, and fails
when the help leaves one out, exits non-zero or prints nothing."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import check_help  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures", "help")


def fixture(name):
    return os.path.join(FIXTURES, name)


def printing(tmp_path, help_file, status=0):
    """A program, `tool`, that prints `help_file` and exits with `status`, whatever its arguments."""
    program = tmp_path / "tool"
    program.write_text(f"#!/bin/sh\ncat '{fixture(help_file)}'\nexit {status}\n")
    program.chmod(0o755)
    return [str(program)]


def test_shell_case_arms_tests_and_environment_variables():
    options = check_help.options_in_source(fixture("tool.sh"))
    assert options == {"--version", "--alpha", "--beta", "-h", "--help", "TOOL_DIR"}


def test_cxx_comparisons_either_way_round():
    assert check_help.options_in_source(fixture("tool.cpp")) == {"--quick", "--payloads", "--help", "-h"}


def test_python_options_but_not_another_programs_command_line():
    assert check_help.options_in_source(fixture("tool.py")) == {"--build", "-a", "--all", "--out"}


def test_a_help_that_names_every_option_passes(tmp_path):
    assert check_help.check(fixture("tool.sh"), printing(tmp_path, "help_complete.txt")) == []
    assert check_help.check(fixture("tool.sh"), [fixture("tool.sh")]) == []


def test_a_missing_option_fails_naming_the_program_and_the_option(tmp_path):
    tool = printing(tmp_path, "help_missing_beta.txt")
    problems = check_help.check(fixture("tool.sh"), tool)
    assert problems == [f"tool: --help does not mention --beta, which {fixture('tool.sh')} parses"]
    assert check_help.main(["check_help.py", fixture("tool.sh"), "--", *tool]) == 1


def test_a_help_that_exits_non_zero_fails(tmp_path):
    problems = check_help.check(fixture("tool.sh"), printing(tmp_path, "help_complete.txt", status=2))
    assert problems == ["tool: --help exits with status 2, not 0", "tool: -h exits with status 2, not 0"]


def test_an_empty_help_fails(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    problems = check_help.check(fixture("tool.sh"), printing(tmp_path, str(empty)))
    assert "tool: --help prints nothing on stdout" in problems
    assert any("does not mention --alpha" in p for p in problems)


def test_an_option_counts_only_as_a_whole_word():
    text = "--beta-version, --alpha=X, (--gamma)"
    assert check_help.missing_from(text, {"--beta", "--alpha", "--gamma"}) == ["--beta"]
