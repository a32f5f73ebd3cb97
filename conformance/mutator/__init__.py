"""The systematic mutation tool behind conformance/mutate.py (its command line).

Modules, by what they own:
  paths      where the library, the triage file and the catalogue are
  rules      the rules that make mutants from header lines, their stable IDs,
             applying one, sampling (pure)
  results    the triage file, the classes and kill rate, the report files
  workbench  the scratch copy of the headers one mutant is written into, its
             builds, and the build's manifests
  runs       running the suite's and the library's tests against it: which
             tests kill, and when a failure counts
  sweep      the `run` command: baselines, then each mutant through them
  tce        the `tce` command: a mutant's object code against the original's
             (trivial compiler equivalence)

Imported with conformance/ on sys.path (mutate.py and its tests put it
there): `runs` and `workbench` use the suite's runner, conformance/run.py,
as the top-level module `run`.
"""
