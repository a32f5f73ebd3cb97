"""Trivial compiler equivalence (the `tce` command): a mutant whose object
code is byte for byte the original's, under every optimising compiler the
project supports, cannot be told apart by any test of those builds. The
probe (mutation/tce_probe.cpp) uses every public operation of every
structure; it is compiled against the unchanged headers and against the
mutant, by each configuration below (with -fno-ident: no compiler version
string in the object), and the objects compared byte for byte.

The unoptimised g++ build is the witness: where even it gives the same
object, the probe never reaches the mutated line (or the change is a no-op
to the compiler), and the verdict is "unreached", never "identical". An
aarch64 compiler is among the optimising ones so that a weakened memory
order, which x86-64 compiles to the same instructions, still differs there.
"""
import filecmp
import os
import shutil
import subprocess
import tempfile

from .paths import CONFORMANCE
from .workbench import write_headers

PROBE = os.path.join(CONFORMANCE, "mutation", "tce_probe.cpp")
WITNESS = ("g++", "-O0")
OPTIMISED = (("g++", "-O2"), ("g++", "-O3"), ("clang++", "-O2"), ("clang++", "-O3"),
             ("aarch64-linux-gnu-g++", "-O2"))


def verdict(witness_differs, optimised_differs):
    """("identical" | "differs" | "unreached", detail) from whether the
    unoptimised witness object differs and, for each optimising
    configuration (a name), whether its object differs (pure)."""
    if not witness_differs:
        return "unreached", "the unoptimised object is the original's: the probe does not reach the line"
    differing = [name for name, differs in optimised_differs.items() if differs]
    if differing:
        return "differs", "object code differs with " + ", ".join(differing)
    return "identical", "object code identical with " + ", ".join(optimised_differs)


def available(compilers):
    """The configurations whose compiler is installed."""
    return [c for c in compilers if shutil.which(c[0])]


def compile_probe(include, config, out):
    compiler, level = config
    done = subprocess.run([compiler, "-std=c++20", level, "-fno-ident", "-I", include, "-c", PROBE, "-o", out],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{compiler} {level} does not compile the probe: {done.stderr[-2000:]}")


def objects_for(work, mutant, configs):
    """Compiles the probe against the headers (with `mutant` applied, when
    given) copied into the same folder every time, so that no path differs;
    {config: object path}."""
    include = os.path.join(work, "include")
    write_headers(include, mutant)
    tag = mutant["id"].replace("/", "_").replace(":", "_") if mutant else "original"
    objects = {}
    for config in configs:
        out = os.path.join(work, f"{tag}-{config[0]}{config[1]}.o")
        compile_probe(include, config, out)
        objects[config] = out
    return objects


def check(mutants, log):
    """[(mutant, verdict, detail)] for each mutant; log(text) reports progress."""
    optimised = available(OPTIMISED)
    configs = [WITNESS] + optimised
    out = []
    with tempfile.TemporaryDirectory(prefix="shmds-tce-") as work:
        log(f"tce: the probe against the unchanged headers ({len(configs)} compilations)")
        original = objects_for(work, None, configs)
        for m in mutants:
            log(f"tce: {m['id']}")
            objects = objects_for(work, m, configs)
            differs = {c: not filecmp.cmp(original[c], objects[c], shallow=False) for c in configs}
            kind, detail = verdict(differs[WITNESS],
                                   {f"{c[0]} {c[1]}": differs[c] for c in optimised})
            out.append((m, kind, detail))
    return out
