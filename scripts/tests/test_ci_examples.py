"""Keeps the example CI jobs in docs/ci/ true: runs their commands, as written,
on fixture results (SHMDS_BENCH_FIXTURE: nothing is built or measured), and
checks that the baseline job writes a baseline the gate job accepts, and that
the gate job fails on a regression in either mode."""
import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURE = os.path.join(ROOT, "scripts", "tests", "fixtures", "run")
EXAMPLES = [os.path.join(ROOT, "docs", "ci", f) for f in ("github-actions.yml", "gitlab-ci.yml")]


def commands(path):
    """The run-benchmarks command lines of an example, in order."""
    with open(path) as f:
        return [m.group(1).strip() for m in re.finditer(r"^\s*(?:- run: |- )(scripts/run-benchmarks [^\n]*)$",
                                                        f.read(), re.M)]


def fixture(tmp_path, name, slower=1.0, more_instructions=1.0):
    """A results folder: the fixture run, with its MPMC throughput divided by
    `slower` and one operation's instructions multiplied by `more_instructions`."""
    folder = tmp_path / name
    shutil.copytree(FIXTURE, folder)
    with open(folder / "ipc.json") as f:
        ipc = json.load(f)
    for row in ipc["benchmarks"]:
        if "/shmds_mpmc/payload:8/senders:1/" in row["name"] and "items_per_second" in row:
            row["items_per_second"] /= slower
            row["bytes_per_second"] /= slower
    with open(folder / "ipc.json", "w") as f:
        json.dump(ipc, f)
    with open(os.path.join(ROOT, "results", "reference", "instructions.json")) as f:
        counts = json.load(f)
    counts["benchmarks"][0]["instructions_per_op"] *= more_instructions
    with open(folder / "instructions.json", "w") as f:
        json.dump(counts, f)
    return folder


def run(command, workdir, results):
    """Runs an example's command line from `workdir` (where the job's checkout
    would be: scripts/ is linked there) on the results in `results`."""
    env = dict(os.environ, SHMDS_BENCH_FIXTURE=str(results))
    return subprocess.run(command, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_the_example_jobs_gate_pull_requests(example, tmp_path):
    lines = commands(example)
    baseline_job = [c for c in lines if "--baseline" not in c]
    gate_job = [c for c in lines if "--baseline" in c]
    assert len(baseline_job) == 2 and len(gate_job) == 2, lines  # timing and instruction counts, each side
    assert any("--instructions" in c for c in baseline_job) and any("--instructions" in c for c in gate_job)

    work = tmp_path / "checkout"
    work.mkdir()
    os.symlink(os.path.join(ROOT, "scripts"), work / "scripts")
    same = fixture(tmp_path, "same")
    for command in baseline_job:
        done = run(command, work, same)
        assert done.returncode == 0, done.stderr
    assert (work / "baseline" / "ipc.json").exists() and (work / "baseline" / "instructions.json").exists()

    for command in gate_job:  # unchanged figures pass
        done = run(command, work, same)
        assert done.returncode == 0, done.stderr
        assert "| Verdict |" in (work / "current" / "gate.md").read_text()

    slower = fixture(tmp_path, "slower", slower=2.0)
    timing = next(c for c in gate_job if "--instructions" not in c)
    done = run(timing, work, slower)
    assert done.returncode == 1, done.stderr
    gate_table = (work / "current" / "gate.md").read_text()
    assert re.search(r"\| ipc/throughput/shmds_mpmc/payload:8/senders:1/receivers:1/wait:spin \| R1[^|]*\| "
                     r"items_per_second \|[^\n]*REGRESSION", gate_table)

    heavier = fixture(tmp_path, "heavier", more_instructions=1.1)
    counting = next(c for c in gate_job if "--instructions" in c)
    done = run(counting, work, heavier)
    assert done.returncode == 1, done.stderr
    assert "REGRESSION" in (work / "current" / "gate.md").read_text()
