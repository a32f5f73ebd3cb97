"""Tests of bench/tests/check_layering.py: it finds each kind of forbidden
include, ignores what is allowed, and passes the repository as it is."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "bench", "tests"))

import check_layering  # noqa: E402


def write(root, path, text):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def test_includes_reads_both_spellings_and_ignores_other_lines():
    text = '#include <shmds/wait.hpp>\n  # include "harness/team.hpp"\n// #include <x>\nint a;\n'
    assert check_layering.includes(text) == ["<shmds/wait.hpp>", '"harness/team.hpp"']


def test_each_rule_is_enforced_and_allowed_includes_pass(tmp_path):
    root = str(tmp_path)
    write(root, "bench/harness/channel.hpp", "#include <shmds/wait.hpp>\n#include <chrono>\n")
    write(root, "bench/harness/team.hpp", '#include "harness/clock.hpp"\n')
    write(root, "bench/workloads/w.hpp", '#include "adapters/shmds_channels.hpp"\n#include "harness/team.hpp"\n')
    write(root, "compare/peers/p.hpp", '#include "adapters/shmds_channels.hpp"\n#include <boost/x.hpp>\n')
    write(root, "bench/adapters/a.hpp", '#include "peers/p.hpp"\n#include <shmds/shmds.hpp>\n')
    found = check_layering.violations(root)
    assert [line.split(":")[0] for line in found] == [
        "bench/harness/channel.hpp", "bench/workloads/w.hpp", "compare/peers/p.hpp", "bench/adapters/a.hpp"]
    assert "<shmds/wait.hpp>" in found[0]


def test_the_repository_keeps_its_layering():
    assert check_layering.violations(ROOT) == []


def test_main_exits_1_naming_the_include(tmp_path, capsys):
    write(str(tmp_path), "compare/peers/p.hpp", "#include <shmds/shmds.hpp>\n")
    assert check_layering.main([str(tmp_path)]) == 1
    assert "compare/peers/p.hpp: <shmds/shmds.hpp>" in capsys.readouterr().out
    assert check_layering.main([ROOT]) == 0
