"""The workbench: a scratch copy of the library's headers in the build
folder (BUILD/mutation-workbench) that one mutant at a time is written into,
the build of the suite (or the library's tests) against it, and the
manifests that name the programs built. Never writes into impl/include
itself: the checked-out headers stay as they are whatever a sweep does."""
import json
import os
import shutil
import subprocess

import run  # the suite's runner: its manifests

from .paths import LIBRARY
from .rules import apply

WORKBENCH_TARGET = "shmconf_mutation-workbench"
LIBRARY_MANIFEST = "mutation-library-tests.json"


def write_headers(target, mutant=None):
    """The library's headers, with `mutant` applied, in `target` (replaced)."""
    if os.path.isdir(target):
        shutil.rmtree(target)
    # Fresh modification times (shutil.copy, not copy2): a header put back
    # with its old time would look older than the objects built from the
    # previous mutant, and the build would keep the mutant.
    shutil.copytree(LIBRARY, target, copy_function=shutil.copy)
    if mutant:
        path = os.path.join(target, mutant["file"])
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(apply(text, mutant))


def write_workbench(build, mutant=None):
    """The library's headers, with `mutant` applied, in BUILD/mutation-workbench."""
    write_headers(os.path.join(build, "mutation-workbench", "impl", "include"), mutant)


def build_workbench(build, target=WORKBENCH_TARGET):
    done = subprocess.run(["cmake", "--build", build, "--target", target, "-j", str(os.cpu_count() or 2)],
                          capture_output=True, text=True)
    return done.returncode == 0, done.stdout + done.stderr


def workbench_program(build, key="program"):
    """The workbench's suite program (key "program") or its hand-over
    tests with threads ("threads_program")."""
    manifest = run.load_manifests(build).get("mutation-workbench")
    if not manifest or not manifest.get(key):
        raise SystemExit(f"mutate.py: no mutation-workbench manifest with a {key} in {build}/shmconf "
                         "(configure with SHMCONF_BUILD_MUTANTS=ON)")
    return manifest[key]


def library_programs(build):
    """The library's own test programs built against the workbench, cheapest
    first (BUILD/mutation-library-tests.json, written by conformance/mutants)."""
    path = os.path.join(build, LIBRARY_MANIFEST)
    if not os.path.exists(path):
        raise SystemExit(f"mutate.py: no {path}: --library needs a build with the library's tests and "
                         "the mutants (SHMDS_BUILD_TESTS and SHMCONF_BUILD_MUTANTS on)")
    with open(path) as f:
        return json.load(f)
